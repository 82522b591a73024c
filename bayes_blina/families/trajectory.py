"""What every trajectory family shares: options, data preparation, prefixes, pointwise likelihood.

The trajectory families (:mod:`~bayes_blina.families.pulse` for cytokines and laboratory values,
:mod:`~bayes_blina.families.kinetics` for T cells, neutrophils and platelets,
:mod:`~bayes_blina.families.depletion` for CD19 B cells) all model the log of one or more analytes
of every patient over time, with a censored (M3) log-normal likelihood
(:mod:`bayes_blina.likelihood`). They share one copy of

* the options every one of them has (:class:`TrajectoryOptions`);
* the data preparation (:func:`prepare_trajectory`): which rows are used and why the others are
  left out (recorded in ``Prepared.data_use``), the censoring flags and limits, the order of the
  rows (uncensored first, then censored, so each branch of the likelihood is a contiguous slice),
  the infusion events (:func:`bayes_blina.events.infusion_events`) and the (observation, event)
  pairs with a lag in ``(0, max_event_lag_h]``, and the subject covariates;
* priors per analyte: a prior named ``"NAME[ANALYTE]"`` (e.g. ``"t_nadir[NEUT]"``) overrides the
  prior ``NAME`` for that analyte only (the more specific name wins); every analyte's prior of one
  parameter must use the same distribution. Without such names the model is exactly as with one
  prior per parameter;
* the interface other models build on (:class:`TrajectoryFamily`):

  ``add_to_model(prepared, prefix="")``
      adds the family's variables to the current PyMC model (inside ``with model:``); every
      variable is named ``prefix + name`` and every dimension ``prefix + dim`` (``subject`` and
      ``analyte`` included), so two families, or two copies of one, can live in one model. The
      likelihood is the potential ``prefix + "loglik"``. It returns the family's patient-level
      quantities (tensors with dimensions ``(subject, analyte)``) for a joint model to use.
  ``mean_log(draws, prepared)``
      numpy: the noise-free log value of every observation row of ``prepared`` for each draw, from
      draws of the family's variables *without* prefix (:func:`unprefixed` strips one).
  ``sigma_name``
      the residual SD per analyte (``"sigma_obs"``).

Rows of the ``Prepared`` arrays
-------------------------------
``obs_position`` (row of the observations table), ``obs_subject``, ``obs_analyte``, ``obs_time_h``,
``log_y`` (0 on censored rows), ``log_limit`` (0 on uncensored rows; the upper limit of a
censored row), ``log_lower`` (log LOD of a row flagged ``'LLOQ'`` with a known LOD, which is
interval-censored in ``[LOD, LLOQ)``; NaN elsewhere), ``is_censored``; events
``event_subject``, ``event_time_h``, ``event_dose``, ``event_log_dose`` (``log(dose / 15)``; the
pulse family's ``exposure = "css"`` adds the patient's log Css offset), ``event_reexposure``
(1 unless the patient's first ever start), ``event_cycle_m1``; pairs ``pair_obs``, ``pair_lag``,
``pair_subject``, ``pair_analyte``, ``pair_log_dose``, ``pair_reexposure``, ``pair_cycle_m1``;
and ``cov_<factor>`` (level index per subject) for each covariate.
"""
from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Mapping, NamedTuple, override

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bayes_blina._tree import as_dataset
from bayes_blina.errors import DataValidationError, Problem, SpecError, UnknownPriorError
from bayes_blina.events import infusion_events, time_features
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.families.levels import factor_vocabulary, subject_levels
from bayes_blina.likelihood import censored_lognormal_logp_np, censored_rows, censoring_limits
from bayes_blina.priors import Prior

__all__ = ["REFERENCE_DOSE", "TrajectoryFamily", "TrajectoryOptions", "cell_values", "pair_sum", "pair_total", "prefixed_coords",
           "prepare_trajectory", "unprefixed"]

#: Reference dose (µg/m²/day) of dose effects: ``log(dose / REFERENCE_DOSE)``.
REFERENCE_DOSE = 15.0

#: Coordinates kept even when empty (every model needs them).
_ALWAYS = ("analyte", "subject")

#: A prior name for one analyte: ``NAME[ANALYTE]``.
_PER_ANALYTE = re.compile(r"^(\w+)\[([^\]]+)\]$")


class TrajectoryOptions(BaseModel):
    """Options every trajectory family has (families add their own).

    Attributes
    ----------
    analytes : list of str
        Analytes modelled (canonical codes; aliases are resolved).
    covariates : list of str
        Subject covariates with an effect (which ones each family allows: its own ``Options``).
    cycles : int
        Highest treatment cycle used; later observations and events are left out.
    window_days : float or None
        Window of the data, in days from the first infusion start (day 1 begins at the first
        infusion start, ``time_h = 0``): with ``window_days = N`` only observations before the end
        of day N (``time_h < 24 N``) and events before then are used, whatever happens to the
        patient later; later rows are left out with the reason "after the biomarker window (day N
        from the first infusion start)". ``None`` (default): no window.
    max_event_lag_h : float
        Only events at most this many hours before an observation contribute.
    relative_to_baseline : bool
        Model values relative to the patient's pre-treatment reference (laboratory values).
    censoring : {"m3", "half_lod"}
        ``"m3"``: censored likelihood. ``"half_lod"``: substitute half the limit and treat the row
        as observed; **for comparison only**.
    gap_tol_h : float
        Gaps up to this many hours between dosing segments are continuous infusion.
    """

    model_config = ConfigDict(extra="forbid")
    analytes: list[str]
    covariates: list[str] = Field(default_factory=list)
    cycles: int = Field(2, ge=1)
    window_days: float | None = Field(None, gt=0)
    max_event_lag_h: float = Field(336.0, gt=0)
    relative_to_baseline: bool = False
    censoring: Literal["m3", "half_lod"] = "m3"
    gap_tol_h: float = Field(1.0, ge=0)

    @field_validator("analytes")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        from bayes_blina.data.analytes import analyte_codes, resolve_analyte

        if not v:
            raise ValueError("at least one analyte is needed")
        codes = []
        for name in v:
            code = resolve_analyte(name)
            if code is None:
                raise ValueError(f"unknown analyte {name!r}; known codes: {', '.join(analyte_codes())}")
            codes.append(code)
        if len(set(codes)) != len(codes):
            raise ValueError(f"analytes must not repeat (found {codes})")
        return codes

    @field_validator("covariates")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("covariates must not repeat")
        return v


