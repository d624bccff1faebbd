"""Will the synthetic images help a classifier? The comparison `dcgan evaluate` reports and the experiments run.

Every choice is made on validation images carved from the training images, never
on the test set: one stratified split (`UsefulnessSpec.validation_fraction`), or
with `tune_folds` k-fold cross-validation, every training image validating once
(each candidate trained on k - 1 folds, its out-of-fold predictions pooled into
one score): what to use when one split would hold one or two images of a small
class and balanced accuracy would rest on them (`tune_folds=0` decides that):
  1. the augmentation baseline: on imbalanced data first the class balancing
     (none, class-balanced resampling or loss re-weighting, `spec.balances`) on
     unaugmented images, then with it the best of `spec.policies`
     (downstream.POLICIES), then the same with mixup or CutMix if that scores higher;
  2. the share of synthetic images per batch (`spec.shares`), with the baseline's
     augmentation applied to the synthetic images too (on imbalanced data also
     whether the real images keep the baseline's balancing).
A small validation set saturates the score (several candidates at 1.0): ties go
to the higher mean log-likelihood of the true class on the same images, a proper
score that does not saturate, then to the first candidate listed.
Then each recipe trains the judge (trainer/classifier.py) on all the training
images with the same seeds (seed k of one recipe shares initial weights and
batch order with seed k of another) and is tested once on the test set:

  real             real images, no augmentation
  augmented        real images + the tuned augmentation: the baseline synthetic images have to beat
  synthetic_only   synthetic images only, the same augmentation (Classification Accuracy Score, CAS)
  with_synthetic   real + synthetic images at the tuned share, the same augmentation on both

The verdict compares with_synthetic with augmented seed by seed (trainer/stats.py):
"helps" only when the 95% interval of the paired difference lies above zero.
On imbalanced training data (largest class over 1.5x the smallest) every score
is balanced accuracy (the mean of per-class recalls), otherwise accuracy.

    python - <<'PY'
    import numpy as np
    from trainer import classifier, data, usefulness
    d = data.load_source("digits:train[:10%]", 0, 0); t = data.load_source("digits:test", 0, 0)
    spec = usefulness.UsefulnessSpec(classifier.ClassifierSpec(steps=100), seeds=2, tune_seeds=1,
                                     policies=("none", "crop_flip"), mixes=(), shares=(0.5,))
    print(usefulness.compare((d.images, d.labels), (t.images, t.labels), (d.images, d.labels), 10, spec)["verdict"])
    PY
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional

import numpy as np

from trainer import classifier, downstream, judging, score_cache, stats, validation_split

RECIPES = {
    "real": "real images only",
    "augmented": "real images + tuned augmentation",
    "synthetic_only": "synthetic images only (CAS)",
    "with_synthetic": "real + synthetic images, tuned augmentation on both",
}


@dataclasses.dataclass(frozen=True)
class UsefulnessSpec:
    """How hard the comparison looks: the judge's budget, seeds, and what is tuned on validation."""

    classifier: classifier.ClassifierSpec = classifier.ClassifierSpec()
    seeds: int = 5  # paired seeds per recipe on the test set
    tune_seeds: int = 2  # seeds per candidate on the validation images
    validation_fraction: float = 0.2  # of each class of the training images, for tuning (one split)
    # 1: one split; k >= 2: k-fold cross-validation; 0: AUTO_FOLDS folds where one split is thin, else one split
    tune_folds: int = 1
    policies: tuple = tuple(downstream.POLICIES)  # baseline candidates (names in downstream.POLICIES)
    mixes: tuple = ("mixup", "cutmix")  # tried on top of the best policy
    shares: tuple = (0.25, 0.5)  # synthetic share per batch candidates
    balances: tuple = ("resample", "reweight")  # tried on imbalanced data on top of the best policy and mix
    seed: int = 0
    minimum: float = 0.0  # a gain must exceed this (accuracy units) to be called "helps"

    def __post_init__(self):
        if self.seeds < 1 or self.tune_seeds < 1:
            raise ValueError(f"seeds={self.seeds}, tune_seeds={self.tune_seeds}: both must be >= 1")
        if not 0 <= self.tune_folds <= validation_split.MAX_FOLDS:
            raise ValueError(
                f"tune_folds={self.tune_folds}: 1 (one split), 2-{validation_split.MAX_FOLDS} folds or 0 (auto)"
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction={self.validation_fraction} must be in (0, 1)")
        unknown = [p for p in self.policies if p not in downstream.POLICIES]
        if unknown or not self.policies:
            raise ValueError(f"policies {unknown or '()'}: choose from {', '.join(downstream.POLICIES)}")
        if any(m not in classifier.MIXES for m in self.mixes):
            raise ValueError(f"mixes={self.mixes}: choose from {classifier.MIXES}")
        if any(b not in classifier.BALANCES for b in self.balances):
            raise ValueError(f"balances={self.balances}: choose from {classifier.BALANCES}")
        if not self.shares or any(not 0 < s <= 1 for s in self.shares):
            raise ValueError(f"shares={self.shares}: each in (0, 1]")

    def trainings(self, imbalanced: bool = False, folds: int = 1) -> int:
        """Classifiers `compare` trains (for a progress counter); more on imbalanced training data, and each
        tuning candidate once per fold (validation_split.folds_for)."""
        shares = len(self.shares) * (2 if imbalanced else 1)
        balances = 1 + len(self.balances) if imbalanced and self.balances else 0  # chosen first, no augmentation
        tuned = len(self.policies) + len(self.mixes) + balances + shares
        return tuned * self.tune_seeds * folds + len(RECIPES) * self.seeds


def score_fn(imbalanced: bool) -> Callable:
    if imbalanced:
        return lambda model, x, y, k: classifier.balanced_accuracy(model, x, y, k)
    return lambda model, x, y, k: classifier.accuracy(model, x, y)


def _means(runs: list) -> tuple[float, float]:
    """(mean score, mean log-likelihood of the true class) of one candidate's validation runs."""
    score, log_likelihood = np.mean(np.asarray(runs, np.float64), axis=0)
    return float(score), float(log_likelihood) if np.isfinite(log_likelihood) else -math.inf


def _best(candidates: dict) -> str:
    """The candidate with the highest mean validation score. A validation split of a few dozen images
    saturates the score (several candidates at 1.0), so ties go to the higher mean log-likelihood of the
    true class, then to the first listed."""
    names = list(candidates)

    def key(name):  # scores equal but for float rounding (a mean of recalls, of seeds) are tied
        score, log_likelihood = _means(candidates[name])
        return round(score, 9), log_likelihood, -names.index(name)

    return max(names, key=key)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The augmentation chosen on validation: a POLICIES name, a mix, a class balancing, and the scores behind them."""

    policy: str
    mix: str = "none"
    scores: dict = dataclasses.field(default_factory=dict)
    balance: str = "none"
    log_likelihoods: dict = dataclasses.field(default_factory=dict)  # the tie-breaks behind `scores`

    def recipe(self, **kwargs) -> classifier.Recipe:
        kwargs.setdefault("balance", self.balance)
        return classifier.Recipe(downstream.POLICIES[self.policy](), mix=self.mix, **kwargs)

    @property
    def description(self) -> str:
        text = downstream.POLICIES[self.policy]().description
        text += f" + {self.mix}" if self.mix != "none" else ""
        return (
            text
            + {"none": "", "resample": " + class-balanced resampling", "reweight": " + loss re-weighting"}[self.balance]
        )


class Tuning:
    """The training images split for tuning (trainer/validation_split.py: one split or k folds), the score,
    the tuning seeds and the judge."""

    def __init__(
        self,
        train: tuple,
        num_classes: int,
        spec: UsefulnessSpec,
        on_trained: Optional[Callable],
        cache: score_cache.ScoreCache = score_cache.ScoreCache(),
    ):
        labels = np.asarray(train[1])
        self.imbalanced = validation_split.is_imbalanced(labels, num_classes)
        self.score = score_fn(self.imbalanced)
        self.score_name = "balanced_accuracy" if self.imbalanced else "accuracy"
        self.folds = validation_split.folds_for(
            labels, num_classes, spec.tune_folds, spec.validation_fraction, spec.seed
        )
        indices = validation_split.parts(labels, self.folds, spec.validation_fraction, spec.seed)
        self.train = (train[0], labels)
        # (fit index, validation images and labels) per part: one split, or one per fold
        self.parts = [(fit, (train[0][val], labels[val])) for fit, val in indices]
        self.val_labels = np.concatenate([val[1] for _, val in self.parts])
        self.num_classes, self.spec = num_classes, spec
        self.judge = judging.Judge(num_classes, spec.classifier, on_trained, cache)

    def tune(self, recipe: classifier.Recipe) -> list[tuple[float, float]]:
        """(score, log-likelihood of the true class) on the validation images, one pair per tuning seed; with
        folds, each seed's out-of-fold predictions pooled (every fold's model trained with that seed)."""
        seeds = [self.spec.seed + 1000 + k for k in range(self.spec.tune_seeds)]
        if self.folds == 1:
            name = self.score_name + "+log_likelihood"
            return self.judge.scores_on_parts(recipe, self.train, self.parts, seeds, self.validation_score, name, 2)[0]
        width, valid = (
            3 * self.num_classes,
            functools.partial(validation_split.valid_sums, num_classes=self.num_classes),
        )
        per_fold = self.judge.scores_on_parts(
            recipe, self.train, self.parts, seeds, self.class_sums, "per_class_sums", width, valid
        )
        return [
            validation_split.pooled([fold[i] for fold in per_fold], self.num_classes, self.imbalanced)
            for i in range(len(seeds))
        ]

    def validation_score(self, model, images, labels, num_classes) -> tuple[float, float]:
        """(the score, the tie-break) from one prediction: balanced accuracy or accuracy as `self.score`."""
        logits = classifier.predict(model, images)
        if self.imbalanced:
            score = classifier.balanced_accuracy_of(logits, labels, num_classes)
        else:
            score = classifier.accuracy_of(logits, labels)
        return score, classifier.log_likelihood(logits, labels, num_classes, balanced=self.imbalanced)

    @staticmethod
    def class_sums(model, images, labels, num_classes) -> tuple:
        """One fold's validation as per-class sums (validation_split.class_sums), pooled across folds."""
        logits = classifier.predict(model, images)
        return validation_split.class_sums(
            classifier.true_class_log_p(logits, labels), logits.argmax(1), labels, num_classes
        )

    @property
    def description(self) -> str:
        if self.folds == 1:
            return f"a validation split of {len(self.val_labels)} training images"
        return f"{self.folds}-fold cross-validation ({len(self.val_labels)} training images, each validating once)"


