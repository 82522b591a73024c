"""Validation of dataset folders: every rule of docs/data-format.md, reading and writing."""
from __future__ import annotations

import csv
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_blina.data import Dataset, read_dataset, write_dataset
from bayes_blina.data.io import DatasetExistsError, DatasetNotFoundError
from bayes_blina.data.schema import (normalise_level, normalise_regimen, validate_dataset,
                                     validate_observations)
from bayes_blina.errors import BayesBlinaError, DataValidationError

MINIMAL = Path(__file__).parent / "data" / "minimal"
EXAMPLE = Path(__file__).parents[1] / "examples" / "data" / "example-study"

Row = dict[str, str]

SUBJECTS: list[Row] = [
    dict(subject_id="S1", study="T", regimen="5-15", age_years="8", blast_pct="60", bsa_m2="1.1",
         prior_hsct="0", refractory="no", prior_relapses="1", response="1"),
    dict(subject_id="S2", study="T", regimen="5-15", age_years="4", blast_pct="10", bsa_m2="0.7",
         prior_hsct="1", refractory="yes", prior_relapses="3", response="0"),
    dict(subject_id="S3", study="T", regimen="15", age_years="30", blast_pct="", bsa_m2="1.8",
         prior_hsct="", refractory="", prior_relapses="", response=""),
]
DOSING: list[Row] = [
    dict(subject_id="S1", cycle="1", start_h="0", end_h="168", dose="5", dose_unit="ug/m2/day"),
    dict(subject_id="S1", cycle="1", start_h="168", end_h="672", dose="15",
         dose_unit="ug/m2/day"),
    dict(subject_id="S3", cycle="1", start_h="0", end_h="672", dose="27", dose_unit="ug/day"),
]
OBSERVATIONS: list[Row] = [
    dict(subject_id="S1", analyte="IL-6", time_h="-24", value="", unit="pg/mL", lod="", lloq="",
         below="LLOQ"),
    dict(subject_id="S1", analyte="IL-6", time_h="6", value="900", unit="pg/mL", lod="", lloq="",
         below=""),
    dict(subject_id="S2", analyte="CD3", time_h="24", value="0.3", unit="10^9/L", lod="",
         lloq="", below=""),
    dict(subject_id="S3", analyte="IFN-γ", time_h="6", value="", unit="pg/mL", lod="20",
         lloq="125", below="LOD"),
]
AGGREGATES: list[Row] = [
    dict(study="PED", endpoint="CR", family="all", level="all", regimen="5-15:60;15:10",
         responders="27", n="70", source="Table 2"),
    dict(study="PED", endpoint="", family="age_group", level="< 2", regimen="5-15",
         responders="4", n="10", source="Table 2"),
    dict(study="PED", endpoint="CR", family="age_group", level="2 to 6", regimen="5-15",
         responders="10", n="25", source="Table 2"),
]
SUMMARIES: list[Row] = [
    dict(study="PED", quantity="concentration", analyte="IL-6", group="all", regimen="5-15",
         cycle="1", time_h="6", statistic="median", value="0.2", unit="ng/mL", n="20",
         source="Fig 3"),
]
BASE = {"subjects": SUBJECTS, "dosing": DOSING, "observations": OBSERVATIONS,
        "aggregates": AGGREGATES, "summaries": SUMMARIES}


def write_csv(path: Path, rows: list[Row], columns: list[str] | None = None) -> None:
    """Write rows (dicts of text) as a CSV file with the given columns."""
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def make(tmp_path: Path, **changes) -> Path:
    """Write the base dataset with some tables replaced (None drops a table)."""
    tables = {k: [dict(r) for r in v] for k, v in BASE.items()}
    tables.update(changes)
    folder = tmp_path / "ds"
    folder.mkdir()
    for name, rows in tables.items():
        if rows is not None:
            write_csv(folder / f"{name}.csv", rows, None if rows else list(BASE[name][0]))
    return folder


def edited(table: str, row: int, **cells: str) -> list[Row]:
    """A copy of a base table with cells of one 1-based row changed."""
    rows = [dict(r) for r in BASE[table]]
    rows[row - 1].update(cells)
    return rows


def problems_of(folder: Path) -> str:
    with pytest.raises(DataValidationError) as err:
        read_dataset(folder)
    return str(err.value)


