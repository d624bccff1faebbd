"""trainer/usefulness.py: choices on validation only, paired seeds, and a verdict that follows the data."""

import dataclasses

import numpy as np
import pytest

from trainer import classifier, data, usefulness


@pytest.mark.slow  # `dcgan evaluate`'s end-to-end test runs the same comparison through the CLI
def test_the_comparison_tunes_on_validation_and_pairs_its_seeds():
    train = data.load_source("digits:train[:10%]", 32)
    test = data.load_source("digits:test", 32)
    spec = usefulness.UsefulnessSpec(
        classifier.ClassifierSpec(steps=15, batch_size=16, width=8),
        seeds=2,
        tune_seeds=1,
        policies=("none", "crop_flip"),
        mixes=(),
        shares=(0.5,),
    )
    # "Synthetic" images whose labels are wrong: the verdict must not call them helpful.
    wrong = (train.images, (train.labels + 1) % 10)
    trained = []
    report = usefulness.compare(
        (train.images, train.labels), (test.images, test.labels), wrong, 10, spec, on_trained=lambda: trained.append(1)
    )
    assert len(trained) == spec.trainings() == 2 + 1 + 4 * 2
    tuned = report["tuned"]
    scores = tuned["validation_scores"]["policies"]
    tie_breaks = tuned["validation_log_likelihood"]["policies"]
    assert tuned["policy"] == max(scores, key=lambda k: (scores[k], tie_breaks[k])) and tuned["validation_images"] == 26
    assert report["metric"] == "accuracy" and report["train_images"] == 126 and report["test_images"] == 539
    assert "caveat" not in report  # accuracy over 26 images: no class's few images decide it
    recipes = report["recipes"]
    assert list(recipes) == list(usefulness.RECIPES) and all(len(r["runs"]) == 2 for r in recipes.values())
    assert recipes["synthetic_only"]["mean"] < 0.2  # learned the wrong labels
    gain = report["gain_over_augmentation"]
    np.testing.assert_allclose(
        gain["mean"], np.mean(np.subtract(recipes["with_synthetic"]["runs"], recipes["augmented"]["runs"]))
    )
    assert report["verdict"].startswith("synthetic images: ") and not report["verdict"].startswith(
        "synthetic images: helps"
    )


def test_specs_are_checked():
    with pytest.raises(ValueError, match="tune_folds"):
        usefulness.UsefulnessSpec(tune_folds=-1)
    with pytest.raises(ValueError, match="policies"):
        usefulness.UsefulnessSpec(policies=("sharpen",))
    with pytest.raises(ValueError, match="shares"):
        usefulness.UsefulnessSpec(shares=(0.0,))


TINY = usefulness.UsefulnessSpec(
    classifier.ClassifierSpec(steps=10, batch_size=16, width=8),
    seeds=1,
    tune_seeds=1,
    policies=("none",),
    mixes=(),
    shares=(0.5,),
    balances=("resample",),
)


def long_tail():
    """Digits 10% with classes 0-4 cut to 3 images each, and 100 test images."""
    train = data.load_source("digits:train[:10%]", 32)
    labels = np.asarray(train.labels)
    keep = np.concatenate([np.flatnonzero(labels == c)[: 3 if c < 5 else None] for c in range(10)])
    test = data.load_source("digits:test", 32)
    return train.images[keep], labels[keep], (test.images[:100], np.asarray(test.labels[:100]))


