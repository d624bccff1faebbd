"""The flags of `dcgan sample` and `dcgan augment`: the shared output and augmentation flags
(ShardJobConfig), the generator's (SampleConfig) and the real dataset's (AugmentConfig).

    python -c "from trainer.config import SampleConfig; print(SampleConfig(generator='g', output='o').describe())"
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from trainer.augment_params import AugmentParams
from trainer.config.common import (
    RESOLUTIONS,
    _floats,
    _Printable,
    failed,
    flag,
    missing_dataset,
    missing_file,
    missing_generator,
    precision_errors,
    unfinished_output,
)
from trainer.errors import UserError
from trainer.image_codec import FORMATS as IMAGE_FORMATS  # how shard records hold images
from trainer.image_codec import JPEG_QUALITY, PNG_COMPRESSION
from trainer.specs import DatasetSpec, GeneratorSpec, spec_of

SHARD_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(num_images=40, images_per_shard=16, batch_size=16),
    "default": dict(),
}


@dataclasses.dataclass(frozen=True)
class ShardJobConfig(_Printable):
    """Fields shared by `dcgan sample` and `dcgan augment` (both write TFRecord shards)."""

    PRESETS = SHARD_PRESETS

    output: str = flag("", "where the shards go: a folder or gs://bucket/path")
    preset: str = flag("default", "named flag set applied first: 'default' or 'smoke'")
    num_images: int = flag(10_000, "images in the whole output (over all tasks)")
    images_per_shard: int = flag(4096, "records per TFRecord shard")
    seed: int = flag(0, "seeds every image's noise and augmentation: same plan, same bytes")
    batch_size: int = flag(256, "images generated (or augmented) per batch")
    image_format: str = flag(
        "png",
        "how records hold images: png (lossless), jpeg (lossy, smaller) or raw uint8 (fastest)",
    )
    png_compression: int = flag(PNG_COMPRESSION, "0..9: 1 is fast; 9 is smallest")
    jpeg_quality: int = flag(JPEG_QUALITY, "1..100, for --image_format=jpeg")
    task_index: int = flag(-1, "-1: from JOB_COMPLETION_INDEX, CLUSTER_SPEC or TF_CONFIG, else 0")
    num_tasks: int = flag(0, "0: from the environment (DCGAN_NUM_TASKS, CLUSTER_SPEC, TF_CONFIG), else 1")
    verify: bool = flag(False, "re-check a finished output and exit (with tasks: each checks its block of shards)")
    progress: bool = flag(True, "progress on stderr: a bar on a terminal, a line per --progress_secs in a log")
    progress_secs: float = flag(5.0, "off a terminal (a log file): the least seconds between progress lines")
    # Augmentation: Keras ImageDataGenerator's arguments, same names and units.
    rotation_range: float = flag(0.0, "degrees, as ImageDataGenerator's rotation_range")
    width_shift_range: float = flag(0.0, "fraction of the width (ImageDataGenerator's width_shift_range)")
    height_shift_range: float = flag(0.0, "fraction of the height")
    shear_range: float = flag(0.0, "shear angle in degrees")
    zoom_range: str = flag("0", "'z' -> [1-z, 1+z], or 'lo,hi'")
    horizontal_flip: bool = flag(False, "flip left-right at random")
    vertical_flip: bool = flag(False, "flip upside down at random")
    fill_mode: str = flag("nearest", "outside the image: 'nearest', 'constant', 'reflect' or 'wrap'")
    cval: float = flag(0.0, "the fill value for fill_mode='constant' (0-255)")
    brightness_range: str = flag("", "'' (off) or 'lo,hi'")
    channel_shift_range: float = flag(0.0, "random shift added to each channel (0-255 scale)")
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
        n, index = self.num_tasks, self.task_index
        checks = [
            (not self.output, "--output is required (a folder for the shards)"),
            (not 0 <= self.progress_secs <= 3600, f"--progress_secs={self.progress_secs} must be in [0, 3600]"),
            (self.num_images < 1, f"--num_images={self.num_images} must be >= 1"),
            (self.images_per_shard < 1, f"--images_per_shard={self.images_per_shard} must be >= 1"),
            (
                self.batch_size < (0 if self.AUTO_BATCH else 1),
                f"--batch_size={self.batch_size} must be >= {0 if self.AUTO_BATCH else 1}",
            ),
            (not 0 <= self.png_compression <= 9, f"--png_compression={self.png_compression} must be in 0..9"),
            (
                self.image_format not in IMAGE_FORMATS,
                f"--image_format={self.image_format!r} must be png, jpeg or raw",
            ),
            (not 1 <= self.jpeg_quality <= 100, f"--jpeg_quality={self.jpeg_quality} must be in 1..100"),
            (self.seed < 0, f"--seed={self.seed} must be >= 0"),
            (n < 0, f"--num_tasks={n} must be >= 0"),
            (bool(n) and not -1 <= index < n, f"--task_index={index} must be in [0, {n})"),
            (index > 0 and not n, f"--task_index={index} needs --num_tasks (how many tasks share the job)"),
        ]
        return failed(checks) + self._augment_params()[1]  # NaN fails the range checks too

    def _augment_params(self) -> tuple[Optional[AugmentParams], list[str]]:
        """The augmentation the flags ask for, or None and why not."""
        try:
            return AugmentParams.create(**self.augmentation()), []
        except UserError as err:
            return None, [str(err)]


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

    generator: str = flag("", "a job dir, its export/ folder, or the generator.keras file")
    labels: str = flag(
        "balanced",
        "Which classes to draw: 'balanced' (equal counts), 'uniform' (random), 'fill' (each class's "
        "shortfall from the generator's largest training class, in proportion: --num_images=the total "
        "shortfall evens the training set out exactly), class weights 'w0,w1,...', or weights by class "
        "name or index, e.g. 'cat:2,dog:1' (classes not listed are not drawn).",
    )
    truncation: float = flag(0.0, "psi > 0: resample latent components with |z| > psi")
    copies_per_sample: int = flag(1, "augmented variants of each generated image")
    max_memorization: float = flag(
        0.0,
        "Drop samples closer (in pixels) to a training image than this quantile of real images' distances "
        "to their nearest other training image; 0 = off. 0.01: real images would lose 1%.",
    )
    train_data: str = flag("", "the generator's training images ('' = the dataset recorded in its export)")
    teacher: str = flag(
        "",
        "A teacher labels every sample with class probabilities (stored per record as image/class/probs "
        "and image/teacher/confidence): '' none, 'auto' = an ensemble of small classifiers trained on the "
        "generator's training images with classic augmentation (cached), or a Keras classifier file.",
    )
    teacher_members: int = flag(5, "classifiers in the 'auto' ensemble")
    teacher_steps: int = flag(1000, "training steps of each")
    min_confidence: float = flag(
        0.0,
        "Drop samples whose teacher probability for their own conditioning label is below this (0 = keep all).",
    )
    preview: int = flag(
        0,
        "> 0: write one labelled grid of this many samples to --output (a .png file) and nothing else.",
    )
    mixed_precision: str = flag(
        "off",
        "The generator's compute precision: off (float32), bfloat16 (fast on CPUs with BF16, TPUs) or "
        "float16 (GPUs). Pixels may differ from float32 by about one grey level; recorded in the plan.",
    )

    def generator_spec(self) -> GeneratorSpec:
        """What the library's generator source needs (trainer/specs.py)."""
        return spec_of(GeneratorSpec, self)

    def validate(self) -> list[str]:
        copies, teacher, params = self.copies_per_sample, self.teacher, self._augment_params()[0]
        checks = [
            (
                self.teacher_members < 1 or self.teacher_steps < 1,
                "--teacher_members and --teacher_steps must be >= 1",
            ),
            (not 0 <= self.preview <= 1024, f"--preview={self.preview} must be in 0..1024 (images in the grid)"),
            (
                bool(self.preview) and not self.output.lower().endswith(".png"),
                f"--preview writes one picture: --output={self.output!r} must end in .png",
            ),
            (not 0 <= self.min_confidence < 1, f"--min_confidence={self.min_confidence} must be in [0, 1)"),
            (bool(self.min_confidence) and not teacher, "--min_confidence needs a --teacher (e.g. --teacher=auto)"),
            (
                bool(teacher) and teacher != "auto" and not teacher.endswith(".keras"),
                f"--teacher={teacher!r} must be 'auto' or a .keras classifier file",
            ),
            (
                not 0 <= self.max_memorization < 1,
                f"--max_memorization={self.max_memorization} must be in [0, 1) (a quantile; 0 = off)",
            ),
            (
                not self.generator and not self.verify,
                "--generator is required (a job dir or an exported generator.keras)",
            ),
            (self.truncation < 0, f"--truncation={self.truncation} must be >= 0 (0 = off)"),
            (copies < 1, f"--copies_per_sample={copies} must be >= 1"),
            (
                copies > 1 and not self.preview and params is not None and params.is_identity,
                "--copies_per_sample > 1 needs augmentation flags (the copies would be identical)",
            ),
        ]
        return super().validate() + precision_errors(self.mixed_precision) + failed(checks) + self._label_errors()

    def _label_errors(self) -> list[str]:
        if self.labels in ("balanced", "uniform", "fill"):
            return []
        try:
            label_weights(self.labels)
        except UserError as err:
            return [str(err)]
        return []