def assert_reported(folder: Path, file: str, column: str | None, row: int | None, rule: str):
    message = problems_of(folder)
    where = file + (f", column '{column}'" if column else "") + (f", row {row}" if row else "")
    assert f"{where}: {rule}" in message, message


# ------------------------------------------------------------------------------------------------
# One test per rule
# ------------------------------------------------------------------------------------------------

CASES = [
    # id, tables changed, file, column, row, rule (start of the rule text)
    ("subjects-missing-column", lambda: dict(subjects=[
        {k: v for k, v in r.items() if k != "study"} for r in SUBJECTS]),
     "subjects.csv", "study", None, "required column is missing"),
    ("subjects-no-rows", lambda: dict(subjects=[], dosing=None, observations=None),
     "subjects.csv", None, None, "file has no data rows"),
    ("subjects-duplicate-id", lambda: dict(subjects=edited("subjects", 3, subject_id="S1")),
     "subjects.csv", "subject_id", 3, "subject_id must be unique (same as row 1)"),
    ("subjects-empty-id", lambda: dict(subjects=edited("subjects", 2, subject_id="")),
     "subjects.csv", "subject_id", 2, "subject_id must not be empty"),
    ("subjects-empty-study", lambda: dict(subjects=edited("subjects", 2, study="")),
     "subjects.csv", "study", 2, "study must not be empty"),
    ("subjects-bad-regimen", lambda: dict(subjects=edited("subjects", 1, regimen="high")),
     "subjects.csv", "regimen", 1, "regimen must be dose levels in ug/m2/day joined by '-'"),
    ("subjects-age-not-number", lambda: dict(subjects=edited("subjects", 1, age_years="ten")),
     "subjects.csv", "age_years", 1, "age_years must be a number (found 'ten')"),
    ("subjects-age-range", lambda: dict(subjects=edited("subjects", 2, age_years="150")),
     "subjects.csv", "age_years", 2, "age_years must be >= 0 and < 120 (found '150')"),
    ("subjects-age-negative", lambda: dict(subjects=edited("subjects", 2, age_years="-1")),
     "subjects.csv", "age_years", 2, "age_years must be >= 0 and < 120"),
    ("subjects-age-group-unknown", lambda: dict(subjects=edited("subjects", 1, age_group="teen")),
     "subjects.csv", "age_group", 1, "age_group must be one of '<2', '2-6', '7-17', 'adult'"),
    ("subjects-age-group-inconsistent",
     lambda: dict(subjects=edited("subjects", 1, age_group="adult")),
     "subjects.csv", "age_group", 1, "age_group must agree with age_years (age_years 8 is '7-17')"),
    ("subjects-blast-range", lambda: dict(subjects=edited("subjects", 2, blast_pct="120")),
     "subjects.csv", "blast_pct", 2, "blast_pct must be between 0 and 100"),
    ("subjects-blast-burden-unknown",
     lambda: dict(subjects=edited("subjects", 2, blast_burden="high")),
     "subjects.csv", "blast_burden", 2, "blast_burden must be one of '<50', '>=50'"),
    ("subjects-blast-burden-inconsistent",
     lambda: dict(subjects=edited("subjects", 1, blast_burden="<50")),
     "subjects.csv", "blast_burden", 1, "blast_burden must agree with blast_pct"),
    ("subjects-bsa-range", lambda: dict(subjects=edited("subjects", 3, bsa_m2="5")),
     "subjects.csv", "bsa_m2", 3, "bsa_m2 must be > 0 and < 4"),
    ("subjects-bsa-zero", lambda: dict(subjects=edited("subjects", 3, bsa_m2="0")),
     "subjects.csv", "bsa_m2", 3, "bsa_m2 must be > 0 and < 4"),
    ("subjects-boolean", lambda: dict(subjects=edited("subjects", 1, prior_hsct="maybe")),
     "subjects.csv", "prior_hsct", 1, "prior_hsct must be 0/1, yes/no or true/false"),
    ("subjects-refractory", lambda: dict(subjects=edited("subjects", 2, refractory="2")),
     "subjects.csv", "refractory", 2, "refractory must be 0/1, yes/no or true/false"),
    ("subjects-relapses-fraction", lambda: dict(subjects=edited("subjects", 1,
                                                                prior_relapses="1.5")),
     "subjects.csv", "prior_relapses", 1, "prior_relapses must be a whole number"),
    ("subjects-relapses-negative", lambda: dict(subjects=edited("subjects", 1,
                                                                prior_relapses="-1")),
     "subjects.csv", "prior_relapses", 1, "prior_relapses must be >= 0"),
    ("subjects-response-word", lambda: dict(subjects=edited("subjects", 1, response="CR")),
     "subjects.csv", "response", 1, "response must be 0, 1, true, false or empty (found 'CR')"),
    ("subjects-response-yes", lambda: dict(subjects=edited("subjects", 2, response="yes")),
     "subjects.csv", "response", 2, "response must be 0, 1, true, false or empty"),
    ("subjects-response-two", lambda: dict(subjects=edited("subjects", 2, response="2")),
     "subjects.csv", "response", 2, "response must be 0, 1, true, false or empty"),
    # dosing
    ("dosing-missing-column", lambda: dict(dosing=[
        {k: v for k, v in r.items() if k != "dose_unit"} for r in DOSING]),
     "dosing.csv", "dose_unit", None, "required column is missing"),
    ("dosing-unknown-subject", lambda: dict(dosing=edited("dosing", 3, subject_id="S9")),
     "dosing.csv", "subject_id", 3, "subject_id must be in subjects.csv (found 'S9')"),
    ("dosing-cycle-zero", lambda: dict(dosing=edited("dosing", 2, cycle="0")),
     "dosing.csv", "cycle", 2, "cycle must be >= 1"),
    ("dosing-cycle-fraction", lambda: dict(dosing=edited("dosing", 2, cycle="1.5")),
     "dosing.csv", "cycle", 2, "cycle must be a whole number"),
    ("dosing-start-not-number", lambda: dict(dosing=edited("dosing", 2, start_h="abc")),
     "dosing.csv", "start_h", 2, "start_h must be a number (found 'abc')"),
    ("dosing-end-before-start", lambda: dict(dosing=edited("dosing", 2, end_h="168")),
     "dosing.csv", "end_h", 2, "end_h must be greater than start_h"),
    ("dosing-overlap", lambda: dict(dosing=edited("dosing", 2, start_h="100")),
     "dosing.csv", "start_h", 2, "segments of one patient must not overlap (row 1 ends at 168 h)"),
    ("dosing-first-not-zero", lambda: dict(dosing=edited("dosing", 3, start_h="12")),
     "dosing.csv", "start_h", 3, "the first infusion segment of each patient must start at 0 h"),
    ("dosing-negative-dose", lambda: dict(dosing=edited("dosing", 1, dose="-5")),
     "dosing.csv", "dose", 1, "dose must be >= 0"),
    ("dosing-unknown-unit", lambda: dict(dosing=edited("dosing", 1, dose_unit="mg/kg")),
     "dosing.csv", "dose_unit", 1, "dose_unit must be 'ug/m2/day' or 'ug/day' (found 'mg/kg')"),
    ("dosing-ug-day-without-bsa", lambda: dict(subjects=edited("subjects", 3, bsa_m2="")),
     "dosing.csv", "dose_unit", 3, "a dose in ug/day needs the patient's bsa_m2 in subjects.csv"),
    ("dosing-without-subjects", lambda: dict(subjects=None, observations=None),
     "dosing.csv", "subject_id", None, "subject_id must be in subjects.csv, but the dataset"),
    # observations
    ("obs-missing-column", lambda: dict(observations=[
        {k: v for k, v in r.items() if k != "unit"} for r in OBSERVATIONS]),
     "observations.csv", "unit", None, "required column is missing"),
    ("obs-unknown-subject", lambda: dict(observations=edited("observations", 2, subject_id="X")),
     "observations.csv", "subject_id", 2, "subject_id must be in subjects.csv (found 'X')"),
    ("obs-unknown-analyte", lambda: dict(observations=edited("observations", 2, analyte="IL-99")),
     "observations.csv", "analyte", 2, "analyte must be a known analyte code or alias"),
    ("obs-unconvertible-unit", lambda: dict(observations=edited("observations", 2,
                                                                unit="mmol/L")),
     "observations.csv", "unit", 2,
     "unit must be convertible to pg/mL for IL6 (found 'mmol/L')"),
    ("obs-unknown-unit", lambda: dict(observations=edited("observations", 3, unit="bananas")),
     "observations.csv", "unit", 3, "unit must be convertible to cells/uL for CD3"),
    ("obs-empty-unit", lambda: dict(observations=edited("observations", 3, unit="")),
     "observations.csv", "unit", 3, "unit must not be empty"),
    ("obs-value-not-number", lambda: dict(observations=edited("observations", 2, value="<20")),
     "observations.csv", "value", 2, "value must be a number (found '<20')"),
    ("obs-value-negative", lambda: dict(observations=edited("observations", 2, value="-3")),
     "observations.csv", "value", 2, "value must be >= 0"),
    ("obs-value-required", lambda: dict(observations=edited("observations", 2, value="")),
     "observations.csv", "value", 2, "value is required unless below is set"),
    ("obs-lod-negative", lambda: dict(observations=edited("observations", 4, lod="-1")),
     "observations.csv", "lod", 4, "lod must be >= 0"),
    ("obs-lod-above-lloq", lambda: dict(observations=edited("observations", 4, lod="200")),
     "observations.csv", "lod", 4, "lod must not exceed lloq"),
    ("obs-below-unknown", lambda: dict(observations=edited("observations", 1, below="<LOD")),
     "observations.csv", "below", 1, "below must be empty, 'LOD' or 'LLOQ' (found '<LOD')"),
    ("obs-below-without-limit", lambda: dict(observations=edited("observations", 3, value="",
                                                                 below="LLOQ")),
     "observations.csv", "below", 3,
     "below is 'LLOQ', so the row must give lloq (CD3 has no default assay LLOQ)"),
    ("obs-below-lod-blina", lambda: dict(observations=edited(
        "observations", 2, analyte="BLINA", value="", below="LOD")),
     "observations.csv", "below", 2, "below is 'LOD', so the row must give lod"),
    ("obs-before-screening", lambda: dict(observations=edited("observations", 2,
                                                              time_h="-600")),
     "observations.csv", "time_h", 2,
     "time_h must not be more than 504 h before the first infusion start"),
    ("obs-time-not-number", lambda: dict(observations=edited("observations", 2, time_h="day 1")),
     "observations.csv", "time_h", 2, "time_h must be a number (found 'day 1')"),
    # aggregates
    ("agg-missing-column", lambda: dict(aggregates=[
        {k: v for k, v in r.items() if k != "source"} for r in AGGREGATES]),
     "aggregates.csv", "source", None, "required column is missing"),
    ("agg-responders-above-n", lambda: dict(aggregates=edited("aggregates", 2, responders="11")),
     "aggregates.csv", "responders", 2, "responders must be <= n"),
    ("agg-responders-negative", lambda: dict(aggregates=edited("aggregates", 2,
                                                               responders="-1")),
     "aggregates.csv", "responders", 2, "responders must be >= 0"),
    ("agg-n-zero", lambda: dict(aggregates=edited("aggregates", 2, n="0", responders="0")),
     "aggregates.csv", "n", 2, "n must be >= 1"),
    ("agg-non-integer", lambda: dict(aggregates=edited("aggregates", 3, responders="2.5")),
     "aggregates.csv", "responders", 3, "responders must be a whole number (found '2.5')"),
    ("agg-n-not-number", lambda: dict(aggregates=edited("aggregates", 3, n="many")),
     "aggregates.csv", "n", 3, "n must be a number (found 'many')"),
    ("agg-bad-family", lambda: dict(aggregates=edited("aggregates", 2, family="Age Group")),
     "aggregates.csv", "family", 2, "family must be a lower-case identifier"),
    ("agg-subset-of-unknown-population", lambda: dict(aggregates=edited("aggregates", 2, subset_of="nowhere")),
     "aggregates.csv", "subset_of", 2, "subset_of must name a population of the same study"),
    ("agg-unknown-level", lambda: dict(aggregates=edited("aggregates", 2, level="toddler")),
     "aggregates.csv", "level", 2, "level must be one of '<2', '2-6', '7-17', 'adult' for "
     "family 'age_group'"),
    ("agg-empty-source", lambda: dict(aggregates=edited("aggregates", 3, source="")),
     "aggregates.csv", "source", 3, "source must not be empty"),
    ("agg-mixture-sum", lambda: dict(aggregates=edited("aggregates", 1,
                                                       regimen="5-15:60;15:5")),
     "aggregates.csv", "regimen", 1,
     "regimen mixture counts must add up to n (60 + 5 = 65, n = 70)"),
    ("agg-mixture-malformed", lambda: dict(aggregates=edited("aggregates", 1,
                                                             regimen="5-15:sixty;15:10")),
     "aggregates.csv", "regimen", 1, "regimen mixture must look like 'LABEL:N;LABEL:N'"),
    ("agg-duplicate", lambda: dict(aggregates=edited("aggregates", 3, level="<2")),
     "aggregates.csv", "level", 3, "duplicate row: study, endpoint, population, family, level "
     "and regimen must be unique (same as row 2)"),
    # summaries
    ("sum-missing-source", lambda: dict(summaries=[
        {k: v for k, v in r.items() if k != "source"} for r in SUMMARIES]),
     "summaries.csv", "source", None, "required column is missing"),
    ("sum-missing-analyte-column", lambda: dict(summaries=[
        {k: v for k, v in r.items() if k != "analyte"} for r in SUMMARIES]),
     "summaries.csv", "analyte", None, "required column is missing"),
    ("sum-empty-source", lambda: dict(summaries=edited("summaries", 1, source="")),
     "summaries.csv", "source", 1, "source must not be empty"),
    ("sum-value-not-number", lambda: dict(summaries=edited("summaries", 1, value="high")),
     "summaries.csv", "value", 1, "value must be a number (found 'high')"),
    ("sum-value-missing", lambda: dict(summaries=edited("summaries", 1, value="")),
     "summaries.csv", "value", 1, "value is required"),
    ("sum-unknown-analyte", lambda: dict(summaries=edited("summaries", 1, analyte="IL-99")),
     "summaries.csv", "analyte", 1, "analyte must be a known analyte code or alias"),
    # the dataset as a whole
    ("no-subjects-aggregates-or-dlt", lambda: dict(subjects=None, aggregates=None, dosing=None,
                                               observations=None),
     None, None, None, "a dataset must hold subjects.csv, aggregates.csv or dlt.csv"),
]


