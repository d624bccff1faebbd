"""The shard format: sharded TFRecord files of `tf.train.Example`, and a reader.

Files (TFDS-style names, N fixed by the plan):
    OUTPUT/plan.json                                  what will be written (written first)
    OUTPUT/synthetic-train.tfrecord-00000-of-00010    (augmented-train... for `dcgan augment`)
    OUTPUT/dataset_info.json, features.json, *.labels.txt   TFDS metadata (tfds.builder_from_directory)
    OUTPUT/manifest.json                              the commit marker, written last

Each record (slim/TFDS keys):
    image/encoded       the image (PNG by default)   image/format  b"png", b"jpeg" or b"raw" (uint8 H x W x C)
    image/height, image/width, image/channels                int64
    image/class/label   int64 (-1: unconditional generator, no label)
    image/source        b"synthetic" or b"augmented"
    image/key/sha256    hex sha256 of image/encoded
    synthetic/seed      int64 the image's seed index
    synthetic/generator_step  int64 (-1 for augmented real images)

Read it with plain TF (`tf.data.TFRecordDataset` + `tf.io.parse_single_example`
with FEATURES), or with `load()`:

    import trainer.shards
    ds = trainer.shards.load("out/synth")        # (uint8 image, int64 label), shuffled across shards
    ds = trainer.shards.load("gs://bucket/synth")  # streamed: a few shards at a time (trainer/shard_stream.py)

The format both ways lives here: a hand-written record encoder (tested
byte-identical to protobuf's), TFRecord framing, TFDS metadata, and the readers
(`load`, `mix`): one concern, about 570 lines with the formatter's layout.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import stat
import struct
import sys
import threading
from typing import Iterator, Optional

import google_crc32c
import tensorflow as tf

from trainer import image_codec, storage
from trainer.errors import UserError
from trainer.shard_plan import ShardPlan

PLAN = "plan.json"
MANIFEST = "manifest.json"
NO_LABEL = -1
SCHEMA_VERSION = 1

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/format": tf.io.FixedLenFeature([], tf.string),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/channels": tf.io.FixedLenFeature([], tf.int64),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64, default_value=NO_LABEL),
    "image/source": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "image/key/sha256": tf.io.FixedLenFeature([], tf.string, default_value=b""),
    "synthetic/seed": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "synthetic/generator_step": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
}


def shard_name(prefix: str, index: int, num_shards: int) -> str:
    return f"{prefix}-train.tfrecord-{index:05d}-of-{num_shards:05d}"


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (tag already shifted: field << 3 | 2)."""
    return bytes([tag]) + _varint(len(payload)) + payload


def _int64_feature(value: int) -> bytes:
    return _field(0x1A, _field(0x0A, _varint(value)))  # Feature.int64_list(3) -> packed Int64List.value(1)


def _bytes_feature(value: bytes) -> bytes:
    return _field(0x0A, _field(0x0A, value))  # Feature.bytes_list(1) -> BytesList.value(1)


def _floats_feature(values) -> bytes:
    """Feature.float_list(2) -> packed FloatList.value(1), little-endian float32."""
    return _field(0x12, _field(0x0A, struct.pack(f"<{len(values)}f", *values)))


def _entry(key: str, feature: bytes) -> bytes:
    return _field(0x0A, _field(0x0A, key.encode()) + _field(0x12, feature))


def _bytes_entry_prefix(key: str, size: int) -> bytes:
    """The bytes before a payload of `size` bytes in _entry(key, _bytes_feature(payload))."""
    value = b"\x0a" + _varint(size)  # BytesList.value(1)
    feature = b"\x0a" + _varint(len(value) + size)  # Feature.bytes_list(1)
    key_field = _field(0x0A, key.encode())
    inner = len(feature) + len(value) + size
    entry = key_field + b"\x12" + _varint(inner)  # map entry: key(1), value(2)
    return b"\x0a" + _varint(len(entry) + inner) + entry + feature + value


