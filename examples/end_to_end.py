"""From images to a classifier, end to end: train a generator, sample shards, mix them into `model.fit`, evaluate.

    python3 -m pip install -e .
    python3 examples/end_to_end.py --work=runs/example            # ~40 min on a 2-core CPU (3000 steps)
    python3 examples/end_to_end.py --work=runs/example --quick    # ~3 min: tiny budgets, to see it run

Every step is what a user types or writes; the commands are printed before
they run. tests/test_examples.py runs `--quick` in CI so this file cannot rot.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys


def dcgan(*args: str) -> None:
    """Runs one `dcgan` command as a user would (the module form works without the console script)."""
    command = [sys.executable, "-m", "trainer", *args]
    print("$ dcgan " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/example", help="a folder for the job dir, shards and report")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: seconds per step, numbers meaningless")
    args = parser.parse_args()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    job, synth, report = f"{work}/digits10", f"{work}/synth", f"{work}/evaluate/report.json"

    # 1. A class-conditional generator on 10% of the bundled digits (digits:test stays unseen).
    budget = ["--preset=smoke"] if args.quick else []
    dcgan("train", f"--job_dir={job}", "--dataset=digits:train[:10%]", "--progress=false", *budget)

    # 2. Synthetic images as sharded TFRecords, 10 classes balanced; `--verify` re-checks what was written.
    dcgan("sample", f"--generator={job}", f"--output={synth}", f"--num_images={500 if args.quick else 20000}")
    dcgan("sample", f"--output={synth}", "--verify")

    # 3. Real and synthetic images mixed per batch, classic augmentation on both, into a plain Keras model.
    import keras

    from trainer import data, downstream, shards

    real = data.load_source("digits:train[:10%]", 32)
    ds = shards.mix(
        (real.images, real.labels),
        synth,
        num_classes=10,
        synthetic_fraction=0.5,
        augmentation=downstream.classic_policy(0.5),
        batch_size=64,
    )
    model = keras.Sequential(
        [
            keras.Input((32, 32, 1)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(ds, steps_per_epoch=10 if args.quick else 100, epochs=2 if args.quick else 10, verbose=2)
    test = data.load_source("digits:test", 32)
    _, accuracy = model.evaluate(test.images.astype("float32"), keras.utils.to_categorical(test.labels, 10), verbose=0)
    print(f"held-out accuracy of the mixed-data model: {accuracy:.3f}")

    # 4. Does the generator help more than tuned augmentation? The verdict, a report page and a model card.
    small = ["--num_samples=100", "--feature_steps=30", "--downstream_steps=20", "--seeds=1", "--kid_subsets=3"]
    small += ["--policies=none", "--mixes=", "--shares=0.5"]
    dcgan(
        "evaluate",
        "--real=digits:test",
        f"--synthetic={job}",
        "--train_data=digits:train[:10%]",
        f"--report={report}",
        *(small if args.quick else []),
    )
    print(f"open {os.path.splitext(report)[0]}.html")


if __name__ == "__main__":
    main()