@pytest.mark.parametrize("change, file, column, row, rule", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rule_is_reported(tmp_path, change, file, column, row, rule):
    folder = make(tmp_path, **change())
    if file is None:
        assert rule in problems_of(folder)
    else:
        assert_reported(folder, file, column, row, rule)


def test_base_dataset_is_valid(tmp_path):
    ds = read_dataset(make(tmp_path))
    assert set(ds.tables()) == {"subjects", "dosing", "observations", "aggregates", "summaries"}


# ------------------------------------------------------------------------------------------------
# File-level problems
# ------------------------------------------------------------------------------------------------

def test_empty_file(tmp_path):
    folder = make(tmp_path)
    (folder / "dosing.csv").write_text("")
    assert_reported(folder, "dosing.csv", None, None, "file is empty")


def test_wrong_encoding(tmp_path):
    folder = make(tmp_path)
    latin1 = "subject_id,study,regimen\nJosé,T,15\n".encode("latin-1")
    (folder / "subjects.csv").write_bytes(latin1)
    assert_reported(folder, "subjects.csv", None, None, "file must be UTF-8 encoded (line 2")


def test_unparseable_csv(tmp_path):
    folder = make(tmp_path)
    (folder / "summaries.csv").write_text("study,quantity\nA,B\nA,B,C,D\n")
    assert_reported(folder, "summaries.csv", None, None, "file could not be parsed as CSV")


def test_semicolon_separated(tmp_path):
    folder = make(tmp_path)
    (folder / "aggregates.csv").write_text("study;family;level\nA;all;all\n")
    assert_reported(folder, "aggregates.csv", None, None, "columns must be separated by commas")


def test_csv_and_parquet_both_present(tmp_path):
    folder = make(tmp_path)
    pd.DataFrame(SUMMARIES).to_parquet(folder / "summaries.parquet")
    assert_reported(folder, "summaries.csv", None, None, "give the table either as summaries.csv")


def test_corrupt_parquet(tmp_path):
    folder = make(tmp_path, summaries=None)
    (folder / "summaries.parquet").write_bytes(b"not a parquet file")
    assert_reported(folder, "summaries.parquet", None, None, "file could not be read as Parquet")


def test_missing_folder_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "study"
    with pytest.raises(DatasetNotFoundError, match="dataset folder not found: .*nowhere"):
        read_dataset(missing)


def test_file_instead_of_folder(tmp_path):
    folder = make(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="is a file"):
        read_dataset(folder / "subjects.csv")


def test_unknown_bundled_name_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BayesBlinaError, match="no dataset folder 'no-such-dataset' exists"):
        read_dataset("no-such-dataset")


