"""Classic augmentation policies (what synthetic data has to beat) and the teacher ensemble.

Every policy augments each image on its own, from the image's own seed (a
function (float images 0..255 [B, H, W, C], seeds [B, 2]) -> images, with a
`description`), so two images of one batch never share their transform:
  classic_policy(strength, rotation, flips)  ImageDataGenerator-style rotation/shift/zoom (`dcgan augment`'s
                                             defaults times `strength`), optionally full rotation and flips
  dihedral_policy()                          the 8 rotations by 90 degrees and flips (for classes that keep
                                             their identity under them, such as shapes or textures)
  rand_augment_policy(num_ops, magnitude)    RandAugment (Cubuk et al. 2020), drawn per image
  trivial_augment_policy()                   TrivialAugment (Mueller & Hutter 2021): one operation of random
                                             magnitude per image
  crop_flip_policy(flip, pad)                pad-and-crop translation, optional flip, brightness/contrast jitter
  then(a, b)                                 a, then b
POLICIES names the candidates a comparison tunes on validation (trainer/usefulness.py).
Mixup and CutMix act on labels too: they are `classifier.Recipe(mix=...)`.

    python -c "from trainer import downstream; print(downstream.trivial_augment_policy().description)"
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from trainer import classic_augment, classifier
from trainer.augment_params import AugmentParams

Policy = Callable  # (images 0..255 [B,H,W,C] float32, seeds [B,2] int64) -> images, with .description

# dcgan augment's ImageDataGenerator-style defaults (AugmentConfig's), the unit of classic_policy's strength.
CLASSIC_ROTATION, CLASSIC_SHIFT, CLASSIC_ZOOM = 15.0, 0.1, 0.1


def _policy(function: Callable, description: str) -> Policy:
    function.description = description
    return function


def classic_policy(strength: float = 1.0, rotation: Optional[float] = None, flips: bool = False) -> Policy:
    """ImageDataGenerator-style rotation, shift and zoom (`dcgan augment`'s defaults times `strength`);
    `rotation` (degrees) overrides the scaled rotation (180: any angle); `flips`: horizontal and vertical."""
    zoom = CLASSIC_ZOOM * strength
    params = AugmentParams.create(
        rotation_range=CLASSIC_ROTATION * strength if rotation is None else rotation,
        width_shift_range=CLASSIC_SHIFT * strength,
        height_shift_range=CLASSIC_SHIFT * strength,
        zoom_range=(1.0 - zoom, 1.0 + zoom),
        horizontal_flip=flips,
        vertical_flip=flips,
        fill_mode="reflect" if rotation else "nearest",
    )
    if params.is_identity:
        return _policy(lambda images, seeds: images, "none")
    return _policy(lambda images, seeds: classic_augment.apply(images, params, seeds), f"classic({params.describe()})")


def dihedral_policy() -> Policy:
    """A random one of the 8 symmetries of the square (rotations by 90 degrees, then a flip), per image."""

    def apply(images, seeds):
        u = classic_augment.uniforms(seeds, 2)
        quarter = tf.cast(tf.floor(u[:, 0] * 4), tf.int32)
        out = images
        for k in (1, 2, 3):
            out = tf.where((quarter == k)[:, None, None, None], tf.image.rot90(images, k), out)
        return tf.where((u[:, 1] < 0.5)[:, None, None, None], tf.reverse(out, [2]), out)

    return _policy(apply, "dihedral (rotations by 90 degrees and flips)")


def then(first: Policy, second: Policy) -> Policy:
    """`first`, then `second` (each from its own part of the image's seed)."""
    return _policy(
        lambda images, seeds: second(first(images, seeds), seeds + tf.constant([[0, 7_777_777]], tf.int64)),
        f"{first.description} + {second.description}",
    )


# RandAugment / TrivialAugment operations on float 0..255 images, magnitude m in [0, 1] per image.
OPERATIONS = (
    "identity",
    "autocontrast",
    "brightness",
    "contrast",
    "color",
    "solarize",
    "posterize",
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)


def _blend(images, other, factor):
    return other + (images - other) * factor[:, None, None, None]


def _autocontrast(x, m, sign):
    lo = tf.reduce_min(x, axis=[1, 2], keepdims=True)
    hi = tf.reduce_max(x, axis=[1, 2], keepdims=True)
    return tf.where(hi > lo, (x - lo) * 255.0 / tf.maximum(hi - lo, 1e-3), x)


def _contrast(x, m, sign):
    gray = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return _blend(x, tf.broadcast_to(gray, tf.shape(x)), 1.0 + 0.9 * m * sign)


def _color(x, m, sign):
    if x.shape[-1] != 3:
        return x
    gray = tf.image.rgb_to_grayscale(x)
    return _blend(x, tf.broadcast_to(gray, tf.shape(x)), 1.0 + 0.9 * m * sign)


def _solarize(x, m, sign):
    threshold = 256.0 - 256.0 * m[:, None, None, None]
    return tf.where(x >= threshold, 255.0 - x, x)


def _posterize(x, m, sign):
    step = 2.0 ** tf.round(4.0 * m)[:, None, None, None]
    return tf.floor(x / step) * step


# Operations on pixel values, each (images, magnitudes [B], signs [B]) -> images; a blend factor is 1 +- 0.9 m.
_PIXEL_OPERATIONS = {
    "identity": lambda x, m, sign: x,
    "autocontrast": _autocontrast,
    "brightness": lambda x, m, sign: _blend(x, tf.zeros_like(x), 1.0 + 0.9 * m * sign),
    "contrast": _contrast,
    "color": _color,
    "solarize": _solarize,
    "posterize": _posterize,
}


def _geometric(name: str, x: tf.Tensor, m: tf.Tensor, sign: tf.Tensor) -> tf.Tensor:
    """rotate (up to 30 degrees), shear_x / shear_y (up to 17 degrees), translate_x / translate_y (0.3 of the side)."""
    h, w = x.shape[1], x.shape[2]
    zeros, ones = tf.zeros_like(m), tf.ones_like(m)
    p = {"theta": zeros, "tx": zeros, "ty": zeros, "shear": zeros, "zx": ones, "zy": ones}
    p |= {"flip_horizontal": tf.zeros_like(m, tf.bool), "flip_vertical": tf.zeros_like(m, tf.bool)}
    if name == "rotate":
        p["theta"] = 30.0 * m * sign
    elif name in ("shear_x", "shear_y"):
        p["shear"] = 17.0 * m * sign  # about 0.3 in PIL's shear units
        if name == "shear_y":  # shear_x of the transposed image
            sheared = classic_augment.warp(
                tf.transpose(x, [0, 2, 1, 3]), classic_augment.projective_transforms(p, w, h), "reflect", 0.0
            )
            return tf.transpose(sheared, [0, 2, 1, 3])
    elif name == "translate_x":
        p["ty"] = 0.3 * w * m * sign
    elif name == "translate_y":
        p["tx"] = 0.3 * h * m * sign
    return classic_augment.warp(x, classic_augment.projective_transforms(p, h, w), "reflect", 0.0)


def _operation(name: str, x: tf.Tensor, m: tf.Tensor, sign: tf.Tensor) -> tf.Tensor:
    """One operation at per-image magnitudes m [B] in [0, 1] and signs [B] (+-1)."""
    if name in _PIXEL_OPERATIONS:
        return _PIXEL_OPERATIONS[name](x, m, sign)
    return _geometric(name, x, m, sign)


def _random_operations(x: tf.Tensor, seeds: tf.Tensor, rounds: int, magnitude: Optional[float]) -> tf.Tensor:
    """`rounds` times: every image takes one operation, chosen uniformly, of magnitude `magnitude`
    (None: uniform in [0, 1] per image, as TrivialAugment), with a random sign."""
    u = classic_augment.uniforms(seeds, 3 * rounds)
    for r in range(rounds):
        choice = tf.cast(tf.floor(u[:, 3 * r] * len(OPERATIONS)), tf.int32)
        m = u[:, 3 * r + 1] if magnitude is None else tf.fill(tf.shape(choice), float(magnitude))
        sign = tf.where(u[:, 3 * r + 2] < 0.5, -1.0, 1.0)
        out = x
        for k, name in enumerate(OPERATIONS):
            if name != "identity":
                out = tf.where((choice == k)[:, None, None, None], _operation(name, x, m, sign), out)
        x = tf.clip_by_value(out, 0.0, 255.0)
    return x


def rand_augment_policy(num_ops: int = 2, magnitude: float = 0.5) -> Policy:
    """RandAugment drawn per image: `num_ops` uniformly chosen operations of one `magnitude` (0..1)."""
    return _policy(
        lambda images, seeds: _random_operations(images, seeds, num_ops, magnitude),
        f"RandAugment(num_ops={num_ops}, magnitude={magnitude}, per image)",
    )


def trivial_augment_policy() -> Policy:
    """TrivialAugment: one uniformly chosen operation of uniformly random magnitude per image."""
    return _policy(lambda images, seeds: _random_operations(images, seeds, 1, None), "TrivialAugment (per image)")


def crop_flip_policy(flip: bool = True, pad: int = 4, jitter: float = 0.2) -> Policy:
    """Random translation by up to `pad` pixels (reflect padding, then crop), optional horizontal
    flip, and brightness/contrast jitter of +-`jitter`; one draw per image seed."""

    def apply(images, seeds):
        h, w = images.shape[1], images.shape[2]
        u = classic_augment.uniforms(seeds, 5)
        zeros, ones = tf.zeros_like(u[:, 0]), tf.ones_like(u[:, 0])
        p = {"theta": zeros, "shear": zeros, "zx": ones, "zy": ones, "flip_vertical": tf.zeros_like(zeros, tf.bool)}
        p |= {"tx": tf.round((2 * u[:, 0] - 1) * pad), "ty": tf.round((2 * u[:, 1] - 1) * pad)}
        p["flip_horizontal"] = (u[:, 2] < 0.5) if flip else tf.zeros_like(zeros, tf.bool)
        out = classic_augment.warp(images, classic_augment.projective_transforms(p, h, w), "reflect", 0.0)
        if jitter:
            out = out + (255.0 * jitter * (2 * u[:, 3] - 1))[:, None, None, None]
            mean = tf.reduce_mean(out, axis=[1, 2, 3], keepdims=True)
            out = _blend(out, tf.broadcast_to(mean, tf.shape(out)), 1 + jitter * (2 * u[:, 4] - 1))
        return out

    return _policy(apply, f"crop(pad={pad}){' + flip' if flip else ''} + brightness/contrast({jitter})")


# The baseline candidates `dcgan evaluate` and the experiments tune on validation: name -> a fresh policy.
# A policy's numbers changing under the same description: raise trainer/score_cache.py's VERSION.
POLICIES = {
    "none": lambda: classic_policy(0.0),
    "classic": lambda: classic_policy(1.0),
    "classic_full": lambda: classic_policy(1.0, rotation=180.0, flips=True),
    "crop_flip": crop_flip_policy,
    "trivial_augment": trivial_augment_policy,
    "rand_augment": lambda: rand_augment_policy(2, 0.5),
    "dihedral_trivial": lambda: then(dihedral_policy(), trivial_augment_policy()),
}


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
        return np.mean([tf.nn.softmax(classifier.predict(m, images)).numpy() for m in self.models], axis=0)

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
    """`members` judges (`classifier.train_many`, `steps` each) on the real images with `policy`, each from its
    own seed, trained together."""
    spec = classifier.ClassifierSpec(steps=steps)
    seeds = [seed * 1000 + 500 + k for k in range(members)]
    return Teacher(classifier.train_many(images, labels, num_classes, spec, seeds, classifier.Recipe(policy)))


TEACHER_POLICY_STRENGTH = 0.5  # classic augmentation for the teacher: the strength the experiment found best


def cached_teacher(
    images: np.ndarray, labels: np.ndarray, num_classes: int, name: str, *, members: int, steps: int
) -> Teacher:
    """The sampler's 'auto' teacher: trained once per (images, labels, settings), then loaded from the cache."""
    from trainer import storage

    digest = hashlib.sha256(
        images.tobytes()
        + labels.astype(np.int64).tobytes()
        + f"{num_classes}/{members}/{steps}/{TEACHER_POLICY_STRENGTH}/{classifier.VERSION}".encode()
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
