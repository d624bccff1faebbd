"""trainer/judging.py: every input of a judge score is in its cache key, and parts trained together score as
each trained alone, cached as such."""

import dataclasses

import numpy as np
import pytest

from trainer import classifier, data, judging, score_cache


def test_every_input_of_a_judge_score_is_in_its_cache_key(tmp_path):
    from trainer import downstream, score_cache

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8)
    labels = np.arange(12) % 3
    synthetic = (images[::-1].copy(), labels)
    judge = judging.Judge(3, classifier.ClassifierSpec(steps=5), None, score_cache.ScoreCache(str(tmp_path)))
    base = dict(
        recipe=classifier.Recipe(downstream.POLICIES["none"](), synthetic=synthetic),
        train=(images, labels),
        test=(images[:6], labels[:6]),
        name="accuracy",
    )

    def key(**changes):
        args = base | changes
        return judge._keys(args["recipe"], args["train"], args["test"], [0, 1], args["name"])

    reference = key()
    assert len(set(reference.values())) == 2 and reference == key()  # one per seed, and stable
    recipe = base["recipe"]
    changed = [
        key(recipe=dataclasses.replace(recipe, policy=None)),  # no policy is not the "none" policy
        key(recipe=dataclasses.replace(recipe, policy=downstream.POLICIES["crop_flip"]())),
        key(recipe=dataclasses.replace(recipe, mix="mixup")),
        key(recipe=dataclasses.replace(recipe, balance="reweight")),
        key(recipe=dataclasses.replace(recipe, synthetic_fraction=0.25)),
        key(recipe=dataclasses.replace(recipe, augment_synthetic=False)),
        key(recipe=dataclasses.replace(recipe, synthetic=None)),
        key(recipe=dataclasses.replace(recipe, synthetic=(images, (labels + 1) % 3))),
        key(recipe=dataclasses.replace(recipe, synthetic=(images[::-1].copy(), np.eye(3)[labels]))),  # soft labels
        key(train=(images, (labels + 1) % 3)),
        key(train=(images[:-1], labels[:-1])),
        key(test=(images[:5], labels[:5])),
        key(name="balanced_accuracy"),
    ]
    for other in (
        judging.Judge(4, judge.spec, None, judge.cache),
        judging.Judge(3, classifier.ClassifierSpec(steps=6), None, judge.cache),
        judging.Judge(3, classifier.ClassifierSpec(steps=5, width=8), None, judge.cache),
    ):
        changed.append(other._keys(recipe, base["train"], base["test"], [0, 1], "accuracy"))
    firsts = [reference[0]] + [k[0] for k in changed]
    assert len(set(firsts)) == len(firsts)
    # nothing cached without a folder, or for a policy without a description to key it by
    off = judging.Judge(3, judge.spec, None, score_cache.ScoreCache())
    assert off._keys(recipe, base["train"], base["test"], [0], "accuracy") == {}
    custom = dataclasses.replace(recipe, policy=lambda x, seeds: x)
    assert judge._keys(custom, base["train"], base["test"], [0], "accuracy") == {}


@pytest.fixture(scope="module")
def digits():
    return data.load_source("digits:train[:20%]", 32)


def likelihood(model, images, labels, num_classes):  # a fine score: equal models give equal numbers
    return (classifier.accuracy(model, images, labels), classifier.log_likelihood(
        classifier.predict(model, images), labels, num_classes))  # fmt: skip


def test_parts_train_together_and_each_score_is_cached_as_if_trained_alone(digits, tmp_path, monkeypatch):
    x, y = digits.images[:160], np.asarray(digits.labels[:160])
    spec = classifier.ClassifierSpec(steps=6, batch_size=16, width=4)
    recipe = classifier.Recipe(balance="reweight")
    fit, test_a, test_b = np.arange(40, 160), (x[:40], y[:40]), (x[120:], y[120:])
    judge = judging.Judge(10, spec, cache=score_cache.ScoreCache(str(tmp_path / "together")))
    together = judge.scores_on_parts(recipe, (x, y), [(fit, test_a), (None, test_b)], [1, 2], likelihood, "ll", 2)
    alone = judging.Judge(10, spec, cache=score_cache.ScoreCache(str(tmp_path / "alone")))
    expected = [alone.scores(recipe, (x[fit], y[fit]), test_a, [1, 2], likelihood, "ll", 2),
                alone.scores(recipe, (x, y), test_b, [1, 2], likelihood, "ll", 2)]  # fmt: skip
    np.testing.assert_allclose(np.array(together), np.array(expected), atol=1e-4)
    assert judge.reused == 0 and together[0][0] != together[0][1]
    # the same keys as trained alone: a judge over the first cache finds the one-part scores there
    finder = judging.Judge(10, spec, cache=judge.cache)
    assert finder.scores(recipe, (x[fit], y[fit]), test_a, [1, 2], likelihood, "ll", 2) == together[0]
    assert finder.reused == 2
    # more models than train side by side: in groups, the same numbers
    monkeypatch.setattr(judging, "TOGETHER", 3)
    grouped = judging.Judge(10, spec, cache=score_cache.ScoreCache(str(tmp_path / "grouped")))
    again = grouped.scores_on_parts(recipe, (x, y), [(fit, test_a), (None, test_b)], [1, 2], likelihood, "ll", 2)
    np.testing.assert_allclose(np.array(again), np.array(together), atol=1e-4)
