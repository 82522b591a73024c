"""The ``bayes-blina`` command. Thin: it parses arguments and calls the library."""
from __future__ import annotations

from collections import Counter

import logging
import sys
from pathlib import Path

import click

from bayes_blina.cli.common import EXIT_INPUT, EXIT_UNCONVERGED, ErrorHandlingGroup, gate_banner, write_text
from bayes_blina.errors import BayesBlinaError

__all__ = ["EXIT_INPUT", "EXIT_UNCONVERGED", "main"]

_Group = ErrorHandlingGroup
_write_text = write_text


def _sampler_options(f):
    for opt in reversed([
        click.option("--seed", type=int, default=None, help="Random seed (default: the spec's)."),
        click.option("--chains", type=click.IntRange(1, 64), default=None, help="Number of chains."),
        click.option("--draws", type=click.IntRange(10), default=None, help="Draws per chain after tuning."),
        click.option("--tune", type=click.IntRange(0), default=None, help="Tuning steps per chain."),
        click.option("--backend", type=click.Choice(["auto", "nutpie", "pymc", "numpyro"]), default=None,
                     help="Sampler back end (default: the spec's; auto = nutpie if installed)."),
    ]):
        f = opt(f)
    return f


@click.group(cls=_Group)
@click.version_option(package_name="bayes_blina")
@click.option("-v", "--verbose", is_flag=True, help="Log what is being done; list every problem in bad input.")
@click.option("--problems", type=click.Path(dir_okay=False), default=None,
              help="When input data have problems, write every one of them (file, column, row, rule, "
                   "value) to this CSV file.")
def main(verbose: bool, problems: str | None) -> None:
    """Bayesian biomarker and response models for blinatumomab therapy in ALL."""
    import warnings

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    # third-party notices that say nothing about the user's analysis
    warnings.filterwarnings("ignore", message=".*could not link to a BLAS.*")
    for noisy in ("pymc", "pytensor", "numba"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)


@main.command()
def datasets() -> None:
    """List the bundled datasets (usable wherever --data is accepted)."""
    from bayes_blina.data.registry import list_datasets
    from bayes_blina.report.tables import format_table

    click.echo(format_table(list_datasets(), "md"), nl=False)


@main.command()
@click.argument("fitdir", type=click.Path())
@click.option("--prob", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.9, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["csv", "md", "latex"]), default="md", show_default=True)
@click.option("--out", type=click.Path(), default=None, help="Write to this file instead of stdout.")
@click.option("--allow-unconverged", is_flag=True, help="Check a fit that fails the convergence gate.")
def ppc(fitdir, prob, fmt, out, allow_unconverged) -> None:
    """Posterior predictive check: observed vs predicted responders per subgroup."""
    from bayes_blina.checks import response_ppc
    from bayes_blina.report.tables import format_table
    from bayes_blina.families import family_class
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    if family_class(stored.family_name).outcome != "binary":
        raise BayesBlinaError(f"ppc checks binary outcomes (response fits); {fitdir} is a {stored.family_name!r} "
                              "fit: use `bayes-blina vpc` for trajectories, `bayes-blina figure survival` for "
                              "survival fits")
    banner = gate_banner(stored, allow_unconverged)
    df = response_ppc(stored.idata, factors=stored.options["factors"], prob=prob, seed=stored.spec.sampler.seed)
    _write_text(format_table(df, fmt, banner=banner,
                             caption=f"posterior predictive check, {prob:.0%} predictive intervals"), out=out)


