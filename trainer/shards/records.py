"""The shard record format: a hand-written tf.train.Example encoder (tested byte-identical to
protobuf's), TFRecord framing and its checks, the parser, and RecordCheck, which vets every record
before TensorFlow parses it. Names of an output's files (shard_name, PLAN, MANIFEST) live here too.

    python -c "from trainer.shards import records; print(records.shard_name('synthetic', 3, 10))"
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import threading
from typing import Iterator, Optional

import google_crc32c
import tensorflow as tf

from trainer import image_codec
from trainer.errors import UserError
from trainer.shard_plan import MANIFEST, PLAN  # noqa: F401 (the names of an output's files, named here too)

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

        manifest = manifest or {}
        self.on_corrupt, self.max_pixels, self.probs = on_corrupt, image_codec.MAX_IMAGE_PIXELS, probs
        res, channels = manifest.get("resolution"), manifest.get("channels")
        self.shape = (res, res, channels) if res and channels else None
        self.num_classes = int(manifest.get("num_classes") or 0)
        self.skipped: dict[str, set] = {}  # shard -> indices of the records left out
        self._lock = threading.Lock()

    def problem(self, record: bytes) -> Optional[str]:
        """Why this record cannot be read, or None."""

        try:
            feature = tf.train.Example.FromString(record).features.feature
        except Exception:  # noqa: BLE001 - protobuf's DecodeError, or anything a hostile blob provokes
            return "not a tf.train.Example"
        why = self._fields_problem(feature)
        if why:
            return why
        encoded = feature["image/encoded"].bytes_list.value[0]
        image_format = feature["image/format"].bytes_list.value[0]
        h, w, c = (feature[f"image/{k}"].int64_list.value[0] for k in ("height", "width", "channels"))
        if image_format == b"raw":
            return self._raw_problem(encoded, h, w, c)
        return self._encoded_problem(encoded, image_format)

    def _fields_problem(self, feature) -> Optional[str]:
        """Missing or mis-typed fields, the teacher's probabilities, the label's range."""
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
        label = feature["image/class/label"].int64_list.value[0] if "image/class/label" in feature else NO_LABEL
        if self.num_classes and not 0 <= label < self.num_classes:
            return f"label {label} outside the manifest's {self.num_classes} classes"
        return None

    def _raw_problem(self, encoded: bytes, h: int, w: int, c: int) -> Optional[str]:
        if h <= 0 or w <= 0 or c not in (1, 3, 4) or h * w > self.max_pixels:
            return f"raw image {h}x{w}x{c} is not an image shape"
        if self.shape and (h, w, c) != self.shape:
            return f"raw image {h}x{w}x{c}, the manifest says {'x'.join(map(str, self.shape))}"
        if len(encoded) != h * w * c:
            return f"raw image of {len(encoded)} bytes, {h}x{w}x{c} needs {h * w * c}"
        return None

    def _encoded_problem(self, encoded: bytes, image_format: bytes) -> Optional[str]:
        """A PNG or JPEG whose header declares a size within bounds (decoding happens later)."""
        if image_format not in (b"png", b"jpeg"):
            return f"unknown image/format {image_format[:20]!r}"
        size = image_codec.declared_size_of(encoded)
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
