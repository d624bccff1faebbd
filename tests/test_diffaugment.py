"""DiffAugment: differentiable, known transforms, policy parsing; ADA's p adapting in a run (and KID's best export)"""

import json

import numpy as np
import pytest
import tensorflow as tf

from trainer import classifier, diffaugment
from trainer.errors import UserError

from conftest import run_cli
from tests_helpers import read_scalars


def test_diffaugment_is_differentiable_and_keeps_shape_and_dtype():
    policy = diffaugment.parse("color,translation,cutout,dihedral")
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


def test_dihedral_gives_each_of_the_eight_symmetries_of_the_square():
    image = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    x = tf.repeat(image, 8, axis=0)
    u = (tf.range(8, dtype=tf.float32) + 0.5) / 8  # one draw in each eighth
    out = diffaugment.dihedral(x, u).numpy()[..., 0]
    plain = image[0, ..., 0].numpy()
    expected = [np.rot90(plain, k) for k in range(4)] + [np.rot90(plain[:, ::-1], k) for k in range(4)]
    for got, want in zip(out, expected):
        np.testing.assert_array_equal(got, want)
    assert len({o.tobytes() for o in out}) == 8


@pytest.mark.parametrize("share", [0.25, 0.5])
def test_dihedral_p_turns_that_share_of_the_images_uniformly_over_the_eight(share):
    """--dihedral_p: 1 draws exactly as before; below 1 the rest keep their orientation, and within the share
    each of the 8 orientations is equally likely; 0 turns none."""
    n = 8000
    image = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    u = diffaugment.sample_parameters(n, tf.constant([1, 2], tf.int64))
    x = tf.repeat(image, n, axis=0)
    policy = ("dihedral",)
    np.testing.assert_array_equal(
        diffaugment.augment(x, policy, u, 1.0, 1.0).numpy(), diffaugment.dihedral(x, u[:, 8]).numpy()
    )
    np.testing.assert_array_equal(diffaugment.augment(x, policy, u, 1.0, 0.0).numpy(), x.numpy())
    out = diffaugment.augment(x, policy, u, 1.0, share).numpy()[..., 0]
    plain = image[0, ..., 0].numpy()
    orientations = [np.rot90(plain, k) for k in range(4)] + [np.rot90(plain[:, ::-1], k) for k in range(4)]
    counts = np.array([(out == o).all(axis=(1, 2)).sum() for o in orientations]) / n
    assert counts.sum() == 1
    # identity 1 - share + share / 8, each other orientation share / 8 (binomial sd <= 0.006 and 0.003)
    assert abs(counts[0] - (1 - share + share / 8)) < 0.02, counts
    assert all(abs(c - share / 8) < 0.012 for c in counts[1:]), counts
    turned = u[:, 8].numpy() < share
    assert (out[~turned] == plain).all()  # the images outside the share keep their orientation


def test_real_augment_mirrors_or_turns_each_image_by_its_draw():
    image = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    x = tf.repeat(image, 4, axis=0)
    u = tf.constant([0.1, 0.6, 0.3, 0.9])
    plain = image[0, ..., 0].numpy()
    flipped = diffaugment.augment_reals(x, "flip", u).numpy()[..., 0]
    for got, mirrored in zip(flipped, [True, False, True, False]):
        np.testing.assert_array_equal(got, plain[:, ::-1] if mirrored else plain)
    np.testing.assert_array_equal(
        diffaugment.augment_reals(x, "dihedral", u).numpy(), diffaugment.dihedral(x, u).numpy()
    )
    assert diffaugment.augment_reals(x, "none", u) is x
    with pytest.raises(ValueError, match="unknown real augmentation"):
        diffaugment.augment_reals(x, "rot45", u)


def test_shared_within_groups_gives_each_group_one_transform():
    """--minibatch_std_views=shared: the images of a contiguous group get their group's first draw, so the
    same shift, turn and colour change; different groups keep different draws."""
    u = diffaugment.sample_parameters(8, tf.constant([3, 4], tf.int64))
    shared = diffaugment.shared_within_groups(u, 4).numpy()
    np.testing.assert_array_equal(shared, np.repeat(u.numpy()[[0, 4]], 4, axis=0))
    policy = diffaugment.parse("color,translation,dihedral")
    image = tf.random.stateless_uniform([1, 16, 16, 3], seed=[0, 1], minval=-1, maxval=1)
    seen = diffaugment.augment(tf.repeat(image, 8, axis=0), policy, shared, 1.0).numpy()
    for group in (seen[:4], seen[4:]):
        for view in group[1:]:
            np.testing.assert_array_equal(view, group[0])
    assert not np.array_equal(seen[0], seen[4])


def test_new_policies_leave_the_draws_of_earlier_runs_unchanged():
    seed = tf.constant([3, 5], tf.int64)
    draws = diffaugment.sample_parameters(6, seed).numpy()
    earlier = tf.random.stateless_uniform([6, 8], seed=seed, dtype=tf.float32).numpy()  # what 2026-11 drew
    np.testing.assert_array_equal(draws[:, :8], earlier)
    assert draws.shape == (6, 9) and not np.isin(draws[:, 8], earlier).any()


def test_auto_is_the_papers_three_and_never_dihedral():
    from trainer.train_plan import diffaugment_policy

    assert diffaugment_policy("auto", 1000) == ("color", "translation", "cutout")
    assert diffaugment_policy("auto", 10**6) == ()
    assert diffaugment_policy("color,dihedral", 10**6) == ("color", "dihedral")


def test_diffaugment_policy_parsing():
    assert diffaugment.parse("none") == () and diffaugment.parse("cutout,color") == ("cutout", "color")
    with pytest.raises(UserError, match="unknown policy zoom"):
        diffaugment.parse("color,zoom")


def tiny_feature_model(path):
    classifier.build(32, 1, 10, seed=3).save(path)
    return str(path)


@pytest.mark.slow
def test_ada_p_adapts_is_checkpointed_and_kid_picks_the_best_export(tmp_path):
    job = tmp_path / "job"
    model = tiny_feature_model(tmp_path / "features.keras")
    args = [
        "train",
        "--preset=smoke",
        f"--job_dir={job}",
        "--ada_target=0.01",
        "--ada_kimg=0.1",
        "--kid_every=4",
        "--kid_samples=64",
        f"--feature_model={model}",
        "--progress=false",
    ]
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
    assert any(n.startswith("augment_p") for n in names) and any(
        n.startswith("best_kid") for n in names
    )  # DiffAugment p, under the key checkpoints have always used
