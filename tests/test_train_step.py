"""The loss terms of one training step on known values (trainer/train_step.py's LossTerms); the compiled step
itself is exercised by tests/test_train.py (resume) and tests/test_distributed.py (replicas, float16); the
last test here checks that the compiled step hands each term the verdict it names.

    python -m pytest -q tests/test_train_step.py
"""

from types import SimpleNamespace

import numpy as np
import tensorflow as tf

from trainer import losses
from trainer.train_step import LossTerms


def terms(class_loss: str, weight: float = 0.5) -> LossTerms:
    config = SimpleNamespace(
        class_loss_weight=weight,
        twin_classifier=class_loss == "tac",
        lecam_weight=0.0,
        r1_gamma=0.0,
        mode_seeking_weight=0.0,
    )
    return LossTerms(config, SimpleNamespace(lecam=None), losses.get("nonsaturating"), conditional=True)


def test_tac_adds_the_twin_on_fakes_to_d_and_subtracts_it_from_g():
    """--class_loss=tac: D's class loss is AC-GAN's on real images plus the twin's on G's samples; G's is
    AC-GAN's on its samples minus the twin's (TAC-GAN, Gong et al. 2019); AC-GAN's ignores the twin's columns.
    Labels and logits are chosen so that every cross-entropy differs."""
    rng = np.random.default_rng(0)
    real_labels, fake_labels = tf.constant([0, 2, 1]), tf.constant([1, 1, 0])
    real_classes = tf.constant(rng.normal(size=(3, 6)), tf.float32)  # 3 classes: AC-GAN's, then the twin's
    fake_classes = tf.constant(rng.normal(size=(3, 6)), tf.float32)
    g_classes = tf.constant(rng.normal(size=(3, 6)), tf.float32)
    real_logits, fake_logits = tf.constant([1.0, -0.5, 0.2]), tf.constant([-1.0, 0.3, 0.0])
    ce = losses.class_cross_entropy
    gan = losses.get("nonsaturating")

    tac = terms("tac")
    real, fake = (
        tac.verdict(real_labels, real_logits, real_classes),
        tac.verdict(fake_labels, fake_logits, fake_classes),
    )
    fake_g = tac.verdict(fake_labels, fake_logits, g_classes)
    d, r1 = tac.d(None, None, real=real, fake=fake, strength=1.0)
    expected = gan.d(real_logits, fake_logits) + 0.5 * (
        ce(real_labels, real_classes[:, :3]) + ce(fake_labels, fake_classes[:, 3:])
    )
    np.testing.assert_allclose(d.numpy(), expected.numpy(), rtol=1e-6)
    assert not np.any(r1.numpy())
    g = tac.g(None, None, fake_g=fake_g, strength=1.0)
    expected = gan.g(fake_logits) + 0.5 * (ce(fake_labels, g_classes[:, :3]) - ce(fake_labels, g_classes[:, 3:]))
    np.testing.assert_allclose(g.numpy(), expected.numpy(), rtol=1e-6)
    # --class_fade_in's strength scales the pair in both losses, as it scales AC-GAN's term.
    half = tac.g(None, None, fake_g=fake_g, strength=0.5)
    np.testing.assert_allclose((half - gan.g(fake_logits)).numpy(), 0.5 * (g - gan.g(fake_logits)).numpy(), rtol=1e-5)
    d_half, _ = tac.d(None, None, real=real, fake=fake, strength=0.5)
    gan_d = gan.d(real_logits, fake_logits)
    np.testing.assert_allclose((d_half - gan_d).numpy(), 0.5 * (d - gan_d).numpy(), rtol=1e-5)

    ac = terms("ac")  # AC-GAN: one classifier of 3 columns; fakes' class logits do not enter D's loss
    ac_real = ac.verdict(real_labels, real_logits, real_classes[:, :3])
    assert ac_real.twin is None and ac.verdict(fake_labels, fake_logits, None).classes is None
    d_ac, _ = ac.d(None, None, real=ac_real, fake=ac.verdict(fake_labels, fake_logits, None), strength=1.0)
    expected = gan.d(real_logits, fake_logits) + 0.5 * ce(real_labels, real_classes[:, :3])
    np.testing.assert_allclose(d_ac.numpy(), expected.numpy(), rtol=1e-6)
    g_ac = ac.g(None, None, fake_g=ac.verdict(fake_labels, fake_logits, g_classes[:, :3]), strength=1.0)
    np.testing.assert_allclose(g_ac.numpy(), (gan.g(fake_logits) + 0.5 * ce(fake_labels, g_classes[:, :3])).numpy())


