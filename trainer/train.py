"""`dcgan train`: the DCGAN training job, top to bottom.

    dcgan train --job_dir=runs/digits                    # bundled digits, CPU or GPU
    dcgan train --job_dir=/tmp/smoke --preset=smoke      # seconds on a CPU
    python -m trainer train --job_dir=... --dataset=path/to/images --resolution=64

`run(config)` builds everything once: the strategy, the data, the resolved
plan (trainer/train_plan.py, saved as JOB_DIR/plan.json), the training state
(trainer/train_state.py) and its checkpoint manager, restored if a checkpoint
exists, and hands them to a `TrainJob`, which owns them. `TrainJob.train` is
the loop: a compiled call of one or more steps (trainer/train_step.py, where
the distributed math lives), the divergence guard, then the periodic actions
it lists (`TrainJob.actions`; trainer/train_actions.py: log, sample grids, KID,
checkpoint), whose cadences also end the compiled calls. `train_and_commit`
makes everything durable before the process may end: the last checkpoint, the
logs, the export and its model card.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import sys
import threading
from typing import Any, Optional

import keras
import tensorflow as tf

from trainer import (
    checkpoints,
    data,
    distribute,
    environment,
    export,
    input_pipeline,
    jobdir,
    losses,
    model_card,
    process_end,
    storage,
    summaries,
    train_actions,
    train_plan,
    train_step,
)
from trainer.errors import UserError
from trainer.shards import stream as shard_stream
from trainer.train_actions import TrainingDiverged  # noqa: F401  (the error a diverged run raises)
from trainer.train_plan import TrainPlan
from trainer.train_state import TrainState, fingerprint


class StopRequest:
    """Turns SIGTERM / Ctrl-C into a flag checked at step boundaries.

    Held from the first step until the final checkpoint is committed and the
    export written: a platform that repeats SIGTERM during its grace period
    does not cut the final upload short (only a second Ctrl-C stops at once).
    Re-entrant: an inner `with` on the same object leaves the handlers alone.

    Python runs a signal handler only when the main thread is back in Python,
    never while it waits inside TensorFlow for the next batch. So the signal is
    also watched from a thread (signal.set_wakeup_fd), which sets
    shard_stream.STOP at once: the shard readers then end the input with
    InputStopped, the wait returns, and `train` commits the checkpoint within
    about a second even while the input stalls."""

    def __init__(self):
        self.signal: Optional[int] = None
        self._previous = {}
        self._depth = 0
        self._watcher = None

    def __enter__(self):
        if self._depth == 0:
            shard_stream.STOP.clear()
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
            self._watch(shard_stream.STOP)
        self._depth += 1
        return self

    def _watch(self, stop_event) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        try:
            previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        except ValueError:  # not the main thread: no signals to watch
            os.close(read_fd)
            os.close(write_fd)
            return
        closing = threading.Event()

        def watch():
            while not closing.is_set():
                received = os.read(read_fd, 64)
                if not received:
                    return
                if any(b in (signal.SIGTERM, signal.SIGINT) for b in received) and not closing.is_set():
                    stop_event.set()

        thread = threading.Thread(target=watch, name="stop-request", daemon=True)
        thread.start()
        self._watcher = (thread, closing, read_fd, write_fd, previous)

    def _unwatch(self) -> None:
        if self._watcher is None:
            return
        thread, closing, read_fd, write_fd, previous = self._watcher
        signal.set_wakeup_fd(previous)
        closing.set()
        os.write(write_fd, b"\0")
        thread.join(timeout=5)
        os.close(write_fd)
        os.close(read_fd)
        self._watcher = None

    def _handle(self, signum, frame):
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if self.signal is not None:
            print(f"\n{signal.Signals(signum).name} received again: still committing the checkpoint", file=sys.stderr)
            return
        self.signal = signum
        print(f"\n{signal.Signals(signum).name} received: stopping at the next step boundary", file=sys.stderr)

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self._unwatch()
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)


def run(
    config, process_exits: bool = False, cluster: Optional[tuple[distribute.ClusterRole, Optional[dict]]] = None
) -> dict:
    """Builds the job from `config` and trains it; returns a summary dict. `process_exits`: the caller ends
    the process right after (see TrainJob.process_exits). `cluster`: `distribute.read_cluster()`'s answer
    if the caller read it (`dcgan train` does, before TensorFlow loads), so the job uses the cluster it checked."""
    # -- Hardware: devices are split before anything else initialises TF.
    cluster = cluster if cluster is not None else distribute.read_cluster()
    role = cluster[0]
    strategy = distribute.make_strategy(config.devices, cluster=cluster)
    if config.xla and strategy.num_replicas_in_sync > 1 and not tf.config.list_logical_devices("GPU"):
        raise UserError(
            "--xla cannot compile across several logical CPU devices (XLA places them all on one "
            "device); use --xla with one CPU device or with GPUs"
        )
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    print(config.describe())
    print(distribute.describe(strategy, role))
    if warning := distribute.precision_warning(config.mixed_precision):
        print(warning, file=sys.stderr)

    # -- Data and the plan (before touching the job dir: a bad dataset leaves it alone).
    source = data.load_source(
        config.dataset,
        config.resolution,
        config.channels,
        folder_labels=config.folder_labels,
        on_corrupt=config.on_corrupt,
        staging=config.dataset_staging,
        stream_buffer_bytes=config.stream_buffer_mb << 20,
    )
    print(source.describe())
    plan = train_plan.resolve(config, source, strategy.num_replicas_in_sync, role.num_workers)
    print(plan.describe())

    # -- Job dir: refuse another job's, record ours and what it resolved to.
    store = jobdir.claim(config, role.is_chief)
    if role.is_chief:
        store.put(jobdir.PLAN, plan.to_json().encode())

    # -- The training state and its checkpoint (restored if one exists).
    keras.mixed_precision.set_global_policy(plan.precision)
    state = TrainState.build(config, plan.channels, plan.num_classes, strategy)
    manager = checkpoint_manager(plan, store, state, role.is_chief)
    start = manager.restore()
    if start:
        print(f"resuming from the checkpoint at step {start}")
    if role.num_workers > 1:
        distribute.check_workers_agree(
            strategy,
            {
                "step": start,
                "generator": int(fingerprint(state.generator)[:7], 16),
                "discriminator": int(fingerprint(state.discriminator)[:7], 16),
            },
        )
    writer = summaries.Summaries(
        store.local(jobdir.TENSORBOARD), enabled=role.is_chief, flush_secs=config.tensorboard_upload_secs or 120.0
    )
    job = TrainJob(plan, strategy, source, state, manager, writer, start, role, store, process_exits)
    with StopRequest() as stop:  # held until the final checkpoint is committed and the export written
        return job.train_and_commit(stop)


def checkpoint_manager(
    plan: TrainPlan, store: storage.Store, state: TrainState, is_chief: bool
) -> checkpoints.CheckpointManager:
    config = plan.config
    return checkpoints.CheckpointManager(
        store,
        state,
        keep=config.keep_checkpoints,
        is_chief=is_chief,
        config_hash=config.identity_hash(),
        earlier_hashes=(config.identity_hash(canonical=False),),
        build_twin=lambda: TrainState.build(config, plan.channels, plan.num_classes, seeded=False),
        sync_after=(jobdir.TENSORBOARD,),
    )


def log_uploads(store: storage.Store) -> list:
    """What copies the TensorBoard logs where they are read: the gs:// job dir (a sync of the
    staged folder; nothing for a local job dir) and Vertex AI's AIP_TENSORBOARD_LOG_DIR."""
    uploads = []
    if storage.is_remote(store.url):
        uploads.append(lambda: store.sync_up(jobdir.TENSORBOARD))
    vertex_logs = environment.vertex_tensorboard_dir()
    if vertex_logs:  # a mirror remembers what it sent: each call uploads only what changed
        uploads.append(storage.TreeMirror(store.local(jobdir.TENSORBOARD), storage.open_store(vertex_logs)))
    return uploads


