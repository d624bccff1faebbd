"""Look inside a training job's checkpoint: raw G against G_ema, and D's class pathway.

    python -m experiments.probe --job_dir=runs/generators/JOB --dataset='shapes.npz:train[80%:]' \
        --oracle=runs/generators/ORACLE.keras [--out=probe.png]

`dcgan train` exports only G_ema; the checkpoint also holds G and D. For the
latest checkpoint of JOB_DIR this prints, as one JSON object:

  oracle_g, oracle_g_ema  the oracle's accuracy on --per_class samples per class of G and of G_ema
                          (same z and labels): is the EMA averaging away what G draws?
  oracle_g_ema_batch_stats  the same for G_ema with its BatchNorm layers normalising by each batch
                          (training mode, mixed-class batches of 256) instead of the moving averages
                          the export uses: do averaged weights with copied statistics lose what
                          G_ema could draw (BigGAN's "standing statistics" question)?
  spread_*                per class, the mean pixel distance between two of 64 samples, over the same
                          for real images of the class (1.0: as varied as real; colour counts too)
  recall_g_ema            per class, improved recall (Kynkäänniemi et al. 2019, k=3) of G_ema's samples in
                          the oracle's features: the share of the class's real images that fall inside the
                          samples' k-NN balls, over the same with other real images of the class in the
                          samples' place, equal set sizes (1.0: as much of the class as real images
                          reach; `recall_ratio`). An oracle trained with colour and geometric
                          augmentation weighs the drawn shape more than pixels do: a class drawn in
                          one layout scored low here while its pixel spread (hue, background) stayed
                          high (docs/generators.md, fourteenth session)
  d_real, d_fake          per class, the share of real images (--dataset, images the job did not
                          train on) and of G's samples that D calls real (logit > 0), as D sees
                          them in training (training-mode BatchNorm, one batch of a kind at a time)
  d_label_margin          per class, D's mean logit on real images with their own label minus with
                          another class's label: near 0 when D's class pathway does not care
--out writes a picture: 10 samples per class (a row each, classes in order) from G, then G_ema, then G_ema
with batch statistics (three blocks of rows, the same z and labels in each).
"""

from __future__ import annotations

import argparse
import json
import os

from trainer import startup

startup.prepare()  # as `dcgan` does, before TensorFlow loads: the allocator and the CPU kernels

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job_dir", required=True)
    parser.add_argument("--dataset", required=True, help="real images the job did not train on, with labels")
    parser.add_argument("--oracle", required=True, help="a Keras classifier of the same classes")
    parser.add_argument("--per_class", type=int, default=200)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    print(json.dumps(probe(args.job_dir, args.dataset, args.oracle, args.per_class, args.out)))


