"""Quality: metrics on known cases, DiffAugment, ADA's p, KID while training, `dcgan evaluate`, the sampler's filter."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from conftest import assert_one_line_error, run_cli
from tests_helpers import read_scalars
from trainer import config as config_lib
from trainer import data, diffaugment, metrics, sources
from trainer.errors import UserError


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    return rng.normal(size=(600, 16)), rng.normal(size=(600, 16))


def test_fid_and_kid_are_zero_for_the_same_set_and_grow_with_a_shift(features):
    a, b = features
    assert metrics.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    # Unbiased KID of a set against itself is slightly negative (the cross term includes each point with itself).
    assert metrics.kid(a, a, subsets=5)[0] == pytest.approx(0.0, abs=0.05)
    assert metrics.fid(a, b) < 0.5 and abs(metrics.kid(a, b, subsets=5)[0]) < 0.02  # same distribution
    assert metrics.fid(a, a + 1.0) == pytest.approx(16.0, rel=0.05)  # |mu shift|^2 = 16 x 1
    shifted, std = metrics.kid(a, a + 1.0, subsets=5, subset_size=300)
    assert shifted > 1.0 and std >= 0
    assert metrics.kid(a, a + 0.5, subsets=5)[0] < shifted


def test_precision_and_recall(features):
    a, b = features
    assert metrics.precision_recall(a, a) == (1.0, 1.0)
    assert metrics.precision_recall(a, a + 10.0) == (0.0, 0.0)
    # Mode collapse: every fake sits on one of 6 real points; precise, but they recall little of the real set.
    collapsed = np.repeat(a[:6], 100, axis=0) + np.random.default_rng(1).normal(scale=1e-3, size=(600, 16))
    precision, recall = metrics.precision_recall(a, collapsed)
    assert precision == 1.0 and recall < 0.3


def test_memorization_detects_planted_copies():
    train = data.load_source("digits:train[:20%]", 32)
    holdout = data.load_source("digits:test", 32)
    planted = train.images[:30]
    novel = holdout.images[:270]
    synthetic = np.concatenate([planted, novel])
    result = metrics.memorization(train.images, holdout.images[270:], synthetic, quantile=0.01)
    assert (result["distances"][:30] < result["threshold"]).all()  # every copy is caught
    assert 0.1 <= result["rate"] <= 0.1 + 0.05  # 30 of 300, plus about 1% of the novel ones


def test_diffaugment_is_differentiable_and_keeps_shape_and_dtype():
    policy = diffaugment.parse("color,translation,cutout")
    u = diffaugment.sample_parameters(4, tf.constant([1, 2], tf.int64))
    for dtype in (tf.float32, tf.float16):
        x = tf.Variable(tf.random.uniform([4, 16, 16, 3], -1, 1, dtype=tf.float32))
        with tf.GradientTape() as tape:
            y = diffaugment.augment(tf.cast(x, dtype), policy, u, 1.0)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        grad = tape.gradient(loss, x)
        assert y.dtype == dtype and y.shape == x.shape
        assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    # p = 0: untouched; the same draws give the same result (eagerly and compiled).
    x = tf.random.uniform([4, 16, 16, 1], -1, 1)
    np.testing.assert_array_equal(diffaugment.augment(x, policy, u, 0.0).numpy(), x.numpy())
    compiled = tf.function(lambda x, u: diffaugment.augment(x, policy, u, 1.0))
    np.testing.assert_allclose(compiled(x, u).numpy(), diffaugment.augment(x, policy, u, 1.0).numpy(), atol=1e-6)


def test_translation_and_cutout_on_known_images():
    image = tf.reshape(tf.range(64, dtype=tf.float32), [1, 8, 8, 1]) + 1.0
    # u = 1 - eps -> the largest shift (+1 pixel for an 8-pixel image): content moves down/right, zeros enter.
    shifted = diffaugment.translation(image, tf.constant([0.999]), tf.constant([0.999]))[0, ..., 0].numpy()
    assert (shifted[0] == 0).all() and (shifted[:, 0] == 0).all()
    np.testing.assert_array_equal(shifted[1:, 1:], image[0, :7, :7, 0].numpy())
    holed = diffaugment.cutout(image, tf.constant([0.5]), tf.constant([0.5]))[0, ..., 0].numpy()
    assert (holed == 0).sum() == 16 and (holed[2:6, 2:6] == 0).all()  # a centred 4x4 hole


def test_diffaugment_policy_parsing():
    assert diffaugment.parse("none") == () and diffaugment.parse("cutout,color") == ("cutout", "color")
    with pytest.raises(UserError, match="unknown policy zoom"):
        diffaugment.parse("color,zoom")


def tiny_feature_model(path):
    metrics.build_classifier(32, 1, 10, seed=3).save(path)
    return str(path)


def test_ada_p_adapts_is_checkpointed_and_kid_picks_the_best_export(tmp_path):
    job = tmp_path / "job"
    model = tiny_feature_model(tmp_path / "features.keras")
    args = ["train", "--preset=smoke", f"--job_dir={job}", "--ada_target=0.01", "--ada_kimg=0.1", "--kid_every=4",
            "--kid_samples=64", f"--feature_model={model}", "--progress=false"]
    first = run_cli(*args, "--steps=4")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "diffaugment: color,translation,cutout, adaptive p" in first.stdout
    second = run_cli(*args, "--steps=8")
    assert second.returncode == 0, second.stderr[-3000:]
    p = read_scalars(job / "tensorboard", "diffaugment/p")
    assert len(p) == 4 and p[0] == 0.0 and max(p) > 0  # starts at 0, moves by 0.16 per step either way
    # Resumed from the checkpointed p: the same series as one uninterrupted run.
    straight = run_cli(*[a.replace(str(job), str(tmp_path / "straight")) for a in args], "--steps=8")
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert read_scalars(tmp_path / "straight" / "tensorboard", "diffaugment/p") == p
    kid = read_scalars(job / "tensorboard", "quality/kid")
    best = read_scalars(job / "tensorboard", "quality/best_kid")
    assert len(kid) == 2 and best[-1] == min(kid)
    meta = json.loads((job / "export" / "best" / "generator.json").read_text())
    assert meta["kid"] == pytest.approx(min(kid), rel=1e-5) and meta["step"] == 4 * (1 + kid.index(min(kid)))
    names = [n for n, _ in tf.train.list_variables(str(next((job / "checkpoints").glob("ckpt-*")) / "ckpt"))]
    assert any(n.startswith("augment_p") for n in names) and any(n.startswith("best_kid") for n in names)  # DiffAugment p, under the key checkpoints have always used


def test_evaluate_end_to_end_on_a_smoke_job(smoke_job, tmp_path):
    report_path = tmp_path / "eval" / "report.json"
    result = run_cli("evaluate", "--real=digits:test", f"--synthetic={smoke_job}", "--train_data=digits:train[:10%]",
                     f"--report={report_path}", "--num_samples=200", "--feature_steps=50", "--downstream_steps=30",
                     "--seeds=2", "--kid_subsets=5", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    fidelity = report["fidelity"]
    assert fidelity["fid"] > 0 and fidelity["kid"] > 0 and 0 <= fidelity["precision"] <= 1
    assert report["synthetic"]["kind"] == "generator" and report["synthetic"]["num_images"] == 200
    assert set(report["memorization"]) == {"pixels", "features", "rate_either"}
    assert 0 <= report["gan_test"]["accuracy"] <= 1
    downstream = report["downstream"]
    assert {"a_real", "b_real_augmented", "c_synthetic", "d_real_synthetic", "e_real_synthetic_augmented",
            "f_real_synthetic_distilled"} <= set(downstream)
    assert len(downstream["a_real"]["runs"]) == 2 and downstream["train_images"] == 126
    for suffix in ("samples", "closest-pixels", "closest-features"):
        assert (tmp_path / "eval" / f"report-{suffix}.png").stat().st_size > 100
    assert "FID" in result.stdout and "downstream accuracy" in result.stdout


def test_evaluate_bad_input_is_one_line(smoke_job, tmp_path):
    unlabelled = tmp_path / "nolabels.npz"
    np.savez(unlabelled, x=np.zeros((20, 32, 32), np.uint8))
    base = [f"--synthetic={smoke_job}", f"--report={tmp_path}/r.json", "--num_samples=20", "--feature_steps=5"]
    assert_one_line_error(run_cli("evaluate", f"--real={unlabelled}", "--downstream=true", *base),
                          "--downstream=true needs labels", "--real")
    assert_one_line_error(run_cli("evaluate", "--real=digits:test", "--resolution=64", *base), "mismatched resolution")
    assert_one_line_error(run_cli("evaluate", "--real=nowhere/", *base), "--real=nowhere/: no such file or folder")
    assert_one_line_error(run_cli("evaluate", "--real=digits", f"--synthetic={tmp_path}/none", f"--report={tmp_path}/r.json"),
                          "no such shard folder")
    assert not (tmp_path / "r.json").exists()


def test_sampler_memorization_filter_drops_copies(smoke_job, tmp_path):
    config = config_lib.resolve("sample", {"generator": smoke_job, "output": "-", "max_memorization": 0.05,
                                           "train_data": "digits:train"})
    meta = json.loads(open(os.path.join(smoke_job, "export", "generator.json")).read())
    keep, description = sources.memorization_filter(config, meta)
    train = data.load_source("digits:train[:10%]", 32).images.astype(np.float32)
    other = data.load_source("digits:test", 32).images[:50].astype(np.float32)
    mask = keep(tf.constant(np.concatenate([train[:20] + 0.5, other]))).numpy()
    assert not mask[:20].any() and mask[20:].mean() > 0.8  # copies dropped, most new images kept
    assert description["threshold"] > 0
    # End to end: the manifest counts what was dropped; shards hold exactly what it says.
    out = tmp_path / "filtered"
    result = run_cli("sample", f"--generator={smoke_job}", f"--output={out}", "--preset=smoke", "--progress=false",
                     "--max_memorization=0.05", "--train_data=digits:train")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_images"] + manifest["dropped"] == 40 and manifest["filters"] == ["memorization"]
    assert manifest["num_images"] == sum(s["num_images"] for s in manifest["shards"])
    assert run_cli("sample", f"--output={out}", "--verify").returncode == 0
    # Reference images that miss some of the generator's training images would let copies of them through.
    partial = config_lib.resolve("sample", {"generator": smoke_job, "output": "-", "max_memorization": 0.05,
                                            "train_data": "digits:train[:10%]"})
    with pytest.raises(UserError, match=r"holds 126 of the 1258 images the generator trained on \(digits:train\)"):
        sources.memorization_filter(partial, meta)
    with pytest.raises(UserError, match="pass --train_data"):
        sources.memorization_filter(config_lib.resolve("sample", {"generator": "g", "output": "-", "max_memorization": 0.1}), {})


def test_bad_quality_flags_are_one_line(tmp_path):
    job = f"--job_dir={tmp_path}/j"
    assert_one_line_error(run_cli("train", job, "--diffaugment=color,zoom"), "--diffaugment='color,zoom': unknown zoom")
    assert_one_line_error(run_cli("train", job, "--ada_target=1.5"), "--ada_target=1.5 must be in [0, 1)")
    assert_one_line_error(run_cli("train", job, "--dataset=digits:train[a:b]"), "a slice is [start:end]")
    assert_one_line_error(run_cli("train", job, "--dataset=digits:train[50%:50%]"), "the slice selects no images")
    assert_one_line_error(run_cli("sample", "--generator=g", "--output=o", "--max_memorization=2"),
                          "--max_memorization=2.0 must be in [0, 1)")
    assert not (tmp_path / "j").exists()
