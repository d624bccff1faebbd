"""DiffAugment (Zhao et al., 2020): differentiable augmentation of everything D sees.

With few training images D memorises them and G's signal collapses. Applying
the same kind of random, differentiable transform to real and fake images
before D, in both the D and the G step, keeps D honest without G learning the
augmentation (the transforms are applied to the fakes too, and gradients flow
through them to G).

Policies (`--diffaugment=color,translation,cutout`, the paper's choice):
  color        brightness +U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5)
  translation  integer shift by up to 1/8 of the image, zero padding
  cutout       one zeroed square of half the image side
  dihedral     one of the 8 flips and quarter turns of a square image (not in the paper; only for
               data whose classes do not change when turned or mirrored: shapes, aerial and
               microscope images, textures; never digits or letters); `--dihedral_p` < 1 turns
               only that share of the images, so D still sees the orientations G draws in

`augment_reals` is plain dataset augmentation (`--real_augment`: a mirror, or the 8
flips and quarter turns) of the real images alone: G learns those variants, which
is what one wants when they are as plausible as the originals.

Each image is augmented with probability p (1 for plain DiffAugment; adapted
during training with `--ada_target`, in the style of ADA, Karras et al. 2020).
Parameters are drawn for the global batch from a stateless seed and sliced
per replica, so 1 replica x 2B equals 2 replicas x B and a resumed run
repeats an uninterrupted one. Images are float in [-1, 1], any float dtype.

    python - <<'PY'
    import tensorflow as tf
    from trainer import diffaugment as d
    draws = d.sample_parameters(2, tf.constant([0, 1], tf.int64))
    print(d.augment(tf.zeros([2, 32, 32, 1]), d.parse('color,translation,cutout'), draws, 1.0).shape)
    PY
"""

from __future__ import annotations

import tensorflow as tf

from trainer.config import DIFFAUGMENT_POLICIES as POLICIES
from trainer.errors import UserError

AUTO = ("color", "translation", "cutout")  # --diffaugment=auto on small datasets
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5
_COLUMNS = ("brightness", "saturation", "contrast", "shift_x", "shift_y", "cut_x", "cut_y", "apply")
# Later policies' draws come from their own stream, so the draws above (and every earlier run) are unchanged.
_EXTRA_COLUMNS = ("dihedral",)
_EXTRA_STREAM = 2**39


