"""Augmentation: geometry and colour against the legacy ImageDataGenerator, eager and in tf.data."""

import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
from tensorflow.keras.preprocessing.image import ImageDataGenerator

from trainer import classic_augment
from trainer.augment_params import AugmentParams
from trainer.errors import UserError

H, W = 24, 32  # not square: catches row/column mix-ups
IMAGE = np.random.default_rng(0).uniform(0, 255, (H, W, 3)).astype(np.float32)
CASES = [
    dict(theta=20),
    dict(tx=3, ty=-5),
    dict(shear=15),
    dict(zx=0.8, zy=1.3),
    dict(theta=10, tx=2, ty=1, shear=5, zx=1.1, zy=0.9),
    dict(flip_horizontal=True),
    dict(flip_vertical=True),
    dict(theta=30, flip_horizontal=True, flip_vertical=True, zx=0.9, zy=0.9),
]


def explicit(**values):
    p = {
        "theta": 0.0,
        "tx": 0.0,
        "ty": 0.0,
        "shear": 0.0,
        "zx": 1.0,
        "zy": 1.0,
        "flip_horizontal": False,
        "flip_vertical": False,
        **values,
    }
    return {k: tf.constant([v], tf.bool if isinstance(v, bool) else tf.float32) for k, v in p.items()}


