"""Progress lines: a bar for training and sampling (step, losses, images/s, ETA), and a counter for
the other long steps (staging a gs:// dataset, `dcgan sample --verify`, `dcgan evaluate`).

Both write to stderr (stdout keeps the results: what was written, where, the
final numbers). On a terminal they redraw in place; in a log file (not a TTY)
they print a line at most every `every_secs` seconds (and the last one), so that
logs stay readable; `--progress=false` turns them off.

    python -c "from trainer.progress import Progress; p = Progress('demo', 3, 'files'); p.advance(3); p.close()"
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
    def __init__(
        self, total: int, start: int = 0, enabled: bool = True, stream=None, width: int = 24, every_secs: float = 0.0
    ):
        self.total, self.start, self.enabled = total, start, enabled
        self.stream = stream or sys.stderr  # where `--help` says progress goes
        self.width = width
        self.tty = self.stream.isatty()
        self.began = time.monotonic()
        self.every_secs, self.last_line = every_secs, -float("inf")

    def update(self, step: int, images_per_sec: float, **values: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.tty and step < self.total and now - self.last_line < self.every_secs:
            return  # a log file: at most a line every every_secs seconds, and the last one
        self.last_line = now
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


class Progress:
    """'LABEL: done/total UNIT, elapsed, ETA' for a long step that has no bar of its own."""

    def __init__(
        self, label: str, total: int, unit: str = "", enabled: bool = True, stream=None, every_secs: float = 5.0
    ):
        self.label, self.total, self.unit, self.enabled = label, total, unit, enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_secs, self.done = every_secs, 0
        self.began = self.last_line = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (self.tty or now - self.last_line >= self.every_secs) and self.done < self.total:
            self.last_line = now
            self._write(self._line(now), final=False)

    def close(self) -> None:
        if self.enabled:
            self._write(self._line(time.monotonic()), final=True)

    def _line(self, now: float) -> str:
        elapsed = now - self.began
        eta = elapsed / self.done * (self.total - self.done) if 0 < self.done < self.total else 0.0
        return (
            f"{self.label}: {self.done}/{self.total}{' ' + self.unit if self.unit else ''}, "
            f"{_clock(elapsed)} elapsed" + (f", ETA {_clock(eta)}" if eta else "")
        )

    def _write(self, line: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r" + line + ("\033[K\n" if final else "\033[K"))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
