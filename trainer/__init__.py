"""dcgan-factory: train a DCGAN, then mass-produce synthetic images from it.

Jobs: `dcgan train` (trainer.train). Configs: trainer.config. The exported
generator loads with `keras.models.load_model` (see trainer.export).
"""

__version__ = "0.1.0"
