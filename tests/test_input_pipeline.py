"""The input pipeline: batch order a pure function of (seed, step); replicas and pipelines split each
global batch exactly."""

import numpy as np
import tensorflow as tf

from trainer import data, input_pipeline


def batches(source, global_batch, seed, start, count, context=None):
    ds = input_pipeline.make_dataset(source, global_batch, seed, start, context)
    return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]


def test_pipeline_order_is_a_function_of_seed_and_step():
    source = data.load_source("digits", 32, 1)
    full = batches(source, 64, 7, 0, 40)  # 40 x 64 > 1797: crosses an epoch boundary
    resumed = batches(source, 64, 7, 25, 15)
    for (a, la), (b, lb) in zip(full[25:], resumed):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    x, _ = full[0]
    assert x.shape == (64, 32, 32, 1) and x.dtype == np.float32 and -1 <= x.min() and x.max() <= 1
    assert not np.array_equal(full[0][0], batches(source, 64, 8, 0, 1)[0][0])


def test_pipelines_split_each_global_batch_exactly():
    source = data.load_source("digits", 32, 1)
    whole = batches(source, 8, 3, 5, 2)
    # 2 input pipelines (workers) with 2 replicas each: per-replica batch 2.
    parts = [batches(source, 8, 3, 5, 4, tf.distribute.InputContext(2, k, 4)) for k in range(2)]
    for step in range(2):
        got = np.concatenate([parts[k][2 * step + r][1] for k in range(2) for r in range(2)])
        np.testing.assert_array_equal(got, whole[step][1])
