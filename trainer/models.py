"""DCGAN networks (Radford et al. 2016) for 32..256 pixels, optionally class-conditional.

Generator: z [+ label embedding] -> dense 4x4 -> (ConvTranspose 4x4/2, BatchNorm, ReLU)*
-> ConvTranspose to the image channels -> tanh. Discriminator: (Conv 4x4/2, [BatchNorm,]
LeakyReLU 0.2)* down to 4x4 (no BatchNorm on the first layer) -> linear logit, plus a
projection term <embed(y), features> when conditional (Miyato & Koyama 2018).
Filters: 64 * width at the highest resolution, doubling per halving, capped at 8x.
The generator's output and the discriminator's logit are float32 under any
mixed-precision policy.

    python -c "from trainer import models; models.build_generator(64, 3, 100, 1.0, 0).summary()"
"""

from __future__ import annotations

import math

import keras
from keras import layers



def weight_init() -> keras.initializers.Initializer:
    """N(0, 0.02), as in the DCGAN paper.

    A fresh instance per layer: a Keras 3 initializer fixes its seed when it is
    constructed (from Python's `random`, which `keras.utils.set_random_seed`
    seeds) and then returns the same values on every call, so one shared
    instance would give same-shaped layers identical weights.
    """
    return keras.initializers.RandomNormal(0.0, 0.02)


def gamma_init() -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(1.0, 0.02)


def _levels(resolution: int) -> int:
    """Number of 2x up/down-sampling stages between 4x4 and `resolution`."""
    return int(math.log2(resolution)) - 2


def filters(width: float, level_from_top: int) -> int:
    """Filters `level_from_top` stages below full resolution (0 = full)."""
    base = max(1, round(64 * width))
    return base * min(2**level_from_top, 8)


def _batch_norm(sync: bool, name: str) -> layers.Layer:
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer=gamma_init(),
                                     synchronized=sync, name=name)


def build_generator(resolution: int, channels: int, latent_dim: int, width: float,
                    num_classes: int, sync_batchnorm: bool = False, name: str = "generator") -> keras.Model:
    """G(z) or G([z, label]) -> float32 images in [-1, 1], shape [B, res, res, channels]."""
    n = _levels(resolution)
    z = keras.Input((latent_dim,), name="z")
    inputs, h = [z], z
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        embedded = layers.Embedding(num_classes, latent_dim, embeddings_initializer=weight_init(), name="label_embedding")(label)
        h = layers.Concatenate(name="z_and_label")([z, embedded])
    top = filters(width, n - 1)
    h = layers.Dense(4 * 4 * top, use_bias=False, kernel_initializer=weight_init(), name="project")(h)
    h = layers.Reshape((4, 4, top), name="to_4x4")(h)
    h = layers.ReLU(name="relu_4")(_batch_norm(sync_batchnorm, "bn_4")(h))
    size = 4
    for level in range(n - 2, -1, -1):
        size *= 2
        h = layers.Conv2DTranspose(filters(width, level), 4, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=weight_init(), name=f"up_{size}")(h)
        h = layers.ReLU(name=f"relu_{size}")(_batch_norm(sync_batchnorm, f"bn_{size}")(h))
    h = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", kernel_initializer=weight_init(),
                               name=f"up_{resolution}")(h)
    images = layers.Activation("tanh", dtype="float32", name="images")(h)
    return keras.Model(inputs if num_classes else z, images, name=name)


@keras.saving.register_keras_serializable(package="dcgan")
class ProjectionLogit(layers.Layer):
    """logit = w.h + b [+ <embed(y), h>]: the projection discriminator's head, in float32."""

    def __init__(self, num_classes: int = 0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.linear = layers.Dense(1, kernel_initializer=weight_init(), dtype=self.dtype_policy, name="linear")
        self.embedding = None  # sized to the features in build()

    def build(self, input_shape):
        feature_shape = input_shape[0] if self.num_classes else input_shape
        self.linear.build(feature_shape)
        if self.num_classes:
            self.embedding = layers.Embedding(self.num_classes, feature_shape[-1], embeddings_initializer=weight_init(),
                                              dtype=self.dtype_policy, name="class_embedding")
            self.embedding.build(input_shape[1])

    def call(self, inputs):
        if not self.num_classes:
            return self.linear(inputs)[:, 0]
        features, label = inputs
        projection = keras.ops.sum(self.embedding(label) * features, axis=-1)
        return self.linear(features)[:, 0] + projection

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def build_discriminator(resolution: int, channels: int, width: float, num_classes: int,
                        sync_batchnorm: bool = False, name: str = "discriminator") -> keras.Model:
    """D(x) or D([x, label]) -> float32 logits, shape [B]."""
    n = _levels(resolution)
    images = keras.Input((resolution, resolution, channels), name="images")
    h = layers.Conv2D(filters(width, 0), 4, strides=2, padding="same", kernel_initializer=weight_init(),
                      name=f"down_{resolution // 2}")(images)
    h = layers.LeakyReLU(0.2, name=f"lrelu_{resolution // 2}")(h)
    size = resolution // 2
    for level in range(1, n):
        size //= 2
        h = layers.Conv2D(filters(width, level), 4, strides=2, padding="same", use_bias=False,
                          kernel_initializer=weight_init(), name=f"down_{size}")(h)
        h = layers.LeakyReLU(0.2, name=f"lrelu_{size}")(_batch_norm(sync_batchnorm, f"bn_{size}")(h))
    features = layers.Flatten(name="features")(h)
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        logits = ProjectionLogit(num_classes, name="logit")([features, label])
        return keras.Model([images, label], logits, name=name)
    return keras.Model(images, ProjectionLogit(0, name="logit")(features), name=name)
