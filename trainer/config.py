"""Job configuration: one frozen dataclass per command, its fields the command's flags, validated.

Every flag of `dcgan train|sample|augment|evaluate|launch` is a field here, with
its help text as the comment beside it (trainer/command_line.py turns flag text into
these objects and builds --help from the comments). About 830 lines: every flag
of five commands is defined once, here, beside its check; nothing here imports
TensorFlow, so validation runs in milliseconds.

    python -c "from trainer import config; print(config.TrainConfig(job_dir='x').describe())"
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
import re
import shlex
import textwrap
from typing import Any, Optional

from trainer.augment_params import AugmentParams
from trainer.errors import UserError
from trainer.image_codec import FORMATS as IMAGE_FORMATS  # how shard records hold images
from trainer.specs import DatasetSpec, GeneratorSpec, spec_of

RESOLUTIONS = (32, 64, 128, 256)
# A split of an in-memory dataset: NAME:train, NAME:test, optionally sliced (NAME:train[:10%]).
SPLIT_PATTERN = re.compile(r"^(?P<base>.+):(?P<split>train|test)(\[(?P<lo>[^:\]]*):(?P<hi>[^\]]*)\])?$")


def missing_dataset(flag: str, value: str) -> Optional[str]:
    """One line if a local dataset path names nothing, checked before TensorFlow starts (else None)."""
    match = SPLIT_PATTERN.match(value)
    base = match["base"] if match else value
    if not value or base == "digits" or "://" in base:
        return None
    if any(c in base for c in "*?["):
        return None if glob.glob(base) else f"--{flag}={value}: no files match {base}"
    if not os.path.exists(base):
        return (
            f"--{flag}={value}: no such file or folder (expected 'digits', a folder of images, a .npz file "
            "or TFRecord shards)"
        )
    return None


def missing_file(flag: str, value: str, what: str) -> Optional[str]:
    """One line if a local file flag names nothing (gs:// and '' are not checked here)."""
    if not value or "://" in value or os.path.isfile(value):
        return None
    return f"--{flag}={value}: no such file ({what})"


def missing_generator(flag: str, value: str) -> Optional[str]:
    """One line if a local --generator holds no exported generator, checked before TensorFlow starts.

    The places trainer/export.py's resolve_path looks: the .keras file, DIR/generator.keras, JOB_DIR/export/..."""
    from trainer import jobdir  # imports this module: only once both are loaded

    if not value or "://" in value:
        return None
    candidates = (value, os.path.join(value, jobdir.MODEL_FILE), os.path.join(value, *jobdir.EXPORT_MODEL.split("/")))
    if any(c.endswith(".keras") and os.path.isfile(c) for c in candidates):
        return None
    reason = "no such file or folder" if not os.path.exists(value) else "no exported generator there"
    return f"--{flag}={value}: {reason} (expected JOB_DIR/{jobdir.EXPORT_MODEL}; did the training job finish?)"


SHARD_MANIFEST = "manifest.json"  # trainer/shards.py's MANIFEST (that module imports TensorFlow)


def unfinished_output(value: str) -> Optional[str]:
    """One line if a local shard output has no manifest (`--verify` has nothing to check)."""
    if not value or "://" in value or os.path.isfile(os.path.join(value, SHARD_MANIFEST)):
        return None
    if not os.path.exists(value):
        return f"--output={value}: no such folder; nothing to verify"
    return f"--output={value}: no {SHARD_MANIFEST}; the output is not complete"


LOSSES = ("nonsaturating", "hinge", "lsgan")
PRECISIONS = ("off", "float16", "bfloat16")
DIFFAUGMENT_POLICIES = ("color", "translation", "cutout", "dihedral")
LECAM_DECAY = 0.99  # --lecam_weight: the decay of the moving averages of D's logits (the paper's)
DIFFAUGMENT_AUTO_BELOW = 20_000  # images: `--diffaugment=auto` turns it on for smaller datasets


def failed(checks) -> list[str]:
    """The messages of the (failed, message) pairs that failed."""
    return [message for bad, message in checks if bad]


class _Printable:
    """JSON, a full listing and a short summary for any config dataclass."""

    COMMAND = ""  # the `dcgan` command the config belongs to

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str):
        """Reads a config saved by `to_json`, ignoring fields this version lacks."""
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def listing(self) -> str:
        """Every field and its value, a line each (`--dry_run`, `--print_config`)."""
        rows = [f"  {k:<18} {v!r}" for k, v in dataclasses.asdict(self).items()]
        return "\n".join([f"{type(self).__name__}:"] + rows)

    def changed(self) -> dict[str, Any]:
        """The fields whose value differs from the default (after the preset, which is listed if not 'default')."""
        presets = {"train": TRAIN_PRESETS, "sample": SHARD_PRESETS, "augment": SHARD_PRESETS}.get(self.COMMAND, {})
        baseline = {f.name: f.default for f in dataclasses.fields(self)}
        baseline.update(presets.get(getattr(self, "preset", ""), {}))
        return {k: v for k, v in dataclasses.asdict(self).items() if v != baseline.get(k)}

    def full_config_at(self) -> str:
        """Where the whole config is kept ('' when only `--print_config` shows it)."""
        return ""

    def path_errors(self) -> list[str]:
        """One message per local file or folder that a flag names and that is not there (or not usable).

        The CLI checks these before TensorFlow starts; `validate` does not, so that a config can be built
        for files that appear later (a job dir still training, a test's placeholder)."""
        return []

    def describe(self) -> str:
        """One or two lines: the flags that differ from their defaults, and where the full config is.

        e.g. `dcgan train --job_dir=runs/a --preset=smoke (full config: runs/a/config.json)`"""
        shown = " ".join(f"--{k}={shlex.quote(str(v))}" for k, v in self.changed().items())
        where = self.full_config_at()
        tail = f"(full config: {where})" if where else "(every other flag at its default; --print_config lists all)"
        return "\n  ".join(
            textwrap.wrap(
                f"dcgan {self.COMMAND} {shown} {tail}", width=160, break_on_hyphens=False, break_long_words=False
            )
        )


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Printable):
    """Every knob of `dcgan train`. Field names are the CLI flag names."""

    COMMAND = "train"

    def full_config_at(self) -> str:
        return f"{self.job_dir.rstrip('/')}/config.json"

    def path_errors(self) -> list[str]:
        return list(filter(None, [missing_file("feature_model", self.feature_model, "a Keras model file")]))

    # Where everything goes (config.json, checkpoints/, tensorboard/, export/).
    job_dir: str = ""
    preset: str = "default"  # named flag set applied first: 'default' or 'smoke' (seconds, for tests)
    # Data: 'digits:train' (bundled digits, leaving digits:test out for evaluation), a folder of images,
    # a .npz file, or TFRecord shards.
    dataset: str = "digits:train"
    resolution: int = 32  # image side in pixels (images are resized and centre-cropped)
    channels: int = 0  # 0: the dataset's own (digits 1, folders 3, npz/shards as stored)
    folder_labels: str = "inferred"  # 'inferred' from class sub-folders, or 'none'
    on_corrupt: str = "skip"  # unreadable image files: 'skip' (counted, listed) or 'fail'
    # A gs:// shard output (with manifest.json): 'stream' reads it a few shards at a time, or 'copy'
    # mirrors it into the local cache first (as every other gs:// dataset is).
    dataset_staging: str = "stream"
    stream_buffer_mb: int = 512  # when streaming: the most MiB of downloaded shards on local disk at once
    conditional: Optional[bool] = None  # None: on when the dataset has labels
    # Model.
    latent_dim: int = 100  # size of the noise vector z
    width: float = 1.0  # multiplies the 64 base filters of G and D
    # Optimisation.
    batch_size: int = 64  # global, over all replicas and workers
    steps: int = 3000  # training steps in all (a resumed run continues to this step)
    g_lr: float = 2e-4  # generator learning rate (Adam)
    d_lr: float = 2e-4  # discriminator learning rate (Adam)
    beta1: float = 0.5  # Adam beta1 of both optimizers
    beta2: float = 0.999  # Adam beta2 of both optimizers
    loss: str = "nonsaturating"  # 'nonsaturating' (BCE), 'hinge' or 'lsgan' (least squares)
    r1_gamma: float = 0.0  # R1 penalty weight on real images, 0 = off
    # LeCam (Tseng et al. 2021, for limited data): D's logits are pulled towards moving averages of its
    # logits on the other kind of image (decay LECAM_DECAY); the weight, 0 = off (the paper: 0.3).
    lecam_weight: float = 0.0
    # How G uses the class: 'concat' (label embedding beside z) or 'cbn' (also class-conditional BatchNorm
    # in every block; the export is still plain Keras layers).
    g_conditioning: str = "concat"
    d_spectral_norm: bool = False  # D's conv kernels spectrally normalised (and no BatchNorm in D), as in SNGAN
    # AC-GAN-style class loss (conditional runs): D also classifies real images, and G is rewarded when
    # D's classifier recognises its samples' conditioning labels; the weight of both terms, 0 = off.
    class_loss_weight: float = 0.0
    # Mode seeking (MSGAN): G is penalised when two samples of one class with different z look alike;
    # the weight, 0 = off (needs an even batch per replica).
    mode_seeking_weight: float = 0.0
    # Data-efficient training: DiffAugment before D ('auto': all three below DIFFAUGMENT_AUTO_BELOW images).
    diffaugment: str = "auto"  # 'auto', 'none', or a subset of 'color,translation,cutout,dihedral'
    ada_target: float = 0.0  # > 0: adapt the augmentation probability p so E[sign D(real)] ~ target (ADA: 0.6)
    ada_kimg: float = 100.0  # thousands of images for p to move from 0 to 1 at most
    ema_decay: float = 0.999  # G_ema; 0 = plain copy of G
    seed: int = 0  # seeds noise, data order and initial weights: same seed, same run
    # Cadence (steps).
    log_every: int = 50  # steps between log lines and TensorBoard scalars
    sample_every: int = 500  # steps between sample grids (TensorBoard and JOB_DIR/samples/)
    checkpoint_every: int = 500  # steps between checkpoints
    keep_checkpoints: int = 3  # committed checkpoints kept; older ones are deleted
    # Seconds between TensorBoard log flushes and uploads (to a gs:// job dir and Vertex AI's
    # AIP_TENSORBOARD_LOG_DIR) while training runs; 0 = only at checkpoints and at the end.
    tensorboard_upload_secs: float = 60.0
    # 'A,B': write a TensorBoard profile (Profile tab) of steps A to B; '' = off.
    profile_steps: str = ""
    # Quality tracking: KID of G_ema vs the training images; the best step is exported to export/best/.
    kid_every: int = 500  # steps between KID measurements (the best G_ema goes to export/best/); 0 = off
    kid_samples: int = 1000  # generated and real images per KID measurement
    feature_model: str = ""  # a Keras model file for features; '' = a small classifier trained on the data
    # What picks export/best/: 'kid' (the lowest KID) or 'class_consistency' (conditional data: the highest
    # share of G_ema's samples that the classifier trained on the real images gives their conditioning label).
    select_by: str = "kid"
    # Hardware.
    mixed_precision: str = "off"  # off (float32), bfloat16 (CPUs with BF16, TPUs) or float16 (GPUs, loss-scaled)
    devices: int = 0  # 0: every visible GPU (or the CPU); N: split into N logical devices
    xla: bool = False  # compile the training step with XLA (jit_compile)
    sync_batchnorm: bool = False  # BatchNorm statistics over all replicas instead of each replica's own
    steps_per_call: int = 1  # training steps per tf.function call (fewer host round trips)
    # Behaviour.
    overwrite: bool = False  # a job dir holding a different job: discard its checkpoints, logs, samples and export
    dry_run: bool = False  # resolve and print the config, check the job dir, train nothing
    progress: bool = True  # progress on stderr: a bar on a terminal, a line per --log_every steps in a log
    deterministic: bool = False  # bit-reproducible kernels (tf.config.experimental.enable_op_determinism); slower

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
                    self.g_conditioning not in ("concat", "cbn"),
                    f"--g_conditioning={self.g_conditioning!r} must be 'concat' or 'cbn'",
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
            (not 0 <= self.ema_decay < 1, f"--ema_decay={self.ema_decay} must be in [0, 1)"),
            (self.seed < 0, f"--seed={self.seed} must be >= 0"),
        ]
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

    def profile_range(self) -> tuple[int, int]:
        """--profile_steps 'A,B' -> (A, B); (0, 0) when off."""
        if not self.profile_steps:
            return 0, 0
        parts = str(self.profile_steps).split(",")
        try:
            first, last = (int(p) for p in parts) if len(parts) == 2 else (-1, -1)
        except ValueError:
            first = last = -1
        if not 0 <= first < last:
            raise UserError(f"--profile_steps={self.profile_steps!r} must be 'A,B' with 0 <= A < B (steps to profile)")
        return first, last

    # Fields added after jobs were already being written: left out of the identity while at their default,
    # so a job dir written before they existed still resumes.
    ADDED_LATER = {"lecam_weight": 0.0, "select_by": "kid"}

    def identity(self) -> dict[str, Any]:
        """The fields that define the job (see RESUMABLE and ADDED_LATER)."""
        return {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if k not in self.RESUMABLE and not (k in self.ADDED_LATER and v == self.ADDED_LATER[k])
        }

    def identity_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class ShardJobConfig(_Printable):
    """Fields shared by `dcgan sample` and `dcgan augment` (both write TFRecord shards)."""

    output: str = ""  # where the shards go: a folder or gs://bucket/path
    preset: str = "default"  # named flag set applied first: 'default' or 'smoke'
    num_images: int = 10_000  # images in the whole output (over all tasks)
    images_per_shard: int = 4096  # records per TFRecord shard
    seed: int = 0  # seeds every image's noise and augmentation: same plan, same bytes
    batch_size: int = 256  # images generated (or augmented) per batch
    image_format: str = "png"  # how records hold images: png (lossless), jpeg (lossy, smaller) or raw uint8 (fastest)
    png_compression: int = 1  # 0..9: 1 is fast; 9 is smallest
    jpeg_quality: int = 95  # 1..100, for --image_format=jpeg
    task_index: int = -1  # -1: from JOB_COMPLETION_INDEX, CLUSTER_SPEC or TF_CONFIG, else 0
    num_tasks: int = 0  # 0: from the environment (DCGAN_NUM_TASKS, CLUSTER_SPEC, TF_CONFIG), else 1
    verify: bool = False  # re-check a finished output and exit
    progress: bool = True  # progress on stderr: a bar on a terminal, a line per --progress_secs in a log
    progress_secs: float = 5.0  # off a terminal (a log file): the least seconds between progress lines
    # Augmentation: Keras ImageDataGenerator's arguments, same names and units.
    rotation_range: float = 0.0  # degrees, as ImageDataGenerator's rotation_range
    width_shift_range: float = 0.0  # fraction of the width (ImageDataGenerator's width_shift_range)
    height_shift_range: float = 0.0  # fraction of the height
    shear_range: float = 0.0  # shear angle in degrees
    zoom_range: str = "0"  # 'z' -> [1-z, 1+z], or 'lo,hi'
    horizontal_flip: bool = False  # flip left-right at random
    vertical_flip: bool = False  # flip upside down at random
    fill_mode: str = "nearest"  # outside the image: 'nearest', 'constant', 'reflect' or 'wrap'
    cval: float = 0.0  # the fill value for fill_mode='constant' (0-255)
    brightness_range: str = ""  # '' (off) or 'lo,hi'
    channel_shift_range: float = 0.0  # random shift added to each channel (0-255 scale)
    AUTO_BATCH = False  # whether --batch_size=0 (sized from the image size) is allowed

    AUGMENTATION = tuple(f.name for f in dataclasses.fields(AugmentParams))  # the flags above, one definition

    def augmentation(self) -> dict[str, Any]:
        """The ImageDataGenerator-style arguments as AugmentParams.create takes them."""
        values = {k: getattr(self, k) for k in self.AUGMENTATION}
        values["zoom_range"] = _floats(self.zoom_range, "zoom_range")
        values["zoom_range"] = (
            values["zoom_range"][0] if len(values["zoom_range"]) == 1 else tuple(values["zoom_range"])
        )
        values["brightness_range"] = (
            tuple(_floats(self.brightness_range, "brightness_range")) if self.brightness_range else None
        )
        return values

    def validate(self) -> list[str]:
        errors = []
        if not self.output:
            errors.append("--output is required (a folder for the shards)")
        if not 0 <= self.progress_secs <= 3600:  # NaN fails too
            errors.append(f"--progress_secs={self.progress_secs} must be in [0, 3600]")
        if self.num_images < 1:
            errors.append(f"--num_images={self.num_images} must be >= 1")
        if self.images_per_shard < 1:
            errors.append(f"--images_per_shard={self.images_per_shard} must be >= 1")
        if self.batch_size < (0 if self.AUTO_BATCH else 1):
            errors.append(f"--batch_size={self.batch_size} must be >= {0 if self.AUTO_BATCH else 1}")
        if not 0 <= self.png_compression <= 9:
            errors.append(f"--png_compression={self.png_compression} must be in 0..9")
        if self.image_format not in IMAGE_FORMATS:
            errors.append(f"--image_format={self.image_format!r} must be png, jpeg or raw")
        if not 1 <= self.jpeg_quality <= 100:
            errors.append(f"--jpeg_quality={self.jpeg_quality} must be in 1..100")
        if self.seed < 0:
            errors.append(f"--seed={self.seed} must be >= 0")
        if self.num_tasks < 0:
            errors.append(f"--num_tasks={self.num_tasks} must be >= 0")
        if self.num_tasks and not -1 <= self.task_index < self.num_tasks:
            errors.append(f"--task_index={self.task_index} must be in [0, {self.num_tasks})")
        try:
            AugmentParams.create(**self.augmentation())
        except UserError as err:
            errors.append(str(err))
        return errors


