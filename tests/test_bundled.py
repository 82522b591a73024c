"""The bundled published datasets: provenance, internal consistency and the registry.

The CSVs are read with pandas directly (not through the data-format reader), so these tests check
the files themselves against the numbers printed in the two source papers.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from bayes_blina.data.registry import BUNDLED, bundled_folders, list_datasets
from bayes_blina.errors import BayesBlinaError
from bayes_blina.stats import clopper_pearson
from conftest import FIG2_PRINTED

ROOT = Path(__file__).resolve().parents[1] / "bayes_blina" / "data" / "bundled"
FOLDERS = ["vonstackelberg2016", "nagele2017"]
CSVS = sorted(p for f in FOLDERS for p in (ROOT / f).glob("*.csv"))
VS = "vonStackelberg2016"
NG = "Nagele2017"

AGG_REQUIRED = ["study", "endpoint", "family", "level", "regimen", "responders", "n", "source"]
SUM_REQUIRED = ["study", "quantity", "analyte", "group", "regimen", "cycle", "time_h",
                "statistic", "value", "unit", "n", "source"]


def _read(path: Path) -> pd.DataFrame:
    # keep_default_na=False: levels such as "no" or "NA" must stay text; empty cells stay "".
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")


def _aggregates() -> pd.DataFrame:
    df = pd.concat([_read(ROOT / f / "aggregates.csv") for f in FOLDERS], ignore_index=True)
    df["responders"] = df["responders"].astype(int)
    df["n"] = df["n"].astype(int)
    return df


def _summaries() -> pd.DataFrame:
    df = pd.concat([_read(ROOT / f / "summaries.csv") for f in FOLDERS], ignore_index=True)
    df["value"] = df["value"].astype(float)
    return df


AGG = _aggregates()
SUM = _summaries()


def _row(study, endpoint, family, level) -> pd.Series:
    sel = AGG[(AGG.study == study) & (AGG.endpoint == endpoint) & (AGG.family == family)
              & (AGG.level == level)]
    assert len(sel) == 1, f"expected one row {study}/{endpoint}/{family}/{level}, found {len(sel)}"
    return sel.iloc[0]


# --------------------------------------------------------------------------- provenance / shape

def test_every_folder_has_both_tables_and_a_readme():
    for f in FOLDERS:
        assert (ROOT / f / "aggregates.csv").is_file()
        assert (ROOT / f / "summaries.csv").is_file()
        assert (ROOT / f / "README.md").is_file()
    assert (ROOT / "published" / "README.md").is_file()
    assert not list((ROOT / "published").glob("*.csv")), "the composite holds no CSV of its own"


@pytest.mark.parametrize("path", CSVS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_row_has_a_source(path):
    df = _read(path)
    assert len(df) > 0
    assert "source" in df.columns
    empty = df.index[df["source"].str.strip() == ""].tolist()
    assert not empty, f"rows without a source (0-based): {empty}"
    # the source names the paper
    assert df["source"].str.contains("et al. 201", regex=False).all()


@pytest.mark.parametrize("path", CSVS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_required_columns_and_one_study_per_folder(path):
    df = _read(path)
    required = AGG_REQUIRED if path.stem == "aggregates" else SUM_REQUIRED
    assert [c for c in required if c not in df.columns] == []
    expected = {"vonstackelberg2016": VS, "nagele2017": NG}[path.parent.name]
    assert set(df["study"]) == {expected}


def test_no_code_reads_the_shared_papers():
    pkg = ROOT.parents[1]
    for py in pkg.rglob("registry.py"):
        assert "/work/shared" not in py.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- aggregates rules

def test_aggregate_counts_are_valid():
    assert (AGG["n"] >= 1).all()
    assert ((AGG["responders"] >= 0) & (AGG["responders"] <= AGG["n"])).all()
    key = ["study", "endpoint", "family", "level", "regimen"]
    dup = AGG[AGG.duplicated(key, keep=False)]
    assert dup.empty, dup[key]


def test_regimen_mixtures_add_up_to_n():
    for _, r in AGG.iterrows():
        reg = r["regimen"]
        assert reg.strip() != ""
        if ":" in reg:
            parts = [p.split(":") for p in reg.split(";")]
            assert all(len(p) == 2 for p in parts), reg
            assert sum(int(c) for _, c in parts) == r["n"], (r["endpoint"], r["level"], reg)


def test_derived_rows_say_so():
    derived = AGG[AGG["source"].str.contains("derived")]
    assert len(derived) >= 3
    assert derived["note"].str.startswith("derived").all()
    assert (_row(VS, "CR", "phase", "phase I PK expansion")[["responders", "n"]].tolist()
            == [13, 26])
    assert "derived" in _row(VS, "CR", "phase", "phase I PK expansion")["note"]


FIG2_FAMILIES = ["age_group", "blast_burden", "prior_hsct", "refractory", "prior_relapses", "region"]


@pytest.mark.parametrize("family", FIG2_FAMILIES + ["phase", "crs_grade3plus"])
def test_pediatric_cr_partitions_add_up_to_the_70(family):
    rows = AGG[(AGG.study == VS) & (AGG.endpoint == "CR") & (AGG.family == family)]
    assert len(rows) >= 2
    assert rows["n"].sum() == 70
    assert rows["responders"].sum() == 27


# Families that partition a row other than the endpoint's base row: family -> parent row.
SUB_PARTITIONS = {
    (VS, "CR", "blast_burden_phase2"): ("phase", "phase II"),
    (VS, "CR", "blast_burden_age_lt2"): ("age_group", "<2"),
    (VS, "CR", "mll_age_lt2"): ("age_group", "<2"),
}
# Families that describe another or smaller population and are not partitions of anything here.
OTHER_POPULATIONS = {
    (VS, "CR", "cohort"), (VS, "CR", "ph_positive"), (VS, "CR", "hypodiploidy"),
    *[(VS, ep, "responders_phase2") for ep in ("MRD_response", "MRD_complete")],
    *[(VS, ep, "responders_age_lt2") for ep in ("MRD_response", "MRD_complete")],
    *[(VS, ep, "phase2") for ep in ("PR", "hypoplastic_marrow", "PD", "no_response",
                                   "no_response_assessment", "alloHSCT", "alloHSCT_in_blina_CR",
                                   "alloHSCT_in_CR_after_blina_only",
                                   "alloHSCT_nonresponder_after_other_tx")],
    *[(VS, ep, "age_lt2") for ep in ("alloHSCT_in_blina_CR", "alloHSCT_in_CR_after_blina_only")],
}


def test_declared_families_exist():
    present = set(map(tuple, AGG[["study", "endpoint", "family"]].drop_duplicates().values))
    assert set(SUB_PARTITIONS) <= present
    assert OTHER_POPULATIONS <= present


def test_every_family_is_a_partition_of_its_parent():
    """Each (study, endpoint, family) adds up to its parent row.

    The parent is the endpoint's base row (the one row whose level is ``all``) unless the family
    is declared above as partitioning another row or as describing another population.
    """
    checked = 0
    for (study, endpoint), grp in AGG.groupby(["study", "endpoint"]):
        base = grp[grp.level == "all"]
        assert len(base) <= 1, f"{study}/{endpoint}: more than one base row"
        for family, rows in grp.groupby("family"):
            key = (study, endpoint, family)
            if len(base) and family == base.iloc[0]["family"]:
                assert len(rows) == 1, f"{key}: the base family holds only the base row"
                continue
            if key in OTHER_POPULATIONS:
                continue
            if key in SUB_PARTITIONS:
                parent = _row(study, endpoint, *SUB_PARTITIONS[key])
            else:
                assert len(base) == 1 or endpoint == "DLT", f"{key}: no base row to add up to"
                if not len(base):
                    continue
                parent = base.iloc[0]
            assert rows["n"].sum() == parent["n"], key
            assert rows["responders"].sum() == parent["responders"], key
            checked += 1
    # 8 partitions of the pediatric 70 for CR + 3 sub-partitions + the adults' one-level age_group
    assert checked == 12


def test_dlt_cohorts_add_up_to_phase1():
    rows = AGG[(AGG.study == VS) & (AGG.endpoint == "DLT") & (AGG.family == "cohort")]
    expected = {("cohort 1", "5"): (0, 5), ("cohort 2", "15"): (1, 7), ("cohort 3", "30"): (2, 5),
                ("cohort 4", "15-30"): (1, 6), ("phase I PK expansion", "5-15"): (0, 26)}
    got = {(r.level, r.regimen): (r.responders, r.n) for r in rows.itertuples()}
    assert got == expected
    assert rows["n"].sum() == 49  # all of phase I
    escalation = rows[rows.level.str.startswith("cohort")]
    assert escalation["responders"].sum() == 4  # "Four DLTs" / four patients (Results, Abstract)


def test_responder_based_endpoints_use_the_27():
    for ep in ("MRD_complete", "MRD_response", "CR_within_cycle1", "CR_by_day15"):
        assert _row(VS, ep, "responders", "all")["n"] == 27
    follow = AGG[(AGG.study == VS) & AGG.endpoint.str.startswith("followup_")
                 & (AGG.family == "responders")]
    assert follow["responders"].sum() == 27  # the 27 responders' status at the end of follow-up


# --------------------------------------------------------------------------- headline numbers

@pytest.mark.parametrize(
    "study, endpoint, family, level, regimen, responders, n",
    [
        (VS, "CR", "all", "all", "5-15", 27, 70),
        (VS, "CR", "phase", "phase II", "5-15", 14, 44),
        (VS, "CR", "cohort", "phase I dose escalation", "5:5;15:7;30:5;15-30:6", 7, 23),
        (VS, "MRD_complete", "responders", "all", "5-15", 14, 27),
        (VS, "CRS_any", "all", "all", "5-15", 8, 70),
        (VS, "CRS_grade3plus", "all", "all", "5-15", 4, 70),
        (NG, "CR", "all", "all", "15:7;5-15:23;5-15-30:6", 25, 36),
    ],
)
def test_headline_numbers(study, endpoint, family, level, regimen, responders, n):
    r = _row(study, endpoint, family, level)
    assert (r["regimen"], r["responders"], r["n"]) == (regimen, responders, n)


def test_nagele_has_no_invented_per_cohort_response():
    cr = AGG[(AGG.study == NG) & (AGG.endpoint == "CR")]
    # the 'all' row and the one-level age partition (every patient an adult): both 25/36, both pooled
    assert len(cr) == 2
    assert set(cr["family"]) == {"all", "age_group"}
    assert (cr["regimen"] == "15:7;5-15:23;5-15-30:6").all() and (cr["responders"] == 25).all()


def _clopper_pearson(r: int, n: int) -> tuple[float, float]:
    lo, hi = clopper_pearson(r, n)
    return 100 * float(lo), 100 * float(hi)


@pytest.mark.parametrize("family, level, r, n, pct, lo, hi", FIG2_PRINTED,
                         ids=[f"{f}={lv}" for f, lv, *_ in FIG2_PRINTED])
def test_fig2_printed_percentages(family, level, r, n, pct, lo, hi):
    row = _row(VS, "CR", family, level)
    assert (row["responders"], row["n"]) == (r, n)
    assert round(100 * row["responders"] / row["n"], 1) == pct
    assert float(row["pct"]) == pct
    assert (float(row["ci95_low"]), float(row["ci95_high"])) == (lo, hi)
    clo, chi = _clopper_pearson(r, n)
    assert abs(clo - lo) <= 0.05 + 1e-9 and abs(chi - hi) <= 0.05 + 1e-9


def test_fig2_rows_are_all_shipped():
    fig2 = AGG[(AGG.study == VS) & AGG.source.str.contains("Fig 2")]
    assert len(fig2) == len(FIG2_PRINTED)


def test_printed_percentages_and_cis_match_the_counts():
    """Every stored printed % and CI agrees with its counts to the printed precision."""
    for r in AGG.itertuples():
        for col in ("pct", "ci95_low", "ci95_high"):
            v = getattr(r, col)
            if v == "":
                continue
            tol = 0.05 if "." in v else 0.5
            if col == "pct":
                want = 100 * r.responders / r.n
            else:
                want = _clopper_pearson(r.responders, r.n)[col == "ci95_high"]
            assert abs(float(v) - want) <= tol + 1e-9, (r.endpoint, r.family, r.level, col, v, want)


# --------------------------------------------------------------------------- summaries

def test_summary_rows_are_unique_and_numeric():
    assert SUM["value"].notna().all()
    key = ["study", "quantity", "analyte", "group", "regimen", "cycle", "time_h", "statistic",
           "family", "level"]
    dup = SUM[SUM.duplicated(key, keep=False)]
    assert dup.empty, dup[key]
    for col in ("time_h", "cycle", "n"):
        vals = SUM[col][SUM[col] != ""]
        pd.to_numeric(vals)  # raises if not numeric


def test_cell_counts_are_in_cells_per_ul():
    cells = SUM[(SUM.quantity == "count") & (SUM.analyte != "")]
    assert len(cells) > 0
    assert set(cells.loc[cells.statistic.isin(["median", "mean"]), "unit"]) == {"cells/uL"}
    v = lambda an, grp, t, st="median": SUM[(SUM.study == NG) & (SUM.quantity == "count")  # noqa: E731
                                           & (SUM.analyte == an) & (SUM.group == grp)
                                           & (SUM.time_h == t) & (SUM.statistic == st)]["value"].item()
    assert v("CD3", "responders", "0") == 210
    assert v("NEUT", "responders", "0") == 1800
    assert v("PLT", "responders", "0") == 59000
    assert v("NEUT", "responders", "168") == 600
    assert v("PLT", "responders", "672") == 199000
    assert v("CD3", "frequent_sampling", "6") == 20


def test_pct_of_baseline_matches_the_printed_medians():
    """The paper's '% above baseline' numbers are later median / baseline median x 100."""
    def med(an, grp, t):
        return SUM[(SUM.study == NG) & (SUM.analyte == an) & (SUM.group == grp)
                   & (SUM.time_h == t) & (SUM.statistic == "median")
                   & (SUM.quantity == "count")]["value"].item()

    def pct(an, grp, t):
        return SUM[(SUM.study == NG) & (SUM.analyte == an) & (SUM.group == grp)
                   & (SUM.time_h == t) & (SUM.statistic == "pct_of_baseline")]["value"].item()

    for an, grp, t in [("PLT", "responders", "672"), ("CD3", "responders", "672"),
                       ("CD3", "frequent_sampling", "168")]:
        ratio = 100 * med(an, grp, t) / med(an, grp, "0")
        # medians are printed to 2 significant digits, so allow their rounding error
        assert math.isclose(ratio, pct(an, grp, t), rel_tol=0.03), (an, grp, ratio)


