"""Virtual cohorts with known truth."""
from bayes_blina.simulate.cohort import simulate_cohort, true_curve, write_cohort
from bayes_blina.simulate.presets import PRESETS, CohortConfig, get_preset
from bayes_blina.simulate.cr_data import ResponseTruth, simulate_response_cohort

__all__ = [
    "CohortConfig",
    "PRESETS",
    "ResponseTruth",
    "get_preset",
    "simulate_cohort",
    "simulate_response_cohort",
    "true_curve",
    "write_cohort",
]
