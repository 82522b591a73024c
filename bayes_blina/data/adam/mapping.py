"""The ADaM mapping: variables tried per file and field, codes, options (:func:`load_mapping`).

A mapping file (TOML) overrides the defaults of :data:`DEFAULT_VARIABLES`, the response and
survival codes and the reader's options; every entry is checked and all problems are reported
at once (``docs/import.md``).
"""
from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bayes_blina.data.adam.values import _mg_to_ug
from bayes_blina.data.analytes import resolve_analyte
from bayes_blina.data.schema import normalise_regimen
from bayes_blina.data.units import UnitError, normalise_dose_unit
from bayes_blina.errors import DataValidationError, Problem

#: The ADaM datasets read, in the order they are processed.
ADAM_FILES = ("adsl", "adrs", "adex", "adlb", "adpc", "adtte")


@dataclass(frozen=True)
class AdamProblem(Problem):
    """A :class:`~bayes_blina.errors.Problem` in an ADaM file: says *variable* instead of column.

    ``str()`` gives e.g. ``adlb.xpt, variable 'AVALU', row 17: unit must be convertible to pg/mL
    for IL6 (found 'mmol/L')``; row numbers are 1-based records of the file (after the header line
    in a CSV file).
    """

    column_word = "variable"


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
