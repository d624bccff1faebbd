"""The training job in-process: it learns, resumes exactly, logs, exports, guards."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from trainer import command_line, export, jobdir, losses, process_end, train, train_plan, train_step
from trainer import config as config_lib
from trainer.errors import JobDirConflict
from trainer.train_state import TrainState

from conftest import assert_one_line_error, run_cli
from tests_helpers import read_scalars


def smoke(job_dir, **overrides):
    flags = {"preset": "smoke", "job_dir": str(job_dir), "progress": False, **overrides}
    return command_line.resolve("train", flags)


def checkpoint_values(job_dir):
    """Every tensor of the latest checkpoint (weights, optimizer slots, step) by name."""
    pointer = json.load(open(os.path.join(job_dir, "checkpoints", "latest.json")))
    reader = tf.train.load_checkpoint(os.path.join(job_dir, "checkpoints", pointer["prefix"]))
    names = [n for n in reader.get_variable_to_shape_map() if "_CHECKPOINTABLE" not in n]
    return pointer["step"], {n: reader.get_tensor(n) for n in names}


def straight_and_resumed(tmp_path, flags):
    """(job dir, checkpoint values) of a smoke run straight to flags' --steps, and the checkpoint values of
    one stopped at 3 and resumed."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train.run(smoke(straight, **flags))
    train.run(smoke(split, **{**flags, "steps": 3}))
    train.run(smoke(split, **flags))
    return straight, checkpoint_values(str(straight))[1], checkpoint_values(str(split))[1]


def refuses(tmp_path, *cases):
    """Each (smoke-run flags, message): `dcgan train` fails with that one-line error."""
    for flags, message in cases:
        assert_one_line_error(run_cli("train", "--preset=smoke", f"--job_dir={tmp_path}/x", *flags), message)


def restored(job_dir, config):
    """The TrainState of a job dir's latest checkpoint: every object the state lists is in it."""
    state = TrainState.build(config, 1, 10)
    pointer = json.load(open(os.path.join(job_dir, "checkpoints", "latest.json")))
    state.checkpoint().read(os.path.join(job_dir, "checkpoints", pointer["prefix"])).assert_existing_objects_matched()
    return state


def test_smoke_run_learns_and_writes_the_contract(tmp_path):
    job = tmp_path / "job"
    config = smoke(job)
    result = train.run(config)
    assert result["step"] == config.steps
    for key in ("config.json", "checkpoints/latest.json", "export/generator.keras", "export/generator.json"):
        assert (job / key).exists(), key
    assert json.loads((job / "config.json").read_text())["steps"] == config.steps
    # Every weight of G and D moved away from its initial value; G_ema is not G.
    init = TrainState.build(config, 1, 10)
    trained = restored(str(job), config)
    assert int(trained.step.numpy()) == config.steps
    for model in ("generator", "discriminator"):
        before, after = getattr(init, model).trainable_weights, getattr(trained, model).trainable_weights
        changed = [not np.allclose(a.numpy(), b.numpy()) for a, b in zip(before, after)]
        assert all(changed), (model, changed)
    assert not np.allclose(
        trained.generator.get_layer("project").kernel.numpy(), trained.generator_ema.get_layer("project").kernel.numpy()
    )


def test_loss_moves_and_stays_finite(tmp_path):
    """A few dozen steps of a tiny model: D learns to separate, losses finite."""
    config = smoke(tmp_path / "job", steps=30, log_every=30, sample_every=30, checkpoint_every=30)
    train.run(config)
    d_loss = read_scalars(tmp_path / "job" / "tensorboard", "loss/d")
    real = read_scalars(tmp_path / "job" / "tensorboard", "d/real")
    assert np.isfinite(d_loss).all()
    # Untrained D outputs ~0.5 for everything; after 30 steps it favours reals.
    assert real[-1] > 0.55


