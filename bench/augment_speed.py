"""Augmentation throughput: trainer.classic_augment vs the legacy ImageDataGenerator, same parameters.

    python -m bench augment [--resolution=64] [--channels=3] [--images=512] [--batch=128] [--repeats=5]

Both augment the same images with rotation 20, shifts 0.1, shear 10, zoom 0.2,
horizontal flips, fill 'nearest'. Legacy: `random_transform` per image (what
`ImageDataGenerator.flow` does). Ours: batched `classic_augment.apply` in a tf.function.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.keras.preprocessing.image import ImageDataGenerator  # noqa: E402

from bench import common  # noqa: E402
from trainer import classic_augment  # noqa: E402
from trainer.augment_params import AugmentParams  # noqa: E402

DEFAULTS = {"resolution": 64, "channels": 3, "images": 1024, "batch": 512, "repeats": 5}
ARGS = dict(
    rotation_range=20,
    width_shift_range=0.1,
    height_shift_range=0.1,
    shear_range=10,
    zoom_range=0.2,
    horizontal_flip=True,
    fill_mode="nearest",
)


def main(argv):
    flags = common.parse_flags(argv, DEFAULTS)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (flags["images"], flags["resolution"], flags["resolution"], flags["channels"]))
    images = images.astype(np.float32)
    legacy = ImageDataGenerator(**ARGS)
    params = AugmentParams.create(**ARGS)
    batches = [tf.constant(images[i : i + flags["batch"]]) for i in range(0, len(images), flags["batch"])]
    indices = [tf.range(i, i + len(b), dtype=tf.int64) for i, b in zip(range(0, len(images), flags["batch"]), batches)]

    @tf.function
    def ours_batch(x, idx):
        return classic_augment.apply(x, params, classic_augment.image_seeds(0, idx))

    def run_legacy():
        for image in images:
            legacy.random_transform(image)

    def run_ours():
        for x, idx in zip(batches, indices):
            ours_batch(x, idx).numpy()

    run_ours()  # trace
    rates, samples = common.compare(
        {"ImageDataGenerator": run_legacy, "trainer.classic_augment": run_ours}, flags["images"], flags["repeats"]
    )
    ratio = rates["trainer.classic_augment"] / rates["ImageDataGenerator"]
    print(
        f"augmentation, {flags['images']} images {flags['resolution']}x{flags['resolution']}x{flags['channels']}, "
        f"median of {flags['repeats']}"
    )
    common.print_rates(rates)
    print(f"ratio ours / legacy: {ratio:.1f}x (goal >= 10x)")
    path = common.write(
        f"augment-{flags['resolution']}x{flags['channels']}",
        {
            "benchmark": "augment",
            "flags": flags,
            "args": ARGS,
            "machine": common.machine(),
            "images_per_sec": rates,
            "ratio": ratio,
            "seconds": samples,
        },
    )
    print(f"wrote {path}")
