"""Measuring what a generator makes: feature space, FID, KID, precision/recall, memorization, usefulness.

Every metric takes uint8 images [N, H, W, C] (or their features) and is a plain
function, so it can be tested on known cases and reused by `dcgan evaluate`,
by the training loop (KID every N steps) and by the sampler's memorization
filter.

Feature space: a user-supplied Keras model file (`--feature_model`, e.g. an
InceptionV3 with locally held weights gives the standard FID; it receives
float32 images in [-1, 1] resized to its input size, grayscale repeated to RGB
when it wants 3 channels), or by default the judge classifier (trainer/classifier.py) trained on
labelled real images (its 128-d penultimate layer), saved and reused. For
unlabelled data without a feature model, a fixed random-weight CNN is used
(random features still rank generators, but are not comparable to FID papers).

    python -c "import numpy as np; from trainer import metrics as m; a = np.random.rand(500, 8); print(m.fid(a, a + 1))"
"""

from __future__ import annotations

import fcntl
import os
import warnings
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer import classifier as judge
from trainer import data, models, score_cache, storage
from trainer.errors import UserError

FEATURES_LAYER = judge.FEATURES_LAYER


# ----------------------------------------------------------------------------
# Distribution distances


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets."""
    from scipy import linalg

    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    with warnings.catch_warnings():  # few samples or dead features make the product singular
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():  # nudge the diagonals, as the reference implementation does
            offset = np.eye(s1.shape[0]) * 1e-6
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = covmean.real
    return float(max(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean), 0.0))


def kid(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3, mean and std over subsets."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n = min(len(real), len(fake), subset_size)
    d = real.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), n, replace=False)]
        y = fake[rng.choice(len(fake), n, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (n * (n - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


def pairwise_distances(a: np.ndarray, b: np.ndarray, block: int = 2048) -> np.ndarray:
    """Euclidean distances [len(a), len(b)] in float32, in blocks."""
    a, b = np.asarray(a, np.float32).reshape(len(a), -1), np.asarray(b, np.float32).reshape(len(b), -1)
    b2 = (b * b).sum(1)
    out = np.empty((len(a), len(b)), np.float32)
    for start in range(0, len(a), block):
        x = a[start : start + block]
        sq = (x * x).sum(1)[:, None] + b2[None, :] - 2.0 * x @ b.T
        out[start : start + block] = np.sqrt(np.maximum(sq, 0.0))
    return out


def nearest(query: np.ndarray, reference: np.ndarray, leave_one_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distance, index) of each query's nearest reference; leave_one_out when query is reference."""
    d = pairwise_distances(query, reference)
    if leave_one_out:
        np.fill_diagonal(d, np.inf)
    index = d.argmin(1)
    return d[np.arange(len(d)), index], index


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): k-NN balls around each set's points."""

    def radii(x):
        d = pairwise_distances(x, x)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    real_radii, fake_radii = radii(real), radii(fake)
    cross = pairwise_distances(fake, real)  # [fake, real]
    precision = float((cross <= real_radii[None, :]).any(axis=1).mean())
    recall = float((cross.T <= fake_radii[None, :]).any(axis=1).mean())
    return precision, recall


# ----------------------------------------------------------------------------
# Memorization


def memorization(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray, quantile: float = 0.01) -> dict:
    """Share of synthetic samples closer to a training image than real held-out images typically are.

    The threshold is the `quantile` of held-out real images' nearest-training-image
    distances, so a held-out real image is flagged `quantile` of the time by
    construction; a generator that copies its training images scores far higher.
    Works on pixels or features (any [N, ...] arrays).
    """
    holdout_d, _ = nearest(holdout, train)
    threshold = float(np.quantile(holdout_d, quantile))
    synth_d, synth_i = nearest(synthetic, train)
    return {
        "rate": float((synth_d < threshold).mean()),
        "threshold": threshold,
        "quantile": quantile,
        "median_distance_synthetic": float(np.median(synth_d)),
        "median_distance_holdout": float(np.median(holdout_d)),
        "distances": synth_d,
        "nearest_index": synth_i,
    }


