"""Small typed specs that library code takes, instead of a whole command's config.

`sources.generator_source(GeneratorSpec(...))` and `sources.dataset_source(DatasetSpec(...))`
are what `dcgan sample`, `dcgan augment`, `dcgan evaluate` and the experiments call;
each command's config produces its spec (`SampleConfig.generator_spec()`,
`AugmentConfig.dataset_spec()`), so a library caller names only what it means and
never fakes a command line. Pure Python: no TensorFlow.

    python -c "from trainer.specs import GeneratorSpec; print(GeneratorSpec('runs/digits', seed=3))"
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """Where generated images come from, and which are kept (the flags of `dcgan sample` of the same names)."""

    generator: str  # a job dir, its export/ folder, or the generator.keras file (local or gs://)
    seed: int = 0  # seeds every image's noise
    labels: str = "balanced"  # balanced, uniform, fill, or class weights
    truncation: float = 0.0  # psi > 0: resample latent components with |z| > psi
    copies_per_sample: int = 1  # images sharing one z and label (augmented variants)
    mixed_precision: str = "off"  # the generator's forward pass: off (float32), bfloat16 or float16
    max_memorization: float = 0.0  # > 0: drop samples nearer a training image than this quantile of real pairs
    train_data: str = ""  # the generator's training images ('' = the dataset recorded in its export)
    teacher: str = ""  # '', 'auto' or a Keras classifier file: soft labels (and filtering)
    teacher_members: int = 5
    teacher_steps: int = 1000
    min_confidence: float = 0.0  # with a teacher: drop samples it gives less than this for their own label


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Real images to read (the flags of `dcgan augment` and `dcgan train` of the same names)."""

    dataset: str
    resolution: int = 32
    channels: int = 0  # 0: the dataset's own
    folder_labels: str = "inferred"
    on_corrupt: str = "skip"


def spec_of(cls, config):
    """`cls` filled from the fields of `config` with the same names."""
    return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})
