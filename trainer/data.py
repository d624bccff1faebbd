"""Training data: find it, decode it, describe it (trainer/input_pipeline.py feeds it to the step).

Sources (`--dataset=`):
  digits             scikit-learn's bundled 8x8 digits (1797 images, 10 labels), upscaled.
  PATH/              a folder of PNG/JPEG/BMP/GIF images, searched recursively. Class
                     sub-folders give labels like `keras.utils.image_dataset_from_directory`.
  FILE.npz           arrays `x` (N,H,W[,C]; uint8 0..255 or float 0..1) and optional `y`.
  SHARDS             TFRecord shards written by `dcgan sample`/`dcgan augment` (a folder
                     with manifest.json, a folder of *.tfrecord-*, or a glob; a gs:// output
                     with a manifest is streamed, trainer/shards/stream.py).

Splits of an in-memory source, TFDS-style: `NAME:train` and `NAME:test` are a
fixed, seeded, class-stratified 70/30 split; a slice takes a stratified part:
`digits:train[:10%]`, `digits:train[100:200]`, `photos/:test`. The same
spelling always means the same images, so a generator trained on
`digits:train[:10%]` can be evaluated against `digits:test`.

Images, folders and .npz are decoded once into memory (uint8 at the training
resolution); shards are read as a stream (they may be larger than memory).
Class names come with the data (folder names, 0-9 for digits, a .npz's
`class_names`, a manifest's).

Unreadable image files: with `--on_corrupt=skip` (default) they are skipped,
counted and listed in one warning line; with `--on_corrupt=fail` the first one
stops the job. A folder with nothing readable is always an error. An image
whose header declares more than MAX_IMAGE_PIXELS pixels (a decompression bomb,
or a photo far larger than any training resolution needs) counts as
unreadable: it is refused from its header, before any decoding. File names
need not be UTF-8.

Shards (local, staged from gs:// or streamed) are input from outside too, and
are read by Python before TensorFlow sees a byte (shards.LocalShards,
shards.stream.ShardStream). A shard that is missing, not the size or sha256 its
manifest entry records, or whose framing is broken (a record declaring more
bytes than the file holds) always stops the job with one line naming it
(exit 2): the output is not what was written. A record that cannot be read
(not an Example, an image header over MAX_IMAGE_PIXELS, raw bytes not of the
manifest's shape, a label outside its classes) follows `--on_corrupt`: skipped,
counted and reported, or the job stops naming its shard and index. A pass
over the shards that yields no readable record stops the job.

About 560 lines, most of them each source checking its own hostile input, in one place.

    python -c "from trainer import data; s = data.load_source('digits', 32, 0); print(s.describe())"
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys
from typing import Optional

import numpy as np
import tensorflow as tf

from trainer import tf_pipelines
from trainer.config import SPLIT_PATTERN
from trainer.errors import DataError
from trainer.image_codec import MAX_IMAGE_PIXELS, declared_size

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def shown(path: str) -> str:
    """A file name as printable text, whatever bytes it holds (non-UTF-8 names come back escaped)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclasses.dataclass
class TrainingData:
    """A dataset resolved to either in-memory arrays or a list of shard files."""

    name: str
    channels: int
    resolution: int
    num_classes: int  # 0 when unlabelled
    images: Optional[np.ndarray] = None  # uint8 [N, res, res, C] (in-memory sources)
    labels: Optional[np.ndarray] = None  # int32 [N] or None
    shard_files: tuple[str, ...] = ()  # streamed sources
    num_examples: Optional[int] = None
    skipped: tuple[str, ...] = ()  # unreadable files that were left out
    class_names: tuple[str, ...] = ()  # one per class when the dataset names them, else ()
    stream: Optional[object] = None  # shards' reader: a shards.LocalShards, or a shard_stream.ShardStream (gs://)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def describe(self) -> str:
        n = self.num_examples if self.num_examples is not None else "?"
        kind = "in memory" if self.in_memory else f"{len(self.shard_files)} shard files"
        classes = f"{self.num_classes} classes" if self.num_classes else "unlabelled"
        if self.class_names:
            shown_names = ", ".join(self.class_names[:8]) + (", ..." if len(self.class_names) > 8 else "")
            classes += f" ({shown_names})"
        return f"dataset {self.name}: {n} images {self.resolution}x{self.resolution}x{self.channels}, {classes}, {kind}"


