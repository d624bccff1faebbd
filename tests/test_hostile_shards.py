"""A small hostile-shard corpus, built here: a shard folder is input from outside, whoever wrote it.

Every case ends in one line and exit 2 (or trains, counting what it skipped, where --on_corrupt=skip
allows it) within a bounded time; nothing reaches TensorFlow's reader unchecked (issue #27)."""

import hashlib
import json
import os
import struct
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

from trainer import data, image_codec, input_pipeline, shards
from trainer.errors import UserError
from trainer.shards import stream as shard_stream
from trainer.shards.records import _masked_crc

from conftest import assert_one_line_error, run_cli

RES = 32


def png_bomb(width=12000, height=12000) -> bytes:
    """A small PNG whose header declares width x height grey pixels (valid CRCs, a few KB of zlib)."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 64, 9)  # the first rows only: the decoder asks for the rest
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def write_output(folder, shard_records, image_format="png", num_classes=10, channels=1):
    """A shard output the way `dcgan sample` writes it: shards, then manifest.json with sizes and sha256."""
    os.makedirs(folder, exist_ok=True)
    entries = []
    for i, records in enumerate(shard_records):
        name = shards.shard_name("synthetic", i, len(shard_records))
        blob = shards.frame_records(records)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(blob)
        entries.append(
            {"name": name, "num_images": len(records), "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
        )
    manifest = {
        "num_images": sum(e["num_images"] for e in entries),
        "num_shards": len(entries),
        "channels": channels,
        "resolution": RES,
        "num_classes": num_classes,
        "class_names": [],
        "source": "synthetic",
        "shards": entries,
        "plan": {"image_format": image_format},
    }
    with open(os.path.join(folder, shards.MANIFEST), "w") as f:
        json.dump(manifest, f)
    return manifest


def good_records(count=40, image_format="png", seed=0, channels=1):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, [count, RES, RES, channels], np.uint8)
    blobs = image_codec.encode(pixels, image_format)
    encoder = shards.ExampleEncoder(RES, RES, channels, "synthetic", 8, image_format)
    return [encoder.encode(b, i % 10, i) for i, b in enumerate(blobs)]


def update_manifest(folder, change):
    path = os.path.join(folder, shards.MANIFEST)
    manifest = json.load(open(path))
    change(manifest)
    with open(path, "w") as f:
        json.dump(manifest, f)


def read_all(folder, on_corrupt="fail", steps=2):
    """What training reads: load_source, then the input pipeline's batches (in-process)."""
    source = data.load_source(str(folder), RES, 0, on_corrupt=on_corrupt)
    batches = input_pipeline.make_dataset(source, 8, seed=0)
    try:
        return source, [x for x, _ in batches.take(steps)]
    except tf.errors.OpError as err:  # the reader's error, as tf.data re-raises it (the CLI does the same)
        failure = shard_stream.failure_behind(err)
        if failure is None:
            raise
        raise failure from None


def train(dataset, tmp_path, *extra, timeout=240):
    return run_cli(
        "train",
        "--preset=smoke",
        f"--dataset={dataset}",
        f"--job_dir={tmp_path / 'job'}",
        "--steps=2",
        "--progress=false",
        *extra,
        timeout=timeout,
    )


# ----------------------------------------------------------------------------
# Item 1: names in manifest.json are files in the folder, on every path


@pytest.mark.parametrize("name", ["../other/x.tfrecord", "/etc/hostname", "a/b", "..", ""])
def test_manifest_names_outside_the_folder_are_refused(tmp_path, name):
    out = tmp_path / "out"
    write_output(out, [good_records(8)])
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.tfrecord").write_bytes(shards.frame_records(good_records(8)))

    def point_elsewhere(manifest):
        manifest["shards"][0]["name"] = name

    update_manifest(out, point_elsewhere)
    for read in (
        lambda: shards.find_shard_files(str(out)),
        lambda: data.load_source(str(out), RES),
        lambda: shards.load(str(out)),
    ):
        with pytest.raises(UserError, match="is not a file in the folder"):
            read()


