"""Real ADaM files nobody here wrote: the CDISC pilot (PHUSE Test Data Factory), issue 23.

The files are in ``tests/data/cdisc-pilot`` as published (ADSL, ADTTE) or cut to 25 subjects
(ADLBHY); the mapping file there is all a user writes: no file is edited.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pyreadstat
import pytest
from click.testing import CliRunner

from bayes_blina.cli import main
from bayes_blina.data.adam import read_adam
from bayes_blina.errors import DataValidationError

PILOT = Path(__file__).parent / "data" / "cdisc-pilot"
ADSL, ADLB, ADTTE, MAPPING = (PILOT / f for f in ("adsl.xpt", "adlbhy.xpt", "adtte.xpt", "mapping.toml"))


def _records(path) -> int:
    return len(pyreadstat.read_xport(str(path))[0])


def test_without_a_mapping_every_kind_of_problem_shows_in_one_screenful():
    with pytest.raises(DataValidationError) as err:
        read_adam(ADSL, ADLB)
    problems = err.value.problems
    assert len(problems) == 254 + 12  # one per unmapped subject, one per early visit record
    message = str(err.value)
    lines = message.splitlines()
    assert len(lines) <= 12, message
    assert lines[0] == "266 problem(s) in the input data, 2 kinds:"
    # the 254 regimen problems read as one kind with one line per arm, counted
    assert "found 'Placebo' in rows 1-2, 6, 10-11, 15, 20, 22, 31, 33, ... (86 rows)" in message
    assert "found 'Xanomeline High Dose' in rows" in message and "(84 rows)" in message
    # ... so the visit-window problem behind them is visible, quoting the file's own ADY value
    assert "variable 'ADY': ADY must not be more than the screening window of 504 h (21 days)" in message
    assert "found '-26' in rows 823-825, 937-939 (6 rows)" in message
    assert "-624" not in message  # the hours ADY was turned into are not the value in the file


def test_the_pilot_imports_with_a_mapping_file_alone_and_every_record_is_accounted_for():
    ds = read_adam(ADSL, ADLB, mapping=MAPPING)
    skipped = ds.meta["skipped"]
    assert skipped["adsl.xpt: subjects of TRT01P 'Placebo' (mapped to skip in [regimen])"] == 86
    assert len(ds.subjects) == 254 - 86 == 168
    assert set(ds.subjects["regimen"]) == {"5", "15"}
    # every ADLBHY record is either an observation or left out with its reason
    adlb_left = {k: n for k, n in skipped.items() if k.startswith("adlbhy.xpt")}
    assert len(ds.observations) + sum(adlb_left.values()) == _records(ADLB) == 948
    assert adlb_left == {
        "adlbhy.xpt: records of subjects left out of ADSL (where, or an arm mapped to skip)": 414,
        "adlbhy.xpt: derived parameters (PARAMTYP = DERIVED) BILIHY": 89,
        "adlbhy.xpt: derived parameters (PARAMTYP = DERIVED) TRANSHY": 89,
        "adlbhy.xpt: derived parameters (PARAMTYP = DERIVED) HYLAW": 89,
        "adlbhy.xpt: records more than 504 h (21 days) before the first infusion start": 9,
        "adlbhy.xpt: records without a result (AVAL empty, no below-limit flag)": 1,
    }
    assert set(ds.observations["analyte"]) == {"ALT", "AST", "BILI"}
    # bilirubin in umol/L (the unit in PARAM) is stored in mg/dL
    bili = ds.observations[ds.observations["analyte"] == "BILI"]
    assert set(bili["unit"]) == {"mg/dL"} and bili["value"].astype(float).max() < 5
    assert ds.observations["time_h"].astype(float).min() >= -504


def test_a_wider_window_keeps_the_screening_visits():
    ds = read_adam(ADSL, ADLB, mapping=MAPPING, screening_window_h=24.0 * 90)
    assert not any("screening" in k or "before the first" in k for k in ds.meta["skipped"])
    assert len(ds.observations) == 257 + 9
    assert ds.observations["time_h"].astype(float).min() == -26 * 24.0  # ADY -26 (no day 0)


def test_an_adtte_without_survival_endpoints_is_an_error_not_empty_columns():
    with pytest.raises(DataValidationError, match=r"adtte.xpt, variable 'PARAMCD': no record has PARAMCD OS or "
                                                  r"RFS .*\[survival\] of the mapping file \(found 'TTDE'\)"):
        read_adam(ADSL, ADLB, mapping=MAPPING, adtte=ADTTE)


def test_an_adtte_passed_as_adrs_is_an_error_not_empty_responses():
    with pytest.raises(DataValidationError, match=r"no record has PARAMCD CR2CYC or BOR \(the response "
                                                  r"parameter\).*\(found 'TTDE'\)"):
        read_adam(ADSL, ADLB, adrs=ADTTE, mapping=MAPPING)


def test_the_command_line_lists_every_problem_on_request(tmp_path):
    args = ["import", "adam", "--adsl", str(ADSL), "--adlb", str(ADLB), "--out", str(tmp_path / "ds")]
    grouped = CliRunner().invoke(main, args)
    assert grouped.exit_code == 2 and "2 kinds" in grouped.output
    assert "add -v, or --problems FILE" in grouped.output
    table = tmp_path / "problems.csv"
    full = CliRunner().invoke(main, ["--problems", str(table), *args])
    assert full.exit_code == 2 and "wrote every problem (266)" in full.output
    with table.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 266 and rows[0].keys() == {"file", "column", "row", "rule", "value"}
    assert sum(r["value"] == "Placebo" for r in rows) == 86
    verbose = CliRunner().invoke(main, ["-v", *args])
    assert verbose.exit_code == 2 and verbose.output.count("\n  - ") == 266
    assert not (tmp_path / "ds").exists()


def test_the_command_line_options_for_the_screening_window(tmp_path):
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(MAPPING.read_text().replace('before_window = "skip"', ""))
    base = ["import", "adam", "--adsl", str(ADSL), "--adlb", str(ADLB), "--mapping", str(mapping)]
    refused = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "a")])
    assert refused.exit_code == 2 and "found '-26'" in refused.output
    skipped = CliRunner().invoke(main, [*base, "--before-window", "skip", "--out", str(tmp_path / "b")])
    assert skipped.exit_code == 0, skipped.output
    assert "left out: 9 adlbhy.xpt: records more than 504 h (21 days) before" in skipped.output
    wider = CliRunner().invoke(main, [*base, "--screening-window-days", "90", "--out", str(tmp_path / "c")])
    assert wider.exit_code == 0 and "before the first infusion start" not in wider.output


def test_mapping_options_are_checked():
    with pytest.raises(DataValidationError, match=r"options.before_window.*must be \"error\" or \"skip\""):
        read_adam(ADSL, mapping={"options": {"before_window": "drop"}})
    with pytest.raises(DataValidationError, match=r"options.screening_window_days.*days >= 0"):
        read_adam(ADSL, mapping={"options": {"screening_window_days": -1}})


def test_an_output_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    """A parent of --out that is a file ended in a FileExistsError traceback (exit 1)."""
    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(main, ["import", "adam", "--adsl", str(ADSL), "--adlb", str(ADLB), "--mapping",
                                    str(MAPPING), "--out", str(tmp_path / "afile" / "ds")])
    assert res.exit_code == 2 and "afile exists and is a file, not a folder" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