# ----------------------------------------------------------------------------
# Image ops (graph-safe: used eagerly and inside tf.data.map)


def resize_and_center_crop(image: tf.Tensor, resolution: int) -> tf.Tensor:
    """Scales the shorter side to `resolution`, then crops the centre square.

    Takes and returns float32 HWC in [0, 1]; antialiased when shrinking.
    """
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = resolution / tf.minimum(h, w)
    new_h = tf.maximum(resolution, tf.cast(tf.round(h * scale), tf.int32))
    new_w = tf.maximum(resolution, tf.cast(tf.round(w * scale), tf.int32))
    image = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
    top = (new_h - resolution) // 2
    left = (new_w - resolution) // 2
    image = image[top : top + resolution, left : left + resolution, :]
    return tf.ensure_shape(image, [resolution, resolution, None])


def decode_image(contents: tf.Tensor, channels: int, resolution: int) -> tf.Tensor:
    """Encoded PNG/JPEG/BMP/GIF bytes -> uint8 [res, res, channels].

    Handles grayscale, RGB, RGBA (alpha dropped), palette and 16-bit files; a GIF
    gives its first frame. Raises InvalidArgumentError on corrupt bytes.
    """
    # Decode with the file's own channels (BMP and GIF refuse channels=1), then convert.
    image = tf.io.decode_image(contents, channels=0, dtype=tf.float32, expand_animations=False)
    stored = tf.shape(image)[-1]
    image = tf.cond(stored >= 3, lambda: image[..., :3], lambda: image[..., :1])  # drop alpha
    if channels == 3:
        image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.tile(image, [1, 1, 3]), lambda: image)
    else:
        image = tf.cond(tf.shape(image)[-1] == 3, lambda: tf.image.rgb_to_grayscale(image), lambda: image)
    image = tf.ensure_shape(image, [None, None, channels])
    image = resize_and_center_crop(image, resolution)
    image = tf.clip_by_value(tf.round(image * 255.0), 0.0, 255.0)
    return tf.ensure_shape(tf.cast(image, tf.uint8), [resolution, resolution, channels])


