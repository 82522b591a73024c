"""Pulse trajectories of cytokines and laboratory values, with a censored (M3) likelihood.

Every infusion event (first start, restart, cycle start, dose step; see
:func:`bayes_blina.events.infusion_events`) can trigger a transient rise of a cytokine above the
patient's baseline. For analyte ``j``, patient ``i`` and an observation at time ``t``::

    mu_log = log B_ij + log(1 + sum_e A_ije * g(t - t_e; t_peak_j, k_j))
    log y  ~ Normal(mu_log, sigma_obs_j)        (below a limit: Phi of the limit, Beal's M3)

with the unit-peak pulse ``g`` of :func:`bayes_blina.curves.pulse` and, for event ``e`` of patient
``i`` at dose ``dose_e`` (µg/m²/day) in cycle ``cycle_e``::

    log A_ije   = log_amp_ij + gamma_dose_j * log(dose_e / 15)
                  + delta_reexposure_j * (1 - first_exposure_e) + kappa_cycle_j * (cycle_e - 1)
    log_amp_ij  = log_amp_mu_j [+ covariate effects] + sd_log_amp_j * (L z_i)_j,   z_i ~ N(0, I)
    log B_ij    = log_baseline_mu_j + sd_log_baseline_j * w_ij,                     w_ij ~ N(0, 1)
    t_peak_ij   = exp(log_tpeak_i_ij),  log_tpeak_i_ij = log_tpeak_j + sd_log_tpeak_j * v_ij,
                                                                                    v_ij ~ N(0, 1)

``L`` is the Cholesky factor of the LKJ-distributed correlation matrix ``corr_amp`` of the
patient log-amplitudes across analytes (``correlated = true``), or the identity. Only events at
most ``max_event_lag_h`` before an observation contribute (the pulse is negligible after that).
``first_exposure`` is true only for the patient's first ever infusion start, so
``delta_reexposure`` is the priming effect: how much smaller (if negative) the response to a later
start or dose step is than to the first exposure at the same dose.

Exposure: dose or PK
--------------------
``exposure = "dose"`` (default) uses ``log(dose_e / 15)`` as above. ``exposure = "css"`` uses the
steady-state serum concentration of the one-compartment infusion model instead,
``log(Css_ie / Css_ref)`` with ``Css_ie = css_per_dose_i * dose_e`` and ``Css_ref`` the population
``css_per_dose`` (default 45.83 pg/mL per µg/m²/day, :class:`bayes_blina.events.SteadyStatePK`,
from the adult paper's Css 198 at 5 and 694 pg/mL at 15 µg/m²/day) times 15. A patient's own
``css_per_dose_i`` comes from the ``subjects.csv`` column ``css_per_dose`` (pg/mL per µg/m²/day,
e.g. a measured Css divided by the dose it was measured at); patients without it get the
population value (counted in ``data_use["exposure"]``). Without the column the model is exactly the
dose model (Css is proportional to dose); with it, ``gamma_dose`` is the exposure-response slope and
patients with higher exposure at the same dose get larger pulses. The arrays ``event_log_dose`` and
``pair_log_dose`` then hold the log exposure; ``event_dose`` keeps the dose.

Patient-level timing
--------------------
With ``patient_timing = true`` (default) every patient has its own time to peak per analyte
(``log_tpeak_i``, subject × analyte, stored as a deterministic), spread around the population
``log_tpeak`` with SD ``sd_log_tpeak``; the deviations are sampled non-centred (``v_tpeak``)
because sparse sampling (a few samples per event) identifies a single patient's timing weakly.
``patient_timing = false`` is the earlier model with one time to peak per analyte
(``log_tpeak_i`` is then not defined). Timing leaves the peak heights unchanged: ``log_peak_first``
and ``typical_peak`` do not depend on it, and the peak coordinates below are the same.
Predictions of a *typical* patient use the population ``log_tpeak``; *individual* predictions
the patient's own ``log_tpeak_i``; virtual patients of regimen planning draw their own timing.

Derived quantities
------------------
``log_peak_first`` (subject, analyte)
    ``log B + log(1 + A_first)``: log of the noise-free concentration at the peak after the
    patient's first infusion start (exact when no other event falls within ``t_peak`` of it).
``typical_peak`` (analyte, scenario)
    Concentration of the population-typical patient (``exp(log_baseline_mu) * (1 + A)`` with ``A``
    from ``log_amp_mu`` at the reference level of every covariate) for the scenarios of the adult
    paper's Fig 6: ``flat15_first`` (first exposure at 15 µg/m²/day), ``start5_first`` (first
    exposure at 5) and ``step15_after5`` (step to 15 after a first week at 5, cycle 1).

Censoring
---------
``censoring = "m3"`` (default) uses :func:`bayes_blina.likelihood.censored_lognormal_logp`.
``censoring = "half_lod"`` replaces every censored result by half its limit (LOD or LLOQ, as
``below`` says) and treats it as observed: a common ad-hoc practice that biases baselines and
spreads. It exists **for comparison only** (to show that bias); do not use it for inference.

Relative to baseline
--------------------
``relative_to_baseline = true`` (meant for laboratory values with a measured pre-treatment level)
divides every value and limit of a patient's analyte by that patient's pre-treatment reference:
the geometric mean of its uncensored values at ``time_h <= 0``. Those reference rows are then not
in the likelihood (they would be fitted to themselves), and ``B`` becomes the ratio of the
on-treatment baseline to the pre-treatment reference (priors centred on 0 on the log scale).
Patient-analytes without an uncensored pre-treatment value are left out.

Sampling coordinates
--------------------
The formula above is what the model means; the sampler moves other, exactly equivalent
coordinates where the formula's own are badly shaped: ``peak_coordinates = true`` (default) samples
log peaks and the baseline given the peak (:meth:`PulseModel._peak_coordinates`),
``event_coordinates = true`` decorrelates the dose and re-exposure effects
(:meth:`PulseModel._event_effects`), ``timing_sampling = "patient_mean"`` centres patient timing on
the fitted patients' mean (:meth:`PulseModel._timing_coordinates`), and the timing starts,
unjittered, at a data-driven value (:func:`_initial_log_tpeak`). What each was measured to do, and
what was tried instead, is in ``docs/sampling.md``. With nutpie's parallel chains limit BLAS to
one thread (``threadpoolctl.threadpool_limits(1, "blas")``), as :mod:`bayes_blina.inference` does.

Every row left out is recorded with its reason in ``data_use``. The data preparation, the
pointwise likelihood and the ``add_to_model`` / ``mean_log`` interface are shared with the other
trajectory families (:mod:`bayes_blina.families.trajectory`).
"""
from __future__ import annotations

import math
from typing import Any, Literal, Mapping, override

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field

from bayes_blina.errors import DataValidationError, Problem
from bayes_blina.families.base import Prepared, start_unjittered
from bayes_blina.families.levels import subject_numbers
from bayes_blina.families.trajectory import (REFERENCE_DOSE, PatientEffects, TrajectoryFamily, TrajectoryOptions,
                                             analyte_values, cell_values, concrete_arrays, correlated_chol,
                                             diagonal_chol, pair_total, prepare_trajectory)
