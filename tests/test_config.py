"""Job configs: validation (one message per mistake, all reported together), JSON round trip, identity."""

import json

import pytest

from trainer import command_line
from trainer import config as config_lib
from trainer.errors import UserError


def resolve(**flags):
    return command_line.resolve("train", {"job_dir": "/tmp/x", **flags})


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("resolution", 48, "--resolution=48 is not supported"),
        ("batch_size", 0, "--batch_size=0 must be >= 1"),
        ("steps", -1, "--steps=-1 must be >= 1"),
        ("loss", "wgan", "--loss='wgan' is unknown"),
        ("mixed_precision", "fp8", "--mixed_precision='fp8' is unknown"),
        ("channels", 2, "--channels=2 must be 1"),
        ("beta1", 1.0, "--beta1=1.0 must be in [0, 1)"),
        ("g_lr", 0, "--g_lr=0.0 must be > 0"),
        ("ema_decay", 1.5, "--ema_decay=1.5 must be in [0, 1)"),
        ("width", 0.001, "leaves no filters"),
        ("log_every", 0, "--log_every=0 must be >= 1"),
        ("devices", -2, "--devices=-2 must be >= 0"),
        ("on_corrupt", "ignore", "--on_corrupt='ignore'"),
        ("folder_labels", "guess", "--folder_labels='guess'"),
        ("preset", "huge", "--preset='huge' is unknown"),
        ("real_augment", "rot45", "--real_augment='rot45' must be one of none, flip, dihedral"),
        ("dihedral_p", 1.5, "--dihedral_p=1.5 must be in [0, 1]"),
        ("steps", "ten", "--steps='ten' must be an integer"),
        ("steps", 2.5, "--steps=2.5 must be an integer"),
        ("xla", "maybe", "--xla='maybe' must be true or false"),
    ],
)
def test_each_bad_value_has_its_message(flag, value, message):
    with pytest.raises(UserError) as err:
        resolve(**{flag: value})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_all_mistakes_reported_together():
    with pytest.raises(UserError) as err:
        resolve(batch_size=0, loss="x", resolution=7)
    text = str(err.value)
    assert "--batch_size" in text and "--loss" in text and "--resolution" in text


def test_json_round_trip_and_identity():
    c = resolve(preset="smoke", steps=5)
    back = config_lib.load_json(config_lib.TrainConfig, c.to_json())
    assert back == c
    assert json.loads(c.to_json())["steps"] == 5
    # Resumable fields do not change the job's identity; architecture does.
    assert resolve(preset="smoke", steps=99).identity_hash() == c.identity_hash()
    assert resolve(preset="smoke", resolution=64).identity_hash() != c.identity_hash()
    # A field added later is no part of the identity at its default (older job dirs still resume) ...
    assert "lecam_weight" not in c.identity() and resolve(preset="smoke").identity_hash() == c.identity_hash()
    # ... and is part of it otherwise.
    assert resolve(preset="smoke", lecam_weight=0.3).identity_hash() != c.identity_hash()
    for name, default in config_lib.TrainConfig.ADDED_LATER.items():
        assert getattr(config_lib.TrainConfig(), name) == default
    # A refused job names the value a field added later has in the old job, not None.
    from trainer import jobdir

    written_before = json.loads(c.to_json())
    del written_before["class_loss"]  # a config.json written before --class_loss existed
    old = config_lib.TrainConfig.from_json(json.dumps(written_before))
    assert jobdir.differences(old, resolve(preset="smoke", class_loss="tac", class_loss_weight=1.0)) == [
        "class_loss 'ac' -> 'tac'",
        "class_loss_weight 0.0 -> 1.0",
    ]
    # The same fade spelt with spaces is the same job (resuming must not refuse it), another fade is not.
    fade = resolve(preset="smoke", class_fade_in="2,6").identity_hash()
    assert resolve(preset="smoke", class_fade_in=" 2, 6").identity_hash() == fade
    assert resolve(preset="smoke", class_fade_in="2,7").identity_hash() != fade


def test_label_weights_are_relative_and_hostile_numbers_are_one_line():
    assert config_lib.label_weights("1e308,1e308,0") == [(None, 1.0), (None, 1.0), (None, 0.0)]  # no inf sum
    assert config_lib.label_weights("cat:2,dog:1") == [("cat", 1.0), ("dog", 0.5)]
    from trainer.sources import class_weights

    assert class_weights("1:3,0:1", 2, ()) == [1 / 3, 1.0]
    with pytest.raises(UserError, match="no class '²'"):
        class_weights("²:1", 3, ())  # a superscript is a digit to str.isdigit, not to int()


def test_a_saved_config_that_is_not_a_json_object_is_a_value_error():
    """jobdir.claim turns ValueError into "its config.json is unreadable"; nothing else may escape."""
    for text in ("[]", "1", '"x"', "null", "[" * 100_000, "{"):
        with pytest.raises(ValueError):
            config_lib.TrainConfig.from_json(text)
    default = config_lib.TrainConfig()
    assert config_lib.TrainConfig.from_json(default.to_json()) == default
