"""The experiment's own pieces: the procedural shapes dataset, the result tables, the checkpoint probe."""

import json

import numpy as np
import pytest

from experiments import equivalence, shapes, usefulness
from trainer import data


def test_shapes_are_a_pure_function_of_the_seed_and_load_with_splits(tmp_path):
    a, labels = shapes.make(per_class=3, seed=5)
    b, _ = shapes.make(per_class=3, seed=5)
    assert a.shape == (18, 32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert sorted(np.bincount(labels).tolist()) == [3] * len(shapes.NAMES)
    assert not np.array_equal(a, shapes.make(per_class=3, seed=6)[0])
    path = shapes.write(str(tmp_path / "shapes.npz"), per_class=10, seed=0)
    train, test = data.load_source(f"{path}:train", 32), data.load_source(f"{path}:test", 32)
    assert (len(train.images), len(test.images), train.num_classes) == (42, 18, 6)
    assert train.class_names == shapes.NAMES  # the names travel to plans, grids and shards


def test_minority_subset_keeps_a_fifth_of_the_lower_half_of_the_classes():
    labels = np.repeat(np.arange(4), 20)
    kept = labels[usefulness.minority_subset(labels, 4, ratio=5)]
    assert np.bincount(kept).tolist() == [4, 4, 20, 20]


def _run(augmented, with_synthetic):
    recipes = {r: {"description": r, "runs": list(augmented)} for r in usefulness.RECIPES}
    recipes["with_synthetic"]["runs"] = list(with_synthetic)
    tuned = {"augmentation": "crop + flip", "synthetic_share": 0.25}
    return {"recipes": recipes, "tuned": tuned, "train_images": 168, "test_images": 600, "seeds": 3,
            "metric": "accuracy", "cas_ratio": 0.5}  # fmt: skip


def test_tables_pool_the_paired_differences_of_every_generator():
    runs = {"g0": _run([0.50, 0.60, 0.55], [0.53, 0.62, 0.58]), "g1": _run([0.52, 0.58, 0.57], [0.54, 0.61, 0.59])}
    text = usefulness.tables({"runs": {"shapes 10% balanced": runs}})
    assert "168 real training images, 2 generators x 3 seeds, accuracy on 600 test images" in text
    diff = usefulness.pooled(runs, "with_synthetic")
    assert diff.n == 6 and abs(diff.mean - 0.025) < 1e-9 and diff.low > 0
    assert f"| with_synthetic | 0.5783 | +2.5 [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}] |" in text
    assert "Verdict: synthetic images: helps (+2.5 points" in text


def test_tables_also_give_the_interval_across_gan_trainings():
    # every seed helps with both generators (pooled: helps), but the two generators differ by 4 points:
    # over GAN trainings that is 2 samples, and the interval must say it cannot exclude zero
    runs = {"g1": _run([0.5, 0.6, 0.55], [0.55, 0.65, 0.60]), "g0": _run([0.5, 0.6, 0.55], [0.51, 0.61, 0.56])}
    text = usefulness.tables({"runs": {"digits 10% balanced": runs}})
    assert "Verdict: synthetic images: helps" in text
    assert "per generator: g0 0.50, g1 0.50" in text  # by name, not by the order the processes finished
    line = next(line for line in text.splitlines() if line.startswith("Per generator (points)"))
    assert line.startswith("Per generator (points): g0 +1.0, g1 +5.0; across GAN trainings")
    low, high = (float(v) for v in line.split("[")[1].rstrip("].").split(", "))
    assert low < 0 < high and abs((low + high) / 2 - 3.0) < 0.05
    assert "across GAN trainings" not in usefulness.tables({"runs": {"k": {"g0": runs["g0"]}}})


@pytest.mark.slow
def test_a_training_set_runs_every_recipe_per_generator_and_tunes_once(smoke_job, tmp_path):
    import json
    import os
    import types

    work = tmp_path / "work"
    work.mkdir()
    os.symlink(smoke_job, work / "digits-5-balanced-g0")  # the generator: any finished job dir
    tuned = {"policy": "crop_flip", "mix": "none", "scores": {}}
    (work / "results.json").write_text(json.dumps({"tuning": {"digits 5% balanced": tuned}}))
    args = types.SimpleNamespace(work=str(work), variant="", gan_flags="", gan_steps=1, steps=10, seeds=1,
                                 tune_seeds=1, tune_folds=1, generators=1, num_synthetic=64, minority_ratio=5,
                                 only="")  # fmt: skip
    experiment = usefulness.Experiment(args)
    training = experiment.training_set("digits", 5, "balanced")
    assert training.key == "digits 5% balanced" and len(training.labels) == len(training.images) > 0
    experiment.measure(training)
    written = json.loads((work / "results.json").read_text())
    run = written["runs"]["digits 5% balanced"]["g0"]
    assert run["tuned"]["policy"] == "crop_flip" and run["synthetic_images"] == 64
    assert all(len(run["recipes"][r]["runs"]) == 1 for r in usefulness.RECIPES)
    assert "Verdict: synthetic images" in usefulness.tables(written)


def test_probe_reads_g_d_and_g_ema_from_a_checkpoint(smoke_job, tmp_path):
    """experiments/probe.py: raw G and G_ema judged by an oracle, D's per-class view, the picture."""
    from experiments import pool, probe
    from trainer import classifier, data

    real = data.load_source("digits:test", 32)
    oracle = tmp_path / "oracle.keras"
    classifier.build(32, 1, 10, seed=0).save(oracle)  # untrained: the numbers are shares, not quality
    out = tmp_path / "probe.png"
    result = probe.probe(smoke_job, "digits:test", str(oracle), per_class=4, out=str(out))
    assert result["step"] > 0 and out.stat().st_size > 0
    for key in ("oracle_g", "oracle_g_ema", "oracle_g_ema_batch_stats"):
        assert 0.0 <= result[key] <= 1.0 and len(result[f"{key}_per_class"]) == 10
    for key in ("spread_g", "spread_g_ema", "spread_g_ema_batch_stats"):
        assert len(result[key]) == 10 and all(v >= 0.0 for v in result[key])
    same = np.zeros([3, 2, 2, 1], np.uint8)
    assert pool.pairwise_mean(same) == 0.0
    same[1] = 3  # distances 6 (0-1, 1-2 four pixels of 3) and 0 (0-2): mean 4
    assert pool.pairwise_mean(same) == pytest.approx(4.0)
    for key in ("d_real", "d_fake"):
        assert len(result[key]) == 10 and all(0.0 <= v <= 1.0 for v in result[key])
    assert len(result["d_label_margin"]) == 10 and real.num_classes == 10
    assert len(result["recall_g_ema"]) == 10  # 4 samples a class: 4 points a side, no NaN
    assert all(v >= 0.0 for v in result["recall_g_ema"])


def test_probe_recall_ratio_is_near_one_for_real_like_samples_and_low_for_one_layout():
    """recall_ratio: samples drawn like the real images score ~1 (equal set sizes, also when there are fewer
    samples than half the real images); one point repeated scores ~0; too few images give NaN."""
    from experiments import probe

    rng = np.random.default_rng(0)
    real = rng.normal(size=[800, 8]).astype(np.float32)
    labels = np.repeat([0, 1], 400)
    like_real = rng.normal(size=[400, 8]).astype(np.float32)  # the same distribution, other points
    collapsed = np.repeat(real[:1], 400, axis=0) + rng.normal(scale=1e-3, size=[400, 8]).astype(np.float32)
    fake, fake_labels = np.concatenate([like_real, collapsed]), np.repeat([0, 1], 400)
    covered, one_layout = probe.recall_ratio(real, labels, fake, fake_labels, 2)
    assert 0.85 < covered < 1.15 and one_layout < 0.1
    few = probe.recall_ratio(real, labels, like_real[:60], np.zeros(60, int), 1)[0]  # n = 60 a side, not 200
    assert 0.7 < few < 1.3
    assert np.isnan(probe.recall_ratio(real[:6], np.zeros(6, int), fake, fake_labels, 1)[0])  # 3 real a side


def test_data_equivalence_interpolates_the_real_only_curve_and_bootstraps_paired_seeds():
    sizes = [2.0, 4.0, 12.0]
    assert equivalence.crossing(sizes, [0.5, 0.7, 0.9], 0.6) == 3.0
    assert equivalence.crossing(sizes, [0.5, 0.7, 0.9], 0.8) == pytest.approx(8.0)
    assert equivalence.crossing(sizes, [0.5, 0.7, 0.9], 0.95) == float("inf")
    assert equivalence.crossing(sizes, [0.5, 0.7, 0.9], 0.4) == 2.0
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, 12)  # shared by every recipe of a seed: pairing must cancel it
    curve = np.array([0.5, 0.7, 0.9])[:, None] + noise[None, :]
    low, high, never = equivalence.bootstrap(sizes, curve, 0.8 + noise, draws=500)
    assert low == pytest.approx(8.0, abs=0.01) and high == pytest.approx(8.0, abs=0.01) and never == 0.0
    low, high, _ = equivalence.bootstrap(sizes, curve, 0.8 + rng.normal(0, 0.03, 12), draws=500)
    assert low < 8.0 < high