def to_model_range(images: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the generator's tanh range."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_pixels(images: tf.Tensor) -> tf.Tensor:
    """The generator's [-1, 1] (any float dtype) -> float32 pixel values in [0, 255], not rounded."""
    return (tf.cast(images, tf.float32) + 1.0) * 127.5


def to_uint8(images) -> np.ndarray:
    """The generator's [-1, 1] (array or tensor) -> uint8 pixels, rounded and clipped."""
    return pixels_to_uint8((np.asarray(images, np.float32) + 1.0) * 127.5)


def pixels_to_uint8(pixels) -> np.ndarray:
    """float pixel values in [0, 255] -> uint8, rounded and clipped."""
    return np.clip(np.round(np.asarray(pixels, np.float32)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------
# Sources


TEST_FRACTION = 0.3
SPLIT_SEED = 20240611  # fixed forever: a split's name must keep meaning the same images


def split_indices(labels: Optional[np.ndarray], n: int, split: str) -> np.ndarray:
    """A fixed, class-stratified train/test split, ordered so that any prefix is stratified too."""
    labels = np.zeros(n, np.int32) if labels is None else labels
    rng = np.random.default_rng(SPLIT_SEED)
    chosen, keys = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(members) * TEST_FRACTION))
        part = members[:n_test] if split == "test" else members[n_test:]
        chosen.append(part)
        keys.append((np.arange(len(part)) + 0.5) / max(len(part), 1))  # interleave classes proportionally
    chosen, keys = np.concatenate(chosen), np.concatenate(keys)
    return chosen[np.lexsort((chosen, keys))]


def _slice_bound(text: str, n: int, default: int) -> int:
    text = text.strip()
    if not text:
        return default
    if text.endswith("%"):
        return int(round(float(text[:-1]) / 100.0 * n))
    value = int(text)
    return value if value >= 0 else n + value


def load_source(
    dataset: str,
    resolution: int,
    channels: int = 0,
    *,
    folder_labels: str = "inferred",
    on_corrupt: str = "skip",
    staging: str = "copy",
    stream_buffer_bytes: int = 512 << 20,
) -> TrainingData:
    """Resolves `--dataset` to a TrainingData, decoding in-memory sources now.

    A gs:// shard output with a manifest is streamed when `staging="stream"`
    (see trainer/shards/stream.py); other gs:// datasets are mirrored into the local cache."""
    match = SPLIT_PATTERN.match(dataset)
    if match:
        source = load_source(
            match["base"], resolution, channels, folder_labels=folder_labels, on_corrupt=on_corrupt, staging="copy"
        )
        if not source.in_memory:
            raise DataError(f"--dataset={dataset}: splits apply to images, folders and .npz files, not to shards")
        return _sliced(source, dataset, match)
    if dataset == "digits":
        return _digits(resolution, channels or 1)
    from trainer import storage  # gs:// datasets are staged to a local cache, or shard outputs streamed

    if storage.is_remote(dataset) and staging == "stream":
        from trainer.shards import stream as shard_stream

        stream = shard_stream.open_output(dataset, stream_buffer_bytes)
        if stream is not None:
            stream.check.on_corrupt = on_corrupt
            return _streamed_shards(stream, dataset, resolution, channels)
    return _local(storage.stage_dataset(dataset), dataset, resolution, channels, folder_labels, on_corrupt)


def _sliced(source: TrainingData, dataset: str, match) -> TrainingData:
    """NAME:split[lo:hi] of an in-memory source, in the split's fixed order."""
    order = split_indices(source.labels, len(source.images), match["split"])
    try:
        lo = _slice_bound(match["lo"] or "", len(order), 0)
        hi = _slice_bound(match["hi"] or "", len(order), len(order))
    except ValueError:
        raise DataError(
            f"--dataset={dataset}: a slice is [start:end] with integers or percentages, e.g. digits:train[:10%]"
        ) from None
    picked = order[max(lo, 0) : min(hi, len(order))]
    if len(picked) == 0:
        raise DataError(f"--dataset={dataset}: the slice selects no images")
    return dataclasses.replace(
        source,
        name=dataset,
        images=source.images[picked],
        labels=None if source.labels is None else source.labels[picked],
        num_examples=len(picked),
    )


def _local(
    local: str, dataset: str, resolution: int, channels: int, folder_labels: str, on_corrupt: str
) -> TrainingData:
    """A dataset on local disk (or staged there): shards, a folder of images or a .npz file."""
    if _looks_like_shards(local):
        return _shards(local, dataset, resolution, channels, on_corrupt)
    if os.path.isdir(local):
        return _folder(local, dataset, resolution, channels or 3, folder_labels, on_corrupt)
    if local.endswith(".npz"):
        if not os.path.isfile(local):
            raise DataError(f"--dataset={dataset}: no such file")
        return _npz(local, dataset, resolution, channels)
    if not os.path.exists(local):
        raise DataError(
            f"--dataset={dataset}: no such file or folder "
            "(expected 'digits', a folder of images, a .npz file or TFRecord shards)"
        )
    raise DataError(f"--dataset={dataset}: not a folder, .npz file or TFRecord shard set")


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: [1797, 8, 8] pixels in 0..16 and their labels.

    Read straight from the data file scikit-learn installs (the file `load_digits` parses), found
    without importing scikit-learn, whose import costs a short job most of a second; `load_digits`
    itself where that file is missing or not what it should be."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")
        try:
            table = np.loadtxt(path, delimiter=",")
        except (OSError, ValueError):
            table = None
        if table is not None and table.shape == (1797, 65) and table.min() >= 0 and table[:, :64].max() <= 16:
            return table[:, :64].reshape(-1, 8, 8), table[:, 64].astype(np.int32)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target.astype(np.int32)


