"""Which training images validate a tuning candidate: one stratified split, or k folds each validating once.

The usefulness comparison (trainer/usefulness.py) tunes the baseline and the synthetic share on images carved
from the training images. One split holding a fifth of each class leaves one or two images of a small class
(5 images: one), and balanced accuracy weighs that class 1/num_classes: a single image decides the tuning.
k-fold cross-validation lets every training image validate once (a candidate is trained k times, on k - 1
folds); the out-of-fold predictions are pooled into one score by per-class sums (`class_sums`, `pooled`),
so a fold holding none of some class's images takes nothing from it. Pure NumPy (no TensorFlow):

    python - <<'PY'
    import numpy as np
    from trainer import validation_split as vs
    labels = np.array([0] * 50 + [1] * 5)
    print(vs.folds_for(labels, 2, tune_folds=0), vs.parts(labels, 5)[0][1])  # 5 folds; fold 0's images
    PY
"""

from __future__ import annotations

import numpy as np

IMBALANCE = 1.5  # largest / smallest class count above which scores are balanced accuracies
THIN_VALIDATION = 3  # fewer validation images of a class than this: balanced accuracy there rests on them
AUTO_FOLDS = 5  # tune_folds=0: the folds used where one split would be thin
MAX_FOLDS = 20  # each candidate trains once per fold


def is_imbalanced(labels: np.ndarray, num_classes: int) -> bool:
    counts = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
    counts = counts[counts > 0]
    return bool(len(counts) and counts.max() > IMBALANCE * counts.min())


def thin_validation(val_labels, train_labels, num_classes: int) -> list[int]:
    """The classes of the training images with fewer than THIN_VALIDATION validation images."""
    counts = np.bincount(np.asarray(val_labels, np.int64), minlength=num_classes)
    present = np.bincount(np.asarray(train_labels, np.int64), minlength=num_classes) > 0
    return [int(c) for c in np.flatnonzero(present & (counts < THIN_VALIDATION))]


def stratified_split(labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(keep, held) index arrays: `fraction` of each class (at least one where a class has two or more) held."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = int(round(len(idx) * fraction)) if len(idx) > 1 else 0
        n = min(max(n, 1 if len(idx) > 1 else 0), len(idx) - 1)
        held.extend(idx[:n])
        keep.extend(idx[n:])
    return np.sort(np.array(keep, np.int64)), np.sort(np.array(held, np.int64))


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold of each image [N], or -1 for an image never held out (the only one of its class). A class's
    images are dealt round the folds from where the previous class stopped, so folds differ in size by at
    most one image and a small class's images land in different folds."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    fold = np.full(len(labels), -1, np.int64)
    start = 0
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        if len(idx) > 1:
            fold[idx] = (start + np.arange(len(idx))) % folds
            start += len(idx)
    return fold


def can_validate(labels: np.ndarray) -> int:
    """How many images can validate a tuning choice: those of classes with two or more (a lone image stays
    in training)."""
    counts = np.bincount(np.asarray(labels, np.int64))
    return int(counts[counts > 1].sum())


def folds_for(
    labels: np.ndarray, num_classes: int, tune_folds: int, validation_fraction: float = 0.2, seed: int = 0
) -> int:
    """The folds tuning uses. `tune_folds` >= 1: itself, but no more than the images that can validate (those
    of classes with two or more: a fold holds at least one); 0 (auto): AUTO_FOLDS where scores are balanced
    accuracies (imbalanced data) and one split would hold fewer than THIN_VALIDATION images of a class that
    folds can give more (a class of one image never validates), else 1 (one split)."""
    labels = np.asarray(labels)
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)
    if can_validate(labels) == 0:
        raise ValueError("no class of the training images has two images: nothing can validate a tuning choice")
    if tune_folds == 0:
        tune_folds = 1
        if is_imbalanced(labels, num_classes):
            _, held = stratified_split(labels, validation_fraction, seed)
            thin = thin_validation(labels[held], labels, num_classes)
            tune_folds = AUTO_FOLDS if any(counts[c] > 1 for c in thin) else 1
    return tune_folds if tune_folds == 1 else min(tune_folds, can_validate(labels))


def parts(
    labels: np.ndarray, folds: int, validation_fraction: float = 0.2, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(fit index, validation index)]: one stratified split for folds=1, else one pair per fold (`folds` as
    `folds_for` gives it: none is empty)."""
    if folds == 1:
        return [stratified_split(np.asarray(labels), validation_fraction, seed)]
    fold = stratified_folds(labels, folds, seed)
    return [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(folds)]


def class_sums(log_p_true: np.ndarray, predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple:
    """One fold's validation, as sums that pool across folds: (images, correct, summed log-probability of the
    true class) per class, 3 x num_classes floats. `log_p_true` [N]: log-probability of each image's label."""
    labels = np.asarray(labels, np.int64)
    count = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels, weights=np.asarray(predicted) == labels, minlength=num_classes)
    log_p = np.bincount(labels, weights=np.asarray(log_p_true, np.float64), minlength=num_classes)
    return tuple(float(v) for v in np.concatenate([count, correct, log_p]))


def valid_sums(numbers: tuple, labels: np.ndarray, num_classes: int) -> bool:
    """Whether `numbers` can be the `class_sums` of a fold whose validation labels are `labels` (a damaged
    cache file must not pool into a score): its images per class, a whole number correct of them, and
    log-probabilities <= 0, none for a class it does not hold (NaN fails)."""
    if len(numbers) != 3 * num_classes:
        return False
    count, correct, log_p = np.asarray(numbers, np.float64).reshape(3, num_classes)
    expected = np.bincount(np.asarray(labels, np.int64), minlength=num_classes)
    if len(expected) != num_classes or not (count == expected).all():
        return False
    whole = (correct == np.round(correct)).all() and (0 <= correct).all() and (correct <= count).all()
    return bool(whole and (log_p <= 0).all() and (log_p[count == 0] == 0).all())


def pooled(sums: list, num_classes: int, balanced: bool) -> tuple[float, float]:
    """(score, mean log-likelihood of the true class) over every fold's images, from their `class_sums`:
    balanced accuracy and the mean of each class's mean log-likelihood if `balanced`, else accuracy and the
    mean over images (as one prediction of all the images would give)."""
    count, correct, log_p = np.sum(np.asarray(sums, np.float64), axis=0).reshape(3, num_classes)
    if not balanced:
        return float(correct.sum() / count.sum()), float(log_p.sum() / count.sum())
    present = count > 0
    return float(np.mean(correct[present] / count[present])), float(np.mean(log_p[present] / count[present]))
