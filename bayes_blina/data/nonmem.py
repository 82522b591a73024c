"""NONMEM-style event datasets: import into and export from the package format.

One CSV (or whitespace-separated) file with a header line and one record per event (see
``docs/import.md`` for the full column table):

* ``ID`` (subject), ``TIME`` (hours), ``EVID`` (0 observation, 1 dose, 2 other, 3 reset, 4 reset
  and dose), ``MDV``, ``AMT``, ``RATE``, ``DV``, ``CMT``, ``BLQ`` (0, 1 = below LLOQ, 2 = below
  LOD), ``LLOQ``, ``LOD``;
* the analyte of an observation from ``ANALYTE`` (code or alias), else ``DVID`` (the table
  :data:`DVID`, or ``analyte_by_dvid``), else ``CMT`` (``analyte_by_cmt``); its unit from
  ``UNIT`` (canonical unit assumed when there is no such column);
* subject covariates (:data:`SUBJECT_COLUMNS`: ``STUDY``, ``REGIMEN``, ``AGE``, ``BSA``,
  ``BLAST``, ``RESP``, ``OFFSTUDY`` (off-study time on the ``TIME`` scale) and ``OFFRSN`` (its
  reason), ...), constant within an ``ID``; numeric covariates use ``-99`` for missing, text ones
  ``.``; ``SUBJID`` carries the original subject id (``ID`` is numeric);
* blinatumomab as a continuous infusion: a dose record starts a segment at ``TIME`` that ends at
  ``TIME + AMT/RATE`` (or ``TIME + DUR``), at ``RATE * 24`` per day; ``RATE`` is in µg/m²/h and
  ``AMT`` in µg/m² (``DOSU`` = ``ug/m2/day``) or µg/h and µg (``DOSU`` = ``ug/day``).

Times are measured from each subject's first dose record (``TIME`` may have any origin). A
censored observation (``BLQ`` 1 or 2) follows the M3 convention: ``MDV`` = 0, ``DV`` = the limit
given in ``LLOQ``/``LOD`` (``DV`` = 0 when the assay's default limit applies). Extra columns are
carried along: ``S_*`` (or any column constant within every ID) to subjects, ``O_*`` (or any
other column) to observations, ``D_*`` to dosing.

:func:`write_nonmem` writes the same layout; :func:`read_nonmem` of its output gives a dataset
with the same :meth:`~bayes_blina.data.dataset.Dataset.sha256`.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_blina._atomic import swap_in
from bayes_blina.data.analytes import ANALYTES, resolve_analyte
from bayes_blina.data.dataset import Dataset
from bayes_blina.data.records import (_cycle_of, _derive_cycles, _float_text, _is_missing, _number,
                                      _patient_tables, _round_sig, _Rows, _short, _text, _validate_rows)
from bayes_blina.data.schema import COLUMNS
from bayes_blina.errors import BayesBlinaError, DataValidationError, Problem

__all__ = ["DVID", "SUBJECT_COLUMNS", "NONMEM_COLUMNS", "SNAP_DIGITS", "SNAP_TOLERANCE",
           "read_nonmem", "write_nonmem"]

#: Default ``DVID`` code of each analyte (written by :func:`write_nonmem`).
DVID: dict[str, int] = {
    "BLINA": 1, "IL2": 2, "IL4": 3, "IL6": 4, "IL10": 5, "TNFA": 6, "IFNG": 7, "GZMB": 8,
    "CD3": 9, "CD4": 10, "CD8": 11, "CD4_NAIVE": 12, "CD4_MEMORY": 13, "CD8_NAIVE": 14,
    "CD8_MEMORY": 15, "CD19": 16, "NEUT": 17, "PLT": 18, "ALT": 19, "AST": 20, "GGT": 21,
    "ALP": 22, "BILI": 23, "CRP": 24, "DDIMER": 25, "LDH": 26, "TEMP": 27,
}

#: Default covariate columns: NONMEM column -> ``subjects`` column.
SUBJECT_COLUMNS: dict[str, str] = {
    "STUDY": "study", "REGIMEN": "regimen", "AGE": "age_years", "AGEGR": "age_group",
    "BLAST": "blast_pct", "BLASTGR": "blast_burden", "BSA": "bsa_m2", "HSCT": "prior_hsct",
    "REFR": "refractory", "NREL": "prior_relapses", "NRELGR": "prior_relapses_group",
    "REGION": "region", "RESP": "response", "OFFSTUDY": "offstudy_h", "OFFRSN": "offstudy_reason",
    "OSDAY": "os_days", "OSEVT": "os_event", "RFSDAY": "rfs_days", "RFSEVT": "rfs_event", "MRDCR": "mrd_response",
    "HSCTDAY": "hsct_days",
}

#: Event columns with a fixed meaning (any other column is carried as an extra column).
NONMEM_COLUMNS = ("ID", "SUBJID", "TIME", "EVID", "MDV", "AMT", "RATE", "DUR", "ADDL", "II",
                  "SS", "CMT", "DV", "CDV", "DVID", "ANALYTE", "UNIT", "BLQ", "LLOQ", "LOD",
                  "CYCLE", "DOSU")

#: A daily dose ``RATE * 24`` (or a duration ``AMT / RATE``) within :data:`SNAP_TOLERANCE`
#: (relative) of a number with :data:`SNAP_DIGITS` significant digits is read as that number, so
#: a rate written as 0.2083333 µg/m²/h gives 5 µg/m²/day and 35 / 0.2083333 gives 168 h.
SNAP_DIGITS = 6
SNAP_TOLERANCE = 1e-6

_NUMERIC_SUBJECT = frozenset({"age_years", "blast_pct", "bsa_m2", "prior_hsct", "refractory",
                              "prior_relapses", "response", "offstudy_h", "os_days", "os_event",
                              "rfs_days", "rfs_event", "mrd_response", "hsct_days"})
_PREFIX = {"S_": "subjects", "O_": "observations", "D_": "dosing"}


# ----------------------------------------------------------------------------------------------
# Reading the file
# ----------------------------------------------------------------------------------------------

def _split_lines(text: str, label: str, problems: list[Problem]
                 ) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header names (upper case) and ``(row, fields)`` of the data records.

    Row numbers count the lines after the header (row 1 = the line after it), including blank and
    comment lines (``#``, ``@`` or a ``C`` in a first column named ``C``), which are skipped.
    """
    lines = text.splitlines()
    h = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if h is None:
        problems.append(Problem(label, None, None, "file is empty"))
        return [], []
    header_line = lines[h].strip().lstrip("#@").strip()
    comma = "," in header_line
    split = ((lambda ln: next(csv.reader([ln]))) if comma
             else (lambda ln: ln.split()))
    names = [n.strip().upper() for n in split(header_line)]
    if not any(names):
        problems.append(Problem(label, None, None, "the header line names no columns (a NONMEM "
                                "data file starts with its column names, e.g. '#ID TIME AMT DV "
                                "EVID MDV CMT')", lines[h].strip()[:60]))
        return [], []
    if len(names) == 1 and ";" in names[0]:
        problems.append(Problem(label, None, None, "columns must be separated by commas or "
                                "spaces (the header line contains ';')", header_line[:60]))
        return [], []
    records: list[tuple[int, list[str]]] = []
    c_col = names.index("C") if "C" in names else None
    for k, line in enumerate(lines[h + 1:], start=1):
        s = line.strip()
        if not s or s[0] in "#@":
            continue
        fields = [f.strip() for f in split(line)] if comma else s.split()
        if c_col is not None and c_col < len(fields) and fields[c_col].upper() == "C":
            continue
        if len(fields) != len(names):
            problems.append(Problem(label, None, k, f"record has {len(fields)} fields, the "
                                    f"header has {len(names)}"))
            continue
        records.append((k, fields))
    return names, records


