"""``bayes-blina import`` and ``bayes-blina export``: ADaM and NONMEM data in and out.

Registered in :mod:`bayes_blina.cli` as ``main.add_command(import_group)`` and
``main.add_command(export_group)``. Every command reads and validates everything first and writes
only when there is no problem (atomically), so a failed import leaves nothing behind.
"""
from __future__ import annotations

from pathlib import Path

import click

from bayes_blina.cli.common import EXIT_INPUT, ErrorHandlingGroup
from bayes_blina.errors import BayesBlinaError


__all__ = ["EXIT_INPUT", "import_group", "export_group"]


_IOGroup = ErrorHandlingGroup


def _refuse_existing(out: str, force: bool, *, folder: bool) -> None:
    """Fail before reading anything if the output exists and --force is not given."""
    p = Path(out)
    if not p.exists() or force:
        return
    if folder and p.is_dir() and not any(p.iterdir()):
        return
    raise BayesBlinaError(f"'{p}' already exists; choose another --out or pass --force to "
                          "replace it")


def _report(ds, out: Path) -> None:
    parts = [f"{len(df)} {name}" for name, df in ds.tables().items()]
    click.echo(f"read {', '.join(parts)}", err=True)
    for what, n in (ds.meta.get("skipped") or {}).items():
        click.echo(f"left out: {n} {what}", err=True)
    for what in ds.meta.get("assumed") or []:
        click.echo(f"assumed: {what}", err=True)
    click.echo(f"wrote {out} (sha256 {ds.sha256()[:12]})", err=True)


def _code_table(text: str | None, option: str, *, text_codes: bool = False) -> dict[str, str] | None:
    """``'1=BLINA,2=IL6'`` -> ``{'1': 'BLINA', '2': 'IL6'}`` (the reader turns the codes into table
    keys, :func:`bayes_blina.data.nonmem.read_nonmem`); with ``text_codes`` (DVID) text codes too
    (``'cp=BLINA'``); CMT numbers are whole numbers in NONMEM."""
    if not text:
        return None
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, code = part.partition("=")
        key = key.strip()
        if not sep or not key or not code.strip():
            raise click.BadParameter(f"expected CODE=ANALYTE pairs separated by commas "
                                     f"(e.g. 1=BLINA,2=IL6 or cp=BLINA), found {part!r}",
                                     param_hint=option)
        if not key.lstrip("-").isdigit() and not text_codes:
            raise click.BadParameter(f"codes must be whole numbers (e.g. 1=BLINA,2=IL6), found {part!r}",
                                     param_hint=option)
        out[key] = code.strip()
    return out


@click.group("import", cls=_IOGroup)
def import_group() -> None:
    """Bring CDISC ADaM or NONMEM data into the package format (a dataset folder)."""


@import_group.command("adam")
@click.option("--adsl", required=True, type=click.Path(dir_okay=False),
              help="Subject-level dataset (.xpt or .csv).")
@click.option("--adlb", type=click.Path(dir_okay=False), help="Laboratory / biomarker dataset.")
@click.option("--adrs", type=click.Path(dir_okay=False), help="Response dataset (CR endpoint).")
@click.option("--adex", type=click.Path(dir_okay=False), help="Exposure dataset (infusions).")
@click.option("--adpc", type=click.Path(dir_okay=False),
              help="PK concentration dataset (serum blinatumomab).")
@click.option("--adtte", type=click.Path(dir_okay=False),
              help="Time-to-event dataset (overall and relapse-free survival).")
@click.option("--mapping", type=click.Path(dir_okay=False),
              help="TOML file renaming variables and codes (see docs/import.md).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Dataset folder to write.")
@click.option("--screening-window-days", type=click.FloatRange(0), default=None,
              help="Observations may lie this many days before the first infusion start (default: "
                   "the mapping's [options] screening_window_days, else 21).")
