"""Prior predictive checks: what a model's priors imply on the scale of the data.

:func:`prior_check` draws parameters from the priors of a model spec, simulates data sets on the
design of a real dataset (the same patients, sampling times, dosing events, covariates and assay
limits, through :mod:`bayes_blina.checks.predictive`) and summarises them beside the observed data:

Trajectory families (``pulse``, and every family with ``mean_log``)
    per analyte and time bin, prior predictive quantiles of the values the assay would measure
    (before censoring, in the analyte's canonical unit) and the fraction of results below the limit,
    against the observed fraction; the implied range of named quantities (each patient's largest
    value on the design; for ``pulse`` also ``typical_peak`` by scenario, the peak after the first
    infusion start, and the time to peak).
``response``
    the implied CR rate of every subgroup (factor level; the mean CR probability of its patients)
    and of every aggregate row, with the replicated number of responders against the observed one.
``survival`` (and every family whose outcome is ``"survival"``)
    the implied marginal survival of the cohort at the model's horizons and at 1, 3, 6, 12, 24 and
    36 months (the mean over its patients of each prior draw's survival curve, with their own
    covariates) against the observed Kaplan-Meier estimate, and the prior range of the median
    survival at the reference, of the baseline's parameters and of every hazard ratio.
``joint``
    the trajectory tables of each part (``tcell``, ``cyt``; a ``part`` column), and the implied CR
    rate of the CR patients (``p_cr``) overall and by covariate level, with the prior range of the
    CR part's coefficients (``beta_<biomarker>``, ``alpha``, ...) among the named quantities.

Absurd implications are flagged: a 99th percentile above ``absurd_high`` (default 1e6, e.g. pg/mL)
or more than ``absurd_ratio`` (default 1000) times the largest observed value; a median survival
whose prior mass lies mostly below a week or above 20 years; an observed Kaplan-Meier estimate
outside the prior's central 98% of the implied survival (prior-data conflict); almost every
replicated result below the limit where the data are mostly above it (or the reverse); CR rates
whose prior mass lies mostly below 1% or above 99%. A flag is a prompt to look at the prior, not an
error: broad priors are often deliberate.

Families sampled in flat coordinates (``pulse`` with ``peak_coordinates = true``, and the joint
model's cytokine part) are rebuilt with ``peak_coordinates = false`` for the prior draws: the same
model, sampled in its plain form (which also turns off pulse's flat patient-mean timing coordinate
``log_tpeak_c``).
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayes_blina.checks.predictive import flatten_draws, simulate_responses, simulate_trajectories
from bayes_blina.errors import SpecError

__all__ = ["PriorCheck", "prior_check", "prior_draws", "prior_family", "TIME_BINS_H"]

#: Edges (hours since the first infusion start) of the time bins of the summary table.
TIME_BINS_H: tuple[float, ...] = (-math.inf, 0.0, 24.0, 72.0, 168.0, 336.0, 672.0, math.inf)
QUANTILES = (0.01, 0.05, 0.5, 0.95, 0.99)


@dataclass
class PriorCheck:
    """Result of :func:`prior_check`.

    Attributes
    ----------
    spec_name, family, dataset : str
        What was checked.
    draws, seed : int
        Number of prior draws and their seed.
    tables : dict of str to DataFrame
        Trajectory families: ``values`` (analyte, time bin), ``quantities``; ``response``:
        ``subgroups``, ``aggregates`` (when the data have aggregate rows), ``quantities``.
    flags : list of str
        Absurd implications found (empty when none).
    plot : dict
        What :func:`bayes_blina.report.prior_check.prior_check_figure` draws.
    """

    spec_name: str
    family: str
    dataset: str
    draws: int
    seed: int
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    plot: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------
# drawing from the prior
# ------------------------------------------------------------------------------------------------


def prior_family(spec):
    """The spec's family, in a form PyMC can draw prior samples from (no flat coordinates)."""
    from bayes_blina.families import get_family

    cls = get_family(spec.family)
    return cls(cls.plain_options(spec.options), spec.prior_objects())


def prior_draws(family, prepared, draws: int, seed: int):
    """Prior draws of every model variable (``xarray.Dataset`` with dims ``chain, draw, ...``).

    Raises
    ------
    SpecError
        If the model has variables PyMC cannot draw from (flat sampling coordinates).
    """
    import pymc as pm

    model = family.build(prepared)
    from pymc.distributions.continuous import FlatRV, HalfFlatRV

    flat = [rv.name for rv in model.free_RVs if isinstance(rv.owner.op, (FlatRV, HalfFlatRV))]
    if flat:
        raise SpecError(f"model family {family.name!r} samples flat coordinates ({', '.join(flat)}); "
                        "prior draws need its plain parameterisation")
    with model, warnings.catch_warnings():
        # the likelihood is a Potential (pulse) or partly one (response aggregates): it must not
        # shape prior draws, which is what PyMC warns about
        warnings.filterwarnings("ignore", message=".*[Pp]otential.*")
        idata = pm.sample_prior_predictive(draws=draws, random_seed=seed)
    return as_dataset(idata.prior)


