"""Prior predictive check and simulation-based calibration of the joint model (issue 5): prior draws
in the plain parameterisation, replicated part rows and CR outcomes, and SBC end to end."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_blina.checks import sbc
from bayes_blina.checks.predictive import flatten_draws, simulate_observations
from bayes_blina.checks.prior import prior_check, prior_draws, prior_family
from bayes_blina.checks.sbc import SBCSettings, run_sbc
from bayes_blina.cli.checks import EXIT_SBC_FAILED
from bayes_blina.cli.checks import prior_check as prior_check_command
from bayes_blina.cli.checks import sbc as sbc_command
from bayes_blina.cli.common import ErrorHandlingGroup
from bayes_blina.data.io import write_dataset
from bayes_blina.families.joint import PARTS
from bayes_blina.spec import load_spec
from sbc_direct import direct_model, swapped_model

#: Quantities SBC must rank for the joint model (besides the sub-models' population parameters).
CR_QUANTITIES = {"beta_tcell_expansion", "beta_il10_peak", "p_typical", "alpha"}


def cli():
    group = ErrorHandlingGroup("test")
    group.add_command(sbc_command)
    group.add_command(prior_check_command)
    return group


@pytest.fixture(scope="module")
def joint_prior():
    """The joint spec's prior family, a 6-patient design, its prepared arrays and 20 prior draws."""
    spec = load_spec("joint")
    design = sbc.builtin_design(spec, n=6)
    fam = prior_family(spec)
    prep = fam.prepare(design)
    return spec, design, fam, prep, prior_draws(fam, prep, 20, 3)


# ------------------------------------------------------------------------------ fast


def test_joint_prior_family_has_no_flat_variables(joint_prior):
    from pymc.distributions.continuous import FlatRV, HalfFlatRV

    spec, _, fam, prep, prior = joint_prior
    assert spec.options["cytokines"]["peak_coordinates"] is True  # the spec itself is untouched
    assert fam.parts["cyt"].options.peak_coordinates is False
    assert fam.parts["cyt"].options.analytes == ["IL10"]
    model = fam.build(prep)
    assert not [rv.name for rv in model.free_RVs if isinstance(rv.owner.op, (FlatRV, HalfFlatRV))]
    assert "cyt_log_tpeak_c" not in model.named_vars  # patient-mean timing needs peak coordinates
    assert set(prior.sizes) >= {"chain", "draw"} and prior.sizes["draw"] == 20
    assert CR_QUANTITIES | {"p_cr"} <= set(prior.data_vars)
    for name in ("tcell_expansion_mu", "tcell_sigma_obs", "cyt_log_amp_mu", "cyt_log_tpeak", "cyt_sigma_obs"):
        assert name in prior.data_vars, name
    for name in CR_QUANTITIES:
        assert np.isfinite(prior[name].values).all()
    # the fit keeps its own parameterisation: SBC ranks the summary variables of the spec as it is
    fit_fam = sbc._fit_family({"spec": spec})
    assert fit_fam.parts["cyt"].options.peak_coordinates is True
    labels = {q[0] for q in sbc._quantities(fit_fam, prior)}
    assert CR_QUANTITIES <= labels
    assert {"tcell_expansion_mu[CD3]", "tcell_sigma_obs[CD3]", "cyt_log_amp_mu[IL10]", "cyt_sigma_obs[IL10]"} <= labels
    assert not [q for q in labels if q.startswith(("or_", "p_or_"))]  # beta's ranks again


def test_joint_replicates_are_censored_like_the_data(joint_prior):
    _, design, fam, prep, prior = joint_prior
    rep = simulate_observations(fam, prep, prior, np.random.default_rng(1), dataset=design)
    assert rep["parts"] == [PARTS[p][1] for p in fam.parts] == ["tcell_", "cyt_"]
    S = 20
    for q in rep["parts"]:
        n = len(prep.arrays[q + "log_y"])
        y, cens, lim = rep[q + "log_y"], rep[q + "censored"], rep[q + "log_limit"]
        assert y.shape == cens.shape == (S, n) and lim.shape == (n,)
        assert (np.isnan(y) == cens).all()  # every censored replicate is NaN, and only those
        assert not cens[:, ~np.isfinite(lim)].any()  # no limit: never censored
        ok = ~cens & np.isfinite(lim)[None, :]
        assert (y[ok] >= np.broadcast_to(lim, y.shape)[ok]).all()
        assert (rep[q + "latent_log_y"][cens] < np.broadcast_to(lim, y.shape)[cens]).all()
        data_cens = prep.arrays[q + "is_censored"].astype(bool)  # rows censored in the data keep their limit
        assert np.allclose(lim[data_cens], prep.arrays[q + "log_limit"][data_cens])
    assert rep["cyt_censored"].any()  # the IL-10 design has an LOD
    n_cr = len(prep.arrays["cr_y"])
    assert rep["cr_y"].shape == rep["p_cr"].shape == (S, n_cr) == (S, len(prep.coords["cr_patient"]))
    assert set(np.unique(rep["cr_y"])) <= {0, 1}
    # the draws as arrays with a leading draw axis (what SBC passes) give the same structure
    flat = {k: v[2:3] for k, v in flatten_draws(prior).items()}
    one = simulate_observations(fam, prep, flat, np.random.default_rng(2), dataset=design)
    assert one["tcell_log_y"].shape == (1, len(prep.arrays["tcell_log_y"])) and one["cr_y"].shape == (1, n_cr)
    data, summary = sbc._simulate_data(fam, prep, flat, 5, design)
    assert set(data) == {"tcell_log_y", "tcell_censored", "tcell_log_limit", "tcell_log_lower", "cyt_log_y",
                         "cyt_censored", "cyt_log_limit", "cyt_log_lower", "cr_y"}
    assert np.isnan(data["cyt_log_lower"]).all()  # one limit per analyte in this design: no interval rows
    assert summary["patients"] == n_cr and 0 <= summary["responders"] <= n_cr