@pytest.mark.parametrize("fill_mode", ["nearest", "constant", "reflect"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(c))
def test_geometry_matches_image_data_generator(fill_mode, case):
    expected = ImageDataGenerator(fill_mode=fill_mode, cval=7.0).apply_transform(IMAGE, case)
    params = AugmentParams.create(fill_mode=fill_mode, cval=7.0)
    got = classic_augment.apply_parameters(IMAGE[None], explicit(**case), params).numpy()[0]
    # TF wraps the coordinate, then interpolates: only the one-pixel seam may differ.
    close = np.abs(got - expected) < 0.01
    assert close.mean() > 0.9
    inside = classic_augment.source_inside(classic_augment.projective_transforms(explicit(**case), H, W), H, W).numpy()[
        0
    ]
    assert close[inside].all()


def test_wrap_is_true_periodic_wrap():
    """scipy's legacy 'wrap' (ImageDataGenerator's) has an off-by-one period; ours is scipy's 'grid-wrap'."""
    case = dict(theta=20, tx=3, ty=-5)
    params = AugmentParams.create(fill_mode="wrap")
    got = classic_augment.apply_parameters(IMAGE[None], explicit(**case), params).numpy()[0]
    t = classic_augment.projective_transforms(explicit(**case), H, W).numpy()[0]
    matrix = np.array([[t[4], t[3]], [t[1], t[0]]])
    offset = np.array([t[5], t[2]])
    expected = np.stack(
        [scipy.ndimage.affine_transform(IMAGE[..., c], matrix, offset, order=1, mode="grid-wrap") for c in range(3)],
        axis=-1,
    )
    np.testing.assert_allclose(got, expected, atol=0.01)


def test_channel_shift_and_brightness_match():
    params = AugmentParams.create(channel_shift_range=50, brightness_range=(0.5, 1.5))
    p = explicit(theta=5)
    p.update(channel_shift=tf.constant([30.0]), brightness=tf.constant([1.3]))
    got = classic_augment.apply_parameters(IMAGE[None], p, params).numpy()[0]
    expected = ImageDataGenerator().apply_transform(IMAGE, dict(theta=5, channel_shift_intensity=30.0, brightness=1.3))
    # Keras brightens an 8-bit PIL image (truncate, scale by b, truncate): within b + 1 levels.
    np.testing.assert_allclose(got, expected, atol=1.3 + 1.0 + 1e-3)


def test_random_draws_stay_in_range_and_depend_only_on_the_image_seed():
    params = AugmentParams.create(
        rotation_range=20,
        width_shift_range=0.1,
        height_shift_range=3,
        shear_range=10,
        zoom_range=0.2,
        horizontal_flip=True,
        brightness_range=(0.8, 1.2),
        channel_shift_range=10,
    )
    seeds = classic_augment.image_seeds(5, tf.range(400))
    p = classic_augment.random_parameters(params, seeds, H, W)
    assert np.abs(p["theta"]).max() <= 20 and np.abs(p["theta"]).max() > 15
    assert np.abs(p["ty"]).max() <= 0.1 * W and np.abs(p["tx"]).max() <= 3
    assert 0.8 <= p["zx"].numpy().min() and p["zx"].numpy().max() <= 1.2
    assert 0.3 < p["flip_horizontal"].numpy().mean() < 0.7
    assert not p["flip_vertical"].numpy().any()
    # Image 7's parameters are the same alone or in a batch.
    alone = classic_augment.random_parameters(params, classic_augment.image_seeds(5, tf.constant([7])), H, W)
    for key in p:
        np.testing.assert_array_equal(alone[key].numpy()[0], p[key].numpy()[7])


def test_eager_and_inside_dataset_map_agree():
    params = AugmentParams.create(
        rotation_range=30, zoom_range=0.2, horizontal_flip=True, channel_shift_range=20, fill_mode="constant"
    )
    images = np.random.default_rng(1).uniform(0, 255, (6, H, W, 3)).astype(np.float32)
    eager = classic_augment.apply(images, params, classic_augment.image_seeds(3, tf.range(6))).numpy()
    ds = (
        tf.data.Dataset.from_tensor_slices((images, tf.range(6, dtype=tf.int64)))
        .batch(3)
        .map(lambda x, i: classic_augment.apply(x, params, classic_augment.image_seeds(3, i)))
    )
    mapped = np.concatenate([b.numpy() for b in ds])
    np.testing.assert_allclose(eager, mapped, atol=1e-4)
    assert eager.shape == images.shape and not np.allclose(eager, images)


def test_identity_and_bad_arguments():
    x = tf.random.uniform([2, H, W, 1]) * 255
    np.testing.assert_array_equal(
        classic_augment.apply(x, AugmentParams(), classic_augment.image_seeds(0, tf.range(2))), x
    )
    with pytest.raises(UserError, match="unknown augmentation argument.*rotation"):
        AugmentParams.create(rotation=3)
    with pytest.raises(UserError, match="--fill_mode='mirror'"):
        AugmentParams.create(fill_mode="mirror")
    with pytest.raises(UserError, match="--zoom_range"):
        AugmentParams.create(zoom_range=(1.2, 0.8))


def test_uniforms_are_exact_in_eager_graph_and_dataset():
    seeds = classic_augment.image_seeds(3, tf.range(64))
    eager = classic_augment.uniforms(seeds, 5).numpy()
    graph = tf.function(classic_augment.uniforms)(seeds, 5).numpy()
    mapped = (
        tf.data.Dataset.from_tensors(seeds).map(lambda s: classic_augment.uniforms(s, 5)).get_single_element().numpy()
    )
    np.testing.assert_array_equal(eager, graph)
    np.testing.assert_array_equal(eager, mapped)
    assert 0 <= eager.min() and eager.max() < 1 and abs(eager.mean() - 0.5) < 0.06
    assert len(np.unique(eager)) == eager.size


def test_one_process_augments_grayscale_then_rgb_then_another_size():
    """Two datasets in one process (an experiment, a notebook): the compiled warp must not generalise
    the channel or size dimensions away."""
    params = AugmentParams.create(rotation_range=10.0)
    for shape in ((4, 32, 32, 1), (3, 32, 32, 1), (4, 32, 32, 3), (2, 64, 64, 3)):
        images = tf.random.stateless_uniform(shape, seed=[1, 2], maxval=255.0)
        out = classic_augment.apply(images, params, classic_augment.image_seeds(0, tf.range(shape[0], dtype=tf.int64)))
        assert out.shape == shape
