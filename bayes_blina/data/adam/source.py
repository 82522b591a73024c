"""One ADaM file (SAS transport or CSV) as records with their row numbers (:class:`_Source`).

Variable names are upper-cased and must be unique, the mapping's ``where`` filter is applied,
and every problem is an :class:`~bayes_blina.data.adam.mapping.AdamProblem` naming the file,
variable and record.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_blina.data.adam.mapping import AdamProblem, FileMapping
from bayes_blina.data.records import _text
from bayes_blina.errors import Problem


def _read_xpt(path: Path, label: str) -> tuple[pd.DataFrame | None, Problem | None]:
    try:
        import pyreadstat  # noqa: PLC0415 - optional dependency
    except ImportError:
        pyreadstat = None
    try:
        if pyreadstat is not None:
            df, _ = pyreadstat.read_xport(str(path))
        else:
            df = pd.read_sas(path, format="xport", encoding="latin-1")
            for c in df.columns:  # pandas decodes an IBM zero with an exponent as 16**-65
                if pd.api.types.is_float_dtype(df[c]):
                    df.loc[df[c].abs() <= 16.0 ** -65, c] = 0.0
    except Exception as err:  # noqa: BLE001 - any reader failure becomes a Problem
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return None, AdamProblem(label, None, None,
                                 f"file could not be read as SAS transport (XPT) ({reason})")
    if len(df.columns) == 0:
        return None, AdamProblem(label, None, None, "file is empty (no variables)")
    return df.reset_index(drop=True), None


def _read_csv(path: Path, label: str) -> tuple[pd.DataFrame | None, Problem | None]:
    """A CSV file as text cells (rules of ``docs/data-format.md``: UTF-8, commas, blank lines
    skipped but counted); ``attrs['row_numbers']`` holds the data-row number of each record."""
    from bayes_blina.data.io import decode_bytes

    try:
        data = path.read_bytes()
    except OSError as err:
        return None, AdamProblem(label, None, None, f"file could not be read "
                                 f"({err.strerror or err})")
    text, problem = decode_bytes(data, label)
    if text is None:
        return None, AdamProblem(label, None, None, problem.rule if problem else "unreadable")
    if not text.strip():
        return None, AdamProblem(label, None, None, "file is empty")
    try:
        lines = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as err:
        return None, AdamProblem(label, None, None, f"file could not be parsed as CSV ({err})")
    header_at = next((i for i, r in enumerate(lines) if any(c.strip() for c in r)), None)
    if header_at is None:
        return None, AdamProblem(label, None, None, "file has no header line (every line is "
                                 "empty or empty cells only)")
    header = lines[header_at]
    if len(header) == 1 and ";" in header[0]:
        return None, AdamProblem(label, None, None, "columns must be separated by commas (the "
                                 "header line contains ';')", header[0][:60])
    records, rows = [], []
    for k, rec in enumerate(lines[header_at + 1:], start=1):
        if not any(c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            return None, AdamProblem(label, None, k, f"record has {len(rec)} fields, the header "
                                     f"has {len(header)}")
        records.append(rec)
        rows.append(k)
    df = pd.DataFrame(records, columns=header, dtype=object)
    df.attrs["row_numbers"] = rows
    return df, None


def _read_any(path: Path, label: str) -> tuple[pd.DataFrame | None, Problem | None]:
    if not path.is_file():
        return None, AdamProblem(label, None, None, f"file not found ({path})")
    suffix = path.suffix.lower()
    if suffix == ".xpt":
        return _read_xpt(path, label)
    if suffix == ".csv":
        return _read_csv(path, label)
    return None, AdamProblem(label, None, None, "an ADaM file must be SAS transport (.xpt) or "
                             "CSV (.csv)")


class _Source:
    """One ADaM file: records (upper-case variable names), their row numbers, and problems."""

    def __init__(self, key: str, path: Path, fmap: FileMapping, problems: list[Problem]):
        self.key = key
        self.label = path.name
        self.fmap = fmap
        self.problems = problems
        self.ok = False
        self.df = pd.DataFrame()
        self.left_out = pd.DataFrame()
        self.rows = np.zeros(0, dtype=int)
        df, problem = _read_any(path, self.label)
        if problem is not None:
            problems.append(problem)
            return
        assert df is not None
        rows = np.asarray(df.attrs.get("row_numbers") or range(1, len(df) + 1), dtype=int)
        names = [str(c).replace("\ufeff", "").strip().upper() for c in df.columns]
        keep: list[int] = []
        for i, n in enumerate(names):
            if n in names[:i]:
                self.add(n, None, "variable names must be unique (case-insensitive)")
            else:
                keep.append(i)
        df = df.iloc[:, keep].copy()
        df.columns = [names[i] for i in keep]
        df = df.reset_index(drop=True)
        sel = np.ones(len(df), dtype=bool)
        for var, values in fmap.where.items():
            if var not in df.columns:
                self.add(var, None, f"variable named in [{key}] where of the mapping file is "
                         "missing")
                continue
            sel &= np.array([_matches(v, values) for v in df[var].tolist()], dtype=bool)
        self.df = df.loc[sel].reset_index(drop=True)
        self.rows = rows[sel]
        self.left_out = df.loc[~sel].reset_index(drop=True)
        self.ok = True

    def drop_subjects(self, ids: set[str]) -> int:
        """Leave out the records of these subjects; the number left out."""
        var = self.var("subject_id")
        if var is None or not ids or not len(self.df):
            return 0
        keep = np.array([_text(x) not in ids for x in self.df[var].tolist()], dtype=bool)
        self.df = self.df.loc[keep].reset_index(drop=True)
        self.rows = self.rows[keep]
        return int((~keep).sum())

    def add(self, var: str | None, pos: int | None, rule: str, value: object = None) -> None:
        """Record a problem at the 0-based record position ``pos`` (``None``: whole variable)."""
        row = None if pos is None else int(self.rows[pos])
        self.problems.append(AdamProblem(self.label, var, row, rule,
                                         None if value is None else _text(value)))

    def var(self, fld: str, *, required: bool = False) -> str | None:
        """The variable holding a package field (first of the candidates present)."""
        cands = self.fmap.variables[fld]
        for c in cands:
            if c in self.df.columns:
                return c
        if required:
            self.add(cands[0], None, "required variable is missing"
                     + (f" (also tried {', '.join(cands[1:])})" if len(cands) > 1 else "")
                     + f"; rename it in [{self.key}.variables] of the mapping file if it has "
                     "another name")
        return None

    def column(self, var: str | None) -> list[object]:
        """Cells of a variable (``None`` everywhere when absent)."""
        if var is None:
            return [None] * len(self.df)
        return self.df[var].tolist()

    def keep_vars(self) -> list[str]:
        out = []
        for v in self.fmap.keep:
            if v in self.df.columns:
                out.append(v)
            else:
                self.add(v, None, f"variable listed in [{self.key}] keep of the mapping file "
                         "is missing")
        return out


def _matches(cell: object, values: tuple[str, ...]) -> bool:
    t = _text(cell)
    for v in values:
        if t == v:
            return True
        try:
            if float(t) == float(v):
                return True
        except ValueError:
            continue
    return False
