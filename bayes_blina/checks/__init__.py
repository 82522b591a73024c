"""Posterior (and prior) predictive checks."""
from bayes_blina.checks.loo import loo_table
from bayes_blina.checks.response_ppc import response_ppc

__all__ = ["loo_table", "response_ppc"]
