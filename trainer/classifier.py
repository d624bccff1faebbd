"""The judge: a small modern CNN classifier and the one training rule every downstream recipe uses.

`dcgan evaluate` (feature space, GAN-test, CAS, downstream recipes) and the
usefulness experiment train every classifier here, so a recipe differs from
another only in its data (`Recipe`), never in the model or its budget.

Model (`build`): a ResNet-style CNN with BatchNorm: a 3x3 stem, then four
stages of one residual block each (widths w, 2w, 4w, 8w; the last three halve
the resolution), so the receptive field (49 pixels) covers a 32-pixel image
(larger images are first strided down), global average pooling, a 128-d
`features` layer, dropout and the logits. About 0.3M parameters and 16M
multiply-adds per 32x32 image at w=16: sized for CPUs, where every recipe of
every seed trains one.

Training (`train`; `train_many` trains several seeds in one compiled step, each model the same as trained
alone; that step is traced once per process and shape and lent to every later call, see `_Slots`):
AdamW with decoupled weight decay, a linear warm-up then a
cosine decay to zero over `ClassifierSpec.steps`, label smoothing, batches drawn
with replacement. The budget is a step count chosen where validation accuracy
plateaus (chosen once with `python -m experiments.judge` on validation splits
carved from the training images; `dcgan evaluate --downstream_steps` sets it) and
then the same for every recipe.

`Recipe` says what a batch holds: real images (uniformly or class-balanced
drawn, optionally loss-reweighted by class), an augmentation policy applied per
image, an optional share of synthetic images (hard labels or a teacher's class
probabilities, augmented with the same policy unless told otherwise), and
optional mixup or CutMix over the whole batch.

    python - <<'PY'
    import numpy as np
    from trainer import classifier
    x = np.random.randint(0, 255, (64, 32, 32, 3), np.uint8); y = np.arange(64) % 4
    model = classifier.train(x, y, 4, classifier.ClassifierSpec(steps=20), seed=0)
    print(classifier.accuracy(model, x, y))
    PY
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.common import global_state  # what keras.utils.set_random_seed sets, less TF's seed
from keras.src.random import seed_generator
from keras.src.utils import rng_utils

from trainer import classic_augment, step_pool
from trainer.fused_batch_norm import FusedBatchNormalization

FEATURES_LAYER = "features"
VERSION = 6  # of the model and its training rule: part of every cache key of a trained judge
MIXES = ("none", "mixup", "cutmix")
BALANCES = ("none", "resample", "reweight")


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
    """The judge's size and training budget (the same for every recipe it compares)."""

    steps: int = 1500  # optimiser steps (batches), warm-up and cosine decay included
    batch_size: int = 64
    learning_rate: float = 2e-3  # AdamW peak learning rate
    # AdamW's decoupled decay, which Keras scales by the learning rate (5.0 x 2e-3: 1% a step). Chosen on
    # shapes 10%'s validation split (experiments/judge.py): 5e-4 0.40, 0.05 0.41, 0.5 0.46, 2.0 0.81, 5.0 0.95.
    weight_decay: float = 5.0
    warmup: float = 0.05  # share of the steps spent warming the learning rate up linearly
    label_smoothing: float = 0.1
    width: int = 16  # filters of the first stage (then 2x, 4x, 8x)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 2 or self.width < 1:
            raise ValueError(f"{self}: steps >= 1, batch_size >= 2 and width >= 1 required")
        if not (0 <= self.warmup < 1 and 0 <= self.label_smoothing < 1 and self.learning_rate > 0):
            raise ValueError(f"{self}: warmup and label_smoothing in [0, 1), learning_rate > 0 required")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What the classifier's batches hold (see the module docstring)."""

    policy: Optional[Callable] = None  # (float images 0..255 [B,H,W,C], seeds [B,2]) -> images, or AugmentParams
    synthetic: Optional[tuple] = None  # (uint8 images [N,H,W,C], labels [N] or probabilities [N,C])
    synthetic_fraction: float = 0.5  # share of each batch drawn from `synthetic`
    augment_synthetic: bool = True  # apply `policy` to the synthetic images too
    mix: str = "none"  # 'mixup' or 'cutmix' over the whole batch (alpha 1), or 'none'
    balance: str = "none"  # real images: 'resample' (classes drawn equally), 'reweight' (loss by 1/count)

    def __post_init__(self):
        if not 0.0 <= self.synthetic_fraction <= 1.0:
            raise ValueError(f"synthetic_fraction={self.synthetic_fraction}: must be in [0, 1]")
        if self.mix not in MIXES or self.balance not in BALANCES:
            raise ValueError(f"mix={self.mix!r} must be one of {MIXES}, balance={self.balance!r} one of {BALANCES}")