@dataclasses.dataclass(frozen=True)
class SampleConfig(ShardJobConfig):
    """`dcgan sample`: synthetic images from a trained generator."""

    COMMAND = "sample"

    def path_errors(self) -> list[str]:
        if self.verify:
            return list(filter(None, [unfinished_output(self.output)]))
        errors = [missing_generator("generator", self.generator), missing_dataset("train_data", self.train_data)]
        if self.teacher.endswith(".keras"):
            errors.append(missing_file("teacher", self.teacher, "a Keras classifier"))
        return list(filter(None, errors))

    generator: str = ""  # a job dir, its export/ folder, or the generator.keras file
    # Which classes to draw: 'balanced' (equal counts), 'uniform' (random), 'fill' (each class's shortfall
    # from the generator's largest training class, in proportion: --num_images=the total shortfall evens the
    # training set out exactly), class weights 'w0,w1,...', or weights by class name or index,
    # e.g. 'cat:2,dog:1' (classes not listed are not drawn).
    labels: str = "balanced"
    truncation: float = 0.0  # psi > 0: resample latent components with |z| > psi
    copies_per_sample: int = 1  # augmented variants of each generated image
    # Drop samples closer (in pixels) to a training image than this quantile of real images'
    # distances to their nearest other training image; 0 = off. 0.01: real images would lose 1%.
    max_memorization: float = 0.0
    train_data: str = ""  # the generator's training images ('' = the dataset recorded in its export)
    # A teacher labels every sample with class probabilities (stored per record as image/class/probs
    # and image/teacher/confidence): '' none, 'auto' = an ensemble of small classifiers trained on
    # the generator's training images with classic augmentation (cached), or a Keras classifier file.
    teacher: str = ""
    teacher_members: int = 5  # classifiers in the 'auto' ensemble
    teacher_steps: int = 1000  # training steps of each
    # Drop samples whose teacher probability for their own conditioning label is below this (0 = keep all).
    min_confidence: float = 0.0
    # > 0: write one labelled grid of this many samples to --output (a .png file) and nothing else.
    preview: int = 0
    # The generator's compute precision: off (float32), bfloat16 (fast on CPUs with BF16, TPUs) or
    # float16 (GPUs). Pixels may differ from float32 by about one grey level; recorded in the plan.
    mixed_precision: str = "off"

    def generator_spec(self) -> GeneratorSpec:
        """What the library's generator source needs (trainer/specs.py)."""
        return spec_of(GeneratorSpec, self)

    def validate(self) -> list[str]:
        errors = super().validate()
        errors += precision_errors(self.mixed_precision)
        if self.teacher_members < 1 or self.teacher_steps < 1:
            errors.append("--teacher_members and --teacher_steps must be >= 1")
        if self.preview < 0 or self.preview > 1024:
            errors.append(f"--preview={self.preview} must be in 0..1024 (images in the grid)")
        if self.preview and not self.output.lower().endswith(".png"):
            errors.append(f"--preview writes one picture: --output={self.output!r} must end in .png")
        if not 0 <= self.min_confidence < 1:
            errors.append(f"--min_confidence={self.min_confidence} must be in [0, 1)")
        if self.min_confidence and not self.teacher:
            errors.append("--min_confidence needs a --teacher (e.g. --teacher=auto)")
        if self.teacher and self.teacher != "auto" and not self.teacher.endswith(".keras"):
            errors.append(f"--teacher={self.teacher!r} must be 'auto' or a .keras classifier file")
        if not 0 <= self.max_memorization < 1:
            errors.append(f"--max_memorization={self.max_memorization} must be in [0, 1) (a quantile; 0 = off)")
        if not self.generator and not self.verify:
            errors.append("--generator is required (a job dir or an exported generator.keras)")
        if self.truncation < 0:
            errors.append(f"--truncation={self.truncation} must be >= 0 (0 = off)")
        if self.copies_per_sample < 1:
            errors.append(f"--copies_per_sample={self.copies_per_sample} must be >= 1")
        if self.labels not in ("balanced", "uniform", "fill"):
            try:
                label_weights(self.labels)
            except UserError as err:
                errors.append(str(err))
        return errors


