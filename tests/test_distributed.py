"""Multi-replica and multi-worker training with real processes; mixed precision."""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import command_line, distribute, train
from trainer.errors import UserError
from trainer.train_state import TrainState

from conftest import REPO, assert_one_line_error, run_cli
from tests_helpers import start_workers


def latest_tensors(job_dir):
    pointer = json.load(open(os.path.join(job_dir, "checkpoints", "latest.json")))
    reader = tf.train.load_checkpoint(os.path.join(job_dir, "checkpoints", pointer["prefix"]))
    return {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map() if "_CHECKPOINTABLE" not in n}


def fingerprints(stdout):
    return [line for line in stdout.splitlines() if line.startswith("fingerprint ")]


@pytest.mark.parametrize(
    "design",
    [
        [],
        pytest.param(["--g_conditioning=cbn", "--d_spectral_norm", "--loss=hinge"], marks=pytest.mark.slow),
        [
            "--lecam_weight=0.3",
            "--diffaugment=color,translation,dihedral",
            "--dihedral_p=0.5",
            "--real_augment=dihedral",
            "--class_fade_in=1,3",
            "--class_loss_weight=0.3",
            "--class_loss=tac",
            "--minibatch_std=4",
        ],
        # the default DiffAugment (cutout too) with skip-z and shared views; the default design alone (concat,
        # no minibatch spread in D) is the slow tier's: its other paths are in these two variants
        ["--minibatch_std=4", "--minibatch_std_views=shared", "--g_conditioning=skip_z"],
    ],
    ids=["dcgan", "cbn-sn-hinge", "lecam-dihedral-fade-tac-mbstd", "mbstd-shared-views-skip-z"],
)
def test_one_replica_2b_equals_two_replicas_b_with_sync_batchnorm(tmp_path, design):
    """Same seed and data: 1 x 16 and 2 logical CPUs x 8 give the same weights."""
    common = [
        "train",
        "--preset=smoke",
        "--steps=4",
        "--batch_size=16",
        "--sync_batchnorm",
        "--progress=false",
        "--deterministic",
        *design,
    ]
    one = run_cli(*common, f"--job_dir={tmp_path}/one")
    two = run_cli(*common, f"--job_dir={tmp_path}/two", "--devices=2")
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    assert "MirroredStrategy: 2 replicas" in two.stdout and "OneDeviceStrategy: 1 replicas" in one.stdout
    if "--dihedral_p=0.5" in design:
        assert "dihedral (share 0.5)" in one.stdout and "dihedral (share 0.5)" in two.stdout
        assert "fading in over steps 1-3" in one.stdout and "fading in over steps 1-3" in two.stdout
    a, b = latest_tensors(f"{tmp_path}/one"), latest_tensors(f"{tmp_path}/two")
    assert a.keys() == b.keys()
    for name in a:
        # Reductions run in another order across replicas: float32 round-off only.
        np.testing.assert_allclose(a[name], b[name], rtol=2e-4, atol=2e-5, err_msg=name)


def test_fused_batchnorm_across_replicas_and_resume_matches_keras_batchnorm(tmp_path):
    """2 logical CPUs x 8: the fused BatchNorm (default) and Keras' own give the same weights; a job begun
    with --nofused_batchnorm resumes with the fused one (same variables), landing on the same weights."""
    common = ["train", "--preset=smoke", "--batch_size=16", "--devices=2", "--progress=false", "--deterministic"]
    fused = run_cli(*common, "--steps=4", f"--job_dir={tmp_path}/fused")
    stock = run_cli(*common, "--steps=4", "--nofused_batchnorm", f"--job_dir={tmp_path}/stock")
    first = run_cli(*common, "--steps=2", "--nofused_batchnorm", f"--job_dir={tmp_path}/switched")
    resumed = run_cli(*common, "--steps=4", f"--job_dir={tmp_path}/switched")
    for run in (fused, stock, first, resumed):
        assert run.returncode == 0, run.stderr[-2000:]
    assert "resuming from the checkpoint at step 2" in resumed.stdout
    a = latest_tensors(f"{tmp_path}/fused")
    for other in ("stock", "switched"):
        b = latest_tensors(f"{tmp_path}/{other}")
        assert a.keys() == b.keys()
        for name in a:
            if a[name].dtype.kind == "f":  # the fused kernel sums in another order: float32 round-off only
                np.testing.assert_allclose(a[name], b[name], rtol=2e-4, atol=2e-5, err_msg=f"{other}: {name}")