def _digits(resolution: int, channels: int) -> TrainingData:
    pixels, labels = digits_arrays()
    small = (pixels / 16.0).astype(np.float32)[..., None]  # [1797, 8, 8, 1] in [0, 1]
    big = tf.image.resize(small, [resolution, resolution], method="bilinear").numpy()
    images = np.clip(np.round(big * 255.0), 0, 255).astype(np.uint8)
    if channels == 3:
        images = np.repeat(images, 3, axis=-1)
    return TrainingData(
        "digits",
        channels,
        resolution,
        10,
        images=images,
        labels=labels,
        num_examples=len(images),
        class_names=tuple(str(d) for d in range(10)),
    )


def _npz(path: str, name: str, resolution: int, channels: int) -> TrainingData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "x" not in archive:
                raise DataError(f"--dataset={name}: the .npz has no array 'x' (found {sorted(archive.files)})")
            x = archive["x"]
            y = archive["y"] if "y" in archive else None
            names = archive["class_names"] if "class_names" in archive else None
    except (OSError, ValueError) as err:
        raise DataError(f"--dataset={name}: cannot read .npz ({err})") from None
    x01 = _npz_pixels(x, name)
    stored = x01.shape[-1]
    channels = channels or stored
    if channels == 1 and stored == 3:
        x01 = tf.image.rgb_to_grayscale(x01).numpy()
    elif channels == 3 and stored == 1:
        x01 = np.repeat(x01, 3, axis=-1)
    images = _batched_resize(x01, resolution)
    labels, num_classes, class_names = _npz_labels(y, names, len(x01), name)
    return TrainingData(
        name,
        channels,
        resolution,
        num_classes,
        images=images,
        labels=labels,
        num_examples=len(images),
        class_names=class_names,
    )


