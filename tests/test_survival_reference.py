"""The survival family on public reference data: the Mayo Clinic PBC trial (R survival's ``pbcseq``).

One row per patient (``tests/data/pbcseq``: time to death in months, transplant censored, as
JMbayes2's ``pbc2``), the Weibull survival model with sex as the covariate, against a frequentist
Weibull proportional-hazards fit: maximum likelihood computed here (``scipy.optimize``) and
lifelines' ``WeibullAFTFitter`` and ``CoxPHFitter`` (numbers stored by
``scripts/lifelines_reference.py``: lifelines caps pandas below 3, so it is not installed beside
the package). With 140 deaths and flat-ish priors the posterior medians must agree with the
maximum-likelihood estimates within a fifth of their standard errors, as rstanarm tests its
survival models against ``survival``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_blina.data.schema import validate_dataset

HERE = Path(__file__).parent / "data" / "pbcseq"
REFERENCE = json.loads((HERE / "lifelines_weibull_sex.json").read_text())


def pbc_dataset():
    d = pd.read_csv(HERE / "pbcseq.csv").drop_duplicates("id")
    # regimen is required by the data format (a dose label); it plays no part in this model
    subjects = pd.DataFrame({"subject_id": d["id"].astype(str), "study": "Mayo PBC", "regimen": "1",
                             "os_days": d["futime"].astype(float), "os_event": (d["status"] == 2).astype(int),
                             "male": (d["sex"] == "m").astype(int)})
    return validate_dataset({"subjects": subjects.astype(str)}, name="pbc", origin="tests/data/pbcseq/pbcseq.csv")


def test_the_reference_data_and_the_stored_lifelines_numbers_agree_with_a_fresh_mle():
    from test_survival import weibull_mle

    from bayes_blina.families import SurvivalModel

    ds = pbc_dataset()
    fam = SurvivalModel({"numeric_covariates": {"male": {"ref": 0.0, "transform": "identity"}}})
    A = fam.prepare(ds).arrays
    assert len(A["time"]) == REFERENCE["patients"] == 312 and A["event"].sum() == REFERENCE["deaths"] == 140
    est, se = weibull_mle(A["time"], A["event"], A["x_male"])
    w = REFERENCE["weibull_ph"]
    assert est[0] == pytest.approx(w["log_median_months_female"], abs=1e-3)
    assert math.exp(est[1]) == pytest.approx(w["shape"], abs=1e-3)
    assert est[2] == pytest.approx(w["log_hr_male"], abs=1e-3)
    assert se[2] == pytest.approx(w["se_log_hr_male"], rel=0.02)


@pytest.mark.slow
def test_weibull_survival_on_pbc_agrees_with_the_frequentist_fits():
    from bayes_blina.inference import fit
    from bayes_blina.spec import load_spec

    spec = load_spec("survival")
    # flat-ish priors, so that the comparison is of the likelihoods (with the defaults, Normal(0, 1)
    # on the log hazard ratio, the posterior mean is pulled 0.26 SE towards 0: 36 men)
    spec = spec.model_copy(update={
        "options": {**spec.options, "numeric_covariates": {"male": {"ref": 0.0, "transform": "identity"}}},
        "priors": {**spec.priors, "log_hr_male": {"dist": "Normal", "mu": 0.0, "sigma": 10.0},
                   "log_median": {"dist": "Normal", "mu": 2.5, "sigma": 10.0}}})
    res = fit(spec, pbc_dataset(), chains=2, draws=2000, tune=1000, seed=7)
    assert res.verdict.passed, res.verdict
    post = res.idata.posterior
    w = REFERENCE["weibull_ph"]
    # posterior medians: the likelihood of the hazard ratio is skewed (few men), its mode is the MLE
    got = {"log_hr_male": float(post["log_hr_male"].median()),
           "log_median_months_female": float(np.log(post["median_months"]).median()),
           "shape": float(post["shape"].median())}
    for k, v in got.items():
        assert abs(v - w[k]) < 0.2 * w[f"se_{k}"], (k, v, w[k], w[f"se_{k}"])
    # and the posterior SD of the log hazard ratio is the frequentist SE (within 10%)
    assert float(post["log_hr_male"].std()) == pytest.approx(w["se_log_hr_male"], rel=0.1)
    cox = REFERENCE["cox"]
    assert abs(got["log_hr_male"] - cox["log_hr_male"]) < 0.2 * cox["se_log_hr_male"]
