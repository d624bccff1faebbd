"""A one-line terminal progress bar: step, losses, images/s, ETA.

On a terminal it redraws in place; in a log file (not a TTY) it prints a line
per update so that logs stay readable.
"""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressBar:
    def __init__(self, total: int, start: int = 0, enabled: bool = True, stream=None, width: int = 24):
        self.total, self.start, self.enabled = total, start, enabled
        self.stream = stream or sys.stdout
        self.width = width
        self.tty = self.stream.isatty()
        self.began = time.monotonic()

    def update(self, step: int, images_per_sec: float, **values: float) -> None:
        if not self.enabled:
            return
        done = (step - self.start) / max(1, self.total - self.start)
        elapsed = time.monotonic() - self.began
        eta = elapsed / done * (1 - done) if done > 0 else 0.0
        filled = int(self.width * step / max(1, self.total))
        bar = "#" * filled + "." * (self.width - filled)
        shown = " ".join(f"{k}={v:.3f}" for k, v in values.items())
        line = f"[{bar}] step {step}/{self.total} {shown} {images_per_sec:.1f} img/s ETA {_clock(eta)}"
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
