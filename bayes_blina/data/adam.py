"""CDISC ADaM import and export (ADSL, ADRS, ADEX, ADLB, ADPC, ADTTE; ``docs/import.md``).

:func:`read_adam` turns the analysis datasets of a study into a package :class:`Dataset`:

* **ADSL** (one record per subject) gives ``subjects``: ``USUBJID`` -> ``subject_id``,
  ``STUDYID`` -> ``study``, ``TRT01P`` (or ``ARM``) -> ``regimen`` (see
  :func:`parse_regimen_text`), ``AGE``/``AGEU`` -> ``age_years``, ``AGEGR1`` -> ``age_group`` when
  it is one of the package's groups, ``BMBLAST`` -> ``blast_pct``, ``BSA`` -> ``bsa_m2``,
  ``PRHSCTFL``, ``REFRFL``, ``NPRREL``, ``REGION1`` and ``TRTSDTM`` (first dose datetime);
  when ADSL has any of ``DTHDTM``/``DTHDT`` (death), ``EOSDTM``/``EOSDT`` with ``EOSSTT`` and
  ``DCSREAS`` (end of study), the earliest death or discontinuation (``EOSSTT`` not
  ``COMPLETED``) gives ``offstudy_h`` (hours from the first infusion start; a date without a time
  counts as the end of that day) and ``offstudy_reason`` (``death`` for a death, else
  ``DCSREAS`` normalised: ``WITHDRAWAL BY SUBJECT`` -> ``withdrawal``, ``ADVERSE EVENT`` ->
  ``adverse_event``, ..., other reasons ``other``).
* **ADRS** gives ``response``: the record of the response parameter (``PARAMCD`` ``CR2CYC``,
  else ``BOR``) with ``AVALC`` in the responder codes (``CR``, ``CRH``, ``Y``) is 1, in the
  non-responder codes 0, ``NE`` empty.
* **ADEX** (one record per infusion interval) gives ``dosing``: ``EXDOSE``/``EXDOSU``,
  ``ASTDTM``/``AENDTM`` or ``EXSTDTC``/``EXENDTC`` relative to the subject's first infusion start,
  ``APERIOD`` (or ``CYCLE``, ``AVISIT`` ``'CYCLE n'``) as cycle, else cycles derived from gaps of
  at least 7 days.
* **ADLB** and **ADPC** give ``observations``: ``PARAMCD`` (or ``PARAM``) resolved to an analyte
  code, ``AVAL``/``AVALC``/``AVALU``, time from ``AFRLT`` (hours, unit ``FRLTU``), else ``ADTM``
  minus the first dose datetime, else ``ADY`` (+ ``ATPT``); censoring from ``AVALC`` (``'<125'``,
  ``'BLQ'``, ``'BLD'``) or the flags ``BLQFL``/``BLODFL``, limits from ``ALLOQ``/``ALOD``.
* **ADTTE** (one record per subject and time-to-event parameter) gives ``os_days``/``os_event``
  (``PARAMCD`` ``OS``) and ``rfs_days``/``rfs_event`` (``RFS``): ``AVAL`` in ``AVALU`` (days by
  default; hours, weeks, months, years converted) from the first infusion start, ``CNSR`` 0 an
  event, 1 or more censored. ADSL's ``MRDCRFL`` (``Y``/``N``) gives ``mrd_response``. The codes are
  set in the mapping's ``[survival]`` section; ``HSCTDY`` (days from the first infusion start to an
  alloHSCT) gives ``hsct_days``.

Every name and code can be changed with a mapping file (TOML, :func:`load_mapping`). Problems are
reported in the terms of the ADaM files (``adlb.xpt, variable 'AVALU', row 17: ...``), all of
them at once, in one :class:`~bayes_blina.errors.DataValidationError`; the result has passed
:func:`~bayes_blina.data.schema.validate_tables`, so every rule of ``docs/data-format.md`` holds.

:func:`write_adam` writes a dataset back as ADaM files (CSV or SAS transport v5); reading them
with :func:`read_adam_folder` gives a dataset with the same :meth:`Dataset.sha256`.
"""
from __future__ import annotations

from bayes_blina._atomic import swap_in

import csv
import io
import json
import math
import os
import re
import shutil
import tempfile
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_blina.data.analytes import ANALYTES, resolve_analyte
from bayes_blina.data.dataset import Dataset
from bayes_blina.data.schema import (COLUMNS, LEVELS, OFFSTUDY_REASONS, REQUIRED, normalise_level,
                                     normalise_offstudy_reason, normalise_regimen, validate_tables)
from bayes_blina.data.units import UnitError, normalise_dose_unit
from bayes_blina.errors import BayesBlinaError, DataValidationError, Problem

__all__ = [
    "AdamProblem",
    "AdamMapping",
    "ADAM_FILES",
    "load_mapping",
    "parse_regimen_text",
    "parse_datetime",
    "read_adam",
    "read_adam_folder",
    "write_adam",
]

#: The ADaM datasets read, in the order they are processed.
ADAM_FILES = ("adsl", "adrs", "adex", "adlb", "adpc", "adtte")


# ----------------------------------------------------------------------------------------------
# Problems worded for ADaM files
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdamProblem(Problem):
    """A :class:`~bayes_blina.errors.Problem` in an ADaM file: says *variable* instead of column.

    ``str()`` gives e.g. ``adlb.xpt, variable 'AVALU', row 17: unit must be convertible to pg/mL
    for IL6 (found 'mmol/L')``; row numbers are 1-based records of the file (after the header line
    in a CSV file).
    """

    column_word = "variable"


# ----------------------------------------------------------------------------------------------
# Cell helpers shared with the NONMEM reader
# ----------------------------------------------------------------------------------------------

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


_swap_in = swap_in  # one implementation for every writer (bayes_blina._atomic)


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


# ----------------------------------------------------------------------------------------------
# The mapping file
# ----------------------------------------------------------------------------------------------

#: Package fields read from each ADaM file and the variables tried for each, first present wins.
DEFAULT_VARIABLES: dict[str, dict[str, tuple[str, ...]]] = {
    "adsl": {
        "subject_id": ("USUBJID",), "study": ("STUDYID",), "regimen": ("TRT01P", "ARM"),
        "age_years": ("AGE",), "age_unit": ("AGEU",), "age_group": ("AGEGR1",),
        "blast_pct": ("BMBLAST", "BLASTPCT", "BMBLASTB", "BLASTBL"),
        "blast_burden": ("BLASTGR1",), "bsa_m2": ("BSA", "BSABL"),
        "prior_hsct": ("PRHSCTFL", "HSCTFL"), "refractory": ("REFRFL",),
        "prior_relapses": ("NPRREL",), "prior_relapses_group": ("NPRRELGR",),
        "region": ("REGION1", "REGION"), "first_dose": ("TRTSDTM",),
        "death_date": ("DTHDTM", "DTHDT"), "end_of_study": ("EOSDTM", "EOSDT"),
        "end_of_study_status": ("EOSSTT",), "end_of_study_reason": ("DCSREAS",),
        "mrd_response": ("MRDCRFL",), "hsct_days": ("HSCTDY",),
    },
    "adrs": {"subject_id": ("USUBJID",), "paramcd": ("PARAMCD",), "avalc": ("AVALC",),
             "aval": ("AVAL",)},
    "adex": {"subject_id": ("USUBJID",), "dose": ("EXDOSE",), "dose_unit": ("EXDOSU",),
             "start": ("ASTDTM", "EXSTDTC"), "end": ("AENDTM", "EXENDTC"),
             "cycle": ("APERIOD", "CYCLE", "AVISIT")},
    "adlb": {"subject_id": ("USUBJID",), "paramcd": ("PARAMCD",), "param": ("PARAM",),
             "value": ("AVAL",), "value_text": ("AVALC", "PCSTRESC", "LBSTRESC"),
             "unit": ("AVALU", "LBSTRESU", "PCSTRESU"), "rel_time": ("AFRLT",),
             "rel_time_unit": ("FRLTU", "RRLTU"), "datetime": ("ADTM",), "day": ("ADY",),
             "timepoint": ("ATPT",), "lloq": ("ALLOQ", "LLOQ", "LBLLOQ", "PCLLOQ"),
             "lod": ("ALOD", "LOD"), "blq_flag": ("BLQFL",), "bld_flag": ("BLODFL",),
             "dtype": ("DTYPE",), "paramtyp": ("PARAMTYP",)},
}
DEFAULT_VARIABLES["adpc"] = dict(DEFAULT_VARIABLES["adlb"])
DEFAULT_VARIABLES["adtte"] = {"subject_id": ("USUBJID",), "paramcd": ("PARAMCD",), "aval": ("AVAL",),
                              "unit": ("AVALU",), "cnsr": ("CNSR",)}