@dataclasses.dataclass(frozen=True)
class AugmentConfig(ShardJobConfig):
    """`dcgan augment`: classic augmentation of the real data, same shard format."""

    COMMAND = "augment"

    AUTO_BATCH = True

    # The real images: 'digits:train', a folder, a .npz file or shards (':SPLIT' picks a part).
    dataset: str = "digits:train"
    resolution: int = 32  # image side in pixels of the written images
    channels: int = 0  # 0: the dataset's own; 1 or 3 converts
    folder_labels: str = "inferred"  # 'inferred' from class sub-folders, or 'none'
    on_corrupt: str = "skip"  # unreadable image files: 'skip' (counted) or 'fail'
    batch_size: int = 0  # images per batch; 0 = about 4M pixels a batch (1024 at 32-64 px, 256 at 128 px, 64 at 256 px)
    # ImageDataGenerator-style defaults that suit most photos and digits.
    rotation_range: float = 15.0  # degrees, as ImageDataGenerator's rotation_range
    width_shift_range: float = 0.1
    height_shift_range: float = 0.1
    zoom_range: str = "0.1"

    def dataset_spec(self) -> DatasetSpec:
        """What the library's dataset source needs (trainer/specs.py)."""
        return spec_of(DatasetSpec, self)

    def validate(self) -> list[str]:
        errors = super().validate()
        errors += filter(None, [missing_dataset("dataset", self.dataset)])
        if self.resolution not in RESOLUTIONS:
            errors.append(f"--resolution={self.resolution} is not supported; choose one of {list(RESOLUTIONS)}")
        if self.channels not in (0, 1, 3):
            errors.append(f"--channels={self.channels} must be 1, 3 or 0 (the dataset's own)")
        return errors


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


