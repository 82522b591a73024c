"""Joint model: T-cell expansion and cytokine peaks (trajectory sub-models) → complete remission.

One PyMC model holds

* a **kinetics** sub-model of CD3 T cells (:mod:`bayes_blina.families.kinetics`, variables and
  dimensions prefixed ``tcell_``), whose patient effect ``tcell_log_expansion[i]`` is ``E_i``, the
  log fold change of the patient's noise-free CD3 curve at the end of the biomarker window (by
  default the end of the cycle-1 infusion, day 29, 672 h) over the pre-treatment baseline;
* a **pulse** sub-model of IL-10, optionally with IL-6 and IFN-γ (:mod:`bayes_blina.families.pulse`,
  prefix ``cyt_``), whose patient effect ``cyt_log_peak_first[i, a]`` is the log of the noise-free
  concentration at the peak after the first infusion start of cycle 1;
* a **CR** sub-model on the patient rows with a response (``subjects.response``)::

      logit P(CR_i) = alpha + sum_f beta_f[level_f(i)] (+ u[study_i])
                      + beta_tcell_expansion * log2(expansion_i)
                      + beta_il10_peak       * log2(il10_peak_i / il10_ref)

  with ``expansion_i = exp(E_i)`` and ``il10_peak_i = exp(log_peak_first[i, IL10])`` taken from
  the trajectory sub-models **in the same MCMC run** (not a plug-in of estimates: the uncertainty
  of each patient's biomarker, and the information CR carries about it, are part of the fit).

The biomarker window
--------------------
Which trajectory rows define a patient's biomarkers must not depend on the outcome. Patients who
stop after cycle 1 (mostly nonresponders) are seen off treatment (end-of-treatment and follow-up
visits, their T cells falling back towards baseline); by the latest-infusion rule those samples
are "cycle 1", and since the expansion curve is flat after day 29 they would feed only the
nonresponders' expansion and bias the odds ratio away from 1 (a null cohort with that follow-up
gave a T-cell odds ratio of 1.76, 90% interval 1.32-2.39, before the window; 1.13, 0.90-1.44,
after it: docs/joint-model.md). So both trajectory parts use only rows before the end of day
``window_days`` (default 29; day 1 begins at the first infusion start: ``time_h < 24 window_days``),
the same pre-specified window for every patient, and events before then; the rows after it are left
out with the reason "after the biomarker window (day N from the first infusion start)" (recorded
in ``data_use``, with ``data_use["biomarker_window"]``; ``bayes-blina fit`` prints both). The
window comes on top of ``cycles = 1``: cycle-2 rows keep their own reason.

**Early features**: ``window_days = 8`` (or 15) defines the T-cell expansion as the fold change at
the start of that day (168 h; the kinetics option ``expansion_day``, which the joint model sets from
the window) and uses rows up to the end of day 8 only, so the biomarker is known before the response
assessment. The IL-10 peak after the first infusion start lies within the first days and is the same
quantity in any window of at least 2 days.

Scale of the coefficients
-------------------------
Biomarkers enter **per doubling**: ``log2`` of the fold change (T cells) and ``log2`` of the peak
over a fixed reference ``peak_ref`` (IL-10: 100 pg/mL, the reference of the simulator). So
``or_tcell_expansion = exp(beta_tcell_expansion)`` is the odds ratio of CR for a patient whose
T cells expand twice as much (e.g. 4-fold instead of 2-fold), and ``or_il10_peak`` that for a
twice-as-high IL-10 peak, with everything else equal. They are not standardised (per SD of the
biomarker) because the SD of a latent biomarker depends on the cohort; per doubling is the same in
every cohort. ``alpha`` is the logit CR probability of a patient with no expansion (fold change 1)
and an IL-10 peak at the reference, at the average of the covariate levels. To sample well the
model is centred: the sampler moves ``p_typical``, the CR probability at ``centre`` (log2 values,
by default 1 for expansion = 2-fold and 2 for an IL-10 peak of 400 pg/mL, about the medians of the
adult cohorts) and ``alpha`` is derived from it.

Covariates of the CR part follow the response model (:mod:`bayes_blina.families.response`): each
factor of ``covariates`` (default regimen, age group, blast burden) has zero-sum level effects with
spread ``sd_<factor>`` (non-centred). Levels are those of the patients in the CR part; a factor with
a single level there is dropped (its effect is absorbed by the intercept; recorded in ``data_use``),
a patient whose level is unknown gets the factor's mean effect (0). The adjustment set is the
user's pre-specified choice; ``models/joint.toml`` has none beyond the factors, so it runs on the core
data format. ``numeric_covariates`` adds numeric baseline covariates from columns of
``subjects.csv`` (e.g. the baseline platelet count, per doubling over a reference): one
coefficient ``beta_<column>`` each; a patient with an empty value is left out of the CR part
(recorded), a value that is not a number (or not positive, on the log2 scale) is an error naming
the row. Prognostic covariates matter even when they are independent of
the biomarkers: a logistic odds ratio is conditional on what is in the model, and leaving out a
strong prognostic factor shrinks the biomarker's odds ratio towards 1 (non-collapsibility). Use
baseline values only: platelet recovery, for example, is part of the CR/CRh definition, so only the
pre-treatment platelet count may be a covariate.

Identifiability notes
---------------------
* ``beta_<biomarker>`` is identified by the between-patient variation of the latent biomarker. A
  biomarker measured with error relative to its spread is *not* attenuated here (the measurement
  model is part of the fit), as it is in a two-stage plug-in (regression dilution).
* Because CR also informs each patient's biomarker, the CR part pulls each patient's latent value
  towards what their outcome suggests; with weakly informative trajectory data (few samples, most
  below the LOD) the coefficient then leans on its prior. Trajectory data of the biomarker window
  only are used (``window_days``, within ``cycles = 1``): the biomarkers are cycle-1 quantities, and
  whether a patient receives cycle 2, or is seen off treatment after cycle 1, depends on the
  response, which would make later data informative about CR in a way the model does not describe.
* A confounder of a biomarker and CR (blast burden raises the IL-10 peak and lowers CR in the adult
  simulator) must be a CR covariate, or the biomarker's coefficient absorbs its effect.

Parts and options
-----------------
``biomarkers`` picks the biomarkers in the CR part (``tcell_expansion``, ``il10_peak``,
``il6_peak``, ``ifng_peak``); a trajectory sub-model is included exactly when one of its biomarkers
is. ``biomarkers = []`` is the baseline-covariates-only CR model (same CR part, no trajectories):
the comparison model for LOO and for discrimination. ``response_part = false`` keeps only the
trajectory sub-models (stage 1 of the two-stage comparison, :mod:`bayes_blina.joint.two_stage`).
``tcell`` and ``cytokines`` are option tables passed to the sub-models (their ``analytes`` default to
CD3 and to the cytokines of the biomarkers).

Priors are those of the sub-models, named with their prefix (``tcell_sigma_obs``,
``cyt_log_amp_mu``, ...), and of the CR part (see :class:`JointModel`).

Named quantities
----------------
``beta_<biomarker>``, ``or_<biomarker>`` (odds ratio per doubling), ``p_or_<biomarker>_gt_1``
(indicator whose posterior mean is P(OR > 1)), ``beta_<column>`` of each numeric covariate,
``alpha``, ``p_typical``, ``p_cr`` (cr_patient), and everything the sub-models name (prefixed).
Pointwise log-likelihoods: ``cr`` per patient of the CR part, ``tcell_y`` and ``cyt_y`` per
observation row of the trajectory parts.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar, override

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bayes_blina._tree import as_dataset
from bayes_blina.errors import DataValidationError, Problem, SpecError
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.families.levels import (FACTORS, NumericCovariate, factor_vocabulary, known_unique, subject_levels,
                                         subject_numbers)
from bayes_blina.priors import Prior

__all__ = ["BIOMARKERS", "PARTS", "Biomarker", "JointModel", "JointOptions", "derived_summary",
           "add_cr_part", "cr_baseline_eta"]

LN2 = math.log(2.0)
_IDENT = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Biomarker:
    """A patient-level biomarker of a trajectory sub-model that can enter the CR part.

    Attributes
    ----------
    part : str
        Sub-model (key of :data:`PARTS`).
    key : str
        Name of the tensor returned by the sub-model's ``add_to_model`` (and of its posterior
        variable, without prefix).
    analyte : str
        Analyte column of that tensor.
    label : str
        What it is, in words.
    default_centre : float
        Default centring value on the model's log2 scale.
    """

    part: str
    key: str
    analyte: str
    label: str
    default_centre: float


#: Sub-models: part -> (family name, prefix).
PARTS: dict[str, tuple[str, str]] = {"tcell": ("kinetics", "tcell_"), "cyt": ("pulse", "cyt_")}

#: Biomarkers the CR part can use.
BIOMARKERS: dict[str, Biomarker] = {
    "tcell_expansion": Biomarker("tcell", "log_expansion", "CD3",
                                 "CD3 fold change at the end of the biomarker window (day 29 unless set) over "
                                 "the pre-treatment baseline", 1.0),
    "il10_peak": Biomarker("cyt", "log_peak_first", "IL10",
                           "IL-10 peak after the first infusion start of cycle 1 (pg/mL)", 2.0),
    "il6_peak": Biomarker("cyt", "log_peak_first", "IL6",
                          "IL-6 peak after the first infusion start of cycle 1 (pg/mL)", 2.0),
    "ifng_peak": Biomarker("cyt", "log_peak_first", "IFNG",
                           "IFN-gamma peak after the first infusion start of cycle 1 (pg/mL)", 2.0),
}


class JointOptions(BaseModel):
    """Options of the joint model (see the module docstring).

    Attributes
    ----------
    biomarkers : list of str
        Biomarkers in the CR part (keys of :data:`BIOMARKERS`); ``[]``: covariates only.
    covariates : list of str
        CR covariate factors (default regimen, age group, blast burden).
    numeric_covariates : dict of str to NumericCovariate
        Numeric baseline covariates of the CR part: column of ``subjects.csv`` -> ``{ref,
        transform}`` (e.g. ``{platelets_baseline = {ref = 50000}}``: coefficient
        ``beta_platelets_baseline`` per doubling of the baseline platelet count over 50,000/µL).
    study_effect : bool
        Between-study random intercept in the CR part (when the data hold several studies).
    response_part : bool
        Include the CR part (``false``: trajectories only, stage 1 of the two-stage comparison).
    cycles : int
        Highest cycle of trajectory data used (default 1; the sub-model tables may override).
    window_days : float
        The biomarker window, in days from the first infusion start (day 1 begins at the first
        infusion start; default 29, the end of the 28-day infusion of cycle 1): the trajectory parts
        use only observations before the end of day ``window_days`` (``time_h < 24 window_days``),
        the same for every patient whatever happens later; later rows are left out (recorded in
        ``data_use``, printed by ``bayes-blina fit``). The T-cell expansion is the fold change at
        the start of that day (``24 (window_days - 1)`` h; the kinetics option ``expansion_day``),
        so ``window_days = 8`` gives the expansion by day 8, known before the response assessment.
        Applied on top of ``cycles``. Between 2 and 29.
    tcell : dict
        Options of the kinetics sub-model (``analytes`` default ``["CD3"]``).
    cytokines : dict
        Options of the pulse sub-model (``analytes`` default: the cytokines of the biomarkers).
    peak_ref : dict of str to float
        Reference peak (canonical unit, pg/mL) of each cytokine: the biomarker is
        ``log2(peak / peak_ref)``.
    centre : dict of str to float
        Centring value of each biomarker on its log2 scale (sampling geometry only; ``p_typical``
        is the CR probability there).
    """

    model_config = ConfigDict(extra="forbid")
    biomarkers: list[str] = Field(default_factory=lambda: ["tcell_expansion", "il10_peak"])
    covariates: list[str] = Field(default_factory=lambda: ["regimen", "age_group", "blast_burden"])
    numeric_covariates: dict[str, NumericCovariate] = Field(default_factory=dict)
    study_effect: bool = False
    response_part: bool = True
    cycles: int = Field(1, ge=1)
    window_days: float = Field(29.0, ge=2.0, le=29.0)
    tcell: dict[str, Any] = Field(default_factory=dict)
    cytokines: dict[str, Any] = Field(default_factory=dict)
    peak_ref: dict[str, float] = Field(default_factory=lambda: {"IL10": 100.0, "IL6": 100.0, "IFNG": 100.0})
    centre: dict[str, float] = Field(default_factory=dict)

    @field_validator("biomarkers")
    @classmethod
    def _known_biomarkers(cls, v: list[str]) -> list[str]:
        return known_unique(v, BIOMARKERS, "biomarker", "biomarkers")

    @field_validator("covariates")
    @classmethod
    def _known_factors(cls, v: list[str]) -> list[str]:
        return known_unique(v, FACTORS, "covariate", "covariates")

    @field_validator("peak_ref")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not (x > 0 and math.isfinite(x))}
        if bad:
            raise ValueError(f"peak_ref values must be positive numbers (found {bad})")
        return v

    @field_validator("numeric_covariates")
    @classmethod
    def _numeric_names(cls, v: dict[str, NumericCovariate]) -> dict[str, NumericCovariate]:
        for name in v:
            if not _IDENT.fullmatch(name):
                raise ValueError(f"numeric covariate {name!r}: the subjects.csv column name must be lower-case "
                                 "letters, digits and underscores, starting with a letter (it names the "
                                 f"coefficient beta_{name})")
            if name in FACTORS or name in BIOMARKERS or name in ("response", "subject_id", "study"):
                raise ValueError(f"numeric covariate {name!r} clashes with a factor, biomarker or reserved column")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "JointOptions":
        bad = [k for k in self.centre if k not in self.biomarkers]
        if bad:
            raise ValueError(f"centre names biomarker(s) {bad} that are not in biomarkers {self.biomarkers}")
        if not self.response_part and not self.biomarkers:
            raise ValueError("response_part = false needs at least one biomarker (nothing would be modelled)")
        return self


def _analyte_defaults(fam: ModelFamily) -> dict[str, Prior]:
    """The sub-model family's default priors for the analytes it models: a prior that the family
    declares per analyte (``default_analyte_priors``, e.g. the T-cell dip of the kinetics family)
    replaces its generic default when every modelled analyte has the same one. Passed down to the
    sub-model as given, so the joint model's ``priors`` are the priors the sub-model uses."""
    out = dict(fam.default_priors())
    per = getattr(fam, "default_analyte_priors", dict)()
    analytes = list(getattr(fam.options, "analytes", []) or [])
    for name in out:
        used = [per.get((name, a)) for a in analytes]
        if used and used[0] is not None and all(p == used[0] for p in used):
            out[name] = used[0]
    return out


