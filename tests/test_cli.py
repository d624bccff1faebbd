"""`dcgan` as a user runs it: real processes, exit codes, one-line errors, signals."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from trainer import native_stderr

from conftest import REPO, assert_one_line_error, run_cli


def test_help_and_dry_run_print_the_config():
    result = run_cli("train", "--help")
    assert result.returncode == 0 and "--job_dir" in result.stdout and "smoke" in result.stdout
    result = run_cli("train", "--job_dir=/tmp/never", "--preset=smoke", "--steps=3", "--dry_run")
    assert result.returncode == 0
    assert "steps              3" in result.stdout
    assert not os.path.exists("/tmp/never")


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["train", "--preset=smoke", "--resolution=48", "--job_dir=J"], ["--resolution=48"]),
        (["train", "--preset=smoke", "--stepz=4", "--job_dir=J"], ["unknown flag", "--stepz"]),
        (["train", "--preset=smoke", "--job_dir=J", "leftover"], ["unexpected argument 'leftover'"]),
        (["train", "--preset=smoke"], ["--job_dir is required"]),
        (["trian", "--job_dir=J"], ["unknown command 'trian'"]),
        (["train", "--preset=smoke", "--job_dir=J", "--batch_size=abc"], ["--batch_size='abc' must be an integer"]),
        (["sample", "--generator=G", "--output=J", "--copies_per_sample=3"], ["--copies_per_sample > 1 needs aug"]),
        (["sample", "--generator=G", "--output=J", "--task_index=2"], ["--task_index=2 needs --num_tasks"]),
        (
            ["evaluate", "--real=digits", "--synthetic=J", "--tune_folds=-2"],
            ["--tune_folds=-2 must be 0 (auto), 1 (one split) or 2-20"],
        ),
    ],
)
def test_invalid_flags_fail_fast_with_one_line(tmp_path, args, fragments):
    args = [a.replace("J", str(tmp_path / "job")) for a in args]
    started = time.monotonic()
    result = run_cli(*args)
    assert_one_line_error(result, *fragments)
    assert time.monotonic() - started < 20  # before TensorFlow does any work
    assert not (tmp_path / "job").exists()


def test_wrong_dataset_paths_and_empty_or_corrupt_folders(tmp_path):
    job = str(tmp_path / "job")
    missing = run_cli("train", "--preset=smoke", f"--job_dir={job}", f"--dataset={tmp_path}/missing:train[:10%]")
    assert_one_line_error(missing, "no such file or folder")
    # Before the config listing and before TensorFlow starts: the error is all the user sees.
    assert missing.stdout == "" and missing.stderr.count("\n") == 1, missing.stderr
    for job_args in (["augment", "--output=o"], ["evaluate", "--synthetic=s"]):
        flag = "dataset" if job_args[0] == "augment" else "real"
        result = run_cli(*job_args, f"--{flag}={tmp_path}/missing")
        assert_one_line_error(result, f"--{flag}={tmp_path}/missing: no such file or folder")
        assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        run_cli("train", "--preset=smoke", f"--job_dir={job}", f"--dataset={tmp_path}/empty"), "no images"
    )
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"definitely not a png")
    assert_one_line_error(
        run_cli("train", "--preset=smoke", f"--job_dir={job}", f"--dataset={tmp_path}/bad"), "could be decoded"
    )
    assert_one_line_error(
        run_cli("train", "--preset=smoke", f"--job_dir={job}", f"--dataset={tmp_path}/bad", "--on_corrupt=fail"),
        "unreadable image",
        "x.png",
    )
    assert not os.path.exists(job)  # a bad dataset never touches the job dir


def test_bad_paths_fail_in_one_line_before_tensorflow_is_imported(tmp_path):
    """A missing generator, an output with nothing to verify, a bucket without credentials: one line, and
    TensorFlow is never imported (a tripwire package named tensorflow fails any import of it)."""
    tripwire = tmp_path / "tripwire" / "tensorflow"
    tripwire.mkdir(parents=True)
    (tripwire / "__init__.py").write_text("raise ImportError('TensorFlow was imported')\n")
    (tmp_path / "half").mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    env = {
        "PYTHONPATH": f"{tripwire.parent}{os.pathsep}{REPO}",
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-credentials.json"),
        "STORAGE_EMULATOR_HOST": "",
    }
    cases = [
        (["sample", "--generator=MISSING", f"--output={tmp_path}/out"], ["--generator=MISSING: no such file"]),
        (["sample", f"--generator={tmp_path}/half", f"--output={tmp_path}/out"], ["no exported generator there"]),
        (["sample", "--verify", f"--output={tmp_path}/nothing"], ["no such folder; nothing to verify"]),
        (["sample", "--verify", f"--output={tmp_path}/half"], ["no manifest.json"]),
        (["train", "--job_dir=gs://no-such-bucket/run"], ["gs://no-such-bucket/run", "credentials"]),
        (["evaluate", "--real=digits:test", f"--synthetic={tmp_path}/none"], ["--synthetic=", "no such file"]),
        # the report is written at the end of a long run: where it cannot go is known at the start
        (["evaluate", "--real=digits:test", f"--synthetic={tmp_path}/half", f"--report={tmp_path}"], ["is a folder"]),
        (
            ["evaluate", "--real=digits:test", f"--synthetic={tmp_path}/half", f"--report={blocker}/r.json"],
            ["is a file, not a folder"],
        ),
        (
            ["evaluate", "--real=digits:test", f"--synthetic={tmp_path}/half", "--report=gs://bucket/r.json"],
            ["a local path is needed"],
        ),
    ]
    for args, fragments in cases:
        result = run_cli(*args, env=env)
        assert_one_line_error(result, *fragments)
        assert result.stdout == "" and result.stderr.count("\n") == 1, (args, result.stderr)
    assert not (tmp_path / "out").exists() and blocker.read_text() == "I am a file"
    assert not os.path.exists("gs:")  # a bucket URL was never taken for a local folder


def test_unwritable_job_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    assert_one_line_error(run_cli("train", "--preset=smoke", f"--job_dir={blocker}/job"), "cannot write there")
    assert blocker.read_text() == "I am a file"


def test_job_dir_of_another_job(smoke_job):
    before = open(os.path.join(smoke_job, "config.json")).read()
    result = run_cli("train", "--preset=smoke", f"--job_dir={smoke_job}", "--resolution=64")
    assert_one_line_error(result, "holds a different job", "resolution 32 -> 64", "--overwrite")
    assert result.stdout == "" and result.stderr.count("\n") == 1  # refused before TensorFlow or the data load
    dry = run_cli("train", "--preset=smoke", f"--job_dir={smoke_job}", "--resolution=64", "--dry_run")
    assert dry.returncode == 2 and "holds a different job" in dry.stderr.splitlines()[-1]
    same = run_cli("train", "--preset=smoke", f"--job_dir={smoke_job}", "--dry_run")
    assert same.returncode == 0 and f"--job_dir={smoke_job}: ok" in same.stdout, same.stderr[-2000:]
    assert open(os.path.join(smoke_job, "config.json")).read() == before


@pytest.mark.slow
def test_second_invocation_resumes_and_python_m_is_the_same(tmp_path):
    job = str(tmp_path / "job")
    first = run_cli("train", "--preset=smoke", f"--job_dir={job}", "--steps=4", "--progress=false")
    assert first.returncode == 0, first.stderr[-2000:]
    # A quiet start: the flags that differ from their defaults on one line, no TensorFlow C++ lines.
    summary = (
        f"dcgan train --job_dir={job} --preset=smoke --steps=4 --progress=False (full config goes to {job}/config.json)"
    )
    assert " ".join(first.stdout.split()).startswith(summary), first.stdout  # wrapped in at most two lines:
    assert "(full config" in "".join(first.stdout.splitlines(keepends=True)[:2]), first.stdout
    chatter = [line for line in first.stderr.splitlines() if native_stderr.dropped(line.encode(), "0")]
    assert not chatter and not native_stderr.ABSL_LINE.search(first.stderr.encode()), first.stderr
    second = run_cli("train", "--preset=smoke", f"--job_dir={job}", "--steps=6", "--progress=false")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from the checkpoint at step 4" in second.stdout
    assert json.load(open(os.path.join(job, "checkpoints", "latest.json")))["step"] == 6
    third = run_cli("train", "--preset=smoke", f"--job_dir={job}", "--steps=6", "--progress=false", "--verbose")
    assert third.returncode == 0 and "nothing to train" in third.stdout


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)])
def test_signal_checkpoints_at_a_step_boundary_then_resumes(tmp_path, sig, code):
    job = str(tmp_path / "job")
    args = [
        sys.executable,
        "-m",
        "trainer",
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        "--steps=100000",
        "--checkpoint_every=100000",
        "--log_every=1",
        "--progress=true",
    ]
    env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    for line in proc.stderr:  # wait until training is under way (progress goes to stderr, as --help says)
        if "step 3/" in line:
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err
    pointer = json.load(open(os.path.join(job, "checkpoints", "latest.json")))
    assert pointer["step"] >= 3
    assert f"stopped by {sig.name} at step {pointer['step']}" in out
    resumed = run_cli(
        "train", "--preset=smoke", f"--job_dir={job}", f"--steps={pointer['step'] + 2}", "--progress=false"
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming from the checkpoint at step {pointer['step']}" in resumed.stdout


def test_help_piped_into_head_is_not_a_traceback():
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "launch", "--help"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    proc.stdout.close()  # the reader is gone before anything is written, like `| head -0`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err, err


def test_version_and_package_metadata():
    from importlib.metadata import metadata

    import trainer

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"dcgan-factory {trainer.__version__}"
    meta = metadata("dcgan-factory")
    assert meta["Version"] == trainer.__version__
    assert any(c.startswith("Topic :: Scientific/Engineering") for c in meta.get_all("Classifier"))
    requires = " ".join(meta.get_all("Requires-Dist"))
    for module in ("google-crc32c", "pillow", "tensorflow", "google-cloud-storage"):  # imported at run time
        assert module in requires, module


def test_the_version_is_written_once_in_pyproject(monkeypatch):
    """pyproject.toml holds the version; trainer.__version__ reads it from the installed metadata, or from
    pyproject.toml in a source checkout that was never installed; the CHANGELOG names it."""
    import re
    from importlib import metadata

    import trainer

    with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as f:
        written = re.search(r'^version = "([^"]+)"', f.read(), flags=re.M).group(1)
    assert trainer.__version__ == written
    with open(os.path.join(REPO, "trainer", "__init__.py"), encoding="utf-8") as f:
        assert written not in f.read()  # no second copy to forget

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert trainer._version() == written
    with open(os.path.join(REPO, "CHANGELOG.md"), encoding="utf-8") as f:
        assert f"## {written}" in f.read()
