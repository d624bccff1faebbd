"""`dcgan launch`'s flags (LaunchConfig): a VM, Vertex AI or Kubernetes, and their quantities.

python -c "from trainer.config import LaunchConfig; print(LaunchConfig().listing())"
"""

from __future__ import annotations

import dataclasses
import re

from trainer.config.common import (
    _Printable,
    flag,
)

LAUNCH_TARGETS = ("vm", "vertex", "k8s")


@dataclasses.dataclass(frozen=True)
class LaunchConfig(_Printable):
    """`dcgan launch TARGET`: where and how to run a `train` or `sample` job.

    Flags that are not fields here are the job's own flags (validated as
    `dcgan train`/`dcgan sample` would) and are passed through to it.
    """

    COMMAND = "launch"

    target: str = flag("", "vm, vertex or k8s (the word after `dcgan launch`)")
    job: str = flag("train", "train or sample")
    image: str = flag("", "the container image (built from this repo's Dockerfile)")
    name: str = flag("", "job / VM name; '' derives dcgan-JOB-<hash of the job flags>")
    gpus: int = flag(1, "GPUs per machine (per worker); 0 = CPU only")
    accelerator: str = flag("NVIDIA_L4", "Vertex AI accelerator type (GKE/GCE names derived); an L4 fits a 32-px DCGAN")
    machine_type: str = flag("", "'' picks the machine that carries `gpus` accelerators")
    workers: int = flag(1, "training machines (MultiWorkerMirroredStrategy when > 1)")
    tasks: int = flag(1, "sampler tasks (each writes strided shards)")
    parallelism: int = flag(0, "k8s: sampler pods running at once; 0 = tasks")
    spot: bool = flag(False, "spot / preemptible capacity; jobs resume by themselves")
    max_restarts: int = flag(6, "k8s: pod retries per index; vm: docker restarts")
    project: str = flag("", "gcloud project ('' = gcloud's default)")
    region: str = flag("us-central1", "Vertex AI")
    zone: str = flag("us-central1-a", "Compute Engine VM")
    existing_vm: str = flag("", "vm: run on this existing VM (gcloud compute ssh) instead of creating one")
    vm_image_family: str = flag(
        "common-cu128-ubuntu-2204-nvidia-570",
        "Deep Learning VM image with Docker + NVIDIA driver",
    )
    namespace: str = flag("default", "k8s: the namespace the Job and its ServiceAccount live in")
    cpu: str = flag("4", "k8s: CPU request per pod, a Kubernetes quantity ('4', '3500m')")
    memory: str = flag("16Gi", "k8s: memory request and limit per pod ('16Gi', '64G')")
    cache_size: str = flag(
        "50Gi",
        "k8s: size limit of the pod's scratch volume (an emptyDir at /cache, DCGAN_CACHE) for staged "
        "datasets, streamed shards, teachers and feature models; '' = no limit.",
    )
    service_account: str = flag(
        "",
        "k8s: a Kubernetes SA bound to a GCS-capable Google SA; vertex/vm: a Google SA email",
    )
    vertex_tensorboard: str = flag("", "vertex: projects/P/locations/L/tensorboards/ID (needs --service_account)")
    dry_run: bool = flag(False, "print what would be submitted, submit nothing")

    def validate(self) -> list[str]:
        return self._where_and_what() + self._machines() + self._shape_of_the_job() + self._quantities() + self._name()

    def _where_and_what(self) -> list[str]:
        errors = []
        if self.vertex_tensorboard and not self.service_account:
            errors.append(
                "--vertex_tensorboard needs --service_account (Vertex AI requires one to write to TensorBoard)"
            )
        if self.target not in LAUNCH_TARGETS:
            errors.append(f"launch target {self.target!r} is unknown; use `dcgan launch {'|'.join(LAUNCH_TARGETS)}`")
        if self.job not in ("train", "sample"):
            errors.append(f"--job={self.job!r} must be 'train' or 'sample'")
        if not self.image:
            errors.append(
                "--image is required (e.g. REGION-docker.pkg.dev/PROJECT/repo/dcgan:TAG, built from the Dockerfile)"
            )
        return errors

    def _machines(self) -> list[str]:
        """--gpus and --accelerator agree."""
        if self.gpus < 0:
            return [f"--gpus={self.gpus} must be >= 0"]
        if self.gpus == 0 and self.accelerator:
            return [
                f"--gpus=0 with --accelerator={self.accelerator}: pass --accelerator='' for CPU machines, "
                "or --gpus >= 1"
            ]
        if self.gpus > 0 and not self.accelerator:
            return [f"--gpus={self.gpus} needs an --accelerator type"]
        return []

    def _shape_of_the_job(self) -> list[str]:
        """Counts are in range, and each applies to the job and target it means something for."""
        errors = [
            f"--{name}={getattr(self, name)} must be >= {low}"
            for name, low in (("workers", 1), ("tasks", 1), ("parallelism", 0), ("max_restarts", 0))
            if getattr(self, name) < low
        ]
        if self.job == "sample" and self.workers != 1:
            errors.append("--workers applies to --job=train; a sampler is split with --tasks")
        if self.job == "train" and self.tasks != 1:
            errors.append("--tasks applies to --job=sample; training is spread with --workers and --gpus")
        if self.target == "vm" and (self.workers != 1 or self.tasks != 1):
            errors.append("a vm launch is one machine: use vertex or k8s for --workers/--tasks > 1")
        return errors

    def _quantities(self) -> list[str]:
        """Kubernetes quantities above 0 (--cpu, --memory, --cache_size)."""
        return [
            f"--{option}={value[:40]!r} must be a Kubernetes quantity above 0, e.g. {_EXAMPLES[option]}"
            for option, value, pattern in (
                ("cpu", self.cpu, r"\d+(\.\d+)?m?"),
                ("memory", self.memory, _BYTES),
                ("cache_size", self.cache_size or "1", _BYTES),
            )
            if not re.fullmatch(pattern, value) or float(re.match(r"[\d.]+", value)[0]) == 0
        ]

    def _name(self) -> list[str]:
        if self.name and not _dns_label(self.name):
            return [
                f"--name={self.name!r} must be lowercase letters, digits and '-', start with a letter, "
                "at most 40 characters"
            ]
        return []


_BYTES = r"\d+(\.\d+)?([KMGTPE]i?)?"  # a Kubernetes byte quantity: 16Gi, 64G, 500Mi


_EXAMPLES = {"cpu": "'4' or '3500m'", "memory": "'16Gi'", "cache_size": "'50Gi' ('' = no limit)"}


def _dns_label(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", name))
