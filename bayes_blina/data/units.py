"""Unit spellings and conversion to the canonical unit of each analyte.

Conversion uses a small table of factors, not a general units library: each recognised unit belongs
to one *dimension* (enzyme activity, mass concentration, molar concentration, cell concentration,
temperature) and is a linear map ``base = value * scale + offset`` onto that dimension's base unit.
Between dimensions only analyte-specific factors are allowed (bilirubin: 1 mg/dL = 17.1 µmol/L).

Examples
--------
>>> normalise_unit("µmol/l"), normalise_unit("x10^9 cells/L"), normalise_unit("G/L")
('umol/L', '10^9/L', '10^9/L')
>>> convert([34.2], "µmol/L", "BILI")
array([2.])
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from bayes_blina.data.analytes import analyte_info
from bayes_blina.errors import BayesBlinaError

#: µmol/L of bilirubin in 1 mg/dL.
BILIRUBIN_UMOL_PER_MG_DL = 17.1
#: Days per month (365.25 / 12): survival times are read in days and modelled and reported in
#: months, as the source papers report them.
DAYS_PER_MONTH = 30.4375


class UnitError(BayesBlinaError, ValueError):
    """A unit is not recognised, or cannot be converted to the analyte's canonical unit.

    Attributes
    ----------
    rule : str
        What was expected, phrased as a validation rule.
    found : str
        The unit text as given.
    """

    def __init__(self, rule: str, found: object):
        self.rule = rule
        self.found = "" if found is None else str(found)
        super().__init__(f"{rule} (found {self.found!r})")


@dataclass(frozen=True)
class _Unit:
    dimension: str
    scale: float
    offset: float = 0.0


#: Recognised units in their canonical spelling: dimension and map onto the dimension's base unit
#: (U/L, ng/mL, µmol/L, cells/µL, °C).
UNITS: dict[str, _Unit] = {
    # enzyme activity, base U/L
    "U/L": _Unit("activity", 1.0),
    "IU/L": _Unit("activity", 1.0),
    "mU/mL": _Unit("activity", 1.0),
    "U/mL": _Unit("activity", 1000.0),
    "kU/L": _Unit("activity", 1000.0),
    "ukat/L": _Unit("activity", 60.0),
    "nkat/L": _Unit("activity", 0.06),
    # mass concentration, base ng/mL
    "fg/mL": _Unit("mass", 1e-6),
    "pg/mL": _Unit("mass", 1e-3),
    "ng/L": _Unit("mass", 1e-3),
    "ng/dL": _Unit("mass", 1e-2),
    "ng/mL": _Unit("mass", 1.0),
    "ug/L": _Unit("mass", 1.0),
    "ug/dL": _Unit("mass", 10.0),
    "ug/mL": _Unit("mass", 1e3),
    "mg/L": _Unit("mass", 1e3),
    "mg/dL": _Unit("mass", 1e4),
    "mg/mL": _Unit("mass", 1e6),
    "g/L": _Unit("mass", 1e6),
    # molar concentration, base µmol/L
    "pmol/L": _Unit("molar", 1e-6),
    "nmol/L": _Unit("molar", 1e-3),
    "umol/L": _Unit("molar", 1.0),
    "mmol/L": _Unit("molar", 1e3),
    # cell concentration, base cells/µL
    "cells/L": _Unit("cells", 1e-6),
    "cells/mL": _Unit("cells", 1e-3),
    "cells/uL": _Unit("cells", 1.0),
    "cells/nL": _Unit("cells", 1e3),
    "10^6/L": _Unit("cells", 1e-3),
    "10^3/mL": _Unit("cells", 1.0),
    "10^3/uL": _Unit("cells", 1e3),
    "10^9/L": _Unit("cells", 1e3),
    "10^12/L": _Unit("cells", 1e6),
    "10^6/mL": _Unit("cells", 1e3),
    # temperature, base °C
    "degC": _Unit("temperature", 1.0),
    "degF": _Unit("temperature", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "K": _Unit("temperature", 1.0, -273.15),
}

#: Other spellings (after :func:`_unit_key` cleaning) of the units above.
_ALIASES: dict[str, str] = {
    "u/l": "U/L", "iu/l": "IU/L", "ui/l": "IU/L", "units/l": "U/L", "mu/ml": "mU/mL",
    "miu/ml": "mU/mL",
    "ukat/l": "ukat/L", "nkat/l": "nkat/L",
    "mcg/l": "ug/L", "mcg/ml": "ug/mL",
    "/ul": "cells/uL", "/mm3": "cells/uL", "/cumm": "cells/uL", "/ml": "cells/mL",
    "/l": "cells/L", "/nl": "cells/nL", "10^3/mm3": "10^3/uL", "k/ul": "10^3/uL",
    "10^3/l": "cells/mL",  # 10^3 per litre = 1 per mL
    "c": "degC", "degc": "degC", "celsius": "degC", "degcelsius": "degC",
    "f": "degF", "degf": "degF", "fahrenheit": "degF", "degfahrenheit": "degF",
    "k": "K", "kelvin": "K",
}

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")

#: Cross-dimension factors per analyte: (from, to) -> multiply the base value by this.
_CROSS: dict[str, dict[tuple[str, str], float]] = {
    # 1 mg/dL = 17.1 µmol/L, so 1 µmol/L = 1/17.1 mg/dL = 1e4/17.1 ng/mL
    "BILI": {("molar", "mass"): 1e4 / BILIRUBIN_UMOL_PER_MG_DL,
             ("mass", "molar"): BILIRUBIN_UMOL_PER_MG_DL / 1e4},
}


def _unit_key(text: str) -> str:
    """Cleaned, lower-case spelling of a unit used to look it up."""
    s = str(text).strip()
    if re.fullmatch(r"G\s*/\s*[lL]|(?i:gpt|gi)\s*/\s*[lL]", s):  # giga-cells per litre, not grams
        return "10^9/l"
    # CDISC controlled terminology (UNIT codelist) synonyms of 10^6/L and 10^12/L
    if re.fullmatch(r"(?i:mi)\s*/\s*[lL]", s):
        return "10^6/l"
    if re.fullmatch(r"(?i:ti|tpt)\s*/\s*[lL]|T\s*/\s*[lL]", s):
        return "10^12/l"
    s = re.sub(r"10([⁰¹²³⁴⁵⁶⁷⁸⁹]+)", lambda m: "10^" + m.group(1).translate(_SUPERSCRIPTS),
               s)
    s = (s.replace("µ", "u").replace("μ", "u").translate(_SUPERSCRIPTS)
         .replace("×", "x").replace("·", ".").replace("−", "-").replace("°", "deg")
         .replace("º", "deg"))
    s = re.sub(r"\s+", "", s.lower())
    s = s.replace("mcg", "ug").replace("per", "/").replace("//", "/")
    s = re.sub(r"\(?feu\)?", "", s)  # D-dimer fibrinogen-equivalent units: same numbers
    s = re.sub(r"^(?:x|\*)?(?:10(?:\^|\*\*|\*|e)|1e)\+?(\d+)", r"10^\1", s)
    s = re.sub(r"cells?", "", s)
    return s


_INDEX: dict[str, str] = {**{_unit_key(u): u for u in UNITS}, **_ALIASES}


def normalise_unit(text: str) -> str:
    """Canonical spelling of a unit.

    Accepts the usual variants: ``µ``/``μ``/``mc`` for micro, any letter case, spaces, ``cells``
    or not, exponents written ``10^9``, ``x10E9``, ``10*9``, ``10⁹``, ``G/L``, ``Gpt/L`` and the
    CDISC controlled terminology's ``GI/L`` for 10^9/L (``MI/L``, ``TI/L`` for 10^6/L and
    10^12/L), ``°C``/``C``, ``IU/L``, a trailing ``FEU`` (D-dimer).

    Parameters
    ----------
    text : str
        The unit as written, e.g. ``'µmol/l'``.

    Returns
    -------
    str
        The canonical spelling, e.g. ``'umol/L'`` (a key of :data:`UNITS`).

    Raises
    ------
    UnitError
        If the unit is empty or not recognised.
    """
    if text is None or not str(text).strip():
        raise UnitError("unit must not be empty", text)
    unit = _INDEX.get(_unit_key(text))
    if unit is None:
        raise UnitError("unit must be a recognised unit", text)
    return unit


def canonical_unit(analyte: str) -> str:
    """The canonical unit of an analyte (code or alias)."""
    return analyte_info(analyte).unit


def _factor(src: _Unit, dst: _Unit, code: str) -> float | None:
    """Factor taking a base value of ``src``'s dimension to ``dst``'s (``None``: impossible)."""
    if src.dimension == dst.dimension:
        return 1.0
    return _CROSS.get(code, {}).get((src.dimension, dst.dimension))


def is_convertible(unit: str, analyte: str) -> bool:
    """Whether values in ``unit`` can be converted to the canonical unit of ``analyte``."""
    try:
        convert([1.0], unit, analyte)
    except UnitError:
        return False
    return True


def is_linear(unit: str) -> bool:
    """Whether a unit maps onto its base unit without an offset (all but °F and K)."""
    return UNITS[normalise_unit(unit)].offset == 0.0


def convert(values: ArrayLike, from_unit: str, analyte: str,
            to_unit: str | None = None) -> np.ndarray:
    """Convert values of an analyte from one unit to its canonical unit (or ``to_unit``).

    Parameters
    ----------
    values : array_like
        Numbers in ``from_unit``; NaN stays NaN.
    from_unit : str
        Unit of ``values``, any spelling :func:`normalise_unit` accepts.
    analyte : str
        Analyte code or alias; decides the canonical unit and allowed cross-dimension factors.
    to_unit : str, optional
        Target unit; the analyte's canonical unit by default.

    Returns
    -------
    numpy.ndarray
        Float array of the converted values, same shape as ``values``.

    Raises
    ------
    UnitError
        If a unit is not recognised or cannot be converted for this analyte.
    UnknownAnalyteError
        If the analyte is unknown.

    Examples
    --------
    >>> convert([1.0, 2.0], "ng/mL", "IL6")
    array([1000., 2000.])
    """
    info = analyte_info(analyte)
    target = info.unit if to_unit is None else to_unit
    rule = f"unit must be convertible to {target} for {info.code}"
    try:
        src, dst = UNITS[normalise_unit(from_unit)], UNITS[normalise_unit(target)]
    except UnitError as err:
        raise UnitError(rule, from_unit if err.found == str(from_unit) else target) from None
    k = _factor(src, dst, info.code)
    if k is None:
        raise UnitError(rule, from_unit)
    x = np.asarray(values, dtype=float)
    base = (x * src.scale + src.offset) * k
    return (base - dst.offset) / dst.scale


DoseUnit = Literal["ug/m2/day", "ug/day"]


def normalise_dose_unit(text: str) -> DoseUnit:
    """Canonical spelling of a blinatumomab dose-rate unit.

    Parameters
    ----------
    text : str
        E.g. ``'µg/m²/d'``, ``'mcg/m2/day'``, ``'ug/m^2 per day'``, ``'µg/d'``, ``'ug/24h'``.

    Returns
    -------
    {'ug/m2/day', 'ug/day'}

    Raises
    ------
    UnitError
        If the text is neither a per-m² nor a flat daily dose in µg.
    """
    s = str(text or "").strip()
    s = (s.replace("µ", "u").replace("μ", "u").replace("²", "2").lower())
    s = re.sub(r"\s+", "", s).replace("mcg", "ug").replace("per", "/").replace("^", "")
    s = s.replace("*", "/").replace("x", "/")
    s = re.sub(r"/(?:d|day|24h|24hr|24hours)$", "/day", s)
    if s in ("ug/m2/day", "ug/day"):
        return s  # type: ignore[return-value]
    raise UnitError("dose_unit must be 'ug/m2/day' or 'ug/day'", text)


__all__ = ["UnitError", "UNITS", "BILIRUBIN_UMOL_PER_MG_DL", "DAYS_PER_MONTH", "normalise_unit", "canonical_unit",
           "convert", "is_convertible", "is_linear", "normalise_dose_unit"]
