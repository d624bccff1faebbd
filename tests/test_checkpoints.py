"""Checkpoint retention and the pointer (trainer/checkpoints.py), through real training runs."""

import json
import shutil

import pytest

from conftest import assert_one_line_error, run_cli


def train(job, *extra):
    result = run_cli(
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        "--progress=false",
        "--checkpoint_every=2",
        "--keep_checkpoints=2",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_an_orphan_never_pushes_out_the_last_committed_checkpoint(tmp_path):
    """A folder published but never named by a pointer (a crash between upload and pointer) is pruned
    first; the committed previous checkpoint survives a resume."""
    job = tmp_path / "job"
    train(job, "--steps=4")
    pointer = json.loads((job / "checkpoints" / "latest.json").read_text())
    assert [int(f.split("-")[1]) for f in pointer["committed"]] == [2, 4]
    last = pointer["committed"][-1]
    orphan = job / "checkpoints" / "ckpt-00000006-deadbeef"
    shutil.copytree(job / "checkpoints" / last, orphan)  # as if step 6 was uploaded and then the VM died
    train(job, "--steps=6")
    pointer = json.loads((job / "checkpoints" / "latest.json").read_text())
    folders = sorted(p.name for p in (job / "checkpoints").iterdir() if p.is_dir())
    assert pointer["step"] == 6 and pointer["committed"][0] == last
    assert folders == sorted(pointer["committed"]) and orphan.name not in folders


def test_a_run_reports_where_its_checkpoint_time_went(tmp_path):
    import re

    result = train(tmp_path / "job", "--steps=4")
    line = re.search(
        r"^checkpoints: (\d+) saved; training thread (\d+) ms each \(copy (\d+), waiting for the "
        r"previous save (\d+)\); background write (\d+), publish (\d+), commit (\d+) ms \(medians\)$",
        result.stdout,
        re.M,
    )
    assert line, result.stdout
    assert int(line.group(1)) == 2  # steps 2 and 4
    assert (
        int(line.group(2)) == int(line.group(3)) + int(line.group(4))
        or abs(int(line.group(2)) - int(line.group(3)) - int(line.group(4))) <= 1
    )  # rounding


def test_an_unreadable_pointer_is_one_line(tmp_path):
    job = tmp_path / "job"
    train(job, "--steps=2")
    (job / "checkpoints" / "latest.json").write_bytes(b"\xff{not json")
    assert_one_line_error(
        run_cli("train", "--preset=smoke", f"--job_dir={job}", "--steps=4"), "latest.json is unreadable"
    )


def two_writers(job, env=None):
    """Two training processes on one job dir, the second started while the first is checkpointing every
    step; once one has stopped, the other is stopped with SIGTERM. Returns both CompletedProcesses."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    args = [
        sys.executable,
        "-m",
        "trainer",
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        "--steps=100000",
        "--checkpoint_every=1",
        "--keep_checkpoints=10",
        "--log_every=1",
        "--progress=true",
    ]
    full_env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1", **(env or {})}
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=REPO)
    for line in first.stderr:  # progress goes to stderr
        if "step 3/" in line:
            break
    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env, cwd=REPO)
    procs, deadline = [first, second], time.time() + 240
    while all(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.5)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    outputs = [p.communicate(timeout=300) for p in procs]
    return [subprocess.CompletedProcess(args, p.returncode, *out) for p, out in zip(procs, outputs)]


def test_two_chiefs_on_one_job_dir_one_stops_with_one_line(tmp_path):
    job = tmp_path / "job"
    results = two_writers(job)
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr[-1500:] for r in results]
    loser = next(r for r in results if r.returncode)
    assert_one_line_error(loser, "latest.json was rewritten by another process")
    winner = next(r for r in results if not r.returncode)
    step = int(winner.stdout.split("stopped by SIGTERM at step ")[1].split(";")[0])
    pointer = json.loads((job / "checkpoints" / "latest.json").read_text())
    assert pointer["step"] == step
    assert all((job / "checkpoints" / f).exists() for f in pointer["files"])
    assert all((job / "checkpoints" / f).is_dir() for f in pointer["committed"])


def test_a_hand_edited_pointer_is_refused_naming_what_is_wrong():
    from trainer.checkpoints import pointer_problem

    good = {"step": 8, "prefix": "ckpt-00000008/ckpt", "files": ["ckpt-00000008/ckpt.index"]}
    assert pointer_problem(good) == ""
    for change, problem in [
        ({"step": "eight"}, 'step "eight" is not a whole number'),
        ({"step": True}, "step true is not a whole number"),
        ({"step": -1}, "step -1 is not a whole number"),
        ({"prefix": "../../elsewhere/ckpt"}, "is not in a checkpoint folder"),
        ({"prefix": "/etc/ckpt"}, "is not in a checkpoint folder"),
        ({"files": ["ckpt-00000008/../../x"]}, "files must be a list of names in checkpoint folders"),
        ({"files": "ckpt-00000008/ckpt.index"}, "files must be a list"),
    ]:
        assert problem in pointer_problem({**good, **change}), change
    assert pointer_problem([1]) == "no step, prefix and files"


class _TinyState:
    """A real state of the shape CheckpointManager saves: tf.Variables behind a tf.train.Checkpoint."""

    def __init__(self, value: float):
        import tensorflow as tf

        self.weights = tf.Variable(tf.fill([3, 2], value), name="weights")
        self.step = tf.Variable(0, dtype=tf.int64, name="step")

    def checkpoint(self):
        import tensorflow as tf

        return tf.train.Checkpoint(weights=self.weights, step=self.step)

    def variables(self):
        return [self.weights, self.step]


def test_the_twin_is_built_at_the_first_save_that_is_not_the_last(tmp_path):
    """A run that only checkpoints at its end never builds the twin (the last save writes the live
    state); a periodic save builds it once; both restore exactly what was saved at their step."""
    from trainer import storage
    from trainer.checkpoints import CheckpointManager

    def manager(job, state, builds):
        return CheckpointManager(
            storage.open_store(str(tmp_path / job)),
            state,
            keep=3,
            is_chief=True,
            config_hash="h",
            build_twin=lambda: builds.append(1) or _TinyState(0.0),
        )

    state, builds = _TinyState(1.0), []
    saver = manager("end-only", state, builds)
    state.step.assign(5)
    saver.save(5, last=True)
    saver.close()
    assert builds == []
    restored = _TinyState(0.0)
    assert manager("end-only", restored, []).restore() == 5
    assert float(restored.weights.numpy().min()) == 1.0 and int(restored.step.numpy()) == 5

    state, builds = _TinyState(2.0), []
    saver = manager("periodic", state, builds)
    state.step.assign(6)
    saver.save(6)
    state.weights.assign(state.weights + 100)  # training goes on: the twin holds step 6's values
    saver.save(7)
    state.weights.assign_add(state.weights)
    state.step.assign(8)
    saver.save(8, last=True)
    saver.close()
    assert builds == [1]
    restored = _TinyState(0.0)
    assert manager("periodic", restored, []).restore() == 8
    assert float(restored.weights.numpy().min()) == 204.0 and int(restored.step.numpy()) == 8
    pointer = json.loads((tmp_path / "periodic" / "checkpoints" / "latest.json").read_text())
    assert [int(f.split("-")[1]) for f in pointer["committed"]] == [6, 7, 8]
