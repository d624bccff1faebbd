"""One training step of the DCGAN, compiled, and its distributed math.

One step = one discriminator update then one generator update on the same
generated batch (as in Radford et al.'s reference implementation), then the EMA
of the generator.

Distributed math, explicitly: every loss is per example and averaged with
`tf.nn.compute_average_loss(global_batch_size=...)`, so the SUM over replicas is
the global mean; gradients are summed across replicas by this code
(`all_reduce(SUM)`, not by the optimizer) so that their norm and finiteness are
the same on every replica. A step returns `(metrics, control)`: metrics that are
per-replica shares of a global mean are reduced with SUM, metrics identical on
every replica (gradient norms, loss scales, DiffAugment's p) with MEAN; control
values with the op their meaning needs (finite gradients, identical everywhere:
MEAN; a stop request from any worker: SUM, > 0 if any asked).

Noise, fake labels and DiffAugment's draws are pure functions of (seed, step),
each from its own named stream (below): an interrupted and resumed run
reproduces an uninterrupted one, and 1 replica x 2B equals 2 replicas x B.

    python -c "from trainer import train_step; help(train_step.make_step_fn)"
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import tensorflow as tf

from trainer import diffaugment, losses, models
from trainer.config import LECAM_DECAY
from trainer.train_plan import TrainPlan
from trainer.train_state import TrainState

# Offsets of the random streams drawn from (seed, step): one per use, far enough apart never to meet.
NOISE_STREAM = 0
FAKE_LABEL_STREAM = 2**40
REAL_DIFFAUGMENT_STREAM = 3 * 2**40
FAKE_DIFFAUGMENT_STREAM = 4 * 2**40
REAL_AUGMENT_STREAM = 5 * 2**40

SUM, MEAN = tf.distribute.ReduceOp.SUM, tf.distribute.ReduceOp.MEAN


def _all_finite(tensors) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def _hits(labels, class_logits):
    return tf.cast(tf.equal(tf.argmax(class_logits, axis=-1, output_type=labels.dtype), labels), tf.float32)


def _inner(optimizer):
    """The optimizer doing the update (inside a LossScaleOptimizer, if any)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


class Rollback:
    """A copy of some variables, taken before a step and put back to undo it."""

    def __init__(self, variables):
        self.variables = list(variables)
        self.copies = [tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False) for v in self.variables]

    def save(self):
        for copy, var in zip(self.copies, self.variables):
            copy.assign(var)

    def restore(self):
        for copy, var in zip(self.copies, self.variables):
            var.assign(copy)


class Verdict(NamedTuple):
    """D's outputs on one batch, with the labels the batch was conditioned on: real/fake logits; classes:
    AC-GAN's class logits (None without a class head); twin: the twin's (None unless --class_loss=tac)."""

    labels: tf.Tensor
    logits: tf.Tensor
    classes: Optional[tf.Tensor]
    twin: Optional[tf.Tensor]


