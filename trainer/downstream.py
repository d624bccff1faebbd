"""Training a downstream classifier on real + synthetic images: the recipes and the classic baselines.

Augmentation policies (what synthetic data has to beat):
  classic_policy(strength)        ImageDataGenerator-style rotation/shift/zoom (`dcgan augment`'s
                                  defaults times `strength`), one fused warp on the fly
  randaugment_policy(ops, factor) Keras 3's RandAugment layer (Cubuk et al. 2020)
  crop_flip_policy(flip, pad)     pad-and-crop translation, optional horizontal flip, and
                                  brightness/contrast jitter: the usual tuned CIFAR-style policy

Recipes (each one classifier, the same steps and batch size):
  real + policy                                       the baselines
  real + policy + synthetic (hard labels)             synthetic images labelled by their conditioning label
  real + policy + synthetic (teacher's soft labels)   knowledge distillation on generated images: a
                                                      teacher ensemble trained on real + policy labels
                                                      each synthetic image with class probabilities

    python -c "from trainer import downstream; print(downstream.classic_policy(1.0).describe())"
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer import metrics
from trainer.augment_params import AugmentParams
from trainer.config import AugmentConfig

Policy = object  # AugmentParams, or a function (images 0..255 [B,H,W,C], seeds [B,2]) -> images


def classic_policy(strength: float = 1.0) -> AugmentParams:
    """`dcgan augment`'s ImageDataGenerator-style defaults, scaled by `strength` (0 = none)."""
    base = AugmentConfig(output="-")
    zoom = float(base.zoom_range) * strength
    return AugmentParams.create(
        rotation_range=base.rotation_range * strength,
        width_shift_range=base.width_shift_range * strength,
        height_shift_range=base.height_shift_range * strength,
        zoom_range=(1.0 - zoom, 1.0 + zoom),
    )


def randaugment_policy(num_ops: int = 2, factor: float = 0.5, seed: int = 0) -> Callable:
    """Keras 3's RandAugment on 0..255 images (`num_ops` operations of magnitude `factor` per batch).

    The layer draws from its own seed state, not from the per-image seeds; `apply.reset(run_seed)`
    restarts that state, so a classifier's run depends on its own seed only, not on what ran before
    it in the process (`metrics.train_classifier` calls it)."""
    current = {}

    def reset(run_seed: int = 0) -> None:
        current["layer"] = keras.layers.RandAugment(
            value_range=(0, 255), num_ops=num_ops, factor=factor, seed=seed * 1_000_003 + run_seed
        )

    def apply(images, seeds):
        return current["layer"](images, training=True)

    reset()
    apply.reset = reset
    apply.description = f"RandAugment(num_ops={num_ops}, factor={factor})"
    return apply


def crop_flip_policy(flip: bool = True, pad: int = 4, jitter: float = 0.2) -> Callable:
    """Random translation by up to `pad` pixels (reflect padding, then crop), optional horizontal
    flip, and brightness/contrast jitter of +-`jitter`; stateless, one draw per image seed."""

    def one(image, seed):
        size = tf.shape(image)[0]
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        image = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seed)
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=seed + 1)
        if jitter:
            image = tf.image.stateless_random_brightness(image, 255.0 * jitter, seed=seed + 2)
            image = tf.image.stateless_random_contrast(image, 1 - jitter, 1 + jitter, seed=seed + 3)
        return tf.reshape(image, [size, size, image.shape[-1]])

    def apply(images, seeds):
        return tf.map_fn(lambda args: one(*args), (images, seeds), fn_output_signature=images.dtype)

    apply.description = f"crop(pad={pad}){' + flip' if flip else ''} + brightness/contrast({jitter})"
    return apply


def describe(policy) -> str:
    if policy is None:
        return "none"
    return policy.describe() if isinstance(policy, AugmentParams) else getattr(policy, "description", "custom")


