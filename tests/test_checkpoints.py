"""Checkpoint retention and the pointer (trainer/checkpoints.py), through real training runs."""

import json
import shutil

from conftest import assert_one_line_error, run_cli


def train(job, *extra):
    result = run_cli("train", "--preset=smoke", f"--job_dir={job}", "--progress=false", "--checkpoint_every=2",
                     "--keep_checkpoints=2", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


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


def test_an_unreadable_pointer_is_one_line(tmp_path):
    job = tmp_path / "job"
    train(job, "--steps=2")
    (job / "checkpoints" / "latest.json").write_bytes(b"\xff{not json")
    assert_one_line_error(run_cli("train", "--preset=smoke", f"--job_dir={job}", "--steps=4"),
                          "latest.json is unreadable")