# ------------------------------------------------------------------------------------------------
# summaries
# ------------------------------------------------------------------------------------------------


def _qcols(x: np.ndarray, prefix: str = "prior_q") -> dict[str, float]:
    x = np.asarray(x, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if not len(x):
        return {f"{prefix}{int(round(q * 100)):02d}": math.nan for q in QUANTILES}
    return {f"{prefix}{int(round(q * 100)):02d}": float(v) for q, v in zip(QUANTILES, np.quantile(x, QUANTILES))}


def _bin_labels(edges) -> list[str]:
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        if not math.isfinite(lo):
            out.append(f"<= {hi:g} h")
        elif not math.isfinite(hi):
            out.append(f"> {lo:g} h")
        else:
            out.append(f"{lo:g}-{hi:g} h")
    return out


def _unit(family, code: str) -> str:
    if getattr(family.options, "relative_to_baseline", False):
        return "ratio to pre-treatment"
    try:
        from bayes_blina.data.analytes import analyte_info

        return analyte_info(code).unit
    except Exception:  # noqa: BLE001 - an unknown code just has no unit label
        return ""


def _named_quantities(family, prepared, prior, rep) -> list[tuple[str, str, np.ndarray]]:
    """(analyte or '', quantity label, draws) of the named quantities of a trajectory family."""
    A = prepared.arrays
    analytes = list(prepared.coords["analyte"])
    out: list[tuple[str, str, np.ndarray]] = []
    latent = np.exp(rep["latent_log_y"])
    for j, a in enumerate(analytes):
        sel = A["obs_analyte"] == j
        # each patient's largest measured value on the design, pooled over patients
        subs = A["obs_subject"][sel]
        vals = latent[:, sel]
        mx = [vals[:, subs == s].max(axis=1) for s in np.unique(subs)]
        out.append((a, "patient maximum on the design", np.concatenate(mx)))
    if hasattr(family, "prior_quantities"):  # the family's own named quantities
        out += list(family.prior_quantities(prior, prepared))
    return out


def _trajectory_check(res: PriorCheck, family, prepared, prior, dataset, rng, *, absurd_high, absurd_ratio):
    A = prepared.arrays
    rep = simulate_trajectories(family, prepared, prior, rng, dataset=dataset)
    latent = np.exp(rep["latent_log_y"])
    cens_obs = A["is_censored"].astype(bool)
    y_obs = np.where(cens_obs, np.nan, np.exp(A["log_y"]))
    t = A["obs_time_h"]
    edges = np.array(TIME_BINS_H)
    labels = _bin_labels(TIME_BINS_H)
    b = np.clip(np.searchsorted(edges, t, side="left") - 1, 0, len(labels) - 1)
    rows = []
    analytes = list(prepared.coords["analyte"])
    for j, a in enumerate(analytes):
        unit = _unit(family, a)
        sel_a = A["obs_analyte"] == j
        for k, lab in enumerate(labels):
            sel = sel_a & (b == k)
            if not sel.any():
                continue
            obs_vals = y_obs[sel]
            rows.append({
                "analyte": a, "unit": unit, "time_bin": lab, "rows": int(sel.sum()),
                **_qcols(latent[:, sel]),
                "observed_median": float(np.nanmedian(obs_vals)) if np.isfinite(obs_vals).any() else math.nan,
                "observed_max": float(np.nanmax(obs_vals)) if np.isfinite(obs_vals).any() else math.nan,
                "prior_below_limit": float(rep["censored"][:, sel].mean()),
                "observed_below_limit": float(cens_obs[sel].mean()),
            })
        # flags on the analyte as a whole
        q99 = float(np.quantile(latent[:, sel_a], 0.99))
        obs_max = float(np.nanmax(y_obs[sel_a])) if np.isfinite(y_obs[sel_a]).any() else math.nan
        lim_max = float(np.exp(np.nanmax(rep["log_limit"][sel_a]))) if np.isfinite(rep["log_limit"][sel_a]).any() else math.nan
        ref = obs_max if math.isfinite(obs_max) else lim_max
        if q99 > absurd_high:
            res.flags.append(f"{a}: the 99th percentile of prior predictive values is {q99:.3g} {unit}, above "
                             f"{absurd_high:.3g}")
        elif math.isfinite(ref) and q99 > absurd_ratio * ref:
            res.flags.append(f"{a}: the 99th percentile of prior predictive values ({q99:.3g} {unit}) is more "
                             f"than {absurd_ratio:g} times the largest observed value ({ref:.3g})")
        p_below, o_below = float(rep["censored"][:, sel_a].mean()), float(cens_obs[sel_a].mean())
        if p_below > 0.99 and o_below < 0.9:
            res.flags.append(f"{a}: the prior predicts {p_below:.1%} of results below the limit; "
                             f"{o_below:.1%} are observed below it")
        if p_below < 0.01 and o_below > 0.1:
            res.flags.append(f"{a}: the prior predicts only {p_below:.1%} of results below the limit; "
                             f"{o_below:.1%} are observed below it")
    res.tables["values"] = pd.DataFrame(rows)

    qrows = []
    for a, label, x in _named_quantities(family, prepared, prior, rep):
        unit = "h" if label.endswith("(h)") else _unit(family, a) if a else ""
        q = _qcols(x)
        qrows.append({"analyte": a, "quantity": label, "unit": unit, **q})
        if "(h)" not in label and q["prior_q99"] > absurd_high:
            res.flags.append(f"{a}: {label} has a prior 99th percentile of {q['prior_q99']:.3g} {unit}, above "
                             f"{absurd_high:.3g}")
    res.tables["quantities"] = pd.DataFrame(qrows)

    # figure data: bands per distinct sampling time (or 40 quantile bins of time)
    panels = []
    for j, a in enumerate(analytes):
        sel = np.flatnonzero(A["obs_analyte"] == j)
        tt = t[sel]
        uniq = np.unique(np.round(tt, 1))
        if len(uniq) <= 60:
            key = np.round(tt, 1)
            groups = uniq
        else:
            qe = np.unique(np.quantile(tt, np.linspace(0, 1, 41)))
            key = np.clip(np.searchsorted(qe, tt, side="right") - 1, 0, len(qe) - 2)
            groups = np.arange(len(qe) - 1)
        band = []
        for g in groups:
            cols = sel[key == g]
            v = np.log(latent[:, cols]).ravel()
            band.append([float(np.median(t[cols]))] + list(np.exp(np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95]))))
        panels.append({"analyte": a, "unit": _unit(family, a), "band": np.array(band),
                       "t_obs": t[sel][~cens_obs[sel]], "y_obs": y_obs[sel][~cens_obs[sel]],
                       "t_cens": t[sel][cens_obs[sel]], "y_cens": np.exp(A["log_limit"][sel][cens_obs[sel]])})
    res.plot = {"kind": "trajectory", "panels": panels}


