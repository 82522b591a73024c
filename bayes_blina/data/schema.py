"""Validation of the tables of a dataset folder (the rules of ``docs/data-format.md``).

Each ``validate_*`` function takes one raw table (any dtypes; a file read with ``dtype=str`` is the
usual input), checks every rule on every row, and returns the table in canonical form (canonical
columns first, canonical dtypes, analyte codes and units converted, derived columns added, extra
columns kept as text) together with the list of :class:`~bayes_blina.errors.Problem` found. It never
raises for bad data. :func:`validate_dataset` runs all of them plus the cross-table checks and
raises a single :class:`~bayes_blina.errors.DataValidationError` listing every problem.

Row numbers in problems are 1-based data rows (row 1 = the first line after the header).
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

try:  # optional (the ``parquet`` extra; pandas uses it for text): vectorised number parsing
    import pyarrow as _pa
    import pyarrow.compute as _pc
except ImportError:  # pragma: no cover - exercised where pyarrow is absent
    _pa = _pc = None

from bayes_blina.data.analytes import ANALYTES, resolve_analyte
from bayes_blina.data.dataset import TABLES, Dataset
from bayes_blina.data.units import UnitError, convert, is_linear, normalise_dose_unit
from bayes_blina.errors import DataValidationError, Problem

# ----------------------------------------------------------------------------------------------
# Canonical columns
# ----------------------------------------------------------------------------------------------

#: Canonical columns of each table, in output order (extra input columns follow them).
COLUMNS: dict[str, tuple[str, ...]] = {
    "subjects": ("subject_id", "study", "regimen", "age_years", "age_group", "blast_pct",
                 "blast_burden", "bsa_m2", "prior_hsct", "refractory", "prior_relapses",
                 "prior_relapses_group", "region", "response", "offstudy_h", "offstudy_reason",
                 "os_days", "os_event", "rfs_days", "rfs_event", "mrd_response", "hsct_days"),
    "dosing": ("subject_id", "cycle", "start_h", "end_h", "dose", "dose_unit", "dose_ug_m2_day"),
    "observations": ("subject_id", "analyte", "time_h", "value", "unit", "lod", "lloq", "below",
                     "limit_source"),
    "aggregates": ("study", "endpoint", "population", "subset_of", "family", "level", "regimen",
                   "responders", "n", "source"),
    "summaries": ("study", "quantity", "analyte", "group", "regimen", "cycle", "time_h",
                  "statistic", "value", "unit", "n", "source"),
    "dlt": ("study", "cohort", "stratum", "dose", "regimen", "n", "dlt", "source"),
}

#: Canonical columns written only when the input has them (so that a dataset without them keeps
#: its :meth:`Dataset.sha256`, and the fits that recorded it stay valid).
OFFSTUDY_COLUMNS: tuple[str, ...] = ("offstudy_h", "offstudy_reason")
#: Time-to-event endpoints (days from the first infusion start; event 1, censored 0) and the MRD
#: response of a patient in CR (1 complete MRD response, 0 not, empty unknown / not in CR), and the
#: day of an allogeneic HSCT after the start of treatment (empty: none within the data).
SURVIVAL_COLUMNS: tuple[str, ...] = ("os_days", "os_event", "rfs_days", "rfs_event", "mrd_response", "hsct_days")
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"subjects": OFFSTUDY_COLUMNS + SURVIVAL_COLUMNS}

#: Reasons for going off study (``subjects.offstudy_reason``).
OFFSTUDY_REASONS = ("death", "withdrawal", "adverse_event", "progression", "lost_to_follow_up",
                    "other")
_OFFSTUDY_ALIASES = {
    "died": "death", "dead": "death", "fatal": "death",
    "withdrawal_by_subject": "withdrawal", "withdrew_consent": "withdrawal",
    "withdrawn_consent": "withdrawal", "consent_withdrawn": "withdrawal",
    "withdrawal_of_consent": "withdrawal", "withdrawn": "withdrawal",
    "ae": "adverse_event", "adverse_events": "adverse_event",
    "progressive_disease": "progression", "disease_progression": "progression",
    "pd": "progression", "relapse": "progression",
    "lost_to_followup": "lost_to_follow_up", "lost": "lost_to_follow_up",
}


def normalise_offstudy_reason(text: object) -> str:
    """Normalise an off-study reason to :data:`OFFSTUDY_REASONS` where it is a known spelling.

    ``'Death'`` -> ``'death'``, ``'WITHDRAWAL BY SUBJECT'`` -> ``'withdrawal'``, ``'Adverse
    Event'`` -> ``'adverse_event'``; other text is returned lower-cased with ``_`` for spaces (and
    is then reported by the validator).
    """
    t = re.sub(r"[\s\-/]+", "_", ("" if text is None else str(text)).strip().lower()).strip("_")
    return _OFFSTUDY_ALIASES.get(t, t)


#: Columns each table must have.
REQUIRED: dict[str, tuple[str, ...]] = {
    "subjects": ("subject_id", "study", "regimen"),
    "dosing": ("subject_id", "cycle", "start_h", "end_h", "dose", "dose_unit"),
    "observations": ("subject_id", "analyte", "time_h", "value", "unit"),
    "aggregates": ("study", "family", "level", "regimen", "responders", "n", "source"),
    "summaries": ("study", "quantity", "analyte", "statistic", "value", "source"),
    "dlt": ("n", "dlt"),
}

#: Partition families with a meaning to the models (``aggregates.family``); other families are
#: allowed if they are lower-case identifiers (``crs_grade3plus``, ``mll``), kept and tabulated,
#: but no model attaches a covariate effect to them.
FAMILIES = ("all", "age_group", "blast_burden", "prior_hsct", "refractory", "prior_relapses",
            "region", "cohort", "phase")
_FAMILY_ID = re.compile(r"^[a-z][a-z0-9_]*$")

#: Levels of the families with a fixed vocabulary (the others take free text).
LEVELS: dict[str, tuple[str, ...]] = {
    "all": ("all",),
    "age_group": ("<2", "2-6", "7-17", "adult"),
    "blast_burden": ("<50", ">=50"),
    "prior_hsct": ("yes", "no"),
    "refractory": ("yes", "no"),
    "prior_relapses": ("0", "1", "2", ">=3"),
}

_LEVEL_ALIASES: dict[str, dict[str, str]] = {
    "all": {"overall": "all", "total": "all", "all patients": "all"},
    "age_group": {">=18": "adult", "18+": "adult", "adults": "adult", "0-1": "<2",
                  "2-<7": "2-6", "7-<18": "7-17"},
    "blast_burden": {">50": ">=50", "50+": ">=50"},
    "prior_hsct": {"1": "yes", "0": "no", "true": "yes", "false": "no", "y": "yes", "n": "no"},
    "refractory": {"1": "yes", "0": "no", "true": "yes", "false": "no", "y": "yes", "n": "no"},
    "prior_relapses": {"3+": ">=3", ">2": ">=3"},
}

_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})
#: A number as a cell may give it: ASCII digits only (not other scripts' digits, which Python's
#: ``float`` would take), an optional sign, decimal point and exponent.
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_TRUE = frozenset({"1", "1.0", "true", "yes", "y"})
_FALSE = frozenset({"0", "0.0", "false", "no", "n"})


def _quote_all(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _fmt(x: float) -> str:
    """Short text of a number for messages and labels (``15.0`` -> ``'15'``)."""
    return format(float(x), ".10g")


# ----------------------------------------------------------------------------------------------
# Vocabulary normalisation (public: used by models and readers of other formats)
# ----------------------------------------------------------------------------------------------

def normalise_level(text: object, family: str | None = None) -> str:
    """Normalise a subgroup level to the vocabulary of ``docs/data-format.md``.

    ``'< 2'`` -> ``'<2'``, ``'2 to 6'`` -> ``'2-6'``, ``'≥ 50%'`` -> ``'>=50'``, ``'≥3'`` ->
    ``'>=3'``, ``'Yes'`` -> ``'yes'``, ``'>=18'`` -> ``'adult'`` (``age_group``). Levels of free
    families (``region``, ``cohort``, ``phase``) are only stripped. The result is not checked
    against the vocabulary; see :data:`LEVELS`.

    Parameters
    ----------
    text : str
        The level as written.
    family : str, optional
        Family the level belongs to; enables family-specific aliases (``'1'`` -> ``'yes'`` for
        ``prior_hsct``). Without it, generic rules apply.

    Returns
    -------
    str
    """
    s = "" if text is None else str(text).strip()
    if family is not None and family not in LEVELS:
        return s  # free-text family
    t = _symbolic_level(s)
    if family is None:
        t = re.sub(r"^(\d+)\+$", r">=\1", t)
        return t if t in ("yes", "no") or re.match(r"^[<>=\d]", t) else s
    return _LEVEL_ALIASES.get(family, {}).get(t, t)


def _symbolic_level(s: str) -> str:
    """Lower case, ASCII comparison signs, no units or spaces in numeric levels."""
    t = s.lower().replace("≥", ">=").replace("≤", "<=").replace("–", "-").replace("—", "-")
    t = t.replace("−", "-").replace("=>", ">=").replace("=<", "<=")
    t = re.sub(r"(?<=\d)\s*(?:years?|yrs?|y|%)(?=\s|$|-|<|>)", "", t)  # '2 y', '50 %'
    t = re.sub(r"(\d)\s*(?:to|-)\s*(\d)", r"\1-\2", t)  # '2 to 6'
    if re.match(r"^[<>=\d.\s]", t) or t.endswith("+"):
        t = re.sub(r"\s+", "", t)
    return t


def normalise_regimen(text: object) -> str:
    """Normalise a regimen label: dose levels in µg/m²/day joined by ``-``.

    ``'5/15'``, ``'5 - 15'``, ``'5→15'`` and ``'5-15 µg/m²/d'`` all become ``'5-15'``.

    Raises
    ------
    ValueError
        If the label is not a sequence of positive numbers.
    """
    s = "" if text is None else str(text).strip()
    s = re.sub(r"\s*(?:µg|μg|ug|mcg)\s*/\s*m(?:2|²|\^2)\s*/\s*(?:d|day)\s*$", "", s,
               flags=re.IGNORECASE)
    s = re.sub(r"\s*(?:->|→|/|–|—|−|-)\s*", "-", s)
    s = re.sub(r"\s+", "", s)
    parts = s.split("-")
    if not s or not all(re.fullmatch(_NUMBER, p) and float(p) > 0 for p in parts):
        raise ValueError("regimen must be dose levels in ug/m2/day joined by '-' (e.g. '5-15')")
    return "-".join(_fmt(float(p)) for p in parts)


def parse_regimen_mixture(text: object) -> list[tuple[str, int]]:
    """Parse a pooled-regimen mixture ``'LABEL:N;LABEL:N'`` into ``[(label, count), ...]``.

    Labels are normalised with :func:`normalise_regimen`; counts must be whole numbers >= 1.

    Raises
    ------
    ValueError
        If the text is malformed.
    """
    bad = ("regimen mixture must look like 'LABEL:N;LABEL:N' with whole counts >= 1 "
           "(e.g. '5-15:10;15:20')")
    parts = [p for p in str(text).split(";") if p.strip()]
    out: list[tuple[str, int]] = []
    for part in parts:
        label, sep, count = part.partition(":")
        if not sep or not re.fullmatch(r"\s*\d+\s*", count) or int(count) < 1:
            raise ValueError(bad)
        out.append((normalise_regimen(label), int(count)))
    if len(out) < 1:
        raise ValueError(bad)
    if len({lab for lab, _ in out}) != len(out):
        raise ValueError("regimen mixture must not name a regimen twice")
    return out


def format_regimen_mixture(parts: list[tuple[str, int]]) -> str:
    """Canonical text of a mixture: ``'5-15:10;15:20'``."""
    return ";".join(f"{label}:{count}" for label, count in parts)


def age_group_of(age_years: float) -> str | None:
    """Age group (``'<2'``, ``'2-6'``, ``'7-17'``, ``'adult'``) of an age in years."""
    if age_years is None or not np.isfinite(age_years):
        return None
    if age_years < 2:
        return "<2"
    if age_years < 7:
        return "2-6"
    if age_years < 18:
        return "7-17"
    return "adult"


def blast_burden_of(blast_pct: float) -> str | None:
    """``'<50'`` or ``'>=50'`` for a bone-marrow blast percentage."""
    if blast_pct is None or not np.isfinite(blast_pct):
        return None
    return "<50" if blast_pct < 50 else ">=50"


def prior_relapses_group_of(n: float) -> str | None:
    """``'0'``, ``'1'``, ``'2'`` or ``'>=3'`` for a number of prior relapses."""
    if n is None or pd.isna(n):
        return None
    return ">=3" if n >= 3 else str(int(n))


# ----------------------------------------------------------------------------------------------
# The row checker
# ----------------------------------------------------------------------------------------------

def _cell_text(v: object) -> str:
    """Text of one cell as a CSV reader with ``dtype=str`` would give it (missing -> '')."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v).strip()


