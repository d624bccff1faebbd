"""The step's loss terms that are not in losses.py: the mode-seeking term of --mode_seeking_weight."""

import numpy as np
import tensorflow as tf

from trainer import train_step


def test_mode_seeking_penalises_pairs_that_look_alike_and_is_shared_by_the_pair():
    rng = np.random.default_rng(0)
    z = tf.constant(rng.normal(size=(4, 8)), tf.float32)
    same = tf.constant(np.repeat(rng.uniform(-1, 1, size=(2, 4, 4, 1)), 2, axis=0), tf.float32)  # pairs identical
    distinct = tf.constant(rng.uniform(-1, 1, size=(4, 4, 4, 1)), tf.float32)
    alike, apart = train_step._mode_seeking_loss(z, same).numpy(), train_step._mode_seeking_loss(z, distinct).numpy()
    assert alike.shape == apart.shape == (4,)
    assert alike[0] == alike[1] and apart[2] == apart[3]  # one value per pair, on both of its samples
    assert np.all(alike > 1000 * apart)  # collapsed pairs cost far more
    # The term is a ratio: scaling the image gap by 2 halves it.
    wider = train_step._mode_seeking_loss(z, 2.0 * distinct).numpy()
    np.testing.assert_allclose(wider, apart / 2, rtol=1e-3)
