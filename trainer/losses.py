"""GAN losses, per example (the caller averages them over the *global* batch).

Each loss is a pair of functions on float32 logits:
  d(real_logits, fake_logits) -> [B]   discriminator loss per example
  g(fake_logits)              -> [B]   generator loss per example
The trainer takes a `GanLoss` as an argument, so a new loss is one entry here.
The optional terms added to them per example live here too: R1 (D), the
AC-GAN class cross-entropy (D and G) and mode seeking (G).

    python -c "import tensorflow as tf; from trainer.losses import get; print(get('hinge').d(tf.ones(2), tf.ones(2)))"
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class GanLoss:
    name: str
    d: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    g: Callable[[tf.Tensor], tf.Tensor]


def _softplus(x):
    return tf.nn.softplus(x)


NON_SATURATING = GanLoss(
    "nonsaturating",
    # -log sigmoid(r) - log(1 - sigmoid(f)), written stably with softplus.
    d=lambda real, fake: _softplus(-real) + _softplus(fake),
    # -log sigmoid(f): Goodfellow's non-saturating generator loss.
    g=lambda fake: _softplus(-fake),
)

HINGE = GanLoss(
    "hinge",
    d=lambda real, fake: tf.nn.relu(1.0 - real) + tf.nn.relu(1.0 + fake),
    g=lambda fake: -fake,
)

LEAST_SQUARES = GanLoss(
    "lsgan",
    d=lambda real, fake: 0.5 * tf.square(real - 1.0) + 0.5 * tf.square(fake),
    g=lambda fake: 0.5 * tf.square(fake - 1.0),
)

_ALL = {loss.name: loss for loss in (NON_SATURATING, HINGE, LEAST_SQUARES)}


def get(name: str) -> GanLoss:
    return _ALL[name]


def r1_penalty(real_logits_fn: Callable[[tf.Tensor], tf.Tensor], real_images: tf.Tensor) -> tf.Tensor:
    """Per-example ||grad_x D(x)||^2 on reals (Mescheder et al. 2018); [B], float32.

    Multiply by gamma / 2 before adding to the discriminator loss. With --minibatch_std an image's gradient
    also holds the other logits of its group (the gradient of the sum), as in StyleGAN2.
    """
    real_images = tf.cast(real_images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        total = tf.reduce_sum(tf.cast(real_logits_fn(real_images), tf.float32))
    grads = tf.cast(tape.gradient(total, real_images), tf.float32)
    return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])


def lecam(real_logits: tf.Tensor, fake_logits: tf.Tensor, averages: tf.Tensor) -> tf.Tensor:
    """Per-example LeCam regulariser (Tseng et al. 2021), float32; [B].

    relu(D(x) - avg D(fake))^2 + relu(avg D(real) - D(G(z)))^2, with `averages` = [avg D(real), avg D(fake)]:
    D's logits are kept from drifting further apart than its recent history, which on few images stops
    D from memorising them (a bound on the LeCam divergence, a weighted divergence sturdier than JS)."""
    real, fake = tf.cast(real_logits, tf.float32), tf.cast(fake_logits, tf.float32)
    return tf.square(tf.nn.relu(real - averages[1])) + tf.square(tf.nn.relu(averages[0] - fake))


def class_cross_entropy(labels: tf.Tensor, class_logits: tf.Tensor) -> tf.Tensor:
    """Per-example cross-entropy of D's class head (AC-GAN; --class_loss_weight), float32; [B]."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(class_logits, tf.float32))


def mode_seeking(z: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
    """MSGAN (Mao et al. 2019), per example: samples 2k and 2k+1 (same label, different z) should differ
    in proportion to their z: 1 / (mean |x_2k - x_2k+1| / mean |z_2k - z_2k+1|), shared by the pair."""
    images = tf.cast(images, tf.float32)
    image_gap = tf.reduce_mean(tf.abs(images[0::2] - images[1::2]), axis=[1, 2, 3])
    z_gap = tf.reduce_mean(tf.abs(z[0::2] - z[1::2]), axis=1)
    per_pair = 1.0 / (image_gap / z_gap + 1e-5)
    return tf.repeat(per_pair, 2)
