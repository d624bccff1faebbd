"""TensorBoard output, written by the chief only: scalars, sample grids, HParams, profiles.

Tags written by `dcgan train` (all under JOB_DIR/tensorboard/):
    loss/d, loss/g, d/real, d/fake (mean sigmoid of the logits), r1, grad_norm/d, grad_norm/g,
    lr/d, lr/g, perf/images_per_sec;
    diffaugment/p, diffaugment/rt (with DiffAugment on; rt = E[sign D(real)], ADA's signal);
    loss_scale/d, loss_scale/g, mixed_precision/skipped_steps (float16 only);
    quality/kid, quality/best_kid (with --kid_every), quality/class_consistency and
    quality/best_class_consistency (conditional, --select_by=class_consistency);
    lecam/real_logit, lecam/fake_logit (--lecam_weight); class/real_accuracy, class/fake_accuracy
    (--class_loss_weight), class/twin_accuracy (--class_loss=tac); class/strength (--class_fade_in);
    the image `samples` (G_ema on fixed noise, a row per class, captioned), and the run's
    settings for the HParams dashboard. --profile_steps=A,B adds a profile (plugins/profile/).

    tensorboard --logdir JOB_DIR/tensorboard

While training runs, `LiveLogs` flushes the event file every
--tensorboard_upload_secs and copies what changed to a gs:// job dir and to
Vertex AI's AIP_TENSORBOARD_LOG_DIR, so TensorBoard follows a remote run.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import threading
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from trainer import data


def image_grid(images: np.ndarray, columns: int = 0) -> np.ndarray:
    """[N, H, W, C] in [-1, 1] -> one uint8 [rows*H, cols*W, C] picture, 1px gaps."""
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.zeros([rows * (h + 1) + 1, columns * (w + 1) + 1, c], np.uint8)
    pixels = data.to_uint8(images)
    for i in range(n):
        r, col = divmod(i, columns)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = pixels[i]
    return grid


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """Where each class sits in the sample grids: unconditional, 2-8 rows of 8; conditional, a row per
    class (the first 16 classes), each row labelled with its class name in samples/*.png and in
    TensorBoard's description of the image."""

    columns: int
    labels: tuple[int, ...]  # the class of each cell, row by row
    class_names: tuple[str, ...] = ()
    row_names: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def caption(self) -> str:
        if not self.row_names:
            return "G_ema samples from fixed noise"
        return "G_ema samples from fixed noise, a row per class: " + "; ".join(
            f"row {r + 1}: {name}" for r, name in enumerate(self.row_names)
        )

    @classmethod
    def of(cls, num_classes: int, class_names, global_batch: int) -> "GridLayout":
        columns = 8
        if not num_classes:
            return cls(columns, (0,) * min(64, max(16, global_batch)))
        names = tuple(class_names) if len(class_names) == num_classes else tuple(str(c) for c in range(num_classes))
        rows = min(num_classes, 16)
        return cls(
            columns,
            tuple(r for r in range(rows) for _ in range(columns)),
            names,
            tuple(f"{r}: {names[r]}" if names[r] != str(r) else str(r) for r in range(rows)),
        )


class Profiler:
    """--profile_steps=A,B: a TensorBoard profile (trace viewer, op stats) of steps A to B, in the logs."""

    def __init__(self, steps: tuple[int, int], logdir: str, enabled: bool):
        self.first, self.last = steps
        self.logdir, self.enabled, self.running = logdir, enabled and self.last > 0, False

    def next_boundary(self, step: int) -> int:
        """The next step where profiling starts or stops (so that a call of several steps stops there).
        The same on every worker, profiling or not: all must run the same compiled calls."""
        return min((b for b in (self.first, self.last) if b > step and self.last > 0), default=2**62)

    def before(self, step: int) -> None:
        if self.enabled and not self.running and self.first <= step < self.last:
            tf.profiler.experimental.start(self.logdir)
            self.running = True

    def after(self, step: int) -> None:
        if self.running and step >= self.last:
            tf.profiler.experimental.stop()
            self.running = False
            print(
                f"profile of steps {self.first}-{self.last} written to {self.logdir}/plugins/profile "
                "(TensorBoard's Profile tab)"
            )


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
                    print(
                        f"warning: TensorBoard log upload failed ({type(err).__name__}: {str(err)[:200]}); "
                        "retrying every tick",
                        file=sys.stderr,
                    )
        self.ticks += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
