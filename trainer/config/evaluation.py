"""`dcgan evaluate`'s flags (EvaluateConfig) and the downstream comparison's choices.

python -c "from trainer.config import EvaluateConfig; print(EvaluateConfig().listing())"
"""

from __future__ import annotations

import dataclasses
import os

from trainer.config.common import (
    RESOLUTIONS,
    _Printable,
    flag,
    missing_dataset,
    missing_file,
    unwritable_file,
)

# dcgan evaluate's baseline candidates (trainer/downstream.py POLICIES has one policy per name) and mixes.
DOWNSTREAM_POLICIES = (
    "none",
    "classic",
    "classic_full",
    "crop_flip",
    "trivial_augment",
    "rand_augment",
    "dihedral_trivial",
)


DOWNSTREAM_MIXES = ("mixup", "cutmix")
MAX_FOLDS = 20  # trainer/validation_split.py's, checked here before anything loads


def downstream_errors(config) -> list[str]:
    """--policies, --mixes, --shares, --validation_fraction and --tune_folds of `dcgan evaluate`, checked."""
    errors = []
    unknown = [p for p in config.policies.split(",") if p not in DOWNSTREAM_POLICIES]
    if unknown:
        choices = ", ".join(DOWNSTREAM_POLICIES)
        errors.append(f"--policies: unknown {', '.join(map(repr, unknown))}; choose from {choices}")
    unknown = [m for m in config.mixes.split(",") if m and m not in DOWNSTREAM_MIXES]
    if unknown:
        errors.append(f"--mixes: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(DOWNSTREAM_MIXES)}")
    try:
        shares = [float(s) for s in str(config.shares).split(",")]
        if not all(0 < s <= 1 for s in shares):
            raise ValueError
    except ValueError:
        errors.append(f"--shares={config.shares}: comma-separated numbers in (0, 1]")
    if not 0 < config.validation_fraction < 1:
        errors.append(f"--validation_fraction={config.validation_fraction} must be in (0, 1)")
    if not 0 <= config.tune_folds <= MAX_FOLDS:
        errors.append(f"--tune_folds={config.tune_folds} must be 0 (auto), 1 (one split) or 2-{MAX_FOLDS} folds")
    return errors


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(_Printable):
    """`dcgan evaluate`: how good and how useful are the synthetic images?"""

    COMMAND = "evaluate"

    def full_config_at(self) -> str:
        return f'{self.report}, under "config"'

    def path_errors(self) -> list[str]:
        errors = []
        errors += filter(
            None,
            [
                missing_file("feature_model", self.feature_model, "a Keras model file"),
                unwritable_file("report", self.report),
            ],
        )
        synthetic = self.synthetic
        if (
            synthetic
            and "://" not in synthetic
            and not any(c in synthetic for c in "*?[")
            and not os.path.exists(synthetic)
        ):
            errors.append(f"--synthetic={self.synthetic}: no such file or folder (shards, or a job dir to sample from)")
        return errors

    real: str = flag("", "held-out real images: reference for FID/KID/precision/recall, test set for downstream")
    synthetic: str = flag("", "shards (a folder or gs://), or a job dir / export to sample --num_samples from")
    train_data: str = flag("", "the generator's training images ('' = the dataset recorded in its export)")
    report: str = flag("report.json", "also writes REPORT-closest-pixels.png, -closest-features.png, -samples.png")
    num_samples: int = flag(2000, "synthetic images measured (sampled from a job dir, or read from shards)")
    feature_model: str = flag("", "a Keras model file whose output is the feature vector ('' = small classifier)")
    feature_data: str = flag("", "images the default feature classifier learns from ('' = --real)")
    feature_steps: int = flag(1500, "training steps of the default feature classifier")
    resolution: int = flag(0, "0 = the synthetic images'; otherwise it must match them")
    downstream: str = flag("auto", "auto (when labels allow), true, false")
    downstream_steps: int = flag(1000, "training steps of each downstream classifier (the judge)")
    seeds: int = flag(5, "paired seeds per downstream recipe on --real (mean, 95% interval of differences)")
    tune_seeds: int = flag(1, "seeds per candidate when tuning the baseline and the share on validation")
    validation_fraction: float = flag(0.2, "of each class of --train_data, held out for tuning (one split)")
    tune_folds: int = flag(
        0,
        "tuning by k-fold cross-validation, every --train_data image validating once (k x the tuning cost); "
        "1 = one split of --validation_fraction (used only then); 0 = 5 folds where one split holds under 3 "
        "images of a class of imbalanced data, else one split; at most 20",
    )
    policies: str = flag(
        "none,classic,classic_full,crop_flip,trivial_augment,rand_augment,dihedral_trivial",
        "Baseline augmentation candidates, tuned on validation (names: trainer/downstream.py POLICIES).",
    )
    mixes: str = flag("mixup,cutmix", "tried on top of the best policy ('' = none)")
    shares: str = flag("0.25,0.5", "synthetic share of each batch: candidates tuned on validation")
    reuse_scores: bool = flag(
        True,
        "Judge scores from earlier runs on the same images, recipe and seed are reused, not retrained "
        "($DCGAN_CACHE/judge_scores); false trains every classifier.",
    )
    kid_subsets: int = flag(100, "subsets KID is averaged over")
    memorization_quantile: float = flag(
        0.01,
        "A sample closer to a training image than this quantile of real-to-real distances counts as memorized.",
    )
    seed: int = flag(0, "seeds sampling and the classifiers")
    allow_overlap: bool = flag(
        False,
        "--real sharing images with the generator's training images is refused; true reports anyway, with "
        "every affected number marked.",
    )

    def validate(self) -> list[str]:
        errors = []
        if not self.real:
            errors.append("--real is required (held-out real images, e.g. digits:test)")
        if not self.synthetic:
            errors.append("--synthetic is required (a shard output, or a job dir to sample from)")
        if not self.report:
            errors.append("--report is required (a .json path)")
        errors += filter(
            None, [missing_dataset(flag, getattr(self, flag)) for flag in ("real", "train_data", "feature_data")]
        )
        if self.num_samples < 10:
            errors.append(f"--num_samples={self.num_samples} must be >= 10")
        if self.downstream not in ("auto", "true", "false"):
            errors.append(f"--downstream={self.downstream!r} must be auto, true or false")
        errors += downstream_errors(self)
        for name in ("feature_steps", "downstream_steps", "seeds", "tune_seeds", "kid_subsets"):
            if getattr(self, name) < 1:
                errors.append(f"--{name}={getattr(self, name)} must be >= 1")
        if not 0 < self.memorization_quantile < 1:
            errors.append(f"--memorization_quantile={self.memorization_quantile} must be in (0, 1)")
        if self.resolution and self.resolution not in RESOLUTIONS:
            errors.append(f"--resolution={self.resolution} is not supported; choose one of {list(RESOLUTIONS)}")
        return errors
