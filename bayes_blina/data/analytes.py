"""Canonical analyte codes, their units, aliases and default assay limits.

Every biomarker in a dataset is stored under one short code (``IL6``, ``CD3``, ``BILI``, ...) in one
canonical unit. :func:`resolve_analyte` maps the many spellings found in papers and lab exports
(``'IL-6'``, ``'Interleukin 6'``, ``'TNF-α'``, ``'CD3+ T cells'``) to that code.

Default assay limits are those of the study assays described in Nägele et al. 2017, *Exp Hematol
Oncol* 6:14 (Methods): cytokines IL-2, IL-4, IL-6, IL-10, TNF-α and IFN-γ LOD 20 pg/mL and LLOQ
125 pg/mL; granzyme B LOD 30 pg/mL and LLOQ 100 pg/mL; serum blinatumomab LLOQ 50 pg/mL. Upper
limits of normal (ULN) are those given by the adult study (AST and ALT 35 U/L, GGT 85 U/L, ALP
133 U/L, bilirubin 1.2 mg/dL, CRP 1.0 mg/dL, D-dimer 500 ng/mL, LDH 230 U/L).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, overload

from bayes_blina.errors import BayesBlinaError

AnalyteKind = Literal["lab", "cell", "cytokine", "pk", "vital"]

#: Reference for the default assay limits.
LIMITS_SOURCE = "Nägele et al. 2017, Exp Hematol Oncol 6:14, Methods"


class UnknownAnalyteError(BayesBlinaError, KeyError):
    """An analyte name is neither a canonical code nor a known alias."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Analyte:
    """One biomarker: its code, canonical unit, aliases and reference limits.

    Attributes
    ----------
    code : str
        Canonical code, e.g. ``'IL6'``.
    name : str
        Human-readable name.
    kind : {'lab', 'cell', 'cytokine', 'pk', 'vital'}
        Broad class of the measurement.
    unit : str
        Canonical unit every value is converted to (spelled as :func:`normalise_unit` spells it).
    aliases : tuple of str
        Other names accepted for the analyte (matched case-, space- and hyphen-insensitively).
    lod : float or None
        Default limit of detection of the study assay, in ``unit``.
    lloq : float or None
        Default lower limit of quantification of the study assay, in ``unit``.
    uln : float or None
        Upper limit of normal, in ``unit``, where the adult study gives one.
    """

    code: str
    name: str
    kind: AnalyteKind
    unit: str
    aliases: tuple[str, ...] = ()
    lod: float | None = None
    lloq: float | None = None
    uln: float | None = None

    def default_limit(self, which: str) -> float | None:
        """The default assay limit named ``'LOD'`` or ``'LLOQ'`` (``None`` if there is none)."""
        return {"LOD": self.lod, "LLOQ": self.lloq}[which.upper()]


def _cytokine(code: str, name: str, aliases: tuple[str, ...]) -> Analyte:
    return Analyte(code, name, "cytokine", "pg/mL", aliases, lod=20.0, lloq=125.0)


def _cells(code: str, name: str, aliases: tuple[str, ...]) -> Analyte:
    return Analyte(code, name, "cell", "cells/uL", aliases)


_TABLE: tuple[Analyte, ...] = (
    Analyte("ALT", "alanine aminotransferase", "lab", "U/L",
            ("SGPT", "ALAT", "GPT", "alanine aminotransferase", "alanine transaminase"), uln=35.0),
    Analyte("AST", "aspartate aminotransferase", "lab", "U/L",
            ("SGOT", "ASAT", "GOT", "aspartate aminotransferase", "aspartate transaminase"),
            uln=35.0),
    Analyte("GGT", "gamma-glutamyl transferase", "lab", "U/L",
            ("gamma-GT", "γ-GT", "GGTP", "gamma-glutamyl transferase",
             "gamma-glutamyl transpeptidase", "gamma-glutamyltransferase"), uln=85.0),
    Analyte("ALP", "alkaline phosphatase", "lab", "U/L",
            ("AP", "ALKP", "alkaline phosphatase"), uln=133.0),
    Analyte("BILI", "total bilirubin", "lab", "mg/dL",
            ("bilirubin", "total bilirubin", "TBIL", "T-BIL", "bilirubin total"), uln=1.2),
    Analyte("CRP", "C-reactive protein", "lab", "mg/dL", ("C-reactive protein",), uln=1.0),
    Analyte("DDIMER", "D-dimer", "lab", "ng/mL", ("D-dimer", "D-dimers", "DD"), uln=500.0),
    Analyte("LDH", "lactate dehydrogenase", "lab", "U/L",
            ("lactate dehydrogenase", "LD", "lactic dehydrogenase"), uln=230.0),
    _cells("CD3", "CD3+ T cells", ("CD3+", "CD3+ T cells", "T cells", "CD3 T cells")),
    _cells("CD4", "CD4+ T cells", ("CD4+", "CD4+ T cells", "CD3+CD4+", "helper T cells")),
    _cells("CD8", "CD8+ T cells", ("CD8+", "CD8+ T cells", "CD3+CD8+", "cytotoxic T cells")),
    _cells("CD4_NAIVE", "naive CD4+ T cells", ("naive CD4", "naive CD4+", "CD4+ naive")),
    _cells("CD4_MEMORY", "memory CD4+ T cells", ("memory CD4", "memory CD4+", "CD4+ memory")),
    _cells("CD8_NAIVE", "naive CD8+ T cells", ("naive CD8", "naive CD8+", "CD8+ naive")),
    _cells("CD8_MEMORY", "memory CD8+ T cells", ("memory CD8", "memory CD8+", "CD8+ memory")),
    _cells("CD19", "CD19+ B cells", ("CD19+", "CD19+ B cells", "B cells", "CD19 B cells")),
    _cells("NEUT", "neutrophils", ("ANC", "neutrophils", "neutrophil count",
                                   "absolute neutrophil count", "neutrophil")),
    _cells("PLT", "platelets", ("platelets", "platelet", "platelet count", "thrombocytes",
                                "thrombocyte count")),
    _cytokine("IL2", "interleukin-2", ("IL-2", "interleukin 2")),
    _cytokine("IL4", "interleukin-4", ("IL-4", "interleukin 4")),
    _cytokine("IL6", "interleukin-6", ("IL-6", "interleukin 6")),
    _cytokine("IL10", "interleukin-10", ("IL-10", "interleukin 10")),
    _cytokine("TNFA", "tumour necrosis factor alpha",
              ("TNF-alpha", "TNF-α", "TNF", "TNFa", "tumor necrosis factor alpha",
               "tumour necrosis factor alpha")),
    _cytokine("IFNG", "interferon gamma",
              ("IFN-gamma", "IFN-γ", "IFNg", "interferon gamma", "interferon-γ")),
    Analyte("GZMB", "granzyme B", "cytokine", "pg/mL", ("granzyme B", "GrB", "GZB"),
            lod=30.0, lloq=100.0),
    Analyte("BLINA", "serum blinatumomab", "pk", "pg/mL",
            ("blinatumomab", "serum blinatumomab", "blinatumomab concentration", "AMG 103",
             "MT103"), lloq=50.0),
    Analyte("TEMP", "body temperature", "vital", "degC",
            ("temperature", "body temperature", "temp")),
)

