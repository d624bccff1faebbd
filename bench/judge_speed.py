"""The judge's seeds one at a time vs trained together (`classifier.train_many`), each run its own process.

    python -m bench judge [--steps=300] [--repeats=2] [--dataset=digits:train[:20%]] [--policy=trivial_augment]

`dcgan evaluate` and the usefulness experiment train one judge per seed and
recipe. A variant here is a fresh Python process that loads the images, trains
K judges (the product's recipe: the policy, 1500-step schedule shortened to
--steps) either one after another (`classifier.train` per seed, as before) or
together (`classifier.train_many`: one compiled step advances every seed's
model), and reports its wall time, start-up included. Variants alternate,
repeats interleaved; medians. The row the performance issue holds us to:
12 seeds together against 3 seeds one at a time (target <= 2x the time).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from bench import common

DEFAULTS = {"steps": 300, "repeats": 2, "dataset": "digits:train[:20%]", "policy": "trivial_augment", "child": ""}
VARIANTS = {"3 one at a time": ("alone", 3), "3 together": ("together", 3), "12 together": ("together", 12)}


def child(flags: dict) -> None:
    """One variant, in this process: prints the seconds from start to the last judge trained."""
    started = time.perf_counter()
    mode, count = flags["child"].split(":")
    from trainer import classifier, data, downstream

    source = data.load_source(flags["dataset"], 32)
    spec = classifier.ClassifierSpec(steps=flags["steps"])
    recipe = classifier.Recipe(downstream.POLICIES[flags["policy"]]())
    seeds = list(range(int(count)))
    images, labels = source.images, source.labels
    if mode == "alone":
        models = [classifier.train(images, labels, source.num_classes, spec, s, recipe) for s in seeds]
    else:
        models = classifier.train_many(images, labels, source.num_classes, spec, seeds, recipe)
    assert len(models) == len(seeds)
    print(f"seconds {time.perf_counter() - started:.3f}")


def run_variant(flags: dict, mode: str, count: int) -> float:
    args = [f"--{k}={v}" for k, v in flags.items() if k != "child"] + [f"--child={mode}:{count}"]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "judge", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"judge {mode} x{count} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return wall


def main(argv):
    flags = common.parse_flags(argv, DEFAULTS)
    if flags["child"]:
        return child(flags)
    walls = {name: [] for name in VARIANTS}
    for _ in range(flags["repeats"]):
        for name, (mode, count) in VARIANTS.items():
            walls[name].append(run_variant(flags, mode, count))
            print(f"{name:<18} {walls[name][-1]:7.1f} s", flush=True)
    medians = {name: statistics.median(w) for name, w in walls.items()}
    base = medians["3 one at a time"]
    per_seed = {name: medians[name] / VARIANTS[name][1] for name in VARIANTS}
    print(
        f"judge training, {flags['dataset']} at 32 px, {flags['steps']} steps, policy {flags['policy']}, "
        f"median of {flags['repeats']} processes each"
    )
    for name in VARIANTS:
        print(f"{name:<18} {medians[name]:7.1f} s  ({per_seed[name]:.1f} s a seed; x{medians[name] / base:.2f})")
    path = common.write(
        "judge",
        {
            "benchmark": "judge",
            "flags": {k: v for k, v in flags.items() if k != "child"},
            "machine": common.machine(),
            "seconds": medians,
            "runs": walls,
            "ratio_12_together_vs_3_alone": medians["12 together"] / base,
            "speedup_per_seed_3": per_seed["3 one at a time"] / per_seed["3 together"],
        },
    )
    print(f"wrote {path}")