# --------------------------------------------------------------------------------------------------
# prefixes
# --------------------------------------------------------------------------------------------------


def prefixed_coords(coords: Mapping[str, list[str]], prefix: str) -> dict[str, list[str]]:
    """Coordinates of a :class:`Prepared` renamed for a model built with ``prefix``.

    Parameters
    ----------
    coords : mapping
        ``Prepared.coords`` (dimension name to labels).
    prefix : str
        The prefix given to ``add_to_model``.

    Returns
    -------
    dict
        ``{prefix + dim: labels}``. Empty coordinates (e.g. the contrasts of a covariate with one
        level in the data) are dropped, except ``subject`` and ``analyte``.

    Examples
    --------
    >>> prefixed_coords({"subject": ["P1"], "analyte": ["CD3"], "x_contrast": []}, "t_")
    {'t_subject': ['P1'], 't_analyte': ['CD3']}
    """
    return {prefix + k: list(v) for k, v in coords.items() if len(v) or k in _ALWAYS}


def unprefixed(draws, prefix: str):
    """Variables and dimensions of ``draws`` that start with ``prefix``, with the prefix removed.

    Parameters
    ----------
    draws : xarray.Dataset
        E.g. ``idata.posterior`` of a model holding a family added with ``prefix``.
    prefix : str
        The prefix; ``""`` returns ``draws`` unchanged.

    Returns
    -------
    xarray.Dataset
        What :meth:`TrajectoryFamily.mean_log` takes.
    """
    draws = as_dataset(draws)
    if not prefix:
        return draws
    keep = [v for v in draws.data_vars if str(v).startswith(prefix)]
    ds = draws[keep]
    names = {v: str(v)[len(prefix):] for v in keep}
    names.update({d: str(d)[len(prefix):] for d in ds.dims if str(d).startswith(prefix)})
    return ds.rename(names)


def _values(draws, name: str) -> np.ndarray:
    """``draws[name]`` as a float array (xarray or plain arrays)."""
    v = draws[name]
    return np.asarray(v.values if hasattr(v, "values") else v, dtype=float)


def analyte_values(post, name: str, analytes: list[str] | None = None) -> np.ndarray:
    """``post[name]`` as a float array, its ``analyte`` axis in the order of ``analytes``."""
    da = post[name]
    if analytes is not None and "analyte" in da.dims:
        da = da.sel(analyte=analytes)
    return np.asarray(da.values, dtype=float)


def diagonal_chol(post, sd_name: str, analytes: list[str]) -> np.ndarray:
    """Cholesky factor (S, a, a) of independent patient effects with SDs ``post[sd_name]`` (S, a)."""
    return np.einsum("sa,ab->sab", analyte_values(post, sd_name, analytes), np.eye(len(analytes)))


def correlated_chol(post, sd_name: str, corr_name: str, analytes: list[str]) -> np.ndarray:
    """Cholesky factor (S, a, a) of ``diag(sd) corr diag(sd)``; ``diag(sd)`` when the draws have no
    correlation matrix ``corr_name`` (one analyte, or ``correlated = false``)."""
    if corr_name not in post:
        return diagonal_chol(post, sd_name, analytes)
    sd = analyte_values(post, sd_name, analytes)
    corr = post[corr_name].sel(analyte=analytes)
    other = [d for d in corr.dims if d not in ("sample", "analyte")][0]
    corr = np.asarray(corr.sel({other: analytes}).transpose("sample", "analyte", other).values, dtype=float)
    cov = sd[:, :, None] * corr * sd[:, None, :]
    return np.linalg.cholesky(cov + 1e-12 * np.eye(len(analytes)))


class PatientEffects(NamedTuple):
    """The population distribution of a trajectory family's patient effects, per posterior draw:
    what landmark prediction (:mod:`bayes_blina.joint.landmark`) samples new patients' effects from.

    Attributes
    ----------
    blocks : list of str
        Names of the effect blocks, each one value per analyte, in the order of the effect vector.
    mean : list of numpy.ndarray
        Per block, the population mean (S, n, a) of the ``n`` patients (covariate shifts included).
    chol : list of numpy.ndarray
        Per block, the Cholesky factor (S, a, a) of its between-patient covariance.
    """

    blocks: list[str]
    mean: list[np.ndarray]
    chol: list[np.ndarray]


# --------------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------------


#: Subjects per block when pairing observations with events (bounds the memory of the pairing).
PAIR_BLOCK_SUBJECTS = 20_000