def build(
    resolution: int, channels: int, num_classes: int, width: int = 16, seed: int = 0, fused_batchnorm: bool = False
) -> keras.Model:
    """uint8-range images [B, R, R, C] -> logits [B, classes]; `features` (128-d) is the feature layer.

    fused_batchnorm: BatchNorm's training step as one fused op (trainer/fused_batch_norm.py; the same
    variables, so `set_weights` moves a model between the two kinds). Builds run one at a time (each seeds
    and draws from Python's global `random`: two threads building at once got each other's weights); other
    code drawing from `random` or building Keras layers on another thread meanwhile is not held back."""
    with _BUILD_LOCK:
        seed_keras(seed)
        return _layers(resolution, channels, num_classes, width, fused_batchnorm)


_BUILD_LOCK = threading.Lock()


def _layers(resolution: int, channels: int, num_classes: int, width: int, fused_batchnorm: bool) -> keras.Model:
    norm = FusedBatchNormalization if fused_batchnorm else keras.layers.BatchNormalization

    def conv(h, filters, stride=1, kernel=3, name=None):
        return keras.layers.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=False, kernel_initializer="he_normal", name=name
        )(h)

    def bn(h, zero=False):
        return norm(momentum=0.9, gamma_initializer="zeros" if zero else "ones")(h)

    def block(h, filters, stride):
        shortcut = h
        if stride != 1:  # every other pixel, then a 1x1 convolution: a strided 1x1 convolution's numbers, but
            # TensorFlow 2.21's oneDNN kernels compute a strided 1x1 convolution's filter gradient wrongly (on an
            # AVX2 CPU: tests/test_onednn.py), so the stride is taken apart
            shortcut = keras.layers.MaxPooling2D(1, strides=stride)(shortcut)
        if stride != 1 or h.shape[-1] != filters:
            shortcut = bn(conv(shortcut, filters, kernel=1))
        h = keras.layers.ReLU()(bn(conv(h, filters, stride)))
        h = bn(conv(h, filters), zero=True)  # zero-initialised last gain: each block starts as the identity
        return keras.layers.ReLU()(keras.layers.Add()([h, shortcut]))

    x = inputs = keras.Input((resolution, resolution, channels))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(x)
    while x.shape[1] > 32:  # larger images: stride down cheaply first
        x = keras.layers.ReLU()(bn(conv(x, width, stride=2)))
    x = keras.layers.ReLU()(bn(conv(x, width)))
    for stage, filters in enumerate((width, 2 * width, 4 * width, 8 * width)):
        x = block(x, filters, 1 if stage == 0 else 2)
    x = keras.layers.GlobalAveragePooling2D()(x)
    features = keras.layers.Dense(128, activation="relu", name=FEATURES_LAYER)(x)
    x = keras.layers.Dropout(0.2)(features)
    logits = keras.layers.Dense(max(num_classes, 1), name="logits", dtype="float32")(x)
    return keras.Model(inputs, logits, name="classifier")


def seed_keras(seed: int) -> None:
    """`keras.utils.set_random_seed` without TensorFlow's global seed, which Keras' layers do not read
    (their initializers and dropout draw from Python's `random`) and whose setting clears every compiled
    function's kernels: after it, the next step of a reused judge re-instantiated its graph (10 s for 12
    models). The same initial weights (tests/test_classifier.py); TensorFlow's global seed is left as it
    was (before, building a judge set it to the judge's seed for whatever ran next in the process)."""
    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)


class _WarmupCosine:  # the learning rate at a step: linear warm-up, then cosine decay to zero
    def __init__(self, peak: float, steps: int, warmup: float):
        self.peak, self.steps, self.warmup_steps = peak, steps, max(1, int(round(steps * warmup)))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * (step + 1.0) / self.warmup_steps
        progress = tf.clip_by_value((step - self.warmup_steps) / max(1, self.steps - self.warmup_steps), 0.0, 1.0)
        cosine = 0.5 * self.peak * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < self.warmup_steps, warm, cosine)