def probe(job_dir: str, dataset: str, oracle_path: str, per_class: int, out: str = "") -> dict:
    import keras
    import tensorflow as tf

    from experiments import pool
    from trainer import classifier, config, data, metrics, models, summaries
    from trainer.train_state import TrainState

    cfg = config.load_json(config.TrainConfig, open(os.path.join(job_dir, "config.json")).read())
    real = data.load_source(dataset, cfg.resolution, cfg.channels)
    labels_real = np.asarray(real.labels)
    k = real.num_classes
    state = TrainState.build(cfg, real.images.shape[-1], k)
    pointer = json.load(open(os.path.join(job_dir, "checkpoints", "latest.json")))
    state.checkpoint().read(os.path.join(job_dir, "checkpoints", pointer["prefix"])).expect_partial()
    oracle = keras.models.load_model(oracle_path, compile=False)

    labels = np.repeat(np.arange(k), per_class).astype(np.int32)
    z = tf.random.stateless_normal([len(labels), cfg.latent_dim], seed=[1, 7])
    result = {"step": int(pointer["step"])}
    grids = []
    mixed = np.random.default_rng(0).permutation(len(labels))  # batch-stats batches mix the classes
    spread_real = [pool.pairwise_mean(real.images[labels_real == c][:64]) for c in range(k)]
    for name, g, batch_stats in (
        ("g", state.generator, False),
        ("g_ema", state.generator_ema, False),
        ("g_ema_batch_stats", state.generator_ema, True),
    ):
        order = mixed if batch_stats else np.arange(len(labels))
        fake = np.empty([len(labels), cfg.resolution, cfg.resolution, real.images.shape[-1]], np.float32)
        for i in range(0, len(labels), 256):
            index = order[i : i + 256]
            inputs = models.model_inputs(tf.gather(z, index), tf.constant(labels[index]), True)
            fake[index] = np.asarray(g(inputs, training=batch_stats))
        predicted = classifier.predict(oracle, data.to_uint8(fake)).argmax(1)
        result[f"oracle_{name}"] = round(float((predicted == labels).mean()), 4)
        result[f"oracle_{name}_per_class"] = [
            round(float(v), 3) for v in classifier.per_class_recall(predicted, labels, k)
        ]
        result[f"spread_{name}"] = [
            round(pool.pairwise_mean(data.to_uint8(fake[labels == c][:64])) / spread_real[c], 3) for c in range(k)
        ]
        grids.append(np.concatenate([fake[labels == c][:10] for c in range(k)]))
        if name == "g":
            g_fake = fake
        if name == "g_ema":
            features = metrics.FeatureSpace(oracle, "classifier")
            result["recall_g_ema"] = recall_ratio(
                features(real.images), labels_real, features(data.to_uint8(fake)), labels, k
            )

    group = max(cfg.minibatch_std, 1)
    chunk = 64 // group * group or group

    def d_logits(images, y):
        """D's logits in training mode, in a fixed shuffled order (with --minibatch_std, D sees groups of
        mixed classes, as in training) and chunks that are a multiple of its group size (the last padded with
        its own images, whose logits are dropped)."""
        order = np.random.default_rng(0).permutation(len(y))
        logits = np.empty(len(y), np.float32)
        for i in range(0, len(y), chunk):
            index = order[i : i + chunk]
            padded = np.resize(index, -(-len(index) // group) * group)
            out = models.discriminate(state.discriminator, tf.constant(images[padded]), tf.constant(y[padded]), True)
            logits[index] = np.asarray(out[0])[: len(index)]
        return logits

    x_real = np.asarray(data.to_model_range(real.images))
    own = d_logits(x_real, labels_real.astype(np.int32))
    other = d_logits(x_real, ((labels_real + 1 + labels_real % max(k - 1, 1)) % k).astype(np.int32))
    fake_logits = d_logits(g_fake, labels)
    result["d_real"] = [round(float((own[labels_real == c] > 0).mean()), 3) for c in range(k)]
    result["d_fake"] = [round(float((fake_logits[labels == c] > 0).mean()), 3) for c in range(k)]
    result["d_label_margin"] = [round(float((own - other)[labels_real == c].mean()), 3) for c in range(k)]
    if out:
        picture = summaries.image_grid(np.concatenate(grids), columns=10)
        keras.utils.save_img(out, picture, scale=False)
        result["picture"] = out
    return result


def recall_ratio(
    real: np.ndarray, labels_real: np.ndarray, fake: np.ndarray, labels_fake: np.ndarray, num_classes: int
) -> list:
    """Per class: improved recall (k=3) of `fake` features over the same for real features in their place.

    The class's real images are shuffled (seeded) and cut into halves A and B of n each, n = the smaller
    of half the real images and the number of samples: k-NN recall grows with the size of the set whose
    balls are drawn, so both sides hold n points. Recall of B inside n samples' balls and of A inside
    them, over recall of B inside A's balls and of A inside B's (both directions averaged: one split of
    ~25 images moves in steps of 1/25). NaN for a class with fewer than 4 points a side."""
    from trainer import metrics

    out = []
    for c in range(num_classes):
        own = real[labels_real == c]
        own = own[np.random.default_rng(c).permutation(len(own))]
        mine = fake[labels_fake == c]
        n = min(len(own) // 2, len(mine))
        if n < 4:
            out.append(float("nan"))
            continue
        half_a, half_b, mine = own[:n], own[n : 2 * n], mine[:n]
        reference = sum(metrics.precision_recall(half_b, half_a)) / 2  # (A inside B's balls, B inside A's)
        recall = (metrics.precision_recall(half_b, mine)[1] + metrics.precision_recall(half_a, mine)[1]) / 2
        out.append(round(recall / reference, 3) if reference > 0 else float("nan"))
    return out


if __name__ == "__main__":
    main()
