"""Kinetics family (T cells, neutrophils, platelets): options, priors, data use, agreement with the
simulator's curves, and (slow) parameter recovery on a simulated 36-patient adult cohort."""
from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from bayes_blina.errors import DataValidationError, SpecError, UnknownPriorError
from bayes_blina.families.kinetics import POPULATION_PARAMETERS, KineticsModel, kinetics_log_mu
from bayes_blina.simulate.cohort import simulate_cohort, true_curve

SEED = 20170314


@pytest.fixture(scope="module")
def adult():
    return simulate_cohort("adult-exploratory", seed=SEED)


# --------------------------------------------------------------------------------------------------
# options, priors, data use
# --------------------------------------------------------------------------------------------------


def test_options_are_validated():
    with pytest.raises(SpecError, match="lag: Extra inputs"):
        KineticsModel({"lag": 3})
    with pytest.raises(SpecError, match="covariates"):
        KineticsModel({"covariates": ["prior_hsct"]})
    with pytest.raises(SpecError, match="bracket_floor"):
        KineticsModel({"bracket_floor": 1.5})
    with pytest.raises(SpecError, match="unknown analyte"):
        KineticsModel({"analytes": ["CD3", "CD99"]})
    m = KineticsModel({"analytes": ["T cells", "ANC"], "covariates": ["regimen", "response"]})
    assert m.options.analytes == ["CD3", "NEUT"]
    assert m.options.max_event_lag_h == 2016.0 and m.options.bracket_floor == 0.02


def test_priors_are_declared_and_overridable_by_name():
    m = KineticsModel({"covariates": ["blast_burden"]}, {"t_nadir": "LogNormal(mu=1.8, sigma=0.3)"})
    assert set(m.priors) == set(POPULATION_PARAMETERS) | {"beta_blast_burden"}
    assert m.priors["t_nadir"].params == {"mu": 1.8, "sigma": 0.3}
    with pytest.raises(UnknownPriorError, match="valid names are: expansion_mu, k_shape, log_baseline_mu"):
        KineticsModel({}, {"depth": "Normal(mu=0, sigma=1)"})
    assert KineticsModel({"relative_to_baseline": True}).priors["log_baseline_mu"].params == {"mu": 0.0, "sigma": 0.5}


def test_data_use_and_covariates(adult):
    ds, _ = adult
    obs = ds.observations
    subj = ds.subjects.copy()
    subj.loc[subj.index[0], "response"] = pd.NA  # unknown covariate level: that patient is left out
    fam = KineticsModel({"analytes": ["CD3", "CD8"], "covariates": ["response", "regimen"]})
    prep = fam.prepare(ds.with_tables(subjects=subj))
    use = prep.data_use
    reasons = {r["reason"]: r for r in use["rows_left_out"]}
    assert reasons["analyte not modelled (options.analytes)"]["by_analyte"]["CD4"] == int((obs["analyte"] == "CD4").sum())
    first = str(subj["subject_id"].iloc[0])
    sel = obs["analyte"].isin(["CD3", "CD8"])
    unknown = reasons["subject's response is unknown (covariate of the model)"]
    assert unknown["n_rows"] == int((sel & (obs["subject_id"] == first)).sum())
    one = KineticsModel({"analytes": ["CD3"], "cycles": 1}).prepare(ds).data_use
    cyc2 = [r for r in one["rows_left_out"] if r["reason"] == "cycle 2 is beyond options.cycles = 1"]
    assert len(cyc2) == 1 and cyc2[0]["n_rows"] > 0 and one["events_left_out"] > 0
    assert sum(r["n_rows"] for r in use["rows_left_out"]) + use["rows_used"] == use["rows_total"] == len(obs)
    assert prep.coords["response_contrast"] == ["1 vs 0"]
    ref = use["covariates"]["regimen"]["reference"]
    assert sorted(prep.coords["regimen_contrast"]) == sorted(f"{r} vs {ref}" for r in ("15", "5-15", "5-15-30")
                                                              if r != ref)
    assert first not in prep.coords["subject"]
    assert set(use["covariates"]) == {"response", "regimen"}
    # every (observation, event) pair within (0, max_event_lag_h] and of the same subject
    A = prep.arrays
    assert np.all((A["pair_lag"] > 0) & (A["pair_lag"] <= 2016.0))
    assert np.array_equal(A["pair_subject"], A["obs_subject"][A["pair_obs"]])
    m = fam.build(prep)
    assert m["beta_regimen"].eval().shape == (2, 2) and "beta_response" in fam.summary_vars()


def test_requested_analyte_without_data_is_a_clear_error(adult):
    ds, _ = adult
    with pytest.raises(DataValidationError, match="no usable observations of analyte CD4_NAIVE"):
        KineticsModel({"analytes": ["CD3", "CD4_NAIVE"]}).prepare(ds)


