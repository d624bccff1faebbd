"""The command line: flag values -> a validated job config; `--help` from the config fields; --config files.

Precedence is dataclass default < --preset < --config file < explicit flag. Every
unknown flag and invalid value is reported at once, in one line, before
TensorFlow is imported, so a typo fails in milliseconds:

    python -c "from trainer import command_line as c; print(c.resolve('train', {'preset': 'smoke', 'job_dir': 'x'}))"
    python -c "from trainer import command_line; print(command_line.help_text('sample'))"
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import textwrap
import typing
from typing import Any, Mapping

from trainer.config import (
    SHARD_PRESETS,
    TRAIN_PRESETS,
    AugmentConfig,
    EvaluateConfig,
    LaunchConfig,
    SampleConfig,
    ShardJobConfig,
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
    if typing.get_origin(annotation) is typing.Union:  # Optional[T]
        inner = [a for a in typing.get_args(annotation) if a is not type(None)][0]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "auto", "")):
            return None
        return _coerce(name, value, inner)
    if annotation not in _COERCE:
        raise TypeError(f"unsupported annotation {annotation!r} for {name}")
    return _COERCE[annotation](name, value)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UserError(f"--{name}={value!r} must be true or false")


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise UserError(f"--{name} needs an integer value, e.g. --{name}=8")
    try:
        as_float = float(str(value).replace("_", ""))
    except ValueError:
        raise UserError(f"--{name}={value!r} must be an integer") from None
    if not math.isfinite(as_float) or as_float != int(as_float):
        raise UserError(f"--{name}={value!r} must be an integer")
    return int(as_float)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise UserError(f"--{name} needs a number, e.g. --{name}=0.5")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"--{name}={value!r} must be a number") from None
    if not math.isfinite(number):
        raise UserError(f"--{name}={value!r} must be a finite number")
    return number


def _as_str(name: str, value: Any) -> str:
    if isinstance(value, bool):
        raise UserError(f"--{name} needs a value, e.g. --{name}=...")
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


_COERCE = {bool: _as_bool, int: _as_int, float: _as_float, str: _as_str}


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
            if not stat.S_ISREG(os.stat(path).st_mode):  # /dev/zero never ends, a FIFO blocks the open
                raise UserError(f"--config={path}: not a regular file; pass a saved config.json")
            with open(path, "rb") as f:
                blob = f.read(MAX_CONFIG_BYTES + 1)  # bounded, whatever the file claims to be
            if len(blob) > MAX_CONFIG_BYTES:
                raise UserError(f"--config={path}: over {MAX_CONFIG_BYTES >> 20} MiB; not a saved config.json")
            text = blob.decode("utf-8")
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
    """Each field's help text, written beside it (`config.common.flag(default, help)`). A field a
    subclass redefines without help keeps its base class's text."""
    helps: dict[str, str] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for klass in reversed(cls.__mro__):
        for field in getattr(klass, "__dataclass_fields__", {}).values():
            if field.name in names and field.metadata.get("help"):
                helps[field.name] = field.metadata["help"]
    return helps


_SHARD_OUTPUT = [
    "output", "preset", "num_images", "images_per_shard", "seed", "batch_size", "image_format", "png_compression",
    "jpeg_quality", "verify", "progress", "progress_secs",
]  # fmt: skip
_SHARD_AUGMENTATION = list(ShardJobConfig.AUGMENTATION)
# --help shows each command's flags in these groups, in this order (a test checks every flag is in one).
HELP_GROUPS: dict[str, list[tuple[str, list[str]]]] = {
    "train": [
        ("output", ["job_dir", "preset", "overwrite", "dry_run", "progress"]),
        ("data", ["dataset", "resolution", "channels", "conditional", "folder_labels", "on_corrupt",
                  "dataset_staging", "stream_buffer_mb"]),
        ("model", ["latent_dim", "width", "g_conditioning", "d_spectral_norm", "minibatch_std",
                   "minibatch_std_views"]),
        ("optimisation", ["batch_size", "steps", "g_lr", "d_lr", "beta1", "beta2", "loss", "r1_gamma",
                          "lecam_weight", "class_loss_weight", "class_loss", "class_fade_in", "mode_seeking_weight",
                          "ema_decay", "seed"]),
        ("augmentation (DiffAugment, ADA)", ["diffaugment", "dihedral_p", "real_augment", "ada_target",
                                             "ada_kimg"]),
        ("schedule and quality tracking", ["log_every", "sample_every", "checkpoint_every", "keep_checkpoints",
                                           "tensorboard_upload_secs", "profile_steps", "kid_every", "kid_samples",
                                           "feature_model", "select_by"]),
        ("distribution and hardware", ["mixed_precision", "devices", "xla", "sync_batchnorm", "fused_batchnorm",
                                       "steps_per_call", "deterministic"]),
    ],
    "sample": [
        ("generator", ["generator", "labels", "truncation", "copies_per_sample", "mixed_precision", "preview"]),
        ("filters and teacher", ["max_memorization", "train_data", "teacher", "teacher_members", "teacher_steps",
                                 "min_confidence"]),
        ("output", _SHARD_OUTPUT),
        ("augmentation (Keras ImageDataGenerator's arguments)", _SHARD_AUGMENTATION),
        ("distribution", ["task_index", "num_tasks"]),
    ],
    "augment": [
        ("data", ["dataset", "resolution", "channels", "folder_labels", "on_corrupt"]),
        ("output", _SHARD_OUTPUT),
        ("augmentation (Keras ImageDataGenerator's arguments)", _SHARD_AUGMENTATION),
        ("distribution", ["task_index", "num_tasks"]),
    ],
    "evaluate": [
        ("data", ["real", "synthetic", "train_data", "num_samples", "resolution", "allow_overlap"]),
        ("fidelity and memorization", ["feature_model", "feature_data", "feature_steps", "kid_subsets",
                                       "memorization_quantile"]),
        ("downstream", ["downstream", "downstream_steps", "seeds", "tune_seeds", "validation_fraction", "tune_folds",
                        "policies", "mixes", "shares", "reuse_scores", "seed"]),
        ("output", ["report"]),
    ],
    "launch": [
        ("what and where", ["target", "job", "image", "name", "dry_run"]),
        ("machines", ["gpus", "accelerator", "machine_type", "workers", "tasks", "parallelism", "spot",
                      "max_restarts"]),
        ("Google Cloud", ["project", "region", "zone", "existing_vm", "vm_image_family", "service_account",
                          "vertex_tensorboard"]),
        ("Kubernetes", ["namespace", "cpu", "memory", "cache_size"]),
    ],
}  # fmt: skip
# Two examples per command (a test checks that their flags exist).
EXAMPLES: dict[str, list[str]] = {
    "train": [
        "dcgan train --job_dir=runs/digits                       # the bundled digits, 32 px, 3000 steps",
        "dcgan train --job_dir=runs/photos --dataset=photos/ --resolution=64 --steps=20000",
    ],
    "sample": [
        "dcgan sample --generator=runs/digits --output=out/synth --num_images=100000",
        "dcgan sample --generator=runs/digits --output=grid.png --preview=100    # one picture, a row per class",
    ],
    "augment": [
        "dcgan augment --dataset=digits:train --output=out/aug --num_images=100000",
        "dcgan augment --dataset=photos/ --resolution=64 --output=out/aug --horizontal_flip=true",
    ],
    "evaluate": [
        "dcgan evaluate --real=digits:test --synthetic=runs/digits --train_data=digits:train",
        "dcgan evaluate --real=digits:test --synthetic=out/synth --downstream=false --report=eval/report.json",
    ],
    "launch": [
        "dcgan launch vertex --job=train --image=IMAGE --job_dir=gs://BUCKET/runs/digits --dry_run",
        "dcgan launch k8s --job=sample --image=IMAGE --tasks=16 --generator=gs://B/runs/digits --output=gs://B/synth",
    ],
}
HELP_WIDTH = 100


