"""Posterior (and prior) predictive checks."""
from bayes_blina.checks.response import response_ppc

__all__ = ["response_ppc"]
