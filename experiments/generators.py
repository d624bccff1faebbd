"""Which generator design draws its classes? Designs compared on class fidelity, CAS and memorization.

    python -m pip install -e . --group experiments  # pip >= 25.1
    python -m experiments.generators --work=runs/generators                       # shapes 10%, 2 designs
    python -m experiments.generators --work=runs/generators --designs=default,no_cutout,sngan \
        --seeds=0,1,2 --stages=1000,2000,3000
    python -m experiments.generators --work=runs/generators --dataset=digits --designs=default,sngan
    python -m experiments.generators --work=runs/base --designs=   # the shared judges only (then copy the dir)

For each design (a set of `dcgan train` flags, DESIGNS below) and GAN seed it
trains a generator on NAME:train[:F%] in stages (the job resumes from stage to
stage, so one run gives the metric-vs-steps curve), and after every stage
measures the exported generator (G_ema) with judges that never saw the test split:

  oracle        the judge (trainer/classifier.py, dihedral + TrivialAugment for shapes) trained
                on NAME:train[F%:80%], real images the generator never saw; its accuracy on the
                validation split NAME:train[80%:] is the real-image reference
  class fidelity  the oracle's accuracy on --per_class samples of every class, per class, and
                normalised by the oracle's accuracy on real validation images (normalised GAN-test)
  D's view      the discriminator is not exported; D's per-class behaviour is read from the
                training logs (real/fake scores) in TensorBoard, not here
  CAS           (last stage) a judge trained on synthetic images only, tested on the validation
                split, divided by the same judge trained on the F% real images
  memorization  share of samples closer (pixels, and the oracle's features) to a training image
                than 1% of validation images are (metrics.memorization)

Everything is chosen on validation; the test split is not read. Writes
WORK/generators.json (every measurement, resumable) and WORK/generators.md (the
table: design x stage x metric, mean over GAN seeds, wall time per training).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainer import startup  # noqa: E402

startup.prepare()  # as `dcgan` does, before TensorFlow loads: the allocator and the CPU kernels

import numpy as np  # noqa: E402

# Each design with its own usual settings (the flags change only what the design needs).
DESIGNS = {
    # today's default: concat conditioning, BatchNorm D with a projection head, non-saturating loss,
    # Adam(2e-4, 0.5), DiffAugment color,translation,cutout (auto below 20k images)
    "default": "",
    # the same without cutout, which can erase the outline that is a shape's class
    "no_cutout": "--diffaugment=color,translation",
    # no DiffAugment at all: does D separate shapes from blobs when it sees the images as they are?
    "no_diffaugment": "--diffaugment=none",
    # SNGAN + projection D (Miyato & Koyama 2018): spectral norm, no BatchNorm in D, hinge loss,
    # Adam(0, 0.9), TTUR (D 4e-4, G 1e-4), class-conditional BatchNorm in G
    "sngan": "--d_spectral_norm --loss=hinge --beta1=0 --beta2=0.9 --g_lr=1e-4 --d_lr=4e-4 --g_conditioning=cbn "
    "--diffaugment=color,translation",
    # the same plus an AC-GAN class loss on top of the projection
    "sngan_ac": "--d_spectral_norm --loss=hinge --beta1=0 --beta2=0.9 --g_lr=1e-4 --d_lr=4e-4 --g_conditioning=cbn "
    "--diffaugment=color,translation --class_loss_weight=0.5",
    # cBN in G with today's BatchNorm D and optimiser
    "cbn": "--g_conditioning=cbn --diffaugment=color,translation",
    # StudioGAN's DCGAN recipe for CIFAR-10 (deep_conv): spectral-norm D without BatchNorm, cBN in G, an
    # AC-GAN class term (here on top of the projection head), non-saturating loss, Adam(2e-4, 0.5, 0.999);
    # StudioGAN also updates D twice per G step, which `dcgan train` does not
    "studio": "--d_spectral_norm --g_conditioning=cbn --class_loss_weight=1 --diffaugment=color,translation",
    # the same at half the width (G and D): ~3x the steps in the same wall time
    "studio_narrow": "--d_spectral_norm --g_conditioning=cbn --class_loss_weight=1 --diffaugment=color,translation "
    "--width=0.5",
    # today's default D and G at half the width, without cutout
    "narrow": "--diffaugment=color,translation --width=0.5",
    # D memorises its 168 images (probe: 93% of them called real, 50% of unseen real images, 0% of
    # fakes at step 2000): the 8 flips and quarter turns, which keep a shape's class, as DiffAugment
    "dihedral": "--diffaugment=color,translation,dihedral",
    "dihedral_narrow": "--diffaugment=color,translation,dihedral --width=0.5",
    # ... plus LeCam (Tseng et al. 2021) at the paper's weight, against D memorising and G collapsing
    "dihedral_lecam": "--diffaugment=color,translation,dihedral --lecam_weight=0.3",
    "dihedral_lecam_narrow": "--diffaugment=color,translation,dihedral --lecam_weight=0.3 --width=0.5",
    # dataset augmentation instead: D sees the reals in all 8 orientations but G's samples as drawn, so a G
    # that draws every shape in one pose is caught (with dihedral DiffAugment it is not)
    "real_dihedral_narrow": "--real_augment=dihedral --diffaugment=color,translation --width=0.5",
    # ... or mode seeking (MSGAN) alone: at step 4000 every sample of a class shares one pose
    "dihedral_ms_narrow": "--diffaugment=color,translation,dihedral --mode_seeking_weight=1 --width=0.5",
    # ... plus mode seeking (MSGAN), against one outline for every z and class
    "dihedral_lecam_ms_narrow": "--diffaugment=color,translation,dihedral --lecam_weight=0.3 --mode_seeking_weight=1 "
    "--width=0.5",
    # ... plus an AC-GAN class term on top of the projection head (each seed loses a different class)
    "dihedral_ac_narrow": "--diffaugment=color,translation,dihedral --class_loss_weight=1 --width=0.5",
    # the AC term buys class fidelity and costs diversity (CAS): a weaker term, or the same term with
    # mode seeking against one drawing per class
    "dihedral_ac03_narrow": "--diffaugment=color,translation,dihedral --class_loss_weight=0.3 --width=0.5",
    "dihedral_ac_ms_narrow": "--diffaugment=color,translation,dihedral --class_loss_weight=1 --mode_seeking_weight=1 "
    "--width=0.5",
    # the weaker term (best at 16000 steps) with mode seeking: its samples keep few poses per class
    "dihedral_ac03_ms_narrow": "--diffaugment=color,translation,dihedral --class_loss_weight=0.3 "
    "--mode_seeking_weight=1 --width=0.5",
    # each training settles on one orientation (one pose per class, an edge artifact in one of the 8):
    # D sees every drawing turned, so it cannot tell. Turn half of them only (ADA: non-leaking below 1)
    "dihedral_ac03_half_narrow": "--diffaugment=color,translation,dihedral --dihedral_p=0.5 "
    "--class_loss_weight=0.3 --width=0.5",
    # ... or transitional training (Shahbazi et al. 2022, "Collapse by conditioning"): few images per class
    # make a conditional GAN collapse where an unconditional one does not; G and D start unconditional
    # and the class fades in over steps 2000-6000, so G learns the poses before the classes
    "dihedral_ac03_fade_narrow": "--diffaugment=color,translation,dihedral --class_fade_in=2000,6000 "
    "--class_loss_weight=0.3 --width=0.5",
    # with the fade, the unconditional G of step 2000 already draws one layout for every z (only the hue
    # varies, which DiffAugment does not randomise): the diversity lost is in what D's augmentation
    # randomises. Without translation, D sees where G puts its shapes
    "dihedral_ac03_notrans_narrow": "--diffaugment=color,dihedral --class_loss_weight=0.3 --width=0.5",
    # ... so keep the augmentation and give D a diversity signal of its own: StyleGAN's minibatch standard
    # deviation (groups of 4), with which D sees how much a group of images differs
    "dihedral_ac03_mbstd_narrow": "--diffaugment=color,translation,dihedral --class_loss_weight=0.3 "
    "--minibatch_std=4 --width=0.5",
    # ... which did not see the collapse: a group's copies of one drawing get different shifts and turns, so
    # their spread looks like that of different drawings. Give each group one DiffAugment draw instead
    "dihedral_ac03_mbstd_shared_narrow": "--diffaugment=color,translation,dihedral --class_loss_weight=0.3 "
    "--minibatch_std=4 --minibatch_std_views=shared --width=0.5",
    # neither did D-side diversity signals; the collapse is in G's weights (thirteenth session): z enters
    # only G's first layer, beside a class embedding that decides the drawing. BigGAN's skip-z: z and the
    # class embedding set every BatchNorm's gain and bias, so each block has z to vary its drawing with
    "dihedral_ac03_skipz_narrow": "--diffaugment=color,translation,dihedral --class_loss_weight=0.3 "
    "--g_conditioning=skip_z --width=0.5",
    # which did not break it either. AC-GAN's G term also minimises the class's conditional entropy: it pulls
    # every sample of a class towards what D's classifier finds easiest. TAC-GAN's twin classifier, trained on
    # G's samples, is meant to cancel that pull; the same weight, so the twin is the only change
    "dihedral_ac03_tac_narrow": "--diffaugment=color,translation,dihedral --class_loss_weight=0.3 "
    "--class_loss=tac --width=0.5",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine() -> str:
    """'AMD EPYC (avx2); TF 2.21.0, onednn kernels': what a training ran on. Trainings repeat bit for bit on
    the same kind of CPU and kernels, not across kinds (docs/generators.md, sixteenth session)."""
    import tensorflow as tf

    from bench.common import cpu_description  # the benchmarks' CPU line: model and vector extensions
    from trainer import onednn

    return f"{cpu_description()}; TF {tf.__version__}, {'onednn' if onednn.active() else 'eigen'} kernels"


class Study:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        os.makedirs(self.work, exist_ok=True)
        self.path = os.path.join(self.work, "generators.json")
        self.results = json.load(open(self.path)) if os.path.isfile(self.path) else {}
        self._oracle = None
        self._splits = {}

    def save(self) -> None:
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.results, f, indent=1)
        os.replace(self.path + ".tmp", self.path)

    # -- data
    def base(self) -> str:
        if self.args.dataset == "digits":
            return "digits"
        from experiments import shapes

        name = f"shapes-s{self.args.shapes_seed}-r{self.args.resolution}.npz"
        path = os.path.join(self.work, name)
        if not os.path.isfile(path):
            shapes.write(path, per_class=400, seed=self.args.shapes_seed, resolution=self.args.resolution)
        return path

    def split(self, spec: str):
        """(images, labels, classes) of NAME:spec, loaded once per run."""
        if spec not in self._splits:
            from trainer import data

            loaded = data.load_source(f"{self.base()}:{spec}", self.args.resolution)
            self._splits[spec] = loaded.images, np.asarray(loaded.labels), loaded.num_classes
        return self._splits[spec]

    @property
    def key(self) -> str:
        if self.args.dataset == "digits":
            return f"digits {self.args.fraction}%"
        return f"shapes seed {self.args.shapes_seed} {self.args.resolution}px {self.args.fraction}%"

    def policy(self):
        from trainer import downstream

        return downstream.POLICIES["dihedral_trivial" if self.args.dataset == "shapes" else "none"]()

    def judge_spec(self):
        from trainer import classifier

        return classifier.ClassifierSpec(steps=self.args.judge_steps)

    # -- the oracle (trained once per dataset on real images the generators never see)
    def oracle(self):
        if self._oracle is not None:
            return self._oracle
        import keras

        from trainer import classifier

        path = os.path.join(self.work, self.key.replace(" ", "-").replace("%", "") + "-oracle.keras")
        x, y, k = self.split(f"train[{self.args.fraction}%:80%]")
        vx, vy, _ = self.split("train[80%:]")
        if os.path.isfile(path):
            model = keras.models.load_model(path, compile=False)
        else:
            log(f"training the oracle on {len(y)} real images")
            model = classifier.train(x, y, k, self.judge_spec(), 0, classifier.Recipe(self.policy()))
            model.save(path)
        store = self.results.setdefault(self.key, {})
        store["oracle_validation_accuracy"] = classifier.accuracy(model, vx, vy)
        self.save()
        self._oracle = model
        return model

    # -- generators
    def job(self, design: str, seed: int) -> str:
        return os.path.join(self.work, self.key.replace(" ", "-").replace("%", "") + f"-{design}-g{seed}")

    def train(self, design: str, seed: int, steps: int) -> float:
        from experiments.usefulness import dcgan_train

        return dcgan_train(
            self.job(design, seed),
            f"{self.base()}:train[:{self.args.fraction}%]",
            steps,
            seed,
            f"--resolution={self.args.resolution}",
            f"--kid_every={steps}",
            f"--checkpoint_every={self.args.stages[0]}",
            *shlex.split(DESIGNS[design]),
            *shlex.split(self.args.gan_flags),
        )

    def samples(self, design: str, seed: int) -> tuple:
        import tensorflow as tf

        from trainer import data, export, models

        model, meta = export.load(os.path.join(self.job(design, seed), "export", "generator.keras"))
        k, latent = int(meta["num_classes"]), int(meta["latent_dim"])
        labels = np.repeat(np.arange(k), self.args.per_class).astype(np.int32)
        z = tf.random.stateless_normal([len(labels), latent], seed=[seed, 7])
        images = np.concatenate(
            [
                data.to_uint8(
                    model(models.model_inputs(z[i : i + 500], tf.constant(labels[i : i + 500]), k), training=False)
                )
                for i in range(0, len(labels), 500)
            ]
        )
        return images, labels

    def measure(self, design: str, seed: int, stage: int, last: bool) -> dict:
        from trainer import classifier, metrics

        oracle = self.oracle()
        store = self.results[self.key]
        images, labels = self.samples(design, seed)
        k = int(labels.max()) + 1
        predicted = classifier.predict(oracle, images).argmax(1)
        per_class = classifier.per_class_recall(predicted, labels, k)
        tx, ty, _ = self.split(f"train[:{self.args.fraction}%]")
        vx, vy, _ = self.split("train[80%:]")
        features = _features(oracle)
        row = {
            "oracle_on_samples": float((predicted == labels).mean()),
            "normalised_gan_test": float((predicted == labels).mean() / store["oracle_validation_accuracy"]),
            "per_class": [round(float(v), 4) for v in per_class],
            "confusion": np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k).tolist(),
            "memorization_pixels": metrics.memorization(tx, vx, images)["rate"],
            "memorization_features": metrics.memorization(features(tx), features(vx), features(images))["rate"],
        }
        if last:
            model = classifier.train(images, labels, k, self.judge_spec(), 0, classifier.Recipe(self.policy()))
            row["synthetic_only_accuracy"] = classifier.accuracy(model, vx, vy)
            row["cas_ratio"] = row["synthetic_only_accuracy"] / self.real_only_accuracy()
        return row

    def real_only_accuracy(self) -> float:
        """CAS's denominator: the judge trained on the F% real images the GANs see, on the validation split
        (trained once per work dir)."""
        from trainer import classifier

        store = self.results[self.key]
        tx, ty, k = self.split(f"train[:{self.args.fraction}%]")
        cas_key = f"real-only judge on {len(ty)} images"
        if cas_key not in store:
            vx, vy, _ = self.split("train[80%:]")
            model = classifier.train(tx, ty, k, self.judge_spec(), 0, classifier.Recipe(self.policy()))
            store[cas_key] = classifier.accuracy(model, vx, vy)
            self.save()
        return store[cas_key]

    def diffaugment_probe(self) -> None:
        """What D is shown as 'real': the oracle's accuracy on validation images after each DiffAugment
        policy (8 draws per image). A policy that erases the class teaches D that the class need not show."""
        store = self.results[self.key]
        if "diffaugment_probe" in store:
            return
        import tensorflow as tf

        from trainer import classifier, diffaugment

        oracle = self.oracle()
        vx, vy, _ = self.split("train[80%:]")
        x = tf.constant(np.repeat(vx, 8, axis=0), tf.float32) / 127.5 - 1.0
        y = np.repeat(vy, 8)
        probe = {}
        for policy in ("none", "color", "translation", "cutout", "color,translation", "color,translation,cutout"):
            seen = x
            if policy != "none":
                draws = diffaugment.sample_parameters(len(y), tf.constant([3, 4], tf.int64))
                seen = diffaugment.augment(x, diffaugment.parse(policy), draws, 1.0)
            pixels = np.clip(np.round((seen.numpy() + 1.0) * 127.5), 0, 255).astype(np.uint8)
            probe[policy] = float((classifier.predict(oracle, pixels).argmax(1) == y).mean())
        store["diffaugment_probe"] = probe
        self.save()
        log(f"oracle on DiffAugmented real validation images: {probe}")

    def run(self) -> None:
        self.oracle()
        self.diffaugment_probe()
        if self.args.cas:
            self.real_only_accuracy()
        for seed in self.args.seeds:
            for design in self.args.designs:
                name = f"{design} g{seed}"
                entry = self.results[self.key].setdefault("runs", {}).setdefault(name, {"wall_s": 0.0})
                for stage in self.args.stages:
                    if str(stage) in entry:
                        continue
                    log(f"{self.key}: {name} to step {stage}")
                    here, machines = machine(), entry.setdefault("machines", [])
                    if here not in machines:  # a run resumed elsewhere lists both
                        machines.append(here)
                    entry["wall_s"] += self.train(design, seed, stage)
                    last = stage == self.args.stages[-1] and self.args.cas
                    entry[str(stage)] = self.measure(design, seed, stage, last=last)
                    log(
                        f"{name} @ {stage}: "
                        + json.dumps({k: v for k, v in entry[str(stage)].items() if k != "confusion"})
                    )
                    self.save()
        self.report()

    def report(self) -> None:
        store = self.results[self.key]
        lines = [
            f"## {self.key}",
            "",
            f"Oracle (trained on train[{self.args.fraction}%:80%]) on real validation images: "
            f"{store['oracle_validation_accuracy']:.4f}",
            "",
            "| design | GAN seeds | step | normalised GAN-test | worst class | CAS ratio | memorization px / feat "
            "| wall s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for design in DESIGNS:
            runs = [v for n, v in store.get("runs", {}).items() if n.split(" g")[0] == design]
            for stage in self.args.stages:
                rows = [r[str(stage)] for r in runs if str(stage) in r]
                if not rows:
                    continue
                mean = lambda key: np.mean([r[key] for r in rows if key in r]) if any(key in r for r in rows) else None  # noqa: E731
                cas = mean("cas_ratio")
                lines.append(
                    f"| {design} | {len(rows)} | {stage} | {mean('normalised_gan_test'):.3f} "
                    f"| {np.mean([min(r['per_class']) for r in rows]):.3f} | {'' if cas is None else f'{cas:.3f}'} "
                    f"| {mean('memorization_pixels'):.3f} / {mean('memorization_features'):.3f} "
                    f"| {np.mean([r['wall_s'] for r in runs]):.0f} |"
                )
        if "diffaugment_probe" in store:
            lines += ["", "Oracle accuracy on real validation images as D sees them after DiffAugment:", ""]
            lines += ["| policy | oracle accuracy |", "| --- | ---: |"]
            lines += [f"| {p} | {a:.3f} |" for p, a in store["diffaugment_probe"].items()]
        with open(os.path.join(self.work, "generators.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))


def _features(model):
    import keras

    from trainer import classifier

    extractor = keras.Model(model.input, model.get_layer(classifier.FEATURES_LAYER).output)
    return lambda images: np.concatenate(
        [
            np.asarray(extractor(images[i : i + 512].astype(np.float32), training=False))
            for i in range(0, len(images), 512)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/generators")
    parser.add_argument("--dataset", default="shapes", help="shapes or digits")
    parser.add_argument("--shapes_seed", type=int, default=0)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--fraction", type=int, default=10, help="percent of the training split the GAN sees")
    parser.add_argument(
        "--designs",
        default="default,sngan",
        help=f"names from {', '.join(DESIGNS)}; empty: only the judges every design shares (oracle, DiffAugment "
        "probe, real-only CAS judge), e.g. to copy one work dir into several that train side by side",
    )
    parser.add_argument("--seeds", default="0", help="GAN seeds, comma-separated")
    parser.add_argument("--stages", default="1000,2000,3000", help="steps at which to measure")
    parser.add_argument("--per_class", type=int, default=200, help="samples per class measured")
    parser.add_argument("--judge_steps", type=int, default=1500)
    parser.add_argument("--cas", type=int, default=1, help="1: train a judge on samples at the last stage (CAS)")
    parser.add_argument("--gan_flags", default="", help="flags added to every design's `dcgan train`")
    args = parser.parse_args()
    args.designs = [d for d in args.designs.split(",") if d]
    unknown = [d for d in args.designs if d not in DESIGNS]
    if unknown:
        parser.error(f"unknown designs {unknown}; choose from {list(DESIGNS)}")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.stages = sorted(int(s) for s in args.stages.split(","))
    Study(args).run()


if __name__ == "__main__":
    main()
