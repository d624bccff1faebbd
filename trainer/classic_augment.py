"""Classic augmentation with Keras' old `ImageDataGenerator` arguments, batched in TF.

The geometric part (rotation, shifts, shear, zoom and both flips) is composed
into ONE projective matrix per image and applied by one fused warp
(`ImageProjectiveTransformV3`, bilinear), instead of one resampling per op.
Then colour: `channel_shift_range` and `brightness_range`, in the same order
and with the same meaning as `ImageDataGenerator.apply_transform`. Parameters
are drawn per image from a stateless RNG keyed by that image's seed, so an
image's augmentation never depends on its batch.

Images are float in pixel units (0..255), NHWC, as ImageDataGenerator expects.

    python - <<'PY'
    import tensorflow as tf
    from trainer import augment_params, classic_augment
    params = augment_params.AugmentParams.create(rotation_range=20)
    x = tf.zeros([1, 8, 8, 1])
    print(classic_augment.apply(x, params, classic_augment.image_seeds(0, tf.range(1))).shape)
    PY
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from trainer.augment_params import AugmentParams


def random_parameters(params: AugmentParams, seeds: tf.Tensor, height: int, width: int) -> dict[str, tf.Tensor]:
    """Per-image transform parameters, as ImageDataGenerator.get_random_transform draws them.

    `seeds` is [N, 2] int64: 11 counter-based uniforms per image (see `uniforms`).
    """
    draws = uniforms(seeds, 11)

    def uniform(k, lo, hi):
        return lo + (hi - lo) * draws[:, k]

    def shift(k, value, size):
        if value == 0:
            return tf.zeros([tf.shape(seeds)[0]])
        scale = size if value < 1 else 1.0  # a fraction of the size, or pixels
        return uniform(k, -value, value) * scale

    n = tf.shape(seeds)[0]
    zeros = tf.zeros([n])
    return (
        {
            "theta": uniform(1, -params.rotation_range, params.rotation_range) if params.rotation_range else zeros,
            "tx": shift(2, params.height_shift_range, height),  # Keras: tx moves rows
            "ty": shift(3, params.width_shift_range, width),
            "shear": uniform(4, -params.shear_range, params.shear_range) if params.shear_range else zeros,
            "zx": uniform(5, *params.zoom_range) if params.zoom_range != (1.0, 1.0) else zeros + 1.0,
            "zy": uniform(6, *params.zoom_range) if params.zoom_range != (1.0, 1.0) else zeros + 1.0,
            "flip_horizontal": (uniform(7, 0.0, 1.0) < 0.5) if params.horizontal_flip else tf.zeros([n], tf.bool),
            "flip_vertical": (uniform(8, 0.0, 1.0) < 0.5) if params.vertical_flip else tf.zeros([n], tf.bool),
        }
        | (
            {"channel_shift": uniform(9, -params.channel_shift_range, params.channel_shift_range)}
            if params.channel_shift_range
            else {}
        )
        | ({"brightness": uniform(10, *params.brightness_range)} if params.brightness_range else {})
    )


def _u64(value: int) -> tf.Tensor:
    return tf.constant(np.uint64(value))


def _splitmix64(x: tf.Tensor) -> tf.Tensor:
    """Steele et al.'s splitmix64 finaliser: a fast, well-mixed 64-bit hash."""
    x = x + _u64(0x9E3779B97F4A7C15)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u64(30))) * _u64(0xBF58476D1CE4E5B9)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u64(27))) * _u64(0x94D049BB133111EB)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, _u64(31)))


def uniforms(seeds: tf.Tensor, count: int) -> tf.Tensor:
    """[N, count] floats in [0, 1): a splitmix64 hash of (seed pair, k), vectorised.

    Each image's numbers depend only on its own seed pair, never on its batch,
    and cost a few integer ops instead of one RNG kernel launch per image.
    """
    seeds = tf.cast(seeds, tf.uint64)
    key = _splitmix64(tf.bitwise.bitwise_xor(_splitmix64(seeds[:, 0]), seeds[:, 1]))
    # numpy keeps 64-bit constants exact (a Python list of big ints goes through float in graphs).
    steps = tf.constant(np.array([k * 0xD1B54A32D192ED03 % (1 << 64) for k in range(1, count + 1)], np.uint64))
    counters = key[:, None] + steps[None, :]
    bits = tf.bitwise.right_shift(_splitmix64(counters), _u64(40))  # top 24 bits
    return tf.cast(bits, tf.float32) / float(1 << 24)


