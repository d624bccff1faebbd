"""Validation scores of named recipes on a usefulness run's training set: a diagnosis of its tuning.

    python -m experiments.validation_probe --work=runs/useful5050 --fraction=40 --minority_ratio=10 \
        --tune_folds=5 --recipes=none+none+reweight,trivial_augment+none+reweight

The usefulness experiment tunes its baseline greedily (the policy first, then a mix, then on
imbalanced data a class balancing). This scores any recipe the way that tuning scores a candidate
(trainer/usefulness.py `Tuning`: the same validation images, one split or --tune_folds folds, the
same tuning seeds, classifier and score), so one can see whether the greedy order passed over a
better combination. Validation images only: it reads no test image. Scores found in the run's
judge-score cache are not trained again. Prints one line per recipe: score and log-likelihood.
"""

from __future__ import annotations

import argparse

from experiments import usefulness as experiment  # sets TensorFlow's log level and the allocator first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    experiment.add_training_set_flags(parser)
    parser.add_argument("--tune_folds", type=int, default=1, help="as there: 1 one split, k folds, 0 auto")
    parser.add_argument("--tune_seeds", type=int, default=1, help="as there")
    parser.add_argument("--steps", type=int, default=1500, help="judge training steps (as the run)")
    parser.add_argument("--recipes", required=True, help="comma-separated POLICY+MIX+BALANCE")
    args = parser.parse_args()

    from trainer import classifier, downstream, usefulness, validation_split

    recipes = []
    for text in args.recipes.split(","):
        parts = text.split("+")
        if (
            len(parts) != 3
            or parts[0] not in downstream.POLICIES
            or parts[1] not in classifier.MIXES
            or parts[2] not in classifier.BALANCES
        ):
            raise SystemExit(
                f"--recipes: {text!r} is not POLICY+MIX+BALANCE (policies: {', '.join(downstream.POLICIES)}; "
                f"mixes: {', '.join(classifier.MIXES)}; balances: {', '.join(classifier.BALANCES)})"
            )
        recipes.append((text, classifier.Recipe(downstream.POLICIES[parts[0]](), mix=parts[1], balance=parts[2])))
    if not 0 <= args.tune_folds <= validation_split.MAX_FOLDS:
        raise SystemExit(f"--tune_folds={args.tune_folds}: 0 (auto), 1 or 2-{validation_split.MAX_FOLDS}")
    args.seeds, args.variant = 1, ""  # the run's spec needs them; only its tuning part is used here
    runner = experiment.Experiment(args)  # the run's score cache; its spec: tuning seeds, folds, judge steps
    training = runner.training_set(args.dataset, args.fraction, args.regime)
    tuning = usefulness.Tuning((training.images, training.labels), training.num_classes, runner.spec(), None,
                               runner.cache)  # fmt: skip
    print(f"{training.key}: {tuning.description}, {args.steps} judge steps, {args.tune_seeds} tuning seed(s)")
    for text, recipe in recipes:
        runs = tuning.tune(recipe)
        score, log_likelihood = (sum(r[i] for r in runs) / len(runs) for i in (0, 1))
        print(f"{text}: validation {tuning.score_name} {score:.4f} (log-likelihood {log_likelihood:.4f})")


if __name__ == "__main__":
    main()
