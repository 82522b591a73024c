"""Cell parsing and raw row tables shared by the ADaM and NONMEM readers.

The readers build package tables as text records with their origin (:class:`_Rows`: file, row,
source variable of each column) and validate them with :func:`_validate_rows`, which words every
problem of :func:`~bayes_blina.data.schema.validate_tables` in the source file's terms. The cell
helpers read numbers and text the same way in both formats. These are the readers' internals,
not a public API.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from bayes_blina.data.dataset import Dataset
from bayes_blina.data.schema import COLUMNS, REQUIRED, validate_tables
from bayes_blina.errors import BayesBlinaError, DataValidationError, Problem

_MISSING_TOKENS = frozenset({"", ".", "na", "n/a", "nan", "null", "none", "nat"})


_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"  # as schema._NUMBER


def _is_missing(v: object) -> bool:
    """Whether a cell is empty (None, NaN, NaT, '', '.', 'NA', ...)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, (float, np.floating)):
        return math.isnan(float(v))
    if isinstance(v, (pd.Timestamp, datetime, np.datetime64)):
        return bool(pd.isna(v))
    return str(v).strip().lower() in _MISSING_TOKENS


def _float_text(v: float) -> str:
    """Shortest text that reads back as the same float (``15.0`` -> ``'15'``)."""
    if math.isnan(v):
        return ""
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def _short(v: float) -> str:
    """Text of a float to 15 significant digits, for files people read (``1899.9999999999998``
    -> ``'1900'``); exact to the precision :meth:`Dataset.sha256` compares."""
    if math.isnan(v):
        return ""
    return format(float(v), ".15g")


def _text(v: object) -> str:
    """Text of a cell as a CSV reader would give it ('' when missing, floats shortest)."""
    if _is_missing(v):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "1" if v else "0"
    if isinstance(v, (float, np.floating)):
        return _float_text(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, bytes):
        return v.decode("latin-1").strip()
    return str(v).strip()


def _number(v: object) -> float | None:
    """Float value of a cell, ``None`` when missing.

    Raises
    ------
    ValueError
        If the cell is not a finite number.
    """
    if _is_missing(v):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
        x = float(v)
    else:
        s = _text(v)
        if not re.fullmatch(_NUMBER, s):
            raise ValueError("not a number")
        x = float(s)
    if not math.isfinite(x):
        raise ValueError("not a finite number")
    return x


def _round_sig(x: float, digits: int = 12) -> float:
    """``x`` rounded to ``digits`` significant digits (removes float noise of unit arithmetic)."""
    return float(format(x, f".{digits}g")) if math.isfinite(x) else x


def _derive_cycles(ids: Sequence[str], start: Sequence[float], end: Sequence[float],
                   gap_h: float) -> list[int]:
    """Cycle numbers from infusion gaps: a gap of at least ``gap_h`` starts a new cycle.

    Per subject, segments are taken in start order; the first is cycle 1, and a segment that
    starts ``gap_h`` or more after the latest end so far starts the next cycle.
    """
    out = [1] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: (str(ids[i]), start[i], i))
    prev_id: object = None
    cycle, last_end = 1, -math.inf
    for i in order:
        if ids[i] != prev_id:
            prev_id, cycle, last_end = ids[i], 1, end[i]
        else:
            if start[i] - last_end >= gap_h:
                cycle += 1
            last_end = max(last_end, end[i])
        out[i] = cycle
    return out


