"""The stream's pieces (the emulator tests in test_gcs.py stream a real bucket)."""

import pytest

from trainer import shards
from trainer.shards import stream as shard_stream


def test_framed_records_split_back_and_damage_is_caught(tmp_path):
    records = [b"a", b"", b"x" * 1000]
    framed = shards.frame_records(records)
    path = tmp_path / "shard"

    def split(blob):
        path.write_bytes(blob)
        with open(path, "rb") as f:
            return list(shards.framed_records(f, "shard"))

    assert split(framed) == records
    for damaged, message in (
        (framed[:-1], "record 2 declares 1000 bytes, past the end of the file"),
        (framed[:5], "truncated record header"),
        (framed[:12] + b"b" + framed[13:], "bad data checksum at record 0"),
        (b"\x09" + framed[1:], "bad length checksum at record 0"),
    ):
        with pytest.raises(shards.DamagedShard, match=message):
            split(damaged)


def test_buffer_folders_of_dead_readers_are_removed_at_start(tmp_path):
    """A reader killed with kill -9 leaves its buffer folder behind; the next one removes it (its owner is
    gone), never a live process's."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead.kill()
    dead.wait()
    stale = tmp_path / (shard_stream._scratch_prefix(dead.pid) + "x1")
    live = tmp_path / (shard_stream._scratch_prefix() + "x2")
    other = tmp_path / "stream-otherhost-1-x3"  # another machine's (a shared cache): not ours to judge
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "shard").write_bytes(b"x" * 100)
    assert shard_stream.remove_stale_scratch(str(tmp_path)) == [stale.name]
    assert not stale.exists() and live.exists() and other.exists()
