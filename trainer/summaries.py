"""TensorBoard output: scalars and image grids, written by the chief only.

Tags written by `dcgan train` (all under JOB_DIR/tensorboard/):
    loss/d, loss/g, d/real, d/fake (mean sigmoid of the logits), grad_norm/d,
    grad_norm/g, lr/d, lr/g, loss_scale/d, loss_scale/g (float16 only),
    perf/images_per_sec, and the image `samples` (G_ema on fixed noise).

    tensorboard --logdir JOB_DIR/tensorboard

While training runs, `LiveLogs` flushes the event file every
--tensorboard_upload_secs and copies what changed to a gs:// job dir and to
Vertex AI's AIP_TENSORBOARD_LOG_DIR, so TensorBoard follows a remote run.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf


def image_grid(images: np.ndarray, columns: int = 0) -> np.ndarray:
    """[N, H, W, C] in [-1, 1] -> one uint8 [rows*H, cols*W, C] picture, 1px gaps."""
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.zeros([rows * (h + 1) + 1, columns * (w + 1) + 1, c], np.uint8)
    pixels = to_uint8(images)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + col * (w + 1): 1 + col * (w + 1) + w] = pixels[i]
    return grid


def to_uint8(images) -> np.ndarray:
    """Generator output in [-1, 1] -> uint8 pixels."""
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


class Summaries:
    """A file writer that does nothing on non-chief workers."""

    def __init__(self, logdir: str, enabled: bool, flush_secs: float = 120.0):
        self.enabled, self.logdir = enabled, logdir
        self.writer = tf.summary.create_file_writer(logdir, flush_millis=int(flush_secs * 1000)) if enabled else None

    def scalars(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, float(value))

    def image(self, step: int, tag: str, picture: np.ndarray, description: str | None = None) -> None:
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            tf.summary.image(tag, picture[None], max_outputs=1, description=description)

    def hparams(self, values: dict, trial_id: str) -> None:
        """The run's settings for TensorBoard's HParams dashboard (its metrics are the scalars, e.g. quality/kid)."""
        if not self.enabled:
            return
        from tensorboard.plugins.hparams import api as hp

        kept = {k: v for k, v in values.items() if isinstance(v, (bool, int, float, str))}
        with self.writer.as_default():
            hp.hparams(kept, trial_id=trial_id)

    def flush(self) -> None:
        if self.enabled:
            self.writer.flush()

    def close(self) -> None:
        if self.enabled:
            self.writer.close()


class LiveLogs:
    """A periodic action on its own thread: flush the event file, then run each upload.

    `uploads` are callables (a store's sync of the log folder, a mirror into
    AIP_TENSORBOARD_LOG_DIR). An upload that fails is reported once on stderr and
    retried at the next tick: logs must never stop training. `close()` stops the
    thread; the caller does the final, checked upload."""

    def __init__(self, writer: Summaries, uploads: Sequence[Callable[[], object]], every_secs: float):
        self.writer, self.uploads, self.every_secs = writer, list(uploads), every_secs
        self.ticks, self.failures = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tensorboard-upload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_secs):
            self.tick()

    def tick(self) -> None:
        self.writer.flush()
        for upload in self.uploads:
            try:
                upload()
            except Exception as err:  # noqa: BLE001 - a network error must not end the run
                self.failures += 1
                if self.failures == 1:
                    print(f"warning: TensorBoard log upload failed ({type(err).__name__}: {str(err)[:200]}); "
                          "retrying every tick", file=sys.stderr)
        self.ticks += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
