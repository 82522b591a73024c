"""Predictive simulation (checks/predictive.py): replicated data censored like the data."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bayes_blina.checks.predictive import (
    LIMIT_SOURCES,
    flatten_draws,
    row_log_limits,
    simulate_observations,
)
from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import SpecError
from bayes_blina.families.pulse import PulseModel, pulse_log_mu
from bayes_blina.families.response import ResponseModel
from bayes_blina.families.subgroups import SubgroupModel
from bayes_blina.simulate import simulate_cohort

ANALYTES = ["IL6", "IL10"]


@pytest.fixture(scope="module")
def pulse_setup():
    ds, _ = simulate_cohort("adult-exploratory", n=8, seed=3)
    fam = PulseModel({"analytes": ANALYTES, "correlated": False})
    return ds, fam, fam.prepare(ds)


def pulse_draws(prepared, n_draws=50, sigma=0.4, seed=0):
    """Draws (mapping, leading draw axis) scattered around plausible cytokine values."""
    rng = np.random.default_rng(seed)
    n_sub, n_ana = len(prepared.coords["subject"]), len(prepared.coords["analyte"])
    return {
        "log_baseline": rng.normal(math.log(8.0), 0.5, (n_draws, n_sub, n_ana)),
        "log_amp": rng.normal(math.log(40.0), 0.7, (n_draws, n_sub, n_ana)),
        "gamma_dose": rng.normal(0.7, 0.1, (n_draws, n_ana)),
        "delta_reexposure": rng.normal(-1.5, 0.1, (n_draws, n_ana)),
        "kappa_cycle": rng.normal(-0.3, 0.1, (n_draws, n_ana)),
        "log_tpeak": rng.normal(math.log(12.0), 0.1, (n_draws, n_ana)),
        "k_shape": np.full((n_draws, n_ana), 2.0),
        "sigma_obs": np.full((n_draws, n_ana), sigma),
    }


def test_pulse_replicates_shapes_and_censoring(pulse_setup):
    ds, fam, prep = pulse_setup
    draws = pulse_draws(prep)
    rep = simulate_observations(fam, prep, draws, np.random.default_rng(1), dataset=ds)
    n_obs = len(prep.arrays["log_y"])
    assert rep["log_y"].shape == rep["censored"].shape == rep["mean_log"].shape == (50, n_obs)
    # NaN exactly where censored; every uncensored replicate at or above its row's limit
    assert np.array_equal(np.isnan(rep["log_y"]), rep["censored"])
    lim = rep["log_limit"]
    ok = ~rep["censored"] & np.isfinite(lim)[None, :]
    assert np.all(rep["log_y"][ok] >= np.broadcast_to(lim, rep["log_y"].shape)[ok])
    # without noise, a replicate is censored exactly where its noise-free value is below the limit
    exact = simulate_observations(fam, prep, pulse_draws(prep, sigma=1e-9), 1, dataset=ds)
    assert np.array_equal(exact["censored"], exact["mean_log"] < lim[None, :])
    # the noise-free values are the family's own
    assert np.allclose(rep["mean_log"], pulse_log_mu(draws, prep.arrays))
    # some replicates censored, some not: the cohort sits around the LOD
    assert 0.05 < rep["censored"].mean() < 0.95


def test_pulse_limits_own_row_then_dataset(pulse_setup):
    ds, _, prep = pulse_setup
    cens = prep.arrays["is_censored"].astype(bool)
    lim, src = row_log_limits(prep, ds)
    assert np.array_equal(lim[cens], prep.arrays["log_limit"][cens])
    assert np.all(src[cens] == LIMIT_SOURCES.index("own censored row"))
    # the simulated cytokines carry lod = 20 pg/mL on every row and are censored at the LOD
    assert np.allclose(lim[~cens], math.log(20.0))
    assert np.all(src[~cens] == LIMIT_SOURCES.index("dataset lod/lloq"))


def test_pulse_limits_fallback_without_dataset(pulse_setup):
    _, _, prep = pulse_setup
    cens = prep.arrays["is_censored"].astype(bool)
    lim, src = row_log_limits(prep)
    assert np.all(np.isfinite(lim))  # both analytes have censored rows
    assert np.all(np.isin(src[~cens], [LIMIT_SOURCES.index("patient-analyte"), LIMIT_SOURCES.index("analyte")]))
    # never above a value the data reported uncensored
    assert np.all(lim[~cens] <= prep.arrays["log_y"][~cens] + 1e-12)
    # an explicit per-row array wins over every fallback
    arrays = dict(prep.arrays, row_log_limit=np.full(len(cens), math.log(3.0)))
    lim2, src2 = row_log_limits(dataclasses.replace(prep, arrays=arrays))
    assert np.allclose(lim2[~cens], math.log(3.0))
    assert np.all(src2[~cens] == LIMIT_SOURCES.index("row_log_limit array"))
    assert np.array_equal(lim2[cens], prep.arrays["log_limit"][cens])


def test_pulse_noise_is_standard_normal_without_limits(pulse_setup):
    _, fam, prep = pulse_setup
    arrays = dict(prep.arrays, is_censored=np.zeros_like(prep.arrays["is_censored"]))
    prep0 = dataclasses.replace(prep, arrays=arrays)
    draws = pulse_draws(prep, n_draws=400, sigma=0.5)
    rep = simulate_observations(fam, prep0, draws, 7)
    assert not rep["censored"].any()
    assert np.all(rep["limit_source"] == LIMIT_SOURCES.index("none"))
    z = (rep["log_y"] - rep["mean_log"]) / 0.5
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01


def test_xarray_chain_draw_equals_flat_mapping(pulse_setup):
    _, fam, prep = pulse_setup
    flat = pulse_draws(prep, n_draws=6)
    dims = {"log_baseline": ("subject", "analyte"), "log_amp": ("subject", "analyte")}
    ds = xr.Dataset({k: (("chain", "draw", *dims.get(k, ("analyte",))), v.reshape(2, 3, *v.shape[1:]))
                     for k, v in flat.items()})
    a = simulate_observations(fam, prep, flat, 5)
    b = simulate_observations(fam, prep, ds, 5)
    assert np.allclose(a["mean_log"], b["mean_log"])
    assert np.array_equal(a["censored"], b["censored"])
    assert np.allclose(np.nan_to_num(a["log_y"]), np.nan_to_num(b["log_y"]))
    with pytest.raises(SpecError, match="lack sigma_obs"):
        flatten_draws({"x": np.zeros(3)}, ["sigma_obs"])


def _response_setup(with_aggregates: bool):
    subjects = pd.DataFrame({"subject_id": [f"S{i}" for i in range(6)], "study": "A",
                             "blast_burden": ["<50", "<50", ">=50", ">=50", ">=50", "<50"],
                             "response": pd.array([1, 0, 1, 0, 0, 1], dtype="Int64")})
    agg = None
    if with_aggregates:
        agg = pd.DataFrame([{"study": "B", "endpoint": "CR", "family": "all", "level": "all", "regimen": "5-15",
                             "responders": 10, "n": 40, "source": "t", "population": "all", "subset_of": ""}])
    fam = ResponseModel({"factors": ["blast_burden"], "study_effect": False, "aggregates": "partition"})
    return fam, fam.prepare(Dataset(subjects=subjects, aggregates=agg, name="t", origin="t"))


def test_response_replicates():
    fam, prep = _response_setup(True)
    n_cell, S = len(prep.arrays["cell_n"]), 4000
    p_cell = np.tile(np.linspace(0.0, 1.0, n_cell), (S, 1))
    p_cell[:, 0] = 0.0
    p_cell[:, -1] = 1.0
    draws = {"p_cell": p_cell, "p_agg": np.full((S, 1), 0.25)}
    rep = simulate_observations(fam, prep, draws, np.random.default_rng(0))
    assert rep["pat_y"].shape == (S, 6) and rep["agg_r"].shape == (S, 1)
    first, last = prep.arrays["pat_cell"] == 0, prep.arrays["pat_cell"] == n_cell - 1
    assert rep["pat_y"][:, first].sum() == 0 and rep["pat_y"][:, last].all()
    assert np.array_equal(rep["cell_y"].sum(1), rep["pat_y"].sum(1))
    assert abs(rep["agg_r"].mean() - 10.0) < 0.2  # 40 * 0.25
    assert rep["agg_r"].max() <= 40


def test_response_missing_deterministic_and_unknown_family():
    fam, prep = _response_setup(False)
    with pytest.raises(SpecError, match="p_cell"):
        simulate_observations(fam, prep, {"p_typical": np.zeros(3)}, 0)
    with pytest.raises(SpecError, match="no predictive simulation"):
        simulate_observations(SubgroupModel(), prep, {"x": np.zeros(3)}, 0)
