"""Virtual cohorts with known truth."""
from bayes_blina.simulate.response import ResponseTruth, simulate_response_cohort

__all__ = ["ResponseTruth", "simulate_response_cohort"]
