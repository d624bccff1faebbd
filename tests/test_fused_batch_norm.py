"""FusedBatchNormalization: Keras' BatchNormalization math with one fused op, in every precision and shape."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import command_line, models, train_plan
from trainer.fused_batch_norm import FusedBatchNormalization
from trainer.train_state import TrainState


@pytest.fixture
def policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def pair(shape, **kwargs):
    """A stock and a fused layer holding the same (non-trivial) weights."""
    stock = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    fused = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, **kwargs)
    stock.build(shape)
    fused.build(shape)
    rng = np.random.default_rng(1)
    stock.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in stock.get_weights()])
    fused.set_weights(stock.get_weights())
    return stock, fused


def forward_backward(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 3)
    return y, tape.gradient(loss, [x, *layer.trainable_weights])


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("shape", [(8, 6, 6, 5), (16, 7), (4, 3, 6, 6, 5)], ids=["nhwc", "dense", "rank5"])
def test_training_step_matches_keras_batchnorm(policy, precision, shape):
    keras.mixed_precision.set_global_policy(precision)
    x = tf.constant(np.random.default_rng(0).normal(1.5, 2.0, shape).astype("float32"))
    stock, fused = pair(shape)
    y_stock, g_stock = forward_backward(stock, x)
    y_fused, g_fused = forward_backward(fused, x)
    assert y_fused.dtype == y_stock.dtype == keras.mixed_precision.global_policy().compute_dtype
    tol = 1e-5 if precision == "float32" else 1e-2
    np.testing.assert_allclose(np.float32(y_fused), np.float32(y_stock), rtol=tol, atol=tol)
    for a, b in zip(g_fused, g_stock):
        scale = float(tf.reduce_max(tf.abs(tf.cast(b, tf.float32))))
        np.testing.assert_allclose(np.float32(a), np.float32(b), atol=tol * 10 * scale)
    # Moving averages: Keras keeps the biased batch variance (the fused op returns it Bessel-corrected).
    for a, b in zip(fused.get_weights()[2:], stock.get_weights()[2:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(fused.get_weights()[2], 1.0)  # they did move


def test_without_scale_and_center_and_at_inference(policy):
    x = tf.random.stateless_normal([6, 4, 4, 3], seed=[1, 2]) * 3.0 + 1.0
    stock, fused = pair(x.shape, center=False, scale=False)
    np.testing.assert_allclose(fused(x, training=True), stock(x, training=True), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused(x, training=False), stock(x, training=False), rtol=1e-6, atol=1e-6)


def test_the_graph_holds_the_fused_op_in_training_and_keras_ops_otherwise():
    x = tf.random.stateless_normal([4, 4, 4, 3], seed=[3, 4])
    fused = FusedBatchNormalization()
    fused.build(x.shape)

    def op_types(training):
        graph = tf.function(lambda v: fused(v, training=training)).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in op_types(True)
    assert "FusedBatchNormV3" not in op_types(False)
    frozen = FusedBatchNormalization(trainable=False)
    frozen.build(x.shape)
    np.testing.assert_allclose(frozen(x, training=True), frozen(x, training=False))  # frozen: moving statistics


@pytest.mark.parametrize("conditioning", ["cbn", "skip_z"])
def test_serialises_and_swaps_with_keras_batchnorm(tmp_path, conditioning):
    g = models.build_generator(32, 1, 8, 0.125, 3, fused_batchnorm=True, conditioning=conditioning)
    d = models.build_discriminator(32, 1, 0.125, 3, fused_batchnorm=True)
    assert any(isinstance(layer, FusedBatchNormalization) for layer in d.layers)
    norms = [getattr(layer, "norm", layer) for layer in g.layers]
    norms = [n for n in norms if isinstance(n, keras.layers.BatchNormalization)]
    assert len(norms) == 3 and all(n.__class__ is FusedBatchNormalization for n in norms)
    stock = models.build_generator(32, 1, 8, 0.125, 3, conditioning=conditioning)
    stock.set_weights(g.get_weights())  # the same variables, in the same order
    z, label = tf.random.stateless_normal([4, 8], seed=[5, 6]), tf.constant([0, 1, 2, 0])
    np.testing.assert_allclose(stock([z, label], training=False), g([z, label], training=False), atol=1e-6)
    g.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(loaded([z, label], training=True), g([z, label], training=True), atol=1e-5)
    # With synchronized statistics the fused kernel cannot be used: Keras' layer is built instead.
    synced = models.build_discriminator(32, 1, 0.125, 0, sync_batchnorm=True, fused_batchnorm=True)
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in synced.layers)


@pytest.mark.parametrize(
    "flags, fused",
    [({}, True), ({"fused_batchnorm": False}, False), ({"sync_batchnorm": True}, False), ({"xla": True}, True)],
    ids=["default", "nofused", "sync", "xla"],
)
def test_the_trainer_fuses_the_training_networks_only(flags, fused):
    """`dcgan train` builds G and D with the fused layer by default; G_ema (inference only) and the
    export keep Keras' own, and --nofused_batchnorm / --sync_batchnorm use Keras' layer throughout;
    the plan records which."""
    config = command_line.resolve("train", {"preset": "smoke", "job_dir": "/tmp/unused", **flags})
    state = TrainState.build(config, 1, 10)

    def kinds(model):
        return {type(layer) for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}

    expected = {FusedBatchNormalization} if fused else {keras.layers.BatchNormalization}
    assert kinds(state.generator) == kinds(state.discriminator) == expected
    assert kinds(state.generator_ema) == {keras.layers.BatchNormalization}
    plan = train_plan.TrainPlan.of(config, 1, 10)
    assert plan.batchnorm == ("fused" if fused else "synchronized" if flags.get("sync_batchnorm") else "keras")
    assert f"BatchNorm {plan.batchnorm}" in plan.describe() and plan.to_dict()["batchnorm"] == plan.batchnorm
