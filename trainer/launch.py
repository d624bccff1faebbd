"""`dcgan launch vm|vertex|k8s`: render and submit a `train` or `sample` job.

    dcgan launch vm     --job=train --image=IMG --gpus=8 --job_dir=gs://b/runs/x [--dry_run]
    dcgan launch vertex --job=train --image=IMG --workers=4 --gpus=8 --accelerator=NVIDIA_H100_80GB --job_dir=gs://b/runs/x
    dcgan launch k8s    --job=sample --image=IMG --tasks=64 --parallelism=16 --generator=gs://b/runs/x --output=gs://b/synth

One source of truth: the image, the job's arguments and the resources are
rendered here, from flags, into what each target takes:

  vm      `gcloud compute instances create` with trainer/vm/dcgan-vm.sh (package data) as the
          startup script (or `gcloud compute ssh` onto --existing_vm)
  vertex  a CustomJobSpec for `gcloud ai custom-jobs create --config`
          (workerpool0 = chief, workerpool1 = the other workers or sampler tasks;
          the trainer reads CLUSTER_SPEC, the sampler splits shards by it)
  k8s     an Indexed Job (+ a headless Service for multi-worker training);
          each pod derives TF_CONFIG from JOB_COMPLETION_INDEX and the pods'
          stable host names NAME-<index>.NAME (see distribute.py)

Flags that are not launch flags are the job's own; they are validated as the
job would validate them, before anything is submitted, and passed through.
Everything rendered is written to --spec_dir (default .dcgan-launch/NAME/) and
printed; without --dry_run the standard tool (gcloud, kubectl) is then called.
The three targets share the job's arguments and resources, so they are rendered
side by side in one module (about 430 lines).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from typing import Any

from trainer import command_line
from trainer import config as config_lib
from trainer.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_TRANSIENT, UserError

GRPC_PORT = 2222
VM_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vm", "dcgan-vm.sh")  # package data
# Exit codes of `dcgan` (trainer/errors.py): no retry can fix bad input or divergence;
# storage unreachable after the job's own retries is transient and retried without
# using up the restart budget (each such exit already spent DCGAN_GCS_RETRY_DEADLINE retrying).
PERMANENT_EXIT_CODES = [EXIT_BAD_INPUT, EXIT_DIVERGED]
TRANSIENT_EXIT_CODES = [EXIT_TRANSIENT]
# Seconds between SIGTERM and SIGKILL that a launched job asks for: the step in flight, the final
# checkpoint's write and upload, and the export (Kubernetes terminationGracePeriodSeconds, the VM
# script's docker --stop-timeout). A spot VM's preemption notice is 30 s whatever is asked.
GRACE_PERIOD_S = 120
# Vertex AI has no exit-code retry policy: a worker that exits ends the job, so a
# Vertex job retries storage in-process for longer (seconds) before giving up.
VERTEX_GCS_RETRY_DEADLINE = 3600

# Vertex AI accelerator type -> (GKE/GCE accelerator name, {GPUs per machine: machine type}).
ACCELERATORS: dict[str, tuple[str, dict[int, str]]] = {
    "NVIDIA_H100_80GB": (
        "nvidia-h100-80gb",
        {1: "a3-highgpu-1g", 2: "a3-highgpu-2g", 4: "a3-highgpu-4g", 8: "a3-highgpu-8g"},
    ),
    "NVIDIA_H200_141GB": ("nvidia-h200-141gb", {8: "a3-ultragpu-8g"}),
    "NVIDIA_A100_80GB": (
        "nvidia-a100-80gb",
        {1: "a2-ultragpu-1g", 2: "a2-ultragpu-2g", 4: "a2-ultragpu-4g", 8: "a2-ultragpu-8g"},
    ),
    "NVIDIA_TESLA_A100": (
        "nvidia-tesla-a100",
        {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g", 8: "a2-highgpu-8g", 16: "a2-megagpu-16g"},
    ),
    "NVIDIA_L4": ("nvidia-l4", {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"}),
    "NVIDIA_TESLA_T4": ("nvidia-tesla-t4", {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"}),
    "NVIDIA_TESLA_V100": (
        "nvidia-tesla-v100",
        {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32", 8: "n1-standard-64"},
    ),
}
CPU_MACHINE = "n1-standard-8"


@dataclasses.dataclass(frozen=True)
class Launch:
    """A resolved launch: where (config), what (the job's arguments) and the rendered files and commands."""

    config: config_lib.LaunchConfig
    job_args: list[str]  # e.g. ['train', '--job_dir=gs://...', '--steps=3000']
    name: str
    files: dict[str, str]  # file name in spec_dir -> content
    commands: list[list[str]]  # argv lists, run in order from spec_dir


# ----------------------------------------------------------------------------
# Flags -> configs


def split_flags(flags: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(launch flags, the job's own flags)."""
    launch_fields = {f.name for f in dataclasses.fields(config_lib.LaunchConfig)} | {"spec_dir"}
    if "gpus_per_worker" in flags:  # the spelling for GPUs per machine
        if "gpus" in flags and flags["gpus"] != flags["gpus_per_worker"]:
            raise UserError("--gpus and --gpus_per_worker are the same setting; pass one")
        flags = {**{k: v for k, v in flags.items() if k != "gpus_per_worker"}, "gpus": flags["gpus_per_worker"]}
    return (
        {k: v for k, v in flags.items() if k in launch_fields},
        {k: v for k, v in flags.items() if k not in launch_fields},
    )


def render_arg(name: str, value: Any) -> str:
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"--{name}={value}"


def job_arguments(config: config_lib.LaunchConfig, job_flags: dict[str, Any]) -> list[str]:
    """Validates the job's flags as the job itself would, and checks they make sense in a container."""
    job_config = command_line.resolve(config.job, job_flags)  # typos and bad values fail here, before submitting
    remote = {"train": ("job_dir",), "sample": ("output", "generator")}[config.job]
    for name in remote:
        value = getattr(job_config, name)
        if not value.startswith("gs://"):
            raise UserError(
                f"--{name}={value} must be a gs:// path for a launched job "
                "(a container's own disk is discarded when it ends)"
            )
    split = config_lib.SPLIT_PATTERN.match(getattr(job_config, "dataset", ""))
    dataset_base = split["base"] if split else getattr(job_config, "dataset", "")
    if config.job == "train" and dataset_base != "digits" and not dataset_base.startswith("gs://"):
        raise UserError(f"--dataset={job_config.dataset} is not in the container; use 'digits' or a gs:// path")
    if config.job == "train" and config.gpus > 1 and job_config.devices:
        raise UserError("--devices splits one device for tests; on a multi-GPU machine every GPU is used already")
    return [config.job] + [render_arg(k, getattr(job_config, k)) for k in job_flags]


def resolve(target: str, flags: dict[str, Any]) -> tuple[config_lib.LaunchConfig, list[str], str]:
    launch_flags, job_flags = split_flags(flags)
    launch_flags.pop("spec_dir", None)
    config = command_line.resolve("launch", {**launch_flags, "target": target})
    if config.job == "train" and "job_dir" not in job_flags:
        raise UserError("--job_dir is required (gs://bucket/path: config, checkpoints, logs and export go there)")
    args = job_arguments(config, job_flags)
    if config.gpus and config.accelerator not in ACCELERATORS:
        raise UserError(f"--accelerator={config.accelerator!r} is unknown; choose one of {sorted(ACCELERATORS)}")
    if config.gpus and not config.machine_type and config.gpus not in ACCELERATORS[config.accelerator][1]:
        raise UserError(
            f"--gpus={config.gpus}: {config.accelerator} machines come with "
            f"{sorted(ACCELERATORS[config.accelerator][1])} GPUs; pick one, or pass --machine_type"
        )
    digest = hashlib.sha256(json.dumps([target, args]).encode()).hexdigest()[:8]
    name = config.name or f"dcgan-{config.job}-{digest}"
    return config, args, name


def machine_type(config: config_lib.LaunchConfig) -> str:
    if config.machine_type:
        return config.machine_type
    return ACCELERATORS[config.accelerator][1][config.gpus] if config.gpus else CPU_MACHINE


# ----------------------------------------------------------------------------
# Vertex AI


def vertex_spec(config: config_lib.LaunchConfig, args: list[str], job_dir: str = "") -> dict:
    """A CustomJobSpec (camelCase JSON, as `gcloud ai custom-jobs create --config` reads it)."""
    machine = {"machineType": machine_type(config)}
    if config.gpus:
        machine.update(acceleratorType=config.accelerator, acceleratorCount=config.gpus)
    replicas = config.workers if config.job == "train" else config.tasks

    def pool(count: int) -> dict:
        return {
            "machineSpec": machine,
            "replicaCount": count,
            "containerSpec": {
                "imageUri": config.image,
                "args": args,
                "env": [
                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                    {"name": "DCGAN_GCS_RETRY_DEADLINE", "value": str(VERTEX_GCS_RETRY_DEADLINE)},
                ],
            },
            "diskSpec": {"bootDiskType": "pd-ssd", "bootDiskSizeGb": 100},
        }

    # workerpool0 holds exactly one replica (the chief); the rest go to workerpool1.
    spec: dict[str, Any] = {"workerPoolSpecs": [pool(1)] + ([pool(replicas - 1)] if replicas > 1 else [])}
    if job_dir:
        # AIP_MODEL_DIR = JOB_DIR/model etc.; the trainer exports there too.
        spec["baseOutputDirectory"] = {"outputUriPrefix": job_dir}
    scheduling: dict[str, Any] = {
        "restartJobOnWorkerRestart": config.job == "train" and replicas > 1,
        "timeout": "604800s",
    }
    if config.spot:
        scheduling["strategy"] = "SPOT"  # preempted workers come back; the job resumes from its checkpoints
    spec["scheduling"] = scheduling
    if config.service_account:
        spec["serviceAccount"] = config.service_account
    if config.vertex_tensorboard:
        spec["tensorboard"] = (
            config.vertex_tensorboard
        )  # Vertex sets AIP_TENSORBOARD_LOG_DIR; the trainer copies logs there
    return spec


def render_vertex(config, args, name) -> tuple[dict[str, str], list[list[str]]]:
    job_dir = next((a.split("=", 1)[1] for a in args if a.startswith("--job_dir=")), "")
    spec = vertex_spec(config, args, job_dir)
    command = [
        "gcloud",
        "ai",
        "custom-jobs",
        "create",
        f"--region={config.region}",
        f"--display-name={name}",
        "--config=custom_job_spec.json",
    ]
    if config.project:
        command.append(f"--project={config.project}")
    return {"custom_job_spec.json": json.dumps(spec, indent=2) + "\n"}, [command]


CACHE_MOUNT = "/cache"  # k8s: the emptyDir that DCGAN_CACHE points to


# ----------------------------------------------------------------------------
# Kubernetes


def k8s_manifests(config: config_lib.LaunchConfig, args: list[str], name: str) -> list[dict]:
    """An Indexed Job (+ a headless Service when several training workers must find each other)."""
    labels = {
        "app.kubernetes.io/name": "dcgan-factory",
        "app.kubernetes.io/component": config.job,
        "dcgan-factory/launch": name,
    }
    count = config.workers if config.job == "train" else config.tasks
    multi_worker = config.job == "train" and count > 1
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}, {"name": "DCGAN_CACHE", "value": CACHE_MOUNT}]
    if multi_worker:
        # distribute.py turns these + JOB_COMPLETION_INDEX into TF_CONFIG.
        env += [
            {"name": "DCGAN_NUM_WORKERS", "value": str(count)},
            {"name": "DCGAN_WORKER_HOSTS", "value": f"{name}-{{index}}.{name}:{GRPC_PORT}"},
        ]
    if config.job == "sample":
        env += [{"name": "DCGAN_NUM_TASKS", "value": str(count)}]  # the index is JOB_COMPLETION_INDEX
    container: dict[str, Any] = {
        "name": "dcgan",
        "image": config.image,
        "args": args,
        "env": env,
        "resources": {"requests": {"cpu": config.cpu, "memory": config.memory}, "limits": {"memory": config.memory}},
        "volumeMounts": [{"name": "cache", "mountPath": CACHE_MOUNT}],
    }
    if config.gpus:
        container["resources"]["limits"]["nvidia.com/gpu"] = config.gpus
    if multi_worker:
        container["ports"] = [{"name": "grpc", "containerPort": GRPC_PORT}]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": GRACE_PERIOD_S,
        "containers": [container],
        # Scratch for staged datasets, streamed shards and cached teachers: node-local disk, gone with the pod.
        "volumes": [{"name": "cache", "emptyDir": {"sizeLimit": config.cache_size} if config.cache_size else {}}],
    }
    pod |= _k8s_placement(config)
    if config.service_account:
        pod["serviceAccountName"] = config.service_account  # Workload Identity: bound to a GCS-capable Google SA
    if multi_worker:
        pod["subdomain"] = name  # pods resolve as NAME-<index>.NAME through the headless Service
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": config.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": count,
            "parallelism": count if config.job == "train" else (config.parallelism or count),
            "backoffLimitPerIndex": config.max_restarts,
            "podReplacementPolicy": "Failed",  # a replacement starts only after the old pod is gone
            "podFailurePolicy": {
                "rules": [
                    # Preemption, eviction, node drain: retry without counting against the limit.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    # Bad input or divergence: retrying cannot help.
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "dcgan", "operator": "In", "values": PERMANENT_EXIT_CODES},
                    },
                    # Storage unreachable through the job's own retries: retry without counting.
                    {
                        "action": "Ignore",
                        "onExitCodes": {"containerName": "dcgan", "operator": "In", "values": TRANSIENT_EXIT_CODES},
                    },
                ]
            },
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }
    manifests = [job]
    if multi_worker:
        manifests.insert(
            0,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": config.namespace, "labels": dict(labels)},
                "spec": {
                    "clusterIP": "None",
                    "publishNotReadyAddresses": True,
                    "selector": {"dcgan-factory/launch": name},
                    "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT}],
                },
            },
        )
    return manifests


