"""Regimen planning from a pulse fit: closed-form checks on a posterior with known parameters."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from bayes_blina.errors import BayesBlinaError
from bayes_blina.plan.regimen import predict_regimen_peaks

# population parameters of a one-analyte pulse "posterior" whose draws are all the same
LBM, LAM, SDB, SDA = 2.0, 6.0, 0.4, 0.7
GAMMA, DELTA, TPEAK, K = 0.8, -1.0, 24.0, 2.0


def _stored(fitted_doses=(5.0, 15.0), analytes=("IL6",), corr=None, sd_tpeak=None):
    from bayes_blina.families import get_family

    k, chains, draws = len(analytes), 2, 50
    per = lambda v: np.full((chains, draws, k), v)  # noqa: E731
    post = {"log_baseline_mu": per(LBM), "log_amp_mu": per(LAM), "sd_log_baseline": per(SDB),
            "sd_log_amp": per(SDA), "gamma_dose": per(GAMMA), "delta_reexposure": per(DELTA),
            "kappa_cycle": per(0.0), "log_tpeak": per(math.log(TPEAK)), "k_shape": per(K)}
    if sd_tpeak is not None:  # a fit with patient-level timing
        post["sd_log_tpeak"] = per(sd_tpeak)
    ds = xr.Dataset({n: (("chain", "draw", "analyte"), v) for n, v in post.items()},
                    coords={"analyte": list(analytes)})
    if corr is not None:
        ds["corr_amp"] = (("chain", "draw", "analyte", "analyte_b"),
                          np.broadcast_to(corr, (chains, draws, k, k)).copy())
    const = xr.Dataset({"event_log_dose": ("event", np.log(np.asarray(fitted_doses) / 15.0))})
    options = get_family("pulse")({"analytes": list(analytes)}).options.model_dump()
    return SimpleNamespace(family_name="pulse", options=options,
                           idata=xr.DataTree.from_dict({"posterior": ds, "constant_data": const}))


def test_flat_peak_distribution_matches_the_closed_form():
    # flat 15: one event, peak at t_peak (on the hourly grid) = B (1 + A); with A = e^6 >> 1,
    # log peak ~ N(LBM + LAM, sqrt(SDB^2 + SDA^2)) up to log1p(e^-a) (< 0.01 here)
    res = predict_regimen_peaks(_stored(), ["15"], n_draws=100, patients_per_draw=80,
                                thresholds={"IL6": 3000.0}, seed=3)
    row = res.table.iloc[0]
    sd = math.hypot(SDB, SDA)
    log_pk = np.log(res.peaks[("15", "IL6")])
    assert row["n_virtual_patients"] == 8000
    assert log_pk.mean() == pytest.approx(LBM + LAM, abs=4 * sd / math.sqrt(8000) + 0.01)
    assert log_pk.std() == pytest.approx(sd, rel=0.05)
    p_true = 1 - stats.norm.cdf((math.log(3000.0) - LBM - LAM) / sd)
    assert row["p_exceed"] == pytest.approx(p_true, abs=4 * math.sqrt(p_true * (1 - p_true) / 8000) + 0.005)
    assert row["extrapolated_doses"] == ""


def test_step_dosing_lowers_the_peak_by_the_dose_effect():
    # 5-15: the first-week peak is at 5 (log A lower by GAMMA * log 3); the step to 15 is a later
    # exposure (log A lower by |DELTA|): the overall peak is the larger of the two, below flat 15
    res = predict_regimen_peaks(_stored(), ["15", "5-15"], n_draws=50, patients_per_draw=40, seed=1)
    flat, step = (np.log(res.peaks[(r, "IL6")]) for r in ("15", "5-15"))
    drop = flat.mean() - step.mean()
    expected = min(GAMMA * math.log(3.0), -DELTA)  # the less attenuated of the two peaks
    assert drop == pytest.approx(expected, abs=0.05)


def test_doses_outside_the_fitted_range_are_flagged():
    res = predict_regimen_peaks(_stored(fitted_doses=(5.0, 15.0)), ["10-30", "15"], n_draws=10,
                                patients_per_draw=5, window_h=240.0)
    flags = dict(zip(res.table["regimen"], res.table["extrapolated_doses"]))
    assert flags == {"10-30": "30", "15": ""}
    assert res.fitted_doses == [5.0, 15.0]


def test_correlated_amplitudes_are_drawn_with_the_fitted_correlation():
    corr = np.array([[1.0, 0.8], [0.8, 1.0]])
    res = predict_regimen_peaks(_stored(analytes=("IL6", "IL10"), corr=corr), ["15"], n_draws=100,
                                patients_per_draw=60, seed=2)
    a, b = (np.log(res.peaks[("15", x)]) for x in ("IL6", "IL10"))
    # cov = SDA^2 * 0.8 (amplitudes) + 0 (independent baselines); var = SDA^2 + SDB^2
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(0.8 * SDA**2 / (SDA**2 + SDB**2), abs=0.04)


def test_clear_errors():
    with pytest.raises(BayesBlinaError, match="needs a fit of the 'pulse' family"):
        predict_regimen_peaks(SimpleNamespace(family_name="response"), ["15"])
    with pytest.raises(BayesBlinaError, match="not in the fit"):
        predict_regimen_peaks(_stored(), ["15"], analytes=["IL10"])
    with pytest.raises(BayesBlinaError, match="thresholds given"):
        predict_regimen_peaks(_stored(), ["15"], thresholds={"IL10": 5.0})
    with pytest.raises(BayesBlinaError, match="regimen 'abc'"):
        predict_regimen_peaks(_stored(), ["abc"], n_draws=5, patients_per_draw=2)


@pytest.mark.parametrize("bad", ["IL6", "IL6=abc", "NOPE=10", "IL6=-1"])
def test_cli_threshold_is_validated_before_anything_is_read(tmp_path, bad):
    from click.testing import CliRunner

    from bayes_blina.cli import main

    r = CliRunner().invoke(main, ["plan", "regimen", str(tmp_path / "nofit"), "--regimen", "15",
                                  "--threshold", bad])
    assert r.exit_code == 2
    assert "--threshold must be ANALYTE=VALUE" in r.output


def test_virtual_patients_draw_their_own_timing_when_the_fit_has_it():
    from bayes_blina.plan.regimen import _population_draws

    sd_t = 0.4
    post = _stored(sd_tpeak=sd_t).idata.posterior
    d = _population_draws(post, ["IL6"], 100, 80, np.random.default_rng(0))
    assert d["log_tpeak_i"].shape == (100, 80, 1, 1) == d["log_amp"].shape
    assert d["log_tpeak_i"].mean() == pytest.approx(math.log(TPEAK), abs=0.02)
    assert d["log_tpeak_i"].std() == pytest.approx(sd_t, rel=0.03)
    assert "log_tpeak_i" not in _population_draws(_stored().idata.posterior, ["IL6"], 10, 5,
                                                   np.random.default_rng(0))


def test_patient_timing_spreads_the_peak_within_a_short_window():
    # flat 15, window 12 h < t_peak = 24 h: the largest value is mostly at 12 h, B (1 + A g(12; t_peak_i, K)),
    # so a patient's own (earlier or later) timing changes it; independent Monte Carlo oracle
    sd_t, n = 0.4, 8000
    kw = dict(n_draws=100, patients_per_draw=80, window_h=12.0, seed=4)
    with_t = np.log(predict_regimen_peaks(_stored(sd_tpeak=sd_t), ["15"], **kw).peaks[("15", "IL6")])
    without = np.log(predict_regimen_peaks(_stored(), ["15"], **kw).peaks[("15", "IL6")])
    rng = np.random.default_rng(11)
    tp = TPEAK * np.exp(sd_t * rng.standard_normal(n))
    s = np.minimum(12.0, tp) / tp  # the peak itself when it falls within the window
    g = np.exp(K * (np.log(s) + 1.0 - s))
    oracle = LBM + SDB * rng.standard_normal(n) + np.log1p(np.exp(LAM + SDA * rng.standard_normal(n)) * g)
    assert with_t.std() == pytest.approx(oracle.std(), rel=0.04)
    assert with_t.mean() == pytest.approx(oracle.mean(), abs=0.04)
    assert with_t.std() > without.std() + 0.05
