"""Every generator option's export loads with plain Keras, in a process that never imports this package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from trainer import export, jobdir, models, storage
from trainer.config import TrainConfig
from trainer.errors import UserError
from trainer.train_plan import TrainPlan

# (classes, --g_conditioning, --class_fade_in on): unconditional, label embedding with z, class-conditional
# BatchNorm, the label embedding half faded in (the strength is folded into the exported table), and z with
# the label (or z alone) setting every BatchNorm's gain and bias
OPTIONS = {
    "unconditional": (0, "concat", False),
    "concat": (3, "concat", False),
    "cbn": (3, "cbn", False),
    "fading": (3, "concat", True),
    "skip_z": (3, "skip_z", False),
    "skip_z_unconditional": (0, "skip_z", False),
}

LOAD_PLAINLY = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    cases = json.loads(sys.argv[1])
    for name, folder in cases.items():
        g = keras.models.load_model(folder + "/generator.keras", compile=False)
        inputs = np.load(folder + "/inputs.npz")
        args = [inputs["z"], inputs["labels"]] if "labels" in inputs else inputs["z"]
        np.save(folder + "/plain_output.npy", keras.ops.convert_to_numpy(g(args, training=False)))
    assert not any(m == "trainer" or m.startswith("trainer.") for m in sys.modules), "trainer was imported"
    """
)


def _trained_looking(generator: keras.Model, rng: np.random.Generator) -> None:
    """Moves every weight off its initial value (BatchNorm statistics and per-class gains too), so a
    weight the export lost or swapped would change the outputs."""
    generator.set_weights([w + rng.normal(0.0, 0.05, w.shape).astype(w.dtype) for w in generator.get_weights()])
    for layer in generator.layers:
        norm = layer.norm if isinstance(layer, models.ConditionalBatchNorm) else layer
        if isinstance(norm, keras.layers.BatchNormalization):
            norm.moving_mean.assign(rng.normal(0.0, 0.3, norm.moving_mean.shape))
            norm.moving_variance.assign(rng.uniform(0.5, 2.0, norm.moving_variance.shape))


def test_every_generator_option_exports_built_in_layers_that_load_without_this_package(tmp_path):
    rng = np.random.default_rng(0)
    cases, expected = {}, {}
    for name, (classes, conditioning, fade) in OPTIONS.items():
        config = TrainConfig(
            job_dir=str(tmp_path / name), resolution=32, latent_dim=8, width=0.125, g_conditioning=conditioning
        )
        generator = models.build_generator(32, 3, 8, 0.125, classes, conditioning=conditioning, class_fade=fade)
        _trained_looking(generator, rng)
        if fade:  # mid-way: an export at a checkpoint before the fade ends
            (strength,) = models.condition_strengths(generator)
            strength.assign(0.4)
        export.save(storage.LocalStore(config.job_dir), generator, TrainPlan.of(config, 3, classes), step=7)

        folder = os.path.join(config.job_dir, jobdir.EXPORT)
        saved = keras.models.load_model(os.path.join(folder, jobdir.MODEL_FILE), compile=False)
        custom = [type(layer).__name__ for layer in saved.layers if not type(layer).__module__.startswith("keras")]
        assert not custom, f"{name}: custom layers in the export: {custom}"

        inputs = {"z": rng.normal(size=(6, 8)).astype("float32")}
        if classes:
            inputs["labels"] = np.arange(6, dtype="int32") % classes
            inputs["z"][1] = inputs["z"][0]  # rows 0 and 1: same z, labels 0 and 1 (checked below)
        np.savez(os.path.join(folder, "inputs.npz"), **inputs)
        args = [inputs["z"], inputs["labels"]] if classes else inputs["z"]
        expected[name] = keras.ops.convert_to_numpy(generator(args, training=False))
        cases[name] = folder

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_PLAINLY, json.dumps(cases)],
        capture_output=True,
        text=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=str(tmp_path),  # not the repository: `trainer` is not importable by accident
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name, folder in cases.items():
        plain = np.load(os.path.join(folder, "plain_output.npy"))
        assert plain.shape == (6, 32, 32, 3), name
        np.testing.assert_allclose(plain, expected[name], atol=1e-5, err_msg=name)
        if OPTIONS[name][0]:  # the label matters: same z, another class, other images (10x the tolerance above:
            # the fading case's label embedding, at strength 0.4, moves pixels by ~7e-4)
            assert np.abs(expected[name][0] - expected[name][1]).max() > 1e-4, name


def test_a_hostile_generator_json_is_one_clear_error(tmp_path):
    """generator.json comes from a bucket or a colleague: every shape of damage is a UserError naming it."""
    good = {"latent_dim": 64, "resolution": 32, "channels": 3, "num_classes": 6, "step": 100, "dataset": "x"}
    path = tmp_path / jobdir.META_FILE
    path.write_text(json.dumps(good))
    assert export.read_meta(str(path)) == good
    hostile = [
        b'{"latent_dim": 64, "resol',  # truncated upload
        b"[]",
        b"null",
        b"[" * 100_000,  # deeper than the JSON parser recurses
        b"\xff\xfe not text",
        json.dumps({**good, "latent_dim": "64"}).encode(),
        json.dumps({**good, "num_classes": -1}).encode(),
        json.dumps({**good, "step": True}).encode(),
        json.dumps({**good, "resolution": 1e9}).encode(),
        json.dumps({k: v for k, v in good.items() if k != "channels"}).encode(),
        json.dumps({**good, "dataset": ["a"]}).encode(),
    ]
    for blob in hostile:
        path.write_bytes(blob)
        with pytest.raises(UserError, match=jobdir.META_FILE):
            export.read_meta(str(path))
