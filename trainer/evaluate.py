"""`dcgan evaluate`: is the synthetic data good, new, and useful?

    dcgan evaluate --real=digits:test --synthetic=runs/digits10 --train_data='digits:train[:10%]' \\
        --report=eval/report.json
    dcgan evaluate --real=digits:test --synthetic=out/synth --train_data='digits:train[:10%]' \\
        --feature_model=inception.keras

Reports (JSON, plus PNGs beside it):
  fidelity       FID, KID (mean, std over subsets), precision and recall: synthetic vs --real
  memorization   share of samples closer to a training image than held-out real images
                 typically are (pixel and feature space), and the closest pairs as a picture
  gan_test       a classifier trained on real data labels the conditional samples: accuracy, and
                 normalised (that accuracy / the same classifier's accuracy on held-out real images)
  downstream     trainer/usefulness.py: the judge (trainer/classifier.py) trained on real images, real +
                 augmentation tuned on validation images, synthetic only (CAS) and real + synthetic, with
                 --seeds paired seeds, tested on --real; the verdict line says whether synthetic helps

One command, one module: the data checks (which sets overlap), the four report
sections and the report files are read top to bottom here (about 550 lines).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf

from trainer import (
    __version__,
    classifier,
    data,
    export,
    jobdir,
    metrics,
    model_card,
    overlap,
    report_page,
    score_cache,
    shards,
    sources,
    usefulness,
    validation_split,
)
from trainer.errors import JobError, UserError
from trainer.progress import Progress
from trainer.shard_plan import ShardPlan
from trainer.specs import GeneratorSpec


def check_resolution(config, resolution: int) -> None:
    if config.resolution and config.resolution != resolution:
        raise UserError(
            f"--resolution={config.resolution} but the synthetic images are {resolution}x{resolution}: "
            "mismatched resolution"
        )


def load_synthetic(config) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """(uint8 images, labels or None, description) from a generator (sampled now) or a shard output."""
    try:
        model_path = export.resolve_path(config.synthetic)
    except UserError:
        model_path = None
    if model_path is not None:
        meta = export.read_meta(os.path.join(os.path.dirname(model_path), jobdir.META_FILE))
        check_resolution(config, meta["resolution"])  # before sampling
        source = sources.generator_source(GeneratorSpec(model_path, seed=config.seed))
        batches = []
        for start in range(0, config.num_samples, 256):
            indices = tf.range(start, min(start + 256, config.num_samples), dtype=tf.int64)
            pixels, labels, _ = source.make_batch(indices)
            batches.append((data.pixels_to_uint8(pixels.numpy()), labels.numpy()))
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches]) if source.num_classes else None
        return (
            images,
            labels,
            {
                "kind": "generator",
                "path": model_path,
                "step": meta["step"],
                "train_data": meta.get("dataset", ""),
                "num_classes": source.num_classes,
            },
        )
    images, labels = read_shards(config.synthetic, "synthetic", config.num_samples)
    conditional = bool((labels >= 0).all())
    try:
        plan = (shards.read_any_manifest(config.synthetic) or {}).get("plan")
        recorded = ShardPlan.from_dict(plan).generator_train_data if plan else ""
    except (JobError, OSError, ValueError):  # the shards were read above: only the record is lost
        recorded = ""
    return (
        images,
        (labels if conditional else None),
        {
            "kind": "shards",
            "path": config.synthetic,
            "train_data": recorded,  # the generator's, from the plan
            "num_classes": int(labels.max()) + 1 if conditional else 0,
        },
    )


def read_shards(path: str, flag: str, limit: int = -1, allow_uncommitted: bool = False) -> tuple:
    """(uint8 images [N, H, W, C], int64 labels [N], -1 where unlabelled): the first `limit` records of a
    shard output (all when -1), in order, read in batches."""
    images, labels = [], []
    try:
        for image, label in (
            shards.load(path, shuffle=False, allow_uncommitted=allow_uncommitted).take(limit).batch(1024)
        ):
            images.append(image.numpy())
            labels.append(label.numpy())
    except tf.errors.InvalidArgumentError:  # images of different sizes cannot share a batch; or a bad image
        raise UserError(
            f"--{flag}={path}: its images cannot be read as one set (images of different sizes, or one that "
            "does not decode)"
        ) from None
    if not images:
        raise UserError(f"--{flag}={path}: no images in the shards")
    return np.concatenate(images), np.concatenate(labels)


def load_real(dataset: str, flag: str, resolution: int, channels: int) -> data.TrainingData:
    source = data.load_source(dataset, resolution, channels)
    if not source.in_memory:  # shards as real data: read them into memory
        source.images, source.labels = read_shards(dataset, flag, allow_uncommitted=True)
        if (source.labels < 0).any():
            source.labels, source.num_classes = None, 0
    if source.images.shape[1:] != (resolution, resolution, channels):
        raise UserError(
            f"--{flag}={dataset}: images are {source.images.shape[1:]}, the synthetic ones "
            f"{(resolution, resolution, channels)}; mismatched resolution"
        )
    return source


def run(config) -> dict:
    started = time.perf_counter()
    report: dict = {"version": __version__, "config": json.loads(config.to_json())}
    sets = load_sets(config, report)
    check_downstream_labels(config, sets)  # a missing label is an error before anything heavy runs

    # -- Feature space.
    print(f"evaluate: feature space from {sets.feature_name} ...", flush=True)
    source = sets.feature_source
    space = metrics.feature_space(
        source.images,
        source.labels,
        source.num_classes,
        sets.feature_name,
        config.feature_model,
        steps=config.feature_steps,
    )
    real_f, synth_f = space(sets.real.images), space(sets.synth)
    report["features"] = {
        "kind": space.kind,
        "data": sets.feature_name if space.kind == "classifier" else "",
        "model": config.feature_model,
        "dim": int(real_f.shape[1]),
    }

    # -- Fidelity and diversity.
    kid_mean, kid_std = metrics.kid(real_f, synth_f, subsets=config.kid_subsets, seed=config.seed)
    precision, recall = metrics.precision_recall(real_f, synth_f)
    report["fidelity"] = {
        "fid": metrics.fid(real_f, synth_f),
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
    }
    os.makedirs(os.path.dirname(os.path.abspath(config.report)), exist_ok=True)
    pictures = {
        "Synthetic samples": report_page.samples_png(
            sets.synth[:64],
            f"{min(64, len(sets.synth))} synthetic samples ({sets.synth_info['kind']}: {config.synthetic})",
        )
    }
    report["memorization"] = memorization(config, sets, space, real_f, synth_f, pictures)
    report["gan_test"] = gan_test(config, sets, space, report["data"])
    report["downstream"] = downstream_section(config, sets)

    for section, caveat in sets.caveats.items():
        if isinstance(report.get(section), dict) and "skipped" not in report[section]:
            report[section]["caveat"] = "; ".join(filter(None, [caveat, report[section].get("caveat")]))
    report["seconds"] = round(time.perf_counter() - started, 1)
    write(config.report, report, pictures)
    print(summary(report))
    if sets.synth_info["kind"] == "generator":
        card = model_card.record_evaluation(config.synthetic, report, config.report, len(sets.real.images))
        if card:
            print(f"model card updated: {card}")
    print(f"report: {config.report} (and {os.path.splitext(config.report)[0]}.html)")
    return report


@dataclasses.dataclass
class Sets:
    """The images one evaluation reads, at the synthetic images' resolution, and how they overlap."""

    synth: np.ndarray
    synth_labels: np.ndarray | None
    synth_info: dict
    real: data.TrainingData
    train: data.TrainingData | None  # the generator's training images, if known
    train_name: str
    feature_name: str
    feature_source: data.TrainingData
    caveats: dict  # report section -> what an overlap between the sets does to it


