"""What a training run actually uses, resolved once from its config, data and hardware.

`config.json` keeps what was asked (`channels: 0`, `conditional: null`,
`diffaugment: "auto"`); the plan holds what that came to on this run: channels,
classes and their names, the DiffAugment policy, replicas and workers, batch
per replica, compute precision, TensorFlow's CPU kernels. It is printed at
start, saved beside the config as JOB_DIR/plan.json (by the chief, every run: a
resumed run on other hardware records its own), and passed to the loop and the
step, so no value is re-derived further down.

    python - <<'PY'
    from trainer import command_line, data, train_plan
    config = command_line.resolve('train', {'job_dir': '/tmp/p'})
    print(train_plan.resolve(config, data.load_source('digits:train', 32), 1, 1).describe())
    PY
"""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

import numpy as np

from trainer import diffaugment, onednn
from trainer.config import DIFFAUGMENT_AUTO_BELOW, TrainConfig
from trainer.errors import UserError

PRECISION_POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    config: TrainConfig
    dataset_images: Optional[int]  # None for shards without a manifest count
    channels: int
    num_classes: int  # 0: unconditional
    class_names: tuple[str, ...]  # a name per class (the label's digits when the data names none)
    diffaugment: tuple[str, ...]  # the DiffAugment policy; () = off
    replicas: int  # in sync, over every worker
    workers: int
    precision: str  # the Keras dtype policy
    # Training images per class (in-memory labelled data; () where unknown, e.g. streamed shards):
    # recorded in the export so that `dcgan sample --labels=fill` can top the small classes up.
    class_counts: tuple[int, ...] = ()
    batchnorm: str = "keras"  # G's and D's BatchNorm: batchnorm_kind(config)
    cpu_kernels: str = "eigen"  # TensorFlow's CPU kernels in this process: 'onednn' or 'eigen' (trainer/onednn.py)

    @classmethod
    def of(cls, config: TrainConfig, channels: int, num_classes: int) -> "TrainPlan":
        """A plan outside a run (one device, no data), e.g. to export a generator built by hand."""
        return cls(
            config,
            None,
            channels,
            num_classes,
            tuple(str(c) for c in range(num_classes)),
            diffaugment_policy(config.diffaugment, None),
            1,
            1,
            PRECISION_POLICIES[config.mixed_precision],
            batchnorm=batchnorm_kind(config),
            cpu_kernels=cpu_kernels(),
        )

    @property
    def global_batch(self) -> int:
        return self.config.batch_size

    @property
    def per_replica_batch(self) -> int:
        return self.config.batch_size // self.replicas

    @property
    def adaptive_diffaugment(self) -> bool:
        return bool(self.diffaugment) and self.config.ada_target > 0

    @property
    def class_fade(self) -> Optional[tuple[int, int]]:
        """--class_fade_in's (START, END) for a conditional run; None when off or unconditional."""
        return self.config.class_fade_range() if self.num_classes else None

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "config"}
        values.update(
            class_names=list(self.class_names),
            class_counts=list(self.class_counts),
            diffaugment=list(self.diffaugment),
            per_replica_batch=self.per_replica_batch,
            config_hash=self.config.identity_hash(),
        )
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def describe(self) -> str:
        names = ", ".join(self.class_names[:10]) + (", ..." if len(self.class_names) > 10 else "")
        classes = f"{self.num_classes} classes ({names})" if self.num_classes else "unconditional"
        ada = f", adaptive p (target E[sign D(real)] = {self.config.ada_target})" if self.adaptive_diffaugment else ""
        policy = [
            f"dihedral (share {self.config.dihedral_p:g})" if p == "dihedral" and self.config.dihedral_p < 1 else p
            for p in self.diffaugment
        ]
        fade = self.class_fade
        if fade:
            classes += f" fading in over steps {fade[0]}-{fade[1]}"
            if fade[1] >= self.config.steps:  # a first stage of a longer run; resuming past END completes it
                classes += f" (not complete at --steps={self.config.steps}: the export is partly unconditional)"
        return (
            f"plan: {self.channels} channels, {classes}; diffaugment: {','.join(policy) or 'off'}{ada}; "
            f"{self.replicas} replicas on {self.workers} worker(s), {self.per_replica_batch} images each per "
            f"step; precision {self.precision}; BatchNorm {self.batchnorm}; CPU kernels {self.cpu_kernels}"
        )


