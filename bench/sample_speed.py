"""Sampler throughput end to end vs the generator's forward pass alone, and 1 vs 2 tasks.

    python -m bench sample [--resolution=32] [--channels=1] [--width=1.0] [--images=2048] [--batch=256]
                           [--precision=off|bfloat16|float16] [--tasks=true]

A generator with random weights (same architecture and cost as a trained one)
is exported to a temp job dir. End to end = `dcgan sample` work in-process
(generate, augment, PNG-encode, serialize, write, publish, manifest) with
augmentation on; forward = the same model on the same batch size, z in,
images out, both in --precision. Where the difference goes, two more arms:
"forward + augmentation" (the sampler's compiled producer alone: generator,
augmentation, uint8 out, nothing encoded or written) and "sampler end to end,
no augmentation" (the whole in-process job with the augmentation flags off).
Tasks: 1 process vs 2 processes splitting the same plan (wall
time of the whole job, start-up included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from bench import common  # noqa: E402
from trainer import command_line, export, models, shard_job, sources, storage, train_plan  # noqa: E402
from trainer.augment_params import AugmentParams  # noqa: E402

DEFAULTS = {
    "resolution": 32,
    "channels": 1,
    "width": 1.0,
    "images": 2048,
    "batch": 256,
    "repeats": 3,
    "tasks": True,
    "precision": "off",
}
AUGMENT = {"rotation_range": 10, "zoom_range": "0.1", "width_shift_range": 0.05}


def main(argv):
    tf.get_logger().setLevel("ERROR")
    flags = common.parse_flags(argv, DEFAULTS)
    work = tempfile.mkdtemp(prefix="dcgan-bench-sample-")
    try:
        job = os.path.join(work, "job")
        train_config = command_line.resolve(
            "train", {"job_dir": job, "resolution": flags["resolution"], "width": flags["width"]}
        )
        g = models.build_generator(flags["resolution"], flags["channels"], train_config.latent_dim, flags["width"], 10)
        export.save(storage.open_store(job), g, train_plan.TrainPlan.of(train_config, flags["channels"], 10), 0)
        model, meta = export.load(job)
        model = export.with_precision(model, flags["precision"])

        @tf.function
        def forward(z, labels):
            return model([z, labels], training=False)

        z = tf.random.normal([flags["batch"], meta["latent_dim"]])
        labels = tf.zeros([flags["batch"]], tf.int32)
        steps = max(1, flags["images"] // flags["batch"])

        def run_forward():
            for _ in range(steps):
                forward(z, labels).numpy()

        runs = iter(range(1000))

        def sample_config(augment: dict):
            return command_line.resolve(
                "sample",
                {
                    "generator": job,
                    "output": os.path.join(work, f"out{next(runs)}"),
                    "num_images": steps * flags["batch"],
                    "images_per_shard": 1024,
                    "batch_size": flags["batch"],
                    "progress": False,
                    "mixed_precision": flags["precision"],
                    **augment,
                },
            )

        def run_end_to_end(augment=AUGMENT):
            config = sample_config(augment)
            shard_job.run(config, "sample")
            shutil.rmtree(config.output)

        config = sample_config(AUGMENT)
        produce = shard_job.make_producer(
            sources.generator_source(config.generator_spec()), AugmentParams.create(**config.augmentation()), 0
        )

        def run_produce():
            for i in range(steps):
                [t.numpy() for t in produce(tf.range(i * flags["batch"], (i + 1) * flags["batch"], dtype=tf.int64))]

        run_forward()
        run_end_to_end()  # traces
        run_end_to_end({})
        run_produce()
        images = steps * flags["batch"]
        arms = {
            "generator forward": run_forward,
            "sampler end to end": run_end_to_end,
            "forward + augmentation": run_produce,
            "sampler end to end, no augmentation": lambda: run_end_to_end({}),
        }
        rates, samples = common.compare(arms, images, flags["repeats"])
        ratio = rates["sampler end to end"] / rates["generator forward"]
        print(
            f"sampler, {images} images {flags['resolution']}x{flags['resolution']}x{flags['channels']}, "
            f"width {flags['width']}, batch {flags['batch']}, precision {flags['precision']}, "
            f"median of {flags['repeats']}"
        )
        common.print_rates(rates)
        print(f"ratio end to end / forward: {ratio:.2f} (goal >= 0.9)")
        plain = rates["sampler end to end, no augmentation"] / rates["generator forward"]
        machinery = rates["sampler end to end"] / rates["forward + augmentation"]
        print(f"without augmentation: {plain:.2f}; end to end / (forward + augmentation): {machinery:.2f}")
        result = {
            "benchmark": "sample",
            "flags": flags,
            "machine": common.machine(),
            "images_per_sec": rates,
            "ratio": ratio,
            "ratio_without_augmentation": plain,
            "ratio_to_forward_and_augmentation": machinery,
            "seconds": samples,
        }
        if flags["tasks"]:
            result["tasks"] = compare_tasks(job, work, images * 2, flags)
        suffix = "" if flags["precision"] == "off" else f"-{flags['precision']}"
        path = common.write(f"sample-{flags['resolution']}x{flags['channels']}{suffix}", result)
        print(f"wrote {path}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare_tasks(job, work, images, flags) -> dict:
    """Wall time of the whole job with 1 task vs 2 concurrent tasks (separate processes)."""

    def launch(out, task, tasks):
        args = [
            sys.executable,
            "-m",
            "trainer",
            "sample",
            f"--generator={job}",
            f"--output={out}",
            f"--num_images={images}",
            "--images_per_shard=512",
            f"--batch_size={flags['batch']}",
            f"--task_index={task}",
            f"--num_tasks={tasks}",
            "--progress=false",
        ]
        args += [f"--{k}={v}" for k, v in AUGMENT.items()]
        return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    timings = {}
    for tasks in (1, 2):
        out = os.path.join(work, f"tasks{tasks}")
        started = time.perf_counter()
        procs = [launch(out, t, tasks) for t in range(tasks)]
        if any(p.wait() != 0 for p in procs):
            raise RuntimeError(f"{tasks}-task run failed")
        timings[tasks] = time.perf_counter() - started
    rates = {f"{k} task(s)": images / v for k, v in timings.items()}
    for name, rate in rates.items():
        print(f"{name:<22} {rate:>10.1f} img/s (whole job, {images} images, start-up included)")
    return {"images": images, "seconds": timings, "images_per_sec": rates}