class JointModel(ModelFamily):
    """Joint trajectory → CR model (see the module docstring).

    Default priors of the CR part (override by name in the spec's ``[priors]`` table; the
    sub-models' priors are named with their prefix, e.g. ``tcell_sigma_obs``, ``cyt_log_amp_mu``):

    ``p_typical``          Beta(1, 1): CR probability at the biomarker centres and the average
                           covariate levels.
    ``beta_<biomarker>``   Normal(0, 1.5): log odds ratio of CR per doubling of the biomarker; 95%
                           prior odds ratios between 0.05 and 19 per doubling (weakly informative;
                           a doubling is about one between-patient SD of log2 expansion).
    ``sd_<factor>``        Gamma(2, 2): spread of the factor's zero-sum level effects (logit scale,
                           boundary-avoiding as in the response model).
    ``beta_<column>``      Normal(0, 1.5): log odds ratio per doubling (per unit with
                           ``transform = "identity"``) of each numeric covariate.
    ``sd_study``           HalfNormal(0.5), with ``study_effect = true``.
    ``tcell_sd_logit_depth`` Gamma(2, 2): between-patient SD of the T-cell dip depth (logit
                           scale), boundary-avoiding instead of the kinetics family's HalfNormal(1).
                           The dip is a nuisance here, usually seen by two samples per patient (6
                           and 24 h); under the HalfNormal the posterior kept a long tail towards 0
                           that chains crossed slowly (R-hat 1.011-1.013 on independent cohorts).

    Every other sub-model prior is the sub-model family's own default *for the analyte modelled*:
    the T-cell part's ``tcell_t_nadir`` and ``tcell_k_shape`` are the kinetics family's T-cell
    priors (:meth:`~bayes_blina.families.kinetics.KineticsModel.default_analyte_priors`: nadir
    LogNormal(log 6, 0.5), shape LogNormal(log 1.5, 0.5)), not its generic ones (nadir 95% within
    2.3 and 250 h, meant for neutrophils and platelets too, under which a weeks-long dip at the
    floor plus a large expansion can stand in for a fall of the counts: R-hat 1.5). Earlier versions
    replaced them with LogNormal(log 6, 0.3) and LogNormal(log 2, 0.3), centred on the virtual
    cohorts' own shape (docs/joint-model.md).
    """

    #: Sub-model priors the joint model sets itself (prefixed names), where the sub-model family's
    #: default does not suit a nuisance part (see the class docstring).
    SUB_MODEL_PRIORS: ClassVar[dict[str, Prior]] = {
        "tcell_sd_logit_depth": Prior("Gamma", alpha=2.0, beta=2.0),
    }

    name = "joint"
    report_checks = ("joint_vpc",)
    report_figures = ("pcr_expansion",)
    outcome = "composite"
    sbc_patients = 20  # the CR part has one binary outcome per patient
    derived_summary_prefixes = ("or_", "p_or_")  # exp(beta_<biomarker>) and its sign
    loo_pit_by_part = True
    Options = JointOptions

    def __init__(self, options=None, priors=None):
        super().__init__(options, priors)
        #: The sub-models, by part name (``tcell``, ``cyt``), with their (unprefixed) priors.
        self.parts: dict[str, ModelFamily] = self._sub_families(with_priors=True)

    @classmethod
    def plain_options(cls, options):
        """The options with the pulse sub-model's peak coordinates (and with them its
        patient-mean timing coordinate ``log_tpeak_c``), which are flat, in their plain form."""
        out = super().plain_options(options)
        out["cytokines"] = {**dict(out.get("cytokines") or {}), "peak_coordinates": False}
        return out

    # ------------------------------------------------------------------ structure
    def part_names(self) -> list[str]:
        """Sub-models included (those of the biomarkers), in :data:`PARTS` order."""
        used = {BIOMARKERS[b].part for b in self.options.biomarkers}
        return [p for p in PARTS if p in used]

    def _sub_options(self, part: str) -> dict[str, Any]:
        opt = self.options
        analytes = [BIOMARKERS[b].analyte for b in opt.biomarkers if BIOMARKERS[b].part == part]
        user = dict(opt.tcell if part == "tcell" else opt.cytokines)
        sub: dict[str, Any] = {"analytes": analytes, "cycles": opt.cycles}
        for key in ("window_days", "expansion_day"):
            if key in user:
                raise SpecError(f"joint model option {'tcell' if part == 'tcell' else 'cytokines'}.{key}: set the "
                                "biomarker window with the joint model's own option window_days (it applies to "
                                "every trajectory part and defines the T-cell expansion's day)")
        sub["window_days"] = opt.window_days
        if part == "tcell":
            sub["expansion_day"] = opt.window_days
        sub.update(user)
        if part == "cyt" and "correlated" not in user:
            sub["correlated"] = len(sub["analytes"]) > 1
        from bayes_blina.data.analytes import resolve_analyte

        have = [resolve_analyte(a) or a for a in sub.get("analytes", [])]
        missing = [a for a in analytes if a not in have]
        if missing:
            raise SpecError(f"joint model option {'tcell' if part == 'tcell' else 'cytokines'}.analytes "
                            f"{sub.get('analytes')} must include {missing} (needed by biomarkers "
                            f"{[b for b in opt.biomarkers if BIOMARKERS[b].analyte in missing]})")
        return sub

    def _sub_families(self, *, with_priors: bool) -> dict[str, ModelFamily]:
        from bayes_blina.families import get_family

        out = {}
        for part in self.part_names():
            fam_name, prefix = PARTS[part]
            cls = get_family(fam_name)
            pri = ({k[len(prefix):]: v for k, v in self.priors.items() if k.startswith(prefix)}
                   if with_priors else None)
            try:
                out[part] = cls(self._sub_options(part), pri)
            except SpecError as e:
                raise SpecError(f"joint model, {part} sub-model: {e}") from None
        return out

    @override
    def default_priors(self) -> dict[str, Prior]:
        opt = self.options
        pri: dict[str, Prior] = {}
        if opt.response_part:
            pri["p_typical"] = Prior("Beta", alpha=1.0, beta=1.0)
            for b in opt.biomarkers:
                pri[f"beta_{b}"] = Prior("Normal", mu=0.0, sigma=1.5)
            for f in opt.covariates:
                pri[f"sd_{f}"] = Prior("Gamma", alpha=2.0, beta=2.0)
            for c in opt.numeric_covariates:
                pri[f"beta_{c}"] = Prior("Normal", mu=0.0, sigma=1.5)
            if opt.study_effect:
                pri["sd_study"] = Prior("HalfNormal", sigma=0.5)
        for part, fam in self._sub_families(with_priors=False).items():
            prefix = PARTS[part][1]
            pri.update({prefix + k: v for k, v in _analyte_defaults(fam).items()})
        pri.update({k: v for k, v in self.SUB_MODEL_PRIORS.items() if k in pri})
        return pri

    def centre(self, biomarker: str) -> float:
        """Centring value of a biomarker (log2 scale)."""
        return float(self.options.centre.get(biomarker, BIOMARKERS[biomarker].default_centre))

    def log_ref(self, biomarker: str) -> float:
        """Natural log of the biomarker's reference (0 for expansion, ``log(peak_ref)`` for peaks)."""
        b = BIOMARKERS[biomarker]
        if b.part == "tcell":
            return 0.0
        return math.log(float(self.options.peak_ref.get(b.analyte, 100.0)))

    # ------------------------------------------------------------------ data
    def prepare(self, dataset) -> Prepared:
        """Each sub-model's arrays (keys and coordinates prefixed) and the CR part's arrays.

        Raises
        ------
        DataValidationError
            If the CR part has no usable patient (no ``response`` values, or none of the patients
            with a response has trajectory data for every biomarker), or a sub-model cannot use the
            data (see the trajectory families).
        """
        opt = self.options
        arrays: dict[str, np.ndarray] = {}
        coords: dict[str, list[str]] = {}
        use: dict[str, Any] = {"biomarkers": {b: {"label": BIOMARKERS[b].label, "part": BIOMARKERS[b].part,
                                                  "scale": ("log2(fold change)" if BIOMARKERS[b].part == "tcell"
                                                            else f"log2(peak / {math.exp(self.log_ref(b)):g})"),
                                                  "centre_log2": self.centre(b)}
                                              for b in opt.biomarkers}}
        sub_prepared: dict[str, Prepared] = {}
        for part, fam in self.parts.items():
            prefix = PARTS[part][1]
            try:
                sp = fam.prepare(dataset)
            except DataValidationError as e:
                used_by = [b for b in opt.biomarkers if BIOMARKERS[b].part == part]
                raise DataValidationError(e.problems + [Problem(
                    "observations.csv", "analyte", None,
                    f"the joint model's {part} sub-model cannot use these data; it is there for the "
                    f"biomarker(s) {used_by}: remove them from the model option 'biomarkers' to fit "
                    "without them")]) from None
            sub_prepared[part] = sp
            arrays.update({prefix + k: np.asarray(v) for k, v in sp.arrays.items()})
            coords.update({prefix + k: list(v) for k, v in sp.coords.items()})
            use[part] = sp.data_use
        self._merge_trajectory_use(dataset, use)
        if self.parts:
            from bayes_blina.families.trajectory import window_end_h

            end = window_end_h(opt.window_days)
            use["biomarker_window"] = {
                "days": float(opt.window_days), "end_h": end,
                "expansion_at_h": 24.0 * (opt.window_days - 1.0),
                "rule": (f"trajectory rows with time_h < {end:g} h (through day {opt.window_days:g} from the first "
                         "infusion start), the same for every patient whatever happens later"),
                "rows_after": int(sum(r["n_rows"] for r in use["rows_left_out"]
                                      if r["reason"].startswith("after the biomarker window"))),
            }
            if "tcell_expansion" in use["biomarkers"]:
                use["biomarkers"]["tcell_expansion"]["label"] = (
                    f"CD3 fold change at day {opt.window_days:g} over the pre-treatment baseline")
        if opt.response_part:
            self._prepare_cr(dataset, sub_prepared, arrays, coords, use)
        return Prepared(arrays=arrays, coords=coords, data_use=use)

    def _merge_trajectory_use(self, dataset, use: dict[str, Any]) -> None:
        """Top-level counts of the trajectory rows (what ``bayes-blina fit`` prints)."""
        if not self.parts:
            return
        obs = dataset.observations
        modelled: list[str] = []
        use["rows_total"] = int(len(obs)) if obs is not None else 0
        use["rows_used"] = 0
        use["subjects_used"] = 0
        use["events_used"] = 0
        use["censored"] = {}
        use["rows_left_out"] = []
        for part in self.parts:
            u = use[part]
            modelled += list(u.get("analytes", []))
            use["rows_used"] += int(u.get("rows_used", 0))
            use["subjects_used"] = max(use["subjects_used"], int(u.get("subjects_used", 0)))
            use["events_used"] = max(use["events_used"], int(u.get("events_used", 0)))
            use["censored"].update(u.get("censored", {}))
            for r in u.get("rows_left_out", []):
                if r["reason"].startswith("analyte not modelled"):
                    continue
                use["rows_left_out"].append({**r, "part": part})
        if obs is not None and len(obs):
            other = ~obs["analyte"].astype(str).isin(modelled)
            if other.any():
                counts = obs.loc[other, "analyte"].astype(str).value_counts().sort_index()
                use["rows_left_out"].insert(0, {"reason": "analyte not modelled by the joint model",
                                                "n_rows": int(other.sum()),
                                                "by_analyte": {str(k): int(v) for k, v in counts.items()}})

    def _prepare_cr(self, dataset, sub_prepared: dict[str, Prepared], arrays: dict, coords: dict,
                    use: dict) -> None:
        opt = self.options
        subj = dataset.subjects
        cr: dict[str, Any] = {"patients_used": 0, "patients_left_out": []}
        if subj is None or len(subj) == 0 or "response" not in subj.columns:
            raise DataValidationError([Problem(
                "subjects.csv", "response", None,
                "the joint model needs patient-level responses (0 or 1) in subjects.csv; "
                "set the model option response_part = false to fit the trajectories only")])
        resp = pd.to_numeric(subj["response"], errors="coerce")
        sid = subj["subject_id"].astype(str).to_numpy()
        keep = resp.notna().to_numpy().copy()
        for s in sid[~keep]:
            cr["patients_left_out"].append({"subject_id": str(s), "reason": "response not evaluable (empty)"})
        for b in opt.biomarkers:
            bm = BIOMARKERS[b]
            have = set(sub_prepared[bm.part].coords["subject"])
            # the patient needs rows of the biomarker's own analyte
            sp = sub_prepared[bm.part]
            j = sp.coords["analyte"].index(bm.analyte)
            with_rows = {sp.coords["subject"][i] for i in np.unique(sp.arrays["obs_subject"][sp.arrays["obs_analyte"] == j])}
            have &= with_rows
            lacking = keep & ~pd.Index(sid).isin(list(have))  # hashed: np.isin loops on object arrays
            for s in sid[lacking]:
                cr["patients_left_out"].append({
                    "subject_id": str(s),
                    "reason": f"no usable {bm.analyte} observations (see the rows left out): {b} cannot be estimated"})
            keep &= ~lacking
        keep = self._numeric_keep(subj, keep, sid, cr)
        if not keep.any():
            raise DataValidationError([Problem(
                "subjects.csv", "response", None,
                "no patient has both a response (0 or 1) and usable observations of every biomarker "
                f"analyte ({', '.join(BIOMARKERS[b].analyte for b in opt.biomarkers) or 'none'})")])
        y = resp[keep].to_numpy()
        bad = ~np.isin(y, (0.0, 1.0))
        if bad.any():
            rows = np.flatnonzero(keep)[bad]
            raise DataValidationError([Problem("subjects.csv", "response", int(r) + 1, "response must be 0 or 1",
                                               str(subj["response"].iloc[r])) for r in rows])
        pat = subj.loc[keep].reset_index(drop=True)
        ids = pat["subject_id"].astype(str).tolist()
        arrays["cr_y"] = y.astype(np.int64)
        coords["cr_patient"] = ids
        for b in opt.biomarkers:
            bm = BIOMARKERS[b]
            lut = {s: i for i, s in enumerate(sub_prepared[bm.part].coords["subject"])}
            arrays[f"cr_{b}_subject"] = np.array([lut[s] for s in ids], dtype=np.int64)
        cr["factors"] = {}
        cr["factors_dropped"] = {}
        for f in opt.covariates:
            lv = subject_levels(pat, f)
            present = sorted({v for v in lv if v is not None})
            levels = [x for x in factor_vocabulary(f, list(lv.dropna())) if x in present]
            if len(levels) < 2:
                cr["factors_dropped"][f] = (f"one level in the data ({levels[0]})" if levels
                                            else "no patient has a known level")
                continue
            lut = {x: i for i, x in enumerate(levels)}
            idx = np.array([lut.get(v, -1) if v is not None else -1 for v in lv], dtype=np.int64)
            arrays[f"cr_{f}"] = idx
            coords[f] = levels
            cr["factors"][f] = {x: int((idx == i).sum()) for i, x in enumerate(levels)}
            if (idx < 0).any():
                cr.setdefault("patients_missing_factor", {})[f] = int((idx < 0).sum())
        cr["numeric"] = {}
        for c, nc in opt.numeric_covariates.items():
            v = subject_numbers(pat, c)[0]
            arrays[f"cr_num_{c}"] = nc.values(v)
            cr["numeric"][c] = {"ref": nc.ref, "transform": nc.transform, "median": float(np.median(v)),
                                "min": float(v.min()), "max": float(v.max()),
                                "median_model_scale": float(np.median(arrays[f"cr_num_{c}"]))}
        studies = sorted(set(pat["study"].astype(str)))
        if opt.study_effect and len(studies) > 1:
            lut = {s: i for i, s in enumerate(studies)}
            arrays["cr_study"] = np.array([lut[s] for s in pat["study"].astype(str)], dtype=np.int64)
            coords["study"] = studies
        cr["studies"] = studies
        cr["patients_used"] = int(len(ids))
        cr["responders"] = int(y.sum())
        use["cr"] = cr
        # what `bayes-blina fit` prints for response data
        use["patients_used"] = cr["patients_used"]
        use["patients_left_out"] = cr["patients_left_out"]
        if cr.get("patients_missing_factor"):
            use["patients_missing_factor"] = cr["patients_missing_factor"]

    def _numeric_keep(self, subj: pd.DataFrame, keep: np.ndarray, sid: np.ndarray, cr: dict) -> np.ndarray:
        """Check the numeric covariates' columns; patients with an empty value are left out (recorded)."""
        problems = []
        for c, nc in self.options.numeric_covariates.items():
            if c not in subj.columns:
                problems.append(Problem("subjects.csv", c, None,
                                        f"the joint model's numeric covariate {c!r} needs this column (a number per "
                                        "patient); add it, or remove it from the option numeric_covariates"))
                continue
            text = subj[c]
            v, empty = subject_numbers(subj, c)
            bad = ~empty & (~np.isfinite(v) | ((v <= 0) if nc.transform == "log2" else False))
            for r in np.flatnonzero(bad & keep):
                problems.append(Problem("subjects.csv", c, int(r) + 1,
                                        "a number > 0 (it enters as log2(value / ref))" if nc.transform == "log2"
                                        else "a finite number", str(text.iloc[r])))
            lacking = keep & empty
            for s in sid[lacking]:
                cr["patients_left_out"].append({"subject_id": str(s), "reason": f"{c} empty (numeric CR covariate)"})
            keep = keep & ~lacking
        if problems:
            raise DataValidationError(problems)
        return keep

    def numeric_values(self, subjects: pd.DataFrame) -> dict[str, np.ndarray]:
        """The numeric covariates of new patients on the model's scale.

        Raises
        ------
        DataValidationError
            If a column is missing or a value is empty, not a number, or not positive (log2).
        """
        problems, out = [], {}
        for c, nc in self.options.numeric_covariates.items():
            if c not in subjects.columns:
                problems.append(Problem("subjects.csv", c, None, f"the fit has the numeric CR covariate {c!r}: "
                                        "the subjects file needs this column (a number per patient)"))
                continue
            v = subject_numbers(subjects, c)[0]
            bad = ~np.isfinite(v) | ((v <= 0) if nc.transform == "log2" else False)
            for r in np.flatnonzero(bad):
                problems.append(Problem("subjects.csv", c, int(r) + 1,
                                        "a number" + (" > 0" if nc.transform == "log2" else "")
                                        + f" (the fit's CR part uses {c})", str(subjects[c].iloc[r])))
            out[c] = nc.values(v)
        if problems:
            raise DataValidationError(problems)
        return out

    def sub_prepared(self, prepared: Prepared, part: str) -> Prepared:
        """The sub-model's own :class:`Prepared` (keys and coordinates without prefix)."""
        prefix = PARTS[part][1]
        return Prepared(arrays={k[len(prefix):]: v for k, v in prepared.arrays.items() if k.startswith(prefix)},
                        coords={k[len(prefix):]: v for k, v in prepared.coords.items() if k.startswith(prefix)},
                        data_use=prepared.data_use.get(part, {}), swappable=prepared.swappable)

    def cr_factors(self, prepared: Prepared) -> list[str]:
        """CR covariate factors kept (two or more levels among the CR patients)."""
        return [f for f in self.options.covariates if f"cr_{f}" in prepared.arrays]

    # ------------------------------------------------------------------ model
    def build(self, prepared: Prepared):
        """One PyMC model: the trajectory sub-models (prefixed) and the CR part."""
        import pymc as pm

        coords = {k: v for k, v in prepared.coords.items()
                  if len(v) or k.endswith("subject") or k.endswith("analyte")}
        with pm.Model(coords=coords) as model:
            outs = {}
            for part, fam in self.parts.items():
                outs[part] = fam.add_to_model(self.sub_prepared(prepared, part), prefix=PARTS[part][1])
            if self.options.response_part:
                x = {}
                for b in self.options.biomarkers:
                    bm = BIOMARKERS[b]
                    j = prepared.coords[PARTS[bm.part][1] + "analyte"].index(bm.analyte)
                    t = outs[bm.part][bm.key][:, j][prepared.arrays[f"cr_{b}_subject"]]
                    x[b] = (t - self.log_ref(b)) / LN2
                add_cr_part(self, prepared, x)
        return model

    def pointwise_observed(self) -> list[str]:
        """None from PyMC (its pointwise log-likelihood cannot handle the pulse sub-model's initial
        values); :meth:`log_likelihood` computes every part."""
        return []

    def log_likelihood(self, idata, prepared: Prepared) -> dict[str, Any]:
        """Pointwise log-likelihood: ``cr`` (chain, draw, cr_patient) of the CR part, and
        ``tcell_y``, ``cyt_y`` (chain, draw, prefixed obs) of the trajectory parts."""
        import xarray as xr

        from bayes_blina.families.trajectory import unprefixed

        out = {}
        post = as_dataset(idata.posterior)
        if self.options.response_part and "p_cr" in post:
            p = np.clip(np.asarray(post["p_cr"].values, dtype=float), 1e-15, 1.0 - 1e-15)
            y = prepared.arrays["cr_y"].astype(float)
            ll = y * np.log(p) + (1.0 - y) * np.log1p(-p)
            out["cr"] = xr.DataArray(ll, dims=("chain", "draw", "cr_patient"),
                                     coords={"chain": post.chain, "draw": post.draw,
                                             "cr_patient": prepared.coords["cr_patient"]})
        for part, fam in self.parts.items():
            prefix = PARTS[part][1]
            view = SimpleNamespace(posterior=unprefixed(post, prefix))
            ll = fam.log_likelihood(view, self.sub_prepared(prepared, part))
            for k, da in ll.items():
                out[prefix + k] = da.rename({d: prefix + d for d in da.dims if d not in ("chain", "draw")})
        return out

    @override
    def observed_arrays(self, prepared: Prepared) -> dict[str, np.ndarray]:
        out = {}
        for part, fam in self.parts.items():
            prefix = PARTS[part][1]
            out.update({prefix + k: v for k, v in fam.observed_arrays(self.sub_prepared(prepared, part)).items()})
        return out

    @override
    def summary_vars(self) -> list[str]:
        opt = self.options
        v: list[str] = []
        if opt.response_part:
            v += ["p_typical", "alpha"]
            for b in opt.biomarkers:
                v += [f"beta_{b}", f"or_{b}", f"p_or_{b}_gt_1"]
            for f in opt.covariates:
                v += [f"sd_{f}", f"beta_{f}"]
            v += [f"beta_{c}" for c in opt.numeric_covariates]
            if opt.study_effect:
                v += ["sd_study", "study_effect"]
        for part, fam in self.parts.items():
            v += [PARTS[part][1] + s for s in fam.summary_vars()]
        return v