#: Analytes by canonical code, in table order.
ANALYTES: dict[str, Analyte] = {a.code: a for a in _TABLE}

_GREEK = {"α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "κ": "kappa",
          "ɣ": "gamma", "µ": "mu", "μ": "mu"}

# Words dropped when a name does not match as written ("CD3+ T cells count" -> "CD3").
_NOISE = ("serum", "plasma", "blood", "absolute", "total", "count", "counts", "level", "levels",
          "concentration", "tlymphocytes", "blymphocytes", "lymphocytes", "tcells", "tcell",
          "bcells", "bcell", "cells", "cell")


def _key(text: str) -> str:
    """Comparison key of an analyte name: lower case, Greek spelled out, separators removed."""
    s = str(text).strip().lower()
    for letter, word in _GREEK.items():
        s = s.replace(letter, word)
    s = re.sub(r"interleukin", "il", s)
    return re.sub(r"[\s\-_+.,/()'’]", "", s)


def _build_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for a in _TABLE:
        for name in (a.code, *a.aliases):
            k = _key(name)
            if index.get(k, a.code) != a.code:  # pragma: no cover - guards the table itself
                raise RuntimeError(f"analyte alias {name!r} is ambiguous")
            index[k] = a.code
    return index


_INDEX = _build_index()


def _strip_noise(key: str) -> str:
    """Drop noise words from the ends of a key until none is left."""
    changed = True
    while changed:
        changed = False
        for word in _NOISE:
            if key.endswith(word) and len(key) > len(word):
                key, changed = key[: -len(word)], True
            elif key.startswith(word) and len(key) > len(word):
                key, changed = key[len(word):], True
    return key


@overload
def resolve_analyte(name: str, *, strict: Literal[True]) -> str: ...
@overload
def resolve_analyte(name: str, *, strict: bool = False) -> str | None: ...


def resolve_analyte(name: str, *, strict: bool = False) -> str | None:
    """Canonical code of an analyte name or alias.

    Matching ignores case, spaces, hyphens, underscores and ``+`` signs, spells Greek letters out
    (``'TNF-α'`` = ``'TNF-alpha'``), reads ``'Interleukin'`` as ``'IL'`` and, failing an exact
    match, drops words such as ``'T cells'``, ``'serum'`` or ``'count'``.

    Parameters
    ----------
    name : str
        Code or alias, e.g. ``'IL-10'``, ``'Interleukin 10'``, ``'IFN-γ'``, ``'CD3+ T cells'``.
    strict : bool, default False
        Raise instead of returning ``None`` for an unknown name.

    Returns
    -------
    str or None
        The canonical code, or ``None`` if the name is unknown and ``strict`` is false.

    Raises
    ------
    UnknownAnalyteError
        If the name is unknown and ``strict`` is true.

    Examples
    --------
    >>> [resolve_analyte(n) for n in ("Interleukin 10", "TNF-α", "CD3+ T cells")]
    ['IL10', 'TNFA', 'CD3']
    """
    if name is None:
        code = None
    else:
        k = _key(name)
        code = _INDEX.get(k) or (_INDEX.get(_strip_noise(k)) if k else None)
    if code is None and strict:
        raise UnknownAnalyteError(
            f"unknown analyte {name!r}; known codes: {', '.join(ANALYTES)}")
    return code


def analyte_info(code: str) -> Analyte:
    """The :class:`Analyte` record of a code (an alias is resolved first).

    Raises
    ------
    UnknownAnalyteError
        If ``code`` is neither a canonical code nor a known alias.
    """
    return ANALYTES[resolve_analyte(code, strict=True)]


def analyte_codes() -> tuple[str, ...]:
    """All canonical analyte codes, in table order."""
    return tuple(ANALYTES)


__all__ = ["Analyte", "ANALYTES", "LIMITS_SOURCE", "UnknownAnalyteError", "resolve_analyte",
           "analyte_info", "analyte_codes"]
