"""Parsing rules for ADaM cells: treatment text, date-times, time and age units, limit tokens.

Pure functions of one cell: :func:`parse_regimen_text`, :func:`parse_datetime`, and the unit and
below-limit token tables the readers share.
"""
from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd

from bayes_blina.data.records import _NUMBER, _is_missing, _number, _text
from bayes_blina.data.schema import normalise_regimen
from bayes_blina.data.units import UnitError, normalise_dose_unit

#: Days per ``AVALU`` unit of ADTTE.
_TTE_UNITS = {"DAYS": 1.0, "DAY": 1.0, "D": 1.0, "HOURS": 1.0 / 24.0, "HOUR": 1.0 / 24.0, "H": 1.0 / 24.0,
              "WEEKS": 7.0, "WEEK": 7.0, "MONTHS": 30.4375, "MONTH": 30.4375, "YEARS": 365.25, "YEAR": 365.25}


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


def _number_or_none(v: object) -> float | None:
    """:func:`_number`, with ``None`` for a cell that is not a number as well."""
    try:
        return _number(v)
    except ValueError:
        return None


def _safe_float(text: str) -> float | None:
    try:
        return _number(text)
    except ValueError:
        return None


def _mg_to_ug(unit: str) -> str | None:
    """``'mg/m2/day'`` -> ``'ug/m2/day'`` (any spelling of a daily dose in mg); ``None`` otherwise."""
    key = re.sub(r"\s+", "", str(unit)).lower()
    if not key.startswith("mg"):
        return None
    try:
        return normalise_dose_unit("ug" + key[2:])
    except UnitError:
        return None
