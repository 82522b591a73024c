"""The joint model, with ``models/joint.toml`` as shipped, on a cohort it did not simulate (slow: MCMC).

The cohort comes from ``tests/independent_joint.py`` (plain numpy; other T-cell and IL-10 curve
shapes than the package's, a dose-dependent first IL-10 peak, off-treatment visits after day 29).
``scripts/joint_independent.py`` runs three such cohorts; docs/joint-model.md has the table.

Criteria (stated before the run): no divergent transition; the 400 off-treatment CD3 rows are left
out as after the biomarker window; both odds ratios' posterior medians within one standard error
(on the log scale) of the oracle's (logistic regression of the simulated CR on the *true*
biomarkers), their truths inside the 90% intervals, and R-hat of both coefficients < 1.01.
The second test requires the whole-model gate to pass.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from bayes_blina.data.schema import validate_dataset
from bayes_blina.inference import fit
from bayes_blina.spec import load_spec
from independent_joint import cohort, oracle_odds_ratios

pytestmark = pytest.mark.slow

SEED, DOSE_EXPONENT, N = 303, 0.8, 200


@pytest.fixture(scope="module")
def independent_fit():
    tables, truth = cohort(N, SEED, DOSE_EXPONENT)
    return fit(load_spec("joint"), validate_dataset(tables, name="independent")), truth


def test_odds_ratios_track_the_oracle_on_an_independent_cohort(independent_fit):
    import arviz as az

    res, truth = independent_fit
    assert res.verdict.n_divergent == 0, res.verdict
    left = {r["reason"]: r["n_rows"] for r in res.prepared.data_use["tcell"]["rows_left_out"]}
    assert left["after the biomarker window (day 29 from the first infusion start)"] == 2 * N
    oracle = oracle_odds_ratios(truth["patients"])
    post = res.idata.posterior
    for b in ("tcell_expansion", "il10_peak"):
        x = post[f"or_{b}"].values.ravel()
        lo, med, hi = np.quantile(x, [0.05, 0.5, 0.95])
        o, se = oracle[f"or_{b}"]
        assert abs(math.log(med) - math.log(o)) < se, (b, med, o, se)
        assert lo <= truth[f"or_{b}"] <= hi, (b, lo, hi)
        assert float(az.rhat(post[f"beta_{b}"]).max()) < 1.01


def test_the_shipped_spec_passes_its_own_gate_on_an_independent_cohort(independent_fit):
    """Issue 15: the whole-model gate (R-hat < 1.01, bulk and tail ESS >= 400 for every quantity,
    no divergence) passes with ``models/joint.toml`` as shipped. Before session 12 it failed on
    such cohorts (R-hat 1.008-1.016 and bulk ESS 270-380 of the T-cell dip's SD and shape and of
    the IL-10 event effects; docs/joint-model.md says what changed)."""
    res, _ = independent_fit
    assert res.verdict.passed, res.verdict