# ----------------------------------------------------------------------------
# Items 2, 4, 5: missing, damaged and hostile shards surface, named, before or while reading


def test_a_missing_shard_is_one_line_before_training(tmp_path):
    out = tmp_path / "out"
    write_output(out, [good_records(8, seed=s) for s in range(3)])
    missing = sorted(out.glob("*.tfrecord-*"))[1]
    missing.unlink()
    started = time.monotonic()
    result = train(out, tmp_path)
    assert result.returncode == 2 and time.monotonic() - started < 120
    assert_one_line_error(result, f"{missing}: missing (listed in manifest.json)")
    assert not (tmp_path / "job").exists()  # refused before the job dir was touched


def test_a_shard_cut_short_or_replaced_is_refused_on_the_local_path(tmp_path):
    out = tmp_path / "out"
    write_output(out, [good_records(8, seed=s) for s in range(3)])
    first, second = sorted(out.glob("*.tfrecord-*"))[:2]
    first.write_bytes(first.read_bytes()[:-10])  # cut short by 10 bytes
    with pytest.raises(UserError, match="bytes, manifest.json says"):
        data.load_source(str(out), RES)
    write_output(out, [good_records(8, seed=s) for s in range(3)])
    blob = second.read_bytes()  # same size, other bytes: a record's data changed, framing CRCs redone
    records = list(shards.framed_records(open(second, "rb"), str(second)))
    records[3] = records[3][:-1] + bytes([records[3][-1] ^ 1])
    second.write_bytes(shards.frame_records(records))
    assert len(second.read_bytes()) == len(blob)
    with pytest.raises(UserError, match=f"{second}: its sha256 differs from manifest.json"):
        read_all(out)


def test_a_record_declaring_a_terabyte_is_refused_before_any_read(tmp_path):
    length = struct.pack("<Q", 1 << 40)
    hostile = tmp_path / "x.tfrecord-00000-of-00001"
    hostile.write_bytes(length + struct.pack("<I", _masked_crc(length)) + b"\0" * 4)  # 16 bytes
    with pytest.raises(shards.DamagedShard, match="declares 1099511627776 bytes, past the end of the file"):
        shards.count_records(str(hostile))
    result = train(hostile, tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]  # not 139 (segfault)
    assert_one_line_error(result, "record 0 declares 1099511627776 bytes, past the end of the file (16 bytes)")
    # `dcgan sample --verify` on an output holding it: one line, not a MemoryError.
    out = tmp_path / "out"
    write_output(out, [good_records(4)])
    name = sorted(out.glob("*.tfrecord-*"))[0]
    name.write_bytes(hostile.read_bytes())

    def describe_it(manifest):
        manifest["shards"][0].update(bytes=16, sha256=hashlib.sha256(hostile.read_bytes()).hexdigest())

    update_manifest(out, describe_it)
    verify = run_cli("sample", f"--output={out}", "--verify", "--progress=false")
    assert verify.returncode == 2, verify.stderr[-2000:]
    assert_one_line_error(verify, "damaged, or its record count differs")


def test_raw_records_of_the_wrong_length_stop_or_are_skipped_and_counted(tmp_path):
    out = tmp_path / "out"
    records = good_records(16, "raw")
    encoder = shards.ExampleEncoder(RES, RES, 1, "synthetic", 8, "raw")
    records[5] = encoder.encode(b"\0" * (RES * RES - 7), 1, 5)
    write_output(out, [records], image_format="raw")
    with pytest.raises(UserError, match=r"record 5: raw image of 1017 bytes, 32x32x1 needs 1024 .*--on_corrupt=skip"):
        read_all(out, on_corrupt="fail")
    source, batches = read_all(out, on_corrupt="skip", steps=3)
    assert len(batches) == 3  # trains on the 15 good records
    assert "skipped 1 unreadable records in 1 shards" in source.stream.check.report()
    # Every record bad: one pass yields nothing, so it stops instead of spinning forever.
    write_output(out, [[encoder.encode(b"\0" * 10, 1, i) for i in range(8)]], image_format="raw")
    started = time.monotonic()
    with pytest.raises(UserError, match="no readable record in its 1 shards; skipped 8 unreadable records"):
        read_all(out, on_corrupt="skip")
    assert time.monotonic() - started < 60


