"""What the fused BatchNorm gives: the training step with Keras' BatchNorm, the fused one, and none.

    python -m bench batchnorm [--resolution=64] [--channels=3] [--steps=3] [--repeats=5]

The same step built three times (bench/train_speed.build_variant, in-process,
round-robin), differing only in the normalisation layer:

- keras: `--nofused_batchnorm`, Keras 3's BatchNormalization (the statistics as
  separate Mean / SquaredDifference / Sub / Mul ops, in float32);
- fused: `--fused_batchnorm` (the default), one `FusedBatchNormV3` op forward
  and one gradient op backward (trainer/fused_batch_norm.py);
- none: every BatchNorm swapped for an identity, the upper bound of any
  BatchNorm work (not a product option).

The profile (`python -m bench ops --fused_batchnorm=false`) shows Keras'
unfused statistics at ~22% of the bfloat16 step's op time.
Writes bench/results/batchnorm.json (not one of the README's table rows).
"""

from __future__ import annotations

import tensorflow as tf
from keras import layers

from bench import common, train_speed
from trainer import data, distribute, models

DEFAULTS = {"resolution": 64, "channels": 3, "steps": 3, "repeats": 5, "precisions": "off,bfloat16"}
KINDS = ("keras", "fused", "none")


def main(argv):
    tf.get_logger().setLevel("ERROR")  # one trace per variant is expected
    flags = common.parse_flags(argv, DEFAULTS)
    strategy = distribute.make_strategy(0)
    source = data.load_source("digits", flags["resolution"], flags["channels"])
    build_flags = dict(train_speed.DEFAULTS, **{k: flags[k] for k in ("resolution", "channels", "steps")})
    runs = {}
    batch_norm = models._batch_norm

    def identity(sync, name, fused):
        return layers.Identity(name=name)

    try:
        for precision in flags["precisions"].split(","):
            for kind in KINDS:
                models._batch_norm = identity if kind == "none" else batch_norm
                runs[f"{precision} {kind}"] = train_speed.build_variant(
                    build_flags, strategy, source, precision, False, fused_batchnorm=kind == "fused"
                )
    finally:
        models._batch_norm = batch_norm
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
