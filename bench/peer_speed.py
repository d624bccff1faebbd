"""`dcgan train` vs the same DCGAN written plainly in PyTorch, each a whole job in its own process.

    python -m bench peer [--sizes=32x1,64x3] [--batch=64] [--repeats=3] [--precisions=float32,bfloat16] [--steps=0]
    python -m bench peer --sizes=32x1 --precisions=float32 --steps=1000   # a long whole job: peer-1000steps.json

Every run is a fresh interpreter started as a user starts it: `dcgan train`
(unconditional, DiffAugment off so both train the same Radford DCGAN; our step
keeps its EMA update and health metrics) and `python -m bench.peers.torch_dcgan`
(ngf = ndf = 64, Adam, BCE), both on the bundled digits, both with the
machine's default thread count. Runs go round-robin (ours, peer, ours, ...),
`--repeats` rounds, so a noisy machine treats them alike; one framework never
shares a process, or its cores' spinning threads, with the other.

Three numbers per run: the steady rate (median images/s over log windows after
the first, which each job prints), the whole job's wall time (start-up,
data, the final checkpoint included) and its exit time (from the job's last
line to the end of the process: teardown; the slowest run's is reported).
bfloat16 compares our mixed_bfloat16 policy with torch.autocast(bfloat16). GFLOP/s counts the step's nominal model
FLOPs (G forward + backward = 3 G, three D passes forward + backward = 9 D,
two FLOPs per multiply-add), the same number for both frameworks, and is set
against this machine's matmul peak (a 2048^2 TensorFlow matmul, same process
conditions) in each precision.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench import common

DEFAULTS = {
    "sizes": "32x1,64x3",
    "batch": 64,
    "repeats": 3,
    "precisions": "float32,bfloat16",
    "steps": 0,
    "width": 1.0,
    "latent_dim": 100,
}
STEPS = {32: 150, 64: 40, 128: 12}  # per run, ~20-40 s of training on 2 cores


def filters(width: float, level_from_top: int) -> int:
    return max(1, round(64 * width)) * min(2**level_from_top, 8)


def step_flops(resolution: int, channels: int, width: float, latent_dim: int) -> float:
    """Nominal training FLOPs per image (see the module docstring)."""
    n = int(math.log2(resolution)) - 2
    top = filters(width, n - 1)
    g = latent_dim * 16 * top  # the 4x4 projection
    size, in_filters = 4, top
    for level in range(n - 2, -1, -1):
        g += size * size * in_filters * filters(width, level) * 16
        in_filters, size = filters(width, level), size * 2
    g += size * size * in_filters * channels * 16
    d, size, in_filters = 0, resolution, channels
    for level in range(n):
        size //= 2
        d += size * size * in_filters * filters(width, level) * 16
        in_filters = filters(width, level)
    d += 16 * top
    return 2.0 * (3 * g + 9 * d)


def command(
    framework: str, precision: str, resolution: int, channels: int, batch: int, steps: int, job_dir: str
) -> list[str]:
    log_every = max(1, steps // 5)
    if framework == "pytorch":
        return [
            sys.executable,
            "-m",
            "bench.peers.torch_dcgan",
            f"--resolution={resolution}",
            f"--channels={channels}",
            f"--batch={batch}",
            f"--steps={steps}",
            f"--log_every={log_every}",
            *(["--bfloat16"] if precision == "bfloat16" else []),
        ]
    return [
        sys.executable,
        "-m",
        "trainer",
        "train",
        f"--job_dir={job_dir}",
        "--dataset=digits",
        f"--resolution={resolution}",
        f"--channels={channels}",
        f"--batch_size={batch}",
        f"--steps={steps}",
        f"--log_every={log_every}",
        "--conditional=false",
        "--diffaugment=none",
        "--sample_every=1000000",
        "--checkpoint_every=1000000",
        "--kid_every=0",
        "--progress=false",
        f"--mixed_precision={'off' if precision == 'float32' else precision}",
    ]


def run_job(args: list[str]) -> tuple[float, float, float]:
    """(steady images/s, whole-job seconds, exit seconds) of one process; the exit is the time from its last
    line ("done: ...", printed when the work is over) to the process's end: teardown a user waits through."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # stderr is drained on a thread so neither pipe fills while the other is read
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
    drain.start()
    found, done_at = None, None
    for line in process.stdout:
        if line.startswith("done: "):
            found, done_at = re.search(r"done: step \d+, ([\d.]+) img/s", line), time.perf_counter()
    process.wait()
    ended = time.perf_counter()
    drain.join()
    if process.returncode != 0 or not found:
        raise SystemExit(f"{' '.join(args[:4])} failed: {[line.strip() for line in stderr[-1:]]}")
    return float(found.group(1)), ended - started, ended - done_at