def tune_baseline(
    train: tuple,
    num_classes: int,
    spec: UsefulnessSpec = UsefulnessSpec(),
    on_trained: Optional[Callable] = None,
    log: Callable = lambda line: None,
    chosen: Optional[Baseline] = None,
    cache: score_cache.ScoreCache = score_cache.ScoreCache(),
) -> Baseline:
    """(Imbalanced data) the best of spec.balances or none, without augmentation; then with it the best of
    spec.policies on the validation images, then with each of spec.mixes if that is better. `chosen`: a policy
    and mix already tuned (by an earlier run on the same images): only the balancing is tuned on top of them.
    `cache`: scores found there are not trained again."""
    return _tune_baseline(Tuning(train, num_classes, spec, on_trained, cache), spec, log, chosen)


def _tune_baseline(split: Tuning, spec: UsefulnessSpec, log: Callable, chosen: Optional[Baseline] = None) -> Baseline:
    carried, carried_log_likelihoods, tuned, balance = {}, {}, {}, "none"
    if chosen is None:
        if split.imbalanced and spec.balances:
            # On a long tail augmentation and class balancing interact: without balancing every augmentation
            # can lose to none and the best pair is never tried (docs/results.md, 5 images per small class).
            # So the balancing is chosen first, on unaugmented images, and the policies and mixes with it.
            balances = _balances(split, spec, "none", "none")
            balance, tuned = _best(balances), {"balances": balances}
        policies = {name: split.tune(Baseline(name, balance=balance).recipe()) for name in spec.policies}
        best = _best(policies)
        mixes = {"none": policies[best]}
        for mix in spec.mixes:
            mixes[mix] = split.tune(Baseline(best, mix, balance=balance).recipe())
        mix = _best(mixes)
        tuned |= {"policies": policies, "mixes": mixes}
        final = mixes[mix]
    else:  # the policy and mix (and their scores) carried over; only the balancing is tuned on top of them
        best, mix = chosen.policy, chosen.mix
        carried = {k: v for k, v in chosen.scores.items() if k != "balances"}
        carried_log_likelihoods = {k: v for k, v in chosen.log_likelihoods.items() if k != "balances"}
        balances = _balances(split, spec, best, mix)
        balance = _best(balances)
        tuned = {"balances": balances} if len(balances) > 1 else {}
        final = balances[balance]
    means = {group: {k: _means(v) for k, v in runs.items()} for group, runs in tuned.items()}
    baseline = Baseline(
        best,
        mix,
        carried | {group: {k: m[0] for k, m in runs.items()} for group, runs in means.items()},
        balance,
        carried_log_likelihoods | {group: {k: m[1] for k, m in runs.items()} for group, runs in means.items()},
    )
    log(f"validation: augmentation baseline {baseline.description} ({_means(final)[0]:.4f})")
    return baseline