def load_sets(config, report: dict) -> Sets:
    """Load the synthetic images and every real set; record them and their overlaps in the report."""
    synth, synth_labels, synth_info = load_synthetic(config)
    resolution, channels = synth.shape[1], synth.shape[3]
    check_resolution(config, resolution)
    report["synthetic"] = {**synth_info, "num_images": len(synth), "resolution": resolution, "channels": channels}
    real = load_real(config.real, "real", resolution, channels)
    recorded = synth_info.get("train_data", "")
    train_name = config.train_data or recorded
    train = load_real(train_name, "train_data", resolution, channels) if train_name else None
    generator_data = {train_name: train} if train is not None else {}
    if recorded and recorded != train_name:  # what the generator really saw, if --train_data names other images
        generator_data[recorded] = load_real(recorded, "train_data", resolution, channels)
    feature_name = config.feature_data or config.real
    feature_source = (
        real if feature_name == config.real else load_real(feature_name, "feature_data", resolution, channels)
    )
    report["data"], caveats = check_data(config, synth, real, generator_data, feature_name, feature_source)
    if train is None:
        described = ": overlap with the generator's training images NOT checked (none known: pass --train_data)"
    else:
        overlap_note = ", disjoint" if not caveats else f", OVERLAPPING ({len(caveats)} affected sections)"
        described = f", {len(train.images)} training images ({train_name})" + overlap_note
    print(
        f"evaluate: {len(synth)} synthetic images ({synth_info['kind']}), {len(real.images)} real ({config.real})"
        + described,
        flush=True,
    )
    return Sets(synth, synth_labels, synth_info, real, train, train_name, feature_name, feature_source, caveats)