def _column_text(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.StringDtype):  # text columns (the CSV reader's): vectorised, same result
        return s.fillna("").str.strip().to_numpy(dtype=object)
    return np.array([_cell_text(v) for v in s.tolist()], dtype=object)


def as_text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every cell as stripped text (object dtype), missing cells as ``''``."""
    return pd.DataFrame({c: _column_text(df.iloc[:, i]) for i, c in enumerate(df.columns)},
                        index=pd.RangeIndex(len(df)), dtype=object)


class _Checker:
    """Holds one table as text and collects the problems found in it."""

    def __init__(self, file: str, df: pd.DataFrame, required: Iterable[str]):
        self.file = file
        self.problems: list[Problem] = []
        self.missing: set[str] = set()
        self.rows = row_numbers(df)
        if df.attrs:  # pandas deep-copies attrs on every column access: not needed from here on
            df = df.copy(deep=False)
            df.attrs = {}
        self.t = self._prepare(df, tuple(required))
        self.n = len(self.t)

    # -- set-up ------------------------------------------------------------------------------
    def _prepare(self, df: pd.DataFrame, required: tuple[str, ...]) -> pd.DataFrame:
        names = [str(c).replace("\ufeff", "").strip().lower() for c in df.columns]
        keep: list[int] = []
        for i, name in enumerate(names):
            if name in names[:i]:
                self.add(name, None, "column names must be unique (case-insensitive)",
                         str(df.columns[i]))
            else:
                keep.append(i)
        t = as_text_frame(df.iloc[:, keep])
        t.columns = [names[i] for i in keep]
        if len(t.columns) == 0:
            self.add(None, None, "file is empty (no header line)")
        elif len(t) == 0:
            self.add(None, None, "file has no data rows")
        for col in required:
            if col not in t.columns:
                if len(t.columns):
                    self.add(col, None, "required column is missing")
                self.missing.add(col)
        return t

    def has(self, col: str) -> bool:
        """Whether the input had the column."""
        return col in self.t.columns

    # -- reporting ---------------------------------------------------------------------------
    def rowno(self, pos: int) -> int:
        """Row number to report for the 1-based position ``pos`` in the table.

        Equal to ``pos`` unless the reader dropped blank lines and recorded the original data-row
        numbers in ``df.attrs['row_numbers']``.
        """
        return int(self.rows[int(pos) - 1])

    def add(self, column: str | None, row: int | None, rule: str, value: str | None = None) -> None:
        """Record a problem (``row`` is the 1-based position in the table)."""
        self.problems.append(Problem(self.file, column, None if row is None else self.rowno(row),
                                     rule, value))

    def flag(self, mask: np.ndarray | pd.Series, column: str, rule: str,
             show: str | None = None) -> None:
        """Record ``rule`` for every row where ``mask`` is true, quoting column ``show``'s text."""
        raw = self.raw(show or column)
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            self.add(column, int(i) + 1, rule, raw.iloc[i])

    # -- typed access ------------------------------------------------------------------------
    def raw(self, col: str) -> pd.Series:
        """Text of a column ('' everywhere when the column is absent)."""
        if col in self.t.columns:
            return self.t[col]
        return pd.Series([""] * self.n, index=self.t.index, dtype=object)

    def text(self, col: str, *, required: bool = False) -> pd.Series:
        """Text of a column; with ``required``, empty cells are reported."""
        s = self.raw(col)
        if required and col not in self.missing:
            for i in np.flatnonzero((s == "").to_numpy()):
                self.add(col, int(i) + 1, f"{col} must not be empty")
        return s

    def is_missing(self, col: str) -> np.ndarray:
        """Rows where a numeric/boolean column is empty or a missing-value token (NA, nan...)."""
        return self.raw(col).str.lower().isin(_MISSING).to_numpy(dtype=bool)

    def numbers(self, col: str, *, required: bool = False) -> np.ndarray:
        """Float values of a column (NaN where empty or bad); non-numbers are reported."""
        s = self.raw(col)
        ok, out = _parse_numbers(s.to_numpy(dtype=object))
        inf = ok & ~np.isfinite(out)
        out[inf] = np.nan
        bad = (~ok & ~self.is_missing(col)) | inf
        self.flag(bad, col, f"{col} must be a number")
        if required and col not in self.missing:
            self.flag(self.is_missing(col), col, f"{col} is required")
        return out

    def integers(self, col: str, *, required: bool = False) -> pd.Series:
        """Whole-number values (nullable Int64); fractions are reported."""
        x = self.numbers(col, required=required)
        frac = np.isfinite(x) & (np.floor(x) != x)
        self.flag(frac, col, f"{col} must be a whole number")
        x[frac] = np.nan
        huge = np.isfinite(x) & (np.abs(x) > 2.0**53)  # beyond exact integers (and Int64's range)
        self.flag(huge, col, f"{col} must be a whole number below 2^53 (9,007,199,254,740,992)")
        x[huge] = np.nan
        return pd.Series(pd.array([None if np.isnan(v) else int(v) for v in x], dtype="Int64"))

    def booleans(self, col: str, true: frozenset[str], false: frozenset[str],
                 rule: str) -> pd.Series:
        """Nullable boolean values; words outside ``true``/``false`` are reported."""
        s = self.raw(col).str.lower()
        missing = self.is_missing(col)
        is_true = s.isin(true).to_numpy(dtype=bool)
        is_false = s.isin(false).to_numpy(dtype=bool)
        self.flag(~(is_true | is_false | missing), col, rule)
        vals = [True if t else False if f else None for t, f in zip(is_true, is_false)]
        return pd.Series(pd.array(vals, dtype="boolean"))

    def check(self, bad: np.ndarray, col: str, rule: str) -> None:
        """Report rows where ``bad`` (NaN-safe comparisons already applied) is true."""
        self.flag(np.asarray(bad, dtype=bool), col, rule)

    def extras(self, canonical: Iterable[str]) -> dict[str, pd.Series]:
        """Input columns that are not canonical, as text with '' -> missing."""
        canon = set(canonical)
        return {c: _text_series(self.t[c]) for c in self.t.columns if c not in canon}


