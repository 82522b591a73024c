"""The convergence gate, branch by branch, on synthetic posteriors with known properties.

Each test builds draws whose R-hat, ESS, divergences or energy are known by construction, so the
verdict is predictable without fitting anything (issue 21).
"""
from __future__ import annotations

import arviz as az
import numpy as np
import pytest

from bayes_blina.diagnostics import Verdict, convergence_verdict
from bayes_blina.spec import GateConfig

CHAINS, DRAWS = 4, 1000


def tree(posterior: dict, *, diverging=None, energy=None):
    stats = {}
    if diverging is not None:
        stats["diverging"] = diverging
    if energy is not None:
        stats["energy"] = energy
    return az.from_dict({"posterior": posterior, **({"sample_stats": stats} if stats else {})})


def good(rng, shape=()):
    return rng.normal(size=(CHAINS, DRAWS, *shape))


def ar1(rng, phi, chains=CHAINS, draws=DRAWS):
    """Stationary AR(1) chains: ESS per draw is (1 - phi) / (1 + phi)."""
    x = np.empty((chains, draws))
    x[:, 0] = rng.normal(size=chains)
    e = rng.normal(size=(chains, draws)) * np.sqrt(1 - phi**2)
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return x


def iid_energy(rng):
    """Energy as independent draws: E-BFMI = Var(dE) / Var(E) = 2."""
    return rng.normal(size=(CHAINS, DRAWS))


def test_well_mixed_chains_pass():
    rng = np.random.default_rng(1)
    v = convergence_verdict(tree({"a": good(rng), "b": good(rng, (3,))},
                                 diverging=np.zeros((CHAINS, DRAWS), bool), energy=iid_energy(rng)))
    assert v.passed, v
    assert v.failures == []
    assert v.max_rhat < 1.01 and v.min_ess_bulk > 3000 and v.n_divergent == 0
    assert 1.5 < v.min_bfmi < 2.5
    assert (v.n_chains, v.n_draws) == (CHAINS, DRAWS)


def test_a_shifted_chain_fails_on_rhat_and_names_the_quantity():
    rng = np.random.default_rng(2)
    b = good(rng, (2,))
    b[0, :, 1] += 3.0  # one chain elsewhere, in element 1 of b only
    v = convergence_verdict(tree({"a": good(rng), "b": b}))
    assert not v.passed
    assert v.worst["rhat"] == "b"
    assert any(f.startswith("R-hat") and "of b" in f for f in v.failures), v.failures
    assert v.max_rhat > 1.1


def test_slow_mixing_fails_on_bulk_ess_but_not_rhat():
    rng = np.random.default_rng(3)
    slow = ar1(rng, 0.97)  # ESS about 4000 * 0.015 = 61
    v = convergence_verdict(tree({"a": good(rng), "slow": slow}))
    assert not v.passed
    assert v.worst["ess_bulk"] == "slow" and v.min_ess_bulk < 200
    assert any(f.startswith("bulk ESS") for f in v.failures)


def test_tail_ess_fails_on_its_own():
    rng = np.random.default_rng(4)
    # heavy tails mixed slowly in the extremes only: ranks of |x| decorrelate slowly
    x = good(rng)
    scale = np.repeat(np.exp(ar1(rng, 0.995) * 1.5)[:, ::1], 1, axis=1)
    tail = x * scale
    gate = GateConfig(min_ess_bulk=0, min_ess_tail=400, max_rhat=2.0)
    v = convergence_verdict(tree({"tail": tail}), gate)
    assert v.min_ess_tail < 400, v
    assert [f for f in v.failures if f.startswith("tail ESS")] and not [f for f in v.failures if f.startswith("bulk")]


def test_divergences_fail_beyond_the_allowed_count():
    rng = np.random.default_rng(5)
    div = np.zeros((CHAINS, DRAWS), bool)
    div[1, [10, 20, 30]] = True
    post = {"a": good(rng)}
    v = convergence_verdict(tree(post, diverging=div))
    assert not v.passed and v.n_divergent == 3
    assert "3 divergent transitions (at most 0 allowed)" in v.failures
    assert convergence_verdict(tree(post, diverging=div), GateConfig(max_divergences=3)).passed


def test_low_ebfmi_fails():
    rng = np.random.default_rng(6)
    energy = np.cumsum(rng.normal(size=(CHAINS, DRAWS)) * 0.1, axis=1)  # a random walk: E-BFMI near 0
    v = convergence_verdict(tree({"a": good(rng)}, energy=energy))
    assert not v.passed and v.min_bfmi < 0.3
    assert any(f.startswith("E-BFMI") for f in v.failures)


def test_missing_energy_is_reported_as_missing_not_as_a_failure():
    rng = np.random.default_rng(7)
    v = convergence_verdict(tree({"a": good(rng)}))
    assert v.passed and np.isnan(v.min_bfmi)
    assert "min E-BFMI nan" in str(v)


def test_a_single_chain_fails():
    rng = np.random.default_rng(8)
    v = convergence_verdict(az.from_dict({"posterior": {"a": rng.normal(size=(1, DRAWS))}}))
    assert not v.passed and v.n_chains == 1
    assert "R-hat needs at least 2 chains" in v.failures


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_draws_fail_even_where_rhat_skips_them(bad):
    rng = np.random.default_rng(9)
    b = good(rng)
    b[2, 17] = bad
    v = convergence_verdict(tree({"a": good(rng), "b": b}))
    assert not v.passed
    assert "non-finite draws (NaN or infinite): 1 in b" in v.failures


def test_constants_are_skipped_not_failed():
    rng = np.random.default_rng(10)
    v = convergence_verdict(tree({"a": good(rng), "const": np.ones((CHAINS, DRAWS))}))
    assert v.passed, v


def test_var_names_restrict_the_judged_quantities():
    rng = np.random.default_rng(11)
    b = good(rng)
    b[0] += 5
    t = tree({"a": good(rng), "b": b})
    assert not convergence_verdict(t).passed
    assert convergence_verdict(t, var_names=["a"]).passed


def test_verdict_round_trips_through_json_with_nan():
    rng = np.random.default_rng(12)
    v = convergence_verdict(tree({"a": good(rng)}))
    d = v.to_dict()
    assert d["min_bfmi"] is None
    back = Verdict.from_dict(d)
    assert back.passed == v.passed and np.isnan(back.min_bfmi) and back.failures == v.failures
