"""The training input pipeline: per-replica batches of a TrainingData, reproducible and resumable.

Global batch g of a run holds examples [g*B, (g+1)*B) of an endless stream of
seeded epoch permutations; pipeline k of P emits its local replicas' slices of
it. So 1 replica x 2B and 2 replicas x B see the same data, and a resume at step
s starts at exactly batch s. Shards (local, or gs:// streamed through
trainer/shards/stream.py) are read in a seeded shard order through a shuffle buffer.

    python - <<'PY'
    from trainer import data, input_pipeline
    batches = input_pipeline.make_dataset(data.load_source('digits', 32), 8, seed=0)
    print(next(iter(batches))[0].shape)
    PY
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from trainer.data import TrainingData, resize_and_center_crop, to_model_range


def epoch_permutation(n: int, seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """The order of epoch `epoch`: a pure function of (seed, epoch)."""
    keys = tf.random.stateless_uniform([n], seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)]))
    return tf.argsort(keys)


def make_dataset(
    source: TrainingData,
    global_batch: int,
    seed: int,
    start_step: int = 0,
    input_context: Optional[tf.distribute.InputContext] = None,
) -> tf.data.Dataset:
    """Per-replica batches (images in [-1, 1], int32 labels) for one input pipeline.

    Global batch g of the run holds examples [g*B, (g+1)*B) of an endless stream
    of seeded epoch permutations; pipeline k of P emits its R local replicas'
    consecutive slices of it. So 1 replica x 2B and 2 replicas x B see the same
    data, and a resume at step s starts at exactly batch s.
    """
    pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline = input_context.input_pipeline_id if input_context else 0
    per_replica = input_context.get_per_replica_batch_size(global_batch) if input_context else global_batch
    local_replicas = global_batch // (pipelines * per_replica)
    if not source.in_memory:
        return _stream_shards(source, per_replica, seed, start_step, pipeline, pipelines)

    n = source.num_examples
    images = tf.constant(source.images)
    labels = tf.constant(source.labels if source.labels is not None else np.zeros([n], np.int32))
    start = start_step * global_batch
    first_epoch, offset = divmod(start, n)
    order = (
        tf.data.Dataset.range(first_epoch, 2**62)
        .flat_map(lambda e: tf.data.Dataset.from_tensor_slices(epoch_permutation(n, seed, e)))
        .skip(offset)
        .batch(global_batch, drop_remainder=True)
    )
    lo, hi = pipeline * local_replicas * per_replica, (pipeline + 1) * local_replicas * per_replica

    def gather(index_batch):
        mine = index_batch[lo:hi]
        x = to_model_range(tf.gather(images, mine))
        y = tf.gather(labels, mine)
        return (
            tf.reshape(x, [local_replicas, per_replica, *source.images.shape[1:]]),
            tf.reshape(y, [local_replicas, per_replica]),
        )

    ds = order.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
    return ds.prefetch(tf.data.AUTOTUNE)


def _stream_shards(
    source: TrainingData, per_replica: int, seed: int, start_step: int, pipeline: int, pipelines: int
) -> tf.data.Dataset:
    from trainer import shards
    from trainer.shards import stream as shard_stream

    by_file = len(source.shard_files) >= pipelines
    # Local and streamed shards alike are read by Python (shards.LocalShards, shard_stream.ShardStream), every
    # shard checked against the manifest and every record checked before TensorFlow parses it: a damaged one
    # surfaces as an error naming it, never as records silently dropped (no ignore_errors: repeated over
    # unreadable input, it spun forever).
    mine = list(range(len(source.shard_files)))[pipeline::pipelines] if by_file else None
    records = shard_stream.records(source.stream, shuffle=True, seed=seed + start_step, shard_indices=mine).repeat()
    if not by_file:
        records = records.shard(pipelines, pipeline)

    def parse(record):
        image, label = shards.parse_example(record, source.channels)
        image = resize_and_center_crop(tf.cast(image, tf.float32) / 255.0, source.resolution)
        image = tf.ensure_shape(image * 2.0 - 1.0, [source.resolution, source.resolution, source.channels])
        return image, tf.maximum(label, 0)

    ds = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.shuffle(shuffle_buffer(source, pipelines, per_replica), seed=seed + start_step)
    ds = ds.batch(per_replica, drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


SHUFFLE_BUFFER = 10_000  # records; at most


def shuffle_buffer(source: TrainingData, pipelines: int, per_replica: int) -> int:
    """The records shuffled together: SHUFFLE_BUFFER, or one pass over this pipeline's share of a smaller
    output (filling 10,000 from a 3-shard output repeated the stream, downloading each shard hundreds of
    times before the first step)."""
    if not source.num_examples:
        return SHUFFLE_BUFFER
    return max(per_replica, min(SHUFFLE_BUFFER, -(-int(source.num_examples) // max(1, pipelines))))
