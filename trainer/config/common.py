"""What every command's config shares: the printable base class, path checks that run before
TensorFlow starts, and small parsers.

    python -c "from trainer.config import common; print(common.RESOLUTIONS)"
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shlex
import textwrap
from typing import Any, Optional

from trainer.errors import UserError

RESOLUTIONS = (32, 64, 128, 256)


def flag(default: Any, help: str) -> Any:  # noqa: A002 - the word --help shows
    """A config field and its `--help` text, kept together where no formatter can split them."""
    return dataclasses.field(default=default, metadata={"help": help})


# A split of an in-memory dataset: NAME:train, NAME:test, optionally sliced (NAME:train[:10%]).
SPLIT_PATTERN = re.compile(r"^(?P<base>.+):(?P<split>train|test)(\[(?P<lo>[^:\]]*):(?P<hi>[^\]]*)\])?$")


def missing_dataset(flag: str, value: str) -> Optional[str]:
    """One line if a local dataset path names nothing, checked before TensorFlow starts (else None)."""
    match = SPLIT_PATTERN.match(value)
    base = match["base"] if match else value
    if not value or base == "digits" or "://" in base:
        return None
    if any(c in base for c in "*?["):
        return None if glob.glob(base) else f"--{flag}={value}: no files match {base}"
    if not os.path.exists(base):
        return (
            f"--{flag}={value}: no such file or folder (expected 'digits', a folder of images, a .npz file "
            "or TFRecord shards)"
        )
    return None


def missing_file(flag: str, value: str, what: str) -> Optional[str]:
    """One line if a local file flag names nothing (gs:// and '' are not checked here)."""
    if not value or "://" in value or os.path.isfile(value):
        return None
    return f"--{flag}={value}: no such file ({what})"


def unwritable_file(flag: str, value: str) -> Optional[str]:
    """One line if a local output file cannot be written where --FLAG points (checked before any work).

    Refused: a URL (the file is written with plain file I/O), an existing folder, and a path whose
    nearest existing parent is a file or a folder this user cannot write."""
    if not value:
        return None
    if "://" in value:
        return f"--{flag}={value}: a local path is needed (write it here, then copy it to the bucket)"
    if os.path.isdir(value):
        return f"--{flag}={value}: is a folder; give a file name (e.g. {os.path.join(value, 'report.json')})"
    parent = os.path.dirname(os.path.abspath(value))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"--{flag}={value}: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"--{flag}={value}: cannot write in {parent} (permission denied)"
    return None


def missing_generator(flag: str, value: str) -> Optional[str]:
    """One line if a local --generator holds no exported generator, checked before TensorFlow starts.

    The places trainer/export.py's resolve_path looks: the .keras file, DIR/generator.keras, JOB_DIR/export/..."""
    from trainer import jobdir  # imports this module: only once both are loaded

    if not value or "://" in value:
        return None
    candidates = (value, os.path.join(value, jobdir.MODEL_FILE), os.path.join(value, *jobdir.EXPORT_MODEL.split("/")))
    if any(c.endswith(".keras") and os.path.isfile(c) for c in candidates):
        return None
    reason = "no such file or folder" if not os.path.exists(value) else "no exported generator there"
    return f"--{flag}={value}: {reason} (expected JOB_DIR/{jobdir.EXPORT_MODEL}; did the training job finish?)"


SHARD_MANIFEST = "manifest.json"  # trainer/shards.py's MANIFEST (that module imports TensorFlow)


def unfinished_output(value: str) -> Optional[str]:
    """One line if a local shard output has no manifest (`--verify` has nothing to check)."""
    if not value or "://" in value or os.path.isfile(os.path.join(value, SHARD_MANIFEST)):
        return None
    if not os.path.exists(value):
        return f"--output={value}: no such folder; nothing to verify"
    return f"--output={value}: no {SHARD_MANIFEST}; the output is not complete"


PRECISIONS = ("off", "float16", "bfloat16")


def failed(checks) -> list[str]:
    """The messages of the (failed, message) pairs that failed."""
    return [message for bad, message in checks if bad]


class _Printable:
    """JSON, a full listing and a short summary for any config dataclass."""

    COMMAND = ""  # the `dcgan` command the config belongs to
    PRESETS: dict = {}  # --preset name -> the flags it sets (a command with presets names its own)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str):
        """Reads a config saved by `to_json`, ignoring fields this version lacks."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError(f"a JSON object was expected, not {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def listing(self) -> str:
        """Every field and its value, a line each (`--dry_run`, `--print_config`)."""
        rows = [f"  {k:<18} {v!r}" for k, v in dataclasses.asdict(self).items()]
        return "\n".join([f"{type(self).__name__}:"] + rows)

    def changed(self) -> dict[str, Any]:
        """The fields whose value differs from the default (after the preset, which is listed if not 'default')."""
        baseline = {f.name: f.default for f in dataclasses.fields(self)}
        baseline.update(self.PRESETS.get(getattr(self, "preset", ""), {}))
        return {k: v for k, v in dataclasses.asdict(self).items() if v != baseline.get(k)}

    def full_config_at(self) -> str:
        """Where the whole config is kept ('' when only `--print_config` shows it)."""
        return ""

    def path_errors(self) -> list[str]:
        """One message per local file or folder that a flag names and that is not there (or not usable).

        The CLI checks these before TensorFlow starts; `validate` does not, so that a config can be built
        for files that appear later (a job dir still training, a test's placeholder)."""
        return []

    def describe(self) -> str:
        """One or two lines: the flags that differ from their defaults, and where the full config is.

        e.g. `dcgan train --job_dir=runs/a --preset=smoke (full config goes to runs/a/config.json)`"""
        shown = " ".join(f"--{k}={shlex.quote(str(v))}" for k, v in self.changed().items())
        where = self.full_config_at()
        tail = (
            f"(full config goes to {where})" if where else "(every other flag at its default; --print_config lists all)"
        )
        return "\n  ".join(
            textwrap.wrap(
                f"dcgan {self.COMMAND} {shown} {tail}", width=160, break_on_hyphens=False, break_long_words=False
            )
        )


def precision_errors(mixed_precision: str) -> list[str]:
    """--mixed_precision's check, shared by `dcgan train` and `dcgan sample`."""
    if mixed_precision in PRECISIONS:
        return []
    return [f"--mixed_precision={mixed_precision!r} is unknown; choose one of {list(PRECISIONS)}"]


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(v) for v in str(text).strip("[]() ").split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--{name}={text!r} must be a number or a comma-separated pair") from None


def load_json(cls, text: str):
    """Reads a config saved by `to_json`, ignoring fields this version lacks (`cls.from_json`)."""
    return cls.from_json(text)
