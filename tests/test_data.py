"""Data sources, decoding (eagerly and inside tf.data.map) and the input pipeline."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trainer import data
from trainer.errors import DataError


def write_image(path, mode="RGB", size=(40, 30), fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(abs(hash(path)) % 2**32)
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16))
    elif mode == "P":
        img = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).convert("P")
    else:
        bands = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        arr = rng.integers(0, 255, (*size[::-1], bands), dtype=np.uint8)
        img = Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)
    img.save(path, format=fmt)


@pytest.fixture
def class_folder(tmp_path):
    root = tmp_path / "images"
    write_image(str(root / "cat" / "a.png"), "RGBA")
    write_image(str(root / "cat" / "nested" / "b.png"), "P")
    write_image(str(root / "cat" / "c.jpg"), "L", fmt="JPEG")
    write_image(str(root / "dog" / "d.png"), "I;16")
    write_image(str(root / "dog" / "e.bmp"), "RGB", fmt="BMP")
    write_image(str(root / "dog" / "f.gif"), "P", fmt="GIF")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_digits_source_is_upscaled_and_labelled():
    source = data.load_source("digits", 32, 0)
    assert source.images.shape == (1797, 32, 32, 1) and source.images.dtype == np.uint8
    assert source.num_classes == 10 and set(source.labels.tolist()) == set(range(10))
    assert source.images.max() == 255 and source.images.min() == 0
    assert data.load_source("digits", 64, 3).images.shape == (1797, 64, 64, 3)


def test_the_digits_are_scikit_learns_without_importing_it(tmp_path, monkeypatch):
    """Read from scikit-learn's data file, byte for byte what `load_digits` returns; where that file is
    missing or damaged, from `load_digits` itself."""
    import gzip
    import importlib.util
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    reference = load_digits()
    pixels, labels = data.digits_arrays()
    assert np.array_equal(pixels, reference.images) and np.array_equal(labels, reference.target)
    probe = (  # as `dcgan train` imports Keras (trainer/cli.py): no scikit-learn in the job's process
        "import sys; from trainer import cli; cli._import_keras(); from trainer import data, train; "
        "data.digits_arrays(); print(any(m in sys.modules for m in cli.KERAS_EXTRAS))"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"

    fake = tmp_path / "sklearn" / "datasets" / "data"
    fake.mkdir(parents=True)
    fake_spec = importlib.util.spec_from_file_location(
        "sklearn", tmp_path / "sklearn" / "__init__.py", submodule_search_locations=[str(tmp_path / "sklearn")]
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: fake_spec if name == "sklearn" else None)
    for damaged in (None, b"1,2,3\n", b"\x1f\x8b not gzip", gzip.compress(b"99," * 64 + b"1\n" * 1797)):
        if damaged is not None:
            (fake / "digits.csv.gz").write_bytes(damaged)
        pixels, labels = data.digits_arrays()
        assert np.array_equal(pixels, reference.images) and np.array_equal(labels, reference.target)


@pytest.mark.parametrize("channels", [1, 3])
def test_folder_with_classes_decodes_every_mode(class_folder, channels):
    source = data.load_source(str(class_folder), 32, channels)
    assert source.images.shape == (6, 32, 32, channels)
    assert source.num_classes == 2
    assert source.labels.tolist() == [0, 0, 0, 1, 1, 1]  # cat (incl. nested), then dog
    assert source.skipped == ()


def test_folder_labels_none_and_unlabelled_folder(class_folder, tmp_path):
    source = data.load_source(str(class_folder), 32, 3, folder_labels="none")
    assert source.num_classes == 0 and source.labels is None and len(source.images) == 6
    flat = tmp_path / "flat"
    write_image(str(flat / "x.png"))
    write_image(str(flat / "y.png"))
    assert data.load_source(str(flat), 32, 3).num_classes == 0


def test_mixed_mode_folder_is_refused_with_a_way_out(class_folder):
    write_image(str(class_folder / "stray.png"))
    with pytest.raises(DataError, match="mixes 1 images at its top level.*--folder_labels=none"):
        data.load_source(str(class_folder), 32, 3)
    assert len(data.load_source(str(class_folder), 32, 3, folder_labels="none").images) == 7


def test_corrupt_files_are_skipped_and_counted_or_fail(class_folder, capsys):
    (class_folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (class_folder / "dog" / "random.jpg").write_bytes(os.urandom(300))
    source = data.load_source(str(class_folder), 32, 3)
    assert len(source.images) == 6 and len(source.skipped) == 2
    assert "skipped 2 unreadable of 8 image files" in capsys.readouterr().err
    # Labels stay aligned with the images that were kept.
    assert source.labels.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(DataError, match="unreadable image .*broken.png"):
        data.load_source(str(class_folder), 32, 3, on_corrupt="fail")


def test_empty_missing_and_all_corrupt(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        data.load_source(str(tmp_path / "empty"), 32, 3)
    with pytest.raises(DataError, match="no such file or folder"):
        data.load_source(str(tmp_path / "nope"), 32, 3)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="none of its 1 image files could be decoded"):
        data.load_source(str(bad), 32, 3)


def test_npz_source(tmp_path):
    x = np.random.default_rng(0).integers(0, 255, (5, 20, 24, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 1, 0]))
    source = data.load_source(str(tmp_path / "d.npz"), 32, 0)
    assert source.images.shape == (5, 32, 32, 3) and source.num_classes == 3
    np.savez(tmp_path / "f.npz", x=np.random.default_rng(0).random((4, 32, 32)).astype(np.float32))
    source = data.load_source(str(tmp_path / "f.npz"), 32, 1)
    assert source.images.shape == (4, 32, 32, 1) and source.labels is None
    np.savez(tmp_path / "noX.npz", images=x)
    with pytest.raises(DataError, match="no array 'x'"):
        data.load_source(str(tmp_path / "noX.npz"), 32, 0)
    np.savez(tmp_path / "range.npz", x=np.full((2, 8, 8), 3.0, np.float32))
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]"):
        data.load_source(str(tmp_path / "range.npz"), 32, 0)


def test_decode_eagerly_and_inside_dataset_map_agree(class_folder):
    files = sorted(str(p) for p in class_folder.rglob("*.png"))
    eager = [data.decode_image(tf.io.read_file(f), 3, 32).numpy() for f in files]
    mapped = [
        x.numpy()
        for x in tf.data.Dataset.from_tensor_slices(files).map(lambda f: data.decode_image(tf.io.read_file(f), 3, 32))
    ]
    for a, b in zip(eager, mapped):
        assert a.shape == (32, 32, 3) and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)


def test_resize_and_center_crop_keeps_the_centre():
    image = np.zeros((40, 80, 1), np.float32)
    image[:, 20:60] = 1.0  # a centred square band
    out = data.resize_and_center_crop(tf.constant(image), 20).numpy()
    assert out.shape == (20, 20, 1)
    assert out[:, 1:-1].min() > 0.99  # the crop lies inside the band (edges antialiased)
    assert data.resize_and_center_crop(tf.constant(image), 20).numpy()[:, 0].min() > 0.5


def bomb_png(path, width=30000, height=30000):
    """A 100-byte PNG whose header declares width x height pixels (its data is one empty row)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
        )


