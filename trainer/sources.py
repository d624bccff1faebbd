"""Where a shard job's images come from: a trained generator, or a real dataset to augment.

A source turns global image indices into pixels, labels and per-image seeds,
as a pure function of the indices (so shard i is the same whichever task
writes it, however often):

    python -c "from trainer import sources; help(sources.generator_source)"
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import sys

import numpy as np
import tensorflow as tf

from trainer import classic_augment, data, export, models, shards
from trainer.errors import UserError
from trainer.specs import DatasetSpec, GeneratorSpec


@dataclasses.dataclass
class ImageSource:
    """What a shard job draws images from: a generator or a real dataset."""

    kind: str  # 'synthetic' or 'augmented'
    resolution: int
    channels: int
    num_classes: int
    identity: dict  # goes into the plan
    make_batch: object  # (global indices int64 [B]) -> (float pixels 0..255 [B,H,W,C], labels int64 [B], seeds [B])
    generator_step: int = -1
    keep: object = None  # optional (float pixels [B,H,W,C]) -> bool [B]: the memorization filter
    scores: object = None  # optional (float pixels [B,H,W,C]) -> float [B, classes]: a teacher's probabilities
    class_names: tuple[str, ...] = ()  # a name per class, when known


def latents(seed: int, sample: tf.Tensor, latent_dim: int, psi: float = 0.0) -> tf.Tensor:
    """z for each sample index, a pure function of (seed, index), vectorised.

    Standard normals by Box-Muller from counter-based uniforms. With truncation
    psi > 0, components with |z| > psi are redrawn (up to 16 times, then
    clipped): the truncation trick by resampling.
    """
    tries = 17 if psi else 1
    seeds = tf.stack([tf.fill(tf.shape(sample), tf.constant(seed, tf.int64)), tf.cast(sample, tf.int64)], axis=-1)
    u = tf.reshape(classic_augment.uniforms(seeds, 2 * tries * latent_dim), [-1, tries, 2, latent_dim])
    # Box-Muller; log1p(-u) never sees log(0) since u < 1. Try 0 is the same with or without truncation.
    draws = tf.sqrt(-2.0 * tf.math.log1p(-u[:, :, 0])) * tf.cos(2.0 * math.pi * u[:, :, 1])
    if not psi:
        return draws[:, 0]
    ok = tf.cast(tf.abs(draws) <= psi, tf.int32)
    first_ok = tf.argmax(ok, axis=1)  # the first acceptable draw of each component
    chosen = tf.gather(tf.transpose(draws, [0, 2, 1]), first_ok[..., None], batch_dims=2)[..., 0]
    return tf.clip_by_value(chosen, -psi, psi)


def generator_source(spec: GeneratorSpec) -> ImageSource:
    model_path = export.resolve_path(spec.generator)  # a gs:// generator is downloaded once, here
    model, meta = export.load(model_path)
    model = export.with_precision(model, spec.mixed_precision)
    num_classes = int(meta["num_classes"])
    latent = int(meta["latent_dim"])
    copies, psi, seed = spec.copies_per_sample, spec.truncation, spec.seed
    names = meta.get("class_names")
    class_names = (
        tuple(data.class_name(str(n)) for n in names) if isinstance(names, list) and len(names) == num_classes else ()
    )
    labels_of, shortfall = label_sampler(spec, meta, num_classes, class_names)

    @tf.function(autograph=False)
    def make_batch(indices):
        sample = indices // copies  # k copies of a sample share its z and label
        z, labels = latents(seed, sample, latent, psi), labels_of(sample)
        images = model(models.model_inputs(z, tf.cast(labels, tf.int32), num_classes), training=False)
        return data.to_pixels(images), labels, sample

    identity = {
        "generator_sha256": shards.file_sha256(model_path),
        "generator_step": int(meta["step"]),
        "generator_train_data": str(meta.get("dataset", "")),  # dcgan evaluate checks overlap with it
        "labels": spec.labels,
        "truncation": psi,
        "copies_per_sample": copies,
    }
    if shortfall is not None:
        identity["fill_counts"] = shortfall  # --num_images=sum(fill_counts) evens the training set out
    if spec.mixed_precision != "off":
        identity["mixed_precision"] = spec.mixed_precision
    keep = None
    if spec.max_memorization > 0:
        keep, identity["memorization"] = memorization_filter(spec, meta)
    scores = None
    if spec.teacher:
        scores, identity["teacher"] = teacher_scores(spec, meta)
    return ImageSource(
        "synthetic",
        int(meta["resolution"]),
        int(meta["channels"]),
        num_classes,
        identity,
        make_batch,
        generator_step=int(meta["step"]),
        keep=keep,
        scores=scores,
        class_names=class_names,
    )


def label_sampler(spec: GeneratorSpec, meta: dict, num_classes: int, class_names: tuple):
    """(labels_of, fill counts or None): labels_of(sample index) -> the class it is drawn for, per --labels:
    balanced (cycling), fill (the training set's shortfall per class), uniform or weighted (seeded draws)."""
    if not num_classes and spec.labels != "balanced":
        raise UserError("--labels applies to a conditional generator; this one has no classes")
    weights = shortfall = None
    if spec.labels == "fill":
        shortfall = fill_counts(meta, num_classes)
    elif spec.labels not in ("balanced", "uniform"):
        weights = class_weights(spec.labels, num_classes, class_names)

    def labels_of(sample: tf.Tensor) -> tf.Tensor:
        if not num_classes:
            return tf.fill(tf.shape(sample), tf.constant(shards.NO_LABEL, tf.int64))
        if spec.labels == "balanced":
            return sample % num_classes
        if shortfall is not None:  # sample i of every sum(shortfall) takes the class its position falls in
            edges = tf.constant(np.cumsum(shortfall), tf.int64)
            return tf.searchsorted(edges, sample % sum(shortfall), side="right")
        u = classic_augment.uniforms(
            tf.stack([tf.fill(tf.shape(sample), tf.constant(spec.seed + 1, tf.int64)), sample], -1), 1
        )[:, 0]
        if weights is None:
            return tf.minimum(tf.cast(u * num_classes, tf.int64), num_classes - 1)
        edges = tf.constant(np.cumsum(weights) / np.sum(weights), tf.float32)
        return tf.minimum(tf.searchsorted(edges, u, side="right"), num_classes - 1)

    return labels_of, shortfall


def fill_counts(meta: dict, num_classes: int) -> list[int]:
    """--labels=fill: how many images each class lacks to match the largest class the generator trained on."""
    counts = meta.get("class_counts")
    if (
        not isinstance(counts, list)
        or len(counts) != num_classes
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**53 for n in counts)
    ):
        raise UserError(
            "--labels=fill needs the class counts of the generator's training images, which its export does not "
            "record (trained from streamed shards or by an older version); give class weights instead"
        )
    shortfall = [max(counts) - n for n in counts]
    if not sum(shortfall):
        raise UserError(f"--labels=fill: the generator's training classes are already even ({counts[0]} images each)")
    return shortfall


