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

plan.json in an output, for every task of a job: `read_plan` (None if absent;
a file this tool did not write is a UserError), `check_conflict` (the one-line
error naming what differs; `partial` compares only the entries given, e.g. the
ones the flags alone decide, `ShardPlan.flag_entries`, before the source
loads), `claim` (create it, never replacing, or check the one there).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

from trainer import storage
from trainer.errors import UserError
from trainer.image_codec import FORMATS, JPEG_QUALITY, PNG_COMPRESSION

FORMAT = "dcgan-factory shards"
PLAN = "plan.json"
MANIFEST = "manifest.json"
# plan.json's entries that the flags alone decide (batch_size too when --batch_size is given): a
# resumed run compares these before its source loads.
FLAG_ENTRIES = (
    "format",
    "source",
    "num_images",
    "num_shards",
    "images_per_shard",
    "seed",
    "augmentation",
    "image_format",
    "png_compression",
    "jpeg_quality",
)
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
    def flag_entries(self, batch_size_given: bool) -> dict[str, Any]:
        """The FLAG_ENTRIES of plan.json as it writes them (None: an entry it omits), for a partial
        `check_conflict`; batch_size too when the user gave it."""
        written = self.to_dict()
        keys = FLAG_ENTRIES + (("batch_size",) if batch_size_given else ())
        return json.loads(json.dumps({key: written.get(key) for key in keys}, sort_keys=True))

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


def read_plan(store: storage.Store) -> Optional[dict]:
    """The output's plan.json (None if there is none yet); a file this tool did not write is an error."""
    if not store.exists(PLAN):
        return None
    try:
        existing = json.loads(store.get_text(PLAN))
    except (ValueError, RecursionError):
        existing = None
    if not isinstance(existing, dict):
        raise UserError(f"--output={store.root}: its {PLAN} is not a plan this tool wrote; use another --output")
    return existing


def check_conflict(root: str, existing: dict, wanted: dict, partial: bool = False) -> None:
    """Raises the one-line error naming what differs between the output's plan and this run's (`partial`:
    `wanted` holds only some entries, and only those are compared)."""
    if "class_names" not in existing:  # planned before class names were recorded: they change no pixel
        wanted = {k: v for k, v in wanted.items() if k != "class_names"}
    keys = set(wanted) if partial else set(existing) | set(wanted)
    diff = [f"{k} {existing.get(k)!r} -> {wanted.get(k)!r}" for k in sorted(keys) if existing.get(k) != wanted.get(k)]
    if diff:
        raise UserError(
            f"--output={root} was planned differently ({'; '.join(diff)[:300]}); "
            "use another --output, or the same flags to resume it"
        )


def claim(store: storage.Store, plan: ShardPlan, existing: Optional[dict]) -> None:
    """Creates plan.json, or checks the one there is this plan (`existing`: plan.json as `read_plan`
    read it at the start, None if there was none; re-read only if another task created it meanwhile)."""
    blob = (json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n").encode()
    if existing is None:
        strays = [k for k in store.list() if ".tfrecord-" in k or k == MANIFEST]
        if strays:
            raise UserError(f"--output={store.root} holds shards but no {PLAN} ({strays[0]}); use another --output")
        try:
            store.put_new(PLAN, blob)
            return
        except storage.AlreadyExists:
            existing = read_plan(store)
    check_conflict(store.root, existing, json.loads(blob))
