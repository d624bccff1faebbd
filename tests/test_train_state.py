"""TrainState: the checkpoint and the variable list are derived from one list of fields."""

import dataclasses

import numpy as np
import tensorflow as tf

from trainer import command_line
from trainer.train_state import TrainState


def smoke_config(**flags):
    return command_line.resolve("train", {"preset": "smoke", "job_dir": "/tmp/unused", **flags})


def checkpoint_keys(state, path):
    path = state.checkpoint().write(str(path))
    return path, {name.split("/")[0] for name, _ in tf.train.list_variables(path)} - {"_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_the_checkpoint_holds_every_field_and_older_checkpoints_key_names(tmp_path):
    every_option = dict(lecam_weight=0.3, select_by="class_consistency", kid_every=4)
    state = TrainState.build(smoke_config(**every_option), 1, 10)
    state.step.assign(7)
    state.diffaugment_p.assign(0.25)
    state.best_kid.assign(0.5)
    state.lecam.assign([1.5, -2.0])
    path, keys = checkpoint_keys(state, tmp_path / "ckpt")
    assert keys == {f.name for f in dataclasses.fields(TrainState)} - {"diffaugment_p"} | {"augment_p"}
    # Without these options the checkpoint is what it was before they existed.
    plain = checkpoint_keys(TrainState.build(smoke_config(), 1, 10), tmp_path / "plain")[1]
    assert plain == keys - {"lecam", "best_consistency"}
    other = TrainState.build(smoke_config(**every_option), 1, 10)
    other.checkpoint().read(path).assert_existing_objects_matched()
    assert (int(other.step.numpy()), float(other.diffaugment_p.numpy()), float(other.best_kid.numpy())) == (
        7,
        0.25,
        0.5,
    )
    for a, b in zip(state.variables(), other.variables()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert other.lecam.numpy().tolist() == [1.5, -2.0]


def test_identically_built_states_list_the_same_variables_in_the_same_order():
    a, b = TrainState.build(smoke_config(), 1, 10), TrainState.build(smoke_config(), 1, 10)
    assert [(v.shape, v.dtype) for v in a.variables()] == [(v.shape, v.dtype) for v in b.variables()]
    assert a.variables()[-3:] == [a.step, a.diffaugment_p, a.best_kid]
    assert (
        len(a.variables())
        == sum(
            len(getattr(a, name).variables)
            for name in ("generator", "discriminator", "generator_ema", "g_optimizer", "d_optimizer")
        )
        + 3
    )
