"""What a process sets before TensorFlow loads: glibc's allocator and TensorFlow's CPU kernels.

Both only take effect before `import tensorflow` (the allocator before TensorFlow
allocates, the kernels' variable before TensorFlow reads it), so every entry
point calls `prepare()` first thing: the CLI, `python -m bench`, the experiments
and the tests. Library users may do the same:

    from trainer import startup; startup.prepare()
    DCGAN_MALLOC=default TF_ENABLE_ONEDNN_OPTS=0 dcgan train ...   # glibc's and Eigen's defaults

The two settings live in trainer/allocator.py and trainer/onednn.py.
"""

from __future__ import annotations

import os
from typing import MutableMapping

from trainer import allocator, onednn


def prepare(environ: MutableMapping[str, str] = os.environ) -> dict:
    """Applies the allocator settings and turns oneDNN on where TensorFlow would not; returns what each did
    ({'allocator': the mallopt settings applied, 'onednn': whether TF_ENABLE_ONEDNN_OPTS was set}). A bad
    DCGAN_MALLOC or TF_ENABLE_ONEDNN_OPTS raises UserError (trainer/environment.py)."""
    return {"allocator": allocator.tune(environ), "onednn": onednn.enable(environ)}
