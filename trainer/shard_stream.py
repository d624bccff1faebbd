"""Reading a gs:// shard output without copying it whole: a few shards at a time through a bounded buffer.

A shard output of 10^7 images is hundreds of GB; staging it to local disk before
the first batch takes hours. A `ShardStream` instead downloads shards ahead of
the reader on a few threads (google-cloud-storage client: crc32c-checked, with
its retries), never holding more than `buffer_bytes` of downloaded shards on
local disk (always at least one), checks each against the sha256 in
manifest.json (one new download if it differs, then a clear error), splits it
into its TFRecord records (every length and data CRC checked) and deletes the
file. `records()` wraps that as a tf.data.Dataset of serialized records; a
repeated dataset visits the shards in a new seeded order each epoch.

    from trainer import shard_stream
    stream = shard_stream.open_output("gs://bucket/synth", buffer_bytes=256 << 20)
    ds = shard_stream.records(stream, shuffle=True, seed=0)      # serialized tf.train.Example records

`shards.load("gs://...")` and `dcgan train --dataset=gs://...` use this for shard
outputs with a manifest; `staging="copy"` (`--dataset_staging=copy`) mirrors the
output into the local cache first instead, as every other gs:// dataset is.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import json
import os
import shutil
import struct
import tempfile
import threading
from typing import Iterable, Iterator, Optional

import numpy as np
import tensorflow as tf

from trainer import storage
from trainer.errors import JobError, UserError

DEFAULT_BUFFER_BYTES = 512 << 20
_failures: list[JobError] = []  # raised inside tf.data, which re-raises them as op errors


class ShardStream:
    """The shards of one gs:// output folder, downloaded ahead of the reader within a byte budget."""

    def __init__(
        self,
        url: str,
        entries: list[dict],
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        threads: int = 4,
        manifest: Optional[dict] = None,
    ):
        self.url = url.rstrip("/")
        self.manifest = manifest or {}
        self.entries = entries  # manifest shard entries: name, bytes, sha256 (sha256 optional)
        self.buffer_bytes = max(1, int(buffer_bytes))
        self.threads = threads
        self.peak_buffered = 0  # the most bytes of downloaded, unread shards on disk at once
        self._lock = threading.Lock()
        self._buffered = 0

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def urls(self) -> list[str]:
        return [f"{self.url}/{e['name']}" for e in self.entries]

    def read(self, order: Iterable[int]) -> Iterator[list[bytes]]:
        """The records of each shard in `order`, one list per shard, downloaded ahead within the budget."""
        order = list(order)
        self._buffered = 0
        scratch = tempfile.mkdtemp(prefix="stream-", dir=_buffer_root())
        store = storage.GcsStore(self.url, staging=scratch)
        pending: dict[int, concurrent.futures.Future] = {}
        submitted = 0
        pool = concurrent.futures.ThreadPoolExecutor(self.threads)
        try:
            for position, index in enumerate(order):
                # Download ahead while the buffer has room (the shard read next is always allowed).
                while submitted < len(order) and len(pending) < self.threads * 2:
                    size = int(self.entries[order[submitted]].get("bytes") or 0)
                    with self._lock:
                        if pending and self._buffered + size > self.buffer_bytes:
                            break
                        self._buffered += size
                        self.peak_buffered = max(self.peak_buffered, self._buffered)
                    pending[submitted] = pool.submit(self._download, store, order[submitted])
                    submitted += 1
                path = pending.pop(position).result()
                try:
                    records = self._records(store, index, path)
                finally:
                    with self._lock:
                        self._buffered -= int(self.entries[index].get("bytes") or 0)
                yield records
        finally:
            # A reader that stops early (an error, `.take(n)`): queued downloads are dropped, running ones
            # finish, and only then is the buffer folder removed.
            pool.shutdown(wait=True, cancel_futures=True)
            shutil.rmtree(scratch, ignore_errors=True)

    def _download(self, store: storage.GcsStore, index: int) -> str:
        return store.fetch(self.entries[index]["name"])

    def _records(self, store: storage.GcsStore, index: int, path: str) -> list[bytes]:
        entry = self.entries[index]
        for attempt in range(2):
            with open(path, "rb") as f:
                blob = f.read()
            os.unlink(path)
            if not entry.get("sha256") or hashlib.sha256(blob).hexdigest() == entry["sha256"]:
                break
            if attempt == 0:  # damaged on the way: one new download
                path = store.fetch(entry["name"])
        else:
            raise UserError(
                f"{self.url}/{entry['name']}: its sha256 differs from manifest.json (damaged or "
                "replaced after it was written); rerun `dcgan sample --verify` on the output"
            )
        try:
            return split_records(blob)
        except ValueError as err:
            raise UserError(f"{self.url}/{entry['name']}: {err}") from None