def test_nagele_pk_and_assay_limits():
    def one(**kw):
        sel = SUM[SUM.study == NG]
        for k, v in kw.items():
            sel = sel[sel[k] == v]
        return sel["value"].item()

    assert one(quantity="css", regimen="5", statistic="mean") == 198
    assert one(quantity="css", regimen="5", statistic="sd") == 61
    assert one(quantity="css", regimen="15", statistic="mean") == 694
    assert one(quantity="css", regimen="15", statistic="sd") == 236
    for an in ("IL2", "IL4", "IL6", "IL10", "TNFA", "IFNG"):
        assert one(quantity="assay_limit", analyte=an, statistic="lod") == 20
        assert one(quantity="assay_limit", analyte=an, statistic="lloq") == 125
    assert one(quantity="assay_limit", analyte="GZMB", statistic="lod") == 30
    assert one(quantity="assay_limit", analyte="GZMB", statistic="lloq") == 100
    assert one(quantity="assay_limit", analyte="BLINA", statistic="lloq") == 50
    assert one(quantity="fold_uln_peak", analyte="ALT") == 3.2
    assert one(quantity="uln", analyte="DDIMER") == 500
    assert one(quantity="peak_time", analyte="TNFA", group="all") == 2


def test_pediatric_baseline_counts_match_the_aggregates():
    """Table 1 counts of the 70 equal the n of the Fig 2 rows."""
    t1 = SUM[(SUM.study == VS) & (SUM.quantity == "baseline_count") & (SUM.group == "all")]
    for r in AGG[(AGG.study == VS) & (AGG.endpoint == "CR") & AGG.family.isin(FIG2_FAMILIES)].itertuples():
        sel = t1[(t1.family == r.family) & (t1.level == r.level)]
        if r.family == "refractory" and r.level == "no":
            assert sel.empty  # only "yes" is printed in Table 1
            continue
        assert sel["value"].item() == r.n, (r.family, r.level)


