"""Decision rules, exact operating characteristics, PoS, sample size and the Monte Carlo check."""
from __future__ import annotations


import numpy as np
import pytest
from scipy import integrate, stats

from bayes_blina.plan import (
    BetaMixture,
    PlanError,
    all_of,
    any_of,
    critical_value_1s,
    decision_1s,
    decision_2s,
    find_delta_2s,
    oc_1s,
    oc_2s,
    pos_1s,
    pos_2s,
    prob_diff,
    sample_size_1s,
    simulate_oc_1s,
    success_counts_1s,
)

PRIOR = BetaMixture([0.5, 0.3, 0.2], [8, 35, 1], [23, 105, 1])  # a MAP-like prior, robustified
RULE = decision_1s(0.9, 0.2)


def test_prob_diff_matches_rbest_documentation():
    # RBesT documentation (pmixdiff): P(Beta(11, 4) - Beta(8, 7) > 0) = 0.8817696
    assert prob_diff(BetaMixture.beta(11, 4), BetaMixture.beta(8, 7), 0.0) == pytest.approx(0.8817696, abs=1e-7)
    assert prob_diff(BetaMixture.beta(11, 4), BetaMixture.beta(8, 7), 0.0, lower_tail=True) == pytest.approx(
        1 - 0.8817696, abs=1e-7)


@pytest.mark.parametrize("m1, m2, delta", [
    (BetaMixture.beta(0.5, 1), BetaMixture.beta(1, 1), 0.0),
    (BetaMixture.beta(3.5, 22), BetaMixture([0.8, 0.2], [8, 1], [23, 1]), 0.1),
    (BetaMixture.beta(300, 100), BetaMixture.beta(200, 200), 0.2),
    (BetaMixture.beta(0.5, 0.5), BetaMixture.beta(0.5, 0.5), 0.0),
    (BetaMixture([0.5, 0.5], [2, 30], [8, 10]), BetaMixture.beta(5, 15), -0.1),
])
def test_prob_diff_matches_adaptive_quadrature(m1, m2, delta):
    ref = integrate.quad(lambda x: float(m2.pdf(x)) * float(m1.sf(min(max(x + delta, 0), 1))), 0, 1,
                         epsabs=1e-12, epsrel=1e-10, limit=500)[0]
    assert prob_diff(m1, m2, delta) == pytest.approx(ref, abs=2e-7)


def test_decision_1s_semantics():
    post = BetaMixture.beta(14, 18)  # 13/30 under a uniform prior
    up = decision_1s(0.9, 0.3)
    assert up.probability(post) == pytest.approx(stats.beta.sf(0.3, 14, 18))
    assert up(post) is True
    low = decision_1s(0.9, 0.3, lower_tail=True)
    assert low.probability(post) == pytest.approx(stats.beta.cdf(0.3, 14, 18))
    assert low(post) is False
    assert repr(up) == "P(theta > 0.3) > 0.9" and repr(low) == "P(theta <= 0.3) > 0.9"
    for bad in (0, 1, 1.5):
        with pytest.raises(PlanError, match="prob"):
            decision_1s(bad, 0.3)
    with pytest.raises(PlanError, match="threshold"):
        decision_1s(0.9, 1.2)


def test_combinations():
    post = BetaMixture.beta(14, 18)
    both = all_of(decision_1s(0.9, 0.3), decision_1s(0.5, 0.45))
    either = any_of(decision_1s(0.9, 0.3), decision_1s(0.5, 0.45))
    assert both(post) is False and either(post) is True
    with pytest.raises(PlanError, match="cannot combine"):
        all_of(decision_1s(0.9, 0.3), decision_2s(0.9, 0.0))
    with pytest.raises(PlanError, match="not a decision rule"):
        all_of(decision_1s(0.9, 0.3), lambda m: True)
    # the success set of a combination is the intersection / union of the parts
    s1 = success_counts_1s(PRIOR, 30, decision_1s(0.9, 0.2))
    s2 = success_counts_1s(PRIOR, 30, decision_1s(0.6, 0.3))
    np.testing.assert_array_equal(success_counts_1s(PRIOR, 30, all_of(decision_1s(0.9, 0.2), decision_1s(0.6, 0.3))), s1 & s2)
    np.testing.assert_array_equal(success_counts_1s(PRIOR, 30, any_of(decision_1s(0.9, 0.2), decision_1s(0.6, 0.3))), s1 | s2)


def test_critical_value_and_oc_agree_with_brute_force():
    n = 40
    yc = critical_value_1s(PRIOR, n, RULE)
    post_ok = [RULE(PRIOR.posterior(y, n)) for y in range(n + 1)]
    assert post_ok == [y >= yc for y in range(n + 1)]
    oc = oc_1s(PRIOR, n, RULE)
    theta = np.linspace(0, 1, 21)
    brute = np.array([sum(stats.binom.pmf(y, n, t) for y in range(n + 1) if post_ok[y]) for t in theta])
    np.testing.assert_allclose(oc(theta), brute, atol=1e-12)
    assert np.all(np.diff(oc(theta)) >= -1e-15)
    low = decision_1s(0.8, 0.35, lower_tail=True)
    yl = critical_value_1s(PRIOR, n, low)
    assert [low(PRIOR.posterior(y, n)) for y in range(n + 1)] == [y <= yl for y in range(n + 1)]
    never = decision_1s(0.999, 0.99)
    assert critical_value_1s(PRIOR, 5, never) == 6


