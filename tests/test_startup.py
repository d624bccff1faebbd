"""startup.prepare(): the allocator and the CPU kernels set before TensorFlow loads, as every entry point does."""

import os
import subprocess
import sys

import pytest

from trainer import allocator, startup
from trainer.errors import UserError

from conftest import REPO

PREPARED = """
from trainer import onednn, startup
done = startup.prepare()
print(len(done["allocator"]), done["onednn"], onednn.active())
"""


@pytest.mark.skipif(
    os.uname().machine != "x86_64" or allocator._glibc() is None, reason="glibc on x86-64: both settings apply"
)
@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, f"{len(allocator.SETTINGS)} True True"),
        ({"DCGAN_MALLOC": "default", "TF_ENABLE_ONEDNN_OPTS": "0"}, "0 False False"),
    ],
    ids=["defaults", "user-kept"],
)
def test_prepare_sets_both_before_tensorflow_loads_and_keeps_the_users_choice(environ, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("DCGAN_MALLOC", "TF_ENABLE_ONEDNN_OPTS")}
    out = subprocess.run(
        [sys.executable, "-c", PREPARED], cwd=REPO, env={**env, **environ}, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == expected


def test_prepare_refuses_a_bad_value_in_one_line():
    with pytest.raises(UserError, match="TF_ENABLE_ONEDNN_OPTS"):
        startup.prepare({"TF_ENABLE_ONEDNN_OPTS": "yes"})
