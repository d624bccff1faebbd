"""Compiled training steps kept for the life of a process and lent to one caller at a time.

Tracing a training step (a model's graph, its gradient, the optimizer op by op) costs seconds a model,
where one step of a small model costs a tenth of a second. A process that trains many small models of
one shape (the judge classifiers of `dcgan evaluate` and of the usefulness experiment) therefore builds
each step once and reuses it. A step holds variables, so it is lent to one caller at a time: a caller
asking for a key whose steps are all out gets a new one. At most `kept` idle steps stay, the least
recently returned dropped first. A step whose borrower raised is dropped, not returned.

    from trainer import step_pool
    pool = step_pool.StepPool(kept=2)
    with pool.lend(("32x32x1", 10), make=lambda: object()) as step:
        ...  # the caller resets and uses `step`; later lends of the key get it back
    print(pool.idle())
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Hashable, Iterator, TypeVar

Step = TypeVar("Step")


class StepPool:
    def __init__(self, kept: int = 4):
        self.kept = kept
        self._lock = threading.Lock()
        self._idle: list[tuple[Hashable, object]] = []  # most recently returned last

    @contextlib.contextmanager
    def lend(self, key: Hashable, make: Callable[[], Step]) -> Iterator[Step]:
        """An idle step of `key` (the most recently returned), or `make()`'s (called outside the pool's lock,
        so building one does not hold up other keys' callers); back in the pool when the block ends."""
        with self._lock:
            found = next((i for i in reversed(range(len(self._idle))) if self._idle[i][0] == key), None)
            step = self._idle.pop(found)[1] if found is not None else None
        if step is None:
            step = make()
        yield step  # an exception from the block propagates and the step, perhaps half-updated, is dropped
        with self._lock:
            self._idle.append((key, step))
            del self._idle[: max(0, len(self._idle) - self.kept)]

    def idle(self) -> list[tuple[Hashable, object]]:
        """(key, step) of the idle steps, least recently returned first."""
        with self._lock:
            return list(self._idle)