def test_data_equivalence_processes_splitting_the_ratios_keep_each_others_points(tmp_path):
    path = str(tmp_path / "equivalence.json")
    key = "digits 10% minority"
    equivalence.write_json({key: {"curve": {"3": {"runs": [0.8, 0.81]}, "1": {"runs": [0.9]}}}}, path)
    mine = {key: {"curve": {"2": {"runs": [0.85]}, "1": {"runs": []}}}}
    equivalence.write_json(mine, path)
    with open(path) as f:
        on_disk = json.load(f)
    assert on_disk == mine
    assert on_disk[key]["curve"] == {"3": {"runs": [0.8, 0.81]}, "2": {"runs": [0.85]}, "1": {"runs": [0.9]}}


def test_a_declared_baseline_trains_on_the_runs_images_with_its_seeds_and_pairs_them(tmp_path, monkeypatch, capsys):
    """experiments.declared_baseline: the named recipe on the run's own training images, the run's seeds
    (100g + k), scored once; paired with the run's `with_synthetic` scores; a stale .npz is refused."""
    import sys

    from experiments import declared_baseline
    from trainer import classifier, downstream

    key = "digits 10% minority"
    runs = {"g0": {"recipes": {"with_synthetic": {"runs": [0.9, 0.8]}}}}
    (tmp_path / "results.json").write_text(json.dumps({"runs": {key: runs}}))
    flags = ["--work", str(tmp_path), "--policy=crop_flip", "--balance=reweight", "--steps=3", "--generators=1"]
    monkeypatch.setattr(sys, "argv", ["declared_baseline", *flags, "--seeds=2"])
    declared_baseline.main()
    scores = json.loads((tmp_path / "declared.json").read_text())["crop_flip + none + reweight"]["g0"]
    training = usefulness.Experiment(
        type("Args", (), {"work": str(tmp_path), "minority_ratio": 5, "variant": ""})()
    ).training_set("digits", 10, "minority")
    recipe = classifier.Recipe(downstream.POLICIES["crop_flip"](), balance="reweight")
    models = classifier.train_many(
        training.images, training.labels, 10, classifier.ClassifierSpec(steps=3), [0, 1], recipe
    )
    expected = [classifier.balanced_accuracy(m, *training.test, 10) for m in models]
    assert scores == expected
    assert "pooled over 1 generator(s): with_synthetic - crop_flip + none + reweight" in capsys.readouterr().out
    np.savez(tmp_path / "digits-10-minority-g0.npz", x=training.images[:5], y=training.labels[:5])
    with pytest.raises(SystemExit, match="other images than digits 10% minority"):
        declared_baseline.main()
    for bad, message in (("--policy=sharpen", "--policy: one of"), ("--balance=oversample", "--balance: one of")):
        monkeypatch.setattr(sys, "argv", ["declared_baseline", "--work", str(tmp_path), "--policy=none", bad])
        with pytest.raises(SystemExit, match=message):
            declared_baseline.main()
    monkeypatch.setattr(sys, "argv", ["declared_baseline", "--work", str(tmp_path / "none"), "--policy=none"])
    with pytest.raises(SystemExit, match="no results.json"):
        declared_baseline.main()


