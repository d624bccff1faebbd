"""Helpers shared by test modules (not fixtures)."""

import json
import os
import socket
import subprocess
import sys

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator


def read_scalars(logdir, tag):
    """A scalar series read back with TensorBoard's own reader (TF2 writes tensors)."""
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(job_dir, extra=(), count=2, style="tf_config"):
    """`count` training processes on 127.0.0.1, told about each other through TF_CONFIG,
    or as pods of a Kubernetes Indexed Job (JOB_COMPLETION_INDEX + DCGAN_WORKER_HOSTS).
    `job_dir` is one folder for all, or a list with one per worker (a misconfigured cluster)."""
    from conftest import REPO

    hosts = [f"127.0.0.1:{p}" for p in free_ports(count)]
    job_dirs = list(job_dir) if isinstance(job_dir, (list, tuple)) else [job_dir] * count
    procs = []
    for index in range(count):
        job_dir = job_dirs[index]
        env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"}
        if style == "tf_config":
            env["TF_CONFIG"] = json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})
        else:
            env.update(JOB_COMPLETION_INDEX=str(index), DCGAN_WORKER_HOSTS=",".join(hosts))
        args = [sys.executable, "-m", "trainer", "train", "--preset=smoke", f"--job_dir={job_dir}", *extra]
        procs.append(
            subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        )
    return procs
