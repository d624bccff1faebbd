"""Input pipeline images/s vs what the training step consumes, in one invocation.

    python -m bench input [--resolution=32] [--batch=64] [--batches=200] [--repeats=3]

Pipelines (trainer.input_pipeline.make_dataset, exactly as training builds them):
  in-memory   the bundled digits (decoded once; batches gathered from memory)
  shards      TFRecord shards written by `dcgan augment` (parse, PNG decode, shuffle, batch)
Consumption: `dcgan train`'s step (default architecture, float32, unconditional).
"""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bench import common, train_speed  # noqa: E402
from trainer import command_line, data, distribute, input_pipeline, shard_job  # noqa: E402

DEFAULTS = {"resolution": 32, "batch": 64, "batches": 200, "repeats": 3, "steps": 5}


def main(argv):
    tf.get_logger().setLevel("ERROR")
    flags = common.parse_flags(argv, DEFAULTS)
    work = tempfile.mkdtemp(prefix="dcgan-bench-input-")
    try:
        shard_dir = os.path.join(work, "shards")
        shard_job.run(
            command_line.resolve(
                "augment",
                {
                    "dataset": "digits",
                    "output": shard_dir,
                    "num_images": 4096,
                    "images_per_shard": 512,
                    "resolution": flags["resolution"],
                    "progress": False,
                },
            ),
            "augment",
        )
        sources = {
            "in-memory digits": data.load_source("digits", flags["resolution"], 1),
            "shards (PNG decode)": data.load_source(shard_dir, flags["resolution"], 1),
        }
        pipelines = {}
        for name, source in sources.items():
            iterator = iter(input_pipeline.make_dataset(source, flags["batch"], 0))
            next(iterator)

            def drain(it=iterator):
                for _ in range(flags["batches"]):
                    next(it)

            drain()  # warm-up: fills prefetch buffers and shuffle
            pipelines[name] = drain
        rates, _ = common.compare(pipelines, flags["batches"] * flags["batch"], flags["repeats"])
        strategy = distribute.make_strategy(0)
        step = train_speed.build_variant(
            {
                "resolution": flags["resolution"],
                "channels": 1,
                "batch": flags["batch"],
                "width": 1.0,
                "steps": flags["steps"],
                "conditional": False,
            },
            strategy,
            sources["in-memory digits"],
            "off",
            False,
        )
        consumed, _ = common.compare(
            {"training step (float32)": step}, flags["steps"] * flags["batch"], flags["repeats"]
        )
        consumption = consumed["training step (float32)"]
        print(
            f"input pipeline, {flags['resolution']}x{flags['resolution']}x1, batch {flags['batch']}, "
            f"median of {flags['repeats']}"
        )
        print(f"{'pipeline':<24} {'img/s':>10} {'vs consumption':>15}")
        ratios = {}
        for name, rate in rates.items():
            ratios[name] = rate / consumption
            print(f"{name:<24} {rate:>10.1f} {ratios[name]:>14.1f}x")
        print(f"{'training step (float32)':<24} {consumption:>10.1f}")
        path = common.write(
            "input",
            {
                "benchmark": "input",
                "flags": flags,
                "machine": common.machine(),
                "images_per_sec": rates,
                "consumption": consumption,
                "ratio": ratios,
            },
        )
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
