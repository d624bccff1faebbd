"""The `dcgan` command (a `fire` CLI; `python -m trainer` is the same).

    dcgan train --job_dir=runs/digits [--preset=smoke] [--flag=value ...]
    dcgan train --help                  # every flag with its default
    dcgan train --job_dir=x --dry_run   # print the resolved config and exit

Flags are the config dataclass's field names. Bad input ends with one line,
`dcgan: error: ...`, on stderr and a non-zero exit status (2 for usage and
data errors, 3 when training diverges, 75 when storage stayed unreachable
through every retry: see trainer/errors.py); never a traceback. Validation,
the files the flags name, the buckets they name and (for train) the cluster
in TF_CONFIG / CLUSTER_SPEC are checked before TensorFlow is imported. A
start prints one or two lines (the flags that differ from their defaults,
and where the full config goes); TensorFlow's C++ start-up lines are kept
off the terminal (trainer/native_stderr.py) unless --verbose.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys

from trainer import command_line, environment, native_stderr, process_end, startup
from trainer.errors import JobError, UserError

USAGE = """usage: dcgan COMMAND [--flag=value ...]

commands:
  train     train a DCGAN (job dir: config.json, checkpoints/, tensorboard/, export/)
  sample    mass-produce synthetic (optionally augmented) images as sharded TFRecords
  augment   classic augmentation of the real data, written in the same shard format
  evaluate  FID, KID, precision/recall, memorization and downstream usefulness of synthetic images
  launch    run train/sample on a GPU VM, Vertex AI or Kubernetes: dcgan launch vm|vertex|k8s --job=train ...

every command also takes:
  --verbose       TensorFlow's own start-up and C++ log lines too (kept off the terminal by default)
  --print_config  the whole config first (by default one or two lines: the flags that differ from their defaults)

