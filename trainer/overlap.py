"""Which images are the same images: content hashes, so that test data is never silently training data.

Two image sets are compared by a sha256 of each image's uint8 pixels at the
resolution both were loaded at, not by file name: `digits` and `digits:test`,
or `photos/` and a copy of some of its files under another name, overlap even
though their names differ. (Re-encoded or resized copies are not caught: the
memorization check in `dcgan evaluate` measures near-copies.)

    python -c "import numpy as np; from trainer.overlap import count; x = np.zeros((2, 4, 4, 1)); print(count(x, x))"
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np


def hashes(images: np.ndarray) -> list[str]:
    """One sha256 per image of its uint8 pixels (and shape)."""
    images = np.ascontiguousarray(images)
    shape = repr(images.shape[1:]).encode()
    return [hashlib.sha256(shape + image.tobytes()).hexdigest() for image in images]


def count(a: np.ndarray, b: np.ndarray) -> int:
    """How many images of `a` also occur (pixel for pixel) in `b`."""
    seen = set(hashes(b))
    return sum(h in seen for h in hashes(a))


@dataclasses.dataclass(frozen=True)
class Pair:
    """The overlap of image set `a` with image set `b`."""

    a: str
    b: str
    a_count: int
    b_count: int
    shared: int  # images of a that also occur in b

    @property
    def disjoint(self) -> bool:
        return self.shared == 0

    def as_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "a_images": self.a_count,
            "b_images": self.b_count,
            "shared": self.shared,
            "disjoint": self.disjoint,
        }


def pair(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> Pair:
    return Pair(a_name, b_name, len(a), len(b), count(a, b))
