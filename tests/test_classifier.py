"""trainer/classifier.py: the judge is deterministic per seed, learns, obeys its recipe, and splits by class."""

import dataclasses
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import classifier, data


@pytest.fixture(scope="module")
def digits():
    return data.load_source("digits:train[:20%]", 32)


def test_a_run_is_a_function_of_its_seed(digits):
    x, y = digits.images[:128], digits.labels[:128]
    spec = classifier.ClassifierSpec(steps=8, batch_size=16)

    def run(seed):
        return classifier.predict(classifier.train(x, y, 10, spec, seed), x[:32])

    first = run(0)
    np.testing.assert_allclose(run(0), first, atol=1e-5)
    assert np.abs(run(1) - first).max() > 1e-3


def test_trained_with_the_fused_batchnorm_returned_with_keras_own(digits, tmp_path):
    """The judge trains with FusedBatchNormalization (faster) and comes back built of Keras' layers with the
    trained weights, so plain Keras loads a saved judge."""
    x, y = digits.images[:64], digits.labels[:64]
    fused = classifier.build(32, 1, 10, seed=3, fused_batchnorm=True)
    graph = tf.function(lambda v: fused(v, training=True)).get_concrete_function(tf.zeros([2, 32, 32, 1])).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}
    model = classifier.train(x, y, 10, classifier.ClassifierSpec(steps=3, batch_size=16), seed=5)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(type(layer) is keras.layers.BatchNormalization for layer in norms)
    assert not np.allclose(norms[0].moving_variance.numpy(), 1.0)  # the trained statistics came along
    model.save(tmp_path / "judge.keras")
    with zipfile.ZipFile(tmp_path / "judge.keras") as saved:
        config = saved.read("config.json").decode()
    assert "BatchNormalization" in config and "Fused" not in config
    np.testing.assert_allclose(
        classifier.predict(keras.models.load_model(tmp_path / "judge.keras"), x[:8]),
        classifier.predict(model, x[:8]),
        atol=1e-5,
    )


@pytest.mark.parametrize("recipe", ["plain", "everything"])
def test_seeds_trained_together_are_the_models_trained_one_at_a_time(digits, recipe):
    """train_many only shares the compiled step: each seed's draws, augmentation, mixing and updates are its own,
    so its model equals the one `train` makes for that seed alone (resampling, synthetic share, mixup included)."""
    from trainer import downstream

    x, y = digits.images[:128], digits.labels[:128]
    spec = classifier.ClassifierSpec(steps=6, batch_size=16, width=4)
    if recipe == "plain":
        recipe = classifier.Recipe()
    else:
        synthetic = (digits.images[128:192], (digits.labels[128:192] + 1) % 10)
        recipe = classifier.Recipe(
            downstream.POLICIES["trivial_augment"](), synthetic, 0.25, mix="mixup", balance="resample"
        )
    together = classifier.train_many(x, y, 10, spec, [3, 7], recipe)
    for seed, model in zip([3, 7], together):
        alone = classifier.train(x, y, 10, spec, seed, recipe)
        np.testing.assert_allclose(classifier.predict(model, x[:32]), classifier.predict(alone, x[:32]), atol=1e-5)
    assert np.abs(classifier.predict(together[0], x[:32]) - classifier.predict(together[1], x[:32])).max() > 1e-3


@pytest.mark.parametrize("balance", ["resample", "reweight"])
def test_subsets_trained_together_are_the_models_trained_on_each_subset_alone(digits, balance):
    """Cross-validation's folds train in one call: seed k draws (and re-weights classes) from subsets[k] only,
    so its model is `train` on those images alone, the same seed on another subset another model."""
    x, y = digits.images[:128], np.asarray(digits.labels[:128])
    spec = classifier.ClassifierSpec(steps=6, batch_size=16, width=4)
    recipe = classifier.Recipe(balance=balance)
    rng = np.random.default_rng(0)
    subsets = [np.sort(rng.choice(128, 90, replace=False)), np.flatnonzero(y != 3)]  # the second lacks a class
    together = classifier.train_many(x, y, 10, spec, [5, 5], recipe, subsets=subsets)
    for subset, model in zip(subsets, together):
        alone = classifier.train(x[subset], y[subset], 10, spec, 5, recipe)
        np.testing.assert_allclose(classifier.predict(model, x[:32]), classifier.predict(alone, x[:32]), atol=1e-5)
    assert np.abs(classifier.predict(together[0], x[:32]) - classifier.predict(together[1], x[:32])).max() > 1e-3
    with pytest.raises(ValueError, match="1 subsets for 2 seeds"):
        classifier.train_many(x, y, 10, spec, [5, 6], recipe, subsets=subsets[:1])


def pooled(width: int, count: int) -> list:
    """The reusable steps built so far for 32x32x1 digits judges of this width and number of seeds."""
    return [s for key, s in classifier._STEPS.idle() if key[:4] == ((32, 32, 1), 10, width, count)]


def test_a_reused_step_trains_the_judge_a_fresh_one_would(digits):
    """The traced update is built once per shape and reused (tracing costs seconds a model): a recipe trained
    on a reused step gives bit for bit what it gave on a freshly built one (the first call of this shape),
    and the one step was traced once for all three calls."""
    from trainer import downstream

    x, y = digits.images[:96], digits.labels[:96]
    spec = classifier.ClassifierSpec(steps=4, batch_size=8, width=3)
    plain = classifier.Recipe()
    other = classifier.Recipe(downstream.POLICIES["crop_flip"](), mix="cutmix", balance="reweight")

    def weights(recipe, steps=4):
        models = classifier.train_many(x, y, 10, dataclasses.replace(spec, steps=steps), [4, 9], recipe)
        return [w for model in models for w in model.get_weights()]

    assert pooled(width=3, count=2) == []
    first = weights(plain)
    (slots,) = pooled(width=3, count=2)
    assert not all(np.array_equal(a, b) for a, b in zip(first, weights(other, steps=7)))
    for a, b in zip(first, weights(plain), strict=True):
        np.testing.assert_array_equal(a, b)
    assert pooled(width=3, count=2) == [slots]
    assert slots.update.experimental_get_tracing_count() == 1


