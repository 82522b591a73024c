"""Prior effective sample size: analytic facts and behaviour on mixtures."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_blina.errors import BayesBlinaWarning
from bayes_blina.plan import BetaMixture, PlanError, ess, ess_all, local_information


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(1.05, 150), st.floats(1.05, 150))
def test_ess_of_one_beta_is_a_plus_b(a, b):
    # RBesT's documentation: the ESS of Beta(a, b) is a + b by the moment and ELIR methods, and by
    # Morita's method after rounding (it is a + b minus a term of order (a + b) / s, s = 100).
    m = BetaMixture.beta(a, b)
    assert ess(m, "moment") == pytest.approx(a + b, rel=1e-9)
    assert ess(m, "elir") == pytest.approx(a + b, rel=1e-6)
    assert ess(m, "morita") == pytest.approx(a + b, abs=0.5 + 0.01 * (a + b))


@pytest.mark.parametrize("a, b", [(3, 12), (10, 10), (2, 5), (20, 60), (50, 3), (7, 20)])
def test_morita_of_one_beta_rounds_to_a_plus_b(a, b):
    assert round(ess(BetaMixture.beta(a, b), "morita")) == a + b


def test_local_information_of_one_beta_is_analytic():
    x = np.linspace(0.05, 0.95, 7)
    expected = 2 / x**2 + 7 / (1 - x) ** 2
    np.testing.assert_allclose(local_information(BetaMixture.beta(3, 8), x), expected, rtol=1e-10)


def test_local_information_of_a_mixture_matches_finite_differences():
    m = BetaMixture([0.7, 0.3], [20, 3], [60, 6])
    x, h = 0.3, 1e-4
    fd = -(m.logpdf(x + h) - 2 * m.logpdf(x) + m.logpdf(x - h)) / h**2
    assert float(local_information(m, x)) == pytest.approx(float(fd), rel=1e-4)


def test_ess_of_mixtures_behaves():
    informative = BetaMixture([0.7, 0.3], [20, 6], [60, 18])
    e = ess_all(informative)
    assert e["moment"] < e["elir"] < e["morita"]  # conservative < ELIR < liberal for heavy tails
    robust = informative.robustify(0.2, mean=0.5)
    assert ess(robust) < ess(informative)
    # more robust weight, less information
    values = [ess(informative.robustify(w, 0.5)) for w in (0.1, 0.3, 0.5, 0.8)]
    assert all(np.diff(values) < 0)


def test_ess_errors_and_warnings():
    with pytest.raises(PlanError, match="unknown ESS method"):
        ess(BetaMixture.beta(2, 2), "fisher")
    with pytest.raises(PlanError, match="below 1"):
        ess(BetaMixture.beta(0.5, 3), "elir")
    assert ess(BetaMixture.beta(0.5, 3), "moment") == pytest.approx(3.5)
    with pytest.raises(PlanError, match="BetaMixture"):
        ess([1, 2, 3])
    bimodal = BetaMixture([0.5, 0.5], [20, 80], [80, 20])
    with pytest.warns(BayesBlinaWarning, match="modes"):
        ess(bimodal, "morita")
    assert np.isnan(ess_all(BetaMixture.beta(0.5, 3))["elir"])
    with pytest.raises(PlanError, match="mode inside"):
        ess(BetaMixture.beta(1, 1), "morita")
    with pytest.raises(PlanError, match="mode inside"):
        ess(BetaMixture.beta(0.8, 3), "morita")
