"""The joint model's biomarker window (issue 15, part 1): which trajectory rows feed a patient's
biomarker must not depend on what happens to the patient after the window (the outcome decides who
continues to cycle 2 and who is seen off treatment), the default spec runs on the core data format,
and the simulator's off-treatment follow-up.

Fast tests (no MCMC); the null-cohort fit is in tests/test_joint_window_null.py (slow)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_blina.errors import SpecError
from bayes_blina.families.joint import JointModel
from bayes_blina.families.kinetics import KineticsModel, kinetics_log_mu
from bayes_blina.simulate import simulate_cohort, true_curve
from bayes_blina.simulate.presets import get_preset


@pytest.fixture(scope="module")
def small_cohort():
    return simulate_cohort("adult-exploratory", 12, seed=5)


#: What the fit uses: every record of data_use except the counts of rows left out and the table size
_USED = ("rows_used", "subjects_used", "events_used", "censored", "observation_event_pairs", "analytes")


def _used(prep):
    """The prepared arrays and the data-use record of what is used, without the rows' positions in
    the observation table (they shift when rows are added or removed)."""
    arrays = {k: np.asarray(v) for k, v in prep.arrays.items() if not k.endswith("obs_position")}
    coords = {k: list(v) for k, v in prep.coords.items() if not k.endswith("obs")}
    use = {k: prep.data_use[k] for k in ("biomarkers", "cr", "rows_used", "subjects_used", "events_used",
                                         "censored")}
    for part in ("tcell", "cyt"):
        use[part] = {k: prep.data_use[part].get(k) for k in _USED}
    return arrays, coords, use


def _same(a, b):
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k], err_msg=k)
    assert a[1] == b[1]
    assert a[2] == b[2]


def test_rows_after_the_window_do_not_change_the_data_used(small_cohort):
    ds, _ = small_cohort
    obs = ds.observations
    ids = list(ds.subjects["subject_id"].astype(str))
    # rows after day 29 that today's cycle rule keeps (cycle 1 lasts until the start of cycle 2 on
    # day 43): an end-of-treatment and a follow-up sample, as a patient who stopped would have
    extra = []
    for s in ids[:4]:
        for t in (720.0, 850.0, 1000.0):
            for a, v in (("CD3", 80.0), ("IL10", 30.0)):
                extra.append({**obs[(obs["subject_id"] == s) & (obs["analyte"] == a)].iloc[0].to_dict(),
                              "time_h": t, "value": v, "below": "", "lod": np.nan, "lloq": np.nan})
    added = ds.with_tables(observations=pd.concat([obs, pd.DataFrame(extra)], ignore_index=True))
    removed = ds.with_tables(observations=obs[obs["time_h"] < 696.0].reset_index(drop=True))
    fam = JointModel({"numeric_covariates": {}})
    base, more, fewer = (fam.prepare(d) for d in (ds, added, removed))
    _same(_used(base), _used(more))
    _same(_used(base), _used(fewer))
    # and the rows are recorded as left out, with the reason, part by part
    after = "after the biomarker window (day 29 from the first infusion start)"
    n_after = {p: sum(r["n_rows"] for r in u.data_use["rows_left_out"] if r["reason"] == after and r["part"] == p)
               for u in (more,) for p in ("tcell", "cyt")}
    n_base = {p: sum(r["n_rows"] for r in base.data_use["rows_left_out"] if r["reason"] == after and r["part"] == p)
              for p in ("tcell", "cyt")}
    assert n_after["tcell"] == n_base["tcell"] + 12 and n_after["cyt"] == n_base["cyt"] + 12
    assert more.data_use["biomarker_window"]["rows_after"] == base.data_use["biomarker_window"]["rows_after"] + 24
    assert fewer.data_use["biomarker_window"]["rows_after"] == 0
    assert base.data_use["biomarker_window"]["end_h"] == 696.0
    assert base.data_use["biomarker_window"]["expansion_at_h"] == 672.0
    # no row used is at or after the end of day 29
    assert base.arrays["tcell_obs_time_h"].max() < 696.0 and base.arrays["cyt_obs_time_h"].max() < 696.0


def test_fit_prints_the_window_and_the_rows_it_leaves_out(small_cohort, capsys):
    from bayes_blina.cli import _echo_data_use

    prep = JointModel({"numeric_covariates": {}}).prepare(small_cohort[0])
    _echo_data_use(prep.data_use)
    err = capsys.readouterr().err
    n = prep.data_use["biomarker_window"]["rows_after"]
    assert n > 0
    assert "after the biomarker window (day 29 from the first infusion start)" in err
    assert "biomarker window: trajectory rows with time_h < 696 h (through day 29" in err
    assert f"{n} rows after it left out" in err


def test_early_window_defines_the_expansion_at_its_day(small_cohort):
    ds, _ = small_cohort
    fam = JointModel({"window_days": 8, "numeric_covariates": {}})
    kin = fam.parts["tcell"].options
    assert kin.window_days == 8 and kin.expansion_day == 8 and kin.t_ref_h == 168.0
    assert fam.parts["cyt"].options.window_days == 8
    prep = fam.prepare(ds)
    assert prep.arrays["tcell_obs_time_h"].max() < 192.0 and prep.arrays["cyt_obs_time_h"].max() < 192.0
    assert prep.arrays["tcell_event_time_h"].max() < 192.0
    assert prep.data_use["biomarkers"]["tcell_expansion"]["label"].startswith("CD3 fold change at day 8")
    # the sub-models' own window options would contradict the biomarker's definition
    with pytest.raises(SpecError, match="window_days"):
        JointModel({"tcell": {"expansion_day": 15}})
    with pytest.raises(ValueError, match="window_days"):
        JointModel({"window_days": 35})


def test_kinetics_expansion_day_is_the_fold_change_at_that_day():
    t = np.array([0.0, 84.0, 168.0, 672.0])
    A = {"pair_analyte": np.zeros(3, dtype=np.int64), "pair_lag": t[1:], "pair_obs": np.arange(1, 4),
         "obs_subject": np.zeros(4, dtype=np.int64), "obs_analyte": np.zeros(4, dtype=np.int64),
         "obs_time_h": t, "log_y": np.zeros(4)}
    # no dip (depth 0): the curve is log B + E s(t)
    draws = {"log_baseline": np.array([[5.0]]), "depth": np.array([[0.0]]), "log_expansion": np.array([[0.7]]),
             "t_nadir": np.array([6.0]), "k_shape": np.array([2.0]), "tau_e": np.array([100.0])}
    day8 = kinetics_log_mu(draws, A, t_ref_h=KineticsModel({"expansion_day": 8}).options.t_ref_h)
    day29 = kinetics_log_mu(draws, A)
    assert day8[2] == pytest.approx(5.7) and day8[3] == pytest.approx(5.7)  # flat from day 8
    assert day29[3] == pytest.approx(5.7) and day29[2] < 5.7 - 0.1
    assert day8[0] == day29[0] == pytest.approx(5.0)


def test_default_joint_spec_runs_on_the_core_data_format(small_cohort):
    from bayes_blina.spec import load_spec

    ds, _ = small_cohort
    core = ["subject_id", "study", "regimen", "age_years", "age_group", "blast_pct", "bsa_m2", "response"]
    spec = load_spec("joint")
    fam = JointModel(spec.options, spec.priors)
    assert fam.options.numeric_covariates == {} and fam.options.window_days == 29
    prep = fam.prepare(ds.with_tables(subjects=ds.subjects[core]))
    assert prep.data_use["cr"]["patients_used"] == 12 and prep.data_use["cr"]["numeric"] == {}
    assert not any(k.startswith("cr_num_") for k in prep.arrays)
    # a prognostic covariate stays an option (named in the spec's comments)
    with_plt = JointModel({**spec.options, "numeric_covariates": {"platelets_baseline": {"ref": 50000.0}}})
    assert "cr_num_platelets_baseline" in with_plt.prepare(ds).arrays


# ------------------------------------------------------------------------------------------------
# the simulator's off-treatment follow-up
# ------------------------------------------------------------------------------------------------


def test_follow_up_preset_adds_off_treatment_visits_of_the_patients_who_stopped():
    n, seed = 60, 4
    plain, truth0 = simulate_cohort("adult-null", n, seed=seed)
    fu, truth = simulate_cohort("adult-null-follow-up", n, seed=seed)
    assert get_preset("adult-null").follow_up_after_stop_h == ()
    assert truth["design"]["follow_up_after_stop_h"] == [336.0, 1008.0]
    p = truth["patients"]
    stopped = {s for s, c in zip(p["subject_id"], p["cycles_received"]) if c == 1}
    assert stopped and p["response"] == truth0["patients"]["response"]
    # every row of the earlier cohort is unchanged; the new rows are the follow-up of those who stopped
    key = ["subject_id", "analyte", "time_h"]
    merged = fu.observations.merge(plain.observations, on=key, how="left", suffixes=("", "_0"), indicator=True)
    old = merged["_merge"] == "both"
    assert int(old.sum()) == len(plain.observations)
    np.testing.assert_array_equal(merged.loc[old, "value"].to_numpy(float), merged.loc[old, "value_0"].to_numpy(float))
    new = merged[~old]
    assert set(new["subject_id"]) == stopped
    assert set(new["analyte"]) == {"CD3", "CD4", "CD8", "CD19"}
    assert sorted(set(new["time_h"])) == [672.0 + 336.0, 672.0 + 1008.0]
    # T cells return towards baseline after the last infusion: the noise-free curve at day 71 is
    # between the baseline and the day-29 value, closer to the baseline by exp(-1008 / tau)
    s = sorted(stopped)[0]
    i = p["subject_id"].index(s)
    b, e = p["kinetics"]["CD3"]["baseline"][i], p["kinetics"]["CD3"]["E"][i]
    y = true_curve(fu, truth, "CD3", [672.0, 1680.0], [s])[0]
    tau = truth["design"]["off_treatment_tau_h"]
    assert y[1] == pytest.approx(b * np.exp(e * np.exp(-1008.0 / tau)), rel=1e-6)
    assert y[0] == pytest.approx(b * np.exp(e), rel=1e-2)  # the day-29 sample ends the infusion
