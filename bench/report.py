"""The performance tables, rendered from bench/results/*.json.

    python -m bench report            # rewrite the tables between the markers of docs/performance.md, bench/README.md
    python -m bench report --check    # exit 1 if either differs from the results (CI runs this as a test)

docs/performance.md (linked from README.md) gets a short summary of what users can expect
(no targets); bench/README.md every row, with the targets they are held to.

`python -m bench all` runs every benchmark, then this.
"""

from __future__ import annotations

import glob
import json
import os
import sys

from bench import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "docs", "performance.md")  # the users' summary (README.md links to it)
BENCH_README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")
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


def _train_step_rows(out: list) -> None:
    for r, f, rates in _each("train-*.json", key=lambda p: int(os.path.basename(p)[6:].split("x")[0])):
        base = rates.get("float32")
        cells = ", ".join(
            f"{k} {v:.1f}" + (f" ({v / base:.2f}x)" if base and k != "float32" else "") for k, v in rates.items()
        )
        skipped = [k for k, why in r.get("failures", {}).items()]
        if skipped:
            cells += "; not run: " + ", ".join(skipped)
        out.append(
            (
                "train step",
                f"{_size(f)}, batch {f['batch']}",
                f"img/s: {cells}",
                "",
                f"`python -m bench train --resolution={f['resolution']} --channels={f['channels']} "
                f"--steps={f['steps']} --repeats={f['repeats']}`",
            )
        )


def _exit_note(ours: dict, theirs: dict, steps: int, batch: int) -> str:
    """Per program: the time outside its steady steps (whole job minus steps x batch / its steady rate, per run:
    start-up, first step, teardown and any stall before the last line; median and worst run) and the slowest
    exit (last line to process end), where the results have them."""
    notes = []
    if ours.get("runs") and theirs.get("runs"):

        def outside(row):
            return sorted(wall - steps * batch / rate for rate, wall, *_ in row["runs"])

        a, b = outside(ours), outside(theirs)
        notes.append(
            f"outside steady steps {common.median(a):.0f} vs {common.median(b):.0f} s "
            f"(worst run {a[-1]:.0f} vs {b[-1]:.0f} s)"
        )
    if "exit_seconds_max" in ours:
        notes.append(f"slowest exit {ours['exit_seconds_max']:.1f} vs {theirs['exit_seconds_max']:.1f} s")
    return "".join(f"; {n}" for n in notes)


def _peer_rows(out: list) -> None:
    peer = _load("peer")
    if peer:
        peak = peer["matmul_peak_gflops"]
        for size, res in peer["results"].items():
            rows_ = res["rows"]
            for precision, ratio in res["ratio"].items():
                ours, theirs = rows_[f"ours {precision}"], rows_[f"pytorch {precision}"]
                target = {("64x3", "float32"): ">= 1.3x", ("32x1", "float32"): ">= 1.2x"}.get((size, precision), "")
                out.append(
                    (
                        "`dcgan train` vs PyTorch, own processes",
                        f"{size}, {precision}, batch {peer['flags']['batch']}",
                        f"**{ratio:.2f}x** steady: {ours['images_per_sec']:.1f} vs "
                        f"{theirs['images_per_sec']:.1f} img/s; "
                        f"{ours['gflop_per_sec']:.0f} vs {theirs['gflop_per_sec']:.0f} GFLOP/s "
                        f"({ours['share_of_peak']:.0%} vs {theirs['share_of_peak']:.0%} of the {peak[precision]:.0f} "
                        f"GFLOP/s matmul peak); whole job {ours['job_seconds']:.0f} vs {theirs['job_seconds']:.0f} s "
                        f"({res['steps']} steps){_exit_note(ours, theirs, res['steps'], peer['flags']['batch'])}",
                        target,
                        f"`python -m bench peer` (torch {peer['torch']}, {peer['torch_threads']} threads)",
                    )
                )
            if res.get("bfloat16_vs_pytorch_float32"):
                out.append(
                    (
                        "`dcgan train` vs PyTorch, own processes",
                        f"{size}, our bfloat16 vs PyTorch float32",
                        f"**{res['bfloat16_vs_pytorch_float32']:.2f}x**",
                        "",
                        "(same run)",
                    )
                )