def projective_transforms(p: dict[str, tf.Tensor], height: int, width: int) -> tf.Tensor:
    """[N, 8] output->input maps for ImageProjectiveTransformV3 (x = column, y = row).

    Builds Keras' matrix (rotation @ shift @ shear @ zoom about the centre, in
    (row, col) index order) and composes the flips, which ImageDataGenerator
    applies after the warp, into it.
    """
    theta = p["theta"] * (math.pi / 180.0)
    shear = p["shear"] * (math.pi / 180.0)
    one, zero = tf.ones_like(theta), tf.zeros_like(theta)

    def matrix(rows):
        return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)  # [N, 3, 3]

    rotation = matrix([[tf.cos(theta), -tf.sin(theta), zero], [tf.sin(theta), tf.cos(theta), zero], [zero, zero, one]])
    shift = matrix([[one, zero, p["tx"]], [zero, one, p["ty"]], [zero, zero, one]])
    shearing = matrix([[one, -tf.sin(shear), zero], [zero, tf.cos(shear), zero], [zero, zero, one]])
    zoom = matrix([[p["zx"], zero, zero], [zero, p["zy"], zero], [zero, zero, one]])
    m = rotation @ shift @ shearing @ zoom
    # transform_matrix_offset_center(m, h, w): about (h/2 - 0.5, w/2 - 0.5), in Keras' (x, y) order.
    o_r, o_c = height / 2 - 0.5, width / 2 - 0.5
    offset = tf.constant([[1, 0, o_r], [0, 1, o_c], [0, 0, 1]], tf.float32)
    reset = tf.constant([[1, 0, -o_r], [0, 1, -o_c], [0, 0, 1]], tf.float32)
    m = offset @ m @ reset
    # Keras builds m in (x, y) order and swaps the axes before scipy's
    # affine_transform (M' = P M P); m then maps output (row, col) -> input (row, col).
    swap = tf.constant([[0, 1, 0], [1, 0, 0], [0, 0, 1]], tf.float32)
    m = swap @ m @ swap
    # Flips happen after the warp: output (i, j) reads warped (h-1-i, j) / (i, w-1-j).
    flip_r = tf.where(p["flip_vertical"], -1.0, 1.0)
    flip_c = tf.where(p["flip_horizontal"], -1.0, 1.0)
    flips = matrix(
        [
            [flip_r, zero, tf.where(p["flip_vertical"], height - 1.0, 0.0)],
            [zero, flip_c, tf.where(p["flip_horizontal"], width - 1.0, 0.0)],
            [zero, zero, one],
        ]
    )
    m = m @ flips
    # (i, j) -> (x, y) = (j, i): a0 a1 a2 give the input column, b0 b1 b2 the input row.
    return tf.stack(
        [
            m[:, 1, 1],
            m[:, 1, 0],
            m[:, 1, 2],
            m[:, 0, 1],
            m[:, 0, 0],
            m[:, 0, 2],
            tf.zeros_like(theta),
            tf.zeros_like(theta),
        ],
        axis=-1,
    )


def apply(images: tf.Tensor, params: AugmentParams, seeds: tf.Tensor) -> tf.Tensor:
    """Augments a batch [N, H, W, C] (float, 0..255); `seeds` [N, 2] int64, one per image."""
    images = tf.convert_to_tensor(images, tf.float32)
    if params.is_identity:
        return images
    p = random_parameters(params, tf.convert_to_tensor(seeds, tf.int64), images.shape[1], images.shape[2])
    return apply_parameters(images, p, params)