def test_imbalanced_data_tunes_class_balancing_on_validation_and_counts_every_training():
    images, labels, test = long_tail()
    spec = TINY
    trained = []
    report = usefulness.compare(
        (images, labels), test, (images, labels), 10, spec,
        on_trained=lambda: trained.append(1),
    )  # fmt: skip
    assert (
        len(trained) == spec.trainings(imbalanced=True) == (2 + 1 + 2) + 4 and report["metric"] == "balanced accuracy"
    )
    tuned = report["tuned"]
    # one validation image of each small class (and two of classes 7 and 8, which have 12 images): the
    # report says the tuned choices rest on them
    assert report["caveat"].startswith("tuned by balanced accuracy on fewer than 3 validation images of 7 class")
    assert report["caveat"].endswith("cross-validated tuning (--tune_folds) lets every training image validate")
    assert "7 class(es) (0, 1, 2, 3, 4, 7, 8), each weighing 1/10" in report["caveat"]
    assert set(tuned["validation_scores"]["balances"]) == {"none", "resample"}
    assert set(tuned["validation_scores"]["shares"]) == {"0.5", "0.5 resample"}
    assert tuned["synthetic_balance"] in ("none", "resample")
    chosen = {
        k: (v, tuned["validation_log_likelihood"]["balances"][k])
        for k, v in tuned["validation_scores"]["balances"].items()
    }
    assert tuned["augmentation"].endswith("class-balanced resampling") == (chosen["resample"] > chosen["none"])
    # a policy and mix tuned earlier on the same split: only the balancing is tuned on top
    trained.clear()
    chosen = usefulness.Baseline("none", "none", {"policies": {"none": 0.5}, "mixes": {"none": 0.5}})
    again = usefulness.tune_baseline((images, labels), 10, spec, on_trained=lambda: trained.append(1), chosen=chosen)
    assert len(trained) == 1 + len(spec.balances) and (again.policy, again.mix) == ("none", "none")
    assert again.scores["policies"] == {"none": 0.5} and set(again.scores["balances"]) == {"none", "resample"}
    assert set(again.log_likelihoods) == {"balances"} and all(
        v <= 0 for v in again.log_likelihoods["balances"].values()
    )
    with pytest.raises(ValueError, match="balances"):
        usefulness.UsefulnessSpec(balances=("oversample",))


def test_a_thin_validation_split_turns_tuning_into_folds_where_every_training_image_validates(tmp_path):
    from trainer import score_cache

    images, labels, test = long_tail()
    spec = dataclasses.replace(TINY, tune_folds=0)  # auto: one split would hold one image of each small class
    cache = score_cache.ScoreCache(str(tmp_path / "scores"))
    trained = []

    def run():
        return usefulness.compare(
            (images, labels), test, (images, labels), 10, spec,
            on_trained=lambda: trained.append(1), cache=cache,
        )  # fmt: skip

    report = run()
    tuned = report["tuned"]
    assert tuned["validation_folds"] == 5 and tuned["validation_images"] == len(labels)  # each image once
    assert tuned["validation"] == f"5-fold cross-validation ({len(labels)} training images, each validating once)"
    assert len(trained) == spec.trainings(imbalanced=True, folds=5) == (2 + 1 + 2) * 5 + 4
    assert "caveat" not in report  # three validation images of each small class now
    assert all(0 <= v <= 1 for v in tuned["validation_scores"]["balances"].values())
    again = run()  # every fold's score is in the cache: nothing trains again, the same choices and scores
    assert again["reused_scores"] == len(trained) // 2 and again["tuned"] == tuned


def test_on_a_long_tail_the_balancing_is_chosen_first_and_the_policies_are_compared_with_it():
    from trainer import downstream

    # validation scores shaped like the 5-vs-50 digits run's (5 folds): without balancing no augmentation
    # beats none; with re-weighting TrivialAugment wins by far (the greedy policy-first order missed it)
    table = {("none", "none"): 0.77, ("trivial_augment", "none"): 0.60, ("none", "resample"): 0.78,
             ("none", "reweight"): 0.894, ("trivial_augment", "reweight"): 0.978}  # fmt: skip
    names = {downstream.describe(downstream.POLICIES[n]()): n for n in ("none", "trivial_augment")}
    asked = []

    class Validation:  # stands in for usefulness.Tuning: a recipe's validation score from the table
        imbalanced = True

        def tune(self, recipe):
            asked.append((names[downstream.describe(recipe.policy)], recipe.balance))
            return [(table[asked[-1]], -0.5)]

    spec = usefulness.UsefulnessSpec(policies=("none", "trivial_augment"), mixes=(), balances=("resample", "reweight"))
    baseline = usefulness._tune_baseline(Validation(), spec, log=lambda line: None)
    assert (baseline.policy, baseline.mix, baseline.balance) == ("trivial_augment", "none", "reweight")
    assert asked[:3] == [("none", "none"), ("none", "resample"), ("none", "reweight")]  # balancing first
    assert baseline.scores["balances"] == {"none": 0.77, "resample": 0.78, "reweight": 0.894}
    assert baseline.scores["policies"] == {"none": 0.894, "trivial_augment": 0.978}
    shares = len(spec.shares) * 2  # each share with and without balancing the real images
    assert (len(asked) + shares) * spec.tune_seeds + len(usefulness.RECIPES) * spec.seeds == spec.trainings(True)


