"""trainer/specs.py: the library's typed specs say what the commands' flags say, defaults included."""

import dataclasses

from trainer import command_line, config
from trainer.specs import DatasetSpec, GeneratorSpec


def test_specs_default_to_the_commands_defaults():
    sample, augment = config.SampleConfig(), config.AugmentConfig()
    for spec, command in ((GeneratorSpec, sample), (DatasetSpec, augment)):
        for field in dataclasses.fields(spec):
            if field.default is not dataclasses.MISSING:
                assert field.default == getattr(command, field.name), (spec.__name__, field.name)


def test_a_command_config_produces_its_spec():
    sample = command_line.resolve("sample", {"generator": "runs/g", "output": "out", "labels": "fill", "seed": 4})
    assert sample.generator_spec() == GeneratorSpec("runs/g", seed=4, labels="fill")
    augment = command_line.resolve("augment", {"dataset": "digits:train", "output": "out", "resolution": 64})
    assert augment.dataset_spec() == DatasetSpec("digits:train", resolution=64)