@main.command()
@click.argument("fitdirs", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["csv", "md", "latex"]), default="md", show_default=True)
@click.option("--var", "var_name", default=None, help="log_likelihood variable (default: y).")
@click.option("--allow-unconverged", is_flag=True, help="Compare fits even if some fail the convergence gate.")
def loo(fitdirs, fmt, var_name, allow_unconverged) -> None:
    """PSIS-LOO with Pareto-k diagnostics for one or more fits of the same data, and their comparison."""
    from bayes_blina.checks import loo_table
    from bayes_blina.report.tables import format_table, unconverged_banner
    from bayes_blina.store import load_fit

    fits = {Path(d).name: load_fit(d) for d in fitdirs}
    banners = {name: gate_banner(f, allow_unconverged) for name, f in fits.items()}
    failing = [name for name, b in banners.items() if b]
    banner = unconverged_banner(failing) if failing else None
    per_fit, comparison = loo_table(fits, var_name)
    click.echo(format_table(per_fit, fmt, banner=banner,
                            caption="PSIS-LOO (Pareto k: good <= 0.5 < ok <= 0.7 < bad <= 1 < very bad)"), nl=False)
    if len(comparison):
        click.echo(format_table(comparison, fmt, caption="model comparison"), nl=False)


@main.command()
@click.argument("name", required=False)
def specs(name) -> None:
    """List the model specs found in models/; with NAME (a spec name or TOML path), print everything
    a fit of it uses: the family's resolved options and priors, sampler settings and gate, each
    value the spec does not state marked '# default'."""
    from bayes_blina.spec import available_specs, load_spec

    if name:
        click.echo(load_spec(name).resolved_toml(), nl=False)
        return
    for spec_name, path in available_specs().items():
        s = load_spec(path)
        click.echo(f"{spec_name:<22} family={s.family:<12} {s.description}  ({path})")


@main.command()
@click.argument("spec")
@click.option("--data", "data", required=True, help="Dataset folder or bundled dataset name.")
@click.option("--out", "out", required=True, type=click.Path(), help="Fit folder to write (e.g. fits/NAME).")
@click.option("--force", is_flag=True, help="Replace an existing fit at --out.")
@click.option("--progress/--no-progress", default=True, help="Show the sampler's progress bar.")
@_sampler_options
def fit(spec, data, out, force, progress, seed, chains, draws, tune, backend) -> None:
    """Fit model SPEC (a name in models/ or a TOML path) to --data and store it in --out."""
    from bayes_blina.data import read_dataset
    from bayes_blina.errors import FitExistsError
    from bayes_blina.inference import fit as do_fit
    from bayes_blina._atomic import make_parent, writer_lock
    from bayes_blina.store import save_fit

    if Path(out).exists() and not force:  # fail before sampling, not after
        raise FitExistsError(f"a fit already exists at {out}; choose another --out or pass --force to replace it")
    make_parent(Path(out))
    with writer_lock(out):  # a second `fit --out` to the same folder is refused now, not after sampling
        ds = read_dataset(data)
        click.echo(f"data: {ds!r}", err=True)
        res = do_fit(spec, ds, seed=seed, chains=chains, draws=draws, tune=tune, backend=backend, progress=progress)
        click.echo(f"data sha256 {res.data_sha256[:12]}", err=True)
        _echo_data_use(res.prepared.data_use)
        path = save_fit(res, out, force=force)
    click.echo(f"sampled with {res.backend} in {res.timing['sampling_s']:.1f} s; wrote {path}", err=True)
    color = "green" if res.verdict.passed else "red"
    click.secho(str(res.verdict), fg=color, err=True)


