"""Every module's docstring examples run and give what they say (issue 17: doctests in the test
command). Modules whose examples are part of their documentation must keep having some."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import bayes_blina

MODULES = sorted(m.name for m in pkgutil.walk_packages(bayes_blina.__path__, "bayes_blina."))
#: Modules that document themselves by example: an edit that drops every example fails.
WITH_EXAMPLES = {"bayes_blina.plan", "bayes_blina.plan.mixture", "bayes_blina.plan.ess", "bayes_blina.plan.decision",
                 "bayes_blina.plan.simon", "bayes_blina.errors", "bayes_blina.checks.slowest",
                 "bayes_blina.data.units"}


def test_the_list_of_modules_is_complete():
    assert len(MODULES) > 80 and WITH_EXAMPLES <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    res = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS, report=True)
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples of {name} failed"
    if name in WITH_EXAMPLES:
        assert res.attempted > 0