def test_raw_records_must_have_the_manifest_shape(tmp_path):
    out = tmp_path / "out"
    encoder = shards.ExampleEncoder(16, 16, 1, "synthetic", 8, "raw")
    write_output(out, [[encoder.encode(b"\0" * 256, 1, i) for i in range(8)]], image_format="raw")
    with pytest.raises(UserError, match="record 0: raw image 16x16x1, the manifest says 32x32x1"):
        read_all(out)


def test_decompression_bombs_in_records_are_refused_from_their_header(tmp_path):
    out = tmp_path / "out"
    encoder = shards.ExampleEncoder(RES, RES, 1, "synthetic", 8, "png")
    bomb = png_bomb()
    assert len(bomb) < 200_000
    write_output(out, [[encoder.encode(bomb, 1, i) for i in range(16)]])
    started = time.monotonic()
    with pytest.raises(UserError, match=r"record 0: declares 12000x12000 pixels, not in 1\.\.50,000,000"):
        read_all(out)
    result = train(out, tmp_path, timeout=180)  # --on_corrupt=skip (the default): all skipped, so it stops
    assert result.returncode == 2, result.stderr[-2000:]
    assert_one_line_error(result, "no readable record in its 1 shards; skipped 16 unreadable records")
    assert time.monotonic() - started < 240
    jpeg_header = b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", 20000, 20000) + b"\x01"
    assert shards.RecordCheck().problem(encoder.encode(jpeg_header, 1, 0)).startswith("declares 20000x20000")


def test_labels_outside_the_manifest_classes_are_refused(tmp_path):
    out = tmp_path / "out"
    write_output(out, [good_records(20)], num_classes=4)  # labels go to 9
    with pytest.raises(UserError, match="record 4: label 4 outside the manifest's 4 classes"):
        read_all(out)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"num_images": 3}', 'no "shards" list'),
        ('{"shards": [{"name": "a", "bytes": -4}]}', "bytes=-4 is not a whole number"),
        ('{"shards": [{"name": "a", "sha256": "zz"}]}', "is not 64 hex digits"),
        ('{"shards": [{"name": "a"}], "channels": 2}', "channels=2 must be 1 or 3"),
        ('{"shards": [{"name": "a"}, {"name": "a"}]}', "listed twice"),
        ('{"shards": [{"name": "a"}], "num_classes": "ten"}', 'num_classes="ten" is not a whole number'),
    ],
)
def test_bad_manifests_are_one_line(tmp_path, text, message):
    out = tmp_path / "out"
    write_output(out, [good_records(4)])
    (out / shards.MANIFEST).write_text(text)
    with pytest.raises(UserError, match=message):
        data.load_source(str(out), RES)


def test_a_bad_manifest_is_one_line_from_the_command_line(tmp_path):
    out = tmp_path / "out"
    write_output(out, [good_records(4)])
    (out / shards.MANIFEST).write_text("{not json")
    result = train(out, tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, f"{out / shards.MANIFEST}: not JSON")
    verify = run_cli("sample", f"--output={out}", "--verify", "--progress=false")
    assert verify.returncode == 2
    assert_one_line_error(verify, "not JSON")


def test_good_shards_still_train_and_read_back(tmp_path):
    out = tmp_path / "out"
    write_output(out, [good_records(24, seed=s) for s in range(2)])
    pairs = list(shards.load(str(out), shuffle=False))
    assert len(pairs) == 48 and pairs[0][0].shape == (RES, RES, 1)
    source, batches = read_all(out, steps=10)  # repeats across passes
    assert len(batches) == 10 and source.stream.check.report() == ""
