"""Our training step vs the same DCGAN written plainly in PyTorch, in one invocation.

    python -m bench peer [--sizes=32x1,64x3] [--batch=64] [--steps=5] [--repeats=5] [--precisions=float32,bfloat16]

For each size: `dcgan train`'s own step function (trainer.train.make_step_fn,
unconditional, one device; its EMA update and health metrics included) and
bench/peers/torch_dcgan.py (ngf = ndf = 64), timed round-robin so the noisy
machine treats them alike. bfloat16 compares our mixed_bfloat16 policy with
torch.autocast(bfloat16). GFLOP/s counts the step's nominal model FLOPs
(G forward + backward = 3 G, three D passes forward + backward = 9 D, two
FLOPs per multiply-add), the same number for both frameworks.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bench import common, train_speed  # noqa: E402
from trainer import data, distribute, models  # noqa: E402

DEFAULTS = {"sizes": "32x1,64x3", "batch": 64, "steps": 5, "repeats": 5, "precisions": "float32,bfloat16",
            "width": 1.0, "latent_dim": 100}


def step_flops(resolution: int, channels: int, width: float, latent_dim: int) -> float:
    """Nominal training FLOPs per image (see the module docstring)."""
    n = int(math.log2(resolution)) - 2
    top = models.filters(width, n - 1)
    g = latent_dim * 16 * top  # the 4x4 projection
    size, in_filters = 4, top
    for level in range(n - 2, -1, -1):
        g += size * size * in_filters * models.filters(width, level) * 16
        in_filters, size = models.filters(width, level), size * 2
    g += size * size * in_filters * channels * 16
    d, size, in_filters = 0, resolution, channels
    for level in range(n):
        size //= 2
        d += size * size * in_filters * models.filters(width, level) * 16
        in_filters = models.filters(width, level)
    d += 16 * top
    return 2.0 * (3 * g + 9 * d)


def main(argv):
    tf.get_logger().setLevel("ERROR")
    flags = common.parse_flags(argv, DEFAULTS)
    import torch

    from bench.peers import torch_dcgan

    strategy = distribute.make_strategy(0)
    results = {}
    for size in flags["sizes"].split(","):
        resolution, channels = (int(v) for v in size.split("x"))
        source = data.load_source("digits", resolution, channels)
        variant_flags = {"resolution": resolution, "channels": channels, "batch": flags["batch"],
                         "width": flags["width"], "steps": flags["steps"], "conditional": False}
        variants = {}
        for precision in flags["precisions"].split(","):
            ours = train_speed.build_variant(variant_flags, strategy, source,
                                             "off" if precision == "float32" else precision, False)
            peer_step = torch_dcgan.make_step(resolution, channels, flags["batch"], flags["width"],
                                              flags["latent_dim"], bfloat16=precision == "bfloat16")
            peer_step()
            peer_step()

            def peer(step=peer_step):
                for _ in range(flags["steps"]):
                    step()

            variants[f"ours {precision}"] = ours
            variants[f"pytorch {precision}"] = peer
        rates, samples = common.compare(variants, flags["steps"] * flags["batch"], flags["repeats"])
        flops = step_flops(resolution, channels, flags["width"], flags["latent_dim"])
        print(f"\n{size}: batch {flags['batch']}, median of {flags['repeats']} x {flags['steps']} steps, "
              f"{flops / 1e9:.3f} GFLOP per image (nominal), torch {torch.__version__} threads {torch.get_num_threads()}")
        print(f"{'variant':<20} {'img/s':>9} {'GFLOP/s':>9} {'ours/pytorch':>13}")
        for name, rate in rates.items():
            precision = name.split()[-1]
            ratio = rate / rates[f"pytorch {precision}"] if name.startswith("ours") else None
            print(f"{name:<20} {rate:>9.1f} {rate * flops / 1e9:>9.1f} {f'{ratio:.2f}x' if ratio else '':>13}")
        results[size] = {"images_per_sec": rates, "gflop_per_image": flops / 1e9, "seconds": samples,
                         "ratio": {p: rates[f"ours {p}"] / rates[f"pytorch {p}"] for p in flags["precisions"].split(",")}}
    path = common.write("peer", {"benchmark": "peer", "flags": flags, "machine": common.machine(),
                                 "torch": torch.__version__, "results": results})
    print(f"wrote {path}")