def _npz_pixels(x: np.ndarray, name: str) -> np.ndarray:
    """'x' as float32 in [0, 1], N x H x W x 1|3 (alpha dropped), or one line saying what is wrong with it."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4) or len(x) == 0:
        raise DataError(f"--dataset={name}: 'x' must be N x H x W [x 1|3|4] with N >= 1, got shape {x.shape}")
    if x.dtype == np.uint8:
        x01 = x.astype(np.float32) / 255.0
    elif np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            raise DataError(f"--dataset={name}: float 'x' holds {int((~finite).sum())} NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise DataError(f"--dataset={name}: float 'x' must lie in [0, 1], got [{lo}, {hi}]")
        x01 = x.astype(np.float32)
    else:
        raise DataError(f"--dataset={name}: 'x' must be uint8 or float, got {x.dtype}")
    return x01[..., :3] if x01.shape[-1] == 4 else x01


def _npz_labels(y, names, count: int, name: str) -> tuple[Optional[np.ndarray], int, tuple]:
    """(labels, number of classes, class names) from the optional 'y' and 'class_names' arrays."""
    labels, num_classes = None, 0
    if y is not None:
        y = np.asarray(y).reshape(-1)
        if len(y) != count or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise DataError(f"--dataset={name}: 'y' must hold {count} non-negative integer labels")
        labels, num_classes = y.astype(np.int32), int(y.max()) + 1
    class_names = ()
    if names is not None:
        if labels is None or names.ndim != 1 or names.dtype.kind != "U" or len(names) < num_classes:
            raise DataError(
                f"--dataset={name}: 'class_names' must be a 1-D string array with a name for each of "
                f"the {num_classes} labels in 'y'"
            )
        class_names = tuple(class_name(str(n)) for n in names)
        num_classes = len(class_names)
    return labels, num_classes, class_names


def _batched_resize(x01: np.ndarray, resolution: int) -> np.ndarray:
    out = []
    for start in range(0, len(x01), 512):
        chunk = tf.convert_to_tensor(x01[start : start + 512])
        chunk = (
            tf.map_fn(lambda im: resize_and_center_crop(im, resolution), chunk)
            if chunk.shape[1:3] != (resolution, resolution)
            else chunk
        )
        out.append(np.clip(np.round(chunk.numpy() * 255.0), 0, 255).astype(np.uint8))
    return np.concatenate(out)


def class_name(name: str) -> str:
    """A class name safe to print and to store one per line: bytes that are not UTF-8 and control
    characters are shown escaped (a folder name is anyone's bytes), and it is cut at 100 characters."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text).strip()
    return text[:100] or "?"


def list_folder(root: str, folder_labels: str) -> tuple[list[str], Optional[list[int]], list[str]]:
    """Image files under `root` with labels inferred from class sub-folders.

    Returns (files, labels or None, class_names). Top-level images beside class
    folders are ambiguous and refused (pass --folder_labels=none to mix them).
    """

    def images_under(folder: str) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames.sort()
            found += [
                os.path.join(dirpath, f)
                for f in sorted(filenames)
                if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
            ]
        return found

    if folder_labels == "none":
        return images_under(root), None, []
    entries = sorted(os.listdir(root))
    top_files = [
        os.path.join(root, e)
        for e in entries
        if e.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(root, e)) and not e.startswith(".")
    ]
    class_dirs = [e for e in entries if os.path.isdir(os.path.join(root, e)) and not e.startswith(".")]
    per_class = [(c, images_under(os.path.join(root, c))) for c in class_dirs]
    per_class = [(c, files) for c, files in per_class if files]
    if top_files and per_class:
        raise DataError(
            f"--dataset={root} mixes {len(top_files)} images at its top level with class folders "
            f"{[c for c, _ in per_class][:5]}; move them into a class folder, or pass --folder_labels=none"
        )
    if not per_class:
        return top_files, None, []
    files, labels = [], []
    for index, (_, class_files) in enumerate(per_class):
        files += class_files
        labels += [index] * len(class_files)
    return files, labels, [c for c, _ in per_class]