def _rate_row(res: PriorCheck, label, rate_draws, rep_counts, n, observed, extreme_mass) -> dict[str, Any]:
    """A row of the implied-CR-rate table (flagged when too much prior mass is extreme)."""
    lo_hi = float(np.mean((rate_draws < 0.01) | (rate_draws > 0.99)))
    if lo_hi > extreme_mass:
        res.flags.append(f"{label}: the prior puts {lo_hi:.0%} of the implied CR rate below 1% or above 99%")
    return {"subgroup": label, "n": int(n), **_qcols(rate_draws, "rate_q"),
            "observed_rate": observed / n if n else math.nan,
            "replicated_q05": float(np.quantile(rep_counts, 0.05)),
            "replicated_q95": float(np.quantile(rep_counts, 0.95)), "observed": int(observed),
            "mass_below_1pct_or_above_99pct": lo_hi}


def _joint_check(res: PriorCheck, family, prepared, prior, dataset, rng, *, absurd_high, absurd_ratio,
                 extreme_mass):
    """Joint model: the trajectory check of every part (tables with a ``part`` column, flags
    prefixed with the part), and the implied CR rate of the CR patients by covariate level."""
    from bayes_blina.families.joint import PARTS
    from bayes_blina.families.trajectory import unprefixed

    tables: dict[str, list[pd.DataFrame]] = {}
    panels = []
    for part, fam in family.parts.items():
        prefix = PARTS[part][1]
        sub = PriorCheck(spec_name=res.spec_name, family=fam.name, dataset=res.dataset, draws=res.draws,
                         seed=res.seed)
        _trajectory_check(sub, fam, family.sub_prepared(prepared, part), unprefixed(prior, prefix), dataset, rng,
                          absurd_high=absurd_high, absurd_ratio=absurd_ratio)
        for key, df in sub.tables.items():
            tables.setdefault(key, []).append(df.assign(part=part)[["part", *df.columns]])
        res.flags += [f"{part} part: {f}" for f in sub.flags]
        panels += [{**p, "analyte": f"{part}: {p['analyte']}"} for p in sub.plot.get("panels", [])]
    qrows, rows = [], []
    A = prepared.arrays
    if "cr_y" in A:
        p = flatten_draws(prior, ["p_cr"])["p_cr"]
        rep = (rng.random(p.shape) < p).astype(np.int64)
        y = np.asarray(A["cr_y"])
        rows = [_rate_row(res, "all patients", p.mean(axis=1), rep.sum(axis=1), len(y), y.sum(), extreme_mass)]
        for f in family.cr_factors(prepared):
            idx = A[f"cr_{f}"]
            for k, lab in enumerate(prepared.coords.get(f, [])):
                sel = idx == k
                if sel.any():
                    rows.append(_rate_row(res, f"{f}={lab}", p[:, sel].mean(axis=1), rep[:, sel].sum(axis=1),
                                          sel.sum(), y[sel].sum(), extreme_mass))
        res.tables["subgroups"] = pd.DataFrame(rows)
        names = [v for v in ("p_typical", "alpha") if v in prior]
        names += sorted(str(v) for v in prior.data_vars
                        if str(v).startswith(("beta_", "or_", "sd_")) and prior[v].ndim == 2)
        for name, x in flatten_draws(prior, names).items():
            qrows.append({"part": "cr", "analyte": "", "quantity": name, "unit": "", **_qcols(x)})
    for key, dfs in tables.items():
        df = pd.concat(dfs, ignore_index=True)
        if key == "quantities" and qrows:
            df = pd.concat([df, pd.DataFrame(qrows)], ignore_index=True)
        res.tables[key] = df
    if "quantities" not in tables and qrows:
        res.tables["quantities"] = pd.DataFrame(qrows)
    res.plot = {"kind": "trajectory", "panels": panels} if panels else {"kind": "response", "rows": rows}


