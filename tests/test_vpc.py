"""Censoring-aware VPC and LOO-PIT.

Most tests run without MCMC: :func:`synthetic_pulse_fit` stores a pulse fit whose "posterior" is
the known truth (plus a little jitter) of data drawn from the pulse formula, so replicated data
from it come from the data-generating process itself (the VPC must cover the data; LOO-PIT must be
uniform), and a deliberately wrong posterior must be flagged. The same helper feeds
``test_plots.py`` and ``test_report_html.py``.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_blina.checks.vpc import (
    VPC_COLUMNS,
    TrajectoryRows,
    check_vpc_accounting,
    time_bins,
    vpc_from_fit,
    vpc_table,
)
from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import BayesBlinaError, SpecError

ANALYTES = ["IL6", "IL10"]
LOD = 20.0
#: Truth of the synthetic cohort, per analyte.
TRUTH = {
    "IL6": dict(log_baseline_mu=math.log(5.0), sd_log_baseline=0.5, log_amp_mu=math.log(60.0), sd_log_amp=0.7,
                gamma_dose=0.7, delta_reexposure=-1.5, kappa_cycle=-0.3, log_tpeak=math.log(10.0), k_shape=2.0,
                sigma_obs=0.35),
    "IL10": dict(log_baseline_mu=math.log(4.0), sd_log_baseline=0.5, log_amp_mu=math.log(150.0), sd_log_amp=0.8,
                 gamma_dose=0.8, delta_reexposure=-2.0, kappa_cycle=-0.5, log_tpeak=math.log(14.0), k_shape=1.8,
                 sigma_obs=0.4),
}
POP = list(TRUTH["IL6"])


def _design(n_per_regimen: dict[str, int], seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Subjects (with CR), standard schedules and sampling times (values filled in later)."""
    from bayes_blina.events import infusion_events, standard_schedule

    rng = np.random.default_rng(seed)
    subj, dosing, obs = [], [], []
    k = 0
    for regimen, n in n_per_regimen.items():
        for _ in range(n):
            k += 1
            sid = f"S{k:02d}"
            subj.append({"subject_id": sid, "study": "SYN", "regimen": regimen, "age_years": 30 + k,
                         "response": int(rng.random() < 0.6)})
            d = standard_schedule(regimen, 2)
            d.insert(0, "subject_id", sid)
            dosing.append(d)
            ev = infusion_events(d)
            times = np.unique(np.r_[-24.0, (ev["time_h"].to_numpy()[:, None] + [2.0, 6.0, 24.0, 48.0, 168.0]).ravel()])
            for a in ANALYTES + ["IL2"]:  # IL2 is not modelled: its rows are left out, with the reason
                for t in times:
                    obs.append({"subject_id": sid, "analyte": a, "time_h": float(t), "value": 1.0, "unit": "pg/mL",
                                "lod": LOD, "lloq": np.nan, "below": ""})
    return pd.DataFrame(subj), pd.concat(dosing, ignore_index=True), pd.DataFrame(obs)


def _pulse_draws(truth_pop: dict[str, np.ndarray], log_b: np.ndarray, log_a: np.ndarray) -> dict[str, np.ndarray]:
    return {**truth_pop, "log_baseline": log_b, "log_amp": log_a}


def synthetic_pulse_dataset(seed: int = 3, n_per_regimen: dict[str, int] | None = None):
    """A validated dataset drawn from the pulse formula, its prepared arrays and the patient truths."""
    from bayes_blina.data.schema import validate_dataset
    from bayes_blina.families import get_family
    from bayes_blina.families.pulse import pulse_log_mu

    subjects, dosing, obs = _design(n_per_regimen or {"15": 5, "5-15": 9}, seed)
    fam = get_family("pulse")({"analytes": ANALYTES, "correlated": False})
    prep = fam.prepare(Dataset(subjects=subjects, dosing=dosing, observations=obs))
    rng = np.random.default_rng(seed + 100)
    n_sub = len(prep.coords["subject"])
    pop = {k: np.array([[TRUTH[a][k] for a in ANALYTES]]) for k in POP}
    log_b = pop["log_baseline_mu"][:, None, :] + pop["sd_log_baseline"][:, None, :] * rng.normal(size=(1, n_sub, 2))
    log_a = pop["log_amp_mu"][:, None, :] + pop["sd_log_amp"][:, None, :] * rng.normal(size=(1, n_sub, 2))
    mu = pulse_log_mu(_pulse_draws(pop, log_b, log_a), prep.arrays)[0]
    y = np.exp(mu + pop["sigma_obs"][0, prep.arrays["obs_analyte"]] * rng.normal(size=mu.shape))
    obs = obs.copy()
    pos = prep.arrays["obs_position"]
    cens = y < LOD
    obs.loc[pos, "value"] = np.where(cens, np.nan, y)
    obs.loc[pos, "below"] = np.where(cens, "LOD", "")
    obs.loc[obs["analyte"] == "IL2", "value"] = 3.0
    ds = validate_dataset({"subjects": subjects, "dosing": dosing, "observations": obs}, name="synthetic-pulse")
    subject_order = list(prep.coords["subject"])
    return ds, {"log_baseline": log_b[0], "log_amp": log_a[0], "subjects": subject_order}


