"""A baseline declared by name, scored on a usefulness run's training set with the run's own seeds.

    python -m experiments.usefulness --work=runs/useful5050 --datasets=digits --fractions=40 \
        --regime=minority --minority_ratio=10 --generators=3 --seeds=4 --tune_seeds=1
    python -m experiments.declared_baseline --work=runs/useful5050 --fraction=40 --minority_ratio=10 \
        --policy=trivial_augment --balance=reweight

The usefulness experiment compares real + synthetic images with the augmentation its validation
split chose. When that choice looks doubtful (a handful of validation images decide it), a second
baseline can be declared, in writing and before any test score is read, and measured here: the
recipe given by --policy/--mix/--balance, trained on the same real training images (rebuilt as the
run built them and checked against the .npz beside each generator), with the same classifier seeds
(100g + k for generator g) and step count, scored once on the test split by the run's metric
(balanced accuracy on a minority run, else accuracy). Nothing is tuned here.

Writes WORK/declared.json ({recipe: {gK: [score per seed]}}, resumable) and prints, per generator and
pooled, the run's `with_synthetic` minus this baseline with its 95% interval.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from experiments import usefulness as experiment  # sets TensorFlow's log level and the allocator first
from trainer import stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    experiment.add_training_set_flags(parser)
    parser.add_argument("--policy", required=True, help="a policy name of trainer.downstream.POLICIES")
    parser.add_argument("--mix", default="none", help="none, mixup or cutmix")
    parser.add_argument("--balance", default="none", help="none, resample or reweight")
    parser.add_argument("--steps", type=int, default=1500, help="judge training steps (as the run)")
    parser.add_argument("--generators", type=int, default=3, help="the run's generators whose seeds to use")
    parser.add_argument("--seeds", type=int, default=4, help="the run's --seeds (seed 100g + k)")
    parser.add_argument("--tune_folds", type=int, default=1, help="the run's --tune_folds (whose scores to pair)")
    args = parser.parse_args()

    from trainer import classifier, downstream

    if args.policy not in downstream.POLICIES:
        raise SystemExit(f"--policy: one of {', '.join(downstream.POLICIES)}")
    if args.mix not in classifier.MIXES or args.balance not in classifier.BALANCES:
        raise SystemExit(
            f"--mix: one of {', '.join(classifier.MIXES)}; --balance: one of {', '.join(classifier.BALANCES)}"
        )
    if not os.path.isfile(os.path.join(args.work, "results.json")):
        raise SystemExit(f"{args.work}: no results.json; run experiments.usefulness there first")
    run_args = argparse.Namespace(
        work=args.work, minority_ratio=args.minority_ratio, variant="", tune_folds=args.tune_folds
    )
    runner = experiment.Experiment(run_args)
    training = runner.training_set(args.dataset, args.fraction, args.regime)
    recipe = classifier.Recipe(downstream.POLICIES[args.policy](), mix=args.mix, balance=args.balance)
    name = f"{args.policy} + {args.mix} + {args.balance}"
    path = os.path.join(args.work, "declared.json")
    done = json.load(open(path)) if os.path.isfile(path) else {}
    runs = (
        json.load(open(os.path.join(args.work, "results.json"))).get("runs", {}).get(runner.results_key(training), {})
    )
    test_x, test_y = training.test
    for g in range(args.generators):
        job = runner.job_dir(training, g)
        if os.path.isfile(job + ".npz"):
            runner.check_trained_on(training, job)
        if f"g{g}" in done.get(name, {}):
            continue
        seeds = [100 * g + k for k in range(args.seeds)]
        spec = classifier.ClassifierSpec(steps=args.steps)
        models = classifier.train_many(training.images, training.labels, training.num_classes, spec, seeds, recipe)
        if args.regime == "minority":
            scores = [classifier.balanced_accuracy(m, test_x, test_y, training.num_classes) for m in models]
        else:
            scores = [classifier.accuracy(m, test_x, test_y) for m in models]
        done.setdefault(name, {})[f"g{g}"] = scores
        with open(path + ".tmp", "w") as f:
            json.dump(done, f, indent=1)
        os.replace(path + ".tmp", path)
        experiment.log(f"{name}, generator {g}'s seeds: {np.mean(scores):.4f}")
    pairs = [(done[name][g], run["recipes"]["with_synthetic"]["runs"]) for g, run in runs.items() if g in done[name]]
    for g, (baseline, synthetic) in zip([g for g in runs if g in done[name]], pairs):
        print(f"{g}: with_synthetic - {name}: {stats.paired(baseline, synthetic).points()}")
    if pairs:
        pooled = stats.paired([x for a, _ in pairs for x in a], [x for _, b in pairs for x in b])
        print(f"pooled over {len(pairs)} generator(s): with_synthetic - {name}: {pooled.points()}")


if __name__ == "__main__":
    main()
