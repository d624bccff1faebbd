"""Keeps TensorFlow's C++ start-up chatter off the terminal; every other stderr line passes (`--verbose`: all).

TensorFlow 2.21 logs through absl, and absl prints every message written before
`absl::InitializeLog()` to stderr whatever TF_CPP_MIN_LOG_LEVEL says: a banner
("WARNING: All log messages before absl::InitializeLog() ..."), "Could not find
cuda drivers", "failed call to cuInit: ... (303)" on a machine without a GPU,
oneDNN and CPU-instruction notes, and later a grappler "remapper failed" line.
None of them is the user's problem, and they push the real error off the screen.

`filtered()` points file descriptor 2 (where C++ writes) at a pipe read by a
forked filter process, which drops

  - absl's banner above,
  - INFO and WARNING lines in absl's format (`I0000 ...`, `W0000 ...`): the level
    TF_CPP_MIN_LOG_LEVEL=2 (the CLI's default) already asks TensorFlow to hide,
    unless TF_CPP_MIN_LOG_LEVEL is set below 2,
  - ERROR lines on a short list known to be harmless (HARMLESS_ERRORS),

and passes everything else, byte for byte: FATAL lines, unknown errors,
tracebacks of child processes, anything that is not in absl's format. The
filter is a separate process, so a C++ abort's last words still arrive (it reads
until the last writer is gone). Python's own sys.stderr (our messages, progress
bars, warnings) keeps writing to the real stderr directly, so a terminal is
still a terminal to it. DCGAN_NATIVE_STDERR=raw turns the filter off for a whole
environment (as `--verbose` does for one command, which also lowers TF_CPP_MIN_LOG_LEVEL to 0).

    python -c "from trainer import native_stderr as n; print(n.dropped(b'I0000 00:00:1.2 7 x.cc:3] hi\\n', '2'))"
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import sys
import time

ABSL_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# absl / glog line prefix: severity letter, MMDD, time (before absl is set up: 00:00:<epoch seconds>),
# thread id, file:line]
ABSL_LINE = re.compile(rb"^(?P<level>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ (?P<where>[^ \]]+:\d+)\] ")
# ERROR lines TensorFlow prints on healthy machines (file and message fragment).
HARMLESS_ERRORS = (
    (rb"cuda_platform\.cc|cuda_driver\.cc|cuda_executor\.cc", rb"failed call to cuInit"),
    (rb"cuda_(dnn|fft|blas)\.cc", rb"Unable to register cu(DNN|FFT|BLAS) factory"),
    (rb"computation_placer\.cc", rb"computation placer already registered"),
    (rb"meta_optimizer\.cc", rb"(remapper|layout|arithmetic_optimizer|constant_folding) failed"),
    (rb"util\.cc", rb"oneDNN supports DT_\w+ only on platforms with"),  # it falls back to Eigen kernels
)


def dropped(line: bytes, min_log_level: str = "2") -> bool:
    """Whether a stderr line (with or without its newline) is start-up chatter to keep off the terminal."""
    text = line.rstrip(b"\r\n")
    if text == ABSL_BANNER:
        return True
    match = ABSL_LINE.match(text)
    if not match:
        return False
    level = match["level"]
    if level in b"IW":
        return min_log_level.strip() not in ("0", "1")
    if level == b"E":
        return any(re.search(where, match["where"]) and re.search(what, text) for where, what in HARMLESS_ERRORS)
    return False  # FATAL


def _pump(read_fd: int, write_fd: int, min_log_level: str) -> None:
    """The filter process: copies lines from the pipe to the real stderr, dropping chatter, until EOF."""
    pending = b""
    while True:
        try:
            chunk = os.read(read_fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not dropped(line, min_log_level))
        if out:
            os.write(write_fd, out)
    if pending and not dropped(pending, min_log_level):
        os.write(write_fd, pending)


@contextlib.contextmanager
def filtered(enabled: bool = True):
    """Within the block, C++ writes to stderr go through the filter; on leaving, all of it has arrived."""
    if not enabled or not hasattr(os, "fork") or os.environ.get("DCGAN_NATIVE_STDERR") == "raw":
        yield
        return
    try:
        sys.stderr.flush()
        sys.stdout.flush()
        real = os.dup(2)
        read_fd, write_fd = os.pipe()
    except (OSError, ValueError):  # no usable stderr (closed, or replaced by an object without a descriptor)
        yield
        return
    min_log_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
    pid = os.fork()
    if pid == 0:  # the filter: no Python cleanup, no flushing of the parent's buffers
        code = 0
        try:
            for number in (signal.SIGINT, signal.SIGTERM):  # a signal to the group stops the job, and the
                signal.signal(number, signal.SIG_IGN)  # filter drains what the job says while it stops
            os.close(write_fd)
            _pump(read_fd, real, min_log_level)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(read_fd)
    python_stderr = sys.stderr
    try:
        direct = python_stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # captured (pytest's capsys) or redirected in Python
        direct = False
    if direct:  # Python's lines go straight to the real stderr (a terminal stays a terminal to them)
        sys.stderr = io.TextIOWrapper(
            os.fdopen(os.dup(real), "wb", buffering=0),
            encoding=python_stderr.encoding,
            errors="backslashreplace",
            line_buffering=True,
        )
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer here is gone; the filter sees EOF once children let go
        os.close(real)
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr
        _wait(pid, seconds=5.0)


def _wait(pid: int, seconds: float) -> None:
    """Waits for the filter to forward what is left (a lingering child process may hold the pipe open)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done or time.monotonic() > deadline:
            return
        time.sleep(0.005)
