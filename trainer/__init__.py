"""dcgan-factory: train a DCGAN on your images, then mass-produce synthetic training data from it.

Commands (`dcgan COMMAND`, trainer/cli.py; flags parsed by trainer/command_line.py
into the configs of trainer/config/):

    train     trainer/train.py (the loop), train_plan.py, train_state.py, train_step.py, train_actions.py
    sample    trainer/shard_job.py with images from a generator (trainer/sources.py)
    augment   trainer/shard_job.py with classically augmented real images (trainer/classic_augment.py)
    evaluate  trainer/evaluate.py (fidelity, memorization, GAN-test, downstream) and its report page
    launch    trainer/launch.py (a VM, Vertex AI, Kubernetes)

The library API (stable; everything else is internal):

    keras.models.load_model("JOB_DIR/export/generator.keras")   an exported generator (trainer/export.py)
    trainer.shards.load / mix / ExampleEncoder / parse_example   read and write shard outputs
    trainer.data.load_source(spec, resolution)                   the datasets `--dataset` accepts
    trainer.storage.open_store(url)                              a local folder or gs:// prefix
    trainer.sources.generator_source(GeneratorSpec(...))         batches of samples (trainer/specs.py)
    trainer.usefulness.compare / tune_baseline(UsefulnessSpec)   `dcgan evaluate`'s downstream comparison
    trainer.classifier.train(images, labels, k, ClassifierSpec, seed, Recipe)   its judge
    trainer.stats.paired / verdict                               paired intervals and the verdict line
"""


def _version() -> str:
    """The package version, written once in pyproject.toml: from the installed distribution's metadata,
    or, in a source checkout that was never installed, from pyproject.toml itself."""
    import os
    import re
    from importlib import metadata

    pyproject = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")
    try:
        return metadata.version("dcgan-factory")
    except metadata.PackageNotFoundError:
        pass
    try:
        with open(pyproject, encoding="utf-8") as f:
            match = re.search(r'^version\s*=\s*"([^"]+)"', f.read(), flags=re.M)
        return match.group(1) if match else "0+unknown"
    except OSError:
        return "0+unknown"


__version__ = _version()