def labelled(sets: Sets) -> bool:
    """Whether the downstream test can run: labels on the training, reference and synthetic images."""
    return (
        sets.train is not None
        and sets.train.labels is not None
        and sets.real.labels is not None
        and sets.synth_labels is not None
    )


def check_downstream_labels(config, sets: Sets) -> None:
    if config.downstream != "true" or labelled(sets):
        return
    missing = [
        name
        for name, ok in (
            ("--train_data", sets.train is not None and sets.train.labels is not None),
            ("--real", sets.real.labels is not None),
            ("--synthetic", sets.synth_labels is not None),
        )
        if not ok
    ]
    raise UserError(f"--downstream=true needs labels, and {', '.join(missing)} has none (or is missing)")


def memorization(config, sets: Sets, space, real_f, synth_f, pictures: dict) -> dict:
    """Share of samples nearer a training image than held-out images are, in pixels and features."""
    train = sets.train
    if train is None:
        return {"skipped": "no training set: pass --train_data"}
    print("evaluate: memorization ...", flush=True)
    section: dict = {}
    flagged = np.zeros(len(sets.synth), bool)
    for space_name, train_x, holdout_x, synth_x in (
        ("pixels", train.images, sets.real.images, sets.synth),
        ("features", space(train.images), real_f, synth_f),
    ):
        result = metrics.memorization(train_x, holdout_x, synth_x, config.memorization_quantile)
        distances, nearest_index = result.pop("distances"), result.pop("nearest_index")
        flagged |= distances < result["threshold"]
        pictures[f"Closest pairs ({space_name})"] = report_page.pairs_png(
            sets.synth,
            train.images,
            distances,
            nearest_index,
            result["threshold"],
            f"Closest synthetic / training pairs in {space_name.rstrip('s')} space: {result['rate']:.1%} under "
            "the threshold",
        )
        section[space_name] = result
    section["rate_either"] = float(flagged.mean())
    return section


