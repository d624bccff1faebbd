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

    from trainer.shards import stream as shard_stream
    stream = shard_stream.open_output("gs://bucket/synth", buffer_bytes=256 << 20)
    ds = shard_stream.records(stream, shuffle=True, seed=0)      # serialized tf.train.Example records

`shards.load("gs://...")` and `dcgan train --dataset=gs://...` use this for shard
outputs with a manifest; `staging="copy"` (`--dataset_staging=copy`) mirrors the
output into the local cache first instead, as every other gs:// dataset is.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import queue
import shutil
import socket
import tempfile
import threading
from typing import Iterable, Iterator, Optional

import numpy as np
import tensorflow as tf

from trainer import storage
from trainer.errors import JobError, UserError
from trainer.shards.manifest import parse_manifest
from trainer.shards.records import MANIFEST, DamagedShard, RecordCheck, file_sha256, framed_records

DEFAULT_BUFFER_BYTES = 512 << 20
_failures: list[JobError] = []  # raised inside tf.data, which re-raises them as op errors
STOP = threading.Event()  # set on a stop request (train.StopRequest, even while the main thread waits in TF)


class InputStopped(JobError):
    """The reader ended because a stop was requested (SIGTERM) while the trainer waited for input."""


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
        self.shards_read = 0  # shard downloads read so far (all passes)
        self.check = RecordCheck(self.manifest)  # every record, before TensorFlow parses it
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
        root = _buffer_root()
        remove_stale_scratch(root)
        scratch = tempfile.mkdtemp(prefix=_scratch_prefix(), dir=root)
        store = storage.open_store(self.url, staging=scratch)
        pending: dict[int, concurrent.futures.Future] = {}
        submitted = 0
        pool = _DaemonPool(self.threads)
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
                path = _wait(pending.pop(position))
                self.shards_read += 1
                try:
                    records = self._records(store, index, path)
                finally:
                    with self._lock:
                        self._buffered -= int(self.entries[index].get("bytes") or 0)
                yield records
        finally:
            # A reader that stops early (an error, `.take(n)`): queued downloads are dropped, running ones
            # finish, and only then is the buffer folder removed.
            pool.shutdown(wait=not STOP.is_set(), cancel_futures=True)  # a stop does not wait on the network
            shutil.rmtree(scratch, ignore_errors=True)

    def _download(self, store: storage.GcsStore, index: int) -> str:
        return store.fetch(self.entries[index]["name"])

    def _records(self, store: storage.GcsStore, index: int, path: str) -> list[bytes]:
        entry = self.entries[index]
        where = f"{self.url}/{entry['name']}"
        try:
            for attempt in range(2):  # hashed in chunks, then read record by record: one shard's records in memory
                if not entry.get("sha256") or file_sha256(path) == entry["sha256"]:
                    break
                if attempt == 0:  # damaged on the way: one new download
                    os.unlink(path)
                    path = store.fetch(entry["name"])
            else:
                raise UserError(
                    f"{where}: its sha256 differs from manifest.json (damaged or "
                    "replaced after it was written); rerun `dcgan sample --verify` on the output"
                )
            with open(path, "rb") as f:
                records = list(framed_records(f, where))
        except DamagedShard as err:
            raise UserError(str(err)) from None
        finally:
            if os.path.exists(path):
                os.unlink(path)
        return self.check.filter(records, where)


