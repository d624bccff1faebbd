"""Does synthetic data beat the strongest classic augmentation downstream? The re-runnable experiment.

    python -m pip install -e '.[experiments]'
    python -m experiments.usefulness --work=runs/usefulness                       # everything (hours on a CPU)
    python -m experiments.usefulness --work=runs/usefulness --fractions=10 --datasets=digits
    python -m experiments.usefulness --work=runs/usefulness --fractions=10 --variant=ac1 \
        --gan_flags='--class_loss_weight=1'
    python -m experiments.usefulness --work=runs/usefulness --levers    # recipe levers, validation only

For each dataset (the bundled `digits`, and `shapes`, an RGB dataset made from a
seed by experiments/shapes.py) and each fraction of its training split:

1. A generator is trained with `dcgan train` at its defaults on NAME:train[:F%]
   (resumable: an existing job dir is reused).
2. The augmentation baselines are tuned once, at 10%, on a validation split
   (NAME:train[80%:], disjoint from every training slice up to 80%), never on the
   test split: ImageDataGenerator-style strength, Keras RandAugment (ops,
   magnitude), crop/flip/colour. The strongest policy on validation is the
   baseline at every fraction; the synthetic recipes' one free choice (the share
   of synthetic images per batch) is tuned the same way.
3. Every recipe trains the same small classifier for the same steps and batch
   size, over --seeds seeds, and is tested on NAME:test:
     real                 real images, no augmentation
     idg                  real + tuned ImageDataGenerator-style augmentation
     modern               real + the tuned modern policy (RandAugment or crop/flip/colour)
     synthetic_hard       real + policy + synthetic images with their conditioning labels
     synthetic_distilled  real + policy + synthetic images with a teacher's soft labels (the teacher:
                          an ensemble of 5 classifiers trained on real + policy)
     augmented_distilled  ablation: the same teacher and recipe, but the transfer set is classic
                          augmented copies of the real images instead of synthetic images
4. `dcgan evaluate` measures memorization and GAN-test of each generator.

--levers compares ways of using the same generator's images (LEVERS: label
kind, share, a stronger teacher, synthetic-first schedules) at 10% on the
validation split only, 3 seeds each: a lever that wins there earns a test run.

Writes WORK/results.json (every run's accuracy), WORK/usefulness.md (the tables)
and WORK/usefulness-curve.png (accuracy vs number of real images).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

VALIDATION = "train[80%:]"
TUNE_FRACTION = 10
RECIPES = ("real", "idg", "modern", "synthetic_hard", "synthetic_distilled", "augmented_distilled")
BASELINES = ("real", "idg", "modern")
# Ways of using one generator's images, compared on the validation split (--levers). Keys of each:
# labels (none: the baseline alone; "hard"; "teacher": soft labels), share (synthetic per batch; default:
# the tuned share), teacher_steps (x --steps), synthetic_first (train_recipe's schedule).
LEVERS = {
    "baseline (tuned policy alone)": {},
    "hard labels": {"labels": "hard"},
    "hard labels, share 0.1": {"labels": "hard", "share": 0.1},
    "hard labels, synthetic first 30%": {"labels": "hard", "synthetic_first": 0.3},
    "soft labels": {"labels": "teacher"},
    "soft labels, synthetic first 30%": {"labels": "teacher", "synthetic_first": 0.3},
    "soft labels, teacher trained 3x longer": {"labels": "teacher", "teacher_steps": 3},
    "soft labels, teacher 3x, share 0.1": {"labels": "teacher", "teacher_steps": 3, "share": 0.1},
    "soft labels, teacher 3x, synthetic first 30%": {"labels": "teacher", "teacher_steps": 3, "synthetic_first": 0.3},
    "soft labels, teacher 3x, synthetic first 30% then real only": {
        "labels": "teacher",
        "teacher_steps": 3,
        "synthetic_first": 0.3,
        "share": 0.0,
    },
}
LEVER_SEEDS = 3
# A generator variant's row: the ablation (augmented_distilled) does not depend on the generator.
VARIANT_RECIPES = ("real", "idg", "modern", "synthetic_hard", "synthetic_distilled")


def merge_into(mine: dict, on_disk: dict) -> None:
    """Adds `on_disk`'s entries to `mine` in place (on_disk wins where both hold a value), keeping the
    identity of `mine`'s nested dicts: code holding one of them keeps writing into the results."""
    for key, value in on_disk.items():
        if isinstance(value, dict) and isinstance(mine.get(key), dict):
            merge_into(mine[key], value)
        else:
            mine[key] = value


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Experiment:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        os.makedirs(self.work, exist_ok=True)
        self.results_path = os.path.join(self.work, "results.json")
        self.results = {}
        if os.path.isfile(self.results_path):
            with open(self.results_path) as f:
                self.results = json.load(f)

    def save(self) -> None:
        """Merges this run's results into WORK/results.json (under a lock: variants may run side by side)."""
        import fcntl

        with open(self.results_path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            on_disk = {}
            if os.path.isfile(self.results_path):
                with open(self.results_path) as f:
                    on_disk = json.load(f)
            merge_into(self.results, on_disk)  # entries are written once: what is on disk stays
            with open(self.results_path + ".tmp", "w") as f:
                json.dump(self.results, f, indent=1)
            os.replace(self.results_path + ".tmp", self.results_path)

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

    def load(self, spec: str):
        from trainer import data

        source = data.load_source(spec, 32)
        return source.images, source.labels, source.num_classes

    # -- generator
    @property
    def variant(self) -> str:
        """'' for `dcgan train`'s defaults, else the name given to --gan_flags (job dirs and result keys carry it)."""
        return self.args.variant

    def key(self, dataset: str, fraction: int) -> str:
        return f"{dataset} {fraction}%" + (f" {self.variant}" if self.variant else "")

    def generator(self, dataset: str, fraction: int) -> str:
        job = os.path.join(self.work, f"{dataset}-{fraction}" + (f"-{self.variant}" if self.variant else ""))
        if not os.path.isfile(os.path.join(job, "export", "generator.keras")):
            spec = f"{self.base(dataset)}:train[:{fraction}%]"
            log(f"training a generator on {spec} ({self.args.gan_steps} steps) {self.args.gan_flags}")
            started = time.time()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "trainer",
                    "train",
                    f"--job_dir={job}",
                    f"--dataset={spec}",
                    f"--steps={self.args.gan_steps}",
                    "--progress=false",
                    *shlex.split(self.args.gan_flags),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            self.results.setdefault("wall_s", {})[f"gan {self.key(dataset, fraction)}"] = round(time.time() - started)
            self.save()
        return job

    def synthetic(self, job: str, count: int, seed: int = 7):
        import tensorflow as tf

        from trainer import command_line, sources

        source = sources.generator_source(
            command_line.resolve("sample", {"generator": job, "output": "-", "seed": seed})
        )
        images, labels = [], []
        for start in range(0, count, 500):
            pixels, label, _ = source.make_batch(tf.range(start, min(start + 500, count), dtype=tf.int64))
            images.append(np.clip(np.round(pixels.numpy()), 0, 255).astype(np.uint8))
            labels.append(label.numpy())
        return np.concatenate(images), np.concatenate(labels)

    @staticmethod
    def augmented_copies(images: np.ndarray, count: int, policy) -> np.ndarray:
        import tensorflow as tf

        from trainer import classic_augment

        index = np.arange(count) % len(images)
        seeds = classic_augment.image_seeds(99, tf.range(count, dtype=tf.int64))
        x = classic_augment.apply(tf.cast(tf.constant(images[index]), tf.float32), policy, seeds)
        return np.clip(np.round(x.numpy()), 0, 255).astype(np.uint8)

    # -- recipes
    def teacher(
        self, dataset: str, fraction: int, policy_name: str, x: np.ndarray, y: np.ndarray, num_classes: int, steps=None
    ):
        """The teacher ensemble of (dataset, fraction, policy, steps): trained once, then loaded (variants share it)."""
        from trainer import downstream

        steps = steps or self.args.steps
        slug = "".join(ch if ch.isalnum() else "_" for ch in policy_name)
        digest = hashlib.sha256(x.tobytes() + y.astype(np.int64).tobytes()).hexdigest()[:12]  # the data, not its name
        folder = os.path.join(self.work, "teachers", f"{dataset}-{fraction}-{slug}-{steps}-{digest}")
        paths = [os.path.join(folder, f"member-{k}.keras") for k in range(5)]
        if all(os.path.isfile(p) for p in paths):
            return downstream.Teacher.load(paths)
        policy = self.policies(dataset)[policy_name]
        teacher = downstream.train_teacher(x, y, num_classes, members=5, policy=policy, steps=steps)
        teacher.save(folder)
        return teacher

    def policies(self, dataset: str) -> dict:
        from trainer import downstream

        grid = {f"idg x{s}": downstream.classic_policy(s) for s in (0.5, 1.0, 1.5, 2.0)}
        grid.update(
            {
                f"randaugment {n}/{m}": downstream.randaugment_policy(n, m)
                for n, m in ((1, 0.3), (2, 0.3), (2, 0.5), (3, 0.5))
            }
        )
        grid["crop/flip/colour"] = downstream.crop_flip_policy(flip=dataset != "digits")  # flips change digits
        return grid

    def accuracy(self, train, test, num_classes, seeds, **recipe) -> list[float]:
        from trainer import downstream, metrics

        runs = []
        for seed in seeds:
            model = downstream.train_recipe(train, num_classes, steps=self.args.steps, seed=seed, **recipe)
            runs.append(metrics.accuracy(model, *test))
        return runs

    def tune(self, dataset: str) -> dict:
        """Best baseline policies and synthetic share at 10%, on the validation split only.

        The baselines are tuned once per dataset; the share per generator (the defaults, each variant)."""
        key = f"tuning {dataset}"
        if key not in self.results:
            base = self.base(dataset)
            x, y, c = self.load(f"{base}:train[:{TUNE_FRACTION}%]")
            val = self.load(f"{base}:{VALIDATION}")[:2]
            scores = {}
            for name, policy in self.policies(dataset).items():
                scores[name] = float(np.mean(self.accuracy((x, y), val, c, range(2), policy=policy)))
                log(f"tune {dataset}: {name} validation {scores[name]:.4f}")
            idg = max((n for n in scores if n.startswith("idg")), key=scores.get)
            modern = max((n for n in scores if not n.startswith("idg")), key=scores.get)
            best = max((idg, modern), key=scores.get)
            self.results[key] = {"validation": scores, "idg": idg, "modern": modern, "baseline": best}
            self.save()
        share_key = f"{key} {self.variant}" if self.variant else key
        if "synthetic_share" not in self.results.get(share_key, {}):
            self.results.setdefault(share_key, {}).update(self.tune_share(dataset, self.results[key]))
            self.save()
        return {**self.results[key], **self.results[share_key]}

    def tune_share(self, dataset: str, tuned: dict) -> dict:
        """The share of synthetic images per batch (distilled recipe), on the validation split at 10%."""

        base = self.base(dataset)
        x, y, c = self.load(f"{base}:train[:{TUNE_FRACTION}%]")
        val = self.load(f"{base}:{VALIDATION}")[:2]
        job = self.generator(dataset, TUNE_FRACTION)
        policy = self.policies(dataset)[tuned["baseline"]]
        teacher = self.teacher(dataset, TUNE_FRACTION, tuned["baseline"], x, y, c)
        sx, _ = self.synthetic(job, self.args.num_synthetic)
        soft = teacher.probabilities(sx)
        shares = {}
        for share in (0.25, 0.5, 0.75):
            shares[share] = float(
                np.mean(
                    self.accuracy(
                        (x, y), val, c, range(2), policy=policy, synthetic=(sx, soft), synthetic_fraction=share
                    )
                )
            )
            log(f"tune {dataset} {self.variant}: distilled share {share} validation {shares[share]:.4f}")
        return {
            "synthetic_share": max(shares, key=shares.get),
            "synthetic_share_validation": {str(k): v for k, v in shares.items()},
        }

    def measure(self, dataset: str, fraction: int) -> None:
        from trainer import downstream

        key = self.key(dataset, fraction)
        done = self.results.setdefault("runs", {}).setdefault(key, {})
        wanted = VARIANT_RECIPES if self.variant else RECIPES
        if all(r in done for r in wanted):
            return
        if self.variant:  # the baselines do not depend on the generator: the same runs as the defaults' row
            defaults = self.results["runs"].get(f"{dataset} {fraction}%", {})
            done.update({r: defaults[r] for r in BASELINES if r in defaults})
        tuned = self.tune(dataset)
        policies = self.policies(dataset)
        policy = policies[tuned["baseline"]]
        base = self.base(dataset)
        x, y, c = self.load(f"{base}:train[:{fraction}%]")
        test = self.load(f"{base}:test")[:2]
        seeds = range(self.args.seeds)
        job = self.generator(dataset, fraction)
        started = time.time()
        teacher = self.teacher(dataset, fraction, tuned["baseline"], x, y, c)
        sx, sy = self.synthetic(job, self.args.num_synthetic)
        soft = teacher.probabilities(sx)
        share = tuned["synthetic_share"]
        recipes = {
            "real": {},
            "idg": {"policy": policies[tuned["idg"]]},
            "modern": {"policy": policies[tuned["modern"]]},
            "synthetic_hard": {"policy": policy, "synthetic": (sx, sy), "synthetic_fraction": share},
            "synthetic_distilled": {"policy": policy, "synthetic": (sx, soft), "synthetic_fraction": share},
        }
        if "augmented_distilled" in wanted and "augmented_distilled" not in done:
            ax = self.augmented_copies(x, self.args.num_synthetic, downstream.classic_policy(2.0))
            recipes["augmented_distilled"] = {
                "policy": policy,
                "synthetic": (ax, teacher.probabilities(ax)),
                "synthetic_fraction": share,
            }
        done["train_images"] = int(len(x))
        done["teacher_ensemble_test"] = float((teacher.probabilities(test[0]).argmax(1) == test[1]).mean())
        done["synthetic_teacher_agreement"] = float((soft.argmax(1) == sy).mean())
        for name, recipe in recipes.items():
            if name in done or name not in wanted:
                continue
            runs = self.accuracy((x, y), test, c, seeds, **recipe)
            done[name] = {"mean": float(np.mean(runs)), "std": float(np.std(runs)), "runs": runs}
            log(f"{key}: {name} {np.mean(runs):.4f} +- {np.std(runs):.4f}")
            self.save()
        self.results.setdefault("wall_s", {})[f"recipes {key}"] = round(time.time() - started)
        self.save()

    def levers(self, dataset: str) -> None:
        """Each of LEVERS with the defaults' generator at 10%, on the validation split (LEVER_SEEDS seeds)."""
        tuned = self.tune(dataset)
        done = self.results.setdefault(f"levers {self.key(dataset, TUNE_FRACTION)}", {})
        base = self.base(dataset)
        x, y, c = self.load(f"{base}:train[:{TUNE_FRACTION}%]")
        val = self.load(f"{base}:{VALIDATION}")[:2]
        policy = self.policies(dataset)[tuned["baseline"]]
        sx, sy = self.synthetic(self.generator(dataset, TUNE_FRACTION), self.args.num_synthetic)
        soft = {}
        for name, lever in LEVERS.items():
            if name in done:
                continue
            recipe = {"policy": policy}
            if lever.get("labels") == "hard":
                recipe["synthetic"] = (sx, sy)
            elif lever.get("labels") == "teacher":
                steps = self.args.steps * lever.get("teacher_steps", 1)
                if steps not in soft:
                    teacher = self.teacher(dataset, TUNE_FRACTION, tuned["baseline"], x, y, c, steps=steps)
                    soft[steps] = teacher.probabilities(sx)
                    done[f"teacher {steps} steps"] = float((teacher.probabilities(val[0]).argmax(1) == val[1]).mean())
                recipe["synthetic"] = (sx, soft[steps])
            if "synthetic" in recipe:
                recipe["synthetic_fraction"] = lever.get("share", tuned["synthetic_share"])
                recipe["synthetic_first"] = lever.get("synthetic_first", 0.0)
            runs = self.accuracy((x, y), val, c, range(LEVER_SEEDS), **recipe)
            done[name] = {"mean": float(np.mean(runs)), "std": float(np.std(runs)), "runs": runs}
            log(f"levers {dataset}: {name} validation {np.mean(runs):.4f} +- {np.std(runs):.4f}")
            self.save()

    def quality(self, dataset: str, fraction: int) -> None:
        """Memorization and GAN-test of a generator, by `dcgan evaluate`."""
        key = self.key(dataset, fraction)
        if key in self.results.get("quality", {}):
            return
        base, job = self.base(dataset), self.generator(dataset, fraction)
        report = os.path.join(job, "eval", "report.json")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "trainer",
                "evaluate",
                f"--real={base}:test",
                f"--synthetic={job}",
                f"--report={report}",
                "--downstream=false",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        written = json.load(open(report))
        self.results.setdefault("quality", {})[key] = {
            "memorization": written["memorization"].get("rate_either"),
            "gan_test": written["gan_test"].get("accuracy"),
            "fid": written["fidelity"]["fid"],
            "kid": written["fidelity"]["kid"],
        }
        self.save()


def tables(results: dict) -> str:
    lines = []
    for key, runs in results.get("runs", {}).items():
        if not all(r in runs for r in RECIPES):
            continue
        dataset = key.split()[0]
        tuned = results.get(f"tuning {dataset}", {})
        lines += [
            f"### {key} ({runs['train_images']} real training images)",
            "",
            "| recipe | test accuracy (mean +- std) |",
            "| --- | --- |",
        ]
        strongest = max(runs["idg"]["mean"], runs["modern"]["mean"])
        for recipe in RECIPES:
            r = runs[recipe]
            note = {"idg": tuned.get("idg", ""), "modern": tuned.get("modern", "")}.get(recipe, "")
            delta = (
                f" ({100 * (r['mean'] - strongest):+.1f} pts vs strongest baseline)"
                if recipe.endswith("distilled") or recipe == "synthetic_hard"
                else ""
            )
            name = f"{recipe} ({note})" if note else recipe
            lines.append(f"| {name} | {r['mean']:.4f} +- {r['std']:.4f}{delta} |")
        quality = results.get("quality", {}).get(key)
        lines += [
            "",
            f"teacher ensemble (5 classifiers): {runs['teacher_ensemble_test']:.4f}; "
            f"teacher agrees with the conditioning label on {runs['synthetic_teacher_agreement']:.1%} "
            "of synthetic images",
        ]
        if quality:
            lines.append(
                f"generator: memorization {quality['memorization']:.1%}, GAN-test {quality['gan_test']:.1%}, "
                f"FID {quality['fid']:.2f} (small-classifier features)"
            )
        lines.append("")
    return "\n".join(lines)


def variants_table(results: dict) -> str:
    """One row per generator (defaults and each --variant) at each size where a variant ran.

    Choose between them by the validation column (the distilled recipe at its tuned share, on
    NAME:train[80%:]); the test columns are reported for every row, chosen or not."""
    runs, quality = results.get("runs", {}), results.get("quality", {})
    sizes = sorted({" ".join(k.split()[:2]) for k in runs if len(k.split()) == 3})
    lines = []
    for size in sizes:
        lines += [
            f"### generator variants, {size}",
            "",
            "| generator | validation (share) | GAN-test | memorization | FID | teacher agrees | synthetic_hard "
            "| synthetic_distilled | best vs strongest (pts) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key in sorted(k for k in runs if " ".join(k.split()[:2]) == size):
            r, q = runs[key], quality.get(key, {})
            if not all(x in r for x in VARIANT_RECIPES):
                continue
            strongest = max(r["idg"]["mean"], r["modern"]["mean"])
            best = max(r["synthetic_hard"]["mean"], r["synthetic_distilled"]["mean"])
            name = key.split()[2] if len(key.split()) == 3 else "defaults"
            tuned = results.get(f"tuning {key.split()[0]}" + (f" {name}" if name != "defaults" else ""), {})
            share = tuned.get("synthetic_share")
            validation = tuned.get("synthetic_share_validation", {}).get(str(share))
            cells = [f"{validation:.4f} ({share})" if validation is not None else ""]
            cells += [f"{q[m]:.1%}" if m in q else "" for m in ("gan_test", "memorization")]
            cells.append(f"{q['fid']:.2f}" if "fid" in q else "")
            cells.append(f"{r['synthetic_teacher_agreement']:.1%}" if "synthetic_teacher_agreement" in r else "")
            hard, distilled = r["synthetic_hard"], r["synthetic_distilled"]
            lines.append(
                f"| {name} | {' | '.join(cells)} | {hard['mean']:.4f} +- {hard['std']:.4f}"
                f" | {distilled['mean']:.4f} +- {distilled['std']:.4f} | {100 * (best - strongest):+.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def levers_table(results: dict) -> str:
    """LEVERS side by side, a column per levers run ("NAME 10%", plus the variant if any): validation
    accuracy and the difference to the baseline alone."""
    columns = [k.removeprefix("levers ") for k in results if k.startswith("levers ")]
    if not columns:
        return ""
    lines = [f"### ways of using the synthetic images (validation split, {LEVER_SEEDS} seeds)", ""]
    lines.append("| lever | " + " | ".join(columns) + " |")
    lines.append("| --- |" + " ---: |" * len(columns))
    for name in LEVERS:
        cells = []
        for column in columns:
            measured = results[f"levers {column}"]
            r, base = measured.get(name), measured.get(next(iter(LEVERS)))
            if r is None:
                cells.append("")
                continue
            delta = f" ({100 * (r['mean'] - base['mean']):+.1f})" if base and r is not base else ""
            cells.append(f"{r['mean']:.4f} +- {r['std']:.4f}{delta}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    teachers = [
        f"{column}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in results[f"levers {column}"].items() if k.startswith("teacher"))
        for column in columns
    ]
    lines += ["", "teacher ensembles on validation: " + "; ".join(teachers), ""]
    return "\n".join(lines)


def curve(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({k.split()[0] for k in results.get("runs", {})})
    fig, axes = plt.subplots(1, max(1, len(datasets)), figsize=(6 * max(1, len(datasets)), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        points = sorted(
            (v["train_images"], v)
            for k, v in results["runs"].items()
            if k.split()[0] == dataset and len(k.split()) == 2 and all(r in v for r in RECIPES)  # defaults only
        )
        for recipe in RECIPES:
            n = [p[0] for p in points]
            mean = np.array([p[1][recipe]["mean"] for p in points])
            std = np.array([p[1][recipe]["std"] for p in points])
            ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=recipe)
        ax.set_xscale("log")
        ax.set_xlabel("real training images")
        ax.set_ylabel("test accuracy")
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/usefulness", help="where generators and results go (resumable)")
    parser.add_argument("--datasets", default="digits,shapes", help="comma-separated: digits, shapes")
    parser.add_argument("--fractions", default="5,10,25,50,100", help="percent of the training split")
    parser.add_argument("--seeds", type=int, default=5, help="classifier seeds per recipe")
    parser.add_argument("--steps", type=int, default=1000, help="classifier training steps (every recipe)")
    parser.add_argument("--gan_steps", type=int, default=3000, help="generator training steps")
    parser.add_argument("--num_synthetic", type=int, default=5000, help="synthetic images per generator")
    parser.add_argument(
        "--gan_flags", default="", help="extra `dcgan train` flags for the generators, e.g. '--class_loss_weight=1'"
    )
    parser.add_argument("--variant", default="", help="a name for --gan_flags (job dirs and result rows carry it)")
    parser.add_argument("--skip_quality", action="store_true", help="no `dcgan evaluate` of the generators")
    parser.add_argument(
        "--levers", action="store_true", help="only the recipe levers (LEVERS), at 10%%, on the validation split"
    )
    args = parser.parse_args()
    experiment = Experiment(args)
    started = time.time()
    for dataset in args.datasets.split(","):
        if args.levers:
            experiment.levers(dataset)
            continue
        for fraction in [int(f) for f in args.fractions.split(",")]:
            experiment.measure(dataset, fraction)
            if not args.skip_quality:
                experiment.quality(dataset, fraction)
    experiment.results.setdefault("wall_s", {})[f"invocation {time.strftime('%Y-%m-%d %H:%M')}"] = round(
        time.time() - started
    )
    experiment.save()
    with open(os.path.join(experiment.work, "usefulness.md"), "w") as f:
        f.write(
            "\n".join(
                [tables(experiment.results), variants_table(experiment.results), levers_table(experiment.results)]
            )
        )
    curve(experiment.results, os.path.join(experiment.work, "usefulness-curve.png"))
    print(tables(experiment.results))


if __name__ == "__main__":
    main()
