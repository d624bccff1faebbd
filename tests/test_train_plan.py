"""The resolved plan: classes and names, DiffAugment, replicas, precision, resolved once from config and data."""

import dataclasses
import json

import pytest

from trainer import command_line, data, train_plan
from trainer.errors import UserError


def config(**flags):
    return command_line.resolve("train", {"job_dir": "/tmp/unused", **flags})


def test_what_digits_resolve_to():
    plan = train_plan.resolve(config(), data.load_source("digits:train", 32), replicas=2, workers=1)
    assert (plan.channels, plan.num_classes, plan.replicas, plan.per_replica_batch) == (1, 10, 2, 32)
    assert plan.class_names == tuple(str(d) for d in range(10))
    assert plan.diffaugment == ("color", "translation", "cutout")  # auto: 1258 images is a small dataset
    assert plan.precision == "float32" and "10 classes" in plan.describe()
    saved = json.loads(plan.to_json())
    assert (
        saved["diffaugment"] == ["color", "translation", "cutout"]
        and saved["config_hash"] == plan.config.identity_hash()
    )


def test_conditioning_names_and_refusals():
    source = data.load_source("digits:train", 32)
    assert train_plan.resolve(config(conditional=False), source, 1, 1).num_classes == 0
    named = dataclasses.replace(source, class_names=tuple("abcdefghij"))
    assert train_plan.resolve(config(), named, 1, 1).class_names == tuple("abcdefghij")
    unlabelled = dataclasses.replace(source, labels=None, num_classes=0, class_names=())
    assert train_plan.resolve(config(), unlabelled, 1, 1).num_classes == 0
    with pytest.raises(UserError, match="--conditional=true needs labels"):
        train_plan.resolve(config(conditional=True), unlabelled, 1, 1)
    with pytest.raises(UserError, match="--class_loss_weight=1.0 needs a conditional run"):
        train_plan.resolve(config(class_loss_weight=1), unlabelled, 1, 1)
    with pytest.raises(UserError, match="--class_loss_weight=0.5 needs a conditional run"):
        train_plan.resolve(config(class_loss_weight=0.5, conditional=False), source, 1, 1)
    with pytest.raises(UserError, match="--mode_seeking_weight pairs samples: --batch_size=66 must give each of the 2"):
        train_plan.resolve(config(mode_seeking_weight=1, batch_size=66), source, 2, 1)
    assert train_plan.resolve(config(mode_seeking_weight=1, batch_size=68), source, 2, 1).per_replica_batch == 34
    with pytest.raises(UserError, match="--batch_size=64 must be divisible by the 3 replicas"):
        train_plan.resolve(config(), source, 3, 1)
    big = dataclasses.replace(source, num_examples=50_000)
    assert train_plan.resolve(config(), big, 1, 1).diffaugment == ()
    assert train_plan.resolve(config(mixed_precision="bfloat16"), source, 1, 1).precision == "mixed_bfloat16"
