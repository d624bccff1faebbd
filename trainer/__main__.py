"""`python -m trainer ...` is `dcgan ...`."""

from trainer.cli import entrypoint

entrypoint()