def _echo_data_use(use: dict) -> None:
    if "patients_used" in use:
        events = (f" ({use['events']} events, {use['censored']} censored)" if "events" in use and "censored" in use
                  else "")
        click.echo(f"patients used: {use['patients_used']}{events}", err=True)
        reasons = Counter(str(r.get("reason", "")).split(" (")[0] for r in use.get("patients_left_out") or [])
        for why, k in reasons.items():
            click.echo(f"patients left out: {k} ({why})", err=True)
    for f, why in (use.get("factors_dropped") or {}).items():
        click.echo(f"covariate left out: {f} ({why})", err=True)
        for f, k in (use.get("patients_missing_factor") or {}).items():
            click.echo(f"patients with unknown {f}: {k} (effect held at its mean)", err=True)
    if "rows_used" in use:  # trajectory families
        click.echo(f"observations used: {use['rows_used']} of {use.get('rows_total', '?')} "
                   f"({use.get('subjects_used', '?')} subjects, {use.get('events_used', '?')} dosing events)", err=True)
        for a, c in (use.get("censored") or {}).items():
            click.echo(f"  {a}: {c['rows']} rows, {c['censored']} censored "
                       f"({c.get('below_LOD', 0)} below LOD, {c.get('below_LLOQ', 0)} below LLOQ"
                       + (f", {c['between_LOD_and_LLOQ']} of them between LOD and LLOQ: interval-censored"
                          if c.get("between_LOD_and_LLOQ") else "") + ")", err=True)
        for r in use.get("rows_left_out", []):
            click.echo(f"observations not used: {r['n_rows']} - {r['reason']}", err=True)
        if use.get("biomarker_window"):
            w = use["biomarker_window"]
            click.echo(f"biomarker window: {w['rule']}; {w.get('rows_after', 0)} rows after it left out", err=True)
    for r in use.get("aggregate_rows_used", []):
        click.echo(f"aggregate used: {r['study']} {r['family']}={r['level']} {r['responders']}/{r['n']} "
                   f"regimen {r['regimen']} weight {r['weight']:.3g}", err=True)
    for r in use.get("aggregate_rows", []):
        if not r.get("used", True):
            click.echo(f"aggregate not used: {r.get('study', '')} {r.get('family', '')} - {r['reason']}", err=True)


@main.command()
@click.argument("fitdir", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["csv", "md", "latex"]), default="md", show_default=True)
@click.option("--prob", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95, show_default=True)
@click.option("--interval", type=click.Choice(["eti", "hdi"]), default="eti", show_default=True,
              help="Equal-tailed or highest-density interval.")
@click.option("--allow-unconverged", is_flag=True, help="Summarise even if the fit fails the convergence gate.")
@click.option("--out", type=click.Path(), default=None, help="Write to this file instead of stdout.")
def summary(fitdir, fmt, prob, interval, allow_unconverged, out) -> None:
    """Posterior summary table of a stored fit (refuses an unconverged fit)."""
    from bayes_blina.report.tables import UNCONVERGED_BANNER, format_table, summarize_fit
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    df = summarize_fit(stored, prob=prob, interval=interval, allow_unconverged=allow_unconverged)
    banner = None if df.attrs.get("converged") else UNCONVERGED_BANNER
    if banner:
        click.secho(banner, fg="red", bold=True, err=True)
    _write_text(format_table(df, fmt, banner=banner,
                             caption=f"{stored.provenance['model']['name']}: posterior summary, "
                                     f"{prob:.0%} {'HDI' if interval == 'hdi' else 'equal-tailed'} intervals"), out=out)


@main.command()
@click.argument("fitdir", type=click.Path())
def check(fitdir) -> None:
    """Print the convergence verdict of a stored fit; exit non-zero if it fails the gate."""
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    v = stored.verdict
    click.secho(str(v), fg="green" if v.passed else "red")
    if not v.passed:
        sys.exit(EXIT_UNCONVERGED)


@main.command()
@click.argument("fitdir", type=click.Path())
@click.option("--subjects", required=True, type=click.Path(), help="CSV of patients (subjects.csv format).")
@click.option("--out", required=True, type=click.Path(), help="CSV to write.")
@click.option("--prob", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95, show_default=True)
@click.option("--study", default=None, help="Response fits: predict for this fitted study (default: a new study).")
@click.option("--dosing", type=click.Path(), default=None, help="Trajectory fits: dosing.csv of the patients.")
@click.option("--times", default="0,2,6,24,48,168", show_default=True,
              help="Trajectory fits: hours since the first infusion start, comma-separated.")
@click.option("--individual", is_flag=True, help="Trajectory fits: the fitted patients' own curves.")
@click.option("--data", "data", default=None,
              help="Trajectory fits: draw the predicted curves over this dataset's observations (with --figure).")
