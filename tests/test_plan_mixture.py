"""Beta mixtures: validation, densities, conjugate updating, predictive, robustification, JSON, EM."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from bayes_blina.errors import BayesBlinaError
from bayes_blina.plan import (
    BetaBinomialMixture,
    BetaMixture,
    PlanError,
    approximation_error,
    auto_mixture,
    fit_mixture_em,
)

MIX = BetaMixture([0.6, 0.3, 0.1], [30, 8, 2], [90, 20, 4])

shape = st.floats(min_value=0.3, max_value=200, allow_nan=False)
component = st.tuples(st.floats(min_value=0.05, max_value=1.0), shape, shape)
mixtures = st.lists(component, min_size=1, max_size=4).map(
    lambda cs: BetaMixture([c[0] / sum(x[0] for x in cs) for c in cs], [c[1] for c in cs], [c[2] for c in cs]))


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("args, match", [
    (([0.5, 0.5], [1], [1, 2]), "same length"),
    (([], [], []), "at least one component"),
    (([0.5, 0.6], [1, 1], [1, 1]), "sum to 1"),
    (([1.2, -0.2], [1, 1], [1, 1]), "must not be negative"),
    (([1.0], [0.0], [1]), "positive"),
    (([1.0], [1], [-2]), "positive"),
    (([1.0], [np.nan], [1]), "finite"),
    (([1.0], ["x"], [1]), "must be numbers"),
])
def test_invalid_mixtures_are_refused_with_clear_errors(args, match):
    with pytest.raises(PlanError, match=match):
        BetaMixture(*args)


def test_plan_error_is_a_package_error():
    assert issubclass(PlanError, BayesBlinaError) and issubclass(PlanError, ValueError)


def test_mixture_is_immutable():
    m = BetaMixture.beta(2, 3)
    with pytest.raises(AttributeError):
        m.foo = 1
    with pytest.raises(ValueError):
        m.weights[0] = 0.5
    assert m == BetaMixture([1.0], [2], [3]) and hash(m) == hash(BetaMixture([1.0], [2], [3]))


def test_tiny_weight_rounding_is_renormalised():
    m = BetaMixture([0.5, 0.5 + 1e-9], [1, 2], [1, 2])
    assert m.weights.sum() == pytest.approx(1.0, abs=1e-15)


# ------------------------------------------------------------------ densities and moments
def test_density_integrates_to_one_and_moments_match_numerical_integration():
    total = integrate.quad(lambda x: float(MIX.pdf(x)), 0, 1, limit=200)[0]
    mean = integrate.quad(lambda x: x * float(MIX.pdf(x)), 0, 1, limit=200)[0]
    var = integrate.quad(lambda x: (x - mean) ** 2 * float(MIX.pdf(x)), 0, 1, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-8)
    assert MIX.mean == pytest.approx(mean, abs=1e-10)
    assert MIX.sd == pytest.approx(np.sqrt(var), abs=1e-9)


def test_single_beta_matches_scipy():
    m = BetaMixture.beta(3.5, 7)
    x = np.linspace(0.01, 0.99, 25)
    np.testing.assert_allclose(m.pdf(x), stats.beta.pdf(x, 3.5, 7), rtol=1e-12)
    np.testing.assert_allclose(m.cdf(x), stats.beta.cdf(x, 3.5, 7), rtol=1e-12)
    np.testing.assert_allclose(m.sf(x), stats.beta.sf(x, 3.5, 7), rtol=1e-12)
    np.testing.assert_allclose(m.quantiles([0.025, 0.5, 0.975]), stats.beta.ppf([0.025, 0.5, 0.975], 3.5, 7))
    assert m.mode() == pytest.approx(2.5 / 8.5, abs=1e-7)


def test_sampling_agrees_with_moments():
    x = MIX.sample(200_000, seed=3)
    assert x.mean() == pytest.approx(MIX.mean, abs=4 * MIX.sd / np.sqrt(x.size))
    assert x.std() == pytest.approx(MIX.sd, rel=0.01)
    assert np.array_equal(x, MIX.sample(200_000, seed=3))


def test_from_moments_and_from_mean_n():
    m = BetaMixture.from_moments(0.3, 0.1)
    assert (m.mean, m.sd) == pytest.approx((0.3, 0.1))
    assert BetaMixture.from_mean_n(0.25, 40) == BetaMixture.beta(10, 30)
    with pytest.raises(PlanError, match="sd must be positive"):
        BetaMixture.from_moments(0.5, 0.6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixtures, st.floats(min_value=0.001, max_value=0.999))
def test_ppf_inverts_cdf(m, p):
    q = float(m.ppf(p))
    assert float(m.cdf(q)) == pytest.approx(p, abs=1e-8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixtures, st.integers(1, 30), st.data())
def test_posterior_is_sequentially_consistent(m, n, data):
    r = data.draw(st.integers(0, n))
    r1 = data.draw(st.integers(0, r))
    n1 = data.draw(st.integers(r1, r1 + (n - r)))
    direct = m.posterior(r, n)
    seq = m.posterior(r1, n1).posterior(r - r1, n - n1)
    np.testing.assert_allclose(direct.weights, seq.weights, atol=1e-9)
    np.testing.assert_allclose(direct.a, seq.a)
    np.testing.assert_allclose(direct.b, seq.b)


def test_posterior_weights_match_rbest():
    # RBesT documentation: 0.5*Beta(4, 10) + 0.5*Beta(1, 1) updated with 18/20 gives weights
    # 0.00267 / 0.99733 on Beta(22, 12) / Beta(19, 3).
    post = BetaMixture([0.5, 0.5], [4, 1], [10, 1]).posterior(18, 20)
    np.testing.assert_allclose(post.weights, [0.00267, 0.99733], atol=5e-6)
    np.testing.assert_array_equal(post.a, [22, 19])
    np.testing.assert_array_equal(post.b, [12, 3])


def test_posterior_checks_its_data():
    with pytest.raises(PlanError, match="cannot exceed"):
        MIX.posterior(5, 4)
    with pytest.raises(PlanError, match="whole number"):
        MIX.posterior(2.5, 4)
    with pytest.raises(PlanError, match="at least 0"):
        MIX.posterior(-1, 4)


# ------------------------------------------------------------------ predictive
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mixtures, st.integers(1, 60))
def test_predictive_is_a_distribution_with_the_right_mean(m, n):
    pred = m.predictive(n)
    p = pred.pmf(pred.support)
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    assert pred.mean == pytest.approx(float(np.sum(p * pred.support)), rel=1e-8, abs=1e-9)
    assert float(pred.cdf(n)) == pytest.approx(1.0, abs=1e-9)


def test_predictive_matches_scipy_betabinom_and_tails():
    pred = BetaMixture.beta(3, 9).predictive(20)
    y = np.arange(21)
    np.testing.assert_allclose(pred.pmf(y), stats.betabinom.pmf(y, 20, 3, 9), rtol=1e-10)
    assert float(pred.tail_prob(7)) == pytest.approx(stats.betabinom.sf(6, 20, 3, 9), rel=1e-10)
    assert float(pred.tail_prob(7, upper=False)) == pytest.approx(stats.betabinom.cdf(7, 20, 3, 9), rel=1e-10)
    q = pred.quantiles([0.025, 0.5, 0.975])
    for p, v in zip([0.025, 0.5, 0.975], q):
        assert pred.cdf(v) >= p - 1e-12 and (v == 0 or pred.cdf(v - 1) < p)
    assert pred.sd == pytest.approx(stats.betabinom.std(20, 3, 9), rel=1e-9)
    assert isinstance(pred, BetaBinomialMixture)


# ------------------------------------------------------------------ robustify
def test_robustify_follows_rbest_convention_by_default():
    rob = BetaMixture.beta(10, 30).robustify(0.2)
    assert rob.components() == [(0.8, 10.0, 30.0), (0.2, 1.0, 1.0)]  # vague Beta(1, 1): mean 1/2, n + 1 = 2
    unit = BetaMixture.beta(10, 30).robustify(0.2, mean=0.5, n=1, exact_n=True)
    assert unit.components()[1] == (0.2, 0.5, 0.5)  # unit-information Beta(1/2, 1/2)
    r3 = BetaMixture.beta(10, 30).robustify(0.1, mean=0.25, n=3)
    assert r3.components()[1] == pytest.approx((0.1, 1.0, 3.0))
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(PlanError, match="robust weight"):
            BetaMixture.beta(1, 1).robustify(bad)
    with pytest.raises(PlanError, match="robust mean"):
        BetaMixture.beta(1, 1).robustify(0.2, mean=1.0)


# ------------------------------------------------------------------ JSON
@settings(max_examples=30, deadline=None)
@given(mixtures)
def test_json_round_trip(m):
    assert BetaMixture.from_json(m.to_json(note="x")) == m


def test_json_is_plain_with_schema_and_version(tmp_path):
    d = json.loads(MIX.to_json(source="test"))
    assert d["schema"] == "bayes_blina.beta_mixture" and d["version"] == 1
    assert d["meta"] == {"source": "test"}
    p = tmp_path / "sub" / "prior.json"
    MIX.save(p, a=1)
    assert BetaMixture.load(p) == MIX


@pytest.mark.parametrize("text, match", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"schema": "other", "version": 1, "components": []}', "not a beta mixture file"),
    ('{"schema": "bayes_blina.beta_mixture", "version": 99, "components": []}', "unsupported beta mixture version"),
    ('{"schema": "bayes_blina.beta_mixture", "version": 1, "components": []}', "non-empty list"),
    ('{"schema": "bayes_blina.beta_mixture", "version": 1, "components": [{"weight": 1, "a": 2}]}', "exactly the keys"),
    ('{"schema": "bayes_blina.beta_mixture", "version": 1, "components": [{"weight": 1, "a": "2", "b": 1}]}',
     "must be a number"),
    ('{"schema": "bayes_blina.beta_mixture", "version": 1, "components": [{"weight": 0.5, "a": 2, "b": 1}]}',
     "sum to 1"),
    ('{"schema": "bayes_blina.beta_mixture", "version": 1, "components": [{"weight": 1, "a": 2, "b": 1}], "x": 1}',
     "unknown key"),
])
def test_invalid_json_is_refused(text, match):
    with pytest.raises(PlanError, match=match):
        BetaMixture.from_json(text, source="prior.json")


def test_missing_prior_file_is_a_clear_error(tmp_path):
    with pytest.raises(PlanError, match="does not exist"):
        BetaMixture.load(tmp_path / "nope.json")


# ------------------------------------------------------------------ EM
def test_em_recovers_a_known_mixture():
    x = MIX.sample(20_000, seed=11)
    fit = fit_mixture_em(x, 3)
    m = fit.mixture
    assert fit.converged and m.n_components == 3
    np.testing.assert_allclose(m.weights, MIX.weights, atol=0.03)
    np.testing.assert_allclose(m.a / (m.a + m.b), MIX.a / (MIX.a + MIX.b), atol=0.02)
    assert approximation_error(m, x)["ks"] < 0.01
    assert fit.n_params == 8 and fit.aic(2) < fit_mixture_em(x, 1).aic(2)


def test_em_single_component_is_the_beta_mle():
    x = stats.beta.rvs(4, 11, size=5000, random_state=2)
    a, b, _, _ = stats.beta.fit(x, floc=0, fscale=1)
    m = fit_mixture_em(x, 1).mixture
    assert (m.a[0], m.b[0]) == pytest.approx((a, b), rel=1e-4)


def test_em_respects_the_gt1_constraint():
    x = stats.beta.rvs(0.6, 3, size=3000, random_state=4)
    m = fit_mixture_em(x, 1).mixture
    assert m.a[0] >= 1.0
    free = fit_mixture_em(x, 1, constrain_gt1=False).mixture
    assert free.a[0] == pytest.approx(0.6, abs=0.05)


def test_auto_mixture_chooses_k_and_reports_error():
    x = MIX.sample(8000, seed=5)
    res = auto_mixture(x, k_max=4)
    assert res.k in (2, 3, 4) and set(res.scores) == {1, 2, 3, 4}
    assert res.scores[res.k] == min(res.scores.values())
    assert res.error["ks"] < 0.02 and abs(res.error["d_mean"]) < 1e-3 and abs(res.error["d_sd"]) < 2e-3
    assert {"d_q2.5", "d_q50", "d_q97.5"} <= set(res.error)
    bic = auto_mixture(x, k_max=3, criterion="bic")
    assert bic.criterion == "BIC"
    with pytest.raises(PlanError, match="criterion"):
        auto_mixture(x, criterion="WAIC")


def test_em_input_checks():
    with pytest.raises(PlanError, match="at least 20 samples"):
        fit_mixture_em(np.full(5, 0.3), 2)
    with pytest.raises(PlanError, match=r"in \[0, 1\]"):
        fit_mixture_em(np.linspace(-1, 0.5, 50), 1)


def test_mode_finds_narrow_peaks():
    m = BetaMixture([0.3, 0.7], [2, 30001], [8, 70001])
    assert m.mode() == pytest.approx(30000 / 100000, abs=1e-6)
    assert BetaMixture.beta(5, 5).modes().tolist() == pytest.approx([0.5], abs=1e-3)
    assert len(BetaMixture([0.5, 0.5], [20, 80], [80, 20]).modes()) == 2
