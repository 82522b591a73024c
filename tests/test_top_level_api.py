"""The small top-level API (issue 17): ``import bayes_blina as bb; bb.read_dataset(...)``."""
from __future__ import annotations

import doctest
import subprocess
import sys

import pytest

import bayes_blina as bb


def test_every_top_level_name_is_the_function_of_its_module():
    from importlib import import_module

    for name, module in bb._API.items():
        assert getattr(bb, name) is getattr(import_module(module), name)
    assert set(bb.__all__) == {"__version__", *bb._API}
    assert set(bb._API) <= set(dir(bb))


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(AttributeError, match="read_dataset"):
        bb.read_datasets  # noqa: B018


def test_importing_the_package_does_not_load_pymc():
    code = "import sys, bayes_blina; print('pymc' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_package_docstring_example_runs():
    result = doctest.testmod(bb, verbose=False)
    assert result.attempted >= 3 and result.failed == 0
