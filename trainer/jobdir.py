"""The job-dir contract, and refusing to mix two jobs in one folder.

    JOB_DIR/config.json          the resolved TrainConfig (the job's identity)
    JOB_DIR/checkpoints/         ckpt-NNNNNNNN/ folders + latest.json pointer
    JOB_DIR/tensorboard/         event files
    JOB_DIR/export/generator.keras, generator.json
    JOB_DIR/samples/             step-NNNNNNNN.png sample grids, reals.png

A job dir whose config.json differs in an identity field (anything but the
resumable fields listed in TrainConfig.RESUMABLE), or that holds checkpoints
without a config.json, is refused unless --overwrite, which clears exactly the
contract paths above and nothing else.

    python -c "from trainer import jobdir, config; print(jobdir.claim(config.TrainConfig(job_dir='/tmp/j'), True))"
"""

from __future__ import annotations

from trainer import config as config_lib
from trainer import storage
from trainer.errors import JobDirConflict

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
EXPORT = "export"
SAMPLES = "samples"  # step-NNNNNNNN.png sample grids and reals.png
CONTRACT = (CONFIG, CHECKPOINTS, TENSORBOARD, EXPORT, SAMPLES)


def differences(old, new) -> list[str]:
    a, b = old.identity(), new.identity()
    return [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def claim(config, is_chief: bool) -> storage.Store:
    """Checks the job dir is this job's (or empty), then records config.json."""
    store = storage.open_store(config.job_dir)
    if is_chief:
        store.check_writable()
    if store.exists(CONFIG):
        try:
            saved = config_lib.load_json(type(config), store.get_text(CONFIG))
        except (ValueError, TypeError) as err:
            saved = None
            reason = f"its config.json is unreadable ({err})"
        else:
            diff = differences(saved, config)
            reason = "it holds a different job (" + "; ".join(diff) + ")" if diff else ""
    elif store.list(CHECKPOINTS) or store.list(EXPORT):
        reason = "it holds checkpoints or an export but no config.json (another tool's job?)"
    else:
        reason = ""
    if reason:
        if not config.overwrite:
            raise JobDirConflict(f"--job_dir={config.job_dir}: {reason}; use a new --job_dir, or --overwrite to discard it")
        if is_chief:
            for key in CONTRACT:
                store.delete(key)
    if is_chief:
        store.put(CONFIG, config.to_json().encode())
    return store


def saved_config(job_dir: str):
    """The TrainConfig recorded in a job dir."""
    store = storage.open_store(job_dir)
    if not store.exists(CONFIG):
        raise JobDirConflict(f"{job_dir}: no {CONFIG} (not a dcgan job dir)")
    return config_lib.load_json(config_lib.TrainConfig, store.get_text(CONFIG))