def _read_text(path: Path, label: str, problems: list[Problem]) -> str | None:
    from bayes_blina.data.io import decode_bytes

    try:
        data = path.read_bytes()
    except OSError as err:
        problems.append(Problem(label, None, None, f"file could not be read "
                                f"({err.strerror or err})"))
        return None
    text, problem = decode_bytes(data, label)
    if problem is not None:
        problems.append(problem)
        return None
    if not text.strip():
        problems.append(Problem(label, None, None, "file is empty"))
        return None
    return text


class _Records:
    """The records of the file as text cells, with their row numbers and a problem list."""

    def __init__(self, label: str, names: list[str], records: list[tuple[int, list[str]]],
                 problems: list[Problem]):
        self.label = label
        self.problems = problems
        self.names: list[str] = []
        idx: list[int] = []
        for i, n in enumerate(names):
            if n in self.names:
                self.add(n, None, "column names must be unique (case-insensitive)")
            else:
                self.names.append(n)
                idx.append(i)
        self.rows = [r for r, _ in records]
        self.cells = {n: [f[i] for _, f in records] for n, i in zip(self.names, idx)}
        self.n = len(records)

    def has(self, col: str) -> bool:
        return col in self.cells

    def cell(self, col: str, i: int) -> str:
        return self.cells[col][i] if col in self.cells else ""

    def add(self, col: str | None, i: int | None, rule: str, value: str | None = None) -> None:
        """A problem at record position ``i`` (0-based; ``None``: the whole column)."""
        self.problems.append(Problem(self.label, col, None if i is None else self.rows[i], rule,
                                     value))

    def number(self, col: str, i: int, *, default: float | None = None,
               rule: str | None = None) -> tuple[float | None, bool]:
        """Value of a numeric cell (``default`` when missing) and whether it was readable."""
        raw = self.cell(col, i)
        try:
            x = _number(raw)
        except ValueError:
            self.add(col, i, rule or f"{col} must be a number", raw)
            return None, False
        return (default if x is None else x), True


def _code_key(k: object) -> int | str | None:
    """A CMT/DVID code as a table key: a whole number, else the text in upper case (files such as
    pharmpy's write DVID as text, e.g. ``cp``); ``None`` for an empty or fractional code."""
    text = str(k).strip()
    try:
        x = float(text)
    except ValueError:
        return text.upper() or None
    return int(x) if x == round(x) else None


def _code_table(table: Mapping[Any, str] | None, what: str) -> dict[int | str, str]:
    """A CMT/DVID -> analyte table with codes checked (keys: whole numbers or text codes)."""
    out: dict[int | str, str] = {}
    for k, v in (table or {}).items():
        code = resolve_analyte(str(v))
        if code is None:
            raise BayesBlinaError(f"{what}: {v!r} (for {k}) is not a known analyte code or alias")
        key = _code_key(k)
        if key is None:
            raise BayesBlinaError(f"{what}: keys must be whole numbers or text codes (found {k!r})")
        out[key] = code
    return out


# ----------------------------------------------------------------------------------------------
# read_nonmem
# ----------------------------------------------------------------------------------------------