def test_tensorboard_tags_read_back(smoke_job):
    acc = event_accumulator.EventAccumulator(
        os.path.join(smoke_job, "tensorboard"), size_guidance={event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    scalars = set(acc.Tags()["scalars"]) | set(acc.Tags()["tensors"])
    for tag in (
        "loss/d",
        "loss/g",
        "d/real",
        "d/fake",
        "grad_norm/d",
        "grad_norm/g",
        "lr/d",
        "lr/g",
        "perf/images_per_sec",
    ):
        assert tag in scalars, (tag, scalars)
    images = acc.Images("samples") if "samples" in acc.Tags()["images"] else []
    tensors = acc.Tensors("samples") if "samples" in acc.Tags()["tensors"] else []
    assert images or tensors


def test_hparams_are_recorded_for_the_dashboard(smoke_job):
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = event_accumulator.EventAccumulator(os.path.join(smoke_job, "tensorboard"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert info.hparams["g_lr"].number_value == smoke(smoke_job).g_lr
    assert info.hparams["loss"].string_value == smoke(smoke_job).loss
    assert info.hparams["num_classes"].number_value == 10


def test_profile_steps_write_a_tensorboard_profile(tmp_path):
    job = tmp_path / "job"
    result = run_cli(
        "train", "--preset=smoke", f"--job_dir={job}", "--progress=false", "--profile_steps=3,5", "--steps_per_call=4"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "profile of steps 3-5 written" in result.stdout
    assert list((job / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert_one_line_error(
        run_cli("train", f"--job_dir={tmp_path}/x", "--profile_steps=5,5"),
        "--profile_steps='5,5' must be 'A,B' with 0 <= A < B",
    )


def test_export_loads_with_plain_keras_and_generates(smoke_job):
    meta = json.load(open(os.path.join(smoke_job, "export", "generator.json")))
    g = keras.models.load_model(os.path.join(smoke_job, "export", "generator.keras"), compile=False)
    z = tf.random.normal([5, meta["latent_dim"]])
    images = g([z, tf.constant([0, 1, 2, 3, 9])]) if meta["conditional"] else g(z)
    assert images.shape == (5, meta["resolution"], meta["resolution"], meta["channels"])
    assert images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= -1.0 and float(tf.reduce_max(images)) <= 1.0
    assert meta["num_classes"] == 10 and meta["step"] == config_lib.TRAIN_PRESETS["smoke"]["steps"]
    model, loaded_meta = export.load(smoke_job)
    assert loaded_meta == meta and model.input_shape[0] == (None, meta["latent_dim"])


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    """Stop at step 3, resume to 6: bit-identical to 6 straight (weights, slots, step)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train.run(smoke(straight, steps=6, checkpoint_every=3))
    train.run(smoke(split, steps=3, checkpoint_every=3))
    result = train.run(smoke(split, steps=6, checkpoint_every=3))
    assert result["step"] == 6
    step_a, a = checkpoint_values(str(straight))
    step_b, b = checkpoint_values(str(split))
    assert step_a == step_b == 6 and a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # bit-identical on CPU


def test_only_keep_newest_checkpoints(tmp_path):
    train.run(smoke(tmp_path / "j", steps=10, checkpoint_every=2, keep_checkpoints=2))
    folders = sorted(p.name for p in (tmp_path / "j" / "checkpoints").iterdir() if p.is_dir())
    assert [f[:13] for f in folders] == ["ckpt-00000008", "ckpt-00000010"]


def test_non_finite_loss_stops_naming_the_step(tmp_path):
    config = smoke(tmp_path / "j", steps=5)
    poisoned = losses.GanLoss("poisoned", d=lambda r, f: r * float("nan"), g=lambda f: -f)
    store = jobdir.claim(config, True)
    source = train.data.load_source("digits", 32, 1)
    plan = train_plan.resolve(config, source, 1, 1)
    state = TrainState.build(config, 1, 10)
    manager = train.checkpoint_manager(plan, store, state, is_chief=True)
    writer = train.summaries.Summaries(str(tmp_path / "tb"), enabled=False)
    with pytest.raises(train.TrainingDiverged, match="diverged at step 1: non-finite loss/d"):
        train.TrainJob(plan, tf.distribute.get_strategy(), source, state, manager, writer, 0).train(gan_loss=poisoned)


def test_job_dir_of_another_job_is_refused_and_left_intact(tmp_path):
    job = tmp_path / "j"
    train.run(smoke(job, steps=2))
    before = {p: p.read_bytes() for p in job.rglob("*") if p.is_file()}
    with pytest.raises(JobDirConflict, match=r"different job \(latent_dim 16 -> 32"):
        train.run(smoke(job, steps=2, latent_dim=32))
    assert {p: p.read_bytes() for p in job.rglob("*") if p.is_file()} == before
    # --overwrite starts afresh.
    result = train.run(smoke(job, steps=2, latent_dim=32, overwrite=True))
    assert result["step"] == 2
    assert json.loads((job / "config.json").read_text())["latent_dim"] == 32


def test_foreign_checkpoints_without_config_are_refused(tmp_path):
    job = tmp_path / "j"
    (job / "checkpoints").mkdir(parents=True)
    (job / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    with pytest.raises(JobDirConflict, match="no config.json"):
        jobdir.claim(smoke(job), True)
    assert (job / "checkpoints" / "checkpoint").exists()


def test_resumable_fields_may_change(tmp_path):
    job = tmp_path / "j"
    train.run(smoke(job, steps=2))
    result = train.run(smoke(job, steps=4, log_every=1, checkpoint_every=1))
    assert result["step"] == 4
    assert config_lib.TrainConfig.from_json((job / jobdir.CONFIG).read_text()).steps == 4


def test_keras_still_calls_the_overridden_gradient_sum():
    """AllReducedAdam overrides a private Keras method; if Keras stops calling it, gradients would be
    summed twice across replicas (or never), so this fails loudly on a Keras upgrade."""
    import keras

    from trainer.train_state import AllReducedAdam

    calls = []

    class Spy(AllReducedAdam):
        def _all_reduce_sum_gradients(self, grads_and_vars):
            calls.append(len(list(grads_and_vars)))
            return super()._all_reduce_sum_gradients(grads_and_vars)

    variable = keras.Variable([1.0, 2.0])
    optimizer = Spy(learning_rate=0.1)
    optimizer.apply([keras.ops.convert_to_tensor([1.0, 1.0])], [variable])
    assert calls == [1], f"Keras {keras.__version__} no longer calls _all_reduce_sum_gradients"
    assert float(variable.numpy()[0]) < 1.0  # and the update itself happened


def test_the_sngan_style_design_trains_exports_and_samples(tmp_path):
    """--g_conditioning=cbn --d_spectral_norm --loss=hinge end to end: the export loads in the sampler."""
    job = tmp_path / "job"
    result = run_cli(
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        "--g_conditioning=cbn",
        "--d_spectral_norm",
        "--loss=hinge",
        "--progress=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    sample = run_cli("sample", f"--generator={job}", f"--output={out}", "--preset=smoke", "--progress=false")
    assert sample.returncode == 0, sample.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["num_images"] == 40
    assert_one_line_error(
        run_cli("train", f"--job_dir={tmp_path}/x", "--g_conditioning=film"),
        "--g_conditioning='film' must be 'concat', 'cbn' or 'skip_z'",
    )


def test_skip_z_resumes_bit_identically_and_its_export_samples(tmp_path):
    """--g_conditioning=skip_z: stop at 3 + resume to 6 equals 6 straight (the gain and bias layers are in the
    checkpoint), and `dcgan sample` draws from the export."""
    flags = dict(steps=6, checkpoint_every=3, g_conditioning="skip_z")
    straight, a, b = straight_and_resumed(tmp_path, flags)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    state = restored(str(straight), smoke(straight, **flags))  # every object, the gain layers too, is in it
    assert any(layer.name == "bn_8_gain" for layer in state.generator.layers)
    out = tmp_path / "out"
    sample = run_cli("sample", f"--generator={straight}", f"--output={out}", "--preset=smoke", "--progress=false")
    assert sample.returncode == 0, sample.stderr[-3000:]
    assert json.loads((out / "manifest.json").read_text())["num_images"] == 40


def test_lecam_with_dihedral_diffaugment_resumes_bit_identically_logs_exports_and_samples(tmp_path):
    """--lecam_weight: its moving averages live in the checkpoint (stop at 3, resume to 6 equals 6 straight,
    with --diffaugment's dihedral policy at --dihedral_p=0.5 and --real_augment=dihedral on too), D's logit
    means are logged, the export samples; a job dir without LeCam checkpoints exactly what it did before (no
    lecam variable)."""
    flags = dict(
        steps=6,
        checkpoint_every=3,
        lecam_weight=0.3,
        diffaugment="color,translation,dihedral",
        dihedral_p=0.5,
        real_augment="dihedral",
    )
    straight, a, b = straight_and_resumed(tmp_path, flags)
    assert a.keys() == b.keys() and any(name.startswith("lecam/") for name in a)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    every = tmp_path / "every"  # the share reaches the step: turning every image trains other weights
    train.run(smoke(every, **{**flags, "dihedral_p": 1.0}))
    _, c = checkpoint_values(str(every))
    assert a.keys() == c.keys() and any(not np.array_equal(a[name], c[name]) for name in a)
    averages = next(v for n, v in a.items() if n.startswith("lecam/"))
    assert averages.shape == (2,) and np.isfinite(averages).all() and (averages != 0).all()
    restored(str(straight), smoke(straight, **flags))
    real = read_scalars(straight / "tensorboard", "lecam/real_logit")
    assert real and all(np.isfinite(real))
    out = tmp_path / "out"
    sample = run_cli("sample", f"--generator={straight}", f"--output={out}", "--preset=smoke", "--progress=false")
    assert sample.returncode == 0, sample.stderr[-3000:]
    plain = tmp_path / "plain"
    train.run(smoke(plain, steps=2, checkpoint_every=2))
    assert not any(name.startswith("lecam/") for name in checkpoint_values(str(plain))[1])
    assert_one_line_error(
        run_cli("train", f"--job_dir={tmp_path}/x", "--lecam_weight=-1"), "--lecam_weight=-1.0 must be >= 0 (0 = off)"
    )
    assert_one_line_error(
        run_cli("train", f"--job_dir={tmp_path}/x", "--dihedral_p=0.5"),
        "--dihedral_p=0.5 needs --diffaugment with dihedral in it",
    )


def test_class_loss_trains_logs_the_class_head_resumes_and_exports(tmp_path):
    """--class_loss_weight: D's class head is trained, logged, checkpointed with the rest (a resume continues
    it), and G exports and samples as usual; a negative weight is one line."""
    job = tmp_path / "job"
    args = ["train", "--preset=smoke", f"--job_dir={job}", "--class_loss_weight=1", "--progress=false"]
    args.append("--mode_seeking_weight=1")  # the other G-side term, in the same run
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = run_cli(*args, "--steps=12")
    assert resumed.returncode == 0 and "resuming from the checkpoint at step 8" in resumed.stdout, resumed.stderr[
        -3000:
    ]
    for tag in ("class/real_accuracy", "class/fake_accuracy"):
        values = read_scalars(job / "tensorboard", tag)
        assert len(values) == 6 and all(0.0 <= v <= 1.0 for v in values), (tag, values)  # every 2 steps to 12
    config = smoke(job, class_loss_weight=1.0, mode_seeking_weight=1.0)
    state = TrainState.build(config, 1, 10)
    pointer = json.load(open(job / "checkpoints" / "latest.json"))
    state.checkpoint().read(str(job / "checkpoints" / pointer["prefix"])).assert_existing_objects_matched()
    assert pointer["step"] == 12 and state.discriminator.get_layer("class_logits") is not None
    sample = run_cli("sample", f"--generator={job}", f"--output={tmp_path}/out", "--preset=smoke", "--progress=false")
    assert sample.returncode == 0, sample.stderr[-3000:]
    assert_one_line_error(
        run_cli("train", f"--job_dir={tmp_path}/x", "--class_loss_weight=-1"),
        "--class_loss_weight=-1.0 must be >= 0 (0 = off)",
    )


def test_tac_resumes_bit_identically_trains_its_twin_logs_it_and_refuses_misuse(tmp_path):
    """--class_loss=tac: D's class head has the twin's columns too (in the checkpoint: stop at 3 + resume to 6
    equals 6 straight), and D's step trains them; the twin's accuracy on G's samples is logged; the export
    samples; an unknown name, or tac without a class weight, is one line. The loss terms themselves:
    tests/test_train_step.py."""
    flags = dict(steps=6, checkpoint_every=3, log_every=2, class_loss_weight=0.5, class_loss="tac")
    straight, a, b = straight_and_resumed(tmp_path, flags)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    state = restored(str(straight), smoke(straight, **flags))
    trained = np.asarray(state.discriminator.get_layer("class_logits").kernel)
    initial = np.asarray(
        TrainState.build(smoke(straight, **flags), 1, 10).discriminator.get_layer("class_logits").kernel
    )
    assert trained.shape == (initial.shape[0], 20)  # 10 classes: AC-GAN's columns, then the twin's
    # D's step trains the twin's columns (only its cross-entropy on G's samples reaches them) and AC-GAN's
    assert (
        np.abs(trained[:, 10:] - initial[:, 10:]).max() > 1e-4
        and np.abs(trained[:, :10] - initial[:, :10]).max() > 1e-4
    )
    values = read_scalars(straight / "tensorboard", "class/twin_accuracy")
    assert len(values) == 3 and all(0.0 <= v <= 1.0 for v in values), values  # steps 2, 4, 6
    out = tmp_path / "out"
    sample = run_cli("sample", f"--generator={straight}", f"--output={out}", "--preset=smoke", "--progress=false")
    assert sample.returncode == 0, sample.stderr[-3000:]
    refuses(
        tmp_path,
        (["--class_loss=twin"], "--class_loss='twin' is unknown; choose one of ['ac', 'tac']"),
        (["--class_loss=tac"], "--class_loss=tac weighs its terms by --class_loss_weight; set it above 0 (TAC-GAN: 1)"),
    )


def test_class_fade_in_resumes_bit_identically_logs_its_strength_exports_and_refuses_misuse(tmp_path):
    """--class_fade_in=2,6 (with the AC term, which fades too): the strength is a function of the step, so stop
    at 3 + resume to 6 equals 6 straight; it is logged rising from 0; it reaches the step (other weights than
    the same run conditional from the start); G's and D's strength variables are checkpointed; the export
    samples; bad ranges, cbn and unlabelled runs are one line each."""
    flags = dict(steps=6, checkpoint_every=3, log_every=1, class_fade_in="2,6", class_loss_weight=0.3)
    straight, a, b = straight_and_resumed(tmp_path, flags)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # --class_fade_in='2, 6' is the same job as '2,6', and one started by a version that hashed the raw
    # spelling (its pointer says so) still resumes when the same command runs again
    spaced, spelt = tmp_path / "spaced", {**flags, "class_fade_in": "2, 6"}
    assert smoke(spaced, **spelt).identity_hash() == smoke(spaced, **flags).identity_hash()
    train.run(smoke(spaced, **{**spelt, "steps": 3}))
    pointer = json.loads((spaced / "checkpoints" / "latest.json").read_text())
    pointer["config_hash"] = smoke(spaced, **spelt).identity_hash(canonical=False)
    (spaced / "checkpoints" / "latest.json").write_text(json.dumps(pointer))
    train.run(smoke(spaced, **spelt))
    resumed = checkpoint_values(str(spaced))[1]
    for name in a:
        np.testing.assert_array_equal(a[name], resumed[name], err_msg=name)
    strengths = {n: v for n, v in a.items() if "strength" in n}
    assert len(strengths) == 3, sorted(a)  # G's label strength, G_ema's, D's projection strength
    assert all(float(v) == 0.75 for v in strengths.values()), strengths  # set before step index 5: (5 - 2) / 4
    logged = read_scalars(straight / "tensorboard", "class/strength")
    np.testing.assert_allclose(logged, [0.0, 0.0, 0.0, 0.25, 0.5, 0.75])
    conditional = tmp_path / "conditional"
    train.run(smoke(conditional, **{**flags, "class_fade_in": ""}))
    _, c = checkpoint_values(str(conditional))
    assert not any("strength" in n for n in c)
    faded = restored(str(straight), smoke(straight, **flags)).generator.get_layer("project").get_weights()[0]
    plain = restored(str(conditional), smoke(conditional, **{**flags, "class_fade_in": ""}))
    assert not np.allclose(faded, plain.generator.get_layer("project").get_weights()[0])
    out = f"--output={tmp_path}/out"
    sample = run_cli("sample", f"--generator={straight}", out, "--preset=smoke", "--progress=false")
    assert sample.returncode == 0, sample.stderr[-3000:]
    refuses(
        tmp_path,
        (["--class_fade_in=5"], "--class_fade_in='5' must be 'START,END' with 0 <= START < END (steps)"),
        (["--class_fade_in=6,2"], "--class_fade_in='6,2' must be 'START,END' with 0 <= START < END (steps)"),
        (["--class_fade_in=2,6", "--g_conditioning=cbn"], "--class_fade_in needs --g_conditioning=concat, not 'cbn'"),
        (
            ["--class_fade_in=2,6", "--conditional=false"],
            "--class_fade_in=2,6 needs a conditional run (a labelled dataset)",
        ),
    )


def test_a_run_whose_process_ends_next_leaves_its_input_iterator_to_the_os(tmp_path):
    """`dcgan train` (process_exits=True) keeps the iterator instead of deleting it, which can wait up to
    60 s for tf.data's autotune thread; a library call frees it as before."""
    before = len(process_end.kept())
    train.run(smoke(tmp_path / "library", steps=2))
    assert len(process_end.kept()) == before
    train.run(smoke(tmp_path / "cli", steps=2), process_exits=True)
    assert len(process_end.kept()) == before + 1
    iterator, dataset = process_end.kept()[-1]
    assert isinstance(dataset, tf.distribute.DistributedDataset) and isinstance(
        iterator, tf.distribute.DistributedIterator
    )


def test_minibatch_std_reaches_d_resumes_bit_identically_and_refuses_misuse(tmp_path):
    """--minibatch_std=4 --minibatch_std_views=shared: D has the spread channel (D's last conv one input
    channel wider than without it); each group of 4 gets one DiffAugment draw, this replica's slice of the
    step's; stop at 3 + resume to 6 equals 6 straight; bad group sizes and views are one line each, before
    training."""
    flags = dict(steps=6, checkpoint_every=3, minibatch_std=4, minibatch_std_views="shared")
    plan = train_plan.TrainPlan.of(smoke(tmp_path / "p", batch_size=16, **flags), 1, 10)
    _, _, real_draws, fake_draws, _ = train_step.draws(plan, tf.constant(5, tf.int64), slice(8, 16))
    own = train_step.draws(
        train_plan.TrainPlan.of(smoke(tmp_path / "p", batch_size=16, minibatch_std=4), 1, 10),
        tf.constant(5, tf.int64),
        slice(0, 16),
    )
    for draws, own_draws in ((real_draws.numpy(), own[2].numpy()), (fake_draws.numpy(), own[3].numpy())):
        np.testing.assert_array_equal(draws, np.repeat(own_draws[[8, 12]], 4, axis=0))
    straight, a, b = straight_and_resumed(tmp_path, flags)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    d = restored(str(straight), smoke(straight, **flags)).discriminator
    plain = TrainState.build(smoke(tmp_path / "plain"), 1, 10).discriminator
    wide, narrow = d.get_layer("down_4").kernel.shape, plain.get_layer("down_4").kernel.shape
    assert wide[2] == narrow[2] + 1 and "minibatch_std" not in [layer.name for layer in plain.layers]
    refuses(
        tmp_path,
        (["--minibatch_std=-1"], "--minibatch_std=-1 must be >= 0 (0 = off)"),
        (["--minibatch_std=1"], "--minibatch_std=1 has no spread to measure"),
        (["--minibatch_std_views=group"], "--minibatch_std_views='group' is unknown; choose one of ['own', 'shared']"),
        (
            ["--minibatch_std_views=shared"],
            "--minibatch_std_views=shared shares DiffAugment's draws within D's groups: it needs --minibatch_std=GROUP",
        ),
        (
            ["--minibatch_std=4", "--minibatch_std_views=shared", "--diffaugment=none"],
            "--minibatch_std_views=shared shares DiffAugment's draws within D's groups, but DiffAugment is off here",
        ),
        (["--minibatch_std=3"], "--batch_size=16 gives 16 per replica (1 replica), not a multiple of 3"),
        (
            ["--minibatch_std=16", "--devices=2"],
            "--batch_size=16 gives 8 per replica (2 replicas), not a multiple of 16",
        ),
    )
    assert not (tmp_path / "x" / "checkpoints").exists()


def test_class_names_travel_from_the_folders_to_the_grids_export_shards_and_tfds(tmp_path):
    """Folder names -> generator.json -> labelled sample grids (PNG in the job dir, TensorBoard caption)
    -> `dcgan sample --labels=NAME:W` -> plan, manifest, TFDS ClassLabel names and --preview rows."""
    from PIL import Image

    rng = np.random.default_rng(0)
    names = ["cat", "dog", "zebra\nstripes"]  # a control character in a folder name is shown escaped
    for c, name in enumerate(names):
        for i in range(4):
            folder = tmp_path / "images" / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, [32, 32, 3], np.uint8)).save(folder / f"{i}.png")
    job = tmp_path / "job"
    result = run_cli(
        "train", "--preset=smoke", f"--dataset={tmp_path / 'images'}", f"--job_dir={job}", "--progress=false"
    )  # samples every 4 of 8 steps
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 classes (cat, dog, zebra\\nstripes)" in result.stdout
    expected = ["cat", "dog", "zebra\\nstripes"]
    assert json.loads((job / "export" / "generator.json").read_text())["class_names"] == expected
    # Pictures without TensorBoard: a row per class, labelled.
    assert sorted(p.name for p in (job / "samples").iterdir()) == [
        "reals.png",
        "step-00000004.png",
        "step-00000008.png",
    ]
    assert Image.open(job / "samples" / "step-00000008.png").size[0] >= 8 * 96  # upscaled, titled
    # TensorBoard's image shows 3 rows of 8 and says which class each row is.
    acc = event_accumulator.EventAccumulator(str(job / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    grid = acc.Tensors("samples")[-1]
    assert tf.io.decode_png(grid.tensor_proto.string_val[2]).shape[:2] == (3 * 33 + 1, 8 * 33 + 1)
    description = acc.SummaryMetadata("samples").summary_description
    assert "row 1: 0: cat" in description and "row 3: 2: zebra\\nstripes" in description
    # Sampling by class name; the names reach the plan, the manifest and TFDS.
    out = tmp_path / "out"
    sample = run_cli(
        "sample", f"--generator={job}", f"--output={out}", "--preset=smoke", "--progress=false", "--labels=dog:1,2:1"
    )
    assert sample.returncode == 0, sample.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["class_names"] == manifest["plan"]["class_names"] == expected
    tfds = pytest.importorskip("tensorflow_datasets")
    builder = tfds.builder_from_directory(str(out))
    assert builder.info.features["image/class/label"].names == expected
    labels = [int(y) for _, y in builder.as_dataset(split="train", as_supervised=True)]
    assert len(labels) == 40 and set(labels) == {1, 2}
    assert_one_line_error(
        run_cli("sample", f"--generator={job}", f"--output={tmp_path}/x", "--labels=horse:1"),
        "--labels: no class 'horse' in this generator (classes: cat, dog, zebra\\nstripes)",
    )
    assert_one_line_error(
        run_cli("sample", f"--generator={job}", f"--output={tmp_path}/x", "--labels=cat:nan"),
        "--labels='cat:nan' must be",
    )
    preview = run_cli("sample", f"--generator={job}", "--preview=6", f"--output={tmp_path / 'grid.png'}")
    assert preview.returncode == 0, preview.stderr[-3000:]
    assert Image.open(tmp_path / "grid.png").size[1] > 3 * 96  # a row per class


def test_a_job_runs_on_the_cluster_its_command_checked(tmp_path, monkeypatch, capsys):
    """`dcgan train` reads the cluster once, before TensorFlow loads, and hands that answer to the job: the
    environment is not read again (here it has turned into a TF_CONFIG that would be refused)."""
    from trainer import distribute

    checked = distribute.read_cluster({})  # one process, no cluster
    monkeypatch.setenv("TF_CONFIG", "{not json")
    train.run(smoke(tmp_path / "job", steps=1), cluster=checked)
    assert "1 worker(s), this is" in capsys.readouterr().out
