"""The shard record format (trainer/shards.py): the hand encoder against protobuf, soft labels."""

import hashlib
import os
import random

import numpy as np
import tensorflow as tf

from trainer import shards


def make_example_proto(
    png: bytes,
    height: int,
    width: int,
    channels: int,
    label: int,
    source: str,
    seed: int,
    generator_step: int,
    probs=None,
    image_format: str = "png",
) -> bytes:
    """The same record built as a protobuf message: the reference the hand encoder is tested against."""

    def ints(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    def raw(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    features = {
        "image/encoded": raw(png),
        "image/format": raw(image_format.encode()),
        "image/height": ints(height),
        "image/width": ints(width),
        "image/channels": ints(channels),
        "image/class/label": ints(label),
        "image/source": raw(source.encode()),
        "image/key/sha256": raw(hashlib.sha256(png).hexdigest().encode()),
        "synthetic/seed": ints(seed),
        "synthetic/generator_step": ints(generator_step),
    }
    if probs is not None:
        features["image/class/probs"] = tf.train.Feature(float_list=tf.train.FloatList(value=list(probs)))
        features["image/teacher/confidence"] = tf.train.Feature(float_list=tf.train.FloatList(value=[probs[label]]))
    # deterministic=True: protobuf map order otherwise varies between processes.
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)


def test_hand_encoded_examples_are_byte_identical_to_protobuf():
    rng = random.Random(0)
    for _ in range(500):
        png = os.urandom(rng.choice([0, 1, 127, 128, 300, 20000]))
        label = rng.choice([0, 1, 9])
        probs = rng.choice([None, np.random.default_rng(rng.randrange(99)).dirichlet(np.ones(10)).astype(np.float32)])
        args = (
            png,
            rng.choice([32, 256]),
            rng.choice([32, 256]),
            rng.choice([1, 3]),
            label if probs is not None else rng.choice([-1, 0, 9, 1000]),
            rng.choice(["synthetic", "augmented"]),
            rng.choice([0, 2**40, 2**62, -1]),
            rng.choice([-1, 0, 3000]),
        )
        png, height, width, channels, label, source, seed, step = args
        encoder = shards.ExampleEncoder(height, width, channels, source, step)
        assert encoder.encode(png, label, seed, probs) == make_example_proto(*args, probs=probs)


def test_one_encoder_reused_across_records_and_formats_matches_protobuf():
    rng = random.Random(1)
    for image_format in ("png", "jpeg", "raw"):
        encoder = shards.ExampleEncoder(32, 32, 3, "synthetic", 7, image_format)
        for _ in range(200):  # the encoder caches label entries and length prefixes: reuse must not leak
            blob = os.urandom(rng.choice([0, 5, 127, 128, 3072, 16384]))
            label, seed = rng.choice([-1, 0, 3, 9]), rng.choice([0, 1, 2**35])
            assert encoder.encode(blob, label, seed) == make_example_proto(
                blob, 32, 32, 3, label, "synthetic", seed, 7, image_format=image_format
            )


def test_framed_records_read_back_with_tensorflow_and_the_checker(tmp_path):
    import tensorflow as tf

    records = [os.urandom(n) for n in (0, 1, 200, 70000)]
    path = tmp_path / "x.tfrecord"
    path.write_bytes(shards.frame_records(records) + shards.frame_records(records[:1]))
    assert shards.count_records(str(path)) == 5
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records + records[:1]
    data = path.read_bytes()
    path.write_bytes(data[:20] + bytes([data[20] ^ 1]) + data[21:])  # a flipped bit in a record's data
    try:
        shards.count_records(str(path))
        raise AssertionError("a corrupted record was counted")
    except shards.DamagedShard:
        pass


def test_mix_takes_a_policy_function_as_augmentation(tmp_path):
    """downstream's policies are plain functions (images, seeds) -> images with a .description; mix applies
    them (and any such function) to the real images, and refuses what is not a policy in one line."""
    import pytest
    import tensorflow as tf
    from test_hostile_shards import good_records, write_output

    from trainer import downstream
    from trainer.errors import UserError

    out = tmp_path / "out"
    write_output(out, [good_records(16)])
    real = (np.full([8, 32, 32, 1], 100, np.uint8), np.arange(8) % 10)
    for policy in (downstream.classic_policy(0.5), lambda images, seeds: tf.cast(images, tf.uint8) * 0 + 7):
        x, y = next(iter(shards.mix(real, str(out), num_classes=10, synthetic_fraction=0.0, augmentation=policy)))
        assert x.dtype == tf.float32 and x.shape == (64, 32, 32, 1) and y.shape == (64, 10)
    assert float(tf.reduce_max(x)) == 7.0  # the last policy ran on every real image
    with pytest.raises(UserError, match="must be a policy"):
        shards.mix(real, str(out), num_classes=10, augmentation="classic")
