"""`dcgan train`: the DCGAN training job, top to bottom.

    dcgan train --job_dir=runs/digits                    # bundled digits, CPU or GPU
    dcgan train --job_dir=/tmp/smoke --preset=smoke      # seconds on a CPU
    python -m trainer train --job_dir=... --dataset=path/to/images --resolution=64

`run(config)` builds everything (strategy, data, networks, optimizers,
checkpoint) and hands it to `train(...)`, the loop, which takes the networks
and the loss as arguments. One step = one discriminator update then one
generator update on the same generated batch (as in Radford et al.'s
reference implementation), then the EMA of the generator.

Distributed math: every loss is per example and averaged with
`tf.nn.compute_average_loss(global_batch_size=...)`; gradients are summed
across replicas explicitly (`all_reduce(SUM)`) so that their norm and
finiteness are the same on every replica; metrics are reduced with SUM (or
MEAN for values that are already identical) for logging only.

Noise, fake labels and the order of the data are pure functions of
(seed, step): an interrupted and resumed run reproduces an uninterrupted one,
and 1 replica x 2B equals 2 replicas x B.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import os
import signal
import sys
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from trainer import (checkpoints, data, diffaugment, distribute, export, jobdir, losses, model_card, models, report_page,
                     storage, summaries)
from trainer.errors import EXIT_DIVERGED, UserError
from trainer.progress import ProgressBar


class TrainingDiverged(UserError):
    exit_code = EXIT_DIVERGED


class AllReducedAdam(keras.optimizers.Adam):
    """Adam that applies gradients already summed across replicas.

    Keras sums gradients inside `apply`; this trainer sums them itself (so that
    gradient norms and the float16 overflow check see the global gradient), so
    the optimizer's own sum must not run a second time.
    """

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return list(grads_and_vars)


def _all_finite(tensors) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


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


def fingerprint(model: keras.Model) -> str:
    """sha256 of a model's trainable weights: equal on every worker of a run."""
    digest = hashlib.sha256()
    for weight in model.trainable_weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class Networks:
    generator: keras.Model
    discriminator: keras.Model
    generator_ema: keras.Model
    g_optimizer: keras.optimizers.Optimizer
    d_optimizer: keras.optimizers.Optimizer
    step: tf.Variable  # the global step; a GAN has two optimizers, so neither's counter is it
    diffaugment_p: tf.Variable  # DiffAugment's per-image probability (adapted when --ada_target > 0)
    best_kid: tf.Variable  # the lowest KID so far (its G_ema is in export/best/)


class StopRequest:
    """Turns SIGTERM / Ctrl-C into a flag checked at step boundaries.

    Held from the first step until the final checkpoint is committed and the
    export written: a platform that repeats SIGTERM during its grace period
    does not cut the final upload short (only a second Ctrl-C stops at once).
    Re-entrant: an inner `with` on the same object leaves the handlers alone."""

    def __init__(self):
        self.signal: Optional[int] = None
        self._previous = {}
        self._depth = 0

    def __enter__(self):
        if self._depth == 0:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        self._depth += 1
        return self

    def _handle(self, signum, frame):
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if self.signal is not None:
            print(f"\n{signal.Signals(signum).name} received again: still committing the checkpoint",
                  file=sys.stderr)
            return
        self.signal = signum
        print(f"\n{signal.Signals(signum).name} received: stopping at the next step boundary", file=sys.stderr)

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)


def set_precision(mixed_precision: str) -> None:
    policy = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[mixed_precision]
    keras.mixed_precision.set_global_policy(policy)


def build_networks(config, channels: int, num_classes: int, strategy=None) -> Networks:
    """G, D, G_ema and both optimizers, built (variables exist) for restore.

    Initial weights come from copies built outside the strategy with the run's
    seed: Keras draws different initial values under MirroredStrategy than on
    one device, and a run's start must not depend on its hardware.
    """
    keras.utils.set_random_seed(config.seed)
    g_args = (config.resolution, channels, config.latent_dim, config.width, num_classes)
    d_args = (config.resolution, channels, config.width, num_classes)
    g_kwargs, d_kwargs = {"conditioning": config.g_conditioning}, {"spectral_norm": config.d_spectral_norm}
    initial_g = models.build_generator(*g_args, **g_kwargs).get_weights()
    initial_d = models.build_discriminator(*d_args, **d_kwargs).get_weights()
    with strategy.scope() if strategy else contextlib.nullcontext():
        return _build_networks(config, g_args, d_args, initial_g, initial_d, g_kwargs, d_kwargs)