def read_nonmem(file: str | os.PathLike[str], *,
                subjects_columns: Mapping[str, str | None] | None = None,
                analyte_by_cmt: Mapping[int, str] | None = None,
                analyte_by_dvid: Mapping[int, str] | None = None,
                study: str | None = None, dose_unit: str = "ug/m2/day",
                id_column: str = "SUBJID", missing_code: str = "-99",
                cycle_gap_days: float = 7.0, screening_window_h: float = 504.0,
                name: str | None = None) -> Dataset:
    """Read a NONMEM-style dataset into a validated :class:`Dataset`.

    Parameters
    ----------
    file : path
        CSV (or whitespace-separated) file with a header line.
    subjects_columns : mapping, optional
        NONMEM column -> ``subjects`` column, merged into :data:`SUBJECT_COLUMNS` (a value of
        ``None`` removes a default).
    analyte_by_cmt : mapping of int to str, optional
        Analyte of the observations of each ``CMT``, used when there is neither an ``ANALYTE``
        nor a ``DVID`` column.
    analyte_by_dvid : mapping of int to str, optional
        Analyte of each ``DVID`` (default :data:`DVID`), used when there is no ``ANALYTE`` column.
    study : str, optional
        Study label for every subject when the file has no ``STUDY`` column.
    dose_unit : {'ug/m2/day', 'ug/day'}
        Dose basis when there is no ``DOSU`` column (``RATE`` in µg/m²/h or µg/h).
    id_column : str, default 'SUBJID'
        Column with the subject id; ``ID`` is used when the file has no such column.
    missing_code : str, default '-99'
        Value meaning "missing" in numeric covariate columns (besides ``.`` and empty).
    cycle_gap_days : float, default 7
        Without a ``CYCLE`` column, a break of at least this many days starts a new cycle.
    screening_window_h : float, default 504
        Observations may lie this many hours before the first infusion start.
    name : str, optional
        Dataset name (default: the file stem).

    Returns
    -------
    Dataset
        ``subjects``, ``dosing``, ``observations``; ``meta['skipped']`` counts records that carry
        no package data (``EVID`` 2/3 and ``MDV`` = 1 observations without ``BLQ``).

    Raises
    ------
    DataValidationError
        Listing every problem (file, column, row, rule).
    BayesBlinaError
        If an argument is invalid (unknown analyte in a code table).
    """
    path = Path(file).expanduser()
    label = path.name
    cmt_table = _code_table(analyte_by_cmt, "analyte_by_cmt")
    dvid_table = _code_table(analyte_by_dvid if analyte_by_dvid is not None
                             else {v: k for k, v in DVID.items()}, "analyte_by_dvid")
    cov_map = dict(SUBJECT_COLUMNS)
    for k, v in (subjects_columns or {}).items():
        if v is None:
            cov_map.pop(k.upper(), None)
        elif v not in COLUMNS["subjects"] or v == "subject_id":
            raise BayesBlinaError(f"subjects_columns: {v!r} (for {k}) is not a subjects column; "
                                  f"columns are {', '.join(COLUMNS['subjects'][1:])}")
        else:
            cov_map = {c: f for c, f in cov_map.items() if f != v}
            cov_map[k.upper()] = v
    problems: list[Problem] = []
    text = _read_text(path, label, problems) if path.is_file() else None
    if text is None:
        if not path.is_file():
            problems.append(Problem(label, None, None, f"file not found ({path})"))
        raise DataValidationError(problems)
    names, records = _split_lines(text, label, problems)
    if not names:
        raise DataValidationError(problems)
    r = _Records(label, names, records, problems)
    for col in ("ID", "TIME"):
        if not r.has(col):
            r.add(col, None, "required column is missing")
    if r.n == 0 and r.has("ID"):
        r.add(None, None, "file has no data records")
    if not (r.has("ID") and r.has("TIME")) or r.n == 0:
        raise DataValidationError(problems)
    reader = _Reader(r, cov_map, cmt_table, dvid_table, study, dose_unit,
                     id_column.upper(), missing_code, 24.0 * float(cycle_gap_days))
    tables = reader.run()
    return _validate_rows(tables, problems=problems, problem_cls=Problem,
                          screening_window_h=screening_window_h, name=name or path.stem,
                          origin=str(path), meta={"format": "nonmem", "files": {"nonmem": label},
                                                  "skipped": reader.skipped,
                                                  "assumed": _assumptions(r, tables, dose_unit)})


def _assumptions(r: _Records, tables: dict[str, _Rows], dose_unit: str) -> list[str]:
    """What the reader took for granted because the file does not say it (the units), in words
    that ``import nonmem`` prints, so that nothing is assumed silently."""
    out = []
    if not r.has("DOSU") and tables["dosing"].records:
        out.append(f"doses in {dose_unit} (the file has no DOSU column; set the basis with "
                   "dose_unit / --dose-unit)")
    if not r.has("UNIT") and tables["observations"].records:
        codes = sorted({c for c in (resolve_analyte(rec.get("analyte", "")) for rec in tables["observations"].records)
                        if c})
        out.append("results in each analyte's package unit (the file has no UNIT column): "
                   + ", ".join(f"{c} {ANALYTES[c].unit}" for c in codes))
    return out


