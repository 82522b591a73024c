"""``bayes-blina sbc``, ``prior-check`` and ``sensitivity``: calibration, prior predictive checks
and prior/likelihood sensitivity.

Thin: parses the arguments and calls :mod:`bayes_blina.checks.sbc`,
:mod:`bayes_blina.checks.prior` and :mod:`bayes_blina.checks.sensitivity`. The commands are
registered on the main command (``main.add_command(sbc)``, ...), whose error handling turns the
package's errors into a message and exit status 2. ``sbc`` exits with status
:data:`EXIT_SBC_FAILED` when the calibration fails.
"""
from __future__ import annotations

import sys

import click

from bayes_blina.cli.common import write_text

__all__ = ["EXIT_SBC_FAILED", "prior_check", "sbc", "sensitivity"]

#: Exit status of ``sbc`` when the ranks are not uniform (calibration failed).
EXIT_SBC_FAILED = 4


@click.command("sbc")
@click.argument("spec")
@click.option("--sims", type=click.IntRange(2), default=100, show_default=True, help="Number of simulations.")
@click.option("--data", "data", default=None,
              help="Dataset folder or bundled name whose design is used (default: a small built-in design).")
@click.option("--scheduler", default=None, help="Address of a running dask scheduler (e.g. tcp://host:8786).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Worker processes of a local dask cluster (1: sequential, no cluster).")
@click.option("--draws", type=click.IntRange(1), default=250, show_default=True, help="Draws per chain after tuning.")
@click.option("--tune", type=click.IntRange(0), default=300, show_default=True, help="Tuning steps per chain.")
@click.option("--chains", type=click.IntRange(1, 16), default=2, show_default=True, help="Chains per fit.")
@click.option("--rank-draws", type=click.IntRange(1), default=99, show_default=True,
              help="Posterior draws (thinned) each rank is computed against.")
@click.option("--seed", type=int, default=20240501, show_default=True,
              help="Base seed (simulation i uses seed + i).")
@click.option("--target-accept", type=click.FloatRange(0.5, 0.999), default=0.9, show_default=True)
@click.option("--out", "out", type=click.Path(), default=None,
              help="Folder for ranks.csv, sims.csv, uniformity.csv, rank_histograms.png, sbc.md (default: "
                   "print the summary only).")
@click.option("--misspecify", type=click.Choice(["prior_scale", "drop_lower_half"]), default=None, hidden=True,
              help="Tests only: deliberately wrong inference, which SBC must catch.")
def sbc(spec, sims, data, scheduler, workers, draws, tune, chains, rank_draws, seed, target_accept, out,
        misspecify) -> None:
    """Simulation-based calibration of model SPEC: prior draw, simulated data, fit, rank; repeated
    --sims times in parallel with dask; ranks tested for uniformity."""
    from bayes_blina.checks.sbc import SBCSettings, run_sbc
    from bayes_blina.report.calibration import sbc_markdown, write_sbc

    settings = SBCSettings(sims=sims, chains=chains, tune=tune, draws=draws, rank_draws=rank_draws, seed=seed,
                           target_accept=target_accept, misspecify=misspecify)
    res = run_sbc(spec, data, settings=settings, workers=workers, scheduler=scheduler,
                  progress=lambda msg: click.echo(msg, err=True))
    if out is None:
        write_text(sbc_markdown(res) + "\n", out=None)
    else:
        for p in write_sbc(res, out):
            click.echo(f"wrote {p}", err=True)
    click.secho(res.verdict, fg="green" if res.passed else "red", err=True)
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    if not res.passed:
        sys.exit(EXIT_SBC_FAILED)


@click.command("prior-check")
@click.argument("spec")
@click.option("--data", "data", required=True, help="Dataset folder or bundled name (its design is used).")
@click.option("--draws", type=click.IntRange(10), default=500, show_default=True, help="Prior draws.")
@click.option("--seed", type=int, default=20240501, show_default=True)
@click.option("--out", "out", type=click.Path(), default=None, help="Markdown report file (default: stdout).")
@click.option("--figure", "figure", type=click.Path(), default=None,
              help="Figure file (.png, .svg, .pdf): prior predictive bands with the observed data.")
def prior_check(spec, data, draws, seed, out, figure) -> None:
    """Prior predictive check of model SPEC on the design of --data: what the priors imply on the
    data scale, with absurd implications flagged."""
    from bayes_blina.checks.prior import prior_check as run_check
    from bayes_blina.report.prior_check import prior_check_figure, prior_check_markdown

    res = run_check(spec, data, draws=draws, seed=seed)
    write_text(prior_check_markdown(res), out=out)
    if figure:
        import matplotlib.pyplot as plt

        from bayes_blina.report.figures import save_figure

        fig = prior_check_figure(res)
        click.echo(f"wrote {save_figure(fig, figure)}", err=True)
        plt.close(fig)
    if res.flags:
        click.secho(f"{len(res.flags)} flag(s): the priors imply implausible data (see the report)", fg="yellow",
                    err=True)


@click.command("sensitivity")
@click.argument("fitdir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["md", "csv"]), default="md", show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True,
              help="Sensitivity from which a component (prior, likelihood) is said to drive a parameter.")
@click.option("--allow-unconverged", is_flag=True, help="Assess a fit that fails the convergence gate anyway.")
@click.option("--out", "out", type=click.Path(), default=None, help="File to write (default: stdout).")
def sensitivity(fitdir, fmt, threshold, allow_unconverged, out) -> None:
    """Prior and likelihood power-scaling sensitivity of each parameter of the fit in FITDIR,
    flagging prior-data conflict and prior-dominated parameters."""
    from bayes_blina.checks.sensitivity import power_scaling_sensitivity
    from bayes_blina.report.tables import format_table, gate_or_raise
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    gate_or_raise(stored.verdict, allow_unconverged)
    df = power_scaling_sensitivity(stored, threshold=threshold)
    caption = (f"{stored.provenance['model']['name']}: power-scaling sensitivity (prior scaled: "
               f"{', '.join(df.attrs['scaled_priors'])}; threshold {threshold:g})")
    write_text(format_table(df, fmt, digits=3, caption=caption), out=out)
    flagged = df[df["diagnosis"] != ""]
    if len(flagged):
        click.secho(f"{len(flagged)} parameter(s) flagged: "
                    + "; ".join(f"{r.parameter} ({r.diagnosis})" for r in flagged.itertuples()), fg="yellow", err=True)
    else:
        click.secho("no parameter is driven by its prior", fg="green", err=True)
