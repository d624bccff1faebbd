"""Where do the minority regime's synthetic images fall short: wrong labels, or too little spread?

    python -m experiments.usefulness --work=runs/useful --datasets=digits --regime=minority --generators=3 --seeds=4
    python -m experiments.pool --work=runs/useful --dataset=digits --generators=3

Reads the generators the usefulness experiment trained in WORK (their job dirs;
the .npz beside each must hold the same training images this rebuilds from
--dataset, --fraction, --minority_ratio, --variant) and measures, per class:

  agreement   the share of `--labels=fill` samples that a judge trained on the real
              training images (the tuned baseline stored in WORK/results.json)
              gives their conditioning label, and its mean probability of that
              label: label noise a classifier filter could remove (generator 0 only;
              one judge training)
  spread      mean pairwise pixel distance between --per_class samples of the class,
              over the same for the class's real test images (1.0: as varied as real)
  nearness    mean distance from a sample to the nearest training image of its class,
              over the same for the class's real test images (low: samples hug the
              few training images)

Nothing is tuned or chosen here; the test split only provides the real spread.
Prints one table per generator and writes WORK/pool.json.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from experiments import usefulness as experiment  # sets TensorFlow's log level and the allocator first


def pairwise_mean(images: np.ndarray) -> float:
    """Mean Euclidean pixel distance over distinct pairs of `images` [N, ...] (N >= 2)."""
    flat = images.reshape(len(images), -1).astype(np.float64)
    squares = (flat**2).sum(1)
    distances = np.sqrt(np.maximum(squares[:, None] + squares[None] - 2 * flat @ flat.T, 0))
    return float(distances[np.triu_indices(len(flat), 1)].mean())


def nearest_mean(images: np.ndarray, references: np.ndarray) -> float:
    """Mean over `images` of the Euclidean pixel distance to the nearest of `references`."""
    a = images.reshape(len(images), -1).astype(np.float64)
    b = references.reshape(len(references), -1).astype(np.float64)
    squares = (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T
    return float(np.sqrt(np.maximum(squares, 0)).min(1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/useful", help="the usefulness experiment's work dir")
    parser.add_argument("--dataset", default="digits", choices=("digits", "shapes"))
    parser.add_argument("--fraction", type=int, default=10)
    parser.add_argument("--generators", type=int, default=3)
    parser.add_argument("--per_class", type=int, default=300, help="samples and test images per class compared")
    parser.add_argument("--steps", type=int, default=1500, help="the agreement judge's training steps")
    parser.add_argument("--minority_ratio", type=int, default=5, help="as the usefulness run was given")
    parser.add_argument("--variant", default="", help="as the usefulness run was given")
    args = parser.parse_args()
    from trainer import classifier, usefulness

    runner = experiment.Experiment(
        argparse.Namespace(
            work=args.work,
            steps=args.steps,
            seeds=1,
            tune_seeds=1,
            tune_folds=1,
            variant=args.variant,
            minority_ratio=args.minority_ratio,
            num_synthetic=5000,
        )
    )
    training = runner.training_set(args.dataset, args.fraction, "minority")
    tuning = runner.results.get("tuning", {}).get(runner.results_key(training))
    if not tuning:
        raise SystemExit(f"{args.work}: no tuned baseline for {training.key!r}; run experiments.usefulness first")
    test_x, test_y = training.test
    out = {}
    for g in range(args.generators):
        job = runner.job_dir(training, g)
        if not os.path.isfile(os.path.join(job, "export", "generator.keras")) or not os.path.isfile(job + ".npz"):
            raise SystemExit(f"{job}: no trained generator (and its .npz) there; run experiments.usefulness first")
        runner.check_trained_on(training, job)  # the images the generator saw: they must be these
        pool_x, pool_y = runner.synthetic(job, args.per_class * training.num_classes, labels="balanced")
        rows = {}
        for k in range(training.num_classes):
            mine, real = pool_x[pool_y == k][: args.per_class], test_x[test_y == k][: args.per_class]
            train_k = training.images[training.labels == k]
            rows[k] = {
                "train_images": int(len(train_k)),
                "spread": pairwise_mean(mine) / pairwise_mean(real),
                "nearness": nearest_mean(mine, train_k) / nearest_mean(real, train_k),
            }
        if g == 0:
            fill_x, fill_y = runner.synthetic(job, runner.args.num_synthetic, labels="fill")
            baseline = usefulness.Baseline(**tuning)
            judge = classifier.train(
                training.images, training.labels, training.num_classes,
                classifier.ClassifierSpec(steps=args.steps), seed=1, recipe=baseline.recipe(),
            )  # fmt: skip
            logits = classifier.predict(judge, fill_x)
            probabilities = np.exp(logits - logits.max(1, keepdims=True))
            probabilities /= probabilities.sum(1, keepdims=True)
            for k in range(training.num_classes):
                picked = fill_y == k
                if picked.any():
                    rows[k]["fill_samples"] = int(picked.sum())
                    rows[k]["agreement"] = float(np.mean(logits[picked].argmax(1) == k))
                    rows[k]["confidence"] = float(probabilities[picked, k].mean())
        out[f"g{g}"] = rows
        print(f"\ngenerator {g}: class, real training images, spread, nearness[, fill samples, agreement, confidence]")
        for k, row in rows.items():
            extra = (
                f"  {row['fill_samples']:5d} {row['agreement']:.3f} {row['confidence']:.2f}"
                if "agreement" in row
                else ""
            )
            print(f"{k:5d} {row['train_images']:5d} {row['spread']:.2f} {row['nearness']:.2f}{extra}")
    with open(os.path.join(runner.work, "pool.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
