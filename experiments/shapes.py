"""A labelled RGB dataset made from a seed: six geometric shapes on cluttered backgrounds.

    python -m experiments.shapes --out=shapes.npz [--per_class=400] [--seed=0] [--resolution=32]
    dcgan train --job_dir=runs/shapes --dataset='shapes.npz:train[:10%]'

Classes: circle, square, triangle, cross, ring, star. The class is the shape's
geometry only: colour, size, position, rotation, the two-colour gradient
background, low-frequency blotches and thin distractor lines are random, so a
generator must get corners and straight edges right for its samples to carry
their label. Shapes are drawn at 4x and box-filtered down (anti-aliased).
The .npz holds x (uint8 [N, R, R, 3]), y (int32 [N]) and class_names; the same seed
always gives the same bytes. `dcgan` reads it like any .npz, with splits
(`shapes.npz:train`, `shapes.npz:test[:50%]`).
"""

from __future__ import annotations

import argparse

import numpy as np

NAMES = ("circle", "square", "triangle", "cross", "ring", "star")
SUPERSAMPLE = 4


def _inside(shape: int, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of a shape of radius r centred at (0, 0), in rotated coordinates (u, v)."""
    if shape == 0:  # circle
        return u * u + v * v < r * r
    if shape == 1:  # square
        return (np.abs(u) < 0.8 * r) & (np.abs(v) < 0.8 * r)
    if shape == 2:  # equilateral triangle: three half-planes
        inside = np.ones_like(u, bool)
        for k in range(3):
            angle = np.pi / 2 + k * 2 * np.pi / 3
            inside &= u * np.cos(angle) + v * np.sin(angle) < 0.5 * r
        return inside
    if shape == 3:  # cross (plus)
        w = 0.28 * r
        return ((np.abs(u) < w) & (np.abs(v) < r)) | ((np.abs(v) < w) & (np.abs(u) < r))
    if shape == 4:  # ring
        d2 = u * u + v * v
        return (d2 < r * r) & (d2 > (0.55 * r) ** 2)
    # five-pointed star: radius varies as a triangle wave of the angle
    phase = (np.arctan2(v, u) * 5 / (2 * np.pi)) % 1.0
    return np.sqrt(u * u + v * v) < r * (0.42 + 0.58 * np.abs(1 - 2 * phase))


def _smooth_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a 4x4 random grid upsampled bilinearly."""
    coarse = rng.random((4, 4))
    t = np.linspace(0, 3, size)
    i = np.minimum(t.astype(int), 2)
    f = t - i
    rows = coarse[i] * (1 - f)[:, None] + coarse[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def render(shape: int, rng: np.random.Generator, resolution: int = 32) -> np.ndarray:
    """One uint8 [R, R, 3] image of `shape`."""
    size = resolution * SUPERSAMPLE
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / SUPERSAMPLE  # pixel units of the final image
    # Background: a gradient between two colours, blotches, and two thin distractor lines.
    c0, c1 = rng.random(3), rng.random(3)
    angle = rng.uniform(0, 2 * np.pi)
    g = ((xs * np.cos(angle) + ys * np.sin(angle)) / resolution + 1) / 2
    image = c0 * (1 - g[..., None]) + c1 * g[..., None]
    image += (_smooth_noise(rng, size)[..., None] - 0.5) * rng.uniform(0.1, 0.4) * rng.choice([-1, 1], 3)
    for _ in range(2):
        a, offset = rng.uniform(0, np.pi), rng.uniform(0, resolution)
        line = np.abs(xs * np.cos(a) + ys * np.sin(a) - offset) < 0.35
        image[line] = rng.random(3)
    # The shape: a colour far enough from the local background to be visible.
    cx, cy = rng.uniform(0.35, 0.65, 2) * resolution
    r = rng.uniform(0.2, 0.36) * resolution
    theta = rng.uniform(0, 2 * np.pi)
    dx, dy = xs - cx, ys - cy
    u, v = dx * np.cos(theta) + dy * np.sin(theta), -dx * np.sin(theta) + dy * np.cos(theta)
    mask = _inside(shape, u, v, r)
    under = image[mask].mean(0) if mask.any() else image.mean((0, 1))
    colour = rng.random(3)
    while np.abs(colour - under).sum() < 0.9:
        colour = rng.random(3)
    image[mask] = colour * rng.uniform(0.85, 1.0) + (1 - colour) * 0.0
    image = np.clip(image, 0, 1)
    small = image.reshape(resolution, SUPERSAMPLE, resolution, SUPERSAMPLE, 3).mean((1, 3))
    return np.round(small * 255).astype(np.uint8)


def make(per_class: int = 400, seed: int = 0, resolution: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 [N, R, R, 3], y int32 [N]), classes interleaved; a pure function of the arguments."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(NAMES), dtype=np.int32), per_class)
    images = np.stack([render(int(c), rng, resolution) for c in labels])
    return images, labels


def write(path: str, per_class: int = 400, seed: int = 0, resolution: int = 32) -> str:
    x, y = make(per_class, seed, resolution)
    np.savez_compressed(path, x=x, y=y, class_names=np.array(NAMES))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the .npz file to write")
    parser.add_argument("--per_class", type=int, default=400, help="images per class (default 400)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same bytes (default 0)")
    parser.add_argument("--resolution", type=int, default=32, help="image size in pixels (default 32)")
    args = parser.parse_args()
    print(write(args.out, args.per_class, args.seed, args.resolution))


if __name__ == "__main__":
    main()
