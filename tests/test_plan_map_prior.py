"""MAP prior: input validation (fast) and the convergence gate (one short MCMC run)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_blina.errors import BayesBlinaWarning, ConvergenceError, DataValidationError
from bayes_blina.plan import BetaMixture, PlanError, load_as_example, map_prior, read_historical, validate_historical


def test_validate_historical_reports_every_problem_with_row_and_column():
    df = pd.DataFrame({"study": ["A", "", "A", "D"], "n": [10, "x", 5, 0], "r": [3, 2, 7, -1]})
    with pytest.raises(DataValidationError) as e:
        validate_historical(df, source="hist.csv")
    text = str(e.value)
    for piece in ("hist.csv, column 'n', row 2: a whole number (found 'x')", "column 'study', row 2",
                  "column 'study', row 3: a unique study name (also in row 1)", "column 'r', row 3: at most n = 5",
                  "column 'n', row 4: at least 1 patient", "column 'r', row 4: a non-negative number"):
        assert piece in text


def test_validate_historical_normalises_types():
    out = validate_historical(pd.DataFrame({" study ": ["A", "B"], "n": ["10", "12.0"], "r": [3, 4]}))
    assert out["n"].tolist() == [10, 12] and out["n"].dtype.kind == "i"
    with pytest.raises(DataValidationError, match="column named"):
        validate_historical(pd.DataFrame({"study": ["A"], "n": [3]}))
    with pytest.raises(PlanError, match="DataFrame"):
        validate_historical([("A", 10, 3)])


def test_read_historical(tmp_path):
    with pytest.raises(PlanError, match="does not exist"):
        read_historical(tmp_path / "none.csv")
    f = tmp_path / "h.csv"
    f.write_text("study,n,r\nA,10,3\n")
    assert read_historical(f).to_dict(orient="records") == [{"study": "A", "n": 10, "r": 3}]
    assert len(load_as_example()) == 8


@pytest.mark.parametrize("tau, mu, match", [
    (("Gamma", 1.0), ("Normal", 0, 2), "unknown tau prior"),
    (("HalfNormal",), ("Normal", 0, 2), "takes 1 parameter"),
    (("HalfNormal", 0.0), ("Normal", 0, 2), "positive"),
    ("halfnormal:x", ("Normal", 0, 2), "must be numbers"),
    (("HalfNormal", 1.0), ("Normal", 0, -2), "sd must be positive"),
    (("HalfNormal", 1.0), ("Cauchy", 0, 2), "unknown mu prior"),
    (None, ("Normal", 0, 2), "tau prior must be like"),
])
def test_bad_priors_are_refused_before_sampling(tau, mu, match):
    with pytest.raises(PlanError, match=match):
        map_prior(load_as_example(), tau, mu)


def test_bad_sampler_settings_are_refused():
    with pytest.raises(PlanError, match="sampler settings"):
        map_prior(load_as_example(), draws=1)
    with pytest.raises(PlanError, match="predictive_per_draw"):
        map_prior(load_as_example(), predictive_per_draw=0)


@pytest.mark.slow
def test_convergence_gate_refuses_or_flags_a_short_run():
    short = dict(seed=3, chains=2, draws=60, tune=60, k_max=2)
    with pytest.raises(ConvergenceError, match="refusing the MAP prior"):
        map_prior(load_as_example(), **short)
    with pytest.warns(BayesBlinaWarning, match="FAILED the convergence gate"):
        res = map_prior(load_as_example(), allow_unconverged=True, **short)
    assert res.converged is False and not res.verdict.passed
    assert isinstance(res.mixture, BetaMixture) and res.samples.size == 2 * 60 * 2
    s = res.summary()
    assert s["quantity"].tolist() == ["tau", "MAP (samples)", "MAP (mixture)"]
    assert np.isfinite(s.loc[2, "ess_moment"])
