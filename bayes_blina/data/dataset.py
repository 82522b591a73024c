"""The in-memory dataset: validated tables in canonical form.

A :class:`Dataset` is what every reader returns (a dataset folder, a bundled name, later ADaM or
NONMEM files) and what every model consumes. Its tables are already validated and converted to the
canonical columns, analyte codes and units described in ``docs/data-format.md``; nothing downstream
re-reads files.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

#: Table names in the order they are hashed and written.
TABLES = ("subjects", "dosing", "observations", "aggregates", "summaries", "dlt")

#: Columns that identify a row of each table; rows are sorted by them before hashing.
SORT_KEYS = {
    "subjects": ["subject_id"],
    "dosing": ["subject_id", "start_h"],
    "observations": ["subject_id", "analyte", "time_h"],
    "aggregates": ["study", "endpoint", "family", "level", "regimen"],
    "summaries": ["study", "quantity", "analyte", "group", "regimen", "cycle", "time_h", "statistic"],
    "dlt": ["study", "stratum", "dose", "regimen", "cohort"],
}


def _canonical_text(df: pd.DataFrame, keys: list[str]) -> str:
    """Deterministic CSV text of a table: sorted columns and rows, floats to 10 significant digits."""
    cols = sorted(df.columns)
    out = df[cols].copy()
    for c in cols:
        s = out[c]
        if pd.api.types.is_bool_dtype(s) or str(s.dtype) == "boolean":
            out[c] = s.map(lambda v: "" if pd.isna(v) else str(int(bool(v))))
        elif pd.api.types.is_numeric_dtype(s):
            out[c] = s.map(lambda v: "" if pd.isna(v) else format(float(v), ".10g"))
        else:
            out[c] = s.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA else str(v))
    sort_by = [k for k in keys if k in out.columns]
    if sort_by:
        out = out.sort_values(sort_by + [c for c in cols if c not in sort_by], kind="mergesort")
    return out.to_csv(index=False, lineterminator="\n")


@dataclass(frozen=True)
class Dataset:
    """Validated tables of one or more studies.

    Attributes
    ----------
    subjects : DataFrame or None
        One row per patient (``subject_id`` unique), covariates and the CR response.
    dosing : DataFrame or None
        One row per infusion segment.
    observations : DataFrame or None
        Long-format biomarker observations in canonical analyte codes and units.
    aggregates : DataFrame or None
        Published counts: ``study, endpoint, family, level, regimen, responders, n, source``.
    summaries : DataFrame or None
        Published summary statistics (medians, means, quantiles) with their source.
    dlt : DataFrame or None
        Dose-limiting toxicities, one row per cohort: ``dose`` or ``regimen``, ``n``, ``dlt``.
    name : str
        Human-readable name (folder name or bundled name).
    origin : str
        Where the data came from (a path, or ``bundled:NAME``).
    """

    subjects: pd.DataFrame | None = None
    dosing: pd.DataFrame | None = None
    observations: pd.DataFrame | None = None
    aggregates: pd.DataFrame | None = None
    summaries: pd.DataFrame | None = None
    dlt: pd.DataFrame | None = None
    name: str = "dataset"
    origin: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables that are present, by name, in canonical order."""
        return {t: getattr(self, t) for t in TABLES if getattr(self, t) is not None}

    def sha256(self) -> str:
        """SHA-256 of the canonical content of all tables.

        Independent of row and column order and of the file format the data were read from, so a
        dataset that makes a round trip through another format keeps its hash.
        """
        h = hashlib.sha256()
        for name, df in self.tables().items():
            h.update(f"## {name}\n".encode())
            h.update(_canonical_text(df, SORT_KEYS[name]).encode())
        return h.hexdigest()

    @property
    def studies(self) -> list[str]:
        """Sorted study labels found in subjects, aggregates, summaries and dlt."""
        found: set[str] = set()
        for t in ("subjects", "aggregates", "summaries", "dlt"):
            df = getattr(self, t)
            if df is not None and "study" in df.columns:
                found.update(df["study"].dropna().astype(str))
        return sorted(found)

    def with_tables(self, **tables: pd.DataFrame | None) -> "Dataset":
        """A copy with some tables replaced."""
        return replace(self, **tables)

    @classmethod
    def concat(cls, datasets: list["Dataset"], name: str | None = None) -> "Dataset":
        """Stack several datasets (for example two studies) into one.

        Raises
        ------
        DataValidationError
            If a subject id occurs in more than one of them.
        """
        from bayes_blina.errors import DataValidationError, Problem

        if len(datasets) == 1:
            return datasets[0]
        parts: dict[str, pd.DataFrame | None] = {}
        for t in TABLES:
            dfs = [getattr(d, t) for d in datasets if getattr(d, t) is not None]
            parts[t] = pd.concat(dfs, ignore_index=True) if dfs else None
        subj = parts["subjects"]
        if subj is not None:
            dup = subj["subject_id"][subj["subject_id"].duplicated()]
            if len(dup):
                raise DataValidationError(
                    [Problem("subjects.csv", "subject_id", None,
                             "subject ids must be unique across the combined datasets",
                             ", ".join(map(str, dup.unique()[:10])))]
                )
        return cls(**parts, name=name or "+".join(d.name for d in datasets),
                   origin="+".join(d.origin for d in datasets))

    def __repr__(self) -> str:  # short and informative in notebooks and logs
        parts = [f"{t}={len(df)} rows" for t, df in self.tables().items()]
        return f"Dataset({self.name!r}: {', '.join(parts) or 'empty'})"


def table_names() -> tuple[str, ...]:
    """Names of the tables a dataset folder may hold (files ``NAME.csv`` or ``NAME.parquet``)."""
    return TABLES


__all__ = ["Dataset", "TABLES", "SORT_KEYS", "table_names"]
