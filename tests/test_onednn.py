"""oneDNN's CPU kernels: on by default where TensorFlow leaves them off, the user's choice kept, and recorded."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from trainer import onednn
from trainer.errors import UserError

from conftest import REPO


def test_enable_sets_the_variable_only_when_unset_on_x86_64_before_tensorflow_loads():
    environ = {}
    assert onednn.enable(environ, machine="x86_64", modules={}) and environ == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    for kept in ("0", "false", "1", "TRUE"):
        environ = {"TF_ENABLE_ONEDNN_OPTS": kept}
        assert not onednn.enable(environ, machine="x86_64", modules={})
        assert environ == {"TF_ENABLE_ONEDNN_OPTS": kept}
    environ = {}
    assert not onednn.enable(environ, machine="aarch64", modules={}) and environ == {}
    assert not onednn.enable(environ, machine="x86_64", modules={"tensorflow": object()}) and environ == {}
    with pytest.raises(UserError, match="TF_ENABLE_ONEDNN_OPTS='on' must be one of 1, true, 0, false"):
        onednn.enable({"TF_ENABLE_ONEDNN_OPTS": "on"}, machine="x86_64", modules={})


X86_ONLY = pytest.mark.skipif(os.uname().machine != "x86_64", reason="oneDNN is turned on on x86-64 only")


@X86_ONLY
@pytest.mark.parametrize("value, expected", [("0", False), ("1", True)])
def test_tensorflow_follows_the_variable(value, expected):
    code = "from trainer import onednn; print(onednn.active())"
    env = {**os.environ, "PYTHONPATH": REPO, "TF_ENABLE_ONEDNN_OPTS": value}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == str(expected)


GRADIENTS = r"""
import sys
import numpy as np, keras, tensorflow as tf
from trainer import classifier, models

def grads(model, inputs):
    for layer in model.layers:  # random BatchNorm gains: a zero-initialised gain would zero its branch's gradients
        if "batch_normalization" in layer.name and layer.weights:
            layer.weights[0].assign(rng.uniform(0.5, 1.5, layer.weights[0].shape).astype("float32"))
    with tf.GradientTape() as tape:
        out = model(inputs, training=True)
        loss = tf.reduce_sum(tf.sin(tf.cast(out, tf.float32)))
    return [tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_variables)]

rng = np.random.default_rng(0)
found = {}
for res, ch, width in ((32, 1, 4), (32, 3, 16), (64, 3, 8)):  # the judge; a 1x1 strided shortcut broke at width 4
    images = rng.integers(0, 256, (8, res, res, ch)).astype("float32")
    judge = classifier.build(res, ch, 10, width, seed=1, fused_batchnorm=True)
    found[f"judge {res}x{ch} w{width}"] = grads(judge, images)
for res, ch, width in ((32, 1, 0.5), (64, 3, 0.25)):  # G and D as `dcgan train` builds them, conditional
    keras.utils.set_random_seed(2)
    g = models.build_generator(res, ch, 16, width, 10, conditioning="cbn", fused_batchnorm=True)
    d = models.build_discriminator(res, ch, width, 10, fused_batchnorm=True)
    z, y = rng.normal(size=(8, 16)).astype("float32"), np.arange(8) % 10
    found[f"G {res}x{ch}"] = grads(g, [z, y])
    found[f"D {res}x{ch}"] = grads(d, [rng.uniform(-1, 1, (8, res, res, ch)).astype("float32"), y])
np.savez(sys.argv[1], **{f"{k}/{i}": v for k, vs in found.items() for i, v in enumerate(vs)})
"""


@X86_ONLY
def test_onednn_computes_our_models_gradients_as_eigen_does(tmp_path):
    """Every weight gradient of the judge, G and D (one training-mode step from the same weights and inputs) with
    oneDNN's kernels against Eigen's, each in its own process: they may differ by rounding only, and none is all
    zeros. TensorFlow 2.21's oneDNN gets a strided 1x1 convolution's filter gradient wrong (relative error ~1 on an
    AVX2 EPYC), which is why the judge no longer has one: with the judge's former shortcut this test failed
    (relative error 1.95); it catches the next such kernel in what we build."""
    results = {}
    for flag in ("1", "0"):
        env = {**os.environ, "PYTHONPATH": REPO, "TF_ENABLE_ONEDNN_OPTS": flag}
        path = tmp_path / f"grads-{flag}.npz"
        out = subprocess.run(
            [sys.executable, "-c", GRADIENTS, str(path)], capture_output=True, text=True, env=env, timeout=300
        )
        assert out.returncode == 0, out.stderr[-3000:]
        results[flag] = np.load(path)
    assert sorted(results["1"].files) == sorted(results["0"].files) and len(results["1"].files) > 50
    worst = {}
    for name in results["0"].files:
        assert np.abs(results["0"][name]).max() > 0, f"{name}: an all-zero gradient checks nothing"
        onednn_grad, eigen_grad = results["1"][name], results["0"][name]
        scale = np.abs(eigen_grad).max() + 1e-6
        worst[name] = float(np.abs(onednn_grad - eigen_grad).max() / scale)
    assert max(worst.values()) < 1e-3, sorted(worst.items(), key=lambda kv: -kv[1])[:5]


@X86_ONLY
def test_the_cli_turns_onednn_on_and_a_run_records_which_kernels_ran(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"} | {"PYTHONPATH": REPO}
    for value, expected in ((None, "onednn"), ("0", "eigen")):
        job = tmp_path / f"job-{value}"
        command = [sys.executable, "-m", "trainer", "train", f"--job_dir={job}", "--preset=smoke", "--steps=2"]
        extra = {} if value is None else {"TF_ENABLE_ONEDNN_OPTS": value}
        out = subprocess.run(command, capture_output=True, text=True, env=env | extra, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        assert f"CPU kernels {expected}" in out.stdout
        with open(job / "plan.json") as f:
            assert json.load(f)["cpu_kernels"] == expected
