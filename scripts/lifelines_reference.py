"""Reference numbers of a frequentist Weibull and Cox fit of the PBC survival data (lifelines).

Writes ``tests/data/pbcseq/lifelines_weibull_sex.json``, which ``tests/test_survival_reference.py``
compares the survival family with. lifelines is a reference only, never a dependency: it caps
pandas below 3, so it is run in a scratch environment of its own::

    python3.12 -m venv /tmp/lrvenv && /tmp/lrvenv/bin/pip install "lifelines==0.30.3" "pandas<3"
    /tmp/lrvenv/bin/python scripts/lifelines_reference.py

The data: one row per patient of ``tests/data/pbcseq/pbcseq.csv`` (time ``futime`` in months =
days / 30.4375, death the event, transplant censored as in JMbayes2's ``pbc2``), covariate
``male`` (sex ``m``). lifelines' ``WeibullAFTFitter`` is ``log T = log lambda + beta male + W /
rho``; as proportional hazards (the survival family), ``log HR = -rho beta`` and the median of a
woman ``lambda (log 2)^(1 / rho)``; standard errors by the delta method from lifelines' variance
matrix (its parameters are ``lambda_`` on the log scale and ``rho_`` on the log scale).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "pbcseq" / "pbcseq.csv"
OUT = ROOT / "tests" / "data" / "pbcseq" / "lifelines_weibull_sex.json"
DAYS_PER_MONTH = 30.4375


def patients() -> pd.DataFrame:
    d = pd.read_csv(DATA).drop_duplicates("id")
    return pd.DataFrame({"months": d["futime"].to_numpy(float) / DAYS_PER_MONTH,
                         "death": (d["status"] == 2).astype(int).to_numpy(),
                         "male": (d["sex"] == "m").astype(int).to_numpy()})


def main() -> None:
    import lifelines
    from lifelines import CoxPHFitter, WeibullAFTFitter

    df = patients()
    aft = WeibullAFTFitter().fit(df, "months", "death")
    p = aft.params_
    V = aft.variance_matrix_
    b = float(p[("lambda_", "male")])
    log_lam = float(p[("lambda_", "Intercept")])
    log_rho = float(p[("rho_", "Intercept")])
    rho = math.exp(log_rho)
    keys = [("lambda_", "Intercept"), ("lambda_", "male"), ("rho_", "Intercept")]
    cov = V.loc[keys, keys].to_numpy(float)
    # gradients of log HR = -rho b, log median = log_lam + log(log 2) / rho, shape rho
    g_hr = np.array([0.0, -rho, -rho * b])
    g_med = np.array([1.0, 0.0, -math.log(math.log(2.0)) / rho])
    g_shape = np.array([0.0, 0.0, rho])
    cox = CoxPHFitter().fit(df, "months", "death")
    out = {
        "source": "scripts/lifelines_reference.py on tests/data/pbcseq/pbcseq.csv",
        "lifelines": lifelines.__version__,
        "patients": int(len(df)), "deaths": int(df["death"].sum()),
        "weibull_ph": {
            "log_hr_male": -rho * b, "se_log_hr_male": float(math.sqrt(g_hr @ cov @ g_hr)),
            "log_median_months_female": log_lam + math.log(math.log(2.0)) / rho,
            "se_log_median_months_female": float(math.sqrt(g_med @ cov @ g_med)),
            "shape": rho, "se_shape": float(math.sqrt(g_shape @ cov @ g_shape)),
        },
        "cox": {"log_hr_male": float(cox.params_["male"]), "se_log_hr_male": float(cox.standard_errors_["male"])},
    }
    OUT.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
