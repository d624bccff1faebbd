"""What a user would otherwise run instead of `dcgan sample`: a plain Keras script.

    python -m bench.peers.keras_sample_job JOB_DIR OUTPUT NUM_IMAGES [BATCH] [IMAGES_PER_SHARD]

Loads JOB_DIR/export/generator.keras, generates NUM_IMAGES in batches (labels
cycling over the classes for a conditional generator), converts [-1, 1] to
uint8, PNG-encodes each image with `tf.io.encode_png` and writes
`tf.train.Example`s to TFRecord shards. The peer of `python -m bench jobs`.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def feature(value):
    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def main(job_dir: str, output: str, num_images: int, batch: int = 256, per_shard: int = 4096) -> None:
    generator = keras.models.load_model(os.path.join(job_dir, "export", "generator.keras"), compile=False)
    with open(os.path.join(job_dir, "export", "generator.json")) as f:
        meta = json.load(f)
    latent, classes = meta["latent_dim"], meta.get("num_classes") or 0
    os.makedirs(output, exist_ok=True)
    num_shards = -(-num_images // per_shard)
    rng = np.random.default_rng(0)
    written = 0
    for shard in range(num_shards):
        count = min(per_shard, num_images - written)
        path = os.path.join(output, f"synthetic-train.tfrecord-{shard:05d}-of-{num_shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for start in range(0, count, batch):
                n = min(batch, count - start)
                z = rng.standard_normal((n, latent)).astype(np.float32)
                labels = (np.arange(written + start, written + start + n) % max(classes, 1)).astype(np.int32)
                images = generator.predict_on_batch([z, labels] if classes else z)
                pixels = np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
                for image, label in zip(pixels, labels):
                    example = tf.train.Example(
                        features=tf.train.Features(
                            feature={
                                "image/encoded": feature(tf.io.encode_png(image).numpy()),
                                "image/format": feature(b"png"),
                                "image/class/label": feature(int(label)),
                            }
                        )
                    )
                    writer.write(example.SerializeToString())
        written += count
    print(f"wrote {written} images in {num_shards} shards to {output}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(v) for v in sys.argv[3:6]))
