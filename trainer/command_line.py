"""The command line: flag values -> a validated job config; `--help` from the config fields; --config files.

Precedence is dataclass default < --preset < --config file < explicit flag. Every
unknown flag and invalid value is reported at once, in one line, before
TensorFlow is imported, so a typo fails in milliseconds:

    python -c "from trainer import command_line as c; print(c.resolve('train', {'preset': 'smoke', 'job_dir': 'x'}))"
    python -c "from trainer import command_line; print(command_line.help_text('sample'))"
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import math
import os
import re
import tokenize
import typing
from typing import Any, Mapping

from trainer.config import (
    SHARD_PRESETS,
    TRAIN_PRESETS,
    AugmentConfig,
    EvaluateConfig,
    LaunchConfig,
    SampleConfig,
    TrainConfig,
)
from trainer.errors import UserError

CONFIG_CLASSES: dict[str, type] = {
    "train": TrainConfig,
    "sample": SampleConfig,
    "augment": AugmentConfig,
    "evaluate": EvaluateConfig,
    "launch": LaunchConfig,
}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "train": TRAIN_PRESETS,
    "sample": SHARD_PRESETS,
    "augment": SHARD_PRESETS,
    "evaluate": {"default": {}},
    "launch": {"default": {}},
}


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Turns a CLI value (fire already parsed literals) into the field's type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:  # Optional[T]
        inner = [a for a in typing.get_args(annotation) if a is not type(None)][0]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "auto", "")):
            return None
        return _coerce(name, value, inner)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise UserError(f"--{name}={value!r} must be true or false")
    if annotation is int:
        if isinstance(value, bool):
            raise UserError(f"--{name} needs an integer value, e.g. --{name}=8")
        try:
            as_float = float(str(value).replace("_", ""))
        except ValueError:
            raise UserError(f"--{name}={value!r} must be an integer") from None
        if not math.isfinite(as_float) or as_float != int(as_float):
            raise UserError(f"--{name}={value!r} must be an integer")
        return int(as_float)
    if annotation is float:
        if isinstance(value, bool):
            raise UserError(f"--{name} needs a number, e.g. --{name}=0.5")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"--{name}={value!r} must be a number") from None
        if not math.isfinite(number):
            raise UserError(f"--{name}={value!r} must be a finite number")
        return number
    if annotation is str:
        if isinstance(value, bool):
            raise UserError(f"--{name} needs a value, e.g. --{name}=...")
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value)
    raise TypeError(f"unsupported annotation {annotation!r} for {name}")


def _is_text(annotation: Any) -> bool:
    """str, or Optional[str]."""
    if typing.get_origin(annotation) is typing.Union:
        return set(typing.get_args(annotation)) == {str, type(None)}
    return annotation is str


def text_flags(job: str, launched_job: str = "") -> set[str]:
    """The flags of `job` whose value is text (a path, a name, a list spelled as text): their value is
    the token as typed. `launch` passes the launched job's own flags through, so it has theirs too."""
    classes = [CONFIG_CLASSES[job]]
    if job == "launch" and launched_job in ("train", "sample"):
        classes.append(CONFIG_CLASSES[launched_job])
    names = {"config", "spec_dir"} if job == "launch" else {"config"}
    for cls in classes:
        names |= {name for name, hint in typing.get_type_hints(cls).items() if _is_text(hint)}
    return names


def as_typed(job: str, tokens: list[str]) -> list[str]:
    """Command-line tokens for fire, with every text flag's value handed over as a Python string literal.

    fire reads each value as a Python literal, so `--job_dir=1e5` would arrive as the float 100000.0,
    `--job_dir=True` as a bool and `--labels=1,2` as a tuple; a text flag must get what was typed.
    Other flags keep fire's parsing (their values are coerced to the field's type in `resolve`)."""
    launched = next((t.partition("=")[2] for t in tokens if t.startswith("--job=")), "")
    text = text_flags(job, launched)
    out, pending = [], False
    for token in tokens:
        if token.startswith("--") and len(token) > 2:
            name, eq, value = token[2:].partition("=")
            is_text = name.replace("-", "_") in text
            pending = is_text and not eq  # `--flag value`: the value is the next token
            out.append(f"--{name}={value!r}" if is_text and eq else token)
        elif pending:
            out.append(repr(token))
            pending = False
        else:
            out.append(token)
    return out


