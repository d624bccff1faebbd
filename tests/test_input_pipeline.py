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


def test_a_small_shard_output_is_read_a_pass_or_two_per_buffer_not_hundreds_of_times(tmp_path):
    """The shuffle buffer is sized to the data: filling 10,000 records from an 80-record output read it 125
    times over before the first batch (a streamed smoke output was downloaded 766 times in one run)."""
    from test_hostile_shards import RES, good_records, write_output

    out = tmp_path / "out"
    write_output(out, [good_records(40, seed=s) for s in range(2)])
    source = data.load_source(str(out), RES, 0)
    batches = list(input_pipeline.make_dataset(source, 8, seed=0).take(3))
    assert len(batches) == 3 and batches[0][0].shape == (8, RES, RES, 1)
    assert source.stream.shards_read <= 8, source.stream.shards_read