def _peer_long_rows(out: list) -> None:
    """Whole jobs of a set length (`bench peer --steps=N`): the wall time users wait, start-up included."""
    for peer, flags, _ in _each("peer-*steps.json", key=lambda p: int(os.path.basename(p)[5:].split("steps")[0])):
        for size, res in peer["results"].items():
            for precision, ratio in res["job_ratio"].items():
                ours, theirs = res["rows"][f"ours {precision}"], res["rows"][f"pytorch {precision}"]
                out.append(
                    (
                        f"whole `dcgan train` job vs PyTorch's, {res['steps']} steps",
                        f"{size}, {precision}, batch {flags['batch']}",
                        f"**{ratio:.2f}x** as fast: {ours['job_seconds']:.0f} vs "
                        f"{theirs['job_seconds']:.0f} s wall time (steady {res['ratio'][precision]:.2f}x: "
                        f"{ours['images_per_sec']:.0f} vs {theirs['images_per_sec']:.0f} img/s)"
                        f"{_exit_note(ours, theirs, res['steps'], flags['batch'])}; its machine: "
                        f"{peer['machine'].get('cpu') or 'CPU'} with a "
                        f"{peer['matmul_peak_gflops'][precision]:.0f} GFLOP/s {precision} matmul peak",
                        ">= 1.15x" if res["steps"] >= 1000 else ">= 1.0x" if res["steps"] <= 150 else "",
                        f"`python -m bench peer --sizes={size} --precisions={precision} --steps={res['steps']} "
                        f"--repeats={flags['repeats']}`",
                    )
                )


def _augment_rows(out: list) -> None:
    for r, f, rates in _each("augment-*.json"):
        out.append(
            (
                "augmentation vs ImageDataGenerator",
                _size(f),
                f"**{r['ratio']:.1f}x**: {rates['trainer.classic_augment']:.0f} vs "
                f"{rates['ImageDataGenerator']:.0f} img/s",
                ">= 10x",
                f"`python -m bench augment --resolution={f['resolution']} --channels={f['channels']}`",
            )
        )


def _sample_rows(out: list) -> None:
    for r, f, rates in _each("sample-*.json"):
        precision = {"off": "float32"}.get(f.get("precision", "off"), f.get("precision"))
        out.append(
            (
                "sampler vs generator alone",
                f"{_size(f)}, augmented, {precision}",
                f"**{r['ratio']:.2f}**: {rates['sampler end to end']:.0f} vs {rates['generator forward']:.0f} img/s"
                + (
                    f" (no augmentation: {r['ratio_without_augmentation']:.2f})"
                    if "ratio_without_augmentation" in r
                    else ""
                ),
                ">= 0.9",
                f"`python -m bench sample --images={f['images']}"
                + (f" --precision={f['precision']}" if f.get("precision", "off") != "off" else "")
                + "`",
            )
        )
        if r.get("tasks"):
            t = r["tasks"]["images_per_sec"]
            out.append(
                (
                    "sampler, 1 vs 2 tasks",
                    f"{r['tasks']['images']} images, whole job",
                    f"{t['1 task(s)']:.0f} vs {t['2 task(s)']:.0f} img/s",
                    "",
                    "(same run)",
                )
            )


def _checkpoint_rows(out: list) -> None:
    for r, f, _ in _each(
        "checkpoint-every*.json",
        key=lambda p: (os.path.basename(p).count("x"), int(p.rsplit("every", 1)[1].split(".")[0].split("-")[0])),
    ):
        size = f"{f.get('resolution', 32)}x{f.get('resolution', 32)}x{f.get('channels', 1)}"
        for name, res in r["results"].items():
            if name == "no checkpoints":
                continue
            every = f"every {f['every']} steps" + (
                f" (~{res['seconds_between']:.0f} s)" if "seconds_between" in res else ""
            )
            where = res.get("timings", "").split("; ", 1)[-1] if res.get("timings") else ""
            out.append(
                (
                    "checkpoint overhead (step time)",
                    f"{size}, {every}, {name.split(',')[0]}",
                    f"**x{res['step_time_ratio']:.3f}** ({res['images_per_sec']:.0f} vs "
                    f"{r['results']['no checkpoints']['images_per_sec']:.0f} img/s)" + (f"; {where}" if where else ""),
                    "<= 1.05 at ~30 s" if res.get("seconds_between", 0) >= 20 else "",
                    f"`python -m bench checkpoint --every={f['every']} --steps={f['steps']}"
                    + (f" --resolution={f['resolution']} --channels={f['channels']}" if size != "32x32x1" else "")
                    + "`",
                )
            )