#: ADaM ``PARAMCD`` values (at most 8 characters) of analytes whose package code is longer.
ADAM_PARAMCD = {"CD4_NAIVE": "CD4NAIVE", "CD8_NAIVE": "CD8NAIVE", "CD4_MEMORY": "CD4MEM",
                "CD8_MEMORY": "CD8MEM"}

_RESPONSE_DEFAULTS = {
    "paramcd": ("CR2CYC", "BOR"),
    "responder": ("CR", "CRH", "CR/CRH", "CRH*", "Y"),
    "nonresponder": ("CRI", "MLFS", "PR", "SD", "PD", "NR", "N", "NON-CR", "BFHM",
                     "BLAST FREE HYPOPLASTIC OR APLASTIC BONE MARROW", "RELAPSE"),
    "not_evaluable": ("NE", "ND", "NA", "UNK", "NOT EVALUABLE", "MISSING"),
}
#: ADTTE ``PARAMCD`` codes of each endpoint (mapping section ``[survival]``).
_SURVIVAL_DEFAULTS: dict[str, tuple[str, ...]] = {"os": ("OS",), "rfs": ("RFS",)}
#: Days per ``AVALU`` unit of ADTTE.
_TTE_UNITS = {"DAYS": 1.0, "DAY": 1.0, "D": 1.0, "HOURS": 1.0 / 24.0, "HOUR": 1.0 / 24.0, "H": 1.0 / 24.0,
              "WEEKS": 7.0, "WEEK": 7.0, "MONTHS": 30.4375, "MONTH": 30.4375, "YEARS": 365.25, "YEAR": 365.25}
_OPTION_DEFAULTS: dict[str, Any] = {"unknown_params": "error", "keep_derived": False,
                                    "cycle_gap_days": 7.0, "reference": "adex",
                                    "screening_window_days": None, "before_window": "error",
                                    "missing_results": "skip", "zero_results": "error"}


@dataclass(frozen=True)
class FileMapping:
    """How one ADaM file is read: variable names per field, a record filter, extra variables.

    Attributes
    ----------
    variables : dict of str to tuple of str
        For each package field, the variables tried in order (first present wins).
    where : dict of str to tuple of str
        Keep only records whose variable holds one of the values (e.g. ``ANL01FL = "Y"``).
    keep : tuple of str
        Extra variables carried into the package table as extra columns (lower-cased names).
    """

    variables: dict[str, tuple[str, ...]]
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)
    keep: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdamMapping:
    """A validated mapping (defaults overridden by a mapping file).

    Attributes
    ----------
    files : dict of str to FileMapping
        One per ADaM file (``adsl``, ``adrs``, ``adex``, ``adlb``, ``adpc``, ``adtte``).
    regimen : dict of str to str
        Treatment text (``TRT01P`` value, matched case-insensitively) to regimen label; overrides
        :func:`parse_regimen_text`.
    params : dict of str to str
        ``PARAMCD`` (or ``PARAM``) to analyte code, or to ``'skip'`` to leave those records out.
    response : dict of str to tuple of str
        ``paramcd`` (preference order), ``responder``, ``nonresponder``, ``not_evaluable`` codes.
    survival : dict of str to tuple of str
        ADTTE ``PARAMCD`` codes of ``os`` and ``rfs``.
    dose_units : dict of str to str
        ``EXDOSU`` text (upper case) to a daily dose unit (``ug/m2/day``, ``ug/day``, ``mg/m2/day``,
        ``mg/day``); doses in mg are converted to µg.
    options : dict
        ``unknown_params`` (``'error'``/``'skip'``), ``keep_derived`` (bool),
        ``cycle_gap_days`` (float), ``reference`` (``'adex'``/``'adsl'``),
        ``screening_window_days`` (float or None: the reader's window), ``before_window``
        (``'error'``/``'skip'``: records earlier than the window), ``missing_results``
        (``'skip'``/``'error'``: records with neither a value nor a below-limit flag),
        ``zero_results`` (``'error'``/``'below_lloq'``: unflagged results of exactly 0).
    source : str
        The mapping file (for messages), ``''`` for defaults.
    """

    files: dict[str, FileMapping]
    regimen: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    response: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(_RESPONSE_DEFAULTS))
    survival: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(_SURVIVAL_DEFAULTS))
    options: dict[str, Any] = field(default_factory=lambda: dict(_OPTION_DEFAULTS))
    source: str = ""
    dose_units: dict[str, str] = field(default_factory=dict)


def _default_mapping() -> AdamMapping:
    return AdamMapping(files={k: FileMapping(dict(v)) for k, v in DEFAULT_VARIABLES.items()})


def _names(value: object) -> tuple[str, ...] | None:
    """A string or list of strings as an upper-case tuple (``None`` if it is neither)."""
    if isinstance(value, str):
        return (value.strip().upper(),)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip().upper() for v in value)
    return None


def load_mapping(mapping: str | os.PathLike[str] | Mapping[str, Any] | AdamMapping | None
                 ) -> AdamMapping:
    """Read and check an ADaM mapping (TOML file or dict); ``None`` gives the defaults.

    The file has the sections ``[adsl]``, ``[adrs]``, ``[adex]``, ``[adlb]``, ``[adpc]`` (each
    with optional ``where`` and ``keep`` and a sub-table ``variables`` of field = variable),
    ``[regimen]`` (treatment text = label), ``[params]`` (PARAMCD = analyte code or ``"skip"``),
    ``[response]`` and ``[options]``; see ``docs/import.md``.

    Raises
    ------
    DataValidationError
        Listing every problem in the mapping (file, key, rule); a TOML syntax error gives the line.
    """
    if mapping is None:
        return _default_mapping()
    if isinstance(mapping, AdamMapping):
        return mapping
    label = "mapping"
    if isinstance(mapping, Mapping):
        data = dict(mapping)
    else:
        path = Path(mapping)
        label = path.name
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except OSError as err:
            raise DataValidationError([AdamProblem(label, None, None, "mapping file could not be "
                                                   f"read ({err.strerror or err})")]) from None
        except UnicodeDecodeError:
            raise DataValidationError([AdamProblem(label, None, None,
                                                   "mapping file must be UTF-8 encoded")]) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            m = re.search(r"line (\d+)", str(err))
            raise DataValidationError([AdamProblem(
                label, None, int(m.group(1)) if m else None,
                f"mapping file is not valid TOML ({err})")]) from None
    return _parse_mapping(data, label)