class _Reader:
    """Turns the records of a NONMEM file into package records."""

    def __init__(self, r: _Records, cov_map: dict[str, str], cmt_table: dict[int, str],
                 dvid_table: dict[int, str], study: str | None, dose_unit: str, id_column: str,
                 missing_code: str, gap_h: float):
        self.r = r
        self.cov_map = {c: f for c, f in cov_map.items() if r.has(c)}
        self.cmt_table, self.dvid_table = cmt_table, dvid_table
        self.study, self.dose_unit = study, dose_unit
        self.id_col = id_column if r.has(id_column) else "ID"
        self.missing_code = missing_code
        self.gap_h = gap_h
        self.skipped: dict[str, int] = {}
        extra = [c for c in r.names if c not in NONMEM_COLUMNS and c not in self.cov_map
                 and c != "C"]
        self.extras: dict[str, dict[str, str]] = {"subjects": {}, "observations": {},
                                                   "dosing": {}}
        self._extra_cols = extra

    # -- records -----------------------------------------------------------------------------
    def run(self) -> dict[str, _Rows]:
        r = self.r
        ids = [_id_text(v) for v in r.cells["ID"]]
        times: list[float | None] = []
        for i in range(r.n):
            t, ok = r.number("TIME", i)
            if ok and t is None:
                r.add("TIME", i, "TIME is required")
            times.append(t if ok else None)
        for i, v in enumerate(ids):
            if not v:
                r.add("ID", i, "ID must not be empty")
        evid = self._evids()
        self._order_checks(ids, times, evid)
        self._classify_extras(ids)
        t0: dict[str, float] = {}
        for i in range(r.n):
            if evid[i] in (1, 4) and times[i] is not None and ids[i]:
                t0[ids[i]] = min(t0.get(ids[i], math.inf), times[i])
        subjects = self._subjects(ids)
        sid_of = {k: rec["subject_id"] for k, rec in zip(self._id_order, subjects.records)}
        self._offstudy_from_first_dose(subjects, t0)
        dosing = self._dosing(ids, times, evid, t0, sid_of)
        observations = self._observations(ids, times, evid, t0, sid_of)
        self._fill_regimens(subjects, dosing)
        return {"subjects": subjects, "dosing": dosing, "observations": observations}

    def _evids(self) -> list[int | None]:
        r = self.r
        out: list[int | None] = []
        for i in range(r.n):
            if r.has("EVID"):
                e, ok = r.number("EVID", i, default=0.0)
                if ok and e not in (0.0, 1.0, 2.0, 3.0, 4.0):
                    r.add("EVID", i, "EVID must be 0 (observation), 1 (dose), 2 (other), "
                          "3 (reset) or 4 (reset and dose)", r.cell("EVID", i))
                    ok = False
                out.append(int(e) if ok and e is not None else None)
            else:
                amt, ok1 = r.number("AMT", i, default=0.0)
                rate, ok2 = r.number("RATE", i, default=0.0)
                mdv, ok3 = r.number("MDV", i, default=0.0)
                if not (ok1 and ok2 and ok3):
                    out.append(None)
                elif (amt or 0) > 0 or (rate or 0) > 0:
                    out.append(1)
                else:
                    out.append(2 if mdv == 1 and self._blq(i, quiet=True) == 0 else 0)
        return out

    def _order_checks(self, ids: list[str], times: list[float | None],
                      evid: list[int | None]) -> None:
        r = self.r
        block_of: dict[str, tuple[int, int]] = {}
        prev_id: str | None = None
        prev_t: tuple[float, int] | None = None
        seen_lines: dict[tuple[str, ...], int] = {}
        restarted: set[str] = set()
        for i in range(r.n):
            line = tuple(r.cells[c][i] for c in r.names)
            if line in seen_lines:
                r.add(None, i, f"duplicate record (same as row {r.rows[seen_lines[line]]})")
            else:
                seen_lines[line] = i
            sid = ids[i]
            if sid != prev_id:
                if sid in block_of:
                    first, last = block_of[sid]
                    r.add("ID", i, f"records of one ID must be contiguous (ID {sid} also has "
                          f"rows {r.rows[first]}-{r.rows[last]})", sid)
                prev_t = None
            block_of[sid] = (block_of.get(sid, (i, i))[0], i)
            prev_id = sid
            t = times[i]
            if t is None:
                continue
            if sid in restarted:  # after a restarted clock nothing more of this ID can be placed
                times[i] = None
                continue
            if evid[i] in (3, 4) and prev_t is not None and t < prev_t[0]:
                # a reset whose clock starts again: the package's time is hours since the first
                # infusion, and the gap between the occasions is not in the file
                r.add("TIME", i, f"TIME must not go back at a reset (EVID {evid[i]}; row {r.rows[prev_t[1]]} "
                      f"has TIME {_float_text(prev_t[0])}): the occasion's clock starts again and its "
                      "time since the first dose is not in the file; give TIME as the time since the "
                      "first dose (e.g. the TAFD column) across occasions", r.cell("TIME", i))
                restarted.add(sid)
                times[i] = None
                continue
            if prev_t is not None and t < prev_t[0]:
                r.add("TIME", i, f"TIME must not decrease within an ID (row {r.rows[prev_t[1]]} "
                      f"has TIME {_float_text(prev_t[0])}); sort the records by ID and TIME",
                      r.cell("TIME", i))
            prev_t = (t, i) if prev_t is None or t >= prev_t[0] else prev_t

    def _classify_extras(self, ids: list[str]) -> None:
        r = self.r
        for col in self._extra_cols:
            prefix = col[:2]
            if prefix in _PREFIX and len(col) > 2:
                self.extras[_PREFIX[prefix]][col[2:].lower()] = col
                continue
            values: dict[str, str] = {}
            constant = True
            for sid, v in zip(ids, r.cells[col]):
                if _is_missing(v):
                    continue
                if values.setdefault(sid, v) != v:
                    constant = False
                    break
            self.extras["subjects" if constant else "observations"][col.lower()] = col

    # -- subjects ----------------------------------------------------------------------------
    def _subjects(self, ids: list[str]) -> _Rows:
        r = self.r
        cols: dict[str, str] = {"subject_id": self.id_col}
        cols.update({f: c for c, f in self.cov_map.items()})
        cols.update({k: c for k, c in self.extras["subjects"].items()})
        if "study" not in cols:
            cols["study"] = "STUDY"
        rows = _Rows(file=r.label, default_columns=cols)
        positions: dict[str, list[int]] = {}
        for i, sid in enumerate(ids):
            if sid:
                positions.setdefault(sid, []).append(i)
        self._id_order = list(positions)
        if "study" not in self.cov_map.values() and self.study is None:
            r.add("STUDY", None, "required column is missing (or give the study label with "
                  "study=... / --study)")
        for sid, pos in positions.items():
            rec: dict[str, str] = {}
            ident = self._constant(self.id_col, pos, text=True) if self.id_col != "ID" else sid
            rec["subject_id"] = ident or sid
            for col, fld in self.cov_map.items():
                rec[fld] = self._constant(col, pos, text=fld not in _NUMERIC_SUBJECT)
            if "study" not in rec:
                rec["study"] = self.study if self.study is not None else "?"
            for k, col in self.extras["subjects"].items():
                rec[k] = self._constant(col, pos, text=True)
            rows.add(rec, r.label, r.rows[pos[0]])
        return rows

    def _offstudy_from_first_dose(self, subjects: _Rows, t0: dict[str, float]) -> None:
        """``OFFSTUDY`` is on the ``TIME`` scale: measure it from the first dose record, as
        ``offstudy_h`` is (a value that is not a number is left for the validator)."""
        for key, rec in zip(self._id_order, subjects.records):
            origin = t0.get(key, 0.0)
            text = rec.get("offstudy_h", "")
            if not origin or not text:
                continue
            try:
                rec["offstudy_h"] = _float_text(_round_sig(float(text) - origin))
            except ValueError:
                continue

    def _constant(self, col: str, pos: list[int], *, text: bool) -> str:
        """The value of a covariate over one ID's records ('' when missing everywhere)."""
        r = self.r
        value, where = "", -1
        for i in pos:
            v = r.cells[col][i]
            if _is_missing(v) or (not text and v == self.missing_code):
                continue
            if not value:
                value, where = v, i
            elif v != value:
                same = False
                if not text:
                    try:
                        same = float(v) == float(value)
                    except ValueError:
                        same = False
                if not same:
                    r.add(col, i, f"{col} must be constant within an ID (row {r.rows[where]} "
                          f"has {value!r})", v)
                    break
        return value

    # -- dosing ------------------------------------------------------------------------------
    def _dosing(self, ids: list[str], times: list[float | None], evid: list[int | None],
                t0: dict[str, float], sid_of: dict[str, str]) -> _Rows:
        r = self.r
        dur_col = "DUR" if r.has("DUR") else "AMT"
        cols = {"subject_id": "ID", "cycle": "CYCLE" if r.has("CYCLE") else "TIME",
                "start_h": "TIME", "end_h": dur_col, "dose": "RATE",
                "dose_unit": "DOSU" if r.has("DOSU") else "RATE",
                **self.extras["dosing"]}
        rows = _Rows(file=r.label, default_columns=cols)
        segs: list[tuple[int, str, float, float, float, str, int | None]] = []
        for i in range(r.n):
            if evid[i] not in (1, 4) or times[i] is None or not ids[i]:
                continue
            seg = self._segment(i)
            if seg is None:
                continue
            dur, dose = seg
            ss, ok = r.number("SS", i, default=0.0)
            if ok and ss:
                r.add("SS", i, "steady-state doses (SS) cannot be represented; give the "
                      "infusion history as dose records", r.cell("SS", i))
                continue
            addl, ok1 = r.number("ADDL", i, default=0.0)
            ii, ok2 = r.number("II", i, default=0.0)
            if not (ok1 and ok2):
                continue
            if addl and (addl < 0 or addl != round(addl) or not ii or ii <= 0):
                r.add("ADDL", i, "ADDL must be a whole number >= 0 and needs II > 0",
                      r.cell("ADDL", i))
                continue
            cycle = None
            if r.has("CYCLE"):
                try:
                    cycle = _cycle_of(r.cell("CYCLE", i))
                except ValueError:
                    r.add("CYCLE", i, "CYCLE must be a whole number >= 1", r.cell("CYCLE", i))
                    continue
            origin = t0.get(ids[i], 0.0)
            start = times[i] - origin if origin else times[i]  # type: ignore[operator]
            start = _round_sig(start) if origin else start
            unit = r.cell("DOSU", i) if r.has("DOSU") else self.dose_unit
            for k in range(int(addl or 0) + 1):
                s = _round_sig(start + k * (ii or 0.0)) if k else start
                segs.append((i, ids[i], s, _round_sig(s + dur), dose, unit, cycle))
        if r.has("CYCLE"):
            cycles = [seg[6] for seg in segs]
        else:
            cycles = _derive_cycles([seg[1] for seg in segs], [seg[2] for seg in segs],
                                    [seg[3] for seg in segs], self.gap_h)
        for (i, sid, start, end, dose, unit, _), cycle in zip(segs, cycles):
            rec = {"subject_id": sid_of.get(sid, sid), "cycle": str(cycle),
                   "start_h": _float_text(start), "end_h": _float_text(end),
                   "dose": _float_text(dose), "dose_unit": unit}
            for k, col in self.extras["dosing"].items():
                rec[k] = _text(r.cell(col, i))
            rows.add(rec, r.label, r.rows[i])
        return rows

    def _segment(self, i: int) -> tuple[float, float] | None:
        """Duration (h) and daily dose of the infusion of dose record ``i``."""
        r = self.r
        amt, ok1 = r.number("AMT", i, default=0.0)
        rate, ok2 = r.number("RATE", i, default=0.0)
        dur, ok3 = (r.number("DUR", i) if r.has("DUR") else (None, True))
        if not (ok1 and ok2 and ok3):
            return None
        assert amt is not None and rate is not None
        if amt < 0:
            r.add("AMT", i, "AMT must be >= 0", r.cell("AMT", i))
            return None
        if rate < 0:
            r.add("RATE", i, "RATE must be > 0: blinatumomab is a continuous infusion at a "
                  "known rate (modelled rates or durations, RATE = -1 or -2, are not supported)",
                  r.cell("RATE", i))
            return None
        if rate == 0:
            if amt > 0:
                r.add("RATE", i, "RATE must be > 0: a bolus dose (RATE 0) cannot be represented; "
                      "blinatumomab is a continuous infusion", r.cell("RATE", i))
                return None
            if dur is None or dur <= 0:
                r.add("DUR" if r.has("DUR") else "RATE", i, "a dose record with AMT 0 and RATE 0 "
                      "(an infusion at dose 0) needs DUR > 0 (hours)",
                      r.cell("DUR", i) if r.has("DUR") else r.cell("RATE", i))
                return None
            return dur, 0.0
        dose = _snap(rate * 24.0)
        length = _snap(amt * 24.0 / dose)
        if dur is not None:
            if abs(dur - length) > 1e-6 * max(1.0, abs(dur)):
                r.add("DUR", i, f"DUR must equal AMT/RATE ({_float_text(length)} h)",
                      r.cell("DUR", i))
                return None
            length = dur
        if length <= 0:
            r.add("AMT", i, "AMT must be > 0 when RATE > 0 (the infusion would last 0 h)",
                  r.cell("AMT", i))
            return None
        return length, dose

    # -- observations ------------------------------------------------------------------------
    def _blq(self, i: int, quiet: bool = False) -> int | None:
        r = self.r
        if not r.has("BLQ"):
            return 0
        raw = r.cell("BLQ", i)
        try:
            b = _number(raw)
        except ValueError:
            b = math.nan
        b = 0.0 if b is None else b
        if b not in (0.0, 1.0, 2.0):
            if not quiet:
                r.add("BLQ", i, "BLQ must be 0, 1 (below LLOQ) or 2 (below LOD)", raw)
            return None
        return int(b)

    def _analyte_source(self) -> str | None:
        """The column that names the analyte of an observation (ANALYTE, DVID or CMT)."""
        r = self.r
        if r.has("ANALYTE"):
            return "ANALYTE"
        if r.has("DVID") and self.dvid_table:
            return "DVID"
        if r.has("CMT") and self.cmt_table:
            return "CMT"
        return None

    def _analyte(self, i: int, col: str) -> str | None:
        """Analyte of record ``i`` (a code, or the ANALYTE text as written for the validator)."""
        r = self.r
        if col == "ANALYTE":
            return r.cell("ANALYTE", i)
        table, what = ((self.dvid_table, "analyte_by_dvid") if col == "DVID"
                       else (self.cmt_table, "analyte_by_cmt"))
        raw = r.cell(col, i)
        key = _code_key(raw)
        if key is None or key not in table:
            flag = "--analyte-by-dvid" if col == "DVID" else "--analyte-by-cmt"
            r.add(col, i, f"{col} must be one of {', '.join(sorted(map(str, table)))} (the "
                  f"analyte codes of {what}); add the code to {what} ({flag} CODE=ANALYTE, e.g. "
                  f"{flag} {raw or 1}=IL6)", raw)
            return None
        return table[key]

    def _observations(self, ids: list[str], times: list[float | None], evid: list[int | None],
                      t0: dict[str, float], sid_of: dict[str, str]) -> _Rows:
        r = self.r
        base = {"subject_id": "ID", "analyte": "ANALYTE", "time_h": "TIME", "value": "DV",
                "unit": "UNIT", "lod": "LOD", "lloq": "LLOQ", "below": "BLQ",
                **self.extras["observations"]}
        rows = _Rows(file=r.label, default_columns=base)
        acol = self._analyte_source()
        if acol is not None:
            base["analyte"] = acol
            if not r.has("UNIT"):
                base["unit"] = acol
        for i in range(r.n):
            if evid[i] in (2, 3):
                self._skip(f"EVID {evid[i]} records")
                continue
            if evid[i] != 0 or times[i] is None or not ids[i]:
                continue
            blq = self._blq(i)
            if blq is None:
                continue
            mdv, ok = r.number("MDV", i, default=0.0)
            if not ok:
                continue
            if mdv == 1 and blq == 0:
                self._skip("observation records with MDV = 1 and no BLQ flag")
                continue
            if acol is None:
                if r.has("CMT"):
                    found = sorted({r.cell("CMT", j) for j in range(r.n) if evid[j] == 0} - {""}, key=str)
                    r.add("CMT", None, "the analyte of each observation needs an ANALYTE column, a DVID "
                          "column or CMT codes: give the analyte of each CMT with analyte_by_cmt "
                          "(--analyte-by-cmt, e.g. 1=BLINA,2=IL6)", ", ".join(found[:8]))
                else:
                    r.add("ANALYTE", None, "the analyte of each observation needs an ANALYTE column, "
                          "a DVID column or CMT codes (analyte_by_cmt); the file has none of them")
                break
            analyte = self._analyte(i, acol)
            if analyte is None:
                continue
            cols = dict(base)
            code = resolve_analyte(analyte)
            unit = r.cell("UNIT", i) if r.has("UNIT") else (ANALYTES[code].unit if code else "")
            origin = t0.get(ids[i], 0.0)
            time = _round_sig(times[i] - origin) if origin else times[i]  # type: ignore[operator]
            rec = {"subject_id": sid_of.get(ids[i], ids[i]), "analyte": analyte,
                   "time_h": _float_text(time),  # type: ignore[arg-type]
                   "unit": unit, "lod": _blank(r.cell("LOD", i)),
                   "lloq": _blank(r.cell("LLOQ", i)), "below": ""}
            if blq == 0:
                rec["value"] = _blank(r.cell("DV", i))
            else:
                rec["below"] = "LLOQ" if blq == 1 else "LOD"
                limit = rec["lloq" if blq == 1 else "lod"]
                dv = _blank(r.cell("DV", i))
                if not limit and dv:
                    try:
                        dv_x = _number(dv)
                    except ValueError:
                        dv_x = None
                        r.add("DV", i, "DV must be a number", dv)
                    if dv_x:  # M3: DV holds the limit when the limit column is empty
                        rec["lloq" if blq == 1 else "lod"] = dv
                        cols["lloq" if blq == 1 else "lod"] = "DV"
                cdv = _blank(r.cell("CDV", i))
                rec["value"] = cdv
                if cdv:
                    cols["value"] = "CDV"
            for k, col in self.extras["observations"].items():
                rec[k] = _text(r.cell(col, i))
            rows.add(rec, r.label, r.rows[i], cols)
        return rows

    def _skip(self, what: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1

    # -- regimen -----------------------------------------------------------------------------
    def _fill_regimens(self, subjects: _Rows, dosing: _Rows) -> None:
        """Derive missing regimens from the first cycle's doses (ug/m2/day, or ug/day / BSA)."""
        from bayes_blina.data.schema import normalise_regimen
        from bayes_blina.data.units import UnitError, normalise_dose_unit

        r = self.r
        if "regimen" in self.cov_map.values():
            return
        by_sid: dict[str, list[dict[str, str]]] = {}
        for rec in dosing.records:
            by_sid.setdefault(rec["subject_id"], []).append(rec)
        for rec, row in zip(subjects.records, subjects.rows):
            segs = by_sid.get(rec["subject_id"], [])
            levels: list[float] = []
            try:
                first = min(int(s["cycle"]) for s in segs)
                for s in sorted((s for s in segs if int(s["cycle"]) == first),
                                key=lambda s: float(s["start_h"])):
                    d = float(s["dose"])
                    if normalise_dose_unit(s["dose_unit"]) == "ug/day":
                        d = d / float(rec.get("bsa_m2") or "nan")
                    if d > 0 and (not levels or not math.isclose(d, levels[-1], rel_tol=1e-9)):
                        levels.append(_round_sig(d, 6))
                rec["regimen"] = normalise_regimen("-".join(_float_text(x) for x in levels))
            except (ValueError, UnitError, ZeroDivisionError):
                why = ("it has no usable dose record: none in the file, or every one refused above"
                       if not segs else "no dose record with dose > 0, or doses in ug/day without BSA")
                # the ID is named in the rule, not quoted as the value found in a REGIMEN column
                r.problems.append(Problem(r.label, "REGIMEN", row, "the file has no REGIMEN column and "
                                          f"the regimen of ID {rec['subject_id']} cannot be derived "
                                          f"from its dose records ({why})"))
                rec["regimen"] = "1"
        subjects.default_columns["regimen"] = "REGIMEN"


def _snap(x: float) -> float:
    """``x`` as the nearby short number when it is one up to rounding of the file's digits."""
    short = _round_sig(x, SNAP_DIGITS)
    if abs(x - short) <= SNAP_TOLERANCE * abs(short):
        return short
    return _round_sig(x)


def _id_text(v: str) -> str:
    """ID cell as a subject id: numeric IDs without a trailing '.0'."""
    s = v.strip()
    if re.fullmatch(r"\d+\.0*", s):
        return s.split(".")[0]
    return "" if s == "." else s


def _blank(v: str) -> str:
    return "" if _is_missing(v) else v.strip()


# ----------------------------------------------------------------------------------------------
# write_nonmem
# ----------------------------------------------------------------------------------------------

def _cov_text(v: object, numeric: bool) -> str:
    if v is None or v is pd.NA or (not isinstance(v, str) and pd.isna(v)):
        return "-99" if numeric else "."
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (float, np.floating)):
        return _short(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v) if str(v) else "."


