"""The package's layers, as ``docs/architecture.md`` draws them, checked on the source (issue 17).

Every import statement counts, at module level or inside a function: an import deferred into a
function is still a dependency.
"""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayes_blina"


def _imports(path: Path) -> set[str]:
    """Every ``bayes_blina`` module a file imports (``from X import Y`` counts as X and X.Y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m == "bayes_blina" or m.startswith("bayes_blina.")}


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


#: (importing layer, imported prefixes it must not reach, why)
RULES = [
    ("checks", ("bayes_blina.report",), "checks compute tables and datasets; report renders them"),
    ("joint", ("bayes_blina.report",), "the joint model's tools compute; report renders (figures included)"),
    ("plan", ("bayes_blina.report",), "planning computes; report renders"),
    ("safety", ("bayes_blina.report",), "escalation computes; report renders"),
    ("simulate", ("bayes_blina.report",), "the simulator computes; report renders"),
    ("report", ("bayes_blina.inference", "bayes_blina.approx"), "nothing in report/ fits a model"),
    ("data", ("bayes_blina.families", "bayes_blina.inference", "bayes_blina.store",
              "bayes_blina.checks", "bayes_blina.report"), "data never imports models"),
    ("families", ("bayes_blina.inference", "bayes_blina.store", "bayes_blina.report",
                  "bayes_blina.cli"), "families never import inference, the store or outputs"),
]


@pytest.mark.parametrize("layer,forbidden,why", RULES, ids=[r[0] for r in RULES])
def test_layers_import_only_downwards(layer, forbidden, why):
    bad = [f"{p.relative_to(PACKAGE)} imports {m}" for p in _modules(layer)
           for m in sorted(_imports(p)) if m.startswith(forbidden)]
    assert not bad, f"{why}:\n" + "\n".join(bad)


def test_the_rules_see_deferred_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from bayes_blina.report.figures import _plt\n    return _plt\n")
    assert "bayes_blina.report.figures" in _imports(probe)


def test_no_two_modules_share_a_name():
    names = Counter(p.name for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")
    assert not [n for n, k in names.items() if k > 1]


#: Every module outside families/ (issue 17: the family declares what applies to it, so no code
#: outside families/ tests a family's name). "survival" is also the name of an ``outcome`` that
#: the checks dispatch on, so it is left out of the names searched; a comparison of the family's
#: name itself (``family_name``, ``spec.family``) with any string is caught below.
NO_FAMILY_BRANCHES = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                            if "families" not in p.relative_to(PACKAGE).parts)
_FAMILY_NAMES = ("response", "subgroups", "pulse", "kinetics", "depletion", "joint", "dose-toxicity")


def _name_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing ``<x>.family_name`` or ``<x>.spec.family`` with a literal."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            named = any(isinstance(x, ast.Attribute) and (x.attr == "family_name" or (
                x.attr == "family" and isinstance(x.value, ast.Attribute) and x.value.attr == "spec")) for x in sides)
            if named and any(isinstance(x, (ast.Constant, ast.Tuple, ast.List, ast.Set)) for x in sides):
                out.append(node.lineno)
    return out


def test_no_module_outside_families_compares_a_family_name_with_a_string():
    probe = "if stored.family_name == 'pulse':\n    pass\nif fit.spec.family in ('joint',):\n    pass\n"
    assert _name_comparisons(ast.parse(probe)) == [1, 3]  # the search finds what it looks for
    bad = [f"{m}:{line}" for m in NO_FAMILY_BRANCHES for line in _name_comparisons(ast.parse((PACKAGE / m).read_text()))]
    assert len(NO_FAMILY_BRANCHES) >= 70 and not bad, bad


@pytest.mark.parametrize("module", NO_FAMILY_BRANCHES)
def test_no_family_name_branches(module):
    bad = []
    for node in ast.walk(ast.parse((PACKAGE / module).read_text())):
        if isinstance(node, ast.Compare):
            # `"response" in table` looks up a column or key, not a family: left operands of `in` pass
            lookup = all(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops)
            consts = [c for c in ([] if lookup else [node.left]) + node.comparators if isinstance(c, ast.Constant)]
            consts += [e for c in node.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set))
                       for e in c.elts if isinstance(e, ast.Constant)]
            if any(c.value in _FAMILY_NAMES for c in consts):
                bad.append(f"line {node.lineno}")
    assert not bad, f"{module} compares with a family name at " + ", ".join(bad)


def test_every_declared_report_part_has_a_renderer():
    from bayes_blina.families import FAMILIES
    from bayes_blina.report.html import CHECKS, FIGURES

    for name, cls in FAMILIES.items():
        assert set(cls.report_checks) <= set(CHECKS), name
        assert set(cls.report_figures) <= set(FIGURES), name


def test_calibration_swaps_pm_data_and_rewrites_no_graph_constant():
    """Simulation-based calibration puts each simulation's data in through the families' ``pm.Data``
    (issue 17): no sentinel arrays to find in a compiled graph, no rewiring of its constants."""
    text = (PACKAGE / "checks" / "sbc.py").read_text()
    assert "sentinel" not in text.lower() and "node.inputs[" not in text
    for name in ("pulse.py", "kinetics.py", "depletion.py"):
        assert "self.add_likelihood(" in (PACKAGE / "families" / name).read_text(), name


def test_the_simulator_draws_trajectories_with_the_families_own_mean_formulas():
    """One mean formula per trajectory family (issue 17): the virtual-cohort simulator evaluates the
    pulse, kinetics and depletion curves with ``pulse_log_mean`` / ``kinetics_log_mean`` /
    ``depletion_log_mean``, not its own copy."""
    imports = _imports(PACKAGE / "simulate" / "cohort.py")
    assert {"bayes_blina.families.pulse.pulse_log_mean", "bayes_blina.families.kinetics.kinetics_log_mean",
            "bayes_blina.families.depletion.depletion_log_mean"} <= imports
    tree = ast.parse((PACKAGE / "simulate" / "cohort.py").read_text())
    from_curves = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "bayes_blina.curves"
                   for a in n.names}
    assert not from_curves & {"pulse", "saturating", "depletion"}