def synthetic_pulse_fit(folder, *, seed: int = 3, n_draws: int = 200, sigma_factor: float = 1.0,
                        fail_gate: bool = False, name: str = "synthetic-pulse", dataset=None, truth=None):
    """Store (and load back) a pulse "fit" whose posterior is the truth with small jitter.

    ``sigma_factor`` scales ``sigma_obs`` of the posterior (a misfit when not 1); ``fail_gate``
    shifts one chain so that the convergence gate fails. The dataset is written to
    ``folder/data`` (the fit's recorded origin).
    """
    from bayes_blina.data.io import write_dataset
    from bayes_blina.diagnostics import convergence_verdict
    from bayes_blina.families import get_family
    from bayes_blina.families.pulse import SCENARIOS
    from bayes_blina.inference import _add_groups
    from bayes_blina.spec import parse_spec
    from bayes_blina.store import Fit, load_fit, save_fit

    if dataset is None:
        dataset, truth = synthetic_pulse_dataset(seed)
    data_dir = folder / "data"
    if not data_dir.exists():
        write_dataset(dataset, data_dir)
    from bayes_blina.data import read_dataset

    dataset = read_dataset(data_dir)
    spec = parse_spec({"name": name, "family": "pulse", "description": "synthetic truth-as-posterior fit",
                       "options": {"analytes": ANALYTES, "correlated": False},
                       "sampler": {"chains": 2, "draws": n_draws, "tune": 0, "seed": seed},
                       # independent draws: R-hat and ESS vary only by chance (a shifted chain fails)
                       "gate": {"max_rhat": 1.05, "min_ess_bulk": 100, "min_ess_tail": 100}})
    fam = get_family("pulse")(spec.options, spec.priors)
    prep = fam.prepare(dataset)
    assert list(prep.coords["subject"]) == truth["subjects"]
    rng = np.random.default_rng(seed + 7)
    shape = (2, n_draws)
    post = {}
    for k in POP:
        v = np.array([TRUTH[a][k] for a in ANALYTES]) * (sigma_factor if k == "sigma_obs" else 1.0)
        post[k] = (("chain", "draw", "analyte"), v + 0.01 * rng.normal(size=(*shape, 2)))
    for k in ("log_baseline", "log_amp"):
        jitter = 0.02 * rng.normal(size=(*shape, *truth[k].shape))
        post[k] = (("chain", "draw", "subject", "analyte"), truth[k] + jitter)
    if fail_gate:
        post["log_amp_mu"][1][1] += 1.0  # chain 1 elsewhere: R-hat far above 1.01
    x = np.array(list(SCENARIOS.values()))
    g = {k: post[k][1] for k in POP}
    log_a_typ = (g["log_amp_mu"][..., None] + g["gamma_dose"][..., None] * x[:, 0]
                 + g["delta_reexposure"][..., None] * x[:, 1] + g["kappa_cycle"][..., None] * x[:, 2])
    post["typical_peak"] = (("chain", "draw", "analyte", "scenario"),
                            np.exp(g["log_baseline_mu"])[..., None] * (1 + np.exp(log_a_typ)))
    coords = {"chain": [0, 1], "draw": np.arange(n_draws), "analyte": ANALYTES, "subject": prep.coords["subject"],
              "scenario": list(SCENARIOS)}
    idata = xr.DataTree.from_dict({
        "posterior": xr.Dataset({k: xr.DataArray(v[1], dims=v[0]) for k, v in post.items()}, coords=coords),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), np.zeros(shape, bool)),
                                    "energy": (("chain", "draw"), rng.normal(size=shape))},
                                   coords={"chain": [0, 1], "draw": np.arange(n_draws)})})
    _add_groups(idata, SimpleNamespace(observed_RVs=[]), fam, prep)
    res = Fit.from_sampling(idata, spec=spec, family=fam, prepared=prep, verdict=convergence_verdict(idata, spec.gate),
                            dataset_name=dataset.name, dataset_origin=str(data_dir), data_sha256=dataset.sha256(),
                            backend="synthetic", timing={"sampling_s": 0.0})
    return load_fit(save_fit(res, folder / name, force=True))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vpc")
    ds, truth = synthetic_pulse_dataset(3)
    good = synthetic_pulse_fit(folder, dataset=ds, truth=truth)
    narrow = synthetic_pulse_fit(folder, dataset=ds, truth=truth, sigma_factor=0.3, name="narrow")
    from bayes_blina.data import read_dataset

    return SimpleNamespace(dataset=read_dataset(folder / "data"), good=good, narrow=narrow, folder=folder)


