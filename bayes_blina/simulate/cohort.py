"""Virtual cohorts: patients, dosing and biomarker time courses with known truth.

:func:`simulate_cohort` draws a cohort from a :class:`~bayes_blina.simulate.presets.CohortConfig`
(or a preset name) and returns a :class:`~bayes_blina.data.Dataset` in canonical form (subjects,
dosing, observations; passed through the same validator as files read from disk) together with
the *truth*: every population and patient-level parameter used, as plain JSON-serialisable data.
:func:`write_cohort` writes both to a folder; :func:`true_curve` recomputes the noise-free curve of
any analyte for any patient and times from a dataset and its truth.

The trajectories are exactly those of :mod:`bayes_blina.curves` (``pulse``, ``saturating``,
``depletion``); infusion events come from :func:`bayes_blina.events.infusion_events` and serum
concentrations from :class:`bayes_blina.events.SteadyStatePK`. The generative model and the
choices behind the defaults are described in :mod:`bayes_blina.simulate.presets`.

Generative order (per cohort)
-----------------------------
1. covariates (cohort arm, age, blasts, BSA) and, optionally, one infusion interruption in cycle 1;
2. patient-level parameters of every family (cytokine log amplitudes correlated across cytokines);
3. ``il10_peak_i``: the maximum of the noise-free IL10 curve over the first treatment week, on a
   fine grid;
4. CR from the response model (depends on CD3 ``expansion_i``, ``il10_peak_i``, covariates and the
   baseline platelet count);
5. platelet and neutrophil expansion (shifted in responders), then dropout before cycle 2 and,
   optionally, death or withdrawal before the first response assessment
   (:attr:`CohortConfig.early_offstudy`: dosing and samples stop then, the response is empty);
6. sampling times from the study schedules, noise-free curves, log-normal measurement noise and
   censoring at the assay limits.

Truth dictionary
----------------
``schema``, ``preset``, ``study``, ``seed``, ``n``; ``design`` (arms, cycles, demographics,
sampling, dropout and censoring switches); ``population`` with one block per family:
``pulse`` (by analyte: ``log_baseline_mu, sd_log_baseline, log_amp_mu, sd_log_amp,
beta_blast_amp, gamma_dose, delta_reexposure, kappa_cycle, log_tpeak_mu, sd_log_tpeak, k_shape,
sigma_obs``), ``cytokine_corr`` (``analytes``, ``matrix``), ``kinetics`` (by analyte:
``log_baseline_mu, sd_log_baseline, depth, sd_logit_depth, t_nadir, k_shape, expansion_mu,
sd_expansion, expansion_response_effect, tau_e, sigma_obs, lod``), ``bracket_floor``,
``subsets``, ``depletion`` (``CD19``), ``pk`` (``BLINA``), ``response``, ``assay``; and
``patients`` (lists aligned with ``subject_id``): covariates, ``response``, ``p_cr``,
``eta_cr``, ``expansion``, ``il10_peak``, ``cycles_received``, ``interruption_start_h``,
``interruption_end_h`` and per family and analyte the patient parameters (``pulse``:
``baseline, log_amp, t_peak, z_amp``; ``kinetics``: ``baseline, depth, E, expansion``;
``subsets``: ``fraction``; ``depletion``: ``baseline, k_dep, floor, depleted``; ``pk``:
``css_per_dose``).
"""
from __future__ import annotations

from bayes_blina._atomic import swap_in

import json
import math
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_blina.data.analytes import analyte_info
from bayes_blina.data.dataset import Dataset
from bayes_blina.data.io import DatasetExistsError, write_dataset
from bayes_blina.data.schema import validate_dataset
from bayes_blina.errors import BayesBlinaError
from bayes_blina.families.depletion import depletion_log_mean
from bayes_blina.families.kinetics import kinetics_log_mean
from bayes_blina.families.pulse import pulse_log_mean
from bayes_blina.events import SteadyStatePK, infusion_events, standard_schedule, time_features
from bayes_blina.simulate.survival_outcomes import simulate_survival
from bayes_blina.simulate.presets import (
    CYTOKINES,
    KINETICS,
    LABS,
    SUBSETS,
    CohortConfig,
    PresetError,
    allocate,
    get_preset,
)

__all__ = ["simulate_cohort", "write_cohort", "true_curve", "TRUTH_SCHEMA"]

#: Identifier of the truth layout written to ``truth.json``.
TRUTH_SCHEMA = "bayes_blina.simulate.cohort/1"

_REF_DOSE = 15.0  # µg/m²/day: log A is relative to a first exposure at this dose
_FAR = 1e12  # event time of padding slots (never reached)
_START_KINDS = ("start", "cycle_start", "restart")
_RNG_STREAMS = ("covariates", "interruptions", "cytokines", "labs", "kinetics", "subsets",
                "cd19", "pk", "response", "dropout", "noise", "follow_up")  # new streams go last

# Median weight (kg) and height (cm) for age (years), rounded from common growth references; used
# only to give simulated children a plausible BSA.
_AGE_REF = np.array([0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0, 18.0])
_WEIGHT_REF = np.array([3.5, 9.5, 12.2, 16.3, 20.5, 25.6, 32.0, 40.0, 50.0, 58.0, 63.0])
_HEIGHT_REF = np.array([50.0, 75.0, 87.0, 103.0, 116.0, 128.0, 138.0, 150.0, 163.0, 170.0, 173.0])
_AGE_BOUNDS = {"<2": (0.25, 2.0), "2-6": (2.0, 7.0), "7-17": (7.0, 18.0)}


class CohortError(BayesBlinaError, ValueError):
    """A cohort cannot be simulated or written as asked."""


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------


def _logit(x: float) -> float:
    return math.log(x / (1.0 - x))


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _floats(a: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]