class LossTerms:
    """The loss terms the config turns on beyond the GAN loss, added in a fixed order, and the health
    values each one logs: AC-GAN's class loss (or TAC-GAN's twin pair), LeCam, R1 (D) and mode seeking (G).

    `verdict_of` runs D on a batch and separates its class head's columns (AC-GAN's classifier, then, with
    --class_loss=tac, the twin's), once, into a Verdict that the terms read."""

    def __init__(self, config, state: TrainState, gan_loss: losses.GanLoss, conditional: bool):
        self.gan_loss, self.lecam, self.conditional = gan_loss, state.lecam, conditional
        self.class_weight = config.class_loss_weight  # the plan refuses it without classes
        self.twin = config.twin_classifier  # the config refuses it without a class weight
        self.lecam_weight, self.r1_gamma, self.mode_seeking = (
            config.lecam_weight,
            config.r1_gamma,
            config.mode_seeking_weight,
        )

    def verdict_of(self, D, images, labels) -> Verdict:
        """D's Verdict on `images` conditioned on `labels` (training mode)."""
        logits, class_logits = models.discriminate(D, images, labels, self.conditional)
        return self.verdict(labels, logits, class_logits)

    def verdict(self, labels, logits, class_logits) -> Verdict:
        """D's outputs as a Verdict: the class head's columns split into AC-GAN's and the twin's."""
        if class_logits is None or not self.twin:
            return Verdict(labels, logits, class_logits, None)
        classes, twin = tf.split(class_logits, 2, axis=-1)
        return Verdict(labels, logits, classes, twin)

    def d(self, D, real_images, *, real: Verdict, fake: Verdict, strength):
        """D's per-example loss and its R1 penalty (zeros when off). real_images: what D was shown (for R1);
        fake: D's verdict on G's detached samples; strength: --class_fade_in's (1 when off)."""
        per_example = self.gan_loss.d(real.logits, fake.logits)
        if self.class_weight > 0:  # AC-GAN: D's classifier learns the classes of real images only
            class_loss = losses.class_cross_entropy(real.labels, real.classes)
            if self.twin:  # TAC-GAN: the twin learns the conditioning labels of G's (detached) samples
                class_loss += losses.class_cross_entropy(fake.labels, fake.twin)
            per_example += strength * self.class_weight * class_loss
        if self.lecam is not None:
            per_example += self.lecam_weight * losses.lecam(real.logits, fake.logits, self.lecam.read_value())
        r1 = tf.zeros_like(per_example)
        if self.r1_gamma > 0:
            r1 = losses.r1_penalty(lambda x: models.discriminate(D, x, real.labels, self.conditional)[0], real_images)
            per_example += 0.5 * self.r1_gamma * r1
        return per_example, r1

    def g(self, z, fake_images, *, fake_g: Verdict, strength):
        """G's per-example loss; fake_g: D's verdict on G's samples in G's step (gradients flow through it)."""
        per_example = self.gan_loss.g(fake_g.logits)
        if self.class_weight > 0:  # ... and G is rewarded when D's classifier recognises the conditioning label
            class_loss = losses.class_cross_entropy(fake_g.labels, fake_g.classes)
            if self.twin:  # ... and penalised when the twin does (TAC-GAN: cancels the conditional-entropy part)
                class_loss -= losses.class_cross_entropy(fake_g.labels, fake_g.twin)
            per_example += strength * self.class_weight * class_loss
        if self.mode_seeking > 0:
            per_example += self.mode_seeking * losses.mode_seeking(z, fake_images)
        return per_example

    def shares(self, global_batch, r1, *, real: Verdict, fake: Verdict, fake_g: Verdict):
        """Health values that are this replica's share of a global mean (summed over replicas): from D's
        verdicts on the reals and G's detached samples (D's step) and on G's samples (G's step)."""
        share = lambda v: tf.reduce_sum(tf.cast(v, tf.float32)) / global_batch  # noqa: E731
        shares = {
            "d/real": share(tf.sigmoid(real.logits)),
            "d/fake": share(tf.sigmoid(fake.logits)),
            "r1": share(r1),
            "diffaugment/rt": share(tf.sign(tf.cast(real.logits, tf.float32))),  # ADA's signal E[sign D(real)]
        }
        if self.lecam is not None:  # the global means LeCam's moving averages follow
            shares["lecam/real_logit"] = share(real.logits)
            shares["lecam/fake_logit"] = share(fake.logits)
        if self.class_weight > 0:  # how well D's classifier knows the reals, and how often it recognises G's samples
            shares["class/real_accuracy"] = share(_hits(real.labels, real.classes))
            shares["class/fake_accuracy"] = share(_hits(fake_g.labels, fake_g.classes))
        if self.twin:  # how often the twin knows the label G's samples were drawn for (D's step)
            shares["class/twin_accuracy"] = share(_hits(fake.labels, fake.twin))
        return shares

    def after_step(self, metrics) -> None:
        """LeCam's moving averages follow the global means of D's logits (identical on every replica)."""
        if self.lecam is not None:
            now = tf.stack([metrics["lecam/real_logit"], metrics["lecam/fake_logit"]])
            self.lecam.assign(LECAM_DECAY * self.lecam + (1.0 - LECAM_DECAY) * now)


def adapt_diffaugment(plan: TrainPlan, state: TrainState, metrics) -> None:
    """ADA-style (with --ada_target > 0): p rises while D is too sure of the reals, falls otherwise; from
    cross-replica means, so identical on every replica."""
    if plan.adaptive_diffaugment:
        config = plan.config
        adjust = tf.sign(metrics["diffaugment/rt"] - config.ada_target) * plan.global_batch / (config.ada_kimg * 1000.0)
        state.diffaugment_p.assign(tf.clip_by_value(state.diffaugment_p + adjust, 0.0, 1.0))