def _jobs_rows(out: list) -> None:
    jobs = _load("jobs")
    for kind, target in (("augment", 5.0), ("sample", 2.0)):  # sample: in the same precision (float32)
        r = (jobs or {}).get(kind)
        if not r:
            continue
        base = r["baseline"]
        for name, speedup in r["speedup"].items():
            if name == base:
                continue
            variant = name[name.index("(") + 1 : -1]
            out.append(
                (
                    f"whole `dcgan {kind}` job vs {base}",
                    f"{r['images']} images 32x32x1, {variant}",
                    f"**{speedup:.2f}x**: {r['median_seconds'][name]:.1f} vs {r['median_seconds'][base]:.1f} s",
                    f">= {target:g}x" if variant == "png" else "",
                    f"`python -m bench jobs --which={kind}`",
                )
            )


def _judge_rows(out: list) -> None:
    judge = _load("judge")
    if judge:
        f, sec = judge["flags"], judge["seconds"]
        out.append(
            (
                "`dcgan evaluate`'s judge: seeds trained together",
                f"{f['dataset']}, {f['policy']}, {f['steps']} steps a seed",
                f"**{judge['ratio_12_together_vs_3_alone']:.2f}x**: 12 together {sec['12 together']:.0f} s vs "
                f"3 one at a time {sec['3 one at a time']:.0f} s (3 together {sec['3 together']:.0f} s)",
                "<= 2x",
                f"`python -m bench judge --steps={f['steps']} --repeats={f['repeats']}`",
            )
        )


def _evaluate_rows(out: list) -> None:
    ev = _load("evaluate")
    if ev:
        f, sec = ev["flags"], ev["seconds"]
        out.append(
            (
                "whole `dcgan evaluate` jobs: 12 seeds against 3",
                f"{f['train_data']}, {f['samples']} samples, {f['steps']} steps a classifier; "
                f"{ev['machine'].get('cpu') or 'CPU'}, {f['repeats']} round(s)",
                f"cold **{ev['ratio_12_cold_vs_3']:.2f}x** ({sec['12 seeds, cold']:.0f} vs "
                f"{sec['3 seeds, cold']:.0f} s); a second generator on the same data, scores reused, "
                f"**{ev['ratio_12_warm_vs_3']:.2f}x** ({sec['12 seeds, second generator (warm)']:.0f} s; "
                f"{ev['reused_scores_warm']} scores reused)",
                "<= 2x (cold)",
                f"`python -m bench evaluate --repeats={f['repeats']} --steps={f['steps']}`",
            )
        )


def _gpu_peer_rows(out: list) -> None:
    gpu = _load("gpu-peer")
    if gpu:
        for key, res in gpu["results"].items():
            r = res["images_per_sec"]
            out.append(
                (
                    "GPU reference: the PyTorch peer, not `dcgan train`",
                    f"{gpu['gpu']}, {key}",
                    f"float16 **x{res['float16_speedup']:.2f}**, bfloat16 x{res['bfloat16_speedup']:.2f} "
                    f"over float32 ({r['float32']:.0f} img/s)",
                    ">= 1.5x (float16)",
                    f"`python -m bench.gpu_peer` (torch {gpu['torch']}, CUDA {gpu['cuda']})",
                )
            )


def _input_pipeline_rows(out: list) -> None:
    inp = _load("input")
    if inp:
        for name, ratio in inp["ratio"].items():
            out.append(
                (
                    "input pipeline vs consumption",
                    name,
                    f"**{ratio:.1f}x**: {inp['images_per_sec'][name]:.0f} vs {inp['consumption']:.0f} img/s",
                    ">= 5x",
                    "`python -m bench input`",
                )
            )