@click.option("--figure", type=click.Path(), default=None, help="Trajectory fits: also draw the curves (.png/.svg/.pdf).")
@click.option("--observations", type=click.Path(), default=None,
              help="Joint fits: observations.csv of the patients (biomarker data so far).")
@click.option("--landmark-day", "landmark_day", default=None,
              help="Joint fits: landmark day(s) of cycle 1, comma-separated (observations with "
                   "time_h <= (day - 1) * 24 are used; default 1,2,8,15,29).")
@click.option("--months", default="0,1,2,3,6,9,12,18,24", show_default=True,
              help="Survival fits: months from the first infusion start, comma-separated.")
@click.option("--landmark-month", "landmark_month", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Survival fits: curves conditional on being event-free at this month.")
@click.option("--allow-unconverged", is_flag=True, help="Predict even if the fit fails the convergence gate.")
def predict(fitdir, subjects, out, prob, study, dosing, times, individual, data, figure, observations, landmark_day,
            months, landmark_month, allow_unconverged) -> None:
    """Posterior predictions: CR probability (response fits; joint fits, dynamically from the
    biomarker data up to a landmark day), trajectories (trajectory fits) or survival curves
    (survival fits, optionally conditional on being event-free at a landmark)."""
    from bayes_blina.report.tables import gate_or_raise
    from bayes_blina.families import family_class
    from bayes_blina.store import load_fit

    stored = load_fit(fitdir)
    gate_or_raise(stored.verdict, allow_unconverged)
    outcome = family_class(stored.family_name).outcome
    if outcome != "composite" and (observations is not None or landmark_day is not None):
        raise BayesBlinaError(f"--observations and --landmark-day are for joint-model fits; {fitdir} is a "
                              f"{stored.family_name!r} fit")
    if outcome == "composite":
        from bayes_blina.joint.landmark import LANDMARK_DAYS, predict_landmark, read_landmark_inputs

        try:
            days = ([float(d) for d in landmark_day.split(",") if d.strip()] if landmark_day
                    else list(LANDMARK_DAYS))
        except ValueError:
            raise BayesBlinaError(f"--landmark-day must be numbers separated by commas (found {landmark_day!r})") from None
        new = read_landmark_inputs(subjects, observations, dosing)
        df = predict_landmark(stored, new, landmark_days=days, prob=prob, seed=stored.spec.sampler.seed)
    elif outcome == "survival":
        from bayes_blina.data.io import read_subjects_file

        try:
            grid = [float(t) for t in months.split(",") if t.strip()]
        except ValueError:
            raise BayesBlinaError(f"--months must be numbers separated by commas (found {months!r})") from None
        family = stored.family
        df = family.predict_survival(stored.idata.posterior, read_subjects_file(subjects),
                                     stored.provenance["data"].get("use", {}), grid, landmark=landmark_month,
                                     prob=prob, seed=stored.spec.sampler.seed)
    elif outcome == "binary":
        from bayes_blina.data.io import read_subjects_file
        from bayes_blina.families.response import predict_response

        subj = read_subjects_file(subjects)
        df = predict_response(stored.idata, subj, factors=stored.options["factors"], prob=prob, study=study,
                              seed=stored.spec.sampler.seed)
    else:
        from bayes_blina.predict import predict_trajectories, read_subjects_and_dosing

        if dosing is None:
            raise BayesBlinaError(f"predicting from a {stored.family_name!r} fit needs --dosing (the patients' dosing.csv)")
        try:
            grid = [float(t) for t in times.split(",") if t.strip()]
        except ValueError:
            raise BayesBlinaError(f"--times must be numbers separated by commas (found {times!r})") from None
        df = predict_trajectories(stored, read_subjects_and_dosing(subjects, dosing), times=grid, prob=prob,
                                  individual=individual)
        if figure:
            from bayes_blina.data import read_dataset
            from bayes_blina.report.figures import save_figure, trajectory_figure

            obs = read_dataset(data).observations if data else None
            click.echo(f"wrote {save_figure(trajectory_figure(df, obs), figure)}", err=True)
    _write_text(df.to_csv(index=False, float_format="%.6g", lineterminator="\n"), out=out)


@main.command()
@click.option("--preset", required=True, help="Cohort preset (adult-exploratory, adult-null, adult-follow-up, "
              "adult-null-follow-up, pediatric, pediatric-offstudy, pediatric-survival).")
@click.option("--n", type=click.IntRange(1), default=None, help="Number of patients (default: the preset's).")
@click.option("--seed", type=int, required=True, help="Random seed (results are reproducible).")
@click.option("--out", required=True, type=click.Path(), help="Dataset folder to write (plus truth.json).")
@click.option("--force", is_flag=True, help="Replace an existing folder.")
def simulate(preset, n, seed, out, force) -> None:
    """Simulate a virtual cohort calibrated to the source papers, with its truth."""
    from bayes_blina.simulate import simulate_cohort, write_cohort

    ds, truth = simulate_cohort(preset, n, seed=seed)
    path = write_cohort(ds, truth, out, overwrite=force)
    click.echo(f"{ds!r} written to {path} (truth in {path / 'truth.json'})", err=True)


@main.group()
def table() -> None:
    """Publication tables."""


@table.command("cr-subgroups")
@click.option("--data", "data", required=True, help="Dataset folder or bundled dataset name.")
@click.option("--out", required=True, type=click.Path(), help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["csv", "md", "latex"]), default="csv", show_default=True)
@click.option("--prob", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95, show_default=True)
@click.option("--endpoint", default="CR", show_default=True)
@click.option("--pooled/--no-pooled", default=True, help="Fit the partial-pooling model (MCMC).")
@click.option("--allow-unconverged", is_flag=True, help="Write the table even if the pooled fit fails the gate.")
@click.option("--figure", type=click.Path(), default=None,
              help="Also draw the forest plot (raw beside pooled) to this .png, .svg or .pdf file.")