def _folder(root: str, name: str, resolution: int, channels: int, folder_labels: str, on_corrupt: str) -> TrainingData:
    files, labels, class_names = list_folder(root, folder_labels)
    if not files:
        raise DataError(
            f"--dataset={name}: no images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}) found in the folder"
        )
    too_big = _over_pixel_limit(files, name, on_corrupt)

    def load(path, index):
        return index, decode_image(tf.io.read_file(path), channels, resolution)

    readable = [i for i in range(len(files)) if i not in too_big]
    paths = tf.data.Dataset.from_tensor_slices(
        ([os.fsencode(files[i]) for i in readable], tf.constant(readable, tf.int64))
    )
    decoded = tf_pipelines.untuned(paths.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    if on_corrupt == "skip":
        decoded = decoded.ignore_errors()
    indices, images = [], []
    try:
        for index, image in decoded.batch(256):
            indices.append(index.numpy())
            images.append(image.numpy())
    except tf.errors.InvalidArgumentError:
        bad = _first_unreadable(files, channels, resolution)
        raise DataError(
            f"--dataset={name}: unreadable image {shown(bad)} (pass --on_corrupt=skip to leave such files out)"
        ) from None
    kept = np.concatenate(indices) if indices else np.zeros([0], np.int64)
    kept_set = set(kept.tolist())
    skipped = tuple(f for i, f in enumerate(files) if i not in kept_set)
    if len(kept) == 0:
        raise DataError(f"--dataset={name}: none of its {len(files)} image files could be decoded")
    if skipped:
        names = ", ".join(shown(os.path.relpath(s, root)) for s in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        print(f"warning: skipped {len(skipped)} unreadable of {len(files)} image files: {names}", file=sys.stderr)
    label_array = np.asarray(labels, np.int32)[kept] if labels is not None else None
    return TrainingData(
        name,
        channels,
        resolution,
        len(class_names),
        images=np.concatenate(images),
        labels=label_array,
        num_examples=len(kept),
        skipped=skipped,
        class_names=tuple(class_name(c) for c in class_names),
    )


def _over_pixel_limit(files: list[str], name: str, on_corrupt: str) -> set[int]:
    """Indices of the files whose header declares more than MAX_IMAGE_PIXELS (read before decoding any);
    a DataError naming the first unless on_corrupt='skip'."""
    too_big = set()
    for i, path in enumerate(files):
        size = declared_size(path)
        if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
            if on_corrupt != "skip":
                raise DataError(
                    f"--dataset={name}: {shown(path)} declares {size[0]}x{size[1]} pixels, over the "
                    f"{MAX_IMAGE_PIXELS:,} limit (pass --on_corrupt=skip to leave such files out)"
                )
            too_big.add(i)
    return too_big


def _first_unreadable(files: list[str], channels: int, resolution: int) -> str:
    for f in files:
        try:
            decode_image(tf.io.read_file(os.fsencode(f)), channels, resolution)
        except tf.errors.InvalidArgumentError:
            return f
    return "?"


def _looks_like_shards(path: str) -> bool:
    if os.path.isdir(path):
        return os.path.exists(os.path.join(path, "manifest.json")) or bool(glob.glob(os.path.join(path, "*.tfrecord*")))
    return ".tfrecord" in os.path.basename(path) or any(c in path for c in "*?[")


def _shards(local: str, name: str, resolution: int, channels: int, on_corrupt: str) -> TrainingData:
    from trainer import shards

    files, manifest, entries = shards.shard_entries(local, require_manifest=False)
    if not files:
        raise DataError(f"--dataset={name}: no TFRecord shards found")
    stored_channels = shards.peek_channels(files[0])  # read by Python: its length checked against the file
    count = manifest["num_images"] if manifest else None
    if manifest and manifest.get("num_classes") is not None:
        num_classes = int(manifest["num_classes"])
    else:  # no manifest: read every record's label rather than guess the classes from the first one
        count, num_classes = shards.scan_labels(files)
        print(f"dataset {name}: no manifest.json; read {count} labels: {num_classes} classes", file=sys.stderr)
    names = manifest.get("class_names") if manifest else None
    class_names = (
        tuple(class_name(str(n)) for n in names) if isinstance(names, list) and len(names) == num_classes else ()
    )
    return TrainingData(
        name,
        channels or stored_channels,
        resolution,
        num_classes,
        shard_files=tuple(files),
        num_examples=count,
        class_names=class_names,
        stream=shards.LocalShards(files, entries, manifest, shards.RecordCheck(manifest, on_corrupt)),
    )


def _streamed_shards(stream, name: str, resolution: int, channels: int) -> TrainingData:
    manifest = stream.manifest
    try:
        num_classes, stored_channels = int(manifest["num_classes"]), int(manifest["channels"])
        count = int(manifest["num_images"])
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"--dataset={name}: its manifest.json lacks {err}") from None
    names = manifest.get("class_names")
    class_names = (
        tuple(class_name(str(n)) for n in names) if isinstance(names, list) and len(names) == num_classes else ()
    )
    print(
        f"dataset {name}: streamed, {len(stream)} shards, at most {stream.buffer_bytes / 2**20:.0f} MiB "
        "of them on local disk at once"
    )
    return TrainingData(
        name,
        channels or stored_channels,
        resolution,
        num_classes,
        shard_files=tuple(stream.urls),
        num_examples=count,
        class_names=class_names,
        stream=stream,
    )
