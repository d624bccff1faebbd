"""What the training loop does every N steps, as small named actions (as Orbit's periodic actions).

Each action runs when `due(step)`: every `every` steps and at the last step. The
loop calls them in order after each compiled call: `LogMetrics` (TensorBoard
scalars, the progress bar, images/s), `SampleGrids` (G_ema on fixed noise, to
TensorBoard and JOB_DIR/samples/*.png), `TrackKid` (KID against the training
images; a new best G_ema is exported to export/best/), `SaveCheckpoint`.
`check_finite` is the guard run after every call: it stops the run on the first
non-finite loss, naming the step. `boundary` derives where a compiled call of
several steps must end from the actions themselves (trainer/train.py's TrainJob
lists them).

    python -c "from trainer import train_actions; help(train_actions.PeriodicAction)"
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from trainer import data, export, input_pipeline, jobdir, models, report_page, summaries, tf_pipelines
from trainer.errors import EXIT_DIVERGED, UserError
from trainer.progress import ProgressBar
from trainer.train_plan import TrainPlan


class TrainingDiverged(UserError):
    exit_code = EXIT_DIVERGED


def check_finite(metrics: dict, step: int, saved_step: int, mixed_precision: str) -> dict:
    """Float metrics of the last step; raises TrainingDiverged on a non-finite loss or gradient norm (float16
    runs skip steps whose gradients overflowed, so their gradient norms may be inf)."""
    values = {k: float(v) for k, v in metrics.items()}
    bad = [
        k
        for k in ("loss/d", "loss/g", "grad_norm/d", "grad_norm/g")
        if not np.isfinite(values[k]) and not (mixed_precision == "float16" and k.startswith("grad"))
    ]
    if bad:
        raise TrainingDiverged(
            f"training diverged at step {step}: non-finite {', '.join(bad)} "
            f"({', '.join(f'{k}={values[k]}' for k in bad)}); last checkpoint is step {saved_step}; "
            "try lower --d_lr/--g_lr or --mixed_precision=off"
        )
    return values


class PeriodicAction:
    """Runs every `every` steps and at the last step (`every` = 0: never)."""

    def __init__(self, every: int, last: int):
        self.every, self.last = every, last

    def due(self, step: int) -> bool:
        return bool(self.every) and (step % self.every == 0 or step == self.last)

    def next_step(self, step: int) -> int:
        """The first step after `step` at which this action is due."""
        return min(self.last, (step // self.every + 1) * self.every) if self.every else self.last

    def __call__(self, step: int, values: dict) -> None:
        raise NotImplementedError


class ChiefOnly(PeriodicAction):
    """On a worker that is not the chief, the cadence of an action only the chief performs (KID): it
    does nothing, yet bounds this worker's compiled calls where it bounds the chief's."""

    def __call__(self, step: int, values: dict) -> None:
        pass


def boundary(step: int, actions: list[PeriodicAction], profiler) -> int:
    """The first step after `step` at which any action or the profiler may act: a compiled call of
    several steps ends there. The same on every worker, which lists the same cadences."""
    return min(profiler.next_boundary(step), *(action.next_step(step) for action in actions))


class LogMetrics(PeriodicAction):
    """TensorBoard scalars and the progress line; images/s over each window (`rates`)."""

    def __init__(self, plan: TrainPlan, writer: summaries.Summaries, start: int, enabled_bar: bool):
        config = plan.config
        super().__init__(config.log_every, config.steps)
        self.plan, self.writer = plan, writer
        self.bar = ProgressBar(config.steps, start, enabled=enabled_bar)
        self.window_start, self.window_step = time.perf_counter(), start
        self.rates: list[float] = []
        self.skipped_steps = 0  # float16 steps undone because their gradients overflowed

    def __call__(self, step: int, values: dict) -> None:
        config = self.plan.config
        elapsed = time.perf_counter() - self.window_start
        rate = (step - self.window_step) * self.plan.global_batch / elapsed if elapsed > 0 else 0.0
        self.rates.append(rate)
        self.window_start, self.window_step = time.perf_counter(), step
        float16 = config.mixed_precision == "float16"
        scalars = {
            k: v
            for k, v in values.items()
            if (float16 or not k.startswith("loss_scale")) and (self.plan.diffaugment or k != "diffaugment/p")
        }
        scalars.update({"lr/d": config.d_lr, "lr/g": config.g_lr, "perf/images_per_sec": rate})
        if float16:
            scalars["mixed_precision/skipped_steps"] = self.skipped_steps
        self.writer.scalars(step, scalars)
        self.bar.update(
            step, rate, d=values["loss/d"], g=values["loss/g"], real=values["d/real"], fake=values["d/fake"]
        )

    def median_rate(self) -> float:
        """Median images/s over the log windows after the first (which holds the compile)."""
        rates = self.rates[1:] if len(self.rates) > 1 else self.rates
        return float(np.median(rates)) if rates else 0.0


class SampleGrids(PeriodicAction):
    """G_ema on fixed noise, a row per class: to TensorBoard and, on the chief, JOB_DIR/samples/step-N.png
    (and the training images once, as reals.png)."""

    def __init__(self, plan: TrainPlan, state, writer: summaries.Summaries, store, source, is_chief: bool):
        config = plan.config
        super().__init__(config.sample_every, config.steps)
        self.plan, self.state, self.writer, self.source = plan, state, writer, source
        self.store = store if is_chief else None
        self.grid = summaries.GridLayout.of(plan.num_classes, plan.class_names, plan.global_batch)
        self.z = tf.random.stateless_normal([self.grid.size, config.latent_dim], seed=[config.seed, -1])
        self.labels = tf.constant(self.grid.labels, tf.int32)
        self.reals_written = False

    def __call__(self, step: int, values: dict) -> None:
        inputs = models.model_inputs(self.z, self.labels, self.plan.num_classes > 0)
        images = self.state.generator_ema(inputs, training=False).numpy()
        self.writer.image(step, "samples", summaries.image_grid(images, columns=self.grid.columns), self.grid.caption)
        if self.store is None:
            return
        dataset = self.plan.config.dataset
        if not self.reals_written and self.source.images is not None:
            shown = self.source.images[: self.grid.size]
            self.store.put(
                jobdir.SAMPLES_REALS, report_page.samples_png(shown, f"{len(shown)} training images ({dataset})")
            )
            self.reals_written = True
        self.store.put(
            jobdir.samples_png(step),
            report_page.samples_png(
                data.to_uint8(images),
                f"G_ema samples at step {step} ({dataset})",
                columns=self.grid.columns,
                row_labels=self.grid.row_names or None,
            ),
        )


class TrackKid(PeriodicAction):
    """KID of G_ema against the training images, and for conditional data its class consistency (chief
    only); a new best G_ema by --select_by is exported to export/best/ (its generator.json records both
    numbers and the criterion), and the best value kept in the state (checkpointed with the step).
    With --class_fade_in no G_ema is a candidate before the class has fully faded in (it is measured and
    logged, but an export that ignores its labels is never the best)."""

    def __init__(self, plan: TrainPlan, state, writer: summaries.Summaries, store, source):
        from trainer import metrics

        config = plan.config
        super().__init__(config.kid_every, config.steps)
        self.plan, self.state, self.writer, self.store = plan, state, writer, store
        # --class_fade_in: the step after the last one trained at strength < 1
        self.candidates_from = plan.class_fade[1] + 1 if plan.class_fade else 0
        real_images, real_labels = source.images, source.labels
        if real_images is None:  # streamed shards: the first kid_samples records
            first = input_pipeline.make_dataset(source, config.kid_samples, config.seed).take(1)
            pairs = list(tf_pipelines.untuned(first))  # no wait for the autotune thread when it is freed
            real_images = data.to_uint8(pairs[0][0].numpy())
            real_labels = pairs[0][1].numpy() if source.num_classes else None
        self.tracker = metrics.KidTracker(
            real_images,
            real_labels,
            source.num_classes,
            config.dataset,
            config.latent_dim,
            config.kid_samples,
            config.feature_model,
            config.seed,
            conditional=plan.num_classes > 0,
        )

    def __call__(self, step: int, values: dict) -> None:
        kid_value, consistency = self.tracker.measure(self.state.generator_ema)
        if step >= self.candidates_from and self.keep_best(kid_value, consistency):
            extra = {"kid": kid_value, "selected_by": self.plan.config.select_by}
            if consistency is not None:
                extra["class_consistency"] = consistency
            export.save(self.store, self.state.generator_ema, self.plan, step, folder=jobdir.EXPORT_BEST, extra=extra)
        scalars = {"quality/kid": kid_value}
        if step >= self.candidates_from:  # before (--class_fade_in) there is no best yet
            scalars["quality/best_kid"] = float(self.state.best_kid.numpy())
        if consistency is not None:
            scalars["quality/class_consistency"] = consistency
        if self.state.best_consistency is not None and step >= self.candidates_from:
            scalars["quality/best_class_consistency"] = float(self.state.best_consistency.numpy())
        self.writer.scalars(step, scalars)

    def keep_best(self, kid_value: float, consistency: float | None) -> bool:
        """Updates the best KID (always: it is logged) and, under --select_by=class_consistency, the best
        class consistency; says whether this G_ema is the new best by the --select_by criterion."""
        state = self.state
        better_kid = kid_value < float(state.best_kid.numpy())
        if better_kid:
            state.best_kid.assign(kid_value)
        if self.plan.config.select_by != "class_consistency":
            return better_kid
        better = consistency is not None and consistency > float(state.best_consistency.numpy())
        if better:
            state.best_consistency.assign(consistency)
        return better


class SaveCheckpoint(PeriodicAction):
    """A checkpoint (the copy on this thread, the write and upload in the background). The save at the
    last step, or `last=True` (the loop has ended), writes the live state: nothing changes it any more."""

    def __init__(self, plan: TrainPlan, manager, writer: summaries.Summaries, start: int):
        super().__init__(plan.config.checkpoint_every, plan.config.steps)
        self.manager, self.writer, self.saved_step = manager, writer, start

    def __call__(self, step: int, values: dict, last: bool = False) -> None:
        self.writer.flush()  # the save's publish uploads the logs too
        self.manager.save(step, last=last or step >= self.last)
        self.saved_step = step
