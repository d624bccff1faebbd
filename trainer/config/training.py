"""`dcgan train`'s flags (TrainConfig), their checks, and its presets.

About 480 lines: each of the 56 flags carries its `--help` text here, beside the checks that refuse
its bad values before any work, so a flag is read and changed in one place.

python -c "from trainer.config import TrainConfig; print(TrainConfig(job_dir='x').describe())"
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Optional

from trainer.config.common import (
    RESOLUTIONS,
    _Printable,
    failed,
    flag,
    missing_dataset,
    missing_file,
    precision_errors,
)
from trainer.errors import UserError

LOSSES = ("nonsaturating", "hinge", "lsgan")


DIFFAUGMENT_POLICIES = ("color", "translation", "cutout", "dihedral")


REAL_AUGMENTS = ("none", "flip", "dihedral")  # --real_augment
MINIBATCH_STD_VIEWS = ("own", "shared")  # --minibatch_std_views: DiffAugment draws per image or per group
CLASS_LOSSES = ("ac", "tac")  # --class_loss: AC-GAN's classifier, or TAC-GAN's twin classifiers
LECAM_DECAY = 0.99  # --lecam_weight: the decay of the moving averages of D's logits (the paper's)


DIFFAUGMENT_AUTO_BELOW = 20_000  # images: `--diffaugment=auto` turns it on for smaller datasets


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a laptop CPU: the tests' workhorse.
    "smoke": dict(
        resolution=32,
        width=0.125,
        latent_dim=16,
        batch_size=16,
        steps=8,
        log_every=2,
        sample_every=4,
        checkpoint_every=4,
        ema_decay=0.9,
        kid_every=0,
    ),
    # A real run on the bundled digits (a few minutes on one GPU).
    "default": dict(),
    # Few images whose classes survive flips and quarter turns (shapes, aerial and microscope
    # images, textures; not digits, letters or faces): D sees each image in 8 orientations, so it
    # cannot memorise a small set, and a half-width G and D buy ~2.6x the steps per hour. Measured
    # on 168 RGB shapes (docs/generators.md): the default draws blobs of the wrong class, this
    # draws solid shapes of the conditioning class; 32000 steps, because class fidelity and CAS
    # still rose from 16000 to 32000 (3 GAN seeds) without more memorization.
    "symmetric": dict(diffaugment="color,translation,dihedral", width=0.5, steps=32000),
}


def _step_range(name: str, value: str, form: str) -> tuple[int, int]:
    """A flag's 'A,B' (two steps, 0 <= A < B) -> (A, B), or one UserError naming the flag and `form`."""
    parts = str(value).split(",")
    try:
        first, last = (int(p) for p in parts) if len(parts) == 2 else (-1, -1)
    except ValueError:
        first = last = -1
    if not 0 <= first < last:
        raise UserError(f"--{name}={value!r} must be {form}")
    return first, last


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Printable):
    """Every knob of `dcgan train`. Field names are the CLI flag names."""

    COMMAND = "train"
    PRESETS = TRAIN_PRESETS

    def full_config_at(self) -> str:
        return f"{self.job_dir.rstrip('/')}/config.json"

    def path_errors(self) -> list[str]:
        return list(filter(None, [missing_file("feature_model", self.feature_model, "a Keras model file")]))

    job_dir: str = flag("", "Where everything goes (config.json, checkpoints/, tensorboard/, export/).")
    preset: str = flag(
        "default",
        "Named flag set applied first: 'default'; 'symmetric' (few images whose classes survive flips and "
        "quarter turns: dihedral DiffAugment, half width, 32000 steps); 'smoke' (seconds, for tests).",
    )
    dataset: str = flag(
        "digits:train",
        "Data: 'digits:train' (bundled digits, leaving digits:test out for evaluation), a folder of "
        "images, a .npz file, or TFRecord shards.",
    )
    resolution: int = flag(32, "image side in pixels (images are resized and centre-cropped)")
    channels: int = flag(0, "0: the dataset's own (digits 1, folders 3, npz/shards as stored)")
    folder_labels: str = flag("inferred", "'inferred' from class sub-folders, or 'none'")
    on_corrupt: str = flag("skip", "unreadable image files: 'skip' (counted, listed) or 'fail'")
    dataset_staging: str = flag(
        "stream",
        "A gs:// shard output (with manifest.json): 'stream' reads it a few shards at a time, or 'copy' "
        "mirrors it into the local cache first (as every other gs:// dataset is).",
    )
    stream_buffer_mb: int = flag(512, "when streaming: the most MiB of downloaded shards on local disk at once")
    conditional: Optional[bool] = flag(None, "None: on when the dataset has labels")
    # Model.
    latent_dim: int = flag(100, "size of the noise vector z")
    width: float = flag(1.0, "multiplies the 64 base filters of G and D")
    # Optimisation.
    batch_size: int = flag(64, "global, over all replicas and workers")
    steps: int = flag(3000, "training steps in all (a resumed run continues to this step)")
    g_lr: float = flag(2e-4, "generator learning rate (Adam)")
    d_lr: float = flag(2e-4, "discriminator learning rate (Adam)")
    beta1: float = flag(0.5, "Adam beta1 of both optimizers")
    beta2: float = flag(0.999, "Adam beta2 of both optimizers")
    loss: str = flag("nonsaturating", "'nonsaturating' (BCE), 'hinge' or 'lsgan' (least squares)")
    r1_gamma: float = flag(0.0, "R1 penalty weight on real images, 0 = off")
    lecam_weight: float = flag(
        0.0,
        "LeCam (Tseng et al. 2021, for limited data): D's logits are pulled towards moving averages of "
        "its logits on the other kind of image (decay LECAM_DECAY); the weight, 0 = off (the paper: 0.3).",
    )
    g_conditioning: str = flag(
        "concat",
        "How G uses z and the class: 'concat' (label embedding beside z, into G's first layer), 'cbn' (also "
        "class-conditional BatchNorm in every block) or 'skip_z' (z and the label embedding set every "
        "BatchNorm's gain and bias, BigGAN's skip-z; also without classes). The export is plain Keras layers.",
    )
    d_spectral_norm: bool = flag(False, "D's conv kernels spectrally normalised (and no BatchNorm in D), as in SNGAN")
    minibatch_std: int = flag(
        0,
        "Minibatch standard deviation in D (StyleGAN): each replica's batch is cut into groups of this many "
        "images, and D also sees, before its last convolution, how much the images of a group differ, so a G "
        "that draws alike images for different z can be told apart; 0 = off (StyleGAN2: 4). Each replica's "
        "batch must be a multiple of it.",
    )
    minibatch_std_views: str = flag(
        "own",
        "With --minibatch_std: 'own' (every image its own DiffAugment draw, as in StyleGAN2-ADA) or 'shared' "
        "(the images of a group share one draw: the same shift, turn and colour change, so the group's spread "
        "is that of the drawings, not of the augmentation).",
    )
    class_loss_weight: float = flag(
        0.0,
        "AC-GAN-style class loss (conditional runs): D also classifies real images, and G is rewarded "
        "when D's classifier recognises its samples' conditioning labels; the weight of both terms, 0 = "
        "off.",
    )
    class_loss: str = flag(
        "ac",
        "With --class_loss_weight: 'ac' (AC-GAN: one classifier, trained on real images) or 'tac' (TAC-GAN, "
        "Gong et al. 2019: a twin classifier on D's features also learns the conditioning labels of G's "
        "samples, and G is penalised when it recognises them, meant to cancel AC-GAN's pull towards samples "
        "that are easy to classify, the pull that costs diversity within a class; docs/generators.md).",
    )
    mode_seeking_weight: float = flag(
        0.0,
        "Mode seeking (MSGAN): G is penalised when two samples of one class with different z look alike; "
        "the weight, 0 = off (needs an even batch per replica).",
    )
    class_fade_in: str = flag(
        "",
        "'START,END' (steps): transitional training for few images per class (Shahbazi et al. 2022, "
        "'Collapse by conditioning'): G's label embedding and D's projection term (and the AC term) are "
        "scaled by a strength that is 0 until step START and grows linearly to 1 at step END (train past it), "
        "so G first learns the images' variety, then their classes; '' = conditional from the start. Needs "
        "--g_conditioning=concat.",
    )
    # Data-efficient training: DiffAugment before D ('auto': all three below DIFFAUGMENT_AUTO_BELOW images).
    diffaugment: str = flag("auto", "'auto', 'none', or a subset of 'color,translation,cutout,dihedral'")
    dihedral_p: float = flag(
        1.0,
        "With dihedral DiffAugment: the share of images given a random one of the 8 orientations (the "
        "original included, each equally likely), the rest keep theirs; below 1, D also sees the drawings as "
        "G made them, so a G that draws its shapes in one orientation only can be told apart (ADA: such "
        "transforms leak when p = 1).",
    )
    real_augment: str = flag(
        "none",
        "Dataset augmentation of the real images only (G learns it, unlike DiffAugment): 'none', 'flip' "
        "(a horizontal mirror for half of them, StyleGAN's x-flips) or 'dihedral' (one of the 8 flips "
        "and quarter turns each). Only for data whose images stay plausible images of their class when so "
        "transformed.",
    )
    ada_target: float = flag(0.0, "> 0: adapt the augmentation probability p so E[sign D(real)] ~ target (ADA: 0.6)")
    ada_kimg: float = flag(100.0, "thousands of images for p to move from 0 to 1 at most")
    ema_decay: float = flag(0.999, "G_ema; 0 = plain copy of G")
    seed: int = flag(0, "seeds noise, data order and initial weights: same seed, same run")
    # Cadence (steps).
    log_every: int = flag(50, "steps between log lines and TensorBoard scalars")
    sample_every: int = flag(500, "steps between sample grids (TensorBoard and JOB_DIR/samples/)")
    checkpoint_every: int = flag(500, "steps between checkpoints")
    keep_checkpoints: int = flag(3, "committed checkpoints kept; older ones are deleted")
    tensorboard_upload_secs: float = flag(
        60.0,
        "Seconds between TensorBoard log flushes and uploads (to a gs:// job dir and Vertex AI's "
        "AIP_TENSORBOARD_LOG_DIR) while training runs; 0 = only at checkpoints and at the end.",
    )
    profile_steps: str = flag("", "'A,B': write a TensorBoard profile (Profile tab) of steps A to B; '' = off.")
    # Quality tracking: KID of G_ema vs the training images; the best step is exported to export/best/.
    kid_every: int = flag(500, "steps between KID measurements (the best G_ema goes to export/best/); 0 = off")
    kid_samples: int = flag(1000, "generated and real images per KID measurement")
    feature_model: str = flag("", "a Keras model file for features; '' = a small classifier trained on the data")
    select_by: str = flag(
        "kid",
        "What picks export/best/: 'kid' (the lowest KID) or 'class_consistency' (conditional data: the "
        "highest share of G_ema's samples that the classifier trained on the real images gives their "
        "conditioning label).",
    )
    # Hardware.
    mixed_precision: str = flag("off", "off (float32), bfloat16 (CPUs with BF16, TPUs) or float16 (GPUs, loss-scaled)")
    devices: int = flag(0, "0: every visible GPU (or the CPU); N: split into N logical devices")
    xla: bool = flag(False, "compile the training step with XLA (jit_compile)")
    sync_batchnorm: bool = flag(False, "BatchNorm statistics over all replicas instead of each replica's own")
    fused_batchnorm: bool = flag(
        True,
        "BatchNorm's training step as one fused TensorFlow op (same math and variables as Keras' layer, 1.1-1.25x "
        "faster steps on a CPU); --nofused_batchnorm: Keras' own ops. Not used with --sync_batchnorm.",
    )
    steps_per_call: int = flag(1, "training steps per tf.function call (fewer host round trips)")
    # Behaviour.
    overwrite: bool = flag(
        False,
        "a job dir holding a different job: discard its checkpoints, logs, samples and export",
    )
    dry_run: bool = flag(False, "resolve and print the config, check the cluster and the job dir, train nothing")
    progress: bool = flag(True, "progress on stderr: a bar on a terminal, a line per --log_every steps in a log")
    deterministic: bool = flag(False, "bit-reproducible kernels (tf.config.experimental.enable_op_determinism); slower")

    # Fields that may change between a run and its resumption; every other
    # field defines the job, and a job dir refuses a job that differs in them.
    RESUMABLE = (
        "job_dir",
        "preset",
        "steps",
        "log_every",
        "sample_every",
        "checkpoint_every",
        "keep_checkpoints",
        "tensorboard_upload_secs",
        "devices",
        "xla",
        "fused_batchnorm",
        "steps_per_call",
        "overwrite",
        "dry_run",
        "progress",
        "deterministic",
        "on_corrupt",
        "kid_every",
        "kid_samples",
        "feature_model",
        "dataset_staging",
        "stream_buffer_mb",
        "profile_steps",
    )

    def validate(self) -> list[str]:
        """Returns one message per mistake (empty when the config is usable), a group of flags at a time."""
        groups = (self._data_errors, self._model_errors, self._optimisation_errors, self._augmentation_errors)
        return [message for group in (*groups, self._schedule_errors, self._hardware_errors) for message in group()]

    def _data_errors(self) -> list[str]:
        checks = [
            (not self.job_dir, "--job_dir is required (a local folder or gs://bucket/path)"),
            (
                self.preset not in TRAIN_PRESETS,
                f"--preset={self.preset!r} is unknown; choose one of {sorted(TRAIN_PRESETS)}",
            ),
            (not self.dataset, "--dataset must not be empty"),
            (
                self.resolution not in RESOLUTIONS,
                f"--resolution={self.resolution} is not supported; choose one of {list(RESOLUTIONS)}",
            ),
            (
                self.channels not in (0, 1, 3),
                f"--channels={self.channels} must be 1 (grayscale), 3 (RGB) or 0 (the dataset's own)",
            ),
            (
                self.folder_labels not in ("inferred", "none"),
                f"--folder_labels={self.folder_labels!r} must be 'inferred' or 'none'",
            ),
            (self.on_corrupt not in ("skip", "fail"), f"--on_corrupt={self.on_corrupt!r} must be 'skip' or 'fail'"),
            (
                self.dataset_staging not in ("stream", "copy"),
                f"--dataset_staging={self.dataset_staging!r} must be 'stream' or 'copy'",
            ),
            (
                not 1 <= self.stream_buffer_mb <= 1 << 20,
                f"--stream_buffer_mb={self.stream_buffer_mb} must be in 1..1048576",
            ),
        ]
        return failed(checks) + list(filter(None, [missing_dataset("dataset", self.dataset)]))

    def _model_errors(self) -> list[str]:
        return failed(
            [
                (self.latent_dim < 1, f"--latent_dim={self.latent_dim} must be >= 1"),
                (not 0 < self.width <= 16, f"--width={self.width} must be in (0, 16]"),
                (
                    0 < self.width <= 16 and round(64 * self.width) < 1,
                    f"--width={self.width} leaves no filters (64 * width must be >= 1)",
                ),
                (
                    self.g_conditioning not in ("concat", "cbn", "skip_z"),
                    f"--g_conditioning={self.g_conditioning!r} must be 'concat', 'cbn' or 'skip_z'",
                ),
            ]
        )

    def _optimisation_errors(self) -> list[str]:
        checks = [
            (self.batch_size < 1, f"--batch_size={self.batch_size} must be >= 1"),
            (self.steps < 1, f"--steps={self.steps} must be >= 1"),
            *((not getattr(self, n) > 0, f"--{n}={getattr(self, n)} must be > 0") for n in ("g_lr", "d_lr")),
            *(
                (not 0 <= getattr(self, n) < 1, f"--{n}={getattr(self, n)} must be in [0, 1)")
                for n in ("beta1", "beta2")
            ),
            (self.loss not in LOSSES, f"--loss={self.loss!r} is unknown; choose one of {list(LOSSES)}"),
            (self.r1_gamma < 0, f"--r1_gamma={self.r1_gamma} must be >= 0"),
            *(
                (getattr(self, n) < 0, f"--{n}={getattr(self, n)} must be >= 0 (0 = off)")
                for n in ("lecam_weight", "mode_seeking_weight", "class_loss_weight")
            ),
            (
                self.class_loss not in CLASS_LOSSES,
                f"--class_loss={self.class_loss!r} is unknown; choose one of {list(CLASS_LOSSES)}",
            ),
            (
                self.class_loss == "tac" and not self.class_loss_weight > 0,
                "--class_loss=tac weighs its terms by --class_loss_weight; set it above 0 (TAC-GAN: 1)",
            ),
            (not 0 <= self.ema_decay < 1, f"--ema_decay={self.ema_decay} must be in [0, 1)"),
            (self.seed < 0, f"--seed={self.seed} must be >= 0"),
            (self.minibatch_std < 0, f"--minibatch_std={self.minibatch_std} must be >= 0 (0 = off)"),
            (
                self.minibatch_std == 1,
                "--minibatch_std=1 has no spread to measure (one image per group); use 2 or more, or 0 = off",
            ),
            (
                self.minibatch_std_views not in MINIBATCH_STD_VIEWS,
                f"--minibatch_std_views={self.minibatch_std_views!r} is unknown; choose one of "
                f"{list(MINIBATCH_STD_VIEWS)}",
            ),
            (
                self.minibatch_std_views == "shared" and not self.minibatch_std,
                "--minibatch_std_views=shared shares DiffAugment's draws within D's groups: it needs "
                "--minibatch_std=GROUP (2 or more)",
            ),
        ]
        try:
            self.class_fade_range()
        except UserError as err:
            checks.append((True, str(err)))
        return failed(checks)

    def _augmentation_errors(self) -> list[str]:
        policies = (
            [] if self.diffaugment.strip().lower() in ("auto", "none", "off", "") else self.diffaugment.split(",")
        )
        unknown = [p for p in policies if p.strip().lower() not in DIFFAUGMENT_POLICIES]
        return failed(
            [
                (
                    bool(unknown),
                    f"--diffaugment={self.diffaugment!r}: unknown {', '.join(unknown)}; use auto, none, "
                    f"or a comma-separated subset of {', '.join(DIFFAUGMENT_POLICIES)}",
                ),
                (
                    not 0 <= self.ada_target < 1,
                    f"--ada_target={self.ada_target} must be in [0, 1) (0 = off; ADA uses 0.6)",
                ),
                (not self.ada_kimg > 0, f"--ada_kimg={self.ada_kimg} must be > 0"),
                (not 0 <= self.dihedral_p <= 1, f"--dihedral_p={self.dihedral_p} must be in [0, 1]"),
                (
                    self.dihedral_p != 1 and "dihedral" not in [p.strip().lower() for p in policies],
                    f"--dihedral_p={self.dihedral_p} needs --diffaugment with dihedral in it",
                ),
                (
                    self.real_augment not in REAL_AUGMENTS,
                    f"--real_augment={self.real_augment!r} must be one of {', '.join(REAL_AUGMENTS)}",
                ),
            ]
        )

    def _schedule_errors(self) -> list[str]:
        checks = [
            (self.kid_every < 0, f"--kid_every={self.kid_every} must be >= 0 (0 = off)"),
            (self.kid_samples < 10, f"--kid_samples={self.kid_samples} must be >= 10"),
            (
                self.select_by not in ("kid", "class_consistency"),
                f"--select_by={self.select_by!r} must be 'kid' or 'class_consistency'",
            ),
            (
                self.select_by == "class_consistency" and self.kid_every == 0,
                "--select_by=class_consistency is measured every --kid_every steps; --kid_every=0 turns it off",
            ),
            (
                self.select_by == "class_consistency" and self.feature_model != "",
                "--select_by=class_consistency judges with the classifier trained on the data; drop --feature_model",
            ),
            *(
                (getattr(self, n) < 1, f"--{n}={getattr(self, n)} must be >= 1")
                for n in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "steps_per_call")
            ),
            (
                not 0 <= self.tensorboard_upload_secs < 86400,  # NaN fails too
                f"--tensorboard_upload_secs={self.tensorboard_upload_secs} must be in [0, 86400) (0 = off)",
            ),
        ]
        try:
            self.profile_range()
        except UserError as err:
            checks.append((True, str(err)))
        return failed(checks)

    def _hardware_errors(self) -> list[str]:
        return precision_errors(self.mixed_precision) + failed(
            [(self.devices < 0, f"--devices={self.devices} must be >= 0")]
        )

    @property
    def twin_classifier(self) -> bool:
        """--class_loss=tac: D's class head holds TAC-GAN's twin classifier beside AC-GAN's."""
        return self.class_loss == "tac"

    def profile_range(self) -> tuple[int, int]:
        """--profile_steps 'A,B' -> (A, B); (0, 0) when off."""
        if not self.profile_steps:
            return 0, 0
        return _step_range("profile_steps", self.profile_steps, "'A,B' with 0 <= A < B (steps to profile)")

    def class_fade_range(self) -> Optional[tuple[int, int]]:
        """--class_fade_in 'START,END' -> (START, END); None when off."""
        if not self.class_fade_in:
            return None
        start, end = _step_range("class_fade_in", self.class_fade_in, "'START,END' with 0 <= START < END (steps)")
        if self.g_conditioning != "concat":
            raise UserError(f"--class_fade_in needs --g_conditioning=concat, not {self.g_conditioning!r}")
        return start, end

    # Fields added after jobs were already being written: left out of the identity while at their default,
    # so a job dir written before they existed still resumes.
    ADDED_LATER = {
        "lecam_weight": 0.0,
        "select_by": "kid",
        "real_augment": "none",
        "dihedral_p": 1.0,
        "class_fade_in": "",
        "minibatch_std": 0,
        "minibatch_std_views": "own",
        "class_loss": "ac",
    }

    def identity(self, canonical: bool = True) -> dict[str, Any]:
        """The fields that define the job (see RESUMABLE and ADDED_LATER); `canonical`: --class_fade_in '2, 6'
        and '2,6' alike (jobs written before that compare their raw spelling: `identity_hash(canonical=False)`)."""
        values = dataclasses.asdict(self)
        if self.class_fade_in and canonical:
            try:
                values["class_fade_in"] = ",".join(map(str, self.class_fade_range()))
            except UserError:  # a saved config edited by hand: compared as written, not reported as a flag
                pass
        return {
            k: v
            for k, v in values.items()
            if k not in self.RESUMABLE and not (k in self.ADDED_LATER and v == self.ADDED_LATER[k])
        }

    def identity_hash(self, canonical: bool = True) -> str:
        blob = json.dumps(self.identity(canonical), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
