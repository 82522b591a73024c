"""Patients who go off study (death, withdrawal) before the response assessment (issue 15, part 2):
the ``offstudy_h``/``offstudy_reason`` columns (validation, ADaM and NONMEM), the simulator's
early off-study calibrated to the pediatric trial, landmark predictions only for patients at risk,
and the held-out evaluation's intention-to-treat and evaluable-only views."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_blina.data import read_dataset
from bayes_blina.data.adam import read_adam, read_adam_folder, write_adam
from bayes_blina.data.nonmem import read_nonmem, write_nonmem
from bayes_blina.data.schema import OFFSTUDY_REASONS, validate_dataset, validate_subjects, validate_tables
from bayes_blina.errors import DataValidationError
from bayes_blina.events import standard_schedule
from bayes_blina.families.joint import JointModel
from bayes_blina.joint.evaluate import evaluate_landmarks
from bayes_blina.joint.landmark import JointFitView, on_study_at, predict_landmark
from bayes_blina.simulate import get_preset, simulate_cohort
from bayes_blina.simulate.presets import PEDIATRIC_EARLY_OFFSTUDY

# ------------------------------------------------------------------------------------------------
# data format
# ------------------------------------------------------------------------------------------------


def _subjects(**cols):
    n = len(next(iter(cols.values())))
    base = {"subject_id": [f"P{i + 1}" for i in range(n)], "study": ["S"] * n, "regimen": ["5-15"] * n}
    return pd.DataFrame({**base, **cols})


def test_offstudy_columns_are_validated_and_normalised():
    df = _subjects(response=["1", "", "", "0"], offstudy_h=["", "100", "250.5", "900"],
                   offstudy_reason=["", "Death", "WITHDRAWAL BY SUBJECT", "adverse event"])
    out, problems = validate_subjects(df)
    assert problems == []
    assert out["offstudy_h"].dtype == np.float64
    assert out["offstudy_h"].isna().tolist() == [True, False, False, False]
    assert out["offstudy_h"].iloc[1:].tolist() == [100.0, 250.5, 900.0]
    assert out["offstudy_reason"].iloc[1:].tolist() == ["death", "withdrawal", "adverse_event"]
    assert set(out["offstudy_reason"].dropna()) <= set(OFFSTUDY_REASONS)


def test_bad_offstudy_values_name_file_column_and_row():
    df = _subjects(offstudy_h=["-3", "x", "", "12"], offstudy_reason=["death", "death", "death", "abducted"])
    _, problems = validate_subjects(df, file="subj.csv")
    text = [str(p) for p in problems]
    assert any("subj.csv, column 'offstudy_h', row 1: offstudy_h must be >= 0" in t for t in text), text
    assert any("column 'offstudy_h', row 2: offstudy_h must be a number (found 'x')" in t for t in text), text
    assert any("column 'offstudy_h', row 3: offstudy_h is required when offstudy_reason" in t for t in text), text
    assert any("column 'offstudy_reason', row 4: offstudy_reason must be one of 'death'" in t for t in text), text
    _, problems = validate_subjects(_subjects(offstudy_h=["10"]))
    assert [(p.column, p.row) for p in problems] == [("offstudy_reason", 1)]
    assert "required when offstudy_h is given" in problems[0].rule


def test_without_the_columns_the_canonical_table_and_hash_are_unchanged():
    out, _ = validate_subjects(_subjects(response=["1"]))
    assert "offstudy_h" not in out.columns and "offstudy_reason" not in out.columns
    ds = read_dataset("tests/data/minimal")
    assert "offstudy_h" not in ds.subjects.columns


def test_no_samples_or_infusions_after_going_off_study():
    subj = _subjects(offstudy_h=["100"], offstudy_reason=["death"])
    obs = pd.DataFrame({"subject_id": "P1", "analyte": "IL6", "time_h": ["50", "100", "150"], "value": "30",
                        "unit": "pg/mL"})
    dos = pd.DataFrame({"subject_id": "P1", "cycle": 1, "start_h": ["0", "100"], "end_h": ["100", "672"],
                        "dose": "5", "dose_unit": "ug/m2/day"})
    _, problems = validate_tables({"subjects": subj, "observations": obs, "dosing": dos})
    where = sorted((p.file, p.column, p.row) for p in problems)
    assert where == [("dosing.csv", "start_h", 2), ("observations.csv", "time_h", 3)]
    assert all("offstudy_h" in p.rule for p in problems)


# ------------------------------------------------------------------------------------------------
# ADaM and NONMEM
# ------------------------------------------------------------------------------------------------


def test_adam_import_reads_deaths_and_discontinuations(tmp_path):
    adsl = pd.DataFrame({
        "STUDYID": "ST", "USUBJID": ["A", "B", "C", "D", "E"], "TRT01P": "BLINA 5-15 UG/M2/DAY",
        "TRTSDTM": "2020-01-01T08:00:00",
        "DTHDT": ["2020-01-10", "", "", "2020-02-01", ""],  # a date: the end of that day
        "EOSDTM": ["", "2020-01-03T20:00:00", "2020-03-01T00:00:00", "", ""],
        "EOSDT": ["", "", "", "2020-01-04", ""],
        "EOSSTT": ["", "DISCONTINUED", "COMPLETED", "DISCONTINUED", ""],
        "DCSREAS": ["", "WITHDRAWAL BY SUBJECT", "COMPLETED", "ADVERSE EVENT", ""],
    })
    # EOSDTM wins over EOSDT when both are present: move D's date into EOSDTM's column
    adsl.loc[3, "EOSDTM"] = "2020-01-04"
    adsl = adsl.drop(columns=["EOSDT"])
    adsl.to_csv(tmp_path / "adsl.csv", index=False)
    adrs = pd.DataFrame({"STUDYID": "ST", "USUBJID": ["A", "B", "C", "D", "E"], "PARAMCD": "CR2CYC",
                         "AVALC": ["NE", "NE", "Y", "N", "N"]})
    adrs.to_csv(tmp_path / "adrs.csv", index=False)
    ds = read_adam_folder(tmp_path)
    s = ds.subjects.set_index("subject_id")
    # A: died on 2020-01-10 (date): end of that day, 9 days 16 h after the first start
    assert s.loc["A", "offstudy_h"] == pytest.approx(232.0) and s.loc["A", "offstudy_reason"] == "death"
    assert s.loc["B", "offstudy_h"] == pytest.approx(60.0) and s.loc["B", "offstudy_reason"] == "withdrawal"
    assert np.isnan(s.loc["C", "offstudy_h"])  # completed the study
    # D: discontinued (adverse event) on 2020-01-04, before the death on 2020-02-01: the earliest
    assert s.loc["D", "offstudy_h"] == pytest.approx(88.0) and s.loc["D", "offstudy_reason"] == "adverse_event"
    assert np.isnan(s.loc["E", "offstudy_h"]) and pd.isna(s.loc["E", "offstudy_reason"])
    assert s["response"].isna().tolist() == [True, True, False, False, False]


def test_adam_import_names_a_bad_death_date(tmp_path):
    pd.DataFrame({"STUDYID": "ST", "USUBJID": ["A", "B"], "TRT01P": "BLINA 15 UG/M2/DAY",
                  "TRTSDTM": "2020-01-01T08:00:00", "DTHDT": ["", "soon"]}).to_csv(tmp_path / "adsl.csv", index=False)
    with pytest.raises(DataValidationError) as err:
        read_adam(tmp_path / "adsl.csv")
    assert "adsl.csv, variable 'DTHDT', row 2: DTHDT must be a date" in str(err.value)


@pytest.fixture(scope="module")
def offstudy_cohort():
    ds, truth = simulate_cohort("pediatric-offstudy", 40, seed=3)
    # seed 3 has three patients off study early: two deaths and one withdrawal
    assert sorted(ds.subjects["offstudy_reason"].dropna()) == ["death", "death", "withdrawal"]
    return ds, truth


def test_adam_and_nonmem_round_trips_keep_the_offstudy_columns(offstudy_cohort, tmp_path):
    ds, _ = offstudy_cohort
    write_adam(ds, tmp_path / "adam")
    back = read_adam_folder(tmp_path / "adam")
    assert back.sha256() == ds.sha256()
    assert back.subjects["offstudy_reason"].dropna().tolist() == ds.subjects["offstudy_reason"].dropna().tolist()
    write_nonmem(ds, tmp_path / "nm.csv")
    assert "OFFSTUDY" in (tmp_path / "nm.csv").read_text().splitlines()[0]
    assert read_nonmem(tmp_path / "nm.csv").sha256() == ds.sha256()


# ------------------------------------------------------------------------------------------------
# simulator
# ------------------------------------------------------------------------------------------------


def test_simulated_early_offstudy_matches_the_pediatric_trial():
    """6 of 70 without a response assessment, 5 of them deaths (von Stackelberg 2016, table 2).

    2,000 patients, seed 11: the off-study fraction lies within 0.02 of 6/70 (about 3 binomial SE,
    0.0063) and the share of deaths within 0.1 of 5/6 (about 3.5 SE with some 170 patients)."""
    ds, truth = simulate_cohort("pediatric-offstudy", 2000, seed=11, validate=False)
    s = ds.subjects
    off = s["offstudy_h"].notna().to_numpy()
    assert abs(off.mean() - 6.0 / 70.0) < 0.02, off.mean()
    assert abs((s["offstudy_reason"][off] == "death").mean() - 5.0 / 6.0) < 0.1
    assert set(s["offstudy_reason"].dropna()) == {"death", "withdrawal"}
    assert s.loc[off, "offstudy_h"].between(0.1, 336.0).all()  # before the day-15 marrow assessment
    assert s.loc[off, "response"].isna().all() and s.loc[~off, "response"].notna().all()
    # the truth keeps the CR each patient would have had, and the off-study times
    assert truth["design"]["early_offstudy"]["p"] == pytest.approx(PEDIATRIC_EARLY_OFFSTUDY.p)
    assert np.allclose(np.array(truth["patients"]["offstudy_h"], dtype=float), s["offstudy_h"], equal_nan=True)


def test_offstudy_patients_have_no_data_after_leaving(offstudy_cohort):
    ds, truth = offstudy_cohort
    off = ds.subjects.set_index("subject_id")["offstudy_h"]
    obs, dos = ds.observations, ds.dosing
    assert not (obs["time_h"] > obs["subject_id"].map(off)).any()
    assert not (dos["end_h"] > dos["subject_id"].map(off)).any()
    left = off.dropna()
    last_end = dos.groupby("subject_id")["end_h"].max()
    assert np.allclose(last_end[left.index], left)  # the running infusion ends then
    assert (dos[dos["subject_id"].isin(left.index)]["cycle"] == 1).all()
    # without the option the dataset has no such columns (the seeded presets are unchanged)
    plain, _ = simulate_cohort("pediatric", 5, seed=2)
    assert "offstudy_h" not in plain.subjects.columns
    assert get_preset("pediatric").early_offstudy.p == 0.0


# ------------------------------------------------------------------------------------------------
# landmark prediction and evaluation (a fixed fake posterior: no MCMC)
# ------------------------------------------------------------------------------------------------


def _fake_view():
    """A joint 'fit' of CD3 expansion alone with fixed parameters (one draw)."""
    fam = JointModel({"biomarkers": ["tcell_expansion"], "covariates": []})

    def per(v):
        return (("sample", "tcell_analyte"), np.full((1, 1), float(v)))

    post = xr.Dataset({
        "alpha": (("sample",), np.array([-0.5])), "beta_tcell_expansion": (("sample",), np.array([1.2])),
        "tcell_log_baseline_mu": per(5.4), "tcell_sd_log_baseline": per(0.8),
        "tcell_logit_depth_mu": per(1.6), "tcell_sd_logit_depth": per(0.5),
        "tcell_t_nadir": per(6.0), "tcell_k_shape": per(2.0), "tcell_expansion_mu": per(0.7),
        "tcell_sd_expansion": per(0.8), "tcell_tau_e": per(60.0), "tcell_sigma_obs": per(0.15),
    }, coords={"sample": [0], "tcell_analyte": ["CD3"]})
    return JointFitView(post=post, family=fam, data_use={})


def _cohort(response, offstudy_h, reason):
    ids = [f"H{i}" for i in range(len(response))]
    subj = pd.DataFrame({"subject_id": ids, "study": "S", "regimen": "15", "response": response,
                         "offstudy_h": offstudy_h, "offstudy_reason": reason})
    dos = pd.concat([standard_schedule("15", 1).assign(subject_id=s) for s in ids])
    dos = dos[["subject_id", "cycle", "start_h", "end_h", "dose", "dose_unit"]].reset_index(drop=True)
    off = dict(zip(ids, pd.to_numeric(pd.Series(offstudy_h), errors="coerce")))
    dos["end_h"] = np.fmin(dos["end_h"], dos["subject_id"].map(off).fillna(np.inf))
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"subject_id": np.repeat(ids, 2), "analyte": "CD3", "time_h": [-1.0, 90.0] * len(ids),
                        "value": rng.uniform(100, 900, 2 * len(ids)), "unit": "cells/uL"})
    return validate_dataset({"subjects": subj, "dosing": dos, "observations": obs}, name="held-out")


def test_no_landmark_prediction_after_going_off_study():
    ds = _cohort(["", "1"], ["200", ""], ["death", ""])
    assert on_study_at(ds.subjects, 8).tolist() == [True, True]
    assert on_study_at(ds.subjects, 15).tolist() == [False, True]
    out = predict_landmark(_fake_view(), ds, landmark_days=[1, 8, 15, 29], n_effects=64, seed=1, warn=False)
    h0 = out[out["subject_id"] == "H0"].set_index("landmark_day")
    assert h0.loc[[1.0, 8.0], "status"].tolist() == ["predicted", "predicted"]
    assert h0.loc[[1.0, 8.0], "p_cr"].between(0, 1).all()
    assert h0.loc[[15.0, 29.0], "status"].tolist() == ["off study", "off study"]
    assert h0.loc[[15.0, 29.0], ["p_cr", "p_cr_lower", "p_cr_upper", "tcell_expansion", "ess"]].isna().all().all()
    assert "off study at 200 h (death)" in h0.loc[15.0, "note"]
    h1 = out[out["subject_id"] == "H1"]
    assert (h1["status"] == "predicted").all() and h1["p_cr"].notna().all()
    assert len(out) == 8  # every patient and day has a row


def test_evaluation_reports_intention_to_treat_and_evaluable_views():
    # H4 died at 100 h (off study from day 8 on), H5 withdrew at 500 h (on study at day 8, not at 29);
    # neither has a response: non-responders in the ITT view, left out of the evaluable view
    ds = _cohort(["1", "0", "1", "0", "", "", "1", "0"], ["", "", "", "", "100", "500", "", ""],
                 ["", "", "", "", "death", "withdrawal", "", ""])
    view = _fake_view()
    ev = evaluate_landmarks(view, ds, baseline_fit=view, days=[1, 8, 29], n_effects=64)
    t = ev.table.set_index(["view", "model"])
    counts = {k: tuple(t.loc[k, ["n", "responders", "not_evaluable", "off_study"]]) for k in t.index}
    assert counts[("itt", "joint, day 1")] == (8, 3, 2, 0)
    assert counts[("itt", "joint, day 8")] == (7, 3, 1, 1)
    assert counts[("itt", "joint, day 29")] == (6, 3, 0, 2)
    assert counts[("evaluable", "joint, day 1")] == (6, 3, 2, 0)
    assert counts[("evaluable", "joint, day 8")] == (6, 3, 1, 1)
    assert counts[("evaluable", "joint, day 29")] == (6, 3, 0, 2)
    assert counts[("itt", "covariates only")] == (8, 3, 2, 0)
    assert counts[("evaluable", "covariates only")] == (6, 3, 2, 0)
    assert t[["auc", "brier"]].notna().all().all()
    # the views differ where non-evaluable patients are at risk, and agree where none is
    assert t.loc[("itt", "joint, day 1"), "brier"] != t.loc[("evaluable", "joint, day 1"), "brier"]
    assert t.loc[("itt", "joint, day 29"), "brier"] == t.loc[("evaluable", "joint, day 29"), "brier"]
    # the ITT Brier score of day 1 is the mean over all 8 with the non-evaluable as 0
    p1 = ev.predictions[ev.predictions["landmark_day"] == 1.0]
    assert t.loc[("itt", "joint, day 1"), "brier"] == pytest.approx(float(np.mean((p1["p_cr"] - p1["response_itt"]) ** 2)))
    assert set(zip(ev.calibration["model"], ev.calibration["view"])) == {
        (m, v) for m in ("joint, day 29", "covariates only") for v in ("itt", "evaluable")}
    off = ev.predictions[ev.predictions["status"] == "off study"]
    assert sorted(zip(off["subject_id"], off["landmark_day"])) == [("H4", 8.0), ("H4", 29.0), ("H5", 29.0)]


def test_standard_schedule_of_new_patients_stops_when_they_went_off_study(tmp_path):
    from bayes_blina.joint.landmark import read_landmark_inputs

    pd.DataFrame({"subject_id": ["N1", "N2"], "study": "S", "regimen": "5-15", "offstudy_h": ["200", ""],
                  "offstudy_reason": ["death", ""]}).to_csv(tmp_path / "subjects.csv", index=False)
    ds = read_landmark_inputs(str(tmp_path / "subjects.csv"))
    d = ds.dosing.groupby("subject_id")["end_h"].max()
    assert d["N1"] == 200.0 and d["N2"] == 672.0
    assert ds.subjects["offstudy_reason"].tolist()[0] == "death"


def test_nonmem_offstudy_is_measured_from_the_first_dose(tmp_path):
    """OFFSTUDY is on the TIME scale: with the first dose at TIME 48 an OFFSTUDY of 248 is 200 h."""
    text = ("ID,SUBJID,TIME,EVID,MDV,AMT,RATE,CMT,DV,ANALYTE,UNIT,STUDY,REGIMEN,OFFSTUDY,OFFRSN\n"
            "1,A,10,0,0,0,0,2,900,IL6,pg/mL,S,15,248,death\n"
            "1,A,48,1,1,125,0.625,1,.,.,.,S,15,248,death\n"
            "2,B,0,1,1,420,0.625,1,.,.,.,S,15,-99,.\n")
    (tmp_path / "nm.csv").write_text(text)
    s = read_nonmem(tmp_path / "nm.csv").subjects.set_index("subject_id")
    assert s.loc["A", "offstudy_h"] == 200.0 and s.loc["A", "offstudy_reason"] == "death"
    assert np.isnan(s.loc["B", "offstudy_h"]) and pd.isna(s.loc["B", "offstudy_reason"])
