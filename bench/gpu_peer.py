"""The peer DCGAN (bench/peers/torch_dcgan.py) on a GPU: float32 vs float16 and bfloat16 autocast.

    python -m bench.gpu_peer [--sizes=32x1,64x3,128x3] [--batches=64,256] [--steps=50] [--repeats=3]

For a machine with CUDA and PyTorch but no TensorFlow: it answers "how much
does half precision give this architecture on this GPU?", the reference for
`dcgan train --mixed_precision=float16` there. It is not a measurement of
`dcgan train`. Writes bench/results/gpu-peer.json (or --out=PATH).
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time

import torch

from bench.peers import torch_dcgan

DEFAULTS = {"sizes": "32x1,64x3,128x3", "batches": "64,256", "steps": 50, "repeats": 3, "out": ""}


def parse(argv):
    flags = dict(DEFAULTS)
    for arg in argv:
        key, _, value = arg.lstrip("-").partition("=")
        if key not in flags:
            raise SystemExit(f"unknown flag --{key}; known: {', '.join(flags)}")
        flags[key] = type(DEFAULTS[key])(value)
    return flags


def rate(step, real, steps: int) -> float:
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        loss = step(real)
    float(loss)
    torch.cuda.synchronize()
    return steps * real.shape[0] / (time.perf_counter() - started)


def main(argv) -> int:
    flags = parse(argv)
    torch.backends.cudnn.benchmark = True
    results = {}
    for size in flags["sizes"].split(","):
        resolution, channels = (int(v) for v in size.split("x"))
        for batch in (int(b) for b in flags["batches"].split(",")):
            steps = {
                p: torch_dcgan.make_step(resolution, channels, batch, precision=p, device="cuda")
                for p in ("float32", "float16", "bfloat16")
            }
            real = torch.rand(batch, channels, resolution, resolution, device="cuda") * 2 - 1
            for step in steps.values():  # warm-up: cuDNN algorithm search
                rate(step, real, 5)
            runs = {p: [] for p in steps}
            for _ in range(flags["repeats"]):  # round-robin
                for p, step in steps.items():
                    runs[p].append(rate(step, real, flags["steps"]))
            medians = {p: statistics.median(r) for p, r in runs.items()}
            key = f"{size}, batch {batch}"
            results[key] = {
                "images_per_sec": medians,
                "runs": runs,
                "float16_speedup": medians["float16"] / medians["float32"],
                "bfloat16_speedup": medians["bfloat16"] / medians["float32"],
            }
            print(
                f"{key:<22} "
                + "  ".join(f"{p} {v:9.0f} img/s" for p, v in medians.items())
                + f"  float16 x{results[key]['float16_speedup']:.2f}  bfloat16 x{results[key]['bfloat16_speedup']:.2f}",
                flush=True,
            )
    payload = {
        "benchmark": "gpu-peer",
        "flags": flags,
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host": platform.node(),
        "results": results,
    }
    path = flags["out"] or "bench/results/gpu-peer.json"
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
