"""Do a generator's images help a classifier more than tuned augmentation? The re-runnable experiment.

    python -m pip install -e . --group experiments  # pip >= 25.1
    python -m experiments.usefulness --work=runs/usefulness                      # digits and shapes, 10%
    python -m experiments.usefulness --work=runs/usefulness --datasets=shapes --regime=minority \
        --generators=3 --seeds=5
    python -m experiments.usefulness --work=runs/usefulness --variant=ac1 --gan_flags='--class_loss_weight=1'
    for g in 0 1 2; do python -m experiments.usefulness ... --generators=3 --only=$g & done   # one process each

It runs `dcgan evaluate`'s comparison (trainer/usefulness.py) on training sets
drawn from a dataset (the bundled `digits`; `shapes`, an RGB dataset made from
a seed by experiments/shapes.py), with several generators per training set:

  regime balanced   NAME:train[:F%]
  regime minority   the same, but the first half of the classes keeps only 1/--minority_ratio of
                    its images (scores become balanced accuracies): can a generator fill them?

For each training set the augmentation baseline is tuned once on a validation
split carved from the training images (never the test split; `--tune_folds=k`:
k-fold cross-validation instead, every training image validating once, results
kept under the training set's key + " tuned-k-fold"); then for each of
--generators generators (`dcgan train --seed=g`, resumable job dirs) the share
of synthetic images is tuned on the same validation images and the four recipes
(real, augmented, synthetic_only, with_synthetic) run --seeds paired seeds on
NAME:test. Generator g uses classifier seeds 100g.., so pooling the paired
differences over generators samples both sources of variance: the classifier's
seed and the generator's training.

Writes WORK/results.json (every run) and WORK/usefulness.md (one table per
training set: each recipe's mean with the 95% interval of its paired difference
to the tuned augmentation, pooled over generators, and the verdict).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainer import startup  # noqa: E402

startup.prepare()  # as `dcgan` does, before TensorFlow loads: the allocator and the CPU kernels

import numpy as np  # noqa: E402

from trainer import stats  # noqa: E402

RECIPES = ("real", "augmented", "synthetic_only", "with_synthetic")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def dcgan_train(job: str, dataset: str, steps: int, seed: int, *flags: str) -> float:
    """Runs (or resumes) one `dcgan train` job as a user would, quietly; returns its wall seconds."""
    started = time.time()
    command = [sys.executable, "-m", "trainer", "train", f"--job_dir={job}", f"--dataset={dataset}"]
    command += [f"--steps={steps}", f"--seed={seed}", "--progress=false", *flags]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.time() - started


def minority_subset(labels: np.ndarray, num_classes: int, ratio: int, seed: int = 0) -> np.ndarray:
    """Indices keeping every image of the upper half of the classes and 1/ratio of the lower half's."""
    rng = np.random.default_rng(seed)
    keep = []
    for k in range(num_classes):
        index = np.flatnonzero(labels == k)
        if k < num_classes // 2:
            index = rng.permutation(index)[: max(1, len(index) // ratio)]
        keep.append(index)
    return np.sort(np.concatenate(keep))


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    key: str  # "shapes 10% minority"
    images: np.ndarray
    labels: np.ndarray
    test: tuple
    num_classes: int
    regime: str = "balanced"  # 'minority': the synthetic pool tops the small classes up


class Experiment:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        os.makedirs(self.work, exist_ok=True)
        self.results_path = os.path.join(self.work, "results.json")
        self.results = {}
        from trainer import score_cache

        # every judge score, kept in the work dir: a rerun after an interruption trains only what is missing
        self.cache = score_cache.ScoreCache(os.path.join(self.work, "judge_scores"))
        if os.path.isfile(self.results_path):
            with open(self.results_path) as f:
                self.results = json.load(f)
        self.loaded = copy.deepcopy(self.results)  # what another process may have changed since

    def save(self) -> None:
        """Writes results.json, merged with what other processes (`--only`) wrote there meanwhile."""
        import fcntl

        with open(self.results_path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.isfile(self.results_path):
                with open(self.results_path) as f:
                    on_disk = json.load(f)
                for key, runs in on_disk.get("runs", {}).items():
                    mine = self.results.setdefault("runs", {}).setdefault(key, {})
                    mine.update({g: run for g, run in runs.items() if g not in mine})
                for group in ("tuning", "wall_s"):  # this process's own changes over what is on disk
                    before = self.loaded.get(group, {})
                    mine = {k: v for k, v in self.results.get(group, {}).items() if before.get(k) != v}
                    self.results[group] = on_disk.get(group, {}) | mine
            with open(self.results_path + ".tmp", "w") as f:
                json.dump(self.results, f, indent=1)
            os.replace(self.results_path + ".tmp", self.results_path)

    def spec(self, seed: int = 0):
        from trainer import classifier, usefulness

        return usefulness.UsefulnessSpec(
            classifier.ClassifierSpec(steps=self.args.steps),
            seeds=self.args.seeds,
            tune_seeds=self.args.tune_seeds,
            tune_folds=self.args.tune_folds,
            seed=seed,
        )

    # -- data
    def base(self, dataset: str) -> str:
        if dataset == "digits":
            return "digits"
        if dataset == "shapes":
            from experiments import shapes

            path = os.path.join(self.work, "shapes.npz")
            if not os.path.isfile(path):
                shapes.write(path, per_class=400, seed=0)
            return path
        raise SystemExit(f"unknown dataset {dataset!r}")

    def training_set(self, dataset: str, fraction: int, regime: str) -> TrainingSet:
        from trainer import data

        base = self.base(dataset)
        train = data.load_source(f"{base}:train[:{fraction}%]", 32)
        test = data.load_source(f"{base}:test", 32)
        images, labels = train.images, np.asarray(train.labels)
        if regime == "minority":
            keep = minority_subset(labels, train.num_classes, self.args.minority_ratio)
            images, labels = images[keep], labels[keep]
        key = f"{dataset} {fraction}% {regime}" + (f" {self.args.variant}" if self.args.variant else "")
        return TrainingSet(key, images, labels, (test.images, np.asarray(test.labels)), train.num_classes, regime)

    def results_key(self, training: TrainingSet) -> str:
        """results.json's key for this training set: its own, and the tuning folds where not one split (the
        generators are the same: only the tuning, and so every judge score, differs)."""
        from trainer import validation_split

        folds = validation_split.folds_for(training.labels, training.num_classes, self.args.tune_folds)
        return training.key + ("" if folds == 1 else f" tuned-{folds}-fold")

    # -- generators
    def job_dir(self, training: TrainingSet, g: int) -> str:
        """Generator g's `dcgan train` job dir for this training set (its images beside it, JOB.npz)."""
        return os.path.join(self.work, training.key.replace(" ", "-").replace("%", "") + f"-g{g}")

    @staticmethod
    def check_trained_on(training: TrainingSet, job: str) -> None:
        """Refuses (one line) a job whose JOB.npz holds other images than `training`'s."""
        with np.load(job + ".npz") as trained_on:
            same = np.array_equal(trained_on["x"], training.images) and np.array_equal(trained_on["y"], training.labels)
            if not same:
                raise SystemExit(
                    f"{job}.npz: other images than {training.key}; check --fraction, --minority_ratio and --variant"
                )

    def generator(self, training: TrainingSet, g: int) -> str:
        """A finished `dcgan train` job on exactly these training images (seed g), trained once."""
        job = self.job_dir(training, g)
        if not os.path.isfile(os.path.join(job, "export", "generator.keras")):
            os.makedirs(self.work, exist_ok=True)
            npz = job + ".npz"
            np.savez_compressed(npz, x=training.images, y=training.labels)
            log(f"training generator {g} on {training.key} ({self.args.gan_steps} steps) {self.args.gan_flags}")
            wall = dcgan_train(job, npz, self.args.gan_steps, g, *shlex.split(self.args.gan_flags))
            self.results.setdefault("wall_s", {})[f"gan {training.key} g{g}"] = round(wall)
            self.save()
        return job

    def synthetic(self, job: str, count: int, seed: int = 7, labels: str = "balanced") -> tuple:
        import tensorflow as tf

        from trainer import sources
        from trainer.specs import GeneratorSpec

        source = sources.generator_source(GeneratorSpec(job, seed=seed, labels=labels))
        images, labels = [], []
        for start in range(0, count, 500):
            pixels, label, _ = source.make_batch(tf.range(start, min(start + 500, count), dtype=tf.int64))
            images.append(np.clip(np.round(pixels.numpy()), 0, 255).astype(np.uint8))
            labels.append(label.numpy())
        return np.concatenate(images), np.concatenate(labels)

    # -- the comparison
    def baseline(self, training: TrainingSet):
        """The augmentation tuned on validation, once per training set (stored, so reruns reuse it)."""
        from trainer import usefulness, validation_split

        stored = self.results.setdefault("tuning", {}).get(self.results_key(training))
        chosen = None
        if stored:
            chosen = usefulness.Baseline(**stored)  # a baseline stored before balancing existed: balance "none"
            if "balance" in stored or not validation_split.is_imbalanced(training.labels, training.num_classes):
                return chosen
            log(f"{training.key}: tuning the class balancing on top of the stored {chosen.description}")
        baseline = usefulness.tune_baseline(
            (training.images, training.labels),
            training.num_classes,
            self.spec(),
            log=log,
            chosen=chosen,
            cache=self.cache,
        )
        self.results["tuning"][self.results_key(training)] = dataclasses.asdict(baseline)
        self.save()
        return baseline

    def measure(self, training: TrainingSet) -> None:
        from trainer import usefulness

        baseline = self.baseline(training)
        done = self.results.setdefault("runs", {}).setdefault(self.results_key(training), {})
        only = [int(g) for g in self.args.only.split(",")] if self.args.only else range(self.args.generators)
        for g in only:
            if f"g{g}" in done:
                continue
            # minority regime: the pool tops the small classes up (`dcgan sample --labels=fill`)
            labels = "fill" if training.regime == "minority" else "balanced"
            synthetic = self.synthetic(self.generator(training, g), self.args.num_synthetic, labels=labels)
            log(f"{training.key}, generator {g}: {len(training.labels)} real images")
            done[f"g{g}"] = usefulness.compare(
                (training.images, training.labels),
                training.test,
                synthetic,
                training.num_classes,
                self.spec(seed=100 * g),
                baseline=baseline,
                log=log,
                cache=self.cache,
            )
            self.save()


def pooled(runs: dict, recipe: str, against: str = "augmented") -> stats.Interval:
    """The paired difference recipe - against over every generator's seeds."""
    a = [x for run in runs.values() for x in run["recipes"][against]["runs"]]
    b = [x for run in runs.values() for x in run["recipes"][recipe]["runs"]]
    return stats.paired(a, b)


def tables(results: dict) -> str:
    lines = []
    for key, runs in results.get("runs", {}).items():
        if not runs:
            continue
        first = next(iter(runs.values()))
        tuned = first["tuned"]
        shares = sorted({run["tuned"]["synthetic_share"] for run in runs.values()})
        lines += [
            f"### {key}: {first['train_images']} real training images, {len(runs)} generators x {first['seeds']} "
            f"seeds, {first['metric']} on {first['test_images']} test images",
            "",
            f"Tuned on validation: {tuned['augmentation']}; synthetic share {', '.join(map(str, shares))}.",
            "",
            "| recipe | mean | vs tuned augmentation (95% interval, points) |",
            "| --- | --- | --- |",
        ]
        diffs = {recipe: pooled(runs, recipe) for recipe in RECIPES}
        for recipe in RECIPES:
            mean = float(np.mean([x for run in runs.values() for x in run["recipes"][recipe]["runs"]]))
            diff = diffs[recipe]
            text = (
                ""
                if recipe == "augmented"
                else f"{100 * diff.mean:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
            )
            lines.append(f"| {first['recipes'][recipe]['description']} | {mean:.4f} | {text} |")
        names = sorted(runs)
        cas = ", ".join(f"{name} {runs[name]['cas_ratio']:.2f}" for name in names)
        lines += ["", f"CAS ratio {np.mean([r['cas_ratio'] for r in runs.values()]):.2f} (per generator: {cas}).", ""]
        verdict = stats.verdict(diffs["with_synthetic"], "the tuned augmentation")
        lines += [f"Verdict: synthetic images: {verdict}", ""]
        if len(runs) > 1:
            # The interval above pools every seed of these generators (it holds for them); a new GAN training
            # varies too: each generator's mean difference is one sample of that, with len(runs) - 1 dof.
            each = {name: pooled({name: runs[name]}, "with_synthetic").mean for name in names}
            across = stats.interval(list(each.values()))
            lines += [
                "Per generator (points): "
                + ", ".join(f"{n} {100 * v:+.1f}" for n, v in each.items())
                + f"; across GAN trainings (t-interval over the {len(runs)} generators' means): {across.points()}.",
                "",
            ]
    return "\n".join(lines)


def add_training_set_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that name one of a run's training sets, for the scripts that work on a run's results."""
    parser.add_argument("--work", default="runs/useful", help="the usefulness experiment's --work")
    parser.add_argument("--dataset", default="digits", help="digits or shapes")
    parser.add_argument("--fraction", type=int, default=10, help="percent of the training split, as there")
    parser.add_argument("--regime", default="minority", choices=("balanced", "minority"), help="as there")
    parser.add_argument("--minority_ratio", type=int, default=5, help="as there")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/usefulness", help="where generators and results go (resumable)")
    parser.add_argument("--datasets", default="digits,shapes", help="comma-separated: digits, shapes")
    parser.add_argument("--fractions", default="10", help="percent of the training split, comma-separated")
    parser.add_argument("--regime", default="balanced", choices=("balanced", "minority"), help="see the docstring")
    parser.add_argument("--minority_ratio", type=int, default=5, help="minority regime: 1/ratio of those classes")
    parser.add_argument("--generators", type=int, default=3, help="generator trainings per training set")
    parser.add_argument("--seeds", type=int, default=5, help="paired classifier seeds per recipe and generator")
    parser.add_argument("--tune_seeds", type=int, default=2, help="classifier seeds per candidate on validation")
    parser.add_argument(
        "--tune_folds", type=int, default=1, help="1: one validation split; k: k-fold cross-validation; 0: auto"
    )
    parser.add_argument("--steps", type=int, default=1500, help="judge classifier training steps")
    parser.add_argument("--gan_steps", type=int, default=3000, help="generator training steps")
    parser.add_argument("--num_synthetic", type=int, default=5000, help="synthetic images per generator")
    parser.add_argument("--gan_flags", default="", help="extra `dcgan train` flags, e.g. '--class_loss_weight=1'")
    parser.add_argument("--only", default="", help="generator indices to run here, e.g. '2' (several processes)")
    parser.add_argument("--variant", default="", help="a name for --gan_flags (job dirs and result keys carry it)")
    args = parser.parse_args()
    if args.tune_folds < 0:
        raise SystemExit(f"--tune_folds={args.tune_folds}: 1 (one split), k >= 2 (k folds) or 0 (auto)")
    experiment = Experiment(args)
    started = time.time()
    for dataset in args.datasets.split(","):
        for fraction in [int(f) for f in args.fractions.split(",")]:
            experiment.measure(experiment.training_set(dataset, fraction, args.regime))
    experiment.results.setdefault("wall_s", {})[f"invocation {time.strftime('%Y-%m-%d %H:%M')}"] = round(
        time.time() - started
    )
    experiment.save()
    with open(os.path.join(experiment.work, "usefulness.md"), "w") as f:
        f.write(tables(experiment.results))
    print(tables(experiment.results))


if __name__ == "__main__":
    main()
