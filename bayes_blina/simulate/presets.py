"""Configuration of the virtual-cohort simulator and the named presets.

A :class:`CohortConfig` holds every number :func:`bayes_blina.simulate.cohort.simulate_cohort`
uses: the design (arms, cycles, sampling schedules, demographics, dropout) and the population
parameters of every biomarker family. The parameter names are those of the model families
(``bayes_blina.curves``), so that the truth a simulation returns can be compared name by name with
a fit.

Families and their parameters
-----------------------------
pulse (cytokines IL2, IL6, IL10, TNFA, IFNG, GZMB; labs ALT, AST, GGT, ALP, BILI, CRP, DDIMER, LDH)
    ``C(t) = B_i * (1 + sum_e A_ie * pulse(t - t_e, t_peak_i, k_shape))`` with
    ``log B_i ~ N(log_baseline_mu, sd_log_baseline)``,
    ``log_amp_i = log_amp_mu + beta_blast_amp * [blast >= 50] + sd_log_amp * z_i``
    (``z`` correlated across the cytokines, :attr:`CohortConfig.cytokine_corr`),
    ``log A_ie = log_amp_i + gamma_dose * log(dose_e / 15) + delta_reexposure * [not first
    exposure] + kappa_cycle * (cycle_e - 1)`` and ``t_peak_i = exp(log_tpeak_mu + sd_log_tpeak *
    z)``; observed ``log y = log C + N(0, sigma_obs)``.
kinetics (CD3 T cells, neutrophils NEUT, platelets PLT)
    ``N(t) = B_i * max(1 - D_i * sum_e pulse(t - t_e, t_nadir, k_shape), bracket_floor) *
    exp(E_i * saturating(t, tau_e))`` with ``log B_i ~ N(log_baseline_mu, sd_log_baseline)``,
    ``logit D_i ~ N(logit(depth), sd_logit_depth)`` and
    ``E_i ~ N(expansion_mu + expansion_response_effect * CR_i, sd_expansion)``; ``exp(E_i)`` is
    the fold change at day 29 (``expansion_i`` for CD3).
subsets (CD4, CD8)
    a patient-level fraction of the observed CD3 count of the same sample, with its own
    measurement noise.
depletion (CD19 B cells)
    ``N(t) = B_i * depletion(t, k_dep_i, floor_i)``.
pk (BLINA)
    :class:`bayes_blina.events.SteadyStatePK` with a patient-level ``css_per_dose``.
response (CR within two cycles)
    ``logit P(CR_i) = alpha + beta_tcell * log2(expansion_i) + beta_il10 * log2(il10_peak_i /
    il10_ref) + beta_blast * [blast >= 50] + age_group_effects[age_group] +
    regimen_effects[regimen] + beta_plt_baseline * log2(B_plt_i / plt_ref)``.

Calibration
-----------
The defaults of the adult preset were tuned with ``scripts/calibration.py`` against the published
numbers of Nägele et al. 2017 (*Exp Hematol Oncol* 6:14) bundled in
``bayes_blina/data/bundled/nagele2017/summaries.csv``; ``docs/calibration.md`` lists every
compared number, the simulated value and their ratio.

Choices not fixed by the paper (documented here once)
-----------------------------------------------------
* **CD3 expansion drives response; platelet and neutrophil recovery follow it.** ``E_i`` of CD3 is
  drawn from one population distribution (``expansion_response_effect = 0``) and CR is drawn from
  the response model, which depends on it. Platelet and neutrophil recovery are part of the
  definition of CR (platelets > 100,000/µL, ANC > 1,500/µL), so their ``E_i`` is simulated as a
  *consequence* of CR: ``expansion_response_effect`` shifts the mean of ``E_i`` in responders.
  Nonresponders' neutrophils fall and do not recover by day 29 (persisting leukaemia), as
  reported.
* **Baseline platelets enter the response model** (``beta_plt_baseline``): the paper's responders
  started with twice the platelets of nonresponders (59,000 vs 29,000/µL, marrow reserve).
* **Neutrophils on the kinetics form.** The reported median course (fall from day 2, nadir after
  one week, recovery by day 29) is mapped onto a redistribution dip with ``t_nadir = 120 h`` and a
  narrow shape (``k_shape = 3``) so that the sampled nadir is on day 8. Every event triggers its own dip,
  so step regimens have a second, shallower dip in week 2 (not reported by the paper, which pooled
  regimens). The transient rise of the *mean* neutrophil count at 24 h cannot be produced by a dip
  and is not simulated.
* **Dropout** (``dropout = True``): the paper says many nonresponders did not receive a second
  cycle. CR is decided first (it summarises both cycles); a nonresponder then receives cycle 2 with
  probability ``p_continue_nonresponder`` (responders with ``p_continue_responder``). Patients who
  stop have no dosing after cycle 1 and, by default, no observations after it either.
* **Off-treatment follow-up** (``follow_up_after_stop_h``, off by default; on in the presets
  ``adult-follow-up`` and ``adult-null-follow-up``): the adult paper measured lymphocyte
  subpopulations "at the end of the core study and at follow-up visits". A patient who stops after
  cycle 1 (mostly nonresponders) then has lymphocyte samples (CD3, CD4, CD8, CD19) at these hours
  after the end of the last infusion (presets: 336 and 1008 h, days 43 and 71), and once a
  patient's last infusion has ended the expansion of every cell count returns towards baseline:
  the log fold change ``E_i s(t)`` is multiplied by ``exp(-(t - t_end,i) / off_treatment_tau_h)``
  (presets: 1600 h; the responders' median T-cell count fell from 550 to 460/µL over the 2-week
  treatment-free interval, 210/µL at baseline, i.e. 81% of the log fold change was left after
  14 days). Such samples are cycle-1 samples by the latest-infusion rule, are taken only from
  patients who stopped, and so depend on the outcome: the joint model's biomarker window
  (:mod:`bayes_blina.families.joint`) leaves them out. Off by default because the standalone
  kinetics family has no off-treatment decay and the earlier cohorts stay as they were.
* Adult demographics (age median 32, range 18–77; 60% with >= 50% blasts; BSA 1.85 ± 0.2 m²) are
  assumptions in line with the exploratory phase II population, not bundled numbers.
* **Early death or withdrawal** (``early_offstudy``, off by default; on in the preset
  ``pediatric-offstudy``): a patient goes off study before the first response assessment with
  probability ``p``, at a time uniform on ``window_h``; a death with probability ``p_death``, else
  a withdrawal. Such a patient's dosing and samples stop at that time, the response is empty (not
  evaluable) and ``subjects`` records ``offstudy_h`` and ``offstudy_reason``. The CR the patient
  would have had is drawn as for everyone (the truth keeps it), so the draw is independent of
  biomarkers and outcome. Calibration (von Stackelberg et al. 2016, *J Clin Oncol* 34:4381,
  table 2): 6 of the 70 children treated at 5-15 µg/m²/day had no response assessment, 5 of them
  died and 1 withdrew consent before the first assessment (bone marrow on day 15 of cycle 1), so
  ``p = 6/70``, ``p_death = 5/6``, ``window_h = (0, 336)`` (the paper gives no times: uniform up to
  day 15 is an assumption; "most AEs occurred in the first few days of cycle 1"). Off in
  ``pediatric`` so that its seeded cohorts stay as they were.
* **Survival outcomes** (``survival``, off by default; on in the preset ``pediatric-survival``, the
  pediatric cohort with early off-study as well): MRD response, relapse-free and overall survival
  linked to the MRD response and the CD3 expansion, calibrated to the pediatric trial; see
  :mod:`bayes_blina.simulate.survival_outcomes`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

from bayes_blina.errors import BayesBlinaError
from bayes_blina.simulate.survival_outcomes import PEDIATRIC_SURVIVAL, SurvivalParams

__all__ = [
    "Arm",
    "CohortConfig",
    "DepletionParams",
    "Demographics",
    "EarlyOffStudy",
    "PEDIATRIC_EARLY_OFFSTUDY",
    "KineticsParams",
    "PKParams",
    "PRESETS",
    "PresetError",
    "PulseParams",
    "ResponseParams",
    "SamplingSchedule",
    "SubsetParams",
    "allocate",
    "get_preset",
    "CYTOKINES",
    "LABS",
    "KINETICS",
    "SUBSETS",
]

#: Cytokines simulated with the pulse family (all measured with the same sampling schedule).
CYTOKINES: tuple[str, ...] = ("IL2", "IL6", "IL10", "TNFA", "IFNG", "GZMB")
#: Clinical laboratory parameters simulated with the pulse family.
LABS: tuple[str, ...] = ("ALT", "AST", "GGT", "ALP", "BILI", "CRP", "DDIMER", "LDH")
#: Cell counts simulated with the kinetics family.
KINETICS: tuple[str, ...] = ("CD3", "NEUT", "PLT")
#: T-cell subsets simulated as fractions of CD3.
SUBSETS: tuple[str, ...] = ("CD4", "CD8")


class PresetError(BayesBlinaError, ValueError):
    """An unknown preset name or an unusable cohort configuration."""


# ------------------------------------------------------------------------------------------------
# parameter blocks
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PulseParams:
    """Population parameters of one analyte of the pulse family (cytokines, labs).

    Attributes
    ----------
    log_baseline_mu, sd_log_baseline : float
        Mean and SD of the log patient baseline ``log B_i`` (canonical unit).
    log_amp_mu, sd_log_amp : float
        Mean and SD of the patient log amplitude ``log_amp_i`` of a first exposure at
        15 µg/m²/day in a patient with < 50% blasts.
    beta_blast_amp : float
        Shift of ``log_amp_i`` with >= 50% bone-marrow blasts.
    gamma_dose : float
        Dose exponent: ``log A`` changes by ``gamma_dose * log(dose / 15)``.
    delta_reexposure : float
        Shift of ``log A`` for every event after the first exposure (priming / tolerance).
    kappa_cycle : float
        Shift of ``log A`` per cycle after the first.
    log_tpeak_mu, sd_log_tpeak : float
        Mean and SD of ``log t_peak_i`` (hours); the pulse family's population ``log_tpeak`` is
        ``log_tpeak_mu`` when it has no between-patient variation of the peak time.
    k_shape : float
        Shape (width) of the pulse, shared by all patients.
    sigma_obs : float
        SD of the multiplicative (log-scale) residual.
    """

    log_baseline_mu: float
    sd_log_baseline: float
    log_amp_mu: float
    sd_log_amp: float
    beta_blast_amp: float
    gamma_dose: float
    delta_reexposure: float
    kappa_cycle: float
    log_tpeak_mu: float
    sd_log_tpeak: float
    k_shape: float
    sigma_obs: float


@dataclass(frozen=True)
class KineticsParams:
    """Population parameters of one analyte of the kinetics family (CD3, NEUT, PLT).

    Attributes
    ----------
    log_baseline_mu, sd_log_baseline : float
        Mean and SD of the log baseline count (cells/µL).
    depth, sd_logit_depth : float
        Population median redistribution depth ``D`` (0–1) and SD of ``logit D_i``.
    t_nadir : float
        Hours from an event to the bottom of its dip.
    k_shape : float
        Shape of the dip.
    expansion_mu, sd_expansion : float
        Mean and SD of ``E_i``, the log fold change at day 29 (nonresponders' mean when
        ``expansion_response_effect`` is not 0).
    expansion_response_effect : float
        Added to the mean of ``E_i`` in responders (0 for CD3: expansion is a cause of response,
        not a consequence; non-zero for platelets and neutrophils, whose recovery is part of CR).
    tau_e : float
        Time constant (h) of the saturating expansion curve.
    sigma_obs : float
        SD of the multiplicative (log-scale) residual.
    lod : float
        Detection limit of the count (cells/µL); lower results are reported ``below='LOD'``.
    """

    log_baseline_mu: float
    sd_log_baseline: float
    depth: float
    sd_logit_depth: float
    t_nadir: float
    k_shape: float
    expansion_mu: float
    sd_expansion: float
    expansion_response_effect: float
    tau_e: float
    sigma_obs: float
    lod: float


@dataclass(frozen=True)
class SubsetParams:
    """A T-cell subset as a fraction of the CD3 count of the same sample.

    Attributes
    ----------
    fraction_mu : float
        Population median fraction of CD3 (CD8 is drawn as a fraction of the non-CD4 rest, see
        :mod:`bayes_blina.simulate.cohort`).
    sd_logit_fraction : float
        SD of the logit of the patient fraction.
    sigma_obs : float
        SD of the extra log-scale noise of the subset count.
    """

    fraction_mu: float
    sd_logit_fraction: float
    sigma_obs: float


@dataclass(frozen=True)
class DepletionParams:
    """CD19 B-cell depletion.

    Attributes
    ----------
    log_baseline_mu, sd_log_baseline : float
        Log baseline count (cells/µL; includes circulating CD19+ blasts).
    log_k_dep_mu, sd_log_k_dep : float
        Log depletion rate (1/h).
    floor : float
        Remaining fraction in patients who deplete.
    p_no_depletion : float
        Probability that a patient does not deplete (the paper had one such nonresponder).
    floor_no_depletion_low, floor_no_depletion_high : float
        Remaining fraction of a non-depleting patient, uniform between these.
    sigma_obs : float
        SD of the log-scale residual.
    lod : float
        Flow-cytometry detection limit (cells/µL).
    """

    log_baseline_mu: float = math.log(30.0)
    sd_log_baseline: float = 1.5
    log_k_dep_mu: float = math.log(0.08)
    sd_log_k_dep: float = 0.4
    floor: float = 1e-6
    p_no_depletion: float = 0.03
    floor_no_depletion_low: float = 0.3
    floor_no_depletion_high: float = 1.0
    sigma_obs: float = 0.2
    lod: float = 1.0


@dataclass(frozen=True)
class PKParams:
    """Serum blinatumomab (one-compartment steady-state model).

    Attributes
    ----------
    css_per_dose : float
        Population median Css per unit dose (pg/mL per µg/m²/day). 43.8 makes the *mean* over
        patients 45.83, the value :class:`~bayes_blina.events.SteadyStatePK` derives from the
        published Css (198 at 5, 694 at 15 µg/m²/day).
    sd_log_css : float
        Between-patient SD of ``log css_per_dose`` (0.3: CV about 30%, as published).
    half_life_h : float
        Elimination half-life (h).
    sigma_obs : float
        SD of the log-scale assay residual.
    lloq : float
        Assay LLOQ (pg/mL).
    """

    css_per_dose: float = 43.8
    sd_log_css: float = 0.3
    half_life_h: float = 2.1
    sigma_obs: float = 0.15
    lloq: float = 50.0


@dataclass(frozen=True)
class ResponseParams:
    """Logistic model of CR within two cycles (see the module docstring).

    Attributes
    ----------
    alpha : float
        Intercept.
    beta_tcell : float
        Effect per doubling of CD3 expansion at day 29.
    beta_il10 : float
        Effect per doubling of the cycle-1 first-week IL10 peak over ``il10_ref``.
    il10_ref : float
        Reference IL10 peak (pg/mL).
    beta_blast : float
        Effect of >= 50% bone-marrow blasts.
    age_group_effects, regimen_effects : dict
        Additive effects by level (missing levels: 0).
    beta_plt_baseline : float
        Effect per doubling of the baseline platelet count over ``plt_ref``.
    plt_ref : float
        Reference platelet count (cells/µL).
    """

    alpha: float
    beta_tcell: float
    beta_il10: float
    il10_ref: float = 100.0
    beta_blast: float = -0.8
    age_group_effects: dict[str, float] = field(default_factory=dict)
    regimen_effects: dict[str, float] = field(default_factory=dict)
    beta_plt_baseline: float = 0.0
    plt_ref: float = 50000.0


@dataclass(frozen=True)
class Arm:
    """One dose cohort.

    Attributes
    ----------
    cohort : str
        Cohort label (kept as the extra subjects column ``cohort``).
    regimen : str
        Regimen label for :func:`bayes_blina.events.standard_schedule`.
    n : int
        Number of patients.
    sampling : {'frequent', 'sparse'}
        Lymphocyte sampling schedule.
    """

    cohort: str
    regimen: str
    n: int
    sampling: Literal["frequent", "sparse"] = "sparse"


@dataclass(frozen=True)
class SamplingSchedule:
    """Nominal sampling times (h) relative to events and cycle starts (Nägele et al. 2017).

    Attributes
    ----------
    pre_h : float
        Pre-dose sample before every infusion start (start, cycle start, restart).
    cytokine_after_event_h : tuple of float
        Cytokines (and granzyme B) after every start, restart and dose step.
    gzmb_cycles : int
        Granzyme B is measured in the first ``gzmb_cycles`` cycles only.
    lymph_frequent_after_event_h, lymph_sparse_after_event_h : tuple of float
        T and B cells after every start and dose step (also ``pre_h`` before steps).
    lymph_weekly_h : tuple of float
        T and B cells weekly after every cycle start, until the end of infusion.
    lab_after_cycle_start_h : tuple of float
        Labs, neutrophils and platelets: days 2, 3, 8, 15, 22 and 29 of each cycle.
    pk_after_cycle_start_h : tuple of float
        Serum blinatumomab: days 3, 8, 15, 22 and 29 of each cycle.
    """

    pre_h: float = -1.0
    cytokine_after_event_h: tuple[float, ...] = (2.0, 6.0, 24.0, 48.0, 168.0)
    gzmb_cycles: int = 1
    lymph_frequent_after_event_h: tuple[float, ...] = (2.0, 6.0, 24.0, 48.0)
    lymph_sparse_after_event_h: tuple[float, ...] = (48.0,)
    lymph_weekly_h: tuple[float, ...] = (168.0, 336.0, 504.0, 672.0)
    lab_after_cycle_start_h: tuple[float, ...] = (24.0, 48.0, 168.0, 336.0, 504.0, 672.0)
    pk_after_cycle_start_h: tuple[float, ...] = (48.0, 168.0, 336.0, 504.0, 672.0)


@dataclass(frozen=True)
class Demographics:
    """Covariate distributions.

    Attributes
    ----------
    age_groups : dict or None
        Pediatric: relative counts per age group (``'<2'``, ``'2-6'``, ``'7-17'``); ages are drawn
        uniformly within the group and counts are allocated exactly (largest remainder). ``None``
        for adults: ``age = age_min + (age_median - age_min) * exp(N(0, age_sd_log))``, clipped
        to ``age_max``.
    age_median, age_min, age_max, age_sd_log : float
        Adult age distribution.
    blast_high_fraction : float
        Fraction with >= 50% bone-marrow blasts (allocated exactly); blasts are uniform in
        [50, 99] or [6, 49].
    bsa_mean, bsa_sd : float
        Adult BSA (m², normal, clipped to [1.3, 2.6]).
    bsa_from_age : bool
        Pediatric: BSA by Mosteller from median weight and height for age, times
        ``exp(N(0, bsa_sd_log))``.
    bsa_sd_log : float
        Log-scale SD around the age-based BSA.
    """

    age_groups: dict[str, float] | None = None
    age_median: float = 32.0
    age_min: float = 18.0
    age_max: float = 77.0
    age_sd_log: float = 0.8
    blast_high_fraction: float = 0.6
    bsa_mean: float = 1.85
    bsa_sd: float = 0.2
    bsa_from_age: bool = False
    bsa_sd_log: float = 0.08


# ------------------------------------------------------------------------------------------------
# defaults
# ------------------------------------------------------------------------------------------------

_LN = math.log


def _cyt(baseline: float, amp: float, tpeak: float, *, delta: float = -1.8,
         kappa: float = -0.3) -> PulseParams:
    return PulseParams(
        log_baseline_mu=_LN(baseline), sd_log_baseline=0.4, log_amp_mu=_LN(amp), sd_log_amp=1.0,
        beta_blast_amp=0.5, gamma_dose=1.0, delta_reexposure=delta, kappa_cycle=kappa,
        log_tpeak_mu=_LN(tpeak), sd_log_tpeak=0.25, k_shape=2.0, sigma_obs=0.3,
    )


def _lab(baseline: float, sd_base: float, amp: float, tpeak: float, *, k: float = 2.0,
         sd_amp: float = 0.8, delta: float = -1.0, kappa: float = -0.3) -> PulseParams:
    return PulseParams(
        log_baseline_mu=_LN(baseline), sd_log_baseline=sd_base, log_amp_mu=_LN(amp),
        sd_log_amp=sd_amp, beta_blast_amp=0.2, gamma_dose=0.5, delta_reexposure=delta,
        kappa_cycle=kappa, log_tpeak_mu=_LN(tpeak), sd_log_tpeak=0.25, k_shape=k, sigma_obs=0.1,
    )


def _default_cytokines() -> dict[str, PulseParams]:
    # Baselines below the LOD (5 pg/mL; granzyme B 10 pg/mL, LOD 30). Peak times of the mean in
    # cycle 1: TNF-a 2 h, IL-2 6 h, IL-6/IL-10/IFN-g 24 h, granzyme B within 24 h. IL-6, IL-10 and
    # IFN-g reach the highest levels; IL-10 is the only cytokine still rising in later cycles
    # (its re-exposure penalty at the week-2 step is that of the others, as in Fig 6, but its cycle
    # term is positive: cycle 2 starts at exp(-1.8 + 0.9) = 0.4 of a first exposure).
    return {
        "IL2": _cyt(5.0, 14.0, 6.0),
        "IL6": _cyt(5.0, 110.0, 24.0),
        "IL10": _cyt(5.0, 110.0, 24.0, delta=-1.8, kappa=0.9),
        "TNFA": _cyt(5.0, 14.0, 2.0),
        "IFNG": _cyt(5.0, 90.0, 24.0),
        "GZMB": _cyt(10.0, 20.0, 24.0),
    }


def _default_cytokine_corr() -> dict[str, float]:
    # Correlation of the patient log amplitudes z_i: 0.6 among IL6, IL10 and IFNG, 0.3 otherwise.
    corr: dict[str, float] = {}
    strong = {"IL6", "IL10", "IFNG"}
    for i, a in enumerate(CYTOKINES):
        for b in CYTOKINES[i + 1:]:
            corr[f"{a}:{b}"] = 0.6 if {a, b} <= strong else 0.3
    return corr


def _default_labs() -> dict[str, PulseParams]:
    # Baselines near or below the ULN; peaks of the median course in cycle 1 (fold ULN): AST 1.6,
    # ALT 3.2, GGT 1.3 (within a week), CRP 10.8 and D-dimer 19.6 (48 h), LDH 1.02 (24 h); ALP
    # hardly changes; bilirubin stays below the ULN.
    return {
        "ALT": _lab(30.0, 0.5, 3.5, 24.0, k=1.5),
        "AST": _lab(24.0, 0.4, 1.6, 24.0, k=1.5),
        "GGT": _lab(75.0, 0.6, 0.6, 72.0, k=1.5),
        "ALP": _lab(90.0, 0.35, 0.08, 200.0, k=1.0),
        "BILI": _lab(0.5, 0.4, 0.5, 24.0, k=2.0),
        "CRP": _lab(1.0, 1.0, 14.0, 48.0, k=2.0),
        "DDIMER": _lab(1000.0, 0.8, 12.5, 48.0, k=2.0),
        "LDH": _lab(190.0, 0.35, 0.25, 24.0, k=2.0),
    }


def _default_kinetics() -> dict[str, KineticsParams]:
    return {
        # Baseline ~220/uL; nadir 6 h after each event at ~1/6 of the count; expansion E shared by
        # the whole population (exp(E) median ~2), responders end up with more through the
        # response model.
        "CD3": KineticsParams(
            log_baseline_mu=_LN(220.0), sd_log_baseline=0.8, depth=0.83, sd_logit_depth=0.5,
            t_nadir=6.0, k_shape=2.0, expansion_mu=_LN(2.0), sd_expansion=0.8,
            expansion_response_effect=0.0, tau_e=60.0, sigma_obs=0.15, lod=1.0),
        # Neutrophils: 1,800/uL, nadir on day 8, recovery by day 29 in responders; no recovery in
        # nonresponders (see the module docstring).
        "NEUT": KineticsParams(
            log_baseline_mu=_LN(1800.0), sd_log_baseline=0.7, depth=0.8, sd_logit_depth=0.5,
            t_nadir=120.0, k_shape=3.0, expansion_mu=-2.6, sd_expansion=0.5,
            expansion_response_effect=2.8, tau_e=168.0, sigma_obs=0.15, lod=10.0),
        # Platelets: nadir at 48 h at about half the baseline; responders' counts recover and
        # rise ~3.4-fold by day 29, nonresponders' stay flat.
        "PLT": KineticsParams(
            log_baseline_mu=_LN(45000.0), sd_log_baseline=0.8, depth=0.5, sd_logit_depth=0.5,
            t_nadir=48.0, k_shape=2.0, expansion_mu=0.0, sd_expansion=0.4,
            expansion_response_effect=1.2, tau_e=300.0, sigma_obs=0.15, lod=1000.0),
    }


def _default_subsets() -> dict[str, SubsetParams]:
    return {
        "CD4": SubsetParams(fraction_mu=0.40, sd_logit_fraction=0.4, sigma_obs=0.1),
        "CD8": SubsetParams(fraction_mu=0.85, sd_logit_fraction=0.4, sigma_obs=0.1),
    }


def _adult_response() -> ResponseParams:
    return ResponseParams(alpha=0.0, beta_tcell=1.5, beta_il10=0.3, il10_ref=100.0,
                          beta_blast=-0.8, age_group_effects={}, regimen_effects={},
                          beta_plt_baseline=0.8, plt_ref=50000.0)


# ------------------------------------------------------------------------------------------------
# the configuration
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlyOffStudy:
    """Death or withdrawal before the first response assessment (see the module docstring).

    Attributes
    ----------
    p : float
        Probability that a patient goes off study early (0: never, the default).
    p_death : float
        Probability that such a patient died (else withdrew).
    window_h : tuple of float
        The off-study time is uniform on this interval (hours since the first infusion start).
    """

    p: float = 0.0
    p_death: float = 5.0 / 6.0
    window_h: tuple[float, float] = (0.0, 336.0)


#: Early off-study of the pediatric phase I/II trial (von Stackelberg et al. 2016, table 2: 6 of
#: 70 patients at 5-15 µg/m²/day without a response assessment, 5 died and 1 withdrew consent
#: before the first assessment on day 15 of cycle 1).
PEDIATRIC_EARLY_OFFSTUDY = EarlyOffStudy(p=6.0 / 70.0, p_death=5.0 / 6.0, window_h=(0.0, 336.0))


@dataclass(frozen=True)
class CohortConfig:
    """Everything a virtual cohort is simulated from.

    Attributes
    ----------
    name : str
        Preset or configuration name.
    study : str
        Study label of every simulated subject; subject ids are ``STUDY-0001``, ...
    arms : tuple of Arm
        Dose cohorts, their sizes and sampling schedules.
    n_cycles : int
        Planned cycles (28 days on, 14 off; :func:`bayes_blina.events.standard_schedule`).
    demographics : Demographics
        Age, blasts, BSA.
    cytokines, labs : dict of str to PulseParams
        Pulse-family parameters by analyte.
    cytokine_corr : dict of str to float
        Correlation of the cytokine log-amplitude deviations ``z``, keyed ``'A:B'`` (pairs not
        given: 0).
    kinetics : dict of str to KineticsParams
        Kinetics-family parameters (CD3, NEUT, PLT).
    subsets : dict of str to SubsetParams
        CD4 and CD8 as fractions of CD3.
    cd19 : DepletionParams
        B-cell depletion.
    pk : PKParams
        Serum blinatumomab.
    response : ResponseParams
        CR model.
    bracket_floor : float
        Lower bound of the kinetics redistribution bracket ``1 - D * sum g`` (0.02).
    il10_peak_window_h : float
        ``il10_peak_i`` is the maximum of the noise-free IL10 curve over ``(0, window]`` h after the
        first infusion start (the first treatment week: the response to the first start).
    il10_peak_step_h : float
        Grid step (h) on which that maximum is taken.
    report_below_lloq : {'value', 'censor'}
        Cytokine results between LOD and LLOQ: reported as measured (as the paper did) or
        censored ``below='LLOQ'``, as a lab reporting both flags does: below the LOD ``'LOD'``,
        between the limits ``'LLOQ'``, the value empty and both ``lod`` and ``lloq`` given on every
        row, so that the models treat the ``'LLOQ'`` rows as interval-censored in ``[LOD, LLOQ)``
        (:mod:`bayes_blina.likelihood`).
    cytokine_lod, cytokine_lloq : dict of str to float
        Assay limits (pg/mL) by cytokine.
    dropout : bool
        Whether patients may stop after cycle 1 (see the module docstring).
    p_continue_responder, p_continue_nonresponder : float
        Probability of receiving cycles 2+ given CR / no CR.
    p_interruption : float
        Probability of one interruption in cycle 1 (restart at the same dose); 0 by default.
    interruption_window_h : tuple of float
        Interval in which the interruption starts.
    interruption_hours : tuple of float
        Range of the interruption's length.
    sampling : SamplingSchedule
        Nominal sampling times.
    early_offstudy : EarlyOffStudy
        Death or withdrawal before the first response assessment (default: none).
    survival : SurvivalParams
        MRD response, relapse-free and overall survival (default: not simulated).
    follow_up_after_stop_h : tuple of float
        Off-treatment follow-up visits of patients who stop after cycle 1: lymphocyte samples (CD3,
        CD4, CD8, CD19) at these hours after the end of their last infusion; ``()`` (default):
        none. With visits, every kinetics curve returns towards baseline after the patient's last
        infusion (see the module docstring).
    off_treatment_tau_h : float
        Time constant (h) of that return: the log fold change is multiplied by
        ``exp(-(t - t_end) / off_treatment_tau_h)`` after the last infusion's end ``t_end``.
    """

    name: str
    study: str
    arms: tuple[Arm, ...]
    n_cycles: int = 2
    demographics: Demographics = field(default_factory=Demographics)
    cytokines: dict[str, PulseParams] = field(default_factory=_default_cytokines)
    cytokine_corr: dict[str, float] = field(default_factory=_default_cytokine_corr)
    labs: dict[str, PulseParams] = field(default_factory=_default_labs)
    kinetics: dict[str, KineticsParams] = field(default_factory=_default_kinetics)
    subsets: dict[str, SubsetParams] = field(default_factory=_default_subsets)
    cd19: DepletionParams = field(default_factory=DepletionParams)
    pk: PKParams = field(default_factory=PKParams)
    response: ResponseParams = field(default_factory=_adult_response)
    bracket_floor: float = 0.02
    il10_peak_window_h: float = 168.0
    il10_peak_step_h: float = 0.125
    report_below_lloq: Literal["value", "censor"] = "value"
    cytokine_lod: dict[str, float] = field(default_factory=lambda: {
        "IL2": 20.0, "IL6": 20.0, "IL10": 20.0, "TNFA": 20.0, "IFNG": 20.0, "GZMB": 30.0})
    cytokine_lloq: dict[str, float] = field(default_factory=lambda: {
        "IL2": 125.0, "IL6": 125.0, "IL10": 125.0, "TNFA": 125.0, "IFNG": 125.0, "GZMB": 100.0})
    dropout: bool = True
    p_continue_responder: float = 1.0
    p_continue_nonresponder: float = 0.5
    p_interruption: float = 0.0
    interruption_window_h: tuple[float, float] = (24.0, 480.0)
    interruption_hours: tuple[float, float] = (24.0, 72.0)
    sampling: SamplingSchedule = field(default_factory=SamplingSchedule)
    early_offstudy: EarlyOffStudy = field(default_factory=EarlyOffStudy)
    survival: SurvivalParams = field(default_factory=SurvivalParams)
    follow_up_after_stop_h: tuple[float, ...] = ()
    off_treatment_tau_h: float = 1600.0

    def __post_init__(self) -> None:
        problems = []
        if not self.arms:
            problems.append("arms must not be empty")
        for arm in self.arms:
            if isinstance(arm.n, bool) or not isinstance(arm.n, int) or arm.n < 0:
                problems.append(f"arm {arm.cohort!r}: n must be an integer >= 0 (found {arm.n!r})")
            if arm.sampling not in ("frequent", "sparse"):
                problems.append(f"arm {arm.cohort!r}: sampling must be 'frequent' or 'sparse' "
                                f"(found {arm.sampling!r})")
        if isinstance(self.n_cycles, bool) or not isinstance(self.n_cycles, int) \
                or self.n_cycles < 1:
            problems.append(f"n_cycles must be an integer >= 1 (found {self.n_cycles!r})")
        if self.report_below_lloq not in ("value", "censor"):
            problems.append("report_below_lloq must be 'value' or 'censor' "
                            f"(found {self.report_below_lloq!r})")
        missing = [c for c in CYTOKINES if c not in self.cytokines]
        missing += [c for c in LABS if c not in self.labs]
        missing += [c for c in KINETICS if c not in self.kinetics]
        missing += [c for c in SUBSETS if c not in self.subsets]
        if missing:
            problems.append(f"parameters missing for {missing}")
        for key in self.cytokine_corr:
            a, _, b = key.partition(":")
            if a not in CYTOKINES or b not in CYTOKINES or a == b:
                problems.append(f"cytokine_corr key {key!r} must be 'A:B' with two different "
                                f"cytokines of {list(CYTOKINES)}")
        for name in ("p_continue_responder", "p_continue_nonresponder", "p_interruption"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                problems.append(f"{name} must be in [0, 1] (found {v!r})")
        if any(not (math.isfinite(float(h)) and float(h) > 0) for h in self.follow_up_after_stop_h):
            problems.append("follow_up_after_stop_h must hold positive hours after the last infusion "
                            f"(found {self.follow_up_after_stop_h!r})")
        if not (math.isfinite(float(self.off_treatment_tau_h)) and float(self.off_treatment_tau_h) > 0):
            problems.append(f"off_treatment_tau_h must be a positive number of hours "
                            f"(found {self.off_treatment_tau_h!r})")
        if not 0.0 < self.bracket_floor < 1.0:
            problems.append(f"bracket_floor must be in (0, 1) (found {self.bracket_floor!r})")
        eo = self.early_offstudy
        if not (0.0 <= float(eo.p) <= 1.0 and 0.0 <= float(eo.p_death) <= 1.0):
            problems.append(f"early_offstudy.p and p_death must be in [0, 1] (found {eo.p!r}, "
                            f"{eo.p_death!r})")
        lo, hi = (float(x) for x in eo.window_h)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi):
            problems.append(f"early_offstudy.window_h must be (low, high) hours with 0 <= low < high "
                            f"(found {eo.window_h!r})")
        problems += self.survival.problems()
        if problems:
            raise PresetError("invalid CohortConfig: " + "; ".join(problems))

    @property
    def n(self) -> int:
        """Total number of patients."""
        return sum(a.n for a in self.arms)

    def scaled(self, n: int) -> "CohortConfig":
        """The same configuration with the arm sizes scaled to ``n`` patients in all.

        Sizes are proportional to the preset's, rounded by the largest-remainder method so that
        they add up to exactly ``n``.

        Raises
        ------
        PresetError
            If ``n`` is not an integer >= 1.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise PresetError(f"n must be an integer >= 1 (found {n!r})")
        sizes = allocate(n, [a.n for a in self.arms])
        return replace(self, arms=tuple(replace(a, n=s) for a, s in zip(self.arms, sizes)))

    def with_response(self, **changes: Any) -> "CohortConfig":
        """A copy with some :class:`ResponseParams` fields changed."""
        return replace(self, response=replace(self.response, **changes))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data (JSON-serialisable) form of every field."""
        return _plain(asdict(self))


def allocate(n: int, weights: list[float]) -> list[int]:
    """Split ``n`` into integer parts proportional to ``weights`` (largest remainder)."""
    total = float(sum(weights))
    if total <= 0:
        raise PresetError("cannot allocate patients: all weights are 0")
    exact = [n * w / total for w in weights]
    base = [int(math.floor(x)) for x in exact]
    rest = n - sum(base)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return base


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def config_field_names() -> list[str]:
    """Names of the top-level :class:`CohortConfig` fields."""
    return [f.name for f in fields(CohortConfig)]


# ------------------------------------------------------------------------------------------------
# presets
# ------------------------------------------------------------------------------------------------


def _adult() -> CohortConfig:
    return CohortConfig(
        name="adult-exploratory",
        study="SIM-ADULT",
        arms=(
            Arm("cohort 1", "15", 7, "frequent"),
            Arm("cohort 2a", "5-15", 5, "frequent"),
            Arm("cohort 3", "5-15", 18, "sparse"),
            Arm("cohort 2b", "5-15-30", 6, "sparse"),
        ),
    )


def _adult_null() -> CohortConfig:
    # No link of T-cell expansion or IL-10 to response; the intercept is re-tuned so that the
    # responder fraction stays near 69%.
    base = _adult()
    return replace(base, name="adult-null",
                   response=replace(base.response, beta_tcell=0.0, beta_il10=0.0, alpha=1.5))


#: Off-treatment follow-up of the ``*-follow-up`` presets: days 43 and 71 for a patient whose last
#: infusion ended on day 29 (end of the core study and a follow-up visit).
FOLLOW_UP_AFTER_STOP_H: tuple[float, ...] = (336.0, 1008.0)


def _adult_follow_up() -> CohortConfig:
    # The adult preset with the off-treatment follow-up of patients who stop after cycle 1.
    return replace(_adult(), name="adult-follow-up", follow_up_after_stop_h=FOLLOW_UP_AFTER_STOP_H)


def _adult_null_follow_up() -> CohortConfig:
    # No biomarker link to CR, with that follow-up: a check that the biomarker features of the
    # joint model do not depend on the outcome.
    return replace(_adult_null(), name="adult-null-follow-up", follow_up_after_stop_h=FOLLOW_UP_AFTER_STOP_H)


def _pediatric() -> CohortConfig:
    return CohortConfig(
        name="pediatric",
        study="SIM-PED",
        arms=(Arm("pediatric 5-15", "5-15", 70, "sparse"),),
        demographics=Demographics(
            age_groups={"<2": 10.0, "2-6": 20.0, "7-17": 40.0},
            blast_high_fraction=52.0 / 70.0, bsa_from_age=True),
        response=ResponseParams(
            alpha=-1.9, beta_tcell=1.5, beta_il10=0.3, il10_ref=100.0, beta_blast=-0.8,
            age_group_effects={"<2": 0.7, "2-6": 0.1, "7-17": -0.2}, regimen_effects={},
            beta_plt_baseline=0.8, plt_ref=50000.0),
    )


def _pediatric_offstudy() -> CohortConfig:
    # The pediatric preset with its trial's deaths and withdrawals before the first assessment.
    return replace(_pediatric(), name="pediatric-offstudy", early_offstudy=PEDIATRIC_EARLY_OFFSTUDY)


def _pediatric_survival() -> CohortConfig:
    # The pediatric trial with early off-study and its MRD, RFS and OS outcomes.
    return replace(_pediatric_offstudy(), name="pediatric-survival", survival=PEDIATRIC_SURVIVAL)


_FACTORIES = {
    "adult-exploratory": _adult,
    "adult-null": _adult_null,
    "adult-follow-up": _adult_follow_up,
    "adult-null-follow-up": _adult_null_follow_up,
    "pediatric": _pediatric,
    "pediatric-offstudy": _pediatric_offstudy,
    "pediatric-survival": _pediatric_survival,
}

#: The named presets (fresh copies: :func:`get_preset` builds a new one on every call).
PRESETS: dict[str, CohortConfig] = {name: make() for name, make in _FACTORIES.items()}


def get_preset(name: str) -> CohortConfig:
    """The :class:`CohortConfig` of a named preset.

    Parameters
    ----------
    name : str
        One of ``'adult-exploratory'``, ``'adult-null'``, ``'adult-follow-up'``, ``'adult-null-follow-up'``,
        ``'pediatric'``, ``'pediatric-offstudy'``.

    Returns
    -------
    CohortConfig
        A fresh copy (changing it does not change :data:`PRESETS`).

    Raises
    ------
    PresetError
        (a :class:`~bayes_blina.errors.BayesBlinaError`) for an unknown name, listing the valid
        names.
    """
    if not isinstance(name, str) or name not in _FACTORIES:
        valid = ", ".join(repr(k) for k in _FACTORIES)
        raise PresetError(f"unknown cohort preset {name!r}; valid presets are {valid}")
    return _FACTORIES[name]()
