"""Prior predictive check of the survival family (issue 19): implied survival against the data's
Kaplan-Meier estimate, the prior range of the median and hazard ratios, prior-data conflict flagged."""
from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from bayes_blina.checks.prior import prior_check
from bayes_blina.checks.survival_curves import kaplan_meier
from bayes_blina.cli import main
from bayes_blina.data.units import DAYS_PER_MONTH
from bayes_blina.simulate import simulate_cohort, write_cohort
from bayes_blina.spec import load_spec


@pytest.fixture(scope="module")
def cohort():
    ds, _ = simulate_cohort("pediatric-survival", 80, seed=5)
    return ds


def test_the_implied_survival_is_set_beside_the_kaplan_meier_estimate(cohort):
    res = prior_check("survival", cohort, draws=300, seed=2)
    table = res.tables["survival"].set_index("months")
    s = cohort.subjects.dropna(subset=["os_days"])
    km = kaplan_meier(s["os_days"].astype(float) / DAYS_PER_MONTH, s["os_event"].astype(int), table.index.to_numpy())
    np.testing.assert_allclose(table["observed_km"], km["km"])
    assert (np.diff(table["prior_q50"].to_numpy()) <= 1e-12).all()  # survival falls with time
    quantities = res.tables["quantities"].set_index("quantity")
    # the default Weibull median prior: LogNormal centred near a year, wide
    assert 1.0 < quantities.loc["median_months", "prior_q50"] < 60.0
    assert quantities.loc["median_months", "prior_q05"] < quantities.loc["median_months", "prior_q95"]
    assert res.plot["kind"] == "survival" and res.plot["band"].shape[1] == 6


def test_a_prior_far_from_the_data_is_flagged(cohort):
    spec = load_spec("survival").model_dump()
    spec["priors"] = {**spec["priors"], "log_median": {"dist": "Normal", "mu": math.log(400.0), "sigma": 0.05}}
    res = prior_check(spec, cohort, draws=200, seed=2)
    assert any("prior-data conflict" in f for f in res.flags), res.flags
    assert any("median survival" in f and "above 20 years" in f for f in res.flags)
    assert res.tables["survival"]["conflict"].any()


def test_prior_check_command_for_a_survival_spec(cohort, tmp_path):
    data = write_cohort(cohort, {}, tmp_path / "data")
    r = CliRunner().invoke(main, ["prior-check", "rfs", "--data", str(data), "--draws", "100",
                                  "--out", str(tmp_path / "pc.md"), "--figure", str(tmp_path / "pc.png")])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "pc.md").read_text()
    assert "Implied marginal survival of the cohort against its Kaplan-Meier estimate" in text
    assert "hr_mrd_response" in text and (tmp_path / "pc.png").stat().st_size > 10_000
