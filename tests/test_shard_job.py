"""The sampler and augment jobs: format, plan, work split, crash safety, reader."""

import glob
import hashlib
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from trainer import command_line, data, distribute, input_pipeline, shard_job, shards, sources, storage
from trainer.errors import UserError
from trainer.specs import GeneratorSpec

from conftest import REPO, assert_one_line_error, run_cli


def digests(folder):
    return {
        os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
        for p in sorted(glob.glob(os.path.join(folder, "*.tfrecord-*")))
    }


def sample_args(generator, output, *extra):
    return ["sample", f"--generator={generator}", f"--output={output}", "--preset=smoke", "--progress=false", *extra]


def test_a_resumed_output_with_other_flags_fails_before_the_source_loads(smoke_job, tmp_path):
    """The plan entries the flags alone decide are compared with the output's plan.json before the
    generator is loaded (here it no longer loads at all): the user sees the conflict, at once."""
    import shutil

    from trainer.augment_params import AugmentParams

    job, out = tmp_path / "job", tmp_path / "out"
    shutil.copytree(smoke_job, job)
    flags = ["--num_images=20", "--images_per_shard=8", "--horizontal_flip=true", "--batch_size=16"]
    assert run_cli(*sample_args(job, out, *flags)).returncode == 0
    plan = json.loads((out / "plan.json").read_text())
    config = command_line.resolve(
        "sample", dict(f[2:].split("=") for f in sample_args(job, out, *flags)[1:] if "=" in f)
    )
    part = shard_job.flags_plan(config, "synthetic", AugmentParams.create(**config.augmentation())).flag_entries(True)
    assert part == {k: plan.get(k) for k in part} and len(part) == 11 and part["image_format"] is None  # png
    (job / "export" / "generator.keras").write_bytes(b"no longer a model")
    assert_one_line_error(
        run_cli(*sample_args(job, out, *flags[:-1], "--batch_size=32")), "planned differently", "batch_size 16 -> 32"
    )


def test_write_then_read_with_plain_tensorflow(smoke_job, tmp_path):
    out = tmp_path / "synth"
    result = run_cli(*sample_args(smoke_job, out, "--num_images=45", "--images_per_shard=20", "--rotation_range=15"))
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_images"] == 45 and manifest["num_shards"] == 3
    names = sorted(os.listdir(out))
    assert names == ["dataset_info.json", "features.json", "image.class.label.labels.txt", "manifest.json"] + [
        "plan.json"
    ] + [f"synthetic-train.tfrecord-{i:05d}-of-00003" for i in range(3)]
    feature = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/source": tf.io.FixedLenFeature([], tf.string),
        "image/key/sha256": tf.io.FixedLenFeature([], tf.string),
    }
    labels, count = [], 0
    for path in sorted(glob.glob(str(out / "*.tfrecord-*"))):
        for record in tf.data.TFRecordDataset(path):
            parsed = tf.io.parse_single_example(record, feature)
            image = tf.io.decode_png(parsed["image/encoded"])
            assert image.shape == (32, 32, 1) and image.dtype == tf.uint8
            assert parsed["image/source"].numpy() == b"synthetic"
            assert (
                parsed["image/key/sha256"].numpy().decode()
                == hashlib.sha256(parsed["image/encoded"].numpy()).hexdigest()
            )
            labels.append(int(parsed["image/class/label"]))
            count += 1
    assert count == sum(s["num_images"] for s in manifest["shards"]) == 45
    assert np.bincount(labels).tolist() == [5, 5, 5, 5, 5, 4, 4, 4, 4, 4]  # balanced over 10 classes
    verify = run_cli("sample", f"--output={out}", "--verify")
    assert verify.returncode == 0 and "checksums match" in verify.stdout
    # Our reader, and training on the shards as a dataset.
    ds = shards.load(str(out), seed=1)
    images = [(x.numpy(), int(y)) for x, y in ds]
    assert len(images) == 45 and images[0][0].shape == (32, 32, 1)
    job = tmp_path / "on_shards"
    trained = run_cli(
        "train", "--preset=smoke", f"--job_dir={job}", f"--dataset={out}", "--steps=2", "--progress=false"
    )
    assert trained.returncode == 0, trained.stderr[-3000:]