def _response_check(res: PriorCheck, prepared, prior, rng, *, extreme_mass):
    A = prepared.arrays
    rep = simulate_responses(prepared, prior, rng)
    factors = [k[len("pat_"):] for k in A if k.startswith("pat_") and k not in ("pat_y", "pat_study", "pat_cell")]
    rows = []

    def add(label, rate_draws, rep_counts, n, observed):
        rows.append(_rate_row(res, label, rate_draws, rep_counts, n, observed, extreme_mass))

    if len(A["pat_y"]):
        p = flatten_draws(prior, ["p_cell"])["p_cell"][:, A["pat_cell"]]
        y = A["pat_y"]
        add("all patients", p.mean(axis=1), rep["pat_y"].sum(axis=1), len(y), y.sum())
        for f in factors:
            idx = A[f"pat_{f}"]
            for k, lab in enumerate(prepared.coords.get(f, [])):
                sel = idx == k
                if sel.any():
                    add(f"{f}={lab}", p[:, sel].mean(axis=1), rep["pat_y"][:, sel].sum(axis=1), sel.sum(), y[sel].sum())
    res.tables["subgroups"] = pd.DataFrame(rows)
    rows_sub = rows
    rows = []
    if len(A["agg_r"]):
        p = flatten_draws(prior, ["p_agg"])["p_agg"]
        for k, lab in enumerate(prepared.coords.get("agg_row", [])):
            add(lab, p[:, k], rep["agg_r"][:, k], A["agg_n"][k], A["agg_r"][k])
        res.tables["aggregates"] = pd.DataFrame(rows)
    qrows = []
    d = flatten_draws(prior, [v for v in prior.data_vars if str(v).startswith(("p_typical", "sd_"))])
    for name, x in d.items():
        qrows.append({"quantity": name, **_qcols(x)})
    res.tables["quantities"] = pd.DataFrame(qrows)
    res.plot = {"kind": "response", "rows": rows_sub + rows}


#: Months at which the survival check compares the implied survival with the Kaplan-Meier estimate.
SURVIVAL_MONTHS: tuple[float, ...] = (1.0, 3.0, 6.0, 12.0, 24.0, 36.0)


