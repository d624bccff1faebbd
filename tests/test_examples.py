"""examples/end_to_end.py runs as written (train -> sample -> verify -> shards.mix + model.fit -> evaluate)."""

import os
import subprocess
import sys

from conftest import REPO


def test_the_end_to_end_example_runs(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "examples", "end_to_end.py"), f"--work={tmp_path}", "--quick"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "held-out accuracy of the mixed-data model:" in result.stdout
    assert [line.split()[2] for line in result.stdout.splitlines() if line.startswith("$ dcgan")] == [
        "train",
        "sample",
        "sample",
        "evaluate",
    ]
    assert (tmp_path / "evaluate" / "report.html").is_file()
    assert (tmp_path / "synth" / "manifest.json").is_file()
