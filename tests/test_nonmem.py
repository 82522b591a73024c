"""NONMEM-style event files: infusion records, M3 censoring, covariates, exact round trips."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_blina.cli.import_export import export_group, import_group
from bayes_blina.data import Dataset, read_dataset
from bayes_blina.data.nonmem import DVID, read_nonmem, write_nonmem
from bayes_blina.data.schema import validate_dataset
from bayes_blina.errors import BayesBlinaError, DataValidationError

HERE = Path(__file__).parent
MINIMAL = HERE / "data" / "minimal"
EXAMPLE = HERE.parent / "examples" / "data" / "example-study"
NONMEM = HERE / "data" / "nonmem"

HEADER = "ID,SUBJID,TIME,EVID,MDV,AMT,RATE,CMT,DV,ANALYTE,UNIT,BLQ,LLOQ,STUDY,REGIMEN,BSA\n"


@pytest.fixture(scope="module")
def example() -> Dataset:
    return read_dataset(EXAMPLE)


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def messages(err: pytest.ExceptionInfo) -> list[str]:
    return [str(p) for p in err.value.problems]


# ------------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source", [MINIMAL, EXAMPLE], ids=["minimal", "example"])
def test_round_trip_keeps_the_hash(source, tmp_path):
    ds = read_dataset(source)
    write_nonmem(ds, tmp_path / "nm.csv")
    back = read_nonmem(tmp_path / "nm.csv")
    assert back.sha256() == ds.sha256()
    assert back.meta["skipped"] == {}


def test_round_trip_of_a_simulated_cohort(tmp_path):
    simulate = pytest.importorskip("bayes_blina.simulate")
    ds, _ = simulate.simulate_cohort("adult-exploratory", 6, seed=11)
    write_nonmem(ds, tmp_path / "nm.csv")
    assert read_nonmem(tmp_path / "nm.csv").sha256() == ds.sha256()


def test_committed_fixture_reads_as_the_example_study(example):
    assert read_nonmem(NONMEM / "example.csv").sha256() == example.sha256()


def test_sponsor_style_file():
    """C comments, numeric IDs only, DVID, no UNIT/LLOQ/CYCLE/REGIMEN, TIME from screening,
    a rate written to 7 digits, ADDL/II, EVID 2, MDV=1, covariate and time-varying extras."""
    ds = read_nonmem(NONMEM / "sponsor.csv", study="NMSTUDY")
    assert ds.sha256() == read_dataset(NONMEM / "sponsor-expected").sha256()
    assert ds.meta["skipped"] == {"EVID 2 records": 1,
                                  "observation records with MDV = 1 and no BLQ flag": 1}


def test_written_layout(tmp_path, example):
    path = write_nonmem(example, tmp_path / "nm.csv")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(df.columns[:16]) == ["ID", "SUBJID", "TIME", "EVID", "MDV", "AMT", "RATE", "DUR",
                                     "CMT", "DV", "DVID", "ANALYTE", "UNIT", "BLQ", "LLOQ", "LOD"]
    dose = df[(df.SUBJID == "EX01") & (df.EVID == "1")].iloc[0]
    assert (dose.TIME, dose.AMT, dose.RATE, dose.DUR, dose.DOSU) == \
        ("0", "35", "0.208333333333333", "168", "ug/m2/day")  # 5 ug/m2/day for 7 days
    flat = df[(df.SUBJID == "EX05") & (df.EVID == "1")].iloc[0]
    assert (flat.AMT, flat.RATE, flat.DOSU) == ("714", "1.0625", "ug/day")
    blq = df[(df.SUBJID == "EX02") & (df.ANALYTE == "IL10")].iloc[0]
    assert (blq.BLQ, blq.MDV, blq.DV, blq.LOD, blq.LLOQ) == ("2", "0", "20", "20", "125")
    default = df[(df.SUBJID == "EX01") & (df.ANALYTE == "IL6") & (df.TIME == "-48")].iloc[0]
    assert (default.BLQ, default.DV, default.LLOQ) == ("1", "0", ".")  # assay default applies
    assert df.groupby("ID").TIME.apply(lambda t: t.astype(float).is_monotonic_increasing).all()
    assert set(df[df.SUBJID == "EX06"].RESP) == {"-99"} and set(df.ID) == {"1", "2", "3", "4",
                                                                          "5", "6"}


def test_subject_without_records_gets_an_evid_2_record(tmp_path):
    ds = validate_dataset({"subjects": pd.DataFrame([dict(subject_id="A", study="S",
                                                          regimen="15", response="1")])})
    path = write_nonmem(ds, tmp_path / "nm.csv")
    assert path.read_text().splitlines()[1].startswith("1,A,0,2,1,")
    assert read_nonmem(path).sha256() == ds.sha256()


def test_censored_value_goes_to_cdv(tmp_path, example):
    obs = example.observations.copy()
    i = obs.index[(obs.below == "LLOQ") & (obs.analyte == "IL6")][0]
    obs.loc[i, "value"] = 60.0  # reported although below the LLOQ
    ds = example.with_tables(observations=obs)
    path = write_nonmem(ds, tmp_path / "nm.csv")
    assert "CDV" in path.read_text().splitlines()[0].split(",")
    assert read_nonmem(path).sha256() == ds.sha256()


# ------------------------------------------------------------------------------------------------
# Reading rules
# ------------------------------------------------------------------------------------------------

def test_infusion_records_to_segments(tmp_path):
    p = write(tmp_path, HEADER
              + "1,A,0,1,1,35,0.2083333,1,.,.,.,0,.,S,5-15,1.1\n"   # 5 for 168 h (7 digits)
              + "1,A,168,1,1,315,0.625,1,.,.,.,0,.,S,5-15,1.1\n"    # 15 until 672
              + "1,A,700,1,1,0,0,1,.,.,.,0,.,S,5-15,1.1\n")        # dose 0 needs DUR -> problem
    with pytest.raises(DataValidationError) as err:
        read_nonmem(p)
    assert messages(err) == ["data.csv, column 'RATE', row 3: a dose record with AMT 0 and RATE 0 "
                             "(an infusion at dose 0) needs DUR > 0 (hours) (found '0')"]
    p = write(tmp_path, HEADER.replace("BSA\n", "BSA,DUR\n")
              + "1,A,0,1,1,35,0.2083333,1,.,.,.,0,.,S,5-15,1.1,.\n"
              + "1,A,168,1,1,315,0.625,1,.,.,.,0,.,S,5-15,1.1,504\n"
              + "1,A,700,1,1,0,0,1,.,.,.,0,.,S,5-15,1.1,24\n")
    d = read_nonmem(p).dosing
    assert d[["start_h", "end_h", "dose", "cycle"]].values.tolist() == \
        [[0, 168, 5, 1], [168, 672, 15, 1], [700, 724, 0, 1]]


def test_m3_censoring(tmp_path):
    p = write(tmp_path, HEADER
              + "1,A,-2,0,0,0,0,2,50,IL6,pg/mL,1,.,S,15,1.1\n"    # DV holds the LLOQ
              + "1,A,-1,0,0,0,0,2,0,IL6,pg/mL,1,.,S,15,1.1\n"     # DV 0: assay default
              + "1,A,0,1,1,420,0.625,1,.,.,.,0,.,S,15,1.1\n"
              + "1,A,6,0,0,0,0,2,0,IL10,ng/mL,1,0.1,S,15,1.1\n"   # LLOQ column, own unit
              + "1,A,8,0,0,0,0,2,7,IL10,ng/mL,2,.,S,15,1.1\n")    # below the LOD, DV = LOD
    o = read_nonmem(p).observations
    got = o[["below", "lloq", "lod", "limit_source"]].fillna(-1).values.tolist()
    assert got == [["LLOQ", 50.0, -1, "row"], ["LLOQ", 125.0, -1, "default"],
                   ["LLOQ", 100.0, -1, "row"], ["LOD", -1, 7000.0, "row"]]
    assert o["value"].isna().all()
    assert o["time_h"].tolist() == [-2, -1, 6, 8]


def test_analyte_by_cmt_and_dvid(tmp_path):
    text = ("ID,TIME,EVID,AMT,RATE,CMT,DVID,DV,STUDY,REGIMEN\n"
            "1,0,1,420,0.625,1,0,.,S,15\n"
            f"1,24,0,0,0,1,{DVID['BLINA']},600,S,15\n"
            "1,24,0,0,0,3,7,350,S,15\n")
    ds = read_nonmem(write(tmp_path, text))
    assert ds.observations["analyte"].tolist() == ["BLINA", "IFNG"]
    assert ds.subjects["subject_id"].tolist() == ["1"]
    custom = read_nonmem(write(tmp_path, text), analyte_by_dvid={1: "BLINA", 7: "CD3"})
    assert custom.observations["analyte"].tolist() == ["BLINA", "CD3"]
    no_dvid = ("ID,TIME,EVID,AMT,RATE,CMT,DV,STUDY,REGIMEN\n"
               "1,0,1,420,0.625,1,.,S,15\n1,24,0,0,0,1,600,S,15\n1,24,0,0,0,3,350,S,15\n")
    ds = read_nonmem(write(tmp_path, no_dvid), analyte_by_cmt={1: "BLINA", 3: "IL-6"})
    assert ds.observations["analyte"].tolist() == ["BLINA", "IL6"]
    with pytest.raises(DataValidationError) as err:
        read_nonmem(write(tmp_path, no_dvid))
    assert messages(err) == ["data.csv, column 'CMT': the analyte of each observation needs an ANALYTE "
                             "column, a DVID column or CMT codes: give the analyte of each CMT with "
                             "analyte_by_cmt (--analyte-by-cmt, e.g. 1=BLINA,2=IL6) (found '1, 3')"]
    with pytest.raises(BayesBlinaError, match="not a known analyte"):
        read_nonmem(write(tmp_path, no_dvid), analyte_by_cmt={1: "wibble"})


def test_whitespace_separated_file_with_hash_header(tmp_path, example):
    csv_text = (NONMEM / "example.csv").read_text()
    lines = csv_text.splitlines()
    spaced = "#" + "\n".join(" ".join(ln.split(",")) for ln in lines) + "\n"
    assert read_nonmem(write(tmp_path, spaced, "data.txt")).sha256() == example.sha256()


def test_time_origin_is_the_first_dose(tmp_path):
    text = HEADER + ("1,A,10,0,0,0,0,2,900,IL6,pg/mL,0,.,S,15,1.1\n"
                     "1,A,48,1,1,420,0.625,1,.,.,.,0,.,S,15,1.1\n"
                     "1,A,54.1,0,0,0,0,2,1200,IL6,pg/mL,0,.,S,15,1.1\n")
    ds = read_nonmem(write(tmp_path, text))
    assert ds.observations["time_h"].tolist() == [-38, 6.1]
    assert ds.dosing[["start_h", "end_h"]].values.tolist() == [[0, 672]]


def test_regimen_derived_from_doses_when_no_column(tmp_path):
    text = ("ID,TIME,EVID,AMT,RATE,BSA,DOSU\n"
            "1,0,1,35,0.208333333333333,1.1,ug/m2/day\n1,168,1,315,0.625,1.1,ug/m2/day\n"
            "2,0,1,66.5,0.395833333333333,1.9,ug/day\n2,168,1,598.5,1.1875,1.9,ug/day\n")
    ds = read_nonmem(write(tmp_path, text), study="S")
    assert ds.subjects["regimen"].tolist() == ["5-15", "5-15"]
    with pytest.raises(DataValidationError, match="column 'REGIMEN', row 3: the file has no"):
        read_nonmem(write(tmp_path, text.replace(",1.9,", ",.,")), study="S")
    with pytest.raises(DataValidationError) as err:
        read_nonmem(write(tmp_path, text))
    assert messages(err)[0].startswith("data.csv, column 'STUDY': required column is missing")


def test_covariates_missing_codes_and_extras(tmp_path):
    text = ("ID,SUBJID,TIME,EVID,AMT,RATE,STUDY,REGIMEN,AGE,RESP,WT,O_SITE,S_ARM\n"
            "1,A,0,1,420,0.625,S,15,-99,-99,20,.,x\n"
            "1,A,6,0,0,0,S,15,-99,-99,20,lab1,x\n")
    with pytest.raises(DataValidationError) as err:  # an observation needs an analyte
        read_nonmem(write(tmp_path, text))
    assert "column 'ANALYTE'" in messages(err)[0]
    text = text.replace(",S_ARM\n", ",S_ARM,ANALYTE,DV\n").replace(",x\n", ",x,.,.\n", 1)
    text = text.replace("lab1,x\n", "lab1,x,IL6,900\n")
    ds = read_nonmem(write(tmp_path, text))
    s = ds.subjects.iloc[0]
    assert pd.isna(s["age_years"]) and pd.isna(s["response"])
    assert (s["wt"], s["arm"]) == ("20", "x")
    assert ds.observations["site"].tolist() == ["lab1"]


def test_problems_name_file_column_row(tmp_path):
    text = HEADER + ("1,A,0,1,1,420,0.625,1,.,.,.,0,.,S,15,1.1\n"
                     "1,A,6,0,0,0,0,2,2150,IL6,mmol/L,0,.,S,15,1.1\n"
                     "1,A,4,0,0,0,0,2,abc,IL6,pg/mL,0,.,S,15,1.1\n"
                     "2,B,0,1,1,420,-1,1,.,.,.,0,.,S,15,1.1\n")
    with pytest.raises(DataValidationError) as err:
        read_nonmem(write(tmp_path, text))
    assert messages(err) == [
        "data.csv, column 'UNIT', row 2: unit must be convertible to pg/mL for IL6 "
        "(found 'mmol/L')",
        "data.csv, column 'DV', row 3: value must be a number (found 'abc')",
        "data.csv, column 'TIME', row 3: TIME must not decrease within an ID (row 2 has TIME 6); "
        "sort the records by ID and TIME (found '4')",
        "data.csv, column 'RATE', row 4: RATE must be > 0: blinatumomab is a continuous infusion "
        "at a known rate (modelled rates or durations, RATE = -1 or -2, are not supported) "
        "(found '-1')"]


def test_writer_refusals(tmp_path, example):
    agg = example.with_tables(aggregates=validate_dataset({"aggregates": pd.DataFrame([dict(
        study="P", family="all", level="all", regimen="15", responders="3", n="10",
        source="x")])}).aggregates)
    with pytest.raises(BayesBlinaError, match="drop_aggregates"):
        write_nonmem(agg, tmp_path / "a.csv")
    assert not (tmp_path / "a.csv").exists()
    write_nonmem(agg, tmp_path / "a.csv", drop_aggregates=True)
    with pytest.raises(BayesBlinaError, match="exists"):
        write_nonmem(example, tmp_path / "a.csv")
    with pytest.raises(BayesBlinaError, match="no subjects"):
        write_nonmem(Dataset(aggregates=agg.aggregates), tmp_path / "b.csv")


# ------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------

def test_cli_export_and_import(tmp_path, example):
    runner = CliRunner()
    res = runner.invoke(export_group, ["nonmem", str(EXAMPLE), "--out", str(tmp_path / "nm.csv")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(import_group, ["nonmem", str(tmp_path / "nm.csv"), "--out",
                                       str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    assert read_dataset(tmp_path / "ds").sha256() == example.sha256()
    res = runner.invoke(import_group, ["nonmem", str(NONMEM / "sponsor.csv"), "--out",
                                       str(tmp_path / "sp"), "--study", "NMSTUDY"])
    assert res.exit_code == 0, res.output
    assert "left out: 1 EVID 2 records" in res.output
    res = runner.invoke(import_group, ["nonmem", str(NONMEM / "sponsor.csv"), "--out",
                                       str(tmp_path / "x"), "--analyte-by-cmt", "one=BLINA"])
    assert res.exit_code == 2 and "--analyte-by-cmt" in res.output
    res = runner.invoke(export_group, ["nonmem", str(EXAMPLE), "--out", str(tmp_path / "nm.csv")])
    assert res.exit_code == 2 and "already exists" in res.output


# ------------------------------------------------------------------------------------------------
# Property: random valid infusion schedules and observations survive the round trip
# ------------------------------------------------------------------------------------------------

@st.composite
def datasets(draw):
    subjects, dosing, obs = [], [], []
    for k in range(draw(st.integers(1, 3))):
        sid = f"P-{k + 1}"
        per_m2 = draw(st.booleans())
        subjects.append(dict(subject_id=sid, study="PROP", regimen="15",
                             bsa_m2=str(draw(st.sampled_from([0.45, 1.1, 1.83]))),
                             response=draw(st.sampled_from(["", "0", "1"]))))
        t, cycle = 0.0, 1
        for _ in range(draw(st.integers(0, 4))):
            length = draw(st.integers(1, 4 * 168)) * 0.25
            dose = draw(st.sampled_from([5, 9.5, 15, 28, 28.5, 30, 0.0, 12.25]))
            dosing.append(dict(subject_id=sid, cycle=str(cycle), start_h=repr(t),
                               end_h=repr(t + length), dose=repr(float(dose)),
                               dose_unit="ug/m2/day" if per_m2 else "ug/day"))
            gap = draw(st.sampled_from([0.0, 1.5, 48.0, 336.0]))
            t += length + gap
            cycle += gap >= 168
        for _ in range(draw(st.integers(0, 4))):
            analyte, unit = draw(st.sampled_from([("IL6", "pg/mL"), ("CD3", "10^9/L"),
                                                  ("BLINA", "pg/mL"), ("CRP", "mg/L")]))
            below = draw(st.sampled_from(["", "", "LLOQ", "LOD"]))
            obs.append(dict(subject_id=sid, analyte=analyte,
                            time_h=repr(draw(st.integers(-48, 2000)) * 0.5), unit=unit,
                            value="" if below else repr(draw(st.integers(0, 10**6)) / 100),
                            lod="1" if below == "LOD" else "",
                            lloq="2" if below == "LLOQ" and analyte != "IL6" else "",
                            below=below))
    tables = {"subjects": pd.DataFrame(subjects)}
    if dosing:
        tables["dosing"] = pd.DataFrame(dosing)
    if obs:
        tables["observations"] = pd.DataFrame(obs)
    return validate_dataset(tables)


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=datasets(), derive_cycles=st.booleans())
def test_random_datasets_round_trip(ds, derive_cycles, tmp_path_factory):
    path = write_nonmem(ds, tmp_path_factory.mktemp("nm") / "nm.csv")
    if derive_cycles:  # every gap of >= 7 days starts a cycle in these schedules
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        df.drop(columns=["CYCLE"]).to_csv(path, index=False)
    assert read_nonmem(path).sha256() == ds.sha256()