@dataclasses.dataclass
class TrainJob:
    """One training run's parts, built once by `run` and owned here (as Orbit's Controller owns its
    trainer and periodic actions): `train` is the loop, `train_and_commit` the loop and everything that
    must be durable before the process may end. Tests build one around a hand-made state or loss."""

    plan: TrainPlan
    strategy: Any
    source: data.TrainingData
    state: TrainState
    manager: checkpoints.CheckpointManager
    writer: summaries.Summaries
    start: int  # the step restored from the checkpoint (0 for a new run)
    role: distribute.ClusterRole = dataclasses.field(default_factory=distribute.ClusterRole)
    store: Optional[storage.Store] = None
    # The caller ends the process right after the run (the CLI): the input iterator is then left to the OS
    # instead of being deleted here. Deleting it waits for tf.data's autotune thread to wake from its
    # sleep between tuning rounds (up to 60 s; TensorFlow 2.21, native stack in bench/README.md): 35-37 s
    # at the end of 6 of 10 150-step 32x32x1 runs on 2 cores. Kept, it may go on prefetching while the
    # export and log uploads run.
    process_exits: bool = False

    def actions(self) -> list[train_actions.PeriodicAction]:
        """The periodic actions, in the order they run after a compiled call. Every worker lists the
        same cadences (its calls' boundaries derive from them, and collectives must match): KID, which
        only the chief measures, is a `ChiefOnly` placeholder of the same cadence on the others."""
        plan, config, chief = self.plan, self.plan.config, self.role.is_chief
        kid = (
            train_actions.TrackKid(plan, self.state, self.writer, self.store, self.source)
            if config.kid_every and chief
            else train_actions.ChiefOnly(config.kid_every, config.steps)
        )
        return [
            train_actions.LogMetrics(plan, self.writer, self.start, enabled_bar=config.progress and chief),
            train_actions.SampleGrids(plan, self.state, self.writer, self.store, self.source, chief),
            kid,
            train_actions.SaveCheckpoint(plan, self.manager, self.writer, self.start),
        ]

    def train_and_commit(self, stop: StopRequest) -> dict:
        """The loop, then everything that must be durable before the process may end."""
        config, chief, store = self.plan.config, self.role.is_chief, self.store
        uploads = log_uploads(store) if chief else []
        live = None
        if chief and config.tensorboard_upload_secs > 0:
            live = summaries.LiveLogs(self.writer, uploads, config.tensorboard_upload_secs)
        trained = False
        try:
            result = self.train(stop=stop)
            trained = True
        finally:
            # Flush everything to the job dir before the process ends (normal end, signal or error).
            if live is not None:
                live.close()
            self.writer.close()
            self.manager.close()
            if chief:
                timings = self.manager.describe_timings()
                if timings:
                    print(timings)
                if not trained:
                    upload_logs(uploads)
        if result["stopped_by"]:
            print(
                f"stopped by {result['stopped_by']} at step {result['step']}; checkpoint committed. "
                "Run the same command to resume."
            )
        if result["step"] >= config.steps and chief:
            export_final(self.plan, self.state, store, result["step"])  # before the log uploads: they cannot cost it
        upload_logs(uploads)
        return result

    def record_hparams(self) -> None:
        """The run's identity and resolved plan on TensorBoard's HParams page."""
        config, plan = self.plan.config, self.plan
        self.writer.hparams(
            {**config.identity(), **plan.to_dict(), "diffaugment_policy": ",".join(plan.diffaugment) or "off"},
            trial_id=config.identity_hash(),
        )

    def train(self, stop: Optional[StopRequest] = None, gan_loss: Optional[losses.GanLoss] = None) -> dict:
        """The loop: steps, the divergence guard, the periodic actions, stop on request."""
        config, alone = self.plan.config, self.role.num_workers == 1
        if self.start >= config.steps:
            print(f"already at step {self.start} (--steps={config.steps}): nothing to train")
            return {"step": self.start, "images_per_sec": 0.0, "stopped_by": None, "skipped_steps": 0}
        dataset = self.strategy.distribute_datasets_from_function(  # resumes at exactly batch `start`
            lambda ctx: input_pipeline.make_dataset(self.source, self.plan.global_batch, config.seed, self.start, ctx)
        )
        iterator = iter(dataset)
        steps_fn = train_step.make_step_fn(self.plan, self.strategy, self.state, gan_loss or losses.get(config.loss))
        actions = self.actions()
        log, checkpoint = actions[0], actions[-1]
        profiler = summaries.Profiler(config.profile_range(), self.writer.logdir, enabled=self.role.is_chief)
        self.record_hparams()
        stop_flag = tf.Variable(0.0, trainable=False, name="stop_flag")  # this worker's, not mirrored
        step = self.start
        with stop or StopRequest() as stop:
            while step < config.steps:
                if stop.signal is not None:  # alone, stop now; in a cluster, tell every worker through the step
                    if alone:
                        break
                    stop_flag.assign(1.0)
                n = min(config.steps_per_call, train_actions.boundary(step, actions, profiler) - step)
                profiler.before(step)
                try:
                    metrics, control = steps_fn(iterator, n, stop_flag)
                except tf.errors.OpError as err:
                    _raise_unless_input_stopped(err, alone)
                    step = int(self.state.step.numpy())  # the steps of this call done before the input ended
                    stop.signal = stop.signal or signal.SIGTERM
                    break
                step += n
                profiler.after(step)
                values = train_actions.check_finite(metrics, step, checkpoint.saved_step, config.mixed_precision)
                log.skipped_steps += int(control["skipped_steps"])
                for action in actions:
                    if action.due(step):
                        action(step, values)
                if float(control["stop"]) > 0:
                    break
            log.bar.close()
            profiler.after(config.steps)
            if step != checkpoint.saved_step:  # stopped by a signal between checkpoints
                checkpoint(step, {}, last=True)
            stopped_by = signal.Signals(stop.signal).name if stop.signal else ("peer" if step < config.steps else None)
        # Free the compiled step before the input iterator it captured. Left to this frame's teardown,
        # which may free them the other way round, TensorFlow took 10-18 s to release them (2 CPU cores,
        # 32x32 and 64x64 runs), stalling the end of every run; in this order each takes ~0.2 s.
        self.leave_to_the_os(iterator, dataset)  # when the process ends next; else freed below
        del steps_fn
        gc.collect()
        del iterator, dataset
        gc.collect()
        self.report_end()
        return {
            "step": step,
            "images_per_sec": log.median_rate(),
            "stopped_by": stopped_by,
            "skipped_steps": log.skipped_steps,
        }

    def leave_to_the_os(self, *objects) -> None:
        """Keeps `objects` alive until the process ends, when it ends right after this run (process_exits)."""
        if self.process_exits:
            process_end.keep(*objects)

    def report_end(self) -> None:
        """Prints how many records a streamed input left out (--on_corrupt=skip), and the weights' fingerprints."""
        skipped = self.source.stream.check.report() if self.source.stream is not None else ""
        if skipped:
            print(skipped, file=sys.stderr)
        state = self.state
        print(f"fingerprint generator={fingerprint(state.generator)} discriminator={fingerprint(state.discriminator)}")


