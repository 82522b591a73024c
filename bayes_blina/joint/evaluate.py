"""Held-out evaluation of landmark predictions: discrimination and calibration by landmark day.

A joint fit (trained on one cohort) predicts CR for held-out patients at each landmark day from
their data so far (:func:`bayes_blina.joint.landmark.predict_landmark`); the covariates-only fit
(the joint model with ``biomarkers = []``, same CR part) predicts from the baseline covariates alone.
Both are scored against the held-out outcomes with :mod:`bayes_blina.checks.discrimination`.

Each landmark day is scored on the patients **at risk** there (on study at the landmark,
:func:`bayes_blina.joint.landmark.on_study_at`; a patient whose ``offstudy_h`` is at or before
the landmark's cutoff has no prediction and is counted in ``off_study``), in two views:

* ``itt`` (intention to treat, as both trials counted their CR rates): a patient without a
  response assessment (``response`` empty: died or withdrew before it) is a non-responder;
* ``evaluable``: only the patients with an observed response.

The covariates-only model is a baseline prediction and is scored on the patients at risk at the
first landmark day.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from bayes_blina.checks.discrimination import calibration_curve, discrimination_table
from bayes_blina.errors import DataValidationError, Problem
from bayes_blina.joint.landmark import LANDMARK_DAYS, on_study_at, predict_landmark

__all__ = ["LandmarkEvaluation", "VIEWS", "evaluate_landmarks"]


@dataclass
class LandmarkEvaluation:
    """Result of :func:`evaluate_landmarks`.

    Attributes
    ----------
    table : DataFrame
        Per view (``view``: ``"itt"``, ``"evaluable"``) one row per landmark day of the joint
        model (``model = "joint, day d"``) and one for the covariates-only model: ``model, view,
        landmark_day, n, responders, not_evaluable, off_study, auc, brier, brier_scaled,
        log_score, min_ess``. ``n`` patients scored (``responders`` of them with CR);
        ``not_evaluable``: patients at risk without a response assessment (counted as
        non-responders in ``itt``, left out of ``evaluable``); ``off_study``: held-out patients
        not at risk at the landmark (no prediction, in neither view).
    predictions : DataFrame
        Every landmark prediction (:func:`predict_landmark`'s columns, ``status`` included) plus
        ``response`` (empty: not evaluable), ``response_itt`` (not evaluable as 0) and
        ``p_cr_baseline`` (the covariates-only model's prediction).
    calibration : DataFrame
        Calibration curves (:func:`~bayes_blina.checks.discrimination.calibration_curve`) of the
        last landmark day and of the covariates-only model in both views, with ``model`` and
        ``view`` columns.
    """

    table: pd.DataFrame
    predictions: pd.DataFrame
    calibration: pd.DataFrame


#: The two views of the evaluation.
VIEWS = ("itt", "evaluable")


def evaluate_landmarks(fit, heldout, *, baseline_fit=None, days: Sequence[float] = LANDMARK_DAYS,
                       bins: int = 5, seed: int = 0, **predict_kw) -> LandmarkEvaluation:
    """AUC, Brier score and calibration of landmark predictions on held-out patients.

    Parameters
    ----------
    fit : Fit
        Joint fit with biomarkers (trained without the held-out patients).
    heldout : Dataset
        Held-out patients with their observed ``response`` (empty: not evaluable, e.g. died or
        withdrew before the assessment; ``offstudy_h`` says when they went off study).
    baseline_fit : Fit, optional
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

    Raises
    ------
    DataValidationError
        If the held-out patients have no ``response`` column.
    """
    subj = heldout.subjects
    if subj is None or "response" not in subj:
        raise DataValidationError([Problem("subjects.csv", "response", None,
                                           "held-out evaluation needs the patients' observed responses")])
    ids = subj["subject_id"].astype(str).tolist()
    resp = pd.to_numeric(subj["response"], errors="coerce").to_numpy(dtype=float)
    evaluable = np.isfinite(resp)
    y_itt = np.where(evaluable, resp, 0.0)
    days = [float(d) for d in days]
    pred = predict_landmark(fit, heldout, landmark_days=days, seed=seed, warn=False, **predict_kw)
    pred["response"] = pred["subject_id"].map(dict(zip(ids, resp)))
    pred["response_itt"] = pred["subject_id"].map(dict(zip(ids, y_itt)))
    scored: list[tuple[str, float, np.ndarray, np.ndarray, float]] = []  # model, day, at risk, p, ess
    for d in days:
        sub = pred[pred["landmark_day"] == d].set_index("subject_id").loc[ids]
        at_risk = on_study_at(subj, d)
        scored.append((f"joint, day {d:g}", d, at_risk, sub["p_cr"].to_numpy(dtype=float),
                       float(sub["ess"][at_risk].min()) if at_risk.any() else np.nan))
    if baseline_fit is not None:
        bp = predict_landmark(baseline_fit, heldout, landmark_days=[days[0]], seed=seed, warn=False,
                              **{k: v for k, v in predict_kw.items() if k in ("n_draws", "chunk")})
        base = bp.set_index("subject_id").loc[ids]["p_cr"].to_numpy(dtype=float)
        scored.append(("covariates only", np.nan, on_study_at(subj, days[0]), base, np.nan))
        pred["p_cr_baseline"] = pred["subject_id"].map(dict(zip(ids, base)))
    tables, cal = [], []
    last = f"joint, day {days[-1]:g}"
    for view in VIEWS:
        for model, d, at_risk, p, ess in scored:
            keep = at_risk & (evaluable if view == "evaluable" else True)
            y = (y_itt if view == "itt" else resp)[keep]
            t = discrimination_table(y, {model: p[keep]})
            t.insert(1, "view", view)
            t.insert(2, "landmark_day", d)
            t.insert(5, "not_evaluable", int((at_risk & ~evaluable).sum()))
            t.insert(6, "off_study", int((~at_risk).sum()))
            t["min_ess"] = ess
            tables.append(t)
            if model in (last, "covariates only"):
                c = calibration_curve(y, p[keep], bins=bins, strategy="quantile")
                c.insert(0, "model", model)
                c.insert(1, "view", view)
                cal.append(c)
    return LandmarkEvaluation(table=pd.concat(tables, ignore_index=True), predictions=pred,
                              calibration=pd.concat(cal, ignore_index=True))
