"""The shard record format (trainer/shards.py): the hand encoder against protobuf, soft labels."""

import os
import random

import numpy as np

from trainer import shards


def test_hand_encoded_examples_are_byte_identical_to_protobuf():
    rng = random.Random(0)
    for _ in range(500):
        png = os.urandom(rng.choice([0, 1, 127, 128, 300, 20000]))
        label = rng.choice([0, 1, 9])
        probs = rng.choice([None, np.random.default_rng(rng.randrange(99)).dirichlet(np.ones(10)).astype(np.float32)])
        args = (png, rng.choice([32, 256]), rng.choice([32, 256]), rng.choice([1, 3]),
                label if probs is not None else rng.choice([-1, 0, 9, 1000]),
                rng.choice(["synthetic", "augmented"]), rng.choice([0, 2**40, 2**62, -1]), rng.choice([-1, 0, 3000]))
        assert shards.make_example(*args, probs=probs) == shards.make_example_proto(*args, probs=probs)
