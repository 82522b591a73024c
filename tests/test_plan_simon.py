"""Simon two-stage designs against Simon (1989), by exact enumeration."""
from __future__ import annotations


import numpy as np
import pytest
from scipy import stats

from bayes_blina.plan import PlanError, simon_design, simon_oc

# Simon R. Optimal two-stage designs for phase II clinical trials. Controlled Clinical Trials
# 1989;10:1-10. Table 1 (p1 - p0 = 0.20) and Table 2 (p1 - p0 = 0.15): r1/n1, r/n, EN(p0), PET(p0).
SIMON_1989 = [
    # p0,   p1,   alpha, beta, kind,     r1, n1, r,  n,  EN0,  PET0   source
    (0.05, 0.25, 0.05, 0.20, "optimal", 0, 9, 2, 17, 12.0, 0.63),   # Table 1
    (0.05, 0.25, 0.05, 0.20, "minimax", 0, 12, 2, 16, 13.8, 0.54),  # Table 1
    (0.10, 0.30, 0.05, 0.20, "optimal", 1, 10, 5, 29, 15.0, 0.74),  # Table 1
    (0.10, 0.30, 0.05, 0.20, "minimax", 1, 15, 5, 25, 19.5, 0.55),  # Table 1
    (0.10, 0.30, 0.05, 0.10, "optimal", 2, 18, 6, 35, 22.5, 0.73),  # Table 1
    (0.10, 0.30, 0.05, 0.10, "minimax", 2, 22, 6, 33, 26.2, 0.62),  # Table 1
    (0.20, 0.40, 0.05, 0.20, "optimal", 3, 13, 12, 43, 20.6, 0.75),  # Table 1
    (0.20, 0.40, 0.05, 0.20, "minimax", 4, 18, 10, 33, 22.3, 0.72),  # Table 1
    (0.20, 0.40, 0.05, 0.10, "optimal", 4, 19, 15, 54, 30.4, 0.67),  # Table 1
    (0.20, 0.40, 0.05, 0.10, "minimax", 5, 24, 13, 45, 31.2, 0.66),  # Table 1
    (0.30, 0.50, 0.05, 0.20, "optimal", 5, 15, 18, 46, 23.6, 0.72),  # Table 1
    (0.30, 0.50, 0.05, 0.20, "minimax", 6, 19, 16, 39, 25.7, 0.67),  # Table 1
    (0.05, 0.20, 0.05, 0.20, "optimal", 0, 10, 3, 29, 17.6, 0.60),  # Table 2
    (0.05, 0.20, 0.05, 0.20, "minimax", 0, 13, 3, 27, 19.8, 0.51),  # Table 2
]


@pytest.mark.parametrize("p0, p1, alpha, beta, kind, r1, n1, r, n, en0, pet0", SIMON_1989)
def test_simon_1989_tables(p0, p1, alpha, beta, kind, r1, n1, r, n, en0, pet0):
    d = simon_design(p0, p1, alpha, beta, kind=kind, n_max=60)
    assert (d.r1, d.n1, d.r, d.n) == (r1, n1, r, n)
    assert round(d.en0, 1) == en0
    assert round(d.pet0, 2) == pet0
    assert d.actual_alpha <= alpha and d.actual_power >= 1 - beta


def test_design_characteristics_are_exact():
    d = simon_design(0.10, 0.30, 0.05, 0.20)
    oc = simon_oc(d.r1, d.n1, d.r, d.n, [d.p0, d.p1])
    assert oc["reject"][0] == pytest.approx(d.actual_alpha) and oc["reject"][1] == pytest.approx(d.actual_power)
    # brute force over both stages
    p = 0.3
    rej = sum(stats.binom.pmf(x1, d.n1, p) * stats.binom.pmf(x2, d.n - d.n1, p)
              for x1 in range(d.r1 + 1, d.n1 + 1) for x2 in range(d.n - d.n1 + 1) if x1 + x2 > d.r)
    assert rej == pytest.approx(d.actual_power, abs=1e-12)
    assert oc["en"][0] == pytest.approx(d.en0)
    assert "r1/n1 = 1/10" in str(d) and d.to_dict()["n"] == 29


def test_enumeration_up_to_80():
    d = simon_design(0.20, 0.35, 0.05, 0.20, n_max=80)
    assert d.n <= 80 and d.actual_alpha <= 0.05 and d.actual_power >= 0.8


def test_minimax_never_exceeds_optimal_n_and_optimal_never_exceeds_minimax_en0():
    for p0, p1 in ((0.1, 0.3), (0.2, 0.4), (0.3, 0.5)):
        o = simon_design(p0, p1, kind="optimal", n_max=60)
        m = simon_design(p0, p1, kind="minimax", n_max=60)
        assert m.n <= o.n and o.en0 <= m.en0 + 1e-12


def test_invalid_inputs():
    with pytest.raises(PlanError, match="p1 must exceed p0"):
        simon_design(0.3, 0.2)
    with pytest.raises(PlanError, match="kind"):
        simon_design(0.1, 0.3, kind="best")
    with pytest.raises(PlanError, match="no two-stage design"):
        simon_design(0.1, 0.15, n_max=20)
    with pytest.raises(PlanError, match="alpha"):
        simon_design(0.1, 0.3, alpha=0)
    with pytest.raises(PlanError, match="r1 < n1"):
        simon_oc(5, 4, 6, 10, 0.2)
    assert np.isfinite(simon_oc(1, 10, 5, 29, 0.2)["en"])