def _build_networks(config, g_args, d_args, initial_g, initial_d, g_kwargs, d_kwargs) -> Networks:
    generator = models.build_generator(*g_args, config.sync_batchnorm, **g_kwargs)
    discriminator = models.build_discriminator(*d_args, config.sync_batchnorm, **d_kwargs)
    generator_ema = models.build_generator(*g_args, name="generator_ema", **g_kwargs)
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
    return Networks(generator, discriminator, generator_ema, g_optimizer, d_optimizer, step, diffaugment_p, best_kid)


def checkpoint_of(nets: Networks) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(
        generator=nets.generator, discriminator=nets.discriminator, generator_ema=nets.generator_ema,
        g_optimizer=nets.g_optimizer, d_optimizer=nets.d_optimizer, step=nets.step,
        augment_p=nets.diffaugment_p,  # the key older checkpoints use
        best_kid=nets.best_kid)


def all_variables(nets: Networks) -> list:
    """Every checkpointed variable, in construction order (the same for identically built Networks)."""
    return (nets.generator.variables + nets.discriminator.variables + nets.generator_ema.variables
            + nets.g_optimizer.variables + nets.d_optimizer.variables + [nets.step, nets.diffaugment_p, nets.best_kid])


class Profiler:
    """--profile_steps=A,B: a TensorBoard profile (trace viewer, op stats) of steps A to B, in the logs."""

    def __init__(self, steps: tuple[int, int], logdir: str, enabled: bool):
        self.first, self.last = steps
        self.logdir, self.enabled, self.running = logdir, enabled and self.last > 0, False

    def next_boundary(self, step: int) -> int:
        """The next step where profiling starts or stops (so that a call of several steps stops there)."""
        later = [b for b in (self.first, self.last) if b > step] if self.enabled else []
        return min(later, default=2**62)

    def before(self, step: int) -> None:
        if self.enabled and not self.running and self.first <= step < self.last:
            tf.profiler.experimental.start(self.logdir)
            self.running = True

    def after(self, step: int) -> None:
        if self.running and step >= self.last:
            tf.profiler.experimental.stop()
            self.running = False
            print(f"profile of steps {self.first}-{self.last} written to {self.logdir}/plugins/profile "
                  "(TensorBoard's Profile tab)")


@dataclasses.dataclass(frozen=True)
class GridLayout:
    """Where each class sits in the sample grids: unconditional, 2-8 rows of 8; conditional, a row per
    class (the first 16 classes), each row labelled with its class name in samples/*.png and in
    TensorBoard's description of the image."""

    columns: int
    labels: tuple[int, ...]  # the class of each cell, row by row
    class_names: tuple[str, ...] = ()
    row_names: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def caption(self) -> str:
        if not self.row_names:
            return "G_ema samples from fixed noise"
        return "G_ema samples from fixed noise, a row per class: " + "; ".join(
            f"row {r + 1}: {name}" for r, name in enumerate(self.row_names))

    @classmethod
    def of(cls, num_classes: int, class_names, global_batch: int) -> "GridLayout":
        columns = 8
        if not num_classes:
            return cls(columns, (0,) * min(64, max(16, global_batch)))
        names = tuple(class_names) if len(class_names) == num_classes else tuple(str(c) for c in range(num_classes))
        rows = min(num_classes, 16)
        return cls(columns, tuple(r for r in range(rows) for _ in range(columns)), names,
                   tuple(f"{r}: {names[r]}" if names[r] != str(r) else str(r) for r in range(rows)))


def resolve_diffaugment(config, source: data.TrainingData) -> tuple[str, ...]:
    """The DiffAugment policy: `auto` is all three for datasets below DIFFAUGMENT_AUTO_BELOW images."""
    from trainer.config import DIFFAUGMENT_AUTO_BELOW

    if config.diffaugment.strip().lower() == "auto":
        small = source.num_examples is not None and source.num_examples < DIFFAUGMENT_AUTO_BELOW
        return diffaugment.POLICIES if small else ()
    return diffaugment.parse(config.diffaugment)