def split_records(blob: bytes) -> list[bytes]:
    """The records of TFRecord-framed bytes, every length and data CRC checked (ValueError if not)."""
    from trainer.shards import _masked_crc

    records, offset = [], 0
    while offset < len(blob):
        if offset + 12 > len(blob):
            raise ValueError(f"truncated record header at record {len(records)}")
        length, length_crc = struct.unpack_from("<QI", blob, offset)
        if _masked_crc(blob[offset : offset + 8]) != length_crc:
            raise ValueError(f"bad length checksum at record {len(records)}")
        start, end = offset + 12, offset + 12 + length
        if end + 4 > len(blob):
            raise ValueError(f"truncated record {len(records)}")
        data = blob[start:end]
        if _masked_crc(data) != struct.unpack_from("<I", blob, end)[0]:
            raise ValueError(f"bad data checksum at record {len(records)}")
        records.append(data)
        offset = end + 4
    return records


def _buffer_root() -> str:
    root = storage.cache_dir("stream")
    os.makedirs(root, exist_ok=True)
    return root


def open_output(url: str, buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> Optional[ShardStream]:
    """A stream over the gs:// shard output at `url`, or None if there is no manifest.json there."""
    from trainer import shards

    storage.check_url(url)
    store = storage.GcsStore(url)
    if not store.exists(shards.MANIFEST):
        return None
    try:
        manifest = json.loads(store.get_text(shards.MANIFEST))
        entries = [
            {"name": str(s["name"]), "bytes": int(s.get("bytes") or 0), "sha256": s.get("sha256")}
            for s in manifest["shards"]
        ]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{url}/{shards.MANIFEST}: unreadable ({err})") from None
    for entry in entries:
        if "/" in entry["name"] or entry["name"] in ("", ".", ".."):
            raise UserError(f"{url}/{shards.MANIFEST}: shard name {entry['name']!r} is not a file in the folder")
    return ShardStream(url, entries, buffer_bytes, manifest=manifest)


def records(
    stream: ShardStream, shuffle: bool = True, seed: Optional[int] = None, shard_indices: Optional[list[int]] = None
) -> tf.data.Dataset:
    """A tf.data.Dataset of the serialized records of `stream` (of `shard_indices` only, if given).

    With shuffle, each pass (each repeat) visits the shards in a new order drawn from `seed`."""
    indices = list(range(len(stream))) if shard_indices is None else list(shard_indices)
    passes = itertools.count()

    def generate():
        epoch = next(passes)
        order = np.random.default_rng([seed or 0, epoch]).permutation(indices).tolist() if shuffle else indices
        try:
            for shard_records in stream.read(order):
                yield np.array(shard_records, dtype=object)
        except JobError as err:  # tf.data re-raises it as an op error carrying its text; see failure_behind
            _failures.append(err)
            raise

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec([None], tf.string)).unbatch()


def failure_behind(error: BaseException) -> Optional[JobError]:
    """The stream's own error (a damaged shard, storage down) behind an error tf.data raised after it:
    the op error carrying it, or an end of input where a pipeline skips unreadable records."""
    return _failures[-1] if _failures and isinstance(error, tf.errors.OpError) else None
