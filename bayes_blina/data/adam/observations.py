"""ADLB and ADPC records to the package's observations: analyte codes, times, censoring.

A record's time comes from ``AFRLT`` (unit ``FRLTU``), else ``ADTM`` minus the first dose, else
``ADY`` (+ ``ATPT``); its censoring from ``AVALC`` tokens or the ``BLQFL``/``BLODFL`` flags with
the limits ``ALLOQ``/``ALOD``; records before the screening window, derived records and
records without a result are left out and counted, or refused, as the mapping says.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import datetime

from bayes_blina.data.adam.mapping import ADAM_PARAMCD, AdamMapping
from bayes_blina.data.adam.source import _Source
from bayes_blina.data.adam.values import (_LLOQ_TOKENS, _LOD_TOKENS, _TIME_UNITS, _DateOnly, _hours,
                                          _safe_float, _timepoint_hours, parse_datetime)
from bayes_blina.data.analytes import resolve_analyte
from bayes_blina.data.records import _NUMBER, _float_text, _is_missing, _number, _round_sig, _Rows, _text


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
