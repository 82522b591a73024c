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


# ------------------------------------------------------------------------------------------------
# bench_inputs.py (issue 21): the generator, the spoiled last row, the RESULTS.md section
# ------------------------------------------------------------------------------------------------

import bench_inputs  # noqa: E402


def test_input_generator_writes_a_valid_dataset_of_40_observations_per_patient(tmp_path):
    from bayes_blina.data.io import read_dataset

    size = bench_inputs.write_cohort(tmp_path / "c", 300)
    ds = read_dataset(tmp_path / "c")
    assert len(ds.subjects) == 300 and len(ds.observations) == 300 * bench_inputs.OBS_PER_PATIENT
    assert ds.observations.groupby("subject_id").size().eq(40).all()
    assert set(ds.observations["below"].dropna()) - {""} == {"LOD", "LLOQ"}  # censored rows of both kinds
    # the size constant that turns --gb into a number of patients holds within 5%
    assert size / 300 == pytest.approx(bench_inputs.BYTES_PER_PATIENT, rel=0.05)


def test_a_bad_value_in_the_last_row_of_a_large_file_is_refused_naming_that_row(tmp_path):
    from bayes_blina.data.io import read_dataset
    from bayes_blina.errors import DataValidationError

    n = 5_000  # 200,000 observation rows
    bench_inputs.write_cohort(tmp_path / "c", n)
    bench_inputs._spoil_last_row(tmp_path / "c")
    lines = (tmp_path / "c" / "observations.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == n * 40 + 1 and lines[-1].split(",")[3] == "high"
    with pytest.raises(DataValidationError) as e:
        read_dataset(tmp_path / "c")
    assert f"observations.csv, column 'value', row {n * 40}: value must be a number (found 'high')" in str(e.value)


def test_inputs_section_shows_the_latest_run_in_step_order_with_slopes():
    rows = []
    for run, scale in (("r1", 9.0), ("r2", 1.0)):
        for step in ("prepare-tcell", "read"):
            for n in (1000, 10000):
                rows.append({"run_id": run, "step": step, "patients": n, "observations": 40 * n, "csv_mb": n / 600,
                             "read_s": 1e-4 * n * scale, "step_s": 1e-4 * n * scale, "peak_mem_mb": 100 + 0.05 * n,
                             "row_named": np.nan, "load1_start": 0.5, "error": np.nan})
    text = "\n".join(report._inputs_section(pd.DataFrame(rows)))
    assert "| read | 1000 |" in text and text.index("| read |") < text.index("| prepare-tcell |")
    assert "| 0.9 |" not in text  # r1's rows (9x slower) are not shown
    assert "`read` time 1.00" in text and "`prepare-tcell` time 1.00" in text
    assert "12 MiB per million observations" not in text and "1250 MiB per million" in text
    assert report._inputs_section(None) == []
