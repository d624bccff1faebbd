"""Reading a shard output: find and check its files, `load` it as a tf.data.Dataset, `mix` two.

python -c "import trainer.shards as s; print(s.load('out/synth'))"
"""

from __future__ import annotations

import glob
import os
import stat
from typing import Iterator, Optional

import tensorflow as tf

from trainer import storage, tf_pipelines
from trainer.errors import UserError
from trainer.shards import stream as shard_stream
from trainer.shards.manifest import MAX_MANIFEST_BYTES, parse_manifest
from trainer.shards.records import (
    FEATURES,
    MANIFEST,
    NO_LABEL,
    DamagedShard,
    RecordCheck,
    decode_image,
    file_sha256,
    framed_records,
    parse_example,
)


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
        store = storage.open_store(path)
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
    trainer/shards/stream.py): at most `buffer_bytes` of shards are on local
    disk at once. `staging="copy"` mirrors it into the local cache first.

    Every shard is checked against the manifest (size, sha256, record count) and every record before
    TensorFlow reads it (LocalShards, RecordCheck): a damaged shard or record is a UserError naming it
    (`on_corrupt="skip"` leaves unreadable records out and counts them instead).

    tf.data's autotuning is off (trainer/tf_pipelines.py: with it on, deleting an iterator can wait up
    to a pass's length, e.g. between `model.fit`'s epochs); `ds.with_options(...)` turns it back on.
    """
    if targets not in ("label", "probs"):
        raise UserError(f"targets={targets!r} must be 'label' or 'probs'")
    if staging not in ("stream", "copy"):
        raise UserError(f"staging={staging!r} must be 'stream' or 'copy'")
    stream = _open(
        path, staging, buffer_bytes, on_corrupt, require_manifest=not allow_uncommitted or targets == "probs"
    )
    manifest = stream.manifest or {}
    if targets == "probs" and not manifest.get("soft_labels"):
        raise UserError(
            f"{path}: these shards hold no teacher probabilities; write them with "
            "`dcgan sample --teacher=auto`, or read labels (targets='label')"
        )
    stream.check.on_corrupt = on_corrupt
    if targets == "probs":
        stream.check.probs = int(manifest.get("num_classes") or 0)
    parse = _parser(targets, manifest, channels or _channels(path, stream.urls[0], manifest))
    ds = shard_stream.records(stream, shuffle=shuffle, seed=seed)
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed)
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle).prefetch(tf.data.AUTOTUNE)
    return tf_pipelines.untuned(ds)  # no autotune thread: no stall between model.fit's epochs


def _open(path: str, staging: str, buffer_bytes: int, on_corrupt: str, require_manifest: bool):
    """The output's shards: streamed from gs:// (with a manifest), else local (or mirrored) ones."""
    stream = None
    if storage.is_remote(path) and staging == "stream":
        stream = shard_stream.open_output(path, buffer_bytes)
    if stream is None:
        stream = local_shards(path, on_corrupt, require_manifest=require_manifest)
    if not stream.urls:
        raise UserError(f"{path}: no shards")
    return stream


def _channels(path: str, first_shard: str, manifest: dict) -> int:
    """Channels from the manifest, else from the first record of a local shard."""
    if manifest.get("channels"):
        return int(manifest["channels"])
    if storage.is_remote(first_shard):
        raise UserError(f"{path}/{MANIFEST}: no channels")
    return peek_channels(first_shard)


def _parser(targets: str, manifest: dict, channels: int):
    """record -> (image, label) or (image, teacher probabilities)."""
    if targets != "probs":
        return lambda record: parse_example(record, channels)
    spec = {**FEATURES, "image/class/probs": tf.io.FixedLenFeature([int(manifest["num_classes"])], tf.float32)}

    def parse(record):
        parsed = tf.io.parse_single_example(record, spec)
        return decode_image(parsed, channels), parsed["image/class/probs"]

    return parse


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
    stream repeats forever; tf.data's autotuning is off, as in `load`.
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
    return tf_pipelines.untuned(mixed.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
