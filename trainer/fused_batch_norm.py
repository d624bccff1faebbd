"""BatchNormalization whose training-mode step is TensorFlow's fused kernel.

Keras 3's BatchNormalization computes a batch's statistics as separate
Mean / SquaredDifference / Sub / Mul ops in float32, forward and backward; on a
CPU they were ~22% of the bfloat16 training step's op time (`python -m bench ops`).
`FusedBatchNormalization` does the same math with one `FusedBatchNormV3` op and
its one gradient op (`python -m bench batchnorm`: 1.12x float32, 1.26x bfloat16
at 64x64x3):

- the same variables (gamma, beta, moving_mean, moving_variance) and names, so
  checkpoints, `get_weights` and a stock BatchNormalization are interchangeable;
- the same moving averages: the fused op returns the batch variance with
  Bessel's correction, which is undone here, as Keras keeps the biased one;
- inference, masks, synchronized (cross-replica) statistics, renorm and axes
  other than the last go to Keras' own code path unchanged.

    python -c "from trainer.fused_batch_norm import FusedBatchNormalization as F; print(F().get_config())"
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="dcgan")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization with a fused training step (channels last, per-replica statistics)."""

    def _fusable(self, inputs, training, mask) -> bool:
        return (
            bool(training)
            and self.trainable
            and mask is None
            and not self.synchronized
            and not self.renorm
            and self.axis in (-1, len(inputs.shape) - 1)
            and inputs.shape[-1] is not None
            and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16)
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        rank = len(inputs.shape)
        # The fused op wants NHWC: [B, C] goes in as [B, 1, 1, C]; [B, ..., H, W, C] as [B*..., H, W, C].
        x = inputs if rank == 4 else tf.reshape(inputs, [-1, 1, 1, channels] if rank < 4 else [-1, *inputs.shape[-3:]])
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        y, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=scale,
            offset=offset,
            mean=tf.zeros([0], tf.float32),
            variance=tf.zeros([0], tf.float32),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        count = tf.cast(tf.size(x, out_type=tf.int64) // channels, tf.float32)
        variance = tf.math.divide_no_nan(corrected_variance * (count - 1.0), count)
        mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        if rank != 4:
            y = tf.reshape(y, tf.shape(inputs))
        return tf.cast(y, self.compute_dtype)
