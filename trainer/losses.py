"""GAN losses, per example (the caller averages them over the *global* batch).

Each loss is a pair of functions on float32 logits:
  d(real_logits, fake_logits) -> [B]   discriminator loss per example
  g(fake_logits)              -> [B]   generator loss per example
The trainer takes a `GanLoss` as an argument, so a new loss is one entry here.

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

    Multiply by gamma / 2 before adding to the discriminator loss.
    """
    real_images = tf.cast(real_images, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        total = tf.reduce_sum(tf.cast(real_logits_fn(real_images), tf.float32))
    grads = tf.cast(tape.gradient(total, real_images), tf.float32)
    return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])
