"""Judge scores: classifiers trained for them (several at once), or the scores found in the score cache.

A score of the usefulness comparison (trainer/usefulness.py) is one judge (trainer/classifier.py) trained on
some images by a recipe with a seed, then scored on other images. `Judge` asks the cache first
(trainer/score_cache.py, keyed by everything that decides the score), trains whatever is missing in one
`classifier.train_many` call (seeds, and cross-validation's folds, side by side), and stores what it trained.

    python - <<'PY'
    from trainer import classifier, data, judging
    d = data.load_source("digits:train[:10%]", 0, 0); t = data.load_source("digits:test", 0, 0)
    judge = judging.Judge(10, classifier.ClassifierSpec(steps=100))
    accuracy = lambda model, x, y, k: classifier.accuracy(model, x, y)
    print(judge.scores(classifier.Recipe(), (d.images, d.labels), (t.images, t.labels), [0, 1], accuracy, "accuracy"))
    PY
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Optional

import numpy as np

from trainer import classifier, downstream, score_cache

TOGETHER = 12  # models trained side by side at most (the step pool keeps a few such steps: ~45 MB each)


class Judge:
    """Trains the judge for scores, or finds them in `cache` (trainer/score_cache.py): a rerun on the same
    images, recipe and seed trains nothing. `reused` counts the scores found there."""

    def __init__(
        self,
        num_classes: int,
        spec: classifier.ClassifierSpec,
        on_trained: Optional[Callable] = None,
        cache: score_cache.ScoreCache = score_cache.ScoreCache(),
    ):
        self.num_classes, self.spec, self.on_trained, self.cache = num_classes, spec, on_trained, cache
        self.reused = 0

    def scores(
        self,
        recipe: classifier.Recipe,
        train: tuple,
        test: tuple,
        seeds: list[int],
        score: Callable,
        name: str,
        width: int = 1,
        valid: Optional[Callable[[tuple, np.ndarray], bool]] = None,
    ) -> list:
        """One score per seed: the judge trained on `train` by `recipe`, scored on `test` by `score` (`name`
        says which number it is, for the cache; `width`: how many numbers it returns, a tuple if more than one;
        `valid(numbers, test labels)`: what a cached score may hold, else score_cache.ScoreCache.get's rule);
        the seeds not cached train together (`classifier.train_many`: the same models as one at a time, in
        less wall time)."""
        return self.scores_on_parts(recipe, train, [(None, test)], seeds, score, name, width, valid)[0]

    def scores_on_parts(
        self,
        recipe: classifier.Recipe,
        train: tuple,
        parts: list,
        seeds: list[int],
        score: Callable,
        name: str,
        width: int = 1,
        valid: Optional[Callable[[tuple, np.ndarray], bool]] = None,
    ) -> list[list]:
        """`scores` for several (fit index into `train`, or None for all of it; test images and labels) parts,
        [part][seed]: the models not cached, of every part, train side by side (`classifier.train_many`, up
        to TOGETHER at once; the folds of cross-validation together); each is cached as if trained on its fit
        images alone (it is)."""
        labels = np.asarray(train[1])
        keys = {}
        for p, (fit, test) in enumerate(parts):
            fitted = train if fit is None else (train[0][fit], labels[fit])
            keys |= {(p, s): key for s, key in self._keys(recipe, fitted, test, seeds, name).items()}
        found = {}
        for (p, s), key in keys.items():
            held = parts[p][1][1]  # the labels a cached score was computed on
            check = None if valid is None else lambda numbers, held=held: valid(numbers, held)
            cached = self.cache.get(key, width, check)
            if cached is not None:
                found[(p, s)] = cached if width > 1 else cached[0]
        jobs = [(p, s) for p in range(len(parts)) for s in seeds]
        missing = [job for job in jobs if job not in found]
        everything = np.arange(len(labels))
        for start in range(0, len(missing), TOGETHER):
            group = missing[start : start + TOGETHER]
            subsets = [everything if parts[p][0] is None else parts[p][0] for p, _ in group]
            models = classifier.train_many(
                train[0], labels, self.num_classes, self.spec, [s for _, s in group], recipe, subsets=subsets
            )
            for job, model in zip(group, models):
                test = parts[job[0]][1]
                found[job] = score(model, test[0], test[1], self.num_classes)
                if job in keys:
                    self.cache.put(keys[job], found[job] if width > 1 else (found[job],))
        self.reused += len(jobs) - len(missing)
        for _ in jobs:  # a score found in the cache counts as a classifier done
            if self.on_trained:
                self.on_trained()
        return [[found[(p, s)] for s in seeds] for p in range(len(parts))]

    def _keys(self, recipe: classifier.Recipe, train: tuple, test: tuple, seeds: list[int], name: str) -> dict:
        """{seed: cache key}; empty when nothing is cached or the policy has no description to key it by."""
        policy = "(no policy)" if recipe.policy is None else downstream.describe(recipe.policy)
        if not self.cache.folder or policy == "custom":
            return {}
        synthetic = recipe.synthetic or (None, None)
        data = score_cache.digest_arrays(
            train[0], np.asarray(train[1]), test[0], np.asarray(test[1]), synthetic[0], synthetic[1]
        )
        rule = json.dumps(
            [policy, recipe.mix, recipe.balance, recipe.synthetic_fraction if recipe.synthetic else 0.0,
             recipe.augment_synthetic, self.num_classes]
        )  # fmt: skip
        judge = json.dumps(dataclasses.asdict(self.spec) | {"version": classifier.VERSION}, sort_keys=True)
        return {s: self.cache.key(data=data, recipe=rule, classifier=judge, seed=s, score=name) for s in seeds}
