"""The command line: precedence (default < preset < --config file < flag), coercion of flag text,
unknown flags, --help text for every flag, saved configs as --config (hostile ones refused in one line)."""

import dataclasses
import re

import pytest

from trainer import command_line
from trainer import config as config_lib
from trainer.errors import UserError


def resolve(**flags):
    return command_line.resolve("train", {"job_dir": "/tmp/x", **flags})


def test_preset_then_flags_precedence():
    smoke = resolve(preset="smoke")
    assert smoke.steps == config_lib.TRAIN_PRESETS["smoke"]["steps"]
    assert resolve(preset="smoke", steps=3).steps == 3
    assert resolve().steps == config_lib.TrainConfig.steps


def test_symmetric_preset_is_the_measured_design_for_rotation_invariant_data():
    # docs/generators.md: dihedral DiffAugment at half width is what made the shapes generator draw its classes
    c = resolve(preset="symmetric", dataset="digits")
    assert (c.diffaugment, c.width, c.steps) == ("color,translation,dihedral", 0.5, 32000)
    c.validate()
    assert resolve(preset="symmetric", width=1.0, diffaugment="color,dihedral").width == 1.0
    assert config_lib.TrainConfig.diffaugment == "auto"  # the default never turns images


def test_values_are_coerced_from_cli_text():
    c = resolve(steps="12", g_lr="1e-3", xla="true", conditional="false", width=1)
    assert (c.steps, c.g_lr, c.xla, c.conditional, c.width) == (12, 1e-3, True, False, 1.0)
    assert resolve(conditional="auto").conditional is None


@pytest.mark.parametrize(
    "flag, value",
    [
        ("steps", "inf"),
        ("steps", "nan"),
        ("steps", "1e400"),
        ("r1_gamma", "nan"),
        ("g_lr", "inf"),
        ("g_lr", float("nan")),
    ],
)
def test_non_finite_numbers_are_refused(flag, value):
    # inf/nan used to pass every "> 0" check (r1_gamma=nan, g_lr=inf) or crash int() with a traceback.
    with pytest.raises(UserError, match=f"--{flag}=.*must be an? (integer|finite number)"):
        resolve(**{flag: value})


def test_unknown_flag_and_missing_job_dir():
    with pytest.raises(UserError, match="unknown flag.*--stepz"):
        resolve(stepz=3)
    with pytest.raises(UserError, match="--job_dir is required"):
        command_line.resolve("train", {})


def test_every_flag_of_every_command_has_help_text():
    import dataclasses

    from conftest import run_cli

    for job, cls in command_line.CONFIG_CLASSES.items():
        helps = command_line.field_help(cls)
        missing = [f.name for f in dataclasses.fields(cls) if len(helps.get(f.name, "")) < 8]
        assert not missing, (job, missing)
    shown = " ".join(run_cli("sample", "--help").stdout.split())  # the text is wrapped
    assert "--image_format" in shown and "png (lossless), jpeg (lossy, smaller) or raw uint8 (fastest)" in shown
    assert "fraction of the height" in shown  # inherited from the shared shard-job fields


def test_a_saved_config_json_reruns_that_job_and_explicit_flags_win(tmp_path):
    original = command_line.resolve(
        "train",
        {
            "preset": "smoke",
            "job_dir": str(tmp_path / "job"),
            "steps": 30,
            "dataset": "digits:train[:50%]",
            "d_lr": 0.001,
            "overwrite": True,
        },
    )
    path = tmp_path / "config.json"
    path.write_text(original.to_json())
    again = command_line.resolve("train", {"config": str(path)})
    assert again == dataclasses.replace(original, overwrite=False)  # a one-off action is not replayed
    changed = command_line.resolve("train", {"config": str(path), "steps": 40, "job_dir": str(tmp_path / "other")})
    assert (changed.steps, changed.job_dir, changed.d_lr, changed.batch_size) == (
        40,
        str(tmp_path / "other"),
        0.001,
        original.batch_size,
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        ("{not json", "not a readable JSON config"),
        ("[1, 2]", "expected a JSON object of flags, got list"),
        ('{"steps": 5, "num_images": 3}', "fields that `dcgan train` does not have: num_images"),
        ('{"batch_size": "many"}', "--batch_size='many' must be an integer"),
        ('{"resolution": 31}', "--resolution=31 is not supported"),
        (b"\xff\xfe{}", "not a readable JSON config"),
    ],
)
def test_a_hostile_saved_config_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=re.escape(message)):
        command_line.resolve("train", {"config": str(path)})


