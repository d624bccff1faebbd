"""The stream's record splitter (the emulator tests in test_gcs.py stream a real bucket)."""

import pytest

from trainer import shard_stream, shards


def test_framed_records_split_back_and_damage_is_caught():
    records = [b"a", b"", b"x" * 1000]
    framed = shards.frame_records(records)
    assert shard_stream.split_records(framed) == records
    for damaged, message in (
        (framed[:-1], "truncated record 2"),
        (framed[:5], "truncated record header"),
        (framed[:12] + b"b" + framed[13:], "bad data checksum at record 0"),
        (b"\x09" + framed[1:], "bad length checksum at record 0"),
    ):
        with pytest.raises(ValueError, match=message):
            shard_stream.split_records(damaged)