def _num_text(v: object) -> str:
    if v is None or pd.isna(v):
        return "."
    return _short(float(v))


def write_nonmem(dataset: Dataset, file: str | os.PathLike[str], *, overwrite: bool = False,
                 drop_aggregates: bool = False) -> Path:
    """Write a dataset as a NONMEM-style CSV file (layout of :func:`read_nonmem`).

    Each subject gets a numeric ``ID`` (1, 2, ... in the order of ``subjects``) and its id in
    ``SUBJID``; every record repeats the subject's covariates. Dosing segments become infusion
    records (``EVID`` 1, ``AMT`` = dose × hours / 24, ``RATE`` = dose / 24, ``DUR`` = hours),
    observations ``EVID`` 0 records in canonical units with ``DVID``/``ANALYTE``/``UNIT``;
    censored ones carry ``BLQ`` (1 = LLOQ, 2 = LOD), ``MDV`` 0 and ``DV`` = the row's limit (0
    when the assay default applies), a value reported on a censored row goes to ``CDV``. A subject
    with neither dosing nor observations gets one ``EVID`` 2 record. Records are sorted by ``ID``,
    ``TIME`` (observations before doses at the same time). Text columns (``SUBJID``, ``ANALYTE``,
    ``UNIT``, ``DOSU``, ``STUDY``, ``REGIMEN``, ...) must be dropped in ``$INPUT``
    (``SUBJID=DROP``); the header line is skipped with ``IGNORE=@``.

    Parameters
    ----------
    dataset : Dataset
    file : path
        Output CSV file (written atomically).
    overwrite : bool
        Replace an existing file.
    drop_aggregates : bool
        Leave out published aggregates/summaries instead of refusing the dataset.

    Returns
    -------
    Path

    Raises
    ------
    BayesBlinaError
        For a dataset without subjects, with aggregates (unless ``drop_aggregates``), or an
        existing file without ``overwrite``.
    """
    _patient_tables(dataset, drop_aggregates, "write_nonmem")
    path = Path(file).expanduser()
    if path.exists() and (path.is_dir() or not overwrite):
        raise BayesBlinaError(f"'{path}' exists; pass overwrite=True (--force) to replace it")
    subj = dataset.subjects
    assert subj is not None
    cov_cols = [(c, f) for c, f in SUBJECT_COLUMNS.items() if f in subj.columns]
    known = set(NONMEM_COLUMNS) | set(SUBJECT_COLUMNS) | {"C"}

    def extra_name(name: str, prefix: str) -> str:
        up = name.upper()
        if prefix == "S_" and up not in known and up[:2] not in _PREFIX:
            return up
        return prefix + up

    s_extra = {c: extra_name(c, "S_") for c in subj.columns if c not in COLUMNS["subjects"]}
    dos, obs = dataset.dosing, dataset.observations
    d_extra = ({c: extra_name(c, "D_") for c in dos.columns if c not in COLUMNS["dosing"]}
               if dos is not None else {})
    o_extra = ({c: extra_name(c, "O_") for c in obs.columns if c not in COLUMNS["observations"]}
               if obs is not None else {})
    with_cdv = obs is not None and bool(((obs["below"] != "") & obs["value"].notna()).any())
    header = ["ID", "SUBJID", "TIME", "EVID", "MDV", "AMT", "RATE", "DUR", "CMT", "DV", "DVID",
              "ANALYTE", "UNIT", "BLQ", "LLOQ", "LOD"] + (["CDV"] if with_cdv else []) + \
        ["CYCLE", "DOSU"] + [c for c, _ in cov_cols] + list(s_extra.values()) + \
        list(o_extra.values()) + list(d_extra.values())
    index = {sid: k + 1 for k, sid in enumerate(subj["subject_id"].tolist())}
    base: dict[str, dict[str, str]] = {}
    for rec in subj.to_dict("records"):
        b = {"ID": str(index[rec["subject_id"]]), "SUBJID": str(rec["subject_id"])}
        for col, fld in cov_cols:
            b[col] = _cov_text(rec[fld], fld in _NUMERIC_SUBJECT)
        for c, name in s_extra.items():
            b[name] = _cov_text(rec[c], False)
        base[rec["subject_id"]] = b
    events: list[tuple[int, float, int, int, dict[str, str]]] = []
    if dos is not None:
        for k, rec in enumerate(dos.to_dict("records")):
            hours = float(rec["end_h"]) - float(rec["start_h"])
            dose = float(rec["dose"])
            e = {"TIME": _short(float(rec["start_h"])), "EVID": "1", "MDV": "1",
                 "AMT": _short(dose * hours / 24.0), "RATE": _short(dose / 24.0),
                 "DUR": _short(hours), "CMT": "1", "DV": ".", "CYCLE": str(int(rec["cycle"])),
                 "DOSU": str(rec["dose_unit"])}
            for c, name in d_extra.items():
                e[name] = _cov_text(rec[c], False)
            events.append((index[rec["subject_id"]], float(rec["start_h"]), 2, k, e))
    if obs is not None:
        for k, rec in enumerate(obs.to_dict("records")):
            code = rec["analyte"]
            below = rec["below"]
            lod = rec["lod"] if not pd.isna(rec["lod"]) else None
            lloq = rec["lloq"] if not pd.isna(rec["lloq"]) else None
            if rec["limit_source"] == "default":
                if below == "LOD":
                    lod = None
                elif below == "LLOQ":
                    lloq = None
            if below:
                limit = lloq if below == "LLOQ" else lod
                dv = _num_text(limit) if limit is not None else "0"
            else:
                dv = _num_text(rec["value"])
            e = {"TIME": _short(float(rec["time_h"])), "EVID": "0", "MDV": "0", "AMT": "0",
                 "RATE": "0", "DUR": ".", "CMT": "1" if code == "BLINA" else "2", "DV": dv,
                 "DVID": str(DVID.get(code, 100 + list(ANALYTES).index(code))),
                 "ANALYTE": code, "UNIT": str(rec["unit"]),
                 "BLQ": {"": "0", "LLOQ": "1", "LOD": "2"}[below],
                 "LLOQ": _num_text(lloq), "LOD": _num_text(lod)}
            if with_cdv:
                e["CDV"] = _num_text(rec["value"]) if below else "."
            for c, name in o_extra.items():
                e[name] = _cov_text(rec[c], False)
            events.append((index[rec["subject_id"]], float(rec["time_h"]), 1, k, e))
    have = {ev[0] for ev in events}
    for sid, k in index.items():
        if k not in have:
            events.append((k, 0.0, 0, 0, {"TIME": "0", "EVID": "2", "MDV": "1", "AMT": "0",
                                          "RATE": "0", "DV": "."}))
    events.sort(key=lambda ev: ev[:4])
    sid_by_index = {k: sid for sid, k in index.items()}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for k, _, _, _, e in events:
        row = {**base[sid_by_index[k]], **e}
        w.writerow([row.get(c, ".") for c in header])
    from bayes_blina._atomic import make_parent

    make_parent(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(buf.getvalue())
        os.chmod(tmp, 0o644)
        swap_in(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
