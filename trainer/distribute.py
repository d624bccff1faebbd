"""Choose the tf.distribute strategy from the environment, and say what it is.

  TF_CONFIG (or Vertex AI's CLUSTER_SPEC, or a Kubernetes Indexed Job's
  JOB_COMPLETION_INDEX + DCGAN_WORKER_HOSTS) naming more than one task
      -> MultiWorkerMirroredStrategy, one process per machine
  several local GPUs, or --devices=N        -> MirroredStrategy over them
  one GPU or the CPU                        -> OneDeviceStrategy

`--devices=N` splits the CPU (or the one GPU) into N logical devices so that
multi-replica code runs, and is tested, on any machine. It must be applied
before TensorFlow initialises its devices, i.e. before anything else touches TF.

    TF_CPP_MIN_LOG_LEVEL=2 python -c "from trainer import distribute as d; print(d.describe(d.make_strategy(2)))"
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Optional

from trainer.errors import UserError

VERTEX_POOLS = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps", "workerpool3": "evaluator"}


@dataclasses.dataclass(frozen=True)
class ClusterRole:
    """This process's place in the cluster (a single process is chief of one)."""

    num_workers: int = 1
    task_type: str = "chief"
    task_index: int = 0
    position: int = 0  # this task's place in the cluster order: the chief first, then the workers

    @property
    def is_chief(self) -> bool:
        if self.num_workers == 1:
            return True
        return self.task_type == "chief" or (
            self.task_type == "worker" and self.task_index == 0 and not self._has_chief
        )

    _has_chief: bool = True


def tf_config_from_cluster_spec(cluster_spec: str) -> dict:
    """Vertex AI's CLUSTER_SPEC -> the TF_CONFIG MultiWorkerMirroredStrategy reads."""
    try:
        spec = json.loads(cluster_spec)
        cluster = {VERTEX_POOLS[pool]: list(hosts) for pool, hosts in spec["cluster"].items()}
        task = {"type": VERTEX_POOLS[spec["task"]["type"]], "index": int(spec["task"]["index"])}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:  # any JSON at all
        raise UserError(
            f"CLUSTER_SPEC is malformed ({type(err).__name__}: {str(err)[:120]}); expected Vertex AI's "
            '{"cluster": {"workerpool0": [...], ...}, "task": {"type": "workerpool0", "index": 0}}'
        ) from None
    return {"cluster": cluster, "task": task}


def tf_config_from_indexed_job(environ) -> dict:
    """A Kubernetes Indexed Job's pod -> TF_CONFIG.

    DCGAN_WORKER_HOSTS is either a template with {index} (e.g.
    'dcgan-train-{index}.dcgan-train:2222': an Indexed Job's pods are named
    JOB-<index> and resolve through a headless Service named by the pod
    subdomain) expanded for DCGAN_NUM_WORKERS indices, or an explicit
    comma-separated host:port list. This pod is worker JOB_COMPLETION_INDEX;
    worker 0 acts as chief.
    """
    hosts_text = environ["DCGAN_WORKER_HOSTS"]
    try:
        index = int(environ["JOB_COMPLETION_INDEX"])
        if "{index}" in hosts_text:
            hosts = [hosts_text.replace("{index}", str(i)) for i in range(int(environ["DCGAN_NUM_WORKERS"]))]
        else:
            hosts = [h.strip() for h in hosts_text.split(",") if h.strip()]
    except KeyError as err:
        raise UserError(
            f"DCGAN_WORKER_HOSTS is set but {err.args[0]} is not (a Kubernetes Indexed Job sets "
            "JOB_COMPLETION_INDEX; DCGAN_NUM_WORKERS is needed with an {index} template)"
        ) from None
    except ValueError as err:
        raise UserError(f"JOB_COMPLETION_INDEX/DCGAN_NUM_WORKERS must be integers ({err})") from None
    if not 0 <= index < len(hosts):
        raise UserError(f"JOB_COMPLETION_INDEX={index} is outside the {len(hosts)} workers of DCGAN_WORKER_HOSTS")
    return {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}


def _tf_config(environ) -> Optional[dict]:
    """TF_CONFIG as given, or made from Vertex AI's CLUSTER_SPEC or a Kubernetes Indexed Job (None: no cluster)."""
    raw = environ.get("TF_CONFIG")
    if not raw and environ.get("CLUSTER_SPEC"):
        return tf_config_from_cluster_spec(environ["CLUSTER_SPEC"])
    if not raw and environ.get("DCGAN_WORKER_HOSTS"):
        return tf_config_from_indexed_job(environ)
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise UserError(f"TF_CONFIG is not valid JSON ({type(err).__name__}: {str(err)[:120]})") from None
    return {} if parsed is None else parsed  # TF_CONFIG=null is refused below, not taken for "no cluster"


