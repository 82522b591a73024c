"""Prior predictive checks (checks/prior.py): implications of the priors on the data scale, flags."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_blina.checks.prior import prior_check
from bayes_blina.report.prior_check import prior_check_figure, prior_check_markdown
from bayes_blina.cli.checks import prior_check as prior_check_command
from bayes_blina.cli.common import ErrorHandlingGroup
from bayes_blina.data.dataset import Dataset
from bayes_blina.data.io import write_dataset
from bayes_blina.simulate import simulate_cohort


def response_dataset():
    n = 40
    subjects = pd.DataFrame({
        "subject_id": [f"S{i:02d}" for i in range(n)], "study": "A", "regimen": "5-15",
        "blast_burden": ["<50" if i % 4 == 0 else ">=50" for i in range(n)],
        "response": pd.array([1 if i % 3 == 0 else 0 for i in range(n)], dtype="Int64"),
    })
    return Dataset(subjects=subjects, name="prior-check-response", origin="test")


def response_spec(**priors):
    return {"name": "pc-response", "family": "response",
            "options": {"factors": ["blast_burden"], "study_effect": False}, "priors": priors}


def test_response_prior_check_tables_and_flags():
    ds = response_dataset()
    res = prior_check(response_spec(), ds, draws=400, seed=3)
    sub = res.tables["subgroups"].set_index("subgroup")
    assert list(sub.index) == ["all patients", "blast_burden=<50", "blast_burden=>=50"]
    assert sub.loc["all patients", "n"] == 40 and sub.loc["all patients", "observed"] == 14
    assert sub.loc["blast_burden=<50", "observed_rate"] == pytest.approx(4 / 10)
    q = sub[["rate_q01", "rate_q05", "rate_q50", "rate_q95", "rate_q99"]].to_numpy()
    assert np.all(np.diff(q, axis=1) >= 0) and q.min() >= 0 and q.max() <= 1
    # a flat prior on the typical rate: wide but not absurd
    assert 0.3 < sub.loc["all patients", "rate_q50"] < 0.7
    assert res.flags == []
    # a U-shaped prior piles the implied CR rates on 0 and 1: flagged
    extreme = prior_check(response_spec(p_typical={"dist": "Beta", "alpha": 0.1, "beta": 0.1}), ds, draws=400, seed=3)
    assert any("all patients" in f and "below 1% or above 99%" in f for f in extreme.flags)
    md = prior_check_markdown(extreme)
    assert "## Flags" in md and "Implied CR rate by subgroup" in md and "No absurd" not in md
    fig = prior_check_figure(extreme)
    assert len(fig.axes[0].get_yticklabels()) == 3


def test_prior_check_command(tmp_path):
    folder = tmp_path / "data"
    write_dataset(response_dataset(), folder)
    spec = tmp_path / "pc.toml"
    spec.write_text('name = "pc"\nfamily = "response"\n[options]\nfactors = ["blast_burden"]\nstudy_effect = false\n')
    group = ErrorHandlingGroup("test")
    group.add_command(prior_check_command)
    out, fig = tmp_path / "pc.md", tmp_path / "pc.png"
    r = CliRunner().invoke(group, ["prior-check", str(spec), "--data", str(folder), "--draws", "100",
                                   "--out", str(out), "--figure", str(fig)])
    assert r.exit_code == 0, r.output
    assert "Implied CR rate by subgroup" in out.read_text()
    assert fig.stat().st_size > 1000
    bad = CliRunner().invoke(group, ["prior-check", str(spec), "--data", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and "error:" in bad.output


@pytest.mark.slow
def test_pulse_prior_check_flags_absurd_priors():
    """On a small cohort's design: plausible priors give no flag; a typical fold rise of e^14
    (about a million) is flagged as implying absurd concentrations."""
    ds, _ = simulate_cohort("adult-exploratory", n=4, seed=11)
    base = {"name": "pc-pulse", "family": "pulse", "options": {"analytes": ["IL6"], "correlated": False}}
    tight = dict(base, priors={"log_amp_mu": "Normal(mu=3, sigma=0.5)", "sd_log_amp": "Gamma(alpha=20, beta=40)",
                               "log_baseline_mu": "Normal(mu=1.5, sigma=0.5)",
                               "sd_log_baseline": "Gamma(alpha=20, beta=40)", "sigma_obs": "HalfNormal(sigma=0.5)"})
    res = prior_check(tight, ds, draws=300, seed=5)
    assert res.flags == [], res.flags
    vals = res.tables["values"]
    assert set(vals["analyte"]) == {"IL6"} and (vals["unit"] == "pg/mL").all()
    assert vals["rows"].sum() == len(ds.observations.query("analyte == 'IL6'"))
    assert vals["prior_below_limit"].between(0, 1).all()
    pre = vals[vals["time_bin"] == "<= 0 h"].iloc[0]
    assert pre["prior_q50"] < vals["prior_q50"].max()  # the pulses raise the values after dosing
    quantities = set(res.tables["quantities"]["quantity"])
    assert {"patient maximum on the design", "typical_peak flat15_first", "time to peak t_peak (h)"} <= quantities
    absurd = prior_check(dict(base, priors={"log_amp_mu": "Normal(mu=14, sigma=0.5)"}), ds, draws=300, seed=5)
    assert any("IL6" in f and "above 1e+06" in f for f in absurd.flags)
    row = absurd.tables["quantities"].query("quantity == 'typical_peak flat15_first'").iloc[0]
    assert row["prior_q50"] > 1e6 and math.isfinite(row["prior_q99"])
    fig = prior_check_figure(absurd)
    assert fig.axes[0].get_yscale() == "log"


def test_prior_draws_need_the_plain_parameterisation():
    from bayes_blina.checks.prior import prior_draws, prior_family
    from bayes_blina.errors import SpecError
    from bayes_blina.families.pulse import PulseModel
    from bayes_blina.spec import load_spec

    ds, _ = simulate_cohort("adult-exploratory", n=3, seed=1)
    fam = PulseModel({"analytes": ["IL6"], "correlated": False})  # peak coordinates (flat) by default
    with pytest.raises(SpecError, match="flat coordinates"):
        prior_draws(fam, fam.prepare(ds), 10, 0)
    plain = prior_family(load_spec({"name": "p", "family": "pulse", "options": {"analytes": ["IL6"]}}))
    assert plain.options.peak_coordinates is False and plain.options.analytes == ["IL6"]
