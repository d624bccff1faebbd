"""The plan of a `dcgan sample` or `dcgan augment` output: everything that determines its bytes.

    python -c "from trainer.shard_plan import ShardPlan; help(ShardPlan)"

The first task writes it as OUTPUT/plan.json; every later task compares its own
plan with that file and refuses to mix two jobs in one output; manifest.json
carries a copy. `ShardPlan.to_dict` gives the JSON object (the same keys every
version has written: a PNG plan has no `image_format`, a plan without class
names no `class_names`), and `ShardPlan.from_dict` is the one reader, for plans
written by any version and for manifests from outside (a malformed one raises
ValueError). The entries that only one kind of source has (the generator's
sha256, the teacher, the memorization filter, ...) stay as the source wrote
them, in `identity`. No TensorFlow (the format constants are image_codec's).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trainer.image_codec import FORMATS, JPEG_QUALITY, PNG_COMPRESSION

FORMAT = "dcgan-factory shards"
_INTS = ("num_images", "num_shards", "images_per_shard", "seed", "batch_size", "resolution", "channels", "num_classes")
_KNOWN = {"format", "source", "augmentation", "image_format", "png_compression", "jpeg_quality", "class_names", *_INTS}


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    source: str  # 'synthetic' (dcgan sample) or 'augmented' (dcgan augment)
    num_images: int  # candidates in all (filters may drop some)
    num_shards: int
    images_per_shard: int
    seed: int
    batch_size: int  # images generated per call; part of the plan because XLA's results may depend on it
    resolution: int
    channels: int
    num_classes: int  # 0: no labels
    augmentation: dict  # AugmentParams.to_dict()
    image_format: str = "png"  # png, jpeg or raw (image_codec.FORMATS)
    png_compression: int = PNG_COMPRESSION
    jpeg_quality: int = JPEG_QUALITY
    class_names: tuple[str, ...] = ()
    identity: dict = dataclasses.field(default_factory=dict)  # the source's own entries (sources.ImageSource)

    # -- the work
    def shard_sizes(self) -> list[int]:
        """Candidate images per shard (all of them are written unless a filter drops some)."""
        n, per = self.num_images, self.images_per_shard
        return [min(per, n - i * per) for i in range(self.num_shards)]

    @property
    def min_confidence(self) -> float:
        """The teacher's confidence below which a candidate is dropped (0: none dropped)."""
        teacher = self.identity.get("teacher")
        return float(teacher.get("min_confidence", 0.0)) if isinstance(teacher, dict) else 0.0

    @property
    def soft_labels(self) -> bool:
        """Records carry the teacher's class probabilities."""
        return "teacher" in self.identity

    def filters(self) -> list[str]:
        """The filters that may drop candidates (so a shard may hold fewer records than planned)."""
        on = {"memorization": "memorization" in self.identity, "teacher_confidence": self.min_confidence > 0}
        return [name for name, active in on.items() if active]

    def is_whole(self, found: int, candidates: int) -> bool:
        """A published shard's record count is right: exactly its candidates, or with a filter any whole shard."""
        return found == candidates if not self.filters() else 0 <= found <= candidates

    def encoder_args(self) -> dict[str, int]:
        """Keyword arguments of image_codec.encode for this plan's format."""
        return {"png_compression": self.png_compression, "jpeg_quality": self.jpeg_quality}

    @property
    def generator_train_data(self) -> str:
        """The dataset the generator was trained on, as recorded ('' for augmented outputs or older plans)."""
        value = self.identity.get("generator_train_data", "")
        return value if isinstance(value, str) else ""

    # -- plan.json
    def to_dict(self) -> dict[str, Any]:
        if self.image_format == "png":
            encoding = {"png_compression": self.png_compression}
        elif self.image_format == "jpeg":
            encoding = {"image_format": "jpeg", "jpeg_quality": self.jpeg_quality}
        else:
            encoding = {"image_format": self.image_format}
        return {
            "format": FORMAT,
            "source": self.source,
            **{key: getattr(self, key) for key in _INTS},
            "augmentation": dict(self.augmentation),
            **encoding,
            **self.identity,
            **({"class_names": list(self.class_names)} if self.class_names else {}),
        }

    @classmethod
    def from_dict(cls, value: Any) -> "ShardPlan":
        """The plan in a plan.json or manifest.json object, of any version; ValueError if it is not one."""
        if not isinstance(value, dict):
            raise ValueError("a shard plan is a JSON object")
        if value.get("format", FORMAT) != FORMAT:
            raise ValueError(f"not a dcgan-factory shard plan (format {str(value.get('format'))[:40]!r})")
        for key in _INTS:
            number = value.get(key)
            if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**53:
                raise ValueError(f"plan entry {key!r} is not a count: {str(number)[:40]!r}")
        image_format = value.get("image_format", "png")
        names = value.get("class_names", [])
        checks = {
            "source": isinstance(value.get("source"), str),
            "augmentation": isinstance(value.get("augmentation", {}), dict),
            "image_format": image_format in FORMATS,
            "png_compression": value.get("png_compression", PNG_COMPRESSION) in range(10),
            "jpeg_quality": value.get("jpeg_quality", JPEG_QUALITY) in range(1, 101),
            "class_names": isinstance(names, list) and all(isinstance(n, str) for n in names),
        }
        bad = [key for key, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"plan entry {bad[0]!r} is malformed")
        return cls(
            source=value["source"],
            **{key: value[key] for key in _INTS},
            augmentation=dict(value.get("augmentation", {})),
            image_format=image_format,
            png_compression=int(value.get("png_compression", PNG_COMPRESSION)),
            jpeg_quality=int(value.get("jpeg_quality", JPEG_QUALITY)),
            class_names=tuple(names),
            identity={k: v for k, v in value.items() if k not in _KNOWN},
        )
