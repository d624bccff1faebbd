"""`dcgan sample` and `dcgan augment`: write sharded TFRecords, many tasks, nothing lost.

    dcgan sample --generator=runs/digits --output=out/synth --num_images=1000000 --images_per_shard=4096
    dcgan sample ... --task_index=3 --num_tasks=16      # or JOB_COMPLETION_INDEX / CLUSTER_SPEC / TF_CONFIG
    dcgan sample --output=out/synth --verify             # re-check a finished output
    dcgan augment --dataset=digits --output=out/aug --num_images=100000

Protocol:
1. plan.json (everything that determines the bytes) is created if absent; an
   existing different plan is refused. Shard i's content is a pure function of
   (plan, i); image g (global index) has its own seeds, so the same plan gives
   byte-identical shards.
2. Task t of T writes a contiguous block of shards (ceil(tN/T) up to ceil((t+1)N/T))
   and lists only that key range to find those already done. Each is written
   to a uuid-named local temp file (OUTPUT/.tmp/, or the staging folder for
   gs://), checked, then
   published in one step that never replaces: a hard link locally; for gs:// a
   single crc32c-checked upload with if_generation_match=0 carrying the record
   count and sha256 as object metadata (a 412 for identical bytes is success).
   A task skips shards already published and whole, and on start removes its
   own stale temp files.
3. The task that finds all N shards present writes manifest.json (counts,
   sizes, sha256 per shard) if absent: the commit marker readers check. The
   check lists from the end of the task's own block (wrapping round) and stops
   at the first missing shard.

A generation thread runs the compiled producer a few batches ahead, across
shards (`generate_ahead`); the main thread encodes, writes and publishes.
The protocol is one piece (task split, shard writing, publish, manifest,
verify, preview), kept in one module of about 500 lines; plan.json itself
(its reader, the conflict check, the claim) is trainer/shard_plan.py's.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import json
import math
import os
import sys
import time
import uuid
from typing import Iterator, Optional

import tensorflow as tf

from trainer import classic_augment, distribute, environment, image_codec, shard_plan, shards, storage
from trainer.augment_params import AugmentParams
from trainer.errors import UserError
from trainer.progress import ProgressBar
from trainer.shard_plan import ShardPlan
from trainer.sources import ImageSource, dataset_source, generator_source

TEMP = ".tmp"


# ----------------------------------------------------------------------------
# Plan, work split, shard writing


def flags_plan(config, source_kind: str, params: AugmentParams) -> ShardPlan:
    """The plan as far as the flags alone decide it (the source's entries are left at zero)."""
    return ShardPlan(
        source=source_kind,
        num_images=config.num_images,
        num_shards=math.ceil(config.num_images / config.images_per_shard),
        images_per_shard=config.images_per_shard,
        seed=config.seed,
        batch_size=config.batch_size,
        resolution=0,
        channels=0,
        num_classes=0,
        augmentation=params.to_dict(),
        image_format=config.image_format,
        png_compression=config.png_compression,
        jpeg_quality=config.jpeg_quality,
    )


def make_plan(config, source: ImageSource, params: AugmentParams) -> ShardPlan:
    return dataclasses.replace(
        flags_plan(config, source.kind, params),
        batch_size=config.batch_size or auto_batch_size(source.resolution),
        resolution=source.resolution,
        channels=source.channels,
        num_classes=source.num_classes,
        class_names=tuple(source.class_names or ()),
        identity=dict(source.identity),
    )


def auto_batch_size(resolution: int) -> int:
    """About 4M pixels a batch: large enough to keep both stages busy, small enough for big images."""
    return max(16, min(1024, 2**22 // (resolution * resolution)))


def resolve_task(config, environ=os.environ) -> tuple[int, int]:
    """(task_index, num_tasks) from flags, else Kubernetes, Vertex AI or TF_CONFIG."""
    index, count = config.task_index, config.num_tasks
    if index < 0 and "JOB_COMPLETION_INDEX" in environ:
        index = environment.integer("JOB_COMPLETION_INDEX", environ)
        count = count or environment.integer("DCGAN_NUM_TASKS", environ, 0)
        if not count:
            raise UserError(
                "JOB_COMPLETION_INDEX is set but the task count is not: pass --num_tasks or set DCGAN_NUM_TASKS"
            )
    elif index < 0 and ("CLUSTER_SPEC" in environ or "TF_CONFIG" in environ):
        from trainer import distribute

        role, tf_config = distribute.read_cluster(environ)  # validated; the same cluster order as training
        if tf_config is not None:
            index, count = role.position, count or role.num_workers
    index, count = max(index, 0), max(count, 1)
    if index >= count:
        raise UserError(f"task index {index} is not below the task count {count}")
    return index, count


def task_shards(task: int, num_tasks: int, num_shards: int) -> list[int]:
    """Task t's contiguous block of shard indices (the blocks of all tasks cover every shard once). A
    block, not every T-th shard, so a task reads the state of its own shards in one short listing."""
    return list(range(-(-task * num_shards // num_tasks), -(-(task + 1) * num_shards // num_tasks)))


def stat_shards(store: storage.Store, names: list[str]) -> dict[str, storage.ObjectInfo]:
    """{name: info} of the published shards among `names`, from a listing of their key range only."""
    if not names:
        return {}
    wanted = set(names)
    return {k: info for k, info in store.stat_range(min(names), max(names)) if k in wanted}


def all_published(store: storage.Store, names: list[str], start: int = 0) -> Optional[dict[str, storage.ObjectInfo]]:
    """{name: info} when every shard in `names` is published, else None. The listing begins at shard
    `start` (a task passes the end of its own block: the next block is the likeliest to be unfinished),
    wraps round, and stops at the first missing shard, so a task that finishes while others still
    write reads a page, not the whole output."""
    order = sorted(range(len(names)), key=lambda i: names[i])  # listing order (index order up to 99999 shards)
    first = order.index(start) if 0 < start < len(names) else 0
    found: dict[str, storage.ObjectInfo] = {}
    for part in ([names[i] for i in order[first:]], [names[i] for i in order[:first]]):
        if not part:
            continue
        listed = 0
        for key, info in store.stat_range(part[0], part[-1]):
            want = part[listed]
            if key == want:
                found[key] = info
                listed += 1
                if listed == len(part):
                    break
            elif key > want:  # `want` is missing
                return None
        if listed < len(part):
            return None
    return found


def make_producer(source: ImageSource, params: AugmentParams, seed: int, min_confidence: float = 0.0):
    """One compiled function: global indices -> (uint8 images, labels, seeds, keep, teacher probabilities).

    Plain TensorFlow ops with no Python control flow on tensors, so it is traced
    without AutoGraph (a second of start-up saved); callers pass whole batches so
    it is traced and compiled once."""

    @tf.function(autograph=False)
    def produce(indices):
        pixels, labels, seeds = source.make_batch(indices)
        # Memorization is judged on the generator's own output, before augmentation hides a copy.
        keep = source.keep(pixels) if source.keep else tf.ones(tf.shape(indices), tf.bool)
        pixels = tf.clip_by_value(
            tf.round(classic_augment.apply(pixels, params, classic_augment.image_seeds(seed, indices))), 0, 255
        )
        probs = tf.zeros([tf.shape(indices)[0], 0])
        if source.scores is not None:  # the teacher labels the image as it is written, augmented
            probs = source.scores(pixels)
            own = tf.gather(probs, tf.maximum(labels, 0), batch_dims=1)
            confidence = tf.where(labels >= 0, own, tf.reduce_max(probs, axis=1))
            keep &= confidence >= min_confidence
        return tf.cast(pixels, tf.uint8), labels, seeds, keep, probs

    return produce


def generate_ahead(produce, batch: int, work: list[tuple[int, int]], depth: int = 3) -> Iterator[list]:
    """The producer's outputs (numpy), batch by batch in order, for the shards `work` = [(first global
    index, count), ...], each batch cut to its shard: generated on one background thread up to `depth`
    batches ahead, across shard boundaries, so generation waits for encoding, writing or publishing
    only once `depth` batches are waiting. The producer always gets whole batches (one trace); the
    images past a shard are dropped."""
    starts = ((first, count, start) for first, count in work for start in range(first, first + count, batch))
    jobs = ((start, min(batch, first + count - start)) for first, count, start in starts)

    def make(start: int, size: int) -> list:
        return [t.numpy()[:size] for t in produce(tf.range(start, start + batch, dtype=tf.int64))]

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="generate") as pool:
        ahead = collections.deque(pool.submit(make, *job) for job in itertools.islice(jobs, depth))
        try:
            while ahead:
                outputs = ahead.popleft().result()
                job = next(jobs, None)
                if job is not None:
                    ahead.append(pool.submit(make, *job))
                yield outputs
        finally:  # stopped early (an error while writing): nothing more is started
            for future in ahead:
                future.cancel()


def remove_stale_temp_files(folder: str, prefix: str) -> int:
    """Deletes temp files starting with `prefix` whose writer is gone; a live writer's file is left alone."""
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sum(storage.remove_if_unowned(os.path.join(folder, n)) for n in names if n.startswith(prefix))


def write_shard(
    store: storage.Store,
    plan: ShardPlan,
    source: ImageSource,
    batches: Iterator[list],
    index: int,
    count: int,
    task: int,
    on_images=None,
) -> None:
    """Writes shard `index` to a local temp file, checks it, then publishes it in one step. `batches`
    yields the producer's outputs for its images in order (`generate_ahead`)."""
    name = shards.shard_name(source.kind, index, plan.num_shards)
    temp = store.local(f"{TEMP}/task-{task:05d}-{uuid.uuid4().hex}.tfrecord")
    os.makedirs(os.path.dirname(temp), exist_ok=True)
    with storage.own(temp):  # held while writing: other processes' cleanups skip this file
        res, channels = source.resolution, source.channels
        image_format, quality = plan.image_format, plan.encoder_args()

        kept = 0
        encoder = shards.ExampleEncoder(res, res, channels, source.kind, source.generator_step, image_format)

        def write_batch(writer, pixels, labels, seeds, keep, probs):
            nonlocal kept
            if not keep.all():
                pixels, labels, seeds, probs = pixels[keep], labels[keep], seeds[keep], probs[keep]
            blobs = image_codec.encode(pixels, image_format, **quality) if len(labels) else []
            soft = probs.shape[1] > 0
            writer.write(
                shards.frame_records(
                    [
                        encoder.encode(blob, label, s, p.tolist() if soft else None)
                        for blob, label, s, p in zip(blobs, labels.tolist(), seeds.tolist(), probs)
                    ]
                )
            )
            kept += len(blobs)
            if on_images:
                on_images(len(keep))

        with open(temp, "wb") as writer:
            remaining = count  # generate_ahead cuts each batch to its shard: take them until the shard is full
            while remaining > 0:
                outputs = next(batches)
                remaining -= len(outputs[1])
                write_batch(writer, *outputs)
        _publish(store, temp, name, kept, count)


def _publish(store: storage.Store, temp: str, name: str, kept: int, count: int) -> None:
    """Publishes a written shard under its final name once its record count is checked; where another task
    published it first (different bytes), theirs is kept if whole."""
    written = shards.count_records(temp)
    if written != kept:
        raise RuntimeError(f"shard {name}: wrote {written} records, expected {kept}")
    # The metadata lets a bucket answer "is this shard whole?" and build the manifest from one listing
    # (a local folder keeps none: its manifest hashes the published files once).
    metadata = {"num_examples": kept, "candidates": count}
    if store.keeps_metadata:
        metadata["sha256"] = shards.file_sha256(temp)
    try:
        store.publish_file(temp, name, metadata)
    except storage.AlreadyExists:  # another task published different bytes meanwhile: keep theirs if whole
        if os.path.exists(temp):
            os.unlink(temp)
        if count_if_whole(store, name, stat_shards(store, [name]).get(name)) != kept:
            raise UserError(f"{store.url}/{name} exists but is damaged; delete it and rerun") from None


def count_if_whole(store: storage.Store, name: str, info: Optional[storage.ObjectInfo]) -> int:
    """The record count of a published shard, or -1 if it is missing or damaged.

    In a bucket a shard is uploaded in one checksummed request, so its
    metadata is trusted; a local file is read through, checking every record's CRC."""
    if info is None:
        return -1
    if "num_examples" in info.metadata:
        return int(info.metadata["num_examples"])
    if store.keeps_metadata:
        return -1  # not written by us
    try:
        return shards.count_records(store.path(name))
    except shards.DamagedShard:
        return -1


def write_manifest(store: storage.Store, plan: ShardPlan, kind: str, start: int = 0) -> bool:
    """Writes manifest.json when every shard is present (checked from shard `start` on, see
    `all_published`); True if the output is committed."""
    if store.exists(shards.MANIFEST):
        return True
    sizes = plan.shard_sizes()
    names = [shards.shard_name(kind, i, plan.num_shards) for i in range(plan.num_shards)]
    published = all_published(store, names, start)
    if published is None:
        return False
    entries = []
    for name, count in zip(names, sizes):
        info = published[name]
        sha = info.metadata.get("sha256") or shards.file_sha256(store.path(name))
        found = count_if_whole(store, name, info) if plan.filters() else count
        entries.append({"name": name, "num_images": found, "bytes": info.size, "sha256": sha})
    kept = sum(e["num_images"] for e in entries)
    manifest = {
        "num_images": kept,
        "num_shards": plan.num_shards,
        "channels": plan.channels,
        "dropped": plan.num_images - kept,
        "filters": plan.filters(),
        "soft_labels": plan.soft_labels,
        "resolution": plan.resolution,
        "num_classes": plan.num_classes,
        "class_names": list(plan.class_names),
        "source": kind,
        "schema": {k: v.dtype.name for k, v in shards.FEATURES.items()},
        "shards": entries,
        "plan": plan.to_dict(),
    }
    # TFDS metadata first (deterministic, so a racing task writes the same bytes), the manifest last.
    description = f"{kind} images written by dcgan-factory (`dcgan {'sample' if kind == 'synthetic' else 'augment'}`)"
    for key, blob in shards.tfds_metadata(
        kind, [e["num_images"] for e in entries], sum(e["bytes"] for e in entries), description, plan
    ).items():
        try:
            store.put_new(key, blob)
        except storage.AlreadyExists:
            pass
    try:
        store.put_new(shards.MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    except storage.AlreadyExists:
        pass
    temp_dir = store.local(TEMP)
    if os.path.isdir(temp_dir) and not os.listdir(temp_dir):
        os.rmdir(temp_dir)
    return True


def verify(output: str, progress: bool = True, every_secs: float = 5.0, task: int = 0, num_tasks: int = 1) -> dict:
    """Re-checks a committed output: every shard's size, sha256 and record count (downloading from a
    bucket); with several tasks, task t checks its block of shards (the same blocks as writing)."""
    from trainer.progress import Progress

    store = storage.open_store(output)
    if not store.exists(shards.MANIFEST):
        raise UserError(f"--output={output}: no {shards.MANIFEST}; the output is not complete")
    manifest = shards.parse_manifest(store.get_text(shards.MANIFEST), f"{store.url}/{shards.MANIFEST}")
    for entry in manifest["shards"]:
        missing = [key for key in ("bytes", "sha256", "num_images") if key not in entry]
        if missing:
            raise UserError(f"{store.url}/{shards.MANIFEST}: shard {entry['name']!r} records no {', '.join(missing)}")
    entries = [manifest["shards"][i] for i in task_shards(task, num_tasks, len(manifest["shards"]))]
    published = stat_shards(store, [entry["name"] for entry in entries])
    counter = Progress(f"verify {store.url}", len(entries), "shards", enabled=progress, every_secs=every_secs)
    for entry in entries:
        where = f"{store.url}/{entry['name']}"
        if entry["name"] not in published:
            raise UserError(f"{where}: missing")
        if published[entry["name"]].size != entry["bytes"]:
            raise UserError(f"{where}: size differs from the manifest")
        _verify_bytes(store, entry, where)
        counter.advance()
    counter.close()
    return manifest


def _verify_bytes(store: storage.Store, entry: dict, where: str) -> None:
    """One shard's bytes against its manifest entry: sha256, then every record's framing and the count."""
    path = store.fetch(entry["name"])
    try:
        if shards.file_sha256(path) != entry["sha256"]:
            raise UserError(f"{where}: sha256 differs from the manifest")
        try:
            whole = shards.count_records(path) == entry["num_images"]
        except shards.DamagedShard:
            whole = False
        if not whole:
            raise UserError(f"{where}: damaged, or its record count differs from the manifest")
    finally:
        if storage.is_remote(store.url):
            os.unlink(path)


def row_name(source: ImageSource, label: int) -> str:
    name = source.class_names[label] if label < len(source.class_names) else ""
    return f"{label}: {name}" if name and name != str(label) else f"class {label}"


def preview(config, params: AugmentParams) -> dict:
    """`dcgan sample --preview=N --output=grid.png`: one labelled grid, a row per class, nothing else written."""
    from trainer import report_page

    source = generator_source(
        dataclasses.replace(
            config.generator_spec(), labels="balanced", max_memorization=0.0, teacher="", min_confidence=0.0
        )
    )
    columns = max(1, -(-config.preview // source.num_classes)) if source.num_classes else 8
    count = columns * source.num_classes if source.num_classes else config.preview  # whole rows per class
    produce = make_producer(source, params, config.seed)
    pixels, labels, _, _, _ = produce(tf.range(count, dtype=tf.int64))
    order = tf.argsort(labels, stable=True).numpy() if source.num_classes else slice(None)
    images, labels = pixels.numpy()[order], labels.numpy()[order]
    title = f"{count} samples of {config.generator} (step {source.generator_step})" + (
        f", rows by class {sorted(set(labels.tolist()))}" if source.num_classes else ""
    )
    png = report_page.samples_png(
        images,
        title,
        columns=columns,
        row_labels=[row_name(source, labels[r * columns]) for r in range(-(-len(labels) // columns))]
        if source.num_classes
        else None,
    )
    folder = os.path.dirname(os.path.abspath(config.output))
    os.makedirs(folder, exist_ok=True)
    with open(config.output + ".tmp", "wb") as f:
        f.write(png)
    os.replace(config.output + ".tmp", config.output)
    print(f"preview: {config.output}")
    return {"preview": config.output}


def run(config, job: str) -> dict:
    """Runs this task's share of a `sample` or `augment` job."""
    if config.verify:
        task, num_tasks = resolve_task(config)
        manifest = verify(config.output, config.progress, config.progress_secs, task, num_tasks)
        if num_tasks == 1:
            images = manifest.get("num_images", "?")  # the checked fields are the shards; totals may be absent
            print(f"ok: {len(manifest['shards'])} shards, {images} images, checksums match")
        else:
            total = len(manifest["shards"])
            mine = task_shards(task, num_tasks, total)
            print(f"ok: task {task} of {num_tasks}: {len(mine)} of {total} shards, checksums match")
        return {"verified": True}
    params = AugmentParams.create(**config.augmentation())
    if job == "sample" and config.preview:
        return preview(config, params)
    task, num_tasks = resolve_task(config)
    store = storage.open_store(config.output)
    existing = shard_plan.read_plan(store)
    if existing is not None:  # resuming: flags that differ from the output's plan fail before the source loads
        flagged = flags_plan(config, "synthetic" if job == "sample" else "augmented", params)
        shard_plan.check_conflict(store.root, existing, flagged.flag_entries(bool(config.batch_size)), partial=True)
    # Bad input fails here, before the output folder is created:
    source = generator_source(config.generator_spec()) if job == "sample" else dataset_source(config.dataset_spec())
    store.check_writable()
    plan = make_plan(config, source, params)
    shard_plan.claim(store, plan, existing)
    print(
        f"{job}: {plan.num_images} images in {plan.num_shards} shards -> {store.root}; "
        f"task {task} of {num_tasks}; augmentation: {params.describe()}"
    )
    if warning := distribute.precision_warning(getattr(config, "mixed_precision", "off")):  # sample's generator
        print(warning, file=sys.stderr)
    remove_stale_temp_files(store.local(TEMP), f"task-{task:05d}-")  # from a killed run of this task
    sizes = plan.shard_sizes()
    mine = task_shards(task, num_tasks, plan.num_shards)
    names = [shards.shard_name(source.kind, i, plan.num_shards) for i in range(plan.num_shards)]
    published = stat_shards(store, [names[i] for i in mine])
    todo = [i for i in mine if not plan.is_whole(count_if_whole(store, names[i], published.get(names[i])), sizes[i])]
    total = sum(sizes[i] for i in todo)
    bar = ProgressBar(total, 0, enabled=config.progress, stream=sys.stderr, every_secs=config.progress_secs)
    done, started = 0, time.perf_counter()

    def on_images(n):
        nonlocal done
        done += n
        elapsed = time.perf_counter() - started
        bar.update(done, done / elapsed if elapsed else 0.0)

    produce = make_producer(source, params, plan.seed, plan.min_confidence)
    work = [(index * plan.images_per_shard, sizes[index]) for index in todo]
    batches = generate_ahead(produce, plan.batch_size, work)
    try:
        for index in todo:
            write_shard(store, plan, source, batches, index, sizes[index], task, on_images)
    finally:
        batches.close()
    bar.close()
    elapsed = time.perf_counter() - started
    committed = write_manifest(store, plan, source.kind, start=mine[-1] + 1 if mine else 0)
    rate = done / elapsed if elapsed > 0 else 0.0
    print(
        f"task {task}: wrote {len(todo)} shards ({done} images, {rate:.1f} img/s), "
        f"skipped {len(mine) - len(todo)} already published; "
        + ("output committed (manifest.json)" if committed else "waiting for other tasks' shards")
    )
    return {"shards_written": len(todo), "images": done, "images_per_sec": rate, "committed": committed}
