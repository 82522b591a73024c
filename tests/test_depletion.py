"""Depletion family (CD19 B cells): options, priors, data use, agreement with the simulator's curve,
the stable log form, and (slow) parameter recovery on a simulated 36-patient adult cohort."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from bayes_blina.curves import depletion
from bayes_blina.errors import SpecError, UnknownPriorError
from bayes_blina.families.depletion import (
    POPULATION_PARAMETERS,
    DepletionModel,
    _log_depletion,
    depletion_log_mu,
)
from bayes_blina.simulate.cohort import simulate_cohort, true_curve

SEED = 20170314


@pytest.fixture(scope="module")
def adult():
    return simulate_cohort("adult-exploratory", seed=SEED)


def test_options_and_priors():
    with pytest.raises(SpecError, match="correlated: Extra inputs"):
        DepletionModel({"correlated": True})
    with pytest.raises(SpecError, match="covariates"):
        DepletionModel({"covariates": ["regimen"]})
    m = DepletionModel({"analytes": ["B cells"], "covariates": ["blast_burden"]})
    assert m.options.analytes == ["CD19"]
    assert set(m.priors) == set(POPULATION_PARAMETERS) | {"logit_floor", "beta_blast_burden"}
    with pytest.raises(UnknownPriorError, match="valid names are: log_baseline_mu, log_k_dep_mu, logit_floor"):
        DepletionModel({}, {"floor": "Normal(mu=0, sigma=1)"})
    assert DepletionModel({}, {"logit_floor": "Normal(mu=-10, sigma=2)"}).priors["logit_floor"].params == {
        "mu": -10.0, "sigma": 2.0}


def test_data_use_counts_censored_rows(adult):
    ds, _ = adult
    obs = ds.observations
    prep = DepletionModel({}).prepare(ds)
    use = prep.data_use
    cd19 = obs["analyte"] == "CD19"
    assert use["rows_used"] == int(cd19.sum())
    assert use["censored"]["CD19"]["below_LOD"] == int((cd19 & (obs["below"] == "LOD")).sum())
    # most post-treatment results are below the LOD: censoring is the point of the family
    assert use["censored"]["CD19"]["censored"] > 0.6 * use["rows_used"]
    assert sum(r["n_rows"] for r in use["rows_left_out"]) + use["rows_used"] == len(obs)
    assert "observation_event_pairs" not in use


@pytest.mark.parametrize("logit_floor", [-40.0, -13.8, -3.0, 0.0, 2.5])
def test_log_form_equals_log_of_the_curve(logit_floor):
    """The stable ``log depletion`` (numpy and pytensor) equals ``log curves.depletion``."""
    import pytensor.tensor as pt

    t = np.array([-5.0, 0.0, 1.0, 24.0, 100.0, 672.0])
    log_k = math.log(0.08)
    floor = 1.0 / (1.0 + math.exp(-logit_floor))
    exact = np.log(depletion(t, 0.08, floor))
    np.testing.assert_allclose(_log_depletion(t, log_k, logit_floor, np), exact, rtol=1e-10, atol=1e-12)
    sym = _log_depletion(t, pt.as_tensor_variable(log_k), pt.as_tensor_variable(logit_floor), pt).eval()
    # pytensor rewrites log1p(exp(x)) to its softplus, accurate to about 2e-8 (absolute)
    np.testing.assert_allclose(sym, exact, rtol=1e-5, atol=5e-8)


def test_mean_log_at_the_truth_is_the_simulators_curve(adult):
    ds, truth = adult
    prep = DepletionModel({}).prepare(ds)
    A = prep.arrays
    pat = truth["patients"]["depletion"]["CD19"]
    ids = truth["patients"]["subject_id"]
    idx = [ids.index(s) for s in prep.coords["subject"]]
    draws = {"log_baseline": np.log(np.array(pat["baseline"])[idx])[:, None],
             "log_k_dep": np.log(np.array(pat["k_dep"])[idx])[:, None],
             "log_floor": np.log(np.array(pat["floor"])[idx])[:, None]}
    mu = depletion_log_mu(draws, A)
    expected = np.empty_like(mu)
    for i, s in enumerate(prep.coords["subject"]):
        rows = np.flatnonzero(A["obs_subject"] == i)
        expected[rows] = np.log(true_curve(ds, truth, "CD19", A["obs_time_h"][rows], [s])[0])
    np.testing.assert_allclose(mu, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_cd19_recovery_36_patients(adult):
    """Criterion: no divergences, R-hat < 1.01 for the population parameters, the truth of at least
    4 of the 5 population parameters inside the 90% interval, and the ``depleted`` probability
    above 0.5 for every patient who truly depleted and below 0.5 for every one who did not."""
    from bayes_blina.inference import fit

    ds, truth = adult
    t0 = time.perf_counter()
    res = fit({"name": "b", "family": "depletion",
               "sampler": {"chains": 2, "draws": 500, "tune": 500, "seed": 3, "target_accept": 0.95}}, ds)
    elapsed = time.perf_counter() - t0
    post = res.idata.posterior
    assert int(res.idata.sample_stats["diverging"].sum()) == 0
    import arviz as az

    rhat = az.rhat(post.to_dataset()[list(POPULATION_PARAMETERS)])
    assert max(float(rhat[v].max()) for v in POPULATION_PARAMETERS) < 1.01, rhat
    d = truth["population"]["depletion"]["CD19"]
    inside, misses = 0, []
    for k in POPULATION_PARAMETERS:
        lo, hi = np.quantile(post[k].values.ravel(), [0.05, 0.95])
        ok = lo <= d[k] <= hi
        inside += ok
        if not ok:
            misses.append((k, lo, d[k], hi))
    assert inside >= 4, misses
    ids = truth["patients"]["subject_id"]
    dep_true = np.array(truth["patients"]["depletion"]["CD19"]["depleted"])[
        [ids.index(s) for s in post.coords["subject"].values]]
    p_dep = post["depleted"].sel(analyte="CD19").mean(("chain", "draw")).values
    assert np.all((p_dep > 0.5) == dep_true), (p_dep, dep_true)
    print(f"CD19 depletion fit: {elapsed:.0f} s")
