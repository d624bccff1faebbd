"""Networks: shapes and dtypes per resolution, conditioning, mixed precision; losses."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import models


@pytest.fixture
def policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_shapes_and_dtypes_per_resolution(resolution):
    width = 0.125 if resolution > 64 else 0.25
    g = models.build_generator(resolution, 3, 8, width, 0)
    d = models.build_discriminator(resolution, 3, width, 0)
    images = g(tf.random.normal([2, 8]))
    assert images.shape == (2, resolution, resolution, 3) and images.dtype == tf.float32
    assert float(tf.reduce_max(tf.abs(images))) <= 1.0
    logits = d(images)
    assert logits.shape == (2,) and logits.dtype == tf.float32


def test_radford_layout_at_64():
    g = models.build_generator(64, 3, 100, 1.0, 0)
    d = models.build_discriminator(64, 3, 1.0, 0)
    assert [layer.filters for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)] == [256, 128, 64, 3]
    assert g.get_layer("to_4x4").output.shape[-1] == 512
    assert [layer.filters for layer in d.layers if isinstance(layer, keras.layers.Conv2D)] == [64, 128, 256, 512]
    # No BatchNorm on the discriminator's first layer.
    first = [layer.name for layer in d.layers][1:3]
    assert first == ["down_32", "lrelu_32"]


def test_conditioning_changes_the_output():
    g = models.build_generator(32, 1, 8, 0.25, 10)
    d = models.build_discriminator(32, 1, 0.25, 10)
    z = tf.random.normal([2, 8])
    a = g([z, tf.constant([1, 1])], training=False)
    b = g([z, tf.constant([2, 2])], training=False)
    assert not np.allclose(a.numpy(), b.numpy())
    assert d([a, tf.constant([1, 1])]).shape == (2,)
    la = d([a, tf.constant([1, 1])], training=False).numpy()
    lb = d([a, tf.constant([3, 3])], training=False).numpy()
    assert not np.allclose(la, lb)  # the projection term depends on the label


def test_class_fade_strength_scales_the_label_in_g_and_the_projection_in_d():
    """--class_fade_in's strengths: at 0, G and D ignore the label (unconditional); at 0.5 the projection
    term is half its full value; at 1 they are the networks without the fade, same weights."""
    g = models.build_generator(32, 1, 8, 0.25, 10, class_fade=True)
    d = models.build_discriminator(32, 1, 0.25, 10, class_fade=True)
    plain_g, plain_d = models.build_generator(32, 1, 8, 0.25, 10), models.build_discriminator(32, 1, 0.25, 10)
    plain_g.set_weights([w for w in g.get_weights() if w.shape != ()])
    plain_d.set_weights([w for w in d.get_weights() if w.shape != ()])
    (g_strength,), (d_strength,) = models.condition_strengths(g), models.condition_strengths(d)
    z, one, two = tf.random.normal([2, 8]), tf.constant([1, 1]), tf.constant([2, 2])
    images = g([z, one], training=False)
    np.testing.assert_allclose(images.numpy(), plain_g([z, one], training=False).numpy(), atol=1e-6)
    np.testing.assert_allclose(d([images, one]).numpy(), plain_d([images, one]).numpy(), atol=1e-5)
    g_strength.assign(0.0)
    d_strength.assign(0.0)
    np.testing.assert_allclose(g([z, one], training=False).numpy(), g([z, two], training=False).numpy())
    np.testing.assert_allclose(d([images, one]).numpy(), d([images, two]).numpy())
    unconditional = d([images, one]).numpy()
    d_strength.assign(0.5)
    half = d([images, one]).numpy()
    d_strength.assign(1.0)
    full = d([images, one]).numpy()
    np.testing.assert_allclose(half, 0.5 * (unconditional + full), atol=1e-5)
    assert not np.allclose(unconditional, full)


@pytest.mark.parametrize("conditioning", ["concat", "skip_z"])
@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_outputs_float32(policy, precision, conditioning):
    keras.mixed_precision.set_global_policy(precision)
    g = models.build_generator(32, 3, 8, 0.25, 10, conditioning=conditioning)
    d = models.build_discriminator(32, 3, 0.25, 10)
    assert g.get_layer("up_16").compute_dtype == precision.split("_")[1]
    images = g([tf.random.normal([2, 8]), tf.constant([0, 1])])
    assert images.dtype == tf.float32
    assert d([images, tf.constant([0, 1])]).dtype == tf.float32


def test_initialisation_is_seeded_and_differs_per_layer():
    keras.utils.set_random_seed(3)
    a = models.build_generator(64, 3, 8, 0.25, 0)
    keras.utils.set_random_seed(3)
    b = models.build_generator(64, 3, 8, 0.25, 0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    kernels = [
        layer.kernel.numpy().ravel()[:50] for layer in a.layers if isinstance(layer, keras.layers.Conv2DTranspose)
    ]
    assert not np.allclose(kernels[0], kernels[1])  # no shared seed across layers


def test_skip_z_feeds_z_to_every_block_with_built_in_layers():
    """--g_conditioning=skip_z: with G's first layer blind to z, outputs still depend on z (through every
    BatchNorm's gain and bias), where the concat design's do not; the gains start at 1; no custom layers."""
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 8)).astype(np.float32)
    labels = np.zeros(2, np.int32)
    spreads = {}
    for conditioning in ("concat", "skip_z"):
        g = models.build_generator(32, 3, 8, 0.25, 10, conditioning=conditioning)
        project = g.get_layer("project")
        kernel = project.kernel.numpy()
        kernel[:8] = 0.0  # the rows z enters by
        project.kernel.assign(kernel)
        out = g([z, labels], training=False).numpy()
        spreads[conditioning] = np.abs(out[0] - out[1]).mean()
    assert spreads["concat"] == 0.0 and spreads["skip_z"] > 1e-3
    gains = [layer for layer in g.layers if layer.name.endswith("_gain")]
    assert len(gains) == 3 and all(np.all(layer.bias.numpy() == 1.0) for layer in gains)  # 4x4, 8x8, 16x16
    assert all(type(layer).__module__.startswith("keras") for layer in g.layers)
    unconditional = models.build_generator(32, 1, 8, 0.25, 0, conditioning="skip_z")
    assert unconditional.get_layer("bn_8_gain").kernel.shape == (8, 32)  # z alone sets the gains


def test_conditional_batchnorm_generator_uses_the_class_everywhere_and_round_trips(tmp_path):
    g = models.build_generator(32, 3, 8, 0.25, 10, conditioning="cbn")
    assert sum(isinstance(layer, models.ConditionalBatchNorm) for layer in g.layers) == 3  # 4x4, 8x8, 16x16
    z = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    for layer in g.layers:  # make the per-class gains differ, as training does
        if isinstance(layer, models.ConditionalBatchNorm):
            layer.gamma.assign(np.random.default_rng(1).normal(1, 0.5, layer.gamma.shape))
    same_z = [g([z, np.full(4, c, np.int32)], training=True).numpy() for c in (0, 1)]
    assert np.abs(same_z[0] - same_z[1]).mean() > 0.1 * np.abs(same_z[0]).mean()  # same z, another class
    g.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras", compile=False)
    np.testing.assert_allclose(
        loaded([z, np.arange(4, dtype=np.int32)], training=False),
        g([z, np.arange(4, dtype=np.int32)], training=False),
        atol=1e-6,
    )


def test_spectral_norm_discriminator_has_unit_spectral_norm_kernels_and_no_batchnorm():
    d = models.build_discriminator(32, 3, 0.25, 10, spectral_norm=True)
    convs = [layer for layer in d.layers if isinstance(layer, models.SpectralConv2D)]
    assert len(convs) == 3 and not any(isinstance(layer, keras.layers.BatchNormalization) for layer in d.layers)
    for conv in convs:
        kernel = conv.normalized_kernel().numpy()
        sigma = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
        assert 0.9 < sigma < 1.1, sigma  # a few stateless power iterations: close to 1, never far above
    logits = d([np.zeros((2, 32, 32, 3), np.float32), np.array([1, 2], np.int32)], training=True)
    assert logits.shape == (2,)


def test_class_head_discriminator_returns_logits_and_class_logits():
    d = models.build_discriminator(32, 1, 0.25, 10, class_head=True)
    images, labels = np.zeros((3, 32, 32, 1), np.float32), np.array([0, 4, 9], np.int32)
    logits, classes = models.discriminate(d, images, labels, conditional=True)
    assert logits.shape == (3,) and classes.shape == (3, 10) and classes.dtype == "float32"
    plain = models.build_discriminator(32, 1, 0.25, 10)
    logits, classes = models.discriminate(plain, images, labels, conditional=True)
    assert logits.shape == (3,) and classes is None
    assert "class_logits" in [layer.name for layer in d.layers]
    assert "class_logits" not in [layer.name for layer in plain.layers]


def test_minibatch_stddev_measures_each_contiguous_group_and_round_trips(tmp_path):
    """--minibatch_std: one channel more, per contiguous group the features' spread across its images
    averaged over all features (StyleGAN); a group of identical images gets ~0; D sees it before its last
    convolution, so D tells a batch of copies from a varied batch by more than the copies' own logits."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4, 4, 3)).astype(np.float32)
    x[:4] = x[0]  # the first group: four copies of one image
    out = models.MinibatchStddev(4)(x).numpy()
    assert out.shape == (8, 4, 4, 4)
    np.testing.assert_array_equal(out[..., :3], x)
    expected = np.sqrt(x[4:].var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(out[4:, ..., 3], expected, rtol=1e-5)
    np.testing.assert_allclose(out[:4, ..., 3], 1e-4, rtol=1e-3)  # sqrt(0 + 1e-8)
    halves = np.concatenate([models.MinibatchStddev(4)(x[:4]), models.MinibatchStddev(4)(x[4:])])
    np.testing.assert_allclose(out, halves, rtol=1e-6)  # groups never straddle: 1 x 8 = 2 replicas x 4

    d = models.build_discriminator(32, 3, 0.25, 10, minibatch_std=4)
    names = [layer.name for layer in d.layers]
    assert names.index("minibatch_std") == names.index("down_4") - 1
    plain = models.build_discriminator(32, 3, 0.25, 10)
    assert "minibatch_std" not in [layer.name for layer in plain.layers]
    images = rng.uniform(-1, 1, size=(8, 32, 32, 3)).astype(np.float32)
    labels = np.zeros(8, np.int32)
    copies = np.repeat(images[:1], 8, axis=0)
    # Image 0's logit depends on the images beside it only through the spread channel (inference BatchNorm).
    assert abs(float(d([copies, labels])[0]) - float(d([images, labels])[0])) > 1e-4
    assert abs(float(plain([copies, labels])[0]) - float(plain([images, labels])[0])) < 1e-5
    d.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras", compile=False)
    np.testing.assert_allclose(loaded([images, labels]), d([images, labels]), atol=1e-6)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_minibatch_stddev_under_mixed_precision(policy, precision):
    """The spread is taken in float32 and handed on in the compute dtype; D's logits stay float32."""
    keras.mixed_precision.set_global_policy(precision)
    d = models.build_discriminator(32, 3, 0.25, 0, minibatch_std=2)
    x = tf.random.uniform([4, 32, 32, 3], -1, 1)
    logits = d(x, training=True)
    assert logits.shape == (4,) and logits.dtype == tf.float32
    spread = keras.Model(d.input, d.get_layer("minibatch_std").output)(x, training=True)
    assert spread.dtype == precision.split("_")[1] and spread.shape[-1] == d.get_layer("lrelu_8").output.shape[-1] + 1
    assert np.isfinite(np.asarray(spread, np.float32)).all()
