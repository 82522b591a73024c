"""CDISC spellings and sponsor conventions the ADaM reader must understand (issue 23)."""
from __future__ import annotations

import csv
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