@dataclasses.dataclass(frozen=True)
class AugmentConfig(ShardJobConfig):
    """`dcgan augment`: classic augmentation of the real data, same shard format."""

    COMMAND = "augment"

    AUTO_BATCH = True

    dataset: str = flag(
        "digits:train",
        "The real images: 'digits:train', a folder, a .npz file or shards (':SPLIT' picks a part).",
    )
    resolution: int = flag(32, "image side in pixels of the written images")
    channels: int = flag(0, "0: the dataset's own; 1 or 3 converts")
    folder_labels: str = flag("inferred", "'inferred' from class sub-folders, or 'none'")
    on_corrupt: str = flag("skip", "unreadable image files: 'skip' (counted) or 'fail'")
    batch_size: int = flag(
        0,
        "images per batch; 0 = about 4M pixels a batch (1024 at 32-64 px, 256 at 128 px, 64 at 256 px)",
    )
    # ImageDataGenerator-style defaults that suit most photos and digits.
    rotation_range: float = flag(15.0, "degrees, as ImageDataGenerator's rotation_range")
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


def label_weights(text: str) -> list[tuple[Optional[str], float]]:
    """--labels class weights: 'w0,w1,...' (one per class, in label order) -> [(None, w), ...], or
    'cat:2,dog:1' / '3:2,7:1' (a class name or index each; classes not listed get 0) -> [(key, w), ...]."""
    usage = (
        f"--labels={text!r} must be 'balanced', 'uniform', 'fill', class weights 'w0,w1,...' or "
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


_missing = [
    name for name in ShardJobConfig.AUGMENTATION if name not in {f.name for f in dataclasses.fields(ShardJobConfig)}
]


if _missing:  # an augmentation parameter without its flag would be silently unusable
    raise TypeError(f"ShardJobConfig lacks the augmentation flags {_missing} (see trainer/augment_params.py)")