def test_missing_registry_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "bayes_blina.data.registry", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="bundled datasets are not available"):
        read_dataset("published")


def test_bundled_dataset_reads_every_folder(monkeypatch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(MINIMAL, a)
    b.mkdir()
    write_csv(b / "aggregates.csv", AGGREGATES)

    def bundled_folders(name):
        if name != "fake":
            raise BayesBlinaError(f"unknown bundled dataset {name!r}; valid: fake")
        return [a, b]

    module = types.ModuleType("bayes_blina.data.registry")
    module.bundled_folders = bundled_folders
    monkeypatch.setitem(sys.modules, "bayes_blina.data.registry", module)
    monkeypatch.chdir(tmp_path)
    ds = read_dataset("fake")
    assert ds.origin == "bundled:fake" and ds.name == "fake"
    assert len(ds.subjects) == 3 and len(ds.aggregates) == 3
    with pytest.raises(DatasetNotFoundError, match="valid: fake"):
        read_dataset("other")


def test_blank_lines_keep_row_numbers(tmp_path):
    folder = make(tmp_path)
    text = (folder / "subjects.csv").read_text().splitlines()
    text.insert(2, "")  # a blank line after data row 1
    text[-1] = text[-1].replace(",30,", ",300,")  # data row 3 is bad
    (folder / "subjects.csv").write_text("\n".join(text) + "\n\n")
    # the blank line still counts, so the row number is the editor line minus one
    assert_reported(folder, "subjects.csv", "age_years", 4, "age_years must be >= 0 and < 120")


def test_several_problems_in_several_tables_in_one_error(tmp_path):
    folder = make(
        tmp_path,
        subjects=edited("subjects", 2, age_years="200"),
        dosing=edited("dosing", 1, dose="-1"),
        observations=edited("observations", 2, unit="mmol/L"),
        aggregates=edited("aggregates", 2, responders="11"),
        summaries=edited("summaries", 1, source=""),
    )
    (folder / "extra.txt").write_text("ignored")
    with pytest.raises(DataValidationError) as err:
        read_dataset(folder)
    files = {p.file for p in err.value.problems}
    assert files == {"subjects.csv", "dosing.csv", "observations.csv", "aggregates.csv",
                     "summaries.csv"}
    assert len(err.value.problems) == 5
    assert str(err.value).startswith("5 problem(s) in the input data, 5 kinds:")


# ------------------------------------------------------------------------------------------------
# Canonical form
# ------------------------------------------------------------------------------------------------

def test_canonical_subjects(tmp_path):
    rows = edited("subjects", 1, age_group="7 to 17", blast_burden="≥ 50%")
    ds = read_dataset(make(tmp_path, subjects=rows))
    s = ds.subjects.set_index("subject_id")
    assert s["age_group"].tolist() == ["7-17", "2-6", "adult"]
    assert s.loc["S1", "blast_burden"] == ">=50" and s.loc["S2", "blast_burden"] == "<50"
    assert pd.isna(s.loc["S3", "blast_burden"])
    assert s["prior_relapses_group"].tolist()[:2] == ["1", ">=3"]
    assert str(s["prior_hsct"].dtype) == "boolean" and str(s["response"].dtype) == "Int64"
    assert s["response"].tolist()[:2] == [1, 0] and pd.isna(s.loc["S3", "response"])
    assert s.loc["S2", "refractory"] is np.True_ or bool(s.loc["S2", "refractory"]) is True


def test_canonical_dosing(tmp_path):
    ds = read_dataset(make(tmp_path))
    d = ds.dosing
    assert d["dose_ug_m2_day"].tolist() == pytest.approx([5, 15, 15])  # 27 ug/day / 1.8 m2
    assert d["dose_unit"].tolist() == ["ug/m2/day", "ug/m2/day", "ug/day"]
    assert str(d["cycle"].dtype) == "int64"


def test_canonical_observations(tmp_path):
    ds = read_dataset(make(tmp_path))
    o = ds.observations
    assert o["analyte"].tolist() == ["IL6", "IL6", "CD3", "IFNG"]
    assert o["unit"].tolist() == ["pg/mL", "pg/mL", "cells/uL", "pg/mL"]
    assert o["value"].iloc[2] == pytest.approx(300.0)
    assert o["lloq"].iloc[0] == 125.0 and o["limit_source"].tolist() == ["default", "", "",
                                                                         "row"]
    assert o["below"].tolist() == ["LLOQ", "", "", "LOD"]


def test_value_on_censored_row_is_kept(tmp_path):
    rows = edited("observations", 1, value="80")
    o = read_dataset(make(tmp_path, observations=rows)).observations
    assert o["value"].iloc[0] == 80.0 and o["below"].iloc[0] == "LLOQ"


def test_limits_are_converted(tmp_path):
    rows = edited("observations", 4, unit="ng/mL", lod="0.02", lloq="0.125")
    o = read_dataset(make(tmp_path, observations=rows)).observations
    assert o["lod"].iloc[3] == pytest.approx(20) and o["lloq"].iloc[3] == pytest.approx(125)


def test_canonical_aggregates_and_summaries(tmp_path):
    ds = read_dataset(make(tmp_path))
    a = ds.aggregates
    assert a["endpoint"].tolist() == ["CR", "CR", "CR"]
    assert a["level"].tolist() == ["all", "<2", "2-6"]
    assert a["regimen"].iloc[0] == "5-15:60;15:10"
    assert str(a["n"].dtype) == "int64"
    s = ds.summaries
    assert s["analyte"].iloc[0] == "IL6" and s["unit"].iloc[0] == "pg/mL"
    assert s["value"].iloc[0] == pytest.approx(200.0)


def test_summary_without_analyte_is_accepted(tmp_path):
    rows = SUMMARIES + [dict(study="PED", quantity="os_median", analyte="", statistic="median",
                             value="7.5", unit="months", source="Fig 4")]
    s = read_dataset(make(tmp_path, summaries=rows)).summaries
    assert pd.isna(s["analyte"].iloc[1]) and s["unit"].iloc[1] == "months"


def test_column_names_are_case_insensitive_and_extras_kept(tmp_path):
    rows = [{("Subject_ID " if k == "subject_id" else k.upper()): v for k, v in r.items()}
            for r in SUBJECTS]
    for r in rows:
        r["site"] = "Berlin"
    ds = read_dataset(make(tmp_path, subjects=rows))
    assert ds.subjects["subject_id"].tolist() == ["S1", "S2", "S3"]
    assert ds.subjects["site"].tolist() == ["Berlin"] * 3


@pytest.mark.parametrize("text, family, expected", [
    ("< 2", "age_group", "<2"), ("2 to 6", "age_group", "2-6"),
    ("7–17 years", "age_group", "7-17"),
    (">=18", "age_group", "adult"), ("≥ 50%", "blast_burden", ">=50"), ("Yes", None, "yes"),
    ("No", "prior_hsct", "no"), ("≥3", "prior_relapses", ">=3"), ("3+", None, ">=3"),
    ("EU", "region", "EU"), ("Overall", "all", "all"),
])
def test_level_vocabulary(text, family, expected):
    assert normalise_level(text, family) == expected


@pytest.mark.parametrize("text, expected", [
    ("5/15", "5-15"), ("5 - 15", "5-15"), ("15", "15"), ("5→15→30", "5-15-30"),
    ("15.0", "15"), ("5-15 µg/m²/d", "5-15"),
])
def test_regimen_labels(text, expected):
    assert normalise_regimen(text) == expected


def test_validate_dataset_accepts_typed_frames():
    subjects = pd.DataFrame({"subject_id": ["A", "B"], "study": ["X", "X"],
                             "regimen": ["15", "5/15"], "age_years": [5.0, np.nan],
                             "response": pd.array([1, None], dtype="Int64")})
    ds = validate_dataset({"subjects": subjects}, {"subjects": "subjects.csv"})
    assert ds.subjects["regimen"].tolist() == ["15", "5-15"]
    assert ds.subjects["age_group"].iloc[0] == "2-6"


def test_screening_window_is_configurable():
    obs = pd.DataFrame(OBSERVATIONS).assign(time_h=["-600", "6", "24", "6"])
    _, problems = validate_observations(obs, screening_window_h=720.0)
    assert problems == []
    _, problems = validate_observations(obs)
    assert [p.row for p in problems] == [1]


# ------------------------------------------------------------------------------------------------
# Writing and round trips
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("folder", [MINIMAL, EXAMPLE], ids=["minimal", "example-study"])
def test_round_trip_keeps_hash(tmp_path, folder):
    ds = read_dataset(folder)
    out = write_dataset(ds, tmp_path / "copy")
    again = read_dataset(out)
    assert again.sha256() == ds.sha256()
    assert set(again.tables()) == set(ds.tables())


def test_round_trip_of_every_table(tmp_path):
    ds = read_dataset(make(tmp_path))
    again = read_dataset(write_dataset(ds, tmp_path / "copy"))
    assert again.sha256() == ds.sha256()


def test_parquet_tables_give_the_same_hash(tmp_path):
    ds = read_dataset(MINIMAL)
    folder = tmp_path / "pq"
    folder.mkdir()
    for name, df in ds.tables().items():
        df.to_parquet(folder / f"{name}.parquet")
    assert read_dataset(folder).sha256() == ds.sha256()


def test_write_refuses_non_empty_folder(tmp_path):
    ds = read_dataset(MINIMAL)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DatasetExistsError, match="not empty"):
        write_dataset(ds, out)
    assert (out / "notes.txt").read_text() == "keep me"
    write_dataset(ds, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["dosing.csv", "observations.csv",
                                                     "subjects.csv"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_write_into_empty_existing_folder(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    write_dataset(read_dataset(MINIMAL), out)
    assert (out / "subjects.csv").exists()


def test_minimal_dataset_content():
    ds = read_dataset(MINIMAL)
    assert isinstance(ds, Dataset) and ds.name == "minimal"
    assert len(ds.subjects) == 3 and ds.aggregates is None
    assert (ds.observations["below"] != "").sum() >= 3


def test_overlaps_name_the_segment_that_ends_latest_across_unsorted_rows_and_patients(tmp_path):
    """The vectorised segment check (issue 21: a loop over patients took seconds at 10,000):
    each overlap names the earlier segment with the latest end, whatever the file's row order."""
    seg = lambda sid, s, e: dict(subject_id=sid, cycle="1", start_h=s, end_h=e, dose="15", dose_unit="ug/m2/day")  # noqa: E731
    dosing = [seg("S3", "300", "400"),  # row 1: inside S3's long first segment (row 4)
              seg("S1", "0", "168"),    # row 2
              seg("S3", "100", "200"),  # row 3: inside row 4 too
              seg("S3", "0", "500"),    # row 4
              seg("S1", "168", "672")]  # row 5: no overlap (touches row 2)
    message = problems_of(make(tmp_path, dosing=dosing))
    assert "dosing.csv, column 'start_h', row 3: segments of one patient must not overlap (row 4 ends at 500 h)" in message
    assert "dosing.csv, column 'start_h', row 1: segments of one patient must not overlap (row 4 ends at 500 h)" in message
    assert "row 5" not in message and "row 2" not in message


_TRICKY_NUMBERS = ["1", "+1", "-0", ".5", "5.", "1e5", "-2.5E-3", "0.1e-0", "00012.5000", "1e400",
                   "4.9e-325", "1_0", " 1", "inf", "nan", "0x10", "\u0663", "1,5", "", "e5", "."]


def test_numbers_parse_the_same_in_arrow_and_in_python(monkeypatch):
    from bayes_blina.data import schema

    rng = np.random.default_rng(11)
    x = rng.standard_normal(2000) * 10.0 ** rng.integers(-300, 300, 2000)
    cells = np.array(_TRICKY_NUMBERS + [repr(float(v)) for v in x], dtype=object)
    fast = schema._parse_numbers(cells)
    monkeypatch.setattr(schema, "_pa", None)
    slow = schema._parse_numbers(cells)
    assert np.array_equal(fast[0], slow[0])
    assert np.array_equal(fast[1], slow[1], equal_nan=True)
    ok = dict(zip(_TRICKY_NUMBERS, fast[0]))
    assert ok["5."] and ok["+1"] and ok["1e400"] and not ok["\u0663"] and not ok["inf"]
    assert np.array_equal(fast[1][len(_TRICKY_NUMBERS):], x)  # round trip of repr is exact


def test_a_digit_of_another_script_is_not_a_number():
    subjects = pd.DataFrame({"subject_id": ["P1"], "regimen": ["15"], "age_years": ["40"],
                             "blast_pct": ["60"], "response": ["1"]})
    obs = pd.DataFrame({"subject_id": ["P1"], "analyte": ["IL6"], "time_h": ["\u0663"],
                        "value": ["12"], "unit": ["pg/mL"]})
    with pytest.raises(DataValidationError) as err:
        validate_dataset({"subjects": subjects, "observations": obs})
    assert [(p.column, p.row, p.rule) for p in err.value.problems
            if p.file == "observations.csv"] == [("time_h", 1, "time_h must be a number")]