def test_bad_distribution_input_fails_with_one_line(tmp_path):
    job = f"--job_dir={tmp_path}/j"
    assert_one_line_error(
        run_cli("train", "--preset=smoke", job, "--devices=3", "--batch_size=16"),
        "--batch_size=16 must be divisible by the 3 replicas",
    )
    assert_one_line_error(
        run_cli("train", "--preset=smoke", job, env={"TF_CONFIG": "{not json"}), "TF_CONFIG is not valid JSON"
    )
    assert_one_line_error(
        run_cli("train", "--preset=smoke", job, env={"TF_CONFIG": '{"cluster": {"worker": ["nohost"]}}'}), "host:port"
    )
    for bad in (
        '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 7}}',
        '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}',
        '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": "x"}}',
    ):
        assert_one_line_error(
            run_cli("train", "--preset=smoke", job, env={"TF_CONFIG": bad}),
            "is not one of the cluster's chief/worker tasks",
        )
    assert_one_line_error(
        run_cli(
            "train",
            "--preset=smoke",
            job,
            env={"CLUSTER_SPEC": '{"cluster": {"workerpool0": ["a:1"]}, "task": {"type": "workerpool0", "index": 3}}'},
        ),
        "is not one of the cluster's chief/worker tasks",
    )
    assert_one_line_error(
        run_cli(
            "train",
            "--preset=smoke",
            job,
            env={"JOB_COMPLETION_INDEX": "5", "DCGAN_WORKER_HOSTS": "127.0.0.1:1,127.0.0.1:2"},
        ),
        "JOB_COMPLETION_INDEX=5",
    )
    assert_one_line_error(
        run_cli("train", "--preset=smoke", job, "--mixed_precision=fp8"), "--mixed_precision='fp8' is unknown"
    )
    assert_one_line_error(
        run_cli("train", "--preset=smoke", job, "--devices=2", "--xla"),
        "--xla cannot compile across several logical CPU devices",
    )


def test_a_bad_cluster_is_refused_before_tensorflow_loads(tmp_path):
    """TF_CONFIG / CLUSTER_SPEC / an Indexed Job's hosts are checked before `import tensorflow` (seconds)."""
    script = (
        "import sys; from trainer import cli; "
        "code = cli.main(['train', '--preset=smoke', '--job_dir=' + sys.argv[1]]); "
        "print(code, 'tensorflow' in sys.modules)"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "CLUSTER_SPEC", "JOB_COMPLETION_INDEX")}
    for env, error in (
        ({"TF_CONFIG": "{not json"}, "TF_CONFIG is not valid JSON"),
        ({"JOB_COMPLETION_INDEX": "5", "DCGAN_WORKER_HOSTS": "127.0.0.1:1"}, "JOB_COMPLETION_INDEX=5 is outside"),
    ):
        result = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "j")],
            capture_output=True,
            text=True,
            env={**clean, "PYTHONPATH": REPO, **env},
            timeout=120,
        )
        assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr[-2000:]
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("dcgan: error: ") and error in last, result.stderr


