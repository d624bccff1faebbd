"""The training state: everything a checkpoint holds, listed once.

`TrainState` is the generator, discriminator, G_ema, both optimizers, the global
step, DiffAugment's probability, the best KID so far and (with --lecam_weight)
LeCam's moving averages. The checkpoint
(`checkpoint()`) and the flat variable list (`variables()`) are derived from
it, so nothing can be saved that is not restored, or the other way round.

    python - <<'PY'
    from trainer import command_line, train_state
    config = command_line.resolve('train', {'preset': 'smoke', 'job_dir': '/tmp/s'})
    print(len(train_state.TrainState.build(config, 1, 10).variables()))
    PY
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import keras
import numpy as np
import tensorflow as tf

from trainer import models, train_plan


class AllReducedAdam(keras.optimizers.Adam):
    """Adam that applies gradients already summed across replicas.

    Keras sums gradients inside `apply`; this trainer sums them itself (so that
    gradient norms and the float16 overflow check see the global gradient), so
    the optimizer's own sum must not run a second time.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)


@dataclasses.dataclass
class TrainState:
    generator: keras.Model
    discriminator: keras.Model
    generator_ema: keras.Model
    g_optimizer: keras.optimizers.Optimizer
    d_optimizer: keras.optimizers.Optimizer
    step: tf.Variable  # the global step; a GAN has two optimizers, so neither's counter is it
    diffaugment_p: tf.Variable  # DiffAugment's per-image probability (adapted when --ada_target > 0)
    best_kid: tf.Variable  # the lowest KID so far (its G_ema is in export/best/)
    # --lecam_weight > 0: moving averages of D's mean logit on real and on fake images; else None (and
    # not in the checkpoint, so checkpoints of runs without LeCam are what they always were).
    lecam: tf.Variable | None = None
    # --select_by=class_consistency: the highest class consistency so far (its G_ema is in export/best/); else None.
    best_consistency: tf.Variable | None = None

    # Checkpoint keys: the field names, except DiffAugment's p, which checkpoints have always called augment_p.
    CHECKPOINT_KEYS = {"diffaugment_p": "augment_p"}

    def checkpoint(self) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(
            **{
                self.CHECKPOINT_KEYS.get(f.name, f.name): getattr(self, f.name)
                for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None
            }
        )

    def variables(self) -> list:
        """Every checkpointed variable, in construction order (the same for identically built states)."""
        out = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out += value.variables if hasattr(value, "variables") and not isinstance(value, tf.Variable) else [value]
        return out

    @classmethod
    def build(cls, config, channels: int, num_classes: int, strategy=None, seeded: bool = True) -> "TrainState":
        """G, D, G_ema and both optimizers, built (variables exist) for restore.

        Initial weights come from copies built outside the strategy with the run's
        seed: Keras draws different initial values under MirroredStrategy than on
        one device, and a run's start must not depend on its hardware.
        `seeded=False` skips those copies (and the seeding): for a state whose
        values are overwritten before they are read (the checkpoint's twin).
        """
        g_args = (config.resolution, channels, config.latent_dim, config.width, num_classes)
        d_args = (config.resolution, channels, config.width, num_classes)
        fade = {"class_fade": True} if config.class_fade_in else {}  # absent: old checkpoints keep their layers
        g_kwargs, d_kwargs = (
            {"conditioning": config.g_conditioning, **fade},
            {
                "spectral_norm": config.d_spectral_norm,
                "class_head": config.class_loss_weight > 0,
                "twin_head": config.twin_classifier,
                "minibatch_std": config.minibatch_std,
                **fade,
            },
        )
        if seeded:
            keras.utils.set_random_seed(config.seed)
            initial_g = models.build_generator(*g_args, **g_kwargs).get_weights()
            initial_d = models.build_discriminator(*d_args, **d_kwargs).get_weights()
        with strategy.scope() if strategy else contextlib.nullcontext():
            fused = {"fused_batchnorm": train_plan.batchnorm_kind(config) == "fused"}  # G_ema infers: Keras' layer
            generator = models.build_generator(*g_args, config.sync_batchnorm, **g_kwargs, **fused)
            discriminator = models.build_discriminator(*d_args, config.sync_batchnorm, **d_kwargs, **fused)
            generator_ema = models.build_generator(*g_args, name="generator_ema", **g_kwargs)
            if seeded:
                generator.set_weights(initial_g)
                generator_ema.set_weights(initial_g)
                discriminator.set_weights(initial_d)
            g_optimizer = AllReducedAdam(config.g_lr, beta_1=config.beta1, beta_2=config.beta2, name="g_adam")
            d_optimizer = AllReducedAdam(config.d_lr, beta_1=config.beta1, beta_2=config.beta2, name="d_adam")
            if config.mixed_precision == "float16":
                g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer, name="g_loss_scale")
                d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer, name="d_loss_scale")
            g_optimizer.build(generator.trainable_variables)
            d_optimizer.build(discriminator.trainable_variables)
            step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            diffaugment_p = tf.Variable(0.0 if config.ada_target > 0 else 1.0, trainable=False, name="diffaugment_p")
            best_kid = tf.Variable(float("inf"), trainable=False, name="best_kid")
            lecam = tf.Variable(tf.zeros([2]), trainable=False, name="lecam") if config.lecam_weight > 0 else None
            best_consistency = (
                tf.Variable(-1.0, trainable=False, name="best_consistency")
                if config.select_by == "class_consistency"
                else None
            )
        return cls(
            generator,
            discriminator,
            generator_ema,
            g_optimizer,
            d_optimizer,
            step,
            diffaugment_p,
            best_kid,
            lecam,
            best_consistency,
        )


def fingerprint(model: keras.Model) -> str:
    """sha256 of a model's trainable weights: equal on every worker of a run."""
    digest = hashlib.sha256()
    for weight in model.trainable_weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:16]
