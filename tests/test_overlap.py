"""Content-hash overlap between image sets (trainer/overlap.py)."""

import numpy as np

from trainer import data, overlap


def test_overlap_is_by_content_not_by_name():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (10, 8, 8, 3), dtype=np.uint8)
    b = np.concatenate([a[3:6], rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)])
    found = overlap.pair("a", a, "b", b)
    assert (found.shared, found.disjoint, found.a_count, found.b_count) == (3, False, 10, 7)
    changed = a.copy()
    changed[:, 0, 0, 0] ^= 1  # one pixel differs: another image
    assert overlap.count(changed, a) == 0
    assert overlap.count(a.reshape(10, 8, 24, 1), a) == 0  # same bytes, another shape: another image


def test_digits_splits_are_disjoint_and_the_whole_set_is_not():
    train, test = data.load_source("digits:train", 32), data.load_source("digits:test", 32)
    assert overlap.count(test.images, train.images) == 0
    assert overlap.count(test.images, data.load_source("digits", 32).images) == len(test.images) == 539