from bayes_blina.priors import Prior

__all__ = ["POPULATION_PARAMETERS", "SCENARIOS", "PulseModel", "PulseOptions", "css_offsets", "pulse_log_mean",
           "pulse_log_mu", "split_peak_deviation"]

#: Population parameters (each with dimension ``analyte``), in summary order.
POPULATION_PARAMETERS: tuple[str, ...] = (
    "log_baseline_mu", "sd_log_baseline", "log_amp_mu", "sd_log_amp", "gamma_dose",
    "delta_reexposure", "kappa_cycle", "log_tpeak", "sd_log_tpeak", "k_shape", "sigma_obs",
)

#: Scenarios of ``typical_peak``: (log(dose / 15), not first exposure, cycle - 1).
SCENARIOS: dict[str, tuple[float, float, float]] = {
    "flat15_first": (0.0, 0.0, 0.0),
    "start5_first": (math.log(5.0 / REFERENCE_DOSE), 0.0, 0.0),
    "step15_after5": (0.0, 1.0, 0.0),
}


#: Weight of the between-patient spread of the event covariates in the rotation of the event
#: effects (:meth:`PulseModel._event_effects`): it only orders the directions that no patient's
#: own events contrast.
BETWEEN_PATIENT_WEIGHT = 0.01


def _within_patient_covariance(X: np.ndarray, subject: np.ndarray) -> np.ndarray:
    """Covariance of the event covariates within patients, plus :data:`BETWEEN_PATIENT_WEIGHT`
    times the between-patient part (rows of ``X`` are events, ``subject`` their patient index).

    Examples
    --------
    >>> X = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])   # patient 0: two events; patient 1: one
    >>> np.round(_within_patient_covariance(X, np.array([0, 0, 1])), 4)
    array([[0.1672, 0.1661],
           [0.1661, 0.1672]])
    """
    X = np.asarray(X, dtype=float)
    _, inv = np.unique(np.asarray(subject), return_inverse=True)
    means = _group_means(X, inv, int(inv.max()) + 1 if len(inv) else 0)
    within = X - means[inv]
    between = means[inv] - X.mean(axis=0)
    n = len(X)
    return (within.T @ within + BETWEEN_PATIENT_WEIGHT * between.T @ between) / n


def _patient_event_means(A: dict[str, np.ndarray], n_sub: int) -> np.ndarray:
    """Each patient's mean (log dose, re-exposure, cycle - 1) over their fitted events, shape
    (subject, 3); a patient without events gets the mean over all events (``event_centre``).

    Examples
    --------
    >>> A = {"event_subject": np.array([0, 0, 2]), "event_log_dose": np.array([-1.0, 0.0, 0.0]),
    ...      "event_reexposure": np.array([0.0, 1.0, 0.0]), "event_cycle_m1": np.zeros(3),
    ...      "event_centre": np.array([-1 / 3, 1 / 3, 0.0])}
    >>> _patient_event_means(A, 3).round(3)
    array([[-0.5  ,  0.5  ,  0.   ],
           [-0.333,  0.333,  0.   ],
           [ 0.   ,  0.   ,  0.   ]])
    """
    X = np.column_stack([A["event_log_dose"], A["event_reexposure"], A["event_cycle_m1"]]).astype(float)
    means = _group_means(X, np.asarray(A["event_subject"], dtype=np.int64), n_sub)
    return np.where(np.isnan(means), np.asarray(A["event_centre"], dtype=float)[None, :], means)


