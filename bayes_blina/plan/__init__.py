"""Prior-informed planning of new studies, in the spirit of RBesT.

* :mod:`~bayes_blina.plan.mixture` — :class:`BetaMixture` (densities, quantiles, conjugate
  posterior, beta-binomial predictive, robustification, JSON) and EM fitting of mixtures to samples.
* :mod:`~bayes_blina.plan.map_prior` — the meta-analytic-predictive (MAP) prior from historical
  studies (PyMC, convergence gate, mixture approximation).
* :mod:`~bayes_blina.plan.ess` — prior effective sample size (ELIR, moment, Morita).
* :mod:`~bayes_blina.plan.decision` — decision rules, exact operating characteristics of one- and
  two-arm designs, probability of success, sample size, Monte Carlo check.
* :mod:`~bayes_blina.plan.simon` — Simon's optimal and minimax two-stage designs.

Planning functions return functions, as RBesT's ``decision1S``/``oc1S`` do: a rule is a function
of the posterior, an OC is a function of the true rate.

Examples
--------
>>> from bayes_blina.plan import BetaMixture, decision_1s, oc_1s, ess
>>> prior = BetaMixture.beta(4, 6).robustify(0.2, mean=0.3)
>>> rule = decision_1s(0.9, 0.3)           # success if P(CR rate > 0.3 | data) > 0.9
>>> oc = oc_1s(prior, 40, rule)
>>> oc.critical_value
16
"""
from __future__ import annotations

from bayes_blina.plan.decision import (
    CombinedDecision,
    Decision,
    Decision1S,
    Decision2S,
    OC1S,
    OC2S,
    SampleSize,
    all_of,
    any_of,
    critical_value_1s,
    decision_1s,
    decision_2s,
    find_delta_2s,
    oc_1s,
    oc_2s,
    pos_1s,
    pos_2s,
    prob_diff,
    sample_size_1s,
    simulate_oc_1s,
    success_counts_1s,
    success_counts_2s,
)
from bayes_blina.plan.ess import ess, ess_all, local_information
from bayes_blina.plan.map_prior import MAPResult, load_as_example, map_prior, read_historical, validate_historical
from bayes_blina.plan.mixture import (
    AutoMixture,
    BetaBinomialMixture,
    BetaMixture,
    MixtureFit,
    PlanError,
    approximation_error,
    auto_mixture,
    fit_mixture_em,
)
from bayes_blina.plan.simon import SimonDesign, simon_design, simon_oc

__all__ = [
    "AutoMixture", "BetaBinomialMixture", "BetaMixture", "CombinedDecision", "Decision", "Decision1S", "Decision2S",
    "MAPResult", "MixtureFit", "OC1S", "OC2S", "PlanError", "SampleSize", "SimonDesign", "all_of", "any_of",
    "approximation_error", "auto_mixture", "critical_value_1s", "decision_1s", "decision_2s", "ess", "ess_all",
    "find_delta_2s", "fit_mixture_em", "load_as_example", "local_information", "map_prior", "oc_1s", "oc_2s",
    "pos_1s", "pos_2s", "prob_diff", "read_historical", "sample_size_1s", "simon_design", "simon_oc",
    "simulate_oc_1s", "success_counts_1s", "success_counts_2s", "validate_historical",
]
