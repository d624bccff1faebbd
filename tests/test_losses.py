"""GAN losses, the R1 penalty and the optional terms (class cross-entropy, mode seeking, LeCam) on known values"""

import numpy as np
import tensorflow as tf

from trainer import losses


def test_losses_known_values():
    real, fake = tf.constant([2.0, -1.0]), tf.constant([-3.0, 0.5])
    ns = losses.get("nonsaturating")
    expected = np.log1p(np.exp(-real.numpy())) + np.log1p(np.exp(fake.numpy()))
    np.testing.assert_allclose(ns.d(real, fake).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(ns.g(fake).numpy(), np.log1p(np.exp(-fake.numpy())), rtol=1e-6)
    np.testing.assert_allclose(losses.get("hinge").d(real, fake).numpy(), [0 + 0, 2 + 1.5])
    np.testing.assert_allclose(losses.get("hinge").g(fake).numpy(), [3.0, -0.5])
    np.testing.assert_allclose(losses.get("lsgan").d(real, fake).numpy(), [0.5 + 4.5, 2.0 + 0.125])
    # Stable for huge logits (no inf from exp overflow).
    assert np.isfinite(ns.d(tf.constant([-1e4]), tf.constant([1e4])).numpy()).all()


def test_r1_penalty_is_squared_input_gradient():
    x = tf.random.normal([3, 4, 4, 1])
    penalty = losses.r1_penalty(lambda im: tf.reduce_sum(2.0 * im, axis=[1, 2, 3]), x)
    np.testing.assert_allclose(penalty.numpy(), [4.0 * 16] * 3, rtol=1e-6)


def test_mode_seeking_penalises_pairs_that_look_alike_and_is_shared_by_the_pair():
    rng = np.random.default_rng(0)
    z = tf.constant(rng.normal(size=(4, 8)), tf.float32)
    same = tf.constant(np.repeat(rng.uniform(-1, 1, size=(2, 4, 4, 1)), 2, axis=0), tf.float32)  # pairs identical
    distinct = tf.constant(rng.uniform(-1, 1, size=(4, 4, 4, 1)), tf.float32)
    alike, apart = losses.mode_seeking(z, same).numpy(), losses.mode_seeking(z, distinct).numpy()
    assert alike.shape == apart.shape == (4,)
    assert alike[0] == alike[1] and apart[2] == apart[3]  # one value per pair, on both of its samples
    assert np.all(alike > 1000 * apart)  # collapsed pairs cost far more
    # The term is a ratio: scaling the image gap by 2 halves it.
    wider = losses.mode_seeking(z, 2.0 * distinct).numpy()
    np.testing.assert_allclose(wider, apart / 2, rtol=1e-3)


def test_class_cross_entropy_is_per_example_and_float32():
    logits = tf.constant([[2.0, 0.0, 0.0], [0.0, 0.0, 5.0]], tf.bfloat16)
    ce = losses.class_cross_entropy(tf.constant([0, 1]), logits).numpy()
    expected = [-np.log(np.exp(2) / (np.exp(2) + 2)), -np.log(1 / (2 + np.exp(5)))]
    assert ce.dtype == np.float32
    np.testing.assert_allclose(ce, expected, rtol=1e-2)


def test_lecam_penalises_only_logits_beyond_the_other_kinds_average():
    averages = tf.constant([1.0, -1.0])  # [avg D(real), avg D(fake)]
    real = tf.constant([0.5, -2.0, 3.0], tf.bfloat16)  # above avg D(fake) = -1 by 1.5, (below: 0), 4
    fake = tf.constant([2.0, 0.0, -1.0], tf.bfloat16)  # below avg D(real) = 1 by (none), 1, 2
    reg = losses.lecam(real, fake, averages)
    assert reg.dtype == tf.float32
    np.testing.assert_allclose(reg.numpy(), [1.5**2 + 0, 0 + 1.0, 4.0**2 + 2.0**2])
