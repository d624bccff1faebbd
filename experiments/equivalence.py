"""How many real images are the synthetic ones worth? The minority regime's data-equivalence number.

    python -m experiments.usefulness --work=runs/useful --datasets=digits --regime=minority --generators=3 --seeds=4
    python -m experiments.equivalence --work=runs/useful --dataset=digits --ratios=3,2,1

Reads the usefulness experiment's minority run in WORK/results.json (its tuned
baseline and the `with_synthetic` scores: real images with the small classes cut
to 1/--minority_ratio, topped up by each generator). Then trains the same tuned
baseline (augmentation, mix and class balancing chosen on validation there) on
real images only, with the small classes cut less (1/r for each r in --ratios;
r=1 keeps all of them; the cuts are nested: a smaller cut adds images), with the
same classifier seeds (100g + k), and scores balanced accuracy on the test split.
At r = --minority_ratio the curve's point is the minority run's own `augmented`
recipe (the same recipe, images and seeds; reruns on another day differed by ~0.2 points in the mean).

Reports, per r, the paired difference `with_synthetic - baseline(r)` with its
95% interval, and the data-equivalence number: the real images per small class at
which the baseline's mean balanced accuracy reaches `with_synthetic`'s (linear
between measured points), with a 95% interval from a paired bootstrap over seeds.
Nothing here is tuned: the test split is read once per run.
Writes WORK/equivalence.json (resumable) and WORK/equivalence.md.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from experiments import usefulness as experiment  # sets TensorFlow's log level and the allocator first
from trainer import stats


def crossing(sizes, means, target: float) -> float:
    """The size at which the piecewise-linear curve (sizes ascending) first reaches target: sizes[0] if it starts
    there, inf if it never does within the measured sizes."""
    if means[0] >= target:
        return float(sizes[0])
    for (s0, m0), (s1, m1) in zip(zip(sizes, means), zip(sizes[1:], means[1:])):
        if m1 >= target:
            return float(s0 + (s1 - s0) * (target - m0) / (m1 - m0)) if m1 != m0 else float(s1)
    return float("inf")


def bootstrap(sizes, curve: np.ndarray, synthetic: np.ndarray, draws: int = 10000, seed: int = 0) -> tuple:
    """2.5% and 97.5% quantiles of the crossing over seed resamples (curve [ratios, seeds], paired by seed)."""
    rng = np.random.default_rng(seed)
    n = curve.shape[1]
    values = []
    for _ in range(draws):
        pick = rng.integers(0, n, n)
        values.append(crossing(sizes, curve[:, pick].mean(1), synthetic[pick].mean()))
    values = np.asarray(values)
    return float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975)), float(np.mean(np.isinf(values)))


def small_class_size(labels: np.ndarray, keep: np.ndarray, num_classes: int) -> float:
    """Mean images per small class (the lower half of the classes) in labels[keep]."""
    return float(np.mean(np.bincount(labels[keep], minlength=num_classes)[: num_classes // 2]))


def write_json(value, path: str) -> None:
    """Writes value to path, keeping the longer run list of each curve point another process (split --ratios)
    wrote there meanwhile."""
    import fcntl

    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isfile(path):
            with open(path) as f:
                on_disk = json.load(f)
            for key, theirs in on_disk.items():
                mine = value.setdefault(key, theirs)
                for r, point in theirs.get("curve", {}).items():
                    if len(point.get("runs", [])) > len(mine["curve"].get(r, {}).get("runs", [])):
                        mine["curve"][r] = point
        with open(path + ".tmp", "w") as f:
            json.dump(value, f, indent=1)
        os.replace(path + ".tmp", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/useful", help="the usefulness experiment's --work")
    parser.add_argument("--dataset", default="digits", help="digits or shapes")
    parser.add_argument("--fraction", type=int, default=10, help="percent of the training split, as there")
    parser.add_argument("--minority_ratio", type=int, default=5, help="the minority run's --minority_ratio")
    parser.add_argument("--ratios", default="3,2,1", help="cuts of the small classes for the real-only curve")
    parser.add_argument("--steps", type=int, default=1500, help="judge training steps (as the minority run)")
    parser.add_argument("--generators", type=int, default=3, help="the minority run's --generators")
    parser.add_argument("--seeds", type=int, default=4, help="the minority run's --seeds (seed 100g + k)")
    args = parser.parse_args()

    from trainer import classifier, data, usefulness

    work = os.path.abspath(args.work)
    with open(os.path.join(work, "results.json")) as f:
        results = json.load(f)
    key = f"{args.dataset} {args.fraction}% minority"
    tuned = results.get("tuning", {}).get(key)
    if not tuned:
        raise SystemExit(f"no tuned baseline for {key!r} in {work}/results.json: run experiments.usefulness first")
    baseline = usefulness.Baseline(**tuned)
    seeds = [100 * g + k for g in range(args.generators) for k in range(args.seeds)]

    base = experiment.Experiment(argparse.Namespace(work=work)).base(args.dataset)
    train = data.load_source(f"{base}:train[:{args.fraction}%]", 32)
    test = data.load_source(f"{base}:test", 32)
    labels = np.asarray(train.labels)
    out_path = os.path.join(work, "equivalence.json")
    out = json.load(open(out_path)) if os.path.isfile(out_path) else {}
    done = out.setdefault(key, {"baseline": baseline.description, "seeds": seeds, "curve": {}})
    spec = classifier.ClassifierSpec(steps=args.steps)
    score = usefulness.score_fn(True)
    ratios = sorted({int(r) for r in args.ratios.split(",")}, reverse=True)
    for r in [r for r in ratios if r != args.minority_ratio]:
        point = done["curve"].setdefault(str(r), {"runs": []})
        keep = experiment.minority_subset(labels, train.num_classes, r)
        point["per_small_class"] = small_class_size(labels, keep, train.num_classes)
        point["train_images"] = int(len(keep))
        for seed in seeds[len(point["runs"]) :]:
            model = classifier.train(train.images[keep], labels[keep], train.num_classes, spec, seed, baseline.recipe())
            point["runs"].append(score(model, test.images, np.asarray(test.labels), train.num_classes))
            experiment.log(f"{key}: 1/{r} of the small classes, seed {seed}: {point['runs'][-1]:.4f}")
            write_json(out, out_path)

    runs = results.get("runs", {}).get(key, {})
    if sorted(runs) != [f"g{g}" for g in range(args.generators)] or any(
        r["seeds"] != args.seeds for r in runs.values()
    ):
        raise SystemExit(
            f"the real-only curve is measured; rerun once the minority run has {args.generators} generators"
        )
    synthetic = np.array(
        [x for g in range(args.generators) for x in runs[f"g{g}"]["recipes"]["with_synthetic"]["runs"]]
    )
    generators = list(runs)
    keep = experiment.minority_subset(labels, train.num_classes, args.minority_ratio)
    done["curve"][str(args.minority_ratio)] = {
        "runs": [x for g in range(args.generators) for x in runs[f"g{g}"]["recipes"]["augmented"]["runs"]],
        "per_small_class": small_class_size(labels, keep, train.num_classes),
        "train_images": int(len(keep)),
        "from": "the minority run's augmented recipe",
    }
    points = sorted(done["curve"].values(), key=lambda p: p["per_small_class"])
    sizes = [p["per_small_class"] for p in points]
    curve = np.array([p["runs"] for p in points])
    equal = crossing(sizes, curve.mean(1), synthetic.mean())
    low, high, never = bootstrap(sizes, curve, synthetic)
    synthetic_size = done["curve"][str(args.minority_ratio)]["per_small_class"]
    lines = [
        f"### {key}: how many real images the synthetic top-up is worth",
        "",
        f"Baseline (tuned on validation in the minority run): {baseline.description}; "
        f"{len(seeds)} paired classifier seeds ({len(generators)} generators x {len(seeds) // len(generators)}); "
        f"balanced accuracy on {len(test.labels)} test images.",
        "",
        f"Real + synthetic with {synthetic_size:.1f} real images per small class: {synthetic.mean():.4f}.",
        "",
        "| real images per small class (all) | baseline, real only | real + synthetic minus it (95% interval) |",
        "| --- | --- | --- |",
    ]
    for p in points:
        diff = stats.paired(p["runs"], synthetic)
        lines.append(
            f"| {p['per_small_class']:.1f} ({p['train_images']}) | {np.mean(p['runs']):.4f} | {diff.points()} |"
        )
    lines += [
        "",
        f"Data-equivalence: the baseline needs **{equal:.1f}** real images per small class to match real + synthetic "
        f"with {synthetic_size:.1f} (95% bootstrap interval over seeds [{low:.1f}, {high:.1f}]; "
        f"{100 * never:.0f}% of resamples never match within the measured range).",
        "",
    ]
    done["equivalence"] = {"per_small_class": equal, "low": low, "high": high, "never": never}
    write_json(out, out_path)
    with open(os.path.join(work, "equivalence.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
