"""Simulation-based calibration (checks/sbc.py): rank statistics, uniformity tests, the compiled-once
models, and SBC itself catching deliberately wrong inference."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_blina.checks import sbc
from bayes_blina.checks.sbc import SBCSettings, run_sbc, uniformity
from bayes_blina.report.calibration import write_sbc
from bayes_blina.cli.checks import EXIT_SBC_FAILED
from bayes_blina.cli.checks import sbc as sbc_command
from bayes_blina.cli.common import ErrorHandlingGroup
from bayes_blina.errors import SpecError
from bayes_blina.priors import Prior
from sbc_direct import direct_model, swapped_model

#: The response spec calibrated in CI: two factors, one study (no study effect).
RESPONSE_SPEC = {"name": "sbc-response", "family": "response",
                 "options": {"factors": ["age_group", "blast_burden"], "study_effect": False}}
RESPONSE_TOML = """name = "sbc-response"
family = "response"

[options]
factors = ["age_group", "blast_burden"]
study_effect = false
"""
#: CI settings: 2 chains x (200 tuning + 150 draws), thinned to 99 draws per rank.
CI = dict(chains=2, tune=200, draws=150, rank_draws=99, seed=20240501)


def cli():
    group = ErrorHandlingGroup("test")
    group.add_command(sbc_command)
    return group


# ------------------------------------------------------------------------------ fast unit tests


def test_uniformity_of_uniform_and_skewed_ranks():
    L = 99
    flat = np.tile(np.arange(L + 1), 2)  # exactly uniform: 200 ranks
    u = uniformity(flat, L)
    assert u["bins"] == 20 and u["df"] == 19
    assert u["chi2"] == 0.0 and u["p_chi2"] == 1.0
    assert u["p_ecdf"] > 0.5
    skewed = np.minimum(flat, 60)  # the top 40% piled on one value
    s = uniformity(skewed, L)
    assert s["p_chi2"] < 1e-10 and s["p_ecdf"] < 1e-3
    # bins: the largest divisor of L + 1 up to 20 with >= 5 expected ranks per bin
    assert uniformity(flat[:60], L)["bins"] == 10
    assert uniformity(flat[:20], L)["bins"] == 4
    with pytest.raises(SpecError, match="must divide"):
        uniformity(flat, L, bins=7)
    with pytest.raises(SpecError, match="ranks must lie"):
        uniformity(np.array([0, 100]), L)


def test_rank_counts_draws_below_and_breaks_ties():
    rng = np.random.default_rng(0)
    draws = np.array([0.1, 0.2, 0.3, 0.4])
    assert sbc._rank(0.25, draws, rng) == 2
    assert sbc._rank(-1.0, draws, rng) == 0 and sbc._rank(9.0, draws, rng) == 4
    tied = [sbc._rank(0.0, np.zeros(4), rng) for _ in range(2000)]  # constant quantity: uniform ranks
    counts = np.bincount(tied, minlength=5)
    assert counts.min() > 300 and counts.max() < 500


def test_halved_prior_scales():
    assert sbc._halved_scale(Prior("Gamma", alpha=2, beta=2)) == Prior("Gamma", alpha=2, beta=4)
    assert sbc._halved_scale(Prior("HalfNormal", sigma=0.5)) == Prior("HalfNormal", sigma=0.25)
    assert sbc._halved_scale(Prior("Normal", mu=1, sigma=2)) == Prior("Normal", mu=1, sigma=1)
    assert sbc._halved_scale(Prior("Exponential", lam=1)) == Prior("Exponential", lam=2)
    assert sbc._halved_scale(Prior("Beta", alpha=1, beta=1)) is None


def test_settings_are_validated():
    with pytest.raises(SpecError, match="rank_draws"):
        SBCSettings(chains=2, draws=40, rank_draws=99)
    with pytest.raises(SpecError, match="misspecify"):
        SBCSettings(misspecify="wrong")
    with pytest.raises(SpecError, match="at least 2"):
        SBCSettings(sims=1)


def test_builtin_response_design_crosses_levels():
    ds = sbc.builtin_design(RESPONSE_SPEC)
    s = ds.subjects
    assert len(s) == 60 and set(s["study"]) == {"A"}
    assert set(s["age_group"]) == {"<2", "2-6", "7-17", "adult"}
    assert pd.crosstab(s["age_group"], s["blast_burden"]).to_numpy().min() > 0


# ------------------------------------------------------------------------------ MCMC


@pytest.mark.slow
def test_sbc_response_passes_and_catches_wrong_inference(tmp_path):
    """The correct inference passes; a fit with every prior scale halved, and a sampler that never
    visits the lower half of each parameter's posterior, both fail."""
    ok = run_sbc(RESPONSE_SPEC, settings=SBCSettings(sims=100, **CI))
    assert ok.passed, ok.verdict
    assert set(ok.tests["quantity"]) >= {"p_typical", "sd_age_group", "sd_blast_burden", "beta_age_group[<2]"}
    assert len(ok.ranks) == 100 * len(ok.tests) and ok.ranks["rank"].between(0, 99).all()
    # compiled once: every simulation after the first reuses the model, with its data swapped in
    assert ok.sims["compilations"].iloc[0] <= 1 and (ok.sims["compilations"].iloc[1:] == 0).all()

    wrong_prior = run_sbc(RESPONSE_SPEC, settings=SBCSettings(sims=100, misspecify="prior_scale", **CI))
    assert not wrong_prior.passed
    failed = set(wrong_prior.tests.loc[~wrong_prior.tests["passed"], "quantity"])
    assert failed and failed <= {"sd_age_group", "sd_blast_burden"}  # the spreads carry the prior
    # halved spreads in the fit: the true spread ranks high among the posterior draws
    sd = wrong_prior.ranks[wrong_prior.ranks["quantity"] == "sd_blast_burden"]
    assert sd["rank"].mean() > 60

    truncated = run_sbc(RESPONSE_SPEC, settings=SBCSettings(sims=60, misspecify="drop_lower_half", **CI))
    assert not truncated.passed
    assert (~truncated.tests["passed"]).mean() > 0.75  # nearly every quantity
    assert (truncated.ranks["rank"] == 0).mean() > 0.4  # half the truths lie below every kept draw

    paths = write_sbc(ok, tmp_path / "sbc")
    names = {p.name for p in paths}
    assert names == {"ranks.csv", "sims.csv", "uniformity.csv", "settings.json", "sbc.md", "rank_histograms.png"}
    assert pd.read_csv(tmp_path / "sbc" / "ranks.csv").shape[0] == len(ok.ranks)
    assert "SBC PASSED" in (tmp_path / "sbc" / "sbc.md").read_text()


