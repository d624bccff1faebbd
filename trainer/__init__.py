"""dcgan-factory: train a DCGAN on your images, then mass-produce synthetic training data from it.

Jobs (each `dcgan COMMAND`, see trainer/cli.py): train (trainer.train), sample
and augment (trainer.shard_job), evaluate (trainer.evaluate), launch
(trainer.launch). Configs: trainer.config. The exported generator loads with
`keras.models.load_model` (trainer.export); shard outputs read with
`trainer.shards.load`.
"""

__version__ = "0.2.0"
