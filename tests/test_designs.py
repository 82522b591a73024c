"""Dose-escalation designs and their simulated operating characteristics (issue 18).

References: the published BOIN boundaries (Liu & Yuan 2015), the exact operating characteristics
of the 3+3 rule (enumerated here in closed form), and invariance of the simulation to dask.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_blina.errors import BayesBlinaError
from bayes_blina.safety.designs import BOIN, CRM, BlrmEwoc, ThreePlusThree, boin_boundaries, isotonic
from bayes_blina.safety.trials import simulate_designs

SCENARIO = np.array([0.05, 0.10, 0.20, 0.35, 0.50])


@pytest.mark.parametrize("target, published", [(0.2, (0.157, 0.238)), (0.25, (0.197, 0.298)),
                                               (0.3, (0.236, 0.358))])
def test_boin_boundaries_match_the_published_ones(target, published):
    lam_e, lam_d = boin_boundaries(target)
    assert abs(lam_e - published[0]) < 1e-3 and abs(lam_d - published[1]) < 1e-3


def test_isotonic_regression_pools_violators():
    out = isotonic(np.array([0.3, 0.1, 0.2, 0.6, 0.4]), np.array([1.0, 1.0, 2.0, 1.0, 3.0]))
    assert np.allclose(out, [0.2, 0.2, 0.2, 0.45, 0.45])
    assert np.all(np.diff(out) >= 0)


def exact_three_plus_three(p: np.ndarray) -> np.ndarray:
    """P(select level k) for k = -1 (none), 0, ..., K-1 under the 3+3 rule of ThreePlusThree."""
    q = (1 - p) ** 3 + 3 * p * (1 - p) ** 2 * (1 - p) ** 3  # P(escalate past a level)
    out = [1 - q[0]]
    for k in range(len(p)):
        reach = np.prod(q[: k + 1])
        out.append(reach * (1 - q[k + 1]) if k + 1 < len(p) else reach)
    return np.array(out)


def test_three_plus_three_simulation_matches_its_closed_form():
    trials = 4000
    oc = simulate_designs([ThreePlusThree()], {"s": SCENARIO}, trials=trials, seed=3, workers=0).table.iloc[0]
    exact = exact_three_plus_three(SCENARIO)
    simulated = np.array([oc["p_select_none"]] + [oc[f"p_select_{k}"] for k in range(len(SCENARIO))])
    se = np.sqrt(exact * (1 - exact) / trials)
    assert np.all(np.abs(simulated - exact) < 4 * se + 1e-9), (simulated, exact)
    assert abs(sum(exact) - 1) < 1e-12


def test_designs_behave_on_clear_scenarios():
    safe_then_toxic = {"target at level 2": [0.02, 0.05, 0.25, 0.60, 0.80], "all toxic": [0.60, 0.70, 0.80, 0.85, 0.90]}
    designs = [ThreePlusThree(), BOIN(target=0.25, max_n=24), CRM(target=0.25, max_n=24),
               BlrmEwoc(doses=(5.0, 10.0, 15.0, 20.0, 30.0), reference_dose=15.0, max_n=24)]
    oc = simulate_designs(designs, safe_then_toxic, trials=40, seed=5, workers=0).table.set_index(["scenario", "design"])
    for d in ("3+3", "BOIN", "BLRM-EWOC"):
        assert oc.loc[("all toxic", d), "p_select_none"] >= 0.75, d  # these designs can stop for safety
        assert oc.loc[("target at level 2", d), "p_select_target"] >= 0.5, d
    assert oc.loc[("target at level 2", "CRM"), "p_select_2"] >= 0.5
    assert oc.loc[("target at level 2", "BOIN"), "mean_n"] == 24  # no early stop when doses are safe


def test_results_do_not_depend_on_dask_or_the_chunking():
    designs = [ThreePlusThree(), BOIN(target=0.25, max_n=18)]
    here = simulate_designs(designs, {"s": SCENARIO}, trials=30, seed=9, workers=0, chunk=30)
    dask = simulate_designs(designs, {"s": SCENARIO}, trials=30, seed=9, workers=2, chunk=7)
    assert here.trials.drop(columns=[]).equals(dask.trials)
    assert here.table.equals(dask.table)


def test_bad_scenarios_and_designs_are_refused():
    with pytest.raises(BayesBlinaError, match="non-decreasing"):
        simulate_designs([ThreePlusThree()], {"bad": [0.3, 0.2]}, trials=5, workers=0)
    with pytest.raises(BayesBlinaError, match="same number of dose levels"):
        simulate_designs([ThreePlusThree()], {"a": [0.1, 0.2], "b": [0.1, 0.2, 0.3]}, trials=5, workers=0)
    with pytest.raises(BayesBlinaError, match="unique"):
        simulate_designs([BOIN(), BOIN()], {"a": [0.1, 0.2]}, trials=5, workers=0)
    with pytest.raises(BayesBlinaError, match="skeleton has 5 levels"):
        simulate_designs([CRM()], {"a": [0.1, 0.2]}, trials=1, workers=0)


def test_crm_posterior_matches_direct_integration():
    crm = CRM(target=0.25)
    n, dlt = np.array([3, 3, 3, 0, 0]), np.array([0, 0, 1, 0, 0])
    sk = np.array(crm.skeleton)

    def post(a):
        p = sk ** np.exp(a)
        return stats.norm(0, crm.prior_sd).pdf(a) * np.prod(p ** dlt * (1 - p) ** (n - dlt))

    from scipy import integrate

    z = integrate.quad(post, -10, 10)[0]
    mean2 = integrate.quad(lambda a: sk[2] ** np.exp(a) * post(a), -10, 10)[0] / z
    assert crm.posterior_rates(n, dlt)[2] == pytest.approx(mean2, abs=1e-6)


def test_plan_dose_escalation_command_writes_the_operating_characteristics(tmp_path):
    from click.testing import CliRunner

    from bayes_blina.cli import main
    from bayes_blina.safety.designs import BOIN, ThreePlusThree
    from bayes_blina.safety.trials import simulate_designs

    out = tmp_path / "oc.csv"
    args = ["plan", "dose-escalation", "--doses", "5,15,30", "--scenario", "mid=0.05,0.25,0.5",
            "--scenario", "low=0.02,0.05,0.1", "--designs", "3+3,boin", "--trials", "40", "--seed", "3",
            "--workers", "0", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    got = pd.read_csv(out, comment="#")
    ref = simulate_designs([ThreePlusThree(max_n=30), BOIN(target=0.25)],
                           {"mid": [0.05, 0.25, 0.5], "low": [0.02, 0.05, 0.1]}, trials=40, seed=3, workers=0).table
    assert got[["scenario", "design"]].values.tolist() == ref[["scenario", "design"]].values.tolist()
    np.testing.assert_allclose(got["p_select_target"], ref["p_select_target"], atol=1e-4)
    np.testing.assert_allclose(got["mean_n"], ref["mean_n"], atol=1e-4)
    for bad, message in ((["--scenario", "x=0.1,0.2"], "one rate per dose level"),
                         (["--designs", "mtpi"], "unknown design"),
                         (["--skeleton", "0.3,0.2,0.1"], "increasing rates")):
        r = CliRunner().invoke(main, ["plan", "dose-escalation", "--doses", "5,15,30", "--scenario", "a=0.1,0.2,0.3",
                                      "--trials", "5", "--workers", "0", *bad])
        assert r.exit_code == 2 and message in r.output, (bad, r.output)
