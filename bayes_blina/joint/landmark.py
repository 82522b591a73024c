"""Dynamic (landmark) prediction of CR for new patients from a joint fit.

For a new patient with covariates, dosing and biomarker observations up to landmark day ``d``
(``time_h <= (d - 1) * 24``: day 1 means no on-treatment data, only pre-treatment samples), the
posterior predictive probability of CR integrates over the patient's unknown trajectory effects
``theta`` (baseline, expansion, dip depth of the T cells; baseline and amplitude of the
cytokines) and over the population parameters ``phi``::

    P(CR | y_<=d, D) = ∫∫ expit(eta(theta, phi)) p(theta | y_<=d, phi) p(phi | y_<=d, D) dtheta dphi

where ``D`` are the fitted data. It is computed by importance sampling on top of posterior draws
``phi_s`` (the fit's posterior, thinned to ``n_draws``):

1. for each draw, ``n_effects`` patient effects are drawn from the population distribution
   ``p(theta | phi_s)`` (the sub-model's random-effects distribution, covariate shifts included)
   and weighted by the likelihood of the patient's observations so far (censored rows through
   their M3 probability, :func:`bayes_blina.likelihood.censored_lognormal_logp_np`), computed with
   the sub-model's own numpy mean function (``mean_log``);
2. when the data are informative the prior draws are wasted, so the proposal is adapted (up to
   ``rounds`` times, until the effective sample size reaches a quarter of the draws): a Gaussian
   fitted to the weighted draws, widened by 1.3, in a defensive mixture with the population
   distribution (weight 0.1), so the weights ``prior x likelihood / proposal`` stay bounded;
3. the T-cell and cytokine effects are independent given ``phi`` (separate sub-models), so their
   weighted draws are combined exactly (every pair); each posterior draw is weighted by the new
   patient's marginal likelihood under it (``p(y_<=d | phi_s)``, the average of its weights), so the
   new observations also update ``phi`` (slightly).

The result per patient and landmark: the predictive ``p_cr``; an interval of the CR probability
given ``phi`` (weighted quantiles over draws: the uncertainty that more training data would
reduce); the predicted biomarkers (weighted median and interval of the expansion fold change and
the cytokine peaks); and the effective sample sizes: ``ess_draws`` (of the draw weights) and
``ess`` (the smallest, over sub-models, of the Kish effective size of all weighted effect draws).
A warning (:class:`~bayes_blina.errors.BayesBlinaWarning`) names the predictions whose ``ess`` is
below ``min_ess``: they rest on a handful of draws; increase ``n_effects`` or ``rounds``.

A fit with ``biomarkers = []`` (covariates only) predicts ``mean_s expit(eta_s)``, the same at
every landmark.

Predictions are made only for patients on study at the landmark: a patient whose ``offstudy_h``
(``subjects`` table: death, withdrawal, ...) is at or before the landmark's cutoff
``(d - 1) * 24`` h is not at risk there, and gets a row with ``status = "off study"``, empty
predictions and a note saying when and why the patient went off study (never silently dropped).
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import special

from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import BayesBlinaError, BayesBlinaWarning, DataValidationError, Problem, SpecError
from bayes_blina.families.base import Prepared
from bayes_blina.families.joint import BIOMARKERS, LN2, PARTS, JointModel, cr_baseline_eta
from bayes_blina.families.levels import subject_levels
from bayes_blina.families.trajectory import analyte_values
from bayes_blina.likelihood import censored_lognormal_logp_np

__all__ = ["LANDMARK_DAYS", "landmark_cutoff_h", "on_study_at", "predict_landmark",
           "read_landmark_inputs", "joint_fit_view", "JointFitView"]

#: Landmark days of cycle 1 (study day ``d`` begins at ``(d - 1) * 24`` h).
LANDMARK_DAYS: tuple[int, ...] = (1, 2, 8, 15, 29)

_LOG_2PI = math.log(2.0 * math.pi)


def landmark_cutoff_h(day: float) -> float:
    """Last time (h since the first infusion start) of the observations used at landmark ``day``."""
    day = float(day)
    if not math.isfinite(day) or day < 1:
        raise SpecError(f"a landmark day must be a number >= 1 (found {day!r}); day 1 is the first infusion day")
    return (day - 1.0) * 24.0


def on_study_at(subjects: pd.DataFrame, day: float) -> np.ndarray:
    """Whether each patient is on study (at risk) at landmark ``day``.

    A patient is on study at the landmark unless ``offstudy_h`` (hours since the first infusion
    start; empty or absent: never went off study) is at or before the cutoff
    ``(day - 1) * 24`` h (:func:`landmark_cutoff_h`).

    Parameters
    ----------
    subjects : DataFrame
        ``subjects`` table (``offstudy_h`` optional).
    day : float
        Landmark day (>= 1).

    Returns
    -------
    numpy.ndarray of bool
        One per row of ``subjects``.
    """
    cut = landmark_cutoff_h(day)
    if "offstudy_h" not in subjects.columns:
        return np.ones(len(subjects), dtype=bool)
    off = pd.to_numeric(subjects["offstudy_h"], errors="coerce").to_numpy(dtype=float)
    return ~(np.isfinite(off) & (off <= cut))


# ------------------------------------------------------------------------------------------------
# the fit
# ------------------------------------------------------------------------------------------------


@dataclass
class JointFitView:
    """What landmark prediction needs from a joint fit.

    Attributes
    ----------
    post : xarray.Dataset
        Posterior draws stacked on ``sample`` (first axis), thinned.
    family : JointModel
    data_use : dict
        The fit's ``data_use`` (covariate levels of the sub-models).
    """

    post: Any
    family: JointModel
    data_use: dict


def joint_fit_view(fit, *, n_draws: int | None = 200) -> JointFitView:
    """A :class:`JointFitView` of a fit (:class:`~bayes_blina.store.Fit`, in memory or stored), or
    of a view (returned as is, re-thinned).

    Raises
    ------
    BayesBlinaError
        If the fit is not of the joint family or has no CR part.
    """
    if isinstance(fit, JointFitView):
        fam, use, post = fit.family, fit.data_use, fit.post
    else:
        if not (hasattr(fit, "family") and hasattr(fit, "prepared")):
            raise BayesBlinaError(f"cannot read a joint fit from {type(fit).__name__}")
        if not isinstance(fit.family, JointModel):
            raise BayesBlinaError(f"landmark prediction needs a joint-model fit (found {fit.family.name!r})")
        fam, use = fit.family, fit.prepared.data_use
        post = as_dataset(fit.idata.posterior).stack(sample=("chain", "draw")).transpose("sample", ...)
    if not fam.options.response_part:
        raise BayesBlinaError("this joint fit has no CR part (response_part = false): it cannot predict CR")
    n_all = post.sizes["sample"]
    if n_draws is not None and n_draws < n_all:
        idx = np.unique(np.round(np.linspace(0, n_all - 1, int(n_draws))).astype(int))
        post = post.isel(sample=idx)
    return JointFitView(post=post, family=fam, data_use=use)


# ------------------------------------------------------------------------------------------------
# population distributions of the patient effects
# ------------------------------------------------------------------------------------------------


def _unprefixed(post, prefix: str):
    from bayes_blina.families.trajectory import unprefixed

    return unprefixed(post, prefix)


def _block_diag(blocks: list[np.ndarray]) -> np.ndarray:
    """Block-diagonal (S, k, k) from (S, k_b, k_b) blocks."""
    S = blocks[0].shape[0]
    k = sum(b.shape[-1] for b in blocks)
    out = np.zeros((S, k, k))
    i = 0
    for b in blocks:
        kb = b.shape[-1]
        out[:, i:i + kb, i:i + kb] = b
        i += kb
    return out


class _PartEffects:
    """Patient effects ``theta`` of one sub-model: their population distribution per draw, what the
    sub-model's ``mean_log`` needs, and the biomarkers they imply."""

    def __init__(self, part: str, family: JointModel, post, data_use: dict, subjects: pd.DataFrame,
                 dosing: pd.DataFrame):
        self.part = part
        self.prefix = PARTS[part][1]
        self.fam = family.parts[part]
        self.post = _unprefixed(post, self.prefix)
        self.analytes = [str(a) for a in self.post["log_baseline_mu"].coords["analyte"].values]
        self.n_a = len(self.analytes)
        self.S = self.post.sizes["sample"]
        self.subjects = subjects
        self.n = len(subjects)
        self.notes: list[list[str]] = [[] for _ in range(self.n)]
        eff = self._covariate_shift(data_use.get(part, {}))
        effects = self.fam.patient_effects(self.post, self.analytes, self.n, eff)
        self.blocks = list(effects.blocks)
        self.population = tuple(self.fam.population_vars)
        self.context = self.fam.patient_context(dosing, subjects)
        self.mean = np.concatenate(effects.mean, axis=-1)  # (S, n, k)
        self.chol = _block_diag(effects.chol)  # (S, k, k)
        self.k = self.mean.shape[-1]
        self.sigma = analyte_values(self.post, self.fam.sigma_name, self.analytes)  # (S, a)

    def _covariate_shift(self, use_part: dict) -> np.ndarray:
        """Shift (S, n, a) of the covariate-dependent mean (log amplitude or expansion)."""
        eff = np.zeros((self.S, self.n, self.n_a))
        for f in self.fam.options.covariates:
            name = f"beta_{f}"
            info = (use_part.get("covariates") or {}).get(f, {})
            levels = list(info.get("levels", []))
            if name not in self.post or len(levels) < 2:
                continue
            beta = np.asarray(self.post[name].sel(analyte=self.analytes)
                              .transpose("sample", f"{f}_contrast", "analyte").values, dtype=float)
            for i, v in enumerate(subject_levels(self.subjects, f).tolist()):
                if v in levels[1:]:
                    eff[:, i, :] += beta[:, levels.index(v) - 1, :]
                elif v != levels[0]:
                    self.notes[i].append(f"{self.part} covariate {f}={v} not in the fit: reference level used")
        return eff

    # -- sampling helpers --------------------------------------------------------------------------
    def split(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Named blocks (..., n, a) of ``theta`` (..., n, k)."""
        return {b: theta[..., j * self.n_a:(j + 1) * self.n_a] for j, b in enumerate(self.blocks)}

    def draws_for(self, theta: np.ndarray, sub_idx: np.ndarray, ana_idx: np.ndarray) -> dict[str, np.ndarray]:
        """What ``mean_log`` takes, for the prepared subjects ``sub_idx`` and analytes ``ana_idx``."""
        blocks = {b: v[..., ana_idx] for b, v in self.split(theta[:, :, sub_idx, :]).items()}
        out = self.fam.effect_draws(blocks)
        for name in self.population:
            out[name] = analyte_values(self.post, name, self.analytes)[:, None, ana_idx]
        return out

    def log_biomarker(self, theta: np.ndarray, analyte: str) -> np.ndarray:
        """Natural log of the biomarker of ``analyte`` (S, M, n) implied by ``theta``."""
        j = self.analytes.index(analyte)
        return self.fam.log_feature(self.split(theta), self.post, self.analytes, j, self.context)

    def log_prior(self, theta: np.ndarray, linv: np.ndarray, logdet: np.ndarray) -> np.ndarray:
        """Log N(theta; mean_s, chol_s chol_s') (S, M, n)."""
        z = np.einsum("sij,smnj->smni", linv, theta - self.mean[:, None])
        return -0.5 * np.sum(z * z, axis=-1) - logdet[:, None, None] - 0.5 * self.k * _LOG_2PI


def _prepare_part(part_eff: _PartEffects, subjects: pd.DataFrame, dosing: pd.DataFrame,
                  observations: pd.DataFrame | None):
    """The sub-model's preparation of the new patients' rows.

    Returns
    -------
    prep : Prepared or None
        None when no row of the sub-model's analytes is usable.
    family : ModelFamily or None
        The sub-model restricted to the analytes with usable rows (its ``mean_log`` reads ``prep``).
    counts : numpy.ndarray
        Rows used per subject and analyte (the fit's analyte order).
    """
    counts = np.zeros((len(subjects), part_eff.n_a), dtype=np.int64)
    if observations is None or not len(observations):
        return None, None, counts
    ids = subjects["subject_id"].astype(str).tolist()
    obs = observations[observations["subject_id"].astype(str).isin(set(ids))
                       & observations["analyte"].astype(str).isin(part_eff.analytes)].reset_index(drop=True)
    fam = part_eff.fam
    data = Dataset(subjects=subjects, dosing=dosing, observations=obs)

    def prepared_for(analytes):
        try:
            sub = type(fam)({**fam.options.model_dump(), "analytes": analytes})
            return sub, sub.prepare(data)
        except DataValidationError:  # no usable row of an analyte (all left out): no information
            return None, None

    present = [a for a in part_eff.analytes if (obs["analyte"].astype(str) == a).any()]
    sub, prep = prepared_for(present) if present else (None, None)
    if prep is None and len(present) > 1:
        present = [a for a in present if prepared_for([a])[1] is not None]
        sub, prep = prepared_for(present) if present else (None, None)
    if prep is None:
        return None, None, counts
    A = prep.arrays
    if len(A["pair_obs"]) == 0 and len(A["log_y"]):
        # no (observation, event) pair (only pre-treatment rows): one pair of lag 0, whose pulse is 0,
        # so that the families' numpy means (which reshape by the number of pairs) work
        A.update({"pair_obs": np.zeros(1, np.int64), "pair_lag": np.zeros(1),
                  "pair_subject": A["obs_subject"][:1].copy(), "pair_analyte": A["obs_analyte"][:1].copy(),
                  "pair_log_dose": np.zeros(1), "pair_reexposure": np.zeros(1), "pair_cycle_m1": np.zeros(1)})
    sub_pos = np.array([ids.index(x) for x in prep.coords["subject"]], dtype=np.int64)
    ana_pos = np.array([part_eff.analytes.index(a) for a in prep.coords["analyte"]], dtype=np.int64)
    np.add.at(counts, (sub_pos[A["obs_subject"]], ana_pos[A["obs_analyte"]]), 1)
    return prep, sub, counts


def _loglik(part_eff: _PartEffects, prep: Prepared | None, sub_fam, theta: np.ndarray, ids: list[str]) -> np.ndarray:
    """Log-likelihood (S, M, n) of each subject's rows under ``theta`` (0 for subjects without rows)."""
    S, M, n, _ = theta.shape
    out = np.zeros((S, M, n))
    if prep is None:
        return out
    A = prep.arrays
    sub_idx = np.array([ids.index(s) for s in prep.coords["subject"]], dtype=np.int64)
    ana_idx = np.array([part_eff.analytes.index(a) for a in prep.coords["analyte"]], dtype=np.int64)
    draws = part_eff.draws_for(theta, sub_idx, ana_idx)
    mu = np.asarray(sub_fam.mean_log(draws, prep), dtype=float)  # (S, M, obs)
    sigma = part_eff.sigma[:, ana_idx][:, A["obs_analyte"]][:, None, :]
    ll = censored_lognormal_logp_np(mu, sigma, A["log_y"], A["log_limit"], A["is_censored"].astype(bool),
                                    A.get("log_lower"))
    # sum over the rows of each prepared subject
    onehot = np.zeros((len(A["obs_subject"]), len(sub_idx)))
    onehot[np.arange(len(A["obs_subject"])), A["obs_subject"]] = 1.0
    out[:, :, sub_idx] = ll @ onehot
    return out


def _kish(logw: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Kish effective sample size of the weights ``exp(logw)`` over ``axes``."""
    lw = logw - np.max(logw, axis=axes, keepdims=True)
    w = np.exp(lw)
    return np.sum(w, axis=axes) ** 2 / np.sum(w * w, axis=axes)


def _importance(part_eff: _PartEffects, prep: Prepared | None, sub_fam, ids: list[str], M: int,
                rng: np.random.Generator, rounds: int, mix: float = 0.9, widen: float = 1.3,
                target: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Weighted draws ``theta`` (S, M, n, k) and log weights (S, M, n) of one sub-model's effects
    (see the module docstring: prior draws, then adapted defensive-mixture proposals)."""
    S, n, k = part_eff.S, part_eff.n, part_eff.k
    L = part_eff.chol
    theta = part_eff.mean[:, None] + np.einsum("sij,smnj->smni", L, rng.standard_normal((S, M, n, k)))
    ll = _loglik(part_eff, prep, sub_fam, theta, ids)
    logw = ll
    has_data = np.zeros(n, dtype=bool)
    if prep is not None:
        has_data[[ids.index(s) for s in prep.coords["subject"]]] = True
    if not has_data.any() or rounds <= 0:
        return theta, logw
    linv = np.linalg.inv(L)
    logdet = np.sum(np.log(np.abs(np.diagonal(L, axis1=1, axis2=2))), axis=-1)
    prior_cov_mean = np.mean(L @ np.swapaxes(L, 1, 2), axis=0)  # (k, k)
    for _ in range(rounds):
        ess = _kish(logw, (0, 1))
        todo = has_data & (ess < target * S * M)
        if not todo.any():
            break
        # weighted Gaussian fit per subject
        w = np.exp(logw - logw.max(axis=(0, 1), keepdims=True))
        w = w / w.sum(axis=(0, 1), keepdims=True)  # (S, M, n)
        m = np.einsum("smn,smnk->nk", w, theta)
        d = theta - m
        cov = np.einsum("smn,smnk,smnl->nkl", w, d, d)
        cov = cov + prior_cov_mean[None] / (1.0 + ess[:, None, None]) + 1e-9 * np.eye(k)
        lq = np.linalg.cholesky(cov) * widen  # (n, k, k)
        lq_inv = np.linalg.inv(lq)
        lq_logdet = np.sum(np.log(np.diagonal(lq, axis1=1, axis2=2)), axis=-1)
        use_q = rng.random((S, M, n)) < mix
        z = rng.standard_normal((S, M, n, k))
        from_q = m[None, None] + np.einsum("nij,smnj->smni", lq, z)
        from_p = part_eff.mean[:, None] + np.einsum("sij,smnj->smni", L, z)
        new = np.where(use_q[..., None], from_q, from_p)
        log_p = part_eff.log_prior(new, linv, logdet)
        zq = np.einsum("nij,smnj->smni", lq_inv, new - m[None, None])
        log_q = -0.5 * np.sum(zq * zq, axis=-1) - lq_logdet[None, None] - 0.5 * k * _LOG_2PI
        log_mix = np.logaddexp(math.log(mix) + log_q, math.log1p(-mix) + log_p)
        new_ll = _loglik(part_eff, prep, sub_fam, new, ids)
        new_logw = new_ll + log_p - log_mix
        theta = np.where(todo[None, None, :, None], new, theta)
        logw = np.where(todo[None, None, :], new_logw, logw)
    return theta, logw


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of ``values`` (flattened) under ``weights`` (same shape)."""
    v = values.ravel()
    w = weights.ravel()
    order = np.argsort(v, kind="mergesort")
    v, w = v[order], w[order]
    c = np.cumsum(w)
    c = c / c[-1]
    return np.array([v[min(np.searchsorted(c, q, side="left"), len(v) - 1)] for q in qs])


def _softmax(logw: np.ndarray, axis) -> np.ndarray:
    lw = logw - np.max(logw, axis=axis, keepdims=True)
    w = np.exp(lw)
    return w / np.sum(w, axis=axis, keepdims=True)


# ------------------------------------------------------------------------------------------------
# prediction
# ------------------------------------------------------------------------------------------------


def predict_landmark(fit, dataset: Dataset, *, landmark_days: Sequence[float] = LANDMARK_DAYS,
                     prob: float = 0.9, n_draws: int = 200, n_effects: int = 128, rounds: int = 3,
                     chunk: int = 4, seed: int = 0, min_ess: float = 50.0, warn: bool = True) -> pd.DataFrame:
    """Posterior predictive P(CR) of new patients at each landmark day (see the module docstring).

    Parameters
    ----------
    fit : Fit or JointFitView
        A joint-model fit with a CR part.
    dataset : Dataset
        ``subjects`` (covariates of the CR part and of the sub-models), ``dosing`` and
        ``observations`` (may be None: no data, the population prediction) of the new patients.
    landmark_days : sequence of float
        Days ``d`` of cycle 1; observations with ``time_h <= (d - 1) * 24`` are used.
    prob : float
        Probability of the intervals.
    n_draws : int
        Posterior draws used (thinned evenly).
    n_effects : int
        Patient-effect draws per posterior draw and sub-model.
    rounds : int
        Adaptation rounds of the proposal (0: prior draws only).
    chunk : int
        Patients processed together (memory ~ n_draws * n_effects * chunk * rows).
    seed : int
        Seed of the random draws.
    min_ess : float
        Warn about predictions whose effective sample size is smaller.
    warn : bool
        Issue that warning (the ``ess`` column is there either way).

    Returns
    -------
    DataFrame
        One row per patient and landmark: ``subject_id, landmark_day, cutoff_h, status,
        n_obs_<analyte>, p_cr, p_cr_lower, p_cr_upper``, per biomarker ``<biomarker>`` (weighted
        posterior median: fold change or pg/mL) with ``_lower``/``_upper``, ``ess``,
        ``ess_draws``, ``note``. ``status`` is ``"predicted"``, or ``"off study"`` for a patient
        who went off study at or before the landmark's cutoff (``offstudy_h`` of ``subjects``):
        such a row has no prediction (NaN) and its ``note`` says when and why.

    Raises
    ------
    BayesBlinaError
        If the fit is not a joint fit with a CR part, or the inputs are unusable.
    """
    if not 0 < prob < 1:
        raise SpecError(f"prob must be between 0 and 1 (found {prob})")
    if int(n_effects) < 2 or int(chunk) < 1:
        raise SpecError("n_effects must be at least 2 and chunk at least 1")
    view = joint_fit_view(fit, n_draws=n_draws)
    fam, post = view.family, view.post
    subjects = dataset.subjects
    if subjects is None or not len(subjects):
        raise DataValidationError([Problem("subjects.csv", None, None, "no patients to predict for")])
    days = [float(d) for d in landmark_days]
    cutoffs = [landmark_cutoff_h(d) for d in days]
    rng = np.random.default_rng(seed)
    q_lo, q_hi = (1.0 - prob) / 2.0, 1.0 - (1.0 - prob) / 2.0
    factors = [f for f in fam.options.covariates if f"beta_{f}" in post]
    obs_all = dataset.observations
    rows: list[dict[str, Any]] = []
    parts = fam.part_names()
    analytes = {p: [] for p in parts}
    for start in range(0, len(subjects), int(chunk)):
        subj = subjects.iloc[start:start + int(chunk)].reset_index(drop=True)
        ids = subj["subject_id"].astype(str).tolist()
        base, notes = cr_baseline_eta(post, {f: subject_levels(subj, f).tolist() for f in factors},
                                      rng=np.random.default_rng(seed + 7919), numeric=fam.numeric_values(subj),
                                      n=len(ids))
        effects = {p: _PartEffects(p, fam, post, view.data_use, subj, dataset.dosing) for p in parts}
        for p in parts:
            analytes[p] = effects[p].analytes
            for i in range(len(ids)):
                notes[i] += effects[p].notes[i]
        for day, cut in zip(days, cutoffs):
            obs = None if obs_all is None else obs_all[pd.to_numeric(obs_all["time_h"], errors="coerce") <= cut]
            lin, logz, counts, bm = {}, {}, {}, {}
            for p in parts:
                eff = effects[p]
                prep, sub_fam, counts[p] = _prepare_part(eff, subj, dataset.dosing, obs)
                theta, logw = _importance(eff, prep, sub_fam, ids, int(n_effects), rng, int(rounds))
                logz[p] = special.logsumexp(logw, axis=1) - math.log(logw.shape[1])  # (S, n)
                lin_p = np.zeros(logw.shape)
                for b in fam.options.biomarkers:
                    if BIOMARKERS[b].part != p:
                        continue
                    x = (eff.log_biomarker(theta, BIOMARKERS[b].analyte) - fam.log_ref(b)) / LN2
                    bm[b] = (x, p)
                    lin_p = lin_p + np.asarray(post[f"beta_{b}"].values, dtype=float)[:, None, None] * x
                lin[p] = (lin_p, logw)
            logz_total = sum(logz.values()) if logz else np.zeros(base.shape)
            lam = _softmax(logz_total, axis=0)  # (S, n): draw weights
            for i, sid in enumerate(ids):
                p_s = _conditional_p(base[:, i], [(lw[:, :, i], lp[:, :, i]) for lp, lw in lin.values()])
                row: dict[str, Any] = {"subject_id": sid, "landmark_day": day, "cutoff_h": cut}
                for p in parts:
                    for j, a in enumerate(analytes[p]):
                        row[f"n_obs_{a}"] = int(counts[p][i, j])
                row["p_cr"] = float(np.sum(lam[:, i] * p_s))
                lo, hi = _weighted_quantiles(p_s, lam[:, i], (q_lo, q_hi))
                row["p_cr_lower"], row["p_cr_upper"] = float(lo), float(hi)
                ess_vals = []
                for b, (x, p) in bm.items():
                    lw = lin[p][1][:, :, i]
                    w = lam[:, i][:, None] * _softmax(lw, axis=1)
                    med, blo, bhi = _weighted_quantiles(x[:, :, i], w, (0.5, q_lo, q_hi))
                    scale = 0.0 if BIOMARKERS[b].part == "tcell" else fam.log_ref(b) / LN2
                    row[b], row[f"{b}_lower"], row[f"{b}_upper"] = (float(2.0 ** (v + scale)) for v in (med, blo, bhi))
                for p in parts:
                    lw = lin[p][1][:, :, i]
                    w = lam[:, i][:, None] * _softmax(lw, axis=1)
                    ess_vals.append(float(1.0 / np.sum(w * w)))
                row["ess_draws"] = float(1.0 / np.sum(lam[:, i] ** 2))
                row["ess"] = float(min(ess_vals)) if ess_vals else row["ess_draws"]
                row["note"] = "; ".join(dict.fromkeys(notes[i]))
                rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out.insert(3, "status", "predicted")
        _mark_off_study(out, subjects)
    if warn and len(out):
        low = out[out["ess"] < min_ess]
        if len(low):
            items = ", ".join(f"{r.subject_id} day {r.landmark_day:g} ({r.ess:.0f})" for r in low.head(10).itertuples())
            warnings.warn(f"landmark prediction: effective sample size below {min_ess:g} for {len(low)} "
                          f"prediction(s): {items}{' ...' if len(low) > 10 else ''}; increase n_effects or "
                          "rounds", BayesBlinaWarning, stacklevel=2)
    cols = ["subject_id", "landmark_day", "cutoff_h", "status"] + sorted(c for c in out.columns if c.startswith("n_obs_")) \
        + ["p_cr", "p_cr_lower", "p_cr_upper"]
    cols += [c for c in out.columns if c not in cols and c not in ("ess", "ess_draws", "note")]
    cols += ["ess", "ess_draws", "note"]
    return out[cols] if len(out) else out


def _mark_off_study(out: pd.DataFrame, subjects: pd.DataFrame) -> None:
    """Empty the predictions of patients off study at their landmark (in place): status, note."""
    if "offstudy_h" not in subjects.columns:
        return
    sid = subjects["subject_id"].astype(str)
    hours = dict(zip(sid, pd.to_numeric(subjects["offstudy_h"], errors="coerce")))
    reason = dict(zip(sid, subjects["offstudy_reason"] if "offstudy_reason" in subjects.columns
                      else [None] * len(sid)))
    h = out["subject_id"].map(hours).to_numpy(dtype=float)
    off = np.isfinite(h) & (h <= out["cutoff_h"].to_numpy(dtype=float))
    if not off.any():
        return
    fixed = {"subject_id", "landmark_day", "cutoff_h", "status", "note"}
    values = [c for c in out.columns if c not in fixed and not c.startswith("n_obs_")]
    out.loc[off, values] = np.nan
    out.loc[off, "status"] = "off study"
    for i in np.flatnonzero(off):
        r = reason.get(out["subject_id"].iat[i])
        why = f" ({r})" if isinstance(r, str) and r else ""
        text = (f"off study at {h[i]:g} h{why}, at or before the landmark's cutoff "
                f"{out['cutoff_h'].iat[i]:g} h: not at risk, no prediction")
        out.iat[i, out.columns.get_loc("note")] = "; ".join(x for x in (text, out["note"].iat[i]) if x)


def _conditional_p(base: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """P(CR | phi_s, data) per draw: the weighted average of expit(base + sum of the parts' linear
    terms) over every combination of the parts' effect draws (at most two parts)."""
    if not parts:
        return special.expit(base)
    if len(parts) == 1:
        lw, lp = parts[0]
        w = _softmax(lw, axis=1)
        return np.sum(w * special.expit(base[:, None] + lp), axis=1)
    if len(parts) == 2:
        (lw1, lp1), (lw2, lp2) = parts
        w1, w2 = _softmax(lw1, axis=1), _softmax(lw2, axis=1)
        eta = base[:, None, None] + lp1[:, :, None] + lp2[:, None, :]
        return np.einsum("sm,sk,smk->s", w1, w2, special.expit(eta))
    raise BayesBlinaError("at most two sub-models are supported")  # pragma: no cover


# ------------------------------------------------------------------------------------------------
# inputs
# ------------------------------------------------------------------------------------------------


def read_landmark_inputs(subjects_file: str, observations_file: str | None = None,
                         dosing_file: str | None = None, *, n_cycles: int = 1) -> Dataset:
    """Read and validate the new patients' subjects, observations and dosing files together.

    Without a dosing file each patient gets the standard schedule of their ``regimen``
    (:func:`bayes_blina.events.standard_schedule`, ``n_cycles`` cycles), cut at the patient's
    ``offstudy_h`` when the subjects file gives one.

    Raises
    ------
    DataValidationError
        Naming the file, column and row of every problem (e.g. a regimen that is not a standard
        schedule when no dosing file is given).
    """
    from bayes_blina.data.io import read_table_file
    from bayes_blina.data.schema import validate_dataset
    from bayes_blina.events import standard_schedule

    tables = {"subjects": read_table_file(subjects_file)}
    files = {"subjects": str(subjects_file)}
    if observations_file is not None:
        tables["observations"] = read_table_file(observations_file)
        files["observations"] = str(observations_file)
    if dosing_file is not None:
        tables["dosing"] = read_table_file(dosing_file)
        files["dosing"] = str(dosing_file)
    else:
        subj = tables["subjects"]
        problems, blocks = [], []
        if "regimen" not in subj.columns:
            problems.append(Problem(str(subjects_file), "regimen", None,
                                    "without a dosing file every patient needs a regimen (e.g. '5-15')"))
        else:
            offs = pd.to_numeric(subj["offstudy_h"], errors="coerce") if "offstudy_h" in subj.columns \
                else pd.Series(np.nan, index=subj.index)
            for r, (sid, reg, off) in enumerate(zip(subj.get("subject_id", pd.Series(dtype=str)), subj["regimen"],
                                                    offs)):
                try:
                    sched = standard_schedule(str(reg).strip(), n_cycles)
                except BayesBlinaError as e:
                    problems.append(Problem(str(subjects_file), "regimen", r + 1,
                                            f"not a standard regimen, so a dosing file is needed ({e})", str(reg)))
                    continue
                if np.isfinite(off):  # the schedule stops when the patient went off study
                    sched = sched[sched["start_h"] < off].assign(end_h=lambda d: np.fmin(d["end_h"], off))
                blocks.append(sched.assign(subject_id=str(sid)))
        if problems:
            raise DataValidationError(problems)
        dos = pd.concat(blocks, ignore_index=True)
        tables["dosing"] = dos[["subject_id", "cycle", "start_h", "end_h", "dose", "dose_unit"]]
        files["dosing"] = "(standard schedule of each regimen)"
    return validate_dataset(tables, files=files, name="landmark-prediction",
                            origin="+".join(str(f) for f in (subjects_file, observations_file, dosing_file) if f))
