"""What a job leaves for the OS to free when the process ends, instead of freeing it itself.

    python -c "from trainer import process_end; process_end.keep(object()); print(len(process_end.kept()))"

`dcgan` ends its process with `os._exit` once a command has returned (trainer/cli.py, `entrypoint`): a
finished job has made everything durable by then, and the interpreter's teardown would only free
TensorFlow's objects one by one. Objects whose deletion can stall (a training run's tf.distribute input
iterator, whose deletion waits for tf.data's autotune thread: trainer/train.py) are handed to `keep`; when
anything was kept, the entry point ends the process that way after a failure too (a run stopped by Ctrl+C
has committed its checkpoint). This module imports nothing, so the entry point asks without loading
TensorFlow or the trainer.
"""

from __future__ import annotations

_KEPT: list = []


def keep(*objects) -> None:
    """Holds `objects` until the process ends (callers promise the process ends soon after)."""
    _KEPT.append(objects)


def kept() -> tuple:
    """Everything kept so far, one tuple per `keep` call, oldest first."""
    return tuple(_KEPT)
