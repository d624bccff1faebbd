"""The allocator settings take effect: freed buffers are reused instead of being faulted back in."""

import subprocess
import sys

import pytest

from trainer import allocator
from trainer.errors import UserError

from conftest import REPO

# Rounds of four 1..30 MiB buffers, written and freed, as TensorFlow's kernels do each step.
CHURN = """
import ctypes, random, resource, sys
from trainer import allocator
applied = allocator.tune({"DCGAN_MALLOC": sys.argv[1]})
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
rng = random.Random(0)
def rounds(n):
    for _ in range(n):
        buffers = [(libc.malloc(size), size) for size in (rng.randint(1, 30) << 20 for _ in range(4))]
        for pointer, size in buffers:
            ctypes.memset(pointer, 1, size)
        for pointer, _ in buffers:
            libc.free(pointer)
rounds(5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(40)
print(len(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def churn(choice: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, choice], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    applied, faults = out.split()
    return int(applied), int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux") or allocator._glibc() is None, reason="glibc only")
def test_tuned_malloc_reuses_freed_buffers_where_the_default_faults_them_back_in():
    applied, tuned = churn("tuned")
    none, default = churn("default")
    assert applied == len(allocator.SETTINGS) and none == 0
    assert default > 1_000  # ~2.4 GiB written per run: fresh pages (4 KiB, or 2 MiB with THP) every round
    assert tuned < default / 20, (tuned, default)


def test_a_bad_choice_is_a_user_error_and_default_sets_nothing():
    assert allocator.tune({"DCGAN_MALLOC": "default"}) == {}
    with pytest.raises(UserError, match="DCGAN_MALLOC='x' must be one of tuned, default"):
        allocator.tune({"DCGAN_MALLOC": "x"})
