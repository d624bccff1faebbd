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
    ds = trainer.shards.load("gs://bucket/synth")  # streamed: a few shards at a time (trainer/shards/stream.py)

The package, bottom up: records.py (the record encoder, tested byte-identical to
protobuf's; TFRecord framing; the parser; RecordCheck), manifest.py (manifest.json
as hostile input; TFDS metadata), stream.py (a gs:// output a few shards at a
time), read.py (`load`, `mix`, the local reader). This file names the public API.
"""

from __future__ import annotations

from trainer.shards import stream
from trainer.shards.manifest import MAX_MANIFEST_BYTES, check_shard_name, parse_manifest, tfds_metadata
from trainer.shards.read import (
    LocalShards,
    check_shard_file,
    find_shard_files,
    load,
    local_shards,
    mix,
    peek_channels,
    read_any_manifest,
    read_manifest,
    scan_labels,
    shard_entries,
)
from trainer.shards.records import (
    FEATURES,
    MANIFEST,
    NO_LABEL,
    PLAN,
    SCHEMA_VERSION,
    DamagedShard,
    ExampleEncoder,
    RecordCheck,
    count_records,
    decode_image,
    file_sha256,
    frame_records,
    framed_records,
    parse_example,
    shard_name,
)

__all__ = [
    "FEATURES",
    "MANIFEST",
    "MAX_MANIFEST_BYTES",
    "NO_LABEL",
    "PLAN",
    "SCHEMA_VERSION",
    "DamagedShard",
    "ExampleEncoder",
    "LocalShards",
    "RecordCheck",
    "check_shard_file",
    "check_shard_name",
    "count_records",
    "decode_image",
    "file_sha256",
    "find_shard_files",
    "frame_records",
    "framed_records",
    "load",
    "local_shards",
    "mix",
    "parse_example",
    "parse_manifest",
    "peek_channels",
    "read_any_manifest",
    "read_manifest",
    "scan_labels",
    "shard_entries",
    "shard_name",
    "stream",
    "tfds_metadata",
]