def _event_pairs(obs_subject: np.ndarray, t_obs: np.ndarray, ev_subject: np.ndarray,
                 ev_time: np.ndarray, max_lag_h: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observation, event) pairs of the same subject with a lag in ``(0, max_lag_h]``, sorted by
    observation then event; paired block by block of subjects, so that the candidate pairs of
    only one block are ever held at once."""
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    n_sub = int(max(obs_subject.max(initial=-1), ev_subject.max(initial=-1))) + 1
    o_all, e_all = np.arange(len(obs_subject)), np.arange(len(ev_subject))
    for lo in range(0, max(n_sub, 1), PAIR_BLOCK_SUBJECTS):
        hi = lo + PAIR_BLOCK_SUBJECTS
        o_in = (obs_subject >= lo) & (obs_subject < hi)
        e_in = (ev_subject >= lo) & (ev_subject < hi)
        left = pd.DataFrame({"o": o_all[o_in], "s": obs_subject[o_in], "t": t_obs[o_in]})
        right = pd.DataFrame({"e": e_all[e_in], "s": ev_subject[e_in], "te": ev_time[e_in]})
        pairs = left.merge(right, on="s", how="inner")
        lag = pairs["t"].to_numpy() - pairs["te"].to_numpy()
        ok = (lag > 0) & (lag <= max_lag_h)
        found.append((pairs["o"].to_numpy(np.int64)[ok], pairs["e"].to_numpy(np.int64)[ok], lag[ok]))
    pair_obs, pair_event, pair_lag = (np.concatenate([f[i] for f in found]) for i in range(3))
    order = np.lexsort((pair_event, pair_obs))
    return pair_obs[order], pair_event[order], pair_lag[order]


def prepare_trajectory(dataset, opt: TrajectoryOptions, *, family: str, uses_events: bool = True) -> Prepared:
    """Rows, events, pairs and covariates of a trajectory family (see the module docstring).

    Parameters
    ----------
    dataset : Dataset
        Validated dataset with observations and dosing (subjects for covariates).
    opt : TrajectoryOptions
        The family's options.
    family : str
        Family name, for messages.
    uses_events : bool
        Build the (observation, event) pairs (a family whose curve does not depend on the events,
        such as depletion, skips them).

    Returns
    -------
    Prepared
        Arrays, coordinates (``analyte``, ``subject``, ``obs``, ``<covariate>_contrast``) and
        ``data_use`` (every row used or left out, with the reason).

    Raises
    ------
    DataValidationError
        If there are no observations or dosing, or a requested analyte has no usable rows.
    """
    obs_all = dataset.observations
    if obs_all is None or len(obs_all) == 0:
        raise DataValidationError([Problem("observations.csv", None, None,
                                           f"the {family} model needs observations")])
    if dataset.dosing is None or len(dataset.dosing) == 0:
        raise DataValidationError([Problem("dosing.csv", None, None,
                                           f"the {family} model needs a dosing table")])
    use: dict[str, Any] = {
        "analytes": list(opt.analytes), "censoring": opt.censoring,
        "rows_total": int(len(obs_all)), "rows_used": 0, "rows_left_out": [],
        "positions": "0-based row positions in the observations table",
    }
    obs = obs_all.reset_index(drop=True)  # a new frame (copy-on-write): the input is never changed
    obs["_pos"] = np.arange(len(obs), dtype=np.int64)
    keep = np.ones(len(obs), dtype=bool)

    def leave_out(mask: np.ndarray, reason: str, **extra: Any) -> None:
        mask = mask & keep
        if mask.any():
            use["rows_left_out"].append({"reason": reason, "n_rows": int(mask.sum()),
                                         "positions": [int(p) for p in obs.loc[mask, "_pos"]], **extra})
            keep[mask] = False

    # ---- analytes not modelled (counts only: the reason is the analyte itself)
    ana = obs["analyte"].astype(str).to_numpy()
    modelled = np.isin(ana, opt.analytes)
    if (~modelled).any():
        counts = pd.Series(ana[~modelled]).value_counts().sort_index()
        use["rows_left_out"].append({"reason": "analyte not modelled (options.analytes)",
                                     "n_rows": int((~modelled).sum()),
                                     "by_analyte": {str(k): int(v) for k, v in counts.items()}})
        keep &= modelled

    # ---- subjects without dosing
    events = infusion_events(dataset.dosing, gap_tol_h=opt.gap_tol_h)
    sid = obs["subject_id"].astype(str).to_numpy()
    # hashed membership: np.isin compares object arrays element by element (patients x rows)
    dosed = pd.Index(sid).isin(events["subject_id"].astype(str).unique())
    for s in pd.unique(sid[keep & ~dosed]):
        leave_out((sid == s) & ~dosed, "subject has no dosing rows with dose > 0", subject_id=str(s))

    # ---- cycles beyond options.cycles
    feats = time_features(obs[["subject_id", "time_h"]], dataset.dosing, gap_tol_h=opt.gap_tol_h)
    cycle = feats["cycle"].to_numpy()
    for c in sorted(set(cycle[keep & (cycle > opt.cycles)].tolist())):
        leave_out(cycle == c, f"cycle {c} is beyond options.cycles = {opt.cycles}")

    # ---- after the window (the same for every patient, whatever happens later; after the cycle
    # rule, so that the rows it removes are those of the cycles used)
    t_rows = pd.to_numeric(obs["time_h"], errors="coerce").to_numpy(dtype=float)
    if opt.window_days is not None:
        end_h = window_end_h(opt.window_days)
        use["window"] = {"days": float(opt.window_days), "end_h": end_h,
                         "rule": f"rows with time_h < {end_h:g} h (the end of day {opt.window_days:g} "
                                 "from the first infusion start)"}
        leave_out(t_rows >= end_h, window_reason(opt.window_days))

    # ---- covariates
    subjects = dataset.subjects
    cov_levels: dict[str, pd.Series] = {}
    for f in opt.covariates:
        if subjects is not None and len(subjects):
            lv = subject_levels(subjects, f)
            lut = dict(zip(subjects["subject_id"].astype(str), lv))
        else:
            lut = {}
        per_row = pd.Series([lut.get(s) for s in sid], dtype=object)
        cov_levels[f] = per_row
        leave_out(per_row.isna().to_numpy(), f"subject's {f} is unknown (covariate of the model)")

    # ---- values and censoring
    is_cens, limit, lower = censoring_limits(obs)
    value = pd.to_numeric(obs["value"], errors="coerce").to_numpy(dtype=float)
    leave_out(is_cens & ~(limit > 0), "censored row without a positive limit of the kind named by 'below'")
    leave_out(~is_cens & ~np.isfinite(value), "value missing on an uncensored row")
    zero = ~is_cens & np.isfinite(value) & (value <= 0)
    if zero.any():
        lod = pd.to_numeric(obs.get("lod", pd.Series(np.nan, index=obs.index)), errors="coerce").to_numpy(float)
        lloq = pd.to_numeric(obs.get("lloq", pd.Series(np.nan, index=obs.index)), errors="coerce").to_numpy(float)
        zlim = np.where(lod > 0, lod, np.where(lloq > 0, lloq, np.nan))
        leave_out(zero & ~(zlim > 0), "value 0 (log undefined) and no lod/lloq on the row to censor at")
        as_cens = zero & keep
        if as_cens.any():
            is_cens = is_cens | as_cens
            limit = np.where(as_cens, zlim, limit)
            lower = np.where(as_cens, np.nan, lower)
            use["zero_values_censored_at_row_limit"] = int(as_cens.sum())

    # ---- censored counts (before any substitution)
    use["censored"] = {}
    below = (obs["below"].fillna("").astype(str).str.strip().str.upper().to_numpy()
             if "below" in obs else np.full(len(obs), ""))
    for a in opt.analytes:
        sel = keep & (ana == a)
        use["censored"][a] = {
            "rows": int(sel.sum()), "censored": int((sel & is_cens).sum()),
            "below_LOD": int((sel & is_cens & (below == "LOD")).sum()),
            "below_LLOQ": int((sel & is_cens & (below == "LLOQ")).sum()),
            "between_LOD_and_LLOQ": int((sel & is_cens & np.isfinite(lower)).sum()),
        }

    time_h = pd.to_numeric(obs["time_h"], errors="coerce").to_numpy(dtype=float)
    y = np.where(is_cens, np.nan, value)
    if opt.censoring == "half_lod":
        n_sub = int((keep & is_cens).sum())
        y = np.where(is_cens, 0.5 * limit, y)
        is_cens = np.zeros_like(is_cens)
        lower = np.full_like(limit, np.nan)
        use["half_lod_substituted"] = n_sub
        use["warning"] = "censoring = 'half_lod' substitutes half the limit: for comparison only"

    # ---- relative to the patient's pre-treatment reference
    if opt.relative_to_baseline:
        pre = keep & (time_h <= 0) & ~is_cens
        key = pd.Series(sid + "\x1f" + ana)
        ref = pd.Series(np.log(np.where(pre, y, np.nan))).groupby(key).transform("mean").to_numpy()
        leave_out(pre, "pre-treatment value used as the patient's reference (relative_to_baseline)")
        leave_out(~np.isfinite(ref), "no uncensored pre-treatment value of this analyte for this "
                                     "patient (relative_to_baseline)")
        scale = np.exp(np.where(np.isfinite(ref), ref, 0.0))
        y = y / scale
        limit = limit / scale
        lower = lower / scale

    for a in opt.analytes:
        if not (keep & (ana == a)).any():
            raise DataValidationError([Problem(
                "observations.csv", "analyte", None,
                f"no usable observations of analyte {a} (see the rows left out); remove it from "
                f"the model option 'analytes' (options: {opt.analytes})")])

    # ---- the rows used: uncensored first, then left-censored, then interval-censored (each branch
    # of the likelihood is then a contiguous slice), by subject, analyte and time within each
    kind = is_cens.astype(np.int8) + (is_cens & np.isfinite(lower)).astype(np.int8)
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((time_h[rows], ana[rows], sid[rows], kind[rows]))]
    subjects_used = list(pd.unique(sid[rows]))
    s_lut = {s: i for i, s in enumerate(subjects_used)}
    obs_subject = pd.Index(subjects_used).get_indexer(sid[rows]).astype(np.int64)
    obs_analyte = pd.Index(list(opt.analytes)).get_indexer(ana[rows]).astype(np.int64)
    cens_used = is_cens[rows]
    log_y = np.where(cens_used, 0.0, np.log(np.where(cens_used, 1.0, y[rows])))
    log_limit = np.where(cens_used, np.log(np.where(cens_used, limit[rows], 1.0)), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lower = np.where(cens_used & np.isfinite(lower[rows]), np.log(lower[rows]), np.nan)
    t_obs = time_h[rows]

    # ---- events of the subjects used, within the cycles used (and the window)
    in_window = (events["time_h"].to_numpy(float) < window_end_h(opt.window_days)
                 if opt.window_days is not None else np.ones(len(events), dtype=bool))
    ev = events[events["subject_id"].astype(str).isin(s_lut) & (events["cycle"] <= opt.cycles) & in_window]
    ev = ev.reset_index(drop=True)
    ev_subject = ev["subject_id"].astype(str).map(s_lut).to_numpy(dtype=np.int64)
    ev_log_dose = np.log(ev["dose"].to_numpy(dtype=float) / REFERENCE_DOSE)
    ev_reexp = (~ev["first_exposure"].to_numpy(dtype=bool)).astype(float)
    ev_cyc = ev["cycle"].to_numpy(dtype=float) - 1.0

    # ---- (observation, event) pairs with lag in (0, max_event_lag_h]
    if uses_events:
        pair_obs, pair_event, pair_lag = _event_pairs(obs_subject, t_obs, ev_subject,
                                                      ev["time_h"].to_numpy(float),
                                                      opt.max_event_lag_h)
    else:
        pair_obs = pair_event = np.zeros(0, dtype=np.int64)
        pair_lag = np.zeros(0)

    arrays: dict[str, np.ndarray] = {
        "obs_position": obs.loc[rows, "_pos"].to_numpy(np.int64),
        "obs_subject": obs_subject, "obs_analyte": obs_analyte, "obs_time_h": t_obs,
        "log_y": log_y, "log_limit": log_limit, "log_lower": log_lower, "is_censored": cens_used.astype(np.int8),
        "pair_obs": pair_obs, "pair_lag": pair_lag,
        "pair_subject": obs_subject[pair_obs], "pair_analyte": obs_analyte[pair_obs],
        "pair_log_dose": ev_log_dose[pair_event], "pair_reexposure": ev_reexp[pair_event],
        "pair_cycle_m1": ev_cyc[pair_event],
        "event_subject": ev_subject, "event_time_h": ev["time_h"].to_numpy(float),
        "event_log_dose": ev_log_dose, "event_reexposure": ev_reexp, "event_cycle_m1": ev_cyc,
        "event_dose": ev["dose"].to_numpy(dtype=float),
    }
    coords: dict[str, list[str]] = {
        "analyte": list(opt.analytes),
        "subject": [str(s) for s in subjects_used],
        "obs": [str(p) for p in arrays["obs_position"]],
    }
    use["covariates"] = {}
    for f in opt.covariates:
        lv_rows = cov_levels[f].to_numpy(dtype=object)[rows]
        per_subject = {s: lv_rows[k] for k, s in enumerate(sid[rows])}
        present = set(per_subject.values())
        levels = [lv for lv in factor_vocabulary(f, list(per_subject.values())) if lv in present]
        arrays[f"cov_{f}"] = np.array([levels.index(per_subject[s]) for s in subjects_used], dtype=np.int64)
        coords[f"{f}_contrast"] = [f"{lv} vs {levels[0]}" for lv in levels[1:]]
        use["covariates"][f] = {"reference": levels[0], "levels": levels,
                                "subjects_per_level": {lv: int((arrays[f"cov_{f}"] == k).sum())
                                                       for k, lv in enumerate(levels)}}
        if len(levels) < 2:
            use["covariates"][f]["note"] = "one level in the data: no effect estimated"
    use["rows_used"] = int(len(rows))
    use["subjects_used"] = len(subjects_used)
    use["events_used"] = int(len(ev))
    if uses_events:
        use["observation_event_pairs"] = int(len(pair_obs))
    use["events_left_out"] = int((events["cycle"] > opt.cycles).sum())
    if use["events_left_out"]:
        use["events_left_out_reason"] = f"cycle beyond options.cycles = {opt.cycles}"
    if opt.window_days is not None:
        late = int((~in_window & (events["cycle"] <= opt.cycles).to_numpy()).sum())
        use["events_left_out"] += late
        if late:
            use["events_left_out_reason"] = "; ".join(
                [r for r in (use.get("events_left_out_reason"), window_reason(opt.window_days)) if r])
    return Prepared(arrays=arrays, coords=coords, data_use=use)


def window_end_h(window_days: float) -> float:
    """End of a data window of ``window_days`` days, in hours from the first infusion start.

    Day 1 begins at the first infusion start (``time_h = 0``), so day N ends at ``24 N`` h: a
    window of 29 days holds every sample up to and including day 29 (the end of the 28-day
    infusion of cycle 1 is at 672 h, the start of day 29).

    Examples
    --------
    >>> window_end_h(29), window_end_h(8)
    (696.0, 192.0)
    """
    return 24.0 * float(window_days)


def window_reason(window_days: float) -> str:
    """Reason recorded for the rows after a data window (see :class:`TrajectoryOptions`)."""
    return f"after the biomarker window (day {window_days:g} from the first infusion start)"


def concrete_arrays(arrays: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The named prepared arrays as numpy arrays, or None when any of them is symbolic.

    Data-driven starting values read the data; when a model is built on placeholders for data
    swapped in later (simulation-based calibration compiles one model for every simulated data
    set), there are no data to read and the callers fall back to their defaults."""
    out = {}
    for k in keys:
        v = arrays[k]
        if not isinstance(v, (np.ndarray, list, tuple)):
            return None
        out[k] = np.asarray(v)
    return out


