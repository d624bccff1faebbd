"""DCGAN networks (Radford et al. 2016) for 32..256 pixels, optionally class-conditional.

Generator: z [+ label embedding] -> dense 4x4 -> (ConvTranspose 4x4/2, BatchNorm, ReLU)*
-> ConvTranspose to the image channels -> tanh. Discriminator: (Conv 4x4/2, [BatchNorm,]
LeakyReLU 0.2)* down to 4x4 (no BatchNorm on the first layer) -> linear logit, plus a
projection term <embed(y), features> when conditional (Miyato & Koyama 2018).
--g_conditioning=cbn looks every G BatchNorm's gain and bias up per class; skip_z computes
them from [z, label embedding] (built-in layers).
--class_fade_in adds a non-trainable strength to G's label embedding and D's projection term
(ConditionStrength, ProjectionLogit), set by the training step.
Filters: 64 * width at the highest resolution, doubling per halving, capped at 8x.
The generator's output and the discriminator's logit are float32 under any
mixed-precision policy.

    python -c "from trainer import models; models.build_generator(64, 3, 100, 1.0, 0).summary()"
"""

from __future__ import annotations

import math

import keras
from keras import layers

from trainer.fused_batch_norm import FusedBatchNormalization


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


def _modulated_batch_norm(sync: bool, name: str, fused: bool, h, style):
    """BN(h) * gain(s) + bias(s), gain and bias affine in s = [z, label embedding], built-in layers only.

    Skip-z with a shared class embedding (Brock et al. 2019), as BigGAN-deep has it: the whole z, not
    a chunk per block, goes with the embedding to every block, so G cannot keep z out of the synthesis
    past its first layer. The gain's bias starts at 1 and its kernel at N(0, 0.02)."""
    channels = h.shape[-1]
    normed = _batch_norm(sync, name, fused, affine=False)(h)
    parts = []
    for part, start in (("gain", "ones"), ("bias", "zeros")):
        affine = layers.Dense(channels, kernel_initializer=weight_init(), bias_initializer=start, name=f"{name}_{part}")
        parts.append(layers.Reshape((1, 1, channels), name=f"{name}_{part}_4d")(affine(style)))
    return layers.Add(name=f"{name}_shift")([layers.Multiply(name=f"{name}_scale")([normed, parts[0]]), parts[1]])


def _batch_norm(sync: bool, name: str, fused: bool = False, affine: bool = True) -> layers.Layer:
    """BatchNorm as the DCGAN paper has it; `fused`: one fused op in training (same math, see fused_batch_norm);
    `affine=False`: no gain and bias of its own (a caller applies them)."""
    kind = FusedBatchNormalization if fused and not sync else layers.BatchNormalization
    own = {"gamma_initializer": gamma_init()} if affine else {"center": False, "scale": False}
    return kind(momentum=0.9, epsilon=1e-5, synchronized=sync, name=name, **own)


