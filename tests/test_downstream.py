"""trainer/downstream.py: every baseline policy augments each image on its own, from the image's seed."""

import numpy as np
import pytest
import tensorflow as tf

from trainer import classic_augment, config, downstream


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 16, 16, 3)).astype(np.float32)
    return tf.constant(np.repeat(image, 8, axis=0))  # eight copies of one image


def test_the_cli_names_every_policy():
    assert tuple(downstream.POLICIES) == config.DOWNSTREAM_POLICIES


@pytest.mark.parametrize("name", [n for n in downstream.POLICIES if n != "none"])
def test_each_image_gets_its_own_transform_and_the_same_seed_gives_the_same_one(name, batch):
    policy = downstream.POLICIES[name]()
    seeds = classic_augment.image_seeds(5, tf.range(8, dtype=tf.int64))
    out = policy(batch, seeds).numpy()
    assert out.shape == batch.shape and np.isfinite(out).all()
    assert len({o.tobytes() for o in np.round(out)}) >= 3, policy.description  # not one transform per batch
    np.testing.assert_allclose(policy(batch, seeds).numpy(), out)
    assert policy.description and downstream.describe(policy) == policy.description


def test_dihedral_gives_one_of_the_eight_symmetries_of_the_square(batch):
    seeds = classic_augment.image_seeds(1, tf.range(8, dtype=tf.int64))
    out = downstream.dihedral_policy()(batch, seeds).numpy()
    image = batch[0].numpy()
    symmetries = [np.rot90(f, k) for f in (image, image[:, ::-1]) for k in range(4)]
    for o in out:
        assert any(np.array_equal(o, s) for s in symmetries)
    assert downstream.POLICIES["none"]()(batch, seeds) is batch
