"""TensorFlow's oneDNN CPU kernels, turned on where TensorFlow leaves them off.

TensorFlow's x86-64 wheel carries two sets of CPU kernels for convolutions,
matrix products and batch normalisation: Eigen's and oneDNN's. It turns oneDNN
on by itself only on CPUs with AVX-512 VNNI or BF16, AVX-VNNI or AMX, and leaves
it off elsewhere, for example on the AVX2-only AMD EPYC VMs common in clouds,
where oneDNN is by far the faster (measured on a 2-core AVX2 EPYC,
bench/README.md): `dcgan train` at 32x32x1 ran 225 images/s with oneDNN against
123 with Eigen's kernels, and the judge classifier's convolutions took 2.3x less
CPU time.

`enable()` sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported, on x86-64
only, unless the variable is set already: the user's choice is kept, so
TF_ENABLE_ONEDNN_OPTS=0 runs Eigen's kernels. oneDNN rounds differently (a
different order of additions), so numbers computed with it differ in the last
bits from Eigen's; the judge's score cache keys on which was used. Every entry
point calls `enable()` before TensorFlow loads, through trainer/startup.py;
library users may call it first thing:

    from trainer import startup; startup.prepare()     # this and the allocator's settings
    TF_ENABLE_ONEDNN_OPTS=0 dcgan train ...     # TensorFlow's Eigen kernels
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Mapping, MutableMapping, Optional

from trainer import environment

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def enable(
    environ: MutableMapping[str, str] = os.environ, machine: Optional[str] = None, modules: Mapping = sys.modules
) -> bool:
    """Sets TF_ENABLE_ONEDNN_OPTS=1 on x86-64 when it is unset and TensorFlow not yet loaded (it reads the
    variable when it loads); returns whether it set it. A bad value raises UserError (environment.onednn)."""
    if environment.onednn(environ) is not None or "tensorflow" in modules:
        return False
    if (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return False
    environ[VARIABLE] = "1"
    return True


def active() -> bool:
    """Whether the TensorFlow of this process runs oneDNN's kernels (imports TensorFlow)."""
    import tensorflow  # noqa: F401  (loads the library whose flag is read below)
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())
