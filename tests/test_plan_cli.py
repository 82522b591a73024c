"""The ``plan`` command group (click.testing.CliRunner)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bayes_blina.cli.plan import plan
from bayes_blina.plan import BetaMixture, decision_1s, ess, oc_1s, pos_1s

MAP_LIKE = BetaMixture([0.58, 0.32, 0.10], [6.8, 36.6, 2.1], [20.1, 111.1, 4.8])


@pytest.fixture()
def prior_file(tmp_path):
    p = tmp_path / "prior.json"
    MAP_LIKE.save(p)
    return p


def run(*args):
    res = CliRunner().invoke(plan, [str(a) for a in args])
    return res


def test_ess_command(prior_file):
    res = run("ess", prior_file)
    assert res.exit_code == 0, res.output
    lines = dict(line.split("\t") for line in res.output.strip().splitlines())
    assert set(lines) == {"elir", "moment", "morita"}
    assert float(lines["elir"]) == pytest.approx(ess(MAP_LIKE, "elir"), abs=0.01)
    res = run("ess", prior_file, "--method", "moment")
    assert res.exit_code == 0 and res.output.startswith("moment\t")


def test_robustify_command(prior_file, tmp_path):
    out = tmp_path / "robust.json"
    res = run("robustify", prior_file, "--weight", 0.2, "--mean", 0.5, "--out", out)
    assert res.exit_code == 0, res.output
    rob = BetaMixture.load(out)
    assert rob == MAP_LIKE.robustify(0.2, 0.5)
    assert json.loads(out.read_text())["meta"]["weight"] == 0.2
    assert "ESS" in res.output


def test_predictive_command(prior_file):
    res = run("predictive", prior_file, "--n", 20, "--observed", 9)
    assert res.exit_code == 0, res.output
    pred = MAP_LIKE.predictive(20)
    assert f"mean {pred.mean:.2f}" in res.output
    assert f"P(Y >= 9) = {float(pred.tail_prob(9)):.4f}" in res.output
    bad = run("predictive", prior_file, "--n", 5, "--observed", 9)
    assert bad.exit_code == 2 and "exceeds" in bad.output


def test_oc_command_table_and_csv(prior_file, tmp_path):
    res = run("oc", prior_file, "--n", 40, "--threshold", 0.2, "--prob", 0.9, "--grid", "0.1:0.5:0.1")
    assert res.exit_code == 0, res.output
    oc = oc_1s(MAP_LIKE, 40, decision_1s(0.9, 0.2))
    assert f"success iff responders >= {oc.critical_value} of 40" in res.output
    assert f"| 0.3000 | {float(oc(0.3)):.4f} |" in res.output
    out = tmp_path / "oc.csv"
    res = run("oc", prior_file, "--n", 40, "--threshold", 0.2, "--prob", 0.9, "--grid", "0.2,0.3", "--out", out)
    assert res.exit_code == 0
    assert out.read_text().splitlines()[0] == "theta,p_success"
    bad = run("oc", prior_file, "--n", 40, "--threshold", 0.2, "--prob", 0.9, "--grid", "a:b")
    assert bad.exit_code == 2 and "--grid" in bad.output


def test_pos_command(prior_file, tmp_path):
    design = tmp_path / "design.json"
    BetaMixture.beta(30, 70).save(design)
    res = run("pos", prior_file, "--n", 30, "--threshold", 0.2, "--prob", 0.9, "--design-prior", design)
    assert res.exit_code == 0, res.output
    p = pos_1s(MAP_LIKE, 30, decision_1s(0.9, 0.2), BetaMixture.beta(30, 70))
    assert f"probability of success: {p:.4f}" in res.output


def test_simon_command():
    res = run("simon", "--p0", 0.1, "--p1", 0.3, "--alpha", 0.05, "--beta", 0.2)
    assert res.exit_code == 0, res.output
    assert "r1/n1 = 1/10  r/n = 5/29" in res.output
    res = run("simon", "--p0", 0.1, "--p1", 0.3, "--kind", "minimax")
    assert "r1/n1 = 1/15  r/n = 5/25" in res.output
    res = run("simon", "--p0", 0.3, "--p1", 0.2)
    assert res.exit_code == 2 and "p1 must exceed p0" in res.output


def test_bad_prior_files_give_clear_errors(tmp_path):
    res = run("ess", tmp_path / "missing.json")
    assert res.exit_code == 2 and "does not exist" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "bayes_blina.beta_mixture", "version": 1, "components": [{"weight": 2, "a": 1, "b": 1}]}')
    res = run("ess", bad)
    assert res.exit_code == 2 and "bad.json" in res.output and "sum to 1" in res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("content, expected", [
    ("study,n\nA,10\n", "column 'r'"),
    ("study,n,r\nA,10,3\nB,x,2\n", "column 'n', row 2"),
    ("study,n,r\nA,10,12\n", "at most n = 10"),
    ("study,n,r\nA,10,3\nA,12,4\n", "unique study name"),
    ("study,n,r\n", "at least one historical study"),
])
def test_map_prior_validates_the_historical_file(tmp_path, content, expected):
    f = tmp_path / "hist.csv"
    f.write_text(content)
    res = run("map-prior", "--historical", f, "--tau-prior", "halfnormal:1")
    assert res.exit_code == 2
    assert "hist.csv" in res.output and expected in res.output


def test_map_prior_rejects_bad_prior_specs(tmp_path):
    f = tmp_path / "hist.csv"
    f.write_text("study,n,r\nA,10,3\nB,20,5\n")
    res = run("map-prior", "--historical", f, "--tau-prior", "gamma:1")
    assert res.exit_code == 2 and "unknown tau prior" in res.output
    res = run("map-prior", "--historical", f, "--tau-prior", "halfnormal:-1")
    assert res.exit_code == 2 and "positive" in res.output


@pytest.mark.slow
def test_map_prior_command_end_to_end(tmp_path):
    hist = tmp_path / "as.csv"
    hist.write_text("study,n,r\nStudy 1,107,23\nStudy 2,44,12\nStudy 3,51,19\nStudy 4,39,9\nStudy 5,139,39\n"
                    "Study 6,20,6\nStudy 7,78,9\nStudy 8,35,10\n")
    out = tmp_path / "map.json"
    res = run("map-prior", "--historical", hist, "--tau-prior", "halfnormal:1", "--mu-prior", "normal:0:2",
              "--seed", 2016, "--out", out)
    assert res.exit_code == 0, res.output
    for word in ("tau: mean", "MAP prior (samples)", "MAP prior (mixture)", "ESS: elir", "moment", "morita", "2.5%",
                 "97.5%"):
        assert word in res.output
    mix = BetaMixture.load(out)
    assert mix.mean == pytest.approx(0.255, abs=0.01)
    meta = json.loads(out.read_text())["meta"]
    assert meta["converged"] is True and len(meta["historical"]) == 8 and meta["tau_prior"] == "halfnormal:1"


def test_plan_group_can_be_registered_under_another_group(prior_file):
    import click

    @click.group()
    def top() -> None:
        pass

    top.add_command(plan)
    res = CliRunner().invoke(top, ["plan", "ess", str(prior_file), "--method", "elir"])
    assert res.exit_code == 0 and res.output.startswith("elir\t")
    res = CliRunner().invoke(top, ["plan", "--help"])
    for cmd in ("map-prior", "robustify", "ess", "predictive", "oc", "pos", "simon"):
        assert cmd in res.output