def test_special_files_as_config_are_one_line_not_a_hang_or_memory_error(tmp_path):
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would block until a writer comes
    for path in ("/dev/zero", str(fifo), str(tmp_path)):
        with pytest.raises(UserError, match="not a regular file"):
            command_line.resolve("train", {"config": path})


@pytest.mark.parametrize(
    "typed", ["1e5", "True", "none", "1,2", "010", "-3", "[1]", "{a}", "x'y\"z", "a b", "\\n", "é"]
)
@pytest.mark.parametrize("spelling", ["--job_dir=VALUE", "--job_dir VALUE"])
def test_text_flags_get_the_token_as_typed(typed, spelling, capsys):
    """fire reads values as Python literals (1e5 -> 100000.0, True -> a bool); a text flag is what was typed."""
    from trainer import cli

    tokens = [t.replace("VALUE", typed) for t in spelling.split(" ")]
    assert cli.main(["train", *tokens, "--preset=smoke", "--steps=1e1", "--dry_run"]) == 0
    shown = capsys.readouterr().out
    assert f"job_dir            {typed!r}\n" in shown
    assert "steps              10\n" in shown  # typed flags keep their coercion


def test_text_flags_of_every_command_and_of_launched_jobs():
    assert {"job_dir", "dataset", "diffaugment", "folder_labels", "config"} <= command_line.text_flags("train")
    assert "labels" in command_line.text_flags("sample") and "steps" not in command_line.text_flags("train")
    tokens = ["--target=vm", "--job=sample", "--output=1e5", "--gpus=2", "--labels", "1,2", "--spec_dir=True"]
    assert command_line.as_typed("launch", tokens) == [
        "--target='vm'",
        "--job='sample'",
        "--output='1e5'",
        "--gpus=2",
        "--labels",
        "'1,2'",
        "--spec_dir='True'",
    ]
    # A flag given without a value is not followed by its value: the next flag is left alone.
    assert command_line.as_typed("train", ["--job_dir", "--steps=3"]) == ["--job_dir", "--steps=3"]


def test_verbose_and_print_config_are_flags_of_every_command(capsys):
    from trainer import cli

    options, rest = cli._global_flags(["--verbose", "--print_config=false", "--steps=3", "--job_dir=x"])
    assert options == {"verbose": True, "print_config": False} and rest == ["--steps=3", "--job_dir=x"]
    with pytest.raises(UserError, match="--verbose='maybe' must be true or false"):
        cli._global_flags(["--verbose=maybe"])
    config = command_line.resolve("evaluate", {"real": "digits:test", "synthetic": ".", "seeds": 8})
    commands = cli.Commands()
    commands._announce(config)  # the short summary: only what differs from the defaults
    assert capsys.readouterr().out == (
        'dcgan evaluate --real=digits:test --synthetic=. --seeds=8 (full config goes to report.json, under "config")\n'
    )
    commands.print_config = True
    commands._announce(config)
    listing = capsys.readouterr().out
    assert listing.startswith("EvaluateConfig:\n") and "  downstream_steps   1000\n" in listing


def test_help_groups_every_flag_wraps_its_text_and_shows_two_examples_that_use_real_flags():
    from trainer.cli import GLOBAL_FLAGS

    for job, cls in command_line.CONFIG_CLASSES.items():
        grouped = [name for _, names in command_line.HELP_GROUPS[job] for name in names]
        fields = [f.name for f in dataclasses.fields(cls)]
        assert sorted(grouped) == sorted(fields), job  # each flag in exactly one group
        text = command_line.help_text(job)
        assert "\nother:" not in text and max(len(line) for line in text.splitlines()) <= 120, job
        examples = command_line.EXAMPLES[job]
        assert len(examples) == 2 and all(f"dcgan {job} " in e for e in examples), job
        known = set(fields) | set(GLOBAL_FLAGS)
        if job == "launch":
            known |= {f.name for f in dataclasses.fields(command_line.CONFIG_CLASSES["train"])}
            known |= {f.name for f in dataclasses.fields(command_line.CONFIG_CLASSES["sample"])}
        for example in examples:
            for name in re.findall(r"--(\w+)", example.split("#")[0]):
                assert name in known, f"{job} example: --{name}"
    launch = command_line.help_text("launch")
    assert "--spec_dir" in launch and "--config" not in launch and "presets" not in launch
    train = command_line.help_text("train")
    g_conditioning = train.split("--g_conditioning=")[1].split("\n  --")[0]
    assert "cbn" in g_conditioning and "D's" not in g_conditioning  # D's options are --d_spectral_norm's text
    assert "smoke: --resolution=32" in train  # presets shown as flags
