"""Checkpoints that are either complete or invisible, locally or in a bucket.

Layout under JOB_DIR/checkpoints/:
    ckpt-00000100-1a2b3c4d/ckpt.index, ckpt.data-*   one tf.train.Checkpoint.write()
    latest.json                                    the pointer: step, prefix, files, config hash, and
                                                   `committed`, the folders of the last `keep` commits

The manager owns a host-side twin of the training state (built on the chief
only, at its first save; other workers' saves do nothing, as no collective is
involved): saving costs the training thread one copy of the variables into the
twin, which a background thread then writes and publishes. (TF's own async
checkpointing fails on Keras 3 variables.) The last save of a run (`last=True`:
nothing will change the state any more) writes the live state itself, so a run
that only checkpoints at its end never builds the twin. A checkpoint is written
to a local staging folder, then published whole (locally: one rename; GCS: every file uploaded with
if_generation_match=0 and crc32c), then what changed under `sync_after` (e.g.
TensorBoard logs) is uploaded, and only then is it named by latest.json, written
last. A crash at any point leaves the previous pointer and its files intact;
restore reads the pointer and fetches exactly the files it names. Each
attempt's folder has a random suffix, so a crashed upload's leftovers never
collide with a later save of the same step. Retention follows the pointer's
`committed` list, not the folders present: after a newer pointer is in place,
every folder it does not list (orphans of crashed uploads first of all, then
commits older than the last `keep`) is deleted, and nothing it lists ever is.

    python -c "from trainer import checkpoints; help(checkpoints.CheckpointManager)"
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import statistics
import time
import uuid
from typing import Callable, Optional

import tensorflow as tf

from trainer import jobdir, storage
from trainer.errors import JobDirConflict

FOLDER = jobdir.CHECKPOINTS
POINTER = jobdir.CHECKPOINT_POINTER
_CKPT_DIR = re.compile(r"^ckpt-(\d{8})(-[0-9a-f]{8})?$")


class Snapshot:
    """A twin of a checkpoint's objects with plain variables, so a copy can be written off the training thread.

    `live` and `twin` list the variables of identically built objects in the
    same order; `checkpoint` is the tf.train.Checkpoint over the twin objects,
    with the same keys as the live one, so what it writes restores into the
    live objects."""

    def __init__(self, live: list, twin: list, checkpoint: tf.train.Checkpoint):
        mismatched = [(a.path, b.path) for a, b in zip(live, twin) if a.shape != b.shape or a.dtype != b.dtype]
        if len(live) != len(twin) or mismatched:
            raise ValueError(f"snapshot twin does not match the live variables: {mismatched[:3]}")
        self.checkpoint = checkpoint
        self._live, self._twin = live, twin

        @tf.function
        def copy():
            for target, value in zip(self._twin, self._live):
                target.assign(value)

        self.copy = copy


PHASES = ("wait", "copy", "write", "publish", "commit")


def committed_folders(pointer: Optional[dict]) -> list[str]:
    """The checkpoint folders a pointer names as committed, oldest first (older pointers: just their own)."""
    if not pointer:
        return []
    own = str(pointer["prefix"]).split("/")[0]
    listed = [f for f in pointer.get("committed", []) if isinstance(f, str) and step_of(f) is not None]
    return listed if own in listed else listed + [own]


def pointer_problem(pointer) -> str:
    """Why a parsed latest.json cannot be trusted ('' if it can): a whole-number step, a prefix and files
    inside one checkpoint folder of this job dir (a pointer edited by hand must not name files elsewhere)."""
    if not isinstance(pointer, dict) or not {"step", "prefix", "files"} <= set(pointer):
        return "no step, prefix and files"
    step, prefix, files = pointer["step"], pointer["prefix"], pointer["files"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return f"step {json.dumps(step)[:40]} is not a whole number"

    def inside(name) -> bool:
        parts = name.split("/") if isinstance(name, str) else []
        return (
            len(parts) >= 2
            and step_of(parts[0]) is not None
            and all(p not in ("", ".", "..") and "\\" not in p and "\0" not in p for p in parts)
        )

    if not inside(prefix):
        return f"prefix {str(prefix)[:80]!r} is not in a checkpoint folder"
    if not isinstance(files, list) or not files or not all(inside(f) for f in files):
        return "files must be a list of names in checkpoint folders"
    return ""


def step_of(folder: str) -> Optional[int]:
    match = _CKPT_DIR.match(folder)
    return int(match.group(1)) if match else None


class CheckpointManager:
    """Saves and restores a training state (anything with `checkpoint()` and `variables()`, e.g. a
    TrainState); `build_twin()` builds an identical state (its values are overwritten: no need to seed
    them), placed on the host, for background writes."""

    def __init__(
        self,
        store: storage.Store,
        state,
        *,
        keep: int,
        is_chief: bool,
        config_hash: str,
        earlier_hashes: tuple[str, ...] = (),
        build_twin: Callable[[], object],
        sync_after: tuple[str, ...] = (),
    ):
        self.store = store
        self.sync_after = sync_after  # store keys (e.g. tensorboard/) uploaded after each checkpoint
        self.checkpoint = state.checkpoint()
        self.keep = keep
        self.is_chief = is_chief
        self.config_hash = config_hash
        self.earlier_hashes = earlier_hashes  # the same job's hash as older versions wrote it (resumes too)
        self._state, self._build_twin = state, build_twin
        self.snapshot: Optional[Snapshot] = None  # built at the first save that is not the last
        self._uploader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ckpt-upload")
        self._pending: Optional[concurrent.futures.Future] = None
        self._pointer: Optional[dict] = None  # the pointer as this process last read or wrote it
        self._pointer_version = ""  # its version (GCS generation; locally a content hash); '' = none yet
        # Seconds per save and phase: 'copy' and 'wait' hold up training; the rest run in the background.
        self.timings: dict[str, list[float]] = {phase: [] for phase in PHASES}
        staging = store.local(FOLDER)
        if is_chief and os.path.isdir(staging):  # leftovers of killed runs; a live process's are locked
            for leftover in os.listdir(staging):
                if leftover.startswith(".tmp-") and not leftover.endswith(".lock"):
                    path = os.path.join(staging, leftover)
                    storage.remove_if_unowned(path, path + ".lock")

    def latest(self) -> Optional[dict]:
        data, version = self.store.read_versioned(POINTER)
        if data is None:
            self._pointer, self._pointer_version = None, ""
            return None
        try:
            pointer = json.loads(data.decode("utf-8"))
        except ValueError as err:  # not JSON, not UTF-8
            raise JobDirConflict(
                f"{self.store.url}/{POINTER} is unreadable ({type(err).__name__}); "
                "the job dir was modified by hand: use a new --job_dir or --overwrite"
            ) from None
        problem = pointer_problem(pointer)
        if problem:
            raise JobDirConflict(
                f"{self.store.url}/{POINTER} is not a checkpoint pointer ({problem}); "
                "use a new --job_dir or --overwrite"
            )
        self._pointer, self._pointer_version = pointer, version
        return pointer

    def restore(self) -> int:
        """Restores the latest complete checkpoint; returns its step (0 if none)."""
        pointer = self.latest()
        if pointer is None:
            return 0
        if pointer.get("config_hash") not in (self.config_hash, *self.earlier_hashes):
            raise JobDirConflict(
                f"{self.store.url}/{POINTER} was written by a different job configuration; "
                "use a new --job_dir or --overwrite"
            )
        for name in pointer["files"]:
            if not self.store.exists(f"{FOLDER}/{name}"):
                raise JobDirConflict(
                    f"checkpoint at step {pointer['step']} is missing {name}; the job dir was modified by hand"
                )
            self.store.fetch(f"{FOLDER}/{name}")  # GCS: download and verify; local: in place
        prefix = self.store.local(f"{FOLDER}/{pointer['prefix']}")
        try:
            self.checkpoint.read(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as err:
            first = str(err).strip().splitlines()[0][:200]
            raise JobDirConflict(
                f"checkpoint at step {pointer['step']} does not fit this model ({first}); "
                "use a new --job_dir or --overwrite"
            ) from None
        return int(pointer["step"])

    def save(self, step: int, last: bool = False) -> None:
        """Copies the state at `step` into the twin now; writes and publishes it on the background thread.

        `last=True` promises that nothing changes the state any more (the run's final save): the live
        state is written as it is, without the twin (still on the background thread; `close` waits)."""
        if not self.is_chief:
            return
        started = time.perf_counter()
        self.wait()  # one write and upload at a time, in step order (the twin is free again)
        self.timings["wait"].append(time.perf_counter() - started)
        started = time.perf_counter()
        name = f"ckpt-{step:08d}-{uuid.uuid4().hex[:8]}"
        staging = self.store.local(f"{FOLDER}/.tmp-{name}")
        os.makedirs(staging, exist_ok=True)
        owner = storage.own(staging, staging + ".lock")  # other processes' cleanups leave it alone
        if last:
            written = self.checkpoint
        else:
            if self.snapshot is None:
                with tf.device("/cpu:0"):
                    twin = self._build_twin()
                self.snapshot = Snapshot(self._state.variables(), twin.variables(), twin.checkpoint())
            self.snapshot.copy()  # variables are read now, at this step; written on the background thread
            written = self.snapshot.checkpoint
        self.timings["copy"].append(time.perf_counter() - started)
        self._pending = self._uploader.submit(self._publish, written, step, name, staging, owner)

    def _publish(self, written: tf.train.Checkpoint, step: int, name: str, staging: str, owner) -> None:
        try:
            self._write_and_commit(written, step, name, staging)
        finally:
            owner.close()
            if os.path.exists(staging + ".lock"):
                os.unlink(staging + ".lock")

    def _write_and_commit(self, written: tf.train.Checkpoint, step: int, name: str, staging: str) -> None:
        started = time.perf_counter()
        written.write(os.path.join(staging, "ckpt"))
        self.timings["write"].append(time.perf_counter() - started)
        started = time.perf_counter()
        files = sorted(
            os.path.relpath(os.path.join(d, f), staging).replace(os.sep, "/")
            for d, _, names in os.walk(staging)
            for f in names
        )
        self.store.publish_folder(staging, f"{FOLDER}/{name}")
        self.timings["publish"].append(time.perf_counter() - started)
        started = time.perf_counter()
        committed = (committed_folders(self._pointer) + [name])[-self.keep :]
        pointer = {
            "step": step,
            "prefix": f"{name}/ckpt",
            "files": [f"{name}/{f}" for f in files],
            "config_hash": self.config_hash,
            "committed": committed,
        }
        try:  # the commit, written last, and only over the pointer this process last saw
            version = self.store.replace_if(
                POINTER, (json.dumps(pointer, indent=2) + "\n").encode(), self._pointer_version
            )
        except storage.Changed:
            raise JobDirConflict(
                f"{self.store.url}/{POINTER} was rewritten by another process since this one "
                f"read it (a duplicate submission or a zombie VM?); this one stops at step {step} "
                "and leaves the job dir to the other"
            ) from None
        self._pointer, self._pointer_version = pointer, version
        if self.store.read_versioned(POINTER)[1] == version:  # still ours: nobody else will prune meanwhile
            self._prune(committed)
        for key in self.sync_after:  # logs follow the checkpoints, off the training thread
            self.store.sync_up(key)
        self.timings["commit"].append(time.perf_counter() - started)

    def describe_timings(self) -> str:
        """One line: median milliseconds per save and phase ('' before the first save)."""
        if not self.timings["copy"]:
            return ""
        ms = {phase: 1000 * statistics.median(values) for phase, values in self.timings.items() if values}
        return (
            f"checkpoints: {len(self.timings['copy'])} saved; training thread {ms['copy'] + ms['wait']:.0f} ms "
            f"each (copy {ms['copy']:.0f}, waiting for the previous save {ms['wait']:.0f}); background "
            + ", ".join(f"{phase} {ms[phase]:.0f}" for phase in ("write", "publish", "commit") if phase in ms)
            + " ms (medians)"
        )

    def wait(self) -> None:
        """Blocks until the last save is published (raises its error, if any)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        self.wait()
        self._uploader.shutdown(wait=True)

    def folders(self) -> list[str]:
        return [f for f in self.store.folders(FOLDER) if step_of(f) is not None]

    def _prune(self, committed: list[str]) -> None:
        """Deletes every checkpoint folder the pointer does not list: orphans (published, never named
        by a pointer: a crash between upload and pointer) and commits older than the last `keep`."""
        for folder in self.folders():
            if folder not in committed:
                self.store.delete(f"{FOLDER}/{folder}")
