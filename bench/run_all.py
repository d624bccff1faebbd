"""Every benchmark in one go (about 3 hours on a 2-core CPU, most of it whole jobs), then the README table.

    python -m bench all

Each benchmark runs in its own process (fresh TensorFlow state), with
settings sized to keep the whole run short; run one alone with more
--repeats for tighter numbers.
"""

from __future__ import annotations

import subprocess
import sys
import time

PLAN = [
    ["train", "--resolution=32", "--channels=1", "--steps=5", "--repeats=3"],
    ["train", "--resolution=64", "--channels=3", "--steps=3", "--repeats=3"],
    ["train", "--resolution=128", "--channels=3", "--steps=2", "--repeats=3", "--precisions=off,bfloat16"],
    ["peer", "--repeats=3"],
    ["peer", "--sizes=32x1", "--precisions=float32", "--steps=1000", "--repeats=3"],
    ["augment", "--resolution=64", "--channels=3"],
    ["augment", "--resolution=32", "--channels=1"],
    ["sample", "--images=32768"],
    ["sample", "--images=32768", "--precision=bfloat16", "--tasks=false"],
    ["jobs", "--repeats=3"],
    ["input"],
    ["stall"],
    ["checkpoint", "--every=5", "--steps=60", "--repeats=2"],
    ["checkpoint", "--every=20", "--steps=120", "--repeats=2"],
    ["checkpoint", "--every=35", "--steps=105", "--repeats=2", "--resolution=64", "--channels=3"],
    ["scale"],
    ["judge", "--steps=300", "--repeats=2"],
    ["evaluate", "--repeats=3"],
]


def main(argv):
    started = time.perf_counter()
    failed = []
    for args in PLAN:
        print(f"\n$ python -m bench {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        if subprocess.call([sys.executable, "-m", "bench", *args]) != 0:
            failed.append(" ".join(args))
        print(f"({time.perf_counter() - t0:.0f} s)", flush=True)
    from bench import report

    report.main([])
    print(f"\nall benchmarks: {time.perf_counter() - started:.0f} s" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0