# ------------------------------------------------------------------------------------------------
# the CR part (shared by the joint model and the two-stage comparison)
# ------------------------------------------------------------------------------------------------


def add_cr_part(family: JointModel, prepared: Prepared, x: dict[str, Any]):
    """Add the CR sub-model to the current PyMC model.

    Parameters
    ----------
    family : JointModel
        Supplies the priors, options and centres.
    prepared : Prepared
        Holds ``cr_y``, ``cr_<factor>`` (and ``cr_study``) and the coordinates ``cr_patient`` and
        one per factor.
    x : dict of str to tensor or array
        Per biomarker, its value on the log2 scale for every CR patient (a tensor in the joint
        model, a constant array in the two-stage plug-in).

    Returns
    -------
    TensorVariable
        The linear predictor ``eta`` (cr_patient).
    """
    import pymc as pm
    import pytensor.tensor as pt

    P, A, opt = family.priors, prepared.arrays, family.options
    p_typical = P["p_typical"].create("p_typical")
    eta = pt.zeros(len(A["cr_y"])) + pm.math.logit(p_typical)
    shift = 0.0
    for b in opt.biomarkers:
        beta = P[f"beta_{b}"].create(f"beta_{b}")
        c = family.centre(b)
        eta = eta + beta * (x[b] - c)
        shift = shift - beta * c
        pm.Deterministic(f"or_{b}", pt.exp(beta))
        pm.Deterministic(f"p_or_{b}_gt_1", pt.gt(beta, 0.0).astype("float64"))
    for c in opt.numeric_covariates:
        beta = P[f"beta_{c}"].create(f"beta_{c}")
        xc = np.asarray(A[f"cr_num_{c}"], dtype=float)
        m = float(xc.mean())  # centred at the cohort mean (sampling geometry); alpha is at ref
        eta = eta + beta * (xc - m)
        shift = shift - beta * m
    pm.Deterministic("alpha", pm.math.logit(p_typical) + shift)
    for f in family.options.covariates:
        if f"cr_{f}" not in A:  # dropped: one level among the CR patients (see data_use)
            continue
        sd = P[f"sd_{f}"].create(f"sd_{f}")
        z = pm.ZeroSumNormal(f"z_{f}", sigma=1.0, dims=f)
        beta_f = pm.Deterministic(f"beta_{f}", sd * z, dims=f)
        eta = eta + pt.concatenate([beta_f, pt.zeros(1)])[A[f"cr_{f}"]]  # index -1 -> mean (0)
    if "cr_study" in A:
        sd_s = P["sd_study"].create("sd_study")
        z_s = pm.Normal("z_study", 0.0, 1.0, dims="study")
        u = pm.Deterministic("study_effect", sd_s * z_s, dims="study")
        eta = eta + u[A["cr_study"]]
    pm.Deterministic("p_cr", pm.math.invlogit(eta), dims="cr_patient")
    cr_y = np.asarray(A["cr_y"], dtype=np.int64)
    if prepared.swappable:  # SBC swaps the outcomes in
        cr_y = pm.Data("cr_y", cr_y)
    pm.Bernoulli("cr", logit_p=eta, observed=cr_y, dims="cr_patient")
    return eta


