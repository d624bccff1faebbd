"""tf.data pipelines without the autotune thread that stalls when their iterator goes away.

    python -c "import tensorflow as tf; from trainer import tf_pipelines; \
print(tf_pipelines.untuned(tf.data.Dataset.range(3)).options().autotune.enabled)"

A pipeline with tf.data's autotuning on (the default) gets a model thread
(`Model::OptimizeLoop`) that sleeps between tuning rounds, the sleep doubling up
to 60 s; deleting the iterator waits for that sleep to end (TensorFlow 2.21, seen
in a native stack). So a pass over such a pipeline that runs a while
can end in a stall of up to its own length (`python -m bench stall`: 2 of 6
passes of ~22 s stalled 17-18 s; bench/README.md, "The same stall in every other
tf.data pass"); in `model.fit`, between epochs and at the end. With autotuning
off, a plain iterator had no such thread (checked with gdb) and deleting it took
under 2 ms in every run. Parallel maps then run at a parallelism the tuner no
longer adjusts (what TensorFlow picks for `AUTOTUNE` without it lives in its C++
code, not checked here), and `prefetch(AUTOTUNE)` keeps its own buffer rule
(`legacy_autotune`). A pass over `shards.load` on 2 cores was not slower (median
22.1 vs 23.2 s); a pipeline whose speed depends on tuning may differ elsewhere.

The pipelines this package iterates itself or hands to users pass through
`untuned`: the shard readers (`shards.load`, `shards.mix`), folder decoding, the
first batch of streamed shards that KID while training compares with. The
training pipeline does not: its tf.distribute iterator starts a model thread of
its own, so `dcgan train` leaves that iterator to the OS instead
(trainer/train.py, trainer/process_end.py); users who want autotuning back call
`ds.with_options(...)` on what `load` or `mix` return (the later options win).
"""

from __future__ import annotations

import tensorflow as tf


def untuned(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with tf.data's autotuning off (no model thread: no stall when its iterator is deleted)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)