def _parse_mapping(data: dict[str, Any], label: str) -> AdamMapping:
    problems: list[Problem] = []

    def bad(key: str, rule: str, value: object = None) -> None:
        problems.append(AdamProblem(label, key, None, rule,
                                    None if value is None else str(value)))

    base = _default_mapping()
    files = dict(base.files)
    sections = set(ADAM_FILES) | {"regimen", "params", "response", "survival", "options", "dose_units"}
    for key in data:
        if key not in sections:
            bad(key, f"unknown section; sections are {', '.join(sorted(sections))}")
    for fname in ADAM_FILES:
        sec = data.get(fname)
        if sec is None:
            continue
        if not isinstance(sec, dict):
            bad(fname, "must be a table ([" + fname + "])")
            continue
        variables = dict(files[fname].variables)
        where: dict[str, tuple[str, ...]] = {}
        keep: tuple[str, ...] = ()
        for k, v in sec.items():
            if k == "variables":
                if not isinstance(v, dict):
                    bad(f"{fname}.variables", "must be a table of field = variable")
                    continue
                for fld, var in v.items():
                    if fld not in variables:
                        bad(f"{fname}.variables.{fld}", "unknown field; fields of "
                            f"{fname.upper()} are {', '.join(variables)}")
                    elif _names(var) is None:
                        bad(f"{fname}.variables.{fld}", "must be a variable name or a list of "
                            "names", var)
                    else:
                        variables[fld] = _names(var)  # type: ignore[assignment]
            elif k == "where":
                if not isinstance(v, dict):
                    bad(f"{fname}.where", "must be a table of VARIABLE = value (or list)")
                    continue
                for var, vals in v.items():
                    vals_l = vals if isinstance(vals, list) else [vals]
                    if not all(isinstance(x, (str, int, float)) and not isinstance(x, bool)
                               for x in vals_l):
                        bad(f"{fname}.where.{var}", "must be a value or a list of values", vals)
                    else:
                        where[var.strip().upper()] = tuple(str(x).strip() for x in vals_l)
            elif k == "keep":
                names = _names(v)
                if names is None:
                    bad(f"{fname}.keep", "must be a list of variable names", v)
                else:
                    keep = names
            else:
                bad(f"{fname}.{k}", "unknown key; keys are variables, where, keep")
        files[fname] = FileMapping(variables, where, keep)

    regimen: dict[str, str] = {}
    for k, v in (data.get("regimen") or {}).items():
        if isinstance(v, str) and v.strip().lower() == "skip":
            regimen[str(k).strip().upper()] = "skip"  # subjects of this arm are left out, counted
            continue
        try:
            regimen[str(k).strip().upper()] = normalise_regimen(v)
        except ValueError as err:
            bad(f"regimen.{k}", str(err), v)

    dose_units: dict[str, str] = {}
    for k, v in (data.get("dose_units") or {}).items():
        try:
            dose_units[str(k).strip().upper()] = (_mg_to_ug(v) and str(v).strip()) or normalise_dose_unit(v)
        except (UnitError, TypeError):
            bad(f"dose_units.{k}", "must be a daily dose unit: ug/m2/day, ug/day, mg/m2/day or mg/day", v)

    params: dict[str, str] = {}
    for k, v in (data.get("params") or {}).items():
        if isinstance(v, str) and v.strip().lower() == "skip":
            params[str(k).strip().upper()] = "skip"
            continue
        code = resolve_analyte(v) if isinstance(v, str) else None
        if code is None:
            bad(f"params.{k}", "must be a known analyte code or alias, or \"skip\"", v)
        else:
            params[str(k).strip().upper()] = code

    def codes(section: str, defaults: dict[str, tuple[str, ...]], what: str) -> dict[str, tuple[str, ...]]:
        out = dict(defaults)
        for k, v in (data.get(section) or {}).items():
            if k not in out:
                bad(f"{section}.{k}", f"unknown key; keys are {', '.join(out)}")
            elif _names(v) is None:
                bad(f"{section}.{k}", f"must be {what} or a list of codes", v)
            else:
                out[k] = _names(v)  # type: ignore[assignment]
        return out

    response = codes("response", base.response, "a code")
    survival = codes("survival", base.survival, "a PARAMCD code")

    options = dict(base.options)
    for k, v in (data.get("options") or {}).items():
        if k not in options:
            bad(f"options.{k}", f"unknown option; options are {', '.join(options)}")
        elif k == "unknown_params" and v not in ("error", "skip"):
            bad(f"options.{k}", "must be \"error\" or \"skip\"", v)
        elif k == "reference" and v not in ("adex", "adsl"):
            bad(f"options.{k}", "must be \"adex\" or \"adsl\"", v)
        elif k in ("before_window", "missing_results") and v not in ("error", "skip"):
            bad(f"options.{k}", "must be \"error\" or \"skip\"", v)
        elif k == "zero_results" and v not in ("error", "below_lloq"):
            bad(f"options.{k}", "must be \"error\" or \"below_lloq\"", v)
        elif k == "screening_window_days" and (isinstance(v, bool) or not isinstance(v, (int, float))
                                               or not v >= 0):
            bad(f"options.{k}", "must be a number of days >= 0", v)
        elif k == "keep_derived" and not isinstance(v, bool):
            bad(f"options.{k}", "must be true or false", v)
        elif k == "cycle_gap_days" and (isinstance(v, bool) or not isinstance(v, (int, float))
                                        or not v > 0):
            bad(f"options.{k}", "must be a number > 0", v)
        else:
            options[k] = v
    if problems:
        raise DataValidationError(problems)
    return AdamMapping(files=files, regimen=regimen, params=params, response=response,
                       survival=survival, options=options, source=label, dose_units=dose_units)


# ----------------------------------------------------------------------------------------------
# Parsing rules
# ----------------------------------------------------------------------------------------------

_SEQ = (r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?(?:\s*(?:->|-|–|—|/|→|\bto\b)\s*\d+(?:\.\d+)?)*)"
        r"(?![0-9.])")
_DOSE_UNIT_AFTER = re.compile(_SEQ + r"\s*(?:µg|μg|ug|mcg|microg)\s*(/\s*m(?:2|²|\^2))?",
                              re.IGNORECASE)


def parse_regimen_text(text: object) -> str:
    """Regimen label (µg/m²/day levels joined by ``-``) from a treatment description.

    Rule: the dose sequence is the run of numbers joined by ``-``, ``/``, ``→``, ``->`` or ``to``
    that stands right before a ``µg/m²`` unit (``'BLINA 5-15 UG/M2/DAY'`` -> ``'5-15'``,
    ``'Blinatumomab 5→15→30 µg/m²/d'`` -> ``'5-15-30'``). Without a unit, the last such run in
    the text is taken (``'AMG 103 15'`` -> ``'15'``). A run before a flat ``µg/day`` unit is
    refused: the label is per m², so such arms are mapped in the ``[regimen]`` section of the
    mapping file.

    Raises
    ------
    ValueError
        If no dose sequence can be read, or the doses are flat µg/day.
    """
    s = "" if text is None else str(text)
    m = _DOSE_UNIT_AFTER.search(s)
    if m is not None:
        if not m.group(2):
            raise ValueError("the treatment gives doses in ug/day, but a regimen label is in "
                             "ug/m2/day; map this treatment in [regimen] of the mapping file")
        seq = m.group(1)
    else:
        runs = re.findall(_SEQ, s, flags=re.IGNORECASE)
        if not runs:
            raise ValueError("no dose sequence (e.g. '5-15 UG/M2/DAY') in the treatment; map it "
                             "in [regimen] of the mapping file")
        seq = runs[-1]
    seq = re.sub(r"\s*\bto\b\s*", "-", seq, flags=re.IGNORECASE)
    return normalise_regimen(seq)


_SAS_EPOCH = datetime(1960, 1, 1)
_MONTHS = {m: i + 1 for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                           "AUG", "SEP", "OCT", "NOV", "DEC"))}
_SAS_DATETIME = re.compile(
    r"(\d{1,2})([A-Za-z]{3})(\d{4})[: ](\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?")


def parse_datetime(value: object) -> datetime:
    """A date and time from an ADaM cell.

    Accepts a datetime object, a SAS datetime number (seconds since 1960-01-01, as stored in a
    transport file), ISO 8601 text (``2020-01-01T08:00``, ``2020-01-01 08:00:00.5``, with or
    without an offset, converted to UTC) and SAS ``DATETIME`` text (``01JAN2020:08:00:00``).

    Raises
    ------
    ValueError
        If the cell is empty, only a date, or not a date and time.
    """
    if _is_missing(value):
        raise ValueError("missing")
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        value = pd.Timestamp(value).to_pydatetime()
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ValueError("missing")
        return _SAS_EPOCH + timedelta(seconds=float(value))
    else:
        s = _text(value)
        if not s:
            raise ValueError("missing")
        if re.fullmatch(_NUMBER, s):
            return _SAS_EPOCH + timedelta(seconds=float(s))
        m = _SAS_DATETIME.fullmatch(s)
        if m:
            day, mon, year, hh, mm, ss = m.groups()
            if mon.upper() not in _MONTHS:
                raise ValueError("unknown month")
            sec = float(ss or 0)
            return datetime(int(year), _MONTHS[mon.upper()], int(day), int(hh), int(mm)) + \
                timedelta(seconds=sec)
        if re.fullmatch(r"\d{4}(-\d{2}){0,2}", s):
            raise ValueError("date only")
        dt = datetime.fromisoformat(s.replace(" ", "T", 1))
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def _iso(dt: datetime) -> str:
    """ISO 8601 text of a datetime, to the second (microseconds only when needed)."""
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")


class _DateOnly(datetime):
    """A first dose given as a date without a time (R writes TRTSDTM so): midnight of that day.
    Good for study-day times (ADY) and off-study dates; refused where hours are measured from it
    (ADTM, ADEX times with ``reference = "adsl"``)."""


