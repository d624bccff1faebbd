"""python -m bench NAME [--flag=value ...]

    python -m bench train                 # images/s of the training step: precision x XLA
    python -m bench train --resolution=64 --channels=3 --repeats=5
    python -m bench peer                  # `dcgan train` vs the same DCGAN in PyTorch, own processes (--group bench)
    python -m bench augment               # trainer.classic_augment vs legacy ImageDataGenerator (the kernel)
    python -m bench sample                # sampler end to end vs generator forward; 1 vs 2 tasks
    python -m bench jobs                  # whole `dcgan augment` / `dcgan sample` vs the plain scripts they replace
    python -m bench checkpoint            # step time with checkpoints (local, emulated GCS) vs none
    python -m bench input                 # input pipeline images/s vs what the training step consumes
    python -m bench stall                 # deleting a shard reader's iterator, tf.data autotuning on vs off
    python -m bench scale                 # requests and time per task as a sharded job grows to 1000 tasks
    python -m bench judge                 # the judge's seeds one at a time vs trained together, own processes
    python -m bench evaluate              # whole `dcgan evaluate` jobs: 3 vs 12 seeds, cold and with scores reused
    python -m bench ops                   # the step's time per op type, float32 vs bfloat16 (a profile; --group bench)
    python -m bench batchnorm             # the step with Keras' BatchNorm, the fused one (default), none
    python -m bench all                   # all of the above (~3 h on 2 cores), then `report`
    python -m bench report [--check]      # docs/performance.md's and bench/README.md's tables from bench/results/*.json

Each benchmark prints a table and writes bench/results/NAME.json. Every number
is a median over repeats after warm-up, variants measured round-robin so ratios
compare like with like on a noisy machine. Where two programs are compared
(peer, jobs) each run is its own process, start-up included.
"""

import importlib
import sys

from trainer import startup

startup.prepare()  # as `dcgan` does (DCGAN_MALLOC=default: glibc's allocator; TF_ENABLE_ONEDNN_OPTS=0: Eigen)

BENCHMARKS = {
    "train": "bench.train_speed",
    "peer": "bench.peer_speed",
    "augment": "bench.augment_speed",
    "sample": "bench.sample_speed",
    "jobs": "bench.job_speed",
    "checkpoint": "bench.checkpoint_speed",
    "input": "bench.input_speed",
    "scale": "bench.scale_speed",
    "stall": "bench.iterator_stall",
    "judge": "bench.judge_speed",
    "evaluate": "bench.evaluate_speed",
    "ops": "bench.op_profile",
    "batchnorm": "bench.batchnorm_probe",
    "all": "bench.run_all",
    "report": "bench.report",
}


def main(argv):
    if not argv or argv[0] not in BENCHMARKS:
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHMARKS))
        return 2
    return importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