def test_two_sided_combination_has_no_single_critical_value():
    rule = any_of(decision_1s(0.9, 0.5), decision_1s(0.9, 0.1, lower_tail=True))
    with pytest.raises(PlanError, match="not one-sided"):
        critical_value_1s(BetaMixture.beta(1, 1), 30, rule)
    oc = oc_1s(BetaMixture.beta(1, 1), 30, rule)
    assert oc.critical_value is None
    s = oc.success
    assert float(oc(0.3)) == pytest.approx(float(stats.binom.pmf(np.flatnonzero(s), 30, 0.3).sum()))


def test_oc_doctest_value_and_table():
    oc = oc_1s(BetaMixture.beta(1, 1), 30, decision_1s(0.95, 0.2))
    assert oc.critical_value == 10
    t = oc.table([0.2, 0.4])
    assert list(t.columns) == ["theta", "p_success"] and t["p_success"].iloc[0] == pytest.approx(stats.binom.sf(9, 30, 0.2))
    with pytest.raises(PlanError, match="theta"):
        oc(1.5)


def test_simulated_oc_agrees_with_exact_within_mc_error():
    """(Its speed, 10,000 trials in milliseconds, is measured in benchmarks/bench_oc.py.)"""
    n = 40
    oc = oc_1s(PRIOR, n, RULE)
    grid = np.linspace(0.05, 0.6, 12)
    sim = simulate_oc_1s(PRIOR, n, RULE, grid, n_trials=10_000, seed=2016)
    exact = oc(grid)
    se = np.sqrt(exact * (1 - exact) / 10_000)
    assert np.all(np.abs(sim["p_success"].to_numpy() - exact) <= 4 * se + 1e-4)
    assert len(sim) == len(grid) and (sim["n_trials"] == 10_000).all()
    again = simulate_oc_1s(PRIOR, n, RULE, grid, n_trials=10_000, seed=2016)
    assert sim.equals(again)


def test_pos_is_the_predictive_average_of_the_oc():
    n = 30
    design = BetaMixture([0.6, 0.4], [12, 3], [28, 5])
    p = pos_1s(PRIOR, n, RULE, design)
    oc = oc_1s(PRIOR, n, RULE)
    avg = integrate.quad(lambda t: float(design.pdf(t)) * float(oc(t)), 0, 1, limit=200)[0]
    assert p == pytest.approx(avg, abs=1e-8)
    rng = np.random.default_rng(5)
    theta = design.sample(100_000, rng)
    mc = np.mean(oc.success[rng.binomial(n, theta)])
    assert p == pytest.approx(mc, abs=0.01)


def test_sample_size_search():
    res = sample_size_1s(PRIOR, RULE, theta=0.35, target_power=0.8, n_max=80)
    assert res.n is not None and res.power >= 0.8
    assert oc_1s(PRIOR, res.n - 1, RULE)(0.35) < 0.8 or res.n == 1
    stable = sample_size_1s(PRIOR, RULE, theta=0.35, target_power=0.8, n_max=80, stable=True)
    assert stable.n >= res.n
    assert (stable.table.loc[stable.table["n"] >= stable.n, "power"] >= 0.8).all()
    none = sample_size_1s(PRIOR, RULE, theta=0.21, target_power=0.99, n_max=20)
    assert none.n is None and np.isnan(none.power)
    with pytest.raises(PlanError, match="n_min"):
        sample_size_1s(PRIOR, RULE, 0.35, 0.8, n_max=5, n_min=10)


def test_oc_2s_matches_brute_force_enumeration():
    pa, pc = BetaMixture.beta(0.5, 1), BetaMixture([0.8, 0.2], [8, 1], [23, 1])
    rule = decision_2s(0.9, 0.0)
    oc = oc_2s(pa, pc, 8, 5, rule)
    brute = np.array([[rule(pa.posterior(y1, 8), pc.posterior(y2, 5)) for y2 in range(6)] for y1 in range(9)])
    np.testing.assert_array_equal(oc.success, brute)
    t1, t2 = 0.5, 0.25
    manual = sum(stats.binom.pmf(y1, 8, t1) * stats.binom.pmf(y2, 5, t2)
                 for y1 in range(9) for y2 in range(6) if brute[y1, y2])
    assert float(oc(t1, t2)) == pytest.approx(manual, abs=1e-12)
    grid = oc(np.array([0.3, 0.5, 0.7]), 0.25)
    assert grid.shape == (3,) and np.all(np.diff(grid) > 0)
    crit = oc.critical_active()
    assert crit.shape == (6,) and np.all(np.diff(crit) >= 0)


def test_pos_2s_and_errors():
    pa, pc = BetaMixture.beta(1, 1), BetaMixture.beta(1, 1)
    rule = decision_2s(0.9, 0.0)
    p = pos_2s(pa, pc, 10, 10, rule, BetaMixture.beta(30, 30), BetaMixture.beta(20, 60))
    oc = oc_2s(pa, pc, 10, 10, rule)
    rng = np.random.default_rng(1)
    t1, t2 = rng.beta(30, 30, 200_000), rng.beta(20, 60, 200_000)
    assert p == pytest.approx(np.mean(oc.success[rng.binomial(10, t1), rng.binomial(10, t2)]), abs=0.01)
    with pytest.raises(PlanError, match="two-arm decision rule"):
        oc_2s(pa, pc, 10, 10, RULE)
    with pytest.raises(PlanError, match="one-arm decision rule"):
        oc_1s(pa, 10, rule)
    with pytest.raises(PlanError, match="must be a BetaMixture"):
        oc_1s("Beta(1,1)", 10, RULE)
    with pytest.raises(PlanError, match="at least 1"):
        oc_1s(pa, 0, RULE)
    with pytest.raises(PlanError, match="delta"):
        decision_2s(0.9, 1.5)
    with pytest.raises(PlanError, match="not crossed"):
        find_delta_2s(oc, 0.5, 0.9999999)