def _flag_rows(rows: list[tuple[str, str]], column: int) -> list[str]:
    """'  --name=DEFAULT   text', the text wrapped under itself."""
    out = []
    for left, text in rows:
        lines = textwrap.wrap(text, HELP_WIDTH - column) or [""]
        if len(left) + 2 > column:  # a long default: the text starts on the next line
            out.append(left)
            lines_out = lines
        else:
            out.append(f"{left:<{column}}{lines[0]}".rstrip())
            lines_out = lines[1:]
        out += [" " * column + line for line in lines_out]
    return out


def help_text(job: str) -> str:
    """`dcgan JOB --help`: usage, the flags in groups with their defaults, presets, examples."""
    cls = CONFIG_CLASSES[job]
    helps = field_help(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if job == "launch":
        lines = [
            "usage: dcgan launch vm|vertex|k8s --job=train|sample --image=IMAGE [--flag=value ...] [JOB FLAGS]",
            "",
            "Renders what runs the job (a VM command, a Vertex AI CustomJobSpec, a Kubernetes Indexed Job) into",
            "--spec_dir and submits it. Flags that are not launch flags are the job's own (see `dcgan train",
            "--help`, `dcgan sample --help`): they are checked here and passed through.",
        ]
    else:
        lines = [
            f"usage: dcgan {job} [--flag=value ...] [--config=SAVED/config.json]",
            "",
            "--config reruns a saved job's config.json (explicit flags win); precedence: default < --preset",
            "< --config < flag.",
        ]
    groups = HELP_GROUPS.get(job, []) + [("other", [n for n in fields if n not in _grouped(job)])]
    rows = {n: (f"  --{n}={fields[n].default!r}", helps.get(n, "")) for n in fields}
    column = min(32, max(len(left) for left, _ in rows.values()) + 2)
    for title, names in groups:
        names = [n for n in names if n in fields]
        if names:
            lines += ["", f"{title}:"] + _flag_rows([rows[n] for n in names], column)
    extra = [
        ("  --verbose", "TensorFlow's own start-up and C++ log lines too"),
        ("  --print_config", "the whole config first (else the flags that differ from their defaults)"),
    ]
    if job == "launch":
        extra = [
            ("  --spec_dir=''", "where rendered files go ('' = .dcgan-launch/NAME/)"),
            ("  --gpus_per_worker", "the same as --gpus"),
        ] + extra
    lines += ["", "every command:" if job != "launch" else "also:"] + _flag_rows(extra, column)
    if job != "launch":
        lines += ["", "presets (--preset=NAME, applied before your flags):"]
        for name, values in PRESETS[job].items():
            shown = " ".join(f"--{k}={v}" for k, v in values.items()) or "the defaults above"
            lines += textwrap.wrap(
                f"{name}: {shown}", HELP_WIDTH, initial_indent="  ", subsequent_indent="      ", break_on_hyphens=False
            )
    lines += ["", "examples:"] + [f"  {example}" for example in EXAMPLES[job]]
    return "\n".join(lines)


def _grouped(job: str) -> set[str]:
    return {name for _, names in HELP_GROUPS.get(job, []) for name in names}
