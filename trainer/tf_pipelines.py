"""tf.data pipelines without the autotune thread that stalls when their iterator goes away.

    python -c "import tensorflow as tf; from trainer import tf_pipelines; \
print(tf_pipelines.untuned(tf.data.Dataset.range(3)).options().autotune.enabled)"

A pipeline with tf.data's autotuning on (the default) gets a model thread
(`Model::OptimizeLoop`) that sleeps between tuning rounds, the sleep doubling up
to 60 s; deleting the iterator waits for that sleep to end (TensorFlow 2.21, seen
in a native stack). So every pass over such a pipeline that runs a while ends in
a stall of up to its own length: after a 20 s pass, the next 20 s on this
package's CPUs (experiments in bench/README.md, "tf.data's autotune stall"); in
`model.fit`, between epochs and at the end. With autotuning off there is no such
thread: parallel maps use every core (`tf.data.AUTOTUNE` then means the core
count), prefetch buffers still grow by the older, thread-free rule, and
throughput on these CPUs is unchanged.

Every finite pipeline this package builds or hands to users passes through
`untuned` (shard readers, folder decoding). The training pipeline is not: its
tf.distribute iterator starts a model thread of its own, so `dcgan train` leaves
that iterator to the OS instead (trainer/train.py, `LEFT_TO_THE_OS`).
"""

from __future__ import annotations

import tensorflow as tf


def untuned(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` with tf.data's autotuning off (no model thread: no stall when its iterator is deleted)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)