@dataclass
class _Rows:
    """Raw records of one package table built from source records, with their origin.

    ``columns[i]`` maps package columns to the source variable that row ``i`` took them from,
    so that the validator's problems can be worded in the source's terms.
    """

    file: str
    default_columns: dict[str, str]
    records: list[dict[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    columns: list[Mapping[str, str]] = field(default_factory=list)
    offstudy: dict[int, list] = field(default_factory=dict)  # ADSL: off-study events by record

    def add(self, record: dict[str, str], file: str, row: int,
            columns: Mapping[str, str] | None = None) -> None:
        self.records.append(record)
        self.files.append(file)
        self.rows.append(int(row))
        self.columns.append(columns if columns is not None else self.default_columns)

    def shown_files(self) -> str:
        names = sorted(set(self.files)) or [self.file]
        return " / ".join(names)


def _validate_rows(tables: dict[str, _Rows], *, problems: list[Problem],
                   problem_cls: type[Problem], screening_window_h: float, name: str,
                   origin: str, meta: dict, order: Sequence[str] = ()) -> Dataset:
    """Validate raw tables built from source files; word problems in the source's terms.

    Problems are listed whole-file and whole-column ones first, then by file (in ``order``)
    and row.

    Raises
    ------
    DataValidationError
        With ``problems`` plus every problem the validator finds, if there is any.
    """
    raw: dict[str, pd.DataFrame] = {}
    labels: dict[str, str] = {}
    single: dict[str, bool] = {}
    for t, rows in tables.items():
        if not rows.records and t != "subjects":
            continue
        canon = ([c for c in COLUMNS[t] if any(c in r for r in rows.records)] if rows.records
                 else list(REQUIRED[t]))
        extra = list(dict.fromkeys(k for r in rows.records for k in r if k not in COLUMNS[t]))
        cols = canon + extra
        df = pd.DataFrame([[r.get(c, "") for c in cols] for r in rows.records], columns=cols,
                          dtype=object)
        single[t] = len(set(rows.files)) <= 1
        df.attrs["row_numbers"] = (list(rows.rows) if single[t]
                                   else list(range(1, len(rows.records) + 1)))
        raw[t] = df
        labels[t] = f"{t}\x00"
    clean, found = validate_tables(raw, labels, screening_window_h, where=origin or name)
    by_label = {v: k for k, v in labels.items()}
    shown = {labels[t]: tables[t].shown_files() for t in labels}

    def reword(rule: str) -> str:
        for lab, text in shown.items():
            rule = rule.replace(lab, text)
        return rule

    out = list(problems)
    for p in found:
        t = by_label.get(p.file)
        if t is None:
            out.append(problem_cls(reword(p.file), p.column, p.row, reword(p.rule), p.value))
            continue
        rows = tables[t]
        file, row, colmap = rows.file, p.row, rows.default_columns
        if p.row is not None and rows.records:
            if single[t]:
                pos = rows.rows.index(p.row) if p.row in rows.rows else None
            else:
                pos = p.row - 1
                row = rows.rows[pos]
            if pos is not None:
                file, colmap = rows.files[pos], rows.columns[pos]
        elif rows.files:
            file = rows.files[0]
        column = None if p.column is None else colmap.get(p.column, p.column)
        out.append(problem_cls(file, column, row, reword(p.rule), p.value))
    if out:
        seen: set[tuple] = set()
        unique = []
        for p in out:
            key = (p.file, p.column, p.row, p.rule, p.value)
            if key not in seen:
                seen.add(key)
                unique.append(p)
        rank = {f: i for i, f in enumerate(order)}
        unique.sort(key=lambda p: (p.row is not None, rank.get(p.file, len(rank)), p.file,
                                   p.row or 0, p.column or ""))
        raise DataValidationError(unique)
    return Dataset(**clean, name=name, origin=origin, meta=meta)


def _patient_tables(dataset: Dataset, drop_aggregates: bool, what: str) -> None:
    """Refuse datasets whose published tables a patient-level format cannot hold."""
    if not isinstance(dataset, Dataset):
        raise BayesBlinaError(f"{what} takes a Dataset (found {type(dataset).__name__})")
    if dataset.subjects is None:
        raise BayesBlinaError(f"{what} needs patient-level data: the dataset has no subjects")
    held = [t for t in ("aggregates", "summaries", "dlt") if getattr(dataset, t, None) is not None]
    if held and not drop_aggregates:
        raise BayesBlinaError(
            f"{what} writes patient-level data only, but the dataset also holds "
            f"{' and '.join(held)} (published counts/statistics, cohort DLT counts); pass "
            "drop_aggregates=True (--drop-aggregates) to leave them out")


def _cycle_of(value: object) -> int:
    """Cycle number of a cell: ``2``, ``2.0``, ``'CYCLE 2'``, ``'C2'``."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        x = float(value)
    else:
        s = _text(value)
        m = re.fullmatch(r"(?:CYCLE|CYC|C|PERIOD)?\s*(\d+(?:\.0+)?)", s, flags=re.IGNORECASE)
        if not m:
            raise ValueError("unreadable")
        x = float(m.group(1))
    if not math.isfinite(x) or x != round(x) or x < 1:
        raise ValueError("not a whole number >= 1")
    return int(x)
