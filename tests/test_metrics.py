"""Quality: metrics on known cases, DiffAugment, ADA's p, KID while training, `dcgan evaluate`, the sampler's filter."""

import os
import subprocess
import sys

import numpy as np
import pytest

from trainer import data, metrics

from conftest import assert_one_line_error, run_cli


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


def test_bad_quality_flags_are_one_line(tmp_path):
    job = f"--job_dir={tmp_path}/j"
    assert_one_line_error(run_cli("train", job, "--diffaugment=color,zoom"), "--diffaugment='color,zoom': unknown zoom")
    assert_one_line_error(run_cli("train", job, "--ada_target=1.5"), "--ada_target=1.5 must be in [0, 1)")
    assert_one_line_error(run_cli("train", job, "--dataset=digits:train[a:b]"), "a slice is [start:end]")
    assert_one_line_error(run_cli("train", job, "--dataset=digits:train[50%:50%]"), "the slice selects no images")
    assert_one_line_error(
        run_cli("sample", "--generator=g", "--output=o", "--max_memorization=2"),
        "--max_memorization=2.0 must be in [0, 1)",
    )
    assert not (tmp_path / "j").exists()


def test_the_feature_classifier_cache_is_keyed_by_the_images_not_their_name(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path))
    images = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(8) % 2
    first = metrics.classifier_cache_path("runs/a/data.npz", images, labels, 1500)
    assert os.path.dirname(first) == str(tmp_path / "feature_models") and "runs_a_data_npz" in first
    os.makedirs(os.path.dirname(first))
    open(first, "wb").close()
    assert metrics.classifier_cache_path("runs/b/data.npz", images, labels, 1500) == first  # reused
    assert metrics.classifier_cache_path("runs/b/data.npz", images, labels, 3000) != first  # another rule
    assert metrics.classifier_cache_path("runs/a/data.npz", images, 1 - labels, 1500) != first  # other labels


def test_a_process_that_needs_a_feature_classifier_another_is_training_waits_and_loads_it(tmp_path, monkeypatch):
    """Three `dcgan train` jobs started together on the same images (under different paths) used to train the
    same classifier three times. Here this process plays the first job (it holds the entry's lock while it
    trains); a real second process must wait for it and load its file, not train its own."""
    import fcntl

    from trainer import classifier

    monkeypatch.setenv("DCGAN_CACHE", str(tmp_path))
    images = np.random.default_rng(0).integers(0, 255, (32, 32, 32, 1), dtype=np.uint8)
    labels = np.arange(32) % 2
    (tmp_path / "feature_models").mkdir()
    lock = open(tmp_path / "feature_models" / f"{metrics._cache_key(images, labels, 30)}.lock", "ab")
    fcntl.flock(lock, fcntl.LOCK_EX)
    script = (
        "import sys, numpy as np\n"
        "from trainer import metrics\n"
        "images = np.random.default_rng(0).integers(0, 255, (32, 32, 32, 1), dtype=np.uint8)\n"
        "metrics.feature_space(images, np.arange(32) % 2, 2, 'runs/b.npz', steps=30, log=print)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    second = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    assert "another process is training this classifier" in second.stdout.readline()
    path = metrics.classifier_cache_path("runs/a.npz", images, labels, 30)
    classifier.train(images, labels, 2, classifier.ClassifierSpec(steps=2), seed=0).save(path)
    fcntl.flock(lock, fcntl.LOCK_UN)
    rest = second.communicate(timeout=300)[0]
    assert second.returncode == 0 and rest.startswith(f"features: classifier loaded from {path}"), rest
    assert len([f for f in os.listdir(tmp_path / "feature_models") if f.endswith(".keras")]) == 1