def test_joint_prior_check_command(joint_prior, tmp_path):
    _, design, _, _, _ = joint_prior
    res = prior_check("joint", design, draws=30, seed=4)
    assert res.family == "joint"
    assert set(res.tables["values"]["part"]) == {"tcell", "cyt"}
    assert set(res.tables["values"]["analyte"]) == {"CD3", "IL10"}
    sub = res.tables["subgroups"]
    assert sub.loc[0, "subgroup"] == "all patients" and sub.loc[0, "n"] == 6
    assert {"beta_tcell_expansion", "beta_il10_peak", "p_typical"} <= set(res.tables["quantities"]["quantity"])
    folder = tmp_path / "data"
    write_dataset(design, folder)
    out, fig = tmp_path / "pc.md", tmp_path / "pc.png"
    r = CliRunner().invoke(cli(), ["prior-check", "joint", "--data", str(folder), "--draws", "20",
                                   "--out", str(out), "--figure", str(fig)])
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "Implied CR rate by subgroup" in text and "| tcell | CD3 |" in text and "| cyt | IL10 |" in text
    assert fig.stat().st_size > 1000


# ------------------------------------------------------------------------------ MCMC


@pytest.mark.slow
def test_joint_model_compiled_once_has_the_direct_log_density(joint_prior):
    """The joint model with every part's data and the CR outcomes swapped into its ``pm.Data`` has
    exactly the log density of the model built directly on the simulated data (censored rows
    included)."""
    spec, design, fam, prep, prior = joint_prior
    theta = {k: v[1:2] for k, v in flatten_draws(prior).items()}
    data, _ = sbc._simulate_data(fam, prep, theta, 5, design)
    for q in ("tcell_", "cyt_"):  # censor the lower half of each part: both likelihood branches
        latent = np.where(data[q + "censored"], data[q + "log_limit"] - 1.0, data[q + "log_y"])
        low = np.argsort(np.argsort(latent + 1e-9 * np.arange(len(latent)))) < len(latent) // 2
        data.update({q + "log_y": np.where(low, np.nan, latent), q + "censored": low, q + "log_limit": latent + 0.5})
    data["cr_y"] = 1 - data["cr_y"]
    ctx = {"spec": spec, "family": "joint", "outcome": "composite", "prepared": prep, "settings": SBCSettings(sims=2)}
    shared_model, names = swapped_model(ctx, data)
    assert {"tcell_log_y", "tcell_log_limit", "tcell_is_censored", "cyt_log_y", "cyt_log_limit",
            "cyt_is_censored", "cr_y"} <= names
    direct = direct_model(ctx, data)
    rng = np.random.default_rng(0)
    point = {k: v + rng.normal(0.0, 0.3, np.shape(v)) for k, v in direct.initial_point().items()}
    a, b = shared_model.compile_logp()(point), direct.compile_logp()(point)
    assert math.isfinite(a) and a == pytest.approx(b, rel=1e-10)


@pytest.mark.slow
def test_sbc_joint_end_to_end(tmp_path):
    """``run_sbc("joint")`` ranks every quantity in every simulation, compiling once; the CLI writes
    its tables (calibration is not asserted at these tiny settings)."""
    s = SBCSettings(sims=3, chains=2, tune=100, draws=100, rank_draws=49)
    res = run_sbc("joint", settings=s)
    assert res.family == "joint"
    q = set(res.tests["quantity"])
    assert CR_QUANTITIES <= q
    assert {"tcell_expansion_mu[CD3]", "tcell_sd_expansion[CD3]", "cyt_log_amp_mu[IL10]",
            "cyt_log_tpeak[IL10]"} <= q
    assert len(res.ranks) == 3 * len(q)
    assert set(map(tuple, res.ranks[["sim", "quantity"]].to_numpy())) == {(i, x) for i in range(3) for x in q}
    assert res.ranks["rank"].between(0, 49).all()
    assert "error" not in res.sims or res.sims["error"].isna().all()
    assert (res.sims["compilations"].iloc[1:] == 0).all()  # compiled once, data swapped in
    assert {"tcell_censored_fraction", "cyt_censored_fraction", "responders"} <= set(res.sims.columns)

    out = tmp_path / "sbc"
    r = CliRunner().invoke(cli(), ["sbc", "joint", "--sims", "2", "--tune", "100", "--draws", "100",
                                   "--rank-draws", "49", "--out", str(out)])
    assert r.exit_code in (0, EXIT_SBC_FAILED), r.output
    for name in ("ranks.csv", "sims.csv", "uniformity.csv", "settings.json", "sbc.md", "rank_histograms.png"):
        assert (out / name).exists(), name
    ranks = pd.read_csv(out / "ranks.csv")
    assert len(ranks) == 2 * len(q) and ranks["rank"].between(0, 49).all()
