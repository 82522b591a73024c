"""Trajectory shapes shared by the simulator and the model families.

Every function takes a math namespace ``xp`` (``numpy`` for simulation, ``pytensor.tensor`` inside
PyMC models) so that data are simulated from exactly the curves the models fit. Times are hours.

Shapes
------
``pulse(tau, t_peak, k)``
    Transient response to one event (infusion start, restart or dose step) ``tau`` hours ago::

        g(tau) = (tau / t_peak)**k * exp(k * (1 - tau / t_peak))   for tau > 0, else 0

    It rises from 0, peaks at exactly 1 when ``tau == t_peak`` and decays; ``k`` sets the width
    (k = 2 with t_peak = 24 h is back to 0.03% of the peak after a week).
``saturating(t, tau_e, t_ref)``
    Growth from 0 at ``t = 0`` to exactly 1 at ``t = t_ref`` (end of cycle 1, 672 h), held at 1
    afterwards: ``(1 - exp(-t / tau_e)) / (1 - exp(-t_ref / tau_e))``, clipped to [0, 1].
``depletion(t, k_dep, floor)``
    Fraction remaining after a first-order decline towards ``floor``:
    ``floor + (1 - floor) * exp(-k_dep * t)`` for ``t > 0``, 1 before.

Families built on them
----------------------
* **pulse** (cytokines, CRP, D-dimer, liver enzymes, LDH): ``C(t) = B * (1 + sum_e A_e * g(t - t_e))``
  with patient baseline ``B`` and event amplitude
  ``log A_e = a_i + gamma * log(dose_e / 15) + delta * [not the first exposure] + kappa * (cycle_e - 1)``.
* **kinetics** (T cells, neutrophils, platelets): ``N(t) = B * (1 - D * sum_e g(t - t_e)) * exp(E * s(t))``
  (redistribution dip of depth ``D`` after each event, then expansion of ``E`` log-units by day 29;
  ``exp(E)`` is the patient's fold change at day 29).
* **depletion** (CD19 B cells): ``N(t) = B * depletion(t, k, floor)``.
"""
from __future__ import annotations

import numpy as np

#: Hours from the first infusion start to the end of cycle 1 (day 29 = 28 days later).
DAY29_H = 672.0


def pulse(tau, t_peak, k, xp=np):
    """Unit-peak pulse shape (see module docstring); 0 for ``tau <= 0``."""
    safe = xp.maximum(tau, 1e-9) / t_peak
    val = xp.exp(k * (xp.log(safe) + 1.0 - safe))
    return xp.where(tau > 0, val, 0.0)


def saturating(t, tau_e, t_ref=DAY29_H, xp=np):
    """0 at t <= 0, exactly 1 at ``t_ref`` and after (see module docstring)."""
    tt = xp.clip(t, 0.0, t_ref)
    return (1.0 - xp.exp(-tt / tau_e)) / (1.0 - xp.exp(-t_ref / tau_e))


def depletion(t, k_dep, floor, xp=np):
    """Fraction remaining: 1 before 0, then first-order decline to ``floor``."""
    tt = xp.maximum(t, 0.0)
    return floor + (1.0 - floor) * xp.exp(-k_dep * tt)
