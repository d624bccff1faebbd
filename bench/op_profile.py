"""Where the training step's time goes, per TensorFlow op type, in float32 and bfloat16.

    python -m pip install --group bench          # xprof reads the profile (tensorboard-plugin-profile)
    python -m bench ops [--resolution=64] [--channels=3] [--steps=12] [--profile=6,10] [--fused_batchnorm=true]

Each precision is one `dcgan train` process (unconditional, no DiffAugment, as
`bench peer` runs it) that writes a TensorBoard profile of steps 6-10
(`--profile_steps`). The profile's framework op statistics are summed by op
type; idle thread time is left out, so shares are of the time the CPU spent
in ops. It answers "which ops hold bfloat16 back": the convolutions' own
speed-up, and what the ops around them cost once convolutions are faster.
Writes bench/results/ops.json (not one of the README's table rows).
"""

from __future__ import annotations

import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

from bench import common

DEFAULTS = {"resolution": 64, "channels": 3, "steps": 12, "profile": "6,10", "top": 12, "fused_batchnorm": True}
PRECISIONS = {"float32": "off", "bfloat16": "bfloat16"}


def op_times(xplane: str) -> dict[str, float]:
    """Self time in ms per op type (idle left out) from one profile."""
    from xprof.convert import raw_to_tool_data

    data, _ = raw_to_tool_data.xspace_to_tool_data([xplane], "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    totals = collections.Counter()
    for row in table["rows"]:
        cells = dict(zip(columns, (cell.get("v") if isinstance(cell, dict) else cell for cell in row["c"])))
        if cells["type"] != "IDLE":
            totals[cells["type"]] += (cells["total_self_time"] or 0.0) / 1000.0
    return dict(totals)


def main(argv):
    flags = common.parse_flags(argv, DEFAULTS)
    work = tempfile.mkdtemp(prefix="dcgan-bench-ops-")
    try:
        results = {}
        for name, policy in PRECISIONS.items():
            job = os.path.join(work, name)
            subprocess.run(
                [
                    sys.executable, "-m", "trainer", "train", f"--job_dir={job}", f"--resolution={flags['resolution']}",
                    f"--channels={flags['channels']}", f"--steps={flags['steps']}", "--conditional=false",
                    "--diffaugment=none", "--kid_every=0", "--progress=false", f"--profile_steps={flags['profile']}",
                    f"--mixed_precision={policy}", f"--fused_batchnorm={str(flags['fused_batchnorm']).lower()}",
                ],
                check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
            )  # fmt: skip
            (xplane,) = glob.glob(os.path.join(job, "tensorboard", "plugins", "profile", "*", "*.xplane.pb"))
            results[name] = op_times(xplane)
        f32, bf16 = results["float32"], results["bfloat16"]
        print(
            f"op self time (ms) over steps {flags['profile']}, {flags['resolution']}x{flags['channels']}, idle excluded"
        )
        print(f"{'op type':<36} {'float32':>9} {'bfloat16':>9} {'speed-up':>9} {'bf16 share':>10}")
        total_bf16 = sum(bf16.values())
        for op in sorted(set(f32) | set(bf16), key=lambda k: -bf16.get(k, 0.0))[: flags["top"]]:
            a, b = f32.get(op, 0.0), bf16.get(op, 0.0)
            print(f"{op:<36} {a:>9.1f} {b:>9.1f} {(a / b if b else 0):>8.2f}x {b / total_bf16:>9.0%}")
        print(f"{'all ops':<36} {sum(f32.values()):>9.1f} {total_bf16:>9.1f} {sum(f32.values()) / total_bf16:>8.2f}x")
        path = common.write(
            "ops", {"benchmark": "ops", "flags": flags, "machine": common.machine(), "ms_by_op_type": results}
        )
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0
