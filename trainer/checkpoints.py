"""Checkpoints that are either complete or invisible.

Layout under JOB_DIR/checkpoints/:
    ckpt-00000100/ckpt.index, ckpt.data-*   one tf.train.Checkpoint.write()
    latest.json                            the pointer: step, prefix, files, config hash

A checkpoint is written into a hidden temp folder, renamed into place whole,
and only then named by latest.json (replaced atomically). A crash at any point
leaves the previous pointer and its files intact; restore reads the pointer and
nothing else. Older checkpoints beyond `keep` are deleted only after a newer
pointer is in place. In multi-worker runs every worker takes part in the
write (TF requires it); non-chief workers write to a temp dir they delete.

    python -c "from trainer import checkpoints; help(checkpoints.CheckpointManager)"
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from typing import Optional

import tensorflow as tf

from trainer import storage
from trainer.errors import JobDirConflict

FOLDER = "checkpoints"
POINTER = f"{FOLDER}/latest.json"
_CKPT_DIR = re.compile(r"^ckpt-(\d{8})$")


class CheckpointManager:
    def __init__(self, store: storage.Store, checkpoint: tf.train.Checkpoint, *,
                 keep: int, is_chief: bool, config_hash: str):
        self.store = store
        self.checkpoint = checkpoint
        self.keep = keep
        self.is_chief = is_chief
        self.config_hash = config_hash
        if is_chief:
            for leftover in os.listdir(store.path(FOLDER)) if store.exists(FOLDER) else []:
                if leftover.startswith(".tmp-"):
                    shutil.rmtree(store.path(f"{FOLDER}/{leftover}"), ignore_errors=True)

    def latest(self) -> Optional[dict]:
        if not self.store.exists(POINTER):
            return None
        return json.loads(self.store.get_text(POINTER))

    def restore(self) -> int:
        """Restores the latest complete checkpoint; returns its step (0 if none)."""
        pointer = self.latest()
        if pointer is None:
            return 0
        if pointer.get("config_hash") != self.config_hash:
            raise JobDirConflict(f"{self.store.path(POINTER)} was written by a different job configuration; "
                                 "use a new --job_dir or --overwrite")
        prefix = self.store.path(f"{FOLDER}/{pointer['prefix']}")
        missing = [f for f in pointer["files"] if not self.store.exists(f"{FOLDER}/{f}")]
        if missing:
            raise JobDirConflict(f"checkpoint at step {pointer['step']} is missing {missing[0]}; "
                                 "the job dir was modified by hand")
        try:
            self.checkpoint.read(prefix).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as err:
            first = str(err).strip().splitlines()[0][:200]
            raise JobDirConflict(f"checkpoint at step {pointer['step']} does not fit this model ({first}); "
                                 "use a new --job_dir or --overwrite") from None
        return int(pointer["step"])

    def save(self, step: int) -> None:
        """Writes checkpoint `step` and publishes it (chief) or discards it (others)."""
        name = f"ckpt-{step:08d}"
        if not self.is_chief:
            scratch = tempfile.mkdtemp(prefix="dcgan-worker-ckpt-")
            try:
                self.checkpoint.write(os.path.join(scratch, "ckpt"))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            return
        temp_key = f"{FOLDER}/.tmp-{name}-{uuid.uuid4().hex[:8]}"
        os.makedirs(self.store.path(temp_key), exist_ok=True)
        self.checkpoint.write(os.path.join(self.store.path(temp_key), "ckpt"))
        final_key = f"{FOLDER}/{name}"
        self.store.delete(final_key)  # an unpublished leftover of a crashed save
        os.replace(self.store.path(temp_key), self.store.path(final_key))
        files = [k[len(FOLDER) + 1:] for k in self.store.list(final_key)]
        pointer = {"step": step, "prefix": f"{name}/ckpt", "files": files, "config_hash": self.config_hash}
        self.store.put(POINTER, (json.dumps(pointer, indent=2) + "\n").encode())
        self._prune(step)

    def steps(self) -> list[int]:
        if not self.store.exists(FOLDER):
            return []
        found = [_CKPT_DIR.match(n) for n in os.listdir(self.store.path(FOLDER))]
        return sorted(int(m.group(1)) for m in found if m)

    def _prune(self, newest: int) -> None:
        for old in self.steps()[:-self.keep]:
            if old < newest:
                self.store.delete(f"{FOLDER}/ckpt-{old:08d}")
