"""The examples in the planning modules' docstrings run and give what they say."""
from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["bayes_blina.plan", "bayes_blina.plan.mixture", "bayes_blina.plan.ess",
                                  "bayes_blina.plan.decision", "bayes_blina.plan.simon"])
def test_docstring_examples(name):
    module = importlib.import_module(name)
    res = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0
