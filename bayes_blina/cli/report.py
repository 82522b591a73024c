"""``bayes-blina report``, ``vpc``, ``loo-pit`` and ``figure``: the HTML report, the censoring-aware
VPC, LOO-PIT and the publication figures of stored fits. Thin: parses and calls the library."""
from __future__ import annotations

from pathlib import Path

import click

from bayes_blina.cli.common import ErrorHandlingGroup, gate_banner, write_text
from bayes_blina.errors import BayesBlinaError

__all__ = ["figure", "loo_pit_command", "report", "vpc"]

_PROB = click.FloatRange(0, 1, min_open=True, max_open=True)


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BayesBlinaError(f"{what} must be numbers separated by commas (found {text!r})") from None


def _bins(bins: int, edges: str | None):
    return _numbers(edges, "--edges") if edges else bins


def _dataset(data: str | None):
    if data is None:
        return None
    from bayes_blina.data import read_dataset

    return read_dataset(data)


def _fit_dataset(stored, data: str | None):
    """The dataset given with --data, else the fit's recorded origin when it still holds the same data."""
    from bayes_blina.report.html import resolve_dataset

    given = _dataset(data)
    ds, note = resolve_dataset(stored, [given] if given is not None else [])
    if given is not None and ds is None:
        raise BayesBlinaError(f"--data {data} is not the data of fit {stored.path} (different sha256)")
    return ds, note


