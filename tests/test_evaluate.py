"""`dcgan evaluate`'s data integrity (overlap refused or marked) and its report for people (PNG + HTML)."""

import json
import shutil
import subprocess
import types

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error, run_cli

SMALL = ["--num_samples=100", "--feature_steps=30", "--downstream_steps=20", "--seeds=1", "--kid_subsets=3"]
SMALL += ["--policies=none", "--mixes=", "--shares=0.5"]  # tuning: one candidate each (6 classifiers in all)
NO_DOWNSTREAM = [*SMALL, "--downstream=false"]


def test_test_images_that_are_training_images_are_refused_then_marked(smoke_job, tmp_path):
    """A user who does not know about splits evaluates on every image, the generator's training images among them."""
    report = tmp_path / "r.json"
    result = run_cli("evaluate", "--real=digits", f"--synthetic={smoke_job}", f"--report={report}", *SMALL)
    assert_one_line_error(
        result,
        "--real=digits shares 1258 of its 1797 images with the generator's training images (digits:train)",
        "train on digits:train and evaluate on digits:test",
        "--allow_overlap=true",
    )
    assert not report.exists()
    # The same generator's sample output: its plan records the training data, so the check still runs.
    shards = tmp_path / "shards"
    sampled = run_cli("sample", f"--generator={smoke_job}", f"--output={shards}", "--num_images=64",
                      "--preset=smoke", "--progress=false")  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    result = run_cli("evaluate", "--real=digits", f"--synthetic={shards}", f"--report={report}", *SMALL)
    assert_one_line_error(result, "shares 1258 of its 1797 images with the generator's training images (digits:train)")
    result = run_cli(
        "evaluate",
        "--real=digits",
        f"--synthetic={smoke_job}",
        f"--report={report}",
        "--allow_overlap=true",
        *SMALL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(report.read_text())
    assert written["data"]["overlaps"][0]["shared"] == 1258 and not written["data"]["overlaps"][0]["disjoint"]
    for section in ("fidelity", "memorization", "downstream"):
        assert "1258" in written[section]["caveat"], section
    marked = [
        line for line in result.stdout.splitlines() if line.startswith(("FID", "memorization:", "downstream accuracy"))
    ]
    assert len(marked) == 3 and all(line.endswith("(!)") for line in marked), result.stdout
    assert "(!) memorization: the threshold comes from --real's distances" in result.stdout


def test_disjoint_splits_report_what_each_number_used(smoke_job, tmp_path):
    """The README's path: train on the default digits:train, evaluate on digits:test: no overlap, no warning."""
    report = tmp_path / "eval" / "report.json"
    result = run_cli("evaluate", "--real=digits:test", f"--synthetic={smoke_job}", f"--report={report}", *NO_DOWNSTREAM)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(!)" not in result.stdout and "OVERLAPPING" not in result.stdout
    assert "digits:test vs digits:train: disjoint" in result.stdout
    written = json.loads(report.read_text())
    sets = {role.split(" (")[0]: info for role, info in written["data"]["sets"].items()}
    assert sets["reference"] == {"name": "digits:test", "images": 539}
    assert [info["images"] for role, info in sets.items() if role.startswith("training")] == [1258]
    assert sets["synthetic"]["images"] == 100
    assert all(o["disjoint"] for o in written["data"]["overlaps"])
    assert not any("caveat" in v for v in written.values() if isinstance(v, dict))
    # Switched off, the downstream section says so rather than asking for data the user gave.
    assert written["downstream"] == {"skipped": "not run (--downstream=false)"}
    # The feature classifier learned from --real, so GAN-test checks it on the (disjoint) training images.
    assert written["gan_test"]["held_out_set"] == "digits:train"
    assert 0 < written["gan_test"]["classifier_accuracy_held_out"] <= 1
    # Pictures for people: titled, upscaled, pairs captioned.
    pairs = Image.open(report.parent / "report-closest-pixels.png")
    assert pairs.size[0] >= 4 * 2 * 96 and pairs.size[1] > 4 * 96
    assert Image.open(report.parent / "report-samples.png").size[0] >= 8 * 96


def test_the_readme_quick_start_trains_and_evaluates_honestly(tmp_path):
    """The README's train and evaluate commands, in order, as written (plus flags that make them small)."""
    from conftest import REPO

    with open(f"{REPO}/README.md") as f:
        lines = [line.strip() for line in f]
    train = next(line for line in lines if "dcgan train --job_dir=runs/digits" in line).split("&& ", 1)[1]
    evaluate = next(
        line for line in lines if line.startswith("dcgan evaluate --real=digits:test --synthetic=runs/digits")
    )
    result = run_cli(*train.split()[1:], "--preset=smoke", "--progress=false", cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    export = tmp_path / "runs" / "digits" / "export"
    card = (export / "README.md").read_text()  # the model card, written with the export
    assert "| training data | `digits:train`, 1258 images |" in card and "| training steps | 8 |" in card
    assert "`0`, `1`" in card and "![samples from this generator](samples.png)" in card
    assert Image.open(export / "samples.png").size[0] >= 8 * 96 and "Not evaluated yet" in card
    result = run_cli(*evaluate.split()[1:], *NO_DOWNSTREAM, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "digits:test vs digits:train: disjoint" in result.stdout and "(!)" not in result.stdout
    assert (tmp_path / "runs" / "digits" / "eval" / "report.html").is_file()
    report = json.loads((tmp_path / "runs" / "digits" / "eval" / "report.json").read_text())
    card = (export / "README.md").read_text()  # ... and updated by evaluate with what it measured
    assert "model card updated" in result.stdout and "Not evaluated yet" not in card
    assert f"{report['fidelity']['fid']:.2f} / {report['fidelity']['kid']:.4f}" in card
    assert f"| memorization (pixels or features) | {report['memorization']['rate_either']:.1%} |" in card
    assert "against `digits:test` (539 images)" in card


@pytest.fixture(scope="module")
def full_report(smoke_job, tmp_path_factory):
    """One evaluate run with every section, shared by the end-to-end and the browser test."""
    report_path = tmp_path_factory.mktemp("full") / "eval" / "report.json"
    result = run_cli(
        "evaluate",
        "--real=digits:test",
        f"--synthetic={smoke_job}",
        "--train_data=digits:train[:10%]",
        f"--report={report_path}",
        "--num_samples=100",
        "--feature_steps=30",
        "--downstream_steps=15",
        "--seeds=2",
        "--policies=none,crop_flip",
        "--mixes=",
        "--shares=0.5",
        "--kid_subsets=5",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return report_path, result


def test_evaluate_end_to_end_on_a_smoke_job(full_report):
    report_path, result = full_report
    tmp_path = report_path.parent.parent
    report = json.loads(report_path.read_text())
    fidelity = report["fidelity"]
    assert fidelity["fid"] > 0 and fidelity["kid"] > 0 and 0 <= fidelity["precision"] <= 1
    assert report["synthetic"]["kind"] == "generator" and report["synthetic"]["num_images"] == 100
    assert set(report["memorization"]) == {"pixels", "features", "rate_either"}
    assert 0 <= report["gan_test"]["accuracy"] <= 1
    downstream = report["downstream"]
    assert list(downstream["recipes"]) == ["real", "augmented", "synthetic_only", "with_synthetic"]
    assert all(len(r["runs"]) == 2 for r in downstream["recipes"].values()) and downstream["train_images"] == 126
    assert downstream["tuned"]["validation_images"] == 26 and downstream["tuned"]["policy"] in ("none", "crop_flip")
    assert downstream["gain_over_augmentation"]["n"] == 2 and 0 <= downstream["cas_ratio"] <= 2
    for suffix in ("samples", "closest-pixels", "closest-features"):
        assert (tmp_path / "eval" / f"report-{suffix}.png").stat().st_size > 100
    assert "FID" in result.stdout and "downstream verdict: synthetic images" in result.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_html_report_renders_in_a_real_browser(full_report, tmp_path):
    report, _ = full_report
    page = report.parent / "report.html"
    written = json.loads(report.read_text())
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", *flags, f"--screenshot={shot}", "--window-size=1000,3000", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert Image.open(shot).size == (1000, 3000)
    dom = subprocess.run(
        ["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert f"{written['fidelity']['fid']:.4g}" in dom and "digits:test" in dom and "126 images" in dom
    assert dom.count("<img") == 3 and "data:image/png;base64," in dom  # self-contained
    verdict = written["downstream"]["verdict"]
    assert verdict.startswith("synthetic images: ") and "points" in verdict
    assert dom.index('id="verdict"') < dom.index("Which images each number used")  # the page leads with it
    assert dom.count("<rect") == 4 and "synthetic images only (CAS)" in dom  # the chart: one bar per recipe


def test_evaluate_bad_input_is_one_line(smoke_job, tmp_path):
    unlabelled = tmp_path / "nolabels.npz"
    np.savez(unlabelled, x=np.zeros((20, 32, 32), np.uint8))
    base = [f"--synthetic={smoke_job}", f"--report={tmp_path}/r.json", "--num_samples=20", "--feature_steps=5"]
    result = run_cli("evaluate", f"--real={unlabelled}", "--downstream=true", *base)
    assert_one_line_error(result, "--downstream=true needs labels", "--real")
    assert "feature space" not in result.stdout  # found before any classifier trains
    assert_one_line_error(run_cli("evaluate", "--real=digits:test", "--resolution=64", *base), "mismatched resolution")
    assert_one_line_error(run_cli("evaluate", "--real=nowhere/", *base), "--real=nowhere/: no such file or folder")
    assert_one_line_error(
        run_cli("evaluate", "--real=digits", f"--synthetic={tmp_path}/none", f"--report={tmp_path}/r.json"),
        "none: no such file or folder (shards, or a job dir to sample from)",
    )
    assert not (tmp_path / "r.json").exists()


def test_shard_outputs_are_read_whole_in_batches_as_synthetic_and_as_real(tmp_path):
    """`--synthetic=SHARDS` reads the first --num_samples records, `--real=SHARDS` every record, in order;
    unlabelled records (-1) make an unconditional set; images of two sizes are one line, not a traceback."""
    from test_hostile_shards import RES, good_records, write_output

    from trainer import evaluate, image_codec, shards
    from trainer.errors import UserError

    out = tmp_path / "out"
    write_output(out, [good_records(1500)])
    expected = list(shards.load(str(out), shuffle=False))
    config = types.SimpleNamespace(synthetic=str(out), num_samples=1100)
    images, labels, described = evaluate.load_synthetic(config)
    assert images.shape == (1100, 32, 32, 1) and images.dtype == np.uint8 and described["kind"] == "shards"
    assert np.array_equal(images, np.stack([i.numpy() for i, _ in expected[:1100]]))
    assert labels.tolist() == [int(label) for _, label in expected[:1100]] and described["num_classes"] == 10
    real = evaluate.load_real(str(out), "real", 32, 1)
    assert len(real.images) == 1500 and np.array_equal(real.images[-1], expected[-1][0].numpy())
    assert real.labels.tolist() == [int(label) for _, label in expected]

    def records(count, size, label):
        pixels = np.random.default_rng(1).integers(0, 255, [count, size, size, 1], np.uint8)
        encoder = shards.ExampleEncoder(size, size, 1, "synthetic", 8, "png")
        return [encoder.encode(blob, label, i) for i, blob in enumerate(image_codec.encode(pixels, "png"))]

    unlabelled = tmp_path / "unlabelled"
    write_output(unlabelled, [records(5, RES, -1)], num_classes=0)
    images, labels, described = evaluate.load_synthetic(types.SimpleNamespace(synthetic=str(unlabelled), num_samples=9))
    assert len(images) == 5 and labels is None and described["num_classes"] == 0
    real = evaluate.load_real(str(unlabelled), "real", 32, 1)
    assert real.labels is None and real.num_classes == 0
    mixed = tmp_path / "mixed"
    write_output(mixed, [records(3, RES, 1), records(3, RES // 2, 1)])
    with pytest.raises(UserError, match="cannot be read as one set"):
        evaluate.load_real(str(mixed), "real", 32, 1)
