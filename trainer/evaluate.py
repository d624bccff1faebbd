"""`dcgan evaluate`: is the synthetic data good, new, and useful?

    dcgan evaluate --real=digits:test --synthetic=runs/digits10 --train_data=digits:train[:10%] --report=eval/report.json
    dcgan evaluate --real=digits:test --synthetic=out/synth --train_data=digits:train[:10%] --feature_model=inception.keras

Reports (JSON, plus PNGs beside it):
  fidelity       FID, KID (mean, std over subsets), precision and recall: synthetic vs --real
  memorization   share of samples closer to a training image than held-out real images
                 typically are (pixel and feature space), and the closest pairs as a picture
  gan_test       a classifier trained on real data labels the conditional samples: accuracy
  downstream     the same small classifier trained on (a) the real training images,
                 (b) + classic augmentation, (c) synthetic only, (d) real + synthetic,
                 (e) real + synthetic + augmentation; tested on --real; mean and std over --seeds
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf

from trainer import config as config_lib
from trainer import data, export, metrics, shards, sources, summaries
from trainer.config import AugmentConfig, AugmentParams
from trainer.errors import UserError


def load_synthetic(config) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """(uint8 images, labels or None, description) from a generator (sampled now) or a shard output."""
    try:
        model_path = export.resolve_path(config.synthetic)
    except UserError:
        model_path = None
    if model_path is not None:
        sample_config = config_lib.resolve("sample", {"generator": model_path, "output": "-", "seed": config.seed})
        source = sources.generator_source(sample_config)
        batches = []
        for start in range(0, config.num_samples, 256):
            indices = tf.range(start, min(start + 256, config.num_samples), dtype=tf.int64)
            pixels, labels, _ = source.make_batch(indices)
            batches.append((np.clip(np.round(pixels.numpy()), 0, 255).astype(np.uint8), labels.numpy()))
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches]) if source.num_classes else None
        with open(os.path.join(os.path.dirname(model_path), "generator.json")) as f:
            meta = json.load(f)
        return images, labels, {"kind": "generator", "path": model_path, "step": meta["step"],
                                "train_data": meta.get("dataset", ""), "num_classes": source.num_classes}
    images, labels = [], []
    for image, label in shards.load(config.synthetic, shuffle=False).take(config.num_samples):
        images.append(image.numpy())
        labels.append(int(label))
    if not images:
        raise UserError(f"--synthetic={config.synthetic}: no images in the shards")
    labels = np.array(labels)
    conditional = bool((labels >= 0).all())
    return np.stack(images), (labels if conditional else None), {
        "kind": "shards", "path": config.synthetic, "train_data": "",
        "num_classes": int(labels.max()) + 1 if conditional else 0}


def load_real(dataset: str, flag: str, resolution: int, channels: int) -> data.Source:
    source = data.load_source(dataset, resolution, channels)
    if not source.in_memory:  # shards as real data: read them into memory
        images, labels = [], []
        for image, label in shards.load(dataset, shuffle=False, allow_uncommitted=True):
            images.append(image.numpy())
            labels.append(int(label))
        source.images, source.labels = np.stack(images), np.array(labels)
        if (source.labels < 0).any():
            source.labels, source.num_classes = None, 0
    if source.images.shape[1:] != (resolution, resolution, channels):
        raise UserError(f"--{flag}={dataset}: images are {source.images.shape[1:]}, the synthetic ones "
                        f"{(resolution, resolution, channels)}; mismatched resolution")
    return source


def run(config) -> dict:
    started = time.perf_counter()
    report: dict = {"config": json.loads(config.to_json())}
    # -- Synthetic images, and the real sets at their resolution.
    synth, synth_labels, synth_info = load_synthetic(config)
    resolution, channels = synth.shape[1], synth.shape[3]
    if config.resolution and config.resolution != resolution:
        raise UserError(f"--resolution={config.resolution} but the synthetic images are {resolution}x{resolution}: "
                        "mismatched resolution")
    report["synthetic"] = {**synth_info, "num_images": len(synth), "resolution": resolution, "channels": channels}
    real = load_real(config.real, "real", resolution, channels)
    train_name = config.train_data or synth_info.get("train_data", "")
    train = load_real(train_name, "train_data", resolution, channels) if train_name else None
    print(f"evaluate: {len(synth)} synthetic images ({synth_info['kind']}), {len(real.images)} real ({config.real})"
          + (f", {len(train.images)} training images ({train_name})" if train else ", no training set"))

    # -- Feature space.
    feature_name = config.feature_data or config.real
    feature_source = real if feature_name == config.real else load_real(feature_name, "feature_data", resolution, channels)
    space = metrics.feature_space(feature_source.images, feature_source.labels, feature_source.num_classes,
                                  feature_name, config.feature_model, steps=config.feature_steps)
    real_f, synth_f = space(real.images), space(synth)
    report["features"] = {"kind": space.kind, "data": feature_name if space.kind == "classifier" else "",
                          "model": config.feature_model, "dim": int(real_f.shape[1])}

    # -- Fidelity and diversity.
    kid_mean, kid_std = metrics.kid(real_f, synth_f, subsets=config.kid_subsets, seed=config.seed)
    precision, recall = metrics.precision_recall(real_f, synth_f)
    report["fidelity"] = {"fid": metrics.fid(real_f, synth_f), "kid": kid_mean, "kid_std": kid_std,
                          "precision": precision, "recall": recall}
    stem = os.path.splitext(config.report)[0]
    os.makedirs(os.path.dirname(os.path.abspath(config.report)), exist_ok=True)
    with open(f"{stem}-samples.png", "wb") as f:
        f.write(tf.io.encode_png(summaries.image_grid(synth[:64].astype(np.float32) / 127.5 - 1.0, columns=8)).numpy())

    # -- Memorization (needs the training images).
    if train is not None:
        report["memorization"] = {}
        flagged = np.zeros(len(synth), bool)
        for space_name, train_x, holdout_x, synth_x in (("pixels", train.images, real.images, synth),
                                                        ("features", space(train.images), real_f, synth_f)):
            result = metrics.memorization(train_x, holdout_x, synth_x, config.memorization_quantile)
            distances, nearest_index = result.pop("distances"), result.pop("nearest_index")
            flagged |= distances < result["threshold"]
            with open(f"{stem}-closest-{space_name}.png", "wb") as f:
                f.write(metrics.pairs_grid_png(synth, train.images, distances, nearest_index))
            report["memorization"][space_name] = result
        report["memorization"]["rate_either"] = float(flagged.mean())
    else:
        report["memorization"] = {"skipped": "no training set: pass --train_data"}

    # -- GAN-test: a real-data classifier labels conditional samples.
    classifier = space.classifier
    if classifier is None and synth_labels is not None and feature_source.labels is not None:
        classifier = metrics.feature_space(feature_source.images, feature_source.labels, feature_source.num_classes,
                                           feature_name, "", steps=config.feature_steps).classifier
    if synth_labels is not None and classifier is not None:
        report["gan_test"] = {"accuracy": metrics.accuracy(classifier, synth, synth_labels),
                              "classifier_accuracy_on_real": metrics.accuracy(classifier, real.images, real.labels)}
    else:
        report["gan_test"] = {"skipped": "needs a conditional generator and labelled real data"}

    # -- Downstream utility: does adding synthetic data help a classifier?
    labelled = train is not None and train.labels is not None and real.labels is not None and synth_labels is not None
    if config.downstream == "true" and not labelled:
        missing = [n for n, ok in (("--train_data", train is not None and train.labels is not None),
                                   ("--real", real.labels is not None), ("--synthetic", synth_labels is not None)) if not ok]
        raise UserError(f"--downstream=true needs labels, and {', '.join(missing)} has none (or is missing)")
    if config.downstream != "false" and labelled:
        report["downstream"] = downstream(config, train, real, synth, synth_labels)
    else:
        report["downstream"] = {"skipped": "needs labelled --train_data, --real and conditional --synthetic"}

    report["seconds"] = round(time.perf_counter() - started, 1)
    with open(config.report + ".tmp", "w") as f:
        json.dump(report, f, indent=2)
    os.replace(config.report + ".tmp", config.report)
    print(summary(report))
    print(f"report: {config.report}")
    return report


def downstream(config, train: data.Source, real: data.Source, synth: np.ndarray, synth_labels: np.ndarray) -> dict:
    classic = AugmentParams.create(**AugmentConfig(output="-").augmentation())  # `dcgan augment`'s defaults
    num_classes = max(train.num_classes, int(synth_labels.max()) + 1)
    variants = {
        "a_real": dict(images=train.images, labels=train.labels),
        "b_real_augmented": dict(images=train.images, labels=train.labels, augmentation=classic),
        "c_synthetic": dict(images=synth, labels=synth_labels),
        "d_real_synthetic": dict(images=train.images, labels=train.labels, synthetic=(synth, synth_labels)),
        "e_real_synthetic_augmented": dict(images=train.images, labels=train.labels, synthetic=(synth, synth_labels),
                                           augmentation=classic),
    }
    results = {}
    for name, kwargs in variants.items():
        accuracies = []
        for seed in range(config.seeds):
            model = metrics.train_classifier(num_classes=num_classes, steps=config.downstream_steps,
                                             seed=config.seed + seed, **kwargs)
            accuracies.append(metrics.accuracy(model, real.images, real.labels))
        results[name] = {"mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)), "runs": accuracies}
        print(f"downstream {name}: {np.mean(accuracies):.4f} +- {np.std(accuracies):.4f}")
    results["train_images"], results["test_images"] = len(train.images), len(real.images)
    results["augmentation"] = classic.describe()
    return results


def summary(report: dict) -> str:
    f = report["fidelity"]
    lines = [f"FID {f['fid']:.3f}  KID {f['kid']:.5f} +- {f['kid_std']:.5f}  "
             f"precision {f['precision']:.3f}  recall {f['recall']:.3f}  ({report['features']['kind']} features)"]
    m = report["memorization"]
    if "pixels" in m:
        lines.append(f"memorization: {m['rate_either']:.2%} of samples (pixels {m['pixels']['rate']:.2%}, "
                     f"features {m['features']['rate']:.2%}; held-out real images: "
                     f"{m['pixels']['quantile']:.0%} by construction)")
    if "accuracy" in report["gan_test"]:
        lines.append(f"GAN-test accuracy: {report['gan_test']['accuracy']:.2%}")
    d = report["downstream"]
    if "a_real" in d:
        lines.append("downstream accuracy: " + ", ".join(
            f"{k}={v['mean']:.4f}" for k, v in d.items() if isinstance(v, dict)))
    return "\n".join(lines)

