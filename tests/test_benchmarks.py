"""The benchmark harness's bookkeeping (``benchmarks/``), without fitting anything.

Benchmarks are not tests: nothing here measures speed. These tests check the parts of the harness
that decide what RESULTS.md shows: CSV appends, invalid rows, the latest run per configuration,
ratios to Stan, log-log slopes, and the command-line options that add repeats to an earlier run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _common  # noqa: E402
import bench_fits  # noqa: E402
import bench_scaling  # noqa: E402
import report  # noqa: E402


def test_append_csv_adds_new_columns_and_quotes_commas(tmp_path):
    p = tmp_path / "fits.csv"
    _common.append_csv(p, ["run_id", "x"], {"run_id": "a", "x": 1})
    _common.append_csv(p, ["run_id", "x", "note"], {"run_id": "b", "x": 2, "note": 'slow, "loaded"'})
    df = pd.read_csv(p, keep_default_na=False)
    assert list(df.columns) == ["run_id", "x", "note"]
    assert df["note"].tolist() == ["", 'slow, "loaded"']
    assert df["x"].tolist() == [1, 2]


def test_read_drops_rows_marked_invalid(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    pd.DataFrame({"run_id": ["r1", "r2", "r3"], "note": ["", "invalid: measured under load", "kept, noted"]}) \
        .to_csv(tmp_path / "fits.csv", index=False)
    df = report._read("fits.csv")
    assert df["run_id"].tolist() == ["r1", "r3"]
    assert report._read("missing.csv") is None


def test_latest_keeps_each_configurations_latest_run_only():
    df = pd.DataFrame({"config": ["a", "a", "a", "b"],
                       "run_id": ["2026-01-01", "2026-01-02", "2026-01-02", "2026-01-01"],
                       "repeat": [1, 1, 2, 1]})
    out = report._latest(df, "config")
    assert sorted(zip(out["config"], out["run_id"], out["repeat"])) == [
        ("a", "2026-01-02", 1), ("a", "2026-01-02", 2), ("b", "2026-01-01", 1)]


def test_ratios_to_stan_within_one_run():
    rows = pd.DataFrame({"run_id": ["r"] * 4 + ["s"], "config": ["c"] * 5,
                         "backend": ["nutpie", "nutpie", "stan", "stan", "nutpie"],
                         "min_ess_per_s": [3.0, 5.0, 1.0, 3.0, 9.0]})
    r = report._ratios(rows).set_index(["run_id", "backend"])["ratio_to_stan"]
    assert r[("r", "nutpie")] == pytest.approx(2.0)  # mean 4 over Stan's mean 2
    assert r[("r", "stan")] == pytest.approx(1.0)
    assert np.isnan(r[("s", "nutpie")])  # no Stan fit in that run: no ratio


@pytest.mark.parametrize("power", [0.5, 1.0, 1.5])
def test_loglog_slopes_recover_a_power_law(power):
    x = np.array([50, 100, 200, 500, 1000])
    assert bench_scaling.slope(x, 3.0 * x**power) == pytest.approx(power)
    assert report._slope(x, 3.0 * x**power) == pytest.approx(power)
    assert np.isnan(report._slope([200], [1.0]))


def test_diag_configuration_is_the_spec_with_a_diagonal_mass_matrix():
    from bayes_blina.spec import load_spec

    assert load_spec("cytokine-core").sampler.mass_matrix == "low_rank"
    diag = load_spec(bench_fits._spec(bench_fits.CONFIGS["cytokine-core-36-diag"][0]))
    assert diag.sampler.mass_matrix == "diag"
    assert diag.options == load_spec("cytokine-core").options


def test_run_id_must_name_an_earlier_run(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_fits, "RESULTS", tmp_path / "fits.csv")
    _common.append_csv(bench_fits.RESULTS, bench_fits.COLUMNS, {"run_id": "2026-11-21T14:31:28+00:00"})
    assert bench_fits._run_exists("2026-11-21T14:31:28+00:00")
    with pytest.raises(SystemExit, match="--run-id 2026-01-01: no such run"):
        bench_fits.main(["--config", "response-2000", "--run-id", "2026-01-01", "--no-report"])