def _balances(split: Tuning, spec: UsefulnessSpec, policy: str, mix: str) -> dict:
    """Validation runs of no balancing and (imbalanced data) each of spec.balances, on top of policy and mix."""
    kinds = ("none", *spec.balances) if split.imbalanced else ("none",)
    return {b: split.tune(Baseline(policy, mix, balance=b).recipe()) for b in kinds}


def thin_caveat(classes: list[int], num_classes: int, folds: int = 1) -> str:
    """The report's caveat for choices tuned by balanced accuracy on a few images of some classes."""
    shown = ", ".join(map(str, classes[:8])) + (", ..." if len(classes) > 8 else "")
    remedy = "" if folds > 1 else "; cross-validated tuning (--tune_folds) lets every training image validate"
    return (
        f"tuned by balanced accuracy on fewer than {validation_split.THIN_VALIDATION} validation images of "
        f"{len(classes)} class(es) ({shown}), each weighing 1/{num_classes} of the score: the tuned augmentation "
        "and share can be far from the best; compare with the recipe you would use anyway (docs/evaluate.md)" + remedy
    )


def _share_key(share: float, balance: str) -> str:
    return str(share) if balance == "none" else f"{share} {balance}"


def compare(
    train: tuple,
    test: tuple,
    synthetic: tuple,
    num_classes: int,
    spec: UsefulnessSpec = UsefulnessSpec(),
    baseline: Optional[Baseline] = None,
    on_trained: Optional[Callable] = None,
    log: Callable = lambda line: None,
    cache: score_cache.ScoreCache = score_cache.ScoreCache(),
) -> dict:
    """The report section: tuned choices with their validation scores, each recipe's test scores, verdicts.

    train, test: (uint8 images [N,H,W,C], labels [N]); synthetic: (images, labels [N] or probabilities [N,C]).
    `baseline`: an augmentation already tuned on these training images (`tune_baseline`), else tuned here.
    `cache`: judge scores from earlier runs on the same images, recipe and seed are taken from it, not retrained
    (trainer/score_cache.py; the default remembers nothing)."""
    split = Tuning(train, num_classes, spec, on_trained, cache)
    if split.folds > 1:
        log(f"validation: {split.description}")
    if baseline is None:
        baseline = _tune_baseline(split, spec, log)
    # on imbalanced data, with or without balancing the real images (the synthetic ones may already balance)
    balances = (
        ["none", baseline.balance if baseline.balance != "none" else "resample"] if split.imbalanced else ["none"]
    )
    shares = {
        (share, balance): split.tune(baseline.recipe(synthetic=synthetic, synthetic_fraction=share, balance=balance))
        for balance in balances
        for share in spec.shares
    }
    best_share, best_balance = _best(shares)
    log(f"validation: synthetic share {best_share}, real images balanced by {best_balance}")

    seeds = [spec.seed + k for k in range(spec.seeds)]
    recipes = {
        "real": classifier.Recipe(),
        "augmented": baseline.recipe(),
        "synthetic_only": baseline.recipe(synthetic=synthetic, synthetic_fraction=1.0),
        "with_synthetic": baseline.recipe(synthetic=synthetic, synthetic_fraction=best_share, balance=best_balance),
    }
    results = {}
    for name, recipe in recipes.items():
        scores = split.judge.scores(recipe, train, test, seeds, split.score, split.score_name)
        results[name] = {"description": RECIPES[name], "mean": float(np.mean(scores)), "runs": scores}
        log(f"test: {RECIPES[name]}: {np.mean(scores):.4f}")
    if split.judge.reused:
        log(f"{split.judge.reused} judge scores taken from earlier runs on the same images ({cache.folder})")
    thin = validation_split.thin_validation(split.val_labels, train[1], num_classes) if split.imbalanced else []
    gain = stats.paired(results["augmented"]["runs"], results["with_synthetic"]["runs"])
    over_plain = stats.paired(results["real"]["runs"], results["augmented"]["runs"])
    cas = results["synthetic_only"]["mean"] / results["augmented"]["mean"] if results["augmented"]["mean"] else math.nan
    return {
        "verdict": "synthetic images: " + stats.verdict(gain, "the tuned augmentation", spec.minimum),
        "metric": "balanced accuracy" if split.imbalanced else "accuracy",
        "recipes": results,
        "gain_over_augmentation": gain.as_dict(),
        "augmentation_over_real": over_plain.as_dict(),
        "cas_ratio": float(cas),
        "tuned": {
            "policy": baseline.policy,
            "mix": baseline.mix,
            "augmentation": baseline.description,
            "synthetic_share": best_share,
            "synthetic_balance": best_balance,
            "validation_images": int(len(split.val_labels)),
            "validation_folds": split.folds,
            "validation": split.description,
            "validation_scores": {
                **baseline.scores,
                "shares": {_share_key(*k): _means(v)[0] for k, v in shares.items()},
            },
            "validation_log_likelihood": {
                **baseline.log_likelihoods,
                "shares": {_share_key(*k): _means(v)[1] for k, v in shares.items()},
            },
        },
        "classifier": dataclasses.asdict(spec.classifier) | {"version": classifier.VERSION},
        "seeds": spec.seeds,
        "reused_scores": split.judge.reused,
        "train_images": int(len(train[1])),
        "test_images": int(len(test[1])),
        "synthetic_images": int(len(synthetic[0])),
    } | ({"caveat": thin_caveat(thin, num_classes, split.folds)} if thin else {})