def _raise_unless_input_stopped(err: tf.errors.OpError, alone: bool) -> None:
    """A failed call's error, raised as the input's own error where there is one (a damaged shard, storage
    down), unless it is a stop request that ended a single worker's input (the loop then stops cleanly)."""
    failure = shard_stream.failure_behind(err)
    if failure is None:
        raise err
    if not (alone and isinstance(failure, shard_stream.InputStopped)):
        raise failure from None


def upload_logs(uploads: list) -> None:
    """The final log uploads: one that fails is a warning, as during training (the checkpoint and the
    export are already durable; logs never fail a run)."""
    for upload in uploads:
        try:
            upload()
        except Exception as err:  # noqa: BLE001 - a network or permission error must not fail a finished run
            print(
                f"warning: final TensorBoard log upload failed ({type(err).__name__}: {str(err)[:200]}); "
                "the logs stay in the job dir's tensorboard/",
                file=sys.stderr,
            )


def export_final(plan: TrainPlan, state: TrainState, store: storage.Store, step: int) -> None:
    """G_ema (float32) and its model card, once the run has reached its last step; a copy for Vertex AI."""
    export.save(store, state.generator_ema, plan, step)
    grid = jobdir.samples_png(step)
    model_card.write(store, f"{jobdir.EXPORT}/", store.get(grid) if store.exists(grid) else None)
    print(f"exported {store.url}/{jobdir.EXPORT_MODEL} (model card: {jobdir.EXPORT_CARD})")
    if environment.vertex_model_dir():  # Vertex AI picks the model up from here
        model_store = storage.open_store(environment.vertex_model_dir())
        for key in (jobdir.EXPORT_MODEL, jobdir.EXPORT_META):
            model_store.put(key.split("/")[-1], store.get(key))
