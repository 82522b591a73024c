"""Cell kinetics (T cells, neutrophils, platelets): redistribution dips and expansion by day 29.

After every infusion event (first start, restart, cycle start, dose step; see
:func:`bayes_blina.events.infusion_events`) circulating T cells leave the blood within hours
(redistribution) and come back; over the first cycle they then expand. For analyte ``j`` and
patient ``i``, an observation at time ``t`` (hours since the patient's first infusion start) has
the noise-free count::

    N_ij(t) = B_ij * max(1 - D_ij * S_ij(t), bracket_floor) * exp(E_ij * s(t; tau_e_j))
    S_ij(t) = sum_e pulse(t - t_e; t_nadir_j, k_shape_j)
    log y   ~ Normal(log N_ij(t), sigma_obs_j)      (below the row's LOD/LLOQ: Beal's M3)

with the unit-peak :func:`bayes_blina.curves.pulse` (the dip of every event is deepest ``t_nadir``
hours after it) and :func:`bayes_blina.curves.saturating` ``s`` (0 at the first start, exactly 1
from day 29 = 672 h on): ``exp(E_ij)`` is the patient's fold change of the count at day 29
(without a dip), the "T-cell expansion" of the adult study (option ``expansion_day``: the fold
change at the start of another day, e.g. day 8 = 168 h for an early feature, ``s`` then reaching 1
there; the curve is flat afterwards, so such a fit must use data up to that day only: option
``window_days``). These are the curves the simulator
draws from (:mod:`bayes_blina.simulate.cohort`), with the same ``bracket_floor`` (default 0.02).
Only events at most ``max_event_lag_h`` before an observation contribute; the default (2016 h,
12 weeks) keeps every event of two cycles, as the simulator does (the neutrophil dip, ``t_nadir``
about 120 h, is still 10% deep two weeks after an event).

Patients and population (per analyte ``j``)::

    log B_ij    = log_baseline_mu_j + sd_log_baseline_j * w_ij
    logit D_ij  = logit_depth_mu_j + sd_logit_depth_j * v_ij,          v_ij ~ N(0, 1)
    E_ij        = expansion_mu_j [+ covariate effects] + sd_expansion_j * (L z_i)_j

``L`` is the Cholesky factor of the LKJ-distributed correlation matrix ``corr_expansion`` of the
expansions across analytes (``correlated = true``), or the identity. Covariates (option
``covariates``) shift ``E``: ``blast_burden``, ``age_group``, ``regimen`` and ``response``. The
response covariate is **descriptive** (expansion by responder status, off by default): for T cells
the expansion is thought to *cause* response, for platelets and neutrophils the recovery is part of
the definition of CR, and either way it is not a prediction of response (that is the joint model).

CD4 and CD8 (and their naive/memory subsets) are fractions of the CD3 count of the same sample, so
the same family fits them as further analytes (each with its own parameters).

Derived quantities
------------------
``log_expansion``, ``expansion`` (subject, analyte)
    ``E_ij`` and the fold change ``exp(E_ij)`` at day 29.
``typical_expansion`` (analyte)
    ``exp(expansion_mu)``: fold change of the typical patient at the reference level of every
    covariate.
``depth`` (subject, analyte), ``typical_depth`` (analyte)
    ``D_ij`` and ``expit(logit_depth_mu)`` (the population median depth).
``log_baseline`` (subject, analyte)
    ``log B_ij``.

Sampling coordinates
--------------------
With ``centred = true`` (default) ``log_baseline`` and ``log_expansion`` are sampled centred (every
observation informs them); the dip ``D`` is always non-centred (``v``), and ``centred = false``
samples ``w`` and ``z`` too, for sparse data. The centred ``log_baseline`` starts at each patient's
mean pre-treatment log result (:func:`_initial_log_baseline`), ``t_nadir`` and ``k_shape``
unjittered at their prior means. Neutrophil fits can stop in a poorer local mode: check their
convergence gate. The measurements behind these choices are in ``docs/sampling.md``.

Priors per analyte
------------------
Every population parameter's prior can be given for one analyte as ``"NAME[ANALYTE]"`` (e.g.
``"t_nadir[NEUT]"``; see :mod:`bayes_blina.families.trajectory`): counts of different cells live
on different scales and dip at different times. T cells (CD3, CD4, CD8 and subsets) have their own
default timing priors, from the adult paper's frequently sampled patients (nadir 6 h after the
infusion start): ``t_nadir`` LogNormal(log 6, 0.5) and ``k_shape`` LogNormal(log 1.5, 0.5)
(:meth:`KineticsModel.default_analyte_priors`); a prior given by the caller (for all analytes or
for one) replaces them.

Every row left out is recorded with its reason in ``data_use``.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Mapping, override

import numpy as np
from pydantic import ConfigDict, Field

from bayes_blina.curves import DAY29_H, pulse, saturating
from bayes_blina.families.base import Prepared, start_unjittered
from bayes_blina.families.trajectory import (PatientEffects, TrajectoryFamily, TrajectoryOptions, _values,
                                             analyte_values, cell_values, concrete_arrays, correlated_chol,
                                             diagonal_chol, pair_total)
from bayes_blina.priors import Prior

__all__ = ["KineticsModel", "KineticsOptions", "POPULATION_PARAMETERS", "kinetics_log_mean", "kinetics_log_mu"]

#: Population parameters (each with dimension ``analyte``), in summary order.
POPULATION_PARAMETERS: tuple[str, ...] = (
    "log_baseline_mu", "sd_log_baseline", "logit_depth_mu", "sd_logit_depth", "t_nadir", "k_shape",
    "expansion_mu", "sd_expansion", "tau_e", "sigma_obs",
)


class KineticsOptions(TrajectoryOptions):
    """Options of the kinetics family (see the module docstring).

    Attributes
    ----------
    analytes : list of str
        Cell counts modelled (default CD3).
    covariates : list of str
        Subject covariates shifting the expansion ``E``: ``blast_burden``, ``age_group``,
        ``regimen``, ``response`` (descriptive only).
    correlated : bool
        LKJ-correlated expansions across analytes (needs two or more analytes).
    lkj_eta : float
        Shape of the LKJ prior of ``corr_expansion``.
    bracket_floor : float
        Lower bound of the dip bracket ``max(1 - D S, floor)`` (as in the simulator).
    centred : bool
        Sample ``log_baseline`` and ``log_expansion`` centred (default; strong data) or non-centred.
    expansion_day : float
        Day at which ``E`` is the log fold change: ``s(t)`` reaches 1 at the start of that day,
        ``t_ref = 24 (expansion_day - 1)`` h (default 29: 672 h, the end of the 28-day infusion of
        cycle 1). An early feature (e.g. 8: the fold change at 168 h) goes with a data window that
        ends on that day (option ``window_days``), as the joint model sets it.
    cycles, window_days, max_event_lag_h, relative_to_baseline, censoring, gap_tol_h
        As in every trajectory family (:class:`~bayes_blina.families.trajectory.TrajectoryOptions`);
        ``max_event_lag_h`` defaults to 2016 h here (every event of two cycles).
    """

    model_config = ConfigDict(extra="forbid")
    analytes: list[str] = Field(default_factory=lambda: ["CD3"])
    covariates: list[Literal["blast_burden", "age_group", "regimen", "response"]] = Field(default_factory=list)
    max_event_lag_h: float = Field(2016.0, gt=0)
    correlated: bool = False
    lkj_eta: float = Field(2.0, gt=0)
    bracket_floor: float = Field(0.02, gt=0, lt=1)
    centred: bool = True
    expansion_day: float = Field(29.0, gt=1)

    @property
    def t_ref_h(self) -> float:
        """Hours from the first infusion start at which ``E`` is the log fold change."""
        return 24.0 * (float(self.expansion_day) - 1.0)


#: Analytes whose default timing priors are those of T-cell redistribution (hours).
T_CELL_ANALYTES: tuple[str, ...] = ("CD3", "CD4", "CD8", "CD4_NAIVE", "CD4_MEMORY", "CD8_NAIVE", "CD8_MEMORY")


class KineticsModel(TrajectoryFamily):
    """Kinetics family of cell counts (see the module docstring).

    Default priors (each per analyte; override by name in the spec's ``[priors]`` table; counts on
    the log scale of cells/µL). They are centred on the adult study's values (baseline T cells
    ~220/µL, neutrophils ~1,800/µL, platelets ~45,000/µL; T-cell nadir within hours, two-fold
    expansion by day 29; see :mod:`bayes_blina.simulate.presets`) but wide enough for any of them:

    ``log_baseline_mu``  Normal(7, 3): typical baseline ~1,100/µL, 95% within 3 and 400,000/µL.
                         With ``relative_to_baseline``: Normal(0, 0.5).
    ``sd_log_baseline``  HalfNormal(1): between-patient SD of log baselines (~0.8 in the study).
                         With ``relative_to_baseline``: HalfNormal(0.5).
    ``logit_depth_mu``   Normal(0, 1.5): median dip depth 0.5, 95% within 0.05 and 0.95 (T cells
                         about 0.83: the nadir at a sixth of the baseline).
    ``sd_logit_depth``   HalfNormal(1): between-patient SD of the logit depth.
    ``t_nadir``          LogNormal(log 24, 1.2): hours from an event to the bottom of its dip,
                         95% within 2.3 and 250 h (T cells ~6 h, platelets ~2 days, neutrophils
                         ~5 days).
    ``k_shape``          LogNormal(log 2, 0.5): dip shape (larger = narrower).
    ``expansion_mu``     Normal(0, 1.5): typical log fold change at day 29 (T cells ~log 2; a fall
                         is negative), 95% within a 20-fold fall and a 20-fold rise.
    ``sd_expansion``     HalfNormal(1): between-patient SD of the log fold change (~0.8).
    ``tau_e``            LogNormal(log 100, 1): time constant (h) of the expansion, 95% within 14
                         and 710 h.
    ``sigma_obs``        HalfNormal(0.5): residual SD of log counts (~0.15 for flow cytometry and
                         blood counts).
    ``beta_<covariate>`` Normal(0, 1): difference of ``E`` of each level from the reference level
                         (first level present in the data), per analyte.

    The LKJ shape of ``corr_expansion`` is the option ``lkj_eta`` (default 2).
    """

    name = "kinetics"
    Options = KineticsOptions
    patient_vars = ("log_baseline", "depth", "log_expansion")
    population_vars = ("t_nadir", "k_shape", "tau_e")
    analyte_prior_names = POPULATION_PARAMETERS

    @override
    def default_priors(self) -> dict[str, Prior]:
        rel = self.options.relative_to_baseline
        pri = {
            "log_baseline_mu": Prior("Normal", mu=0.0, sigma=0.5) if rel else Prior("Normal", mu=7.0, sigma=3.0),
            "sd_log_baseline": Prior("HalfNormal", sigma=0.5 if rel else 1.0),
            "logit_depth_mu": Prior("Normal", mu=0.0, sigma=1.5),
            "sd_logit_depth": Prior("HalfNormal", sigma=1.0),
            "t_nadir": Prior("LogNormal", mu=round(math.log(24.0), 6), sigma=1.2),
            "k_shape": Prior("LogNormal", mu=round(math.log(2.0), 6), sigma=0.5),
            "expansion_mu": Prior("Normal", mu=0.0, sigma=1.5),
            "sd_expansion": Prior("HalfNormal", sigma=1.0),
            "tau_e": Prior("LogNormal", mu=round(math.log(100.0), 6), sigma=1.0),
            "sigma_obs": Prior("HalfNormal", sigma=0.5),
        }
        for f in self.options.covariates:
            pri[f"beta_{f}"] = Prior("Normal", mu=0.0, sigma=1.0)
        return pri

    def default_analyte_priors(self) -> dict[tuple[str, str], Prior]:
        """T cells (CD3, CD4, CD8 and their subsets): the dip is deepest about 6 h after an event.

        Nägele et al. 2017 (frequent sampling, cohorts 1 and 2a): the median CD3 count fell within 2 h
        of the infusion start, reached its nadir after 6 h and was above baseline by day 8. Hence
        ``t_nadir`` LogNormal(log 6, 0.5) (95% between 2.3 and 16 h) and ``k_shape``
        LogNormal(log 1.5, 0.5) (95% between 0.56 and 4: with a 6-h nadir the dip is over within one
        to a few days; the paper gives no shape). The generic defaults (nadir around a day, wide)
        let a chain settle in a slow, wide-dip local mode on the 200-patient joint test cohort. A
        ``k_shape`` prior as tight as LogNormal(log 2, 0.35) (the shape the simulator draws) fought
        the data of cohorts with a wider dip and two samples in it (6 and 24 h): the posterior
        ran along a curved ridge of depth and shape towards the prior's centre and one of four
        chains lagged there (R-hat 1.016 of ``logit_depth_mu``, docs/joint-model.md, issue 15).
        """
        t_nadir = Prior("LogNormal", mu=round(math.log(6.0), 6), sigma=0.5)
        k_shape = Prior("LogNormal", mu=round(math.log(1.5), 6), sigma=0.5)
        out: dict[tuple[str, str], Prior] = {}
        for code in T_CELL_ANALYTES:
            out[("t_nadir", code)] = t_nadir
            out[("k_shape", code)] = k_shape
        return out

    def extend_prepared(self, prepared: Prepared) -> Prepared:
        """Adds the ``analyte_b`` coordinate (of ``corr_expansion``)."""
        c = prepared.coords
        prepared.coords = {"analyte": c["analyte"], "analyte_b": list(c["analyte"]),
                           **{k: v for k, v in c.items() if k != "analyte"}}
        if self.options.correlated and len(self.options.analytes) < 2:
            prepared.data_use["note"] = "one analyte: correlated = true has no effect"
        return prepared

    # ------------------------------------------------------------------ new patients
    def patient_effects(self, post, analytes, n, shift) -> PatientEffects:
        """Baselines and dip depths (logit scale; independent across analytes) and expansions
        (correlated with ``corr_expansion``, shifted by the covariates)."""
        def rep(name):
            return np.repeat(analyte_values(post, name, analytes)[:, None, :], n, 1)

        return PatientEffects(
            ["log_baseline", "logit_depth", "log_expansion"],
            [rep("log_baseline_mu"), rep("logit_depth_mu"),
             analyte_values(post, "expansion_mu", analytes)[:, None, :] + shift],
            [diagonal_chol(post, "sd_log_baseline", analytes), diagonal_chol(post, "sd_logit_depth", analytes),
             correlated_chol(post, "sd_expansion", "corr_expansion", analytes)])

    def effect_draws(self, blocks):
        """The dip depth on its own scale (``logit_depth`` → ``depth``)."""
        from scipy import special

        out = {k: v for k, v in blocks.items() if k != "logit_depth"}
        if "logit_depth" in blocks:
            out["depth"] = special.expit(blocks["logit_depth"])
        return out

    def log_feature(self, blocks, post, analytes, j, context):
        """``log_expansion``: the log fold change of the count by the expansion day."""
        return blocks["log_expansion"][..., j]

    # ------------------------------------------------------------------ model
    def add_to_model(self, prepared: Prepared, prefix: str = "") -> dict[str, Any]:
        """Add the kinetics model to the current PyMC model (inside ``with model:``).

        Every variable is named ``prefix + name`` and every dimension ``prefix + dim``; the M3
        likelihood is the potential ``prefix + "loglik"``.

        Returns
        -------
        dict
            ``log_expansion`` and ``log_baseline``: tensors (subject, analyte).
        """
        import pymc as pm
        import pytensor.tensor as pt

        self._ensure_coords(prepared, prefix)
        opt, A, q = self.options, prepared.arrays, prefix
        n_sub, n_ana = len(prepared.coords["subject"]), len(opt.analytes)
        ana, sub = q + "analyte", q + "subject"
        lbm = self.create_prior("log_baseline_mu", q + "log_baseline_mu", dims=ana)
        sdb = self.create_prior("sd_log_baseline", q + "sd_log_baseline", dims=ana)
        ldm = self.create_prior("logit_depth_mu", q + "logit_depth_mu", dims=ana)
        sdd = self.create_prior("sd_logit_depth", q + "sd_logit_depth", dims=ana)
        t_nadir = self.create_prior("t_nadir", q + "t_nadir", dims=ana)
        k_shape = self.create_prior("k_shape", q + "k_shape", dims=ana)
        start_unjittered(t_nadir, k_shape)  # the dip's timing has poor local modes (see the docstring)
        emu = self.create_prior("expansion_mu", q + "expansion_mu", dims=ana)
        tau_e = self.create_prior("tau_e", q + "tau_e", dims=ana)
        sigma = self.create_prior("sigma_obs", q + "sigma_obs", dims=ana)
        sde, chol = self.correlated_sd("sd_expansion", "expansion", q)
        eff = self.covariate_effects(prepared, q)
        e_mean = emu + eff
        if opt.centred:
            init_base = _initial_log_baseline(A, n_sub, n_ana)
            if init_base is not None:
                pm.modelcontext(None).set_initval(lbm, init_base.mean(axis=0))
            log_base = pm.Normal(q + "log_baseline", lbm, sdb, dims=(sub, ana), initval=init_base)
            if chol is not None:
                log_exp = pm.MvNormal(q + "log_expansion", e_mean, chol=chol, dims=(sub, ana))
            else:
                log_exp = pm.Normal(q + "log_expansion", e_mean, sde, dims=(sub, ana))
        else:
            w = pm.Normal(q + "w_baseline", 0.0, 1.0, dims=(sub, ana))
            log_base = pm.Deterministic(q + "log_baseline", lbm + sdb * w, dims=(sub, ana))
            z = pm.Normal(q + "z_expansion", 0.0, 1.0, dims=(sub, ana))
            dev = pt.dot(z, chol.T) if chol is not None else z * sde  # row i: diag(sd) L z_i
            log_exp = pm.Deterministic(q + "log_expansion", e_mean + dev, dims=(sub, ana))
        v = pm.Normal(q + "v_depth", 0.0, 1.0, dims=(sub, ana))
        depth = pm.Deterministic(q + "depth", pm.math.invlogit(ldm + sdd * v), dims=(sub, ana))

        mu = kinetics_log_mean({"log_baseline": log_base, "depth": depth, "log_expansion": log_exp,
                                "t_nadir": t_nadir, "k_shape": k_shape, "tau_e": tau_e}, A, opt.bracket_floor,
                               opt.t_ref_h, n_analytes=n_ana, xp=pt)
        self.add_likelihood(prepared, mu, sigma[A["obs_analyte"]], prefix=q)

        pm.Deterministic(q + "expansion", pt.exp(log_exp), dims=(sub, ana))
        pm.Deterministic(q + "typical_expansion", pt.exp(emu), dims=ana)
        pm.Deterministic(q + "typical_depth", pm.math.invlogit(ldm), dims=ana)
        return {"log_expansion": log_exp, "log_baseline": log_base}

    # ------------------------------------------------------------------ afterwards
    def mean_log(self, draws, prepared: Prepared) -> np.ndarray:
        """Noise-free log count of every row (numpy; :func:`kinetics_log_mu`)."""
        return kinetics_log_mu(draws, prepared.arrays, self.options.bracket_floor, t_ref_h=self.options.t_ref_h)

    def typical_patient(self, draws) -> dict[str, np.ndarray]:
        """``log_baseline_mu``, ``expit(logit_depth_mu)`` and ``expansion_mu`` (covariates at their
        reference levels)."""
        return {"log_baseline": np.asarray(draws["log_baseline_mu"].values),
                "depth": 1.0 / (1.0 + np.exp(-np.asarray(draws["logit_depth_mu"].values))),
                "log_expansion": np.asarray(draws["expansion_mu"].values)}

    @override
    def summary_vars(self) -> list[str]:
        v = list(POPULATION_PARAMETERS)
        if self._correlated():
            v.append("corr_expansion")
        v += [f"beta_{f}" for f in self.options.covariates]
        return v + ["typical_expansion", "typical_depth"]


def _initial_log_baseline(A: dict[str, np.ndarray], n_sub: int, n_ana: int) -> np.ndarray | None:
    """Starting values of the centred ``log_baseline`` (subject, analyte): the mean log of each
    patient-analyte's uncensored results before the first infusion start, else of its first 24 h
    (before the dip is deep), else of all its results, else the mean over patients.

    Starting the sampler near the data keeps early warm-up from explaining a misplaced baseline by a
    wide, slow dip (a poor local mode of the timing parameters seen in one of two chains on the
    200-patient joint test cohort)."""
    A = concrete_arrays(A, ("log_y", "is_censored", "obs_subject", "obs_analyte", "obs_time_h"))
    if A is None:  # placeholders for data swapped in later (SBC): the prior's location
        return None
    y, cens = np.asarray(A["log_y"], dtype=float), np.asarray(A["is_censored"], dtype=bool)
    cell = np.asarray(A["obs_subject"]) * n_ana + np.asarray(A["obs_analyte"])
    t = np.asarray(A["obs_time_h"], dtype=float)
    out = np.full(n_sub * n_ana, np.nan)
    for mask in (t <= 0.0, t <= 24.0, np.ones_like(t, dtype=bool)):
        m = mask & ~cens & np.isnan(out[cell])
        if m.any():
            sums = np.bincount(cell[m], weights=y[m], minlength=n_sub * n_ana)
            counts = np.bincount(cell[m], minlength=n_sub * n_ana)
            fill = np.isnan(out) & (counts > 0)
            out[fill] = sums[fill] / counts[fill]
    out = out.reshape(n_sub, n_ana)
    ok = np.isfinite(out)
    col = np.where(ok.any(axis=0), np.where(ok, out, 0.0).sum(axis=0) / np.maximum(ok.sum(axis=0), 1), 0.0)
    return np.where(ok, out, col[None, :])


def kinetics_log_mean(p: Mapping[str, Any], A: Mapping[str, np.ndarray], bracket_floor: float,
                      t_ref_h: float = DAY29_H, *, n_analytes: int | None = None, xp=np,
                      off_treatment: tuple[np.ndarray, float] | None = None):
    """The kinetics family's mean, written once: the noise-free log count of every row.

    ``log N(t) = log B + log max(1 - D sum_e pulse(t - t_e; t_nadir, k_shape), floor) + E s(t)``
    with :func:`bayes_blina.curves.pulse` and :func:`bayes_blina.curves.saturating`. The PyMC
    model calls it with its tensors (``xp = pytensor.tensor``), :func:`kinetics_log_mu` with
    posterior or prior draws (numpy, leading draw axes); predictions, predictive checks and the
    landmark predictions of the joint model read the numpy form through the family's
    ``mean_log``.

    Parameters
    ----------
    p : mapping
        ``log_baseline``, ``depth``, ``log_expansion`` (..., subject, analyte) and ``t_nadir``,
        ``k_shape``, ``tau_e`` (..., analyte).
    A : mapping
        :attr:`Prepared.arrays` of a kinetics model (rows and (observation, event) pairs).
    bracket_floor : float
        Lower bound of the dip bracket.
    t_ref_h : float
        Time (h) at which ``E`` is the log fold change.
    n_analytes : int, optional
        Number of analytes (required with pytensor).
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    off_treatment : (numpy.ndarray, float), optional
        Simulation only (a process the fitted model does not assume): ``(t_end, tau)``, after the
        end ``t_end[i]`` of subject i's last infusion the log fold change returns towards 0 with
        time constant ``tau`` h (:mod:`bayes_blina.simulate.cohort`'s off-treatment follow-up).
    """
    pa, os_, oa = A["pair_analyte"], A["obs_subject"], A["obs_analyte"]
    g = pulse(A["pair_lag"], p["t_nadir"][..., pa], p["k_shape"][..., pa], xp=xp)
    s = pair_total(g, A["pair_obs"], len(A["obs_subject"]), xp)
    bracket = xp.maximum(1.0 - cell_values(p["depth"], os_, oa, n_analytes, xp) * s, bracket_floor)
    grow = saturating(A["obs_time_h"], p["tau_e"][..., oa], t_ref=t_ref_h, xp=xp)
    if off_treatment is not None:
        t_end, tau = off_treatment
        grow = grow * np.exp(-np.maximum(A["obs_time_h"] - np.asarray(t_end)[os_], 0.0) / tau)
    return (cell_values(p["log_baseline"], os_, oa, n_analytes, xp) + xp.log(bracket)
            + cell_values(p["log_expansion"], os_, oa, n_analytes, xp) * grow)


def kinetics_log_mu(draws, arrays: dict[str, np.ndarray], bracket_floor: float = 0.02, *,
                    t_ref_h: float = DAY29_H) -> np.ndarray:
    """Noise-free ``log`` count of every observation row, for each draw (numpy).

    Parameters
    ----------
    draws : xarray.Dataset or mapping
        Draws of ``log_baseline``, ``depth``, ``log_expansion`` (..., subject, analyte) and of
        ``t_nadir``, ``k_shape``, ``tau_e`` (..., analyte), with the same leading (draw) axes.
    arrays : dict
        :attr:`Prepared.arrays` of a kinetics model.
    bracket_floor : float
        Lower bound of the dip bracket.
    t_ref_h : float
        Time (h) at which ``E`` is the log fold change (``KineticsOptions.t_ref_h``; day 29).

    Returns
    -------
    numpy.ndarray
        Shape (..., obs): ``log B + log max(1 - D sum_e pulse(t - t_e), floor) + E s(t)``, computed
        with :func:`bayes_blina.curves.pulse` and :func:`bayes_blina.curves.saturating`.
    """
    val = {k: _values(draws, k) for k in ("log_baseline", "depth", "log_expansion", "t_nadir", "k_shape",
                                          "tau_e")}
    return kinetics_log_mean(val, arrays, bracket_floor, t_ref_h)
