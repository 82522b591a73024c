"""The virtual-cohort simulator: format, truth, reproducibility, censoring and calibration."""
from __future__ import annotations

import json
from dataclasses import fields, replace

import numpy as np
import pytest

from bayes_blina.data.io import DatasetExistsError, read_dataset
from bayes_blina.errors import BayesBlinaError
from bayes_blina.events import infusion_events
from bayes_blina.simulate import (
    PRESETS,
    CohortConfig,
    get_preset,
    simulate_cohort,
    true_curve,
    write_cohort,
)
from bayes_blina.simulate.presets import (
    CYTOKINES,
    KINETICS,
    LABS,
    DepletionParams,
    KineticsParams,
    PKParams,
    PulseParams,
    ResponseParams,
    SubsetParams,
)


@pytest.fixture(scope="module")
def adult400():
    return simulate_cohort("adult-exploratory", 400, seed=2024, validate=False)


@pytest.fixture(scope="module")
def null400():
    return simulate_cohort("adult-null", 400, seed=2024, validate=False)


def _names(cls) -> set[str]:
    return {f.name for f in fields(cls)}


# ------------------------------------------------------------------------------------------------
# presets and format
# ------------------------------------------------------------------------------------------------


def test_preset_names_and_unknown_preset():
    assert {"adult-exploratory", "adult-null", "pediatric"} <= set(PRESETS)
    assert isinstance(get_preset("adult-exploratory"), CohortConfig)
    with pytest.raises(BayesBlinaError, match="adult-exploratory.*adult-null.*pediatric"):
        get_preset("adult")
    with pytest.raises(BayesBlinaError):
        simulate_cohort("nope", seed=1)


def test_adult_preset_design():
    cfg = get_preset("adult-exploratory")
    assert cfg.study == "SIM-ADULT" and cfg.n == 36 and cfg.n_cycles == 2
    arms = {(a.cohort, a.regimen, a.n, a.sampling) for a in cfg.arms}
    assert arms == {("cohort 1", "15", 7, "frequent"), ("cohort 2a", "5-15", 5, "frequent"),
                    ("cohort 3", "5-15", 18, "sparse"), ("cohort 2b", "5-15-30", 6, "sparse")}
    scaled = cfg.scaled(72)
    assert [a.n for a in scaled.arms] == [14, 10, 36, 12]
    assert sum(a.n for a in cfg.scaled(101).arms) == 101
    with pytest.raises(BayesBlinaError):
        cfg.scaled(0)


@pytest.mark.parametrize("preset,n", [("adult-exploratory", None), ("adult-null", 20),
                                      ("pediatric", None)])
def test_round_trip_through_the_validator(tmp_path, preset, n):
    ds, truth = simulate_cohort(preset, n, seed=7)
    folder = write_cohort(ds, truth, tmp_path / "cohort")
    back = read_dataset(folder)
    assert back.sha256() == ds.sha256()
    assert json.loads((folder / "truth.json").read_text()) == truth
    subj = back.subjects
    for col in ("subject_id", "study", "regimen", "age_years", "age_group", "blast_pct",
                "bsa_m2", "response"):
        assert subj[col].notna().all(), col
    assert set(back.observations["analyte"]) >= set(CYTOKINES) | set(LABS) | set(KINETICS) | {
        "CD4", "CD8", "CD19", "BLINA"}
    assert (back.observations["time_h"] == -1.0).any()  # pre-dose samples
    if preset == "pediatric":
        assert subj["study"].eq("SIM-PED").all() and len(subj) == 70
        assert subj["age_group"].value_counts().to_dict() == {"7-17": 40, "2-6": 20, "<2": 10}
        assert (subj["blast_burden"] == ">=50").sum() == 52
        young = subj.loc[subj["age_group"] == "<2", "bsa_m2"].median()
        old = subj.loc[subj["age_group"] == "7-17", "bsa_m2"].median()
        assert young < 0.6 < old


def test_unvalidated_fast_path_gives_the_same_dataset():
    a, ta = simulate_cohort("adult-exploratory", 10, seed=8)
    b, tb = simulate_cohort("adult-exploratory", 10, seed=8, validate=False)
    assert a.sha256() == b.sha256() and ta == tb


