"""Held-out evaluation of landmark predictions: discrimination and calibration by landmark day.

A joint fit (trained on one cohort) predicts CR for held-out patients at each landmark day from
their data so far (:func:`bayes_blina.joint.landmark.predict_landmark`); the covariates-only fit
(the joint model with ``biomarkers = []``, same CR part) predicts from the baseline covariates alone.
Both are scored against the held-out outcomes with :mod:`bayes_blina.checks.discrimination`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from bayes_blina.checks.discrimination import calibration_curve, discrimination_table
from bayes_blina.errors import DataValidationError, Problem
from bayes_blina.joint.landmark import LANDMARK_DAYS, predict_landmark

__all__ = ["LandmarkEvaluation", "evaluate_landmarks"]


@dataclass
class LandmarkEvaluation:
    """Result of :func:`evaluate_landmarks`.

    Attributes
    ----------
    table : DataFrame
        One row per landmark day of the joint model (``model = "joint, day d"``) and one for the
        covariates-only model: ``model, landmark_day, n, responders, auc, brier, brier_scaled,
        log_score, min_ess``.
    predictions : DataFrame
        Every landmark prediction (:func:`predict_landmark`'s columns) plus ``response`` and
        ``p_cr_baseline`` (the covariates-only model's prediction).
    calibration : DataFrame
        Calibration curves (:func:`~bayes_blina.checks.discrimination.calibration_curve`) of the
        last landmark day and of the covariates-only model, with a ``model`` column.
    """

    table: pd.DataFrame
    predictions: pd.DataFrame
    calibration: pd.DataFrame


def evaluate_landmarks(fit, heldout, *, baseline_fit=None, days: Sequence[float] = LANDMARK_DAYS,
                       bins: int = 5, seed: int = 0, **predict_kw) -> LandmarkEvaluation:
    """AUC, Brier score and calibration of landmark predictions on held-out patients.

    Parameters
    ----------
    fit : StoredFit or FitResult
        Joint fit with biomarkers (trained without the held-out patients).
    heldout : Dataset
        Held-out patients with their observed ``response`` (patients without one are left out).
    baseline_fit : StoredFit or FitResult, optional
        Covariates-only joint fit (``biomarkers = []``) on the same training data.
    days : sequence of float
        Landmark days.
    bins : int
        Bins of the calibration curves (quantile bins).
    seed : int
        Seed of the predictions.
    **predict_kw
        Passed to :func:`predict_landmark` (``n_draws``, ``n_effects``, ``rounds``, ...).

    Returns
    -------
    LandmarkEvaluation
    """
    subj = heldout.subjects
    if subj is None or "response" not in subj:
        raise DataValidationError([Problem("subjects.csv", "response", None,
                                           "held-out evaluation needs the patients' observed responses")])
    resp = pd.to_numeric(subj["response"], errors="coerce")
    keep = resp.notna().to_numpy()
    ds = heldout.with_tables(subjects=subj.loc[keep].reset_index(drop=True))
    y = resp[keep].to_numpy(dtype=int)
    ids = ds.subjects["subject_id"].astype(str).tolist()
    pred = predict_landmark(fit, ds, landmark_days=days, seed=seed, warn=False, **predict_kw)
    pred["response"] = pred["subject_id"].map(dict(zip(ids, y)))
    sets, ess = {}, {}
    for d in days:
        sub = pred[pred["landmark_day"] == float(d)].set_index("subject_id").loc[ids]
        sets[f"joint, day {d:g}"] = sub["p_cr"].to_numpy()
        ess[f"joint, day {d:g}"] = float(sub["ess"].min())
    base = None
    if baseline_fit is not None:
        bp = predict_landmark(baseline_fit, ds, landmark_days=[1], seed=seed, warn=False,
                              **{k: v for k, v in predict_kw.items() if k in ("n_draws", "chunk")})
        base = bp.set_index("subject_id").loc[ids]["p_cr"].to_numpy()
        sets["covariates only"] = base
        pred["p_cr_baseline"] = pred["subject_id"].map(dict(zip(ids, base)))
    table = discrimination_table(y, sets)
    table.insert(1, "landmark_day", [float(d) for d in days] + ([np.nan] if base is not None else []))
    table["min_ess"] = [ess.get(m, np.nan) for m in table["model"]]
    cal = []
    last = f"joint, day {days[-1]:g}"
    for name in ([last] + (["covariates only"] if base is not None else [])):
        c = calibration_curve(y, sets[name], bins=bins, strategy="quantile")
        c.insert(0, "model", name)
        cal.append(c)
    return LandmarkEvaluation(table=table, predictions=pred, calibration=pd.concat(cal, ignore_index=True))