def gan_test(config, sets: Sets, space, data_report: dict) -> dict:
    """A real-data classifier labels the conditional samples; normalised by its accuracy on held-out reals."""
    source = sets.feature_source
    oracle = space.classifier
    if oracle is None and sets.synth_labels is not None and source.labels is not None:
        oracle = metrics.feature_space(
            source.images, source.labels, source.num_classes, sets.feature_name, "", steps=config.feature_steps
        ).classifier
    if sets.synth_labels is None or oracle is None:
        return {"skipped": "needs a conditional generator and labelled real data"}
    print("evaluate: GAN-test ...", flush=True)
    section = {
        "accuracy": classifier.accuracy(oracle, sets.synth, sets.synth_labels),
        **classifier_check(data_report, oracle, sets.real, sets.train, config),
    }
    held_out = section.get("classifier_accuracy_held_out")
    if held_out:  # the samples' score as a share of what the same classifier scores on real images
        section["normalised"] = section["accuracy"] / held_out
    return section


def downstream_section(config, sets: Sets) -> dict:
    """Does adding synthetic data help a classifier? (run unless --downstream=false or labels are missing)"""
    if config.downstream == "false":
        return {"skipped": "not run (--downstream=false)"}
    if not labelled(sets):
        return {"skipped": "needs labelled --train_data, --real and conditional --synthetic"}
    if not validation_split.can_validate(sets.train.labels):
        return {"skipped": "no class of --train_data has two images: nothing to tune the baseline on"}
    return downstream(config, sets.train, sets.real, sets.synth, sets.synth_labels)


# What each number is measured on, and what it means when two of the sets share images.
REFERENCE_VS_TRAINING = "the generator is judged on its own training images and held-out distances are not held out"
AFFECTED_BY_REFERENCE_OVERLAP = {
    "fidelity": "FID/KID/precision/recall compare samples with --real, which shares {shared} images with the "
    "generator's training images ({train}): this favours a generator that copies",
    "memorization": "the threshold comes from --real's distances to the training images, but {shared} of them "
    "are training images (distance 0): the threshold is too low and the rate too small",
    "downstream": "the classifiers are tested on --real, which shares {shared} images with their training "
    "images ({train}): accuracies are inflated",
}


def check_data(
    config,
    synth: np.ndarray,
    real: data.TrainingData,
    generator_data: dict,
    feature_name: str,
    feature_source: data.TrainingData,
) -> tuple[dict, dict]:
    """Which images each number uses, and whether the sets overlap (by content hash).

    Returns (report["data"], {section: caveat}). --real sharing images with the
    generator's training images is refused (one line) unless --allow_overlap,
    when every affected section gets a caveat."""
    sets = {
        "reference (--real: FID/KID/precision/recall, held-out distances, downstream test set)": {
            "name": config.real,
            "images": len(real.images),
        }
    }
    for name, source in generator_data.items():
        sets[f"training (the generator's: memorization, downstream training set) {name}"] = {
            "name": name,
            "images": len(source.images),
        }
    sets["feature space (the classifier behind FID/KID/GAN-test)"] = {
        "name": feature_name,
        "images": len(feature_source.images),
    }
    sets["synthetic"] = {"name": config.synthetic, "images": len(synth)}
    pairs, caveats, warnings = [], {}, []
    for name, source in generator_data.items():
        found = overlap.pair(config.real, real.images, name, source.images)
        pairs.append({**found.as_dict(), "meaning": REFERENCE_VS_TRAINING if found.shared else ""})
        if found.shared and not config.allow_overlap:
            fix = (
                " (train on digits:train and evaluate on digits:test)"
                if name.split(":")[0] == "digits"
                else " (hold out a split the generator never saw, e.g. train on a[:80%] and evaluate on a[80%:])"
            )
            raise UserError(
                f"--real={config.real} shares {found.shared} of its {found.a_count} images with the "
                f"generator's training images ({name}), so the report would test the generator on what "
                f"it trained on; evaluate on images it never saw{fix}, or pass --allow_overlap=true "
                "to report anyway with the affected numbers marked"
            )
        if found.shared:
            for section, text in AFFECTED_BY_REFERENCE_OVERLAP.items():
                caveats[section] = text.format(shared=found.shared, train=name)
    if not generator_data:
        warnings.append(
            "overlap of --real with the generator's training images was NOT checked: no training set is known "
            "(pass --train_data, or evaluate the generator's job dir, whose export records it)"
        )
    features_saw_reference = feature_name == config.real
    if not features_saw_reference:
        found = overlap.pair(feature_name, feature_source.images, config.real, real.images)
        features_saw_reference = not found.disjoint
        pairs.append(
            {
                **found.as_dict(),
                "meaning": ""
                if found.disjoint
                else "the feature classifier has seen some reference images (fine for FID and KID; stated)",
            }
        )
    if features_saw_reference:
        warnings.append(
            f"the feature classifier learned from {feature_name}, which is (or shares images with) "
            "--real: fine for FID/KID, which only need a feature space; GAN-test's real-data accuracy "
            "is therefore measured on other images (see gan_test.held_out_set)"
        )
    return {
        "sets": sets,
        "overlaps": pairs,
        "checked_by": "sha256 of each image's pixels",
        "features_saw_reference": features_saw_reference,
        "warnings": warnings,
        "training_name": next(iter(generator_data), ""),
    }, caveats