def downstream_errors(config) -> list[str]:
    """--policies, --mixes, --shares and --validation_fraction of `dcgan evaluate`, checked by name."""
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
    return errors


@dataclasses.dataclass(frozen=True)
class EvaluateConfig(_Printable):
    """`dcgan evaluate`: how good and how useful are the synthetic images?"""

    COMMAND = "evaluate"

    def full_config_at(self) -> str:
        return f'{self.report}, under "config"'

    def path_errors(self) -> list[str]:
        errors = []
        errors += filter(None, [missing_file("feature_model", self.feature_model, "a Keras model file")])
        synthetic = self.synthetic
        if (
            synthetic
            and "://" not in synthetic
            and not any(c in synthetic for c in "*?[")
            and not os.path.exists(synthetic)
        ):
            errors.append(f"--synthetic={self.synthetic}: no such file or folder (shards, or a job dir to sample from)")
        return errors

    real: str = ""  # held-out real images: reference for FID/KID/precision/recall, test set for downstream
    synthetic: str = ""  # shards (a folder or gs://), or a job dir / export to sample --num_samples from
    train_data: str = ""  # the generator's training images ('' = the dataset recorded in its export)
    report: str = "report.json"  # also writes REPORT-closest-pixels.png, -closest-features.png, -samples.png
    num_samples: int = 2000  # synthetic images measured (sampled from a job dir, or read from shards)
    feature_model: str = ""  # a Keras model file whose output is the feature vector ('' = small classifier)
    feature_data: str = ""  # images the default feature classifier learns from ('' = --real)
    feature_steps: int = 1500  # training steps of the default feature classifier
    resolution: int = 0  # 0 = the synthetic images'; otherwise it must match them
    downstream: str = "auto"  # auto (when labels allow), true, false
    downstream_steps: int = 1000  # training steps of each downstream classifier (the judge)
    seeds: int = 5  # paired seeds per downstream recipe on --real (mean, 95% interval of differences)
    tune_seeds: int = 1  # seeds per candidate when tuning the baseline and the share on validation
    validation_fraction: float = 0.2  # of each class of --train_data, held out for tuning
    # Baseline augmentation candidates, tuned on validation (names: trainer/downstream.py POLICIES).
    policies: str = "none,classic,classic_full,crop_flip,trivial_augment,rand_augment,dihedral_trivial"
    mixes: str = "mixup,cutmix"  # tried on top of the best policy ('' = none)
    shares: str = "0.25,0.5"  # synthetic share of each batch: candidates tuned on validation
    kid_subsets: int = 100  # subsets KID is averaged over
    # A sample closer to a training image than this quantile of real-to-real distances counts as memorized.
    memorization_quantile: float = 0.01
    seed: int = 0  # seeds sampling and the classifiers
    # --real sharing images with the generator's training images is refused; true reports
    # anyway, with every affected number marked.
    allow_overlap: bool = False

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