def test_cluster_spec_and_tf_config_parsing():
    spec = {
        "cluster": {"workerpool0": ["a:1"], "workerpool1": ["b:2", "c:3"]},
        "task": {"type": "workerpool1", "index": 1},
        "job": "{}",
    }
    tf_config = distribute.tf_config_from_cluster_spec(json.dumps(spec))
    assert tf_config == {
        "cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
        "task": {"type": "worker", "index": 1},
    }
    role, _ = distribute.read_cluster({"CLUSTER_SPEC": json.dumps(spec)})
    assert (role.num_workers, role.task_type, role.task_index, role.is_chief) == (3, "worker", 1, False)
    role, _ = distribute.read_cluster(
        {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}})}
    )
    assert role.is_chief and role.num_workers == 2
    assert distribute.read_cluster({})[0].is_chief
    for hostile in (
        '{"cluster": {}}',
        '{"cluster": ["workerpool0"]}',
        "[]",
        '{"task": 1, "cluster": {}}',
        "[" * 100_000,
    ):
        with pytest.raises(UserError, match="CLUSTER_SPEC is malformed"):
            distribute.tf_config_from_cluster_spec(hostile)
    with pytest.raises(UserError, match="TF_CONFIG is not valid JSON"):
        distribute.read_cluster({"TF_CONFIG": "[" * 100_000})
    for hostile in ("null", "[]", '{"cluster": null}'):
        with pytest.raises(UserError, match='TF_CONFIG needs a "cluster" object'):
            distribute.read_cluster({"TF_CONFIG": hostile})
    with pytest.raises(UserError, match="is not one of the cluster"):
        distribute.read_cluster(
            {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 5}})}
        )
    # Hostile values are one line too, never a TypeError or ValueError traceback (issue #27).
    with pytest.raises(UserError, match='cluster\\["worker"\\] must be a list of "host:port" strings'):
        distribute.read_cluster({"TF_CONFIG": json.dumps({"cluster": {"worker": 2}, "task": {"type": "worker"}})})
    with pytest.raises(UserError, match="is not one of the cluster"):
        distribute.read_cluster(
            {"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "²"}})}
        )


@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_mixed_precision_smoke_restores_into_float32(tmp_path, precision):
    job = tmp_path / "job"
    config = command_line.resolve(
        "train", {"preset": "smoke", "job_dir": str(job), "progress": False, "mixed_precision": precision}
    )
    try:
        result = train.run(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result["step"] == config.steps
    from tests_helpers import read_scalars

    logdir = job / "tensorboard"
    assert np.isfinite(read_scalars(logdir, "loss/d")).all() and np.isfinite(read_scalars(logdir, "loss/g")).all()
    if precision == "float16":
        scales = read_scalars(logdir, "loss_scale/d")
        assert scales and all(s >= 1 for s in scales)
    # The mixed-precision checkpoint restores into a float32 generator.
    float32 = TrainState.build(dataclass_replace(config, mixed_precision="off"), 1, 10)
    pointer = json.loads((job / "checkpoints" / "latest.json").read_text())
    tf.train.Checkpoint(generator_ema=float32.generator_ema).read(
        str(job / "checkpoints" / pointer["prefix"])
    ).expect_partial().assert_existing_objects_matched()
    images = float32.generator_ema([tf.random.normal([4, config.latent_dim]), tf.constant([0, 1, 2, 3])])
    assert images.dtype == tf.float32 and np.isfinite(images.numpy()).all()
    assert float32.generator_ema.get_layer("up_16").compute_dtype == "float32"


def dataclass_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


@pytest.mark.slow
@pytest.mark.parametrize(
    "style", ["tf_config", pytest.param("indexed_job", marks=pytest.mark.slow)]
)  # indexed_job: TF_CONFIG derived as in a k8s pod
def test_two_worker_processes_train_together(tmp_path, style):
    job = tmp_path / "job"
    procs = start_workers(job, ["--steps=6", "--progress=false"], style=style)
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
        assert "MultiWorkerMirroredStrategy: 2 replicas, 2 worker(s)" in out
    # Identical weights on both workers (gradients are all-reduced).
    assert fingerprints(outputs[0][0]) == fingerprints(outputs[1][0]) != []
    # Only the chief's files, and no worker temp dirs, in the job dir.
    names = sorted(p.relative_to(job).as_posix() for p in job.rglob("*"))
    assert "export/generator.keras" in names and "config.json" in names
    assert not [n for n in names if "tmp" in n or "worker" in n], names
    assert len(list((job / "tensorboard").iterdir())) == 1
    assert json.loads((job / "checkpoints" / "latest.json").read_text())["step"] == 6


@pytest.mark.slow
def test_sigterm_on_one_worker_stops_both_at_one_step_then_resumes(tmp_path):
    job = tmp_path / "job"
    procs = start_workers(job, ["--steps=100000", "--checkpoint_every=100000", "--log_every=1", "--progress=true"])
    for line in procs[0].stderr:  # progress goes to stderr
        if "step 4/" in line:
            break
    procs[1].send_signal(signal.SIGTERM)  # the non-chief worker is preempted
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    step = json.loads((job / "checkpoints" / "latest.json").read_text())["step"]
    assert step >= 4
    assert f"stopped by SIGTERM at step {step}" in outputs[1][0]
    assert f"stopped by peer at step {step}" in outputs[0][0]
    resumed = start_workers(job, [f"--steps={step + 2}", "--progress=false"])
    for proc in resumed:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        assert f"resuming from the checkpoint at step {step}" in out


@pytest.mark.slow
def test_workers_that_restored_different_checkpoints_refuse_to_train(tmp_path):
    """A job dir that is not shared: worker 0 finds step 2, worker 1 finds nothing. Both stop in one line."""
    shared, private = tmp_path / "shared", tmp_path / "private"
    first = run_cli("train", "--preset=smoke", f"--job_dir={shared}", "--steps=2", "--progress=false")
    assert first.returncode == 0, first.stderr[-3000:]
    procs = start_workers([shared, private], ["--steps=4", "--progress=false"])
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert_one_line_error(
            subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
            "the workers restored different state (step: [0, 2]",
            "same --job_dir",
        )
    assert json.loads((shared / "checkpoints" / "latest.json").read_text())["step"] == 2  # nothing changed


def test_float16_overflow_skips_both_networks_together(tmp_path):
    """G's gradients overflow on every step; D's are finite, yet D's update is undone too."""
    config = command_line.resolve(
        "train",
        {
            "preset": "smoke",
            "job_dir": str(tmp_path / "j"),
            "progress": False,
            "mixed_precision": "float16",
            "steps": 3,
        },
    )
    overflowing = train.losses.GanLoss("overflow", d=train.losses.NON_SATURATING.d, g=lambda fake: -fake * 1e34)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        nets = TrainState.build(config, 1, 10)
        before = {
            m: [w.numpy().copy() for w in getattr(nets, m).weights]
            for m in ("generator", "discriminator", "generator_ema")
        }
        store = train.jobdir.claim(config, True)
        source = train.data.load_source("digits", 32, 1)
        plan = train.train_plan.resolve(config, source, 1, 1)
        manager = train.checkpoint_manager(plan, store, nets, is_chief=True)
        writer = train.summaries.Summaries(str(tmp_path / "tb"), enabled=False)
        job = train.TrainJob(plan, tf.distribute.get_strategy(), source, nets, manager, writer, 0)
        result = job.train(gan_loss=overflowing)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result["skipped_steps"] == 3 and int(nets.step.numpy()) == 3
    for model, weights in before.items():
        for old, new in zip(weights, getattr(nets, model).weights):
            np.testing.assert_array_equal(old, new.numpy(), err_msg=model)
    # Both loss scales adapt: G's halves per overflow; D's does not grow.
    assert float(nets.g_optimizer.scale_loss(tf.constant(1.0))) == 2.0**15 / 8


def test_bfloat16_on_a_cpu_without_bfloat16_instructions_is_warned_about(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_bytes(b"processor\t: 0\nmodel name\t: EPYC \xff\nflags\t\t: fpu sse2 avx2 fma\n\nflags : later\n")
    avx2 = distribute.cpu_flags(str(cpuinfo))
    assert avx2 == {"fpu", "sse2", "avx2", "fma"}  # the first processor's line; undecodable bytes do no harm
    assert distribute.cpu_flags(str(tmp_path / "absent")) is None
    cpuinfo.write_text("processor : 0\n")
    assert distribute.cpu_flags(str(cpuinfo)) is None  # no flags line: unknown, not "none"
    warning = distribute.bfloat16_warning("bfloat16", False, avx2)
    assert warning.startswith("warning: ") and "--mixed_precision=bfloat16" in warning and "\n" not in warning
    for precision, gpu, flags in [
        ("off", False, avx2),  # float32: nothing to say
        ("bfloat16", True, avx2),  # a GPU computes
        ("bfloat16", False, avx2 | {"avx512_bf16"}),
        ("bfloat16", False, avx2 | {"amx_bf16"}),
        ("bfloat16", False, None),  # flags unknown (not Linux): no guess
    ]:
        assert distribute.bfloat16_warning(precision, gpu, flags) == ""