@click.option("--before-window", type=click.Choice(["error", "skip"]), default=None,
              help="Records earlier than the screening window: an error (default) or left out and "
                   "counted (default: the mapping's [options] before_window).")
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def import_adam(adsl, adlb, adrs, adex, adpc, adtte, mapping, out, screening_window_days, before_window,
                force) -> None:
    """Read ADaM datasets, validate them and write a dataset folder.

    Every record read is used or reported as left out, with its reason.
    """
    from bayes_blina.data.adam import read_adam
    from bayes_blina.data.io import write_dataset

    _refuse_existing(out, force, folder=True)
    ds = read_adam(adsl, adlb, adrs, adex, adpc, mapping, adtte=adtte, before_window=before_window,
                   screening_window_h=None if screening_window_days is None else 24.0 * screening_window_days)
    path = write_dataset(ds, out, overwrite=force)
    _report(ds, path)


@import_group.command("nonmem")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Dataset folder to write.")
@click.option("--study", default=None, help="Study label when the file has no STUDY column.")
@click.option("--dose-unit", type=click.Choice(["ug/m2/day", "ug/day"]), default="ug/m2/day",
              show_default=True, help="Dose basis when the file has no DOSU column.")
@click.option("--analyte-by-cmt", default=None,
              help="Analyte of each CMT when there is no ANALYTE or DVID column, e.g. "
                   "'1=BLINA,2=IL6'.")
@click.option("--analyte-by-dvid", default=None,
              help="Analyte of each DVID, whole numbers or text codes, e.g. '1=BLINA,4=IL6' or "
                   "'cp=BLINA' (default: the package's DVID table).")
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def import_nonmem(file, out, study, dose_unit, analyte_by_cmt, analyte_by_dvid, force) -> None:
    """Read a NONMEM-style event file, validate it and write a dataset folder."""
    from bayes_blina.data.io import write_dataset
    from bayes_blina.data.nonmem import read_nonmem

    cmt = _code_table(analyte_by_cmt, "--analyte-by-cmt")
    dvid = _code_table(analyte_by_dvid, "--analyte-by-dvid", text_codes=True)
    _refuse_existing(out, force, folder=True)
    ds = read_nonmem(file, study=study, dose_unit=dose_unit, analyte_by_cmt=cmt,
                     analyte_by_dvid=dvid)
    path = write_dataset(ds, out, overwrite=force)
    _report(ds, path)


@click.group("export", cls=_IOGroup)
def export_group() -> None:
    """Write a dataset as NONMEM or ADaM files."""


@export_group.command("nonmem")
@click.argument("data")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="CSV file to write.")
@click.option("--drop-aggregates", is_flag=True,
              help="Leave out published aggregates/summaries instead of refusing the dataset.")
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
def export_nonmem(data, out, drop_aggregates, force) -> None:
    """Write dataset DATA (a folder or bundled name) as a NONMEM-style CSV file."""
    from bayes_blina.data.io import read_dataset
    from bayes_blina.data.nonmem import write_nonmem

    _refuse_existing(out, force, folder=False)
    ds = read_dataset(data)
    path = write_nonmem(ds, out, overwrite=force, drop_aggregates=drop_aggregates)
    click.echo(f"wrote {path} (from dataset sha256 {ds.sha256()[:12]})", err=True)


@export_group.command("adam")
@click.argument("data")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xpt"]), default="csv",
              show_default=True, help="CSV files or SAS transport v5 (needs pyreadstat).")
@click.option("--first-dose", default="2020-01-01T08:00:00", show_default=True,
              help="Fictitious first-dose datetime the ADaM datetimes are built from.")
@click.option("--drop-aggregates", is_flag=True,
              help="Leave out published aggregates/summaries instead of refusing the dataset.")
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
def export_adam(data, out, fmt, first_dose, drop_aggregates, force) -> None:
    """Write dataset DATA (a folder or bundled name) as ADaM files (ADSL, ADRS, ADEX, ADLB,
    ADPC) plus mapping.toml."""
    from bayes_blina.data.adam import write_adam
    from bayes_blina.data.io import read_dataset

    _refuse_existing(out, force, folder=True)
    ds = read_dataset(data)
    try:
        path = write_adam(ds, out, fmt, first_dose=first_dose, overwrite=force,
                          drop_aggregates=drop_aggregates)
    except ValueError as err:  # an unreadable --first-dose
        if isinstance(err, BayesBlinaError):
            raise
        raise click.BadParameter(f"must be a date and time such as 2020-01-01T08:00 ({err})",
                                 param_hint="--first-dose") from None
    click.echo(f"wrote {path} (from dataset sha256 {ds.sha256()[:12]})", err=True)