LAUNCH_TARGETS = ("vm", "vertex", "k8s")


@dataclasses.dataclass(frozen=True)
class LaunchConfig(_Printable):
    """`dcgan launch TARGET`: where and how to run a `train` or `sample` job.

    Flags that are not fields here are the job's own flags (validated as
    `dcgan train`/`dcgan sample` would) and are passed through to it.
    """

    COMMAND = "launch"

    target: str = ""  # vm, vertex or k8s (the word after `dcgan launch`)
    job: str = "train"  # train or sample
    image: str = ""  # the container image (built from this repo's Dockerfile)
    name: str = ""  # job / VM name; '' derives dcgan-JOB-<hash of the job flags>
    gpus: int = 1  # GPUs per machine (per worker); 0 = CPU only
    accelerator: str = "NVIDIA_L4"  # Vertex AI accelerator type (GKE/GCE names derived); an L4 fits a 32-px DCGAN
    machine_type: str = ""  # '' picks the machine that carries `gpus` accelerators
    workers: int = 1  # training machines (MultiWorkerMirroredStrategy when > 1)
    tasks: int = 1  # sampler tasks (each writes strided shards)
    parallelism: int = 0  # k8s: sampler pods running at once; 0 = tasks
    spot: bool = False  # spot / preemptible capacity; jobs resume by themselves
    max_restarts: int = 6  # k8s: pod retries per index; vm: docker restarts
    project: str = ""  # gcloud project ('' = gcloud's default)
    region: str = "us-central1"  # Vertex AI
    zone: str = "us-central1-a"  # Compute Engine VM
    existing_vm: str = ""  # vm: run on this existing VM (gcloud compute ssh) instead of creating one
    vm_image_family: str = "common-cu128-ubuntu-2204-nvidia-570"  # Deep Learning VM image with Docker + NVIDIA driver
    namespace: str = "default"  # k8s: the namespace the Job and its ServiceAccount live in
    cpu: str = "4"  # k8s: CPU request per pod, a Kubernetes quantity ('4', '3500m')
    memory: str = "16Gi"  # k8s: memory request and limit per pod ('16Gi', '64G')
    # k8s: size limit of the pod's scratch volume (an emptyDir at /cache, DCGAN_CACHE) for staged datasets,
    # streamed shards, teachers and feature models; '' = no limit.
    cache_size: str = "50Gi"
    service_account: str = ""  # k8s: a Kubernetes SA bound to a GCS-capable Google SA; vertex/vm: a Google SA email
    vertex_tensorboard: str = ""  # vertex: projects/P/locations/L/tensorboards/ID (needs --service_account)
    dry_run: bool = False  # print what would be submitted, submit nothing

    def validate(self) -> list[str]:
        errors = []
        if self.vertex_tensorboard and not self.service_account:
            errors.append(
                "--vertex_tensorboard needs --service_account (Vertex AI requires one to write to TensorBoard)"
            )
        if self.target not in LAUNCH_TARGETS:
            errors.append(f"launch target {self.target!r} is unknown; use `dcgan launch {'|'.join(LAUNCH_TARGETS)}`")
        if self.job not in ("train", "sample"):
            errors.append(f"--job={self.job!r} must be 'train' or 'sample'")
        if not self.image:
            errors.append(
                "--image is required (e.g. REGION-docker.pkg.dev/PROJECT/repo/dcgan:TAG, built from the Dockerfile)"
            )
        if self.gpus < 0:
            errors.append(f"--gpus={self.gpus} must be >= 0")
        if self.gpus == 0 and self.accelerator:
            errors.append(
                f"--gpus=0 with --accelerator={self.accelerator}: pass --accelerator='' for CPU machines, "
                "or --gpus >= 1"
            )
        if self.gpus > 0 and not self.accelerator:
            errors.append(f"--gpus={self.gpus} needs an --accelerator type")
        for name in ("workers", "tasks"):
            if getattr(self, name) < 1:
                errors.append(f"--{name}={getattr(self, name)} must be >= 1")
        if self.parallelism < 0:
            errors.append(f"--parallelism={self.parallelism} must be >= 0")
        if self.max_restarts < 0:
            errors.append(f"--max_restarts={self.max_restarts} must be >= 0")
        if self.job == "sample" and self.workers != 1:
            errors.append("--workers applies to --job=train; a sampler is split with --tasks")
        if self.job == "train" and self.tasks != 1:
            errors.append("--tasks applies to --job=sample; training is spread with --workers and --gpus")
        if self.target == "vm" and (self.workers != 1 or self.tasks != 1):
            errors.append("a vm launch is one machine: use vertex or k8s for --workers/--tasks > 1")
        for flag, value, pattern in (
            ("cpu", self.cpu, r"\d+(\.\d+)?m?"),
            ("memory", self.memory, _BYTES),
            ("cache_size", self.cache_size or "1", _BYTES),
        ):
            if not re.fullmatch(pattern, value) or float(re.match(r"[\d.]+", value)[0]) == 0:
                errors.append(f"--{flag}={value[:40]!r} must be a Kubernetes quantity above 0, e.g. {_EXAMPLES[flag]}")
        if self.name and not _dns_label(self.name):
            errors.append(
                f"--name={self.name!r} must be lowercase letters, digits and '-', start with a letter, "
                "at most 40 characters"
            )
        return errors