def test_processes_sharing_a_work_dir_keep_each_others_changes(tmp_path):
    """A process's stale copy of a value another process has since rewritten does not overwrite it."""
    import types

    (tmp_path / "results.json").write_text(json.dumps({"wall_s": {"gan g1": 100}}))
    first, second = (usefulness.Experiment(types.SimpleNamespace(work=str(tmp_path))) for _ in range(2))
    second.results["wall_s"]["gan g1"] = 50  # g1 trained again over there
    second.save()
    first.results["wall_s"]["gan g2"] = 60
    first.save()
    assert json.loads((tmp_path / "results.json").read_text())["wall_s"] == {"gan g1": 50, "gan g2": 60}


def test_the_validation_probe_scores_named_recipes_as_the_tuning_does(tmp_path, monkeypatch, capsys):
    """experiments.validation_probe: a recipe's validation score equals what the run's tuning gives it (here
    3 folds), read from the run's cache on a second call; a malformed recipe is one line."""
    import sys

    from experiments import validation_probe
    from trainer import classifier, downstream
    from trainer import usefulness as product

    flags = ["--work", str(tmp_path), "--steps=3", "--tune_folds=3"]
    monkeypatch.setattr(sys, "argv", ["validation_probe", *flags, "--recipes=crop_flip+none+reweight"])
    validation_probe.main()
    out = capsys.readouterr().out
    assert "digits 10% minority: 3-fold cross-validation" in out
    runner = usefulness.Experiment(types_namespace(tmp_path))
    training = runner.training_set("digits", 10, "minority")
    spec = product.UsefulnessSpec(classifier.ClassifierSpec(steps=3), tune_seeds=1, tune_folds=3)
    tuning = product.Tuning((training.images, training.labels), 10, spec, None, runner.cache)
    score, log_likelihood = tuning.tune(classifier.Recipe(downstream.POLICIES["crop_flip"](), balance="reweight"))[0]
    assert tuning.judge.reused == 3  # every fold's score came from the probe's run
    assert (
        f"crop_flip+none+reweight: validation balanced_accuracy {score:.4f} (log-likelihood {log_likelihood:.4f})"
        in out
    )
    monkeypatch.setattr(sys, "argv", ["validation_probe", *flags, "--recipes=crop_flip+reweight"])
    with pytest.raises(SystemExit, match="is not POLICY\\+MIX\\+BALANCE"):
        validation_probe.main()


def types_namespace(work):
    import types

    return types.SimpleNamespace(work=str(work), minority_ratio=5, variant="")