# ----------------------------------------------------------------------------------------- bins
def test_quantile_bins_never_split_tied_times_and_keep_every_row():
    t = np.repeat([0.0, 2, 6, 24, 48, 168], [10, 10, 10, 10, 10, 10])
    edges, idx = time_bins(t, 3)
    assert len(edges) == 4 and np.bincount(idx).tolist() == [20, 20, 20]
    for v in np.unique(t):  # every tied time in exactly one bin
        assert len(set(idx[t == v])) == 1
    edges, idx = time_bins(t, 50)  # more bins than distinct times: one bin per time
    assert len(edges) - 1 == 6 and np.bincount(idx).tolist() == [10] * 6


def test_explicit_edges_that_leave_rows_out_are_refused():
    t = np.array([0.0, 5.0, 30.0, 200.0])
    edges, idx = time_bins(t, [0, 24, 200])
    assert idx.tolist() == [0, 0, 1, 1]  # the last edge is closed
    with pytest.raises(SpecError, match="leave out 1 observation rows"):
        time_bins(t, [0, 24, 100])
    with pytest.raises(SpecError, match="increasing"):
        time_bins(t, [0, 24, 24])


# -------------------------------------------------------------------------- censored percentiles
def _rows(log_upper, censored, time=None):
    n = len(log_upper)
    return TrajectoryRows(analytes=["IL6"], analyte_index=np.zeros(n, int), subject_index=np.arange(n),
                          time_h=np.zeros(n) if time is None else np.asarray(time, float),
                          log_upper=np.log(np.asarray(log_upper, float)), censored=np.asarray(censored, bool),
                          position=np.arange(n))


def test_observed_percentiles_below_the_limit_are_bounds_not_substituted_values():
    # 6 results below LOD 10 and 12, 15, 30, 50: the median is only known to be < 10
    rows = _rows([10] * 6 + [12, 15, 30, 50], [True] * 6 + [False] * 4)
    rep = {"latent_log_y": np.log(np.tile([1.0] * 6 + [12, 15, 30, 50], (5, 1))),
           "censored": np.tile([True] * 6 + [False] * 4, (5, 1)), "log_limit": np.log(np.full(10, 10.0))}
    table = vpc_table(rows, rep, bins=1)
    assert list(table.columns) == VPC_COLUMNS
    t = table.set_index("statistic")
    assert t.loc["p50", "observed_censored"] and t.loc["p50", "observed_label"] == "< 10"
    assert t.loc["p10", "observed_label"] == "< 10"
    assert not t.loc["p90", "observed_censored"]
    assert t.loc["p90", "observed"] == pytest.approx(30 * (50 / 30) ** 0.1)  # interpolated on the log scale
    assert t.loc["below_limit", "observed"] == pytest.approx(0.6)
    assert t.loc["p50", "n_censored"] == 6 and t.loc["p50", "limit_max"] == pytest.approx(10)
    # the same data replicated: every statistic inside its interval, nothing flagged
    assert not t["outside"].any() and (t.loc[["p10", "p50"], "pred_censored_frac"] == 1).all()