def make_step_fn(config, strategy, nets: Networks, gan_loss: losses.GanLoss, num_classes: int,
                 policy: tuple[str, ...] = ()):
    """The compiled multi-step function: `steps(iterator, n)` -> metrics of the last step.

    `policy` is the DiffAugment policy applied to real and fake images before D."""
    G, D, G_ema = nets.generator, nets.discriminator, nets.generator_ema
    g_opt, d_opt = nets.g_optimizer, nets.d_optimizer
    global_batch = config.batch_size
    per_replica = global_batch // strategy.num_replicas_in_sync
    SUM = tf.distribute.ReduceOp.SUM

    def g_in(z, y):
        return [z, y] if num_classes else z

    def d_in(x, y):
        return [x, y] if num_classes else x

    def replica_step(real, real_labels, step, stop_flag):
        ctx = tf.distribute.get_replica_context()
        first = ctx.replica_id_in_sync_group * per_replica
        # -- This replica's slice of the global noise and fake labels for `step`.
        seed = tf.stack([tf.constant(config.seed, tf.int64), step])
        z = tf.random.stateless_normal([global_batch, config.latent_dim], seed=seed)[first:first + per_replica]
        fake_labels = tf.random.stateless_uniform([global_batch], seed=seed + [0, 2**40], minval=0,
                                                  maxval=max(num_classes, 1), dtype=tf.int32)[first:first + per_replica]
        # -- DiffAugment draws for this step (global batch, sliced): one set for reals, one for fakes.
        p = nets.diffaugment_p.read_value()
        real_draws = diffaugment.sample_parameters(global_batch, seed + [0, 3 * 2**40])[first:first + per_replica]
        fake_draws = diffaugment.sample_parameters(global_batch, seed + [0, 4 * 2**40])[first:first + per_replica]
        real = diffaugment.augment(real, policy, real_draws, p)
        with tf.GradientTape() as g_tape:
            fake = G(g_in(z, fake_labels), training=True)
            with g_tape.stop_recording():
                # -- Discriminator update: (augmented) real vs (augmented, detached) fake.
                with tf.GradientTape() as d_tape:
                    real_logits = D(d_in(real, real_labels), training=True)
                    fake_logits = D(d_in(diffaugment.augment(tf.stop_gradient(fake), policy, fake_draws, p),
                                         fake_labels), training=True)
                    d_per_example = gan_loss.d(real_logits, fake_logits)
                    r1 = tf.zeros_like(d_per_example)
                    if config.r1_gamma > 0:
                        r1 = losses.r1_penalty(lambda x: D(d_in(x, real_labels), training=True), real)
                        d_per_example += 0.5 * config.r1_gamma * r1
                    d_loss = tf.nn.compute_average_loss(d_per_example, global_batch_size=global_batch)
                    d_scaled = d_opt.scale_loss(d_loss)
                d_grads = ctx.all_reduce(SUM, d_tape.gradient(d_scaled, D.trainable_variables))
                d_opt.apply(d_grads, D.trainable_variables)
            # -- Generator update against the updated discriminator (same augmentation; gradients flow through it).
            g_logits = D(d_in(diffaugment.augment(fake, policy, fake_draws, p), fake_labels), training=True)
            g_loss = tf.nn.compute_average_loss(gan_loss.g(g_logits), global_batch_size=global_batch)
            g_scaled = g_opt.scale_loss(g_loss)
        g_grads = ctx.all_reduce(SUM, g_tape.gradient(g_scaled, G.trainable_variables))
        g_opt.apply(g_grads, G.trainable_variables)
        # -- Health, per replica; summed across replicas for logging.
        d_scale, g_scale = d_opt.scale_loss(tf.constant(1.0)), g_opt.scale_loss(tf.constant(1.0))
        share = lambda v: tf.reduce_sum(tf.cast(v, tf.float32)) / global_batch  # noqa: E731
        finite = tf.logical_and(_all_finite(d_grads), _all_finite(g_grads))
        replicas = ctx.num_replicas_in_sync
        return {
            # 1 when both updates had finite gradients (the same on every replica).
            "finite_grads": tf.cast(finite, tf.float32) / replicas,
            # > 0 when any worker was asked to stop: all workers stop at the same step.
            "stop": tf.identity(stop_flag),
            "loss/d": d_loss, "loss/g": g_loss,
            "d/real": share(tf.sigmoid(real_logits)), "d/fake": share(tf.sigmoid(fake_logits)),
            "r1": share(r1),
            # ADA's overfitting signal E[sign D(real)], and p (identical on every replica).
            "diffaugment/rt": share(tf.sign(tf.cast(real_logits, tf.float32))),
            "diffaugment/p": p / replicas,
            # Identical on every replica (gradients are all-reduced): divide to survive the SUM.
            "grad_norm/d": tf.linalg.global_norm(d_grads) / d_scale / replicas,
            "grad_norm/g": tf.linalg.global_norm(g_grads) / g_scale / replicas,
            "loss_scale/d": d_scale / replicas,
            "loss_scale/g": g_scale / replicas,
        }

    if config.xla:
        replica_step = tf.function(replica_step, jit_compile=True)

    def ema_update():
        step = tf.cast(nets.step, tf.float32)
        decay = tf.minimum(config.ema_decay, (1.0 + step) / (10.0 + step))  # warm-up: early G moves fast
        for ema_var, var in zip(G_ema.variables, G.variables):
            ema_var.assign(var + (ema_var - var) * tf.cast(decay, var.dtype))

    # float16: a step whose D or G gradients overflowed is undone for both
    # networks (and G_ema), so the two never drift apart; the loss scales adapt.
    rollback = None
    if config.mixed_precision == "float16":
        with strategy.scope():
            rollback = Rollback(G.variables + D.variables + _inner(g_opt).variables + _inner(d_opt).variables)

    @tf.function
    def steps(iterator, n: int, stop_flag):
        metrics = None
        for _ in range(n):  # unrolled: n is a small Python int (one trace per distinct n)
            real, labels = next(iterator)
            if rollback:
                rollback.save()
            per_replica_metrics = strategy.run(replica_step, args=(real, labels, nets.step.read_value(), stop_flag))
            metrics = {k: strategy.reduce(SUM, v, axis=None) for k, v in per_replica_metrics.items()}
            applied = metrics["finite_grads"] > 0.5
            if rollback:
                tf.cond(applied, lambda: None, rollback.restore)
            tf.cond(applied, ema_update, lambda: None)
            if policy and config.ada_target > 0:
                # ADA-style: p rises while D is too sure of the reals, falls otherwise (cross-replica, identical).
                adjust = tf.sign(metrics["diffaugment/rt"] - config.ada_target) * global_batch / (config.ada_kimg * 1000.0)
                nets.diffaugment_p.assign(tf.clip_by_value(nets.diffaugment_p + adjust, 0.0, 1.0))
            metrics["skipped_steps"] = 1.0 - tf.cast(applied, tf.float32)
            nets.step.assign_add(1)
        return metrics

    return steps