def _augment(policy, x: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    if policy is None:
        return x
    if callable(policy):
        out = policy(x, seeds)
    elif policy.is_identity:
        return x
    else:
        out = classic_augment.apply(x, policy, seeds)
    return tf.clip_by_value(tf.round(out), 0.0, 255.0)


def _mix(kind: str, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor, seed: tf.Tensor):
    """mixup (per-image Beta(1,1) weights) or CutMix (one box per image) with a shuffled copy of the batch."""
    n = tf.shape(x)[0]
    u = tf.random.stateless_uniform([n, 4], seed=seed)
    order = tf.argsort(tf.random.stateless_uniform([n], seed=seed + 1))
    x2, y2, w2 = tf.gather(x, order), tf.gather(y, order), tf.gather(weights, order)
    if kind == "mixup":
        lam = u[:, 0]
        x = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x2
    else:
        h, w = x.shape[1], x.shape[2]
        cut = tf.sqrt(1.0 - u[:, 0])  # box side ratio, so the box covers 1 - lam of the image on average
        ch, cw = cut * h, cut * w
        cy, cx = u[:, 1] * h, u[:, 2] * w
        rows = tf.range(h, dtype=tf.float32)[None, :, None]
        cols = tf.range(w, dtype=tf.float32)[None, None, :]
        box = (
            (tf.abs(rows + 0.5 - cy[:, None, None]) < ch[:, None, None] / 2)
            & (tf.abs(cols + 0.5 - cx[:, None, None]) < cw[:, None, None] / 2)
        )[..., None]
        x = tf.where(box, x2, x)
        lam = 1.0 - tf.reduce_mean(tf.cast(box, tf.float32), axis=[1, 2, 3])
    y = lam[:, None] * y + (1 - lam[:, None]) * y2
    weights = lam * weights + (1 - lam) * w2
    return x, y, weights


def train(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    spec: ClassifierSpec = ClassifierSpec(),
    seed: int = 0,
    recipe: Recipe = Recipe(),
) -> keras.Model:
    """Trains `build` on `images` (uint8 [N,H,W,C]) and `labels` [N] by `recipe`; deterministic for a seed."""
    return train_many(images, labels, num_classes, spec, [seed], recipe)[0]


def _class_weight(labels: np.ndarray, num_classes: int, balance: str) -> np.ndarray:
    """Per-class loss weights: inverse class frequency with balance='reweight' (a class absent: 0), else 1."""
    if balance != "reweight":
        return np.ones(num_classes)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)


def _synthetic_tensors(synthetic, images: np.ndarray, num_classes: int):
    """(images, one-hot or soft targets) of the synthetic pool; a one-image placeholder when there is none."""
    if synthetic is None:
        return tf.zeros([1, *images.shape[1:]], images.dtype), tf.zeros([1, num_classes])
    targets = np.asarray(synthetic[1])
    if targets.ndim == 2:
        return tf.constant(synthetic[0]), tf.constant(targets, tf.float32)
    return tf.constant(synthetic[0]), tf.one_hot(targets.astype(np.int32), num_classes)


class _Slots:
    """`count` models (fused BatchNorm: faster) with their AdamW optimizers and one traced update that advances
    them all, each by its own batch. Tracing that update costs seconds a model (the model's graph, its gradient
    and Keras' AdamW op by op) where a step costs a tenth of a second, so it is built once per process and
    shape and reused (`_STEPS`, trainer/step_pool.py): `reset` gives the models a fresh build's variables and
    the optimizers fresh state."""

    def __init__(self, shape: tuple, num_classes: int, width: int, count: int, weight_decay: float):
        self.models = [build(shape[1], shape[3], num_classes, width, 0, fused_batchnorm=True) for _ in range(count)]
        self.optimizers = [keras.optimizers.AdamW(0.0, weight_decay=weight_decay) for _ in range(count)]
        for model, optimizer in zip(self.models, self.optimizers):  # its slots now: tracing the step once
            optimizer.build(model.trainable_variables)
        self.update = tf.function(self._update)

    def reset(self, initial: list[keras.Model]) -> None:
        for model, fresh in zip(self.models, initial):
            for mine, theirs in zip(model.variables, fresh.variables, strict=True):  # the dropout's seed included
                mine.assign(theirs)
        for optimizer in self.optimizers:
            for variable in optimizer.variables:
                variable.assign(tf.zeros_like(variable))

    def _update(self, x, y, w, learning_rate):  # [count, batch, ...]: independent subgraphs, one per model
        losses = []
        for k, (model, optimizer) in enumerate(zip(self.models, self.optimizers)):
            optimizer.learning_rate = learning_rate
            with tf.GradientTape() as tape:
                logits = model(x[k], training=True)
                per_image = keras.losses.categorical_crossentropy(y[k], logits, from_logits=True)
                loss = tf.reduce_sum(per_image * w[k]) / tf.reduce_sum(w[k])
            optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
            losses.append(loss)
        return tf.stack(losses)