class ExampleEncoder:
    """Serializes this format's tf.train.Example records directly.

    Byte-identical to protobuf's deterministic serialization of the same
    tf.train.Example (feature map sorted by key; tests/test_shards.py holds that reference), and several times faster:
    the entries that are the same for a whole shard are encoded once, and a
    record is joined from its parts in one copy."""

    def __init__(
        self, height: int, width: int, channels: int, source: str, generator_step: int, image_format: str = "png"
    ):
        self._channels = _entry("image/channels", _int64_feature(channels))
        self._middle = _entry("image/format", _bytes_feature(image_format.encode())) + _entry(
            "image/height", _int64_feature(height)
        )
        self._source = _entry("image/source", _bytes_feature(source.encode()))
        self._tail = _entry("image/width", _int64_feature(width)) + _entry(
            "synthetic/generator_step", _int64_feature(generator_step)
        )
        self._sha = _bytes_entry_prefix("image/key/sha256", 64)
        self._labels: dict[int, bytes] = {}
        self._encoded_prefix: dict[int, bytes] = {}

    def encode(self, png: bytes, label: int, seed: int, probs=None) -> bytes:
        """One record; `probs` (a teacher's class probabilities) adds image/class/probs and
        image/teacher/confidence (the probability of `label`)."""
        label_entry = self._labels.get(label)
        if label_entry is None:
            label_entry = self._labels[label] = _entry("image/class/label", _int64_feature(label))
        prefix = self._encoded_prefix.get(len(png))
        if prefix is None:
            prefix = self._encoded_prefix[len(png)] = _bytes_entry_prefix("image/encoded", len(png))
        soft = teacher = b""
        if probs is not None:
            soft = _entry("image/class/probs", _floats_feature(probs))
            teacher = _entry("image/teacher/confidence", _floats_feature([probs[label]]))
        parts = (
            self._channels,
            label_entry,
            soft,
            prefix,
            png,
            self._middle,
            self._sha,
            hashlib.sha256(png).hexdigest().encode(),
            self._source,
            teacher,
            self._tail,
            _entry("synthetic/seed", _int64_feature(seed)),
        )
        size = sum(map(len, parts))
        return b"".join((b"\x0a", _varint(size), *parts))  # Example.features(1) -> Features.feature(1)


def frame_records(records: list[bytes]) -> bytes:
    """TFRecord framing of several records (what tf.io.TFRecordWriter writes): length, its masked
    crc32c, data, the data's masked crc32c. One write per batch instead of one call per record."""
    parts = []
    for record in records:
        length = struct.pack("<Q", len(record))
        parts += (length, struct.pack("<I", _masked_crc(length)), record, struct.pack("<I", _masked_crc(record)))
    return b"".join(parts)


def make_example(
    png: bytes,
    height: int,
    width: int,
    channels: int,
    label: int,
    source: str,
    seed: int,
    generator_step: int,
    probs=None,
    image_format: str = "png",
) -> bytes:
    """One serialized record (see ExampleEncoder, which a shard writer reuses)."""
    return ExampleEncoder(height, width, channels, source, generator_step, image_format).encode(png, label, seed, probs)