def run(config) -> dict:
    """Builds the job from `config` and trains it; returns a summary dict."""
    # -- Hardware: devices are split before anything else initialises TF.
    role, _ = distribute.read_cluster()
    strategy = distribute.make_strategy(config.devices)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UserError(f"--batch_size={config.batch_size} must be divisible by the {replicas} replicas")
    if config.xla and replicas > 1 and not tf.config.list_logical_devices("GPU"):
        raise UserError("--xla cannot compile across several logical CPU devices (XLA places them all on one "
                        "device); use --xla with one CPU device or with GPUs")
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    print(config.describe())
    print(distribute.describe(strategy))

    # -- Data (before touching the job dir: a bad dataset leaves it alone).
    source = data.load_source(config.dataset, config.resolution, config.channels,
                              folder_labels=config.folder_labels, on_corrupt=config.on_corrupt,
                              staging=config.dataset_staging, stream_buffer_bytes=config.stream_buffer_mb << 20)
    print(source.describe())
    conditional = source.num_classes >= 2 if config.conditional is None else config.conditional
    if conditional and source.num_classes < 1:
        raise UserError(f"--conditional=true needs labels, but {config.dataset} has none")
    num_classes = source.num_classes if conditional else 0
    policy = resolve_diffaugment(config, source)
    print(f"diffaugment: {','.join(policy) or 'off'}"
          + (f", adaptive p (target E[sign D(real)] = {config.ada_target})" if policy and config.ada_target else ""))

    # -- Job dir: refuse another job's, record ours.
    store = jobdir.claim(config, role.is_chief)

    # -- Networks, optimizers and the checkpoint (restored if one exists).
    set_precision(config.mixed_precision)
    nets = build_networks(config, source.channels, num_classes, strategy)
    checkpoint = checkpoint_of(nets)
    # A host-side twin of everything checkpointed: saving copies into it and writes it off the training
    # thread (the chief's; other workers' saves are no-ops, as no collective is involved).
    with tf.device("/cpu:0"):
        twin = build_networks(config, source.channels, num_classes)
    snapshot = checkpoints.Snapshot(all_variables(nets), all_variables(twin), checkpoint_of(twin))
    manager = checkpoints.CheckpointManager(store, checkpoint, keep=config.keep_checkpoints,
                                            is_chief=role.is_chief, config_hash=config.identity_hash(),
                                            sync_after=(jobdir.TENSORBOARD,), snapshot=snapshot)
    start = manager.restore()
    if start:
        print(f"resuming from the checkpoint at step {start}")
    if role.num_workers > 1:
        distribute.check_workers_agree(strategy, {
            "step": start, "generator": int(fingerprint(nets.generator)[:7], 16),
            "discriminator": int(fingerprint(nets.discriminator)[:7], 16)})
    writer = summaries.Summaries(store.local(jobdir.TENSORBOARD), enabled=role.is_chief,
                                 flush_secs=config.tensorboard_upload_secs or 120.0)
    with StopRequest() as stop:  # held until the final checkpoint is committed and the export written
        result = train_and_commit(config, strategy, source, nets, num_classes, manager, writer, start, role,
                                  policy, store, stop)
    return result