def _k8s_placement(config: config_lib.LaunchConfig) -> dict:
    """The pod's nodeSelector and tolerations: GPU nodes of the accelerator, Spot nodes."""
    node_selector, tolerations = {}, []
    if config.gpus:
        node_selector["cloud.google.com/gke-accelerator"] = ACCELERATORS[config.accelerator][0]
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    if config.spot:
        node_selector["cloud.google.com/gke-spot"] = "true"
        tolerations.append(
            {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
        )
    placement = {"nodeSelector": node_selector, "tolerations": tolerations}
    return {key: value for key, value in placement.items() if value}


def render_k8s(config, args, name) -> tuple[dict[str, str], list[list[str]]]:
    try:
        import yaml
    except ImportError:
        from trainer.errors import UserError

        raise UserError("dcgan launch k8s writes YAML and needs PyYAML: pip install 'dcgan-factory[launch]'") from None

    text = yaml.safe_dump_all(k8s_manifests(config, args, name), sort_keys=False)
    return {"manifests.yaml": text}, [["kubectl", "apply", "-f", "manifests.yaml"]]


# ----------------------------------------------------------------------------
# One GPU VM


def render_vm(config, args, name) -> tuple[dict[str, str], list[list[str]]]:
    if not os.path.isfile(VM_SCRIPT):
        raise UserError(f"{VM_SCRIPT} is missing from the installed package; reinstall dcgan-factory")
    with open(VM_SCRIPT) as f:
        files = {"dcgan-vm.sh": f.read(), "dcgan-args": "".join(a + "\n" for a in args)}
    location = [f"--zone={config.zone}"] + ([f"--project={config.project}"] if config.project else [])
    if config.existing_vm:
        return files, [
            ["gcloud", "compute", "ssh", config.existing_vm, *location, "--command=mkdir -p dcgan"],
            ["gcloud", "compute", "scp", "dcgan-vm.sh", "dcgan-args", f"{config.existing_vm}:dcgan/", *location],
            [
                "gcloud",
                "compute",
                "ssh",
                config.existing_vm,
                *location,
                "--command=" + f"DCGAN_MAX_RESTARTS={config.max_restarts} nohup bash dcgan/dcgan-vm.sh "
                f"{shlex.quote(config.image)} dcgan/dcgan-args > dcgan/job.log 2>&1 &",
            ],
        ]
    machine = machine_type(config)
    create = [
        "gcloud",
        "compute",
        "instances",
        "create",
        name,
        *location,
        f"--machine-type={machine}",
        "--maintenance-policy=TERMINATE",
        "--image-project=deeplearning-platform-release",
        f"--image-family={config.vm_image_family}",
        "--boot-disk-size=200GB",
        "--scopes=cloud-platform",
    ]
    if config.gpus and machine.startswith("n1-"):  # a2/a3/g2 machines come with their GPUs
        create.append(f"--accelerator=type={ACCELERATORS[config.accelerator][0]},count={config.gpus}")
    if config.spot:
        create += ["--provisioning-model=SPOT", "--instance-termination-action=STOP"]
    if config.service_account:
        create.append(f"--service-account={config.service_account}")
    create += [
        f"--metadata=install-nvidia-driver=True,dcgan-image={config.image},"
        f"dcgan-max-restarts={config.max_restarts},dcgan-stop-when-done=true",
        "--metadata-from-file=startup-script=dcgan-vm.sh,dcgan-args=dcgan-args",
    ]
    return files, [create]


RENDERERS = {"vm": render_vm, "vertex": render_vertex, "k8s": render_k8s}
TOOLS = {"vm": "gcloud", "vertex": "gcloud", "k8s": "kubectl"}


def plan(target: str, flags: dict[str, Any]) -> Launch:
    config, args, name = resolve(target, flags)
    files, commands = RENDERERS[target](config, args, name)
    return Launch(config, args, name, files, commands)


def run(target: str, flags: dict[str, Any]) -> Launch:
    """Renders, writes the files to the spec dir, prints them, and (unless --dry_run) submits."""
    spec_dir = flags.pop("spec_dir", "")
    launch = plan(target, flags)
    spec_dir = os.path.abspath(spec_dir or os.path.join(".dcgan-launch", launch.name))
    try:
        os.makedirs(spec_dir, exist_ok=True)
        for file_name, content in launch.files.items():
            with open(os.path.join(spec_dir, file_name), "w") as f:
                f.write(content)
    except OSError as err:  # a file in the way, no permission, a full disk: before anything is submitted
        raise UserError(f"--spec_dir={spec_dir}: cannot write the rendered files there ({err.strerror})") from None
    for file_name, content in launch.files.items():
        if file_name != "dcgan-vm.sh":
            print(f"# {os.path.join(spec_dir, file_name)}\n{content.rstrip()}")
    print(f"# commands (run in {spec_dir}):")
    for command in launch.commands:
        print(shlex.join(command))
    if launch.config.dry_run:
        print("# --dry_run: nothing submitted")
        return launch
    tool = TOOLS[target]
    if shutil.which(tool) is None:
        raise UserError(
            f"`{tool}` is not installed or not on PATH; install it (or run with --dry_run and submit "
            f"the files in {spec_dir} yourself)"
        )
    for command in launch.commands:
        print(f"$ {shlex.join(command)}", flush=True)
        code = subprocess.call(command, cwd=spec_dir)
        if code != 0:
            raise UserError(f"`{shlex.join(command[:4])} ...` failed with exit status {code}")
    sys.stdout.flush()
    return launch
