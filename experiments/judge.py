"""Is the judge competent? Its accuracy beside a HOG + logistic-regression reference, on the same split.

    python -m pip install -e . --group experiments  # pip >= 25.1
    python -m experiments.judge --work=runs/judge --dataset=shapes --fraction=10 --seeds=2 \
        --policies=none,dihedral_trivial --steps=1500

The judge (trainer/classifier.py) is trained on NAME:train[:F%] with each
policy and seed and scored on a validation split (NAME:train[80%:], disjoint
from training up to 80%) and on NAME:test. Nothing is chosen here, so the test
column is a report, not a selection. The reference is HOG features (9
orientations, 4x4-pixel cells) + logistic regression, without and with the 8
rotated/flipped copies of every training image: a judge that cannot beat it is
too weak to tell whether synthetic images help. Appends to WORK/judge.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainer import startup  # noqa: E402

startup.prepare()  # as `dcgan` does, before TensorFlow loads: the allocator and the CPU kernels

import numpy as np  # noqa: E402


def hog_reference(train: tuple, evaluate: dict, dihedral: bool) -> dict:
    from skimage.feature import hog
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def features(images):
        gray = images.astype(np.float32).mean(-1) if images.shape[-1] == 3 else images[..., 0].astype(np.float32)
        return np.stack([hog(g, orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2)) for g in gray])

    x, y = train
    if dihedral:
        copies = [np.rot90(x, k, axes=(1, 2)) for k in range(4)]
        copies += [c[:, :, ::-1] for c in copies]
        x, y = np.concatenate(copies), np.tile(y, 8)
    scaler = StandardScaler().fit(features(x))
    model = LogisticRegression(max_iter=2000, C=0.1).fit(scaler.transform(features(x)), y)
    return {name: float(model.score(scaler.transform(features(xs)), ys)) for name, (xs, ys) in evaluate.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/judge")
    parser.add_argument("--dataset", default="shapes", help="digits or shapes")
    parser.add_argument("--fraction", type=int, default=10, help="percent of the training split")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--policies", default="none,dihedral_trivial", help="names in trainer.downstream.POLICIES")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--weight_decay", type=float, default=None, help="AdamW's (default: ClassifierSpec's)")
    parser.add_argument("--width", type=int, default=None, help="first-stage filters (default: ClassifierSpec's)")
    args = parser.parse_args()

    from experiments.usefulness import Experiment
    from trainer import classifier, data, downstream

    os.makedirs(args.work, exist_ok=True)
    base = Experiment(argparse.Namespace(work=args.work)).base(args.dataset)
    train = data.load_source(f"{base}:train[:{args.fraction}%]", 32)
    evaluate = {}
    for name, split in (("validation", "train[80%:]"), ("test", "test")):
        held_out = data.load_source(f"{base}:{split}", 32)
        evaluate[name] = (held_out.images, np.asarray(held_out.labels))
    x, y = train.images, np.asarray(train.labels)
    rows = {
        "HOG + logistic regression": hog_reference((x, y), evaluate, dihedral=False),
        "HOG + logistic regression, 8 dihedral copies": hog_reference((x, y), evaluate, dihedral=True),
    }
    changes = {k: v for k, v in (("weight_decay", args.weight_decay), ("width", args.width)) if v is not None}
    spec = classifier.ClassifierSpec(steps=args.steps, **changes)
    label = ", ".join([f"{args.steps} steps", *(f"{k} {v}" for k, v in changes.items())])
    for policy in args.policies.split(","):
        scores = {name: [] for name in evaluate}
        started = time.time()
        for seed in range(args.seeds):
            model = classifier.train(
                x, y, train.num_classes, spec, seed, classifier.Recipe(downstream.POLICIES[policy]())
            )
            for name, (images, labels) in evaluate.items():
                scores[name].append(classifier.accuracy(model, images, labels))
        rows[f"judge, {policy}, {label}"] = {
            **{name: float(np.mean(v)) for name, v in scores.items()},
            "runs": scores,
            "seconds_per_training": round((time.time() - started) / args.seeds),
        }
        print(policy, label, rows[f"judge, {policy}, {label}"], flush=True)
    key = f"{args.dataset} {args.fraction}% ({len(y)} training images)"
    path = os.path.join(args.work, "judge.json")
    results = json.load(open(path)) if os.path.isfile(path) else {}
    results.setdefault(key, {}).update(rows)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"| {key} | validation | test |\n| --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['validation']:.4f} | {row['test']:.4f} |")


if __name__ == "__main__":
    main()