def matmul_peak() -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.peers.matmul_peak"], capture_output=True, text=True, check=True
    ).stdout
    return {name: float(value) for name, value in (line.split() for line in out.splitlines())}


def main(argv):
    flags = common.parse_flags(argv, DEFAULTS)
    precisions = flags["precisions"].split(",")
    work = tempfile.mkdtemp(prefix="dcgan-bench-peer-")
    try:
        # Asked in a child: this process never imports both frameworks (it imports TensorFlow for the report).
        torch_version, threads = subprocess.run(
            [sys.executable, "-m", "bench.peers.torch_dcgan", "--describe"], capture_output=True, text=True, check=True
        ).stdout.split()
        threads = int(threads)
        peak = matmul_peak()
        results = {}
        for size in flags["sizes"].split(","):
            resolution, channels = (int(v) for v in size.split("x"))
            steps = flags["steps"] or STEPS[resolution]
            runs = {(f, p): [] for p in precisions for f in ("ours", "pytorch")}
            for round_ in range(flags["repeats"]):
                for (framework, precision), samples in runs.items():
                    job = os.path.join(work, f"{size}-{precision}-{round_}")
                    samples.append(
                        run_job(command(framework, precision, resolution, channels, flags["batch"], steps, job))
                    )
            flops = step_flops(resolution, channels, flags["width"], flags["latent_dim"])
            print(
                f"\n{size}: batch {flags['batch']}, {steps} steps per job, {flags['repeats']} jobs each "
                f"(round-robin, own processes), {flops / 1e9:.3f} GFLOP per image (nominal); "
                f"torch {torch_version}, {threads} threads; matmul peak "
                + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())
            )
            print(
                f"{'variant':<18} {'img/s':>8} {'GFLOP/s':>8} {'of peak':>8} {'job s':>7} {'exit s':>7} "
                f"{'ours/pytorch':>13}"
            )
            rows = {}
            for (framework, precision), samples in runs.items():
                rate = statistics.median(s[0] for s in samples)
                wall = statistics.median(s[1] for s in samples)
                gflops = rate * flops / 1e9
                rows[f"{framework} {precision}"] = {
                    "images_per_sec": rate,
                    "job_seconds": wall,
                    "exit_seconds_max": max(s[2] for s in samples),
                    "gflop_per_sec": gflops,
                    "share_of_peak": gflops / peak[precision],
                    "runs": samples,
                }
            for name, row in rows.items():
                precision = name.split()[-1]
                ratio = row["images_per_sec"] / rows[f"pytorch {precision}"]["images_per_sec"]
                print(
                    f"{name:<18} {row['images_per_sec']:>8.1f} {row['gflop_per_sec']:>8.1f} "
                    f"{row['share_of_peak']:>7.0%} {row['job_seconds']:>7.1f} {row['exit_seconds_max']:>7.2f} "
                    f"{f'{ratio:.2f}x' if name.startswith('ours') else '':>13}"
                )
            results[size] = {
                "steps": steps,
                "gflop_per_image": flops / 1e9,
                "rows": rows,
                "ratio": {
                    p: rows[f"ours {p}"]["images_per_sec"] / rows[f"pytorch {p}"]["images_per_sec"] for p in precisions
                },
                "job_ratio": {
                    p: rows[f"pytorch {p}"]["job_seconds"] / rows[f"ours {p}"]["job_seconds"] for p in precisions
                },
                "bfloat16_vs_pytorch_float32": (
                    rows["ours bfloat16"]["images_per_sec"] / rows["pytorch float32"]["images_per_sec"]
                )
                if "bfloat16" in precisions and "float32" in precisions
                else None,
            }
        path = common.write(
            "peer" if not flags["steps"] else f"peer-{flags['steps']}steps",  # long whole jobs: their own row
            {
                "benchmark": "peer",
                "flags": flags,
                "machine": common.machine(),
                "torch": torch_version,
                "torch_threads": threads,
                "matmul_peak_gflops": peak,
                "results": results,
            },
        )
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
