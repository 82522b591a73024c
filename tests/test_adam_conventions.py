"""CDISC spellings and sponsor conventions the ADaM reader must understand (issue 23)."""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pytest

from bayes_blina.data.adam import read_adam_folder
from bayes_blina.data.units import convert, normalise_unit
from bayes_blina.errors import DataValidationError

EXAMPLE = Path(__file__).parent / "data" / "adam" / "example-csv"


def _folder(tmp_path, file: str, edit) -> Path:
    """The example ADaM folder with ``edit(rows)`` applied to one file's records."""
    out = tmp_path / "adam"
    shutil.copytree(EXAMPLE, out)
    with open(out / file, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = list(reader.fieldnames), list(reader)
    fields = edit(rows) or fields
    with open(out / file, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return out


@pytest.mark.parametrize("unit, canonical", [("GI/L", "10^9/L"), ("gi/l", "10^9/L"), ("TI/L", "10^12/L"),
                                             ("MI/L", "10^6/L"), ("G/L", "10^9/L")])
def test_cdisc_controlled_terminology_units(unit, canonical):
    assert normalise_unit(unit) == canonical


def test_platelets_in_gi_per_litre_are_converted():
    assert convert([150.0], "GI/L", "PLT")[0] == convert([150.0], "10^9/L", "PLT")[0] == 150_000.0
    assert convert([4.5], "TI/L", "PLT")[0] == 4.5e6


@pytest.mark.parametrize("token", ["<BLQ", "< BLQ", "<BQL", "BELOW LLOQ"])
def test_below_limit_spellings_in_the_character_result(tmp_path, token):
    def edit(rows):
        rows[0]["AVALC"] = token  # the pre-dose IL-6 record, AVAL empty

    ds = read_adam_folder(_folder(tmp_path, "adlb.csv", edit))
    first = ds.observations[(ds.observations["subject_id"] == "EX01") & (ds.observations["analyte"] == "IL6")]
    assert first.iloc[0]["below"] == "LLOQ"


def test_pcstresc_is_read_when_there_is_no_avalc(tmp_path):
    def edit(rows):
        for r in rows:
            r["PCSTRESC"] = r.pop("AVALC").replace("BLQ", "<BLQ")
        return ["STUDYID", "USUBJID", "PARAMCD", "PARAM", "AVAL", "PCSTRESC", "AVALU", "ALLOQ", "ALOD",
                "AFRLT", "FRLTU", "ADTM"]

    ds = read_adam_folder(_folder(tmp_path, "adpc.csv", edit))
    blina = ds.observations[ds.observations["analyte"] == "BLINA"]
    assert (blina["below"] == "LLOQ").sum() >= 1


def test_a_zero_below_the_records_own_limit_is_not_read_as_a_value(tmp_path):
    """Sponsors write AVAL 0 for pre-dose concentrations below the limit: read as a value it was an
    uncensored zero below its own LLOQ."""
    def edit(rows):
        rows[0].update(AVAL="0", AVALC="", ALLOQ="50")  # BLINA pre-dose... no flag

    folder = _folder(tmp_path, "adpc.csv", edit)
    with pytest.raises(DataValidationError, match=r"adpc.csv, variable 'AVAL', row 1: a result of 0 below the "
                                                  r"record's own limit \(50\) without a below-limit flag"):
        read_adam_folder(folder)
    (folder / "mapping.toml").write_text((EXAMPLE / "mapping.toml").read_text()
                                         + '\n[options]\nzero_results = "below_lloq"\n')
    ds = read_adam_folder(folder)
    row = ds.observations[(ds.observations["analyte"] == "BLINA")].iloc[0]
    assert row["below"] == "LLOQ" and float(row["lloq"]) == 50.0


def test_a_zero_count_without_a_limit_stays_a_value():
    ds = read_adam_folder(EXAMPLE)
    cd19 = ds.observations[(ds.observations["analyte"] == "CD19") & (ds.observations["value"] == 0)]
    assert len(cd19) >= 1 and (cd19["below"] == "").all()


def _date_only_trtsdtm(rows):
    for r in rows:
        r["TRTSDTM"] = r["TRTSDTM"][:10]  # as R writes it: 2020-01-01


def test_a_date_only_first_dose_serves_study_day_times(tmp_path):
    """R writes TRTSDTM as a date; with times from ADY (day resolution) nothing needs the hour."""
    folder = _folder(tmp_path, "adsl.csv", _date_only_trtsdtm)
    for name in ("adex.csv", "adpc.csv"):
        (folder / name).unlink()

    def by_day(rows):
        for r in rows:
            h = float(r.pop("AFRLT"))
            r.pop("FRLTU"), r.pop("ADTM")
            r["ADY"] = str(math.floor(h / 24) + (1 if h >= 0 else 0))  # no day 0
        return ["STUDYID", "USUBJID", "PARAMCD", "PARAM", "AVAL", "AVALC", "AVALU", "ALLOQ", "ALOD", "ADY"]

    src = _folder(tmp_path / "x", "adlb.csv", by_day)
    shutil.copy(src / "adlb.csv", folder / "adlb.csv")
    ds = read_adam_folder(folder)
    assert len(ds.observations) > 0 and (ds.dosing is None or len(ds.dosing) == 0)
    assert ds.observations["time_h"].astype(float).min() == -48.0  # AFRLT -48 h: day -2


def test_a_date_only_first_dose_is_refused_where_hours_are_measured_from_it(tmp_path):
    folder = _folder(tmp_path, "adsl.csv", _date_only_trtsdtm)
    (folder / "adex.csv").unlink()

    def clock_times(rows):  # observation times from ADTM only
        for r in rows:
            r.pop("AFRLT"), r.pop("FRLTU")
        return ["STUDYID", "USUBJID", "PARAMCD", "PARAM", "AVAL", "AVALC", "AVALU", "ALLOQ", "ALOD", "ADTM"]

    src = _folder(tmp_path / "x", "adlb.csv", clock_times)
    shutil.copy(src / "adlb.csv", folder / "adlb.csv")
    (folder / "adpc.csv").unlink()
    with pytest.raises(DataValidationError, match=r"adlb.csv, variable 'ADTM'.*first dose \(TRTSDTM\) is a date "
                                                  r"without a time"):
        read_adam_folder(folder)


@pytest.mark.parametrize("unit, factor, canonical", [("mg/day", 1000.0, "ug/day"), ("MG/M2/DAY", 1000.0, "ug/m2/day"),
                                                     ("ug/m2/day", 1.0, "ug/m2/day")])
def test_daily_doses_in_mg_are_converted_to_ug(tmp_path, unit, factor, canonical):
    def edit(rows):
        for r in rows:
            r["EXDOSE"] = str(float(r["EXDOSE"]) / factor)
            r["EXDOSU"] = unit

    ds = read_adam_folder(_folder(tmp_path, "adex.csv", edit))
    base = read_adam_folder(EXAMPLE)
    assert set(ds.dosing["dose_unit"]) == {canonical}
    if canonical == "ug/m2/day":
        assert ds.dosing["dose"].astype(float).tolist() == pytest.approx(base.dosing["dose"].astype(float).tolist())


def test_a_sites_own_dose_unit_spelling_is_mapped(tmp_path):
    def edit(rows):
        for r in rows:
            r["EXDOSE"] = str(float(r["EXDOSE"]) / 1000.0)
            r["EXDOSU"] = "MG"  # per day in this sponsor's files, which only the mapping can say

    folder = _folder(tmp_path, "adex.csv", edit)
    with pytest.raises(DataValidationError, match=r"dose_unit must be 'ug/m2/day' or 'ug/day' \(found 'MG'\)"):
        read_adam_folder(folder)
    (folder / "mapping.toml").write_text((EXAMPLE / "mapping.toml").read_text() + '\n[dose_units]\nMG = "mg/m2/day"\n')
    ds = read_adam_folder(folder)
    assert ds.dosing["dose"].astype(float).tolist() == pytest.approx(
        read_adam_folder(EXAMPLE).dosing["dose"].astype(float).tolist())
    (folder / "mapping.toml").write_text((EXAMPLE / "mapping.toml").read_text() + '\n[dose_units]\nMG = "mg"\n')
    with pytest.raises(DataValidationError, match=r"dose_units.MG.*must be a daily dose unit"):
        read_adam_folder(folder)