def log_uploads(store: storage.Store) -> list:
    """What copies the TensorBoard logs where they are read: the gs:// job dir (a sync of the
    staged folder; nothing for a local job dir) and Vertex AI's AIP_TENSORBOARD_LOG_DIR."""
    uploads = []
    if storage.is_remote(store.url):
        uploads.append(lambda: store.sync_up(jobdir.TENSORBOARD))
    vertex_logs = os.environ.get("AIP_TENSORBOARD_LOG_DIR")
    if vertex_logs:  # a mirror remembers what it sent: each call uploads only what changed
        uploads.append(storage.TreeMirror(store.local(jobdir.TENSORBOARD), storage.open_store(vertex_logs)))
    return uploads


def train_and_commit(config, strategy, source, nets, num_classes, manager, writer, start, role, policy, store,
                     stop) -> dict:
    """The loop, then everything that must be durable before the process may end."""
    uploads = log_uploads(store) if role.is_chief else []
    live = None
    if role.is_chief and config.tensorboard_upload_secs > 0:
        live = summaries.LiveLogs(writer, uploads, config.tensorboard_upload_secs)
    try:
        result = train(config, strategy, source, nets, losses.get(config.loss), num_classes, manager, writer,
                       start, is_chief=role.is_chief, num_workers=role.num_workers, policy=policy, store=store,
                       stop=stop)
    finally:
        # Flush everything to the job dir before the process ends (normal end, signal or error).
        if live is not None:
            live.close()
        writer.close()
        manager.close()
        if role.is_chief:
            timings = manager.describe_timings()
            if timings:
                print(timings)
            for upload in uploads:
                upload()

    if result["stopped_by"]:
        print(f"stopped by {result['stopped_by']} at step {result['step']}; checkpoint committed. "
              "Run the same command to resume.")
    # -- Export G_ema (float32) once the run has reached its last step.
    if result["step"] >= config.steps and role.is_chief:
        export.save(store, nets.generator_ema, config, num_classes, source.channels, result["step"],
                    class_names=GridLayout.of(num_classes, source.class_names, config.batch_size).class_names,
                    extra={"num_train_images": source.num_examples})
        grid_png = f"{jobdir.SAMPLES}/step-{result['step']:08d}.png"
        model_card.write(store, f"{jobdir.EXPORT}/", store.get(grid_png) if store.exists(grid_png) else None)
        print(f"exported {store.url}/{export.MODEL} (model card: {export.CARD})")
        if os.environ.get("AIP_MODEL_DIR"):  # Vertex AI picks the model up from here
            model_store = storage.open_store(os.environ["AIP_MODEL_DIR"])
            for key in (export.MODEL, export.META):
                model_store.put(key.split("/")[-1], store.get(key))

    return result


