"""Time-to-event outcomes of a virtual cohort: MRD response, relapse-free and overall survival.

Off by default (:attr:`SurvivalParams.enabled`); on in the preset ``pediatric-survival``, calibrated
to the pediatric phase I/II trial (von Stackelberg et al. 2016, J Clin Oncol; Results and Fig 3):
among the 27 responders at 5-15 µg/m²/day, 14 of 26 assessed had a complete MRD response, median
RFS 4.4 months (7.3 with a complete MRD response, 1.9 without), 42% relapse-free at 6 months;
median OS of all 70 patients 7.5 months; a 2-year follow-up. Times are from the first infusion
start, as in the paper ("time from enrollment to first relapse or death").

The generating process (what ``truth["survival"]`` records):

* a responder's complete MRD response: ``logit P = mrd_alpha + mrd_beta_tcell * log2(E / tcell_ref)``
  (``E``: the patient's CD3 expansion), so T-cell expansion acts on relapse through MRD as well;
* relapse: no relapse before the response assessment (``assessment_days``), then a Weibull
  proportional-hazards time with median ``rfs_median_months`` after the assessment for a patient
  without a complete MRD response at the reference expansion, hazard ratio ``rfs_hr_mrd`` for a
  complete MRD response and ``rfs_hr_tcell`` per doubling of ``E / tcell_ref``;
* death: after a relapse, an exponential time with median ``post_relapse_median_months``; in CR,
  hazard with median ``death_in_cr_median_months`` (deaths after alloHSCT); a non-responder's death
  a Weibull time from the first infusion with median ``nonresponder_os_median_months``; a patient
  who died before the response assessment (``offstudy_reason`` death) at that time;
* censoring: the end of follow-up (``followup_months``) or an earlier withdrawal (exponential,
  ``withdrawal_per_month``); a patient who withdrew before the assessment is censored then;
* alloHSCT in remission (13 of 27 responders in the paper): a responder still in CR, alive and
  followed at a time uniform on ``hsct_window_months`` receives one with probability ``p_hsct``
  (``hsct_days``); from then on the relapse hazard is multiplied by ``rfs_hr_hsct``.

RFS (responders only) ends with the relapse or death, whichever is first; OS with death. This is
not the survival family's own model (no relapse before the assessment, a mixture over MRD
response, death after relapse), so fits to these cohorts test the model on data it did not
generate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bayes_blina.data.units import DAYS_PER_MONTH

#: Spawn key of the random stream of the survival outcomes (beside early off-study's 1001).
_SURVIVAL_STREAM = 1002


@dataclass(frozen=True)
class SurvivalParams:
    """Parameters of the time-to-event outcomes (see the module docstring)."""

    enabled: bool = False
    assessment_days: float = 29.0
    mrd_alpha: float = -0.1
    mrd_beta_tcell: float = 0.5
    tcell_ref: float = 2.0
    rfs_median_months: float = 0.9
    rfs_shape: float = 0.9
    rfs_hr_mrd: float = 0.25
    rfs_hr_tcell: float = 0.8
    post_relapse_median_months: float = 4.0
    death_in_cr_median_months: float = 120.0
    nonresponder_os_median_months: float = 5.0
    nonresponder_os_shape: float = 0.6
    followup_months: float = 24.0
    withdrawal_per_month: float = 0.003
    p_hsct: float = 0.8
    hsct_window_months: tuple[float, float] = (2.0, 4.0)
    rfs_hr_hsct: float = 0.5

    def problems(self) -> list[str]:
        """What is out of range (for :class:`~bayes_blina.simulate.presets.CohortConfig`)."""
        out = []
        positive = ("assessment_days", "tcell_ref", "rfs_median_months", "rfs_shape", "rfs_hr_mrd", "rfs_hr_tcell",
                    "post_relapse_median_months", "death_in_cr_median_months", "nonresponder_os_median_months",
                    "nonresponder_os_shape", "followup_months")
        for name in positive:
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                out.append(f"survival.{name} must be a positive number (found {v!r})")
        if not (math.isfinite(self.withdrawal_per_month) and self.withdrawal_per_month >= 0):
            out.append(f"survival.withdrawal_per_month must be >= 0 (found {self.withdrawal_per_month!r})")
        if not 0.0 <= float(self.p_hsct) <= 1.0:
            out.append(f"survival.p_hsct must be in [0, 1] (found {self.p_hsct!r})")
        lo, hi = (float(x) for x in self.hsct_window_months)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi):
            out.append(f"survival.hsct_window_months must be (low, high) months with 0 < low <= high "
                       f"(found {self.hsct_window_months!r})")
        if not (math.isfinite(self.rfs_hr_hsct) and self.rfs_hr_hsct > 0):
            out.append(f"survival.rfs_hr_hsct must be a positive number (found {self.rfs_hr_hsct!r})")
        return out


#: The pediatric calibration (module docstring; checked against the published medians in
#: ``tests/test_survival_simulator.py``).
PEDIATRIC_SURVIVAL = SurvivalParams(enabled=True)


def _weibull(rng, n: int, median: np.ndarray, shape: float) -> np.ndarray:
    """Weibull times with the given medians: ``median (-log U / log 2)^(1 / shape)``."""
    return np.asarray(median) * (-np.log(rng.random(n)) / math.log(2.0)) ** (1.0 / shape)


def simulate_survival(par: SurvivalParams, response: np.ndarray, expansion: np.ndarray, off_h: np.ndarray,
                      off_reason: np.ndarray, seed: int) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """The ``subjects`` columns ``mrd_response``, ``rfs_days``/``rfs_event``, ``os_days``/``os_event``, ``hsct_days``
    and the per-patient truth (latent relapse, death and censoring times in days).

    ``response`` is 1/0 for assessed patients; a patient off study before the assessment (finite
    ``off_h``) is not a responder. Days are rounded to 0.1.
    """
    n = len(response)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(_SURVIVAL_STREAM,)))
    early = np.isfinite(off_h)
    resp = (np.asarray(response) == 1) & ~early
    x_t = np.log2(np.asarray(expansion, dtype=float) / par.tcell_ref)
    p_mrd = 1.0 / (1.0 + np.exp(-(par.mrd_alpha + par.mrd_beta_tcell * x_t)))
    mrd = resp & (rng.random(n) < p_mrd)
    # relapse after the assessment (months), proportional hazards on the Weibull
    lin = np.log(par.rfs_hr_mrd) * mrd + np.log(par.rfs_hr_tcell) * x_t
    rel_med = par.rfs_median_months * np.exp(-lin / par.rfs_shape)
    a = par.assessment_days / DAYS_PER_MONTH
    e_rel = -np.log(rng.random(n))  # each patient's relapse threshold on the cumulative hazard
    relapse = a + rel_med * (e_rel / math.log(2.0)) ** (1.0 / par.rfs_shape)
    post_relapse = rng.exponential(par.post_relapse_median_months / math.log(2.0), n)
    death_in_cr = a + rng.exponential(par.death_in_cr_median_months / math.log(2.0), n)
    death_nr = _weibull(rng, n, np.full(n, par.nonresponder_os_median_months), par.nonresponder_os_shape)
    withdraw = (rng.exponential(1.0 / par.withdrawal_per_month, n) if par.withdrawal_per_month > 0
                else np.full(n, np.inf))
    censor = np.minimum(par.followup_months, withdraw)
    # alloHSCT in remission: a share of the responders at a time uniform on the window, if still in
    # CR, alive and followed then; from then on the relapse hazard is multiplied by rfs_hr_hsct
    th = rng.uniform(*(float(x) for x in par.hsct_window_months), n)
    gets = resp & (rng.random(n) < par.p_hsct) & (th < relapse) & (th < death_in_cr) & (th < censor)
    H_th = math.log(2.0) * (np.clip(th - a, 0.0, None) / rel_med) ** par.rfs_shape
    rest = np.maximum(e_rel - H_th, 0.0)  # > 0 where gets (the relapse would come after the transplant)
    relapse = np.where(gets, a + rel_med * ((H_th + rest / par.rfs_hr_hsct) / math.log(2.0))
                       ** (1.0 / par.rfs_shape), relapse)
    off_m = off_h / 24.0 / DAYS_PER_MONTH
    died_early = early & (np.asarray(off_reason, dtype=object) == "death")
    censor = np.where(early & ~died_early, off_m, censor)
    death = np.where(resp, np.where(relapse < death_in_cr, relapse + post_relapse, death_in_cr), death_nr)
    death = np.where(died_early, off_m, death)
    rfs_end = np.minimum(relapse, death_in_cr)  # relapse or death in CR
    os_t = np.minimum(death, censor)
    rfs_t = np.minimum(rfs_end, censor)

    def days(m):
        return np.round(m * DAYS_PER_MONTH, 1)

    cols = {
        "mrd_response": np.where(resp, mrd.astype(float), np.nan),
        "rfs_days": np.where(resp, days(rfs_t), np.nan),
        "rfs_event": np.where(resp, (rfs_end <= censor).astype(float), np.nan),
        "os_days": days(os_t),
        "os_event": (death <= censor).astype(float),
        "hsct_days": np.where(gets, days(th), np.nan),
    }
    truth = {"p_mrd": p_mrd.tolist(), "relapse_days": days(np.where(resp, relapse, np.nan)).tolist(),
             "death_days": days(death).tolist(), "censor_days": days(censor).tolist()}
    return cols, truth