def test_decompression_bomb_is_refused_from_its_header(class_folder, capsys):
    bomb_png(str(class_folder / "cat" / "bomb.png"))
    assert data.declared_size(str(class_folder / "cat" / "bomb.png")) == (30000, 30000)
    assert data.declared_size(str(class_folder / "cat" / "c.jpg")) == (40, 30)
    assert data.declared_size(str(class_folder / "dog" / "e.bmp")) == (40, 30)
    source = data.load_source(str(class_folder), 32)  # skip: counted like an unreadable file, never decoded
    assert source.images.shape[0] == 6 and any("bomb.png" in s for s in source.skipped)
    assert "skipped 1 unreadable of 7" in capsys.readouterr().err
    with pytest.raises(DataError, match="bomb.png declares 30000x30000 pixels, over the 50,000,000 limit"):
        data.load_source(str(class_folder), 32, on_corrupt="fail")


def test_a_file_name_that_is_not_utf8_is_read(class_folder, capsys):
    name = os.fsdecode(b"caf\xe9-latin1.png")  # a Latin-1 name from an old archive
    write_image(os.path.join(str(class_folder), "cat", name))
    source = data.load_source(str(class_folder), 32)
    assert source.images.shape[0] == 7
    assert data.shown(name) == "caf\\xe9-latin1.png"


def test_npz_with_nan_or_inf_is_refused(tmp_path):
    x = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    for bad in (np.nan, np.inf):
        x[1, 2, 3] = bad
        np.savez(tmp_path / "bad.npz", x=x)
        with pytest.raises(DataError, match="holds 1 NaN or infinite values"):
            data.load_source(str(tmp_path / "bad.npz"), 32)


def test_shards_without_a_manifest_count_classes_from_every_label(tmp_path):
    """Not from the first record: a folder of shards whose first label is 0 still has 10 classes."""
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "aug"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "trainer",
            "augment",
            "--dataset=digits",
            f"--output={out}",
            "--num_images=40",
            "--images_per_shard=20",
            "--progress=false",
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    (out / "manifest.json").unlink()
    source = data.load_source(str(out), 32)
    assert (source.num_classes, source.num_examples) == (10, 40)
