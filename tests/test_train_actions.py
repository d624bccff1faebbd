"""The loop's periodic actions: when each is due, and the divergence guard."""

import math

import pytest

from trainer import train_actions


def test_an_action_is_due_every_n_steps_and_at_the_last():
    action = train_actions.PeriodicAction(every=4, last=10)
    assert [s for s in range(1, 11) if action.due(s)] == [4, 8, 10]
    assert [action.next_step(s) for s in (0, 3, 4, 9)] == [4, 4, 8, 10]
    never = train_actions.PeriodicAction(every=0, last=10)
    assert not any(never.due(s) for s in range(1, 11)) and never.next_step(3) == 10


def test_the_guard_names_the_step_and_the_last_checkpoint():
    good = {"loss/d": 1.0, "loss/g": 2.0, "grad_norm/d": 3.0, "grad_norm/g": 4.0}
    assert train_actions.check_finite(good, 5, 4, "off") == good
    with pytest.raises(
        train_actions.TrainingDiverged, match=r"at step 7: non-finite loss/g .*last checkpoint is step 4"
    ):
        train_actions.check_finite({**good, "loss/g": math.nan}, 7, 4, "off")
    # float16 undoes steps whose gradients overflowed: an infinite gradient norm is not divergence there.
    assert train_actions.check_finite({**good, "grad_norm/d": math.inf}, 7, 4, "float16")["grad_norm/d"] == math.inf
    assert train_actions.TrainingDiverged.exit_code == 3


def test_every_worker_ends_its_compiled_calls_at_the_same_steps(tmp_path):
    """Workers run the same sequence of compiled calls (their collectives must match), so a call of
    several steps ends where any action could act on any worker: KID and profiling run on the chief
    only, yet bound every worker's calls. The boundaries come from the job's own action list."""
    import tensorflow as tf

    from trainer import command_line, data, distribute, summaries, train, train_plan
    from trainer.train_state import TrainState

    config = command_line.resolve(
        "train",
        {
            "preset": "smoke",
            "job_dir": str(tmp_path / "j"),
            "steps": 1000,
            "log_every": 100,
            "sample_every": 500,
            "checkpoint_every": 500,
            "kid_every": 255,
            "profile_steps": "612,617",
            "steps_per_call": 10,
        },
    )
    source = data.load_source("digits", 32, 1)
    plan = train_plan.resolve(config, source, 1, 1)
    state = TrainState.build(config, 1, 10)
    worker = distribute.ClusterRole(num_workers=2, task_type="worker", task_index=0, position=1)
    writer = summaries.Summaries(str(tmp_path / "tb"), enabled=False)
    job = train.TrainJob(plan, tf.distribute.get_strategy(), source, state, None, writer, 0, role=worker)
    actions = job.actions()
    assert isinstance(actions[2], train_actions.ChiefOnly) and [a.every for a in actions] == [100, 500, 255, 500]
    for is_chief in (True, False):
        profiler = summaries.Profiler(config.profile_range(), "/tmp/unused", enabled=is_chief)
        boundaries = [train_actions.boundary(s, actions, profiler) for s in (0, 250, 600, 612, 990)]
        assert boundaries == [100, 255, 612, 617, 1000]


def test_class_consistency_picks_the_best_export_and_is_checkpointed(tmp_path, monkeypatch):
    """--select_by=class_consistency: the classifier trained on the data labels G_ema's samples every
    --kid_every steps; the most consistent G_ema goes to export/best/ with both numbers and the criterion.
    With --class_fade_in, a G_ema before the class has fully faded in is measured but never the best."""
    import json
    import os

    import tensorflow as tf

    from trainer import classifier, command_line, data, metrics, train

    from conftest import assert_one_line_error, run_cli
    from tests_helpers import read_scalars

    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path / "cache"))
    job = tmp_path / "job"
    flags = {"preset": "smoke", "job_dir": str(job), "progress": False, "kid_every": 4, "kid_samples": 64}
    config = command_line.resolve("train", {**flags, "select_by": "class_consistency"})
    # The feature classifier the run would train (1500 steps), put in its cache after 30 steps: same code path.
    real = data.load_source(config.dataset, config.resolution, config.channels)
    quick = classifier.train(real.images, real.labels, 10, classifier.ClassifierSpec(steps=30), seed=0)
    path = metrics.classifier_cache_path(config.dataset, real.images, real.labels, 1500)
    os.makedirs(os.path.dirname(path))
    quick.save(path)
    train.run(config)
    consistency = read_scalars(job / "tensorboard", "quality/class_consistency")
    best = read_scalars(job / "tensorboard", "quality/best_class_consistency")
    assert len(consistency) == 2 and all(0.0 <= c <= 1.0 for c in consistency) and best[-1] == max(consistency)
    meta = json.loads((job / "export" / "best" / "generator.json").read_text())
    assert meta["selected_by"] == "class_consistency" and meta["class_consistency"] == max(consistency)
    assert meta["step"] == 4 * (1 + consistency.index(max(consistency))) and "kid" in meta
    pointer = json.loads((job / "checkpoints" / "latest.json").read_text())
    names = [n for n, _ in tf.train.list_variables(str(job / "checkpoints" / pointer["prefix"]))]
    assert any(n.startswith("best_consistency") for n in names)
    faded = tmp_path / "faded"
    flags |= {"job_dir": str(faded), "select_by": "class_consistency", "class_fade_in": "0,4"}
    train.run(command_line.resolve("train", flags))
    assert len(read_scalars(faded / "tensorboard", "quality/class_consistency")) == 2  # steps 4 and 8
    best = read_scalars(faded / "tensorboard", "quality/best_class_consistency")  # no best before the fade ends
    assert best == read_scalars(faded / "tensorboard", "quality/class_consistency")[1:]
    assert json.loads((faded / "export" / "best" / "generator.json").read_text())["step"] == 8  # 4 was mid-fade
    assert_one_line_error(
        run_cli("train", f"--job_dir={tmp_path}/x", "--select_by=class_consistency", "--kid_every=0"),
        "--select_by=class_consistency is measured every --kid_every steps; --kid_every=0 turns it off",
    )
