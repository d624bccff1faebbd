"""Renders the example specs in launch/vertex/ and launch/k8s/ from `dcgan launch` itself.

    python launch/render_examples.py        # rewrite them after changing trainer/launch.py

tests/test_launch.py checks the committed files equal a fresh rendering and
that each validates (Vertex AI's CustomJobSpec, kubernetes-validate).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from trainer import launch  # noqa: E402

IMAGE = "us-central1-docker.pkg.dev/my-project/dcgan/dcgan:v1"
# (file, target, flags)
EXAMPLES = [
    (
        "vertex/train-1vm-8xh100.json",
        "vertex",
        dict(
            job="train",
            image=IMAGE,
            gpus=8,
            accelerator="NVIDIA_H100_80GB",
            job_dir="gs://my-bucket/runs/digits",
            steps=20000,
            mixed_precision="float16",
            batch_size=512,
        ),
    ),
    (
        "vertex/train-4workers-8xh100-spot.json",
        "vertex",
        dict(
            job="train",
            image=IMAGE,
            workers=4,
            gpus=8,
            accelerator="NVIDIA_H100_80GB",
            spot=True,
            job_dir="gs://my-bucket/runs/big",
            batch_size=2048,
            mixed_precision="float16",
            service_account="dcgan@my-project.iam.gserviceaccount.com",
            vertex_tensorboard="projects/my-project/locations/us-central1/tensorboards/123",
        ),
    ),
    (
        "vertex/sample-16tasks-l4.json",
        "vertex",
        dict(
            job="sample",
            image=IMAGE,
            tasks=16,
            gpus=1,
            accelerator="NVIDIA_L4",
            generator="gs://my-bucket/runs/digits",
            output="gs://my-bucket/synth/digits-1m",
            num_images=1_000_000,
            rotation_range=10,
        ),
    ),
    (
        "k8s/train-2workers-4xl4.yaml",
        "k8s",
        dict(
            job="train",
            image=IMAGE,
            workers=2,
            gpus=4,
            accelerator="NVIDIA_L4",
            job_dir="gs://my-bucket/runs/k8s",
            service_account="dcgan-gcs",
            name="dcgan-train-digits",
        ),
    ),
    (
        "k8s/sample-64tasks-spot.yaml",
        "k8s",
        dict(
            job="sample",
            image=IMAGE,
            tasks=64,
            parallelism=16,
            gpus=1,
            accelerator="NVIDIA_L4",
            spot=True,
            generator="gs://my-bucket/runs/digits",
            output="gs://my-bucket/synth/digits-10m",
            num_images=10_000_000,
            service_account="dcgan-gcs",
            name="dcgan-sample-digits",
        ),
    ),
]


def render(target: str, flags: dict) -> str:
    planned = launch.plan(target, dict(flags))
    (content,) = [c for n, c in planned.files.items() if n.endswith((".json", ".yaml"))]
    return content


if __name__ == "__main__":
    for path, target, flags in EXAMPLES:
        with open(os.path.join(HERE, path), "w") as f:
            f.write(render(target, flags))
        print("wrote", path)