@click.command("report", cls=click.Command)
@click.argument("fitdirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="HTML file to write.")
@click.option("--data", "data", multiple=True,
              help="Dataset folder or bundled name of a fit (repeatable; matched to fits by hash). "
                   "Default: each fit's recorded origin.")
@click.option("--title", default=None, help="Page title.")
@click.option("--prob", type=_PROB, default=0.95, show_default=True, help="Posterior interval probability.")
@click.option("--interval", type=click.Choice(["eti", "hdi"]), default="eti", show_default=True)
@click.option("--check-prob", type=_PROB, default=0.9, show_default=True, help="Predictive interval probability.")
@click.option("--bins", type=click.IntRange(1), default=10, show_default=True, help="VPC quantile time bins.")
@click.option("--edges", default=None, help="VPC time bin edges (hours, comma-separated) instead of --bins.")
@click.option("--draws", "vpc_draws", type=click.IntRange(10), default=500, show_default=True,
              help="Replicated data sets of the VPC.")
@click.option("--figure-format", type=click.Choice(["png", "svg"]), default="png", show_default=True)
@click.option("--allow-unconverged", is_flag=True,
              help="Report fits that failed the convergence gate (marked loudly) instead of refusing.")
def report(fitdirs, out, data, title, prob, interval, check_prob, bins, edges, vpc_draws, figure_format,
           allow_unconverged) -> None:
    """One self-contained HTML page for FITDIR...: data, model, priors, diagnostics, checks, figures."""
    from bayes_blina.report.html import build_report, write_report
    from bayes_blina.store import load_fit

    names = [Path(d).name for d in fitdirs]
    if len(set(names)) != len(names):
        raise BayesBlinaError(f"fit folders must have different names in one report (found {names})")
    fits = {n: load_fit(d) for n, d in zip(names, fitdirs)}
    datasets = [_dataset(d) for d in data]
    page = build_report(fits, datasets=datasets, title=title, prob=prob, interval=interval, check_prob=check_prob,
                        vpc_bins=_bins(bins, edges), vpc_draws=vpc_draws, fig_format=figure_format,
                        allow_unconverged=allow_unconverged)
    for n, f in fits.items():
        v = f.verdict
        click.secho(f"{n}: {'PASSED' if v.passed else 'FAILED'} the convergence gate",
                    fg="green" if v.passed else "red", err=True)
    click.echo(f"wrote {write_report(out, page)}", err=True)


def _vpc_target(stored, part: str | None):
    """The fit the VPC checks: the fit itself, or the ``--part`` of a joint fit."""
    from bayes_blina.families import family_class
    from bayes_blina.joint.parts import describe_parts, fit_parts, part_view

    if family_class(stored.family_name).outcome == "composite":
        if part is None:
            raise BayesBlinaError(f"fit {stored.path} is a joint fit: choose its trajectory part with --part "
                                  f"(parts: {describe_parts(fit_parts(stored))})")
        return part_view(stored, part)
    if part is not None:
        raise BayesBlinaError(f"--part is only for joint fits; fit {stored.path} is a {stored.family_name!r} fit "
                              "(leave out --part)")
    return stored


@click.command("vpc")
@click.argument("fitdir", type=click.Path())
@click.option("--data", "data", default=None,
              help="The fit's dataset (limits of uncensored rows; needed for half_lod fits). "
                   "Default: the fit's recorded origin.")
@click.option("--bins", type=click.IntRange(1), default=10, show_default=True,
              help="Quantile time bins per analyte (tied times never split).")
@click.option("--edges", default=None, help="Time bin edges in hours, comma-separated (instead of --bins).")
@click.option("--percentiles", default="10,50,90", show_default=True, help="Percentiles compared.")
@click.option("--prob", type=_PROB, default=0.9, show_default=True, help="Predictive interval probability.")
@click.option("--draws", type=click.IntRange(10), default=500, show_default=True, help="Replicated data sets.")
@click.option("--seed", type=int, default=None, help="Seed (default: the fit's).")
@click.option("--format", "fmt", type=click.Choice(["csv", "md", "latex"]), default="md", show_default=True)
@click.option("--out", type=click.Path(), default=None, help="Table file (default: stdout).")
@click.option("--figure", type=click.Path(), default=None, help="Also draw the VPC (.png/.svg/.pdf).")
@click.option("--xaxis", type=click.Choice(["time", "bin"]), default="bin", show_default=True,
              help="Figure: bins at their median time, or evenly spaced.")
@click.option("--allow-unconverged", is_flag=True, help="Check a fit that failed the convergence gate.")
@click.option("--part", default=None,
              help="Joint fits (required there): the trajectory part checked, tcell (T cells) or cyt (cytokines; "
                   "also 'cytokines').")
def vpc(fitdir, data, bins, edges, percentiles, prob, draws, seed, fmt, out, figure, xaxis, allow_unconverged,
        part) -> None:
    """Censoring-aware visual predictive check of a trajectory fit, or of one trajectory part of a joint
    fit with --part (table, and figure with --figure)."""
    from bayes_blina.checks.vpc import vpc_from_fit
    from bayes_blina.report.tables import format_table
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    checked = _vpc_target(stored, part)
    banner = gate_banner(stored, allow_unconverged)
    ds, note = _fit_dataset(stored, data)
    if checked is not stored:
        click.echo(f"part: {checked.part} ({checked.family_name} sub-model of the joint fit)", err=True)
    table = vpc_from_fit(checked, ds, bins=_bins(bins, edges), percentiles=_numbers(percentiles, "--percentiles"),
                         prob=prob, n_draws=draws, seed=seed)
    for r in table.attrs["accounting"]:
        click.echo(f"{r['analyte']}: {r['rows']} rows ({r['censored']} censored) in the VPC = the fit's "
                   f"{r['rows_in_fit']} ({r['censored_in_fit']})", err=True)
    for r in table.attrs.get("rows_left_out", []):
        click.echo(f"rows the fit left out (not in the VPC): {r['n_rows']} - {r['reason']}", err=True)
    click.echo(f"dataset: {note}", err=True)
    flagged = int(table["outside"].sum())
    click.echo(f"{flagged} of {len(table)} statistics outside their {prob:.0%} predictive interval", err=True)
    write_text(format_table(table.drop(columns=["observed"]) if fmt != "csv" else table, fmt, banner=banner,
                            caption=f"VPC, {prob:.0%} predictive intervals from {table.attrs['n_replicates']} "
                                    "replicated data sets censored like the data"), out=out)
    if figure:
        from bayes_blina.report.figures import save_figure
        from bayes_blina.report.plots import vpc_figure

        click.echo(f"wrote {save_figure(vpc_figure(table, xaxis=xaxis, title=banner), figure)}", err=True)


@click.command("loo-pit")
@click.argument("fitdir", type=click.Path())
@click.option("--var", "var_name", default=None, help="log_likelihood variable (default: y).")
@click.option("--out", type=click.Path(), default=None, help="CSV of the LOO-PIT values (default: stdout).")
@click.option("--figure", type=click.Path(), default=None, help="Also draw the LOO-PIT ECDF (.png/.svg/.pdf).")
@click.option("--seed", type=int, default=None, help="Seed of the randomised PIT values (default: the fit's).")
@click.option("--allow-unconverged", is_flag=True, help="Check a fit that failed the convergence gate.")
def loo_pit_command(fitdir, var_name, out, figure, seed, allow_unconverged) -> None:
    """LOO-PIT values (censored and discrete observations randomised) and their calibration plot."""
    from bayes_blina.checks.loo import loo_pit
    from bayes_blina.report.figures import loo_pit_figure
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    banner = gate_banner(stored, allow_unconverged)
    pit = loo_pit(stored, var_name=var_name, seed=seed)
    bad = int((pit["pareto_k"] > 0.7).sum())
    click.echo(f"{len(pit)} observations, {pit.attrs['n_randomised']} randomised; Pareto k > 0.7: {bad}", err=True)
    write_text((f"# {banner}\n" if banner else "") + pit.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
               out=out)
    if figure:
        from bayes_blina.report.figures import save_figure

        click.echo(f"wrote {save_figure(loo_pit_figure(pit, title=banner), figure)}", err=True)


@click.group("figure", cls=ErrorHandlingGroup)
def figure() -> None:
    """Publication figures of stored fits (PNG, SVG or PDF by the file's extension)."""


@figure.command("peaks")
@click.argument("fitdir", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Figure file (.png/.svg/.pdf).")
@click.option("--table", type=click.Path(), default=None, help="Also write the peak table (CSV).")
@click.option("--prob", type=_PROB, default=0.9, show_default=True)
@click.option("--window", type=click.FloatRange(0, min_open=True), default=168.0, show_default=True,
              help="Hours after an event searched for the observed peak.")
@click.option("--allow-unconverged", is_flag=True)
def peaks(fitdir, out, table, prob, window, allow_unconverged) -> None:
    """Cytokine peak by starting dose and dose step (adult Fig 6) of a pulse fit, with observed peaks."""
    from bayes_blina.report.figures import save_figure
    from bayes_blina.report.plots import cytokine_peak_figure, cytokine_peak_table, observed_peaks
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    banner = gate_banner(stored, allow_unconverged)
    pk = cytokine_peak_table(stored, prob=prob, seed=stored.spec.sampler.seed)
    obs = observed_peaks(stored, window_h=window)
    click.echo(f"wrote {save_figure(cytokine_peak_figure(pk, obs, title=banner), out)}", err=True)
    if table:
        write_text(pk.to_csv(index=False, float_format="%.6g", lineterminator="\n"), out=table)


@figure.command("responder-bands")
@click.argument("fitdir", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Figure file (.png/.svg/.pdf).")
@click.option("--data", "data", default=None, help="The fit's dataset (default: its recorded origin).")
@click.option("--prob", type=_PROB, default=0.9, show_default=True)
@click.option("--draws", type=click.IntRange(10), default=200, show_default=True)
@click.option("--allow-unconverged", is_flag=True)
def responder_bands(fitdir, out, data, prob, draws, allow_unconverged) -> None:
    """Trajectory bands by responder status over cycles 1-2 with the data (adult Figs 1-5)."""
    import numpy as np
    import pandas as pd

    from bayes_blina.report.figures import save_figure
    from bayes_blina.report.plots import _stored_observations, responder_band_table, responder_bands_figure
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    banner = gate_banner(stored, allow_unconverged)
    ds, note = _fit_dataset(stored, data)
    if ds is None:
        raise BayesBlinaError(f"responder-status bands need the fit's dataset: {note}")
    bands = responder_band_table(stored, ds, prob=prob, n_draws=draws, seed=stored.spec.sampler.seed)
    resp = pd.to_numeric(ds.subjects["response"], errors="coerce")
    groups = dict(zip(ds.subjects["subject_id"].astype(str),
                      np.where(resp == 1, "responders", np.where(resp == 0, "non-responders", "response unknown"))))
    fig = responder_bands_figure(bands, _stored_observations(stored), groups, title=banner)
    click.echo(f"wrote {save_figure(fig, out)}", err=True)


@figure.command("survival")
@click.argument("fitdir", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Figure file (.png/.svg/.pdf).")
@click.option("--by", default=None, help="A covariate of the fit (factor or mrd_response): one curve per level.")
@click.option("--prob", type=_PROB, default=0.9, show_default=True, help="Interval of the predicted survival.")
@click.option("--table", type=click.Path(), default=None, help="Also write the table (CSV).")
@click.option("--allow-unconverged", is_flag=True)
def survival(fitdir, out, by, prob, table, allow_unconverged) -> None:
    """Kaplan-Meier curves of a survival fit's data beside its predicted survival, per group."""
    from bayes_blina.checks.survival_curves import survival_curve_table
    from bayes_blina.report.figures import save_figure
    from bayes_blina.report.plots import survival_figure
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    banner = gate_banner(stored, allow_unconverged)
    t = survival_curve_table(stored, by=by, prob=prob)
    click.echo(f"wrote {save_figure(survival_figure(t, title=banner), out)}", err=True)
    if table:
        write_text(t.to_csv(index=False, float_format="%.6g", lineterminator="\n"), out=table)


@figure.command("odds-ratios")
@click.argument("fitdir", type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="Figure file (.png/.svg/.pdf).")
@click.option("--vars", "var_names", default=None, help="Odds-ratio variables, comma-separated (default: all or_*).")
@click.option("--prob", type=_PROB, default=0.95, show_default=True)
@click.option("--table", type=click.Path(), default=None, help="Also write the table (CSV).")
@click.option("--allow-unconverged", is_flag=True)
def odds_ratios(fitdir, out, var_names, prob, table, allow_unconverged) -> None:
    """Odds-ratio plot of the biomarker links (any fit with or_* variables, e.g. the joint model)."""
    from bayes_blina.report.figures import save_figure
    from bayes_blina.report.plots import odds_ratio_figure, odds_ratio_table
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    banner = gate_banner(stored, allow_unconverged)
    names = [v.strip() for v in var_names.split(",") if v.strip()] if var_names else None
    ort = odds_ratio_table(stored.idata, names, prob=prob)
    click.echo(f"wrote {save_figure(odds_ratio_figure(ort, title=banner), out)}", err=True)
    if table:
        write_text(ort.to_csv(index=False, float_format="%.6g", lineterminator="\n"), out=table)
