"""Planning a dosing schedule: predicted cytokine peaks of new patients under candidate regimens.

From a fitted pulse model (e.g. ``models/cytokine.toml`` on the adult cohort), the cytokine
course of a **new, randomly drawn patient** under a candidate schedule (``'15'`` flat, ``'5-15'``,
``'10-30'``, ``'5-15-30'``; see :func:`bayes_blina.events.standard_schedule`) follows from the
posterior: for each retained posterior draw, ``patients_per_draw`` patients are drawn from the
population distribution of patient effects (log baseline ``N(log_baseline_mu, sd_log_baseline)``,
log amplitude ``N(log_amp_mu, Sigma_a)`` with ``Sigma_a = diag(sd_log_amp) corr_amp
diag(sd_log_amp)``; covariate effects at their reference level; with patient-level timing in
the fit, log time to peak ``N(log_tpeak, sd_log_tpeak)``), and the noise-free curve is
evaluated on an hourly grid over the window. Each virtual patient's **peak** is the maximum of that
curve; its predictive distribution mixes parameter uncertainty and between-patient variation.

Doses outside the fitted range (e.g. 30 µg/m²/day when the fit saw only 5 and 15) are extrapolated
along the model's log-linear dose effect ``gamma_dose``; the result records the fitted dose range
so that a user sees when this happens.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError

__all__ = ["RegimenPrediction", "predict_regimen_peaks"]


@dataclass
class RegimenPrediction:
    """Result of :func:`predict_regimen_peaks`.

    Attributes
    ----------
    table : DataFrame
        One row per (regimen, analyte): predictive median and quantiles of the peak, mean log peak,
        and ``p_exceed`` with its threshold when one was given.
    peaks : dict
        ``(regimen, analyte) -> ndarray`` of the virtual patients' peaks (draw-major order).
    fitted_doses : list of float
        Distinct doses (µg/m²/day) in the fitted data's events, for extrapolation checks.
    """

    table: pd.DataFrame
    peaks: dict[tuple[str, str], np.ndarray]
    fitted_doses: list[float]


def _population_draws(post, analytes: list[str], n_draws: int, patients: int, rng: np.random.Generator):
    """Posterior draws (subsampled) and virtual patients' effects, shaped (draw, patient, 1, analyte)."""
    stacked = as_dataset(post).stack(sample=("chain", "draw")).transpose("sample", ...)
    fitted = [str(a) for a in stacked["log_amp_mu"].coords["analyte"].values]
    missing = [a for a in analytes if a not in fitted]
    if missing:
        raise BayesBlinaError(f"analytes {missing} are not in the fit (it has {fitted})")
    order = [fitted.index(a) for a in analytes]
    n_total = stacked.sizes["sample"]
    pick = np.sort(rng.choice(n_total, size=min(n_draws, n_total), replace=False))
    val = lambda k: stacked[k].values[pick][:, order]  # noqa: E731
    lam, lbm, sdb, sda = val("log_amp_mu"), val("log_baseline_mu"), val("sd_log_baseline"), val("sd_log_amp")
    s, k = len(pick), len(order)
    if "corr_amp" in stacked:
        corr = stacked["corr_amp"].values[pick][:, order][:, :, order]
    else:
        corr = np.broadcast_to(np.eye(k), (s, k, k))
    chol = np.linalg.cholesky(corr + 1e-12 * np.eye(k))  # (s, k, k)
    z = rng.standard_normal((s, patients, k))
    dev_a = np.einsum("sij,spj->spi", chol, z) * sda[:, None, :]
    dev_b = rng.standard_normal((s, patients, k)) * sdb[:, None, :]
    draws = {
        "log_amp": (lam[:, None, :] + dev_a)[:, :, None, :],
        "log_baseline": (lbm[:, None, :] + dev_b)[:, :, None, :],
    }
    for name in ("gamma_dose", "delta_reexposure", "kappa_cycle", "log_tpeak", "k_shape"):
        draws[name] = val(name)[:, None, :]
    if "sd_log_tpeak" in stacked:  # patient-level timing: each virtual patient draws its own
        v = rng.standard_normal((s, patients, k))
        draws["log_tpeak_i"] = (val("log_tpeak")[:, None, :] + val("sd_log_tpeak")[:, None, :] * v)[:, :, None, :]
    return draws