def class_strength(plan: TrainPlan, step) -> tf.Tensor:
    """--class_fade_in's strength of the class condition in step `step` (0-based): 0 until START, linear
    to 1 at END (Shahbazi et al. 2022), so a run must go past step END to train at full strength; 1 when
    off. A pure function of the step, so resuming and replicas agree."""
    if plan.class_fade is None:
        return tf.constant(1.0)
    start, end = plan.class_fade
    return tf.clip_by_value((tf.cast(step, tf.float32) - start) / float(end - start), 0.0, 1.0)


def draws(plan: TrainPlan, step, mine: slice):
    """This replica's slice of a step's random draws, each a pure function of (seed, step) from its own stream:
    (z, fake labels, DiffAugment's draws for reals and fakes, the real-augmentation draw or None)."""
    config, global_batch = plan.config, plan.global_batch
    label_repeat = 2 if config.mode_seeking_weight > 0 else 1  # mode seeking: samples 2k, 2k+1 share a label
    seed = tf.stack([tf.constant(config.seed, tf.int64), step])
    z = tf.random.stateless_normal([global_batch, config.latent_dim], seed=seed + [0, NOISE_STREAM])[mine]
    fake_labels = tf.random.stateless_uniform(
        [global_batch // label_repeat],
        seed=seed + [0, FAKE_LABEL_STREAM],
        minval=0,
        maxval=max(plan.num_classes, 1),
        dtype=tf.int32,
    )
    fake_labels = tf.repeat(fake_labels, label_repeat)[mine]
    real_draws = diffaugment.sample_parameters(global_batch, seed + [0, REAL_DIFFAUGMENT_STREAM])
    fake_draws = diffaugment.sample_parameters(global_batch, seed + [0, FAKE_DIFFAUGMENT_STREAM])
    if config.minibatch_std_views == "shared":  # one draw per group of D's minibatch std (within a replica)
        group = config.minibatch_std
        real_draws, fake_draws = (diffaugment.shared_within_groups(d, group) for d in (real_draws, fake_draws))
    real_draws, fake_draws = real_draws[mine], fake_draws[mine]
    real_u = None
    if config.real_augment != "none":
        real_u = tf.random.stateless_uniform([global_batch], seed=seed + [0, REAL_AUGMENT_STREAM])[mine]
    return z, fake_labels, real_draws, fake_draws, real_u


def make_step_fn(plan: TrainPlan, strategy, state: TrainState, gan_loss: losses.GanLoss):  # noqa: C901 - one closure: step, EMA, rollback
    """The compiled multi-step function: `steps(iterator, n, stop_flag)` -> (metrics, control) of the last step.

    control: `finite_grads` (1.0 when both updates were applied), `stop` (> 0 when any worker was
    asked to stop: all workers stop at the same step) and `skipped_steps` (float16 overflows)."""
    config = plan.config
    G, D, G_ema = state.generator, state.discriminator, state.generator_ema
    g_opt, d_opt = state.g_optimizer, state.d_optimizer
    global_batch, per_replica, policy, conditional = (
        plan.global_batch,
        plan.per_replica_batch,
        plan.diffaugment,
        plan.num_classes > 0,
    )
    terms = LossTerms(config, state, gan_loss, conditional)
    # --class_fade_in: G's label strength, G_ema's (the EMA leaves it equal to G's) and D's projection strength
    strengths = models.condition_strengths(G) + models.condition_strengths(G_ema) + models.condition_strengths(D)

    def replica_step(real, real_labels, step, stop_flag):
        ctx = tf.distribute.get_replica_context()
        first = ctx.replica_id_in_sync_group * per_replica
        mine = slice(first, first + per_replica)  # this replica's slice of each global draw
        z, fake_labels, real_draws, fake_draws, real_u = draws(plan, step, mine)
        p, strength = state.diffaugment_p.read_value(), class_strength(plan, step)

        def seen(images, draws):  # what D is shown: DiffAugment with this step's p and draws
            return diffaugment.augment(images, policy, draws, p, config.dihedral_p)

        if real_u is not None:  # dataset augmentation: unlike DiffAugment's, G learns these variants
            real = diffaugment.augment_reals(real, config.real_augment, real_u)
        real = seen(real, real_draws)
        with tf.GradientTape() as g_tape:
            fake = G(models.model_inputs(z, fake_labels, conditional), training=True)
            with g_tape.stop_recording():
                # -- Discriminator update: (augmented) real vs (augmented, detached) fake.
                with tf.GradientTape() as d_tape:
                    real_v = terms.verdict_of(D, real, real_labels)
                    fake_v = terms.verdict_of(D, seen(tf.stop_gradient(fake), fake_draws), fake_labels)
                    d_per_example, r1 = terms.d(D, real, real=real_v, fake=fake_v, strength=strength)
                    d_loss = tf.nn.compute_average_loss(d_per_example, global_batch_size=global_batch)
                    d_scaled = d_opt.scale_loss(d_loss)
                d_grads = ctx.all_reduce(SUM, d_tape.gradient(d_scaled, D.trainable_variables))
                d_opt.apply(d_grads, D.trainable_variables)
            # -- Generator update against the updated discriminator (same augmentation; gradients flow through it).
            g_v = terms.verdict_of(D, seen(fake, fake_draws), fake_labels)
            g_per_example = terms.g(z, fake, fake_g=g_v, strength=strength)
            g_loss = tf.nn.compute_average_loss(g_per_example, global_batch_size=global_batch)
            g_scaled = g_opt.scale_loss(g_loss)
        g_grads = ctx.all_reduce(SUM, g_tape.gradient(g_scaled, G.trainable_variables))
        g_opt.apply(g_grads, G.trainable_variables)
        # -- Health. Shares of a global mean (summed over replicas) and values identical on every replica.
        d_scale, g_scale = d_opt.scale_loss(tf.constant(1.0)), g_opt.scale_loss(tf.constant(1.0))
        shares = {"loss/d": d_loss, "loss/g": g_loss}
        shares |= terms.shares(global_batch, r1, real=real_v, fake=fake_v, fake_g=g_v)
        identical = {
            "diffaugment/p": p,
            **({"class/strength": strength} if strengths else {}),
            "grad_norm/d": tf.linalg.global_norm(d_grads) / d_scale,
            "grad_norm/g": tf.linalg.global_norm(g_grads) / g_scale,
            "loss_scale/d": d_scale,
            "loss_scale/g": g_scale,
        }
        control = {
            "finite_grads": tf.cast(tf.logical_and(_all_finite(d_grads), _all_finite(g_grads)), tf.float32),
            "stop": tf.identity(stop_flag),
        }
        return shares, identical, control

    if config.xla:
        replica_step = tf.function(replica_step, jit_compile=True)

    def ema_update():
        step = tf.cast(state.step, tf.float32)
        decay = tf.minimum(config.ema_decay, (1.0 + step) / (10.0 + step))  # warm-up: early G moves fast
        for ema_var, var in zip(G_ema.variables, G.variables):
            ema_var.assign(var + (ema_var - var) * tf.cast(decay, var.dtype))

    # float16: a step whose D or G gradients overflowed is undone for both
    # networks (and G_ema), so the two never drift apart; the loss scales adapt.
    rollback = None
    if config.mixed_precision == "float16":
        with strategy.scope():
            rollback = Rollback(G.variables + D.variables + _inner(g_opt).variables + _inner(d_opt).variables)

    def reduce(op, values):
        return {k: strategy.reduce(op, v, axis=None) for k, v in values.items()}

    # Traced without AutoGraph: the step's control flow is written as tf.cond (a tensor used as a Python
    # bool fails the trace, naming the line); converting every function it calls cost ~1.5 s of each job's
    # start-up (5-step jobs, 13 configurations: identical weights either way).
    @tf.function(autograph=False)
    def steps(iterator, n: int, stop_flag):
        metrics = control = None
        for _ in range(n):  # unrolled: n is a small Python int (one trace per distinct n)
            real, labels = next(iterator)
            if strengths:  # set in cross-replica context: every replica reads the same value
                strength = class_strength(plan, state.step)
                for variable in strengths:
                    variable.assign(strength)
            if rollback:
                rollback.save()
            shares, identical, flags = strategy.run(
                replica_step, args=(real, labels, state.step.read_value(), stop_flag)
            )
            metrics = {**reduce(SUM, shares), **reduce(MEAN, identical)}
            control = {
                "finite_grads": strategy.reduce(MEAN, flags["finite_grads"], axis=None),
                "stop": strategy.reduce(SUM, flags["stop"], axis=None),
            }
            applied = control["finite_grads"] > 0.5
            if rollback:
                tf.cond(applied, lambda: None, rollback.restore)
            tf.cond(applied, ema_update, lambda: None)
            adapt_diffaugment(plan, state, metrics)
            terms.after_step(metrics)
            control["skipped_steps"] = 1.0 - tf.cast(applied, tf.float32)
            state.step.assign_add(1)
        return metrics, control

    return steps
