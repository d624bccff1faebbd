"""Environment variables are outside input: a bad value is one line and a non-zero exit, before any work."""

import os

import pytest

from trainer import environment
from trainer.errors import UserError

from conftest import assert_one_line_error, run_cli


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("DCGAN_GCS_TIMEOUT", "abc", "DCGAN_GCS_TIMEOUT='abc' must be a number of seconds in 1..3600"),
        ("DCGAN_GCS_TIMEOUT", "nan", "DCGAN_GCS_TIMEOUT='nan' must be"),
        ("JOB_COMPLETION_INDEX", "-1", "JOB_COMPLETION_INDEX='-1' must be a non-negative integer"),
        ("DCGAN_NUM_TASKS", "2x", "DCGAN_NUM_TASKS='2x' must be a non-negative integer"),
        ("DCGAN_MALLOC", "fast", "DCGAN_MALLOC='fast' must be one of tuned, default"),
        ("TF_ENABLE_ONEDNN_OPTS", "yes", "TF_ENABLE_ONEDNN_OPTS='yes' must be one of 1, true, 0, false"),
    ],
)
def test_a_bad_variable_stops_the_cli_before_any_work(tmp_path, name, value, message):
    result = run_cli("train", f"--job_dir={tmp_path}/job", "--preset=smoke", env={name: value})
    assert_one_line_error(result, message)
    assert not os.path.exists(tmp_path / "job")
    with pytest.raises(UserError, match=message.split(" must")[0]):
        environment.check({name: value})


def test_good_values_are_read():
    assert environment.gcs_timeout({}) == 60.0 and environment.gcs_timeout({"DCGAN_GCS_TIMEOUT": " 90 "}) == 90.0
    assert environment.integer("JOB_COMPLETION_INDEX", {"JOB_COMPLETION_INDEX": "3"}) == 3
    assert environment.integer("DCGAN_NUM_TASKS", {}, 0) == 0
