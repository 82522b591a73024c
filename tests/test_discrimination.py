"""AUC, Brier score and calibration curve against brute-force references and closed forms."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bayes_blina.checks.discrimination import auc, brier, calibration_curve, discrimination_table, log_score
from bayes_blina.errors import BayesBlinaError


def auc_pairs(y, p):
    """Reference: count every (responder, nonresponder) pair, ties one half."""
    y, p = np.asarray(y), np.asarray(p)
    pos, neg = p[y == 1], p[y == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / (len(pos) * len(neg))


def test_auc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            y[0] = 1 - y[0]
        p = np.round(rng.random(n), 1)  # many ties
        assert auc(y, p) == pytest.approx(auc_pairs(y, p), abs=1e-12)


def test_auc_closed_forms():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # one discordant pair out of 4: 3/4
    assert auc([0, 0, 1, 1], [0.1, 0.7, 0.6, 0.9]) == pytest.approx(0.75)
    assert np.isnan(auc([1, 1, 1], [0.2, 0.4, 0.9]))


def test_auc_equals_mann_whitney_statistic():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 80)
    p = rng.random(80)
    u = stats.mannwhitneyu(p[y == 1], p[y == 0]).statistic
    assert auc(y, p) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()))


def test_brier_and_log_score_closed_forms():
    y = np.array([1, 0, 1, 1])
    assert brier(y, [1, 0, 1, 1]) == 0.0
    assert brier(y, [0.5] * 4) == 0.25
    q = y.mean()
    assert brier(y, [q] * 4) == pytest.approx(q * (1 - q))
    assert log_score(y, [0.5] * 4) == pytest.approx(np.log(0.5))
    assert log_score([1, 0], [0.8, 0.4]) == pytest.approx((np.log(0.8) + np.log(0.6)) / 2)


def test_calibration_curve_counts_and_exact_interval():
    y = np.array([0, 0, 1, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.15, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9])
    cc = calibration_curve(y, p, bins=2, strategy="uniform", prob=0.9)
    assert cc["n"].tolist() == [4, 4]
    assert cc["observed"].tolist() == [0.25, 1.0]
    assert cc["mean_predicted"].tolist() == pytest.approx([0.1875, 0.75])
    lo = stats.beta.ppf(0.05, 1, 4)
    hi = stats.beta.ppf(0.95, 2, 3)
    assert cc["observed_lower"].iloc[0] == pytest.approx(lo)
    assert cc["observed_upper"].iloc[0] == pytest.approx(hi)
    assert cc["observed_upper"].iloc[1] == 1.0
    qc = calibration_curve(y, p, bins=4, strategy="quantile")
    assert qc["n"].sum() == len(y) and len(qc) == 4


def test_discrimination_table_rows_and_scaled_brier():
    y = [0, 1, 1, 0, 1]
    t = discrimination_table(y, {"perfect": [0, 1, 1, 0, 1], "prevalence": [0.6] * 5})
    assert t["model"].tolist() == ["perfect", "prevalence"]
    assert t.loc[0, "auc"] == 1.0 and t.loc[0, "brier_scaled"] == pytest.approx(1.0)
    assert t.loc[1, "brier_scaled"] == pytest.approx(0.0)
    assert t.loc[1, "auc"] == 0.5


@pytest.mark.parametrize("y,p,msg", [
    ([0, 2], [0.1, 0.2], "0 or 1"),
    ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
    ([0, 1, 1], [0.1, 0.2], "differ in length"),
    ([], [], "no outcomes"),
])
def test_bad_inputs_are_named(y, p, msg):
    with pytest.raises(BayesBlinaError, match=msg):
        brier(y, p)