def test_write_cohort_refuses_to_overwrite(tmp_path):
    ds, truth = simulate_cohort("adult-exploratory", 8, seed=1)
    out = write_cohort(ds, truth, tmp_path / "c")
    with pytest.raises(DatasetExistsError):
        write_cohort(ds, truth, out)
    ds2, truth2 = simulate_cohort("adult-exploratory", 8, seed=2)
    write_cohort(ds2, truth2, out, overwrite=True)
    assert read_dataset(out).sha256() == ds2.sha256()
    assert json.loads((out / "truth.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary folders left


# ------------------------------------------------------------------------------------------------
# truth
# ------------------------------------------------------------------------------------------------


def test_truth_has_every_population_parameter():
    ds, truth = simulate_cohort("adult-exploratory", seed=3)
    json.dumps(truth, allow_nan=False)  # plain JSON
    pop = truth["population"]
    for c in CYTOKINES + LABS:
        assert set(pop["pulse"][c]) == _names(PulseParams), c
    for c in KINETICS:
        assert set(pop["kinetics"][c]) == _names(KineticsParams), c
    for c in ("CD4", "CD8"):
        assert set(pop["subsets"][c]) == _names(SubsetParams)
    assert set(pop["depletion"]["CD19"]) == _names(DepletionParams)
    assert set(pop["pk"]["BLINA"]) == _names(PKParams)
    assert set(pop["response"]) == _names(ResponseParams)
    assert pop["cytokine_corr"]["analytes"] == list(CYTOKINES)
    assert np.allclose(np.array(pop["cytokine_corr"]["matrix"]).diagonal(), 1.0)
    assert "bracket_floor" in pop and "assay" in pop
    pats = truth["patients"]
    assert pats["subject_id"] == ds.subjects["subject_id"].tolist()
    assert pats["response"] == ds.subjects["response"].astype(int).tolist()
    for key in ("expansion", "il10_peak", "p_cr", "eta_cr", "cycles_received"):
        assert len(pats[key]) == 36
    assert set(pats["pulse"]["IL6"]) == {"baseline", "log_amp", "t_peak", "z_amp"}
    assert set(pats["kinetics"]["CD3"]) == {"baseline", "depth", "E", "expansion"}
    assert np.allclose(np.exp(pats["kinetics"]["CD3"]["E"]), pats["expansion"])


def test_il10_peak_is_the_max_of_the_true_curve():
    ds, truth = simulate_cohort("adult-exploratory", 12, seed=5)
    grid = np.arange(0.125, 168.0 + 1e-9, 0.125)
    peak = true_curve(ds, truth, "IL10", grid).max(axis=1)
    assert np.allclose(peak, truth["patients"]["il10_peak"], rtol=1e-12)


def test_observations_scatter_around_the_true_curve(adult400):
    ds, truth = adult400
    obs = ds.observations
    for analyte in ("IL6", "CD3", "ALT", "PLT", "BLINA"):
        o = obs[(obs["analyte"] == analyte) & (obs["below"] == "")].head(3000)
        ids = truth["patients"]["subject_id"]
        pos = {s: i for i, s in enumerate(ids)}
        times = np.unique(o["time_h"])
        curves = true_curve(ds, truth, analyte, times)
        col = np.searchsorted(times, o["time_h"].to_numpy())
        row = o["subject_id"].map(pos).to_numpy()
        resid = np.log(o["value"].to_numpy() / curves[row, col])
        assert abs(np.median(resid)) < 0.05, analyte
        assert np.std(resid) < 0.5, analyte


# ------------------------------------------------------------------------------------------------
# reproducibility and censoring
# ------------------------------------------------------------------------------------------------


def test_seeds_are_reproducible():
    a, ta = simulate_cohort("adult-exploratory", 20, seed=11)
    b, tb = simulate_cohort("adult-exploratory", 20, seed=11)
    c, _ = simulate_cohort("adult-exploratory", 20, seed=12)
    assert a.sha256() == b.sha256() and ta == tb
    assert a.sha256() != c.sha256()
    with pytest.raises(BayesBlinaError):
        simulate_cohort("adult-exploratory", 20, seed=1.5)


@pytest.mark.parametrize("mode", ["value", "censor"])
def test_censoring_flags(mode):
    cfg = replace(get_preset("adult-exploratory"), report_below_lloq=mode)
    ds, _ = simulate_cohort(cfg, 30, seed=4)
    obs = ds.observations
    cyt = obs[obs["analyte"].isin(CYTOKINES)]
    assert cyt["lod"].notna().all() and cyt["lloq"].notna().all()
    assert set(cyt.loc[cyt["analyte"] == "GZMB", "lod"]) == {30.0}
    assert set(cyt.loc[cyt["analyte"] == "IL6", "lloq"]) == {125.0}
    unc = obs[obs["below"] == ""]
    assert unc["value"].notna().all()
    assert not (unc["value"] < unc["lod"]).any()  # nothing below the LOD without a flag
    cens = obs[obs["below"] != ""]
    assert cens["value"].isna().all()
    lod_rows = cens[cens["below"] == "LOD"]
    assert lod_rows["lod"].notna().all() and (lod_rows["limit_source"] == "row").all()
    assert (cyt["below"] == "LOD").any()  # baselines are below the LOD
    between = unc[unc["analyte"].isin(CYTOKINES) & (unc["value"] < unc["lloq"])]
    if mode == "value":
        assert len(between) > 0  # reported as measured, as the paper did
    else:
        assert len(between) == 0 and (cyt["below"] == "LLOQ").any()
    pk = obs[obs["analyte"] == "BLINA"]
    assert (pk.loc[pk["time_h"] == -1.0, "below"] == "LLOQ").all()
    assert not (pk.loc[pk["below"] == "", "value"] < 50.0).any()


def test_interruptions_and_dropout():
    cfg = replace(get_preset("adult-exploratory"), p_interruption=0.5)
    ds, truth = simulate_cohort(cfg, 60, seed=9)
    ev = infusion_events(ds.dosing)
    restarted = set(ev.loc[ev["kind"] == "restart", "subject_id"])
    interrupted = {s for s, t in zip(truth["patients"]["subject_id"],
                                     truth["patients"]["interruption_start_h"]) if t is not None}
    assert restarted and restarted <= interrupted
    cycles = ds.dosing.groupby("subject_id")["cycle"].max()
    resp = ds.subjects.set_index("subject_id")["response"]
    assert (cycles[resp[resp == 1].index] == 2).all()  # responders always continue
    assert (cycles[resp[resp == 0].index] == 1).any()  # some nonresponders stop
    assert cycles.to_dict() == dict(zip(truth["patients"]["subject_id"],
                                        truth["patients"]["cycles_received"]))
    stopped = cycles[cycles == 1].index
    late = ds.observations[ds.observations["subject_id"].isin(stopped)]
    assert late["time_h"].max() <= 672.0 + 168.0


def test_b_cells_deplete_in_most_patients(adult400):
    ds, truth = adult400
    obs = ds.observations
    d29 = obs[(obs["analyte"] == "CD19") & (obs["time_h"] == 672.0)]
    assert (d29["below"] == "LOD").mean() > 0.9
    depleted = np.array(truth["patients"]["depletion"]["CD19"]["depleted"])
    assert 0.9 < depleted.mean() < 1.0


# ------------------------------------------------------------------------------------------------
# biology and calibration
# ------------------------------------------------------------------------------------------------


def test_priming_order_of_il6_peaks(adult400):
    """Flat-15 first peak > 5 first peak > week-2 step peak (geometric means over patients)."""
    ds, truth = adult400
    reg = np.array(truth["patients"]["regimen"])
    week1 = true_curve(ds, truth, "IL6", np.arange(0.25, 168.0, 0.25)).max(axis=1)
    week2 = true_curve(ds, truth, "IL6", np.arange(168.25, 336.0, 0.25)).max(axis=1)
    flat, step = reg == "15", reg != "15"
    gm = lambda x: float(np.exp(np.mean(np.log(x))))  # noqa: E731
    assert gm(week1[flat]) > gm(week1[step]) > gm(week2[step])


def test_il10_rises_again_in_cycle_2_but_il6_hardly(adult400):
    ds, truth = adult400
    t1, t2 = np.arange(0.25, 168.0, 0.25), np.arange(1008.25, 1176.0, 0.25)
    two = np.array(truth["patients"]["cycles_received"]) == 2
    ratio = {}
    for c in ("IL6", "IL10"):
        p1 = true_curve(ds, truth, c, t1).max(axis=1)[two]
        p2 = true_curve(ds, truth, c, t2).max(axis=1)[two]
        ratio[c] = float(np.median(p2 / p1))
    assert ratio["IL10"] > 2 * ratio["IL6"]


def test_adult_responder_fraction(adult400):
    ds, _ = adult400
    frac = ds.subjects["response"].astype(float).mean()
    assert 0.55 <= frac <= 0.80


def test_responders_expand_more(adult400):
    _, truth = adult400
    e = np.array(truth["patients"]["expansion"])
    r = np.array(truth["patients"]["response"]) == 1
    assert np.median(e[r]) / np.median(e[~r]) > 1.6


def test_null_preset_has_no_expansion_difference(null400):
    """Tolerance: |log(median_R / median_NR)| < 0.35, about 3 standard errors at n = 400."""
    _, truth = null400
    e = np.array(truth["patients"]["expansion"])
    r = np.array(truth["patients"]["response"]) == 1
    assert abs(np.log(np.median(e[r]) / np.median(e[~r]))) < 0.35
    assert 0.55 <= r.mean() <= 0.80


def test_cd3_day29_fold_in_responders(adult400):
    """Published: median 550/µL at day 29 vs 210/µL at baseline in responders (262%)."""
    ds, _ = adult400
    obs = ds.observations
    resp = set(ds.subjects.loc[ds.subjects["response"] == 1, "subject_id"])
    cd3 = obs[(obs["analyte"] == "CD3") & obs["subject_id"].isin(resp)]
    fold = cd3.loc[cd3["time_h"] == 672.0, "value"].median() / cd3.loc[
        cd3["time_h"] == -1.0, "value"].median()
    assert 2.0 <= fold <= 3.3


def test_kinetics_config_keeps_cd3_expansion_a_cause():
    cfg = get_preset("adult-exploratory")
    bad = replace(cfg, kinetics={**cfg.kinetics,
                                 "CD3": replace(cfg.kinetics["CD3"],
                                                expansion_response_effect=1.0)})
    with pytest.raises(BayesBlinaError, match="CD3"):
        simulate_cohort(bad, 5, seed=1)