def cell_values(x, subject: np.ndarray, analyte: np.ndarray, n_analytes: int | None = None, xp=np):
    """``x[..., subject[r], analyte[r]]`` for every row ``r``, for the one mean formula of a family.

    Parameters
    ----------
    x : numpy.ndarray or tensor
        ``(..., subject, analyte)``: numpy draws with leading axes, or a pytensor matrix (a model's
        patient-level variable), gathered through its flat index so that the gradient is one
        scatter-add.
    subject, analyte : numpy.ndarray of int
        Row indices.
    n_analytes : int, optional
        Number of analytes (the matrix's column count); needed with ``xp = pytensor.tensor``.
    xp : module
        ``numpy`` or ``pytensor.tensor``.

    Examples
    --------
    >>> import numpy as np
    >>> cell_values(np.arange(6.0).reshape(3, 2), np.array([2, 0]), np.array([1, 0]))
    array([5., 0.])
    """
    if xp is np:
        return np.asarray(x)[..., subject, analyte]
    return x.flatten()[np.asarray(subject) * int(n_analytes) + np.asarray(analyte)]


def pair_total(values, pair_obs: np.ndarray, n_obs: int, xp=np):
    """Sum per observation row of per-pair terms (``(..., pair)`` numpy, or a pytensor vector).

    Examples
    --------
    >>> import numpy as np
    >>> pair_total(np.array([1.0, 2.0, 4.0]), np.array([0, 2, 0]), 3)
    array([5., 0., 2.])
    """
    if xp is np:
        return pair_sum(np.asarray(values, dtype=float), pair_obs, n_obs)
    return xp.inc_subtensor(xp.zeros(n_obs)[pair_obs], values)