_STEPS = step_pool.StepPool(kept=4)  # idle `_Slots` kept (12 models: ~45 MB of variables)


def train_many(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    spec: ClassifierSpec = ClassifierSpec(),
    seeds: Sequence[int] = (0,),
    recipe: Recipe = Recipe(),
    subsets: Optional[Sequence[np.ndarray]] = None,
) -> list[keras.Model]:
    """`train` for each of `seeds`, trained together: one compiled step advances every seed's model by that
    seed's own batch (the same draws, augmentation and updates as `train` with the seed alone), so the
    independent models fill the cores one small model leaves idle and share the per-step overhead.
    `subsets`: one index array into `images` per seed; that seed's model is the one `train` makes on those
    images alone (cross-validation's folds train together; a seed may repeat across subsets)."""
    seeds = [int(s) for s in seeds]
    everything = np.arange(len(images))
    subsets = [everything] * len(seeds) if subsets is None else [np.asarray(i, np.int64) for i in subsets]
    if len(subsets) != len(seeds) or any(len(i) == 0 for i in subsets):
        raise ValueError(f"{len(subsets)} subsets for {len(seeds)} seeds, each non-empty")
    # what the traced step depends on besides the batch size (a new batch size traces it once more)
    key = (tuple(images.shape[1:]), num_classes, spec.width, len(seeds), spec.weight_decay)
    key += (keras.config.dtype_policy().name,)
    make = lambda: _Slots(images.shape, num_classes, spec.width, len(seeds), spec.weight_decay)  # noqa: E731
    with _STEPS.lend(key, make) as slots:
        # the models returned: Keras' own layers (plain Keras loads them), a fresh build per seed that first
        # lends its initial variables to the slots and at the end takes the trained ones
        returned = [build(images.shape[1], images.shape[3], num_classes, spec.width, s) for s in seeds]
        slots.reset(returned)
        _run(slots, images, labels, num_classes, spec, seeds, recipe, subsets)
        for model, plain in zip(slots.models, returned):
            plain.set_weights(model.get_weights())
    return returned


