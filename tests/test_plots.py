"""Publication figures of fits: VPC, responder-status bands, cytokine peaks (Fig 6), odds ratios,
CR by published row. Numbers drawn are checked against the fit, and no censored value is dropped."""
from __future__ import annotations

from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from bayes_blina.checks.vpc import vpc_from_fit
from bayes_blina.errors import BayesBlinaError
from bayes_blina.report import plots
from bayes_blina.report.figures import save_figure
from test_vpc import ANALYTES, synthetic_pulse_dataset, synthetic_pulse_fit


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    from bayes_blina.data import read_dataset

    folder = tmp_path_factory.mktemp("plots")
    ds, truth = synthetic_pulse_dataset(5)
    stored = synthetic_pulse_fit(folder, dataset=ds, truth=truth, seed=5)
    return SimpleNamespace(stored=stored, dataset=read_dataset(folder / "data"), truth=truth)


def _points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))


def test_odds_ratio_table_and_plot_from_any_or_variables(tmp_path):
    rng = np.random.default_rng(1)
    beta = rng.normal(np.log(2.0), 0.3, size=(2, 500))
    vec = rng.normal([0.0, -1.0], 0.2, size=(2, 500, 2))
    idata = az.from_dict({"posterior": {"or_tcell_expansion": np.exp(beta), "or_peak": np.exp(vec),
                                        "beta_tcell_expansion": beta, "p_or_x_gt_1": (beta > 0).astype(float)}},
                         coords={"biomarker": ["il10", "il6"]}, dims={"or_peak": ["biomarker"]})
    t = plots.odds_ratio_table(idata, prob=0.9).set_index("parameter")
    assert list(t.index) == ["or_tcell_expansion", "or_peak[il10]", "or_peak[il6]"]  # not beta_*, not p_or_*
    assert t.loc["or_tcell_expansion", "median"] == pytest.approx(np.exp(np.median(beta)))
    assert t.loc["or_tcell_expansion", "lower"] == pytest.approx(np.quantile(np.exp(beta), 0.05))
    assert t.loc["or_tcell_expansion", "p_gt_1"] == pytest.approx((beta > 0).mean())
    assert t.loc["or_peak[il6]", "upper"] < 1
    assert t.loc["or_peak[il10]", "lower50"] < 1 < t.loc["or_peak[il10]", "upper50"]
    fig = plots.odds_ratio_figure(plots.odds_ratio_table(idata))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert [tl.get_text() for tl in ax.get_yticklabels()] == ["or_tcell_expansion", "or_peak[il10]", "or_peak[il6]"]
    assert any(list(line.get_xdata()) == [1.0, 1.0] for line in ax.get_lines())  # reference line at 1
    for ext in (".png", ".svg", ".pdf"):
        assert save_figure(fig, tmp_path / f"or{ext}").stat().st_size > 1000
    with pytest.raises(BayesBlinaError, match="no odds-ratio variables"):
        plots.odds_ratio_table(az.from_dict({"posterior": {"beta": beta}}))


def test_vpc_figure_draws_every_statistic_censored_ones_as_bounds(fit, tmp_path):
    table = vpc_from_fit(fit.stored, fit.dataset, bins=6, n_draws=100)
    fig = plots.vpc_figure(table, xaxis="bin")
    assert len(fig.axes) == 2 * len(ANALYTES)
    for k, a in enumerate(ANALYTES):
        t = table[(table.analyte == a) & (table.statistic != "below_limit")]
        # one point per percentile and bin (filled or open triangle), plus circles around flagged ones
        assert _points(fig.axes[k]) == len(t) + int(t.outside.sum())
        top = fig.axes[k]
        assert top.get_yscale() == "log" and top.get_title() == a
    assert table.observed_censored.any()  # the synthetic data have censored percentiles to draw
    assert save_figure(fig, tmp_path / "vpc.svg").stat().st_size > 1000


