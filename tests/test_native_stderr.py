"""TensorFlow's C++ start-up lines stay off the terminal; real errors, even an abort's last words, do not."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from trainer import native_stderr

from conftest import REPO

CHATTER = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    b"I0000 00:00:1796318182.505250   31651 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    b"GPU will not be used.",
    b"E0000 00:00:1796318194.506540   31651 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    b"Failed call to cuInit: UNKNOWN ERROR (303)",
    b"W0000 00:00:1796318194.506540   31651 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
    b"E0512 10:31:02.120512   4242 meta_optimizer.cc:966] remapper failed: INVALID_ARGUMENT: Mutation::Apply error",
    b"I0512 10:31:02.120512   4242 port.cc:153] oneDNN custom operations are on.",
    b"E0000 00:00:1796413034.180213   25135 util.cc:131] oneDNN supports DT_UINT8 only on platforms with AVX-512. "
    b"Falling back to the default Eigen-based implementation if present.",
]
REAL = [
    b"E0512 10:31:02.120512   4242 gpu_device.cc:99] Out of memory while trying to allocate 17179869184 bytes.",
    b"F0512 10:31:02.120512   4242 cuda_platform.cc:52] Check failed: failed call to cuInit",
    b"Traceback (most recent call last):",
    b"dcgan: error: something the user must fix",
    b"2026-01-01 00:00:00.000000: E external/xla/xla/service/gpu/gpu_compiler.cc:1] not absl's format",
]


def test_start_up_chatter_is_dropped_and_everything_else_passes():
    assert all(native_stderr.dropped(line) for line in CHATTER)
    assert not any(native_stderr.dropped(line) for line in REAL)
    # TF_CPP_MIN_LOG_LEVEL below 2 asks for INFO and WARNING lines: they pass then.
    assert not native_stderr.dropped(CHATTER[1], "0") and native_stderr.dropped(CHATTER[2], "0")


def test_the_filter_forwards_real_lines_in_order_even_when_the_process_aborts():
    """A child writes chatter and real lines to file descriptor 2 (as C++ does), Python lines to sys.stderr,
    then dies by abort(): the FATAL line written just before still arrives. The CLI prints its own error
    after leaving the block, so the error stays the last line."""
    script = textwrap.dedent(
        """
        import os, sys
        from trainer import native_stderr
        chatter, real = {chatter!r}, {real!r}
        with native_stderr.filtered():
            for line in chatter + real:
                os.write(2, line + b"\\n")
            print("python line", file=sys.stderr)
        os.write(2, b"after the block\\n")
        with native_stderr.filtered():
            os.write(2, chatter[0] + b"\\n" + b"F0101 00:00:01.5 9 x.cc:1] last words\\n")
            os.abort()
        """
    ).format(chatter=CHATTER, real=REAL)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, cwd=REPO, env={"PYTHONPATH": REPO}, timeout=60
    )
    assert result.returncode != 0  # aborted
    lines = result.stderr.splitlines()
    # Python's sys.stderr bypasses the filter (a terminal stays a terminal to it), so within the block its
    # lines may come before the filtered ones; leaving the block waits until all of them have arrived.
    lines.remove(b"python line")
    assert lines == [*REAL, b"after the block", b"F0101 00:00:01.5 9 x.cc:1] last words"], lines