def _run(slots, images, labels, num_classes, spec, seeds, recipe, subsets) -> None:
    """The steps: batches drawn here (seed k's from `subsets[k]` only), augmented and mixed by a step traced
    for this recipe, then `slots.update`."""
    policy, count, batch = recipe.policy, len(seeds), spec.batch_size
    labels = np.asarray(labels).astype(np.int64)
    real_x, real_y = tf.constant(images), tf.one_hot(labels.astype(np.int32), num_classes)
    # each seed's loss weight per image: re-weighting counts the classes of that seed's subset
    real_w = tf.constant(
        np.stack([_class_weight(labels[i], num_classes, recipe.balance)[labels] for i in subsets]), tf.float32
    )
    synthetic = recipe.synthetic
    n_synth = 0 if synthetic is None else int(round(batch * recipe.synthetic_fraction))
    n_real = batch - n_synth
    synth_x, synth_y = _synthetic_tensors(synthetic, images, num_classes)
    augment_mask = tf.constant([True] * n_real + [recipe.augment_synthetic] * n_synth)
    smoothing = spec.label_smoothing
    schedule = _WarmupCosine(spec.learning_rate, spec.steps, spec.warmup)
    learning_rate = tf.function(schedule)  # its own small graph, the same numbers as inside the step

    @tf.function
    def batches(real_index, synth_index, first):  # indices [seeds, n] -> x, y, w [seeds, batch, ...]
        x = tf.concat([tf.gather(real_x, real_index), tf.gather(synth_x, synth_index)], 1)
        y = tf.concat([tf.gather(real_y, real_index), tf.gather(synth_y, synth_index)], 1)
        w = tf.concat([tf.gather(real_w, real_index, batch_dims=1), tf.ones(tf.shape(synth_index), tf.float32)], 1)
        image_seeds = tf.concat(  # an image's augmentation depends on its seed only, so all seeds' batches go as one
            [classic_augment.image_seeds(s * 1_000_003 + 17, first + tf.range(batch, dtype=tf.int64)) for s in seeds], 0
        )
        x = tf.cast(x, tf.float32)
        augmented = tf.reshape(_augment(policy, tf.reshape(x, [count * batch, *x.shape[2:]]), image_seeds), x.shape)
        x = tf.where(augment_mask[None, :, None, None, None], augmented, x)
        if recipe.mix != "none":
            mixed = [
                _mix(recipe.mix, x[k], y[k], w[k], tf.stack([tf.constant(s, tf.int64), first]))
                for k, s in enumerate(seeds)
            ]
            x, y, w = (tf.stack(part) for part in zip(*mixed))
        return x, y * (1.0 - smoothing) + smoothing / num_classes, w

    # a seed's draws are positions in its subset, as `train` on the subset alone would draw them
    by_class = [[subset[labels[subset] == c] for c in range(num_classes)] for subset in subsets]
    present = [[c for c in range(num_classes) if len(mine[c])] for mine in by_class]
    rngs = [np.random.default_rng(s) for s in seeds]

    def draw(k):
        rng = rngs[k]
        if recipe.balance == "resample":
            classes = rng.choice(present[k], n_real)
            real = np.array([by_class[k][c][rng.integers(len(by_class[k][c]))] for c in classes], np.int64)
        else:
            real = subsets[k][rng.integers(0, len(subsets[k]), n_real)]
        return real, rng.integers(0, len(synth_x), n_synth)

    for i in range(spec.steps):
        real_index, synth_index = zip(*(draw(k) for k in range(count)))
        loss = slots.update(
            *batches(
                tf.constant(np.stack(real_index)),
                tf.constant(np.stack(synth_index)),
                tf.constant(i * batch, tf.int64),
            ),
            learning_rate(tf.constant(i, tf.int64)),
        )
        losses = loss.numpy() if i % 100 == 99 else np.zeros(1)
        if not np.all(np.isfinite(losses)):
            bad = [s for s, v in zip(seeds, losses) if not np.isfinite(v)]
            raise FloatingPointError(f"classifier training (seeds {bad}) diverged at step {i + 1} ({losses})")


def predict(model: keras.Model, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits [N, classes] (float32)."""
    return np.concatenate(
        [
            np.asarray(model(tf.cast(images[i : i + batch_size], tf.float32), training=False), np.float32)
            for i in range(0, len(images), batch_size)
        ]
    )


# The scores below are cached by name (trainer/score_cache.py): changing what one computes means raising
# that module's VERSION.
def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    return accuracy_of(predict(model, images), labels)


def accuracy_of(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())


def per_class_recall(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall of each class [classes] (NaN for a class absent from `labels`)."""
    labels = np.asarray(labels)
    return np.array(
        [(predicted[labels == c] == c).mean() if (labels == c).any() else np.nan for c in range(num_classes)]
    )


def balanced_accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean per-class recall over the classes present in `labels`."""
    return balanced_accuracy_of(predict(model, images), labels, num_classes)


def balanced_accuracy_of(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    return float(np.nanmean(per_class_recall(np.asarray(logits).argmax(1), labels, num_classes)))


def true_class_log_p(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """log softmax(logits)[i, labels[i]] of each image [N], in float64 (no overflow for large logits)."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    return log_p[np.arange(len(labels)), np.asarray(labels)]


def log_likelihood(logits: np.ndarray, labels: np.ndarray, num_classes: int, balanced: bool = False) -> float:
    """Mean log-probability of the true class (a proper score, finer than accuracy); `balanced`: the mean of
    each present class's mean, as balanced accuracy weighs classes."""
    labels = np.asarray(labels)
    true = true_class_log_p(logits, labels)
    if not balanced:
        return float(true.mean())
    return float(np.mean([true[labels == c].mean() for c in range(num_classes) if (labels == c).any()]))
