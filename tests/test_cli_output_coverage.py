"""Every CLI option that writes a file has a named happy-path test (issue 21).

The command tree is walked; each (command, option) pair that names an output (``--out``,
``--figure``, ``--table``) must be listed below with where its happy path runs: ``"demo"`` (the
Makefile's demo recipe, which tests/test_demo.py runs and whose outputs it checks), or a test
function that invokes the command with that option and checks what it wrote. A new output option
fails this test until its happy path is tested; a listed test that disappears or stops passing the
option fails it too.
"""
from __future__ import annotations

import ast
import inspect
from importlib import import_module

import pytest

from conftest import cli_commands
from test_demo import demo_recipe

OUTPUT_OPTIONS = ("--out", "--figure", "--table")

#: (command path, option) -> where its happy path is tested.
HAPPY_PATHS: dict[tuple[str, str], str] = {
    ("fit", "--out"): "demo",
    ("summary", "--out"): "demo",
    ("ppc", "--out"): "demo",
    ("predict", "--out"): "demo",
    ("predict", "--figure"): "demo",
    ("simulate", "--out"): "demo",
    ("table cr-subgroups", "--out"): "demo",
    ("table cr-subgroups", "--figure"): "demo",
    ("report", "--out"): "demo",
    ("vpc", "--out"): "demo",
    ("vpc", "--figure"): "demo",
    ("loo-pit", "--out"): "demo",
    ("loo-pit", "--figure"): "demo",
    ("figure peaks", "--out"): "demo",
    ("figure peaks", "--table"): "demo",
    ("figure responder-bands", "--out"): "demo",
    ("figure survival", "--out"): "demo",
    ("figure survival", "--table"): "demo",
    ("figure odds-ratios", "--out"): "demo",
    ("figure odds-ratios", "--table"): "demo",
    ("plan regimen", "--out"): "demo",
    ("sbc", "--out"): "test_sbc::test_sbc_cli_exit_status",
    ("prior-check", "--out"): "test_prior_check::test_prior_check_command",
    ("prior-check", "--figure"): "test_prior_check::test_prior_check_command",
    ("sensitivity", "--out"): "test_sensitivity::test_cli_sensitivity_writes_the_table",
    ("escalate", "--out"): "test_dose_toxicity::test_escalate_command_writes_the_table_and_refuses_other_fits",
    ("import adam", "--out"): "test_adam::test_cli_import_and_export",
    ("export adam", "--out"): "test_adam::test_cli_import_and_export",
    ("import nonmem", "--out"): "test_nonmem::test_cli_export_and_import",
    ("export nonmem", "--out"): "test_nonmem::test_cli_export_and_import",
    ("plan map-prior", "--out"): "test_plan_cli::test_map_prior_command_end_to_end",
    ("plan robustify", "--out"): "test_plan_cli::test_robustify_command",
    ("plan oc", "--out"): "test_plan_cli::test_oc_command_table_and_csv",
    ("plan dose-escalation", "--out"): "test_designs::test_plan_dose_escalation_command_writes_the_operating_characteristics",
    ("plan biomarker-power", "--out"): "test_cli_outputs::test_plan_biomarker_power_writes_the_table_and_the_studies_beside_it",
}


def output_options() -> set[tuple[str, str]]:
    return {(name, o) for name, cmd in cli_commands() for p in cmd.params for o in p.opts if o in OUTPUT_OPTIONS}


def test_every_output_option_has_a_named_happy_path():
    options = output_options()
    assert len(options) >= 30
    assert options - HAPPY_PATHS.keys() == set(), "output options without a happy-path test"
    assert HAPPY_PATHS.keys() - options == set(), "listed options the CLI no longer has"


@pytest.mark.parametrize("command, option", sorted(k for k, v in HAPPY_PATHS.items() if v == "demo"))
def test_demo_runs_the_option(command, option):
    lines = [line for line in demo_recipe() if line.startswith(f"$(BB) {command} ")]
    assert any(f" {option} " in f"{line} " for line in lines), (command, option)


def _string_constants(func) -> set[str]:
    tree = ast.parse(inspect.getsource(func))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@pytest.mark.parametrize("command, option", sorted(k for k, v in HAPPY_PATHS.items() if v != "demo"))
def test_named_test_invokes_the_command_with_the_option(command, option):
    module, name = HAPPY_PATHS[(command, option)].split("::")
    func = getattr(import_module(module), name)
    words = _string_constants(func)
    last = command.split()[-1]
    # The plan tests call a helper that prefixes "plan"; the import/export tests invoke their group.
    assert last in words, f"{module}::{name} never names {last!r}"
    assert option in words, f"{module}::{name} never passes {option}"