@pytest.mark.slow
def test_two_tasks_split_the_shards_and_output_is_byte_identical(smoke_job, tmp_path):
    args = ["--num_images=70", "--images_per_shard=10", "--horizontal_flip", "--zoom_range=0.2"]
    env = {**os.environ, "PYTHONPATH": REPO}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trainer",
                *sample_args(smoke_job, tmp_path / "two", *args),
                f"--task_index={t}",
                "--num_tasks=2",
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for t in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert "wrote 4 shards" in outs[0][0] and "wrote 3 shards" in outs[1][0]
    one = run_cli(*sample_args(smoke_job, tmp_path / "one", *args))
    assert one.returncode == 0
    two_digests, one_digests = digests(tmp_path / "two"), digests(tmp_path / "one")
    assert len(two_digests) == 7 and two_digests == one_digests
    assert (tmp_path / "one" / "manifest.json").exists() and (tmp_path / "two" / "manifest.json").exists()
    # Running again finds everything published and writes nothing.
    again = run_cli(*sample_args(smoke_job, tmp_path / "one", *args))
    assert "wrote 0 shards" in again.stdout and digests(tmp_path / "one") == one_digests


@pytest.mark.slow
def test_kill_9_mid_shard_then_rerun_leaves_exactly_the_planned_shards(smoke_job, tmp_path):
    out = tmp_path / "out"
    plan = ["--num_images=1500", "--images_per_shard=50", "--batch_size=5", "--rotation_range=10"]
    args = sample_args(smoke_job, out, *plan)
    env = {**os.environ, "PYTHONPATH": REPO, "PYTHONUNBUFFERED": "1"}
    for kill_after in (15, 40, 120):  # images written by this run before the kill: mid-shard each time
        proc = subprocess.Popen(
            [sys.executable, "-m", "trainer", *args, "--progress=true", "--progress_secs=0"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for line in proc.stderr:
            if line.startswith("[") and int(line.split("step ")[1].split("/")[0]) >= kill_after:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert not (out / "manifest.json").exists()
        for path in glob.glob(str(out / "*.tfrecord-*")):  # whatever was published is whole
            assert shards.count_records(path) == 50
    final = run_cli(*args)
    assert final.returncode == 0, final.stderr[-3000:]
    assert sorted(p for p in os.listdir(out)) == [
        "dataset_info.json",
        "features.json",
        "image.class.label.labels.txt",
        "manifest.json",
        "plan.json",
    ] + [f"synthetic-train.tfrecord-{i:05d}-of-00030" for i in range(30)]  # no temp leftovers
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["num_images"] for s in manifest["shards"]] == [50] * 30
    assert run_cli("sample", f"--output={out}", "--verify").returncode == 0
    # Crashes changed nothing: the bytes equal a clean run's.
    clean = run_cli(*sample_args(smoke_job, tmp_path / "clean", *plan))
    assert clean.returncode == 0 and digests(out) == digests(tmp_path / "clean")


def test_tensorflow_datasets_reads_the_output(tmp_path):
    """as_supervised=True gives decoded (image, label) pairs, and the label feature has the class names."""
    tfds = pytest.importorskip("tensorflow_datasets")
    out = tmp_path / "aug"
    result = run_cli(
        "augment", "--dataset=digits", f"--output={out}", "--num_images=40", "--images_per_shard=16", "--progress=false"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    builder = tfds.builder_from_directory(str(out))
    assert builder.info.splits["train"].num_examples == 40
    assert builder.info.features["image/class/label"].names == [str(d) for d in range(10)]
    pairs = list(builder.as_dataset(split="train", shuffle_files=False, as_supervised=True))
    assert len(pairs) == 40
    from sklearn.datasets import load_digits

    assert [int(label) for _, label in pairs] == load_digits().target[:40].tolist()
    assert pairs[0][0].shape == (32, 32, 1) and pairs[0][0].dtype == tf.uint8
    ours = [
        shards.parse_example(r, 1)[0].numpy()
        for r in tf.data.TFRecordDataset(sorted(glob.glob(str(out / "*.tfrecord-*"))))
    ]
    assert all((a.numpy() == b).all() for (a, _), b in zip(pairs, ours))
    first = next(iter(builder.as_dataset(split="train", shuffle_files=False)))  # every other field by its key
    assert first["image/source"].numpy() == b"augmented" and int(first["image/height"]) == 32


def test_augment_job_writes_real_images_with_their_labels(tmp_path):
    out = tmp_path / "aug"
    result = run_cli(
        "augment",
        "--dataset=digits",
        f"--output={out}",
        "--num_images=30",
        "--images_per_shard=16",
        "--progress=false",
        "--horizontal_flip",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(out))[:2] == [
        "augmented-train.tfrecord-00000-of-00002",
        "augmented-train.tfrecord-00001-of-00002",
    ]
    from sklearn.datasets import load_digits

    expected_labels = load_digits().target[:30].tolist()
    records = [
        tf.io.parse_single_example(r, shards.FEATURES)
        for r in tf.data.TFRecordDataset(sorted(glob.glob(str(out / "*.tfrecord-*"))))
    ]
    assert [int(r["image/class/label"]) for r in records] == expected_labels
    assert {r["image/source"].numpy() for r in records} == {b"augmented"}
    assert json.loads((out / "plan.json").read_text())["augmentation"]["rotation_range"] == 15.0


def test_bad_input_one_line_and_nothing_overwritten(smoke_job, tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(
        run_cli(*sample_args(tmp_path / "nojob", out)), "nojob: no such file or folder", "did the training job finish?"
    )
    assert_one_line_error(run_cli(*sample_args(smoke_job, out, "--num_images=0")), "--num_images=0 must be >= 1")
    assert_one_line_error(run_cli(*sample_args(smoke_job, out, "--rotation=5")), "unknown flag", "--rotation")
    assert_one_line_error(run_cli(*sample_args(smoke_job, out, "--copies_per_sample=3")), "needs augmentation flags")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(run_cli(*sample_args(smoke_job, blocker / "out")), "cannot write there")
    assert not out.exists()
    first = run_cli(*sample_args(smoke_job, out, "--num_images=20"))
    assert first.returncode == 0
    before = digests(out), (out / "plan.json").read_text()
    assert_one_line_error(
        run_cli(*sample_args(smoke_job, out, "--num_images=30")), "planned differently", "num_images 20 -> 30"
    )
    assert (digests(out), (out / "plan.json").read_text()) == before
    (out / "plan.json").write_text("[" * 100_000)  # damaged by hand or by another tool
    assert_one_line_error(run_cli(*sample_args(smoke_job, out, "--num_images=20")), "not a plan this tool wrote")
    assert digests(out) == before[0]
    assert_one_line_error(
        run_cli("sample", f"--output={tmp_path}/empty", "--verify"), "empty: no such folder; nothing to verify"
    )
    with pytest.raises(UserError, match="not complete"):
        shards.load(str(tmp_path))


def test_task_blocks_cover_every_shard_once_and_the_commit_check_stops_at_a_gap(tmp_path):
    for num_shards in range(30):
        for num_tasks in range(1, 9):
            blocks = [shard_job.task_shards(t, num_tasks, num_shards) for t in range(num_tasks)]
            assert sum(blocks, []) == list(range(num_shards))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    store = storage.LocalStore(str(tmp_path))
    names = [shards.shard_name("synthetic", i, 6) for i in range(6)]
    for name in names[:2] + names[3:] + ["plan.json"]:
        store.put(name, b"r")
    listed, stat_range = [], store.stat_range

    def counted(first, last):
        for key, info in stat_range(first, last):
            listed.append(key)
            yield key, info

    store.stat_range = counted
    assert shard_job.all_published(store, names) is None
    assert listed == names[:2] + [names[3]]  # read up to the first key past the missing shard, no further
    listed.clear()
    assert shard_job.all_published(store, names, start=4) is None  # from shard 4 on, then round from 0
    assert listed == names[4:] + names[:2] + [names[3]]
    assert set(shard_job.stat_shards(store, [names[1], names[4]])) == {names[1], names[4]}
    store.put(names[2], b"r")
    assert list(shard_job.all_published(store, names)) == names
    assert sorted(shard_job.all_published(store, names, start=3)) == names


def test_verify_splits_by_task_like_writing(tmp_path):
    out = tmp_path / "aug"
    made = run_cli("augment", "--dataset=digits", f"--output={out}", "--num_images=40", "--images_per_shard=10")
    assert made.returncode == 0, made.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({"shards": manifest["shards"]}))  # totals are optional
    whole = run_cli("augment", f"--output={out}", "--verify", "--progress=false")
    assert whole.returncode == 0 and "ok: 4 shards, ? images, checksums match" in whole.stdout, whole.stderr[-2000:]
    first = sorted(glob.glob(str(out / "*.tfrecord-*")))[0]  # in task 0's block of 2 tasks
    with open(first, "r+b") as f:
        f.truncate(100)
    task = ["--num_tasks=2", "--progress=false"]
    ok = run_cli("augment", f"--output={out}", "--verify", "--task_index=1", *task)
    assert ok.returncode == 0 and "ok: task 1 of 2: 2 of 4 shards, checksums match" in ok.stdout, ok.stderr[-2000:]
    assert_one_line_error(
        run_cli("augment", f"--output={out}", "--verify", "--task_index=0", *task),
        os.path.basename(first),
        "size differs",
    )


def test_task_from_the_environment():
    config = command_line.resolve("sample", {"output": "o", "generator": "g"})
    assert shard_job.resolve_task(config, {}) == (0, 1)
    assert shard_job.resolve_task(config, {"JOB_COMPLETION_INDEX": "3", "DCGAN_NUM_TASKS": "8"}) == (3, 8)
    with pytest.raises(UserError, match="DCGAN_NUM_TASKS"):
        shard_job.resolve_task(config, {"JOB_COMPLETION_INDEX": "3"})
    spec = {
        "cluster": {"workerpool0": ["a:1"], "workerpool1": ["b:1", "c:1"]},
        "task": {"type": "workerpool1", "index": 1},
    }
    assert shard_job.resolve_task(config, {"CLUSTER_SPEC": json.dumps(spec)}) == (2, 3)
    tf_config = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}
    assert shard_job.resolve_task(config, {"TF_CONFIG": json.dumps(tf_config)}) == (1, 2)
    flags = command_line.resolve("sample", {"output": "o", "generator": "g", "task_index": 1, "num_tasks": 4})
    assert shard_job.resolve_task(flags, {"JOB_COMPLETION_INDEX": "3"}) == (1, 4)


def test_truncation_and_label_policies(smoke_job, tmp_path):
    base = dict(generator=smoke_job, output=str(tmp_path / "x"), num_images=200, batch_size=50)
    plain = sources.latents(4, tf.range(300), 16).numpy()
    truncated = sources.latents(4, tf.range(300), 16, psi=0.5).numpy()
    assert np.abs(plain).max() > 2 and np.abs(truncated).max() <= 0.5
    inside = np.abs(plain) <= 0.5
    np.testing.assert_array_equal(truncated[inside], plain[inside])  # only out-of-bound values are redrawn
    np.testing.assert_array_equal(sources.latents(4, tf.constant([7]), 16).numpy()[0], plain[7])
    balanced = sources.generator_source(command_line.resolve("sample", base).generator_spec())
    _, labels, _ = balanced.make_batch(tf.range(200, dtype=tf.int64))
    assert np.bincount(labels.numpy()).tolist() == [20] * 10
    weighted = sources.generator_source(
        command_line.resolve("sample", {**base, "labels": "1,0,0,0,0,0,0,0,0,3"}).generator_spec()
    )
    _, wl, _ = weighted.make_batch(tf.range(400, dtype=tf.int64))
    counts = np.bincount(wl.numpy(), minlength=10)
    assert counts[1:9].sum() == 0 and 60 < counts[0] < 140 and counts[9] > 260
    with pytest.raises(UserError, match="3 class weights but the generator has 10"):
        sources.generator_source(command_line.resolve("sample", {**base, "labels": "1,2,3"}).generator_spec())


def test_labels_fill_tops_every_class_up_to_the_largest_exactly(smoke_job, tmp_path):
    with open(os.path.join(smoke_job, "export", "generator.json")) as f:
        meta = json.load(f)
    counts = meta["class_counts"]  # digits:train, as the training run counted it
    assert sum(counts) == meta["num_train_images"] and len(set(counts)) > 1
    shortfall = [max(counts) - n for n in counts]
    base = dict(generator=smoke_job, output=str(tmp_path / "x"), num_images=200, batch_size=50, labels="fill")
    source = sources.generator_source(command_line.resolve("sample", base).generator_spec())
    _, labels, _ = source.make_batch(tf.range(sum(shortfall), dtype=tf.int64))
    assert np.bincount(labels.numpy(), minlength=10).tolist() == shortfall  # real + synthetic: even classes
    export = tmp_path / "export"
    for name, changed, message in (
        ("older", {k: v for k, v in meta.items() if k != "class_counts"}, "does not record"),
        ("hostile", {**meta, "class_counts": [1e300] * 10}, "does not record"),
        ("even", {**meta, "class_counts": [7] * 10}, "already even \\(7 images each\\)"),
    ):
        folder = export / name
        folder.mkdir(parents=True)
        os.link(os.path.join(smoke_job, "export", "generator.keras"), folder / "generator.keras")
        (folder / "generator.json").write_text(json.dumps(changed))
        with pytest.raises(UserError, match=f"--labels=fill.*{message}"):
            sources.generator_source(
                command_line.resolve("sample", {**base, "generator": str(folder)}).generator_spec()
            )


def test_a_teacher_labels_every_record_and_filters_by_confidence(smoke_job, tmp_path):
    out = tmp_path / "taught"
    teacher = ["--teacher=auto", "--teacher_members=2", "--teacher_steps=30", "--train_data=digits:train[:10%]"]
    cache = {"DCGAN_CACHE": str(tmp_path / "cache")}
    result = run_cli(*sample_args(smoke_job, out, *teacher, "--min_confidence=0.1"), env=cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "teacher: training 2 classifiers on 126 images" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["soft_labels"] and manifest["filters"] == ["teacher_confidence"]
    assert manifest["num_images"] + manifest["dropped"] == 40 and manifest["plan"]["teacher"]["members"] == 2
    spec = {
        **shards.FEATURES,
        "image/class/probs": tf.io.FixedLenFeature([10], tf.float32),
        "image/teacher/confidence": tf.io.FixedLenFeature([1], tf.float32),
    }
    records = [
        tf.io.parse_single_example(r, spec)
        for r in tf.data.TFRecordDataset(sorted(glob.glob(str(out / "*.tfrecord-*"))))
    ]
    assert len(records) == manifest["num_images"] > 0 and manifest["dropped"] > 0
    for r in records:
        probs = r["image/class/probs"].numpy()
        assert abs(probs.sum() - 1) < 1e-4
        assert r["image/teacher/confidence"].numpy()[0] == probs[int(r["image/class/label"])] >= 0.1
    assert run_cli("sample", f"--output={out}", "--verify").returncode == 0
    # The reader gives the probabilities; a second run loads the cached teacher.
    image, target = next(iter(shards.load(str(out), targets="probs", shuffle=False)))
    assert image.shape == (32, 32, 1) and target.shape == (10,)
    again = run_cli(*sample_args(smoke_job, tmp_path / "again", *teacher), env=cache)
    assert again.returncode == 0 and "teacher: loaded from" in again.stdout, again.stderr[-2000:]
    assert_one_line_error(
        run_cli(*sample_args(smoke_job, tmp_path / "x", "--min_confidence=0.5")), "--min_confidence needs a --teacher"
    )
    # a teacher for 2 classes cannot label a 10-class generator: said before it trains
    two = tmp_path / "two-classes.npz"
    np.savez(two, x=np.zeros((8, 32, 32), np.uint8), y=np.arange(8) % 2)
    assert_one_line_error(
        run_cli(*sample_args(smoke_job, tmp_path / "y", "--teacher=auto", f"--train_data={two}"), env=cache),
        "has 2 classes but the generator 10",
    )
    wrong_size = tmp_path / "teacher-28px.keras"  # a classifier for other images: refused before any sampling
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs))).save(wrong_size)
    assert_one_line_error(
        run_cli(*sample_args(smoke_job, tmp_path / "z", f"--teacher={wrong_size}")),
        "takes inputs of shape (None, 28, 28, 1); the generator draws (32, 32, 1)",
    )
    assert not (tmp_path / "z").exists()
    assert run_cli(*sample_args(smoke_job, tmp_path / "plain")).returncode == 0
    with pytest.raises(UserError, match="hold no teacher probabilities"):
        shards.load(str(tmp_path / "plain"), targets="probs")