def _parse_numbers(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which text cells are numbers (:data:`_NUMBER`, whole cell) and their float values (NaN
    elsewhere); vectorised in Arrow, with a pure-Python path for text Arrow cannot hold."""
    out = np.full(len(cells), np.nan)
    if _pa is not None:
        try:
            arr = _pa.array(cells, type=_pa.string())
            ok = np.asarray(_pc.match_substring_regex(arr, f"^(?:{_NUMBER})$")
                            .to_numpy(zero_copy_only=False), dtype=bool)
            if ok.any():
                out[ok] = _pc.cast(arr.filter(_pa.array(ok)), _pa.float64()).to_numpy(
                    zero_copy_only=False)
            return ok, out
        except (_pa.ArrowException, UnicodeError):  # e.g. a lone surrogate: the Python path
            pass
    ok = np.array([_NUMBER_RE.fullmatch(c) is not None for c in cells], dtype=bool)
    if ok.any():
        out[ok] = [float(c) for c in cells[ok]]
    return ok, out


_NUMBER_RE = re.compile(_NUMBER)


def _text_series(values: Iterable[str | None]) -> pd.Series:
    """A text column (pandas ``str`` dtype) with '' and None as missing."""
    cells = np.array(values if isinstance(values, (list, np.ndarray)) else list(values),
                     dtype=object)
    cells[(cells == "") | pd.isna(cells)] = None
    return pd.Series(cells, dtype="str")


def _plain_ints(s: pd.Series) -> pd.Series:
    """``int64`` when no value is missing, else the nullable ``Int64`` series unchanged."""
    return s.astype("int64") if not s.isna().any() else s


def _frame(columns: dict[str, object], extras: dict[str, pd.Series], n: int) -> pd.DataFrame:
    out = pd.DataFrame({k: (v.reset_index(drop=True) if isinstance(v, pd.Series) else v)
                        for k, v in columns.items()}, index=pd.RangeIndex(n))
    for k, v in extras.items():
        out[k] = v.reset_index(drop=True)
    return out


def _first_rows(keys: pd.Series) -> np.ndarray:
    """For each row, the 1-based row number of the first row with the same key."""
    first: dict[object, int] = {}
    return np.array([first.setdefault(k, i + 1) for i, k in enumerate(keys.tolist())], dtype=int)


def _report_duplicates(ch: _Checker, keys: pd.Series, valid: np.ndarray, column: str,
                       rule: str) -> None:
    """Report rows whose key already occurred in an earlier valid row."""
    k = keys.where(valid, None)
    first = _first_rows(k)
    rows = np.arange(1, len(k) + 1)
    for i in np.flatnonzero(valid & (first != rows)):
        ch.add(column, int(i) + 1, f"{rule} (same as row {ch.rowno(first[i])})",
               ch.raw(column).iloc[i])


# ----------------------------------------------------------------------------------------------
# Per-column helpers shared by tables
# ----------------------------------------------------------------------------------------------

def _vocab_column(ch: _Checker, col: str, family: str) -> pd.Series:
    """Normalised level column with the family's vocabulary enforced ('' where empty)."""
    raw = ch.raw(col)
    vals = [normalise_level(v, family) if v else "" for v in raw]
    allowed = LEVELS[family]
    bad = np.array([bool(v) and v not in allowed for v in vals], dtype=bool)
    ch.flag(bad, col, f"{col} must be one of {_quote_all(allowed)}")
    return pd.Series([v if v in allowed else "" for v in vals], dtype=object)


def _derived(ch: _Checker, col: str, given: pd.Series, derived: list[str | None],
             source: str, source_values: np.ndarray) -> pd.Series:
    """Fill a derived column where empty; report disagreement where both are given."""
    out: list[str | None] = []
    for i, (g, d) in enumerate(zip(given.tolist(), derived)):
        if g and d and g != d:
            ch.add(col, i + 1, f"{col} must agree with {source} ({source} "
                   f"{_fmt(source_values[i])} is '{d}')", ch.raw(col).iloc[i])
        out.append(g or d)
    return _text_series(out)


def _regimen_labels(ch: _Checker, col: str, *, mixtures: bool,
                    totals: np.ndarray | None = None) -> pd.Series:
    """Normalised regimen labels (or mixtures); malformed ones reported."""
    out: list[str] = []
    for i, raw in enumerate(ch.raw(col).tolist()):
        if not raw:
            out.append("")
            continue
        try:
            if mixtures and (":" in raw or ";" in raw):
                parts = parse_regimen_mixture(raw)
                total = sum(c for _, c in parts)
                if totals is not None and np.isfinite(totals[i]) and total != totals[i]:
                    ch.add(col, i + 1, f"regimen mixture counts must add up to n "
                           f"({' + '.join(str(c) for _, c in parts)} = {total}, "
                           f"n = {_fmt(totals[i])})", raw)
                out.append(format_regimen_mixture(parts))
            else:
                out.append(normalise_regimen(raw))
        except ValueError as err:
            ch.add(col, i + 1, str(err), raw)
            out.append(raw)
    return pd.Series(out, dtype=object)


# ----------------------------------------------------------------------------------------------
# subjects
# ----------------------------------------------------------------------------------------------

def validate_subjects(df: pd.DataFrame, file: str = "subjects.csv"
                      ) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate ``subjects`` and return it in canonical form.

    Parameters
    ----------
    df : DataFrame
        The table as read (text cells preferred).
    file : str
        File name used in problem messages.

    Returns
    -------
    (DataFrame, list of Problem)
        Columns :data:`COLUMNS` ``['subjects']`` (derived ``age_group``, ``blast_burden`` and
        ``prior_relapses_group`` filled in; ``prior_hsct``/``refractory`` nullable ``boolean``;
        ``response`` nullable ``Int64``; ``offstudy_h`` (float) and ``offstudy_reason`` (one of
        :data:`OFFSTUDY_REASONS`) only when the input has either column) followed by the extra
        input columns.
    """
    ch = _Checker(file, df, REQUIRED["subjects"])
    ids = ch.text("subject_id", required=True)
    _report_duplicates(ch, ids, (ids != "").to_numpy(), "subject_id", "subject_id must be unique")
    study = ch.text("study", required=True)
    ch.text("regimen", required=True)
    regimen = _regimen_labels(ch, "regimen", mixtures=False)

    age = ch.numbers("age_years")
    ch.check((age < 0) | (age >= 120), "age_years", "age_years must be >= 0 and < 120")
    age[(age < 0) | (age >= 120)] = np.nan
    age_group = _derived(ch, "age_group", _vocab_column(ch, "age_group", "age_group"),
                         [age_group_of(a) for a in age], "age_years", age)

    blasts = ch.numbers("blast_pct")
    ch.check((blasts < 0) | (blasts > 100), "blast_pct", "blast_pct must be between 0 and 100")
    blasts[(blasts < 0) | (blasts > 100)] = np.nan
    burden = _derived(ch, "blast_burden", _vocab_column(ch, "blast_burden", "blast_burden"),
                      [blast_burden_of(b) for b in blasts], "blast_pct", blasts)

    bsa = ch.numbers("bsa_m2")
    ch.check((bsa <= 0) | (bsa >= 4), "bsa_m2", "bsa_m2 must be > 0 and < 4")
    bsa[(bsa <= 0) | (bsa >= 4)] = np.nan

    flags = {c: ch.booleans(c, _TRUE, _FALSE, f"{c} must be 0/1, yes/no or true/false")
             for c in ("prior_hsct", "refractory")}
    relapses = ch.integers("prior_relapses")
    neg = (relapses < 0).fillna(False).to_numpy(dtype=bool)
    ch.check(neg, "prior_relapses", "prior_relapses must be >= 0")
    relapses[neg] = pd.NA
    rel_float = relapses.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    rel_group = _derived(ch, "prior_relapses_group",
                         _vocab_column(ch, "prior_relapses_group", "prior_relapses"),
                         [prior_relapses_group_of(r) for r in rel_float], "prior_relapses",
                         rel_float)
    response = ch.booleans("response", frozenset({"1", "1.0", "true"}),
                           frozenset({"0", "0.0", "false"}),
                           "response must be 0, 1, true, false or empty")
    off_cols = _offstudy(ch)
    surv_cols = _survival(ch, response)
    cols = {
        "subject_id": _text_series(ids), "study": _text_series(study),
        "regimen": _text_series(regimen), "age_years": age, "age_group": age_group,
        "blast_pct": blasts, "blast_burden": burden, "bsa_m2": bsa,
        "prior_hsct": flags["prior_hsct"], "refractory": flags["refractory"],
        "prior_relapses": relapses, "prior_relapses_group": rel_group,
        "region": _text_series(ch.raw("region")), "response": response.astype("Int64"),
        **off_cols, **surv_cols,
    }
    return _frame(cols, ch.extras(COLUMNS["subjects"]), ch.n), ch.problems


def _offstudy(ch: _Checker) -> dict[str, object]:
    """``offstudy_h`` and ``offstudy_reason`` (only when the input has either column)."""
    if not any(ch.has(c) for c in OFFSTUDY_COLUMNS):
        return {}
    hours = ch.numbers("offstudy_h")
    neg = hours < 0
    ch.check(neg, "offstudy_h", "offstudy_h must be >= 0 (hours since the first infusion start)")
    hours[neg] = np.nan
    raw = ch.raw("offstudy_reason")
    reasons = [normalise_offstudy_reason(v) if v else "" for v in raw]
    bad = np.array([bool(r) and r not in OFFSTUDY_REASONS for r in reasons], dtype=bool)
    ch.flag(bad, "offstudy_reason", f"offstudy_reason must be one of {_quote_all(OFFSTUDY_REASONS)}")
    given_h = ~ch.is_missing("offstudy_h")
    given_r = (raw != "").to_numpy(dtype=bool)
    ch.flag(given_h & ~given_r, "offstudy_reason", "offstudy_reason is required when offstudy_h "
            "is given (death, withdrawal, ...)", show="offstudy_h")
    ch.flag(given_r & ~given_h, "offstudy_h", "offstudy_h is required when offstudy_reason is "
            "given (hours since the first infusion start)", show="offstudy_reason")
    return {"offstudy_h": hours,
            "offstudy_reason": _text_series([r if r in OFFSTUDY_REASONS else "" for r in reasons])}


def _survival(ch: _Checker, response: pd.Series) -> dict[str, object]:
    """``os_days``/``os_event``, ``rfs_days``/``rfs_event`` and ``mrd_response`` (only when the
    input has any of them): days >= 0, events 0/1, each time with its event and each event with
    its time, relapse-free survival and the MRD response only for patients in CR (``response``
    1), and RFS not after OS (a relapse or death ends RFS no later than death ends OS);
    ``hsct_days`` >= 0."""
    if not any(ch.has(c) for c in SURVIVAL_COLUMNS):
        return {}
    out: dict[str, object] = {}
    words = frozenset({"1", "1.0", "true"}), frozenset({"0", "0.0", "false"})
    for ep in ("os", "rfs"):
        days, event = f"{ep}_days", f"{ep}_event"
        t = ch.numbers(days)
        neg = t < 0
        ch.check(neg, days, f"{days} must be >= 0 (days from the first infusion start)")
        t[neg] = np.nan
        e = ch.booleans(event, *words, f"{event} must be 1 (event), 0 (censored) or empty")
        given_t, given_e = ~ch.is_missing(days), ~ch.is_missing(event)
        ch.flag(given_t & ~given_e, event, f"{event} is required when {days} is given (1 event, 0 censored)",
                show=days)
        ch.flag(given_e & ~given_t, days, f"{days} is required when {event} is given (days from the "
                "first infusion start)", show=event)
        out[days], out[event] = t, e.astype("Int64")
    mrd = ch.booleans("mrd_response", *words, "mrd_response must be 1 (complete MRD response), 0 or empty")
    out["mrd_response"] = mrd.astype("Int64")
    hsct = ch.numbers("hsct_days")
    ch.check(hsct < 0, "hsct_days", "hsct_days must be >= 0 (days from the first infusion start to an "
             "alloHSCT after it)")
    hsct[hsct < 0] = np.nan
    out["hsct_days"] = hsct
    not_cr = (response == False).fillna(False).to_numpy(dtype=bool)  # noqa: E712 (nullable boolean)
    ch.flag(not_cr & ~ch.is_missing("rfs_days"), "rfs_days", "rfs_days is given for a patient not in CR "
            "(response 0): relapse-free survival is defined for patients in CR")
    ch.flag(not_cr & ~ch.is_missing("mrd_response"), "mrd_response", "mrd_response is given for a patient "
            "not in CR (response 0): the MRD response is assessed in CR")
    late = np.asarray(out["rfs_days"]) > np.asarray(out["os_days"])  # NaN compares False
    ch.flag(late, "rfs_days", "rfs_days must not be after os_days (relapse or death ends relapse-free "
            "survival no later than death ends overall survival)")
    return out


# ----------------------------------------------------------------------------------------------
# dosing
# ----------------------------------------------------------------------------------------------

def _check_segments(ch: _Checker, ids: pd.Series, start: np.ndarray, end: np.ndarray) -> None:
    """Per patient: the first segment starts at 0 and segments do not overlap."""
    ok = np.isfinite(start) & np.isfinite(end) & (end > start) & (ids != "").to_numpy()
    f = pd.DataFrame({"id": ids.to_numpy(), "start": start, "end": end,
                      "row": np.arange(1, ch.n + 1)})[ok]
    f = f.sort_values(["id", "start", "row"], kind="mergesort").reset_index(drop=True)
    if f.empty:
        return
    grp = f.groupby("id", sort=False)
    first = ~f["id"].duplicated().to_numpy()
    raw_start = ch.raw("start_h")
    for r in f.loc[first & (f["start"].to_numpy() != 0), "row"]:
        ch.add("start_h", int(r), "the first infusion segment of each patient "
               "must start at 0 h (times are hours since the first infusion start)", raw_start.iloc[int(r) - 1])
    # the latest end so far within the patient, and the row that set it (the first row reaching it)
    run_end = grp["end"].cummax().to_numpy()
    prev_end = np.where(first, -np.inf, np.roll(run_end, 1))
    sets = f["end"].to_numpy() > prev_end
    setter = pd.Series(np.where(sets, f["row"].to_numpy(), np.nan)).ffill().to_numpy()
    prev_row = np.where(first, 0, np.roll(setter, 1))
    for i in np.flatnonzero(f["start"].to_numpy() < prev_end):
        r = int(f["row"].iat[i])
        ch.add("start_h", r, f"segments of one patient must not overlap (row "
               f"{ch.rowno(int(prev_row[i]))} ends at {_fmt(prev_end[i])} h)", raw_start.iloc[r - 1])


def validate_dosing(df: pd.DataFrame, file: str = "dosing.csv"
                    ) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate ``dosing`` and return it in canonical form.

    ``dose_ug_m2_day`` is filled for rows in ``ug/m2/day``; rows in ``ug/day`` need the patient's
    body surface area and are converted by :func:`check_cross_tables`.

    Returns
    -------
    (DataFrame, list of Problem)
        Columns :data:`COLUMNS` ``['dosing']`` followed by the extra input columns.
    """
    ch = _Checker(file, df, REQUIRED["dosing"])
    ids = ch.text("subject_id", required=True)
    cycle = ch.integers("cycle", required=True)
    low = (cycle < 1).fillna(False).to_numpy(dtype=bool)
    ch.check(low, "cycle", "cycle must be >= 1")
    cycle[low] = pd.NA
    start = ch.numbers("start_h", required=True)
    ch.check(start < 0, "start_h", "start_h must be >= 0 (hours since the first infusion start)")
    end = ch.numbers("end_h", required=True)
    ch.check(end <= start, "end_h", "end_h must be greater than start_h")
    _check_segments(ch, ids, start, end)
    dose = ch.numbers("dose", required=True)
    ch.check(dose < 0, "dose", "dose must be >= 0")
    dose[dose < 0] = np.nan
    units: list[str | None] = []
    for i, raw in enumerate(ch.text("dose_unit", required=True).tolist()):
        try:
            units.append(normalise_dose_unit(raw) if raw else None)
        except UnitError as err:
            ch.add("dose_unit", i + 1, err.rule, raw)
            units.append(None)
    per_m2 = np.array([u == "ug/m2/day" for u in units], dtype=bool)
    cols = {"subject_id": _text_series(ids), "cycle": _plain_ints(cycle), "start_h": start,
            "end_h": end,
            "dose": dose, "dose_unit": _text_series(units),
            "dose_ug_m2_day": np.where(per_m2, dose, np.nan)}
    return _frame(cols, ch.extras(COLUMNS["dosing"]), ch.n), ch.problems


# ----------------------------------------------------------------------------------------------
# observations
# ----------------------------------------------------------------------------------------------

def _analyte_codes(ch: _Checker, col: str = "analyte", *, required: bool = True
                   ) -> list[str | None]:
    """Canonical codes of an analyte column; unknown names (and, if required, empty) reported."""
    raw = ch.text(col, required=required)
    cache = {v: resolve_analyte(v) for v in raw.unique() if v}
    codes = raw.map(cache)
    unknown = (raw != "").to_numpy(dtype=bool) & codes.isna().to_numpy(dtype=bool)
    ch.flag(unknown, col, f"{col} must be a known analyte code or alias "
            "(see docs/data-format.md)")
    return codes.astype(object).where(codes.notna(), None).tolist()


def _convert_rows(ch: _Checker, codes: list[str | None], arrays: dict[str, np.ndarray]
                  ) -> tuple[dict[str, np.ndarray], list[str | None]]:
    """Convert each array of ``arrays`` row-wise from the row's ``unit`` to canonical units."""
    units = ch.text("unit", required=True)
    out = {k: np.full(ch.n, np.nan) for k in arrays}
    code = pd.Series(codes, index=units.index, dtype=object)
    canon = code.map({c: ANALYTES[c].unit for c in code.dropna().unique()}).to_numpy(
        dtype=object)
    both = pd.DataFrame({"u": units, "c": code})
    both = both[(units != "").to_numpy(dtype=bool) & code.notna().to_numpy(dtype=bool)]
    for (u, c), idx in both.groupby(["u", "c"], sort=False).indices.items():
        rows = both.index.to_numpy()[idx]
        try:
            for k, a in arrays.items():
                out[k][rows] = convert(a[rows], u, c)
        except UnitError as err:
            for i in rows:
                ch.add("unit", int(i) + 1, err.rule, u)
            canon[rows] = None
    return out, [None if isinstance(v, float) else v for v in canon]


def _censoring(ch: _Checker, codes: list[str | None], below: list[str],
               limits: dict[str, np.ndarray]) -> list[str]:
    """Fill missing limits of censored rows with assay defaults; return ``limit_source``."""
    code = np.array(codes, dtype=object)
    kind = np.array(below, dtype=object)
    source = np.full(ch.n, "", dtype=object)
    if ch.has("limit_source"):
        given = ch.raw("limit_source").to_numpy(dtype=object)
        kept = np.where(np.isin(given, ["row", "default"]), given, "row")
    else:
        kept = np.full(ch.n, "row", dtype=object)
    raw_below = ch.raw("below")
    for b in ("LOD", "LLOQ"):
        col = b.lower()
        rows = (kind == b) & pd.notna(code)
        has = rows & np.isfinite(limits[col])
        source[has] = kept[has]
        need = rows & ~has
        for c in pd.unique(code[need]):
            at = need & (code == c)
            default = ANALYTES[c].default_limit(b)
            if default is None:
                for i in np.flatnonzero(at):
                    ch.add("below", int(i) + 1, f"below is '{b}', so the row must give {col} "
                           f"({c} has no default assay {b})", raw_below.iloc[i])
            else:
                limits[col][at] = default
                source[at] = "default"
    return source.tolist()


def validate_observations(df: pd.DataFrame, file: str = "observations.csv", *,
                          screening_window_h: float = 504.0
                          ) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate ``observations`` and return it in canonical codes and units.

    ``value``, ``lod`` and ``lloq`` are converted to the analyte's canonical unit and ``unit`` is
    set to it. Where ``below`` is set and the row gives no limit of that kind, the analyte's default
    assay limit is filled in and ``limit_source`` says ``'default'`` (``'row'`` when the row gave
    it, ``''`` for uncensored rows). A value given on a censored row is kept but models ignore it.

    Parameters
    ----------
    df : DataFrame
        The table as read.
    file : str
        File name used in problem messages.
    screening_window_h : float, default 504
        How many hours before the first infusion start an observation may lie.

    Returns
    -------
    (DataFrame, list of Problem)
        Columns :data:`COLUMNS` ``['observations']`` followed by the extra input columns.
    """
    ch = _Checker(file, df, REQUIRED["observations"])
    ids = ch.text("subject_id", required=True)
    codes = _analyte_codes(ch)
    time = ch.numbers("time_h", required=True)
    ch.check(time < -screening_window_h, "time_h",
             f"time_h must not be more than {_fmt(screening_window_h)} h before the first "
             "infusion start (screening window)")
    raw_below = ch.raw("below")
    upper = raw_below.str.upper()
    known = upper.isin(["LOD", "LLOQ"]).to_numpy(dtype=bool)
    given = (raw_below != "").to_numpy(dtype=bool)
    ch.flag(given & ~known, "below", "below must be empty, 'LOD' or 'LLOQ'")
    value = ch.numbers("value")
    if "value" not in ch.missing:
        ch.check(ch.is_missing("value") & ~given, "value",
                 "value is required unless below is set")
    nums = {"value": value, "lod": ch.numbers("lod"), "lloq": ch.numbers("lloq")}
    for k, a in nums.items():
        ch.check(a < 0, k, f"{k} must be >= 0")
        a[a < 0] = np.nan
    conv, canon = _convert_rows(ch, codes, nums)
    ch.check(conv["lod"] > conv["lloq"], "lod", "lod must not exceed lloq")
    below = np.where(known, upper.to_numpy(dtype=object), "").tolist()
    source = _censoring(ch, codes, below, conv)
    cols = {"subject_id": _text_series(ids), "analyte": _text_series(codes), "time_h": time,
            "value": conv["value"], "unit": _text_series(canon), "lod": conv["lod"],
            "lloq": conv["lloq"], "below": pd.Series(below, dtype="str"),
            "limit_source": pd.Series(source, dtype="str")}
    return _frame(cols, ch.extras(COLUMNS["observations"]), ch.n), ch.problems


# ----------------------------------------------------------------------------------------------
# aggregates
# ----------------------------------------------------------------------------------------------

def _levels(ch: _Checker, families: list[str]) -> pd.Series:
    """Normalised ``level`` column, checked against the vocabulary of each row's family."""
    out: list[str] = []
    for i, (raw, fam) in enumerate(zip(ch.text("level", required=True).tolist(), families)):
        level = normalise_level(raw, fam if fam in FAMILIES else None) if raw else ""
        if raw and fam in LEVELS and level not in LEVELS[fam]:
            ch.add("level", i + 1, f"level must be one of {_quote_all(LEVELS[fam])} for family "
                   f"'{fam}'", raw)
        out.append(level)
    return pd.Series(out, dtype=object)


def _event_counts(ch: _Checker, events: str) -> tuple[pd.Series, pd.Series, np.ndarray]:
    """Column ``events`` and ``n`` as whole numbers with 1 <= n and 0 <= events <= n reported;
    returns (events, n, n as floats)."""
    k = ch.integers(events, required=True)
    n = ch.integers("n", required=True)
    k_f = k.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    n_f = n.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    ch.check(n_f < 1, "n", "n must be >= 1")
    ch.check(k_f < 0, events, f"{events} must be >= 0")
    ch.check(k_f > n_f, events, f"{events} must be <= n")
    return k, n, n_f


def validate_aggregates(df: pd.DataFrame, file: str = "aggregates.csv"
                        ) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate ``aggregates`` (published counts) and return it in canonical form.

    Returns
    -------
    (DataFrame, list of Problem)
        Columns :data:`COLUMNS` ``['aggregates']`` (``endpoint`` defaulted to ``'CR'``,
        ``level`` and ``regimen`` normalised, ``responders`` and ``n`` ``int64``) followed by the
        extra input columns.
    """
    ch = _Checker(file, df, REQUIRED["aggregates"])
    study = ch.text("study", required=True)
    endpoint = ch.raw("endpoint").where(ch.raw("endpoint") != "", "CR")
    families = [f.lower() for f in ch.text("family", required=True).tolist()]
    ch.flag(np.array([bool(f) and not _FAMILY_ID.match(f) for f in families], dtype=bool), "family",
            "family must be a lower-case identifier (letters, digits, '_'), e.g. one of "
            f"{_quote_all(FAMILIES)}")
    population = ch.raw("population").where(ch.raw("population") != "", "all")
    subset_of = ch.raw("subset_of")
    pops = set(zip(study.tolist(), population.tolist()))
    for i, (st, sub) in enumerate(zip(study.tolist(), subset_of.tolist())):
        if sub and (st, sub) not in pops:
            ch.add("subset_of", i + 1, f"subset_of must name a population of the same study "
                   f"(populations of {st!r}: {', '.join(sorted(p for s_, p in pops if s_ == st))})", sub)
    levels = _levels(ch, families)
    responders, n, n_f = _event_counts(ch, "responders")
    ch.text("regimen", required=True)
    regimen = _regimen_labels(ch, "regimen", mixtures=True, totals=n_f)
    source = ch.text("source", required=True)
    key = pd.Series(list(zip(study, endpoint, population, families, levels, regimen)))
    valid = ((study != "") & pd.Series([bool(f) for f in families])).to_numpy(dtype=bool)
    _report_duplicates(ch, key, valid, "level", "duplicate row: study, endpoint, population, "
                       "family, level and regimen must be unique")
    cols = {"study": _text_series(study), "endpoint": _text_series(endpoint),
            "population": _text_series(population), "subset_of": _text_series(subset_of),
            "family": _text_series(families), "level": _text_series(levels),
            "regimen": _text_series(regimen),
            "responders": _plain_ints(responders), "n": _plain_ints(n),
            "source": _text_series(source)}
    return _frame(cols, ch.extras(COLUMNS["aggregates"]), ch.n), ch.problems


# ----------------------------------------------------------------------------------------------
# summaries
# ----------------------------------------------------------------------------------------------

def _summary_units(ch: _Checker, codes: list[str | None], value: np.ndarray
                   ) -> tuple[np.ndarray, list[str]]:
    """Convert summary values to canonical units where the unit is recognised and linear."""
    out = value.copy()
    units = ch.raw("unit").tolist()
    for i, (u, c) in enumerate(zip(units, codes)):
        if not u or c is None:
            continue
        try:
            if not is_linear(u):
                continue
            out[i] = convert([value[i]], u, c)[0]
            units[i] = ANALYTES[c].unit
        except UnitError:
            continue  # a unit of another kind ('h', '%', 'fold'): kept as given
    return out, units


def validate_summaries(df: pd.DataFrame, file: str = "summaries.csv"
                       ) -> tuple[pd.DataFrame, list[Problem]]:
    """Validate ``summaries`` (published summary statistics) and return them in canonical form.

    ``analyte`` (the column is required, a cell may be empty for quantities that are not about
    one analyte, such as survival) becomes the canonical code. Where ``unit`` is a concentration/activity/count unit
    convertible to the analyte's canonical unit by a factor, ``value`` is converted and ``unit``
    set to the canonical one; other units (``h``, ``%``, ``fold``, °F) are kept as given.

    Returns
    -------
    (DataFrame, list of Problem)
        Columns :data:`COLUMNS` ``['summaries']`` followed by the extra input columns.
    """
    ch = _Checker(file, df, REQUIRED["summaries"])
    study = ch.text("study", required=True)
    quantity = ch.text("quantity", required=True)
    codes = _analyte_codes(ch, required=False)  # empty for quantities such as survival
    statistic = ch.text("statistic", required=True)
    value = ch.numbers("value", required=True)
    cycle = ch.integers("cycle")
    low = (cycle < 1).fillna(False).to_numpy(dtype=bool)
    ch.check(low, "cycle", "cycle must be >= 1")
    time = ch.numbers("time_h")
    n = ch.integers("n")
    ch.check((n < 1).fillna(False).to_numpy(dtype=bool), "n", "n must be >= 1")
    regimen = _regimen_labels(ch, "regimen", mixtures=True)
    source = ch.text("source", required=True)
    value, units = _summary_units(ch, codes, value)
    cols = {"study": _text_series(study), "quantity": _text_series(quantity),
            "analyte": _text_series(codes), "group": _text_series(ch.raw("group")),
            "regimen": _text_series(regimen), "cycle": cycle, "time_h": time,
            "statistic": _text_series(statistic), "value": value, "unit": _text_series(units),
            "n": n, "source": _text_series(source)}
    return _frame(cols, ch.extras(COLUMNS["summaries"]), ch.n), ch.problems


# ----------------------------------------------------------------------------------------------
# dlt (dose-limiting toxicities by cohort)
# ----------------------------------------------------------------------------------------------

def validate_dlt(df: pd.DataFrame, file: str = "dlt.csv") -> tuple[pd.DataFrame, list[Problem]]:
    """Validate ``dlt`` (dose-limiting toxicities, one row per cohort) and return it in canonical form.

    Each row gives ``n`` patients evaluable for DLT and ``dlt`` of them with a DLT, at ``dose``
    (ug/m2/day) or on ``regimen`` (a schedule such as ``'15-30'``; the dose-toxicity family maps a
    step regimen to one dose, see its ``step_dose`` option). At least one of ``dose`` and
    ``regimen`` is needed; given both, ``dose`` is the dose of the analysis. ``study``, ``cohort``
    (a label), ``stratum`` (e.g. an age group) and ``source`` are optional text.

    Returns
    -------
    (DataFrame, list of Problem)
        Columns :data:`COLUMNS` ``['dlt']`` (``n`` and ``dlt`` ``int64``, ``dose`` float, NaN where
        only a regimen is given) followed by the extra input columns.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayes_blina.data.schema import validate_dlt
    >>> clean, problems = validate_dlt(pd.DataFrame({"dose": ["5", "15", ""], "regimen": ["", "", "15-30"],
    ...                                               "n": ["5", "7", "6"], "dlt": ["0", "1", "1"]}))
    >>> print(clean[["dose", "regimen", "n", "dlt"]].to_string(index=False))
     dose regimen  n  dlt
      5.0     NaN  5    0
     15.0     NaN  7    1
      NaN   15-30  6    1
    >>> problems
    []
    >>> _, problems = validate_dlt(pd.DataFrame({"dose": ["-5"], "n": ["3"], "dlt": ["4"]}))
    >>> [str(p) for p in problems]  # doctest: +NORMALIZE_WHITESPACE
    ["dlt.csv, column 'dose', row 1: dose must be > 0 (ug/m2/day) (found '-5')",
     "dlt.csv, column 'dlt', row 1: dlt must be <= n (found '4')"]
    """
    ch = _Checker(file, df, REQUIRED["dlt"])
    dose = ch.numbers("dose")
    ch.check(np.isfinite(dose) & (dose <= 0), "dose", "dose must be > 0 (ug/m2/day)")
    regimen = _regimen_labels(ch, "regimen", mixtures=False)
    no_dose = ~np.isfinite(dose) & ch.is_missing("dose") & (regimen == "").to_numpy(dtype=bool)
    if ch.n and "dose" not in ch.t.columns and "regimen" not in ch.t.columns:
        ch.add("dose", None, "give the dose (ug/m2/day) in column dose, or the schedule in column regimen")
    else:
        ch.check(no_dose, "dose", "each row needs a dose (ug/m2/day) or a regimen")
    dlt, n, _ = _event_counts(ch, "dlt")
    cols = {"study": _text_series(ch.raw("study")), "cohort": _text_series(ch.raw("cohort")),
            "stratum": _text_series(ch.raw("stratum")), "dose": dose,
            "regimen": _text_series(regimen), "n": _plain_ints(n), "dlt": _plain_ints(dlt),
            "source": _text_series(ch.raw("source"))}
    return _frame(cols, ch.extras(COLUMNS["dlt"]), ch.n), ch.problems


# ----------------------------------------------------------------------------------------------
# Cross-table checks and the whole dataset
# ----------------------------------------------------------------------------------------------

def row_numbers(df: pd.DataFrame) -> np.ndarray:
    """Data-row numbers to report for the rows of a raw table (see ``_Checker.rowno``)."""
    given = df.attrs.get("row_numbers")
    if given is not None and len(given) == len(df):
        return np.asarray(given, dtype=int)
    return np.arange(1, len(df) + 1)


def _membership(df: pd.DataFrame, file: str, known: set[str] | None,
                subjects_file: str, rows: np.ndarray) -> list[Problem]:
    """Every ``subject_id`` of ``df`` must be a subject."""
    if known is None:
        return [Problem(file, "subject_id", None, f"subject_id must be in {subjects_file}, "
                        "but the dataset has no subjects table")]
    sid = df["subject_id"]
    bad = (sid.notna() & ~sid.isin(list(known))).to_numpy(dtype=bool)
    return [Problem(file, "subject_id", int(rows[i]), f"subject_id must be in {subjects_file}",
                    sid.iloc[i]) for i in np.flatnonzero(bad)]


def _dose_per_m2(dosing: pd.DataFrame, subjects: pd.DataFrame | None, file: str,
                 subjects_file: str, rows: np.ndarray) -> tuple[pd.DataFrame, list[Problem]]:
    """Convert ``ug/day`` doses with the patient's body surface area."""
    flat = (dosing["dose_unit"] == "ug/day").fillna(False).to_numpy(dtype=bool)
    if not flat.any():
        return dosing, []
    bsa = {} if subjects is None else dict(zip(subjects["subject_id"], subjects["bsa_m2"]))
    per_m2 = dosing["dose_ug_m2_day"].to_numpy(dtype=float, copy=True)
    problems: list[Problem] = []
    for i in np.flatnonzero(flat):
        sid = dosing["subject_id"].iloc[i]
        b = bsa.get(sid, np.nan)
        if np.isfinite(b):
            per_m2[i] = dosing["dose"].iloc[i] / b
        elif subjects is not None and sid in bsa:
            problems.append(Problem(file, "dose_unit", int(rows[i]), "a dose in ug/day needs the "
                                    f"patient's bsa_m2 in {subjects_file}", "ug/day"))
    out = dosing.copy()
    out["dose_ug_m2_day"] = per_m2
    return out, problems


def _after_offstudy(df: pd.DataFrame, col: str, file: str, subjects: pd.DataFrame,
                    subjects_file: str, rows: np.ndarray) -> list[Problem]:
    """Rows after the patient went off study (observations: ``time_h > offstudy_h``; dosing:
    ``start_h >= offstudy_h``)."""
    off = dict(zip(subjects["subject_id"], pd.to_numeric(subjects["offstudy_h"], errors="coerce")))
    limit = df["subject_id"].map(off).to_numpy(dtype=float)
    t = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = (t > limit) if col == "time_h" else (t >= limit)
    bad &= np.isfinite(limit) & np.isfinite(t)
    what = "after" if col == "time_h" else "at or after"
    return [Problem(file, col, int(rows[i]), f"{col} must not be {what} the patient's offstudy_h "
                    f"in {subjects_file} ({_fmt(limit[i])} h): a patient off study has no later "
                    f"{'samples' if col == 'time_h' else 'infusions'}", _fmt(t[i]))
            for i in np.flatnonzero(bad)]


def check_cross_tables(tables: Mapping[str, pd.DataFrame], files: Mapping[str, str],
                       rows: Mapping[str, np.ndarray] | None = None
                       ) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Checks between tables of validated (canonical) frames.

    Dosing and observation subjects must be in ``subjects``; a patient with ``offstudy_h`` has no
    observation after it and no infusion segment starting at or after it; ``ug/day`` doses are converted to
    ``dose_ug_m2_day`` with the patient's ``bsa_m2``. ``rows`` gives, per table, the row number
    to report for each row (default 1, 2, ...).

    Returns
    -------
    (dict of DataFrame, list of Problem)
        The tables, with ``dosing.dose_ug_m2_day`` completed.
    """
    out = dict(tables)
    problems: list[Problem] = []
    subjects = tables.get("subjects")
    sfile = files.get("subjects", "subjects.csv")
    known = None if subjects is None else set(subjects["subject_id"].dropna())
    rows = dict(rows or {})
    for name in ("dosing", "observations"):
        if name in tables:
            problems += _membership(tables[name], files.get(name, f"{name}.csv"), known, sfile,
                                    rows.get(name, np.arange(1, len(tables[name]) + 1)))
    if subjects is not None and "offstudy_h" in subjects.columns:
        for name, col in (("observations", "time_h"), ("dosing", "start_h")):
            if name in tables:
                problems += _after_offstudy(tables[name], col, files.get(name, f"{name}.csv"),
                                            subjects, sfile,
                                            rows.get(name, np.arange(1, len(tables[name]) + 1)))
    if "dosing" in tables:
        out["dosing"], extra = _dose_per_m2(tables["dosing"], subjects,
                                            files.get("dosing", "dosing.csv"), sfile,
                                            rows.get("dosing",
                                                     np.arange(1, len(tables["dosing"]) + 1)))
        problems += extra
    return out, problems


#: A streamed table stops being validated after this many problems (they are listed, with a note).
MAX_STREAM_PROBLEMS = 1000


def validate_observation_chunks(chunks: Iterable[pd.DataFrame], file: str = "observations.csv",
                                *, screening_window_h: float = 504.0
                                ) -> tuple[pd.DataFrame | None, list[Problem], np.ndarray]:
    """Validate ``observations`` given as successive raw chunks (a large file, read lazily).

    Each chunk is validated by :func:`validate_observations` (its ``attrs['row_numbers']`` give the
    file's row numbers) and the canonical chunks are stacked, so the result and the problems are
    those of the whole table validated at once. Whole-column problems are reported once. After
    :data:`MAX_STREAM_PROBLEMS` problems validation stops with a note naming the last row read.
    When the reader could not go on (``chunks.problem``), that file problem is returned alone and
    no table, as for a small file that cannot be read.

    Returns
    -------
    (DataFrame or None, list of Problem, ndarray)
        The canonical table, the problems, and the row number of each row of the table.
    """
    parts: list[pd.DataFrame] = []
    rows: list[np.ndarray] = []
    problems: list[Problem] = []
    header: pd.DataFrame | None = None
    for raw in chunks:
        if header is None:
            header = raw.iloc[:0]
        if len(raw) == 0:  # a chunk of blank lines only
            continue
        clean, found = validate_observations(raw, file, screening_window_h=screening_window_h)
        problems += [p for p in found if p.row is not None or not parts]
        parts.append(clean)
        rows.append(row_numbers(raw))
        if len(problems) > MAX_STREAM_PROBLEMS:
            problems.append(Problem(file, None, None, f"validation stopped after row "
                                    f"{int(rows[-1][-1])}: more than {MAX_STREAM_PROBLEMS} "
                                    "problems; fix those listed and read the file again"))
            break
    stopped = getattr(chunks, "problem", None)
    if stopped is not None:
        return None, [stopped], np.arange(0)
    if not parts:
        clean, found = validate_observations(header if header is not None else pd.DataFrame(),
                                             file, screening_window_h=screening_window_h)
        return clean, found, np.arange(0)
    out = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    return out, problems, np.concatenate(rows)


_VALIDATORS = {"subjects": validate_subjects, "dosing": validate_dosing,
               "aggregates": validate_aggregates, "summaries": validate_summaries,
               "dlt": validate_dlt}


def _row_order(p: Problem) -> tuple[int, int]:
    return (0 if p.row is None else 1, p.row or 0)


def validate_tables(tables: Mapping[str, pd.DataFrame], files: Mapping[str, str] | None = None,
                    screening_window_h: float = 504.0, *, where: str = "dataset"
                    ) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Validate all tables and the cross-table rules without raising.

    Parameters
    ----------
    tables : mapping of str to DataFrame
        Raw tables by name (a subset of ``subjects``, ``dosing``, ``observations``,
        ``aggregates``, ``summaries``); ``observations`` may also be an iterable of raw chunks
        (see :func:`validate_observation_chunks`).
    files : mapping of str to str, optional
        File name per table, used in messages (default ``NAME.csv``).
    screening_window_h : float, default 504
        Observations may lie this many hours before the first infusion start.
    where : str
        Name of the dataset, used for whole-dataset problems.

    Returns
    -------
    (dict of DataFrame, list of Problem)
    """
    files = dict(files or {})
    problems: list[Problem] = []
    clean: dict[str, pd.DataFrame] = {}
    rows: dict[str, np.ndarray] = {}
    for name in tables:
        if name not in TABLES:
            problems.append(Problem(where, None, None, f"unknown table '{name}'; tables are "
                                    f"{_quote_all(TABLES)}"))
    for name in TABLES:
        if name not in tables or tables[name] is None:
            continue
        file = files.setdefault(name, f"{name}.csv")
        raw = tables[name]
        if name == "observations" and not isinstance(raw, pd.DataFrame):  # streamed chunks
            df, found, rows[name] = validate_observation_chunks(
                raw, file, screening_window_h=screening_window_h)
            if df is None:
                problems += found
                continue
        elif name == "observations":
            df, found = validate_observations(raw, file, screening_window_h=screening_window_h)
        else:
            df, found = _VALIDATORS[name](raw, file)
        clean[name] = df
        if name not in rows:
            rows[name] = row_numbers(raw)
        problems += found
    if not {"subjects", "aggregates", "dlt"} & set(clean):
        problems.append(Problem(where, None, None, "a dataset must hold subjects.csv, "
                                "aggregates.csv or dlt.csv (or the .parquet equivalent)"))
    clean, cross = check_cross_tables(clean, files, rows)
    order = {files[t]: i for i, t in enumerate(TABLES) if t in files}
    problems = sorted(problems + cross,
                      key=lambda p: (order.get(p.file, len(order)), *_row_order(p)))
    return clean, problems


def validate_dataset(tables: dict[str, pd.DataFrame], files: dict[str, str] | None = None,
                     screening_window_h: float = 504.0, *, name: str = "dataset",
                     origin: str = "") -> Dataset:
    """Validate raw tables and return the :class:`Dataset` in canonical form.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Raw tables by name.
    files : dict of str to str, optional
        File name per table, used in messages (default ``NAME.csv``).
    screening_window_h : float, default 504
        Observations may lie this many hours (21 days) before the first infusion start.
    name, origin : str
        Stored on the returned dataset.

    Returns
    -------
    Dataset

    Raises
    ------
    DataValidationError
        Listing every problem of every table, if there is any.
    """
    clean, problems = validate_tables(tables, files, screening_window_h, where=origin or name)
    if problems:
        raise DataValidationError(problems)
    return Dataset(**clean, name=name, origin=origin)


__all__ = ["COLUMNS", "REQUIRED", "OPTIONAL_COLUMNS", "OFFSTUDY_COLUMNS", "SURVIVAL_COLUMNS", "OFFSTUDY_REASONS",
           "FAMILIES", "LEVELS",
           "normalise_level", "normalise_offstudy_reason", "normalise_regimen",
           "parse_regimen_mixture", "format_regimen_mixture", "age_group_of", "blast_burden_of",
           "prior_relapses_group_of", "as_text_frame", "validate_subjects", "validate_dosing",
           "validate_observations", "validate_aggregates", "validate_summaries", "validate_dlt",
           "check_cross_tables", "validate_observation_chunks", "validate_tables", "validate_dataset"]
