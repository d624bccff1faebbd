"""How much a fused BatchNorm would give: the training step with Keras' BatchNorm, a fused one, and none.

    python -m bench batchnorm [--resolution=64] [--channels=3] [--steps=3] [--repeats=5]

A sizing probe, not a product option: `models._batch_norm` is swapped while
the step is built (bench/train_speed.build_variant, in-process, round-robin),
for three kinds of normalisation layer:

- keras: the product's layer (Keras 3's BatchNormalization: the statistics
  as separate Mean / SquaredDifference / Sub / Mul ops, in float32);
- fused: one `FusedBatchNormV3` op forward and one gradient op backward
  (training statistics only, no moving averages: the probe times the step);
- none: an identity, the upper bound of any BatchNorm work.

The profile (`python -m bench ops`) shows BatchNorm's unfused statistics at
~22% of the bfloat16 step's op time; this says what fusing them would buy.
Writes bench/results/batchnorm.json (not one of the README's table rows).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from bench import common, train_speed
from trainer import data, distribute, models

DEFAULTS = {"resolution": 64, "channels": 3, "steps": 3, "repeats": 5, "precisions": "off,bfloat16"}


class FusedBatchNorm(keras.layers.Layer):
    """Training-mode BatchNorm as one fused op (gain and bias only; the probe never runs inference)."""

    def build(self, shape):
        self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(shape[-1],), initializer="zeros", name="beta")

    def call(self, x, training=None):
        flat = len(x.shape) != 4  # the fused op wants NHWC: [B, C] goes in as [B, 1, 1, C]
        x4 = tf.reshape(x, [-1, 1, 1, x.shape[-1]]) if flat else x
        y = tf.raw_ops.FusedBatchNormV3(
            x=x4,
            scale=tf.cast(self.gamma, tf.float32),
            offset=tf.cast(self.beta, tf.float32),
            mean=tf.zeros([0]),
            variance=tf.zeros([0]),
            epsilon=1e-5,
            is_training=True,
        )[0]
        return tf.reshape(y, tf.shape(x)) if flat else y


KINDS = {
    "keras": models._batch_norm,
    "fused": lambda sync, name: FusedBatchNorm(name=name),
    "none": lambda sync, name: keras.layers.Identity(name=name),
}


def main(argv):
    tf.get_logger().setLevel("ERROR")  # one trace per variant is expected
    flags = common.parse_flags(argv, DEFAULTS)
    strategy = distribute.make_strategy(0)
    source = data.load_source("digits", flags["resolution"], flags["channels"])
    build_flags = dict(train_speed.DEFAULTS, **{k: flags[k] for k in ("resolution", "channels", "steps")})
    runs = {}
    try:
        for precision in flags["precisions"].split(","):
            for kind, make in KINDS.items():
                models._batch_norm = make
                runs[f"{precision} {kind}"] = train_speed.build_variant(build_flags, strategy, source, precision, False)
    finally:
        models._batch_norm = KINDS["keras"]
    rates, _ = common.compare(runs, build_flags["batch"] * flags["steps"], flags["repeats"])
    size = f"{flags['resolution']}x{flags['resolution']}x{flags['channels']}"
    print(f"train step, {size}, batch {build_flags['batch']}, median of {flags['repeats']} x {flags['steps']} steps")
    for precision in flags["precisions"].split(","):
        base = rates[f"{precision} keras"]
        for kind in KINDS:
            rate = rates[f"{precision} {kind}"]
            print(f"{precision:<9} {kind:<6} {rate:8.1f} img/s  {rate / base:5.2f}x")
    path = common.write(
        "batchnorm", {"benchmark": "batchnorm", "flags": flags, "machine": common.machine(), "images_per_sec": rates}
    )
    print(f"wrote {path}")
    return 0