def _group_means(X: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Column means of ``X`` (rows, columns) per group index ``0 .. n_groups - 1``; NaN for a
    group without rows."""
    counts = np.bincount(group, minlength=n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([np.bincount(group, weights=X[:, k], minlength=n_groups) / counts
                         for k in range(X.shape[1])], axis=1)


class PulseOptions(TrajectoryOptions):
    """Options of the pulse family (see the module docstring).

    Attributes
    ----------
    analytes : list of str
        Analytes modelled (canonical codes; aliases are resolved). Default IL6, IL10, IFNG.
    correlated : bool
        LKJ-correlated patient log-amplitudes across analytes (needs two or more analytes).
    covariates : list of str
        Subject covariates with an effect on the log amplitude: ``blast_burden``, ``age_group``.
    cycles : int
        Highest treatment cycle used; later observations and events are left out.
    max_event_lag_h : float
        Only events at most this many hours before an observation contribute.
    relative_to_baseline : bool
        Model values relative to the patient's pre-treatment reference (laboratory values).
    censoring : {"m3", "half_lod"}
        ``"m3"``: censored likelihood. ``"half_lod"``: substitute half the limit and treat the row
        as observed; **for comparison only**.
    lkj_eta : float
        Shape of the LKJ prior of ``corr_amp`` (1 = uniform over correlation matrices).
    peak_coordinates : bool
        Sample in peak coordinates (same model, better geometry; see the module docstring).
    event_coordinates : bool
        Sample the event effects (``gamma_dose``, ``delta_reexposure``, ``kappa_cycle``) in
        decorrelated coordinates (same model; see :meth:`PulseModel._event_effects`). Needs Normal
        priors for the three; with another prior they are sampled as they are.
    patient_timing : bool
        Patient-level time to peak (``log_tpeak_i = log_tpeak + sd_log_tpeak * v``); false: one
        time to peak per analyte.
    timing_sampling : {"patient_mean", "non_centred", "centred"}
        Sampling coordinates of the patient timing (the model is the same): ``"patient_mean"``
        (default; non-centred ``v_tpeak`` with the patients' mean timing ``log_tpeak_c`` in place
        of ``log_tpeak``, see :meth:`PulseModel._timing_coordinates`; with ``peak_coordinates =
        false`` it falls back to ``"non_centred"``), ``"non_centred"`` (``log_tpeak`` and
        ``v_tpeak``) or ``"centred"`` (``log_tpeak_i`` itself).
    gap_tol_h : float
        Gaps up to this many hours between dosing segments are continuous infusion.
    exposure : {"dose", "css"}
        What drives the amplitudes: ``log(dose / 15)`` or the log steady-state concentration
        relative to the population's at 15 µg/m²/day (see the module docstring).
    css_per_dose : float
        Population steady-state concentration per unit dose rate (pg/mL per µg/m²/day), for
        ``exposure = "css"``.
    """

    model_config = ConfigDict(extra="forbid")
    analytes: list[str] = Field(default_factory=lambda: ["IL6", "IL10", "IFNG"])
    correlated: bool = True
    covariates: list[Literal["blast_burden", "age_group"]] = Field(default_factory=list)
    lkj_eta: float = Field(2.0, gt=0)
    peak_coordinates: bool = True
    event_coordinates: bool = True
    patient_timing: bool = True
    timing_sampling: Literal["patient_mean", "non_centred", "centred"] = "patient_mean"
    exposure: Literal["dose", "css"] = "dose"
    css_per_dose: float = Field(45.83, gt=0)


class PulseModel(TrajectoryFamily):
    """Pulse family of cytokine and laboratory trajectories (see the module docstring).

    Default priors (each per analyte; override by name in the spec's ``[priors]`` table; values on
    the log scale of the analyte's canonical unit, e.g. log pg/mL for cytokines):

    ``log_baseline_mu``   Normal(2.5, 2): typical baseline ~12 pg/mL, anywhere from 0.2 to 600.
                          With ``relative_to_baseline``: Normal(0, 0.5).
    ``sd_log_baseline``   Gamma(2, 2): between-patient SD of log baselines, mean 1, 95% within
                          0.12 to 2.8 (``relative_to_baseline``: Gamma(2, 8), mean 0.25).
    ``log_amp_mu``        Normal(2.5, 2): typical fold rise above baseline at the peak, exp(2.5) ~ 12.
    ``sd_log_amp``        Gamma(2, 2): between-patient SD of log amplitudes.
    ``gamma_dose``        Normal(0, 1): log-amplitude per log dose ratio (1 = proportional).
    ``delta_reexposure``  Normal(0, 1.5): log-amplitude change for a later exposure (priming < 0).
    ``kappa_cycle``       Normal(0, 1): log-amplitude change per later cycle.
    ``log_tpeak``         Normal(log 12, 1): time to peak, 12 h (about 2 to 85 h); with
                          ``patient_timing`` the typical (median) patient's.
    ``sd_log_tpeak``      Gamma(2, 8): between-patient SD of log times to peak (``patient_timing``
                          only; declared, and ignored, otherwise), mean 0.25 (a patient 1 SD
                          early peaks about 22% sooner), 95% within 0.03 and 0.70. It avoids
                          zero: sparse samples identify timing weakly and a prior with mass at
                          zero invites a funnel; it keeps the SD below about 1, so a patient's
                          peak stays within a few-fold of the typical time.
    ``k_shape``           LogNormal(log 2, 0.5): pulse width (larger = narrower).
    ``sigma_obs``         HalfNormal(1): residual SD of log concentrations.
    ``beta_<covariate>``  Normal(0, 1): log-amplitude difference of each level from the reference
                          (first level present in the data), per analyte.

    The LKJ shape of ``corr_amp`` is the option ``lkj_eta`` (default 2). The two SD priors avoid
    zero on purpose: with censored baselines only ``sd_log_baseline**2 + sd_log_amp**2`` is well
    determined by the data, and a prior with mass at zero lets either SD collapse into a funnel.
    """

    name = "pulse"
    report_figures = ("pulse_figures",)
    Options = PulseOptions
    patient_vars = ("log_baseline", "log_amp", "log_tpeak_i")
    #: Patient variables that fits without them (``patient_timing = false``, or fits stored before
    #: the option existed) lack; :func:`pulse_log_mu` then uses the population ``log_tpeak``.
    optional_patient_vars = ("log_tpeak_i",)
    analyte_prior_names = POPULATION_PARAMETERS
    population_vars = ("gamma_dose", "delta_reexposure", "kappa_cycle", "log_tpeak", "k_shape")

    @override
    def default_priors(self) -> dict[str, Prior]:
        rel = self.options.relative_to_baseline
        pri = {
            "log_baseline_mu": Prior("Normal", mu=0.0, sigma=0.5) if rel else Prior("Normal", mu=2.5, sigma=2.0),
            "sd_log_baseline": Prior("Gamma", alpha=2.0, beta=8.0) if rel else Prior("Gamma", alpha=2.0, beta=2.0),
            "log_amp_mu": Prior("Normal", mu=2.5, sigma=2.0),
            "sd_log_amp": Prior("Gamma", alpha=2.0, beta=2.0),
            "gamma_dose": Prior("Normal", mu=0.0, sigma=1.0),
            "delta_reexposure": Prior("Normal", mu=0.0, sigma=1.5),
            "kappa_cycle": Prior("Normal", mu=0.0, sigma=1.0),
            "log_tpeak": Prior("Normal", mu=round(math.log(12.0), 6), sigma=1.0),
            "sd_log_tpeak": Prior("Gamma", alpha=2.0, beta=8.0),
            "k_shape": Prior("LogNormal", mu=round(math.log(2.0), 6), sigma=0.5),
            "sigma_obs": Prior("HalfNormal", sigma=1.0),
        }
        for f in self.options.covariates:
            pri[f"beta_{f}"] = Prior("Normal", mu=0.0, sigma=1.0)
        return pri

    # ------------------------------------------------------------------ data
    def prepare(self, dataset) -> Prepared:
        """Rows, events and pairs (:func:`~bayes_blina.families.trajectory.prepare_trajectory`), the
        exposure of every event (``exposure = "css"``), then :meth:`extend_prepared`."""
        prepared = prepare_trajectory(dataset, self.options, family=self.name, uses_events=self.uses_events)
        if self.options.exposure == "css":
            A = prepared.arrays
            offset, use = css_offsets(dataset.subjects, prepared.coords["subject"], self.options.css_per_dose)
            A["event_log_dose"] = A["event_log_dose"] + offset[A["event_subject"]]
            A["pair_log_dose"] = A["pair_log_dose"] + offset[A["pair_subject"]]
            prepared.data_use["exposure"] = use
        return self.extend_prepared(prepared)

    def extend_prepared(self, prepared: Prepared) -> Prepared:
        """Pulse-specific arrays: the first event's dose and cycle per subject, the centre of the
        event covariates (peak coordinates), and the ``analyte_b`` and ``scenario`` coordinates."""
        A = prepared.arrays
        ev_subject = A["event_subject"]
        n_sub = len(prepared.coords["subject"])
        first = pd.Series(np.arange(len(ev_subject))).groupby(ev_subject, sort=True).head(1).to_numpy()
        first_log_dose = np.zeros(n_sub)
        first_cycle = np.zeros(n_sub)
        first_log_dose[ev_subject[first]] = A["event_log_dose"][first]
        first_cycle[ev_subject[first]] = A["event_cycle_m1"][first]
        A["first_log_dose"] = first_log_dose
        A["first_cycle_m1"] = first_cycle
        # means of the event covariates (dose, re-exposure, cycle): centre of peak coordinates
        A["event_centre"] = (np.array([A["event_log_dose"].mean(), A["event_reexposure"].mean(),
                                       A["event_cycle_m1"].mean()]) if len(ev_subject) else np.zeros(3))
        c = prepared.coords
        prepared.coords = {"analyte": c["analyte"], "analyte_b": list(c["analyte"]), "subject": c["subject"],
                           "scenario": list(SCENARIOS),
                           **{k: v for k, v in c.items() if k not in ("analyte", "subject")}}
        if self.options.correlated and len(self.options.analytes) < 2:
            prepared.data_use["note"] = "one analyte: correlated = true has no effect"
        return prepared

    # ------------------------------------------------------------------ model
    def add_to_model(self, prepared: Prepared, prefix: str = "") -> dict[str, Any]:
        """Add the pulse model to the current PyMC model (inside ``with model:``).

        M3 likelihood as the potential ``prefix + "loglik"``, patient effects in peak coordinates
        (or non-centred, ``peak_coordinates = false``), named quantities as deterministics. Every
        variable is named ``prefix + name`` and every dimension ``prefix + dim``.

        Returns
        -------
        dict
            ``log_peak_first``, ``log_baseline`` and ``log_amp``: tensors (subject, analyte). (The
            patient timing ``log_tpeak_i``, when modelled, is a named deterministic of the model;
            ``log_peak_first`` does not depend on it.)
        """
        import pymc as pm
        import pytensor.tensor as pt

        self._ensure_coords(prepared, prefix)
        opt, A, P = self.options, prepared.arrays, self.priors
        n_sub, n_ana = len(prepared.coords["subject"]), len(opt.analytes)
        q = prefix
        ana, sub = q + "analyte", q + "subject"
        lbm = self.create_prior("log_baseline_mu", q + "log_baseline_mu", dims=ana)
        sdb = self.create_prior("sd_log_baseline", q + "sd_log_baseline", dims=ana)
        gamma, delta, kappa = self._event_effects(A, n_ana, prefix=q)
        timing_coords = opt.patient_timing and opt.peak_coordinates and opt.timing_sampling == "patient_mean"
        init_tpeak = _initial_log_tpeak(A, n_sub, n_ana, self._prior_mean_log_tpeak(n_ana))
        if not timing_coords:  # else log_tpeak is implied by the timing coordinates (below)
            log_tpeak = self.create_prior("log_tpeak", q + "log_tpeak", dims=ana, initval=init_tpeak)
            start_unjittered(log_tpeak)
        k_shape = self.create_prior("k_shape", q + "k_shape", dims=ana)
        sigma = self.create_prior("sigma_obs", q + "sigma_obs", dims=ana)
        sda, chol = self.correlated_sd("sd_log_amp", "amp", q)
        eff = self.covariate_effects(prepared, q)
        if opt.peak_coordinates:
            # sample each patient's log peak and the baseline given it; see _peak_coordinates
            lam, dev_a, dev_b = self._peak_coordinates(prepared, P, lbm, sdb, eff, gamma, delta, kappa,
                                                       sda, chol, prefix=q,
                                                       amp_prior=self.prior_dist("log_amp_mu", n_ana))
        else:
            lam = self.create_prior("log_amp_mu", q + "log_amp_mu", dims=ana)
            z = pm.Normal(q + "z_amp", 0.0, 1.0, dims=(sub, ana))
            dev_a = pt.dot(z, chol.T) if chol is not None else z * sda  # row i: diag(sd) L z_i
            w = pm.Normal(q + "w_baseline", 0.0, 1.0, dims=(sub, ana))
            dev_b = sdb * w
        log_base = pm.Deterministic(q + "log_baseline", lbm + dev_b, dims=(sub, ana))
        log_amp = pm.Deterministic(q + "log_amp", lam + eff + dev_a, dims=(sub, ana))

        if opt.patient_timing:  # non-centred patient timing: sparse samples identify it weakly
            sdt = self.create_prior("sd_log_tpeak", q + "sd_log_tpeak", dims=ana)
            if timing_coords:
                log_tpeak, log_tpeak_i = self._timing_coordinates(sdt, n_sub, n_ana, init_tpeak, prefix=q)
            elif opt.timing_sampling == "centred":
                log_tpeak_i = pm.Normal(q + "log_tpeak_i", log_tpeak, sdt, dims=(sub, ana),
                                        initval=np.broadcast_to(init_tpeak, (n_sub, n_ana)).copy())
                start_unjittered(log_tpeak_i)
            else:
                v = pm.Normal(q + "v_tpeak", 0.0, 1.0, dims=(sub, ana), initval=_small_start((n_sub, n_ana)))
                start_unjittered(v)
                log_tpeak_i = pm.Deterministic(q + "log_tpeak_i", log_tpeak + sdt * v, dims=(sub, ana))
            timing = {"log_tpeak_i": log_tpeak_i}
        else:
            timing = {"log_tpeak": log_tpeak}
        mu = pulse_log_mean({"log_baseline": log_base, "log_amp": log_amp, "gamma_dose": gamma,
                             "delta_reexposure": delta, "kappa_cycle": kappa, "k_shape": k_shape, **timing},
                            A, n_analytes=n_ana, xp=pt)
        self.add_likelihood(prepared, mu, sigma[A["obs_analyte"]], prefix=q)

        # derived quantities
        peak_first = pm.Deterministic(
            q + "log_peak_first",
            log_peak_first(log_base, log_amp, gamma, kappa, A["first_log_dose"][:, None],
                           A["first_cycle_m1"][:, None], softplus=pt.softplus),
            dims=(sub, ana))
        x = np.array(list(SCENARIOS.values()))  # (scenario, 3)
        log_a_typ = (lam[:, None] + gamma[:, None] * x[:, 0] + delta[:, None] * x[:, 1]
                     + kappa[:, None] * x[:, 2])
        pm.Deterministic(q + "typical_peak", pt.exp(lbm)[:, None] * (1.0 + pt.exp(log_a_typ)),
                         dims=(ana, q + "scenario"))
        return {"log_peak_first": peak_first, "log_baseline": log_base, "log_amp": log_amp}

    def _timing_coordinates(self, sdt, n_sub: int, n_ana: int, init: np.ndarray, prefix: str = ""):
        """``log_tpeak`` and ``log_tpeak_i`` sampled through the patients' mean timing.

        The data determine each patient's time to peak fairly well, so in the non-centred
        coordinates ``(log_tpeak, v)`` the population ``log_tpeak`` and the common shift of all
        ``v_i`` are almost perfectly negatively correlated (moving one needs all the others), which
        slows NUTS. The sampler moves instead ``log_tpeak_c = log_tpeak + sd_log_tpeak * mean_i(v_i)``
        (the mean log time to peak of the fitted patients, which the data determine) and ``v``;
        then ``log_tpeak = log_tpeak_c - sd_log_tpeak * mean(v)`` and ``log_tpeak_i = log_tpeak_c +
        sd_log_tpeak * (v_i - mean(v))``. The shift has unit Jacobian and the declared prior of
        ``log_tpeak`` is added as a potential at its implied value, so the model is exactly the
        non-centred one. ``log_tpeak_c`` is flat: prior predictive sampling needs
        ``peak_coordinates = false`` (which also turns these coordinates off). The chains start
        unjittered at ``log_tpeak_c = init`` (:func:`_initial_log_tpeak`) and ``v`` near 0
        (:func:`_small_start`); ``sd_log_tpeak`` is jittered as usual.
        """
        import pymc as pm

        q = prefix
        centre = pm.Flat(q + "log_tpeak_c", dims=q + "analyte", initval=init)
        v = pm.Normal(q + "v_tpeak", 0.0, 1.0, dims=(q + "subject", q + "analyte"),
                      initval=_small_start((n_sub, n_ana)))
        start_unjittered(centre, v)
        v_bar = v.mean(axis=0)
        log_tpeak = pm.Deterministic(q + "log_tpeak", centre - sdt * v_bar, dims=q + "analyte")
        pm.Potential(q + "log_tpeak_prior", pm.logp(self.prior_dist("log_tpeak", n_ana), log_tpeak).sum())
        log_tpeak_i = pm.Deterministic(q + "log_tpeak_i", centre + sdt * (v - v_bar),
                                       dims=(q + "subject", q + "analyte"))
        return log_tpeak, log_tpeak_i

    def _prior_mean_log_tpeak(self, n_ana: int) -> np.ndarray:
        """Prior location of ``log_tpeak`` per analyte (the start when the data say nothing)."""
        _, params = self.analyte_prior("log_tpeak")
        return np.broadcast_to(np.asarray(params.get("mu", math.log(12.0)), dtype=float), (n_ana,)).copy()

    def _event_effects(self, A: dict[str, np.ndarray], n_ana: int, prefix: str = ""):
        """``gamma_dose``, ``delta_reexposure`` and ``kappa_cycle`` (analyte), in decorrelated coordinates.

        The data inform the event effects through the spread of the event covariates (log dose,
        re-exposure, cycle): where they move together, so do the effects. In a cohort whose every
        patient starts at 5 and steps to 15 µg/m²/day, each step is both a higher dose and a
        re-exposure, so the data pin ``gamma_dose * log 3 + delta_reexposure`` and leave the
        orthogonal combination to the prior: a posterior correlation near -1 that NUTS with a
        diagonal mass matrix crosses slowly (on three 200-patient cohorts simulated outside the
        package, R-hat 1.038 and bulk ESS 236 for ``cyt_delta_reexposure`` and
        ``cyt_gamma_dose`` of the joint model). With ``event_coordinates = true`` and Normal priors
        ``beta ~ N(mu, diag(s^2))`` (``beta = (gamma, delta, kappa)`` of an analyte) the sampler
        moves ``eta ~ N(0, I)`` with ``beta = mu + diag(s) Q eta``, ``Q`` the eigenvectors of
        ``diag(s) M diag(s)``: the prior is exactly the declared one (``Q`` is orthonormal), and
        the data's information about ``eta`` is about diagonal. ``M`` is the covariance of the
        event covariates *within* patients (each event's covariates minus its patient's mean),
        plus a hundredth of the between-patient part: each patient's own peak level absorbs most
        of what differs between patients, so the event effects are learned from the contrasts
        between a patient's events (first exposure vs. the step), and the between-patient spread
        only orders the directions no patient contrasts. This goes with the peak coordinates'
        patient peaks at each patient's own average event (:meth:`_peak_coordinates`): on the
        independent 200-patient cohorts of docs/joint-model.md the total covariance over the
        events, used before, left the two informed directions at a posterior correlation of 0.74
        and a bulk ESS of 320-380 per 8,000 draws; the within-patient rotation alone brought the
        correlation to 0.03 but not the ESS (270); with the peaks moved as well it rose above
        2,000. The three effects are deterministics of the same names as before.
        """
        import pymc as pm

        names = ("gamma_dose", "delta_reexposure", "kappa_cycle")
        q, ana = prefix, prefix + "analyte"
        priors = [self.analyte_prior(n) for n in names]
        X = np.column_stack([A["event_log_dose"], A["event_reexposure"], A["event_cycle_m1"]]).astype(float)
        if not self.options.event_coordinates or any(d != "Normal" for d, _ in priors) or len(X) < 2:
            return tuple(self.create_prior(n, q + n, dims=ana) for n in names)
        M = _within_patient_covariance(X, A["event_subject"])
        mu = np.column_stack([np.broadcast_to(np.asarray(p["mu"], dtype=float), n_ana) for _, p in priors])
        sd = np.column_stack([np.broadcast_to(np.asarray(p["sigma"], dtype=float), n_ana) for _, p in priors])
        basis = np.empty((n_ana, 3, 3))
        for a in range(n_ana):
            _, vec = np.linalg.eigh(sd[a][:, None] * M * sd[a][None, :])
            basis[a] = sd[a][:, None] * vec
        model = pm.modelcontext(None)
        if q + "event_direction" not in model.coords:
            model.add_coord(q + "event_direction", list(range(3)))
        eta = pm.Normal(q + "event_effects_raw", 0.0, 1.0, dims=(ana, q + "event_direction"))
        beta = mu + (basis * eta[:, None, :]).sum(axis=-1)  # (analyte, effect)
        return tuple(pm.Deterministic(q + n, beta[:, k], dims=ana) for k, n in enumerate(names))

    @staticmethod
    def _peak_coordinates(prepared: Prepared, P: dict[str, Prior], lbm, sdb, eff, gamma, delta, kappa,
                          sda, chol, prefix: str = "", amp_prior=None):
        """``log_amp_mu`` and the patient deviations of ``log_amp`` and ``log B`` in peak coordinates.

        Censored baselines leave ``log B`` poorly determined while the peak ``log B + log A`` is
        well determined, so in the coordinates of the model formula ``log_baseline_mu`` and
        ``log_amp_mu`` (and each patient's baseline and amplitude deviations) are strongly
        negatively correlated, which NUTS with a diagonal mass matrix handles badly (many leapfrog
        steps per draw, divergences). The sampler moves instead:

        * ``log_peak_c`` (analyte) = ``log_baseline_mu + log_amp_mu + gamma * m_dose + delta *
          m_reexposure + kappa * m_cycle``: the typical log peak of the average event of the data
          (``m``: means of the event covariates, stored as ``event_centre``);
        * ``log_peak_i`` (subject, analyte) = ``log_peak_c + covariate effects + gamma *
          (n_i - m_dose) + delta * (r_i - m_reexposure) + kappa * (c_i - m_cycle) + d_i``: the
          patient's log peak at *their own* average event (``n_i``, ``r_i``, ``c_i``: means of the
          patient's event covariates), so that, given the peaks, the event effects are moved by
          the contrasts between a patient's events only, and what differs between patients enters
          through the prior of ``log_peak_i`` (a regression on the patients' average events). With
          the peaks at the common average event instead, every patient's peak had to move with
          ``gamma_dose`` along the direction the between-patient spread informs (posterior bulk ESS
          270-380 per 8,000 draws for ``event_effects_raw`` on the independent cohorts of
          docs/joint-model.md). Here ``d_i = a_i + b_i`` is the sum of the patient's amplitude
          deviation ``a_i ~ N(0, Sigma_a)`` (``Sigma_a = diag(sd_log_amp) corr_amp
          diag(sd_log_amp)``) and baseline deviation ``b_i ~ N(0, D_b)`` (``D_b =
          diag(sd_log_baseline**2)``), so ``d_i ~ N(0, S)`` with
          ``S = Sigma_a + D_b`` (centred: the data determine the peaks well);
        * ``u_baseline`` (subject, analyte) ~ N(0, I): the baseline deviation given the peak,
          non-centred on its exact prior conditional ``b_i | d_i ~ N(K d_i, C)``, ``K = D_b S^-1``,
          ``C = D_b - D_b S^-1 D_b``: ``b_i = K d_i + chol(C) u_i``; ``a_i = d_i - b_i``.

        The shifts to ``log_peak_c`` and ``log_peak_i`` have unit Jacobian; the declared prior of
        ``log_amp_mu`` is added as a potential at its implied value. The density of ``(d_i, u_i)`` is exactly
        ``N(d_i; 0, S) N(u_i; 0, I)`` (the Jacobian ``|chol(C)|`` cancels against the conditional
        density of ``b_i``). So the posterior of every named quantity is exactly that of the model
        formula. ``log_peak_c`` and ``log_peak_i`` are flat sampling coordinates: prior predictive
        sampling needs ``peak_coordinates = false``.
        """
        import pymc as pm
        import pytensor.tensor as pt

        A = prepared.arrays
        m_dose, m_re, m_cyc = (float(A["event_centre"][k]) for k in range(3))
        pri = P["log_amp_mu"]
        init = P["log_baseline_mu"].params.get("mu", 0.0) + pri.params.get("mu", 0.0)
        n = len(prepared.coords["analyte"])
        n_sub = len(prepared.coords["subject"])
        shape = (n_sub, n)
        q = prefix
        peak_c = pm.Flat(q + "log_peak_c", dims=q + "analyte", initval=np.full(n, init))
        lam = pm.Deterministic(q + "log_amp_mu", peak_c - lbm - gamma * m_dose - delta * m_re - kappa * m_cyc,
                               dims=q + "analyte")
        if amp_prior is None:
            amp_prior = getattr(pm, pri.dist).dist(**pri.params, shape=n)
        pm.Potential(q + "log_amp_mu_prior", pt.sum(pm.logp(amp_prior, lam)))
        peak_i = pm.Flat(q + "log_peak_i", dims=(q + "subject", q + "analyte"), initval=np.full(shape, init))
        u = pm.Normal(q + "u_baseline", 0.0, 1.0, dims=(q + "subject", q + "analyte"))
        own = _patient_event_means(A, n_sub) - np.array([m_dose, m_re, m_cyc])  # (subject, 3)
        shift = (own[:, 0:1] * gamma[None, :] + own[:, 1:2] * delta[None, :] + own[:, 2:3] * kappa[None, :])
        d = peak_i - peak_c - eff - shift
        dev_a, dev_b, logp_d = split_peak_deviation(d, u, sdb, sda, chol, n)
        pm.Potential(q + "log_peak_i_prior", logp_d)
        return lam, dev_a, dev_b

    # ------------------------------------------------------------------ afterwards
    def mean_log(self, draws, prepared: Prepared) -> np.ndarray:
        """Noise-free log concentration of every row (numpy; :func:`pulse_log_mu`)."""
        return pulse_log_mu(draws, prepared.arrays)

    def typical_patient(self, draws) -> dict[str, np.ndarray]:
        """``log_baseline_mu``, ``log_amp_mu`` (covariates at their reference levels) and the
        population ``log_tpeak`` (the typical patient's timing)."""
        return {"log_baseline": np.asarray(draws["log_baseline_mu"].values),
                "log_amp": np.asarray(draws["log_amp_mu"].values),
                "log_tpeak_i": np.asarray(draws["log_tpeak"].values)}

    @override
    def summary_vars(self) -> list[str]:
        v = [p for p in POPULATION_PARAMETERS if p != "sd_log_tpeak" or self.options.patient_timing]
        if self._correlated():
            v.append("corr_amp")
        v += [f"beta_{f}" for f in self.options.covariates]
        return v + ["typical_peak"]

    # ------------------------------------------------------------------ new patients
    def patient_effects(self, post, analytes, n, shift) -> PatientEffects:
        """Baselines (independent across analytes), amplitudes (correlated with ``corr_amp``,
        shifted by the covariates) and, with ``patient_timing``, the patients' times to peak."""
        def rep(name):
            return np.repeat(analyte_values(post, name, analytes)[:, None, :], n, 1)

        blocks = ["log_baseline", "log_amp"]
        mean = [rep("log_baseline_mu"), analyte_values(post, "log_amp_mu", analytes)[:, None, :] + shift]
        chol = [diagonal_chol(post, "sd_log_baseline", analytes),
                correlated_chol(post, "sd_log_amp", "corr_amp", analytes)]
        if "sd_log_tpeak" in post:  # patient-level time to peak (option patient_timing)
            blocks.append("log_tpeak_i")
            mean.append(rep("log_tpeak"))
            chol.append(diagonal_chol(post, "sd_log_tpeak", analytes))
        return PatientEffects(blocks, mean, chol)

    def patient_context(self, dosing, subjects):
        """The first infusion's exposure and cycle of each patient (:func:`first_infusion`)."""
        log_dose, cycle_m1 = first_infusion(dosing, subjects, self.options)
        return {"first_log_dose": log_dose, "first_cycle_m1": cycle_m1}

    def log_feature(self, blocks, post, analytes, j, context):
        """``log_peak_first``: the log peak after the first infusion start (:func:`log_peak_first`)."""
        gamma = analyte_values(post, "gamma_dose", analytes)[:, j][:, None, None]
        kappa = analyte_values(post, "kappa_cycle", analytes)[:, j][:, None, None]
        return log_peak_first(blocks["log_baseline"][..., j], blocks["log_amp"][..., j], gamma, kappa,
                              context["first_log_dose"], context["first_cycle_m1"],
                              softplus=lambda x: np.logaddexp(0.0, x))

    def prior_quantities(self, prior, prepared: Prepared):
        """(analyte, label, draws) of the named pulse quantities a prior predictive check
        (:func:`bayes_blina.checks.prior.prior_check`) summarises: the typical peak per scenario,
        the patients' peaks after the first infusion start and the time to peak."""
        def flat(v):
            da = prior[v]
            return np.asarray(da.stack(sample=("chain", "draw")).transpose("sample", ...).values, dtype=float)

        d = {v: flat(v) for v in ("typical_peak", "log_peak_first", "log_tpeak") if v in prior}
        scen = list(prepared.coords.get("scenario", []))
        out = []
        for j, a in enumerate(prepared.coords["analyte"]):
            if "typical_peak" in d:
                out += [(a, f"typical_peak {s}", d["typical_peak"][:, j, k]) for k, s in enumerate(scen)]
            if "log_peak_first" in d:
                out.append((a, "peak after first infusion start (patients)", np.exp(d["log_peak_first"][:, :, j]).ravel()))
            if "log_tpeak" in d:
                out.append((a, "time to peak t_peak (h)", np.exp(d["log_tpeak"][:, j])))
        return out


def log_peak_first(log_baseline, log_amp, gamma, kappa, first_log_dose, first_cycle_m1, *, softplus):
    """Log peak after the first infusion start, ``log B + softplus(log A + gamma d + kappa c)``.

    The one formula of the pulse family's biomarker feature, for the PyMC graph (``softplus =
    pytensor.tensor.softplus``) and for numpy (``softplus = lambda x: np.logaddexp(0, x)``): ``d``
    is the first event's log exposure, ``c`` its cycle minus 1.

    Examples
    --------
    >>> import numpy as np
    >>> float(log_peak_first(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, softplus=lambda x: np.logaddexp(0, x)))
    0.6931471805599453
    """
    return log_baseline + softplus(log_amp + gamma * first_log_dose + kappa * first_cycle_m1)


def first_infusion(dosing: pd.DataFrame | None, subjects: pd.DataFrame, opt) -> tuple[np.ndarray, np.ndarray]:
    """Log exposure and cycle - 1 of each subject's first infusion event (zeros without dosing).

    The exposure is ``log(dose / 15)``, plus the patient's log Css offset with ``exposure = "css"``
    (:func:`css_offsets`): what :meth:`PulseModel.extend_prepared` derives for fitted patients.
    """
    from bayes_blina.events import infusion_events

    ids = subjects["subject_id"].astype(str).tolist()
    log_dose = np.zeros(len(ids))
    cyc = np.zeros(len(ids))
    if dosing is None or not len(dosing):
        return log_dose, cyc
    ev = infusion_events(dosing, gap_tol_h=opt.gap_tol_h)
    first = ev.sort_values(["subject_id", "time_h"], kind="mergesort").groupby("subject_id", sort=False).head(1)
    lut = {str(s): (math.log(float(d) / REFERENCE_DOSE), float(c) - 1.0)
           for s, d, c in zip(first["subject_id"], first["dose"], first["cycle"])}
    for i, s in enumerate(ids):
        if s in lut:
            log_dose[i], cyc[i] = lut[s]
    if getattr(opt, "exposure", "dose") == "css":  # pulse exposure = log Css (see the module docstring)
        log_dose = log_dose + css_offsets(subjects, ids, opt.css_per_dose)[0]
    return log_dose, cyc


def css_offsets(subjects: pd.DataFrame | None, subject_ids: list[str], css_per_dose: float
                ) -> tuple[np.ndarray, dict[str, Any]]:
    """``log(css_per_dose_i / css_per_dose)`` per subject (0 without the ``css_per_dose`` column or
    value), and what was used.

    Raises
    ------
    DataValidationError
        If a ``css_per_dose`` value is not a positive number (naming the row of subjects.csv).
    """
    offset = np.zeros(len(subject_ids))
    use: dict[str, Any] = {"exposure": "css", "css_per_dose_population": float(css_per_dose),
                           "css_ref_pg_ml": round(float(css_per_dose) * REFERENCE_DOSE, 4),
                           "patients_own_css": 0, "patients_population_css": len(subject_ids)}
    if subjects is None or "css_per_dose" not in subjects.columns:
        return offset, use
    text = subjects["css_per_dose"]
    v, empty = subject_numbers(subjects, "css_per_dose")
    bad = ~empty & ~(np.isfinite(v) & (v > 0))
    if bad.any():
        raise DataValidationError([Problem("subjects.csv", "css_per_dose", int(r) + 1,
                                           "a number > 0 (steady-state pg/mL per µg/m²/day) or empty",
                                           str(text.iloc[r])) for r in np.flatnonzero(bad)])
    lut = {str(sid): x for sid, x, e in zip(subjects["subject_id"].astype(str), v, empty) if not e}
    for i, sid in enumerate(subject_ids):
        if sid in lut:
            offset[i] = math.log(lut[sid] / float(css_per_dose))
    own = int(sum(sid in lut for sid in subject_ids))
    use.update(patients_own_css=own, patients_population_css=len(subject_ids) - own)
    return offset, use


def split_peak_deviation(d, u, sdb, sda, chol, n: int):
    """Split patients' log-peak deviations into amplitude and baseline parts (peak coordinates).

    Parameters
    ----------
    d : tensor (subject, analyte)
        Peak deviations ``d_i = a_i + b_i``.
    u : tensor (subject, analyte)
        Standard-normal coordinates of the baseline deviation given ``d_i``.
    sdb : tensor (analyte,)
        ``sd_log_baseline``.
    sda : tensor (analyte,)
        ``sd_log_amp``.
    chol : tensor (analyte, analyte) or None
        Cholesky factor of the amplitude covariance ``Sigma_a``; None for independent analytes
        (``Sigma_a = diag(sda**2)``).
    n : int
        Number of analytes.

    Returns
    -------
    dev_a, dev_b : tensor (subject, analyte)
        ``a_i = d_i - b_i`` and ``b_i = K d_i + chol(C) u_i`` with ``S = Sigma_a + D_b``,
        ``K = D_b S^-1``, ``C = D_b - D_b S^-1 D_b``, ``D_b = diag(sdb**2)``. If ``d_i ~ N(0, S)``
        and ``u_i ~ N(0, I)`` independently, then ``a_i ~ N(0, Sigma_a)`` and ``b_i ~ N(0, D_b)``
        independently.
    logp_d : scalar tensor
        ``sum_i log N(d_i; 0, S)`` up to the constant ``-(n/2) log(2 pi)`` per patient.
    """
    import pytensor.tensor as pt

    n_sub = d.shape[0]
    var_b = pt.sqr(sdb)
    if chol is None:  # diagonal S: closed form
        var_s = pt.sqr(sda) + var_b
        dev_b = d * (var_b / var_s) + u * (sdb * sda / pt.sqrt(var_s))
        logp = -0.5 * pt.sum(pt.sqr(d) / var_s) - 0.5 * n_sub * pt.sum(pt.log(var_s))
        return d - dev_b, dev_b, logp
    from pytensor.tensor.linalg import cholesky, solve_triangular

    d_b = pt.diag(var_b)
    s_chol = cholesky(pt.dot(chol, chol.T) + d_b, lower=True)  # S = Sigma_a + D_b
    z = solve_triangular(s_chol, d.T, lower=True)  # (analyte, subject): Ls^-1 d_i
    y = solve_triangular(s_chol.T, z, lower=False)  # S^-1 d_i
    m = solve_triangular(s_chol, d_b, lower=True)  # Ls^-1 D_b
    c_mat = d_b - pt.dot(m.T, m)  # C = D_b - D_b S^-1 D_b
    c_chol = cholesky(0.5 * (c_mat + c_mat.T) + 1e-12 * pt.eye(n), lower=True)
    dev_b = (var_b[:, None] * y).T + pt.dot(u, c_chol.T)
    logp = -0.5 * pt.sum(pt.sqr(z)) - n_sub * pt.sum(pt.log(pt.diag(s_chol)))
    return d - dev_b, dev_b, logp


def pulse_log_mu(posterior, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Noise-free ``log`` concentration of every observation row, for each posterior draw (numpy).

    Parameters
    ----------
    posterior : xarray.Dataset or mapping
        Draws of ``log_baseline`` and ``log_amp`` (..., subject, analyte) and of ``gamma_dose``,
        ``delta_reexposure``, ``kappa_cycle``, ``log_tpeak``, ``k_shape`` (..., analyte), with the
        same leading (draw) axes. If it holds ``log_tpeak_i`` (..., subject, analyte: patient-level
        timing), each patient's time to peak is ``exp(log_tpeak_i)`` and ``log_tpeak`` is not read.
    arrays : dict
        :attr:`Prepared.arrays` of a pulse model.

    Returns
    -------
    numpy.ndarray
        Shape (..., obs): ``log B + log(1 + sum_e A_e * pulse(t - t_e))``, computed with
        :func:`bayes_blina.curves.pulse`.
    """
    timing = "log_tpeak_i" if "log_tpeak_i" in posterior else "log_tpeak"
    val = {k: np.asarray(posterior[k].values if hasattr(posterior[k], "values") else posterior[k], dtype=float)
           for k in ("log_baseline", "log_amp", "gamma_dose", "delta_reexposure", "kappa_cycle",
                     timing, "k_shape")}
    return pulse_log_mean(val, arrays)


def pulse_log_mean(p: Mapping[str, Any], A: Mapping[str, np.ndarray], *, n_analytes: int | None = None, xp=np):
    """The pulse family's mean, written once: the noise-free log concentration of every row.

    ``log C(t) = log B + log(1 + sum_e A_e g(t - t_e))`` with the event amplitude ``log A_e =
    log_amp + gamma d_e + delta r_e + kappa c_e`` and the unit pulse ``log g = k (log s + 1 - s)``,
    ``s = (t - t_e) / t_peak`` (:func:`bayes_blina.curves.pulse`; 0 for ``t <= t_e``). The PyMC
    model calls it with its tensors (``xp = pytensor.tensor``), :func:`pulse_log_mu` with draws
    (numpy, leading draw axes); predictions, predictive checks, ``plan regimen`` and the joint
    model's landmark predictions read the numpy form.

    Parameters
    ----------
    p : mapping
        ``log_baseline``, ``log_amp`` (..., subject, analyte); ``gamma_dose``,
        ``delta_reexposure``, ``kappa_cycle``, ``k_shape`` (..., analyte); the timing as
        ``log_tpeak_i`` (..., subject, analyte; patient-level) or ``log_tpeak`` (..., analyte).
    A : mapping
        :attr:`Prepared.arrays` of a pulse model (rows and (observation, event) pairs).
    n_analytes : int, optional
        Number of analytes (required with pytensor).
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    """
    pa, ps = A["pair_analyte"], A["pair_subject"]
    log_a = (cell_values(p["log_amp"], ps, pa, n_analytes, xp) + p["gamma_dose"][..., pa] * A["pair_log_dose"]
             + p["delta_reexposure"][..., pa] * A["pair_reexposure"] + p["kappa_cycle"][..., pa] * A["pair_cycle_m1"])
    if "log_tpeak_i" in p:
        t_peak = xp.exp(cell_values(p["log_tpeak_i"], ps, pa, n_analytes, xp))
    else:
        t_peak = xp.exp(p["log_tpeak"])[..., pa]
    lag = np.asarray(A["pair_lag"], dtype=float)
    after = bool((lag > 0).all())  # pairs are built for t > t_e; a placeholder pair may have lag 0
    s = (lag if after else np.maximum(lag, 1e-9)) / t_peak
    contrib = xp.exp(log_a + p["k_shape"][..., pa] * (xp.log(s) + 1.0 - s))
    if not after:
        contrib = xp.where(lag > 0, contrib, 0.0)
    total = pair_total(contrib, A["pair_obs"], len(A["obs_subject"]), xp)
    return cell_values(p["log_baseline"], A["obs_subject"], A["obs_analyte"], n_analytes, xp) + xp.log1p(total)


def _initial_log_tpeak(A: dict[str, np.ndarray], n_sub: int, n_ana: int, default: np.ndarray,
                       max_lag_h: float = 96.0) -> np.ndarray:
    """Data-driven start of the population log time to peak of each analyte.

    For every patient-analyte, the uncensored result that is highest relative to the patient's
    lowest uncensored result within ``max_lag_h`` of an infusion event; its time since the latest
    event is that patient's observed time to peak. The start is the median log of those times over
    patients, kept within [log 1 h, log 72 h]; ``default`` (the prior location) for an analyte
    without such results.

    A sparsely sampled pulse has poor local modes in its timing (a peak placed between samples can
    be traded against its height, width and the patients' spread of timings); on the 36-patient
    adult cohort a chain started at the prior's 12 h settled, for IL-6 (true peak ~24 h), at 6 h
    with a between-patient SD of 2 on the log scale and a residual SD twice the truth, and never left.
    """
    out = np.asarray(default, dtype=float).copy()
    A = concrete_arrays(A, ("pair_lag", "pair_obs", "log_y", "is_censored", "obs_subject", "obs_analyte"))
    if A is None:  # placeholders for data swapped in later (SBC): no data to start from
        return out
    lag, pobs = np.asarray(A["pair_lag"], dtype=float), np.asarray(A["pair_obs"])
    if not len(lag):
        return out
    n_obs = len(A["log_y"])
    latest = np.full(n_obs, np.inf)
    np.minimum.at(latest, pobs, lag)
    y, cens = np.asarray(A["log_y"], dtype=float), np.asarray(A["is_censored"], dtype=bool)
    ok = ~cens & (latest > 0) & (latest <= max_lag_h)
    if not ok.any():
        return out
    cell = (np.asarray(A["obs_subject"]) * n_ana + np.asarray(A["obs_analyte"]))[ok]
    frame = pd.DataFrame({"cell": cell, "y": y[ok], "lag": latest[ok]})
    lowest = frame.groupby("cell")["y"].transform("min")
    frame = frame[(frame["y"] - lowest) > 0.0]  # a rise above the patient's lowest result
    if frame.empty:
        return out
    top = frame.loc[frame.groupby("cell")["y"].idxmax()]
    ana = top["cell"].to_numpy() % n_ana
    for j in range(n_ana):
        lags = top["lag"].to_numpy()[ana == j]
        if len(lags):
            out[j] = float(np.clip(np.median(np.log(lags)), 0.0, math.log(72.0)))
    return out


def _small_start(shape: tuple[int, ...]) -> np.ndarray:
    """A fixed start near 0 (within +-0.1) for standard-normal patient deviations.

    Not exactly 0: at 0 a deviation whose patient has no informative result has a gradient of
    exactly 0, which nutpie's initial mass matrix (from the gradient) rejects."""
    n = int(np.prod(shape))
    return (0.1 * np.sin(1.0 + np.arange(n) * 2.399963)).reshape(shape)