_BYTES = r"\d+(\.\d+)?([KMGTPE]i?)?"  # a Kubernetes byte quantity: 16Gi, 64G, 500Mi
_EXAMPLES = {"cpu": "'4' or '3500m'", "memory": "'16Gi'", "cache_size": "'50Gi' ('' = no limit)"}


def precision_errors(mixed_precision: str) -> list[str]:
    """--mixed_precision's check, shared by `dcgan train` and `dcgan sample`."""
    if mixed_precision in PRECISIONS:
        return []
    return [f"--mixed_precision={mixed_precision!r} is unknown; choose one of {list(PRECISIONS)}"]


def _dns_label(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", name))


def label_weights(text: str) -> list[tuple[Optional[str], float]]:
    """--labels class weights: 'w0,w1,...' (one per class, in label order) -> [(None, w), ...], or
    'cat:2,dog:1' / '3:2,7:1' (a class name or index each; classes not listed get 0) -> [(key, w), ...]."""
    usage = (
        f"--labels={text!r} must be 'balanced', 'uniform', class weights 'w0,w1,...' or "
        "'NAME:WEIGHT,...' (a class name or index each), with finite non-negative weights, not all 0"
    )
    entries = [e.strip() for e in str(text).split(",")]
    if not entries or any(not e for e in entries):
        raise UserError(usage)
    named = [":" in e for e in entries]
    if any(named) and not all(named):
        raise UserError(usage)
    parsed = []
    for entry in entries:
        key, _, weight = entry.rpartition(":") if ":" in entry else (None, None, entry)
        try:
            value = float(weight)
        except ValueError:
            raise UserError(usage) from None
        if not math.isfinite(value) or value < 0 or (key is not None and not key.strip()):
            raise UserError(usage)
        parsed.append((key.strip() if key is not None else None, value))
    keys = [k for k, _ in parsed if k is not None]
    if len(set(keys)) != len(keys):
        raise UserError(f"--labels={text!r} names a class twice")
    largest = max(w for _, w in parsed)
    if largest <= 0:
        raise UserError(usage)
    return [(k, w / largest) for k, w in parsed]  # relative weights; 1e308s no longer overflow their sum


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in str(text).strip("[]() ").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{name}={text!r} must be a number or a comma-separated pair") from None


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
}


SHARD_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(num_images=40, images_per_shard=16, batch_size=16),
    "default": dict(),
}


def load_json(cls, text: str):
    """Reads a config saved by `to_json`, ignoring fields this version lacks (`cls.from_json`)."""
    return cls.from_json(text)


_missing = [
    name for name in ShardJobConfig.AUGMENTATION if name not in {f.name for f in dataclasses.fields(ShardJobConfig)}
]
if _missing:  # an augmentation parameter without its flag would be silently unusable
    raise TypeError(f"ShardJobConfig lacks the augmentation flags {_missing} (see trainer/augment_params.py)")
