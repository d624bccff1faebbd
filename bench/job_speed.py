"""Whole jobs as users run them: `dcgan augment` and `dcgan sample` vs the plain scripts they replace.

    python -m bench jobs [--augment_images=300000] [--sample_images=60000] [--repeats=3] [--which=augment,sample]

Every run is a fresh process timed from launch to exit (TensorFlow import,
model load, compile, encoding, writing, publish and manifest included), the
variants round-robin, `--repeats` rounds, medians compared.

- augment: `dcgan augment` (digits 32x32x1, its default augmentation) in each
  --image_format, vs bench/peers/idg_augment_job.py: Keras' ImageDataGenerator
  with the same parameters, tf.io.encode_png, tf.train.Example, TFRecordWriter.
- sample: `dcgan sample` of a 32x32x1 conditional generator (random weights:
  the same cost as a trained one), float32 and bfloat16, PNG and raw, vs
  bench/peers/keras_sample_job.py: load generator.keras, predict in batches,
  tf.io.encode_png, tf.train.Example, TFRecordWriter.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from bench import common

DEFAULTS = {"augment_images": 300_000, "sample_images": 60_000, "repeats": 3, "which": "augment,sample"}


def augment_variants(out: str, images: int) -> dict[str, list[str]]:
    dcgan = [
        sys.executable,
        "-m",
        "trainer",
        "augment",
        f"--output={out}/ours",
        f"--num_images={images}",
        "--progress=false",
    ]
    return {
        "ImageDataGenerator script": [sys.executable, "-m", "bench.peers.idg_augment_job", f"{out}/peer", str(images)],
        "dcgan augment (png)": dcgan,
        "dcgan augment (jpeg)": dcgan + ["--image_format=jpeg"],
        "dcgan augment (raw)": dcgan + ["--image_format=raw"],
    }


def sample_variants(out: str, images: int, job: str) -> dict[str, list[str]]:
    dcgan = [
        sys.executable,
        "-m",
        "trainer",
        "sample",
        f"--generator={job}",
        f"--output={out}/ours",
        f"--num_images={images}",
        "--progress=false",
    ]
    return {
        "Keras script": [sys.executable, "-m", "bench.peers.keras_sample_job", job, f"{out}/peer", str(images)],
        "dcgan sample (png)": dcgan,
        "dcgan sample (png, bfloat16)": dcgan + ["--mixed_precision=bfloat16"],
        "dcgan sample (raw, bfloat16)": dcgan + ["--mixed_precision=bfloat16", "--image_format=raw"],
    }


def export_generator(job: str) -> None:
    """A 32x32x1 conditional generator with random weights, exported as `dcgan train` does."""
    code = (
        "from trainer import command_line, export, models, storage, train_plan\n"
        f"c = command_line.resolve('train', {{'job_dir': {job!r}}})\n"
        "g = models.build_generator(32, 1, c.latent_dim, c.width, 10)\n"
        f"export.save(storage.open_store({job!r}), g, train_plan.TrainPlan.of(c, 1, 10), 0)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )


def time_jobs(make_variants, out: str, repeats: int) -> dict[str, list[float]]:
    """Seconds of each variant's whole process, round-robin; every output is deleted after its run."""
    seconds: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name, args in make_variants(out).items():
            started = time.perf_counter()
            done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"{name} failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
            seconds.setdefault(name, []).append(elapsed)
            shutil.rmtree(out, ignore_errors=True)
    return seconds


def report(title: str, images: int, seconds: dict[str, list[float]], baseline: str) -> dict:
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    print(f"\n{title}: {images} images, whole processes, median of {len(next(iter(seconds.values())))}")
    print(f"{'variant':<32} {'seconds':>8} {'img/s':>8} {'speed-up':>9}")
    for name, s in medians.items():
        print(f"{name:<32} {s:>8.1f} {images / s:>8.0f} {medians[baseline] / s:>8.2f}x")
    return {
        "images": images,
        "seconds": seconds,
        "median_seconds": medians,
        "baseline": baseline,
        "speedup": {name: medians[baseline] / s for name, s in medians.items()},
    }


def main(argv):
    flags = common.parse_flags(argv, DEFAULTS)
    which = flags["which"].split(",")
    work = tempfile.mkdtemp(prefix="dcgan-bench-jobs-")
    # Sections not run this time (--which) keep their last results.
    previous = os.path.join(common.RESULTS, "jobs.json")
    result = {}
    if os.path.isfile(previous):
        with open(previous) as f:
            result = {k: v for k, v in json.load(f).items() if k in ("augment", "sample")}
    result.update({"benchmark": "jobs", "flags": flags})
    try:
        if "augment" in which:
            n = flags["augment_images"]
            seconds = time_jobs(lambda out: augment_variants(out, n), os.path.join(work, "out"), flags["repeats"])
            result["augment"] = report("augment", n, seconds, "ImageDataGenerator script")
        if "sample" in which:
            job = os.path.join(work, "generator")
            export_generator(job)
            n = flags["sample_images"]
            seconds = time_jobs(lambda out: sample_variants(out, n, job), os.path.join(work, "out"), flags["repeats"])
            result["sample"] = report("sample", n, seconds, "Keras script")
        result["machine"] = common.machine()
        path = common.write("jobs", result)
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
