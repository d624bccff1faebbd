"""Pipelines without tf.data's autotune thread (trainer/tf_pipelines.py): the helper and every pipeline that uses it.

The stall itself takes passes of ~20 s to show (bench/iterator_stall.py measures it); these tests hold the
property that removes it: the package's finite pipelines run with autotuning off, and give the same elements.
"""

import numpy as np
import tensorflow as tf
from test_data import class_folder  # noqa: F401 (a fixture)
from test_hostile_shards import good_records, write_output

from trainer import data, shards, tf_pipelines


def test_untuned_turns_autotuning_off_and_keeps_every_element_in_order():
    ds = tf.data.Dataset.range(100).map(lambda i: i * 2, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    assert ds.options().autotune.enabled is not False  # TensorFlow's default: on
    untuned = tf_pipelines.untuned(ds.prefetch(tf.data.AUTOTUNE))
    assert untuned.options().autotune.enabled is False
    assert [int(x) for x in untuned] == list(range(0, 200, 2))


def test_the_shard_readers_users_iterate_run_untuned(tmp_path):
    out = tmp_path / "out"
    write_output(out, [good_records(16)])
    loaded = shards.load(str(out), shuffle=False)
    assert loaded.options().autotune.enabled is False
    assert len(list(loaded)) == 16
    real = (np.full([8, 32, 32, 1], 100, np.uint8), np.arange(8) % 10)
    mixed = shards.mix(real, str(out), num_classes=10, synthetic_fraction=0.5)
    assert mixed.options().autotune.enabled is False
    x, y = next(iter(mixed))
    assert x.shape == (64, 32, 32, 1) and y.shape == (64, 10)


def test_folder_decoding_runs_untuned(class_folder, monkeypatch):  # noqa: F811
    """The folder decode pass (a whole folder, possibly minutes) goes through `untuned`: the real helper, watched."""
    seen, real = [], tf_pipelines.untuned

    def watched(ds):
        out = real(ds)
        seen.append(out.options().autotune.enabled)
        return out

    monkeypatch.setattr(tf_pipelines, "untuned", watched)
    source = data.load_source(str(class_folder), 32, 3)
    assert seen == [False] and len(source.images) == 6