def test_a_saturated_validation_score_is_tied_and_the_log_likelihood_breaks_the_tie():
    # (score, log-likelihood) per tuning seed: 18 validation images put several candidates at 1.0
    candidates = {"0.25": [(1.0, -0.40), (1.0, -0.30)], "0.5": [(1.0, -0.20), (1.0, -0.30)], "1.0": [(0.9, -0.01)]}
    assert usefulness._best(candidates) == "0.5"  # mean -0.25 beats -0.35; the higher likelihood at 0.9 loses
    assert usefulness._best({"a": [(1.0, -0.3)], "b": [(1.0, -0.3)]}) == "a"  # a full tie: the first listed
    assert usefulness._best({"a": [(0.8, -0.1)], "b": [(0.9, -2.0)]}) == "b"  # the score decides first
    recalls = [1 / 3, 1.0, 1.0]  # a mean of recalls one ulp off the same mean in another order: still a tie
    tied = {"a": [(float(np.mean(recalls)), -0.5)], "b": [(float(np.mean(recalls[::-1])), -0.1)]}
    assert usefulness._best(tied) == "b"
    assert usefulness._best({"a": [(1.0, float("nan"))], "b": [(1.0, -9.0)]}) == "b"  # NaN never wins a tie


def test_a_rerun_takes_every_score_from_the_cache_and_a_new_generator_retrains_only_its_own_recipes(tmp_path):
    from trainer import score_cache

    train = data.load_source("digits:train[:10%]", 32)
    test = data.load_source("digits:test", 32)
    train_set, test_set = (train.images, train.labels), (test.images[:200], test.labels[:200])
    spec = usefulness.UsefulnessSpec(
        classifier.ClassifierSpec(steps=25, batch_size=16, width=8),
        seeds=1,  # the cache is per classifier: one seed is enough to count them
        tune_seeds=1,
        policies=("none",),
        mixes=(),
        shares=(0.5,),
    )
    cache = score_cache.ScoreCache(str(tmp_path / "scores"))
    generator_a = (train.images[::-1].copy(), train.labels[::-1].copy())
    generator_b = (train.images, (train.labels + 1) % 10)

    def run(synthetic):
        trained = []
        report = usefulness.compare(
            train_set, test_set, synthetic, 10, spec, cache=cache, on_trained=lambda: trained.append(1)
        )
        return report, len(trained)

    first, counted = run(generator_a)
    assert first["reused_scores"] == 0 and counted == spec.trainings() == 1 + 1 + 4 * 1
    assert len(list((tmp_path / "scores").glob("*.json"))) == counted
    scores = [x for r in first["recipes"].values() for x in r["runs"]]
    assert len(set(scores)) > 2  # trained enough that recipes differ: the equalities below mean something
    again, counted = run(generator_a)  # the same run again: nothing trained, the same report
    assert again["reused_scores"] == counted == spec.trainings()
    assert {k: v for k, v in again.items() if k != "reused_scores"} == {
        k: v for k, v in first.items() if k != "reused_scores"
    }
    # Another generator on the same data: the baseline's tuning and the real-only and augmented recipes are
    # the same classifiers; the share tuning and the two recipes with synthetic images are new.
    other, _ = run(generator_b)
    assert other["reused_scores"] == 1 + 2 * 1
    for name in ("real", "augmented"):
        assert other["recipes"][name]["runs"] == first["recipes"][name]["runs"]
    assert other["recipes"]["synthetic_only"]["runs"] != first["recipes"]["synthetic_only"]["runs"]
