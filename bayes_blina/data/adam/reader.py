""":func:`read_adam` and :func:`read_adam_folder`: an ADaM delivery into a validated dataset.

ADSL gives the subjects (and off-study times), ADRS the CR endpoint, ADEX the dosing, ADTTE the
survival times; ADLB/ADPC records go through :mod:`bayes_blina.data.adam.observations`. The
result has passed the package's validator, with problems worded in the ADaM files' terms.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayes_blina.data.adam.mapping import ADAM_FILES, AdamMapping, AdamProblem, load_mapping
from bayes_blina.data.adam.observations import _observations
from bayes_blina.data.adam.source import _Source
from bayes_blina.data.adam.values import (_AGE_UNITS, _MONTHS, _SAS_EPOCH, _TTE_UNITS, _date_only, _DateOnly,
                                          _hours, _mg_to_ug, _number_or_none, parse_datetime, parse_regimen_text)
from bayes_blina.data.dataset import Dataset
from bayes_blina.data.records import (_NUMBER, _cycle_of, _derive_cycles, _float_text, _is_missing, _number,
                                      _round_sig, _Rows, _text, _validate_rows)
from bayes_blina.data.schema import LEVELS, OFFSTUDY_REASONS, normalise_level, normalise_offstudy_reason
from bayes_blina.errors import DataValidationError, Problem


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