def predict_regimen_peaks(stored, regimens: Sequence[str], *, analytes: Sequence[str] | None = None,
                          window_h: float = 672.0, step_h: float = 1.0, n_draws: int = 400,
                          patients_per_draw: int = 25, thresholds: Mapping[str, float] | None = None,
                          quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
                          seed: int = 0) -> RegimenPrediction:
    """Predictive distribution of new patients' cytokine peaks under candidate regimens.

    Parameters
    ----------
    stored : Fit
        A fit of the ``pulse`` family (:func:`bayes_blina.store.load_fit`).
    regimens : sequence of str
        Regimen labels for :func:`bayes_blina.events.standard_schedule` (``'15'``, ``'5-15'``,
        ``'10-30'``...); steps on day 8 (and 15 for a third level).
    analytes : sequence of str, optional
        Analytes (default: all of the fit).
    window_h : float
        Peaks are taken over ``(0, window_h]`` hours after the first infusion start (default: cycle 1).
    step_h : float
        Grid spacing of the curve, hours.
    n_draws : int
        Posterior draws used (a random subset when the fit has more).
    patients_per_draw : int
        Virtual patients per posterior draw.
    thresholds : mapping, optional
        Analyte -> concentration (canonical unit); adds ``P(peak > threshold)`` for that analyte.
    quantiles : sequence of float
        Quantiles of the peak reported.
    seed : int
        Seed of the subsampling and of the virtual patients.

    Returns
    -------
    RegimenPrediction

    Raises
    ------
    BayesBlinaError
        If the fit is not a pulse fit, an analyte is not in the fit, or a regimen label is invalid.
    """
    from bayes_blina.data.analytes import analyte_info
    from bayes_blina.data.dataset import Dataset
    from bayes_blina.events import standard_schedule
    from bayes_blina.families import PulseModel, get_family, require_family
    from bayes_blina.families.pulse import pulse_log_mu

    require_family(stored.family_name, PulseModel, "regimen planning", fit=stored)
    if window_h <= 0 or step_h <= 0 or step_h > window_h:
        raise BayesBlinaError(f"need 0 < step_h <= window_h (found step_h={step_h}, window_h={window_h})")
    opts = dict(stored.options)
    analytes = list(analytes) if analytes else list(opts["analytes"])
    thresholds = dict(thresholds or {})
    unknown = [a for a in thresholds if a not in analytes]
    if unknown:
        raise BayesBlinaError(f"thresholds given for analytes not predicted: {unknown} (predicting {analytes})")
    rng = np.random.default_rng(seed)
    draws = _population_draws(stored.idata.posterior, analytes, n_draws, patients_per_draw, rng)
    cdata = getattr(stored.idata, "constant_data", {})
    if "event_dose" in cdata:
        fitted_doses = sorted({float(d) for d in np.round(np.asarray(cdata["event_dose"].values, dtype=float), 6)})
    elif "event_log_dose" in cdata:  # fits stored before event_dose was recorded (exposure = "dose")
        fitted_doses = sorted({float(d) for d in np.round(np.exp(
            np.asarray(cdata["event_log_dose"].values, dtype=float)) * 15.0, 6)})
    else:
        fitted_doses = []

    times = np.arange(step_h, window_h + step_h / 2, step_h)
    fam = get_family("pulse")({**opts, "analytes": analytes, "censoring": "m3",
                               "relative_to_baseline": False, "covariates": []})
    rows, peaks = [], {}
    q = np.asarray(quantiles, dtype=float)
    for label in regimens:
        try:
            dosing = standard_schedule(label, n_cycles=max(1, int(np.ceil(window_h / 1008.0))))
        except ValueError as e:
            raise BayesBlinaError(f"regimen {label!r}: {e}") from None
        dosing = dosing.assign(subject_id="virtual")
        grid = pd.DataFrame([("virtual", a, float(t)) for a in analytes for t in times],
                            columns=["subject_id", "analyte", "time_h"])
        grid = grid.assign(value=1.0, unit=[analyte_info(a).unit for a in grid["analyte"]], below="")
        subjects = pd.DataFrame({"subject_id": ["virtual"], "regimen": [label]})
        prepared = fam.prepare(Dataset(subjects=subjects, dosing=dosing, observations=grid))
        A = prepared.arrays
        log_mu = pulse_log_mu(draws, A)  # (draw, patient, obs)
        for j, a in enumerate(analytes):
            sel = A["obs_analyte"] == j
            pk = np.exp(log_mu[..., sel].max(axis=-1)).ravel()
            peaks[(label, a)] = pk
            row = {"regimen": label, "analyte": a, "unit": analyte_info(a).unit,
                   "n_virtual_patients": int(pk.size), "mean_log_peak": float(np.mean(np.log(pk)))}
            for qq, v in zip(q, np.quantile(pk, q)):
                row[f"q{100 * qq:g}"] = float(v)
            if a in thresholds:
                row["threshold"] = float(thresholds[a])
                row["p_exceed"] = float(np.mean(pk > thresholds[a]))
            doses = [float(d) for d in dosing["dose"].unique()]
            outside = [d for d in doses if fitted_doses and not (min(fitted_doses) <= d <= max(fitted_doses))]
            row["extrapolated_doses"] = ",".join(f"{d:g}" for d in outside)
            rows.append(row)
    return RegimenPrediction(table=pd.DataFrame(rows), peaks=peaks, fitted_doses=fitted_doses)