@pytest.mark.slow
def test_sbc_cli_exit_status(tmp_path):
    """``bayes-blina sbc``: a failed calibration exits with EXIT_SBC_FAILED, a passed one with 0
    (reuses the model compiled by the test above: same spec content and design)."""
    spec = tmp_path / "sbc-response.toml"
    spec.write_text(RESPONSE_TOML)
    common = ["sbc", str(spec), "--tune", "200", "--draws", "150"]
    bad = CliRunner().invoke(cli(), common + ["--sims", "20", "--misspecify", "drop_lower_half"])
    assert bad.exit_code == EXIT_SBC_FAILED, bad.output
    good = CliRunner().invoke(cli(), common + ["--sims", "20", "--out", str(tmp_path / "out")])
    assert good.exit_code == 0, good.output
    assert (tmp_path / "out" / "rank_histograms.png").stat().st_size > 1000
    assert "SBC PASSED" in good.output


@pytest.mark.slow
def test_dask_cluster_gives_the_same_ranks_on_one_worker_and_on_two():
    """Seeds are per simulation: two dask workers give exactly the ranks of one worker.

    Both runs' workers are fresh processes that load the compiled model from pytensor's disk cache
    (the two-worker run compiles it in this process first). The in-process sequential run is not
    compared bit for bit: a numba function compiled in a process and the same function loaded from
    the disk cache differ in the last bits (measured in session 12: three cold-cache runs of a fit
    identical, three warm-cache runs identical, the two sets not), and MCMC amplifies that, so the
    sequential ranks equal the workers' only when this process also loaded the model from the cache
    (the test failed on fresh clones for that reason). Its ranks must come from the same
    simulations and be valid."""
    import logging

    from dask.distributed import LocalCluster

    s = SBCSettings(sims=4, **CI)  # default (numba) backend: CI installs no jax
    par = run_sbc(RESPONSE_SPEC, settings=s, workers=2)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        one = run_sbc(RESPONSE_SPEC, settings=s, scheduler=cluster.scheduler_address)
    seq = run_sbc(RESPONSE_SPEC, settings=s, workers=1)
    for res in (seq, one, par):  # a simulation that failed to fit names its error here
        assert "error" not in res.sims or res.sims["error"].isna().all(), res.sims.get("error").dropna().tolist()
    pd.testing.assert_frame_equal(one.ranks, par.ranks)
    assert list(par.sims["sim"]) == [0, 1, 2, 3]
    same = ["sim", "seed", "quantity", "prior_value"]  # drawn by numpy from the seeds: exact
    pd.testing.assert_frame_equal(seq.ranks[same], par.ranks[same])
    assert seq.ranks["rank"].between(0, CI["rank_draws"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("family, options", [
    ("pulse", {"analytes": ["IL6", "IL10"]}),
    ("kinetics", {}),
    ("depletion", {}),
])
def test_trajectory_model_compiled_once_has_the_direct_log_density(family, options):
    """A trajectory model with the simulated data swapped into its ``pm.Data`` has exactly the log
    density of the model built directly on them (censored rows included)."""
    from bayes_blina.checks.predictive import flatten_draws
    from bayes_blina.checks.prior import prior_draws, prior_family
    from bayes_blina.spec import load_spec

    spec = load_spec({"name": f"sbc-{family}", "family": family, "options": options})
    design = sbc.builtin_design(spec, n=6)
    pfam = prior_family(spec)
    prep = pfam.prepare(design)
    prior = prior_draws(pfam, prep, 2, 1)
    theta = {k: v[1:2] for k, v in flatten_draws(prior).items()}
    data, _ = sbc._simulate_data(pfam, prep, theta, 5, design)
    # censor the lower half at a limit, whatever the design's assay limits: both likelihood branches
    latent = np.where(data["censored"], data["log_limit"] - 1.0, data["log_y"])
    low = np.argsort(np.argsort(latent + 1e-9 * np.arange(len(latent)))) < len(latent) // 2
    data = {"log_y": np.where(low, np.nan, latent), "censored": low, "log_limit": latent + 0.5}
    ctx = {"spec": spec, "family": family, "outcome": "trajectory", "prepared": prep, "settings": SBCSettings(sims=2)}
    shared_model, names = swapped_model(ctx, data)
    assert {"log_y", "log_limit", "is_censored"} <= names
    direct = direct_model(ctx, data)
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0.0, 0.3, np.shape(v)) for k, v in direct.initial_point().items()}
    a, b = shared_model.compile_logp()(point), direct.compile_logp()(point)
    assert math.isfinite(a) and a == pytest.approx(b, rel=1e-10)


def test_failed_fits_are_reported_not_lost(monkeypatch):
    """A simulation whose fit raises is recorded in sims with its error, and fails the verdict."""
    def fake_fit(ctx, i, data):
        if i == 1:
            raise RuntimeError("initial point has a non-finite log density")
        L = ctx["settings"].rank_draws
        q = len(ctx["quantities"])
        return {"sim": i, "seed": ctx["settings"].seed + i, "draws": np.tile(np.linspace(-5, 5, L), (q, 1)),
                "posterior_mean": np.zeros(q), "posterior_sd": np.ones(q), "fit_s": 0.0, "compile_s": 0.0,
                "divergences": 0, "max_rhat": 1.0, "min_ess_bulk": 100.0}

    monkeypatch.setattr(sbc, "_fit_simulation", fake_fit)
    res = run_sbc(RESPONSE_SPEC, settings=SBCSettings(sims=3, **CI))
    assert not res.passed and "1 simulation(s) failed to fit" in res.verdict
    assert res.sims.loc[1, "error"].startswith("RuntimeError: initial point")
    assert sorted(res.ranks["sim"].unique()) == [0, 2]