def apply_parameters(images: tf.Tensor, p: dict[str, tf.Tensor], params: AugmentParams) -> tf.Tensor:
    """Applies explicit per-image parameters (the keys random_parameters returns)."""
    images = tf.convert_to_tensor(images, tf.float32)
    height, width = images.shape[1], images.shape[2]
    # -- Geometry: one fused bilinear warp per image (XLA-compiled gather: ~4x TF's kernel on CPU).
    out = warp(images, projective_transforms(p, height, width), params.fill_mode, params.cval)
    # -- Colour, per image: channel shift clipped to the image's own range, then brightness.
    if "channel_shift" in p:
        low = tf.reduce_min(out, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(out, axis=[1, 2, 3], keepdims=True)
        out = tf.clip_by_value(out + p["channel_shift"][:, None, None, None], low, high)
    if "brightness" in p:
        # As apply_brightness_shift on 0..255 images: PIL's enhance, i.e. x * b clipped
        # to 0..255 (PIL also rounds to 8 bits; we keep float precision).
        out = tf.clip_by_value(out * p["brightness"][:, None, None, None], 0.0, 255.0)
    return out


def _fold(index: tf.Tensor, size: int, fill_mode: str) -> tf.Tensor:
    """Maps integer pixel indices outside [0, size) back inside, as scipy.ndimage's modes do."""
    if fill_mode == "reflect":  # d c b a | a b c d | d c b a
        m = tf.math.floormod(index, 2 * size)
        return tf.where(m >= size, 2 * size - 1 - m, m)
    if fill_mode == "wrap":  # a b c d | a b c d (scipy's 'grid-wrap')
        return tf.math.floormod(index, size)
    return tf.clip_by_value(index, 0, size - 1)  # nearest, and constant's interior


def warp(images: tf.Tensor, transforms: tf.Tensor, fill_mode: str, cval: float) -> tf.Tensor:
    """Bilinear projective warp of [N, H, W, C] by [N, 8] output->input maps.

    Same semantics as scipy.ndimage.affine_transform(order=1, mode=...) that
    ImageDataGenerator uses: neighbours outside the image are folded back in
    by the fill mode; for 'constant', points whose source lies outside the
    image take cval. Written as gathers and compiled with XLA.
    """
    # One compiled function per image shape: with reduce_retracing, a single function called with
    # 1-channel then 3-channel images (two datasets in one process) would relax H, W, C to unknown.
    key = (fill_mode, *images.shape[1:])
    if key not in _WARPS:
        _WARPS[key] = _make_warp(fill_mode)
    return _WARPS[key](images, transforms, tf.constant(cval, tf.float32))


def _make_warp(fill_mode: str):
    @tf.function(jit_compile=True, reduce_retracing=True)
    def compiled(images, transforms, cval):
        n, h, w, c = images.shape
        x, y = _source_points(transforms, h, w)
        x0, y0 = tf.floor(x), tf.floor(y)
        fx, fy = (x - x0)[..., None], (y - y0)[..., None]
        x0, y0 = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
        xs = [_fold(x0, w, fill_mode), _fold(x0 + 1, w, fill_mode)]
        ys = [_fold(y0, h, fill_mode), _fold(y0 + 1, h, fill_mode)]
        flat = tf.reshape(images, [-1, c])
        base = (tf.range(tf.shape(images)[0]) * (h * w))[:, None, None]

        def at(yy, xx):
            return tf.gather(flat, base + yy * w + xx)

        top = at(ys[0], xs[0]) * (1 - fx) + at(ys[0], xs[1]) * fx
        bottom = at(ys[1], xs[0]) * (1 - fx) + at(ys[1], xs[1]) * fx
        out = top * (1 - fy) + bottom * fy
        if fill_mode == "constant":
            out = tf.where(_inside(x, y, h, w)[..., None], out, cval)
        return out

    return compiled


def _source_points(transforms: tf.Tensor, height: int, width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """[N, H, W] source column and row of every output pixel."""
    rows, cols = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32), indexing="ij")
    t = transforms[:, :, None, None]
    return t[:, 0] * cols + t[:, 1] * rows + t[:, 2], t[:, 3] * cols + t[:, 4] * rows + t[:, 5]


def source_inside(transforms: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """[N, H, W] bool: whether each output pixel's source point lies within the image
    (to 1e-3 of a pixel; scipy's 'constant' mode gives cval outside)."""
    return _inside(*_source_points(transforms, height, width), height, width)


def _inside(x: tf.Tensor, y: tf.Tensor, height: int, width: int, eps: float = 1e-3) -> tf.Tensor:
    return (x >= -eps) & (x <= width - 1 + eps) & (y >= -eps) & (y <= height - 1 + eps)


def image_seeds(seed: int, indices: tf.Tensor) -> tf.Tensor:
    """[N, 2] per-image seeds from a job seed and global image indices."""
    indices = tf.cast(indices, tf.int64)
    return tf.stack([tf.fill(tf.shape(indices), tf.constant(seed, tf.int64)) * 1_000_003 + 17, indices], axis=-1)


_WARPS: dict = {}  # (fill mode, H, W, C) -> its compiled warp