def cr_baseline_eta(post, covariate_levels: dict[str, list], *, rng: np.random.Generator | None = None,
                    numeric: dict[str, np.ndarray] | None = None, n: int | None = None,
                    ) -> tuple[np.ndarray, list[list[str]]]:
    """``alpha`` plus the covariate effects of new patients (numpy), per posterior draw.

    Parameters
    ----------
    post : xarray.Dataset
        Posterior draws with a leading ``sample`` axis (``alpha``, ``beta_<factor>`` (sample,
        level), ``sd_<factor>``).
    covariate_levels : dict of factor -> list
        Level of each patient (``None``: unknown), same length for every factor; factors without
        ``beta_<factor>`` in the fit (dropped at fitting) are ignored.
    rng : numpy.random.Generator, optional
        For the effects of levels that are not in the fit (drawn from the factor's spread, one
        draw per level shared by the patients with it).
    numeric : dict of column -> numpy.ndarray, optional
        Numeric covariates on the model's scale (:meth:`JointModel.numeric_values`), per patient.
    n : int, optional
        Number of patients (needed when there are neither factors nor numeric covariates).

    Returns
    -------
    eta : numpy.ndarray, shape (sample, patient)
    notes : list of list of str
        Per patient, levels that were unknown (effect at its mean, 0) or new.
    """
    rng = rng or np.random.default_rng(0)
    alpha = np.asarray(post["alpha"].values, dtype=float)
    numeric = numeric or {}
    if n is None:
        lengths = [len(v) for v in covariate_levels.values()] + [len(v) for v in numeric.values()]
        n = lengths[0] if lengths else 0
    eta = np.repeat(alpha[:, None], n, axis=1)
    for c, xc in numeric.items():
        eta += np.asarray(post[f"beta_{c}"].values, dtype=float)[:, None] * np.asarray(xc, dtype=float)[None, :]
    notes: list[list[str]] = [[] for _ in range(n)]
    for f, levels in covariate_levels.items():
        if f"beta_{f}" not in post:
            continue
        da = post[f"beta_{f}"].transpose("sample", f)
        labels = [str(v) for v in da.coords[f].values]
        vals = np.asarray(da.values, dtype=float)
        sd = np.asarray(post[f"sd_{f}"].values, dtype=float)
        new: dict[str, np.ndarray] = {}
        for i, v in enumerate(levels):
            if v is None:
                notes[i].append(f"{f} unknown: effect at its mean")
            elif v in labels:
                eta[:, i] += vals[:, labels.index(v)]
            else:
                if v not in new:
                    new[v] = rng.standard_normal(len(alpha)) * sd
                eta[:, i] += new[v]
                notes[i].append(f"{f}={v} not in the fitted data: drawn from the level spread")
    return eta, notes