# --------------------------------------------------------------------------------------------------
# the family's curve is the simulator's curve
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("analyte", ["CD3", "NEUT", "PLT"])
def test_mean_log_at_the_truth_is_the_simulators_curve(adult, analyte):
    """With the true patient parameters, ``mean_log`` reproduces ``simulate.true_curve`` at every
    observation row (the model fits exactly the curves the simulator draws)."""
    ds, truth = adult
    fam = KineticsModel({"analytes": [analyte]})
    prep = fam.prepare(ds)
    A = prep.arrays
    pat = truth["patients"]["kinetics"][analyte]
    par = truth["population"]["kinetics"][analyte]
    ids = truth["patients"]["subject_id"]
    idx = [ids.index(s) for s in prep.coords["subject"]]
    draws = {
        "log_baseline": np.log(np.array(pat["baseline"])[idx])[:, None],
        "depth": np.array(pat["depth"])[idx][:, None],
        "log_expansion": np.array(pat["E"])[idx][:, None],
        "t_nadir": np.array([par["t_nadir"]]), "k_shape": np.array([par["k_shape"]]),
        "tau_e": np.array([par["tau_e"]]),
    }
    mu = kinetics_log_mu(draws, A, truth["population"]["bracket_floor"])
    expected = np.empty_like(mu)
    for i, s in enumerate(prep.coords["subject"]):
        rows = np.flatnonzero(A["obs_subject"] == i)
        expected[rows] = np.log(true_curve(ds, truth, analyte, A["obs_time_h"][rows], [s])[0])
    np.testing.assert_allclose(mu, expected, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------------------------------
# recovery (slow)
# --------------------------------------------------------------------------------------------------


def test_sampler_starts_near_the_data(adult):
    """Centred baselines start at each patient's pre-treatment result (not the prior's e^7), the
    population baseline at their mean, and the dip's timing unjittered."""
    from bayes_blina.families.base import unjittered_names

    ds, truth = adult
    fam = KineticsModel({"analytes": ["CD3", "NEUT"]})
    prep = fam.prepare(ds)
    model = fam.build(prep)
    assert unjittered_names(model) == {"t_nadir", "k_shape"}
    ip = model.initial_point()
    start = ip["log_baseline"]
    pats = truth["patients"]
    order = [list(pats["subject_id"]).index(s) for s in prep.coords["subject"]]
    true_b = np.log(np.array([[pats["kinetics"][a]["baseline"][i] for a in ("CD3", "NEUT")] for i in order]))
    assert np.abs(start - true_b).mean() < 0.3  # measured with a residual SD of 0.15
    mu = np.array([truth["population"]["kinetics"][a]["log_baseline_mu"] for a in ("CD3", "NEUT")])
    np.testing.assert_allclose(ip["log_baseline_mu"], start.mean(axis=0))
    assert np.all(np.abs(ip["log_baseline_mu"] - mu) < 0.5)
    # non-centred: no per-patient start (w starts at 0 as usual)
    nc = KineticsModel({"analytes": ["CD3"], "centred": False})
    nc = nc.build(nc.prepare(ds))
    assert "log_baseline" not in nc.initial_point()


def _truth_of(truth, analyte):
    p = truth["population"]["kinetics"][analyte]
    return {"log_baseline_mu": p["log_baseline_mu"], "sd_log_baseline": p["sd_log_baseline"],
            "logit_depth_mu": math.log(p["depth"] / (1 - p["depth"])), "sd_logit_depth": p["sd_logit_depth"],
            "t_nadir": p["t_nadir"], "k_shape": p["k_shape"], "expansion_mu": p["expansion_mu"],
            "sd_expansion": p["sd_expansion"], "tau_e": p["tau_e"], "sigma_obs": p["sigma_obs"]}


@pytest.mark.slow
def test_cd3_recovery_36_patients(adult):
    """Criterion: no divergences, R-hat < 1.01 for every population parameter, at least 7 of the 10
    population parameters with their truth inside the 90% interval (for calibrated intervals the
    count is Binomial(10, 0.9): P(>= 7) = 0.987), and the patients' posterior mean
    ``log_expansion`` correlates with the true ``E_i`` (r > 0.9)."""
    from bayes_blina.inference import fit

    ds, truth = adult
    t0 = time.perf_counter()
    res = fit({"name": "t", "family": "kinetics", "options": {"analytes": ["CD3"]},
               "sampler": {"chains": 2, "draws": 1000, "tune": 500, "seed": 7, "target_accept": 0.9}}, ds)
    elapsed = time.perf_counter() - t0
    post = res.idata.posterior
    assert int(res.idata.sample_stats["diverging"].sum()) == 0
    import arviz as az

    rhat = az.rhat(post.to_dataset()[list(POPULATION_PARAMETERS)])
    assert max(float(rhat[v].max()) for v in POPULATION_PARAMETERS) < 1.01, rhat
    inside, misses = 0, []
    for k, v in _truth_of(truth, "CD3").items():
        lo, hi = np.quantile(post[k].values.ravel(), [0.05, 0.95])
        inside += lo <= v <= hi
        if not lo <= v <= hi:
            misses.append((k, lo, v, hi))
    assert inside >= 7, misses
    ids = truth["patients"]["subject_id"]
    e_true = np.array(truth["patients"]["kinetics"]["CD3"]["E"])[[ids.index(s) for s in post.coords["subject"].values]]
    e_hat = post["log_expansion"].sel(analyte="CD3").mean(("chain", "draw")).values
    assert np.corrcoef(e_hat, e_true)[0, 1] > 0.9
    # the pointwise log-likelihood has one entry per row used
    assert res.idata.log_likelihood["y"].sizes["obs"] == res.prepared.data_use["rows_used"]
    print(f"CD3 kinetics fit: {elapsed:.0f} s")
