"""The survival family (Weibull and piecewise-exponential proportional hazards), its data columns
and the simulator's survival outcomes.

References that do not come from the package itself:

* the Weibull log-likelihood against ``scipy.stats.weibull_min`` (closed form), the piecewise
  cumulative hazard against ``scipy.integrate.quad`` and its median against ``scipy.optimize.brentq``;
* recovery and a null cohort on data from a generator written here (not the package's
  simulator), with truths away from the priors' centres;
* agreement with a frequentist Weibull fit (maximum likelihood by ``scipy.optimize``) within a
  fraction of its standard error; the PBC reference data are in ``test_survival_reference.py``;
* the simulator's pediatric calibration against the published Kaplan-Meier medians.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import integrate, optimize, stats

from bayes_blina.cli import main
from bayes_blina.data.schema import validate_dataset, validate_subjects
from bayes_blina.data.units import DAYS_PER_MONTH
from bayes_blina.errors import DataValidationError, SpecError
from bayes_blina.families import SurvivalModel
from bayes_blina.families.survival import (piecewise_exposure, piecewise_median, piecewise_terms, switch_terms,
                                           weibull_terms)


# -- a generator written here ----------------------------------------------------------------------

def weibull_cohort(n, *, median, shape, seed, hr_mrd=1.0, hr_regimen=1.0, followup=(6.0, 30.0),
                   endpoint="os", studies=1, hsct=False, hr_hsct=0.5):
    """Weibull PH times (months) for patients with a binary MRD response and two regimens; uniform
    administrative censoring on ``followup`` months. With ``hsct``, half the patients are offered a
    transplant at a time uniform on 1-6 months, after which the hazard is ``hr_hsct`` times higher
    (the time solved on the cumulative hazard). Returns the dataset and the latent frame."""
    rng = np.random.default_rng(seed)
    mrd = (rng.random(n) < 0.5).astype(int)
    reg = np.where(rng.random(n) < 0.5, "15", "5-15")
    lin = np.log(hr_mrd) * mrd + np.log(hr_regimen) * (reg == "15")  # reference: 5-15 (first in natural order)
    e = -np.log(rng.random(n))  # threshold on the cumulative hazard H(t) = log 2 exp(lin) (t / median)^shape
    t = median * (e / (math.log(2.0) * np.exp(lin))) ** (1.0 / shape)
    c = rng.uniform(*followup, n)
    th = np.full(n, np.nan)
    if hsct:
        offer = rng.uniform(1.0, 6.0, n)
        gets = (rng.random(n) < 0.5) & (offer < t) & (offer < c)
        H_th = math.log(2.0) * np.exp(lin) * (offer / median) ** shape
        rest = np.maximum(e - H_th, 0.0)  # > 0 for those who get one
        t_after = median * ((H_th + rest / hr_hsct) / (math.log(2.0) * np.exp(lin))) ** (1.0 / shape)
        t = np.where(gets, t_after, t)
        th = np.where(gets, offer, np.nan)
    obs, ev = np.minimum(t, c), (t <= c).astype(int)
    ids = [f"P{i:04d}" for i in range(n)]
    subjects = pd.DataFrame({"subject_id": ids, "study": [f"S{i % studies}" for i in range(n)], "regimen": reg,
                             "response": 1, f"{endpoint}_days": np.round(obs * DAYS_PER_MONTH, 3),
                             f"{endpoint}_event": ev, "mrd_response": mrd})
    if hsct:
        subjects["hsct_days"] = np.round(th * DAYS_PER_MONTH, 3)
    ds = validate_dataset({"subjects": subjects.astype(str)}, name="weibull-test", origin="test")
    return ds, pd.DataFrame({"t": t, "c": c, "mrd": mrd, "regimen": reg})


def _fit(options, ds, *, draws=1000, seed=11):
    from bayes_blina.inference import fit
    from bayes_blina.spec import load_spec

    spec = load_spec("survival")
    spec = spec.model_copy(update={"options": {**spec.options, **options}})
    return fit(spec, ds, draws=draws, tune=1000, chains=4, seed=seed)  # the spec's chains, as a user fits


#: Recovery tests check several quantities per fit: the truth must be inside each 99% interval
#: (a 95% interval would miss one of four quantities in one fit in five by chance alone).
RECOVERY = (0.005, 0.995)


def _interval(res, name, q=(0.05, 0.95), **sel):
    da = res.idata.posterior[name]
    if sel:
        da = da.sel(**sel)
    v = da.values.ravel()
    return float(np.quantile(v, q[0])), float(np.mean(v)), float(np.quantile(v, q[1]))


# -- the formula -------------------------------------------------------------------------------------

def test_weibull_terms_are_scipys_weibull_log_density_and_survival():
    t = np.array([0.01, 0.5, 3.0, 12.0, 80.0])
    eta = np.array([0.0, 0.7, -1.2, 2.0, -3.0])
    median, k = 4.0, 0.7
    log_h, H = weibull_terms(t, eta, math.log(median), k)
    scale = median / math.log(2.0) ** (1.0 / k) * np.exp(-eta / k)  # PH on the Weibull = AFT rescaling
    np.testing.assert_allclose(log_h - H, stats.weibull_min.logpdf(t, k, scale=scale), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(-H, stats.weibull_min.logsf(t, k, scale=scale), rtol=1e-12, atol=1e-12)


def test_piecewise_hazard_median_and_exposure_against_quadrature():
    cuts = [1.0, 3.0, 6.0]
    log_hazard = np.log([0.05, 0.2, 0.1, 0.02])

    def hazard(s):
        return float(np.exp(log_hazard[np.searchsorted([0.0, *cuts], s, side="right") - 1]))

    t = np.array([0.3, 1.0, 2.5, 7.0, 40.0])
    ex, k = piecewise_exposure(t, cuts)
    log_h, H = piecewise_terms(ex, k, np.zeros(len(t)), log_hazard)
    for ti, Hi, lhi in zip(t, H, log_h):
        ref = integrate.quad(hazard, 0.0, ti, points=[c for c in cuts if c < ti], limit=200)[0]
        assert Hi == pytest.approx(ref, rel=1e-10)
        assert lhi == pytest.approx(math.log(hazard(ti)))
    med = piecewise_median(log_hazard, cuts)

    def cum(s):
        return float(piecewise_terms(*piecewise_exposure(np.array([s]), cuts), np.zeros(1), log_hazard)[1][0])

    assert med == pytest.approx(optimize.brentq(lambda s: cum(s) - math.log(2.0), 1e-6, 500.0), rel=1e-10)
    # draws on leading axes, and a median in the open last interval
    lh = np.stack([log_hazard, np.log([0.01, 0.01, 0.01, 0.05])])
    meds = piecewise_median(lh, cuts)
    assert meds[0] == pytest.approx(med)
    assert meds[1] == pytest.approx(6.0 + (math.log(2.0) - 0.06) / 0.05)


@pytest.mark.parametrize("hsct", [False, True], ids=["no-hsct", "hsct"])
@pytest.mark.parametrize("baseline", ["weibull", "piecewise"])
def test_model_log_likelihood_equals_the_numpy_pointwise_one(baseline, hsct):
    ds, _ = weibull_cohort(40, median=5.0, shape=1.2, seed=3, hr_mrd=0.5, hsct=hsct)
    fam = SurvivalModel({"covariates": ["mrd_response", "regimen"], "baseline": baseline, "time_varying_hsct": hsct})
    prep = fam.prepare(ds)
    model = fam.build(prep)
    point = model.initial_point()
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in point.items()}
    import xarray as xr

    names = [rv.name for rv in model.free_RVs] + ["median_months"] + (["log_hazard"] if baseline == "piecewise" else [])
    assert ("log_hr_hsct" in names) == hsct
    if hsct:
        assert 0 < prep.arrays["hsct_after"].sum() < 40
    outs = model.compile_fn([model.potentials[0]] + [model[n] for n in names], inputs=model.value_vars,
                            on_unused_input="ignore")(point)
    pot = float(outs[0])
    # the same point as a one-draw posterior, through the family's numpy log-likelihood
    post = xr.Dataset({n: xr.DataArray(np.asarray(v)[None, None], dims=("chain", "draw") + tuple(
        f"{n}_d{i}" for i in range(np.ndim(v)))) for n, v in zip(names, outs[1:])})
    tree = xr.DataTree.from_dict({"posterior": post})
    ll = fam.log_likelihood(tree, prep)["y"].values
    assert ll.shape == (1, 1, 40)
    assert ll.sum() == pytest.approx(pot, rel=1e-10)


def test_switch_terms_integrate_the_hazard_with_a_transplant():
    median, k, eta, b, th = 4.0, 1.3, 0.4, math.log(0.5), 2.5

    def hazard(s):
        log_h0, _ = weibull_terms(np.array([s]), 0.0, math.log(median), k)
        return float(np.exp(log_h0[0] + eta + (b if s >= th else 0.0)))

    for t in (1.0, 2.5, 6.0):
        log_h0, H0 = weibull_terms(np.array([t]), 0.0, math.log(median), k)
        _, H0_s = weibull_terms(np.array([min(th, t)]), 0.0, math.log(median), k)
        after = float(th < t)
        log_h, H = switch_terms(log_h0, H0, H0_s, after, eta, b)
        assert H[0] == pytest.approx(integrate.quad(hazard, 0.0, t, points=[th] if th < t else None)[0], rel=1e-8)
        assert log_h[0] == pytest.approx(math.log(hazard(t)) if t != th else log_h0[0] + eta)


# -- data --------------------------------------------------------------------------------------------

def test_survival_columns_are_validated_with_file_column_and_row():
    raw = pd.DataFrame({"subject_id": ["a", "b", "c", "d", "e"], "study": "s", "regimen": "15",
                        "response": ["1", "0", "1", "1", "1"],
                        "os_days": ["300", "100", "-1", "", "50"], "os_event": ["1", "1", "0", "1", "0"],
                        "rfs_days": ["200", "50", "10", "400", "60"], "rfs_event": ["1", "1", "x", "1", "1"],
                        "mrd_response": ["1", "1", "0", "1", "2"]}).astype(object)
    _, problems = validate_subjects(raw)
    got = {(p.column, p.row, p.rule.split(" (")[0]) for p in problems}
    assert ("os_days", 3, "os_days must be >= 0") in got
    assert ("os_days", 4, "os_days is required when os_event is given") in got
    assert ("rfs_event", 3, "rfs_event must be 1") in got
    assert any(c == "rfs_days" and r == 2 and "not in CR" in rule for c, r, rule in got)
    assert any(c == "mrd_response" and r == 2 and "not in CR" in rule for c, r, rule in got)
    assert any(c == "mrd_response" and r == 5 for c, r, _ in got)
    assert any(c == "rfs_days" and r == 5 and "after os_days" in rule for c, r, rule in got)
    assert all(p.file == "subjects.csv" for p in problems)


def test_subjects_without_survival_columns_get_none():
    raw = pd.DataFrame({"subject_id": ["a"], "study": "s", "regimen": "15"}).astype(object)
    out, problems = validate_subjects(raw)
    assert not problems and not {"os_days", "rfs_days", "mrd_response"} & set(out.columns)


def test_prepare_records_every_patient_left_out_and_why():
    raw = pd.DataFrame({"subject_id": ["a", "b", "c", "d", "e"], "study": "s", "regimen": "15",
                        "response": ["1", "0", "1", "1", ""],
                        "os_days": ["300", "100", "20", "0", "40"], "os_event": ["1", "1", "0", "1", "1"],
                        "rfs_days": ["200", "", "", "0", ""], "rfs_event": ["1", "", "", "0", ""],
                        "mrd_response": ["1", "", "", "0", ""]}).astype(object)
    ds = validate_dataset({"subjects": raw}, name="t", origin="test")
    rfs = SurvivalModel({"endpoint": "rfs", "covariates": ["mrd_response"]}).prepare(ds)
    assert rfs.coords["patient"] == ["a", "d"]
    reasons = {d["subject_id"]: d["reason"] for d in rfs.data_use["patients_left_out"]}
    not_cr = "not in CR (response not 1; RFS is among responders)"
    assert reasons == {"b": not_cr, "c": "no rfs_days", "e": not_cr}
    assert rfs.data_use["placed_at_half_day"] == ["d"]
    assert rfs.arrays["time"][1] == pytest.approx(0.5 / DAYS_PER_MONTH)
    os_ = SurvivalModel({"covariates": ["mrd_response"]}).prepare(ds)
    assert os_.coords["patient"] == ["a", "d"]  # mrd_response unknown for the others: recorded
    assert {d["reason"] for d in os_.data_use["patients_left_out"]} == {"mrd_response unknown (survival covariate)"}
    with pytest.raises(DataValidationError, match="os_days and os_event"):
        SurvivalModel().prepare(validate_dataset({"subjects": raw.drop(columns=["os_days", "os_event"])},
                                                 name="t", origin="test"))


def test_options_are_checked():
    with pytest.raises(SpecError, match="cut_months"):
        SurvivalModel({"baseline": "piecewise", "cut_months": [3.0, 1.0]})
    with pytest.raises(SpecError, match="unknown covariate"):
        SurvivalModel({"covariates": ["tcell"]})
    with pytest.raises(SpecError, match="no prior named 'log_median'"):
        SurvivalModel({"baseline": "piecewise"}, {"log_median": {"dist": "Normal", "mu": 0, "sigma": 1}})


# -- recovery, null, frequentist agreement ---------------------------------------------------------

@pytest.mark.slow
def test_weibull_recovery_away_from_the_prior_centres():
    # prior median 12 months, shape centred on 1, log HRs on 0: truths median 3, shape 0.7, HRs 0.4 and 2.5
    ds, _ = weibull_cohort(1000, median=3.0, shape=0.7, seed=21, hr_mrd=0.4, hr_regimen=2.5)
    res = _fit({"covariates": ["mrd_response", "regimen"]}, ds)
    assert res.verdict.passed, res.verdict
    checks = {("median_months", None): 3.0, ("shape", None): 0.7, ("hr_mrd_response", None): 0.4,
              ("hr_regimen", "15"): 2.5}
    for (name, level), truth in checks.items():
        lo, mean, hi = _interval(res, name, RECOVERY, **({"regimen_contrast": level} if level else {}))
        assert lo < truth < hi, (name, lo, hi, truth)
        assert abs(mean / truth - 1.0) < 0.25, (name, mean, truth)  # 1,000 patients: within 25%
    assert res.prepared.data_use["factors"]["regimen"]["reference"] == "5-15"


@pytest.mark.slow
def test_piecewise_baseline_recovers_hazards_and_the_hazard_ratio():
    cuts = [2.0, 6.0]
    true_h = np.array([0.25, 0.08, 0.03])
    rng = np.random.default_rng(5)
    n = 500
    mrd = (rng.random(n) < 0.5).astype(int)
    # inverse of the piecewise cumulative hazard, patient by patient
    target = -np.log(rng.random(n)) / np.exp(np.log(0.5) * mrd)
    H_edges = np.concatenate([[0.0], np.cumsum(true_h[:-1] * np.diff([0.0, *cuts]))])
    k = np.searchsorted(H_edges, target, side="right") - 1
    t = np.array([0.0, *cuts])[k] + (target - H_edges[k]) / true_h[k]
    c = rng.uniform(6.0, 24.0, n)
    subjects = pd.DataFrame({"subject_id": [f"P{i}" for i in range(n)], "study": "S", "regimen": "15",
                             "os_days": np.round(np.minimum(t, c) * DAYS_PER_MONTH, 3), "os_event": (t <= c).astype(int),
                             "mrd_response": mrd, "response": 1})
    ds = validate_dataset({"subjects": subjects.astype(str)}, name="pw", origin="test")
    res = _fit({"covariates": ["mrd_response"], "baseline": "piecewise", "cut_months": cuts}, ds)
    assert res.verdict.passed, res.verdict
    for j, h in enumerate(true_h):
        lo, _, hi = _interval(res, "log_hazard", RECOVERY, interval=res.prepared.coords["interval"][j])
        assert lo < math.log(h) < hi, (j, lo, hi, math.log(h))
    lo, mean, hi = _interval(res, "hr_mrd_response", RECOVERY)
    assert lo < 0.5 < hi and abs(mean / 0.5 - 1) < 0.25
    true_median = float(piecewise_median(np.log(true_h), cuts))
    lo, _, hi = _interval(res, "median_months", RECOVERY)
    assert lo < true_median < hi


@pytest.mark.slow
def test_null_cohort_claims_no_hazard_ratio():
    ds, _ = weibull_cohort(300, median=6.0, shape=1.3, seed=8, hr_mrd=1.0, hr_regimen=1.0)
    res = _fit({"covariates": ["mrd_response", "regimen"]}, ds)
    assert res.verdict.passed
    for name, sel in (("hr_mrd_response", {}), ("hr_regimen", {"regimen_contrast": "15"})):
        lo, _, hi = _interval(res, name, (0.025, 0.975), **sel)  # no claim at the 95% level
        assert lo < 1.0 < hi, (name, lo, hi)


def weibull_mle(time, event, x):
    """Maximum-likelihood Weibull PH: ``(estimates, standard errors)`` of (log median, log shape, beta)."""
    def nll(p):
        lm, lk, b = p
        log_h, H = weibull_terms(time, b * x, lm, math.exp(lk))
        return -float(np.sum(event * log_h - H))

    r = optimize.minimize(nll, np.array([math.log(np.median(time)), 0.0, 0.0]), method="BFGS",
                          options={"gtol": 1e-8})
    eps = 1e-4
    H = np.empty((3, 3))  # central-difference Hessian of the negative log-likelihood
    for i in range(3):
        for j in range(3):
            e_i, e_j = np.eye(3)[i] * eps, np.eye(3)[j] * eps
            H[i, j] = (nll(r.x + e_i + e_j) - nll(r.x + e_i - e_j) - nll(r.x - e_i + e_j) + nll(r.x - e_i - e_j)) / (4 * eps**2)
    return r.x, np.sqrt(np.diag(np.linalg.inv(H)))


@pytest.mark.slow
def test_posterior_agrees_with_the_maximum_likelihood_weibull_fit():
    ds, _ = weibull_cohort(300, median=5.0, shape=1.2, seed=13, hr_mrd=0.5)
    res = _fit({"covariates": ["mrd_response"]}, ds)
    A = res.prepared.arrays
    est, se = weibull_mle(A["time"], A["event"], A["x_mrd_response"])
    post = res.idata.posterior
    bayes = [float(np.log(post["median_months"]).mean()), float(np.log(post["shape"]).mean()),
             float(np.log(post["hr_mrd_response"]).mean())]
    for b, e, s in zip(bayes, est, se):
        assert abs(b - e) < 0.2 * s, (b, e, s)  # weak priors, 300 patients: within a fifth of an SE


@pytest.mark.slow
@pytest.mark.parametrize("baseline", ["weibull", "piecewise"])
def test_transplant_as_a_time_varying_covariate_is_recovered(baseline):
    ds, lat = weibull_cohort(800, median=4.0, shape=1.0, seed=31, hr_mrd=0.5, hsct=True, hr_hsct=0.4)
    assert ds.subjects["hsct_days"].notna().mean() > 0.15
    res = _fit({"covariates": ["mrd_response"], "time_varying_hsct": True, "baseline": baseline}, ds)
    assert res.verdict.passed, res.verdict
    for name, truth in (("hr_hsct", 0.4), ("hr_mrd_response", 0.5)):
        lo, mean, hi = _interval(res, name, RECOVERY)
        assert lo < truth < hi and abs(mean / truth - 1.0) < 0.25, (name, lo, mean, hi)
    # the KM check conditions on each patient's own transplant
    from bayes_blina.checks.survival_curves import survival_curve_table  # noqa: F401 (exercised in CLI tests)
    S = res.family.survival_draws(res.idata.posterior, res.prepared, np.array([0.0, 3.0, 12.0]))
    assert S.shape[-2:] == (800, 3) and np.allclose(S[..., 0], 1.0) and np.all(np.diff(S, axis=-1) <= 0)


def test_time_varying_hsct_without_transplants_has_no_switch():
    ds, _ = weibull_cohort(10, median=4.0, shape=1.0, seed=1)
    assert ds.subjects["hsct_days"].isna().all()  # the survival columns come together once one is given
    fam = SurvivalModel({"time_varying_hsct": True})
    prep = fam.prepare(ds)
    assert "hsct_after" not in prep.arrays and prep.data_use["hsct"]["before_end_of_follow_up"] == 0
    assert "no patient has hsct_days" in prep.data_use["factors_dropped"]["hsct"]
    assert "log_hr_hsct" in fam.priors and "log_hr_hsct" not in fam.build(prep).named_vars  # not its prior alone


# -- several studies --------------------------------------------------------------------------------

def test_several_studies_get_a_partially_pooled_study_effect():
    ds, _ = weibull_cohort(60, median=5.0, shape=1.0, seed=2, studies=3)
    fam = SurvivalModel()
    prep = fam.prepare(ds)
    assert prep.coords["study"] == ["S0", "S1", "S2"] and "study" in prep.arrays
    model = fam.build(prep)
    assert {"sd_study", "z_study"} <= set(model.named_vars)
    off = SurvivalModel({"study_effect": False}).prepare(ds)
    assert "study" not in off.arrays and off.data_use["studies"] == ["S0", "S1", "S2"]


# -- simulator ------------------------------------------------------------------------------------

def km_median(t, e):
    """Kaplan-Meier median (the first time the estimate reaches 0.5)."""
    order = np.argsort(t, kind="stable")
    t, e = np.asarray(t)[order], np.asarray(e)[order]
    s, n = 1.0, len(t)
    for i, (ti, ei) in enumerate(zip(t, e)):
        if ei:
            s *= 1.0 - 1.0 / (n - i)
        if s <= 0.5:
            return float(ti)
    return math.inf


def test_simulated_survival_is_calibrated_to_the_pediatric_trial():
    from bayes_blina.simulate import simulate_cohort

    ds, truth = simulate_cohort("pediatric-survival", 2000, seed=1)
    s = ds.subjects
    m = DAYS_PER_MONTH
    cr = s[s["response"] == 1]
    # von Stackelberg et al. 2016: median RFS 4.4 (95% CI 2.3-7.6), with a complete MRD response
    # 7.3 (2.7-16.4), without 1.9 (0.8-6.0); median OS 7.5 (4.0-11.8); 14 of 26 MRD responses
    assert 2.3 < km_median(cr["rfs_days"] / m, cr["rfs_event"]) < 7.6
    yes, no = cr[cr["mrd_response"] == 1], cr[cr["mrd_response"] == 0]
    assert 2.7 < km_median(yes["rfs_days"] / m, yes["rfs_event"]) < 16.4
    assert 0.8 < km_median(no["rfs_days"] / m, no["rfs_event"]) < 6.0
    assert 4.0 < km_median(s["os_days"] / m, s["os_event"]) < 11.8
    assert 0.4 < cr["mrd_response"].mean() < 0.7
    # the data obey their own rules: RFS only in CR, never after OS; deaths before assessment are OS events
    assert s.loc[s["response"] != 1, "rfs_days"].isna().all()
    assert (cr["rfs_days"] <= cr["os_days"]).all()
    died = s["offstudy_reason"] == "death"
    assert (s.loc[died, "os_event"] == 1).all()
    np.testing.assert_allclose(s.loc[died, "os_days"], (s.loc[died, "offstudy_h"] / 24).round(1), atol=0.051)
    assert truth["design"]["survival"]["enabled"] is True
    # alloHSCT in remission: 13 of 27 responders in the paper; only responders, before their RFS ends
    assert 0.3 < cr["hsct_days"].notna().mean() < 0.6
    assert s.loc[s["response"] != 1, "hsct_days"].isna().all()
    got = cr[cr["hsct_days"].notna()]
    assert (got["hsct_days"] <= got["rfs_days"]).all()
    # the earlier presets are unchanged: no survival columns
    ped, _ = simulate_cohort("pediatric", 20, seed=1)
    assert "os_days" not in ped.subjects.columns


@pytest.mark.slow
def test_fit_survival_from_the_cli_reports_hazard_ratios(tmp_path):
    from bayes_blina.simulate import simulate_cohort
    from bayes_blina.simulate.cohort import write_cohort

    ds, truth = simulate_cohort("pediatric-survival", 300, seed=4)
    data = tmp_path / "cohort"
    write_cohort(ds, truth, data)
    spec = tmp_path / "rfs.toml"
    spec.write_text('name = "rfs"\nfamily = "survival"\n[options]\nendpoint = "rfs"\ncovariates = ["mrd_response"]\n'
                    '[sampler]\nchains = 2\ndraws = 1000\ntune = 1000\nseed = 3\n')
    r = CliRunner().invoke(main, ["fit", str(spec), "--data", str(data), "--out", str(tmp_path / "fit")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["summary", str(tmp_path / "fit"), "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = r.output
    assert "hr_mrd_response" in rows and "median_months" in rows and "surv_prob[6 months]" in rows
    from bayes_blina.store import load_fit

    stored = load_fit(tmp_path / "fit")
    hr = stored.idata.posterior["hr_mrd_response"].values.ravel()
    assert np.quantile(hr, 0.95) < 1.0  # the simulator's MRD response lowers the relapse hazard
    use = stored.provenance["data"]["use"]
    assert use["endpoint"] == "rfs" and use["patients_used"] == int((ds.subjects["response"] == 1).sum())


@pytest.mark.parametrize("module", ["bayes_blina.families.survival"])
def test_docstring_examples_run(module):
    import doctest
    from importlib import import_module

    res = doctest.testmod(import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0, res


@pytest.mark.slow
def test_kaplan_meier_check_of_a_well_specified_fit(tmp_path):
    from bayes_blina.checks.survival_curves import kaplan_meier, survival_curve_table
    from bayes_blina.store import load_fit, save_fit

    ds, _ = weibull_cohort(400, median=5.0, shape=1.2, seed=17, hr_mrd=0.4)
    path = save_fit(_fit({"covariates": ["mrd_response"]}, ds), tmp_path / "fit")
    stored = load_fit(path)
    t = survival_curve_table(stored, by="mrd_response", prob=0.9)
    assert set(t["group"]) == {"mrd_response = 0", "mrd_response = 1"}
    A = stored.idata.constant_data
    for v in (0, 1):
        g = t[t["group"] == f"mrd_response = {v}"]
        mask = A["x_mrd_response"].values == v
        assert int(g["at_risk"].iloc[0]) == int(mask.sum())
        # the Kaplan-Meier median of the table's curve is the one computed here independently
        km = kaplan_meier(A["time"].values[mask], A["event"].values[mask], g["time_months"].to_numpy())
        np.testing.assert_allclose(g["km"], km["km"])
        first = g["time_months"].to_numpy()[np.flatnonzero(g["km"].to_numpy() <= 0.5)[0]]
        assert first >= km_median(A["time"].values[mask], A["event"].values[mask]) - 1e-9
    known = t["inside"].dropna()
    assert known.mean() >= 0.8, t  # the model generated these data: the KM curve lies inside its band
    # the command: figure and table, and a clear error for a covariate the fit does not have
    out, table = tmp_path / "km.png", tmp_path / "km.csv"
    r = CliRunner().invoke(main, ["figure", "survival", str(path), "--by", "mrd_response", "--out", str(out),
                                  "--table", str(table)])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(pd.read_csv(table)) == len(t)
    r = CliRunner().invoke(main, ["figure", "survival", str(path), "--by", "regimen", "--out", str(out)])
    assert r.exit_code == 2 and "not a covariate of this fit" in r.output
    # the HTML report shows the same check for a survival fit
    html = tmp_path / "report.html"
    r = CliRunner().invoke(main, ["report", str(path), "--out", str(html)])
    assert r.exit_code == 0, r.output
    text = html.read_text(encoding="utf-8")
    assert "Kaplan-Meier estimate inside the model" in text and "by mrd_response" in text


@pytest.mark.slow
def test_survival_predictions_for_new_patients_and_a_landmark(tmp_path):
    from bayes_blina.store import save_fit

    ds, _ = weibull_cohort(300, median=5.0, shape=1.2, seed=23, hr_mrd=0.5, hr_regimen=2.0)
    path = save_fit(_fit({"covariates": ["mrd_response", "regimen"]}, ds), tmp_path / "fit")
    new = tmp_path / "new.csv"
    new.write_text("subject_id,study,regimen,mrd_response\nA,NEW,15,1\nB,NEW,5-15,0\n")
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(main, ["predict", str(path), "--subjects", str(new), "--months", "0,3,6,12",
                                  "--landmark-month", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    got = pd.read_csv(out)
    assert got["time_months"].tolist() == [3, 6, 12, 3, 6, 12] and (got["landmark_months"] == 3).all()
    # the closed form on every draw: S(t | T > 3) = exp(-(H(t) - H(3))), H = log 2 exp(eta) (t / median)^shape
    from bayes_blina.store import load_fit

    post = load_fit(path).idata.posterior
    lm, k = np.log(post["median_months"].values.ravel()), post["shape"].values.ravel()
    eta_a = np.log(post["hr_mrd_response"].values.ravel()) + np.log(post["hr_regimen"].sel(regimen_contrast="15").values.ravel())
    for t in (6.0, 12.0):
        H = lambda s: math.log(2.0) * np.exp(eta_a + k * (math.log(s) - lm))  # noqa: E731
        expected = np.median(np.exp(-(H(t) - H(3.0))))
        row = got[(got["subject_id"] == "A") & (got["time_months"] == t)].iloc[0]
        assert row["survival_median"] == pytest.approx(expected, rel=1e-6)
        assert row["survival_lower"] < row["survival_median"] < row["survival_upper"]
    b = got[got["subject_id"] == "B"].set_index("time_months")
    assert b.loc[3, "survival_median"] == 1.0 and b.loc[12, "survival_median"] < b.loc[6, "survival_median"]
    bad = tmp_path / "bad.csv"
    bad.write_text("subject_id,study,regimen,mrd_response\nC,NEW,30,1\n")
    r = CliRunner().invoke(main, ["predict", str(path), "--subjects", str(bad), "--out", str(tmp_path / "q.csv")])
    assert r.exit_code == 2 and "regimen must be one of the fit's levels (5-15, 15)" in r.output
    assert not (tmp_path / "q.csv").exists()
