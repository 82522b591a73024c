"""The dose-toxicity family (BLRM), its deterministic quadrature and escalation with overdose control.

References that do not come from the package itself:

* an independent deterministic integrator (``scipy.integrate.dblquad`` on the unnormalised
  posterior) for the interval probabilities of the quadrature;
* a one-parameter case in closed form (beta known): the posterior of the DLT rate at d_ref by
  ``scipy.integrate.quad``;
* MCMC (nutpie) on the bundled pediatric cohorts against the quadrature, within Monte Carlo error;
* recovery of a dose-toxicity curve away from the prior's centre, from a generator written here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import integrate, special, stats

from bayes_blina.cli import main
from bayes_blina.data import read_dataset
from bayes_blina.data.dataset import Dataset
from bayes_blina.data.schema import validate_dataset
from bayes_blina.errors import BayesBlinaError, DataValidationError, SpecError
from bayes_blina.families import DoseToxicityModel
from bayes_blina.safety import EwocRule, escalate, escalation_table, recommend
from bayes_blina.safety.quadrature import grid_posterior

PEDIATRIC = {"dose": [5.0, 15.0, 30.0, 15.0], "n": [5, 7, 5, 6], "dlt": [0, 1, 2, 1]}


def dlt_dataset(dose, n, dlt, **extra) -> Dataset:
    raw = pd.DataFrame({"dose": [str(d) for d in dose], "n": [str(v) for v in n], "dlt": [str(v) for v in dlt],
                        **{k: [str(x) for x in v] for k, v in extra.items()}})
    return validate_dataset({"dlt": raw}, name="dlt-test", origin="test")


class FitLike:
    """What :func:`escalate` needs of a fit for the quadrature: spec, family and prepared data."""

    def __init__(self, family, prepared):
        from bayes_blina.spec import load_spec

        self.spec, self.family, self.prepared = load_spec("dose-toxicity"), family, prepared


def quadrature_table(family, ds, doses, rule=EwocRule(), size=401):
    return escalate(FitLike(family, family.prepare(ds)), doses, rule, grid_size=size).table


# -- data ----------------------------------------------------------------------------------------

def test_bundled_escalation_cohorts_and_the_step_regimen_rule():
    ds = read_dataset("vonstackelberg2016-escalation")
    first = DoseToxicityModel().prepare(ds)
    highest = DoseToxicityModel({"step_dose": "highest"}).prepare(ds)
    assert first.arrays["dose"].tolist() == [5.0, 15.0, 30.0, 15.0]
    assert highest.arrays["dose"].tolist() == [5.0, 15.0, 30.0, 30.0]
    assert first.arrays["n"].sum() == 23 and first.arrays["dlt"].sum() == 4  # the paper's four DLTs
    assert first.data_use["placed"] == [{"cohort": "cohort 4", "regimen": "15-30", "dose": 15.0, "rule": "first"}]
    assert np.allclose(first.arrays["log_dose_ratio"], np.log(first.arrays["dose"] / 15.0))


def test_dlt_folder_is_read_and_bad_rows_are_named(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "dlt.csv").write_text("dose,n,dlt\n5,3,0\n10,3,1\n")
    ds = read_dataset(good)
    assert ds.dlt["dose"].tolist() == [5.0, 10.0] and ds.dlt["dlt"].tolist() == [0, 1]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dlt.csv").write_text("dose,n,dlt\n5,3,0\n0,3,1\n10,3,4\n,3,0\n")
    with pytest.raises(DataValidationError) as err:
        read_dataset(bad)
    text = str(err.value)
    assert "dlt.csv, column 'dose', row 2: dose must be > 0" in text
    assert "dlt.csv, column 'dlt', row 3: dlt must be <= n" in text
    assert "dlt.csv, column 'dose', row 4: each row needs a dose (ug/m2/day) or a regimen" in text


def test_missing_table_strata_and_bad_prior_options_are_refused():
    with pytest.raises(DataValidationError, match="needs a dlt table.*vonstackelberg2016-escalation"):
        DoseToxicityModel().prepare(Dataset(name="empty"))
    two = dlt_dataset([5, 5], [3, 3], [0, 1], stratum=["<2", "2-6"])
    with pytest.raises(DataValidationError, match="2 stratum values.*pool_strata"):
        DoseToxicityModel().prepare(two)
    pooled = DoseToxicityModel({"pool_strata": True}).prepare(two)
    assert pooled.data_use["pooled"] == {"stratum": ["2-6", "<2"]}
    with pytest.raises(SpecError, match="needs Normal priors"):
        DoseToxicityModel({"prior_correlation": 0.5}, {"log_beta": {"dist": "HalfNormal", "sigma": 1.0}})
    with pytest.raises(SpecError, match="reference_dose"):
        DoseToxicityModel({"reference_dose": 0})


# -- quadrature against independent integrators ---------------------------------------------------

@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_quadrature_interval_probabilities_match_an_independent_integrator(rho):
    family = DoseToxicityModel({"prior_correlation": rho})
    ds = read_dataset("vonstackelberg2016-escalation")
    prepared = family.prepare(ds)
    table = quadrature_table(family, ds, [15.0, 30.0])
    x30 = np.log(30.0 / 15.0)

    def dens(la, lb):  # dblquad: inner variable (log_alpha) first
        return np.exp(family.log_posterior(np.array(la), np.array(lb), prepared))

    opts = {"epsabs": 1e-10, "epsrel": 1e-7}
    total = integrate.dblquad(dens, -6, 5, -10, 8, **opts)[0]
    # P(pi(30) >= 0.33) = P(log_alpha >= logit(0.33) - exp(log_beta) * x30)
    over = integrate.dblquad(dens, -6, 5, lambda lb: special.logit(0.33) - np.exp(lb) * x30, 8, **opts)[0] / total
    under15 = integrate.dblquad(dens, -6, 5, -10, special.logit(0.16), **opts)[0] / total
    assert table["p_overdose"].iloc[1] == pytest.approx(over, abs=2e-4)
    assert table["p_underdose"].iloc[0] == pytest.approx(under15, abs=2e-4)
    assert np.allclose(table["p_underdose"] + table["p_target"] + table["p_overdose"], 1.0)


def test_quadrature_with_a_known_slope_matches_the_one_dimensional_posterior():
    # log_beta ~ Normal(0, 1e-4): beta = 1 known; the DLT rate at d_ref has a logistic-normal prior
    family = DoseToxicityModel(priors={"log_alpha": {"dist": "Normal", "mu": -1.0, "sigma": 1.5},
                                       "log_beta": {"dist": "Normal", "mu": 0.0, "sigma": 1e-4}})
    ds = dlt_dataset([15.0], [9], [3])
    table = quadrature_table(family, ds, [15.0])

    def post(a):
        return stats.norm(-1.0, 1.5).pdf(a) * stats.binom.pmf(3, 9, special.expit(a))

    z = integrate.quad(post, -15, 15, epsabs=1e-14)[0]
    mean = integrate.quad(lambda a: special.expit(a) * post(a), -15, 15, epsabs=1e-14)[0] / z
    target = integrate.quad(post, special.logit(0.16), special.logit(0.33), epsabs=1e-14)[0] / z
    assert table["p_dlt_mean"].iloc[0] == pytest.approx(mean, abs=1e-4)
    assert table["p_target"].iloc[0] == pytest.approx(target, abs=1e-4)


def test_quadrature_converges_with_the_grid():
    family = DoseToxicityModel()
    ds = read_dataset("vonstackelberg2016-escalation")
    cols = ["p_dlt_mean", "p_dlt_lower", "p_dlt_upper", "p_underdose", "p_target", "p_overdose"]
    coarse = quadrature_table(family, ds, [5, 10, 15, 20, 30], size=201)[cols].to_numpy()
    default = quadrature_table(family, ds, [5, 10, 15, 20, 30])[cols].to_numpy()
    fine = quadrature_table(family, ds, [5, 10, 15, 20, 30], size=1601)[cols].to_numpy()
    err_default, err_coarse = np.abs(default - fine).max(), np.abs(coarse - fine).max()
    assert err_default < 3e-4  # probabilities to the 4th decimal at the default grid
    assert err_coarse > 2.5 * err_default  # second order: halving the step divides the error by about 4


# -- EWOC ------------------------------------------------------------------------------------------

def test_ewoc_rule_and_recommendation():
    p = np.array([[0.05, 0.20, 0.40], [0.10, 0.30, 0.50], [0.12, 0.25, 0.20], [0.02, 0.40, 0.60]])
    t = escalation_table(p, [1.0, 2.0, 4.0])
    assert t["p_overdose"].tolist() == [0.0, 0.25, 0.75]
    assert t["ewoc_ok"].tolist() == [True, False, False]  # P(overdose) must be *below* 0.25
    assert recommend(t) == 1.0
    loose = EwocRule(max_overdose=0.3)
    t = escalation_table(p, [1.0, 2.0, 4.0], loose)
    assert recommend(t, loose) == 2.0 and recommend(t, loose, current_dose=1.0) == 2.0
    assert recommend(t, loose, current_dose=0.4) is None  # 1.0 is more than 2 x 0.4
    assert recommend(escalation_table(np.full((3, 1), 0.5), [1.0])) is None  # nothing allowed: stop


# -- MCMC, recovery, CLI ---------------------------------------------------------------------------

@pytest.mark.slow
def test_mcmc_agrees_with_quadrature_on_the_pediatric_cohorts():
    from bayes_blina.inference import fit

    res = fit("dose-toxicity", read_dataset("vonstackelberg2016-escalation"))
    assert res.verdict.passed
    doses = [5, 10, 15, 20, 30]
    q = escalate(res, doses).table
    m = escalate(res, doses, method="mcmc").table
    n_eff = res.verdict.min_ess_bulk
    for col in ("p_underdose", "p_target", "p_overdose"):
        se = np.sqrt(np.maximum(q[col] * (1 - q[col]), 1e-4) / n_eff)
        assert np.all(np.abs(q[col] - m[col]) < 4 * se + 1e-3), (col, q[col].tolist(), m[col].tolist())
    # the trial's own conclusion: 30 overdoses, 15 is allowed (MTD 15 by the rolling six)
    assert q.set_index("dose").loc[30.0, "ewoc_ok"] == False  # noqa: E712
    assert bool(q.set_index("dose").loc[15.0, "ewoc_ok"])


def test_recovery_of_a_dose_toxicity_curve_away_from_the_prior_centre():
    # truth: P(DLT at 15) = 0.12 (log_alpha = -2.0), beta = 2.5 (log_beta = 0.92); prior centres 0 and 0
    rng = np.random.default_rng(20261207)
    doses = np.array([2.0, 5.0, 10.0, 15.0, 30.0, 60.0])
    true_p = special.expit(-2.0 + 2.5 * np.log(doses / 15.0))
    n = np.full(len(doses), 150)
    dlt = rng.binomial(n, true_p)
    family = DoseToxicityModel()
    prepared = family.prepare(dlt_dataset(doses, n, dlt))
    post = grid_posterior(lambda a, b: family.log_posterior(a, b, prepared), np.zeros(2))
    la, lb = post.nodes[:, 0], post.nodes[:, 1]
    for values, truth in ((la, -2.0), (lb, np.log(2.5))):
        lo, hi = post.quantile(values[:, None], [0.025, 0.975])[:, 0]
        sd = np.sqrt(post.expect(values ** 2) - post.expect(values) ** 2)
        assert lo < truth < hi
        assert abs(post.expect(values) - truth) < 0.25 and sd < 0.25  # 900 patients: bias within 0.25
    table = escalation_table(family.p_dlt(la, lb, doses), doses, weights=post.weights)
    inside = (table["p_dlt_lower"] < true_p) & (true_p < table["p_dlt_upper"])
    assert inside.all(), table.assign(truth=true_p)


def test_escalate_command_writes_the_table_and_refuses_other_fits(tmp_path, monkeypatch):
    from bayes_blina.inference import fit
    from bayes_blina.store import save_fit

    res = fit("dose-toxicity", read_dataset("vonstackelberg2016-escalation"), draws=500, tune=500)
    path = save_fit(res, tmp_path / "dt")
    out = tmp_path / "table.csv"
    r = CliRunner().invoke(main, ["escalate", str(path), "--doses", "5,15,30", "--current-dose", "15",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    t = pd.read_csv(out)
    assert t.columns.tolist() == ["dose", "p_dlt_mean", "p_dlt_lower", "p_dlt_upper", "p_underdose", "p_target",
                                  "p_overdose", "ewoc_ok"]
    assert t["dose"].tolist() == [5, 15, 30] and t["ewoc_ok"].tolist() == [True, True, False]
    assert "recommended next dose (at most 2 x 15): 15 ug/m2/day" in r.stderr
    r = CliRunner().invoke(main, ["escalate", str(path), "--doses", "5,-1"])
    assert r.exit_code == 2 and "doses must be positive" in r.output
    r = CliRunner().invoke(main, ["escalate", str(path), "--doses", "5", "--out", str(tmp_path / "t.txt")])
    assert r.exit_code == 2 and not (tmp_path / "t.txt").exists()

    class Other:
        family_name, path = "response", "fits/r"

    monkeypatch.setattr("bayes_blina.store.load_fit", lambda p, **k: Other())
    r = CliRunner().invoke(main, ["escalate", "fits/r", "--doses", "5"])
    assert r.exit_code == 2 and "escalation needs a fit of the 'dose-toxicity' family" in r.stderr
    with pytest.raises(BayesBlinaError, match="doses must be positive"):
        escalate(res, [0.0])


@pytest.mark.parametrize("module", ["bayes_blina.families.dose_toxicity", "bayes_blina.safety.quadrature",
                                    "bayes_blina.safety.escalation", "bayes_blina.data.registry"])
def test_docstring_examples_run(module):
    import doctest
    from importlib import import_module

    res = doctest.testmod(import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0, res


def test_validate_dlt_docstring_example_runs():
    import doctest

    from bayes_blina.data import schema

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    (test,) = [t for t in finder.find(schema) if t.name.endswith("validate_dlt")]
    assert runner.run(test).failed == 0
