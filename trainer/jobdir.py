"""The job-dir layout (every folder and file name, defined here only), and refusing to mix two jobs.

    JOB_DIR/config.json          the resolved TrainConfig (the job's identity)
    JOB_DIR/plan.json            what the run resolved it to (trainer/train_plan.py)
    JOB_DIR/checkpoints/         ckpt-NNNNNNNN-XXXXXXXX/ folders + latest.json pointer
    JOB_DIR/tensorboard/         event files (and plugins/profile/ with --profile_steps)
    JOB_DIR/export/generator.keras, generator.json, README.md (the model card), samples.png,
                   evaluation.json (from dcgan evaluate), best/ (the lowest-KID G_ema)
    JOB_DIR/samples/             step-NNNNNNNN.png sample grids, reals.png

An export folder (JOB_DIR/export, export/best, or a copy elsewhere) holds
MODEL_FILE and META_FILE; `dcgan sample --generator` accepts a job dir, an
export folder or the .keras file.

A job dir whose config.json differs in an identity field (anything but the
resumable fields listed in TrainConfig.RESUMABLE), or that holds checkpoints
without a config.json, is refused unless --overwrite, which clears exactly the
contract paths above and nothing else.

    python -c "from trainer import jobdir, config; print(jobdir.claim(config.TrainConfig(job_dir='/tmp/j'), True))"
"""

from __future__ import annotations

from trainer import storage
from trainer.errors import JobDirConflict

CONFIG = "config.json"
PLAN = "plan.json"
CHECKPOINTS = "checkpoints"
CHECKPOINT_POINTER = f"{CHECKPOINTS}/latest.json"
TENSORBOARD = "tensorboard"
SAMPLES = "samples"
SAMPLES_REALS = f"{SAMPLES}/reals.png"
CONTRACT = (CONFIG, PLAN, CHECKPOINTS, TENSORBOARD, "export", SAMPLES)

# An export folder's files.
MODEL_FILE = "generator.keras"  # G_ema in float32
META_FILE = "generator.json"  # what it is: sizes, classes and their names, step, config hash
CARD_FILE = "README.md"  # the model card (trainer/model_card.py)
CARD_SAMPLES_FILE = "samples.png"
EVALUATION_FILE = "evaluation.json"  # what `dcgan evaluate` measured (shown in the card)
EXPORT = "export"
EXPORT_MODEL = f"{EXPORT}/{MODEL_FILE}"
EXPORT_META = f"{EXPORT}/{META_FILE}"
EXPORT_CARD = f"{EXPORT}/{CARD_FILE}"
EXPORT_BEST = f"{EXPORT}/best"  # G_ema at the step with the lowest KID (when --kid_every is on)


def samples_png(step: int) -> str:
    return f"{SAMPLES}/step-{step:08d}.png"


def differences(old, new) -> list[str]:
    """'field old -> new' for each field of the job's identity that differs; a field left out of one side's
    identity (added later, at its default) shows that side's value, not None."""
    a, b = old.identity(), new.identity()
    return [
        f"{k} {a.get(k, getattr(old, k, None))!r} -> {b.get(k, getattr(new, k, None))!r}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


def conflict(config, store: storage.Store) -> str:
    """Why the job dir is not this job's ('' when it is, or is empty); reads only."""
    if store.exists(CONFIG):
        try:
            saved = type(config).from_json(store.get_text(CONFIG))
        except (ValueError, TypeError) as err:
            return f"its config.json is unreadable ({str(err)[:160]})"
        diff = differences(saved, config)
        return "it holds a different job (" + "; ".join(diff) + ")" if diff else ""
    if store.list(CHECKPOINTS) or store.list(EXPORT):
        return "it holds checkpoints or an export but no config.json (another tool's job?)"
    return ""


def _refuse(config, reason: str) -> None:
    if reason and not config.overwrite:
        raise JobDirConflict(f"--job_dir={config.job_dir}: {reason}; use a new --job_dir, or --overwrite to discard it")


def check(config) -> None:
    """Refuses another job's dir before any data is read or anything written (`--dry_run` stops here)."""
    _refuse(config, conflict(config, storage.open_store(config.job_dir)))


def claim(config, is_chief: bool) -> storage.Store:
    """Checks the job dir is this job's (or empty), then records config.json."""
    store = storage.open_store(config.job_dir)
    if is_chief:
        store.check_writable()
    reason = conflict(config, store)
    _refuse(config, reason)
    if reason and is_chief:
        for key in CONTRACT:
            store.delete(key)
    if is_chief:
        store.put(CONFIG, config.to_json().encode())
    return store
