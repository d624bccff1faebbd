"""GAN losses and the R1 penalty on known values"""

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
