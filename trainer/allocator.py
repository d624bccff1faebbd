"""glibc's allocator kept from handing TensorFlow's buffers back to the kernel every step.

TensorFlow's CPU kernels allocate and free many buffers of 0.1 to 30 MiB per
training step. With glibc's defaults, freed buffers above the (dynamic) mmap
threshold are unmapped and the heap is trimmed above 128 KiB, so the next step
takes page faults to get the same memory back. On a 2-core AMD EPYC VM that was
30-45% of a training job's CPU time spent in the kernel and half the step rate
(`python -m bench train`: 53-61 img/s at 32x32x1 with glibc's defaults, 127-149
with these settings; bench/README.md). `tune()` sets, through `mallopt`:

    M_MMAP_THRESHOLD  32 MiB   buffers below it come from the heap, not mmap
    M_TRIM_THRESHOLD   1 GiB   free memory kept at the heap's top before trimming
    M_TOP_PAD         64 MiB   extra memory taken per heap extension

It changes where memory comes from, not what is computed. Every entry point
calls it before TensorFlow loads, through trainer/startup.py; library users may
call it first thing:

    from trainer import startup; startup.prepare()     # this and oneDNN's kernels
    DCGAN_MALLOC=default dcgan train ...    # keep glibc's own settings

Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
from typing import Mapping

from trainer import environment

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
SETTINGS = {"M_MMAP_THRESHOLD": 32 << 20, "M_TRIM_THRESHOLD": 1 << 30, "M_TOP_PAD": 64 << 20}
_CODES = {"M_MMAP_THRESHOLD": M_MMAP_THRESHOLD, "M_TRIM_THRESHOLD": M_TRIM_THRESHOLD, "M_TOP_PAD": M_TOP_PAD}


def _glibc():
    """The C library this process runs on when it is glibc (it has gnu_get_libc_version), else None."""
    libc = ctypes.CDLL(None)  # the process's own symbols, its C library's among them
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def tune(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """Applies SETTINGS (unless DCGAN_MALLOC=default); returns what was set, {} when nothing was."""
    if environment.malloc(environ) == "default":
        return {}
    libc = _glibc()
    if libc is None:
        return {}
    return {name: value for name, value in SETTINGS.items() if libc.mallopt(_CODES[name], value) == 1}
