"""Survival: right-censored time to an event (overall or relapse-free survival), proportional hazards.

For patient ``i`` with event or censoring time ``t_i`` (months from the first infusion start;
``os_days`` or ``rfs_days`` of ``subjects.csv`` / 30.4375) and event indicator ``e_i``::

    h_i(t) = h_0(t) exp(eta_i),    eta_i = sum_k x_ik log_hr_k + u_study(i)
    log L = sum_i  e_i log h_i(t_i) - H_i(t_i)            (H: cumulative hazard)

with one of two baseline hazards (option ``baseline``):

* ``"weibull"`` (default): ``H_0(t) = log(2) (t / median)^shape``, parameterised by the median
  (months) of a patient at the reference levels, ``log_median``, and the ``shape`` (1: constant
  hazard; below 1: falling, as after remission induction);
* ``"piecewise"``: a constant hazard within each interval between the cut points ``cut_months``
  (the last interval open), ``log_hazard`` per month, with a first-order random walk prior
  (``log_hazard_first``, ``sd_log_hazard_step``) so that the intervals share information.

Covariates (option ``covariates``): the covariate factors of the response model (``regimen``,
``age_group``, ``blast_burden``, ...) in treatment contrasts against the first level present in
the data (each contrast's hazard ratio ``hr_<factor>``), ``mrd_response`` (complete MRD response
vs. not, a patient in CR; ``hr_mrd_response``), and numeric baseline columns of ``subjects.csv``
(``numeric_covariates``, as in the joint model). With patients from several studies, a
between-study random effect on the log hazard (``sd_study``, non-centred; option
``study_effect``) pools them partially, as the CR models do.

Who is in: for ``endpoint = "os"`` every patient with ``os_days``; for ``"rfs"`` the patients in
CR (``response`` 1) with ``rfs_days``, as relapse-free survival is analysed in both source papers
(from enrolment, among responders). Every patient left out (no time for the endpoint, a covariate
unknown) is recorded with the reason. A time of 0 days is placed at half a day (recorded), where
the log hazard is finite.

Derived quantities for a patient at the reference levels of every covariate and at the average
study: ``median_months``, ``surv_prob`` at ``horizons_months`` (default 6 and 12 months) and the
hazard ratios ``hr_<covariate>``.

Examples
--------
>>> import numpy as np
>>> from bayes_blina.families.survival import weibull_terms
>>> log_h, cum_h = weibull_terms(np.array([6.0]), 0.0, np.log(6.0), 1.0)
>>> round(float(cum_h[0]), 6), round(float(np.exp(log_h[0])), 6)  # at the median H = log 2
(0.693147, 0.115525)
"""
from __future__ import annotations

import math
from typing import Any, Literal, override

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bayes_blina.data.units import DAYS_PER_MONTH
from bayes_blina.errors import DataValidationError, Problem
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.families.levels import (FACTORS, NumericCovariate, factor_vocabulary, known_unique, subject_levels,
                                         subject_numbers)
from bayes_blina.priors import Prior

LN2 = math.log(2.0)
LN2_LOG = math.log(LN2)
#: Binary covariates of the survival model besides the response model's factors.
BINARY = ("mrd_response",)


