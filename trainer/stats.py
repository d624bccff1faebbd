"""Paired comparisons of recipes: mean differences with 95% intervals, and the verdict a report leads with.

Every recipe of a comparison is run with the same seeds (seed k of one recipe
shares its initial weights, batch order and augmentation draws with seed k of
another), so differences are taken per seed and their mean gets a Student-t
interval. That removes the seed-to-seed variance both recipes share, which
dominates on small data.

    python -c "from trainer import stats; print(stats.paired([0.5, 0.6, 0.55], [0.52, 0.63, 0.56]))"
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# Student-t 97.5% quantiles for 1..30 degrees of freedom (then the normal's 1.96 is within 2%).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(dof: int) -> float:
    """The two-sided 95% Student-t quantile for `dof` degrees of freedom."""
    if dof < 1:
        return math.inf
    return _T975[dof - 1] if dof <= len(_T975) else 1.96 + 2.4 / dof


@dataclasses.dataclass(frozen=True)
class Interval:
    """Mean of paired differences (b - a) and its 95% confidence interval, in accuracy units (0..1)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    def points(self) -> str:
        """'+1.2 points [+0.3, +2.1]' (percentage points)."""
        return f"{100 * self.mean:+.1f} points [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def interval(values) -> Interval:
    """Mean and 95% t-interval of `values` (NaN bounds for fewer than two)."""
    values = np.asarray(values, np.float64)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = t975(n - 1) * float(values.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired(a, b) -> Interval:
    """b - a, seed by seed: the interval of the mean paired difference."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired runs need the same seeds: {a.shape} vs {b.shape}")
    return interval(b - a)


def verdict(difference: Interval, against: str, minimum: float = 0.0) -> str:
    """One line: whether a recipe helps over `against`, from its paired interval.

    'helps' needs the interval above `minimum` (and zero); 'hurts' needs it below zero."""
    if difference.n < 2 or math.isnan(difference.low):
        return f"not enough runs to tell (one seed; {100 * difference.mean:+.1f} points over {against})"
    if difference.low > max(0.0, minimum):
        return f"helps ({difference.points()} over {against})"
    if difference.high < 0:
        return f"hurts ({difference.points()} against {against})"
    return f"no measurable difference ({difference.points()} against {against})"