@keras.saving.register_keras_serializable(package="dcgan")
class ConditionalBatchNorm(layers.Layer):
    """BatchNorm whose gain and bias are looked up per class: [h, label] -> BN(h) * gamma[y] + beta[y].

    Conditioning every generator block this way (de Vries et al. 2017; Miyato &
    Koyama 2018; BigGAN) ties the class to the whole synthesis, not just to the
    input vector."""

    def __init__(
        self,
        num_classes: int,
        momentum: float = 0.9,
        epsilon: float = 1e-5,
        synchronized: bool = False,
        fused: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes, self.momentum, self.epsilon, self.synchronized = num_classes, momentum, epsilon, synchronized
        self.fused = fused and not synchronized
        self.norm = (FusedBatchNormalization if self.fused else layers.BatchNormalization)(
            momentum=momentum,
            epsilon=epsilon,
            center=False,
            scale=False,
            synchronized=synchronized,
            dtype=self.dtype_policy,
            name="norm",
        )

    def build(self, input_shape):
        channels = input_shape[0][-1]
        self.norm.build(input_shape[0])
        self.gamma = self.add_weight(shape=(self.num_classes, channels), initializer=gamma_init(), name="gamma")
        self.beta = self.add_weight(shape=(self.num_classes, channels), initializer="zeros", name="beta")

    def call(self, inputs, training=None):
        h, label = inputs
        gamma = keras.ops.take(self.gamma, label, axis=0)[:, None, None, :]
        beta = keras.ops.take(self.beta, label, axis=0)[:, None, None, :]
        return self.norm(h, training=training) * keras.ops.cast(gamma, h.dtype) + keras.ops.cast(beta, h.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "synchronized": self.synchronized,
            "fused": self.fused,
        }


@keras.saving.register_keras_serializable(package="dcgan")
class SpectralConv2D(layers.Conv2D):
    """Conv2D whose kernel is divided by its largest singular value (Miyato et al. 2018).

    Stateless: sigma is estimated by `power_iterations` steps from a fixed start
    vector at every call, so there is no `u` variable to update in replica
    context: multi-replica, multi-worker and resumed runs stay exact."""

    def __init__(self, *args, power_iterations: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self.power_iterations = power_iterations

    def normalized_kernel(self):
        kernel = keras.ops.cast(self.kernel, "float32")
        matrix = keras.ops.reshape(kernel, [-1, kernel.shape[-1]])
        u = keras.ops.ones([1, kernel.shape[-1]]) / float(kernel.shape[-1]) ** 0.5
        for _ in range(self.power_iterations):
            v = keras.ops.matmul(u, keras.ops.transpose(matrix))
            v = v / (keras.ops.norm(v) + 1e-12)
            u = keras.ops.matmul(v, matrix)
            u = u / (keras.ops.norm(u) + 1e-12)
        u, v = keras.ops.stop_gradient(u), keras.ops.stop_gradient(v)
        sigma = keras.ops.sum(keras.ops.matmul(v, matrix) * u)
        return keras.ops.cast(kernel / sigma, self.compute_dtype)

    def call(self, inputs):
        outputs = keras.ops.conv(
            inputs,
            self.normalized_kernel(),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        if self.use_bias:
            outputs = outputs + keras.ops.cast(self.bias, self.compute_dtype)
        return outputs

    def get_config(self):
        return {**super().get_config(), "power_iterations": self.power_iterations}


@keras.saving.register_keras_serializable(package="dcgan")
class ConditionStrength(layers.Layer):
    """x * s, where s is a non-trainable scalar the training step sets (--class_fade_in: 0 -> 1).

    In G it scales the label embedding fed beside z; the export folds s into that embedding's table."""

    def build(self, input_shape):
        self.strength = self.add_weight(shape=(), initializer="ones", trainable=False, name="strength")

    def call(self, inputs):
        return inputs * keras.ops.cast(self.strength, inputs.dtype)


@keras.saving.register_keras_serializable(package="dcgan")
class MinibatchStddev(layers.Layer):
    """StyleGAN's minibatch standard deviation (Karras et al. 2018): one channel more, holding the spread of
    the features across a group of images.

    The batch is cut into contiguous groups of `group_size` images; for each group the standard deviation
    of every feature across its images, averaged over all features, is appended to each of its images as
    a constant channel. D can then see that a group of G's samples varies less than a group of real
    images. The batch must be a multiple of `group_size` (each replica's, with tf.distribute), and
    contiguous groups keep 1 replica x 2b equal to 2 replicas x b when b is a multiple too."""

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.group_size = int(group_size)

    def call(self, inputs):
        ops = keras.ops
        _, height, width, channels = inputs.shape
        x = ops.reshape(ops.cast(inputs, "float32"), (-1, self.group_size, height, width, channels))
        spread = ops.mean(ops.sqrt(ops.var(x, axis=1) + 1e-8), axis=(1, 2, 3))  # [groups]
        spread = ops.repeat(spread, self.group_size, axis=0)[:, None, None, None]
        feature = ops.broadcast_to(ops.cast(spread, inputs.dtype), (ops.shape(inputs)[0], height, width, 1))
        return ops.concatenate([inputs, feature], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


def condition_strengths(model: keras.Model) -> list:
    """The variables --class_fade_in sets every step: G's label strength, D's projection strength."""
    return [
        layer.strength
        for layer in model.layers
        if isinstance(layer, (ConditionStrength, ProjectionLogit)) and getattr(layer, "strength", None) is not None
    ]


def build_generator(
    resolution: int,
    channels: int,
    latent_dim: int,
    width: float,
    num_classes: int,
    sync_batchnorm: bool = False,
    name: str = "generator",
    conditioning: str = "concat",
    fused_batchnorm: bool = False,
    class_fade: bool = False,
) -> keras.Model:
    """G(z) or G([z, label]) -> float32 images in [-1, 1], shape [B, res, res, channels].

    conditioning (with classes): 'concat' feeds a label embedding with z;
    'cbn' also makes every BatchNorm class-conditional (ConditionalBatchNorm);
    'skip_z' sets every BatchNorm's gain and bias from [z, label embedding] (or z alone without
    classes): `_modulated_batch_norm`, built-in layers only.
    class_fade ('concat' only): the label embedding passes a ConditionStrength layer
    ('label_strength'), which the training step turns from 0 to 1 (--class_fade_in).
    fused_batchnorm: BatchNorm's training step as one fused op (ignored with sync_batchnorm)."""
    cbn = conditioning == "cbn" and num_classes > 0

    def norm(h, label_name):
        if cbn:
            return ConditionalBatchNorm(
                num_classes, synchronized=sync_batchnorm, fused=fused_batchnorm, name=label_name
            )([h, label])
        if conditioning == "skip_z":
            return _modulated_batch_norm(sync_batchnorm, label_name, fused_batchnorm, h, style)
        return _batch_norm(sync_batchnorm, label_name, fused_batchnorm)(h)

    n = _levels(resolution)
    z = keras.Input((latent_dim,), name="z")
    inputs, h = [z], z
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        embedded = layers.Embedding(
            num_classes, latent_dim, embeddings_initializer=weight_init(), name="label_embedding"
        )(label)
        if class_fade:
            embedded = ConditionStrength(name="label_strength")(embedded)
        h = layers.Concatenate(name="z_and_label")([z, embedded])
    style = h  # what --g_conditioning=skip_z feeds every block
    top = filters(width, n - 1)
    h = layers.Dense(4 * 4 * top, use_bias=False, kernel_initializer=weight_init(), name="project")(h)
    h = layers.Reshape((4, 4, top), name="to_4x4")(h)
    h = layers.ReLU(name="relu_4")(norm(h, "bn_4"))
    size = 4
    for level in range(n - 2, -1, -1):
        size *= 2
        h = layers.Conv2DTranspose(
            filters(width, level),
            4,
            strides=2,
            padding="same",
            use_bias=False,
            kernel_initializer=weight_init(),
            name=f"up_{size}",
        )(h)
        h = layers.ReLU(name=f"relu_{size}")(norm(h, f"bn_{size}"))
    h = layers.Conv2DTranspose(
        channels, 4, strides=2, padding="same", kernel_initializer=weight_init(), name=f"up_{resolution}"
    )(h)
    images = layers.Activation("tanh", dtype="float32", name="images")(h)
    return keras.Model(inputs if num_classes else z, images, name=name)


def model_inputs(x, labels, conditional):
    """What a generator (x = z) or discriminator (x = images) of this package is called with:
    [x, labels] when it is conditional, x alone when it is not."""
    return [x, labels] if conditional else x


def discriminate(D: keras.Model, images, labels, conditional: bool, training: bool = True):
    """(logits [B], class logits [B, classes] ([B, 2 * classes] with a twin head) or None): D's outputs,
    whether or not it has a class head."""
    out = D(model_inputs(images, labels, conditional), training=training)
    if isinstance(out, (list, tuple)):
        return out[0], out[1]
    return out, None


@keras.saving.register_keras_serializable(package="dcgan")
class ProjectionLogit(layers.Layer):
    """logit = w.h + b [+ s <embed(y), h>]: the projection discriminator's head, in float32.

    class_fade: the projection term is scaled by a non-trainable `strength` s that the training step
    turns from 0 to 1 (--class_fade_in); without it s is 1 and there is no such variable."""

    def __init__(self, num_classes: int = 0, class_fade: bool = False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes, self.class_fade = num_classes, bool(class_fade and num_classes)
        self.strength = None
        self.linear = layers.Dense(1, kernel_initializer=weight_init(), dtype=self.dtype_policy, name="linear")
        self.embedding = None  # sized to the features in build()

    def build(self, input_shape):
        feature_shape = input_shape[0] if self.num_classes else input_shape
        self.linear.build(feature_shape)
        if self.num_classes:
            self.embedding = layers.Embedding(
                self.num_classes,
                feature_shape[-1],
                embeddings_initializer=weight_init(),
                dtype=self.dtype_policy,
                name="class_embedding",
            )
            self.embedding.build(input_shape[1])
        if self.class_fade:
            self.strength = self.add_weight(shape=(), initializer="ones", trainable=False, name="strength")

    def call(self, inputs):
        if not self.num_classes:
            return self.linear(inputs)[:, 0]
        features, label = inputs
        projection = keras.ops.sum(self.embedding(label) * features, axis=-1)
        if self.strength is not None:
            projection = projection * self.strength
        return self.linear(features)[:, 0] + projection

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "class_fade": self.class_fade}


def build_discriminator(
    resolution: int,
    channels: int,
    width: float,
    num_classes: int,
    sync_batchnorm: bool = False,
    name: str = "discriminator",
    spectral_norm: bool = False,
    class_head: bool = False,
    fused_batchnorm: bool = False,
    class_fade: bool = False,
    minibatch_std: int = 0,
    twin_head: bool = False,
) -> keras.Model:
    """D(x) or D([x, label]) -> float32 logits, shape [B].

    spectral_norm: every conv kernel is spectrally normalised (SpectralConv2D)
    and D has no BatchNorm, as in SNGAN.
    class_head (conditional only): D returns [logits [B], class logits [B, classes]], an AC-GAN
    classifier on the same features (see `discriminate`).
    twin_head (with class_head): the class logits are [B, 2 * classes], AC-GAN's classifier then TAC-GAN's
    twin (learns the labels of G's samples; --class_loss=tac), both on the same features.
    class_fade (conditional only): the projection term fades in (ProjectionLogit, --class_fade_in).
    minibatch_std: a MinibatchStddev channel (groups of this many images) before D's last convolution;
    0 = none (--minibatch_std).
    fused_batchnorm: BatchNorm's training step as one fused op (ignored with sync_batchnorm)."""
    n = _levels(resolution)
    conv = SpectralConv2D if spectral_norm else layers.Conv2D
    images = keras.Input((resolution, resolution, channels), name="images")
    h = conv(
        filters(width, 0),
        4,
        strides=2,
        padding="same",
        kernel_initializer=weight_init(),
        name=f"down_{resolution // 2}",
    )(images)
    h = layers.LeakyReLU(0.2, name=f"lrelu_{resolution // 2}")(h)
    size = resolution // 2
    for level in range(1, n):
        size //= 2
        if minibatch_std and level == n - 1:
            h = MinibatchStddev(minibatch_std, name="minibatch_std")(h)
        h = conv(
            filters(width, level),
            4,
            strides=2,
            padding="same",
            use_bias=spectral_norm,
            kernel_initializer=weight_init(),
            name=f"down_{size}",
        )(h)
        if not spectral_norm:
            h = _batch_norm(sync_batchnorm, f"bn_{size}", fused_batchnorm)(h)
        h = layers.LeakyReLU(0.2, name=f"lrelu_{size}")(h)
    features = layers.Flatten(name="features")(h)
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        logits = ProjectionLogit(num_classes, class_fade, name="logit")([features, label])
        if class_head:
            width = 2 * num_classes if twin_head else num_classes
            classes = layers.Dense(width, kernel_initializer=weight_init(), dtype="float32", name="class_logits")
            return keras.Model([images, label], [logits, classes(features)], name=name)
        return keras.Model([images, label], logits, name=name)
    return keras.Model(images, ProjectionLogit(0, name="logit")(features), name=name)