class SurvivalOptions(BaseModel):
    """Options of the survival model (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    #: "os" (os_days, os_event; every patient) or "rfs" (rfs_days, rfs_event; patients in CR).
    endpoint: Literal["os", "rfs"] = "os"
    #: Baseline hazard: "weibull" or "piecewise" (constant between the cut points).
    baseline: Literal["weibull", "piecewise"] = "weibull"
    #: Cut points of the piecewise baseline (months, increasing, > 0); the last interval is open.
    cut_months: list[float] = Field(default_factory=lambda: [1.0, 3.0, 6.0, 12.0])
    #: Covariate factors (of the response model) and binary covariates (mrd_response).
    covariates: list[str] = Field(default_factory=list)
    #: Numeric baseline covariates: subjects.csv column -> {ref, transform}.
    numeric_covariates: dict[str, NumericCovariate] = Field(default_factory=dict)
    #: A between-study random effect on the log hazard when the data have several studies.
    study_effect: bool = True
    #: Horizons (months) of the survival probabilities reported (surv_prob).
    horizons_months: list[float] = Field(default_factory=lambda: [6.0, 12.0])
    #: An alloHSCT after the start of treatment (subjects.csv hsct_days) as a time-varying
    #: covariate: the hazard is multiplied by hr_hsct from the day of the transplant on.
    time_varying_hsct: bool = False

    @field_validator("covariates")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        return known_unique(v, [*FACTORS, *BINARY], "covariate", "covariates")

    @field_validator("cut_months")
    @classmethod
    def _cuts(cls, v: list[float]) -> list[float]:
        if not v or any(not (math.isfinite(c) and c > 0) for c in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"cut_months must be increasing numbers > 0 (months), at least one (found {v})")
        return v

    @field_validator("horizons_months")
    @classmethod
    def _horizons(cls, v: list[float]) -> list[float]:
        if any(not (math.isfinite(h) and h > 0) for h in v) or len(set(v)) != len(v):
            raise ValueError(f"horizons_months must be distinct numbers > 0 (months) (found {v})")
        return v

    @model_validator(mode="after")
    def _names(self) -> "SurvivalOptions":
        for c in self.numeric_covariates:
            if c in FACTORS or c in BINARY or c == "hsct" or not c.isidentifier() or c != c.lower():
                raise ValueError(f"numeric covariate {c!r}: a lower-case subjects.csv column name that is not a "
                                 "covariate factor")
        return self


# ------------------------------------------------------------------------------------------ formula
def weibull_terms(t, eta, log_median, shape, *, exp=np.exp, log=np.log):
    """``(log h(t), H(t))`` of the Weibull proportional-hazards model: the one formula.

    ``H(t) = log(2) exp(eta) (t / median)^shape``; ``log h = log(log 2) + eta + log(shape) -
    log(median) + (shape - 1) log(t / median)``. Works on numpy arrays (broadcasting draws against
    patients) and, with ``exp=pt.exp, log=pt.log``, on PyTensor variables.
    """
    z = log(t) - log_median
    return LN2_LOG + eta + log(shape) - log_median + (shape - 1.0) * z, LN2 * exp(eta + shape * z)


def piecewise_exposure(t: np.ndarray, cuts) -> tuple[np.ndarray, np.ndarray]:
    """Time spent in each interval of the piecewise baseline up to ``t`` (months), and the
    interval ``t`` falls in: ``(exposure (n, J), interval (n,))`` with ``J = len(cuts) + 1``.

    Examples
    --------
    >>> e, k = piecewise_exposure(np.array([0.5, 4.0]), [1.0, 3.0])
    >>> e.tolist(), k.tolist()
    ([[0.5, 0.0, 0.0], [1.0, 2.0, 1.0]], [0, 2])
    """
    t = np.asarray(t, dtype=float)
    edges = np.concatenate([[0.0], np.asarray(cuts, dtype=float)])
    upper = np.concatenate([edges[1:], [np.inf]])
    exposure = np.clip(np.minimum(t[:, None], upper[None, :]) - edges[None, :], 0.0, None)
    interval = np.searchsorted(edges, t, side="right") - 1
    return exposure, interval


def piecewise_terms(exposure, interval, eta, log_hazard, *, exp=np.exp):
    """``(log h(t), H(t))`` of the piecewise-exponential model (:func:`piecewise_exposure`).

    ``log_hazard`` has the intervals on its last axis; ``eta`` one value per patient (last axis).
    """
    return log_hazard[..., interval] + eta, exp(eta) * (exp(log_hazard)[..., None, :] * exposure).sum(axis=-1)


def piecewise_median(log_hazard, cuts, *, exp=np.exp, where=np.where):
    """Median (months) of the piecewise-exponential baseline: where ``H(t) = log 2``.

    ``H`` is linear within each interval, so the median is found exactly in the interval where it
    crosses ``log 2``. Works along the last axis (the intervals) on numpy or PyTensor values.
    """
    edges = np.concatenate([[0.0], np.asarray(cuts, dtype=float)])
    width = np.diff(edges)
    h = exp(log_hazard)
    H_end = (h[..., :-1] * width).cumsum(axis=-1)  # H at the end of each closed interval
    zero = H_end[..., :1] * 0.0
    H_start = _concat_last(zero, H_end, h)
    inside = (H_start <= LN2) & (_concat_last(H_end, zero + np.inf, h) > LN2)
    cand = edges + (LN2 - H_start) / h
    return (where(inside, cand, 0.0)).sum(axis=-1)


def switch_terms(log_h0, H0, H0_switch, after, eta, log_hr_after, *, exp=np.exp):
    """``(log h(t), H(t))`` with a covariate that switches on during follow-up (an HSCT).

    ``after`` is 1 for a patient whose switch came before ``t`` (0 otherwise), ``H0_switch`` the
    baseline cumulative hazard at the switch: ``H = exp(eta) (H0(t) + after (exp(b) - 1)
    (H0(t) - H0(switch)))``, ``log h = log h0(t) + eta + b after``. With ``after = 0`` these are the
    terms without a switch.
    """
    log_h = log_h0 + eta + log_hr_after * after
    return log_h, exp(eta) * (H0 + after * (exp(log_hr_after) - 1.0) * (H0 - H0_switch))


def _concat_last(a, b, like):
    if isinstance(like, np.ndarray):
        return np.concatenate([a, b], axis=-1)
    import pytensor.tensor as pt

    return pt.concatenate([a, b], axis=-1)


# ------------------------------------------------------------------------------------------ family
class SurvivalModel(ModelFamily):
    """Proportional-hazards survival model for OS or RFS (see the module docstring).

    Examples
    --------
    >>> from bayes_blina.families import SurvivalModel
    >>> m = SurvivalModel({"endpoint": "rfs", "covariates": ["mrd_response"]})
    >>> sorted(m.priors)
    ['log_hr_mrd_response', 'log_median', 'sd_study', 'shape']
    """

    name = "survival"
    Options = SurvivalOptions
    report_checks = ("survival_curves",)
    outcome = "survival"

    @override
    def default_priors(self) -> dict[str, Prior]:
        o = self.options
        if o.baseline == "weibull":
            p = {"log_median": Prior("Normal", mu=math.log(12.0), sigma=1.5),
                 "shape": Prior("LogNormal", mu=0.0, sigma=0.5)}
        else:
            p = {"log_hazard_first": Prior("Normal", mu=math.log(LN2 / 12.0), sigma=1.5),
                 "sd_log_hazard_step": Prior("HalfNormal", sigma=0.5)}
        p["sd_study"] = Prior("HalfNormal", sigma=0.5)
        for c in [*o.covariates, *o.numeric_covariates] + (["hsct"] if o.time_varying_hsct else []):
            p[f"log_hr_{c}"] = Prior("Normal", mu=0.0, sigma=1.0)
        return p

    # -- data ----------------------------------------------------------------------------------
    @override
    def prepare(self, dataset) -> Prepared:
        o = self.options
        subj = dataset.subjects.reset_index(drop=True)
        days_col, event_col = f"{o.endpoint}_days", f"{o.endpoint}_event"
        if days_col not in subj.columns or pd.to_numeric(subj[days_col], errors="coerce").isna().all():
            raise DataValidationError([Problem(
                "subjects.csv", days_col, None,
                f"the survival model (endpoint {o.endpoint!r}) needs the columns {days_col} and {event_col} "
                "(days from the first infusion start; event 1, censored 0)"
                + ("; every value is empty" if days_col in subj.columns else ""))])
        ids = subj["subject_id"].astype(str).to_numpy()
        days = pd.to_numeric(subj[days_col], errors="coerce").to_numpy(dtype=float)
        event = pd.to_numeric(subj[event_col], errors="coerce").to_numpy(dtype=float)
        keep = np.ones(len(subj), dtype=bool)
        left_out: list[dict[str, str]] = []
        if o.endpoint == "rfs":
            resp = pd.to_numeric(subj["response"], errors="coerce").to_numpy(dtype=float)
            not_cr = resp != 1
            left_out += [{"subject_id": s, "reason": "not in CR (response not 1; RFS is among responders)"}
                         for s in ids[not_cr]]
            keep &= ~not_cr
        no_time = keep & ~(np.isfinite(days) & np.isfinite(event))
        left_out += [{"subject_id": s, "reason": f"no {days_col}"} for s in ids[no_time]]
        keep &= ~no_time
        arrays: dict[str, np.ndarray] = {}
        coords: dict[str, list[str]] = {}
        use: dict[str, Any] = {"endpoint": o.endpoint, "factors": {}, "factors_dropped": {}, "numeric": {}}
        cov_codes: dict[str, np.ndarray] = {}
        for f in o.covariates:
            if f in BINARY:
                v = pd.to_numeric(subj[f], errors="coerce").to_numpy(dtype=float) if f in subj else np.full(len(subj), np.nan)
                miss = keep & ~np.isfinite(v)
                left_out += [{"subject_id": s, "reason": f"{f} unknown (survival covariate)"} for s in ids[miss]]
                keep &= ~miss
                cov_codes[f] = v
                continue
            lv = subject_levels(subj, f)
            miss = keep & lv.isna().to_numpy()
            left_out += [{"subject_id": s, "reason": f"{f} unknown (survival covariate)"} for s in ids[miss]]
            keep &= ~miss
            cov_codes[f] = lv.to_numpy(dtype=object)
        for c, nc in o.numeric_covariates.items():
            if c not in subj.columns:
                raise DataValidationError([Problem(
                    "subjects.csv", c, None, f"the survival model's numeric covariate {c!r} needs this column (a "
                    "number per patient); add it, or remove it from the option numeric_covariates")])
            v, empty = subject_numbers(subj, c)
            bad = keep & ~empty & (~np.isfinite(v) | ((v <= 0) if nc.transform == "log2" else False))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataValidationError([Problem(
                    "subjects.csv", c, i + 1, f"{c} must be a number{' > 0 (transform log2)' if nc.transform == 'log2' else ''}",
                    str(subj[c].iloc[i]))])
            miss = keep & empty
            left_out += [{"subject_id": s, "reason": f"{c} empty (numeric survival covariate)"} for s in ids[miss]]
            keep &= ~miss
            cov_codes[c] = v
        if not keep.any():
            raise DataValidationError([Problem(
                "subjects.csv", days_col, None,
                f"no patient can enter the survival model ({len(left_out)} left out; first: "
                f"{left_out[0]['subject_id'] if left_out else '-'}: {left_out[0]['reason'] if left_out else '-'})")])
        sub = np.flatnonzero(keep)
        t_days = days[sub]
        at_zero = t_days <= 0
        use["placed_at_half_day"] = ids[sub][at_zero].tolist()
        t = np.where(at_zero, 0.5, t_days) / DAYS_PER_MONTH
        arrays["time"], arrays["event"] = t, event[sub].astype(np.int64)
        coords["patient"] = ids[sub].tolist()
        for f in o.covariates:
            x = cov_codes[f][sub]
            if f in BINARY:
                arrays[f"x_{f}"] = x.astype(float)
                use["factors"][f] = {"0": int((x == 0).sum()), "1": int((x == 1).sum())}
                if len(set(x.tolist())) < 2:
                    use["factors_dropped"][f] = f"one value in the data ({int(x[0])})"
                    del arrays[f"x_{f}"]
                continue
            present = sorted(set(x.tolist()))
            levels = [lv for lv in factor_vocabulary(f, present) if lv in present]
            if len(levels) < 2:
                use["factors_dropped"][f] = f"one level in the data ({levels[0]})"
                continue
            lut = {lv: i for i, lv in enumerate(levels)}
            arrays[f"x_{f}"] = np.array([lut[v] for v in x], dtype=np.int64)
            coords[f"{f}_contrast"] = levels[1:]
            use["factors"][f] = {lv: int((arrays[f"x_{f}"] == i).sum()) for i, lv in enumerate(levels)}
            use["factors"][f]["reference"] = levels[0]
        for c, nc in o.numeric_covariates.items():
            x = cov_codes[c][sub]
            arrays[f"x_{c}"] = nc.values(x)
            use["numeric"][c] = {"ref": nc.ref, "transform": nc.transform, "median": float(np.median(x)),
                                 "min": float(x.min()), "max": float(x.max())}
        studies = sorted(set(subj["study"].astype(str).to_numpy()[sub]))
        if o.study_effect and len(studies) > 1:
            lut = {s: i for i, s in enumerate(studies)}
            arrays["study"] = np.array([lut[s] for s in subj["study"].astype(str).to_numpy()[sub]], dtype=np.int64)
            coords["study"] = studies
        use["studies"] = studies
        if o.baseline == "piecewise":
            arrays["exposure"], arrays["interval"] = piecewise_exposure(t, o.cut_months)
            coords["interval"] = _interval_labels(o.cut_months)
            use["events_per_interval"] = dict(zip(coords["interval"],
                                                  np.bincount(arrays["interval"][arrays["event"] == 1],
                                                              minlength=len(coords["interval"])).tolist()))
        if o.time_varying_hsct:
            if "hsct_days" not in subj.columns:
                raise DataValidationError([Problem(
                    "subjects.csv", "hsct_days", None, "the option time_varying_hsct needs the column hsct_days (days "
                    "from the first infusion start to an alloHSCT; empty: none)")])
            h = pd.to_numeric(subj["hsct_days"], errors="coerce").to_numpy(dtype=float)[sub] / DAYS_PER_MONTH
            after = np.isfinite(h) & (h < t)
            use["hsct"] = {"before_end_of_follow_up": int(after.sum()),
                           "after_or_none": int(len(after) - after.sum())}
            if not after.any():  # hr_hsct would be its prior: left out, and said so
                use["factors_dropped"]["hsct"] = "no patient has hsct_days before the end of follow-up"
            else:
                arrays["hsct_after"] = after.astype(float)
                arrays["hsct_time"] = np.where(after, np.maximum(h, 1e-9), t)  # = t where no switch: no term
                if o.baseline == "piecewise":
                    arrays["exposure_hsct"], _ = piecewise_exposure(arrays["hsct_time"], o.cut_months)
        coords["horizon"] = [f"{h:g} months" for h in o.horizons_months]
        use.update({"patients_used": int(len(sub)), "events": int(arrays["event"].sum()),
                    "censored": int(len(sub) - arrays["event"].sum()), "patients_left_out": left_out,
                    "median_followup_months": float(np.median(t))})
        return Prepared(arrays=arrays, coords=coords, data_use=use)

    def covariate_terms(self, prepared: Prepared) -> list[tuple[str, str | None]]:
        """``(name, contrast dimension or None)`` of every covariate in the fitted model."""
        out = []
        for f in [*self.options.covariates, *self.options.numeric_covariates]:
            if f"x_{f}" in prepared.arrays:
                dim = f"{f}_contrast"
                out.append((f, dim if dim in prepared.coords else None))
        return out

    # -- model ---------------------------------------------------------------------------------
    @override
    def build(self, prepared: Prepared):
        import pymc as pm
        import pytensor.tensor as pt

        A, o, P = prepared.arrays, self.options, self.priors
        n = len(A["time"])
        with pm.Model(coords=prepared.coords) as model:
            coef = {}
            for f, dim in self.covariate_terms(prepared):
                coef[f] = P[f"log_hr_{f}"].create(f"log_hr_{f}", **({"dims": dim} if dim else {}))
                pm.Deterministic(f"hr_{f}", pt.exp(coef[f]), dims=dim)
            study = None
            if "study" in A:
                study = (P["sd_study"].create("sd_study"), pm.Normal("z_study", 0.0, 1.0, dims="study"))
            eta = self.eta_terms(prepared, coef, study, zeros=lambda b: pt.zeros_like(b[..., :1]),
                                 concat=lambda parts: pt.concatenate(parts, axis=-1), start=pt.zeros(n))
            horizons = np.asarray(o.horizons_months, dtype=float)
            if o.baseline == "weibull":
                params = {"log_median": P["log_median"].create("log_median"), "shape": P["shape"].create("shape")}
                pm.Deterministic("median_months", pt.exp(params["log_median"]))
            else:
                first = P["log_hazard_first"].create("log_hazard_first")
                sd_step = P["sd_log_hazard_step"].create("sd_log_hazard_step")
                steps = pm.Normal("z_log_hazard_step", 0.0, 1.0, shape=len(o.cut_months))
                log_hazard = pm.Deterministic(
                    "log_hazard", first + pt.concatenate([pt.zeros(1), pt.cumsum(sd_step * steps)]), dims="interval")
                params = {"log_hazard": log_hazard}
                pm.Deterministic("median_months", piecewise_median(log_hazard, o.cut_months, exp=pt.exp, where=pt.where))
            H_ref = self.baseline_cumulative(params, horizons, exp=pt.exp, log=pt.log)
            b_hsct = None
            if "hsct_after" in A:
                b_hsct = P["log_hr_hsct"].create("log_hr_hsct")
                pm.Deterministic("hr_hsct", pt.exp(b_hsct))
            log_h, cum_h = self.patient_terms(A, params, eta, b_hsct, exp=pt.exp, log=pt.log)
            pm.Deterministic("surv_prob", pt.exp(-H_ref), dims="horizon")
            pm.Potential("loglik", pt.sum(A["event"] * log_h - cum_h))
        return model

    def eta_terms(self, prepared: Prepared, coef, study, *, zeros, concat, start):
        """The linear predictor ``eta`` of the model's patients: the one formula of the covariate
        and study terms, for PyTensor variables (:meth:`build`) and for numpy draws
        (:meth:`linear_predictor`).

        ``coef[f]``: the log hazard ratio(s) of covariate ``f`` (contrasts on the last axis; a
        scalar coefficient shaped to broadcast against patients), ``study``: ``(sd, z)`` or None,
        ``zeros(b)``: a zero of ``b``'s shape with a last axis of 1, ``concat``: join along the last
        axis, ``start``: the zero predictor.
        """
        A = prepared.arrays
        eta = start
        for f, dim in self.covariate_terms(prepared):
            b = coef[f]
            eta = eta + (b * A[f"x_{f}"] if dim is None else concat([zeros(b), b])[..., A[f"x_{f}"]])
        if study is not None:
            sd, z = study
            eta = eta + sd * z[..., A["study"]]
        return eta

    def baseline_cumulative(self, params, t, *, exp=np.exp, log=np.log):
        """``H0(t)`` at the times ``t`` (months; last axis) for the baseline parameters ``params``
        (numpy draws on leading axes, shaped as :meth:`patient_terms` takes them, or PyTensor)."""
        if self.options.baseline == "weibull":
            return weibull_terms(np.maximum(np.asarray(t, dtype=float), 1e-12), 0.0, params["log_median"],
                                 params["shape"], exp=exp, log=log)[1]
        ex, _ = piecewise_exposure(t, self.options.cut_months)  # (time, interval)
        return (exp(params["log_hazard"])[..., None, :] * ex).sum(axis=-1)

    def patient_terms(self, A, params, eta, log_hr_hsct=None, *, exp=np.exp, log=np.log):
        """``(log h_i(t_i), H_i(t_i))`` of the fitted patients: the baseline formula
        (:func:`weibull_terms` or :func:`piecewise_terms`) with the HSCT switch
        (:func:`switch_terms`) where the option asks for it. ``params``: ``log_median`` and
        ``shape``, or ``log_hazard`` (numpy arrays with leading draw axes, or PyTensor variables)."""
        if self.options.baseline == "weibull":
            def base(key):
                return weibull_terms(A[key], 0.0, params["log_median"], params["shape"], exp=exp, log=log)
            log_h0, H0 = base("time")
            H0_s = base("hsct_time")[1] if log_hr_hsct is not None else None
        else:
            log_h0, H0 = piecewise_terms(A["exposure"], A["interval"], 0.0, params["log_hazard"], exp=exp)
            H0_s = (piecewise_terms(A["exposure_hsct"], A["interval"], 0.0, params["log_hazard"], exp=exp)[1]
                    if log_hr_hsct is not None else None)
        if log_hr_hsct is None:
            return log_h0 + eta, exp(eta) * H0
        return switch_terms(log_h0, H0, H0_s, A["hsct_after"], eta, log_hr_hsct, exp=exp)

    @override
    def summary_vars(self) -> list[str]:
        o = self.options
        v = ["median_months", "surv_prob"] + [f"hr_{c}" for c in [*o.covariates, *o.numeric_covariates]]
        v += ["hr_hsct"] if o.time_varying_hsct else []
        v += ["shape"] if o.baseline == "weibull" else ["log_hazard"]
        return v + ["sd_study"]

    # -- numpy: the pointwise likelihood --------------------------------------------------------
    def linear_predictor(self, post, prepared: Prepared) -> np.ndarray:
        """``eta`` of every fitted patient for every draw: shape ``(chain, draw, patient)``."""
        A = prepared.arrays
        shape = post["median_months"].shape
        coef = {f: np.asarray(post[f"log_hr_{f}"].values, dtype=float)[..., None] if dim is None
                else np.asarray(post[f"log_hr_{f}"].values, dtype=float)
                for f, dim in self.covariate_terms(prepared)}
        study = ((np.asarray(post["sd_study"].values)[..., None], np.asarray(post["z_study"].values))
                 if "study" in A else None)
        return self.eta_terms(prepared, coef, study, zeros=lambda b: np.zeros(b.shape[:-1] + (1,)),
                              concat=lambda parts: np.concatenate(parts, axis=-1),
                              start=np.zeros(shape + (len(A["time"]),)))

    def log_likelihood(self, idata, prepared: Prepared) -> dict[str, Any]:
        """Pointwise log-likelihood ``y`` (chain, draw, patient): ``e log h(t) - H(t)``, the same
        formula as the model (:func:`weibull_terms` / :func:`piecewise_terms`)."""
        import xarray as xr

        from bayes_blina._tree import as_dataset

        post = as_dataset(idata.posterior)
        A = prepared.arrays
        eta = self.linear_predictor(post, prepared)
        log_h, cum_h = self.patient_terms(A, self._numpy_params(post), eta, self._numpy_hsct(post, A))
        ll = A["event"] * log_h - cum_h
        return {"y": xr.DataArray(ll, dims=("chain", "draw", "patient"),
                                  coords={"chain": post.chain, "draw": post.draw, "patient": prepared.coords["patient"]})}

    def survival_draws(self, post, prepared: Prepared, times) -> np.ndarray:
        """``S_i(t)`` of every fitted patient at ``times`` (months) for every draw of ``post``.

        Returns an array ``(chain, draw, patient, time)``: the model's survival function
        ``exp(-H_i(t))`` with each patient's own covariates and study (:meth:`linear_predictor`),
        from the same formulas as the likelihood.
        """
        times = np.asarray(times, dtype=float)
        A = prepared.arrays
        eta = self.linear_predictor(post, prepared)[..., None]  # (chain, draw, patient, 1)

        params = self._numpy_params(post)

        def H0(t):  # baseline cumulative hazard at times t: (chain, draw, len(t))
            return self.baseline_cumulative(params, t)

        H0_t = H0(times)[..., None, :]  # (chain, draw, 1, time)
        if "hsct_after" not in A:
            return np.exp(-np.exp(eta) * H0_t)
        # each patient's own transplant (when it came before the end of their follow-up)
        th = np.where(A["hsct_after"] > 0, A["hsct_time"], np.inf)
        after = (th[:, None] < times[None, :]).astype(float)  # (patient, time)
        H0_s = H0(np.where(np.isfinite(th), th, 0.0))[..., :, None]  # (chain, draw, patient, 1)
        b = np.asarray(post["log_hr_hsct"].values)[..., None, None]
        return np.exp(-switch_terms(0.0, H0_t, H0_s, after, eta, b)[1])

    def new_patient_arrays(self, subjects: pd.DataFrame, posterior, data_use, *, file: str = "subjects.csv"
                           ) -> Prepared:
        """The covariate arrays of new patients (``subjects.csv`` rows) on the fit's coding.

        Factor levels must be levels of the fit (the reference level or one of its contrasts), a
        binary covariate 0 or 1, a numeric one a number; anything else is an error naming the row.
        ``hsct_days``, where given and the fit has the transplant term, switches the hazard on
        that day. A new patient belongs to a new study (:meth:`predict_survival`).
        """
        subj = subjects.reset_index(drop=True)
        n = len(subj)
        arrays: dict[str, np.ndarray] = {"time": np.zeros(n)}
        coords: dict[str, list[str]] = {"patient": subj["subject_id"].astype(str).tolist()}
        problems: list[Problem] = []
        for f in self.options.covariates:
            dim = f"{f}_contrast"
            if f in BINARY:
                if f"log_hr_{f}" not in posterior:
                    continue
                v = pd.to_numeric(subj[f], errors="coerce").to_numpy(dtype=float) if f in subj else np.full(n, np.nan)
                for i in np.flatnonzero(~np.isin(v, (0.0, 1.0))):
                    problems.append(Problem(file, f, i + 1, f"{f} must be 0 or 1 for a prediction from this fit",
                                            None if not np.isfinite(v[i]) else str(v[i])))
                arrays[f"x_{f}"] = np.nan_to_num(v)
                continue
            if dim not in posterior.dims:
                continue
            levels = [str((data_use.get("factors", {}).get(f) or {}).get("reference", "")),
                      *[str(x) for x in posterior[dim].values]]
            lv = subject_levels(subj, f)
            lut = {x: i for i, x in enumerate(levels)}
            for i, x in enumerate(lv):
                if x not in lut:
                    problems.append(Problem(file, f, i + 1, f"{f} must be one of the fit's levels ({', '.join(levels)})",
                                            None if x is None else str(x)))
            arrays[f"x_{f}"] = np.array([lut.get(x, 0) for x in lv], dtype=np.int64)
            coords[dim] = levels[1:]
        for c, nc in self.options.numeric_covariates.items():
            v = subject_numbers(subj, c)[0] if c in subj else np.full(n, np.nan)
            ok = np.isfinite(v) & ((v > 0) if nc.transform == "log2" else True)
            for i in np.flatnonzero(~ok):
                problems.append(Problem(file, c, i + 1, f"{c} must be a number"
                                        f"{' > 0' if nc.transform == 'log2' else ''} (a covariate of this fit)"))
            arrays[f"x_{c}"] = nc.values(np.where(ok, v, nc.ref))  # (bad rows raise below)
        if problems:
            raise DataValidationError(problems)
        if "log_hr_hsct" in posterior and "hsct_days" in subj:
            h = pd.to_numeric(subj["hsct_days"], errors="coerce").to_numpy(dtype=float) / DAYS_PER_MONTH
            arrays["hsct_after"] = np.isfinite(h).astype(float)
            arrays["hsct_time"] = np.where(np.isfinite(h), np.maximum(h, 1e-9), 0.0)
        return Prepared(arrays=arrays, coords=coords, data_use={})

    def predict_survival(self, post, subjects: pd.DataFrame, data_use, times, *, landmark: float = 0.0,
                         prob: float = 0.95, seed: int = 0) -> pd.DataFrame:
        """Posterior survival curves of new patients, each in a new study, at ``times`` (months).

        With ``landmark`` > 0 the curves are conditional on being event-free at the landmark:
        ``S(t) / S(landmark)`` for ``t >= landmark`` (times before it are left out). With several
        studies in the fit, each draw adds a new study's effect ``sd_study * N(0, 1)``.

        Returns
        -------
        DataFrame
            ``subject_id, landmark_months, time_months, survival_median, survival_lower,
            survival_upper`` (equal-tailed ``prob`` interval).
        """
        from bayes_blina._tree import as_dataset

        post = as_dataset(post)
        times = np.asarray(sorted(float(t) for t in times if float(t) >= landmark), dtype=float)
        if not len(times):
            raise DataValidationError([Problem("--times", None, None, f"no time at or after the landmark {landmark:g}")])
        new = self.new_patient_arrays(subjects, post, data_use)
        grid = np.concatenate([[landmark], times])
        S = self.survival_draws(post, new, grid)  # (chain, draw, patient, 1 + time)
        if "sd_study" in post:  # a new study: its effect multiplies the cumulative hazard
            rng = np.random.default_rng(seed)
            u = np.asarray(post["sd_study"].values)[..., None, None] * rng.standard_normal(S.shape[:2])[..., None, None]
            S = S ** np.exp(u)
        cond = S[..., 1:] / np.maximum(S[..., :1], 1e-300)
        flat = cond.reshape(-1, *cond.shape[2:])
        q = (1.0 - prob) / 2.0
        lo, med, hi = np.quantile(flat, [q, 0.5, 1.0 - q], axis=0)
        ids = new.coords["patient"]
        return pd.DataFrame({"subject_id": np.repeat(ids, len(times)), "landmark_months": landmark,
                             "time_months": np.tile(times, len(ids)), "survival_median": med.ravel(),
                             "survival_lower": lo.ravel(), "survival_upper": hi.ravel()})

    @staticmethod
    def stored_prepared(constant_data, posterior, data_use) -> Prepared:
        """The :class:`Prepared` of a stored fit, rebuilt from its ``constant_data`` (the arrays)
        and its posterior's contrast coordinates (no data are read again)."""
        arrays = {k: np.asarray(constant_data[k].values) for k in constant_data.data_vars}
        coords = {str(d): [str(v) for v in posterior[d].values] for d in posterior.dims if str(d).endswith("_contrast")}
        return Prepared(arrays=arrays, coords=coords, data_use=data_use)

    def _numpy_params(self, post) -> dict[str, np.ndarray]:
        """The baseline parameters of every draw, shaped to broadcast against patients."""
        if self.options.baseline == "weibull":
            return {k: np.asarray(post[k].values)[..., None] for k in ("log_median", "shape")}
        return {"log_hazard": np.asarray(post["log_hazard"].values)}

    @staticmethod
    def _numpy_hsct(post, A):
        return np.asarray(post["log_hr_hsct"].values)[..., None] if "hsct_after" in A else None

    @override
    def pointwise_observed(self) -> list[str]:
        return []

    @override
    def observed_arrays(self, prepared: Prepared) -> dict[str, np.ndarray]:
        return {"time_months": prepared.arrays["time"], "event": prepared.arrays["event"]}


def _interval_labels(cuts) -> list[str]:
    edges = [0.0, *cuts]
    return [f"{a:g}-{b:g} months" for a, b in zip(edges, edges[1:])] + [f">{edges[-1]:g} months"]
