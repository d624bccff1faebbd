"""Job configuration: one frozen dataclass per command, its fields the command's flags, validated.

Every flag of `dcgan train|sample|augment|evaluate|launch` is a field of one of
these classes, declared with its help text (`flag(default, help)`; trainer/command_line.py
turns flag text into these objects and builds --help from those texts), checked
in the class's `validate`, a group of flags at a time. One module per command
(training, shard_jobs, evaluation, launching) over what they share (common);
nothing here imports TensorFlow, so validation runs in milliseconds.

    python -c "from trainer import config; print(config.TrainConfig(job_dir='x').describe())"
"""

from __future__ import annotations

from trainer.config.common import (
    PRECISIONS,
    RESOLUTIONS,
    SHARD_MANIFEST,
    SPLIT_PATTERN,
    failed,
    load_json,
    missing_dataset,
    missing_file,
    missing_generator,
    precision_errors,
    unfinished_output,
)
from trainer.config.evaluation import DOWNSTREAM_MIXES, DOWNSTREAM_POLICIES, EvaluateConfig, downstream_errors
from trainer.config.launching import LAUNCH_TARGETS, LaunchConfig
from trainer.config.shard_jobs import SHARD_PRESETS, AugmentConfig, SampleConfig, ShardJobConfig, label_weights
from trainer.config.training import (
    DIFFAUGMENT_AUTO_BELOW,
    DIFFAUGMENT_POLICIES,
    LECAM_DECAY,
    LOSSES,
    TRAIN_PRESETS,
    TrainConfig,
)

__all__ = [
    "DIFFAUGMENT_AUTO_BELOW",
    "DIFFAUGMENT_POLICIES",
    "DOWNSTREAM_MIXES",
    "DOWNSTREAM_POLICIES",
    "LAUNCH_TARGETS",
    "LECAM_DECAY",
    "LOSSES",
    "PRECISIONS",
    "RESOLUTIONS",
    "SHARD_MANIFEST",
    "SHARD_PRESETS",
    "SPLIT_PATTERN",
    "TRAIN_PRESETS",
    "AugmentConfig",
    "EvaluateConfig",
    "LaunchConfig",
    "SampleConfig",
    "ShardJobConfig",
    "TrainConfig",
    "downstream_errors",
    "failed",
    "label_weights",
    "load_json",
    "missing_dataset",
    "missing_file",
    "missing_generator",
    "precision_errors",
    "unfinished_output",
]
