"""Record image encodings (trainer/image_codec.py): PNG built from numpy, JPEG, raw; the reader's decode."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from trainer import image_codec


def images(channels, count=70, size=(32, 24)):
    rng = np.random.default_rng(channels)
    smooth = np.linspace(0, 255, size[0] * size[1] * channels).reshape(size[0], size[1], channels)
    noisy = rng.integers(0, 256, (count, *size, channels))
    return np.where(rng.random((count, 1, 1, 1)) < 0.5, smooth, noisy).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png_is_lossless_for_pillow_and_tensorflow(channels):
    pixels = images(channels)
    blobs = image_codec.encode(pixels, "png", png_compression=6)  # > 32 images: the threaded path
    assert len(blobs) == len(pixels)
    for blob, expected in zip(blobs, pixels):
        assert blob.startswith(b"\x89PNG\r\n\x1a\n")
        decoded = np.asarray(Image.open(io.BytesIO(blob)))
        assert (decoded.reshape(expected.shape) == expected).all()
        assert (tf.io.decode_png(blob).numpy() == expected).all()


def test_png_compression_level_trades_size():
    pixels = images(3)
    fast, small = (
        image_codec.encode(pixels, "png", png_compression=0),
        image_codec.encode(pixels, "png", png_compression=9),
    )
    assert sum(map(len, small)) < sum(map(len, fast))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "raw"])
@pytest.mark.parametrize("stored,wanted", [(1, 0), (1, 1), (1, 3), (3, 0), (3, 3), (3, 1)])
def test_decode_gives_the_channels_asked_for(fmt, stored, wanted):
    pixels = images(stored, count=3)
    blob = image_codec.encode(pixels, fmt)[1]
    out = image_codec.decode(
        tf.constant(blob),
        tf.constant(fmt.encode()),
        tf.constant(32, tf.int64),
        tf.constant(24, tf.int64),
        tf.constant(stored, tf.int64),
        wanted,
    ).numpy()
    assert out.shape == (32, 24, wanted or stored) and out.dtype == np.uint8
    reference = tf.io.decode_png(image_codec.encode(pixels, "png")[1], channels=wanted).numpy()
    if fmt != "jpeg":
        assert np.abs(out.astype(int) - reference).max() <= (1 if stored == 3 and wanted == 1 else 0)


def test_jpeg_is_close_and_refuses_alpha():
    pixels = images(3, count=4)
    pixels[:] = np.linspace(0, 255, 32 * 24 * 3).reshape(32, 24, 3).astype(np.uint8)  # smooth: JPEG's case
    blob = image_codec.encode(pixels, "jpeg", jpeg_quality=95)[0]
    assert np.abs(tf.io.decode_jpeg(blob).numpy().astype(int) - pixels[0]).mean() < 3
    with pytest.raises(ValueError, match="1 or 3 channels"):
        image_codec.encode(images(4, count=2), "jpeg")
    with pytest.raises(ValueError, match="expected one of"):
        image_codec.encode(pixels, "webp")