def resolve(config: TrainConfig, source, replicas: int, workers: int) -> TrainPlan:
    """The plan for `config` on `source` (a data.TrainingData) with this many replicas and workers."""
    if config.batch_size % replicas:
        raise UserError(f"--batch_size={config.batch_size} must be divisible by the {replicas} replicas")
    per_replica = config.batch_size // replicas
    if config.mode_seeking_weight > 0 and per_replica % 2:
        raise UserError(
            f"--mode_seeking_weight pairs samples: --batch_size={config.batch_size} must give each of the "
            f"{replicas} replicas an even number of images"
        )
    if config.minibatch_std and per_replica % config.minibatch_std:
        raise UserError(
            f"--minibatch_std={config.minibatch_std} groups each replica's images: --batch_size={config.batch_size} "
            f"gives {per_replica} per replica ({replicas} replica{'s' if replicas > 1 else ''}), not a multiple "
            f"of {config.minibatch_std}"
        )
    policy = diffaugment_policy(config.diffaugment, source.num_examples)
    if config.minibatch_std_views == "shared" and not policy:
        raise UserError(
            "--minibatch_std_views=shared shares DiffAugment's draws within D's groups, but DiffAugment is off "
            f"here (--diffaugment={config.diffaugment})"
        )
    conditional = source.num_classes >= 2 if config.conditional is None else config.conditional
    if conditional and source.num_classes < 1:
        raise UserError(f"--conditional=true needs labels, but {config.dataset} has none")
    num_classes = source.num_classes if conditional else 0
    if config.class_loss_weight > 0 and not num_classes:
        raise UserError(f"--class_loss_weight={config.class_loss_weight} needs a conditional run (a labelled dataset)")
    if config.class_fade_in and not num_classes:
        raise UserError(f"--class_fade_in={config.class_fade_in} needs a conditional run (a labelled dataset)")
    if config.select_by == "class_consistency" and not num_classes:
        raise UserError("--select_by=class_consistency needs a conditional run (a labelled dataset); use kid")
    names = tuple(source.class_names) if len(source.class_names) == num_classes else ()
    return TrainPlan(
        config=config,
        dataset_images=source.num_examples,
        channels=source.channels,
        num_classes=num_classes,
        class_names=names or tuple(str(c) for c in range(num_classes)),
        diffaugment=policy,
        replicas=replicas,
        workers=workers,
        precision=PRECISION_POLICIES[config.mixed_precision],
        class_counts=class_counts(source, num_classes),
        batchnorm=batchnorm_kind(config),
        cpu_kernels=cpu_kernels(),
    )


def cpu_kernels() -> str:
    """TensorFlow's CPU kernels in this process: 'onednn' or 'eigen' (trainer/onednn.py)."""
    return "onednn" if onednn.active() else "eigen"


def batchnorm_kind(config: TrainConfig) -> str:
    """G's and D's BatchNorm: 'synchronized' (Keras' layer, statistics over all replicas), 'fused'
    (trainer/fused_batch_norm.py) or 'keras'."""
    if config.sync_batchnorm:
        return "synchronized"
    return "fused" if config.fused_batchnorm else "keras"


def class_counts(source, num_classes: int) -> tuple[int, ...]:
    """Images per class of an in-memory labelled source; () for streamed or unlabelled data."""
    if not num_classes or getattr(source, "labels", None) is None:
        return ()
    labels = np.asarray(source.labels).astype(np.int64)
    return tuple(int(n) for n in np.bincount(labels[(labels >= 0) & (labels < num_classes)], minlength=num_classes))


def diffaugment_policy(flag: str, num_images: Optional[int]) -> tuple[str, ...]:
    """--diffaugment: `auto` is the paper's three (color, translation, cutout) for datasets below
    DIFFAUGMENT_AUTO_BELOW images; dihedral is never automatic (it changes what a digit means)."""
    if flag.strip().lower() == "auto":
        small = num_images is not None and num_images < DIFFAUGMENT_AUTO_BELOW
        return diffaugment.AUTO if small else ()
    return diffaugment.parse(flag)
