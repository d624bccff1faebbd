"""trainer/stats.py: Student-t quantiles, paired intervals and the verdict line."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from trainer import stats


def test_t_quantiles_match_scipy():
    for dof in (1, 2, 4, 9, 19, 30, 45, 200):
        assert stats.t975(dof) == pytest.approx(scipy_stats.t.ppf(0.975, dof), rel=0.01)
    assert stats.t975(0) == float("inf")


def test_paired_interval_is_the_t_interval_of_per_seed_differences():
    a = np.array([0.50, 0.61, 0.55, 0.70, 0.58])
    b = a + np.array([0.02, 0.03, 0.01, 0.04, 0.02])  # b beats a on every seed by a little
    got = stats.paired(a, b)
    expected = scipy_stats.t.interval(0.95, 4, loc=0.024, scale=scipy_stats.sem(b - a))
    assert got.mean == pytest.approx(0.024)
    assert (got.low, got.high) == pytest.approx(expected, rel=1e-3)
    # Unpaired, the seed-to-seed spread of a (about 7 points) would swamp a 2.4-point effect; paired, it does not.
    assert got.excludes_zero and got.n == 5
    with pytest.raises(ValueError, match="same seeds"):
        stats.paired(a, b[:3])


def test_verdicts():
    helps = stats.paired([0.5, 0.6, 0.7], [0.53, 0.62, 0.73])
    assert stats.verdict(helps, "baseline").startswith("helps (+2.7 points [")
    assert stats.verdict(helps, "baseline", minimum=0.05).startswith("no measurable difference")
    hurts = stats.paired([0.5, 0.6, 0.7], [0.45, 0.56, 0.64])
    assert stats.verdict(hurts, "baseline").startswith("hurts (-5.0 points")
    unclear = stats.paired([0.5, 0.6, 0.7], [0.55, 0.55, 0.72])
    assert stats.verdict(unclear, "baseline").startswith("no measurable difference")
    assert "one seed" in stats.verdict(stats.paired([0.5], [0.6]), "baseline")
