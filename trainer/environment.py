"""The numeric environment variables dcgan-factory reads, validated: a bad value is one clear line.

    DCGAN_GCS_TIMEOUT     read timeout in seconds per storage request (default 60)
    DCGAN_GCS_RETRY_DEADLINE  seconds one storage call keeps retrying (default 300)
    DCGAN_NUM_TASKS       sample/augment task count beside JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs)
    DCGAN_NUM_WORKERS     training workers beside JOB_COMPLETION_INDEX
    JOB_COMPLETION_INDEX  this pod's index in a Kubernetes Indexed Job
    DCGAN_MALLOC          'tuned' (default: glibc's allocator keeps freed buffers, trainer/allocator.py)
                          or 'default' (glibc's own settings)
    TF_ENABLE_ONEDNN_OPTS TensorFlow's own: 1/true or 0/false (unset: dcgan turns oneDNN on, trainer/onednn.py)

and Vertex AI's output locations (`vertex_*` below): AIP_MODEL_DIR, AIP_TENSORBOARD_LOG_DIR.

`check()` runs when the CLI starts, before anything heavy, so that a bad value
fails first; the readers below raise the same errors when called directly.

    DCGAN_GCS_TIMEOUT=abc python -m trainer train --dry_run    # dcgan: error: DCGAN_GCS_TIMEOUT='abc' ...
"""

from __future__ import annotations

import math
import os
from typing import Mapping, Optional

from trainer.errors import UserError

INTEGERS = ("DCGAN_NUM_TASKS", "DCGAN_NUM_WORKERS", "JOB_COMPLETION_INDEX")


def integer(name: str, environ: Mapping[str, str] = os.environ, default: Optional[int] = None) -> Optional[int]:
    """A non-negative integer variable (or `default` when unset)."""
    text = environ.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise UserError(f"{name}={text[:40]!r} must be a non-negative integer")
    return value


def seconds(name: str, default: float, most: float, environ: Mapping[str, str] = os.environ) -> float:
    """A number of seconds in 1..most (or `default` when unset)."""
    text = environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1 <= value <= most:  # NaN fails too
        raise UserError(f"{name}={text[:40]!r} must be a number of seconds in 1..{most:g}")
    return value


def gcs_timeout(environ: Mapping[str, str] = os.environ) -> float:
    """DCGAN_GCS_TIMEOUT: seconds a storage request may take to answer (default 60)."""
    return seconds("DCGAN_GCS_TIMEOUT", 60.0, 3600, environ)


def gcs_retry_deadline(environ: Mapping[str, str] = os.environ) -> float:
    """DCGAN_GCS_RETRY_DEADLINE: seconds one storage call keeps retrying (default 300)."""
    return seconds("DCGAN_GCS_RETRY_DEADLINE", 300.0, 86400, environ)


MALLOC_CHOICES = ("tuned", "default")


def malloc(environ: Mapping[str, str] = os.environ) -> str:
    """DCGAN_MALLOC: 'tuned' (when unset) or 'default'."""
    text = environ.get("DCGAN_MALLOC", "tuned")
    if text.strip().lower() not in MALLOC_CHOICES:
        raise UserError(f"DCGAN_MALLOC={text[:40]!r} must be one of {', '.join(MALLOC_CHOICES)}")
    return text.strip().lower()


ONEDNN_CHOICES = {"1": True, "true": True, "0": False, "false": False}  # what TensorFlow accepts


def onednn(environ: Mapping[str, str] = os.environ) -> Optional[bool]:
    """TF_ENABLE_ONEDNN_OPTS: None when unset, else whether it asks for oneDNN. TensorFlow itself ignores a
    value outside its four (with a log line) and falls back to its default; here that is an error."""
    text = environ.get("TF_ENABLE_ONEDNN_OPTS")
    if text is None:
        return None
    if text.lower() not in ONEDNN_CHOICES:
        raise UserError(f"TF_ENABLE_ONEDNN_OPTS={text[:40]!r} must be one of 1, true, 0, false")
    return ONEDNN_CHOICES[text.lower()]


def check(environ: Mapping[str, str] = os.environ) -> None:
    """Validates every variable above that is set."""
    malloc(environ)
    onednn(environ)
    gcs_timeout(environ)
    gcs_retry_deadline(environ)
    for name in INTEGERS:
        integer(name, environ)


def vertex_model_dir(environ: Mapping[str, str] = os.environ) -> str:
    """AIP_MODEL_DIR: where Vertex AI picks up the model ('' when not on Vertex AI)."""
    return environ.get("AIP_MODEL_DIR", "").strip()


def vertex_job_dir(environ: Mapping[str, str] = os.environ) -> str:
    """The job dir Vertex AI implies: baseOutputDirectory, the parent of AIP_MODEL_DIR ('' when unset)."""
    model_dir = vertex_model_dir(environ).rstrip("/")
    return model_dir.rsplit("/", 1)[0] if "/" in model_dir else ""


def vertex_tensorboard_dir(environ: Mapping[str, str] = os.environ) -> str:
    """AIP_TENSORBOARD_LOG_DIR: where Vertex AI TensorBoard reads logs ('' when unset)."""
    return environ.get("AIP_TENSORBOARD_LOG_DIR", "").strip()
