"""Unit normalisation and conversion, analyte aliases."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayes_blina.data import analyte_info, resolve_analyte
from bayes_blina.data.analytes import ANALYTES, UnknownAnalyteError
from bayes_blina.data.units import (UNITS, UnitError, convert, is_convertible,
                                    normalise_dose_unit, normalise_unit)

# ------------------------------------------------------------------------------------------------
# Conversions to the canonical unit
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, unit, analyte, expected", [
    (40, "IU/L", "ALT", 40),
    (1, "µkat/L", "AST", 60),
    (0.5, "ukat/l", "GGT", 30),
    (120, "U/L", "ALP", 120),
    (17.1, "µmol/L", "BILI", 1.0),
    (34.2, "umol/l", "BILI", 2.0),
    (1.2, "mg/dL", "BILI", 1.2),
    (10, "mg/L", "CRP", 1.0),
    (2.5, "mg/dl", "CRP", 2.5),
    (0.5, "µg/mL", "DDIMER", 500),
    (0.5, "ug/mL FEU", "DDIMER", 500),
    (1.2, "mg/L FEU", "DDIMER", 1200),
    (750, "ng/mL", "DDIMER", 750),
    (1.5, "10^9/L", "NEUT", 1500),
    (1.5, "G/L", "NEUT", 1500),
    (1.5, "x10E9/L", "CD3", 1500),
    (2, "10^3/µL", "PLT", 2000),
    (150, "10⁹/L", "PLT", 150_000),
    (800, "cells/µL", "CD4", 800),
    (800, "/mm3", "CD8", 800),
    (300, "10^6/L", "CD19", 0.3),
    (1.2, "ng/mL", "IL6", 1200),
    (500, "ng/L", "IL10", 500),
    (40, "pg/ml", "TNFA", 40),
    (0.65, "ng/mL", "BLINA", 650),
    (98.6, "°F", "TEMP", 37.0),
    (38.5, "°C", "TEMP", 38.5),
    (311.15, "K", "TEMP", 38.0),
])
def test_conversion_to_canonical(value, unit, analyte, expected):
    assert convert([value], unit, analyte)[0] == pytest.approx(expected, rel=1e-12)


def test_convert_keeps_shape_and_nan():
    out = convert(np.array([[1.0, np.nan], [2.0, 3.0]]), "ng/mL", "IL6")
    assert out.shape == (2, 2) and np.isnan(out[0, 1])
    assert out[1, 1] == pytest.approx(3000)


def test_convert_to_another_unit():
    assert convert([1.0], "mg/dL", "BILI", to_unit="umol/L")[0] == pytest.approx(17.1)
    assert convert([37.0], "degC", "TEMP", to_unit="degF")[0] == pytest.approx(98.6)


@pytest.mark.parametrize("unit, analyte", [
    ("mmol/L", "IL6"), ("U/L", "CRP"), ("pg/mL", "CD3"), ("umol/L", "CRP"), ("degC", "ALT"),
    ("%", "NEUT"), ("bananas", "IL6"),
])
def test_unconvertible_units_raise_with_the_rule(unit, analyte):
    with pytest.raises(UnitError) as err:
        convert([1.0], unit, analyte)
    canonical = analyte_info(analyte).unit
    assert err.value.rule == f"unit must be convertible to {canonical} for {analyte}"
    assert err.value.found == unit
    assert f"(found {unit!r})" in str(err.value)
    assert not is_convertible(unit, analyte)


@pytest.mark.parametrize("text, expected", [
    ("µmol/l", "umol/L"), ("μmol/L", "umol/L"), ("IU/L", "IU/L"), ("U/l", "U/L"),
    ("mcg/mL", "ug/mL"), ("x10^9 cells/L", "10^9/L"), ("10*9/L", "10^9/L"), ("1e9/L", "10^9/L"),
    ("G/L", "10^9/L"), ("Gpt/L", "10^9/L"), ("g/L", "g/L"), ("10³/µL", "10^3/uL"),
    ("K/uL", "10^3/uL"), ("cells per µL", "cells/uL"), ("/µl", "cells/uL"), ("°C", "degC"),
    ("C", "degC"), ("degF", "degF"), ("µg/mL (FEU)", "ug/mL"), (" pg / mL ", "pg/mL"),
])
def test_normalise_unit(text, expected):
    assert normalise_unit(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "furlongs", "%", None])
def test_normalise_unit_rejects(text):
    with pytest.raises(UnitError):
        normalise_unit(text)


@pytest.mark.parametrize("text, expected", [
    ("ug/m2/day", "ug/m2/day"), ("µg/m²/d", "ug/m2/day"), ("mcg/m^2 per day", "ug/m2/day"),
    ("μg/m2/24h", "ug/m2/day"), ("ug/day", "ug/day"), ("µg/d", "ug/day"), ("mcg/24 h", "ug/day"),
])
def test_dose_units(text, expected):
    assert normalise_dose_unit(text) == expected


@pytest.mark.parametrize("text", ["mg/day", "ug/kg/day", "", "ug"])
def test_dose_units_rejected(text):
    with pytest.raises(UnitError, match="dose_unit must be 'ug/m2/day' or 'ug/day'"):
        normalise_dose_unit(text)


# ------------------------------------------------------------------------------------------------
# Property: to canonical and back is the identity
# ------------------------------------------------------------------------------------------------

PAIRS = sorted((unit, code) for code in ANALYTES for unit in UNITS if is_convertible(unit, code))


def test_every_analyte_has_its_canonical_unit_in_the_table():
    for a in ANALYTES.values():
        assert normalise_unit(a.unit) == a.unit
        assert (a.unit, a.code) in PAIRS


@settings(max_examples=300, deadline=None)
@given(pair=st.sampled_from(PAIRS),
       x=st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_round_trip_is_identity(pair, x):
    unit, code = pair
    canonical = convert([x], unit, code)
    back = convert(canonical, analyte_info(code).unit, code, to_unit=unit)[0]
    assert back == pytest.approx(x, rel=1e-9, abs=1e-9 if UNITS[unit].offset else 0)


@settings(max_examples=100, deadline=None)
@given(pair=st.sampled_from(PAIRS),
       xs=st.lists(st.floats(min_value=0, max_value=1e6), min_size=2, max_size=5))
def test_conversion_is_monotone(pair, xs):
    unit, code = pair
    out = convert(sorted(xs), unit, code)
    assert np.all(np.diff(out) >= 0)


# ------------------------------------------------------------------------------------------------
# Analyte aliases
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, code", [
    ("IL-10", "IL10"), ("Interleukin 10", "IL10"), ("interleukin-6", "IL6"), ("il 2", "IL2"),
    ("TNF-α", "TNFA"), ("TNF-alpha", "TNFA"), ("TNFa", "TNFA"), ("IFN-γ", "IFNG"),
    ("IFN-gamma", "IFNG"), ("interferon gamma", "IFNG"), ("CD3+ T cells", "CD3"),
    ("CD3+", "CD3"), ("cd4", "CD4"), ("CD8+ T-cells", "CD8"), ("naive CD4+ T cells", "CD4_NAIVE"),
    ("CD8 memory", "CD8_MEMORY"), ("cd4_naive", "CD4_NAIVE"), ("CD19+ B cells", "CD19"),
    ("ANC", "NEUT"), ("Neutrophils", "NEUT"), ("thrombocytes", "PLT"), ("SGPT", "ALT"),
    ("ASAT", "AST"), ("gamma-GT", "GGT"), ("γ-GT", "GGT"), ("AP", "ALP"),
    ("Total bilirubin", "BILI"), ("C-reactive protein", "CRP"), ("D-Dimer", "DDIMER"),
    ("LDH", "LDH"), ("granzyme B", "GZMB"), ("serum blinatumomab", "BLINA"),
    ("Body temperature", "TEMP"), ("  il6  ", "IL6"),
])
def test_alias_resolution(name, code):
    assert resolve_analyte(name) == code


@pytest.mark.parametrize("name", ["IL-99", "glucose", "", "CD", None])
def test_unknown_analytes(name):
    assert resolve_analyte(name) is None
    with pytest.raises(UnknownAnalyteError):
        resolve_analyte(name, strict=True)


def test_every_code_and_alias_resolves_to_itself():
    for a in ANALYTES.values():
        assert resolve_analyte(a.code) == a.code
        for alias in a.aliases:
            assert resolve_analyte(alias) == a.code, alias


def test_analyte_info_limits():
    for code in ("IL2", "IL4", "IL6", "IL10", "TNFA", "IFNG"):
        info = analyte_info(code)
        assert (info.lod, info.lloq, info.unit, info.kind) == (20.0, 125.0, "pg/mL", "cytokine")
    assert (analyte_info("GZMB").lod, analyte_info("GZMB").lloq) == (30.0, 100.0)
    assert analyte_info("BLINA").lloq == 50.0 and analyte_info("BLINA").lod is None
    assert analyte_info("blinatumomab").code == "BLINA"
    uln = {c: analyte_info(c).uln for c in ("AST", "ALT", "GGT", "ALP", "BILI", "CRP", "DDIMER",
                                              "LDH")}
    assert uln == {"AST": 35, "ALT": 35, "GGT": 85, "ALP": 133, "BILI": 1.2, "CRP": 1.0,
                   "DDIMER": 500, "LDH": 230}
    with pytest.raises(UnknownAnalyteError, match="unknown analyte 'XYZ'"):
        analyte_info("XYZ")
