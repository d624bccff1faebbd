"""How images are stored in shard records: PNG (default), JPEG or raw uint8 bytes.

    python - <<'PY'
    import numpy as np
    from trainer import image_codec
    print(len(image_codec.encode(np.zeros((2, 32, 32, 3), np.uint8), 'png')[0]))
    PY

`encode` turns a batch of uint8 images into one bytes object per image, off
TensorFlow's threads: PNG is built here from numpy (every row uses PNG's
'Up' filter, then zlib, which releases the GIL), JPEG uses Pillow, raw is the
pixels as they are (height x width x channels, row-major). Both encoders run
on a small thread pool, so encoding overlaps generation on other cores.
`decode` is the reader's side, in TensorFlow, for any of the three.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import struct
import zlib
from typing import Optional

import numpy as np

MAX_IMAGE_PIXELS = 50_000_000  # 50 megapixels (e.g. 8660 x 5773): larger headers are refused before decoding
FORMATS = ("png", "jpeg", "raw")  # --image_format of `dcgan sample` and `dcgan augment`
PNG_COMPRESSION = 1  # zlib level 0..9 (the default: fast)
JPEG_QUALITY = 95  # 1..100

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> grey, grey+alpha, RGB, RGBA
_POOL = concurrent.futures.ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="encode")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(pixels: np.ndarray, compression: int) -> list[bytes]:
    """uint8 [B, H, W, C] -> PNG files (8 bits, no interlace, 'Up' filter on every row)."""
    count, height, width, channels = pixels.shape
    header = _PNG_SIGNATURE + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPE[channels], 0, 0, 0)
    )
    tail = _png_chunk(b"IEND", b"")
    rows = np.empty((count, height, 1 + width * channels), np.uint8)
    rows[:, :, 0] = 2  # filter type Up: each byte minus the byte above (mod 256)
    flat = pixels.reshape(count, height, width * channels)
    rows[:, 0, 1:] = flat[:, 0]
    np.subtract(flat[:, 1:], flat[:, :-1], out=rows[:, 1:, 1:])
    return [header + _png_chunk(b"IDAT", zlib.compress(row.tobytes(), compression)) + tail for row in rows]


def _jpeg(pixels: np.ndarray, quality: int) -> list[bytes]:
    from PIL import Image

    out = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


def encode(
    pixels: np.ndarray,
    image_format: str = "png",
    png_compression: int = PNG_COMPRESSION,
    jpeg_quality: int = JPEG_QUALITY,
) -> list[bytes]:
    """uint8 [B, H, W, C] -> B encoded images, split over the encoder threads."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if image_format == "raw":
        return [image.tobytes() for image in pixels]
    if image_format == "png":
        work, arg = _png, png_compression
    elif image_format == "jpeg":
        if pixels.shape[-1] not in (1, 3):
            raise ValueError(f"JPEG holds 1 or 3 channels, not {pixels.shape[-1]}")
        work, arg = _jpeg, jpeg_quality
    else:
        raise ValueError(f"image format {image_format!r}: expected one of {FORMATS}")
    parts = max(1, min(_POOL._max_workers, len(pixels) // 32))
    if parts == 1:
        return work(pixels, arg)
    return [blob for chunk in _POOL.map(lambda p: work(p, arg), np.array_split(pixels, parts)) for blob in chunk]


def decode(encoded, image_format, height, width, stored_channels, channels: int):
    """TF: one record's image bytes -> uint8 [H, W, channels], whatever the format.

    `image_format`, `height`, `width`, `stored_channels` are the record's own
    fields (tensors); `channels` is what the reader wants (1 or 3, or 0 as stored)."""
    import tensorflow as tf

    def raw():
        image = tf.reshape(tf.io.decode_raw(encoded, tf.uint8), tf.stack([height, width, stored_channels]))
        if channels == 3:
            return tf.cond(
                tf.equal(stored_channels, 1), lambda: tf.image.grayscale_to_rgb(image), lambda: image[..., :3]
            )
        if channels == 1:
            return tf.cond(
                tf.equal(stored_channels, 1),
                lambda: image,
                lambda: tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image[..., :3], tf.float32))), tf.uint8),
            )
        return image

    image = tf.cond(
        tf.equal(image_format, b"raw"),
        raw,
        lambda: tf.io.decode_image(encoded, channels=channels, expand_animations=False),
    )
    return tf.ensure_shape(image, [None, None, channels or None])


# -- image headers: the declared size, read without decoding (against decompression bombs)


def declared_size(path: str) -> Optional[tuple[int, int]]:
    """(width, height) from a PNG, GIF, BMP or JPEG header, without decoding; None if not recognised."""
    try:
        with open(path, "rb") as f:
            return _declared_size(f)
    except OSError:
        return None


def declared_size_of(encoded: bytes) -> Optional[tuple[int, int]]:
    """declared_size of encoded image bytes (a shard record's image/encoded)."""
    return _declared_size(io.BytesIO(encoded))


def _declared_size(f) -> Optional[tuple[int, int]]:
    head = f.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:2] == b"BM" and len(head) >= 26:
        return abs(int.from_bytes(head[18:22], "little", signed=True)), abs(
            int.from_bytes(head[22:26], "little", signed=True)
        )
    if head[:2] == b"\xff\xd8":  # JPEG: walk the segments to the first start-of-frame
        f.seek(2)
        for _ in range(1000):
            marker = f.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                return None
            if 0xC0 <= marker[1] <= 0xCF and marker[1] not in (0xC4, 0xC8, 0xCC):
                frame = f.read(7)
                return int.from_bytes(frame[5:7], "big"), int.from_bytes(frame[3:5], "big")
            length = int.from_bytes(f.read(2), "big")
            if length < 2:
                return None
            f.seek(length - 2, os.SEEK_CUR)
    return None