def classifier_check(data_report: dict, oracle, real: data.TrainingData, train, config) -> dict:
    """The GAN-test classifier's own accuracy on real images it did not learn from.

    It learns from --feature_data (default --real); then the generator's training
    images, disjoint from --real, are the held-out set. With no such set the
    accuracy on its own training images is reported, marked as such."""
    if not data_report["features_saw_reference"]:
        return {
            "classifier_accuracy_held_out": classifier.accuracy(oracle, real.images, real.labels),
            "held_out_set": config.real,
        }
    train_disjoint = any(
        o["a"] == config.real and o["b"] == data_report["training_name"] and o["disjoint"]
        for o in data_report["overlaps"]
    )  # measured once, in check_data
    if (
        train is not None
        and train.labels is not None
        and train_disjoint
        and (config.feature_data or config.real) == config.real
    ):
        return {
            "classifier_accuracy_held_out": classifier.accuracy(oracle, train.images, train.labels),
            "held_out_set": config.train_data or data_report.get("training_name", "training images"),
        }
    return {
        "classifier_accuracy_on_its_training_images": classifier.accuracy(oracle, real.images, real.labels),
        "held_out_set": "none: no real images the classifier did not learn from",
    }


def write(path: str, report: dict, pictures: dict[str, bytes]) -> None:
    """report.json, the pictures as PNGs and report.html, each written atomically."""
    stem = os.path.splitext(path)[0]
    files = {f"{stem}-samples.png": pictures["Synthetic samples"]}
    for space_name in ("pixels", "features"):
        if f"Closest pairs ({space_name})" in pictures:
            files[f"{stem}-closest-{space_name}.png"] = pictures[f"Closest pairs ({space_name})"]
    files[path] = json.dumps(report, indent=2).encode()
    files[f"{stem}.html"] = report_page.page(report, pictures).encode()
    for target, content in files.items():
        with open(target + ".tmp", "wb") as f:
            f.write(content)
        os.replace(target + ".tmp", target)