def test_tac_logs_the_twins_accuracy_and_the_classifiers_own():
    """Health: class/real_accuracy and class/fake_accuracy read AC-GAN's columns only; class/twin_accuracy is
    the twin's on G's samples in D's step. Shares of a global batch of 4 (this replica holds 2)."""
    real_labels, fake_labels = tf.constant([0, 1]), tf.constant([1, 0])
    # AC-GAN's columns (first 2) right on both reals, the twin's (last 2) wrong on both
    real_classes = tf.constant([[5.0, 0.0, 0.0, 9.0], [0.0, 5.0, 9.0, 0.0]])
    # fakes in D's step: AC-GAN's columns right on neither, the twin's on one; G's step: AC-GAN's right on one,
    # while the whole row's argmax (a missing split) would be right on none
    fake_classes = tf.constant([[3.0, 0.0, 0.0, 3.0], [0.0, 3.0, 0.0, 3.0]])
    g_classes = tf.constant([[0.0, 4.0, 9.0, 0.0], [0.0, 4.0, 0.0, 9.0]])
    zeros = tf.zeros([2])
    tac = terms("tac")
    shares = tac.shares(
        4,
        zeros,
        real=tac.verdict(real_labels, zeros, real_classes),
        fake=tac.verdict(fake_labels, zeros, fake_classes),
        fake_g=tac.verdict(fake_labels, zeros, g_classes),
    )
    assert shares["class/real_accuracy"].numpy() == 0.5  # 2 hits / global batch 4
    assert shares["class/twin_accuracy"].numpy() == 0.25
    assert shares["class/fake_accuracy"].numpy() == 0.25
    ac = terms("ac")
    plain = ac.shares(
        4,
        zeros,
        real=ac.verdict(real_labels, zeros, real_classes[:, :2]),
        fake=ac.verdict(fake_labels, zeros, None),
        fake_g=ac.verdict(fake_labels, zeros, g_classes[:, :2]),
    )
    assert "class/twin_accuracy" not in plain


def test_r1_is_the_squared_input_gradient_on_what_d_was_shown_of_the_reals():
    """--r1_gamma: D's loss gains gamma/2 * ||grad_x D(x)||^2 on the reals D was shown, conditioned on their labels
    (Mescheder et al. 2018); G's samples do not enter it. With a real (tiny) conditional D."""
    from trainer import models

    D = models.build_discriminator(32, 1, 0.25, 3, class_head=True)
    t = terms("ac")
    t.r1_gamma = 10.0
    rng = np.random.default_rng(1)
    real_images = tf.constant(rng.uniform(-1, 1, size=(4, 32, 32, 1)), tf.float32)
    fake_images = tf.constant(rng.uniform(-1, 1, size=(4, 32, 32, 1)), tf.float32)
    real_labels, fake_labels = tf.constant([0, 1, 2, 1]), tf.constant([2, 2, 0, 1])
    real, fake = t.verdict_of(D, real_images, real_labels), t.verdict_of(D, fake_images, fake_labels)
    per_example, r1 = t.d(D, real_images, real=real, fake=fake, strength=1.0)
    with tf.GradientTape() as tape:
        tape.watch(real_images)
        total = tf.reduce_sum(models.discriminate(D, real_images, real_labels, True)[0])
    expected = tf.reduce_sum(tf.square(tape.gradient(total, real_images)), axis=[1, 2, 3])
    np.testing.assert_allclose(r1.numpy(), expected.numpy(), rtol=1e-4)
    assert np.all(r1.numpy() > 0)
    without = losses.get("nonsaturating").d(real.logits, fake.logits) + 0.5 * losses.class_cross_entropy(
        real_labels, real.classes
    )
    np.testing.assert_allclose(per_example.numpy(), (without + 5.0 * expected).numpy(), rtol=1e-4)


def test_the_compiled_step_hands_each_term_the_verdict_it_names(tmp_path, monkeypatch):
    """In the real step (a one-step smoke run, TAC + LeCam on): D judges the reals, then G's detached samples
    (D's step), then G's samples (G's step, after D's update); `d`, `g` and `shares` must get those three
    verdicts under the names they read, and `shares` logs every health value the terms turn on."""
    from trainer import command_line, train

    verdicts, calls = [], {}
    verdict_of = LossTerms.verdict_of

    def recording_verdict_of(self, D, images, labels):
        verdicts.append(verdict_of(self, D, images, labels))
        return verdicts[-1]

    def recording(name, method):
        def wrapped(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            calls.setdefault(name, []).append((kwargs, result))
            return result

        return wrapped

    monkeypatch.setattr(LossTerms, "verdict_of", recording_verdict_of)
    for name in ("d", "g", "shares"):
        monkeypatch.setattr(LossTerms, name, recording(name, getattr(LossTerms, name)))
    flags = {"preset": "smoke", "job_dir": str(tmp_path / "job"), "progress": False, "steps": 1}
    flags |= {"class_loss_weight": 0.5, "class_loss": "tac", "lecam_weight": 0.1}
    train.run(command_line.resolve("train", flags))
    real, fake, fake_g = verdicts[:3]  # the first trace of the step, in the order the step asks D
    assert len({id(real), id(fake), id(fake_g)}) == 3
    d_kwargs, g_kwargs = calls["d"][0][0], calls["g"][0][0]
    assert d_kwargs["real"] is real and d_kwargs["fake"] is fake
    assert g_kwargs["fake_g"] is fake_g
    shares_kwargs, logged = calls["shares"][0]
    assert shares_kwargs["real"] is real and shares_kwargs["fake"] is fake and shares_kwargs["fake_g"] is fake_g
    assert {"d/real", "d/fake", "r1", "lecam/real_logit", "class/real_accuracy", "class/twin_accuracy"} <= set(logged)
    assert real.twin is not None and fake.twin is not None  # TAC: the class head split into both parts