def test_mix_feeds_keras_fit_with_real_and_synthetic_batches(smoke_job, tmp_path):
    import keras

    from trainer import classifier, data, downstream

    out = tmp_path / "taught"
    result = run_cli(
        *sample_args(
            smoke_job,
            out,
            "--teacher=auto",
            "--teacher_members=1",
            "--teacher_steps=20",
            "--train_data=digits:train[:10%]",
            "--num_images=64",
            "--images_per_shard=32",
        ),
        env={"DCGAN_CACHE": str(tmp_path / "cache")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    real = data.load_source("digits:train[:10%]", 32)
    ds = shards.mix(
        (real.images, real.labels),
        str(out),
        num_classes=10,
        synthetic_fraction=0.5,
        batch_size=32,
        augmentation=downstream.classic_policy(0.5),
        seed=1,
    )
    images, targets = next(iter(ds))
    assert images.shape == (32, 32, 32, 1) and images.dtype == tf.float32 and targets.shape == (32, 10)
    hard = np.isclose(targets.numpy().max(1), 1.0)
    assert 0 < hard.sum() < 32  # one-hot real and soft synthetic targets in the same batch
    model = classifier.build(32, 1, 10)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    history = model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_preview_writes_one_labelled_grid_and_nothing_else(smoke_job, tmp_path):
    from PIL import Image

    grid = tmp_path / "look" / "grid.png"
    result = run_cli("sample", f"--generator={smoke_job}", "--preview=20", f"--output={grid}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(tmp_path / "look") == ["grid.png"]
    width, height = Image.open(grid).size
    assert width >= 2 * 96 and height >= 10 * 96  # 10 classes x 2, upscaled from 32 px
    assert_one_line_error(
        run_cli("sample", f"--generator={smoke_job}", "--preview=20", f"--output={tmp_path}/o"), "must end in .png"
    )


def test_a_live_writers_temp_file_is_never_deleted(tmp_path):
    """Two processes with the same task index on one output: the second's cleanup skips the first's file."""
    folder = tmp_path / ".tmp"
    folder.mkdir()
    live, dead = folder / "task-00000-live.tfrecord", folder / "task-00000-dead.tfrecord"
    dead.write_bytes(b"left by a killed run")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from trainer import storage; h = storage.own({str(live)!r}); "
            "print('holding', flush=True); import time; time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert shard_job.remove_stale_temp_files(str(folder), "task-00000-") == 1
        assert live.exists() and not dead.exists()
    finally:
        holder.kill()
        holder.wait()
    assert shard_job.remove_stale_temp_files(str(folder), "task-00000-") == 1 and not live.exists()


def test_image_formats_read_back_as_the_same_images(tmp_path):
    """--image_format=raw and jpeg: the reader, training data and TFDS see the images PNG would give."""
    outputs = {}
    for fmt in ("png", "raw", "jpeg"):
        out = tmp_path / fmt
        result = run_cli(
            "augment",
            "--dataset=digits",
            f"--output={out}",
            "--num_images=40",
            "--images_per_shard=16",
            "--progress=false",
            f"--image_format={fmt}",
            "--batch_size=16",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[fmt] = [(x.numpy(), int(y)) for x, y in shards.load(str(out), shuffle=False)]
        plan = json.loads((out / "plan.json").read_text())
        assert plan.get("image_format", "png") == fmt  # a PNG plan keeps the keys older outputs have
        record = next(iter(tf.data.TFRecordDataset(sorted(glob.glob(str(out / "*.tfrecord-*")))[:1])))
        assert tf.io.parse_single_example(record, shards.FEATURES)["image/format"].numpy() == fmt.encode()
    png, raw, jpeg = outputs["png"], outputs["raw"], outputs["jpeg"]
    assert len(png) == len(raw) == len(jpeg) == 40
    assert all((a == b).all() and la == lb for (a, la), (b, lb) in zip(png, raw))
    assert np.mean([np.abs(a.astype(int) - b).mean() for (a, _), (b, _) in zip(png, jpeg)]) < 4
    assert [y for _, y in png] == [y for _, y in jpeg]
    # As a training dataset (dcgan train --dataset=SHARDS), raw shards give the PNG pixels, as 3 channels too.
    from trainer import data

    for channels in (1, 3):
        a, b = (data.load_source(str(tmp_path / fmt), 32, channels) for fmt in ("png", "raw"))
        batch_a, batch_b = (next(iter(input_pipeline.make_dataset(s, 8, 0, 0))) for s in (a, b))
        np.testing.assert_array_equal(batch_a[0].numpy(), batch_b[0].numpy())
        assert batch_a[0].shape[-1] == channels
    tfds = pytest.importorskip("tensorflow_datasets")
    by_tfds = {
        fmt: [
            (x.numpy().astype(int), int(y))
            for x, y in tfds.builder_from_directory(str(tmp_path / fmt)).as_dataset(
                split="train", shuffle_files=False, as_supervised=True
            )
        ]
        for fmt in ("png", "raw", "jpeg")
    }  # TFDS decodes raw and JPEG shards too
    assert len(by_tfds["png"]) == 40
    for fmt, tolerance in (("raw", 0), ("jpeg", 4)):
        assert [y for _, y in by_tfds[fmt]] == [y for _, y in by_tfds["png"]]
        assert np.mean([np.abs(a - b).mean() for (a, _), (b, _) in zip(by_tfds[fmt], by_tfds["png"])]) <= tolerance
    assert_one_line_error(
        run_cli("augment", f"--output={tmp_path}/bad", "--image_format=webp"),
        "--image_format='webp' must be png, jpeg or raw",
    )


def test_sampling_in_bfloat16_stays_within_a_grey_level_or_two(smoke_job, tmp_path):
    base = dict(generator=smoke_job, output=str(tmp_path / "x"), num_images=64, batch_size=32)
    plain = sources.generator_source(command_line.resolve("sample", base).generator_spec())
    fast = sources.generator_source(
        command_line.resolve("sample", {**base, "mixed_precision": "bfloat16"}).generator_spec()
    )
    indices = tf.range(64, dtype=tf.int64)
    a, b = plain.make_batch(indices)[0].numpy(), fast.make_batch(indices)[0].numpy()
    assert a.dtype == b.dtype == np.float32
    assert np.abs(a - b).max() <= 4 and np.abs(a - b).mean() < 1
    assert fast.identity["mixed_precision"] == "bfloat16" and "mixed_precision" not in plain.identity
    out = tmp_path / "bf16"
    result = run_cli(*sample_args(smoke_job, out, "--num_images=20", "--mixed_precision=bfloat16"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "plan.json").read_text())["mixed_precision"] == "bfloat16"
    warning = distribute.bfloat16_warning("bfloat16", False, distribute.cpu_flags())  # '' on a CPU with bfloat16
    assert (warning in result.stderr) and (bool(warning) == ("no bfloat16 instructions" in result.stderr))
    assert_one_line_error(run_cli(*sample_args(smoke_job, out, "--mixed_precision=fp8")), "--mixed_precision='fp8'")


def test_sampler_memorization_filter_drops_copies(smoke_job, tmp_path):
    config = GeneratorSpec(smoke_job, max_memorization=0.05, train_data="digits:train")
    meta = json.loads(open(os.path.join(smoke_job, "export", "generator.json")).read())
    keep, description = sources.memorization_filter(config, meta)
    train = data.load_source("digits:train[:10%]", 32).images.astype(np.float32)
    other = data.load_source("digits:test", 32).images[:50].astype(np.float32)
    mask = keep(tf.constant(np.concatenate([train[:20] + 0.5, other]))).numpy()
    assert not mask[:20].any() and mask[20:].mean() > 0.8  # copies dropped, most new images kept
    assert description["threshold"] > 0
    # End to end: the manifest counts what was dropped; shards hold exactly what it says.
    out = tmp_path / "filtered"
    result = run_cli(
        "sample",
        f"--generator={smoke_job}",
        f"--output={out}",
        "--preset=smoke",
        "--progress=false",
        "--max_memorization=0.05",
        "--train_data=digits:train",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_images"] + manifest["dropped"] == 40 and manifest["filters"] == ["memorization"]
    assert manifest["num_images"] == sum(s["num_images"] for s in manifest["shards"])
    assert run_cli("sample", f"--output={out}", "--verify").returncode == 0
    # Reference images that miss some of the generator's training images would let copies of them through.
    partial = GeneratorSpec(smoke_job, max_memorization=0.05, train_data="digits:train[:10%]")
    with pytest.raises(UserError, match=r"holds 126 of the 1258 images the generator trained on \(digits:train\)"):
        sources.memorization_filter(partial, meta)
    with pytest.raises(UserError, match="pass --train_data"):
        sources.memorization_filter(GeneratorSpec("g", max_memorization=0.1), {})


def test_generate_ahead_yields_each_shards_batches_in_order_and_stops_when_closed():
    """Batches are generated on a background thread ahead of the writer, across shard boundaries; each
    batch is cut to its shard, the producer always sees whole batches, and closing stops the generation."""
    calls = []

    def produce(indices):
        calls.append(int(indices[0]))
        assert indices.shape == (4,)
        return [indices * 10, indices]

    work = [(0, 6), (100, 3), (200, 8)]  # shards of 6, 3 and 8 images, batch 4
    got = list(shard_job.generate_ahead(produce, 4, work, depth=2))
    assert [b[1].tolist() for b in got] == [
        [0, 1, 2, 3],
        [4, 5],
        [100, 101, 102],
        [200, 201, 202, 203],
        [204, 205, 206, 207],
    ]
    assert got[0][0].tolist() == [0, 10, 20, 30]
    calls.clear()
    batches = shard_job.generate_ahead(produce, 4, [(0, 400)], depth=2)
    next(batches)
    batches.close()
    assert len(calls) <= 3  # the one taken, the ones queued ahead, nothing after close