def leave_one_out_threshold(train_pixels: np.ndarray, quantile: float, max_queries: int = 2000, seed: int = 0) -> float:
    """The `quantile` of real images' distances to their nearest other training image (pixel space).

    Used when no held-out set exists (the sampler's filter): a training image
    against the rest of the set is distributed like a held-out image against it."""
    rng = np.random.default_rng(seed)
    queries = rng.choice(len(train_pixels), min(len(train_pixels), max_queries), replace=False)
    d = pairwise_distances(train_pixels[queries], train_pixels)
    d[np.arange(len(queries)), queries] = np.inf
    return float(np.quantile(d.min(1), quantile))


# ----------------------------------------------------------------------------
# Feature space


class FeatureSpace:
    """images (uint8 [N, H, W, C]) -> features [N, D], from a classifier or a user's model."""

    def __init__(self, model: keras.Model, kind: str, classifier: Optional[keras.Model] = None):
        self.kind = kind
        self.classifier = classifier  # the real-data classifier (GAN-test), when there is one
        output = model.get_layer(FEATURES_LAYER).output if kind != "user" else model.output
        self._extract = keras.Model(model.input, output)
        shape = self._extract.input_shape
        self._size, self._channels = shape[1], shape[3]
        self._user = kind == "user"

    def __call__(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch_size):
            x = tf.cast(images[start : start + batch_size], tf.float32)
            if self._user:  # a user's model: [-1, 1], its own size and channels
                if x.shape[1] != self._size:
                    x = tf.image.resize(x, [self._size, self._size], method="bilinear")
                if x.shape[3] == 1 and self._channels == 3:
                    x = tf.repeat(x, 3, axis=3)
                x = x / 127.5 - 1.0
            features = tf.cast(self._extract(x, training=False), tf.float32).numpy()
            out.append(features.reshape(len(features), -1))
        return np.concatenate(out)


# How the feature classifier is trained: TrivialAugment, drawn per image. Without augmentation, on shapes
# 10% (168 RGB images) it scored 0.19 on validation (chance 0.17) and found the conditioning class in 29%
# of a generator's samples where the oracle found 71%; with it, 0.83 and 72% (docs/generators.md).
FEATURE_POLICY = "trivial_augment"


def _cache_key(images: np.ndarray, labels: np.ndarray, steps: int) -> str:
    """'32px-<digest>': the images, labels and training rule of a cached feature classifier."""
    rule = np.frombuffer(f"{steps}/judge-v{judge.VERSION}/{FEATURE_POLICY}".encode(), np.uint8)
    return f"{images.shape[1]}px-{score_cache.digest_arrays(images, labels.astype(np.int64), rule)[:16]}"


def classifier_cache_path(name: str, images: np.ndarray, labels: np.ndarray, steps: int) -> str:
    """The cached feature classifier's file: keyed by the images, labels and training rule; `name` only makes
    the file readable, so the same images under another name or path reuse a classifier already trained."""
    folder, suffix = storage.cache_dir("feature_models"), f"-{_cache_key(images, labels, steps)}.keras"
    same = sorted(f for f in os.listdir(folder) if f.endswith(suffix)) if os.path.isdir(folder) else []
    safe = "".join(c if c.isalnum() else "_" for c in name)[-40:]
    return os.path.join(folder, same[0] if same else safe + suffix)