def derived_summary(idata, *, prob: float = 0.9) -> pd.DataFrame:
    """Odds ratios of CR per doubling of each biomarker, their interval and P(OR > 1).

    Parameters
    ----------
    idata : xarray.DataTree
        A joint (or two-stage) fit with ``beta_<biomarker>`` in the posterior.
    prob : float
        Central interval probability.

    Returns
    -------
    DataFrame
        ``quantity, biomarker, median, mean, lower, upper, p_gt_1`` with ``quantity`` =
        ``or_<biomarker>`` (one row per biomarker in the fit).
    """
    post = as_dataset(idata.posterior)
    rows = []
    q = (1.0 - prob) / 2.0
    for b in BIOMARKERS:
        if f"beta_{b}" not in post:
            continue
        beta = np.asarray(post[f"beta_{b}"].values, dtype=float).ravel()
        orr = np.exp(beta)
        rows.append({"quantity": f"or_{b}", "biomarker": BIOMARKERS[b].label, "median": float(np.median(orr)),
                     "mean": float(orr.mean()), "lower": float(np.quantile(orr, q)),
                     "upper": float(np.quantile(orr, 1 - q)), "p_gt_1": float((beta > 0).mean())})
    df = pd.DataFrame(rows, columns=["quantity", "biomarker", "median", "mean", "lower", "upper", "p_gt_1"])
    df.attrs["prob"] = prob
    return df