@_sampler_options
def cr_subgroups(data, out, fmt, prob, endpoint, pooled, allow_unconverged, figure, seed, chains, draws, tune,
                 backend) -> None:
    """CR by subgroup: exact (Clopper-Pearson), unpooled and partially pooled estimates."""
    from bayes_blina.data import read_dataset
    from bayes_blina.subgroup_table import cr_subgroup_table
    from bayes_blina.report.tables import UNCONVERGED_BANNER, format_table

    ds = read_dataset(data)
    df = cr_subgroup_table(ds, prob=prob, endpoint=endpoint, pooled=pooled, seed=seed, chains=chains,
                           draws=draws, tune=tune, backend=backend, allow_unconverged=allow_unconverged)
    banner = None if df.attrs.get("converged", True) else UNCONVERGED_BANNER
    if "verdict" in df.attrs:
        click.secho(df.attrs["verdict"], fg="green" if df.attrs["converged"] else "red", err=True)
    _write_text(format_table(df, fmt, banner=banner, digits=3,
                             caption=f"{endpoint} by subgroup, {prob:.0%} intervals"), out=out)
    if figure:
        from bayes_blina.report.figures import forest_cr_subgroups, save_figure

        fig = forest_cr_subgroups(df, title=(banner or None))
        click.echo(f"wrote {save_figure(fig, figure)}", err=True)


def _register_subcommands() -> None:
    from bayes_blina.cli.import_export import export_group, import_group
    from bayes_blina.cli.plan import plan
    from bayes_blina.cli.checks import prior_check, sbc, sensitivity
    from bayes_blina.cli.report import figure, loo_pit_command, report, vpc
    from bayes_blina.cli.safety import dose_escalation, escalate

    for command in (report, vpc, loo_pit_command, figure, sbc, prior_check, sensitivity, escalate):
        main.add_command(command)
    main.add_command(import_group)
    main.add_command(export_group)
    main.add_command(plan)
    plan.add_command(dose_escalation)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()
