"""The planning commands' --out writes the file asked for, with its columns, and nothing else.

Issue 21: ``plan regimen --out`` and ``plan biomarker-power --out`` passed their two arguments to
the text writer the wrong way round, so no CSV was written and a folder named after the CSV's first
line appeared in the working directory instead; no test ran their happy path. The fits here are
stubs with known posteriors (test_plan_regimen's pulse posterior, test_plan_biomarker's source), so
the tests run in seconds; the demo test (tests/test_demo.py) runs the same commands on real fits.
"""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_blina.cli import main
from bayes_blina.diagnostics import Verdict
from test_plan_biomarker import source
from test_plan_regimen import _stored

PASSED = Verdict(passed=True, max_rhat=1.0, min_ess_bulk=1000, min_ess_tail=1000, n_divergent=0,
                 min_bfmi=1.0, n_draws=50, n_chains=2)


def _stub(monkeypatch, stored):
    stored.verdict = PASSED
    monkeypatch.setattr("bayes_blina.store.load_fit", lambda path, **k: stored)


def _entries(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_plan_regimen_writes_its_csv_where_asked(tmp_path, monkeypatch):
    _stub(monkeypatch, _stored())
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["plan", "regimen", "fits/some", "--regimen", "15", "--regimen", "5-15",
                                  "--threshold", "IL6=1000", "--draws", "20", "--patients", "10",
                                  "--out", "out/plan/regimen-peaks.csv"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert _entries(tmp_path) == ["out", "out/plan", "out/plan/regimen-peaks.csv"]
    df = pd.read_csv(tmp_path / "out" / "plan" / "regimen-peaks.csv")
    assert list(df["regimen"].astype(str)) == ["15", "5-15"]
    assert {"analyte", "q50", "threshold", "p_exceed"} <= set(df.columns)
    assert df["p_exceed"].between(0, 1).all() and (df["q5"] <= df["q95"]).all()
    assert "wrote out/plan/regimen-peaks.csv" in r.stderr


def test_plan_biomarker_power_writes_the_table_and_the_studies_beside_it(tmp_path, monkeypatch):
    _stub(monkeypatch, SimpleNamespace())
    monkeypatch.setattr("bayes_blina.plan.biomarker.source_from_joint", lambda stored, seed=0: source(1.0))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["plan", "biomarker-power", "fits/joint", "--sizes", "30", "--sims", "2",
                                  "--workers", "0", "--draws", "100", "--out", "out/power.csv"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert _entries(tmp_path) == ["out", "out/power-studies.csv", "out/power.csv"]
    table = pd.read_csv(tmp_path / "out" / "power.csv")
    assert list(table["n"]) == [30] and table["power_tcell_expansion"].between(0, 1).all()
    studies = pd.read_csv(tmp_path / "out" / "power-studies.csv")
    assert len(studies) == 2 and {"n", "converged"} <= set(studies.columns)


@pytest.mark.parametrize("where, message", [
    ("plan", "exists and is a file, not a folder"),  # out/plan is a file: out/plan/x.csv cannot be written
    ("dir", "is an existing folder"),
])
def test_an_output_that_cannot_be_written_is_an_error_naming_it(tmp_path, monkeypatch, where, message):
    _stub(monkeypatch, _stored())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "plan").write_text("a file")
    (tmp_path / "out" / "dir").mkdir()
    target = "out/plan/regimen.csv" if where == "plan" else "out/dir"
    r = CliRunner().invoke(main, ["plan", "regimen", "fits/some", "--regimen", "15", "--draws", "20",
                                  "--patients", "10", "--out", target])
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "out/" in r.stderr
    assert _entries(tmp_path) == ["out", "out/dir", "out/plan"]  # nothing half-written


def test_the_writer_refuses_positional_output_paths():
    from bayes_blina.cli.common import write_text

    with pytest.raises(TypeError):
        write_text("a,b\n1,2\n", "out.csv")  # the swap that lost the demo's CSV cannot recur