def class_weights(text: str, num_classes: int, class_names: tuple[str, ...]) -> list[float]:
    """--labels weights (see config.label_weights) -> one weight per class of this generator."""
    from trainer.config import label_weights

    parsed = label_weights(text)
    if parsed[0][0] is None:
        if len(parsed) != num_classes:
            raise UserError(f"--labels has {len(parsed)} class weights but the generator has {num_classes} classes")
        return [w for _, w in parsed]
    weights = [0.0] * num_classes
    for key, weight in parsed:
        if key in class_names:
            index = class_names.index(key)
        elif key.isascii() and key.isdigit() and int(key) < num_classes:
            index = int(key)
        else:
            known = ", ".join(class_names[:20]) + (", ..." if len(class_names) > 20 else "")
            raise UserError(
                f"--labels: no class {key!r} in this generator (classes: {known or f'0..{num_classes - 1}'})"
            )
        weights[index] = weight
    return weights


def teacher_scores(spec: GeneratorSpec, meta: dict):
    """The teacher's probabilities as a function of float pixels (0..255), and its description for the plan."""
    from trainer import downstream, storage

    num_classes = int(meta["num_classes"])
    if spec.teacher == "auto":
        train_data = spec.train_data or meta.get("dataset", "")
        if not train_data:
            raise UserError("--teacher=auto needs the generator's training images: pass --train_data")
        train = data.load_source(train_data, int(meta["resolution"]), int(meta["channels"]))
        if train.labels is None or not train.in_memory:
            raise UserError(f"--teacher=auto needs labelled images to learn from; {train_data} has no labels")
        if num_classes and train.num_classes != num_classes:  # known now, before the teacher trains
            raise UserError(
                f"--teacher=auto: {train_data} has {train.num_classes} classes but the generator {num_classes}"
            )
        teacher = downstream.cached_teacher(
            train.images,
            train.labels,
            train.num_classes,
            train_data,
            members=spec.teacher_members,
            steps=spec.teacher_steps,
        )
        description = {
            "kind": "auto",
            "train_data": train_data,
            "members": spec.teacher_members,
            "steps": spec.teacher_steps,
            "sha256": teacher.digest,
        }
    else:
        path = storage.fetch_file(spec.teacher, "teachers")
        if not os.path.isfile(path):
            raise UserError(f"--teacher={spec.teacher}: no such file")
        teacher = downstream.Teacher.load([path])
        shape = getattr(teacher.models[0], "input_shape", None)
        drawn = (int(meta["resolution"]), int(meta["resolution"]), int(meta["channels"]))
        if not (isinstance(shape, tuple) and len(shape) == 4 and all(d in (None, w) for d, w in zip(shape[1:], drawn))):
            raise UserError(f"--teacher={spec.teacher}: takes inputs of shape {shape}; the generator draws {drawn}")
        description = {"kind": "file", "path": spec.teacher, "sha256": shards.file_sha256(path)}
    classes = teacher.num_classes
    if num_classes and classes != num_classes:
        raise UserError(f"--teacher has {classes} classes but the generator {num_classes}")
    print(
        f"teacher: {description['kind']}, {len(teacher.models)} classifier(s), {classes} classes"
        + (
            f"; dropping samples it gives under {spec.min_confidence:.0%} for their own label"
            if spec.min_confidence
            else ""
        )
    )
    return teacher.probabilities_tensor, {**description, "min_confidence": spec.min_confidence}


