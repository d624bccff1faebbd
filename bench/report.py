"""The README's performance table, rendered from bench/results/*.json.

    python -m bench report            # rewrite the table in README.md between its markers
    python -m bench report --check    # exit 1 if README.md differs from the results (CI runs this as a test)

`python -m bench all` runs every benchmark, then this.
"""

from __future__ import annotations

import glob
import json
import os
import sys

from bench import common

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _read(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def _load(name: str):
    path = os.path.join(common.RESULTS, f"{name}.json")
    return _read(path) if os.path.isfile(path) else None


def _each(pattern: str, key=None):
    """(result, its flags, its images_per_sec) for every results file matching `pattern`."""
    for path in sorted(glob.glob(os.path.join(common.RESULTS, pattern)), key=key):
        result = _read(path)
        yield result, result["flags"], result.get("images_per_sec", {})


def _size(f: dict) -> str:
    return f"{f['resolution']}x{f['resolution']}x{f['channels']}"


def rows() -> list[tuple[str, str, str, str, str]]:
    """(benchmark, configuration, result, target, command) rows from whatever results exist."""
    out = []
    for r, f, rates in _each("train-*.json", key=lambda p: int(os.path.basename(p)[6:].split("x")[0])):
        base = rates.get("float32")
        cells = ", ".join(f"{k} {v:.1f}" + (f" ({v / base:.2f}x)" if base and k != "float32" else "")
                          for k, v in rates.items())
        skipped = [k for k, why in r.get("failures", {}).items()]
        if skipped:
            cells += "; not run: " + ", ".join(skipped)
        out.append(("train step", f"{_size(f)}, batch {f['batch']}",
                    f"img/s: {cells}", "",
                    f"`python -m bench train --resolution={f['resolution']} --channels={f['channels']} "
                    f"--steps={f['steps']} --repeats={f['repeats']}`"))
    peer = _load("peer")
    if peer:
        for size, res in peer["results"].items():
            rates = res["images_per_sec"]
            gflop = res["gflop_per_image"]
            for precision, ratio in res["ratio"].items():
                ours, theirs = rates[f"ours {precision}"], rates[f"pytorch {precision}"]
                out.append(("vs PyTorch (same DCGAN)", f"{size}, {precision}",
                            f"**{ratio:.2f}x**: {ours:.1f} vs {theirs:.1f} img/s; "
                            f"{ours * gflop:.0f} vs {theirs * gflop:.0f} GFLOP/s",
                            ">= 1.2x", f"`python -m bench peer` (torch {peer['torch']})"))
    for r, f, rates in _each("augment-*.json"):
        out.append(("augmentation vs ImageDataGenerator", _size(f),
                    f"**{r['ratio']:.1f}x**: {rates['trainer.augment']:.0f} vs {rates['ImageDataGenerator']:.0f} img/s",
                    ">= 10x", f"`python -m bench augment --resolution={f['resolution']} --channels={f['channels']}`"))
    for r, f, rates in _each("sample-*.json"):
        out.append(("sampler vs generator alone", f"{_size(f)}, augmented",
                    f"**{r['ratio']:.2f}**: {rates['sampler end to end']:.0f} vs {rates['generator forward']:.0f} img/s",
                    ">= 0.8", f"`python -m bench sample --images={f['images']}`"))
        if r.get("tasks"):
            t = r["tasks"]["images_per_sec"]
            out.append(("sampler, 1 vs 2 tasks", f"{r['tasks']['images']} images, whole job",
                        f"{t['1 task(s)']:.0f} vs {t['2 task(s)']:.0f} img/s", "", "(same run)"))
    for r, f, _ in _each("checkpoint-every*.json", key=lambda p: int(p.rsplit("every", 1)[1].split(".")[0])):
        for name, res in r["results"].items():
            if name == "no checkpoints":
                continue
            out.append(("checkpoint overhead (step time)", f"every {f['every']} steps, {name.split(',')[0]}",
                        f"**x{res['step_time_ratio']:.3f}** ({res['images_per_sec']:.0f} vs "
                        f"{r['results']['no checkpoints']['images_per_sec']:.0f} img/s)", "<= 1.05",
                        f"`python -m bench checkpoint --every={f['every']} --steps={f['steps']}`"))
    inp = _load("input")
    if inp:
        for name, ratio in inp["ratio"].items():
            out.append(("input pipeline vs consumption", name,
                        f"**{ratio:.1f}x**: {inp['images_per_sec'][name]:.0f} vs {inp['consumption']:.0f} img/s",
                        ">= 5x", "`python -m bench input`"))
    return out


def machine_line() -> str:
    for path in sorted(glob.glob(os.path.join(common.RESULTS, "*.json"))):
        m = _read(path).get("machine")
        if m:
            gpus = ", ".join(m["gpus"]) or "no GPU"
            return (f"Machine: {m['cpu_count']} CPU cores ({m['processor']}), {gpus}, "
                    f"TensorFlow {m['tensorflow']}. Medians over repeats, variants interleaved.")
    return "No results yet: run `python -m bench all`."


def render() -> str:
    lines = [BEGIN, machine_line(), "",
             "| benchmark | configuration | result | target | command |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(r)} |" for r in rows()]
    lines.append(END)
    return "\n".join(lines)


def updated_readme(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + render() + tail


def main(argv):
    with open(README) as f:
        text = f.read()
    new = updated_readme(text)
    if "--check" in argv:
        if new != text:
            print("README.md's performance table differs from bench/results/*.json: run python -m bench report")
            return 1
        print("README.md's performance table matches bench/results")
        return 0
    with open(README, "w") as f:
        f.write(new)
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
