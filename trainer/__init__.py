"""dcgan-factory: train a DCGAN on your images, then mass-produce synthetic training data from it.

Commands (`dcgan COMMAND`, trainer/cli.py; flags parsed by trainer/command_line.py
into the configs of trainer/config.py):

    train     trainer/train.py (the loop), train_plan.py, train_state.py, train_step.py, train_actions.py
    sample    trainer/shard_job.py with images from a generator (trainer/sources.py)
    augment   trainer/shard_job.py with classically augmented real images (trainer/classic_augment.py)
    evaluate  trainer/evaluate.py (fidelity, memorization, GAN-test, downstream) and its report page
    launch    trainer/launch.py (a VM, Vertex AI, Kubernetes)

For your own code: `keras.models.load_model("JOB_DIR/export/generator.keras")`
(trainer/export.py), `trainer.shards.load(...)` and `trainer.shards.mix(...)` to
train on shard outputs, `trainer.data.load_source(...)` for the datasets
`--dataset` accepts.
"""

__version__ = "0.2.0"
