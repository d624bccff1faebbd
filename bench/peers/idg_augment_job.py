"""What a user would otherwise run instead of `dcgan augment`: the legacy ImageDataGenerator, written plainly.

    python -m bench.peers.idg_augment_job OUTPUT NUM_IMAGES [IMAGES_PER_SHARD]

Loads scikit-learn's digits upscaled to 32x32 (as `dcgan augment` does), flows
them through `ImageDataGenerator` with `dcgan augment`'s default parameters
(rotation 15, shifts 0.1, zoom 0.1, fill 'nearest'), PNG-encodes each image with
`tf.io.encode_png` and writes `tf.train.Example`s to TFRecord shards of 4096.
The peer of `python -m bench jobs`; nothing in `trainer/` imports it.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from tensorflow.keras.preprocessing.image import ImageDataGenerator  # noqa: E402


def feature(value):
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def main(output: str, num_images: int, per_shard: int = 4096) -> None:
    digits = load_digits()
    small = (digits.images / 16.0).astype(np.float32)[..., None]
    x = np.clip(np.round(tf.image.resize(small, [32, 32]).numpy() * 255.0), 0, 255)
    y = digits.target
    flow = ImageDataGenerator(
        rotation_range=15, width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.1, fill_mode="nearest"
    ).flow(x, y, batch_size=256, seed=0)
    os.makedirs(output, exist_ok=True)
    num_shards = -(-num_images // per_shard)
    written = 0
    for shard in range(num_shards):
        count = min(per_shard, num_images - written)
        path = os.path.join(output, f"augmented-train.tfrecord-{shard:05d}-of-{num_shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            done = 0
            while done < count:
                images, labels = next(flow)
                for image, label in zip(images[: count - done], labels[: count - done]):
                    png = tf.io.encode_png(np.clip(np.round(image), 0, 255).astype(np.uint8)).numpy()
                    example = tf.train.Example(
                        features=tf.train.Features(
                            feature={
                                "image/encoded": feature(png),
                                "image/format": feature(b"png"),
                                "image/class/label": feature(int(label)),
                            }
                        )
                    )
                    writer.write(example.SerializeToString())
                    done += 1
        written += count
    print(f"wrote {written} images in {num_shards} shards to {output}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), *(int(v) for v in sys.argv[3:4]))