`dcgan COMMAND --help` lists a command's flags; `dcgan --version` prints the version.
Results go to stdout, progress and errors to stderr; an error is one line, `dcgan: error: ...`, the last."""


# Optional packages Keras imports at its own import when they are installed, for features no command
# uses (scikit-learn wrappers, plotting, notebook display): together 1-2 s of every job's start-up.
KERAS_EXTRAS = ("sklearn", "matplotlib", "IPython")


def _import_keras() -> None:
    """Imports Keras (and TensorFlow) for a job without the optional packages in KERAS_EXTRAS; they stay
    importable afterwards (Keras' features that need them then say they are not installed)."""
    if "keras" in sys.modules:
        return
    blocked = [name for name in KERAS_EXTRAS if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # while Keras loads, importing it raises ImportError, which Keras expects
    try:
        import keras  # noqa: F401
    finally:
        for name in blocked:
            del sys.modules[name]


class Commands:
    """The sub-commands fire dispatches to; each takes only --flags."""

    def __init__(self, process_exits: bool = False):
        self.exit_code = 0
        self.print_config = False  # --print_config: the full listing first
        self.process_exits = process_exits  # entrypoint() ends the process after the command (train.run)

    def _announce(self, config) -> None:
        """Checks the paths the flags name, then prints the whole config with --print_config (the short
        summary is printed by the job for train, here for the others)."""
        errors = config.path_errors()  # files the flags name, then buckets: before TensorFlow starts
        if errors:
            raise UserError("; ".join(errors))
        _check_buckets(config)
        if self.print_config:
            print(config.listing())
        elif config.COMMAND != "train":
            print(config.describe())

    def train(self, **flags):
        if "job_dir" not in flags and environment.vertex_job_dir():
            flags["job_dir"] = environment.vertex_job_dir()  # Vertex AI: baseOutputDirectory
        config = command_line.resolve("train", flags)
        if config.dry_run:
            print(config.listing())
        self._announce(config)
        from trainer import distribute, jobdir  # no TensorFlow: reads the environment and the job dir

        cluster = distribute.read_cluster()  # TF_CONFIG, CLUSTER_SPEC, an Indexed Job's hosts: in seconds, before TF
        jobdir.check(config)  # another job's dir is refused before any data is read
        if config.dry_run:
            print(f"--job_dir={config.job_dir}: ok (empty, or this job's to resume)")
            return None
        _import_keras()
        from trainer import train as train_lib  # TensorFlow is imported only now

        result = train_lib.run(config, process_exits=self.process_exits, cluster=cluster)
        print(f"done: step {result['step']}, {result['images_per_sec']:.1f} img/s (median)")
        if result["stopped_by"] == "SIGINT":
            self.exit_code = 128 + signal.SIGINT
        return None

    def sample(self, **flags):
        self._shard_job("sample", flags)

    def augment(self, **flags):
        self._shard_job("augment", flags)

    def evaluate(self, **flags):
        config = command_line.resolve("evaluate", flags)
        self._announce(config)
        _import_keras()
        from trainer import evaluate as evaluate_lib  # TensorFlow is imported only now

        evaluate_lib.run(config)

    def launch(self, target="", **flags):
        from trainer import launch as launch_lib  # renders specs; no TensorFlow

        launch_lib.run(target, flags)

    def _shard_job(self, job, flags):
        config = command_line.resolve(job, flags)
        self._announce(config)
        _import_keras()
        from trainer import shard_job  # TensorFlow is imported only now

        shard_job.run(config, job)


def _check_buckets(config) -> None:
    """Every gs:// bucket the config names answers, before TensorFlow starts: missing credentials or a
    missing bucket is one line in a second or two, not a failure after the start-up."""
    from trainer import storage  # the storage client is imported only when a gs:// path is given

    checked = set()
    for value in dataclasses.asdict(config).values():
        if not (isinstance(value, str) and "://" in value):
            continue
        storage.check_url(value)
        bucket = value[len("gs://") :].split("/", 1)[0]
        if bucket in checked:
            continue
        checked.add(bucket)
        store = storage.open_store(value)  # its errors name the flag's URL
        if not store._bucket_exists():  # noqa: SLF001 (raises the one-line credential/permission errors too)
            raise UserError(f"{value}: bucket gs://{bucket} does not exist")


def _check_tokens(command: str, tokens: list[str]) -> None:
    """Only --flag, --flag=value and --flag value; anything else is one clear error."""
    expecting_value = False
    for token in tokens:
        if token.startswith("--") and len(token) > 2:
            expecting_value = "=" not in token
        elif expecting_value:
            expecting_value = False
        else:
            raise UserError(f"unexpected argument {token!r} for `dcgan {command}`; flags look like --name=value")


GLOBAL_FLAGS = ("verbose", "print_config")  # flags of every command, not fields of its config


def _global_flags(tokens: list[str]) -> tuple[dict[str, bool], list[str]]:
    """(--verbose and --print_config as booleans, the other tokens)."""
    values, rest = dict.fromkeys(GLOBAL_FLAGS, False), []
    for token in tokens:
        name, eq, value = token[2:].partition("=") if token.startswith("--") else ("", "", "")
        if name.replace("-", "_") in GLOBAL_FLAGS:
            text = value.strip().lower() if eq else "true"
            if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise UserError(f"--{name}={value!r} must be true or false")
            values[name.replace("-", "_")] = text in ("1", "true", "yes", "on")
        else:
            rest.append(token)
    return values, rest


def main(argv: list[str] | None = None, process_exits: bool = False) -> int:
    """`dcgan ARGV`; returns the exit code. `process_exits`: the caller ends the process right after
    (entrypoint), so a training run may leave its input iterator to the OS (train.TrainJob.process_exits)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V", "version"):
        from trainer import __version__

        print(f"dcgan-factory {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, tokens = argv[0], argv[1:]
    commands = Commands(process_exits)
    try:
        if command not in command_line.CONFIG_CLASSES:
            raise UserError(f"unknown command {command!r}; choose one of: {', '.join(command_line.CONFIG_CLASSES)}")
        if any(t in ("-h", "--help") for t in tokens):
            print(command_line.help_text(command))
            return 0
        options, tokens = _global_flags(tokens)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if options["verbose"] else "2")
        commands.print_config = options["print_config"]
        if command == "launch":  # `dcgan launch TARGET --flags`
            target = tokens[0] if tokens and not tokens[0].startswith("-") else ""
            tokens = [f"--target={target}", *tokens[1:]] if target else tokens
        _check_tokens(command, tokens)
        environment.check()
        startup.prepare()  # before TensorFlow loads: the allocator and the CPU kernels
        import fire

        with native_stderr.filtered(enabled=not options["verbose"]):
            fire.Fire(commands, command=[command, *command_line.as_typed(command, tokens)], name="dcgan")
        return commands.exit_code
    except JobError as err:
        print(f"dcgan: error: {err}", file=sys.stderr)
        return err.exit_code
    except Exception as err:  # a streamed shard's error, re-raised by tf.data as an op error
        failure = (
            sys.modules["trainer.shards.stream"].failure_behind(err) if "trainer.shards.stream" in sys.modules else None
        )
        if failure is None:
            raise
        print(f"dcgan: error: {failure}", file=sys.stderr)
        return failure.exit_code
    except KeyboardInterrupt:
        print("dcgan: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def entrypoint() -> None:
    try:
        code = main(process_exits=True)
        sys.stdout.flush()
    except BrokenPipeError:  # `dcgan train --help | head`: the reader left; not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    if (code == 0 or process_end.kept()) and "tensorflow" in sys.modules:
        # A finished job has made everything durable before `main` returns (checkpoint committed, logs
        # and export written, threads joined); what the interpreter's teardown would still do is free
        # TensorFlow's objects one by one, 0.3-1 s on 2 cores, which the OS does at once. A training run
        # stopped early (Ctrl+C: code 130) has committed its checkpoint too, and the input iterator it
        # left to the OS must not be freed by the interpreter (a wait of up to 60 s, train.py).
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