def test_judges_trained_at_once_from_two_threads_get_their_own_models(digits):
    """A reused step is lent to one caller at a time: two threads training the same shape at once each get
    their own (the pool then holds two, both free again) and the models of training alone."""
    import threading

    x, y = digits.images[:64], digits.labels[:64]
    spec = classifier.ClassifierSpec(steps=30, batch_size=8, width=2)
    alone = [w for w in classifier.train(x, y, 10, spec, 5).get_weights()]
    start, results = threading.Barrier(2, timeout=60), {}

    def train(name):
        start.wait()
        results[name] = classifier.train(x, y, 10, spec, 5).get_weights()

    threads = [threading.Thread(target=train, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in "ab":
        for a, b in zip(alone, results[name], strict=True):
            np.testing.assert_array_equal(a, b)
    assert len(pooled(width=2, count=1)) == 2


def test_a_judge_whose_training_diverged_leaves_no_step_behind(digits):
    """A step whose training raised (here: diverged at once) may be half-updated: it is not lent again."""
    x, y = digits.images[:32], digits.labels[:32]
    spec = classifier.ClassifierSpec(steps=100, batch_size=4, width=5, learning_rate=1e30)
    with pytest.raises(FloatingPointError, match="diverged at step 100"):
        classifier.train(x, y, 10, spec, 0)
    assert pooled(width=5, count=1) == []


def test_seeding_keras_without_tensorflow_seed_builds_the_same_weights():
    """`seed_keras` is `keras.utils.set_random_seed` less TF's global seed (whose setting clears compiled
    kernels): Keras' initializers and dropout seeds come out the same, and TF's global seed is untouched."""
    from tensorflow.python.framework import random_seed

    def layers():
        dense, dropout = keras.layers.Dense(5, kernel_initializer="he_normal"), keras.layers.Dropout(0.5)
        dense.build((None, 3))
        return dense.kernel.numpy(), dropout.seed_generator.state.numpy()

    keras.utils.set_random_seed(11)
    expected = layers()
    tf.random.set_seed(None)
    classifier.seed_keras(11)
    assert random_seed.get_seed(None) == (None, None)
    for a, b in zip(layers(), expected):
        np.testing.assert_array_equal(a, b)
    classifier.seed_keras(12)
    assert not np.array_equal(layers()[0], expected[0])


def test_it_learns_and_follows_the_synthetic_labels_it_is_given(digits):
    """Real digits, then the same images relabelled (y + 1) as 'synthetic', all of each batch: the judge
    learns whichever labels its batches carry, and reaches far above chance in 100 steps of 32."""
    x, y = digits.images, digits.labels
    test = data.load_source("digits:test", 32)
    spec = classifier.ClassifierSpec(steps=100, batch_size=32)
    model = classifier.train(x, y, 10, spec, 0)
    assert classifier.accuracy(model, test.images, test.labels) > 0.6
    shifted = (y + 1) % 10
    model = classifier.train(x, y, 10, spec, 0, classifier.Recipe(synthetic=(x, shifted), synthetic_fraction=1.0))
    predicted = classifier.predict(model, x).argmax(1)
    assert (predicted == shifted).mean() > 0.5 and (predicted == y).mean() < 0.1


def test_recipes_and_specs_refuse_nonsense():
    with pytest.raises(ValueError, match="synthetic_fraction"):
        classifier.Recipe(synthetic_fraction=1.5)
    with pytest.raises(ValueError, match="mix="):
        classifier.Recipe(mix="blend")
    with pytest.raises(ValueError, match="steps >= 1"):
        classifier.ClassifierSpec(steps=0)


def test_cutmix_and_mixup_mix_labels_by_the_pixels_they_mix():
    x = tf.concat([tf.zeros([8, 16, 16, 1]), tf.fill([8, 16, 16, 1], 255.0)], 0)
    y = tf.one_hot([0] * 8 + [1] * 8, 2)
    w = tf.ones([16])
    for kind in ("cutmix", "mixup"):
        mixed, targets, _ = classifier._mix(kind, x, y, w, tf.constant([3, 4], tf.int64))
        share_of_white = tf.reduce_mean(mixed, axis=[1, 2, 3]) / 255.0
        np.testing.assert_allclose(targets[:, 1], share_of_white, atol=1e-5)
        np.testing.assert_allclose(tf.reduce_sum(targets, 1), 1.0, atol=1e-6)


def test_balanced_accuracy_weights_classes_equally():
    recall = classifier.per_class_recall(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3)
    np.testing.assert_allclose(recall[:2], [1.0, 2 / 3])
    assert np.isnan(recall[2])


def test_log_likelihood_is_the_mean_log_probability_of_the_true_class_and_can_weigh_classes_equally():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0]])
    labels = np.array([0, 1, 0, 0])
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    true = log_p[np.arange(4), labels]
    assert classifier.log_likelihood(logits, labels, 2) == pytest.approx(true.mean())
    assert classifier.log_likelihood(logits, labels, 2, balanced=True) == pytest.approx(
        (true[[0, 2, 3]].mean() + true[1]) / 2
    )
    assert classifier.log_likelihood(logits + 1000.0, labels, 2) == pytest.approx(true.mean())  # no overflow