@dataclasses.dataclass
class Teacher:
    """An ensemble of classifiers (uint8-range images -> logits); labels images with its mean softmax."""

    models: list
    digest: str = ""  # identifies the ensemble (the hash of its training data and settings)

    @property
    def num_classes(self) -> int:
        return int(self.models[0].output_shape[-1])

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return metrics.ensemble_probabilities(self.models, images)

    def probabilities_tensor(self, pixels: tf.Tensor) -> tf.Tensor:
        """The same, as a graph function of float pixels 0..255 [B, H, W, C] (for the sampler's producer)."""
        return tf.add_n([tf.nn.softmax(tf.cast(m(pixels, training=False), tf.float32)) for m in self.models]) / len(
            self.models
        )

    def save(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        for k, model in enumerate(self.models):
            path = os.path.join(folder, f"member-{k}.keras")
            model.save(path + ".tmp.keras")
            os.replace(path + ".tmp.keras", path)

    @classmethod
    def load(cls, paths: list[str], digest: str = "") -> "Teacher":
        from trainer.errors import UserError

        models = []
        for path in paths:
            try:
                models.append(keras.models.load_model(path, compile=False))
            except Exception as err:  # keras raises many types for a damaged file
                raise UserError(
                    f"{path}: cannot load the classifier ({type(err).__name__}: {str(err)[:160]})"
                ) from None
        return cls(models, digest)


def train_teacher(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    members: int = 5,
    steps: int = 1000,
    policy: Optional[Policy] = None,
    seed: int = 0,
) -> Teacher:
    """`members` classifiers on the real images with `policy`, each from its own seed."""
    return Teacher(
        [
            metrics.train_classifier(
                images, labels, num_classes, steps=steps, augmentation=policy, seed=seed * 1000 + 500 + k
            )
            for k in range(members)
        ]
    )


TEACHER_POLICY_STRENGTH = 0.5  # classic augmentation for the teacher: the strength the experiment found best


def cached_teacher(
    images: np.ndarray, labels: np.ndarray, num_classes: int, name: str, *, members: int, steps: int
) -> Teacher:
    """The sampler's 'auto' teacher: trained once per (images, labels, settings), then loaded from the cache."""
    from trainer import storage

    digest = hashlib.sha256(
        images.tobytes()
        + labels.astype(np.int64).tobytes()
        + f"{num_classes}/{members}/{steps}/{TEACHER_POLICY_STRENGTH}".encode()
    ).hexdigest()[:16]
    safe = "".join(c if c.isalnum() else "_" for c in name)[-40:]
    folder = os.path.join(storage.cache_dir("teachers"), f"{safe}-{digest}")
    paths = [os.path.join(folder, f"member-{k}.keras") for k in range(members)]
    if all(os.path.isfile(p) for p in paths):
        print(f"teacher: loaded from {folder}")
        return Teacher.load(paths, digest)
    print(f"teacher: training {members} classifiers on {len(images)} images of {name} ({steps} steps each)", flush=True)
    teacher = train_teacher(
        images, labels, num_classes, members=members, steps=steps, policy=classic_policy(TEACHER_POLICY_STRENGTH)
    )
    teacher.digest = digest
    teacher.save(folder)
    return teacher


def train_recipe(
    real: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    *,
    steps: int,
    seed: int,
    policy: Optional[Policy] = None,
    synthetic: Optional[tuple[np.ndarray, np.ndarray]] = None,
    synthetic_fraction: float = 0.5,
    augment_synthetic: bool = False,
    synthetic_first: float = 0.0,
) -> keras.Model:
    """One downstream classifier: real images (hard labels, `policy`) plus optional synthetic images whose
    targets are labels [N] or a teacher's probabilities [N, C], filling `synthetic_fraction` of each batch
    (after the first `synthetic_first` share of the steps, which draw synthetic images only)."""
    return metrics.train_classifier(
        real[0],
        real[1],
        num_classes,
        steps=steps,
        seed=seed,
        augmentation=policy,
        synthetic=synthetic,
        synthetic_fraction=synthetic_fraction,
        augment_synthetic=augment_synthetic,
        synthetic_first=synthetic_first,
    )
