"""Joint-model cohorts from a generator written outside the package (plain numpy).

Nothing here uses :mod:`bayes_blina.simulate` or the families' curve formulas: the T-cell curve
is a gamma-variate dip plus a logistic expansion (the package's kinetics use an exponential
approach), the IL-10 curve is a Bateman (first-order absorption/elimination) pulse added to the
baseline (the package's pulse is a gamma-type shape multiplying ``1 + A``), the event timing
varies between patients by a log-normal factor of both rate constants. CR follows a logistic
model in the patient's *true* day-29 log2 fold change of CD3, the true log2 IL-10 peak after the
first infusion start over 100 pg/mL, and the blast burden. Every patient is sampled during cycle
1 and at two off-treatment visits (days 36 and 43), which the joint model's biomarker window
(day 29) must leave out.

Used by ``scripts/joint_independent.py`` (the three 200-patient cohorts of docs/joint-model.md)
and ``tests/test_joint_independent.py``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: True values. ``dose_exponent`` of the first-exposure IL-10 peak is set per cohort (0 or 0.8).
TRUTH = {
    "or_tcell_expansion": 2.5,    # CR odds ratio per doubling of the day-29 CD3 fold change
    "or_il10_peak": 1.5,          # per doubling of the IL-10 peak after the first infusion start
    "logit_cr_ref": -0.4,         # blast burden < 50%, fold change 1, IL-10 peak 100 pg/mL
    "blast_high": -0.8,           # log OR of blast burden >= 50%
    "reexposure": -1.5,           # log factor of the IL-10 pulse amplitude at the dose step
}
CD3_TIMES_H = (-1.0, 6.0, 24.0, 72.0, 168.0, 336.0, 504.0, 672.0, 840.0, 1008.0)
IL10_TIMES_H = (-1.0, 2.0, 6.0, 12.0, 24.0, 48.0, 72.0, 168.0, 170.0, 174.0, 180.0, 192.0, 216.0,
                336.0, 672.0)
IL10_LOD = 20.0
STOP_H = 672.0  # end of the cycle-1 infusion (28 days)


def _bateman(t: np.ndarray, ka: float, ke: float) -> np.ndarray:
    """First-order absorption/elimination pulse scaled to a maximum of 1 (0 before ``t = 0``)."""
    tmax = math.log(ka / ke) / (ka - ke)
    peak = math.exp(-ke * tmax) - math.exp(-ka * tmax)
    tt = np.clip(t, 0.0, None)
    return np.where(t > 0, (np.exp(-ke * tt) - np.exp(-ka * tt)) / peak, 0.0)


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cohort(n: int, seed: int, dose_exponent: float) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Tables (subjects, dosing, observations) in the core format and the cohort's truths.

    Parameters
    ----------
    n : int
        Patients (adults; 60% on 5-15 µg/m²/day, 40% on a flat 15).
    seed : int
        Random seed.
    dose_exponent : float
        The first-exposure IL-10 peak scales as ``(dose / 15) ** dose_exponent``.

    Returns
    -------
    tables : dict of str to DataFrame
        For :func:`bayes_blina.data.schema.validate_dataset`.
    truth : dict
        :data:`TRUTH` with ``dose_exponent``, the cohort's CR rate and ``patients`` (each
        patient's true biomarkers, blast burden and response).
    """
    rng = np.random.default_rng(seed)
    regimen = np.where(rng.random(n) < 0.6, "5-15", "15")
    blasts = np.where(rng.random(n) < 0.45, "<50", ">=50")
    # correlated latent: day-29 log fold change of CD3, log IL-10 amplitude (at 15 µg/m²/day)
    z = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.4], [0.4, 1.0]], size=n)
    log_fc = math.log(3.0) + 0.7 * z[:, 0]
    log_amp15 = math.log(400.0) + 0.9 * z[:, 1]
    subj, dosing, obs, latent = [], [], [], []
    ln2 = math.log(2.0)
    for i in range(n):
        sid = f"IND{seed:03d}-{i:04d}"
        first_dose = 5.0 if regimen[i] == "5-15" else 15.0
        if regimen[i] == "5-15":
            dosing += [(sid, 1, 0.0, 168.0, 5.0), (sid, 1, 168.0, STOP_H, 15.0)]
        else:
            dosing.append((sid, 1, 0.0, STOP_H, 15.0))
        # CD3: dip (nadir ~10 h) and logistic expansion reaching log_fc by day 29, then decay off treatment
        b = math.log(300.0) + 0.5 * rng.normal()
        depth = 1.2 * math.exp(0.2 * rng.normal())
        tn = 10.0 * math.exp(0.2 * rng.normal())
        t = np.asarray(CD3_TIMES_H)
        s0, s1 = _logistic(-300.0 / 70.0), _logistic((STOP_H - 300.0) / 70.0)
        s = np.clip((_logistic((np.minimum(t, STOP_H) - 300.0) / 70.0) - s0) / (s1 - s0), 0.0, None)
        tp = np.clip(t, 0.0, None)
        mu = b - depth * (tp / tn) * np.exp(1.0 - tp / tn) + log_fc[i] * s * np.exp(-np.clip(t - STOP_H, 0, None) / 150.0)
        y = np.exp(mu + 0.2 * rng.normal(size=len(t)))
        obs += [(sid, "CD3", ti, yi, "cells/uL", np.nan, "") for ti, yi in zip(t, y)]
        # IL-10: baseline + Bateman pulses at the first start and at the step
        base = math.exp(math.log(5.0) + 0.5 * rng.normal())
        f = math.exp(0.2 * rng.normal())
        ka, ke = 0.15 * f, 0.05 * f
        amp1 = math.exp(log_amp15[i]) * (first_dose / 15.0) ** dose_exponent
        t = np.asarray(IL10_TIMES_H)
        conc = base + amp1 * _bateman(t, ka, ke)
        if regimen[i] == "5-15":
            amp2 = math.exp(log_amp15[i]) * math.exp(TRUTH["reexposure"])
            conc = conc + amp2 * _bateman(t - 168.0, ka, ke)
        y = np.exp(np.log(conc) + 0.3 * rng.normal(size=len(t)))
        for ti, yi in zip(t, y):
            below = yi < IL10_LOD
            obs.append((sid, "IL10", ti, np.nan if below else yi, "pg/mL", IL10_LOD, "LOD" if below else ""))
        # CR from the true biomarkers
        peak1 = base + amp1
        eta = (TRUTH["logit_cr_ref"] + math.log(TRUTH["or_tcell_expansion"]) * log_fc[i] / ln2
               + math.log(TRUTH["or_il10_peak"]) * math.log2(peak1 / 100.0)
               + (TRUTH["blast_high"] if blasts[i] == ">=50" else 0.0))
        cr = int(rng.random() < 1.0 / (1.0 + math.exp(-eta)))
        latent.append({"subject_id": sid, "log2_expansion": log_fc[i] / ln2,
                       "log2_il10_peak": math.log2(peak1 / 100.0), "blast_high": float(blasts[i] == ">=50"),
                       "response": cr})
        subj.append({"subject_id": sid, "study": "IND", "regimen": regimen[i], "age_group": "adult",
                     "blast_burden": blasts[i], "response": cr})
    tables = {
        "subjects": pd.DataFrame(subj),
        "dosing": pd.DataFrame(dosing, columns=["subject_id", "cycle", "start_h", "end_h", "dose"]).assign(
            dose_unit="ug/m2/day"),
        "observations": pd.DataFrame(obs, columns=["subject_id", "analyte", "time_h", "value", "unit", "lod", "below"]),
    }
    truth = {**TRUTH, "dose_exponent": dose_exponent, "cr_rate": float(np.mean([s["response"] for s in subj])),
             "patients": pd.DataFrame(latent)}
    return tables, truth


def oracle_odds_ratios(patients: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Maximum-likelihood logistic regression of the simulated CR on the *true* biomarkers and the
    blast burden: what the realised cohort says when the biomarkers are known exactly. Returns
    ``{name: (odds ratio, standard error of its log)}``."""
    from scipy import optimize

    X = np.column_stack([np.ones(len(patients)), patients["log2_expansion"], patients["log2_il10_peak"],
                         patients["blast_high"]])
    y = patients["response"].to_numpy(float)

    def nll(b):
        eta = X @ b
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    b = optimize.minimize(nll, np.zeros(X.shape[1]), method="BFGS").x
    p = 1.0 / (1.0 + np.exp(-(X @ b)))
    cov = np.linalg.inv(X.T @ (X * (p * (1 - p))[:, None]))
    se = np.sqrt(np.diag(cov))
    return {"or_tcell_expansion": (float(np.exp(b[1])), float(se[1])),
            "or_il10_peak": (float(np.exp(b[2])), float(se[2]))}
