""":func:`write_adam`: a dataset back as ADaM files (CSV or SAS transport v5).

Reading the folder with :func:`~bayes_blina.data.adam.read_adam_folder` gives a dataset with
the same :meth:`~bayes_blina.data.dataset.Dataset.sha256`; extra variables to carry back are
written to a ``mapping.toml`` beside the files.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_blina._atomic import swap_in
from bayes_blina.data.adam.mapping import _SURVIVAL_DEFAULTS, ADAM_PARAMCD
from bayes_blina.data.adam.values import _iso, parse_datetime
from bayes_blina.data.analytes import ANALYTES
from bayes_blina.data.dataset import Dataset
from bayes_blina.data.records import _patient_tables, _short
from bayes_blina.data.schema import COLUMNS
from bayes_blina.errors import BayesBlinaError


def _yn(v: object) -> str:
    return "" if v is None or pd.isna(v) else ("Y" if bool(v) else "N")


def _extras(df: pd.DataFrame, table: str) -> list[str]:
    return [c for c in df.columns if c not in COLUMNS[table]]


def _num(v: object) -> float:
    return float("nan") if v is None or pd.isna(v) else float(v)


def _str(v: object) -> str:
    return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def write_adam(dataset: Dataset, folder: str | os.PathLike[str], fmt: str = "csv", *,
               first_dose: str | datetime = "2020-01-01T08:00:00", overwrite: bool = False,
               drop_aggregates: bool = False) -> Path:
    """Write a dataset as ADaM files: ``adsl``, ``adrs``, ``adex``, ``adlb`` (and ``adpc`` for
    serum blinatumomab, ``adtte`` for overall and relapse-free survival), plus ``mapping.toml``
    naming the extra variables to carry back.

    Every subject gets the same first dose datetime ``first_dose``; exposure intervals and
    observation datetimes are that datetime plus the dataset's hours. Observations also carry
    ``AFRLT`` (hours since the first dose), which :func:`read_adam` prefers, so times come back
    exactly. Reading the folder with :func:`read_adam_folder` gives the same
    :meth:`Dataset.sha256`.

    Parameters
    ----------
    dataset : Dataset
        Patient-level data (subjects; dosing and observations optional).
    folder : path
        Output folder (created; written atomically).
    fmt : {'csv', 'xpt'}
        CSV files, or SAS transport version 5 files (needs ``pyreadstat``; variable names of
        extra columns must then have at most 8 characters).
    first_dose : str or datetime, default '2020-01-01T08:00:00'
        The reference first-dose datetime (fictitious).
    overwrite : bool
        Replace an existing non-empty folder.
    drop_aggregates : bool
        Leave out published aggregates/summaries instead of refusing the dataset.

    Returns
    -------
    Path

    Raises
    ------
    BayesBlinaError
        For a dataset without subjects, with aggregates (unless ``drop_aggregates``), extra
        column names that clash with ADaM variables, an existing folder, or a missing writer.
    """
    _patient_tables(dataset, drop_aggregates, "write_adam")
    if fmt not in ("csv", "xpt"):
        raise BayesBlinaError(f"fmt must be 'csv' or 'xpt' (found {fmt!r})")
    ref = first_dose if isinstance(first_dose, datetime) else parse_datetime(first_dose)
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not overwrite)):
        raise BayesBlinaError(f"'{folder}' exists and is not an empty folder; pass "
                              "overwrite=True (--force) to replace it")
    tables, keep = _adam_tables(dataset, ref)
    writer = _write_csv_table if fmt == "csv" else _xpt_writer()
    from bayes_blina._atomic import make_parent

    make_parent(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        os.chmod(tmp, 0o755)
        for key, (df, datetimes) in tables.items():
            writer(df, datetimes, tmp / f"{key}.{fmt}", key)
        lines = ["# Written by bayes_blina.data.adam.write_adam: extra variables to carry back.",
                 "# Use: bayes-blina import adam ... --mapping mapping.toml"]
        for key, names in keep.items():
            if names:
                listed = ", ".join(json.dumps(n) for n in names)
                lines += ["", f"[{key}]", f"keep = [{listed}]"]
        (tmp / "mapping.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        swap_in(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


_PARAM_NAMES = {"BLINA": "Serum blinatumomab"}


#: ``DCSREAS`` text written for each off-study reason (read back by ``normalise_offstudy_reason``).
_ADAM_REASON = {"death": "DEATH", "withdrawal": "WITHDRAWAL BY SUBJECT",
                "adverse_event": "ADVERSE EVENT", "progression": "PROGRESSIVE DISEASE",
                "lost_to_follow_up": "LOST TO FOLLOW-UP", "other": "OTHER"}


def _adam_tables(ds: Dataset, ref: datetime
                 ) -> tuple[dict[str, tuple[pd.DataFrame, list[str]]], dict[str, list[str]]]:
    """ADaM tables (with the names of their datetime variables) and the keep lists."""
    subj = ds.subjects
    assert subj is not None
    study_of = dict(zip(subj["subject_id"], subj["study"]))
    keep: dict[str, list[str]] = {}
    out: dict[str, tuple[pd.DataFrame, list[str]]] = {}

    def extras(df: pd.DataFrame, table: str, key: str, taken: Iterable[str]) -> dict[str, list]:
        names = _extras(df, table)
        taken = set(taken)
        cols: dict[str, list] = {}
        for n in names:
            if n.upper() in taken:
                raise BayesBlinaError(f"extra {table} column '{n}' has the name of the ADaM "
                                      f"variable {n.upper()} of {key.upper()}; rename it first")
            cols[n.upper()] = [_str(x) for x in df[n].tolist()]
        keep[key] = list(cols)
        return cols

    adsl = {
        "STUDYID": [_str(x) for x in subj["study"]],
        "USUBJID": [_str(x) for x in subj["subject_id"]],
        "TRT01P": [f"BLINA {r} UG/M2/DAY" for r in subj["regimen"]],
        "AGE": [_num(x) for x in subj["age_years"]],
        "AGEU": ["" if pd.isna(x) else "YEARS" for x in subj["age_years"]],
        "AGEGR1": [_str(x) for x in subj["age_group"]],
        "BMBLAST": [_num(x) for x in subj["blast_pct"]],
        "BLASTGR1": [_str(x) for x in subj["blast_burden"]],
        "BSA": [_num(x) for x in subj["bsa_m2"]],
        "PRHSCTFL": [_yn(x) for x in subj["prior_hsct"]],
        "REFRFL": [_yn(x) for x in subj["refractory"]],
        "NPRREL": [_num(x) for x in subj["prior_relapses"]],
        "NPRRELGR": [_str(x) for x in subj["prior_relapses_group"]],
        "REGION1": [_str(x) for x in subj["region"]],
        "TRTSDTM": [ref] * len(subj),
    }
    stamps = ["TRTSDTM"]
    if "offstudy_h" in subj.columns:  # every off-study patient discontinued; deaths also DTHDTM
        hours = pd.to_numeric(subj["offstudy_h"], errors="coerce").to_numpy(dtype=float)
        reasons = [_str(x) for x in subj.get("offstudy_reason", pd.Series([""] * len(subj)))]
        when = [ref + timedelta(hours=float(h)) if np.isfinite(h) else pd.NaT for h in hours]
        adsl["EOSSTT"] = ["DISCONTINUED" if np.isfinite(h) else "" for h in hours]
        adsl["DCSREAS"] = [_ADAM_REASON.get(r, r.upper()) if np.isfinite(h) else ""
                           for h, r in zip(hours, reasons)]
        adsl["EOSDTM"] = when
        adsl["DTHDTM"] = [w if r == "death" else pd.NaT for w, r in zip(when, reasons)]
        stamps += ["EOSDTM", "DTHDTM"]
    if "mrd_response" in subj.columns:
        adsl["MRDCRFL"] = [_yn(x) for x in subj["mrd_response"]]
    if "hsct_days" in subj.columns:
        adsl["HSCTDY"] = [_num(x) for x in subj["hsct_days"]]
    adsl.update(extras(subj, "subjects", "adsl", adsl))
    out["adsl"] = (pd.DataFrame(adsl), stamps)
    if "os_days" in subj.columns:  # the survival columns come together (docs/data-format.md)
        tte: dict[str, list] = {k: [] for k in ("STUDYID", "USUBJID", "PARAMCD", "PARAM", "AVAL", "AVALU", "CNSR")}
        for ep, param in (("os", "Overall survival"), ("rfs", "Relapse-free survival")):
            days = pd.to_numeric(subj[f"{ep}_days"], errors="coerce").to_numpy(dtype=float)
            for k in np.flatnonzero(np.isfinite(days)):
                tte["STUDYID"].append(adsl["STUDYID"][k])
                tte["USUBJID"].append(adsl["USUBJID"][k])
                tte["PARAMCD"].append(_SURVIVAL_DEFAULTS[ep][0])
                tte["PARAM"].append(f"{param} (days from the first infusion start)")
                tte["AVAL"].append(float(days[k]))
                tte["AVALU"].append("DAYS")
                tte["CNSR"].append(0.0 if int(subj[f"{ep}_event"].iloc[k]) == 1 else 1.0)
        out["adtte"] = (pd.DataFrame(tte).astype({"AVAL": float, "CNSR": float}), [])

    resp = subj["response"]
    out["adrs"] = (pd.DataFrame({
        "STUDYID": adsl["STUDYID"], "USUBJID": adsl["USUBJID"],
        "PARAMCD": ["CR2CYC"] * len(subj), "PARAM": ["CR/CRh within two cycles"] * len(subj),
        "AVALC": ["NE" if pd.isna(x) else ("Y" if int(x) == 1 else "N") for x in resp],
        "AVAL": [_num(x) for x in resp]}), [])

    if ds.dosing is not None:
        d = ds.dosing
        adex = {
            "STUDYID": [_str(study_of.get(x)) for x in d["subject_id"]],
            "USUBJID": [_str(x) for x in d["subject_id"]],
            "EXTRT": ["BLINATUMOMAB"] * len(d),
            "EXDOSE": [_num(x) for x in d["dose"]],
            "EXDOSU": [_str(x) for x in d["dose_unit"]],
            "EXSTDTC": [_iso(ref + timedelta(hours=float(x))) for x in d["start_h"]],
            "EXENDTC": [_iso(ref + timedelta(hours=float(x))) for x in d["end_h"]],
            "APERIOD": [_num(x) for x in d["cycle"]],
        }
        adex.update(extras(d.drop(columns=["dose_ug_m2_day"]), "dosing", "adex", adex))
        out["adex"] = (pd.DataFrame(adex), [])
    else:
        keep["adex"] = []

    if ds.observations is not None:
        o = ds.observations
        is_pk = (o["analyte"] == "BLINA").to_numpy(dtype=bool)
        parts = {"adlb": o.loc[~is_pk], "adpc": o.loc[is_pk]}
        for key, part in parts.items():
            if not len(part):
                continue
            below = [_str(b) for b in part["below"]]
            source = [_str(s) for s in part["limit_source"]]
            lod = [_num(x) for x in part["lod"]]
            lloq = [_num(x) for x in part["lloq"]]
            for i, (b, src) in enumerate(zip(below, source)):
                if src == "default":  # let the reader fill the assay default again
                    if b == "LOD":
                        lod[i] = float("nan")
                    elif b == "LLOQ":
                        lloq[i] = float("nan")
            codes = [_str(c) for c in part["analyte"]]
            hours = [float(x) for x in part["time_h"]]
            tab = {
                "STUDYID": [_str(study_of.get(x)) for x in part["subject_id"]],
                "USUBJID": [_str(x) for x in part["subject_id"]],
                "PARAMCD": [ADAM_PARAMCD.get(c, c) for c in codes],
                "PARAM": [f"{_PARAM_NAMES.get(c, ANALYTES[c].name if c in ANALYTES else c)} "
                          f"({u})" for c, u in zip(codes, part["unit"])],
                "AVAL": [_num(x) for x in part["value"]],
                "AVALC": ["BLQ" if b == "LLOQ" else "BLD" if b == "LOD" else "" for b in below],
                "AVALU": [_str(u) for u in part["unit"]],
                "ALLOQ": lloq, "ALOD": lod,
                "AFRLT": hours, "FRLTU": ["h"] * len(part),
                "ADTM": [ref + timedelta(hours=h) for h in hours],
            }
            tab.update(extras(part, "observations", key, tab))
            out[key] = (pd.DataFrame(tab), ["ADTM"])
        for key in parts:
            keep.setdefault(key, [])
    return out, keep


def _write_csv_table(df: pd.DataFrame, datetimes: list[str], path: Path, key: str) -> None:
    cols: dict[str, list[str]] = {}
    for c in df.columns:
        if c in datetimes:
            cols[c] = ["" if pd.isna(x) else _iso(x) for x in df[c]]
        elif pd.api.types.is_float_dtype(df[c]):
            cols[c] = [_short(float(x)) for x in df[c]]
        else:
            cols[c] = [_str(x) for x in df[c]]
    pd.DataFrame(cols, dtype=object).to_csv(path, index=False, lineterminator="\n",
                                           encoding="utf-8")


def _xpt_writer() -> Callable[[pd.DataFrame, list[str], Path, str], None]:
    try:
        import pyreadstat  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise BayesBlinaError("writing SAS transport files needs the pyreadstat package "
                              "(pip install pyreadstat); write CSV instead (fmt='csv')") from None

    def write(df: pd.DataFrame, datetimes: list[str], path: Path, key: str) -> None:
        long = [c for c in df.columns if len(c) > 8]
        if long:
            raise BayesBlinaError(f"SAS transport v5 variable names have at most 8 characters; "
                                  f"{key.upper()} would need {', '.join(long)} (write CSV, or "
                                  "rename the extra columns)")
        out = df.copy()
        for c in out.columns:
            if c in datetimes:
                out[c] = pd.to_datetime(out[c])
            elif not pd.api.types.is_float_dtype(out[c]):
                out[c] = out[c].astype(object).map(_str)
        pyreadstat.write_xport(out, str(path), table_name=key.upper(), file_format_version=5)

    return write