def resolve(job: str, flags: Mapping[str, Any]):
    """Builds and validates the config of `job` from CLI flags.

    Raises UserError naming every unknown flag or invalid value at once.
    """
    cls = CONFIG_CLASSES[job]
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    saved: dict[str, Any] = {}
    if "config" in flags and job != "launch":
        flags = dict(flags)
        saved = read_saved_config(job, cls, flags.pop("config"))
    unknown = sorted(set(flags) - fields)
    if unknown:
        raise UserError(
            f"unknown flag{'s' if len(unknown) > 1 else ''} for `dcgan {job}`: "
            + ", ".join("--" + u for u in unknown)
            + f" (see `dcgan {job} --help`)"
        )
    values = {name: _coerce(name, v, hints[name]) for name, v in flags.items()}
    saved = {name: _coerce(name, v, hints[name]) for name, v in saved.items()}
    presets = PRESETS[job]
    preset = values.get("preset", saved.get("preset", getattr(cls, "preset", "default")))
    if preset not in presets:
        raise UserError(f"--preset={preset!r} is unknown; choose one of {sorted(presets)}")
    merged = {**presets[preset], **saved, **values}  # explicit flags win over the saved config
    if "preset" in fields:
        merged["preset"] = preset
    config = cls(**merged)
    errors = config.validate()
    if errors:
        raise UserError("; ".join(errors))
    return config


MAX_CONFIG_BYTES = 1 << 20


def read_saved_config(job: str, cls, path: Any) -> dict[str, Any]:
    """--config=PATH: the fields of a config.json saved by an earlier job (a local file or a gs:// object)."""
    path = str(path)
    try:
        if "://" in path:
            from trainer import storage

            storage.check_url(path)
            parent, _, name = path.rstrip("/").rpartition("/")
            text = storage.open_store(parent).get_text(name)
        else:
            if os.path.getsize(path) > MAX_CONFIG_BYTES:
                raise UserError(f"--config={path}: over {MAX_CONFIG_BYTES >> 20} MiB; not a saved config.json")
            with open(path, encoding="utf-8") as f:
                text = f.read()
        data = json.loads(text)
    except FileNotFoundError:
        raise UserError(f"--config={path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UserError(f"--config={path}: not a readable JSON config ({str(err)[:120]})") from None
    if not isinstance(data, dict):
        raise UserError(f"--config={path}: expected a JSON object of flags, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k)[:40] for k in data if k not in names)
    if unknown:
        raise UserError(
            f"--config={path}: fields that `dcgan {job}` does not have: {', '.join(unknown[:8])} "
            f"(is it a saved `dcgan {job}` config.json?)"
        )
    return {k: v for k, v in data.items() if k not in ("overwrite", "dry_run")}  # one-off actions are not replayed


def field_help(cls) -> dict[str, str]:
    """Each field's help text, read from the class body (the one place it is written): the comment
    on the field's line, else the comment lines just above it. A field a subclass redefines without
    a comment keeps its base class's text."""
    helps: dict[str, str] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # no source (a frozen app): flags simply show no help
            continue
        comments: dict[int, tuple[str, bool]] = {}  # line -> (text, alone on its line)
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = (token.string.lstrip("#").strip(), not token.line[: token.start[1]].strip())
        lines = source.splitlines()
        for number, line in enumerate(lines, start=1):
            match = re.match(r"    ([a-z_][a-z0-9_]*)\s*:[^=]*=", line)
            if not match or match.group(1) not in names:
                continue
            text, alone = comments.get(number, ("", True))
            if not text or alone:
                above, row = [], number - 1
                while row in comments and comments[row][1]:
                    above.insert(0, comments[row][0])
                    row -= 1
                text = " ".join(above)
            if text:
                helps[match.group(1)] = text
    return helps


def help_text(job: str) -> str:
    cls = CONFIG_CLASSES[job]
    helps = field_help(cls)
    lines = [
        f"usage: dcgan {job} [--config=JOB_DIR/config.json] [--flag=value ...]",
        "",
        "--config reruns a saved job's config.json (explicit flags win).",
        "",
        "flags (defaults before any preset):",
    ]
    for f in dataclasses.fields(cls):
        lines.append(f"  --{f.name:<24} {f.default!r:<12} {helps.get(f.name, '')}".rstrip())
    lines.append("")
    if job == "launch":
        lines[0] = "usage: dcgan launch vm|vertex|k8s --job=train|sample --image=IMAGE [--flag=value ...] [JOB FLAGS]"
        lines.append("")
        lines.append(
            "other flags are the job's own (see `dcgan train --help`, `dcgan sample --help`) and pass through;"
        )
        lines.append("--gpus_per_worker is the same as --gpus; --spec_dir picks where rendered files go.")
        return "\n".join(lines)
    lines.append("presets: " + ", ".join(f"{k} {v}" for k, v in PRESETS[job].items()))
    return "\n".join(lines)