def _survival_check(res: PriorCheck, family, prepared, prior, *, extreme_mass):
    """Survival families: implied marginal survival of the cohort at fixed months against the
    Kaplan-Meier estimate of its data, and the prior range of the scalar parameters."""
    from bayes_blina.checks.survival_curves import kaplan_meier

    A = prepared.arrays
    time, event = np.asarray(A["time"], dtype=float), np.asarray(A["event"])
    months = sorted({*SURVIVAL_MONTHS, *(float(h) for h in getattr(family.options, "horizons_months", []))})
    months = np.asarray([m for m in months if m <= max(float(time.max()), 1.0) * 1.5], dtype=float)
    grid = np.linspace(0.0, float(months.max()), 49)
    S = family.survival_draws(prior, prepared, np.concatenate([months, grid])).mean(axis=2)  # (chain, draw, t)
    S = S.reshape(-1, S.shape[-1])
    km = kaplan_meier(time, event, months)
    rows = []
    for k, m in enumerate(months):
        s = S[:, k]
        q01, q99 = np.quantile(s, [0.01, 0.99])
        obs = float(km["km"][k])
        conflict = int(km["at_risk"][k]) > 0 and not (q01 <= obs <= q99)
        if conflict:
            res.flags.append(f"survival at {m:g} months: the observed Kaplan-Meier estimate {obs:.2f} lies outside "
                             f"the prior's central 98% ({q01:.2f} to {q99:.2f}): prior-data conflict")
        rows.append({"months": m, **_qcols(s, "prior_q"), "observed_km": obs, "at_risk": int(km["at_risk"][k]),
                     "conflict": conflict})
    res.tables["survival"] = pd.DataFrame(rows)
    qrows = []
    scalars = [str(v) for v in prior.data_vars if prior[v].ndim == 2]
    for name, x in flatten_draws(prior, scalars).items():
        qrows.append({"quantity": name, **_qcols(x)})
    if "median_months" in prior:
        med = flatten_draws(prior, ["median_months"])["median_months"]
        extreme = float(np.mean((med < 7.0 / 30.4375) | (med > 240.0)))
        if extreme > extreme_mass:
            res.flags.append(f"median survival: the prior puts {extreme:.0%} of it below a week or above 20 years")
        for k, h in enumerate(prior["surv_prob"].coords["horizon"].values if "surv_prob" in prior else []):
            qrows.append({"quantity": f"surv_prob[{h}]", **_qcols(flatten_draws(prior, ["surv_prob"])["surv_prob"][:, k])})
    res.tables["quantities"] = pd.DataFrame(qrows)
    bands = np.column_stack([grid, *np.quantile(S[:, len(months):], [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)])
    km_grid = kaplan_meier(time, event, grid)["km"]
    res.plot = {"kind": "survival", "band": bands, "km": km_grid}


def prior_check(spec, dataset, *, draws: int = 500, seed: int = 20240501, absurd_high: float = 1e6,
                absurd_ratio: float = 1e3, extreme_mass: float = 0.25) -> PriorCheck:
    """Prior predictive check of a model spec on the design of a dataset (module docstring).

    Parameters
    ----------
    spec : str, ModelSpec or dict
        A spec name, TOML path, dict or :class:`~bayes_blina.spec.ModelSpec`.
    dataset : Dataset, str or path
        The data whose design (and observed values, for comparison) is used.
    draws : int
        Number of prior draws.
    seed : int
        Seed of the prior draws and the simulated measurement noise.
    absurd_high, absurd_ratio, extreme_mass : float
        Flag thresholds (module docstring).

    Returns
    -------
    PriorCheck
    """
    from bayes_blina.data.dataset import Dataset
    from bayes_blina.spec import load_spec

    if int(draws) < 10:
        raise SpecError(f"prior check needs at least 10 draws (found {draws})")
    spec = load_spec(spec)
    if not isinstance(dataset, Dataset):
        from bayes_blina.data.io import read_dataset

        dataset = read_dataset(dataset)
    family = prior_family(spec)
    prepared = family.prepare(dataset)
    prior = prior_draws(family, prepared, int(draws), int(seed))
    res = PriorCheck(spec_name=spec.name, family=family.name, dataset=dataset.name, draws=int(draws), seed=int(seed))
    rng = np.random.default_rng(int(seed) + 1)
    if family.outcome == "binary":
        _response_check(res, prepared, prior, rng, extreme_mass=extreme_mass)
    elif family.outcome == "composite":
        _joint_check(res, family, prepared, prior, dataset, rng, absurd_high=absurd_high, absurd_ratio=absurd_ratio,
                     extreme_mass=extreme_mass)
    elif family.outcome == "trajectory":
        _trajectory_check(res, family, prepared, prior, dataset, rng, absurd_high=absurd_high,
                          absurd_ratio=absurd_ratio)
    elif family.outcome == "survival":
        _survival_check(res, family, prepared, prior, extreme_mass=extreme_mass)
    else:
        raise SpecError(f"no prior predictive check for model family {family.name!r}")
    return res
