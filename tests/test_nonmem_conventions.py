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