def downstream(
    config, train: data.TrainingData, real: data.TrainingData, synth: np.ndarray, synth_labels: np.ndarray
) -> dict:
    """trainer/usefulness.py's comparison: baseline and share tuned on validation, paired seeds on --real."""
    num_classes = max(train.num_classes, int(synth_labels.max()) + 1)
    spec = usefulness.UsefulnessSpec(
        classifier.ClassifierSpec(steps=config.downstream_steps),
        seeds=config.seeds,
        tune_seeds=config.tune_seeds,
        validation_fraction=config.validation_fraction,
        tune_folds=config.tune_folds,
        policies=tuple(config.policies.split(",")),
        mixes=tuple(m for m in config.mixes.split(",") if m),
        shares=tuple(float(s) for s in config.shares.split(",")),
        seed=config.seed,
    )
    counter = Progress(
        "evaluate: downstream classifiers",
        spec.trainings(
            validation_split.is_imbalanced(np.asarray(train.labels), num_classes),
            validation_split.folds_for(train.labels, num_classes, spec.tune_folds, spec.validation_fraction, spec.seed),
        ),
        f"trained ({config.downstream_steps} steps each)",
        stream=sys.stderr,
    )
    result = usefulness.compare(
        (train.images, train.labels),
        (real.images, real.labels),
        (synth, synth_labels),
        num_classes,
        spec,
        on_trained=counter.advance,
        log=lambda line: print(f"evaluate: {line}", flush=True),
        cache=score_cache.ScoreCache.default() if config.reuse_scores else score_cache.ScoreCache(),
    )
    counter.close()
    return result


def summary(report: dict) -> str:
    """The printed summary; a number whose sets overlap is marked (!) and explained below it."""
    mark = {k: " (!)" for k, v in report.items() if isinstance(v, dict) and v.get("caveat")}
    sets = report["data"]["sets"]
    lines = [
        "images used: "
        + "; ".join(f"{role.split(' (')[0]} {info['name']} ({info['images']})" for role, info in sets.items())
    ]
    disjoint = [o for o in report["data"]["overlaps"]]
    lines.append(
        "overlap by content: "
        + (
            "; ".join(
                f"{o['a']} vs {o['b']}: " + ("disjoint" if o["disjoint"] else f"{o['shared']} shared") for o in disjoint
            )
            or "not checked (no training set known)"
        )
    )
    f = report["fidelity"]
    lines.append(
        f"FID {f['fid']:.3f}  KID {f['kid']:.5f} +- {f['kid_std']:.5f}  precision {f['precision']:.3f}  "
        f"recall {f['recall']:.3f}  ({report['features']['kind']} features){mark.get('fidelity', '')}"
    )
    m = report["memorization"]
    if "pixels" in m:
        lines.append(
            f"memorization: {m['rate_either']:.2%} of samples (pixels {m['pixels']['rate']:.2%}, "
            f"features {m['features']['rate']:.2%}; held-out real images: "
            f"{m['pixels']['quantile']:.0%} by construction){mark.get('memorization', '')}"
        )
    g = report["gan_test"]
    if "accuracy" in g:
        held_out = g.get("classifier_accuracy_held_out")
        lines.append(
            f"GAN-test accuracy: {g['accuracy']:.2%}"
            + (
                f" (its classifier: {held_out:.2%} on held-out {g['held_out_set']}; "
                f"normalised {g.get('normalised', float('nan')):.2f})"
                if held_out is not None
                else " (its classifier could not be checked on held-out real images)"
            )
            + mark.get("gan_test", "")
        )
    d = report["downstream"]
    if "recipes" in d:
        lines.append(
            f"downstream {d['metric']} over {d['seeds']} paired seeds: "
            + ", ".join(f"{v['description']} {v['mean']:.4f}" for v in d["recipes"].values())
            + f"; CAS ratio {d['cas_ratio']:.2f}"
            + mark.get("downstream", "")
        )
        lines.append(
            f"downstream verdict: {d['verdict']} (augmentation tuned on "
            + (
                "validation"
                if d["tuned"].get("validation_folds", 1) == 1
                else f"{d['tuned']['validation_folds']} folds"
            )
            + f": {d['tuned']['augmentation']}"
            + f"; synthetic share {d['tuned']['synthetic_share']}"
            + (
                f", real images {d['tuned']['synthetic_balance']}"
                if d["tuned"].get("synthetic_balance", "none") != "none"
                else ""
            )
            + ")"
        )
    lines += [f"(!) {k}: {report[k]['caveat']}" for k in mark]
    return "\n".join(lines)