def _json_plain(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays and non-finite floats to JSON-safe values."""
    if isinstance(obj, dict):
        return {str(k): _json_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_plain(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def _bsa_from_age(age: np.ndarray) -> np.ndarray:
    """Mosteller BSA (m²) from median weight and height for age."""
    w = np.interp(age, _AGE_REF, _WEIGHT_REF)
    h = np.interp(age, _AGE_REF, _HEIGHT_REF)
    return np.sqrt(w * h / 3600.0)


def _age_group(age: np.ndarray) -> np.ndarray:
    return np.select([age < 2, age < 7, age < 18], ["<2", "2-6", "7-17"], "adult").astype(object)


def _corr_matrix(cfg: CohortConfig) -> np.ndarray:
    m = np.eye(len(CYTOKINES))
    pos = {c: i for i, c in enumerate(CYTOKINES)}
    for key, r in cfg.cytokine_corr.items():
        a, _, b = key.partition(":")
        m[pos[a], pos[b]] = m[pos[b], pos[a]] = float(r)
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        raise PresetError("cytokine_corr does not give a positive-definite correlation matrix") \
            from None
    return m


# ------------------------------------------------------------------------------------------------
# events, padded per patient
# ------------------------------------------------------------------------------------------------


class _Events:
    """Infusion events of every patient as (n_patients, max_events) arrays (padding: far future)."""

    def __init__(self, dosing: pd.DataFrame, ids: pd.Index):
        ev = infusion_events(dosing)
        p = ids.get_indexer(ev["subject_id"].astype(str))
        if np.any(p < 0):
            raise CohortError("dosing holds a subject that is not in the subjects table")
        j = ev["event_index"].to_numpy()
        n = len(ids)
        width = int(j.max()) + 1 if len(j) else 1
        self.n = n
        self.table = ev.assign(p=p)
        self.t = np.full((n, width), _FAR)
        self.dose = np.full((n, width), _REF_DOSE)
        self.cycle = np.ones((n, width), dtype=np.int64)
        self.first = np.zeros((n, width), dtype=bool)
        self.mask = np.zeros((n, width), dtype=bool)
        self.t[p, j] = ev["time_h"].to_numpy(float)
        self.dose[p, j] = ev["dose"].to_numpy(float)
        self.cycle[p, j] = ev["cycle"].to_numpy(np.int64)
        self.first[p, j] = ev["first_exposure"].to_numpy(bool)
        self.mask[p, j] = True

    def pairs(self, p: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        """Rows ``(p, t)`` and their (row, event) pairs with ``t > t_e``, in the layout of
        :attr:`Prepared.arrays` (one analyte), for the families' mean formulas."""
        tau = t[:, None] - self.t[p]
        r, k = np.nonzero(self.mask[p] & (tau > 0))
        pe = p[r]
        zeros = np.zeros(len(r), dtype=np.int64)
        return {"obs_subject": p, "obs_analyte": np.zeros(len(p), dtype=np.int64), "obs_time_h": t,
                "pair_obs": r, "pair_subject": pe, "pair_analyte": zeros, "pair_lag": tau[r, k],
                "pair_log_dose": np.log(self.dose[pe, k] / _REF_DOSE),
                "pair_reexposure": (~self.first[pe, k]).astype(float),
                "pair_cycle_m1": (self.cycle[pe, k] - 1).astype(float)}


def _pulse_curve(ev: _Events, p: np.ndarray, t: np.ndarray, baseline: np.ndarray, log_amp_i: np.ndarray,
                 par: dict[str, float], t_peak: np.ndarray) -> np.ndarray:
    """Pulse family ``B (1 + sum_e A_e g(t - t_e))`` at (patient, time) pairs: the family's own
    formula (:func:`bayes_blina.families.pulse.pulse_log_mean`) with the patients' parameters."""
    col = np.newaxis
    theta = {"log_baseline": np.log(baseline)[:, col], "log_amp": np.asarray(log_amp_i, dtype=float)[:, col],
             "log_tpeak_i": np.log(t_peak)[:, col], "k_shape": np.array([par["k_shape"]])}
    theta.update({k: np.array([par[k]]) for k in ("gamma_dose", "delta_reexposure", "kappa_cycle")})
    return np.exp(pulse_log_mean(theta, ev.pairs(p, t)))


def _kinetics_curve(ev: _Events, p: np.ndarray, t: np.ndarray, baseline: np.ndarray,
                    depth: np.ndarray, e: np.ndarray, par: dict[str, float],
                    bracket_floor: float, off: tuple[np.ndarray, float] | None = None) -> np.ndarray:
    """Kinetics family ``B max(1 - D sum_e g, floor) exp(E s(t))`` at (patient, time) pairs: the
    family's own formula (:func:`bayes_blina.families.kinetics.kinetics_log_mean`).

    ``off = (t_end, tau)``: after the end ``t_end[i]`` of patient i's last infusion the log fold
    change returns towards 0 with time constant ``tau`` (off-treatment follow-up, a process the
    fitted model does not assume)."""
    col = np.newaxis
    theta = {"log_baseline": np.log(baseline)[:, col], "depth": np.asarray(depth, dtype=float)[:, col],
             "log_expansion": np.asarray(e, dtype=float)[:, col]}
    theta.update({k: np.array([par[k]]) for k in ("t_nadir", "k_shape", "tau_e")})
    return np.exp(kinetics_log_mean(theta, ev.pairs(p, t), bracket_floor, off_treatment=off))


def _infusion_end(dosing: pd.DataFrame, ids: pd.Index) -> np.ndarray:
    """End (h) of every patient's last infusion segment (NaN without dosing)."""
    last = dosing.groupby(dosing["subject_id"].astype(str))["end_h"].max()
    return last.reindex(ids.astype(str)).to_numpy(float)


def _depletion_curve(p: np.ndarray, t: np.ndarray, baseline: np.ndarray, k_dep: np.ndarray,
                     floor: np.ndarray) -> np.ndarray:
    """Count of each row: the depletion family's own formula (:func:`depletion_log_mean`)."""
    f = np.asarray(floor, dtype=float)[p]
    with np.errstate(divide="ignore"):  # a floor of 0 or 1 has an infinite logit: the formula takes it
        logit_floor = np.log(f) - np.log1p(-f)
    return np.exp(depletion_log_mean(np.log(baseline[p]), np.log(k_dep[p]), logit_floor, t, xp=np))


def _pk_curve(dosing: pd.DataFrame, ids: pd.Index, p: np.ndarray, t: np.ndarray,
              css_per_dose: np.ndarray, half_life_h: float) -> np.ndarray:
    """Serum concentration: SteadyStatePK is linear in css_per_dose, so scale a unit-Css run."""
    if len(t) == 0:
        return np.zeros(0)
    obs = pd.DataFrame({"subject_id": np.asarray(ids)[p], "time_h": t})
    unit = time_features(obs, dosing, pk=SteadyStatePK(css_per_dose=1.0,
                                                       half_life_h=half_life_h))
    return unit["conc_pk"].to_numpy(float) * css_per_dose[p]


# ------------------------------------------------------------------------------------------------
# sampling schedules
# ------------------------------------------------------------------------------------------------


def _anchored(p: np.ndarray, anchors: np.ndarray, offsets: tuple[float, ...] | list[float]
              ) -> tuple[np.ndarray, np.ndarray]:
    off = np.asarray(offsets, dtype=float)
    if len(anchors) == 0 or len(off) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.repeat(p, len(off)), (anchors[:, None] + off[None, :]).ravel()


def _unique_pt(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (patient, time) pairs, round times to 1e-6 h, drop duplicates, sort."""
    p = np.concatenate([a for a, _ in parts]).astype(np.int64)
    t = np.round(np.concatenate([b for _, b in parts]), 6)
    order = np.lexsort((t, p))
    p, t = p[order], t[order]
    keep = np.ones(len(p), dtype=bool)
    keep[1:] = (np.diff(p) != 0) | (np.diff(t) != 0)
    return p[keep], t[keep]


def _schedules(cfg: CohortConfig, ev: _Events, frequent: np.ndarray
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(patient, time) sampling pairs of each analyte group."""
    sch = cfg.sampling
    tab = ev.table
    p_all = tab["p"].to_numpy(np.int64)
    t_all = tab["time_h"].to_numpy(float)
    kind = tab["kind"].astype(str).to_numpy()
    cyc = tab["cycle"].to_numpy(np.int64)
    is_start = np.isin(kind, _START_KINDS)
    is_cycle_start = np.isin(kind, ("start", "cycle_start"))

    def cyto(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _unique_pt([
            _anchored(p_all[sel & is_start], t_all[sel & is_start], (sch.pre_h,)),
            _anchored(p_all[sel], t_all[sel], sch.cytokine_after_event_h),
        ])

    everything = np.ones(len(p_all), dtype=bool)
    freq_ev = frequent[p_all]
    lymph = _unique_pt([
        _anchored(p_all, t_all, (sch.pre_h,)),
        _anchored(p_all[freq_ev], t_all[freq_ev], sch.lymph_frequent_after_event_h),
        _anchored(p_all[~freq_ev], t_all[~freq_ev], sch.lymph_sparse_after_event_h),
        _anchored(p_all[is_cycle_start], t_all[is_cycle_start], sch.lymph_weekly_h),
    ])
    cs_p, cs_t = p_all[is_cycle_start], t_all[is_cycle_start]
    labs = _unique_pt([_anchored(cs_p, cs_t, (sch.pre_h,) + tuple(sch.lab_after_cycle_start_h))])
    pk = _unique_pt([_anchored(cs_p, cs_t, (sch.pre_h,) + tuple(sch.pk_after_cycle_start_h))])
    return {
        "cytokines": cyto(everything),
        "gzmb": cyto(cyc <= sch.gzmb_cycles),
        "lymph": lymph,
        "labs": labs,
        "pk": pk,
    }


# ------------------------------------------------------------------------------------------------
# covariates and dosing
# ------------------------------------------------------------------------------------------------


def _covariates(cfg: CohortConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    arms = [a for a in cfg.arms if a.n > 0]
    n = sum(a.n for a in arms)
    cohort = np.concatenate([[a.cohort] * a.n for a in arms]).astype(object)
    regimen = np.concatenate([[a.regimen] * a.n for a in arms]).astype(object)
    frequent = np.concatenate([[a.sampling == "frequent"] * a.n for a in arms]).astype(bool)
    dem = cfg.demographics
    if dem.age_groups:
        groups = list(dem.age_groups)
        counts = allocate(n, [dem.age_groups[g] for g in groups])
        labels = rng.permutation(np.repeat(np.array(groups, dtype=object), counts))
        lo = np.array([_AGE_BOUNDS[g][0] for g in labels])
        hi = np.array([_AGE_BOUNDS[g][1] for g in labels])
        age = lo + (hi - lo) * rng.random(n)
        age = np.minimum(np.round(age, 2), hi - 0.01)
    else:
        age = dem.age_min + (dem.age_median - dem.age_min) * np.exp(
            dem.age_sd_log * rng.standard_normal(n))
        age = np.round(np.clip(age, dem.age_min, dem.age_max), 1)
    n_high = allocate(n, [dem.blast_high_fraction, 1.0 - dem.blast_high_fraction])[0] \
        if 0.0 < dem.blast_high_fraction < 1.0 else int(round(n * dem.blast_high_fraction))
    high = rng.permutation(np.arange(n) < n_high)
    blast = np.where(high, rng.uniform(50.0, 99.0, n), rng.uniform(6.0, 49.0, n))
    blast = np.round(blast, 1)
    blast = np.where(high, np.maximum(blast, 50.0), np.minimum(blast, 49.9))
    if dem.bsa_from_age:
        bsa = _bsa_from_age(age) * np.exp(dem.bsa_sd_log * rng.standard_normal(n))
    else:
        bsa = dem.bsa_mean + dem.bsa_sd * rng.standard_normal(n)
    bsa = np.round(np.clip(bsa, 0.2, 2.6), 3)
    return {"cohort": cohort, "regimen": regimen, "frequent": frequent, "age_years": age,
            "age_group": _age_group(age), "blast_pct": blast, "blast_high": blast >= 50.0,
            "bsa_m2": bsa}


def _planned_dosing(cfg: CohortConfig, ids: np.ndarray, regimen: np.ndarray,
                    rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Planned dosing of all cycles, with optional cycle-1 interruptions."""
    n = len(ids)
    blocks = []
    for reg in dict.fromkeys(regimen.tolist()):
        sched = standard_schedule(reg, cfg.n_cycles)
        who = np.flatnonzero(regimen == reg)
        rep = sched.iloc[np.tile(np.arange(len(sched)), len(who))].reset_index(drop=True)
        rep.insert(0, "subject_id", np.repeat(ids[who], len(sched)))
        rep.insert(0, "_p", np.repeat(who, len(sched)))
        blocks.append(rep)
    dosing = pd.concat(blocks, ignore_index=True)
    # interruption: one gap in cycle 1 (restart at the same dose)
    has = rng.random(n) < cfg.p_interruption
    lo, hi = cfg.interruption_window_h
    start = np.round(rng.uniform(lo, hi, n), 0)
    length = np.round(rng.uniform(*cfg.interruption_hours, n), 0)
    i_start = np.where(has, start, np.nan)
    i_end = np.where(has, start + length, np.nan)
    if has.any():
        p = dosing["_p"].to_numpy()
        s0, e0 = dosing["start_h"].to_numpy(), dosing["end_h"].to_numpy()
        a, b = i_start[p], i_end[p]
        hit = (dosing["cycle"].to_numpy() == 1) & has[p]
        with np.errstate(invalid="ignore"):
            before = dosing[hit & (s0 < a)].assign(end_h=np.minimum(e0, a)[hit & (s0 < a)])
            after = dosing[hit & (e0 > b)].assign(start_h=np.maximum(s0, b)[hit & (e0 > b)])
        dosing = pd.concat([dosing[~hit], before, after], ignore_index=True)
    dosing = dosing.sort_values(["_p", "start_h"], kind="mergesort").reset_index(drop=True)
    return dosing, i_start, i_end


# ------------------------------------------------------------------------------------------------
# parameter draws
# ------------------------------------------------------------------------------------------------


def _draw_pulse(par: dict[str, float], z_amp: np.ndarray, blast_high: np.ndarray,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(z_amp)
    baseline = np.exp(par["log_baseline_mu"] + par["sd_log_baseline"] * rng.standard_normal(n))
    log_amp = par["log_amp_mu"] + par["beta_blast_amp"] * blast_high + par["sd_log_amp"] * z_amp
    t_peak = np.exp(par["log_tpeak_mu"] + par["sd_log_tpeak"] * rng.standard_normal(n))
    return {"baseline": baseline, "log_amp": log_amp, "t_peak": t_peak, "z_amp": z_amp}


def _draw_kinetics_base(par: dict[str, float], rng: np.random.Generator, n: int
                        ) -> dict[str, np.ndarray]:
    baseline = np.exp(par["log_baseline_mu"] + par["sd_log_baseline"] * rng.standard_normal(n))
    depth = _expit(_logit(par["depth"]) + par["sd_logit_depth"] * rng.standard_normal(n))
    z_e = rng.standard_normal(n)
    return {"baseline": baseline, "depth": depth, "z_e": z_e}


def _finish_kinetics(par: dict[str, float], draws: dict[str, np.ndarray],
                     response: np.ndarray | None) -> dict[str, np.ndarray]:
    shift = par["expansion_response_effect"] * response if response is not None else 0.0
    e = par["expansion_mu"] + shift + par["sd_expansion"] * draws["z_e"]
    return {"baseline": draws["baseline"], "depth": draws["depth"], "E": e,
            "expansion": np.exp(e)}


# ------------------------------------------------------------------------------------------------
# the simulator
# ------------------------------------------------------------------------------------------------


def _resolve_config(preset: str | CohortConfig, n: int | None) -> CohortConfig:
    if isinstance(preset, CohortConfig):
        cfg = preset
    elif isinstance(preset, str):
        cfg = get_preset(preset)
    else:
        raise CohortError("preset must be a preset name or a CohortConfig "
                          f"(found {type(preset).__name__})")
    if n is not None:
        cfg = cfg.scaled(n)
    if cfg.n < 1:
        raise CohortError("the cohort has no patients (all arm sizes are 0)")
    return cfg


def _censor(values: np.ndarray, lod: np.ndarray, lloq: np.ndarray, censor_lloq: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Apply limits as a lab reports them: below LOD -> 'LOD'; below LLOQ where ``censor_lloq`` ->
    'LLOQ' (between the limits when the LOD is given); the value of a censored row is empty and the
    row keeps both limits (an 'LLOQ' row with its ``lod`` is interval-censored in the models, one
    without, e.g. serum blinatumomab, left-censored at the LLOQ)."""
    with np.errstate(invalid="ignore"):
        below_lod = np.isfinite(lod) & (values < lod)
        below_lloq = ~below_lod & censor_lloq & np.isfinite(lloq) & (values < lloq)
    below = np.where(below_lod, "LOD", np.where(below_lloq, "LLOQ", "")).astype(object)
    out = np.where(below_lod | below_lloq, np.nan, values)
    return out, below


def simulate_cohort(preset: str | CohortConfig, n: int | None = None, *, seed: int,
                    validate: bool = True) -> tuple[Dataset, dict[str, Any]]:
    """Simulate a virtual cohort with known truth.

    Parameters
    ----------
    preset : str or CohortConfig
        A preset name (``'adult-exploratory'``, ``'adult-null'``, ``'pediatric'``; see
        :data:`bayes_blina.simulate.presets.PRESETS`) or a configuration.
    n : int, optional
        Number of patients; the arm sizes of the configuration are scaled proportionally
        (largest remainder). Default: the configuration's own sizes (36 adults, 70 children).
    seed : int
        Seed of the random generator; the same seed gives the same dataset (same
        :meth:`Dataset.sha256`) and truth.
    validate : bool, default True
        Pass the tables through the package validator (:func:`bayes_blina.data.schema.
        validate_dataset`); the result is then exactly what :func:`~bayes_blina.data.read_dataset`
        returns for the written folder. ``False`` skips it (faster for very large cohorts; the
        tables are then built in canonical column order but not checked).

    Returns
    -------
    dataset : Dataset
        ``subjects`` (``subject_id, study, regimen, age_years, age_group, blast_pct, bsa_m2,
        response`` and the extra columns ``cohort`` and ``platelets_baseline``: the patient's
        baseline platelet count in cells/µL, the value the response model uses, as recorded at
        screening without measurement error), ``dosing`` and ``observations`` in canonical
        analyte codes and units (cytokines with ``lod``/``lloq`` on every row).
    truth : dict
        JSON-serialisable truth (see the module docstring).

    Raises
    ------
    BayesBlinaError
        For an unknown preset, an invalid configuration or ``n``, or a non-integer seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise CohortError(f"seed must be an integer (found {seed!r})")
    cfg = _resolve_config(preset, n)
    streams = np.random.SeedSequence(int(seed)).spawn(len(_RNG_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_RNG_STREAMS, streams)}

    # 1. covariates, planned dosing --------------------------------------------------------------
    cov = _covariates(cfg, rng["covariates"])
    n_pat = len(cov["regimen"])
    width = max(4, len(str(n_pat)))
    ids = np.array([f"{cfg.study}-{i + 1:0{width}d}" for i in range(n_pat)], dtype=object)
    id_index = pd.Index(ids, dtype=object)
    planned, i_start, i_end = _planned_dosing(cfg, ids, cov["regimen"], rng["interruptions"])
    ev_planned = _Events(planned[["subject_id", "cycle", "start_h", "end_h", "dose_ug_m2_day"]],
                         id_index)
    blast_high = cov["blast_high"].astype(float)

    # 2. patient-level parameters ----------------------------------------------------------------
    corr = _corr_matrix(cfg)
    z = rng["cytokines"].standard_normal((n_pat, len(CYTOKINES))) @ np.linalg.cholesky(corr).T
    pulse_par = {c: asdict(cfg.cytokines[c]) for c in CYTOKINES}
    pulse_par.update({c: asdict(cfg.labs[c]) for c in LABS})
    pulse_pat = {c: _draw_pulse(pulse_par[c], z[:, j], blast_high, rng["cytokines"])
                 for j, c in enumerate(CYTOKINES)}
    lab_z = rng["labs"].standard_normal((n_pat, len(LABS)))
    pulse_pat.update({c: _draw_pulse(pulse_par[c], lab_z[:, j], blast_high, rng["labs"])
                      for j, c in enumerate(LABS)})
    kin_par = {c: asdict(cfg.kinetics[c]) for c in KINETICS}
    kin_draw = {c: _draw_kinetics_base(kin_par[c], rng["kinetics"], n_pat) for c in KINETICS}
    cd3 = _finish_kinetics(kin_par["CD3"], kin_draw["CD3"], None)  # no response effect on CD3
    if kin_par["CD3"]["expansion_response_effect"] != 0.0:
        raise PresetError("CD3 expansion_response_effect must be 0: CD3 expansion is a cause of "
                          "response in this simulator, not a consequence")

    sub_par = {c: asdict(cfg.subsets[c]) for c in SUBSETS}
    f4 = _expit(_logit(sub_par["CD4"]["fraction_mu"])
                + sub_par["CD4"]["sd_logit_fraction"] * rng["subsets"].standard_normal(n_pat))
    g8 = _expit(_logit(sub_par["CD8"]["fraction_mu"])
                + sub_par["CD8"]["sd_logit_fraction"] * rng["subsets"].standard_normal(n_pat))
    fractions = {"CD4": f4, "CD8": (1.0 - f4) * g8}

    dep = asdict(cfg.cd19)
    r19 = rng["cd19"]
    b19 = np.exp(dep["log_baseline_mu"] + dep["sd_log_baseline"] * r19.standard_normal(n_pat))
    k19 = np.exp(dep["log_k_dep_mu"] + dep["sd_log_k_dep"] * r19.standard_normal(n_pat))
    no_dep = r19.random(n_pat) < dep["p_no_depletion"]
    floor19 = np.where(no_dep, r19.uniform(dep["floor_no_depletion_low"],
                                           dep["floor_no_depletion_high"], n_pat), dep["floor"])

    pk = asdict(cfg.pk)
    css = pk["css_per_dose"] * np.exp(pk["sd_log_css"] * rng["pk"].standard_normal(n_pat))

    # 3. IL-10 peak over the first treatment week ------------------------------------------------
    il10_peak = _il10_peak(cfg, ev_planned, pulse_par["IL10"], pulse_pat["IL10"])

    # 4. response ---------------------------------------------------------------------------------
    rp = asdict(cfg.response)
    plt_base = kin_draw["PLT"]["baseline"]
    eta = (rp["alpha"] + rp["beta_tcell"] * np.log2(cd3["expansion"])
           + rp["beta_il10"] * np.log2(il10_peak / rp["il10_ref"])
           + rp["beta_blast"] * blast_high
           + np.array([rp["age_group_effects"].get(g, 0.0) for g in cov["age_group"]])
           + np.array([rp["regimen_effects"].get(r, 0.0) for r in cov["regimen"]])
           + rp["beta_plt_baseline"] * np.log2(plt_base / rp["plt_ref"]))
    p_cr = _expit(eta)
    response = (rng["response"].random(n_pat) < p_cr).astype(np.int64)

    # 5. recovery that follows response, dropout ---------------------------------------------------
    kin_pat = {"CD3": cd3}
    for c in KINETICS:
        if c != "CD3":
            kin_pat[c] = _finish_kinetics(kin_par[c], kin_draw[c], response)
    p_continue = np.where(response == 1, cfg.p_continue_responder, cfg.p_continue_nonresponder)
    u_drop = rng["dropout"].random(n_pat)
    stops = (u_drop >= p_continue) if (cfg.dropout and cfg.n_cycles > 1) \
        else np.zeros(n_pat, dtype=bool)
    pcode = planned["_p"].to_numpy()
    keep = ~(stops[pcode] & (planned["cycle"].to_numpy() > 1))
    dosing = planned[keep].reset_index(drop=True)
    off_h, off_reason = _early_offstudy(cfg, n_pat, int(seed))
    dosing = _stop_dosing_at(dosing, off_h)
    cycles_received = np.where(stops | np.isfinite(off_h), 1, cfg.n_cycles)
    dose_cols = ["subject_id", "cycle", "start_h", "end_h", "dose_ug_m2_day"]
    ev = _Events(dosing[dose_cols], id_index)

    # 6. observations -----------------------------------------------------------------------------
    sched = _schedules(cfg, ev, cov["frequent"])
    # off-treatment follow-up: kinetics return towards baseline after the last infusion
    off = ((_infusion_end(dosing, id_index), float(cfg.off_treatment_tau_h))
           if cfg.follow_up_after_stop_h else None)
    noise = rng["noise"]
    parts: list[dict[str, np.ndarray]] = []

    def add(code: str, p: np.ndarray, t: np.ndarray, values: np.ndarray, lod: float | None,
            lloq: float | None, censor_lloq: bool) -> None:
        m = len(t)
        lod_a = np.full(m, np.nan if lod is None else float(lod))
        lloq_a = np.full(m, np.nan if lloq is None else float(lloq))
        val, below = _censor(values, lod_a, lloq_a, np.full(m, censor_lloq))
        parts.append({"p": p, "analyte": np.full(m, code, dtype=object), "time_h": t,
                      "value": val, "unit": np.full(m, analyte_info(code).unit, dtype=object),
                      "lod": lod_a, "lloq": lloq_a, "below": below})

    def noisy(x: np.ndarray, sigma: float) -> np.ndarray:
        return x * np.exp(sigma * noise.standard_normal(len(x)))

    for c in CYTOKINES:
        p, t = sched["gzmb"] if c == "GZMB" else sched["cytokines"]
        par, pat = pulse_par[c], pulse_pat[c]
        truth_c = _pulse_curve(ev, p, t, pat["baseline"], pat["log_amp"], par, pat["t_peak"])
        add(c, p, t, noisy(truth_c, par["sigma_obs"]), cfg.cytokine_lod[c], cfg.cytokine_lloq[c],
            cfg.report_below_lloq == "censor")
    p, t = sched["labs"]
    for c in LABS:
        par, pat = pulse_par[c], pulse_pat[c]
        truth_c = _pulse_curve(ev, p, t, pat["baseline"], pat["log_amp"], par, pat["t_peak"])
        add(c, p, t, noisy(truth_c, par["sigma_obs"]), None, None, False)
    for c in ("NEUT", "PLT"):
        par, pat = kin_par[c], kin_pat[c]
        truth_c = _kinetics_curve(ev, p, t, pat["baseline"], pat["depth"], pat["E"], par,
                                  cfg.bracket_floor, off)
        add(c, p, t, noisy(truth_c, par["sigma_obs"]), par["lod"], None, False)
    par = kin_par["CD3"]
    lymph = [(sched["lymph"], noise)]
    if off is not None:  # lymphocyte follow-up visits of the patients who stopped after cycle 1
        lymph.append((_anchored(np.flatnonzero(stops), off[0][stops], cfg.follow_up_after_stop_h),
                      rng["follow_up"]))
    for (p, t), gen in lymph:
        cd3_true = _kinetics_curve(ev, p, t, cd3["baseline"], cd3["depth"], cd3["E"], par,
                                   cfg.bracket_floor, off)
        cd3_obs = cd3_true * np.exp(par["sigma_obs"] * gen.standard_normal(len(t)))
        add("CD3", p, t, cd3_obs, par["lod"], None, False)
        for c in SUBSETS:
            add(c, p, t, cd3_obs * fractions[c][p]
                * np.exp(sub_par[c]["sigma_obs"] * gen.standard_normal(len(t))), par["lod"], None, False)
        cd19_true = _depletion_curve(p, t, b19, k19, floor19)
        add("CD19", p, t, cd19_true * np.exp(dep["sigma_obs"] * gen.standard_normal(len(t))),
            dep["lod"], None, False)
    p, t = sched["pk"]
    conc = _pk_curve(dosing[dose_cols], id_index, p, t, css, pk["half_life_h"])
    add("BLINA", p, t, noisy(conc, pk["sigma_obs"]), None, pk["lloq"], True)

    # 7. tables -----------------------------------------------------------------------------------
    obs = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
    on_study = ~(obs["time_h"] > off_h[obs["p"]])  # no sample after going off study
    obs = {k: v[on_study] for k, v in obs.items()}
    observations = pd.DataFrame({
        "subject_id": ids[obs["p"]], "analyte": obs["analyte"], "time_h": obs["time_h"],
        "value": obs["value"], "unit": obs["unit"], "lod": obs["lod"], "lloq": obs["lloq"],
        "below": obs["below"],
    })
    order = np.lexsort((observations["time_h"].to_numpy(), observations["analyte"].to_numpy(),
                        obs["p"]))
    observations = observations.iloc[order].reset_index(drop=True)
    subjects = pd.DataFrame({
        "subject_id": ids, "study": cfg.study, "regimen": cov["regimen"],
        "age_years": cov["age_years"], "age_group": cov["age_group"],
        "blast_pct": cov["blast_pct"], "bsa_m2": cov["bsa_m2"], "response": response,
        "cohort": cov["cohort"], "platelets_baseline": np.round(plt_base).astype(np.int64),
    })
    if cfg.early_offstudy.p > 0:  # the columns only when the option is on (same data otherwise)
        subjects["response"] = pd.array(np.where(np.isfinite(off_h), None, response), dtype="Int64")
        subjects["offstudy_h"] = off_h
        subjects["offstudy_reason"] = off_reason
    surv_truth = None
    if cfg.survival.enabled:  # the columns only when the option is on (same data otherwise)
        surv_cols, surv_truth = simulate_survival(cfg.survival, response, cd3["expansion"], off_h, off_reason,
                                                  int(seed))
        for k, v in surv_cols.items():
            subjects[k] = pd.array([None if not np.isfinite(x) else (int(x) if k.endswith(("_event", "_response"))
                                                                     else float(x)) for x in v],
                                   dtype="Int64" if k.endswith(("_event", "_response")) else "Float64")
    dosing_out = dosing[["subject_id", "cycle", "start_h", "end_h", "dose"]].assign(
        dose_unit="ug/m2/day")
    name = f"{cfg.name}-n{n_pat}-seed{int(seed)}"
    origin = f"simulate_cohort({cfg.name!r}, n={n_pat}, seed={int(seed)})"
    tables = {"subjects": subjects, "dosing": dosing_out, "observations": observations}
    if validate:
        dataset = validate_dataset(tables, name=name, origin=origin)
    else:
        dataset = _canonical_unvalidated(tables, name, origin)

    truth = _truth(cfg, int(seed), ids, cov, corr, pulse_par, pulse_pat, kin_par, kin_pat,
                   sub_par, fractions, dep, b19, k19, floor19, ~no_dep, pk, css, rp, response,
                   p_cr, eta, il10_peak, cycles_received, i_start, i_end)
    if cfg.early_offstudy.p > 0:
        truth["design"]["early_offstudy"] = _json_plain(asdict(cfg.early_offstudy))
        truth["patients"]["offstudy_h"] = _floats(off_h)
        truth["patients"]["offstudy_reason"] = [r or None for r in off_reason.tolist()]
    if surv_truth is not None:
        truth["design"]["survival"] = _json_plain(asdict(cfg.survival))
        truth["patients"].update(surv_truth)
    return dataset, truth


#: Spawn key of the random stream of early off-study (a child of the seed's SeedSequence that the
#: streams of ``_RNG_STREAMS`` never reach, so adding it changed no existing draw).
_OFFSTUDY_STREAM = 1001


def _early_offstudy(cfg: CohortConfig, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Off-study time (h; NaN: stays on study) and reason ('death', 'withdrawal', '') of each
    patient (:attr:`CohortConfig.early_offstudy`); times rounded to 0.1 h."""
    eo = cfg.early_offstudy
    if eo.p <= 0:
        return np.full(n, np.nan), np.full(n, "", dtype=object)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_OFFSTUDY_STREAM,)))
    goes = rng.random(n) < eo.p
    lo, hi = (float(x) for x in eo.window_h)
    when = np.clip(np.round(rng.uniform(lo, hi, n), 1), lo + 0.1, hi)  # after the first start
    died = rng.random(n) < eo.p_death
    off_h = np.where(goes, when, np.nan)
    reason = np.where(goes, np.where(died, "death", "withdrawal"), "").astype(object)
    return off_h, reason


def _stop_dosing_at(dosing: pd.DataFrame, off_h: np.ndarray) -> pd.DataFrame:
    """Dosing cut at each patient's off-study time: later segments dropped, the running one
    ended then."""
    if not np.isfinite(off_h).any():
        return dosing
    off = off_h[dosing["_p"].to_numpy()]
    keep = ~(dosing["start_h"].to_numpy(float) >= off)
    out = dosing[keep].copy()
    out["end_h"] = np.fmin(out["end_h"].to_numpy(float), off[keep])
    return out.reset_index(drop=True)


def _il10_peak(cfg: CohortConfig, ev: _Events, par: dict[str, float], pat: dict[str, np.ndarray],
               chunk: int = 256) -> np.ndarray:
    """Maximum of the noise-free IL10 curve on a fine grid over (0, window] h."""
    step = float(cfg.il10_peak_step_h)
    grid = np.arange(step, float(cfg.il10_peak_window_h) + step / 2.0, step)
    out = np.empty(ev.n)
    for lo in range(0, ev.n, chunk):
        idx = np.arange(lo, min(lo + chunk, ev.n))
        p = np.repeat(idx, len(grid))
        t = np.tile(grid, len(idx))
        c = _pulse_curve(ev, p, t, pat["baseline"], pat["log_amp"], par, pat["t_peak"])
        out[idx] = c.reshape(len(idx), len(grid)).max(axis=1)
    return out


def _canonical_unvalidated(tables: dict[str, pd.DataFrame], name: str, origin: str) -> Dataset:
    """``validate=False``: validate the small tables, build the observations canonically.

    The observation table is assembled directly in the canonical layout (codes and units are
    already canonical and every censored row carries its limit, so ``limit_source`` is ``'row'``),
    which is what the validator would return, without its per-cell text round trip.
    """
    small = validate_dataset({k: v for k, v in tables.items() if k != "observations"},
                             name=name, origin=origin)
    raw = tables["observations"]
    obs = pd.DataFrame({
        "subject_id": raw["subject_id"].astype(str).astype("str"),
        "analyte": raw["analyte"].astype("str"),
        "time_h": raw["time_h"].to_numpy(float),
        "value": raw["value"].to_numpy(float),
        "unit": raw["unit"].astype("str"),
        "lod": raw["lod"].to_numpy(float),
        "lloq": raw["lloq"].to_numpy(float),
        "below": raw["below"].astype("str"),
        "limit_source": pd.Series(np.where(raw["below"].to_numpy() != "", "row", ""),
                                  dtype="str"),
    })
    return small.with_tables(observations=obs)


def _truth(cfg: CohortConfig, seed: int, ids: np.ndarray, cov: dict[str, np.ndarray],
           corr: np.ndarray, pulse_par: dict, pulse_pat: dict, kin_par: dict, kin_pat: dict,
           sub_par: dict, fractions: dict, dep: dict, b19: np.ndarray, k19: np.ndarray,
           floor19: np.ndarray, depleted: np.ndarray, pk: dict, css: np.ndarray, rp: dict,
           response: np.ndarray, p_cr: np.ndarray, eta: np.ndarray, il10_peak: np.ndarray,
           cycles_received: np.ndarray, i_start: np.ndarray, i_end: np.ndarray
           ) -> dict[str, Any]:
    full = cfg.to_dict()
    design_keys = ("arms", "n_cycles", "demographics", "sampling", "report_below_lloq",
                   "dropout", "p_continue_responder", "p_continue_nonresponder",
                   "p_interruption", "interruption_window_h", "interruption_hours",
                   "il10_peak_window_h", "il10_peak_step_h", "follow_up_after_stop_h",
                   "off_treatment_tau_h")
    population = {
        "pulse": {c: dict(v) for c, v in pulse_par.items()},
        "cytokine_corr": {"analytes": list(CYTOKINES), "matrix": corr.tolist()},
        "kinetics": {c: dict(v) for c, v in kin_par.items()},
        "bracket_floor": cfg.bracket_floor,
        "subsets": {c: dict(v) for c, v in sub_par.items()},
        "depletion": {"CD19": dict(dep)},
        "pk": {"BLINA": dict(pk)},
        "response": dict(rp),
        "assay": {"cytokine_lod": dict(cfg.cytokine_lod),
                  "cytokine_lloq": dict(cfg.cytokine_lloq),
                  "cell_lod": {c: kin_par[c]["lod"] for c in KINETICS}
                  | {c: kin_par["CD3"]["lod"] for c in SUBSETS} | {"CD19": dep["lod"]},
                  "pk_lloq": pk["lloq"]},
    }
    patients: dict[str, Any] = {
        "subject_id": ids.tolist(),
        "cohort": cov["cohort"].tolist(),
        "regimen": cov["regimen"].tolist(),
        "age_years": _floats(cov["age_years"]),
        "age_group": cov["age_group"].tolist(),
        "blast_pct": _floats(cov["blast_pct"]),
        "blast_high": cov["blast_high"].tolist(),
        "bsa_m2": _floats(cov["bsa_m2"]),
        "frequent_sampling": cov["frequent"].tolist(),
        "response": response.tolist(),
        "p_cr": _floats(p_cr),
        "eta_cr": _floats(eta),
        "expansion": _floats(kin_pat["CD3"]["expansion"]),
        "il10_peak": _floats(il10_peak),
        "cycles_received": cycles_received.tolist(),
        "interruption_start_h": _floats(i_start),
        "interruption_end_h": _floats(i_end),
        "pulse": {c: {k: _floats(v) for k, v in pat.items()} for c, pat in pulse_pat.items()},
        "kinetics": {c: {k: _floats(v) for k, v in pat.items()} for c, pat in kin_pat.items()},
        "subsets": {c: {"fraction": _floats(f)} for c, f in fractions.items()},
        "depletion": {"CD19": {"baseline": _floats(b19), "k_dep": _floats(k19),
                               "floor": _floats(floor19), "depleted": depleted.tolist()}},
        "pk": {"BLINA": {"css_per_dose": _floats(css)}},
    }
    return _json_plain({
        "schema": TRUTH_SCHEMA,
        "preset": cfg.name,
        "study": cfg.study,
        "seed": seed,
        "n": len(ids),
        "design": {k: full[k] for k in design_keys},
        "population": population,
        "patients": patients,
    })


# ------------------------------------------------------------------------------------------------
# noise-free curves from a dataset and its truth
# ------------------------------------------------------------------------------------------------


def true_curve(dataset: Dataset, truth: dict[str, Any], analyte: str,
               times_h: np.ndarray | list[float], subject_ids: list[str] | None = None
               ) -> np.ndarray:
    """Noise-free curve of one analyte, recomputed from the truth and the dataset's dosing.

    Parameters
    ----------
    dataset : Dataset
        The simulated dataset (its ``dosing`` defines the events).
    truth : dict
        The truth returned with it (or read from ``truth.json``).
    analyte : str
        Canonical code: a cytokine or lab (pulse family), ``CD3``/``NEUT``/``PLT`` (kinetics),
        ``CD4``/``CD8`` (fraction of the CD3 curve), ``CD19`` or ``BLINA``.
    times_h : array_like
        Times (h since the first infusion start), the same for every patient.
    subject_ids : list of str, optional
        Patients (default: all, in the truth's order).

    Returns
    -------
    numpy.ndarray
        Shape ``(n_patients, n_times)``.

    Raises
    ------
    CohortError
        For an analyte the simulator does not produce or an unknown subject.
    """
    pats = truth["patients"]
    all_ids = pd.Index(pats["subject_id"], dtype=object)
    wanted = list(all_ids) if subject_ids is None else [str(s) for s in subject_ids]
    rows = all_ids.get_indexer(wanted)
    if np.any(rows < 0):
        raise CohortError(f"unknown subject(s): {[w for w, r in zip(wanted, rows) if r < 0]}")
    times = np.asarray(times_h, dtype=float).ravel()
    dose_cols = ["subject_id", "cycle", "start_h", "end_h", "dose_ug_m2_day"]
    dosing = dataset.dosing[dose_cols]
    ev = _Events(dosing, all_ids)
    p = np.repeat(rows, len(times))
    t = np.tile(times, len(rows))
    pop = truth["population"]

    def arr(d: dict[str, Any], key: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in d[key]], dtype=float)

    if analyte in pop["pulse"]:
        par, pat = pop["pulse"][analyte], pats["pulse"][analyte]
        y = _pulse_curve(ev, p, t, arr(pat, "baseline"), arr(pat, "log_amp"), par, arr(pat, "t_peak"))
    elif analyte in pop["kinetics"] or analyte in pop["subsets"]:
        base = analyte if analyte in pop["kinetics"] else "CD3"
        par, pat = pop["kinetics"][base], pats["kinetics"][base]
        design = truth.get("design", {})
        off = ((_infusion_end(dosing, all_ids), float(design["off_treatment_tau_h"]))
               if design.get("follow_up_after_stop_h") else None)
        y = _kinetics_curve(ev, p, t, arr(pat, "baseline"), arr(pat, "depth"), arr(pat, "E"),
                            par, pop["bracket_floor"], off)
        if analyte in pop["subsets"]:
            y = y * arr(pats["subsets"][analyte], "fraction")[p]
    elif analyte == "CD19":
        pat = pats["depletion"]["CD19"]
        y = _depletion_curve(p, t, arr(pat, "baseline"), arr(pat, "k_dep"), arr(pat, "floor"))
    elif analyte == "BLINA":
        y = _pk_curve(dosing, all_ids, p, t, arr(pats["pk"]["BLINA"], "css_per_dose"),
                      pop["pk"]["BLINA"]["half_life_h"])
    else:
        raise CohortError(f"the simulator does not produce analyte {analyte!r}")
    return y.reshape(len(rows), len(times))


# ------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------


def write_cohort(dataset: Dataset, truth: dict[str, Any], out_dir: str | os.PathLike[str], *,
                 overwrite: bool = False) -> Path:
    """Write a simulated cohort: the dataset folder (canonical CSVs) plus ``truth.json``.

    Everything is written into a temporary folder next to ``out_dir`` and moved into place at the
    end, so a failure never leaves a half-written cohort. ``read_dataset(out_dir)`` reads the
    dataset back (``truth.json`` is ignored by the reader).

    Parameters
    ----------
    dataset : Dataset
        As returned by :func:`simulate_cohort`.
    truth : dict
        As returned by :func:`simulate_cohort` (must be JSON-serialisable).
    out_dir : str or path-like
        Output folder.
    overwrite : bool, default False
        Replace an existing non-empty folder.

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    DatasetExistsError
        If ``out_dir`` is a file, or a non-empty folder and ``overwrite`` is false.
    CohortError
        If ``truth`` cannot be written as JSON.
    """
    folder = Path(out_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DatasetExistsError(f"cannot write the cohort to '{folder}': it is a file")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise DatasetExistsError(f"folder '{folder}' exists and is not empty; pass "
                                 "overwrite=True to replace it")
    try:
        text = json.dumps(_json_plain(truth), indent=1, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise CohortError(f"truth is not JSON-serialisable: {err}") from None
    from bayes_blina._atomic import make_parent

    make_parent(folder)  # OutputError when a parent is a file or cannot be made
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        stage = tmp / "cohort"
        write_dataset(dataset, stage)
        (stage / "truth.json").write_text(text + "\n", encoding="utf-8")
        os.chmod(stage, 0o755)
        swap_in(stage, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