def _date_only(value: object) -> _DateOnly | None:
    """The date of an ISO ``YYYY-MM-DD`` cell (or a ``datetime.date``) as :class:`_DateOnly`."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return _DateOnly(value.year, value.month, value.day)
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", _text(value))
    if m is None:
        return None
    try:
        return _DateOnly(*map(int, m.groups()))
    except ValueError:
        return None


def _hours(dt: datetime, ref: datetime) -> float:
    return (dt - ref) / timedelta(hours=1)


_TIME_UNITS = {"H": 1.0, "HR": 1.0, "HRS": 1.0, "HOUR": 1.0, "HOURS": 1.0, "MIN": 1 / 60,
               "MINS": 1 / 60, "MINUTE": 1 / 60, "MINUTES": 1 / 60, "D": 24.0, "DAY": 24.0,
               "DAYS": 24.0, "W": 168.0, "WK": 168.0, "WEEK": 168.0, "WEEKS": 168.0}
_AGE_UNITS = {"YEARS": 1.0, "YEAR": 1.0, "Y": 1.0, "YRS": 1.0, "MONTHS": 1 / 12,
              "MONTH": 1 / 12, "WEEKS": 7 / 365.25, "WEEK": 7 / 365.25, "DAYS": 1 / 365.25,
              "DAY": 1 / 365.25}
_LLOQ_TOKENS = frozenset({"BLQ", "BQL", "<LLOQ", "BLOQ", "<LOQ", "NQ", "<LLQ", "<BLQ", "<BQL", "<BLOQ",
                          "BELOWLLOQ", "<NQ"})
_LOD_TOKENS = frozenset({"BLD", "<LOD", "ND", "NOTDETECTED", "BDL", "<LLOD", "<BLD", "<ND", "BELOWLOD"})


def _timepoint_hours(text: str) -> float:
    """Hours after the dose of an ``ATPT`` text: ``'PRE-DOSE'`` = 0, ``'6H'``, ``'30 MIN'``."""
    s = text.strip().upper()
    if re.fullmatch(r"PRE[- ]?DOSE|PREDOSE|PRE[- ]?INFUSION|0\s*H", s):
        return 0.0
    m = re.match(r"(\d+(?:\.\d+)?)\s*(H|HR|HRS|HOURS?|MIN|MINS|MINUTES?)\b", s)
    if not m:
        raise ValueError("unreadable")
    return float(m.group(1)) * (1 / 60 if m.group(2).startswith("MIN") else 1.0)


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


# ----------------------------------------------------------------------------------------------
# Reading the files
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# read_adam
# ----------------------------------------------------------------------------------------------

def read_adam(adsl: str | os.PathLike[str], adlb: str | os.PathLike[str] | None = None,
              adrs: str | os.PathLike[str] | None = None,
              adex: str | os.PathLike[str] | None = None,
              adpc: str | os.PathLike[str] | None = None,
              mapping: str | os.PathLike[str] | Mapping[str, Any] | AdamMapping | None = None,
              adtte: str | os.PathLike[str] | None = None,
              *, screening_window_h: float | None = None, before_window: str | None = None,
              name: str | None = None) -> Dataset:
    """Read ADaM datasets (``.xpt`` or ``.csv``) into a validated :class:`Dataset`.

    Parameters
    ----------
    adsl : path
        Subject-level dataset (required): one record per subject.
    adlb, adpc : path, optional
        Laboratory / biomarker and pharmacokinetic concentration datasets (BDS): observations.
    adrs : path, optional
        Response dataset: the CR endpoint of each subject (absent: responses unknown).
    adex : path, optional
        Exposure dataset, one record per infusion interval: dosing.
    adtte : path, optional
        Time-to-event dataset: overall and relapse-free survival (``os_days``, ``rfs_days``, ...).
    mapping : path, dict or AdamMapping, optional
        Variable and code mapping (see :func:`load_mapping` and ``docs/import.md``).
    screening_window_h : float, optional
        Observations may lie this many hours before the first infusion start (default: the
        mapping's ``[options] screening_window_days``, else 504 h = 21 days).
    before_window : {"error", "skip"}, optional
        Records earlier than that: an error quoting the file's own value (default), or left out
        and counted (default: the mapping's ``[options] before_window``).
    name : str, optional
        Dataset name (default: the study of ADSL, else the file name).

    Returns
    -------
    Dataset
        ``subjects``, ``dosing`` and ``observations`` in canonical form. ``meta['skipped']``
        counts records deliberately left out, by reason (derived ``DTYPE`` records and
        ``PARAMTYP = DERIVED`` parameters, parameters mapped to ``skip``, subjects of arms mapped
        to ``skip`` and their records, records without a result, records before the screening
        window when asked).

    Raises
    ------
    DataValidationError
        Listing every problem found in every file (``AdamProblem``: file, variable, row, rule).
    """
    m = load_mapping(mapping)
    if before_window is not None and before_window not in ("error", "skip"):
        raise ValueError(f"before_window must be 'error' or 'skip' (found {before_window!r})")
    window_h = (screening_window_h if screening_window_h is not None
                else 24.0 * m.options["screening_window_days"] if m.options["screening_window_days"] is not None
                else 504.0)
    m = replace(m, options={**m.options, "window_h": float(window_h),
                            "before_window": before_window or m.options["before_window"]})
    problems: list[Problem] = []
    paths = {"adsl": adsl, "adrs": adrs, "adex": adex, "adlb": adlb, "adpc": adpc, "adtte": adtte}
    src: dict[str, _Source] = {}
    for key in ADAM_FILES:
        if paths[key] is not None:
            s = _Source(key, Path(paths[key]).expanduser(), m.files[key], problems)
            if s.ok:
                src[key] = s
    if "adsl" not in src:
        raise DataValidationError(problems or [AdamProblem(str(adsl), None, None,
                                                           "ADSL could not be read")])
    skipped: Counter[str] = Counter()
    if src["adsl"].var("subject_id") is None:  # nothing else can be matched to a subject
        src["adsl"].var("subject_id", required=True)
        raise DataValidationError(problems)
    for key, source in src.items():  # records the mapping's where filters out: counted, per file
        if len(source.left_out):
            skipped[f"{source.label}: records left out by [{key}] where"] = len(source.left_out)
    _skip_arms(src["adsl"], m, skipped)
    subjects, first_dose = _subjects(src["adsl"], m)
    known = {r["subject_id"] for r in subjects.records if r["subject_id"]}
    sid_var = src["adsl"].var("subject_id")
    excluded = {_text(x) for x in src["adsl"].left_out.get(sid_var, pd.Series([])).tolist()}
    excluded -= known
    for key in ADAM_FILES[1:]:
        if key in src:
            n = src[key].drop_subjects(excluded)
            if n:
                skipped[f"{src[key].label}: records of subjects left out of ADSL (where, or an arm "
                        "mapped to skip)"] = n
    if "adrs" in src:
        _responses(src["adrs"], m, subjects, src["adsl"].label, skipped)
    if "adtte" in src:
        _survival_times(src["adtte"], m, subjects, src["adsl"].label, skipped)
    dosing, refs = _dosing(src.get("adex"), m, first_dose)
    _offstudy_hours(src["adsl"], subjects, refs)
    observations = _Rows(file=(src.get("adlb") or src.get("adpc") or src["adsl"]).label,
                         default_columns={})
    for key in ("adlb", "adpc"):
        if key in src:
            _observations(src[key], m, refs, observations, skipped)
    study = sorted({r.get("study", "") for r in subjects.records} - {""})
    ds_name = name or (study[0] if len(study) == 1 else Path(adsl).stem)
    files = {k: s.label for k, s in src.items()}
    return _validate_rows({"subjects": subjects, "dosing": dosing, "observations": observations},
                          problems=problems, problem_cls=AdamProblem,
                          screening_window_h=window_h, name=ds_name,
                          origin=str(adsl), meta={"format": "adam", "files": files,
                                                  "mapping": m.source, "skipped": dict(skipped)},
                          order=[src[k].label for k in ADAM_FILES if k in src])


def read_adam_folder(folder: str | os.PathLike[str],
                     mapping: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                     **kwargs: Any) -> Dataset:
    """Read the ADaM files of a folder (``adsl.xpt`` or ``adsl.csv``, ...; names matched
    case-insensitively) with :func:`read_adam`; ``mapping.toml`` in the folder is used when no
    ``mapping`` is given.

    Raises
    ------
    DataValidationError
        If the folder has no ADSL file, or for any problem :func:`read_adam` finds.
    """
    folder = Path(folder).expanduser()
    found: dict[str, Path] = {}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            stem, suffix = p.stem.lower(), p.suffix.lower()
            if stem in ADAM_FILES and suffix in (".xpt", ".csv"):
                if stem in found:
                    raise DataValidationError([AdamProblem(p.name, None, None, f"give {stem} "
                                                           "either as .xpt or as .csv, not both")])
                found[stem] = p
    if "adsl" not in found:
        raise DataValidationError([AdamProblem(str(folder), None, None,
                                               "folder has no adsl.xpt or adsl.csv")])
    if mapping is None and (folder / "mapping.toml").is_file():
        mapping = folder / "mapping.toml"
    return read_adam(found["adsl"], found.get("adlb"), found.get("adrs"), found.get("adex"),
                     found.get("adpc"), mapping, adtte=found.get("adtte"), **kwargs)


def _skip_arms(s: _Source, m: AdamMapping, skipped: Counter[str]) -> None:
    """Leave out (counted per arm) the ADSL records whose treatment ``[regimen]`` maps to ``skip``
    (placebo or comparator arms, which are not a blinatumomab regimen)."""
    var = s.var("regimen")
    if var is None or "skip" not in m.regimen.values() or not len(s.df):
        return
    texts = [_text(x) for x in s.column(var)]
    drop = np.array([t.upper() in m.regimen and m.regimen[t.upper()] == "skip" for t in texts], dtype=bool)
    if not drop.any():
        return
    for arm, n in sorted(Counter(t for t, d in zip(texts, drop) if d).items()):
        skipped[f"{s.label}: subjects of {var} {arm!r} (mapped to skip in [regimen])"] = n
    s.left_out = pd.concat([s.left_out, s.df.loc[drop]], ignore_index=True)
    s.df = s.df.loc[~drop].reset_index(drop=True)
    s.rows = s.rows[~drop]


def _subjects(s: _Source, m: AdamMapping) -> tuple[_Rows, dict[str, datetime]]:
    """ADSL -> subjects records; the first dose datetime (TRTSDTM) of each subject.

    Off-study events (death, discontinuation) are kept in ``rows.offstudy`` until the time zero of
    each subject is known (:func:`_offstudy_hours`)."""
    v = {f: s.var(f, required=f in ("subject_id", "study", "regimen"))
         for f in s.fmap.variables}
    cols = {f: var for f, var in v.items() if var is not None}
    keep = s.keep_vars()
    for k in keep:
        cols[k.lower()] = k
    rows = _Rows(file=s.label, default_columns=cols)
    first: dict[str, datetime] = {}
    cells = {f: s.column(var) for f, var in v.items()}
    for i in range(len(s.df)):
        sid = _text(cells["subject_id"][i]) if v["subject_id"] else f"?{i}"
        rec: dict[str, str] = {"subject_id": sid,
                               "study": _text(cells["study"][i]) if v["study"] else "?"}
        rec["regimen"] = _regimen(s, i, v["regimen"], cells["regimen"][i], m)
        rec["age_years"] = _age(s, i, v, cells)
        group = _text(cells["age_group"][i])
        level = normalise_level(group, "age_group") if group else ""
        rec["age_group"] = level if level in LEVELS["age_group"] else ""
        for f in ("blast_pct", "blast_burden", "bsa_m2", "prior_hsct", "refractory",
                  "prior_relapses", "prior_relapses_group", "region"):
            rec[f] = _text(cells[f][i])
        if v["first_dose"] is not None and not _is_missing(cells["first_dose"][i]):
            try:
                first[sid] = parse_datetime(cells["first_dose"][i])
            except (ValueError, OverflowError):
                day = _date_only(cells["first_dose"][i])
                if day is not None:  # a date only: enough for study days, refused for clock times
                    first[sid] = day
                else:
                    s.add(v["first_dose"], i, f"{v['first_dose']} must be a date and time (ISO 8601 "
                          "'2020-01-01T08:00' or a SAS datetime) or a date (YYYY-MM-DD)",
                          cells["first_dose"][i])
        rec["response"] = ""
        if v["mrd_response"] is not None:  # the column only when ADSL has the flag
            flag = _text(cells["mrd_response"][i]).upper()
            rec["mrd_response"] = {"Y": "1", "N": "0"}.get(flag, flag)
        if v["hsct_days"] is not None:
            rec["hsct_days"] = _text(cells["hsct_days"][i])
        for k in keep:
            rec[k.lower()] = _text(s.df[k].iloc[i])
        rows.add(rec, s.label, int(s.rows[i]))
        events = _offstudy_events(s, i, v, cells)
        if events is not None:
            rows.offstudy[len(rows.records) - 1] = (i, events)
    return rows, first


_OFFSTUDY_FIELDS = ("death_date", "end_of_study", "end_of_study_status", "end_of_study_reason")


def _event_time(s: _Source, i: int, var: str, cell: object) -> tuple[datetime, bool] | None:
    """(datetime, date only) of a death or end-of-study cell; ``None`` when empty or unreadable
    (reported). A date (ISO ``2020-01-15``, SAS ``15JAN2020``, or SAS days since 1960-01-01 below
    1e6) stands for the end of that day."""
    if _is_missing(cell):
        return None
    if isinstance(cell, (pd.Timestamp, datetime, np.datetime64)):
        return parse_datetime(cell), False
    if hasattr(cell, "year") and hasattr(cell, "toordinal"):  # a datetime.date (pyreadstat)
        return datetime(cell.year, cell.month, cell.day), True
    text = _text(cell)
    try:
        if re.fullmatch(_NUMBER, text) and abs(float(text)) < 1e6:
            return _SAS_EPOCH + timedelta(days=float(text)), True
        m_ = re.fullmatch(r"(\d{1,2})([A-Za-z]{3})(\d{4})", text)
        if m_ and m_.group(2).upper() in _MONTHS:
            return datetime(int(m_.group(3)), _MONTHS[m_.group(2).upper()], int(m_.group(1))), True
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.fromisoformat(text), True
        return parse_datetime(cell), False
    except (ValueError, OverflowError):
        s.add(var, i, f"{var} must be a date (ISO 8601 '2020-01-15', SAS '15JAN2020') or a date "
              "and time", cell)
        return None


def _offstudy_events(s: _Source, i: int, v: dict[str, str | None], cells: dict[str, list[object]]
                     ) -> list[tuple[datetime, bool, str, str]] | None:
    """Off-study events of one ADSL record: (datetime, date only, reason, variable); ``None``
    when ADSL has none of the variables (no off-study columns then)."""
    if all(v.get(f) is None for f in _OFFSTUDY_FIELDS):
        return None
    out: list[tuple[datetime, bool, str, str]] = []
    if v.get("death_date") is not None:
        got = _event_time(s, i, v["death_date"], cells["death_date"][i])
        if got is not None:
            out.append((*got, "death", v["death_date"]))
    if v.get("end_of_study") is not None:
        status = _text(cells["end_of_study_status"][i]).upper() if v.get("end_of_study_status") else ""
        reason = _text(cells["end_of_study_reason"][i]) if v.get("end_of_study_reason") else ""
        ended = status == "DISCONTINUED" or (not status and reason and reason.upper() != "COMPLETED")
        if ended:
            got = _event_time(s, i, v["end_of_study"], cells["end_of_study"][i])
            if got is not None:
                r = normalise_offstudy_reason(reason) if reason else "other"
                out.append((*got, r if r in OFFSTUDY_REASONS else "other", v["end_of_study"]))
    return out


def _offstudy_hours(s: _Source, subjects: _Rows, refs: dict[str, datetime]) -> None:
    """Fill ``offstudy_h``/``offstudy_reason`` of the subject records from their earliest
    off-study event, in hours from the subject's time zero."""
    if not subjects.offstudy:
        return
    for k, rec in enumerate(subjects.records):
        rec["offstudy_h"], rec["offstudy_reason"] = "", ""
        i, events = subjects.offstudy.get(k, (0, []))
        if not events:
            continue
        ref = refs.get(rec["subject_id"])
        if ref is None:
            s.add(events[0][3], i, "the subject has no first dose datetime (no ADEX record, no "
                  "TRTSDTM in ADSL) to measure the off-study time from", rec["subject_id"])
            continue
        hours = [(_hours(dt + (timedelta(days=1) if date_only else timedelta(0)), ref), reason, var)
                 for dt, date_only, reason, var in events]
        h, reason, var = min(hours, key=lambda x: x[0])
        rec["offstudy_h"], rec["offstudy_reason"] = _float_text(_round_sig(h)), reason
        cols = dict(subjects.columns[k])
        cols.update({"offstudy_h": var, "offstudy_reason": var})
        subjects.columns[k] = cols


def _regimen(s: _Source, i: int, var: str | None, cell: object, m: AdamMapping) -> str:
    if var is None:
        return "1"  # placeholder; the missing variable is already reported
    text = _text(cell)
    if not text:
        s.add(var, i, f"{var} must not be empty (the regimen is read from it)")
        return "1"
    if text.upper() in m.regimen:
        return m.regimen[text.upper()]
    try:
        return parse_regimen_text(text)
    except ValueError as err:
        s.add(var, i, f"cannot read a regimen from {var}: {err}", text)
        return "1"


def _age(s: _Source, i: int, v: dict[str, str | None], cells: dict[str, list[object]]) -> str:
    raw = cells["age_years"][i]
    unit = _text(cells["age_unit"][i]).upper() if v["age_unit"] else ""
    if not unit or _is_missing(raw):
        return _text(raw)
    if unit not in _AGE_UNITS:
        s.add(v["age_unit"], i, f"{v['age_unit']} must be YEARS, MONTHS, WEEKS or DAYS", unit)
        return ""
    try:
        x = _number(raw)
    except ValueError:
        return _text(raw)  # the validator reports it
    return _text(raw) if _AGE_UNITS[unit] == 1.0 else _float_text(_round_sig(x * _AGE_UNITS[unit]))


def _responses(s: _Source, m: AdamMapping, subjects: _Rows, adsl_label: str, skipped: Counter[str]) -> None:
    """ADRS -> the ``response`` of each subject record."""
    sid_v = s.var("subject_id", required=True)
    pcd_v = s.var("paramcd", required=True)
    avalc_v, aval_v = s.var("avalc"), s.var("aval")
    if avalc_v is None and aval_v is None:
        s.var("avalc", required=True)
        return
    if sid_v is None or pcd_v is None:
        return
    wanted = m.response["paramcd"]
    yes, no, ne = (set(m.response[k]) for k in ("responder", "nonresponder", "not_evaluable"))
    index = {r["subject_id"]: r for r in subjects.records}
    chosen: dict[str, tuple[int, int]] = {}  # subject -> (preference, position)
    used = 0
    for i, sid, pcd, _ in _parameter_records(s, sid_v, pcd_v, {c: c for c in wanted}, index, adsl_label,
                                             skipped, "the response parameter", "[response] paramcd"):
        used += 1
        pref = wanted.index(pcd)
        if sid not in chosen or pref < chosen[sid][0]:
            chosen[sid] = (pref, i)
    if used > len(chosen):
        key = f"{s.label}: records of a less preferred response parameter ([response] paramcd order)"
        skipped[key] += used - len(chosen)
    avalcs, avals = s.column(avalc_v), s.column(aval_v)
    for sid, (_, i) in chosen.items():
        code = _text(avalcs[i]).upper()
        if code in yes:
            value = "1"
        elif code in no:
            value = "0"
        elif code in ne:
            value = ""
        elif not code and not _is_missing(avals[i]) and _text(avals[i]) in ("1", "0"):
            value = _text(avals[i])
        else:
            shown = avalc_v if code or aval_v is None else aval_v
            s.add(shown, i, "response code must be a responder code ("
                  + ", ".join(sorted(yes)) + "), a non-responder code (" + ", ".join(sorted(no))
                  + ") or not evaluable (" + ", ".join(sorted(ne)) + "); add it to [response] "
                  "of the mapping file", avalcs[i] if code else avals[i])
            continue
        index[sid]["response"] = value


def _parameter_records(s: _Source, sid_v: str, pcd_v: str, key_of: Mapping[str, str], known: Mapping[str, Any],
                       adsl_label: str, skipped: Counter[str], what: str, hint: str):
    """``(row, subject, PARAMCD, key)`` of each record whose ``PARAMCD`` maps to a key (``key_of``),
    for subjects of ADSL (``known``); a subject's second record of one key is reported (select one
    with the file's ``where``), a subject ADSL does not have too. Records of other parameters are
    counted in ``skipped`` (``what`` the file's parameters are for); a file none of whose records
    has such a parameter is reported (``hint``: the mapping section that names them), since it
    would otherwise give nothing without a word (an ADTTE passed as ADRS, a renamed parameter)."""
    seen: dict[tuple[str, str], int] = {}
    sids, pcds = s.column(sid_v), s.column(pcd_v)
    others: dict[str, int] = {}
    for i in range(len(s.df)):
        sid, pcd = _text(sids[i]), _text(pcds[i]).upper()
        key = key_of.get(pcd)
        if key is None:
            others[pcd] = others.get(pcd, 0) + 1
            continue
        if sid not in known:
            s.add(sid_v, i, f"{sid_v} must be a subject of {adsl_label}", sid)
            continue
        if (sid, key) in seen:
            s.add(pcd_v, i, f"{s.label.split('.')[0].upper()} must have one record per subject "
                  f"for PARAMCD {pcd} (same as row {int(s.rows[seen[sid, key]])}); select one "
                  f"with [{s.key}] where in the mapping file (e.g. ANL01FL = \"Y\")", pcd)
            continue
        seen[sid, key] = i
        yield i, sid, pcd, key
    if others and sum(others.values()) == len(s.df):
        found = ", ".join(sorted(others)[:6]) + (", ..." if len(others) > 6 else "")
        s.add(pcd_v, None, f"no record has PARAMCD {' or '.join(key_of)} ({what}); name the file's "
              f"parameter in {hint} of the mapping file", found)
        return
    for pcd, n in others.items():
        key = f"{s.label}: PARAMCD {pcd or '(empty)'} (not {what})"
        skipped[key] += n


def _number_or_none(v: object) -> float | None:
    """:func:`_number`, with ``None`` for a cell that is not a number as well."""
    try:
        return _number(v)
    except ValueError:
        return None


def _survival_times(s: _Source, m: AdamMapping, subjects: _Rows, adsl_label: str, skipped: Counter[str]) -> None:
    """ADTTE -> ``os_days``/``os_event`` and ``rfs_days``/``rfs_event`` of each subject record
    (every record gets the four columns; empty where the subject has no such parameter)."""
    sid_v = s.var("subject_id", required=True)
    pcd_v = s.var("paramcd", required=True)
    aval_v, cnsr_v = s.var("aval", required=True), s.var("cnsr", required=True)
    unit_v = s.var("unit")
    for k in range(len(subjects.records)):
        for c in ("os_days", "os_event", "rfs_days", "rfs_event"):
            subjects.records[k].setdefault(c, "")
    if None in (sid_v, pcd_v, aval_v, cnsr_v):
        return
    code_of = {c: ep for ep, codes in m.survival.items() for c in codes}
    index = {r["subject_id"]: k for k, r in enumerate(subjects.records)}
    avals, cnsrs = s.column(aval_v), s.column(cnsr_v)
    units = s.column(unit_v) if unit_v else [""] * len(s.df)
    for i, sid, pcd, ep in _parameter_records(s, sid_v, pcd_v, code_of, index, adsl_label, skipped,
                                              "an overall or relapse-free survival endpoint", "[survival]"):
        unit = _text(units[i]).upper() or "DAYS"
        if unit not in _TTE_UNITS:
            s.add(unit_v, i, f"{unit_v} must be DAYS, HOURS, WEEKS, MONTHS or YEARS", unit)
            continue
        aval, cnsr = _number_or_none(avals[i]), _number_or_none(cnsrs[i])
        if aval is None:
            s.add(aval_v, i, f"{aval_v} must be a number (time from the first infusion start)", avals[i])
            continue
        days = aval * _TTE_UNITS[unit]
        if cnsr is None or not (cnsr == int(cnsr) and cnsr >= 0):
            s.add(cnsr_v, i, f"{cnsr_v} must be 0 (event) or a positive censoring code", cnsrs[i])
            continue
        k = index[sid]
        rec = subjects.records[k]
        rec[f"{ep}_days"] = _float_text(_round_sig(days))
        rec[f"{ep}_event"] = "1" if cnsr == 0 else "0"
        cols = dict(subjects.columns[k])
        cols.update({f"{ep}_days": aval_v, f"{ep}_event": cnsr_v})
        subjects.columns[k] = cols


def _dosing(s: _Source | None, m: AdamMapping, first_dose: dict[str, datetime]
            ) -> tuple[_Rows, dict[str, datetime]]:
    """ADEX -> dosing records; the time-zero datetime of each subject."""
    refs: dict[str, datetime] = dict(first_dose) if m.options["reference"] == "adsl" else {}
    if s is None:
        for sid, dt in first_dose.items():
            refs.setdefault(sid, dt)
        return _Rows(file="adex", default_columns={}), refs
    v = {f: s.var(f, required=f in ("subject_id", "dose", "dose_unit", "start", "end"))
         for f in s.fmap.variables}
    keep = s.keep_vars()
    cols = {"subject_id": v["subject_id"] or "USUBJID", "start_h": v["start"] or "EXSTDTC",
            "end_h": v["end"] or "EXENDTC", "dose": v["dose"] or "EXDOSE",
            "dose_unit": v["dose_unit"] or "EXDOSU", "cycle": v["cycle"] or v["start"] or "",
            **{k.lower(): k for k in keep}}
    rows = _Rows(file=s.label, default_columns=cols)
    if v["subject_id"] is None or v["start"] is None or v["end"] is None:
        return rows, refs
    cells = {f: s.column(var) for f, var in v.items()}
    good: list[tuple[int, str, datetime, datetime]] = []
    for i in range(len(s.df)):
        sid = _text(cells["subject_id"][i])
        times = []
        for f in ("start", "end"):
            try:
                times.append(parse_datetime(cells[f][i]))
            except (ValueError, OverflowError) as err:
                what = ("must give the time as well as the date" if str(err) == "date only"
                        else "must be a date and time (ISO 8601 '2020-01-01T08:00' or a SAS "
                        "datetime)")
                if str(err) == "missing":
                    what = "is required (start and end of the infusion interval)"
                s.add(v[f], i, f"{v[f]} {what}", cells[f][i])
        if len(times) == 2:
            good.append((i, sid, times[0], times[1]))
    if m.options["reference"] == "adex":
        for i, sid, start, _ in good:
            if sid not in refs or start < refs[sid]:
                refs[sid] = start
        for sid, dt in first_dose.items():
            refs.setdefault(sid, dt)
    start_h: list[float] = []
    end_h: list[float] = []
    for i, sid, start, end in good:
        ref = refs.get(sid)
        if ref is None:
            ref = start
            s.add(v["start"], i, "the subject needs a first dose datetime (TRTSDTM in ADSL) "
                  "with reference = \"adsl\"", sid)
        elif isinstance(ref, _DateOnly):
            s.add(v["start"], i, "with reference = \"adsl\" the infusion times are measured from "
                  "TRTSDTM, which is a date without a time for this subject; give TRTSDTM with the "
                  "time or use reference = \"adex\"", sid)
            ref = start
        start_h.append(_hours(start, ref))
        end_h.append(_hours(end, ref))
    if v["cycle"] is None:
        cycles = _derive_cycles([g[1] for g in good], start_h, end_h,
                                24.0 * float(m.options["cycle_gap_days"]))
    else:
        cycles = []
        for i, *_ in good:
            try:
                cycles.append(_cycle_of(cells["cycle"][i]))
            except ValueError:
                s.add(v["cycle"], i, f"{v['cycle']} must give the cycle as a whole number >= 1 "
                      "(or 'CYCLE n')", cells["cycle"][i])
                cycles.append(1)
    for (i, sid, _, _), a, b, c in zip(good, start_h, end_h, cycles):
        dose, unit = _dose_in_ug(_text(cells["dose"][i]), _text(cells["dose_unit"][i]), m)
        rec = {"subject_id": sid, "cycle": str(c), "start_h": _float_text(a),
               "end_h": _float_text(b), "dose": dose, "dose_unit": unit}
        for k in keep:
            rec[k.lower()] = _text(s.df[k].iloc[i])
        rows.add(rec, s.label, int(s.rows[i]))
    return rows, refs


def _mg_to_ug(unit: str) -> str | None:
    """``'mg/m2/day'`` -> ``'ug/m2/day'`` (any spelling of a daily dose in mg); ``None`` otherwise."""
    key = re.sub(r"\s+", "", str(unit)).lower()
    if not key.startswith("mg"):
        return None
    try:
        return normalise_dose_unit("ug" + key[2:])
    except UnitError:
        return None


def _dose_in_ug(dose: str, unit: str, m: AdamMapping) -> tuple[str, str]:
    """An ADEX dose and unit in the package's µg: the mapping's ``[dose_units]`` spelling first,
    daily doses in mg converted (x 1000); anything else as it is, for the validator to judge."""
    unit = m.dose_units.get(unit.strip().upper(), unit)
    ug = _mg_to_ug(unit)
    if ug is None:
        return dose, unit
    try:
        x = _number(dose)
    except ValueError:
        return dose, unit  # the validator reports the non-number
    return ("" if x is None else _float_text(_round_sig(x * 1000.0))), ug


def _param_code(pcd: str, param: str, m: AdamMapping) -> str | None:
    """Analyte code (or 'skip') of a PARAMCD/PARAM pair; ``None`` when unknown."""
    for key in (pcd.upper(), param.upper()):
        if key and key in m.params:
            return m.params[key]
    inverse = {v: k for k, v in ADAM_PARAMCD.items()}
    if pcd.upper() in inverse:
        return inverse[pcd.upper()]
    code = resolve_analyte(pcd) if pcd else None
    if code is None and param:
        code = resolve_analyte(re.sub(r"\s*\([^()]*\)\s*$", "", param))
    return code


def _observations(s: _Source, m: AdamMapping, refs: dict[str, datetime], out: _Rows,
                  skipped: Counter[str]) -> None:
    """ADLB/ADPC -> observation records appended to ``out``."""
    v = {f: s.var(f, required=f in ("subject_id",)) for f in s.fmap.variables}
    if v["paramcd"] is None and v["param"] is None:
        s.var("paramcd", required=True)
    if v["value"] is None and v["value_text"] is None:
        s.var("value", required=True)
    keep = s.keep_vars()
    base_cols = {"subject_id": v["subject_id"] or "USUBJID",
                 "analyte": v["paramcd"] or v["param"] or "PARAMCD",
                 "time_h": v["rel_time"] or v["datetime"] or v["day"] or "AFRLT",
                 "value": v["value"] or v["value_text"] or "AVAL",
                 "unit": v["unit"] or v["param"] or "AVALU",
                 "lod": v["lod"] or "ALOD", "lloq": v["lloq"] or "ALLOQ",
                 "below": v["value_text"] or v["blq_flag"] or "AVALC",
                 **{k.lower(): k for k in keep}}
    if not out.default_columns:
        out.default_columns.update(base_cols)
    if v["subject_id"] is None or (v["paramcd"] is None and v["param"] is None) or \
            (v["value"] is None and v["value_text"] is None):
        return
    cells = {f: s.column(var) for f, var in v.items()}
    unknown: dict[str, list[int]] = {}
    for i in range(len(s.df)):
        if v["dtype"] is not None and not _is_missing(cells["dtype"][i]) and \
                not m.options["keep_derived"]:
            skipped[f"{s.label}: derived records (DTYPE)"] += 1
            continue
        if v["paramtyp"] is not None and _text(cells["paramtyp"][i]).upper() == "DERIVED" and \
                not m.options["keep_derived"]:
            key = f"{s.label}: derived parameters (PARAMTYP = DERIVED) {_text(cells['paramcd'][i])}"
            skipped[key] += 1
            continue
        pcd, param = _text(cells["paramcd"][i]), _text(cells["param"][i])
        code = _param_code(pcd, param, m)
        if code == "skip":
            key = f"{s.label}: PARAMCD {pcd or param} (mapped to skip)"
            skipped[key] += 1
            continue
        if code is None:
            if m.options["unknown_params"] == "skip":
                key = f"{s.label}: PARAMCD {pcd or param} (unknown, skipped)"
                skipped[key] += 1
            else:
                unknown.setdefault(pcd or param, []).append(i)
            continue
        cols = dict(base_cols)
        rec: dict[str, str] = {"subject_id": _text(cells["subject_id"][i]), "analyte": code}
        time = _obs_time(s, i, v, cells, refs.get(rec["subject_id"]), cols)
        if time is None:
            continue
        if _before_window(s, i, time, cols["time_h"], m, skipped):
            continue
        rec["time_h"] = time
        unit = _text(cells["unit"][i])
        if v["unit"] is None and param:
            mu = re.search(r"\(([^()]*)\)\s*$", param)
            unit = mu.group(1).strip() if mu else ""
            cols["unit"] = v["param"] or "PARAM"
        rec["unit"] = unit
        if not _censoring(s, i, v, cells, rec, cols, m.options["zero_results"]):
            continue
        if not rec.get("value") and not rec.get("below") and m.options["missing_results"] == "skip":
            key = f"{s.label}: records without a result ({cols['value']} empty, no below-limit flag)"
            skipped[key] += 1
            continue
        for k in keep:
            rec[k.lower()] = _text(s.df[k].iloc[i])
        out.add(rec, s.label, int(s.rows[i]), cols)
    for pcd, idx in unknown.items():
        s.add(v["paramcd"] or v["param"], idx[0], f"unknown PARAMCD ({len(idx)} record(s)): not "
              "an analyte code or alias; map it in [params] of the mapping file (to a code, or "
              "to \"skip\")", pcd)


def _before_window(s: _Source, i: int, time: str, var: str, m: AdamMapping, skipped: Counter[str]) -> bool:
    """Whether a record lies before the screening window: left out and counted with
    ``before_window = "skip"``, else reported quoting the file's own value (e.g. ``ADY`` -26, not
    the hours it was turned into). True when the record is not to be kept."""
    try:
        hours = float(time)
    except ValueError:
        return False  # the validator reports the non-number
    window = m.options["window_h"]
    if not hours < -window:
        return False
    if m.options["before_window"] == "skip":
        key = f"{s.label}: records more than {window:g} h ({window / 24:g} days) before the first infusion start"
        skipped[key] += 1
        return True
    raw = s.df[var].iloc[i] if var in s.df.columns else time
    s.add(var, i, f"{var} must not be more than the screening window of {window:g} h ({window / 24:g} "
          "days) before the first infusion start; leave such records out with [options] "
          "before_window = \"skip\" in the mapping file or --before-window skip, or widen the window "
          "([options] screening_window_days, --screening-window-days)", raw)
    return True


def _obs_time(s: _Source, i: int, v: dict[str, str | None], cells: dict[str, list[object]],
              ref: datetime | None, cols: dict[str, str]) -> str | None:
    """Hours since the first infusion start of one record (text), or ``None`` after a problem."""
    rel = cells["rel_time"][i]
    if v["rel_time"] is not None and not _is_missing(rel):
        cols["time_h"] = v["rel_time"]
        unit = _text(cells["rel_time_unit"][i]).upper() or "H"
        if unit not in _TIME_UNITS:
            s.add(v["rel_time_unit"], i, f"{v['rel_time_unit']} must be a time unit (h, min, "
                  "days, weeks)", unit)
            return None
        try:
            x = _number(rel)
        except ValueError:
            return _text(rel)  # the validator reports the non-number
        return _float_text(x if _TIME_UNITS[unit] == 1.0 else _round_sig(x * _TIME_UNITS[unit]))
    dtv = cells["datetime"][i]
    if v["datetime"] is not None and not _is_missing(dtv):
        cols["time_h"] = v["datetime"]
        try:
            dt = parse_datetime(dtv)
        except (ValueError, OverflowError) as err:
            s.add(v["datetime"], i, f"{v['datetime']} must be a date and time"
                  + (" (found a date only)" if str(err) == "date only" else ""), dtv)
            return None
        if ref is None:
            s.add(v["datetime"], i, "the subject has no first dose datetime (no ADEX record, "
                  "no TRTSDTM in ADSL) to measure the time from", _text(cells["subject_id"][i]))
            return None
        if isinstance(ref, _DateOnly):
            s.add(v["datetime"], i, f"the subject's first dose (TRTSDTM) is a date without a time, so "
                  f"{v['datetime']} cannot be measured from it in hours; give TRTSDTM with the time, "
                  "give ADEX, or take the time from the study day (ADY, with ATPT)",
                  _text(cells["subject_id"][i]))
            return None
        return _float_text(_hours(dt, ref))
    day = cells["day"][i]
    if v["day"] is not None and not _is_missing(day):
        cols["time_h"] = v["day"]
        try:
            d = _number(day)
        except ValueError:
            s.add(v["day"], i, f"{v['day']} must be a whole number of days", day)
            return None
        if d is None or d != round(d) or d == 0:
            s.add(v["day"], i, f"{v['day']} must be a whole number other than 0 (day 1 is the "
                  "first dose day)", day)
            return None
        hours = (d - 1) * 24.0 if d > 0 else d * 24.0
        tp = _text(cells["timepoint"][i])
        if tp:
            try:
                hours += _timepoint_hours(tp)
            except ValueError:
                s.add(v["timepoint"], i, f"{v['timepoint']} must be like 'PRE-DOSE', '6H' or "
                      "'30 MIN' when the time comes from the study day", tp)
                return None
        return _float_text(hours)
    names = [n for n in (v["rel_time"], v["datetime"], v["day"]) if n]
    s.add(names[0] if names else "AFRLT", i, "the record needs a time: AFRLT (hours since the "
          "first dose), ADTM or ADY")
    return None


def _censoring(s: _Source, i: int, v: dict[str, str | None], cells: dict[str, list[object]],
               rec: dict[str, str], cols: dict[str, str], zero_results: str = "error") -> bool:
    """Fill ``value``, ``lod``, ``lloq`` and ``below`` of one record; ``False`` after a problem.

    An unflagged result of exactly 0 on a record that gives a positive LLOQ or LOD (sponsors write 0
    for pre-dose concentrations below the limit) is not a measurement: an error, or below the LLOQ
    with ``zero_results = "below_lloq"``; read as a value it would be an uncensored zero below the
    record's own limit. A zero without a limit (a B-cell count of 0) is a value."""
    value = _text(cells["value"][i])
    avalc = _text(cells["value_text"][i])
    lod, lloq = _text(cells["lod"][i]), _text(cells["lloq"][i])
    below = ""

    def flag(f: str) -> bool:
        return v[f] is not None and _text(cells[f][i]).upper() in ("Y", "YES", "1")

    if flag("blq_flag"):
        below, cols["below"] = "LLOQ", v["blq_flag"]  # type: ignore[assignment]
    elif flag("bld_flag"):
        below, cols["below"] = "LOD", v["bld_flag"]  # type: ignore[assignment]
    elif avalc:
        token = re.sub(r"\s+", "", avalc.upper())
        lim = re.fullmatch(r"<=?\s*(" + _NUMBER + r")", avalc.strip())
        if token in _LLOQ_TOKENS:
            below = "LLOQ"
        elif token in _LOD_TOKENS:
            below = "LOD"
        elif lim:
            x = float(lim.group(1))
            lod_x = _safe_float(lod)
            lloq_x = _safe_float(lloq)
            if lod_x is not None and x == lod_x:
                below = "LOD"
            elif lloq_x is None:
                below, lloq = "LLOQ", lim.group(1)
            elif x == lloq_x:
                below = "LLOQ"
            else:
                s.add(v["value_text"], i, f"{v['value_text']} gives the limit {lim.group(1)}, "
                      f"but {v['lloq']} is {lloq} (and {v['lod'] or 'ALOD'} is {lod or 'empty'})",
                      avalc)
                return False
        elif avalc.startswith(">"):
            s.add(v["value_text"], i, "results above an upper limit ('>x') cannot be "
                  "represented; give the value in AVAL", avalc)
            return False
        elif not value:
            if not re.fullmatch(_NUMBER, avalc):
                s.add(v["value_text"], i, f"{v['value_text']} must be a number, '<LIMIT', 'BLQ' "
                      "or 'BLD' when AVAL is empty", avalc)
                return False
            value = avalc
            cols["value"] = v["value_text"]  # type: ignore[assignment]
        if below:
            cols["below"] = v["value_text"]  # type: ignore[assignment]
    limits = [x for x in (_safe_float(lloq), _safe_float(lod)) if x is not None and x > 0]
    if not below and value and _safe_float(value) == 0.0 and limits:
        if zero_results == "below_lloq":
            below = "LLOQ"
        else:
            s.add(cols.get("value", v["value"]), i, f"a result of 0 below the record's own limit "
                  f"({lloq or lod}) without a below-limit flag is not a measurement; flag it (AVALC "
                  "'BLQ', BLQFL 'Y') or read such zeros as below the LLOQ with [options] "
                  "zero_results = \"below_lloq\" in the mapping file", value)
            return False
    rec.update(value=value, lod=lod, lloq=lloq, below=below)
    return True


def _safe_float(text: str) -> float | None:
    try:
        return _number(text)
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------
# write_adam
# ----------------------------------------------------------------------------------------------

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
        _swap_in(tmp, folder)
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