def train(config, strategy, source: data.TrainingData, nets: Networks, gan_loss: losses.GanLoss, num_classes: int,
          manager: checkpoints.CheckpointManager, writer: summaries.Summaries, start: int,
          is_chief: bool = True, num_workers: int = 1, policy: tuple[str, ...] = (), store=None,
          stop: Optional[StopRequest] = None) -> dict:
    """The loop: step, guard, log, sample, checkpoint, stop on request."""
    global_batch = config.batch_size
    if start >= config.steps:
        print(f"already at step {start} (--steps={config.steps}): nothing to train")
        return {"step": start, "images_per_sec": 0.0, "stopped_by": None, "skipped_steps": 0}

    # -- Input: per-replica batches, resuming at exactly batch `start`.
    dataset = strategy.distribute_datasets_from_function(
        lambda ctx: data.make_dataset(source, global_batch, config.seed, start, ctx))
    iterator = iter(dataset)
    steps_fn = make_step_fn(config, strategy, nets, gan_loss, num_classes, policy)

    # -- Fixed noise for sample grids (the same picture positions all run long); a row per class.
    grid = GridLayout.of(num_classes, source.class_names if num_classes else (), global_batch)
    grid_size = grid.size
    fixed_z = tf.random.stateless_normal([grid_size, config.latent_dim], seed=[config.seed, -1])
    fixed_labels = tf.constant(grid.labels, tf.int32)

    def sample_images():
        inputs = [fixed_z, fixed_labels] if num_classes else fixed_z
        return nets.generator_ema(inputs, training=False).numpy()

    def save_samples_png(step: int, images: np.ndarray) -> None:
        """JOB_DIR/samples/step-NNNNNNNN.png (and reals.png once): pictures without TensorBoard."""
        if not is_chief or store is None:
            return
        if step == start or not store.exists(f"{jobdir.SAMPLES}/reals.png"):
            if source.images is not None:
                store.put(f"{jobdir.SAMPLES}/reals.png", report_page.samples_png(
                    source.images[:grid_size], f"{min(grid_size, len(source.images))} training images "
                    f"({config.dataset})"))
        store.put(f"{jobdir.SAMPLES}/step-{step:08d}.png", report_page.samples_png(
            summaries.to_uint8(images), f"G_ema samples at step {step} ({config.dataset})",
            columns=grid.columns, row_labels=grid.row_names or None))

    # -- KID against the training images (chief only); the best G_ema goes to export/best/.
    kid_tracker = None
    if config.kid_every and is_chief:
        from trainer import metrics

        real_images, real_labels = source.images, source.labels
        if real_images is None:  # streamed shards: the first kid_samples records
            pairs = list(data.make_dataset(source, config.kid_samples, config.seed).take(1))
            real_images = summaries.to_uint8(pairs[0][0].numpy())
            real_labels = pairs[0][1].numpy() if source.num_classes else None
        kid_tracker = metrics.KidTracker(real_images, real_labels, source.num_classes, config.dataset,
                                         config.latent_dim, config.kid_samples, config.feature_model, config.seed)

    profiler = Profiler(config.profile_range(), writer.logdir, enabled=is_chief)
    writer.hparams({**config.identity(), "classes": num_classes, "diffaugment_policy": ",".join(policy) or "off",
                    "replicas": strategy.num_replicas_in_sync}, trial_id=config.identity_hash())

    def next_event(step):
        cadences = (config.log_every, config.sample_every, config.checkpoint_every) + (
            (config.kid_every,) if config.kid_every else ())
        return min(config.steps, profiler.next_boundary(step), *[(step // c + 1) * c for c in cadences])

    bar = ProgressBar(config.steps, start, enabled=config.progress and is_chief)
    step, saved_step, rates, skipped = start, start, [], 0
    window_start, window_images = time.perf_counter(), 0
    stop_flag = tf.Variable(0.0, trainable=False, name="stop_flag")  # this worker's, not mirrored
    with stop or StopRequest() as stop:
        while step < config.steps:
            # -- Stop requests: alone, stop now; in a cluster, tell every worker through the step.
            if stop.signal is not None:
                if num_workers > 1:
                    stop_flag.assign(1.0)
                else:
                    break
            n = min(config.steps_per_call, next_event(step) - step)
            profiler.before(step)
            metrics = steps_fn(iterator, n, stop_flag)
            step += n
            profiler.after(step)
            window_images += n * global_batch
            # -- Guard: stop on the first non-finite loss, naming the step.
            values = {k: float(v) for k, v in metrics.items()}
            skipped += int(values.pop("skipped_steps"))
            peer_stop = values.pop("stop") > 0
            values.pop("finite_grads")
            bad = [k for k in ("loss/d", "loss/g", "grad_norm/d", "grad_norm/g")
                   if not np.isfinite(values[k]) and not (config.mixed_precision == "float16" and k.startswith("grad"))]
            if bad:
                raise TrainingDiverged(
                    f"training diverged at step {step}: non-finite {', '.join(bad)} "
                    f"({', '.join(f'{k}={values[k]}' for k in bad)}); last checkpoint is step {saved_step}; "
                    "try lower --d_lr/--g_lr or --mixed_precision=off")
            # -- Log.
            if step % config.log_every == 0 or step == config.steps:
                elapsed = time.perf_counter() - window_start
                rate = window_images / elapsed if elapsed > 0 else 0.0
                rates.append(rate)
                window_start, window_images = time.perf_counter(), 0
                scalars = {k: v for k, v in values.items()
                           if (config.mixed_precision == "float16" or not k.startswith("loss_scale"))
                           and (policy or k != "diffaugment/p")}
                scalars.update({"lr/d": config.d_lr, "lr/g": config.g_lr, "perf/images_per_sec": rate})
                if config.mixed_precision == "float16":
                    scalars["mixed_precision/skipped_steps"] = skipped
                writer.scalars(step, scalars)
                bar.update(step, rate, d=values["loss/d"], g=values["loss/g"], real=values["d/real"], fake=values["d/fake"])
            # -- Sample grid from G_ema.
            if step % config.sample_every == 0 or step == config.steps:
                images = sample_images()
                writer.image(step, "samples", summaries.image_grid(images, columns=grid.columns), grid.caption)
                save_samples_png(step, images)
            # -- KID; a new best G_ema is exported (and best_kid checkpointed with the step).
            if kid_tracker and (step % config.kid_every == 0 or step == config.steps):
                kid_value = kid_tracker(nets.generator_ema)
                if kid_value < float(nets.best_kid.numpy()):
                    nets.best_kid.assign(kid_value)
                    export.save(store, nets.generator_ema, config, num_classes, source.channels, step,
                                folder=export.BEST, extra={"kid": kid_value}, class_names=grid.class_names)
                writer.scalars(step, {"quality/kid": kid_value, "quality/best_kid": float(nets.best_kid.numpy())})
            # -- Checkpoint.
            if step % config.checkpoint_every == 0 or step == config.steps:
                writer.flush()  # the save's publish uploads the logs too
                manager.save(step)
                saved_step = step
            if peer_stop:
                break
        bar.close()
        profiler.after(config.steps)
        if step != saved_step:  # stopped by a signal between checkpoints
            manager.save(step)
            saved_step = step
        stopped_by = signal.Signals(stop.signal).name if stop.signal else ("peer" if step < config.steps else None)
    rate = float(np.median(rates[1:] if len(rates) > 1 else rates)) if rates else 0.0
    # Free the compiled step before the input iterator it captured. Left to this frame's teardown,
    # which may free them the other way round, TensorFlow took 10-18 s to release them (2 CPU cores,
    # 32x32 and 64x64 runs), stalling the end of every run; in this order each takes ~0.2 s.
    del steps_fn
    gc.collect()
    del iterator, dataset
    gc.collect()
    print(f"fingerprint generator={fingerprint(nets.generator)} discriminator={fingerprint(nets.discriminator)}")
    return {"step": step, "images_per_sec": rate, "stopped_by": stopped_by, "skipped_steps": skipped}