def parse_example(record: tf.Tensor, channels: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Serialized Example -> (uint8 [H, W, channels], int64 label)."""
    parsed = tf.io.parse_single_example(record, FEATURES)
    return decode_image(parsed, channels), parsed["image/class/label"]


def decode_image(parsed: dict, channels: int) -> tf.Tensor:
    """A parsed record's image (PNG, JPEG or raw, as its image/format says) -> uint8 [H, W, channels]."""
    return image_codec.decode(
        parsed["image/encoded"],
        parsed["image/format"],
        parsed["image/height"],
        parsed["image/width"],
        parsed["image/channels"],
        channels,
    )


class DamagedShard(Exception):
    """A TFRecord file whose framing or checksums are wrong (e.g. cut short)."""


def tfds_metadata(
    name: str, shard_lengths: list[int], num_bytes: int, description: str, plan: ShardPlan
) -> dict[str, bytes]:
    """features.json, dataset_info.json and the class names, so that
    `tfds.builder_from_directory(OUTPUT).as_dataset(split="train", as_supervised=True)` yields
    decoded (image, label) pairs, and `info.features["image/class/label"].names` the class names.

    Features keep the records' flat keys ('image/encoded', 'image/class/label', ...), so the
    records need no change: the image is a TFDS Image (PNG or JPEG shards) or a uint8 Tensor
    stored as bytes (raw shards), the label a ClassLabel when the images have classes. Written
    without importing tensorflow_datasets; tested against it."""
    res, channels, num_classes, image_format = plan.resolution, plan.channels, plan.num_classes, plan.image_format
    shape = {"dimensions": [str(res), str(res), str(channels)]}

    def tensor(dtype, dims=()):
        return {
            "pythonClassName": "tensorflow_datasets.core.features.tensor_feature.Tensor",
            "tensor": {
                "dtype": dtype,
                "encoding": "none",
                "shape": {"dimensions": [str(d) for d in dims]} if dims else {},
            },
        }

    features = {key: tensor(spec.dtype.name) for key, spec in FEATURES.items()}
    if image_format == "raw":
        features["image/encoded"] = {
            "pythonClassName": "tensorflow_datasets.core.features.tensor_feature.Tensor",
            "tensor": {"dtype": "uint8", "encoding": "bytes", "shape": shape},
        }
    else:
        features["image/encoded"] = {
            "pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
            "image": {"dtype": "uint8", "encodingFormat": image_format, "shape": shape},
        }
    files = {}
    if num_classes:
        features["image/class/label"] = {
            "pythonClassName": "tensorflow_datasets.core.features.class_label_feature.ClassLabel",
            "classLabel": {"numClasses": str(num_classes)},
        }
        names = list(plan.class_names) or [str(c) for c in range(num_classes)]
        files["image.class.label.labels.txt"] = ("\n".join(names) + "\n").encode()
    if plan.soft_labels:
        features["image/class/probs"] = tensor("float32", (num_classes,))
        features["image/teacher/confidence"] = tensor("float32")
    feature_json = {
        "pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
        "featuresDict": {"features": dict(sorted(features.items()))},
    }
    info = {
        "name": name,
        "version": "1.0.0",
        "fileFormat": "tfrecord",
        "moduleName": "dcgan_factory",
        "description": description,
        "splits": [
            {
                "name": "train",
                "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                "numBytes": str(num_bytes),
                "shardLengths": [str(n) for n in shard_lengths],
            }
        ],
    }
    if num_classes:
        info["supervisedKeys"] = {
            "tuple": {"items": [{"featureKey": "image/encoded"}, {"featureKey": "image/class/label"}]}
        }
    return {
        "features.json": (json.dumps(feature_json, indent=2) + "\n").encode(),
        "dataset_info.json": (json.dumps(info, indent=2) + "\n").encode(),
        **files,
    }


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def count_records(path: str) -> int:
    """Records in a TFRecord file, every length and data CRC checked.

    Reads the framing directly (8-byte length, masked crc32c of it, data,
    masked crc32c of the data): ~50x faster than iterating a TFRecordDataset
    from Python. Raises DamagedShard on a truncated or corrupted file, or a
    record whose declared length runs past the end of the file (checked before
    anything of that size is read).
    """
    with open(path, "rb") as f:
        return sum(1 for _ in framed_records(f, path))


def framed_records(f, where: str) -> Iterator[bytes]:
    """The records of an open TFRecord file, each length checked against the file's size before its data is
    read (a 16-byte file may declare a 1 TiB record) and every CRC checked; DamagedShard if any is wrong."""
    size = os.fstat(f.fileno()).st_size
    offset = count = 0
    while True:
        header = f.read(12)
        if not header:
            return
        if len(header) < 12:
            raise DamagedShard(f"{where}: truncated record header at record {count}")
        length, length_crc = struct.unpack("<QI", header)
        if _masked_crc(header[:8]) != length_crc:
            raise DamagedShard(f"{where}: bad length checksum at record {count}")
        if length > size - offset - 16:
            raise DamagedShard(
                f"{where}: record {count} declares {length} bytes, past the end of the file ({size} bytes): "
                "cut short, or not a TFRecord file"
            )
        body = f.read(length + 4)
        if len(body) < length + 4:
            raise DamagedShard(f"{where}: truncated record {count}")
        if _masked_crc(body[:length]) != struct.unpack("<I", body[length:])[0]:
            raise DamagedShard(f"{where}: bad data checksum at record {count}")
        yield body[:length]
        offset += length + 16
        count += 1


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_MANIFEST_BYTES = 64 << 20  # far above any real manifest (about 200 bytes a shard)


def check_shard_name(name, where: str) -> str:
    """A manifest's shard name, refused unless it is a plain file name in the output folder (the streaming
    path's rule, applied on every path: no '/', '\\', NUL, '', '.' or '..')."""
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise UserError(f"{where}: shard name {str(name)[:200]!r} is not a file in the folder")
    return name


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_manifest(blob, where: str) -> dict:
    """manifest.json's text (or bytes) -> its dict, every field a reader relies on checked (UserError if not):
    a "shards" list of entries with a safe name, whole-number bytes and num_images, a 64-hex-digit sha256;
    channels 1 or 3; whole-number num_images, num_classes and resolution."""
    try:
        manifest = json.loads(blob)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise UserError(f"{where}: not JSON ({str(err)[:200]})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{where}: not a JSON object")
    entries = manifest.get("shards")
    if not isinstance(entries, list):
        raise UserError(f'{where}: no "shards" list, so it is not a dcgan-factory shard manifest')
    names = set()
    for entry in entries:
        if not isinstance(entry, dict) or "name" not in entry:
            raise UserError(f"{where}: a shard entry without a name: {str(entry)[:100]!r}")
        name = check_shard_name(entry["name"], where)
        if name in names:
            raise UserError(f"{where}: shard {name!r} is listed twice")
        names.add(name)
        for key in ("bytes", "num_images"):
            if key in entry and not _is_count(entry[key]):
                raise UserError(f"{where}: shard {name!r}: {key}={json.dumps(entry[key])[:40]} is not a whole number")
        sha = entry.get("sha256")
        if sha is not None and not (isinstance(sha, str) and re.fullmatch("[0-9a-f]{64}", sha)):
            raise UserError(f"{where}: shard {name!r}: sha256={str(sha)[:80]!r} is not 64 hex digits")
    if "channels" in manifest and manifest["channels"] not in (1, 3):
        raise UserError(f"{where}: channels={json.dumps(manifest['channels'])[:40]} must be 1 or 3")
    for key in ("num_images", "num_classes", "resolution"):
        if key in manifest and manifest[key] is not None and not _is_count(manifest[key]):
            raise UserError(f"{where}: {key}={json.dumps(manifest[key])[:40]} is not a whole number")
    return manifest


def read_manifest(folder: str) -> Optional[dict]:
    """A local output's manifest.json, checked (parse_manifest); None if there is none."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.lexists(path):
        return None
    try:
        if not os.path.isfile(path):
            raise UserError(f"{path}: not a regular file")
        with open(path, "rb") as f:
            blob = f.read(MAX_MANIFEST_BYTES + 1)
    except OSError as err:
        raise UserError(f"{path}: unreadable ({err.strerror or err})") from None
    if len(blob) > MAX_MANIFEST_BYTES:
        raise UserError(f"{path}: over {MAX_MANIFEST_BYTES >> 20} MiB, not a shard manifest")
    return parse_manifest(blob, path)


def check_shard_file(path: str, entry: Optional[dict] = None) -> int:
    """A shard file's size, after the checks that need no reading: it exists, is a regular file, and has the
    size manifest.json records (`entry`); UserError naming it if not."""
    try:
        info = os.stat(path)
    except OSError as err:
        missing = isinstance(err, FileNotFoundError) and entry is not None
        raise UserError(
            f"{path}: " + ("missing (listed in manifest.json)" if missing else f"unreadable ({err.strerror})")
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path}: not a regular file")
    if entry is not None and "bytes" in entry and info.st_size != entry["bytes"]:
        raise UserError(
            f"{path}: {info.st_size} bytes, manifest.json says {entry['bytes']} (cut short or replaced after it "
            "was written); rerun `dcgan sample --verify` on the output"
        )
    return info.st_size


def find_shard_files(path: str, require_manifest: bool = True) -> tuple[list[str], Optional[dict]]:
    """Shard paths of an output folder (from its manifest) or a glob; a gs:// folder is staged locally first.

    A shard folder is input from outside, whoever wrote it: the manifest is checked (parse_manifest: names
    must be files in the folder), and every listed shard must exist with the size the manifest records."""
    files, manifest, _ = shard_entries(path, require_manifest)
    return files, manifest


def shard_entries(path: str, require_manifest: bool = True) -> tuple[list[str], Optional[dict], list]:
    """find_shard_files, plus each file's manifest entry (None without a manifest)."""
    if storage.is_remote(path):
        path = storage.stage_dataset(path)
    if os.path.isdir(path):
        manifest = read_manifest(path)
        if manifest is not None:
            entries = manifest["shards"]
            files = [os.path.join(path, e["name"]) for e in entries]
            for file, entry in zip(files, entries):
                check_shard_file(file, entry)
            return files, manifest, list(entries)
        if require_manifest:
            raise UserError(
                f"{path}: no {MANIFEST}, so the output is not complete (a sampler still running or "
                "stopped); finish it by rerunning the same command, or read it with allow_uncommitted=True"
            )
        files = sorted(glob.glob(os.path.join(path, "*.tfrecord-*")))
    else:
        files = sorted(glob.glob(path))
        if not files:
            raise UserError(f"{path}: no such shard folder or files")
    for file in files:
        check_shard_file(file)
    return files, None, [None] * len(files)


_RECORD_FIELDS = [
    (key, "bytes_list" if spec.dtype == tf.string else "int64_list", spec.default_value is None)
    for key, spec in FEATURES.items()
]


class RecordCheck:
    """What every record must satisfy before TensorFlow parses and decodes it (a shard is input from outside):
    a tf.train.Example whose fields parse_example reads are there with one value each; a PNG/JPEG (or GIF/BMP)
    header declaring at most data.MAX_IMAGE_PIXELS pixels (the image folders' limit against decompression
    bombs), or raw bytes of exactly height x width x channels, of the manifest's shape when it has one; a
    label among the manifest's classes.

    A record that fails stops the read naming its shard and index (`on_corrupt="fail"`), or is left out,
    counted and reported (`"skip"`: a warning line per shard, `report()` at the end). Thread-safe."""

    def __init__(self, manifest: Optional[dict] = None, on_corrupt: str = "fail", probs: int = 0):
        from trainer.data import MAX_IMAGE_PIXELS

        manifest = manifest or {}
        self.on_corrupt, self.max_pixels, self.probs = on_corrupt, MAX_IMAGE_PIXELS, probs
        res, channels = manifest.get("resolution"), manifest.get("channels")
        self.shape = (res, res, channels) if res and channels else None
        self.num_classes = int(manifest.get("num_classes") or 0)
        self.skipped: dict[str, set] = {}  # shard -> indices of the records left out
        self._lock = threading.Lock()

    def problem(self, record: bytes) -> Optional[str]:
        """Why this record cannot be read, or None."""
        from trainer.data import declared_size_of

        try:
            feature = tf.train.Example.FromString(record).features.feature
        except Exception:  # noqa: BLE001 - protobuf's DecodeError, or anything a hostile blob provokes
            return "not a tf.train.Example"
        for key, kind, required in _RECORD_FIELDS:
            if key not in feature:
                if required:
                    return f"no {key}"
                continue
            if feature[key].WhichOneof("kind") != kind or len(getattr(feature[key], kind).value) != 1:
                return f"{key} is not one {kind[:-5]} value"
        if self.probs:
            probs = feature["image/class/probs"].float_list.value if "image/class/probs" in feature else ()
            if len(probs) != self.probs:
                return f"{len(probs)} class probabilities, not {self.probs}"
        encoded = feature["image/encoded"].bytes_list.value[0]
        image_format = feature["image/format"].bytes_list.value[0]
        h, w, c = (feature[f"image/{k}"].int64_list.value[0] for k in ("height", "width", "channels"))
        label = feature["image/class/label"].int64_list.value[0] if "image/class/label" in feature else NO_LABEL
        if self.num_classes and not 0 <= label < self.num_classes:
            return f"label {label} outside the manifest's {self.num_classes} classes"
        if image_format == b"raw":
            if h <= 0 or w <= 0 or c not in (1, 3, 4) or h * w > self.max_pixels:
                return f"raw image {h}x{w}x{c} is not an image shape"
            if self.shape and (h, w, c) != self.shape:
                return f"raw image {h}x{w}x{c}, the manifest says {'x'.join(map(str, self.shape))}"
            if len(encoded) != h * w * c:
                return f"raw image of {len(encoded)} bytes, {h}x{w}x{c} needs {h * w * c}"
            return None
        if image_format not in (b"png", b"jpeg"):
            return f"unknown image/format {image_format[:20]!r}"
        size = declared_size_of(encoded)
        if size is None:
            return f"image/format {image_format.decode()} but no PNG, JPEG, GIF or BMP header"
        if size[0] * size[1] > self.max_pixels or not size[0] or not size[1]:
            return f"declares {size[0]}x{size[1]} pixels, not in 1..{self.max_pixels:,} (a decompression bomb?)"
        return None

    def filter(self, records: list[bytes], where: str, first: int = 0) -> list[bytes]:
        """The records that pass; raises UserError at the first that does not, unless skipping."""
        kept, bad, why = [], [], ""
        for index, record in enumerate(records, first):
            problem = self.problem(record)
            if problem is None:
                kept.append(record)
                continue
            if self.on_corrupt != "skip":
                raise UserError(
                    f"{where}: record {index}: {problem} (pass --on_corrupt=skip to leave such records out)"
                )
            bad.append(index)
            why = why or problem
        if bad:
            with self._lock:
                new = where not in self.skipped
                self.skipped.setdefault(where, set()).update(bad)
            if new:
                print(f"warning: {where}: skipping unreadable records (--on_corrupt=skip), e.g. {why}", file=sys.stderr)
        return kept

    def report(self) -> str:
        """One line: how many records were left out, where; '' if none."""
        with self._lock:
            skipped = {where: len(indices) for where, indices in self.skipped.items()}
        if not skipped:
            return ""
        shown = ", ".join(f"{os.path.basename(w)} ({n})" for w, n in list(skipped.items())[:5])
        return (
            f"warning: skipped {sum(skipped.values())} unreadable records in {len(skipped)} shards "
            f"(--on_corrupt=skip): {shown}" + (" ..." if len(skipped) > 5 else "")
        )


class LocalShards:
    """The shard files of a local (or copy-staged) output, checked by Python before TensorFlow sees a byte:
    each file's size and sha256 against its manifest entry (the sha256 once per file while it is unchanged),
    its framing (record lengths against the file size, every CRC), its record count, then every record
    (RecordCheck). Read as a dataset through `shard_stream.records(...)`, like a streamed output."""

    def __init__(self, files: list[str], entries: list, manifest: Optional[dict], check: RecordCheck, chunk=1024):
        self.files, self.entries, self.manifest, self.check, self.chunk = list(files), entries, manifest, check, chunk
        self.url = os.path.dirname(self.files[0]) if self.files else ""
        self._verified: set = set()
        self.shards_read = 0  # shard files read so far (all passes)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def urls(self) -> list[str]:
        return self.files

    def read(self, order) -> Iterator[list[bytes]]:
        """The checked records of each shard in `order`, in lists of up to `chunk`."""
        for index in order:
            yield from self._read(index)

    def _read(self, index: int) -> Iterator[list[bytes]]:
        path, entry = self.files[index], self.entries[index]
        self.shards_read += 1
        size = check_shard_file(path, entry)
        count = 0
        try:
            key = (index, size, os.stat(path).st_mtime_ns)
            if entry and entry.get("sha256") and key not in self._verified:
                if file_sha256(path) != entry["sha256"]:
                    raise UserError(
                        f"{path}: its sha256 differs from manifest.json (damaged or replaced after it was "
                        "written); rerun `dcgan sample --verify` on the output"
                    )
                self._verified.add(key)
            with open(path, "rb") as f:
                chunk = []
                for record in framed_records(f, path):
                    chunk.append(record)
                    if len(chunk) == self.chunk:
                        yield self.check.filter(chunk, path, count)
                        count, chunk = count + len(chunk), []
                if chunk:
                    yield self.check.filter(chunk, path, count)
                    count += len(chunk)
        except DamagedShard as err:
            raise UserError(f"{err}; rerun `dcgan sample --verify` on the output") from None
        except OSError as err:
            raise UserError(f"{path}: unreadable ({err.strerror or err})") from None
        if entry and "num_images" in entry and count != entry["num_images"]:
            raise UserError(f"{path}: {count} records, manifest.json says {entry['num_images']}")


def local_shards(path: str, on_corrupt: str = "fail", require_manifest: bool = True, probs: int = 0) -> LocalShards:
    """A LocalShards over a local output folder, glob or copy-staged gs:// output (UserError if unusable)."""
    files, manifest, entries = shard_entries(path, require_manifest)
    if not files:
        raise UserError(f"{path}: no shards")
    return LocalShards(files, entries, manifest, RecordCheck(manifest, on_corrupt, probs))


def _first_record(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            for record in framed_records(f, path):
                return record
    except DamagedShard as err:
        raise UserError(str(err)) from None
    except OSError as err:
        raise UserError(f"{path}: unreadable ({err.strerror or err})") from None
    raise UserError(f"{path}: empty shard")


def read_any_manifest(path: str, staging: str = "stream") -> dict:
    """The manifest of a local or gs:// output (read directly when streaming, from the staged copy if not)."""
    if storage.is_remote(path) and staging == "stream":
        storage.check_url(path)
        store = storage.GcsStore(path)
        if store.exists(MANIFEST):
            return parse_manifest(store.get_text(MANIFEST), f"{path}/{MANIFEST}")
    return find_shard_files(path)[1]


def peek_channels(path: str) -> int:
    """The channels of a shard's images, from its first record (read by Python, its length checked first)."""
    record = _first_record(path)
    try:
        channels = tf.train.Example.FromString(record).features.feature["image/channels"].int64_list.value
    except Exception:  # noqa: BLE001 - protobuf's DecodeError, or anything a hostile blob provokes
        channels = ()
    if len(channels) != 1 or channels[0] not in (1, 3, 4):
        raise UserError(f"{path}: record 0 is not an image record of this format (no image/channels 1, 3 or 4)")
    return min(int(channels[0]), 3)


def scan_labels(files: list[str]) -> tuple[int, int]:
    """(records, number of classes) from every record's label: 0 classes when unlabelled."""
    count, top, unlabelled = 0, -1, 0
    reader = LocalShards(files, [None] * len(files), None, RecordCheck())
    for records in reader.read(range(len(files))):
        for record in records:
            feature = tf.train.Example.FromString(record).features.feature
            label = feature["image/class/label"].int64_list.value[0] if "image/class/label" in feature else NO_LABEL
            count += 1
            unlabelled += label == NO_LABEL
            top = max(top, label)
    if unlabelled and unlabelled < count:
        raise UserError(
            f"{os.path.dirname(files[0])}: {unlabelled} of {count} records have no label; "
            "labelled and unlabelled shards cannot be mixed"
        )
    return count, (0 if unlabelled else top + 1)


def load(
    path: str,
    shuffle: bool = True,
    seed: Optional[int] = None,
    allow_uncommitted: bool = False,
    channels: int = 0,
    shuffle_buffer: int = 10_000,
    targets: str = "label",
    staging: str = "stream",
    buffer_bytes: int = 512 << 20,
    on_corrupt: str = "fail",
) -> tf.data.Dataset:
    """A tf.data.Dataset of (uint8 image [H, W, C], target) from a shard output.

    `targets`: "label" gives the int64 label; "probs" the float32 class
    probabilities a teacher stored (`dcgan sample --teacher=...`; needs the
    manifest). Refuses an output without manifest.json unless allow_uncommitted.
    With shuffle, shards are visited in a random order, interleaved, and records
    shuffled through a buffer.

    A gs:// output with a manifest is streamed (`staging="stream"`, see
    trainer/shard_stream.py): at most `buffer_bytes` of shards are on local
    disk at once. `staging="copy"` mirrors it into the local cache first.

    Every shard is checked against the manifest (size, sha256, record count) and every record before
    TensorFlow reads it (LocalShards, RecordCheck): a damaged shard or record is a UserError naming it
    (`on_corrupt="skip"` leaves unreadable records out and counts them instead).
    """
    if targets not in ("label", "probs"):
        raise UserError(f"targets={targets!r} must be 'label' or 'probs'")
    if staging not in ("stream", "copy"):
        raise UserError(f"staging={staging!r} must be 'stream' or 'copy'")
    from trainer import shard_stream

    stream = None
    if storage.is_remote(path) and staging == "stream":
        stream = shard_stream.open_output(path, buffer_bytes)
    if stream is None:
        stream = local_shards(path, on_corrupt, require_manifest=not allow_uncommitted or targets == "probs")
    files, manifest = stream.urls, stream.manifest or {}
    if not files:
        raise UserError(f"{path}: no shards")
    if targets == "probs" and not manifest.get("soft_labels"):
        raise UserError(
            f"{path}: these shards hold no teacher probabilities; write them with "
            "`dcgan sample --teacher=auto`, or read labels (targets='label')"
        )
    stream.check.on_corrupt = on_corrupt
    if targets == "probs":
        stream.check.probs = int(manifest.get("num_classes") or 0)
    if not channels:
        if not manifest.get("channels") and storage.is_remote(files[0]):
            raise UserError(f"{path}/{MANIFEST}: no channels")
        channels = int(manifest["channels"]) if manifest.get("channels") else peek_channels(files[0])
    ds = shard_stream.records(stream, shuffle=shuffle, seed=seed)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    if targets == "probs":
        spec = {**FEATURES, "image/class/probs": tf.io.FixedLenFeature([int(manifest["num_classes"])], tf.float32)}

        def parse(record):
            parsed = tf.io.parse_single_example(record, spec)
            return decode_image(parsed, channels), parsed["image/class/probs"]
    else:

        def parse(record):
            return parse_example(record, channels)

    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle).prefetch(tf.data.AUTOTUNE)


def mix(
    real,
    synthetic: str,
    *,
    num_classes: int,
    synthetic_fraction: float = 0.5,
    batch_size: int = 64,
    augmentation=None,
    soft_labels: bool = True,
    seed: int = 0,
    staging: str = "stream",
) -> tf.data.Dataset:
    """The dataset to train a classifier on: real images and synthetic shards, mixed per batch.

        ds = shards.mix((x_train, y_train), "synth/", num_classes=10, synthetic_fraction=0.5,
                        augmentation=downstream.classic_policy(0.5))
        model.fit(ds, steps_per_epoch=100, epochs=10)   # loss: CategoricalCrossentropy(from_logits=True)

    `real` is (uint8 images [N, H, W, C], int labels [N]) or a tf.data.Dataset of
    (image, label). Batches are (float32 images in 0..255, float32 targets
    [B, num_classes]): one-hot for real images; for synthetic ones the teacher's
    probabilities if the shards hold them and `soft_labels` (knowledge
    distillation), else one-hot of their label. Each element is synthetic with
    probability `synthetic_fraction`; `augmentation` (a policy: a function
    (float32 images 0..255 [B,H,W,C], int64 seeds [B,2]) -> images, as
    trainer/downstream.py's `classic_policy(...)` and the others return; or a
    classic `AugmentParams`) is applied to the real images on the fly. The
    stream repeats forever.
    """
    from trainer import classic_augment
    from trainer.augment_params import AugmentParams

    if not 0 <= synthetic_fraction <= 1:
        raise UserError(f"synthetic_fraction={synthetic_fraction} must be in [0, 1]")
    if augmentation is not None and not (isinstance(augmentation, AugmentParams) or callable(augmentation)):
        raise UserError(
            f"augmentation={str(augmentation)[:80]!r} must be a policy (images, seeds) -> images, such as "
            "downstream.classic_policy(0.5), or AugmentParams"
        )
    real_ds = real if isinstance(real, tf.data.Dataset) else tf.data.Dataset.from_tensor_slices(real)
    real_ds = real_ds.repeat().shuffle(10_000, seed=seed).enumerate()

    def real_element(index, element):
        image, label = element
        image = tf.cast(image, tf.float32)
        if augmentation is not None:
            seeds = classic_augment.image_seeds(seed, index[None])
            if isinstance(augmentation, AugmentParams):
                image = classic_augment.apply(image[None], augmentation, seeds)[0]
            else:
                image = tf.cast(augmentation(image[None], seeds)[0], tf.float32)
            image = tf.clip_by_value(tf.round(image), 0.0, 255.0)
        return image, tf.one_hot(tf.cast(label, tf.int32), num_classes)

    real_ds = real_ds.map(real_element, num_parallel_calls=tf.data.AUTOTUNE)
    probs = soft_labels and bool(read_any_manifest(synthetic, staging).get("soft_labels"))
    synth_ds = load(synthetic, shuffle=True, seed=seed, targets="probs" if probs else "label", staging=staging).repeat()
    synth_ds = synth_ds.map(
        lambda image, target: (
            tf.cast(image, tf.float32),
            target if probs else tf.one_hot(tf.cast(target, tf.int32), num_classes),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    mixed = tf.data.Dataset.sample_from_datasets(
        [real_ds, synth_ds], [1 - synthetic_fraction, synthetic_fraction], seed=seed
    )
    return mixed.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
