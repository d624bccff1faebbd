"""Images/s of `dcgan train`'s step: float32 / float16 / bfloat16, XLA off / on.

    python -m bench train [--resolution=32] [--channels=1] [--batch=64] [--width=1.0]
                          [--steps=10] [--repeats=5] [--conditional=false] [--slow_float16=false]

Uses the trainer's own step function (trainer.train_step.make_step_fn) on in-memory
digits, one device. A variant is skipped (and reported) if it fails to build.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
from trainer import command_line, data, distribute, input_pipeline, losses, train_plan, train_step  # noqa: E402
from trainer.train_state import TrainState  # noqa: E402

DEFAULTS = {
    "resolution": 32,
    "channels": 1,
    "batch": 64,
    "width": 1.0,
    "steps": 10,
    "repeats": 5,
    "conditional": False,
    "precisions": "off,float16,bfloat16",
    "xla": "false,true",
    "slow_float16": False,
}


def build_variant(flags: dict, strategy, source, precision: str, xla: bool, **overrides):
    """A compiled training step at FLAGS' size (overrides: more `dcgan train` flags); returns a timed call."""
    config = command_line.resolve(
        "train",
        {
            "job_dir": "/tmp/bench-unused",
            "resolution": flags["resolution"],
            "channels": flags["channels"],
            "batch_size": flags["batch"],
            "width": flags["width"],
            "mixed_precision": precision,
            "xla": xla,
            "conditional": flags["conditional"],
            "steps_per_call": flags["steps"],
            "diffaugment": "none",
            **overrides,
        },
    )
    plan = train_plan.resolve(config, source, strategy.num_replicas_in_sync, 1)
    keras.mixed_precision.set_global_policy(plan.precision)
    try:
        state = TrainState.build(config, plan.channels, plan.num_classes, strategy)
        step_fn = train_step.make_step_fn(plan, strategy, state, losses.get(config.loss))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: input_pipeline.make_dataset(source, config.batch_size, 0, 0, ctx)
    )
    iterator = iter(dataset)
    stop_flag = tf.Variable(0.0, trainable=False)

    def run_once():
        metrics, _ = step_fn(iterator, flags["steps"], stop_flag)
        float(metrics["loss/d"])  # wait for the device

    run_once()  # trace + compile
    run_once()  # warm-up
    return run_once


def main(argv):
    tf.get_logger().setLevel("ERROR")  # one trace per variant is expected, not a retracing problem
    flags = common.parse_flags(argv, DEFAULTS)
    strategy = distribute.make_strategy(0)
    source = data.load_source("digits", flags["resolution"], flags["channels"])
    variants, failures = {}, {}
    for precision in flags["precisions"].split(","):
        for xla in [x == "true" for x in flags["xla"].split(",")]:
            name = f"{precision if precision != 'off' else 'float32'}{' +XLA' if xla else ''}"
            if (
                precision == "float16"
                and not xla
                and not flags["slow_float16"]
                and not tf.config.list_physical_devices("GPU")
            ):
                failures[name] = (
                    "skipped: TF's CPU float16 kernels are emulated (~100x slower); --slow_float16=true runs it"
                )
                continue
            try:
                variants[name] = build_variant(flags, strategy, source, precision, xla)
            except Exception as err:  # a variant the platform cannot run is reported, not fatal
                failures[name] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    images = flags["steps"] * flags["batch"]
    rows, samples = common.compare(variants, images, flags["repeats"])
    baseline = rows.get("float32")
    print(
        f"train step, {flags['resolution']}x{flags['resolution']}x{flags['channels']}, batch {flags['batch']}, "
        f"width {flags['width']}, median of {flags['repeats']} x {flags['steps']} steps"
    )
    print(f"{'variant':<18} {'img/s':>10} {'vs float32':>11}")
    for name, rate in rows.items():
        ratio = f"{rate / baseline:.2f}x" if baseline else "-"
        print(f"{name:<18} {rate:>10.1f} {ratio:>11}")
    for name, why in failures.items():
        print(f"{name:<18} {'failed':>10}  {why}")
    path = common.write(
        f"train-{flags['resolution']}x{flags['channels']}",
        {
            "benchmark": "train",
            "flags": flags,
            "machine": common.machine(),
            "images_per_sec": rows,
            "seconds": samples,
            "failures": failures,
        },
    )
    print(f"wrote {path}")
