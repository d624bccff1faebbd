"""This machine's matmul peak in GFLOP/s, float32 and bfloat16 (a 2048^2 TensorFlow matmul, median of 5).

    python -m bench.peers.matmul_peak

`python -m bench peer` runs it in its own process and sets each training
step's GFLOP/s against it.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def main() -> None:
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal([2048, 2048]), dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        matmul(a).numpy()
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            matmul(a).numpy()
            runs.append(time.perf_counter() - started)
        print(dtype.name, 2 * 2048**3 / sorted(runs)[2] / 1e9)


if __name__ == "__main__":
    main()
