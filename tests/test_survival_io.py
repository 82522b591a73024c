"""Survival columns through the ADaM (ADTTE, ADSL MRDCRFL) and NONMEM formats (issue 19).

Round trips keep the dataset hash; ADTTE records are read in its own terms (file, variable, row);
a dataset the patient-level formats cannot hold whole (DLT cohort counts) is refused, not
written with the table left out.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bayes_blina.data import read_dataset
from bayes_blina.data.adam import read_adam_folder, write_adam
from bayes_blina.data.nonmem import read_nonmem, write_nonmem
from bayes_blina.errors import BayesBlinaError, DataValidationError
from bayes_blina.simulate import simulate_cohort

COLUMNS = ["os_days", "os_event", "rfs_days", "rfs_event", "mrd_response", "hsct_days"]
EXAMPLE = Path(__file__).parent / "data" / "adam" / "example-csv"


@pytest.fixture(scope="module")
def cohort():
    ds, _ = simulate_cohort("pediatric-survival", 30, seed=2)
    assert ds.subjects["rfs_days"].notna().any() and ds.subjects["os_event"].eq(0).any()
    assert ds.subjects["hsct_days"].notna().any()
    return ds


@pytest.mark.parametrize("fmt", ["csv", "xpt"])
def test_adam_round_trip_keeps_the_survival_columns_and_the_hash(cohort, fmt, tmp_path):
    if fmt == "xpt":  # SAS v5 names have at most 8 characters: leave out the long extra columns
        from bayes_blina.data.dataset import Dataset

        cohort = Dataset(subjects=cohort.subjects.drop(columns=["platelets_baseline"]), dosing=cohort.dosing,
                         observations=cohort.observations, name=cohort.name, origin=cohort.origin)
    write_adam(cohort, tmp_path / "adam", fmt)
    tte = tmp_path / "adam" / f"adtte.{fmt}"
    assert tte.is_file()
    back = read_adam_folder(tmp_path / "adam")
    pd.testing.assert_frame_equal(back.subjects[COLUMNS], cohort.subjects[COLUMNS])
    assert back.sha256() == cohort.sha256()


def test_nonmem_round_trip_keeps_the_survival_columns_and_the_hash(cohort, tmp_path):
    write_nonmem(cohort, tmp_path / "nm.csv")
    back = read_nonmem(tmp_path / "nm.csv")
    pd.testing.assert_frame_equal(back.subjects[COLUMNS], cohort.subjects[COLUMNS])
    assert back.sha256() == cohort.sha256()


def _example_with_adtte(tmp_path, rows):
    folder = tmp_path / "adam"
    shutil.copytree(EXAMPLE, folder)
    pd.DataFrame(rows, columns=["STUDYID", "USUBJID", "PARAMCD", "AVAL", "AVALU", "CNSR"]).to_csv(
        folder / "adtte.csv", index=False)
    return folder


def test_adtte_units_censoring_codes_and_a_mapping(tmp_path):
    folder = _example_with_adtte(tmp_path, [
        ["EXAMPLE", "EX01", "OS", "2", "MONTHS", "0"],
        ["EXAMPLE", "EX02", "OS", "3", "WEEKS", "2"],      # any positive code is censored
        ["EXAMPLE", "EX02", "PFS", "1", "DAYS", "0"],      # another parameter: not read
        ["EXAMPLE", "EX03", "OSX", "100", "", "1"],
    ])
    ds = read_adam_folder(folder)
    s = ds.subjects.set_index("subject_id")
    assert s.loc["EX01", "os_days"] == pytest.approx(60.875) and s.loc["EX01", "os_event"] == 1
    assert s.loc["EX02", "os_days"] == 21.0 and s.loc["EX02", "os_event"] == 0
    assert pd.isna(s.loc["EX03", "os_days"])
    mapped = read_adam_folder(folder, mapping={"survival": {"os": ["OS", "OSX"]}}).subjects.set_index("subject_id")
    assert mapped.loc["EX03", "os_days"] == 100.0 and mapped.loc["EX03", "os_event"] == 0


def test_adtte_problems_are_named_in_its_terms(tmp_path):
    folder = _example_with_adtte(tmp_path, [
        ["EXAMPLE", "EX01", "OS", "x", "DAYS", "0"],
        ["EXAMPLE", "EX02", "OS", "10", "FORTNIGHTS", "0"],
        ["EXAMPLE", "EX03", "OS", "10", "DAYS", "-1"],
        ["EXAMPLE", "NOBODY", "OS", "10", "DAYS", "0"],
        ["EXAMPLE", "EX04", "OS", "10", "DAYS", "0"],
        ["EXAMPLE", "EX04", "OS", "12", "DAYS", "0"],
    ])
    with pytest.raises(DataValidationError) as err:
        read_adam_folder(folder)
    got = [str(p) for p in err.value.problems]
    assert "adtte.csv, variable 'AVAL', row 1: AVAL must be a number (time from the first infusion start) (found 'x')" in got
    assert any(g.startswith("adtte.csv, variable 'AVALU', row 2: AVALU must be DAYS") for g in got)
    assert any(g.startswith("adtte.csv, variable 'CNSR', row 3:") for g in got)
    assert any(g.startswith("adtte.csv, variable 'USUBJID', row 4: USUBJID must be a subject of") for g in got)
    assert any(g.startswith("adtte.csv, variable 'PARAMCD', row 6: ADTTE must have one record per subject") for g in got)
    with pytest.raises(DataValidationError, match="'survival.dfs': unknown key; keys are os, rfs"):
        read_adam_folder(folder, mapping={"survival": {"dfs": "DFS"}})


def test_exports_refuse_a_dataset_with_dlt_counts(tmp_path):
    ds = read_dataset("vonstackelberg2016-escalation")
    for write in (lambda: write_adam(ds, tmp_path / "a"), lambda: write_nonmem(ds, tmp_path / "n.csv")):
        with pytest.raises(BayesBlinaError, match="dlt|patient-level"):
            write()
    assert not (tmp_path / "a").exists() and not (tmp_path / "n.csv").exists()