class _DaemonPool:
    """A download pool whose threads never hold the process open: ThreadPoolExecutor's threads are joined
    at exit, so a download stuck on a stalled network (up to DCGAN_GCS_RETRY_DEADLINE) kept a stopped
    trainer alive after its checkpoint was committed. ThreadPoolExecutor's submit and shutdown."""

    def __init__(self, threads: int):
        self._threads = max(1, threads)
        self._jobs: queue.Queue = queue.Queue()
        self._futures: list[concurrent.futures.Future] = []
        for _ in range(self._threads):
            threading.Thread(target=self._work, name="shard-download", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as err:  # noqa: BLE001 - handed to whoever waits on the future
                    future.set_exception(err)

    def submit(self, fn, *args) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._futures.append(future)
        self._jobs.put((future, fn, args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for future in self._futures:
                future.cancel()  # those not started; running ones finish
        for _ in range(self._threads):
            self._jobs.put(None)
        if wait:
            concurrent.futures.wait(self._futures)


def _wait(future: concurrent.futures.Future):
    """A download's result, waited for in short slices so that a stop request ends the wait within a second."""
    while True:
        try:
            return future.result(timeout=0.5)
        except concurrent.futures.TimeoutError:
            if STOP.is_set():
                raise InputStopped("stopped while waiting for a shard download") from None


def _scratch_prefix(pid: Optional[int] = None) -> str:
    """A buffer folder's name starts with its owner: host and process id (a hostname without '-')."""
    host = socket.gethostname().replace("-", "_")[:64] or "host"
    return f"stream-{host}-{pid or os.getpid()}-"


def remove_stale_scratch(root: str) -> list[str]:
    """Removes the buffer folders of this host's processes that are gone (a reader killed with kill -9 never
    ran its clean-up, and each left up to a buffer's worth of shards on disk); returns their names."""
    host = _scratch_prefix(1).split("-")[1]
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        parts = name.split("-")
        if len(parts) < 4 or parts[0] != "stream" or parts[1] != host or not parts[2].isascii():
            continue
        if not parts[2].isdigit() or _alive(int(parts[2])):
            continue
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's, or not a pid we can judge: left alone
    return True


def _buffer_root() -> str:
    root = storage.cache_dir("stream")
    os.makedirs(root, exist_ok=True)
    return root


def open_output(url: str, buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> Optional[ShardStream]:
    """A stream over the gs:// shard output at `url`, or None if there is no manifest.json there."""
    storage.check_url(url)
    store = storage.open_store(url)
    if not store.exists(MANIFEST):
        return None
    where = f"{url}/{MANIFEST}"
    manifest = parse_manifest(store.get_text(MANIFEST), where)  # names: files in the folder
    # The budget counts the bucket's sizes, not the manifest's claims (all-zero `bytes` was 4x the budget on disk).
    listed = {key: int(blob.size or 0) for key, blob in store.blobs("").items()}
    entries = []
    for shard in manifest["shards"]:
        name = shard["name"]
        if name not in listed:
            raise UserError(f"{url}/{name}: listed in manifest.json but not in the bucket (deleted or never written)")
        claimed = shard.get("bytes")
        if claimed is not None and int(claimed) != listed[name]:
            raise UserError(
                f"{url}/{name}: {listed[name]} bytes in the bucket, manifest.json says {claimed} "
                "(damaged or replaced after it was written); rerun `dcgan sample --verify` on the output"
            )
        entries.append({"name": name, "bytes": listed[name], "sha256": shard.get("sha256")})
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
        kept = 0
        try:
            for shard_records in interruptible(stream.read(order)):
                kept += len(shard_records)
                if shard_records:
                    yield np.array(shard_records, dtype=object)
            if not kept:  # a repeated pass that yields nothing would spin forever
                skipped = stream.check.report().replace("warning: ", "")
                raise UserError(
                    f"{stream.url}: no readable record in its {len(order)} shards" + (skipped and f"; {skipped}")
                )
        except JobError as err:  # tf.data re-raises it as an op error carrying its text; see failure_behind
            _failures.append(err)
            raise

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec([None], tf.string)).unbatch()


class _Handoff:
    """Two slots between the reader's thread and the consumer; each side gives up when told to."""

    END = object()  # the producer's last item, with its error or None

    def __init__(self):
        self.slots: queue.Queue = queue.Queue(maxsize=2)
        self.cancelled = threading.Event()  # the consumer has gone

    def put(self, item) -> bool:
        while not self.cancelled.is_set():
            try:
                self.slots.put(item, timeout=0.5)
                return True
            except queue.Full:
                pass
        return False

    def get(self):
        """The next (item, error), waited for in short slices; InputStopped once STOP is set."""
        while True:
            try:
                return self.slots.get(timeout=0.5)
            except queue.Empty:
                if STOP.is_set():
                    raise InputStopped("stopped while waiting for input") from None


def _produce(items: Iterator, handoff: _Handoff) -> None:
    try:
        for item in items:
            if not handoff.put((item, None)):
                break
        else:
            handoff.put((handoff.END, None))
    except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
        handoff.put((handoff.END, err))
    finally:
        if handoff.cancelled.is_set() and hasattr(items, "close"):
            items.close()  # the reader's own clean-up (its download pool, its scratch folder)


def interruptible(items: Iterator) -> Iterator:
    """The items of `items`, produced on a thread of their own and waited for in short slices: a reader stuck
    in a read or a download cannot keep a stop request (STOP) waiting; InputStopped ends the wait instead."""
    handoff = _Handoff()
    threading.Thread(target=_produce, args=(items, handoff), name="shard-reader", daemon=True).start()
    try:
        while True:
            item, err = handoff.get()
            if item is handoff.END:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        handoff.cancelled.set()


def failure_behind(error: BaseException) -> Optional[JobError]:
    """The reader's own error (a damaged shard or record, storage down, a stop request) behind the op error
    tf.data raised for it: the last one recorded whose text the op error carries."""
    if not isinstance(error, tf.errors.OpError):
        return None
    if not _failures:
        return None
    return next((f for f in reversed(_failures) if str(f) in str(error)), _failures[-1])
