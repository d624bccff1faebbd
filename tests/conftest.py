"""Shared fixtures: quiet TensorFlow, a CLI runner, small image folders, a trained smoke job."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainer import startup  # noqa: E402

startup.prepare()  # as `dcgan` does: its allocator and CPU kernels, here and in the CLI processes tests start

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Test files by their measured time (per-test durations of a whole run summed per file; 2 cores, 1446 s in
# all), heaviest first. The two xdist workers take whole files (--dist loadfile) in collection order
# (--no-loadscope-reorder, pyproject), so a long file is not handed out last while the other worker idles;
# files not listed follow by name.
HEAVIEST_FIRST = (
    "test_train.py",  # 326 s
    "test_shard_job.py",  # 195 s
    "test_distributed.py",  # 162 s
    "test_evaluate.py",  # 161 s
    "test_gcs.py",  # 100 s
    "test_examples.py",  # 68 s
    "test_classifier.py",  # 60 s
    "test_cli.py",  # 58 s
    "test_onednn.py",  # 56 s
    "test_checkpoints.py",  # 56 s
    "test_hostile_shards.py",  # 41 s
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests stay in order


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """Caches (feature classifiers, judge scores, staged downloads) in a folder of this test session, never the
    user's: a score cached by an earlier run must not stand in for the training a test exercises. Tests that
    need their own set DCGAN_CACHE themselves."""
    before = os.environ.get("DCGAN_CACHE")
    os.environ["DCGAN_CACHE"] = str(tmp_path_factory.mktemp("dcgan-cache"))
    yield
    if before is None:
        os.environ.pop("DCGAN_CACHE", None)
    else:
        os.environ["DCGAN_CACHE"] = before


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 300, cwd: str | None = None
) -> subprocess.CompletedProcess:
    """Runs `python -m trainer ARGS` in a fresh process (fresh TF device setup)."""
    full_env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or REPO,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Non-zero exit, no traceback, last stderr line is our error naming `fragments`."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("dcgan: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture(scope="session")
def smoke_job(tmp_path_factory) -> str:
    """One finished `--preset=smoke` job dir, shared read-only by tests."""
    job_dir = str(tmp_path_factory.mktemp("smoke") / "job")
    result = run_cli("train", "--preset=smoke", f"--job_dir={job_dir}", "--progress=false")
    assert result.returncode == 0, result.stderr[-3000:]
    return job_dir