def test_cytokine_peaks_match_the_posterior_and_keep_censored_peaks(fit, tmp_path):
    pk = plots.cytokine_peak_table(fit.stored, prob=0.9)
    tp = fit.stored.idata.posterior["typical_peak"]
    for r in pk.itertuples():
        v = tp.sel(analyte=r.analyte, scenario=r.scenario).values.ravel()
        assert r.median == pytest.approx(np.median(v))
        assert r.new_patient_lower < r.lower < r.median < r.upper < r.new_patient_upper
    obs = plots.observed_peaks(fit.stored)
    subj = fit.dataset.subjects.set_index("subject_id")["regimen"]
    first = obs[obs.scenario != "step15_after5"]
    # first-exposure scenario follows the starting dose; steps only in the 5-15 regimen
    assert set(first.scenario) == {"flat15_first", "start5_first"}
    assert (subj[first.subject_id].to_numpy() == np.where(first.scenario == "flat15_first", "15", "5-15")).all()
    assert set(subj[obs[obs.scenario == "step15_after5"].subject_id]) == {"5-15"}
    # a peak whose window holds only censored results is kept, as a bound at the limit (LOD 20)
    assert obs.censored.sum() >= 1 and np.allclose(obs.value[obs.censored], 20.0)
    assert (obs.value[~obs.censored] >= 20.0).all()
    fig = plots.cytokine_peak_figure(pk, obs)
    assert sum(_points(ax) for ax in fig.axes) == len(obs)
    assert save_figure(fig, tmp_path / "peaks.png").stat().st_size > 1000


def test_responder_bands_start_at_the_group_median_baseline(fit, tmp_path):
    bands = plots.responder_band_table(fit.stored, fit.dataset, n_draws=100)
    subj = fit.dataset.subjects.set_index("subject_id")
    resp = subj.loc[fit.truth["subjects"], "response"].to_numpy()
    assert bands.groupby("group").n_patients.first().to_dict() == {
        "responders": int((resp == 1).sum()), "non-responders": int((resp == 0).sum())}
    for j, a in enumerate(ANALYTES):
        for g, flag in (("responders", 1), ("non-responders", 0)):
            start = bands[(bands.analyte == a) & (bands.group == g) & (bands.time_h == 0)].iloc[0]
            truth = np.exp(np.median(fit.truth["log_baseline"][resp == flag, j]))
            assert start["median"] == pytest.approx(truth, rel=0.05)  # no pulse yet at t = 0
    assert (bands.lower <= bands["median"]).all() and (bands["median"] <= bands.upper).all()
    assert bands.time_h.max() == pytest.approx(1680.0)  # cycles 1-2
    groups = dict(zip(subj.index, np.where(subj.response == 1, "responders", "non-responders")))
    obs = plots._stored_observations(fit.stored)
    fig = plots.responder_bands_figure(bands, obs, groups)
    for ax, a in zip(fig.axes, ANALYTES):
        assert _points(ax) == int((obs.analyte == a).sum())  # every row drawn, censored ones at the limit
        assert ax.get_yscale() == "log"
    assert save_figure(fig, tmp_path / "bands.pdf").stat().st_size > 1000
    with pytest.raises(BayesBlinaError, match="is not the data of fit"):
        plots.responder_band_table(fit.stored, fit.dataset.with_tables(observations=fit.dataset.observations.iloc[1:]))


def test_response_fit_table_is_exact_beside_fitted():
    from bayes_blina.stats import clopper_pearson

    rng = np.random.default_rng(2)
    p = rng.beta([5, 20], [5, 30], size=(2, 300, 2))
    idata = az.from_dict({"posterior": {"p_agg": p},
                          "observed_data": {"agg_r": np.array([4, 21]), "agg_n": np.array([10, 50]),
                                            "agg_weight": np.array([1.0, 0.5])}},
                         coords={"agg_row": ["A|all|all", "B|age_group|<2"]}, dims={"p_agg": ["agg_row"]})
    stored = SimpleNamespace(idata=idata, path="x")
    t = plots.response_fit_table(stored, prob=0.95)
    lo, hi = clopper_pearson(np.array([4, 21]), np.array([10, 50]), 0.95)
    assert np.allclose(t.exact_lower, lo) and np.allclose(t.exact_upper, hi)
    assert np.allclose(t.fitted_median, np.median(p.reshape(-1, 2), axis=0))
    fig = plots.response_fit_figure(t)
    labels = [tl.get_text() for tl in fig.axes[0].get_yticklabels()]
    assert labels == ["A · all · all  (4/10)", "B · age_group · <2  (21/50)"]
    pd.testing.assert_series_equal(t.rate, pd.Series([0.4, 0.42], name="rate"))