def test_vpc_covers_data_from_the_truth_and_flags_a_too_narrow_model(synthetic):
    good = vpc_from_fit(synthetic.good, synthetic.dataset, bins=8, n_draws=300)
    narrow = vpc_from_fit(synthetic.narrow, synthetic.dataset, bins=8, n_draws=300)
    pct = good[good.statistic != "below_limit"]
    assert good["outside"].mean() < 0.12  # 90% intervals: about 10% outside by chance
    assert narrow["outside"].mean() > 2.5 * good["outside"].mean()
    # the outer percentiles are where a too-small residual SD shows
    outer = narrow[narrow.statistic.isin(["p10", "p90"]) & ~narrow.observed_censored]
    assert outer["outside"].mean() > 0.3
    assert (pct["pred_lower"] <= pct["pred_upper"]).all()
    assert good.attrs["limit_sources"] == {"own censored row": int(synthetic.good.idata.constant_data["is_censored"]
                                                                   .values.sum()),
                                           "dataset lod/lloq": int((1 - synthetic.good.idata.constant_data[
                                               "is_censored"].values).sum())}


def test_every_censored_row_of_the_data_is_in_the_vpc_table(synthetic):
    ds = synthetic.dataset
    table = vpc_from_fit(synthetic.good, ds, bins=[-24, 0, 24, 200, 1100, 1300])
    acc = pd.DataFrame(table.attrs["accounting"]).set_index("analyte")
    o = ds.observations
    for a in ANALYTES:  # count from the data file itself, not from the fit
        rows = o[o.analyte == a]
        assert acc.loc[a, "rows"] == len(rows)
        assert acc.loc[a, "censored"] == int((rows.below == "LOD").sum()) > 0
        per_bin = table[(table.analyte == a) & (table.statistic == "p50")]
        assert per_bin["n_censored"].sum() == int((rows.below == "LOD").sum())
    assert table.attrs["rows_left_out"] == [{"reason": "analyte not modelled (options.analytes)",
                                             "n_rows": int((o.analyte == "IL2").sum())}]
    # a table that lost a censored row is caught
    broken = table[~((table.analyte == "IL6") & (table.bin == 0))]
    with pytest.raises(BayesBlinaError, match="does not account for every row"):
        check_vpc_accounting(broken, synthetic.good.provenance["data"]["use"])


def test_vpc_without_the_dataset_uses_the_limits_of_censored_rows(synthetic):
    t = vpc_from_fit(synthetic.good, None, bins=4, n_draws=100)
    assert "patient-analyte" in t.attrs["limit_sources"] or "analyte" in t.attrs["limit_sources"]
    other = Dataset(subjects=synthetic.dataset.subjects, dosing=synthetic.dataset.dosing,
                    observations=synthetic.dataset.observations.iloc[:-1])
    with pytest.raises(BayesBlinaError, match="is not the data of fit"):
        vpc_from_fit(synthetic.good, other)


def test_vpc_refuses_a_fit_without_trajectories(tmp_path):
    stored = SimpleNamespace(idata=xr.DataTree.from_dict({"posterior": xr.Dataset()}), family_name="response",
                             path=tmp_path / "r", options={}, provenance={})
    with pytest.raises(BayesBlinaError, match="no trajectory observations"):
        vpc_from_fit(stored)


# ------------------------------------------------------------------------------------- LOO-PIT
def test_loo_pit_is_uniform_for_the_truth_and_u_shaped_for_a_too_narrow_model(synthetic):
    from scipy import stats

    from bayes_blina.checks.loo import loo_pit, loo_table

    good, narrow = loo_pit(synthetic.good), loo_pit(synthetic.narrow)
    n_cens = int(synthetic.good.idata.constant_data["is_censored"].values.sum())
    assert good.attrs["n_randomised"] == n_cens == int((good.kind == "censored").sum())
    assert len(good) == int(synthetic.good.provenance["data"]["use"]["rows_used"])
    assert stats.kstest(good.pit, "uniform").pvalue > 0.01
    # too narrow: PIT values pile up at 0 and 1
    tails = lambda d: ((d.pit < 0.05) | (d.pit > 0.95))[d.kind == "observed"].mean()  # noqa: E731
    assert tails(narrow) > 2 * tails(good)
    # Pareto k agree with ArviZ's loo
    per_fit, _ = loo_table({"g": synthetic.good})
    k = good.pareto_k.to_numpy()
    assert per_fit.k_good.iloc[0] == int((k <= 0.5).sum())
    assert per_fit.n_obs.iloc[0] == len(good)
