"""Helpers shared by test modules (not fixtures)."""

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator


def read_scalars(logdir, tag):
    """A scalar series read back with TensorBoard's own reader (TF2 writes tensors)."""
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