def feature_space(
    images: np.ndarray,
    labels: Optional[np.ndarray],
    num_classes: int,
    name: str,
    feature_model: str = "",
    steps: int = 1500,
    log: Callable[[str], None] = print,
) -> FeatureSpace:
    """The feature space for `images`' domain: a user model, else a cached classifier, else random features.

    The classifier is cached (keyed by the images, labels and training rule) and reused; processes that
    need the same one at once train it once."""
    if feature_model:
        path = storage.fetch_file(feature_model, "feature_models")
        if not os.path.isfile(path):
            raise UserError(f"--feature_model={feature_model}: no such file")
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as err:
            raise UserError(
                f"--feature_model={feature_model}: cannot load it ({type(err).__name__}: {str(err)[:120]})"
            ) from None
        return FeatureSpace(model, "user")
    if labels is None or num_classes < 2:
        log("features: random-weight CNN (the data has no labels and no --feature_model was given)")
        return FeatureSpace(judge.build(images.shape[1], images.shape[3], 1, seed=1234), "random")
    folder = storage.cache_dir("feature_models")
    os.makedirs(folder, exist_ok=True)
    # Jobs started together on the same images train it once: the first holds the lock, the others wait
    # for its file (the kernel drops the lock if that process dies, and the next one trains it).
    with open(os.path.join(folder, f"{_cache_key(images, labels, steps)}.lock"), "ab") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("features: another process is training this classifier; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        path = classifier_cache_path(name, images, labels, steps)  # after the lock: finds the other's file
        if os.path.isfile(path):
            model = keras.models.load_model(path, compile=False)
            log(f"features: classifier loaded from {path}")
            return FeatureSpace(model, "classifier", classifier=model)
        from trainer import downstream

        recipe = judge.Recipe(downstream.POLICIES[FEATURE_POLICY]())
        model = judge.train(images, labels, num_classes, judge.ClassifierSpec(steps=steps), seed=0, recipe=recipe)
        temp = f"{path}.tmp-{os.getpid()}.keras"
        model.save(temp)
        os.replace(temp, path)
    log(
        f"features: classifier trained on {len(images)} images of {name} ({steps} steps, "
        f"{FEATURE_POLICY}), saved to {path}"
    )
    return FeatureSpace(model, "classifier", classifier=model)


class KidTracker:
    """KID of a generator against its training images, for the training loop (chief only).

    The real side (up to `count` training images, seeded) is embedded once; each
    call draws `count` samples from fixed noise with balanced labels."""

    def __init__(
        self,
        images: np.ndarray,
        labels: Optional[np.ndarray],
        num_classes: int,
        name: str,
        latent_dim: int,
        count: int,
        feature_model: str = "",
        seed: int = 0,
        log: Callable[[str], None] = print,
        conditional: Optional[bool] = None,
    ):
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(images), min(count, len(images)), replace=False)
        self.space = feature_space(images, labels, num_classes, name, feature_model, log=log)
        self.real = self.space(images[chosen])
        self.z = tf.random.stateless_normal([count, latent_dim], seed=[seed, 7])
        self.labels = tf.range(count, dtype=tf.int32) % max(num_classes, 1)
        self.conditional = num_classes > 0 if conditional is None else conditional  # the generator's, not the data's

    def __call__(self, generator: keras.Model) -> float:
        return self.measure(generator)[0]

    def measure(self, generator: keras.Model) -> tuple[float, Optional[float]]:
        """(KID, class consistency): the consistency is the share of samples the real-data classifier gives
        their conditioning label (None without one: unconditional, or a user's feature model)."""
        images = []
        for start in range(0, len(self.z), 250):
            z, y = self.z[start : start + 250], self.labels[start : start + 250]
            out = generator(models.model_inputs(z, y, self.conditional), training=False)
            pixels = tf.cast(out, tf.float32).numpy()
            images.append(data.to_uint8(pixels))
        images = np.concatenate(images)
        fake = self.space(images)
        n = min(len(self.real), len(fake))
        consistency = None
        if self.conditional and self.space.classifier is not None:
            predicted = judge.predict(self.space.classifier, images).argmax(1)
            consistency = float((predicted == self.labels.numpy()).mean())
        return kid(self.real, fake, subsets=50, subset_size=max(n // 2, 2))[0], consistency