def pair_sum(values: np.ndarray, pair_obs: np.ndarray, n_obs: int) -> np.ndarray:
    """Sum per observation of per-pair values with leading draw axes (numpy).

    Parameters
    ----------
    values : numpy.ndarray
        Shape ``(..., n_pair)``.
    pair_obs : numpy.ndarray of int
        Observation of every pair.
    n_obs : int
        Number of observations.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., n_obs)``; 0 for observations without pairs.
    """
    from scipy import sparse

    n_pair = len(pair_obs)
    lead = values.shape[:-1]
    summer = sparse.csr_matrix((np.ones(n_pair), (pair_obs, np.arange(n_pair))), shape=(n_obs, n_pair))
    return np.asarray((summer @ values.reshape(-1, n_pair).T).T).reshape(*lead, n_obs)


# --------------------------------------------------------------------------------------------------
# the base class
# --------------------------------------------------------------------------------------------------


class TrajectoryFamily(ModelFamily):
    """Base class of the trajectory families (see the module docstring).

    Subclasses set :attr:`name` and :attr:`Options` (a subclass of :class:`TrajectoryOptions`) and
    implement :meth:`default_priors`, :meth:`add_to_model`, :meth:`mean_log` and, if they need more
    arrays than :func:`prepare_trajectory` builds, :meth:`extend_prepared`.
    """

    is_trajectory: ClassVar[bool] = True
    report_checks: ClassVar[tuple[str, ...]] = ("vpc",)
    outcome: ClassVar[str] = "trajectory"
    #: Whether the curve depends on the infusion events ((observation, event) pairs are built).
    uses_events: ClassVar[bool] = True
    #: Variables (dims ``(subject, analyte)``) of one patient's curve that :meth:`mean_log` reads.
    patient_vars: ClassVar[tuple[str, ...]] = ()
    #: Variables (dim ``analyte``) shared by every patient's curve that :meth:`mean_log` reads.
    population_vars: ClassVar[tuple[str, ...]] = ()
    #: Priors that may be given per analyte (``"NAME[ANALYTE]"``).
    analyte_prior_names: ClassVar[tuple[str, ...]] = ()
    Options = TrajectoryOptions

    def __init__(self, options: Mapping[str, Any] | None = None, priors: Mapping[str, Any] | None = None):
        generic: dict[str, Any] = {}
        specific: dict[str, Any] = {}
        for k, v in (priors or {}).items():
            (specific if _PER_ANALYTE.match(str(k)) else generic)[k] = v
        super().__init__(options, generic)
        self.analyte_priors: dict[tuple[str, str], Prior] = {}
        from bayes_blina.data.analytes import resolve_analyte

        for key, value in specific.items():
            m = _PER_ANALYTE.match(key)
            name, analyte = m.group(1), m.group(2).strip()
            if name not in self.analyte_prior_names:
                raise UnknownPriorError(
                    f"model family {self.name!r} has no prior {name!r} that can be given per analyte "
                    f"(in {key!r}); per-analyte priors: {', '.join(self.analyte_prior_names)}")
            code = resolve_analyte(analyte)
            if code not in self.options.analytes:
                raise UnknownPriorError(f"prior {key!r} names analyte {analyte!r}, which is not modelled "
                                        f"(options.analytes: {', '.join(self.options.analytes)})")
            self.analyte_priors[(name, code)] = Prior.parse(value)
        user = set(priors or {})
        for (name, code), prior in self.default_analyte_priors().items():
            # an analyte's default applies unless the user gave this prior, for all or for it
            if code in self.options.analytes and name not in user and (name, code) not in self.analyte_priors:
                self.analyte_priors[(name, code)] = prior
        for name in {n for n, _ in self.analyte_priors}:
            used = [self.analyte_priors.get((name, a), self.priors[name]) for a in self.options.analytes]
            if len({(p.dist, tuple(sorted(p.params))) for p in used}) > 1:
                raise SpecError(f"the priors of {name!r} for the analytes {self.options.analytes} must use the "
                                f"same distribution with the same parameters (found "
                                f"{', '.join(str(p) for p in used)})")

    def default_analyte_priors(self) -> dict[tuple[str, str], Prior]:
        """Default priors of single analytes, ``{(prior name, analyte code): Prior}`` (default: none).

        They replace the family's generic default for that analyte unless the caller gives the prior,
        either for every analyte (``NAME``) or for that one (``NAME[ANALYTE]``); :meth:`describe` and
        fitted specs list them as ``NAME[ANALYTE]``."""
        return {}

    def analyte_prior(self, name: str) -> tuple[str, dict[str, Any]]:
        """Distribution and parameters of the prior ``name`` for every analyte.

        Returns
        -------
        dist : str
            PyMC distribution name.
        params : dict
            Parameter values: floats when no analyte has its own prior, else arrays (analyte,).
        """
        base = self.priors[name]
        if not any(n == name for n, _ in self.analyte_priors):
            return base.dist, dict(base.params)
        used = [self.analyte_priors.get((name, a), base) for a in self.options.analytes]
        return base.dist, {k: np.array([p.params[k] for p in used]) for k in base.params}

    def create_prior(self, name: str, var_name: str, **kwargs: Any):
        """The PyMC random variable of prior ``name`` (per-analyte parameters along the last axis)."""
        import pymc as pm

        dist, params = self.analyte_prior(name)
        return getattr(pm, dist)(var_name, **params, **kwargs)

    def prior_dist(self, name: str, shape: int):
        """``pm.<dist>.dist(...)`` of prior ``name`` with ``shape`` analytes (e.g. an LKJ ``sd_dist``)."""
        import pymc as pm

        dist, params = self.analyte_prior(name)
        return getattr(pm, dist).dist(**params, shape=shape)

    def prior_terms(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Declared priors with per-analyte parameters along the last axis (:meth:`analyte_prior`)."""
        return {name: self.analyte_prior(name) for name in self.priors}

    @override
    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["priors"].update({f"{n}[{a}]": p.to_dict() for (n, a), p in self.analyte_priors.items()})
        return d

    def prepare(self, dataset) -> Prepared:
        """Rows, events, pairs and covariates (:func:`prepare_trajectory`), then
        :meth:`extend_prepared`.

        Raises
        ------
        DataValidationError
            If there are no observations or dosing, or a requested analyte has no usable rows.
        """
        prepared = prepare_trajectory(dataset, self.options, family=self.name, uses_events=self.uses_events)
        return self.extend_prepared(prepared)

    def extend_prepared(self, prepared: Prepared) -> Prepared:
        """Family-specific arrays and coordinates added to the shared preparation (default: none)."""
        return prepared

    def build(self, prepared: Prepared):
        """The PyMC model: ``pm.Model(coords=prefixed_coords(prepared.coords, ""))`` holding
        :meth:`add_to_model`."""
        import pymc as pm

        with pm.Model(coords=prefixed_coords(prepared.coords, "")) as model:
            self.add_to_model(prepared)
        return model

    def add_to_model(self, prepared: Prepared, prefix: str = "") -> dict[str, Any]:
        """Add this family's variables to the current PyMC model context (inside ``with model:``).

        Parameters
        ----------
        prepared : Prepared
            From :meth:`prepare`.
        prefix : str
            Prepended to the name of every variable and dimension. Coordinates of
            ``prefixed_coords(prepared.coords, prefix)`` missing from the model are added.

        Returns
        -------
        dict of str to TensorVariable
            The family's patient-level quantities, each with dimensions ``(subject, analyte)``.
        """
        raise NotImplementedError

    @staticmethod
    def _ensure_coords(prepared: Prepared, prefix: str):
        """The current model, with the prefixed coordinates of ``prepared`` added where missing."""
        import pymc as pm

        model = pm.modelcontext(None)
        for k, v in prefixed_coords(prepared.coords, prefix).items():
            if k not in model.coords:
                model.add_coord(k, v)
        return model

    @staticmethod
    def observed_data(prepared: Prepared, prefix: str = "") -> dict[str, Any]:
        """The observed arrays of the likelihood: ``log_y``, ``log_limit``, ``is_censored`` and
        ``log_lower`` (only where some row has two limits, or the model is swappable; -inf on the
        other rows).

        With ``prepared.swappable`` they are ``pm.Data`` of the current model named
        ``<prefix>log_y``, ``<prefix>log_limit``, ``<prefix>is_censored``, ``<prefix>log_lower``,
        which ``pm.set_data`` (or nutpie's ``with_data``) replaces without a rebuild (simulation-
        based calibration does so for every simulation); otherwise numpy constants.
        """
        import pymc as pm

        A = prepared.arrays
        out: dict[str, Any] = censored_rows(A["log_y"], A["log_limit"], A["is_censored"], A.get("log_lower"))
        # a swapped data set may have interval rows where this one has none
        if A.get("log_lower") is None or not (np.isfinite(out["log_lower"]).any() or prepared.swappable):
            del out["log_lower"]
        if prepared.swappable:
            out["is_censored"] = out["is_censored"].astype(np.int8)
            out = {k: pm.Data(prefix + k, v) for k, v in out.items()}
        return out

    def add_likelihood(self, prepared: Prepared, mu, sigma, prefix: str = "") -> None:
        """Add the censored log-normal likelihood of the prepared rows to the current model.

        Parameters
        ----------
        prepared : Prepared
            Its observed arrays enter through :meth:`observed_data`.
        mu, sigma : tensor
            Mean and residual SD of ``log y`` per row.
        prefix : str
            Prefix of the data and of the potential ``<prefix>loglik``.
        """
        import pymc as pm
        import pytensor.tensor as pt

        from bayes_blina.likelihood import censored_lognormal_logp

        d = self.observed_data(prepared, prefix)
        logp = censored_lognormal_logp(mu, sigma, d["log_y"], d["log_limit"], d["is_censored"], d.get("log_lower"))
        pm.Potential(prefix + "loglik", pt.sum(logp))

    def covariate_effects(self, prepared: Prepared, prefix: str = ""):
        """Each patient's summed covariate effect per analyte, a tensor (subject, analyte).

        For every covariate of the options with data on two or more levels, ``<prefix>beta_<f>``
        (prior ``beta_<f>``, dims (``<f>_contrast``, analyte)) is each level's difference from the
        reference level, which has 0; a covariate left out by the preparation adds nothing. The
        one block of covariate effects of the trajectory families (inside ``with model:``).
        """
        import pytensor.tensor as pt

        n_sub, n_ana = len(prepared.coords["subject"]), len(self.options.analytes)
        eff = pt.zeros((n_sub, n_ana))
        for f in self.options.covariates:
            if len(prepared.coords.get(f"{f}_contrast", [])):
                beta = self.priors[f"beta_{f}"].create(prefix + f"beta_{f}", dims=(prefix + f"{f}_contrast",
                                                                                    prefix + "analyte"))
                eff = eff + pt.concatenate([pt.zeros((1, n_ana)), beta], axis=0)[prepared.arrays[f"cov_{f}"]]
        return eff

    def _correlated(self) -> bool:
        """Whether patient effects are correlated across analytes (option ``correlated``, 2+ analytes)."""
        return bool(getattr(self.options, "correlated", False)) and len(self.options.analytes) > 1

    def correlated_sd(self, sd_name: str, block: str, prefix: str = ""):
        """Between-patient SDs per analyte of one patient effect, and its correlation across analytes.

        With the options ``correlated`` (and two or more analytes) the SDs come with an LKJ
        correlation (shape ``lkj_eta``): ``<prefix>chol_<block>`` (Cholesky factor, not stored),
        ``<prefix>corr_<block>`` (dims analyte, analyte_b) and ``<prefix><sd_name>``, whose prior
        is the SD distribution; otherwise ``<prefix><sd_name>`` alone. The one correlated block
        of the trajectory families (inside ``with model:``).

        Returns
        -------
        sd : tensor
            The SDs (analyte).
        chol : tensor or None
            The Cholesky factor of the covariance, ``None`` without correlation.
        """
        import pymc as pm

        ana, n_ana = prefix + "analyte", len(self.options.analytes)
        if not self._correlated():
            return self.create_prior(sd_name, prefix + sd_name, dims=ana), None
        chol, corr, sds = pm.LKJCholeskyCov(prefix + f"chol_{block}", eta=self.options.lkj_eta, n=n_ana,
                                            sd_dist=self.prior_dist(sd_name, n_ana), compute_corr=True,
                                            store_in_trace=False)
        sd = pm.Deterministic(prefix + sd_name, sds, dims=ana)
        pm.Deterministic(prefix + f"corr_{block}", corr, dims=(ana, prefix + "analyte_b"))
        return sd, chol

    def typical_patient(self, draws) -> dict[str, np.ndarray]:
        """The typical patient's values of :attr:`patient_vars`, per draw (numpy).

        Parameters
        ----------
        draws : xarray.Dataset
            Posterior draws (any leading draw axes), names without prefix.

        Returns
        -------
        dict
            For every name of :attr:`patient_vars`: an array (..., analyte).
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ new patients
    def patient_effects(self, post, analytes: list[str], n: int, shift: np.ndarray) -> PatientEffects:
        """The population distribution of ``n`` new patients' effects under each posterior draw.

        Parameters
        ----------
        post : xarray.Dataset
            Posterior draws stacked to ``sample`` (names without prefix).
        analytes : list of str
            The analytes, in the order of the effect blocks' last axis.
        n : int
            Number of patients.
        shift : numpy.ndarray
            (S, n, a) covariate shift of the block the family's covariates act on.

        Returns
        -------
        PatientEffects
        """
        raise NotImplementedError(f"the {self.name!r} family has no patient-effect distribution for new patients")

    def patient_context(self, dosing: pd.DataFrame | None, subjects: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per-patient values (one per row of ``subjects``) that :meth:`log_feature` needs besides
        the effects (the pulse family: the first infusion's exposure and cycle); none by default."""
        return {}

    def effect_draws(self, blocks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """What :meth:`mean_log` reads, from the named effect blocks of :meth:`patient_effects`
        (blocks on a transformed scale are transformed back); the blocks themselves by default."""
        return dict(blocks)

    def log_feature(self, blocks: dict[str, np.ndarray], post, analytes: list[str], j: int,
                    context: dict[str, np.ndarray]) -> np.ndarray:
        """Natural log of the family's biomarker feature of analyte ``analytes[j]`` implied by the
        effect blocks (..., n, a): the quantity the joint model links to CR."""
        raise NotImplementedError(f"the {self.name!r} family defines no biomarker feature")

    # ------------------------------------------------------------------ afterwards
    def log_likelihood(self, idata, prepared: Prepared) -> dict[str, Any]:
        """Pointwise M3 log-likelihood ``y`` (chain, draw, obs), recomputed with :meth:`mean_log`."""
        import xarray as xr

        post = as_dataset(idata.posterior)
        A = prepared.arrays
        sigma = post[self.sigma_name].values[..., A["obs_analyte"]]
        ll = np.empty(sigma.shape)
        for c in range(post.sizes["chain"]):
            mu = self.mean_log(post.isel(chain=c), prepared)
            ll[c] = censored_lognormal_logp_np(mu, sigma[c], A["log_y"], A["log_limit"],
                                               A["is_censored"].astype(bool), A.get("log_lower"))
        return {"y": xr.DataArray(ll, dims=("chain", "draw", "obs"),
                                  coords={"chain": post.chain, "draw": post.draw,
                                          "obs": prepared.coords["obs"]})}

    @override
    def observed_arrays(self, prepared: Prepared) -> dict[str, np.ndarray]:
        A = prepared.arrays
        out = {"log_y": A["log_y"], "log_limit": A["log_limit"], "is_censored": A["is_censored"]}
        if "log_lower" in A:
            out["log_lower"] = A["log_lower"]
        return out