def read_cluster(environ=os.environ) -> tuple[ClusterRole, Optional[dict]]:
    """Parses TF_CONFIG (or CLUSTER_SPEC); checks it before TF sees it."""
    tf_config = _tf_config(environ)
    if tf_config is None:
        return ClusterRole(), None
    if not isinstance(tf_config, dict) or not isinstance(tf_config.get("cluster"), dict):
        raise UserError(
            'TF_CONFIG needs a "cluster" object, e.g. {"cluster": {"worker": ["host:port", ...]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    cluster, task = tf_config["cluster"], tf_config.get("task") or {}
    for kind, hosts in cluster.items():
        if not isinstance(hosts, list) or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise UserError(f'TF_CONFIG cluster["{str(kind)[:40]}"] must be a list of "host:port" strings')
    workers = [(kind, i) for kind in ("chief", "worker") for i, _ in enumerate(cluster.get(kind, []))]
    if not isinstance(task, dict):
        raise UserError(f'TF_CONFIG "task" must be an object like {{"type": "worker", "index": 0}}, got {task!r}')
    if len(workers) <= 1 and not task:
        return ClusterRole(), tf_config
    task_type, task_index = task.get("type"), task.get("index", 0)
    if (
        isinstance(task_index, bool)
        or not isinstance(task_index, (int, str))
        or not re.fullmatch("[0-9]{1,6}", str(task_index))  # not isdigit(): it accepts "²", which int() refuses
        or (task_type, int(task_index)) not in workers
    ):
        names = ", ".join(f"{kind}:{i}" for kind, i in workers) or "none"
        raise UserError(f"TF_CONFIG task {task!r} is not one of the cluster's chief/worker tasks ({names})")
    if len(workers) <= 1:
        return ClusterRole(), tf_config
    role = ClusterRole(
        len(workers),
        task_type,
        int(task_index),
        workers.index((task_type, int(task_index))),
        _has_chief="chief" in cluster,
    )
    return role, tf_config


def split_devices(count: int) -> None:
    """Turns the first GPU (or the CPU) into `count` logical devices."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        free_mib = 4096
        tf.config.set_logical_device_configuration(
            gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=free_mib) for _ in range(count)]
        )
    else:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])


def make_strategy(devices: int = 0, environ=os.environ, cluster: Optional[tuple[ClusterRole, Optional[dict]]] = None):
    """The strategy for this process (see the module docstring); `cluster`: `read_cluster`'s answer when the
    caller has it (a job reads its cluster once), else read from `environ`."""
    import tensorflow as tf

    role, tf_config = cluster if cluster is not None else read_cluster(environ)
    if tf_config is not None:  # what MultiWorkerMirroredStrategy reads: the cluster checked, however it was given
        os.environ["TF_CONFIG"] = json.dumps(tf_config)
    if devices > 1:
        split_devices(devices)
    if role.num_workers > 1:
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.AUTO
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy(gpus[0].name)
    cpus = tf.config.list_logical_devices("CPU")
    if devices > 1:
        return tf.distribute.MirroredStrategy(
            [d.name for d in cpus[:devices]], cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    return tf.distribute.OneDeviceStrategy(cpus[0].name)


def check_workers_agree(strategy, values: dict[str, int]) -> None:
    """All-gathers small integers (restored step, weight fingerprints) across workers and refuses,
    in one line, to go on if any differs: e.g. a job dir that is not shared between the machines,
    so that each worker restored a different checkpoint (or none)."""
    import tensorflow as tf

    from trainer.errors import UserError

    local = tf.constant([[int(v) % (2**31 - 1) for v in values.values()]], tf.int64)

    def gather():
        return tf.distribute.get_replica_context().all_gather(local, axis=0)

    gathered = strategy.experimental_local_results(strategy.run(gather))[0].numpy()
    differing = [name for i, name in enumerate(values) if len(set(gathered[:, i].tolist())) > 1]
    if differing:
        shown = "; ".join(
            f"{name}: {sorted(set(gathered[:, list(values).index(name)].tolist()))}" for name in differing
        )
        raise UserError(
            f"the workers restored different state ({shown}); every worker must see the same "
            "--job_dir (a bucket, or a shared file system), not a local folder per machine"
        )


def describe(strategy, role: Optional[ClusterRole] = None) -> str:
    import tensorflow as tf

    role = role if role is not None else read_cluster()[0]
    devices = getattr(strategy.extended, "worker_devices", ())
    name = type(strategy).__name__
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # the class is an alias named CollectiveAllReduceStrategy
    return (
        f"strategy {name}: {strategy.num_replicas_in_sync} replicas, "
        f"{role.num_workers} worker(s), this is {role.task_type}:{role.task_index}"
        f"{' (chief)' if role.is_chief else ''}, devices {list(devices)}, "
        f"GPUs visible {len(tf.config.list_physical_devices('GPU'))}"
    )


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> Optional[set]:
    """The CPU's feature flags (Linux's /proc/cpuinfo), or None where they cannot be read."""
    try:
        with open(cpuinfo, errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return set(value.split())
    return None


def precision_warning(precision: str) -> str:
    """`bfloat16_warning` for this process: its GPUs and this machine's CPU flags."""
    import tensorflow as tf

    return bfloat16_warning(precision, bool(tf.config.list_physical_devices("GPU")), cpu_flags())


def bfloat16_warning(precision: str, has_gpu: bool, flags: Optional[set]) -> str:
    """A warning line when bfloat16 is asked for on a CPU without bfloat16 instructions, else ''.

    Without avx512_bf16 or amx_bf16 the CPU emulates bfloat16 math: measured on a 2-core AVX2 AMD EPYC,
    the 32x32x1 training step's ops took 5x float32's time with Eigen's float32 kernels, 11x with oneDNN's
    (bench/README.md)."""
    if precision != "bfloat16" or has_gpu or flags is None or flags & {"avx512_bf16", "amx_bf16"}:
        return ""
    return (
        "warning: this CPU has no bfloat16 instructions (avx512_bf16, amx_bf16): --mixed_precision=bfloat16 "
        "runs several times slower than float32 here (off is the fast choice)"
    )