# --------------------------------------------------------------------------- registry

def test_registry_lists_the_bundled_datasets():
    df = list_datasets()
    assert list(df.columns) == ["name", "description", "studies", "tables", "citation"]
    assert df["name"].tolist() == ["vonstackelberg2016", "nagele2017", "vonstackelberg2016-escalation", "published"]
    assert (df["description"].str.len() > 0).all() and (df["citation"].str.len() > 0).all()
    tables = df.set_index("name")["tables"]
    assert set(tables.drop("vonstackelberg2016-escalation")) == {"aggregates, summaries"}
    assert tables["vonstackelberg2016-escalation"] == "dlt"
    assert df.set_index("name").loc["published", "studies"] == "vonStackelberg2016, Nagele2017"


def test_registry_studies_match_the_files():
    for name in BUNDLED:
        found = set()
        for folder in bundled_folders(name):
            for p in folder.glob("*.csv"):
                found |= set(_read(p)["study"])
        assert found == set(BUNDLED[name]["studies"])


def test_bundled_folders_resolve():
    assert bundled_folders("published") == [ROOT / "vonstackelberg2016", ROOT / "nagele2017"]
    assert bundled_folders("nagele2017") == [ROOT / "nagele2017"]
    for name in BUNDLED:
        assert all(p.is_dir() for p in bundled_folders(name))


def test_unknown_name_is_rejected_with_the_valid_names():
    with pytest.raises(BayesBlinaError) as exc:
        bundled_folders("nosuchdata")
    msg = str(exc.value)
    assert "nosuchdata" in msg
    for name in ("vonstackelberg2016", "nagele2017", "published"):
        assert name in msg
