"""Judge scores remembered by content, so a rerun trains only the classifiers it has not trained before.

    python -c "from trainer import score_cache; print(score_cache.ScoreCache.default().folder)"

A judge classifier's score is a function of what it was trained on and scored
on, its training rule and its seed (trainer/classifier.py trains
deterministically for a seed). `dcgan evaluate` and the usefulness experiment
train dozens of them; rerunning after an interruption, or evaluating a second
generator on the same training and test images, would train the baseline's
and the real-only classifiers again for the same numbers. `ScoreCache` keys
each score by a SHA-256 of everything that decides it (the images and labels
of both sets, the recipe: policy description, mix, balance, synthetic images,
share; the classifier spec and version; the seed; the score's name; the
TensorFlow and Keras versions, GPU or CPU and which CPU kernels (oneDNN's or
Eigen's: they round differently), and VERSION below) and keeps it in one
small JSON file per key under $DCGAN_CACHE/judge_scores. A file that is not a
regular file, is unreadable, or holds anything but the expected numbers counts
as absent (it is retrained and rewritten); writes are atomic, so jobs running at
once at worst compute a score twice.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import stat
import tempfile
from typing import Callable, Optional, Sequence

import numpy as np

from trainer import storage

FOLDER = "judge_scores"
# Part of every key: raise it when the augmentation policies (trainer/downstream.py, classic_augment.py) or
# the scores (trainer/classifier.py: accuracy, balanced accuracy, log-likelihood) change their numbers.
VERSION = 1


def digest_arrays(*arrays) -> str:
    """A SHA-256 of arrays' dtypes, shapes and bytes (None allowed), in order."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _software() -> tuple[str, str, str]:
    """(TensorFlow version, Keras version, 'gpu', 'cpu-onednn' or 'cpu-eigen'): asked once per process, not
    once per key."""
    import keras
    import tensorflow as tf

    from trainer import onednn

    if tf.config.list_physical_devices("GPU"):
        return tf.__version__, keras.__version__, "gpu"
    return tf.__version__, keras.__version__, "cpu-onednn" if onednn.active() else "cpu-eigen"


MAX_BYTES = 1 << 20  # a score file larger than this is damage (per-class sums of 1000 classes: ~60 kB)


def is_score(numbers: tuple) -> bool:
    """A score in [0, 1], then log-likelihoods <= 0 (NaN fails both)."""
    return 0.0 <= numbers[0] <= 1.0 and all(v <= 0.0 for v in numbers[1:])


@dataclasses.dataclass(frozen=True)
class ScoreCache:
    """Scores by key, one JSON file each under `folder` ('' = remember nothing)."""

    folder: str = ""

    @classmethod
    def default(cls) -> "ScoreCache":
        return cls(storage.cache_dir(FOLDER))

    def key(self, *, data: str, recipe: str, classifier: str, seed: int, score: str) -> str:
        """The file name for one score: `data` digests both image sets, `recipe` and `classifier` describe the
        training rule, `score` names the number (e.g. 'balanced_accuracy'). The key also holds VERSION, the
        TensorFlow and Keras versions and whether a GPU or which CPU kernels compute (they round differently)."""
        tf_version, keras_version, device = _software()
        text = json.dumps([VERSION, data, recipe, classifier, int(seed), score, tf_version, keras_version])
        return hashlib.sha256((text + device).encode()).hexdigest()[:32]

    def get(self, key: str, length: int, valid: Optional[Callable[[tuple], bool]] = None) -> Optional[tuple]:
        """The score stored under `key` (`length` numbers: a score in [0, 1], then log-likelihoods <= 0, or
        what `valid` accepts), or None: absent, not a regular file, unreadable, or anything else inside."""
        if not self.folder:
            return None
        try:
            fd = os.open(os.path.join(self.folder, key + ".json"), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return None  # a FIFO or device there would block or never end
                raw = f.read(MAX_BYTES + 1)
            if len(raw) > MAX_BYTES:
                return None
            value = json.loads(raw)
            numbers = value["value"] if isinstance(value, dict) and value.get("version") == 1 else None
            if not isinstance(numbers, list) or len(numbers) != length:
                return None
            if not all(type(v) in (int, float) for v in numbers):  # not bool, str, None, a list
                return None
            numbers = tuple(float(v) for v in numbers)  # OverflowError for a 400-digit integer: caught below
        except Exception:  # any damage (deeply nested JSON raises RecursionError): a miss, retrained
            return None
        return numbers if (valid or is_score)(numbers) else None

    def put(self, key: str, numbers: Sequence[float]) -> None:
        """Stores `numbers` under `key` atomically (a private temp file, then a rename); a cache that cannot be
        written is skipped, not fatal."""
        if not self.folder:
            return
        temp = None
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.folder, prefix=f".{key}.", suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump({"version": 1, "value": [float(v) for v in numbers]}, f)
            os.replace(temp, os.path.join(self.folder, key + ".json"))
        except OSError:
            if temp:
                try:
                    os.unlink(temp)
                except OSError:
                    pass
