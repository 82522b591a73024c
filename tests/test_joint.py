"""Joint model (fast tests): options, priors, data use, the CR part's link to the sub-models, and
landmark prediction against closed forms on fixed (fake) posteriors."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import special

from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import DataValidationError, SpecError, UnknownPriorError
from bayes_blina.events import standard_schedule
from bayes_blina.families import get_family
from bayes_blina.families.joint import BIOMARKERS, JointModel, derived_summary
from bayes_blina.joint.landmark import (
    JointFitView,
    landmark_cutoff_h,
    predict_landmark,
    read_landmark_inputs,
)
from bayes_blina.simulate import simulate_cohort


@pytest.fixture(scope="module")
def small_cohort():
    ds, truth = simulate_cohort("adult-exploratory", 12, seed=5)
    return ds, truth


# ------------------------------------------------------------------------------------------------
# options and priors
# ------------------------------------------------------------------------------------------------


def test_registered_and_default_priors_are_prefixed():
    fam = get_family("joint")()
    assert isinstance(fam, JointModel)
    assert fam.part_names() == ["tcell", "cyt"]
    for name in ("p_typical", "beta_tcell_expansion", "beta_il10_peak", "sd_regimen", "tcell_sigma_obs",
                 "tcell_expansion_mu", "cyt_log_amp_mu", "cyt_sigma_obs"):
        assert name in fam.priors
    assert fam.parts["cyt"].options.analytes == ["IL10"] and fam.parts["cyt"].options.cycles == 1
    assert fam.parts["tcell"].options.analytes == ["CD3"]


def test_prior_override_reaches_the_sub_model_and_unknown_names_are_listed():
    fam = JointModel({}, {"tcell_sigma_obs": "HalfNormal(sigma=0.3)", "beta_il10_peak": "Normal(mu=0, sigma=1)"})
    assert fam.parts["tcell"].priors["sigma_obs"].params == {"sigma": 0.3}
    assert fam.priors["beta_il10_peak"].params["sigma"] == 1.0
    with pytest.raises(UnknownPriorError, match="tcell_sigma_obs"):
        JointModel({}, {"tcell_sigma": "HalfNormal(sigma=1)"})


@pytest.mark.parametrize("options,msg", [
    ({"biomarkers": ["cd3_peak"]}, "unknown biomarker"),
    ({"biomarkers": ["il10_peak", "il10_peak"]}, "must not repeat"),
    ({"covariates": ["height"]}, "unknown covariate"),
    ({"centre": {"il6_peak": 1.0}}, "not in biomarkers"),
    ({"biomarkers": [], "response_part": False}, "at least one biomarker"),
    ({"cytokines": {"analytes": ["IL6"]}}, "must include"),
    ({"peak_ref": {"IL10": -1.0}}, "positive"),
    ({"tcell": {"analytes": ["CD3"], "bogus": 1}}, "tcell sub-model"),
    ({"numeric_covariates": {"Platelets": {"ref": 5e4}}}, "lower-case"),
    ({"numeric_covariates": {"regimen": {"ref": 1.0}}}, "clashes"),
    ({"numeric_covariates": {"platelets_baseline": {"ref": 0.0}}}, "> 0"),
    ({"numeric_covariates": {"platelets_baseline": {"ref": 5e4, "transform": "log"}}}, "transform"),
])
def test_bad_options_are_named(options, msg):
    with pytest.raises(SpecError, match=msg):
        JointModel(options)


def test_covariates_only_has_no_trajectory_parts():
    fam = JointModel({"biomarkers": []})
    assert fam.parts == {} and "beta_tcell_expansion" not in fam.priors and "tcell_sigma_obs" not in fam.priors


def test_extra_cytokine_biomarker_builds_a_correlated_pulse_part():
    fam = JointModel({"biomarkers": ["tcell_expansion", "il10_peak", "il6_peak"]})
    opt = fam.parts["cyt"].options
    assert opt.analytes == ["IL10", "IL6"] and opt.correlated


# ------------------------------------------------------------------------------------------------
# data use
# ------------------------------------------------------------------------------------------------


def test_prepare_records_patients_left_out_and_dropped_factors(small_cohort):
    ds, _ = small_cohort
    subj = ds.subjects.copy()
    subj.loc[0, "response"] = np.nan
    gone = str(subj.loc[1, "subject_id"])
    obs = ds.observations[~((ds.observations["subject_id"] == gone) & (ds.observations["analyte"] == "CD3"))]
    ds2 = ds.with_tables(subjects=subj, observations=obs.reset_index(drop=True))
    fam = JointModel()
    prep = fam.prepare(ds2)
    cr = prep.data_use["cr"]
    reasons = {r["subject_id"]: r["reason"] for r in cr["patients_left_out"]}
    assert reasons[str(subj.loc[0, "subject_id"])].startswith("response not evaluable")
    assert "no usable CD3 observations" in reasons[gone]
    assert cr["patients_used"] == 10 == len(prep.arrays["cr_y"])
    assert cr["factors_dropped"] == {"age_group": "one level in the data (adult)"}
    assert "cr_age_group" not in prep.arrays and "cr_regimen" in prep.arrays
    # the patient without CD3 stays in the IL-10 part
    assert gone in prep.coords["cyt_subject"] and gone not in prep.coords["tcell_subject"]
    # every CR patient points at its own row of each sub-model
    for b in ("tcell_expansion", "il10_peak"):
        part = "tcell" if b == "tcell_expansion" else "cyt"
        idx = prep.arrays[f"cr_{b}_subject"]
        assert [prep.coords[f"{part}_subject"][i] for i in idx] == prep.coords["cr_patient"]
    # cycle-2 rows are recorded as left out, analytes not modelled are counted once
    reasons = [r["reason"] for r in prep.data_use["rows_left_out"]]
    assert reasons[0] == "analyte not modelled by the joint model"
    assert any(r.startswith("cycle 2 is beyond") for r in reasons)


def test_prepare_without_responses_names_the_column(small_cohort):
    ds, _ = small_cohort
    subj = ds.subjects.drop(columns=["response"])
    with pytest.raises(DataValidationError, match="subjects.csv, column 'response'"):
        JointModel().prepare(ds.with_tables(subjects=subj))
    # the trajectories alone need no response
    prep = JointModel({"response_part": False}).prepare(ds.with_tables(subjects=subj))
    assert "cr_y" not in prep.arrays and "tcell_log_y" in prep.arrays


PLT = {"numeric_covariates": {"platelets_baseline": {"ref": 50000.0}}}


def test_numeric_covariate_enters_per_doubling_and_alpha_is_at_the_reference(small_cohort):
    ds, _ = small_cohort
    fam = JointModel(PLT)
    assert fam.priors["beta_platelets_baseline"].params == {"mu": 0.0, "sigma": 1.5}
    assert "beta_platelets_baseline" in fam.summary_vars()
    prep = fam.prepare(ds)
    plt = ds.subjects.set_index("subject_id").loc[prep.coords["cr_patient"], "platelets_baseline"].astype(float)
    x = np.log2(plt.to_numpy() / 50000.0)
    assert np.allclose(prep.arrays["cr_num_platelets_baseline"], x)
    assert prep.data_use["cr"]["numeric"]["platelets_baseline"]["median"] == pytest.approx(np.median(plt))
    model = fam.build(prep)
    import pytensor

    rng = np.random.default_rng(2)
    point = {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in model.initial_point().items()}
    outs = model.replace_rvs_by_values([model[n] for n in ("p_cr", "tcell_log_expansion", "cyt_log_peak_first",
                                                            "alpha", "beta_tcell_expansion", "beta_il10_peak",
                                                            "beta_regimen", "beta_blast_burden",
                                                            "beta_platelets_baseline")])
    f = pytensor.function(model.value_vars, outs, on_unused_input="ignore")
    p_cr, log_e, log_peak, alpha, b_t, b_c, b_reg, b_bb, b_p = f(*[point[v.name] for v in model.value_vars])
    A = prep.arrays
    eta = (alpha + b_t * log_e[A["cr_tcell_expansion_subject"], 0] / math.log(2)
           + b_c * (log_peak[A["cr_il10_peak_subject"], 0] - math.log(100.0)) / math.log(2)
           + b_reg[A["cr_regimen"]] + b_bb[A["cr_blast_burden"]] + b_p * x)
    assert np.allclose(p_cr, special.expit(eta), atol=1e-10)


def test_numeric_covariate_problems_name_file_column_and_row(small_cohort):
    ds, _ = small_cohort
    fam = JointModel(PLT)
    with pytest.raises(DataValidationError, match="subjects.csv, column 'platelets_baseline'.*add it"):
        fam.prepare(ds.with_tables(subjects=ds.subjects.drop(columns=["platelets_baseline"])))
    subj = ds.subjects.copy()
    subj["platelets_baseline"] = subj["platelets_baseline"].astype(object)
    subj.loc[3, "platelets_baseline"] = "-5"
    with pytest.raises(DataValidationError, match="row 4.*> 0"):
        fam.prepare(ds.with_tables(subjects=subj))
    subj.loc[3, "platelets_baseline"] = np.nan  # empty: the patient is left out, and says so
    prep = fam.prepare(ds.with_tables(subjects=subj))
    left = {r["subject_id"]: r["reason"] for r in prep.data_use["cr"]["patients_left_out"]}
    assert "platelets_baseline empty" in left[str(subj.loc[3, "subject_id"])]
    assert len(prep.coords["cr_patient"]) == len(subj) - 1
    # new patients for prediction need the column too
    with pytest.raises(DataValidationError, match="column 'platelets_baseline'"):
        fam.numeric_values(ds.subjects.drop(columns=["platelets_baseline"]))


def test_baseline_eta_adds_the_numeric_covariates():
    from bayes_blina.families.joint import cr_baseline_eta

    post = xr.Dataset({"alpha": (("sample",), np.array([-1.0, 0.5])),
                       "beta_platelets_baseline": (("sample",), np.array([0.8, 0.2]))})
    eta, notes = cr_baseline_eta(post, {}, numeric={"platelets_baseline": np.array([1.0, -2.0, 0.0])})
    assert np.allclose(eta, [[-0.2, -2.6, -1.0], [0.7, 0.1, 0.5]]) and notes == [[], [], []]
    eta0, _ = cr_baseline_eta(post, {}, n=2)
    assert eta0.shape == (2, 2) and np.allclose(eta0[:, 1], [-1.0, 0.5])


# ------------------------------------------------------------------------------------------------
# the CR part is linked to the sub-models' patient effects (one model)
# ------------------------------------------------------------------------------------------------


def test_cr_linear_predictor_uses_the_sub_model_tensors(small_cohort):
    ds, _ = small_cohort
    fam = JointModel()
    prep = fam.prepare(ds)
    model = fam.build(prep)
    names = {v.name for v in model.free_RVs} | {v.name for v in model.deterministics}
    assert {"tcell_log_expansion", "cyt_log_peak_first", "beta_tcell_expansion", "or_il10_peak",
            "p_or_tcell_expansion_gt_1", "alpha", "p_cr", "beta_regimen"} <= names
    assert "beta_age_group" not in names
    rng = np.random.default_rng(1)
    point = model.initial_point()
    for k in point:  # move away from the symmetric initial point
        point[k] = point[k] + 0.3 * rng.standard_normal(np.shape(point[k]))
    import pytensor

    outs = model.replace_rvs_by_values([model[n] for n in ("p_cr", "tcell_log_expansion", "cyt_log_peak_first",
                                                            "alpha", "beta_tcell_expansion", "beta_il10_peak",
                                                            "beta_regimen", "beta_blast_burden")])
    f = pytensor.function(model.value_vars, outs, on_unused_input="ignore")
    p_cr, log_e, log_peak, alpha, b_t, b_c, b_reg, b_bb = f(*[point[v.name] for v in model.value_vars])
    A = prep.arrays
    x_t = log_e[A["cr_tcell_expansion_subject"], 0] / math.log(2)
    x_c = (log_peak[A["cr_il10_peak_subject"], 0] - math.log(100.0)) / math.log(2)
    eta = alpha + b_t * x_t + b_c * x_c + b_reg[A["cr_regimen"]] + b_bb[A["cr_blast_burden"]]
    assert np.allclose(p_cr, special.expit(eta), atol=1e-10)


def test_derived_summary_reports_p_or_above_one():
    beta = np.array([[0.5, 1.0, -0.2, 2.0]])
    idata = type("I", (), {})()
    idata.posterior = xr.Dataset({"beta_tcell_expansion": (("chain", "draw"), beta)})
    df = derived_summary(idata, prob=0.5)
    assert df["quantity"].tolist() == ["or_tcell_expansion"]
    assert df.loc[0, "p_gt_1"] == 0.75
    assert df.loc[0, "median"] == pytest.approx((np.exp(0.5) + np.exp(1.0)) / 2)


# ------------------------------------------------------------------------------------------------
# landmark prediction
# ------------------------------------------------------------------------------------------------


def test_landmark_cutoffs():
    assert landmark_cutoff_h(1) == 0.0 and landmark_cutoff_h(29) == 672.0
    with pytest.raises(SpecError, match=">= 1"):
        landmark_cutoff_h(0)


def _fake_kinetics_view(S=1, *, alpha=-0.5, beta=1.2, lbm=5.4, sdb=0.8, emu=0.7, sde=0.8, sigma=0.15):
    """A joint 'fit' of CD3 expansion alone with fixed parameters (S identical draws)."""
    fam = JointModel({"biomarkers": ["tcell_expansion"], "covariates": []})
    a = {"tcell_analyte": ["CD3"]}
    one = np.ones(S)

    def per(v):
        return (("sample", "tcell_analyte"), np.full((S, 1), float(v)))

    post = xr.Dataset({
        "alpha": (("sample",), alpha * one), "beta_tcell_expansion": (("sample",), beta * one),
        "tcell_log_baseline_mu": per(lbm), "tcell_sd_log_baseline": per(sdb),
        "tcell_logit_depth_mu": per(1.6), "tcell_sd_logit_depth": per(0.5),
        "tcell_t_nadir": per(6.0), "tcell_k_shape": per(2.0), "tcell_expansion_mu": per(emu),
        "tcell_sd_expansion": per(sde), "tcell_tau_e": per(60.0), "tcell_sigma_obs": per(sigma),
    }, coords={"sample": np.arange(S), **a})
    return JointFitView(post=post, family=fam, data_use={})


def _one_patient(times, values, regimen="15"):
    subj = pd.DataFrame({"subject_id": ["N1"], "study": ["S"], "regimen": [regimen], "age_years": [40.0]})
    dos = standard_schedule(regimen, 1).assign(subject_id="N1")[["subject_id", "cycle", "start_h", "end_h",
                                                                   "dose", "dose_unit"]]
    obs = pd.DataFrame({"subject_id": "N1", "analyte": "CD3", "time_h": times, "value": values,
                        "unit": "cells/uL"}) if len(times) else None
    from bayes_blina.data.schema import validate_dataset

    tables = {"subjects": subj, "dosing": dos}
    if obs is not None:
        tables["observations"] = obs
    return validate_dataset(tables, name="new")


def _gauss_hermite_pcr(alpha, beta, mean, sd, n=80):
    x, w = np.polynomial.hermite_e.hermegauss(n)
    e = mean + sd * x
    return float(np.sum(w * special.expit(alpha + beta * e / math.log(2))) / np.sum(w))


def test_landmark_without_data_is_the_population_average():
    view = _fake_kinetics_view()
    ds = _one_patient([], [])
    out = predict_landmark(view, ds, landmark_days=[1], n_effects=4000, seed=3)
    exact = _gauss_hermite_pcr(-0.5, 1.2, 0.7, 0.8)
    assert out.loc[0, "p_cr"] == pytest.approx(exact, abs=0.01)
    assert out.loc[0, "n_obs_CD3"] == 0 and out.loc[0, "ess"] > 3000


def test_landmark_uses_the_numeric_covariates_of_new_patients():
    view = _fake_kinetics_view()
    fam = JointModel({"biomarkers": ["tcell_expansion"], "covariates": [], **PLT})
    view = JointFitView(post=view.post.assign(beta_platelets_baseline=(("sample",), np.array([0.8]))),
                        family=fam, data_use={})
    ds = _one_patient([], [])
    with pytest.raises(DataValidationError, match="column 'platelets_baseline'"):
        predict_landmark(view, ds, landmark_days=[1], n_effects=64, seed=3)
    ds = ds.with_tables(subjects=ds.subjects.assign(platelets_baseline=100000.0))
    out = predict_landmark(view, ds, landmark_days=[1], n_effects=4000, seed=3)
    assert out.loc[0, "p_cr"] == pytest.approx(_gauss_hermite_pcr(-0.5 + 0.8, 1.2, 0.7, 0.8), abs=0.01)


def test_landmark_matches_the_conjugate_posterior_of_the_expansion():
    """Baseline (t < 0) and day-29 counts: log y0 = log B + e0, log y1 = log B + E + e1 (the dips of
    the events at 0 h are long over), a linear Gaussian model with a closed-form posterior of E."""
    lbm, sdb, emu, sde, sig = 5.4, 0.8, 0.7, 0.8, 0.15
    y0, y1 = math.log(150.0), math.log(150.0) + 1.9
    view = _fake_kinetics_view(lbm=lbm, sdb=sdb, emu=emu, sde=sde, sigma=sig)
    ds = _one_patient([-1.0, 672.0], [math.exp(y0), math.exp(y1)])
    out = predict_landmark(view, ds, landmark_days=[1, 29], n_effects=1024, rounds=3, seed=4)
    # closed form: (log B, E) Gaussian prior, two linear observations
    prior_m = np.array([lbm, emu])
    prior_c = np.diag([sdb ** 2, sde ** 2])
    H = np.array([[1.0, 0.0], [1.0, 1.0]])
    R = np.eye(2) * sig ** 2
    K = prior_c @ H.T @ np.linalg.inv(H @ prior_c @ H.T + R)
    m = prior_m + K @ (np.array([y0, y1]) - H @ prior_m)
    c = prior_c - K @ H @ prior_c
    exact29 = _gauss_hermite_pcr(-0.5, 1.2, m[1], math.sqrt(c[1, 1]))
    day29 = out[out["landmark_day"] == 29].iloc[0]
    assert day29["p_cr"] == pytest.approx(exact29, abs=0.01)
    assert day29["tcell_expansion"] == pytest.approx(math.exp(m[1]), rel=0.06)
    assert day29["ess"] > 100
    # day 1: only the baseline, which says nothing about E (prior independence)
    day1 = out[out["landmark_day"] == 1].iloc[0]
    assert day1["n_obs_CD3"] == 1 and day29["n_obs_CD3"] == 2
    assert day1["p_cr"] == pytest.approx(_gauss_hermite_pcr(-0.5, 1.2, emu, sde), abs=0.015)


def test_landmark_adaptive_proposal_agrees_with_brute_force(small_cohort):
    """IL-10 (pulse) part with censored rows: the adapted proposal and 40,000 prior draws agree."""
    ds, _ = small_cohort
    fam = JointModel({"biomarkers": ["il10_peak"], "covariates": []})
    S = 2
    a = {"cyt_analyte": ["IL10"]}

    def per(*v):
        return (("sample", "cyt_analyte"), np.array(v, dtype=float).reshape(S, 1))

    post = xr.Dataset({
        "alpha": (("sample",), np.array([0.2, 0.4])), "beta_il10_peak": (("sample",), np.array([0.5, 0.3])),
        "cyt_log_baseline_mu": per(1.6, 1.5), "cyt_sd_log_baseline": per(0.4, 0.5),
        "cyt_log_amp_mu": per(4.7, 4.6), "cyt_sd_log_amp": per(1.0, 0.9), "cyt_gamma_dose": per(1.0, 0.9),
        "cyt_delta_reexposure": per(-1.8, -1.6), "cyt_kappa_cycle": per(0.0, 0.0),
        "cyt_log_tpeak": per(math.log(24), math.log(22)), "cyt_sd_log_tpeak": per(0.25, 0.3),
        "cyt_k_shape": per(2.0, 2.1),
        "cyt_sigma_obs": per(0.3, 0.35),
    }, coords={"sample": np.arange(S), **a})
    view = JointFitView(post=post, family=fam, data_use={})
    sid = str(ds.subjects["subject_id"].iloc[7])
    new = Dataset(subjects=ds.subjects.iloc[[7]].reset_index(drop=True),
                  dosing=ds.dosing[ds.dosing["subject_id"] == sid].reset_index(drop=True),
                  observations=ds.observations[ds.observations["subject_id"] == sid].reset_index(drop=True))
    adapt = predict_landmark(view, new, landmark_days=[8], n_effects=256, rounds=3, seed=1)
    brute = predict_landmark(view, new, landmark_days=[8], n_effects=20000, rounds=0, seed=2, warn=False)
    assert adapt.loc[0, "n_obs_IL10"] >= 4
    assert adapt.loc[0, "p_cr"] == pytest.approx(brute.loc[0, "p_cr"], abs=0.015)
    assert adapt.loc[0, "il10_peak"] == pytest.approx(brute.loc[0, "il10_peak"], rel=0.1)
    assert adapt.loc[0, "ess"] > 100


def test_read_landmark_inputs_builds_standard_dosing_and_names_bad_regimens(tmp_path):
    subj = tmp_path / "subjects.csv"
    subj.write_text("subject_id,study,regimen,age_years\nA,S,5-15,30\nB,S,15,50\n", encoding="utf-8")
    obs = tmp_path / "observations.csv"
    obs.write_text("subject_id,analyte,time_h,value,unit\nA,CD3,-1,200,cells/uL\n", encoding="utf-8")
    ds = read_landmark_inputs(str(subj), str(obs))
    assert sorted(ds.dosing["subject_id"].unique()) == ["A", "B"]
    assert ds.dosing.loc[ds.dosing["subject_id"] == "A", "dose"].tolist() == [5.0, 15.0]
    subj.write_text("subject_id,study,regimen,age_years\nA,S,5-15,30\nB,S,weekly,50\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match=r"subjects.csv, column 'regimen', row 2"):
        read_landmark_inputs(str(subj), str(obs))


def test_biomarker_table_is_consistent():
    for name, b in BIOMARKERS.items():
        assert b.part in ("tcell", "cyt")
        assert name.startswith("tcell") == (b.part == "tcell")


# ------------------------------------------------------------------------------------------------
# P(CR) curves
# ------------------------------------------------------------------------------------------------


def _fake_joint_fit():
    """A joint 'fit' (duck-typed like a Fit) with two draws and three patients."""
    from types import SimpleNamespace

    fam = JointModel({"covariates": ["regimen"]})
    ch, dr = ("chain", "draw")
    post = xr.Dataset({
        "alpha": ((ch, dr), np.array([[-1.0, -0.5]])),
        "beta_tcell_expansion": ((ch, dr), np.array([[1.5, 1.0]])),
        "beta_il10_peak": ((ch, dr), np.array([[0.3, 0.1]])),
        "beta_regimen": ((ch, dr, "regimen"), np.array([[[0.2, -0.2], [0.1, -0.1]]])),
        "p_cr": ((ch, dr, "cr_patient"), np.full((1, 2, 3), 0.5)),
        "tcell_log_expansion": ((ch, dr, "tcell_subject", "tcell_analyte"),
                                np.log(np.array([2.0, 4.0, 1.0]))[None, None, :, None].repeat(2, 1)),
        "cyt_log_peak_first": ((ch, dr, "cyt_subject", "cyt_analyte"),
                               np.log(np.array([400.0, 100.0, 800.0]))[None, None, :, None].repeat(2, 1)),
    }, coords={"regimen": ["15", "5-15"], "cr_patient": ["a", "b", "c"], "tcell_subject": ["a", "b", "c"],
               "cyt_subject": ["a", "b", "c"], "tcell_analyte": ["CD3"], "cyt_analyte": ["IL10"]})
    idata = SimpleNamespace(posterior=post, observed_data=xr.Dataset({"cr": (("cr_patient",), np.array([1, 1, 0]))}),
                            groups=lambda: ["posterior", "observed_data"])
    return SimpleNamespace(family=fam, idata=idata)


def test_pcr_curve_is_the_logistic_formula_by_regimen():
    from bayes_blina.joint.cr_curves import fitted_biomarkers, pcr_curve
    from bayes_blina.report.figures import pcr_curve_figure

    fit_ = _fake_joint_fit()
    fb = fitted_biomarkers(fit_)
    assert fb["tcell_expansion"].tolist() == pytest.approx([1.0, 2.0, 0.0])
    assert fb["il10_peak"].tolist() == pytest.approx([2.0, 0.0, 3.0])
    assert fb["response"].tolist() == [1, 1, 0]
    c = pcr_curve(fit_, "tcell_expansion", grid=[1.0, 4.0], prob=0.5)
    assert set(c["level"]) == {"15", "5-15"} and c.attrs["others"] == {"il10_peak": pytest.approx(400.0)}
    # regimen 15, fold change 4 (log2 = 2), IL-10 held at its median (log2 = 2)
    p = special.expit(np.array([-1.0 + 0.2 + 1.5 * 2 + 0.3 * 2, -0.5 + 0.1 + 1.0 * 2 + 0.1 * 2]))
    row = c[(c["level"] == "15") & (c["value"] == 4.0)].iloc[0]
    assert row["p_median"] == pytest.approx(np.median(p))
    assert row["p_lower"] <= row["p_median"] <= row["p_upper"]
    assert (c.groupby("level")["p_median"].diff().dropna() > 0).all()  # rising with expansion
    fig = pcr_curve_figure(c, patients=fb)
    assert fig.axes[0].get_xscale() == "log"
    with pytest.raises(SpecError, match="not in this fit"):
        pcr_curve(fit_, "il6_peak")


def test_pcr_curve_holds_numeric_covariates_at_the_fitted_median():
    from types import SimpleNamespace

    from bayes_blina.joint.cr_curves import pcr_curve

    fit_ = _fake_joint_fit()
    fam = JointModel({"covariates": ["regimen"], **PLT})
    post = fit_.idata.posterior.assign(beta_platelets_baseline=(("chain", "draw"), np.array([[0.8, 0.4]])))
    use = {"cr": {"numeric": {"platelets_baseline": {"median": 100000.0, "median_model_scale": 1.0}}}}
    fit2 = SimpleNamespace(family=fam, idata=SimpleNamespace(posterior=post, observed_data=fit_.idata.observed_data),
                           prepared=SimpleNamespace(data_use=use))
    c = pcr_curve(fit2, "tcell_expansion", grid=[4.0], prob=0.5, by="regimen")
    assert c.attrs["numeric"] == {"platelets_baseline": 100000.0}
    p = special.expit(np.array([-1.0 + 0.2 + 1.5 * 2 + 0.3 * 2 + 0.8, -0.5 + 0.1 + 1.0 * 2 + 0.1 * 2 + 0.4]))
    assert c[c["level"] == "15"].iloc[0]["p_median"] == pytest.approx(np.median(p))


def test_two_stage_stage1_spec_drops_the_cr_part_and_its_priors():
    from bayes_blina.joint.two_stage import compare_beta, stage1_spec
    from bayes_blina.spec import load_spec

    from bayes_blina.spec import parse_spec

    shipped = load_spec("joint")
    cr_priors = {"p_typical": {"dist": "Beta", "alpha": 2, "beta": 2}, "sd_regimen": {"dist": "Gamma", "alpha": 2, "beta": 2},
                 "tcell_sigma_obs": {"dist": "HalfNormal", "sigma": 0.4}}
    s1 = stage1_spec(parse_spec({**shipped.to_toml_dict(), "priors": cr_priors}))  # a spec stating CR priors
    assert s1.options["response_part"] is False and set(s1.priors) == {"tcell_sigma_obs"}
    fam = JointModel(s1.options, s1.priors)
    assert fam.part_names() == ["tcell", "cyt"] and "beta_tcell_expansion" not in fam.priors
    assert fam.priors["tcell_sigma_obs"].params == {"sigma": 0.4}  # the trajectory priors are kept
    assert JointModel(shipped.options, shipped.priors).options.cycles == 1
    # compare_beta: widths, ratios and coverage from two posteriors
    rng = np.random.default_rng(0)

    def post(sd):
        i = type("I", (), {})()
        i.posterior = xr.Dataset({"beta_il10_peak": (("chain", "draw"), 0.3 + sd * rng.standard_normal((2, 4000)))})
        return i

    cmp = compare_beta(post(0.2), post(0.1), truth={"il10_peak": 0.3}).iloc[0]
    assert cmp["sd_ratio"] == pytest.approx(0.5, rel=0.05) and cmp["width_ratio"] == pytest.approx(0.5, rel=0.08)
    assert cmp["joint_covers"] and cmp["two_stage_covers"]