def memorization_filter(spec: GeneratorSpec, meta: dict):
    """A keep-mask function dropping samples too close to a training image (pixel space), and its description."""
    from trainer import metrics

    train_data = spec.train_data or meta.get("dataset", "")
    if not train_data:
        raise UserError("--max_memorization needs the generator's training images: pass --train_data")
    train = data.load_source(train_data, int(meta["resolution"]), int(meta["channels"]))
    if not train.in_memory:
        raise UserError(
            f"--train_data={train_data}: the memorization filter needs images, a folder or .npz (not shards)"
        )
    recorded = meta.get("dataset", "")
    if recorded and recorded != train_data:
        _check_covers_training(train_data, train.images, recorded, int(meta["resolution"]), int(meta["channels"]))
    threshold = metrics.leave_one_out_threshold(train.images, spec.max_memorization)
    flat = tf.constant(train.images.reshape(len(train.images), -1), tf.float32)
    squared = tf.reduce_sum(flat * flat, axis=1)

    def keep(pixels):
        x = tf.reshape(pixels, [tf.shape(pixels)[0], -1])
        d2 = tf.reduce_sum(x * x, 1, keepdims=True) + squared[None, :] - 2.0 * tf.matmul(x, flat, transpose_b=True)
        return tf.sqrt(tf.maximum(tf.reduce_min(d2, axis=1), 0.0)) >= threshold

    print(
        f"memorization filter: dropping samples within {threshold:.1f} (pixel L2) of one of {len(train.images)} "
        f"images of {train_data} ({spec.max_memorization:.2%} quantile of real images' distances)"
    )
    return keep, {"quantile": spec.max_memorization, "train_data": train_data, "threshold": round(threshold, 4)}


def _check_covers_training(
    train_data: str, reference: np.ndarray, recorded: str, resolution: int, channels: int
) -> None:
    """The filter's reference images must include every image the generator trained on (by content)."""
    from trainer import overlap
    from trainer.errors import DataError

    try:
        trained_on = data.load_source(recorded, resolution, channels)
    except DataError:
        print(
            f"memorization filter: the generator's recorded training data {recorded} is not readable here; "
            f"trusting --train_data={train_data} to hold it",
            file=sys.stderr,
        )
        return
    if not trained_on.in_memory:
        return
    covered = overlap.count(trained_on.images, reference)
    if covered < len(trained_on.images):
        raise UserError(
            f"--train_data={train_data} holds {covered} of the {len(trained_on.images)} images the "
            f"generator trained on ({recorded}), so copies of the others would pass the memorization "
            f"filter; pass its training images, or leave --train_data out to use {recorded}"
        )


def dataset_source(spec: DatasetSpec) -> ImageSource:
    source = data.load_source(
        spec.dataset,
        spec.resolution,
        spec.channels,
        folder_labels=spec.folder_labels,
        on_corrupt=spec.on_corrupt,
    )
    images = tf.constant(source.images)
    labels = tf.constant(
        source.labels.astype(np.int64)
        if source.labels is not None
        else np.full([source.num_examples], shards.NO_LABEL, np.int64)
    )
    n = source.num_examples

    @tf.function(autograph=False)
    def make_batch(indices):
        real = indices % n  # every real image is used equally often, each time augmented anew
        return tf.cast(tf.gather(images, real), tf.float32), tf.gather(labels, real), real

    identity = {
        "dataset": spec.dataset,
        "dataset_sha256": hashlib.sha256(source.images.tobytes()).hexdigest(),
        "folder_labels": spec.folder_labels,
    }
    return ImageSource(
        "augmented",
        spec.resolution,
        source.channels,
        source.num_classes,
        identity,
        make_batch,
        class_names=source.class_names,
    )
