"""NONMEM files as other tools write them (issue 23): text DVID codes, hints that lead somewhere,
units that are said, not assumed silently."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from bayes_blina.cli import main
from bayes_blina.data.nonmem import read_nonmem
from bayes_blina.errors import DataValidationError

TEXT_DVID = ("ID,TIME,EVID,AMT,RATE,CMT,DVID,DV,STUDY,REGIMEN\n"
             "1,0,1,420,0.625,1,0,.,S,15\n"
             "1,24,0,0,0,1,cp,600,S,15\n"
             "1,30,0,0,0,2,il6,35,S,15\n")


def _write(tmp_path, text, name="data.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_text_dvid_codes_as_pharmpy_writes_them(tmp_path):
    ds = read_nonmem(_write(tmp_path, TEXT_DVID), analyte_by_dvid={"cp": "BLINA", "IL6": "IL6"})
    assert ds.observations["analyte"].tolist() == ["BLINA", "IL6"]


def test_an_unknown_dvid_names_the_flag_that_maps_it(tmp_path):
    with pytest.raises(DataValidationError) as err:
        read_nonmem(_write(tmp_path, TEXT_DVID))
    text = str(err.value)
    assert "column 'DVID', row 2: DVID must be one of" in text
    assert "(--analyte-by-dvid CODE=ANALYTE, e.g. --analyte-by-dvid cp=IL6) (found 'cp')" in text


def test_the_command_line_takes_text_dvid_codes_and_says_what_it_assumed(tmp_path):
    res = CliRunner().invoke(main, ["import", "nonmem", str(_write(tmp_path, TEXT_DVID)), "--out",
                                    str(tmp_path / "ds"), "--analyte-by-dvid", "cp=BLINA,il6=IL6"])
    assert res.exit_code == 0, res.output
    assert "assumed: doses in ug/m2/day (the file has no DOSU column" in res.output
    assert ("assumed: results in each analyte's package unit (the file has no UNIT column): BLINA pg/mL, "
            "IL6 pg/mL") in res.output
    bad = CliRunner().invoke(main, ["import", "nonmem", str(_write(tmp_path, TEXT_DVID)), "--out",
                                    str(tmp_path / "ds2"), "--analyte-by-cmt", "one=BLINA"])
    assert bad.exit_code == 2 and "codes must be whole numbers" in bad.output


def test_nothing_is_assumed_when_the_file_says_it(tmp_path):
    text = ("ID,TIME,EVID,AMT,RATE,CMT,DVID,DV,UNIT,DOSU,STUDY,REGIMEN\n"
            "1,0,1,420,0.625,1,0,.,.,ug/m2/day,S,15\n"
            "1,24,0,0,0,1,1,600,pg/mL,.,S,15\n")
    ds = read_nonmem(_write(tmp_path, text))
    assert ds.meta["assumed"] == []


def test_a_reset_that_restarts_the_clock_is_refused_naming_the_row(tmp_path):
    """Multi-occasion files restart TIME at an EVID 4 reset; read as they are, the second occasion's
    infusions landed on the first's and failed later as overlapping segments."""
    text = ("ID,TIME,EVID,AMT,RATE,CMT,DVID,DV,STUDY,REGIMEN\n"
            "1,0,1,420,0.625,1,0,.,S,15\n"
            "1,24,0,0,0,1,1,600,S,15\n"
            "1,0,4,420,0.625,1,0,.,S,15\n"
            "1,24,0,0,0,1,1,610,S,15\n")
    with pytest.raises(DataValidationError) as err:
        read_nonmem(_write(tmp_path, text))
    assert ("data.csv, column 'TIME', row 3: TIME must not go back at a reset (EVID 4; row 2 has TIME 24)"
            in str(err.value))
    assert "overlap" not in str(err.value)
    continuing = text.replace("1,0,4,420", "1,1008,4,420").replace("1,24,0,0,0,1,1,610", "1,1032,0,0,0,1,1,610")
    ds = read_nonmem(_write(tmp_path, continuing))
    assert ds.dosing["start_h"].astype(float).tolist() == [0.0, 1008.0]


def test_a_regimen_that_cannot_be_derived_names_the_id_in_the_rule_not_as_a_value(tmp_path):
    text = ("ID,TIME,EVID,AMT,RATE,CMT,DVID,DV,STUDY\n"
            "7,0,1,0,0,1,0,.,S\n"
            "7,24,0,0,0,1,1,600,S\n")
    with pytest.raises(DataValidationError) as err:
        read_nonmem(_write(tmp_path, text))
    [problem] = [p for p in err.value.problems if p.column == "REGIMEN"]
    assert problem.value is None
    assert "the regimen of ID 7 cannot be derived from its dose records" in problem.rule
