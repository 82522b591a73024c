"""Covariate factors (and numeric baseline covariates) shared by the response, subgroup, joint and
survival models.

Each factor has a fixed vocabulary where the domain defines one (age groups, blast burden, yes/no
history), so that a level absent from the training data can still be predicted from its prior
(partial pooling), and a data-driven vocabulary otherwise (regimen, region).
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, model_validator

from bayes_blina.data.schema import LEVELS, parse_regimen_mixture, prior_relapses_group_of

#: Factors the response model knows, with their fixed vocabularies (None: taken from the data).
FACTORS: dict[str, list[str] | None] = {
    "regimen": None,
    **{f: sorted(LEVELS[f]) if f in ("prior_hsct", "refractory") else list(LEVELS[f])
       for f in ("age_group", "blast_burden", "prior_hsct", "refractory", "prior_relapses")},
    "region": None,
}

#: Aggregate families that are not covariate factors (they carry no level effect).
NON_FACTOR_FAMILIES = ("all", "cohort", "phase")


def known_unique(values: list[str], valid, singular: str, plural: str) -> list[str]:
    """``values`` unchanged when each is in ``valid`` and none repeats (option validators).

    Raises
    ------
    ValueError
        ``unknown <singular>(s) [...]; valid <plural> are [...]`` or ``<plural> must not repeat``.
    """
    bad = [v for v in values if v not in valid]
    if bad:
        raise ValueError(f"unknown {singular}(s) {bad}; valid {plural} are {list(valid)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{plural} must not repeat")
    return values


def _yes_no(s: pd.Series) -> pd.Series:
    def conv(v):
        if v is None or pd.isna(v):
            return None
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        t = str(v).strip().lower()
        if t in {"1", "yes", "true", "y"}:
            return "yes"
        if t in {"0", "no", "false", "n"}:
            return "no"
        return t or None
    return s.map(conv)


def _relapse_group(s: pd.Series) -> pd.Series:
    def conv(v):
        if v is None or pd.isna(v):
            return None
        try:
            return prior_relapses_group_of(float(v))
        except ValueError:  # already a group label such as '>=3'
            return str(v).strip() or None
    return s.map(conv)


def subject_numbers(subjects: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """A numeric extra column of the subjects table (kept as text by the reader).

    Returns
    -------
    values : numpy.ndarray
        The column as floats (NaN where empty or not a number).
    empty : numpy.ndarray of bool
        True where the cell is empty (missing or blank), as opposed to text that is not a number.
    """
    text = subjects[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    empty = text.isna().to_numpy() | (text.astype(str).str.strip() == "").to_numpy()
    return values, empty


def subject_levels(subjects: pd.DataFrame, factor: str) -> pd.Series:
    """The level of ``factor`` for every subject as text (``None`` where unknown), dtype object."""
    raw = _subject_levels(subjects, factor)
    return pd.Series([None if v is None or pd.isna(v) else str(v) for v in raw], index=subjects.index, dtype=object)


def _subject_levels(subjects: pd.DataFrame, factor: str) -> pd.Series:
    if factor == "prior_relapses":
        col = "prior_relapses_group" if "prior_relapses_group" in subjects else "prior_relapses"
        if col not in subjects:
            return pd.Series([None] * len(subjects), index=subjects.index, dtype=object)
        return _relapse_group(subjects[col])
    if factor not in subjects:
        return pd.Series([None] * len(subjects), index=subjects.index, dtype=object)
    s = subjects[factor]
    if factor in ("prior_hsct", "refractory"):
        return _yes_no(s)
    return s.map(lambda v: None if v is None or pd.isna(v) or str(v).strip() == "" else str(v).strip())


def parse_regimen_mix(text: str) -> list[tuple[str, float]]:
    """``'5:5;15:7'`` → ``[('5', 5.0), ('15', 7.0)]``; a plain label → ``[(label, 1.0)]``."""
    text = str(text).strip()
    if ":" not in text:
        return [(text, 1.0)]
    return [(label, float(count)) for label, count in parse_regimen_mixture(text)]


def factor_vocabulary(factor: str, observed: list[str]) -> list[str]:
    """Levels of a factor: the fixed vocabulary plus any other observed level, in a stable order."""
    fixed = FACTORS.get(factor)
    obs = sorted({o for o in observed if o is not None}, key=_natural_key)
    if fixed is None:
        return obs
    return list(fixed) + [o for o in obs if o not in fixed]


def _natural_key(label: str):
    parts = []
    for tok in str(label).replace("-", " - ").split():
        try:
            parts.append((0, float(tok), ""))
        except ValueError:
            parts.append((1, 0.0, tok))
    return parts


class NumericCovariate(BaseModel):
    """A numeric baseline covariate of a model, read from a column of ``subjects.csv``.

    Attributes
    ----------
    ref : float
        Reference value (the column's unit): the covariate enters as ``log2(value / ref)``
        (``transform = "log2"``, the coefficient is per doubling) or ``value - ref``
        (``"identity"``, per unit); the intercept is the value at ``ref``.
    transform : {"log2", "identity"}
        Scale on which the covariate enters the linear predictor.
    """

    model_config = ConfigDict(extra="forbid")
    ref: float
    transform: Literal["log2", "identity"] = "log2"

    @model_validator(mode="after")
    def _ref_ok(self) -> "NumericCovariate":
        if not math.isfinite(self.ref) or (self.transform == "log2" and self.ref <= 0):
            raise ValueError(f"ref must be a finite number{' > 0 (transform log2)' if self.transform == 'log2' else ''}"
                             f" (found {self.ref})")
        return self

    def values(self, x: np.ndarray) -> np.ndarray:
        """The covariate on the model's scale."""
        x = np.asarray(x, dtype=float)
        return np.log2(x / self.ref) if self.transform == "log2" else x - self.ref