def parse(text: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); 'none' or '' -> ()."""
    text = (text or "").strip().lower()
    if text in ("", "none", "off"):
        return ()
    policy = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in policy if p not in POLICIES]
    if unknown:
        raise UserError(
            f"--diffaugment: unknown polic{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
            f"use a comma-separated subset of {', '.join(POLICIES)}, or none"
        )
    return policy


def sample_parameters(batch: int, seed: tf.Tensor) -> tf.Tensor:
    """Uniform [batch, 9] draws (one column per random choice) from a stateless seed."""
    first = tf.random.stateless_uniform([batch, len(_COLUMNS)], seed=seed, dtype=tf.float32)
    extra_seed = seed + tf.constant([0, _EXTRA_STREAM], seed.dtype)
    extra = tf.random.stateless_uniform([batch, len(_EXTRA_COLUMNS)], seed=extra_seed, dtype=tf.float32)
    return tf.concat([first, extra], axis=1)


def shared_within_groups(u: tf.Tensor, group: int) -> tf.Tensor:
    """The draws `u` ([B, 9], B a multiple of `group`) with each contiguous group of `group` rows given its
    first row's draw (--minibatch_std_views=shared): a group's images get the same transform."""
    return tf.repeat(u[::group], group, axis=0)


def augment(images: tf.Tensor, policy: tuple[str, ...], u: tf.Tensor, p, dihedral_p: float = 1.0) -> tf.Tensor:
    """Applies `policy` with the draws `u` ([B, 9]) to each image with probability p; keeps dtype.

    `dihedral_p` (< 1): the dihedral transform is drawn for that share of the images only, the rest
    keep their orientation (1: every image gets one of the 8, as in every earlier run)."""
    if not policy:
        return images
    dtype = images.dtype
    x = tf.cast(images, tf.float32)
    col = {name: u[:, i] for i, name in enumerate(_COLUMNS + _EXTRA_COLUMNS)}
    out = x
    if "dihedral" in policy:
        out = dihedral(out, dihedral_draw(col["dihedral"], dihedral_p))
    if "color" in policy:
        out = color(out, col["brightness"], col["saturation"], col["contrast"])
    if "translation" in policy:
        out = translation(out, col["shift_x"], col["shift_y"])
    if "cutout" in policy:
        out = cutout(out, col["cut_x"], col["cut_y"])
    chosen = tf.reshape(col["apply"] < tf.cast(p, tf.float32), [-1, 1, 1, 1])
    return tf.cast(tf.where(chosen, out, x), dtype)


def augment_reals(images: tf.Tensor, kind: str, u: tf.Tensor) -> tf.Tensor:
    """`--real_augment`: the real images only, before DiffAugment, so G learns to draw these variants too.

    'flip' mirrors image i when u_i < 0.5; 'dihedral' turns and mirrors it as `dihedral`; 'none' keeps it."""
    if kind == "none":
        return images
    if kind == "flip":
        return tf.where(_per_image(u < 0.5), tf.reverse(images, axis=[2]), images)
    if kind == "dihedral":
        return dihedral(images, u)
    raise ValueError(f"unknown real augmentation {kind!r}")


def _per_image(v: tf.Tensor) -> tf.Tensor:
    return tf.reshape(v, [-1, 1, 1, 1])


def color(x, u_brightness, u_saturation, u_contrast):
    x = x + _per_image(u_brightness - 0.5)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * _per_image(u_saturation * 2.0) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * _per_image(u_contrast + 0.5) + mean


def translation(x, u_x, u_y):
    height, width = x.shape[1], x.shape[2]
    sy, sx = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    shift_y = tf.cast(tf.floor(u_y * (2 * sy + 1)), tf.int32) - sy  # integers in [-s, s]
    shift_x = tf.cast(tf.floor(u_x * (2 * sx + 1)), tf.int32) - sx
    padded = tf.pad(x, [[0, 0], [sy, sy], [sx, sx], [0, 0]])
    rows = tf.range(height)[None, :] + sy - shift_y[:, None]  # [B, H] rows of the padded image
    cols = tf.range(width)[None, :] + sx - shift_x[:, None]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(out, cols, axis=2, batch_dims=1)


def dihedral(x, u):
    """Image i turned by floor(8 u_i) % 4 quarter turns, mirrored first when 8 u_i >= 4 (square images)."""
    if x.shape[1] != x.shape[2]:
        raise ValueError(f"dihedral needs square images, not {x.shape[1]}x{x.shape[2]}")
    k = tf.minimum(tf.cast(tf.floor(u * 8), tf.int32), 7)
    out = tf.where(_per_image(k >= 4), tf.reverse(x, axis=[2]), x)
    turns = k % 4
    turned = out
    for quarter in range(1, 4):
        out_k = tf.image.rot90(turned, quarter)
        out = tf.where(_per_image(tf.equal(turns, quarter)), out_k, out)
    return out


def dihedral_draw(u, share: float):
    """The dihedral draw of an image turned with probability `share`: u / share below it, else 0 (the
    identity). Uniform over the 8 orientations within the share; `share` = 1 leaves u as it is."""
    if share >= 1:
        return u
    if share <= 0:
        return tf.zeros_like(u)
    return tf.where(u < share, u / share, tf.zeros_like(u))


def cutout(x, u_x, u_y):
    height, width = x.shape[1], x.shape[2]
    size_y, size_x = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    top = tf.cast(tf.floor(u_y * (height + 1 - size_y % 2)), tf.int32) - size_y // 2
    left = tf.cast(tf.floor(u_x * (width + 1 - size_x % 2)), tf.int32) - size_x // 2
    ys, xs = tf.range(height)[None, :], tf.range(width)[None, :]
    in_y = (ys >= top[:, None]) & (ys < top[:, None] + size_y)  # [B, H]
    in_x = (xs >= left[:, None]) & (xs < left[:, None] + size_x)  # [B, W]
    hole = in_y[:, :, None] & in_x[:, None, :]
    return x * tf.cast(~hole, x.dtype)[..., None]
