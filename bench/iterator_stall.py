"""How long deleting a shard reader's iterator takes, tf.data autotuning on vs off (`trainer/tf_pipelines.py`).

    python -m bench stall [--images=200000] [--rounds=6]

Writes one shard output (`dcgan augment` on the digits, 32x32x1 PNG), then runs,
round-robin, each variant in its own process: `trainer.shards.load(output)` batched
by 256, one full pass, then `del iterator`, timed. Variants:
  untuned   the reader as the package returns it (autotuning off)
  tuned     the same pipeline with tf.data's autotuning turned back on (TensorFlow's default)
With autotuning on, the deletion waits for the autotune thread's current sleep
(up to 60 s, doubling while the pass runs), so its time is random, between 0 and
about the pass's length: the result is every run's deletion time, the median and
the worst, and how many runs waited over 1 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench import common  # noqa: E402

DEFAULTS = {"images": 200_000, "rounds": 6, "child": "", "mode": ""}
VARIANTS = ("untuned", "tuned")


def one_pass(path: str, mode: str) -> dict:
    """In this process: one pass over the reader, then the iterator's deletion, timed."""
    import tensorflow as tf

    from trainer import shards

    ds = shards.load(path, shuffle=True, seed=0).batch(256)
    if mode == "tuned":
        options = tf.data.Options()
        options.autotune.enabled = True
        ds = ds.with_options(options)
    iterator = iter(ds)
    started = time.perf_counter()
    batches = sum(1 for _ in iterator)
    passed = time.perf_counter()
    del iterator
    deleted = time.perf_counter()
    return {"pass_s": passed - started, "delete_s": deleted - passed, "batches": batches}


def main(argv):
    flags = common.parse_flags(argv, DEFAULTS)
    if flags["child"]:  # bench/__main__.py has already run startup.prepare(), as `dcgan` does
        print(json.dumps(one_pass(flags["child"], flags["mode"])))
        return 0
    from trainer import command_line, shard_job

    work = tempfile.mkdtemp(prefix="dcgan-bench-stall-")
    try:
        output = os.path.join(work, "shards")
        config = {"dataset": "digits", "output": output, "num_images": flags["images"], "progress": False}
        shard_job.run(command_line.resolve("augment", config), "augment")
        runs = {name: [] for name in VARIANTS}
        for round_ in range(flags["rounds"]):
            for mode in VARIANTS:
                child = [sys.executable, "-m", "bench", "stall", f"--child={output}", f"--mode={mode}"]
                out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
                runs[mode].append(json.loads(out.strip().splitlines()[-1]))
                print(f"round {round_ + 1} {mode:<8} {runs[mode][-1]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {
        mode: {
            "pass_s_median": common.median([r["pass_s"] for r in rs]),
            "delete_s_median": common.median([r["delete_s"] for r in rs]),
            "delete_s_worst": max(r["delete_s"] for r in rs),
            "over_1s": sum(r["delete_s"] > 1 for r in rs),
            "runs": len(rs),
        }
        for mode, rs in runs.items()
    }
    for mode, s in summary.items():
        print(f"{mode:<8} {s}")
    common.write("stall", {"flags": flags, "machine": common.machine(), "summary": summary, "runs": runs})
    return 0
