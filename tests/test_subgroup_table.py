"""The CR-by-subgroup table: exact intervals to the printed digit, closed-form unpooled columns,
and partial pooling that shrinks towards the family's typical rate."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayes_blina.data import read_dataset
from bayes_blina.subgroup_table import COLUMNS, cr_subgroup_table, exact_table
from bayes_blina.stats import clopper_pearson
from conftest import FIG2_PRINTED

@pytest.fixture(scope="module")
def pediatric():
    return read_dataset("vonstackelberg2016")


def test_fig2_exact_intervals_match_the_printed_digits(pediatric):
    t = exact_table(pediatric.aggregates)
    for family, level, r, n, pct, lo, hi in FIG2_PRINTED:
        row = t[(t.family == family) & (t.level == level)]
        assert len(row) == 1, (family, level)
        row = row.iloc[0]
        assert (row.responders, row.n) == (r, n)
        assert round(100 * row.rate, 1) == pct
        assert round(100 * row.exact_lower, 1) == lo, (family, level)
        assert round(100 * row.exact_upper, 1) == hi, (family, level)


def test_clopper_pearson_edges_and_coverage():
    lo, hi = clopper_pearson([0, 5, 5], [5, 5, 10])
    assert lo[0] == 0 and hi[1] == 1
    # exact coverage >= nominal for n = 20 at every p on a grid
    n, k = 20, np.arange(21)
    lo, hi = clopper_pearson(k, np.full(21, n))
    for p in np.linspace(0.01, 0.99, 50):
        cover = stats.binom.pmf(k, n, p)[(lo <= p) & (p <= hi)].sum()
        assert cover >= 0.95 - 1e-9


def test_unpooled_columns_are_the_closed_form_beta_posterior(pediatric):
    t = exact_table(pediatric.aggregates, prob=0.9, prior=(0.5, 0.5))
    row = t[(t.family == "age_group") & (t.level == "<2")].iloc[0]
    exact = stats.beta(0.5 + 6, 0.5 + 4)
    assert row.unpooled_median == pytest.approx(exact.median())
    assert row.unpooled_lower == pytest.approx(exact.ppf(0.05))
    assert row.unpooled_upper == pytest.approx(exact.ppf(0.95))


@pytest.mark.slow
def test_pooled_estimates_shrink_towards_the_family_rate(pediatric):
    t = cr_subgroup_table(pediatric, draws=1000, tune=1000, seed=3)
    assert list(t.columns) == COLUMNS
    assert t.attrs["converged"]
    age = t[t.family == "age_group"].set_index("level")
    overall = 27 / 70
    # the small extreme group (<2 years, 6/10) is pulled towards the overall rate, not past it
    assert overall < age.loc["<2", "pooled_median"] < age.loc["<2", "unpooled_median"]
    # partial pooling narrows the interval of the small group
    assert (age.loc["<2", "pooled_upper"] - age.loc["<2", "pooled_lower"]) < (
        age.loc["<2", "unpooled_upper"] - age.loc["<2", "unpooled_lower"])
    # single-level families repeat the unpooled estimate
    allrow = t[t.family == "all"].iloc[0]
    assert allrow.pooled_median == allrow.unpooled_median
    assert t[["pooled_median", "pooled_lower", "pooled_upper"]].notna().all().all()
