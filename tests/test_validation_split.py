"""trainer/validation_split.py: one split or k folds, every image validating once, and scores pooled across
folds exactly as one prediction of all the images would score them."""

import numpy as np
import pytest

from trainer import classifier
from trainer import validation_split as vs


def test_stratified_split_holds_out_each_class_and_keeps_a_single_image_in_training():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 2 + [3])
    keep, held = vs.stratified_split(labels, 0.2, seed=0)
    assert not set(keep) & set(held) and len(keep) + len(held) == len(labels)
    assert [int((labels[held] == c).sum()) for c in range(4)] == [10, 2, 1, 0]


def test_folds_hold_every_image_once_spread_small_classes_and_keep_single_images_in_training():
    labels = np.array([0] * 49 + [1] * 5 + [2] * 4 + [3] + [4] * 2)
    fold = vs.stratified_folds(labels, 5, seed=3)
    assert fold[labels == 3].tolist() == [-1]  # validating it would leave its class out of training
    assert (fold[labels != 3] >= 0).all()
    assert np.ptp(np.bincount(fold[fold >= 0], minlength=5)) <= 1  # sizes differ by one at most
    assert sorted(fold[labels == 1]) == [0, 1, 2, 3, 4]  # 5 images of a class: one in each fold
    assert len(set(fold[labels == 2])) == 4 and len(set(fold[labels == 4])) == 2
    found = vs.parts(labels, 5, seed=3)
    assert len(found) == 5
    held = np.concatenate([val for _, val in found])
    assert sorted(held) == sorted(np.flatnonzero(labels != 3))  # each once
    for fit, val in found:
        assert not set(fit) & set(val) and len(fit) + len(val) == len(labels)
        assert set(labels[fit]) == set(labels)  # every class still trained on in every fold
    np.testing.assert_array_equal(vs.stratified_folds(labels, 5, seed=3), fold)  # the seed decides
    tiny = np.array([0, 0, 1, 1, 2])
    assert vs.folds_for(tiny, 3, tune_folds=8) == 4  # no more folds than images that can validate
    assert all(len(val) for _, val in vs.parts(tiny, 4))
    assert vs.can_validate(tiny) == 4 and vs.can_validate(np.array([0, 1, 2])) == 0  # evaluate skips on 0
    with pytest.raises(ValueError, match="no class of the training images has two images"):
        vs.folds_for(np.array([0, 1, 2]), 3, tune_folds=0)
    keep, held = vs.parts(labels, 1, 0.2, seed=3)[0]
    np.testing.assert_array_equal(held, vs.stratified_split(labels, 0.2, seed=3)[1])


def test_auto_folds_only_where_one_split_would_be_thin_on_imbalanced_data():
    five = np.array([0] * 50 + [1] * 5)  # one split holds one image of class 1
    assert vs.folds_for(five, 2, tune_folds=0) == vs.AUTO_FOLDS
    assert vs.folds_for(np.array([0] * 50 + [1] * 15), 2, tune_folds=0) == 1  # 3 validation images: enough
    assert vs.folds_for(np.array([0] * 6 + [1] * 5), 2, tune_folds=0) == 1  # balanced: accuracy pools classes
    assert vs.folds_for(five, 2, tune_folds=1) == 1 and vs.folds_for(five, 2, tune_folds=3) == 3
    assert vs.folds_for(np.array([0] * 50 + [1]), 2, tune_folds=0) == 1  # folds cannot give a lone image more
    from trainer.config import evaluation

    assert evaluation.MAX_FOLDS == vs.MAX_FOLDS  # the flag's bound, checked before anything loads
    assert vs.is_imbalanced(np.array([0] * 20 + [1] * 5), 2)
    assert not vs.is_imbalanced(np.array([0] * 10 + [1] * 9), 2)
    train = np.array([0] * 40 + [1] * 5 + [3] * 5)  # class 2 absent from the training images: not named
    assert vs.thin_validation(np.array([0] * 8 + [1] + [3] * 3), train, 4) == [1]
    assert vs.thin_validation(np.array([0] * 8 + [1] * 3 + [3] * 3), train, 4) == []


@pytest.mark.parametrize("balanced", [True, False])
def test_pooled_fold_sums_score_as_one_prediction_of_every_image(balanced):
    rng = np.random.default_rng(0)
    labels = np.array([0] * 40 + [1] * 5 + [2] * 3 + [3] * 2)
    logits = rng.normal(size=(len(labels), 5)) * 3 + 2 * np.eye(5)[labels]  # class 4 never appears
    sums, held = [], []
    for _, val in vs.parts(labels, 5, seed=1):
        log_p = classifier.true_class_log_p(logits[val], labels[val])
        sums.append(vs.class_sums(log_p, logits[val].argmax(1), labels[val], 5))
        held.append(labels[val])
    score, log_likelihood = vs.pooled(sums, 5, balanced)
    if balanced:
        assert score == pytest.approx(classifier.balanced_accuracy_of(logits, labels, 5))
    else:
        assert score == pytest.approx(classifier.accuracy_of(logits, labels))
    assert log_likelihood == pytest.approx(classifier.log_likelihood(logits, labels, 5, balanced=balanced))
    assert len(sums) == 5 and all(vs.valid_sums(s, fold, 5) for s, fold in zip(sums, held))
    assert not vs.valid_sums(sums[0], held[0][:-1], 5)  # sums of other images than the fold holds
    if balanced:  # why the sums pool: the mean of the folds' own scores weighs a lone image of class 3 differently
        assert np.mean([vs.pooled([s], 5, True)[0] for s in sums]) != pytest.approx(score)


def test_a_damaged_fold_score_is_not_pooled():
    labels = np.array([0, 0, 1])
    good = (2.0, 1.0) + (1.0, 1.0) + (-0.5, -0.1)  # two classes: images, correct, log-probability sums
    assert vs.valid_sums(good, labels, 2)
    for bad in [good[:5], (3.0, 0.0) + good[2:], (2.0, 1.0, 1.5) + good[3:], good[:2] + (3.0,) + good[3:],
                good[:4] + (0.5, -0.1), (2.0, 1.0, -1.0) + good[3:], good[:5] + (float("nan"),)]:  # fmt: skip
        assert not vs.valid_sums(bad, labels, 2), bad
    absent = (2.0, 0.0) + (1.0, 0.0) + (-0.5, -0.2)  # a log-probability for a class the fold does not hold
    assert not vs.valid_sums(absent, np.array([0, 0]), 2)