def _stall_rows(out: list) -> None:
    stall = _load("stall")
    if stall:
        s, f = stall["summary"], stall["flags"]
        u, t = s["untuned"], s["tuned"]
        out.append(
            (
                "shard reader: deleting its iterator after a pass",
                f"{f['images']} images 32x32x1, one pass ~{u['pass_s_median']:.0f} s, {u['runs']} runs each; "
                f"{stall['machine'].get('cpu') or 'CPU'}",
                f"**worst {u['delete_s_worst'] * 1000:.1f} ms** ({u['over_1s']} runs over 1 s) vs worst "
                f"{t['delete_s_worst']:.1f} s with tf.data autotuning on ({t['over_1s']} of {t['runs']} over 1 s; "
                f"median {t['delete_s_median']:.1f} s)",
                "<= 1 s",
                "`python -m bench stall`",
            )
        )


def _scale_rows(out: list) -> None:
    scale = _load("scale")
    if scale:
        for res in scale["results"].values():
            per_task = res["requests_per_task"]
            requests = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_task.items())) if per_task else "none (local)"
            out.append(
                (
                    "sharded job, one task's protocol cost",
                    f"{res['store']}, {res['tasks']} tasks, {res['shards']} shards",
                    f"**{res['task_seconds_median'] * 1000:.0f} ms** a task (listing "
                    f"{res['listing_seconds_median'] * 1000:.0f} ms), last task's manifest "
                    f"{res['manifest_seconds_last'] * 1000:.0f} ms; requests a task: {requests}",
                    "",
                    f"`python -m bench scale` ({scale['flags']['images_per_shard']} images a shard)",
                )
            )


ROW_MAKERS = (
    _train_step_rows,
    _peer_rows,
    _peer_long_rows,
    _augment_rows,
    _sample_rows,
    _checkpoint_rows,
    _jobs_rows,
    _judge_rows,
    _evaluate_rows,
    _gpu_peer_rows,
    _input_pipeline_rows,
    _stall_rows,
    _scale_rows,
)


def rows() -> list[tuple[str, str, str, str, str]]:
    """(benchmark, configuration, result, target, command) rows from whatever results exist, in table order."""
    out = []
    for make in ROW_MAKERS:
        make(out)
    return out


def machine_line() -> str:
    for path in sorted(glob.glob(os.path.join(common.RESULTS, "*.json"))):
        m = _read(path).get("machine")
        if m:
            gpus = ", ".join(m["gpus"]) or "no GPU"
            return (
                f"Machine: {m['cpu_count']} CPU cores ({m['processor']}), {gpus}, "
                f"TensorFlow {m['tensorflow']}. Medians over repeats, variants interleaved."
            )
    return "No results yet: run `python -m bench all`."


def in_summary(row) -> bool:
    """The rows docs/performance.md shows: training vs PyTorch, whole shard jobs vs plain scripts, checkpoint cost
    at a realistic interval. bench/README.md shows every row."""
    name, configuration = row[0], row[1]
    return (
        name.startswith("`dcgan train` vs PyTorch")
        or name.startswith("whole ")
        or (name.startswith("checkpoint overhead") and "~30 s" in configuration)
    )


def render(with_targets: bool) -> str:
    if with_targets:
        lines = [
            BEGIN,
            machine_line(),
            "",
            "| benchmark | configuration | result | target | command |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [f"| {' | '.join(r)} |" for r in rows()]
    else:  # docs/performance.md's short summary: what users run, start to end
        lines = [BEGIN, machine_line(), "", "| benchmark | configuration | result |", "| --- | --- | --- |"]
        lines += [f"| {' | '.join(r[:3])} |" for r in rows() if in_summary(r)]
    lines.append(END)
    return "\n".join(lines)


def updated(text: str, with_targets: bool) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + render(with_targets) + tail


def main(argv):
    stale = []
    for path, with_targets in ((README, False), (BENCH_README, True)):
        with open(path) as f:
            text = f.read()
        new = updated(text, with_targets)
        if new == text:
            continue
        stale.append(os.path.relpath(path, ROOT))
        if "--check" not in argv:
            with open(path, "w") as f:
                f.write(new)
    if "--check" in argv:
        if stale:
            print(
                f"{', '.join(stale)}: the performance table differs from bench/results/*.json: "
                "run python -m bench report"
            )
            return 1
        print("docs/performance.md and bench/README.md match bench/results")
        return 0
    print(f"updated {', '.join(stale) or 'nothing (already current)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
