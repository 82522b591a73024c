"""The shipped specs state only what differs from their family's declared defaults (issue 17), and
``bayes-blina specs NAME`` shows everything a fit of one uses."""
from __future__ import annotations

import copy
import json
import tomllib

import pytest
from click.testing import CliRunner

from bayes_blina.cli import main
from bayes_blina.errors import SpecError
from bayes_blina.spec import _toml_value, available_specs, load_spec, parse_spec

SHIPPED = sorted(available_specs())


def _resolution(data: dict) -> str:
    spec = parse_spec(data)
    r = spec.resolved()
    return json.dumps({k: r[k] for k in ("options", "priors", "sampler", "gate")}, sort_keys=True, default=str)


def test_the_specs_are_found():
    assert {"response", "tcell", "cytokine-core", "joint", "survival", "dose-toxicity"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_spec_states_no_declared_default(name):
    data = tomllib.loads(available_specs()[name].read_text(encoding="utf-8"))
    base = _resolution(data)
    redundant = []
    for section in ("options", "priors", "sampler", "gate"):
        for key in data.get(section, {}):
            trimmed = copy.deepcopy(data)
            del trimmed[section][key]
            try:
                same = _resolution(trimmed) == base
            except SpecError:  # e.g. an analyte prior that needs the stated analytes
                same = False
            if same:
                redundant.append(f"{section}.{key}")
    assert not redundant, f"{name} states defaults of its family (comment them out): {redundant}"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_resolved_spec_is_toml_that_reads_back_as_what_the_fit_uses(name):
    spec = load_spec(name)
    text = spec.resolved_toml()
    back = tomllib.loads(text)
    r = json.loads(json.dumps(spec.resolved(), default=str))
    for section in ("options", "priors"):
        assert back[section] == {k: v for k, v in r[section].items() if v is not None}, section
    assert back["sampler"]["seed"] == spec.sampler.seed and back["gate"] == r["gate"]
    # what the spec states is unmarked, the rest is marked as the family's default
    data = tomllib.loads(available_specs()[name].read_text(encoding="utf-8"))
    for key in data.get("options", {}):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{key} =") or ln.startswith(f'"{key}" ='))
        assert not line.endswith("# default"), line
    assert any(ln.endswith("# default") for ln in text.splitlines())


def test_specs_name_prints_the_resolved_spec_and_an_unknown_name_is_an_error():
    r = CliRunner().invoke(main, ["specs", "tcell"])
    assert r.exit_code == 0, r.output
    assert r.output == load_spec("tcell").resolved_toml()
    assert "cycles = 2  # default" in r.output and 'analytes = ["CD3", "CD4", "CD8"]\n' in r.output
    r = CliRunner().invoke(main, ["specs", "no-such-spec"])
    assert r.exit_code != 0 and "no model spec named 'no-such-spec'" in r.output


@pytest.mark.parametrize("value,text", [(True, "true"), (2, "2"), (0.5, "0.5"), (float("inf"), "inf"),
                                        ("a\"b", '"a\\"b"'), ([1, "x"], '[1, "x"]'), ({}, "{}"),
                                        ({"t_nadir[CD3]": 1.0}, '{ "t_nadir[CD3]" = 1.0 }')])
def test_toml_values(value, text):
    assert _toml_value(value) == text
    assert tomllib.loads(f"v = {text}")["v"] == value
