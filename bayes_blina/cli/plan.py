"""``bayes-blina plan``: prior-informed planning of new studies. Thin: parses and calls
:mod:`bayes_blina.plan`.

Registered in :mod:`bayes_blina.cli` as a sub-group; usable on its own (``from bayes_blina.cli.plan
import plan``). Priors are beta-mixture JSON files (:meth:`bayes_blina.plan.BetaMixture.to_json`).
"""
from __future__ import annotations

import json
import logging

import click
import numpy as np

from bayes_blina.cli.common import ErrorHandlingGroup, write_text

_PlanGroup = ErrorHandlingGroup
_write_text = write_text


def _load_prior(path: str):
    from bayes_blina.plan import BetaMixture

    return BetaMixture.load(path)


def _fmt_summary(mix) -> str:
    s = mix.summary()
    return (f"mean {s['mean']:.4f}  sd {s['sd']:.4f}  2.5% {s['q2.5']:.4f}  50% {s['q50']:.4f}  "
            f"97.5% {s['q97.5']:.4f}")


def _fmt_ess(e: dict) -> str:
    return "  ".join(f"{k} {v:.1f}" for k, v in e.items())


def _fmt_components(mix) -> str:
    return "\n".join(f"  w={w:.4f}  Beta({a:.4g}, {b:.4g})" for w, a, b in mix.components())


def _parse_prior_option(value: str) -> tuple[str, ...]:
    parts = [p.strip() for p in value.split(":")]
    return (parts[0], *parts[1:])


def _parse_grid(text: str | None) -> np.ndarray:
    from bayes_blina.plan import PlanError

    if text is None:
        return np.round(np.arange(0.05, 0.951, 0.05), 10)
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            grid = np.round(np.arange(start, stop + step / 2, step), 10)
        else:
            grid = np.array([float(x) for x in text.split(",") if x.strip()])
    except ValueError:
        raise PlanError(f"--grid must be START:STOP:STEP or a comma-separated list of rates (found {text!r})") from None
    if grid.size == 0 or np.any((grid < 0) | (grid > 1)):
        raise PlanError(f"--grid rates must lie in [0, 1] (found {text!r})")
    return grid


@click.group(cls=_PlanGroup)
def plan() -> None:
    """Prior-informed planning of new studies (MAP priors, ESS, operating characteristics)."""
    for noisy in ("pymc", "pytensor", "numba"):
        if logging.getLogger(noisy).level == logging.NOTSET:
            logging.getLogger(noisy).setLevel(logging.ERROR)


@plan.command("map-prior")
@click.option("--historical", required=True, type=click.Path(), help="CSV of historical studies: study,n,r.")
@click.option("--tau-prior", default="halfnormal:1", show_default=True,
              help="Between-study sd prior: halfnormal:SCALE, halfcauchy:SCALE, exponential:MEAN, halfstudentt:NU:SCALE.")
@click.option("--mu-prior", default="normal:0:2", show_default=True, help="Logit-scale mean prior normal:MEAN:SD.")
@click.option("--seed", type=int, default=20161003, show_default=True)
@click.option("--chains", type=click.IntRange(2, 64), default=4, show_default=True)
@click.option("--draws", type=click.IntRange(100), default=1000, show_default=True)
@click.option("--tune", type=click.IntRange(100), default=1000, show_default=True)
@click.option("--k-max", type=click.IntRange(1, 8), default=4, show_default=True,
              help="Most mixture components tried for the approximation.")
@click.option("--allow-unconverged", is_flag=True, help="Write the prior even if the fit fails the convergence gate.")
@click.option("--out", type=click.Path(), default=None, help="Write the mixture prior as JSON.")
def map_prior_cmd(historical, tau_prior, mu_prior, seed, chains, draws, tune, k_max, allow_unconverged, out) -> None:
    """Meta-analytic-predictive prior of a new study's rate from --historical studies."""
    import warnings

    from bayes_blina.errors import BayesBlinaWarning
    from bayes_blina.plan import map_prior, read_historical

    hist = read_historical(historical)
    click.echo(f"historical studies: {len(hist)}, patients {int(hist['n'].sum())}, responders {int(hist['r'].sum())}",
               err=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BayesBlinaWarning)
        res = map_prior(hist, _parse_prior_option(tau_prior), _parse_prior_option(mu_prior), seed=seed,
                        chains=chains, draws=draws, tune=tune, k_max=k_max, allow_unconverged=allow_unconverged)
    for w in caught:
        click.secho(f"warning: {w.message}", fg="red", err=True)
    click.secho(str(res.verdict), fg="green" if res.converged else "red", err=True)
    t = res.tau_summary()
    click.echo(f"tau: mean {t['mean']:.4f}  sd {t['sd']:.4f}  2.5% {t['q2.5']:.4f}  50% {t['q50']:.4f}  "
               f"97.5% {t['q97.5']:.4f}")
    s = res.sample_summary()
    click.echo(f"MAP prior (samples): mean {s['mean']:.4f}  sd {s['sd']:.4f}  2.5% {s['q2.5']:.4f}  "
               f"50% {s['q50']:.4f}  97.5% {s['q97.5']:.4f}")
    click.echo(f"MAP prior (mixture): {_fmt_summary(res.mixture)}")
    click.echo(f"mixture ({res.fit.k} components, chosen by {res.fit.criterion}):\n{_fmt_components(res.mixture)}")
    click.echo(f"approximation: max |dCDF| {res.fit.error['ks']:.4f}, d_mean {res.fit.error['d_mean']:+.4f}, "
               f"d_sd {res.fit.error['d_sd']:+.4f}")
    e = res.ess()
    click.echo(f"ESS: {_fmt_ess(e)}")
    if out:
        meta = {"created_by": "bayes-blina plan map-prior", "historical": hist.to_dict(orient="records"),
                "tau_prior": tau_prior, "mu_prior": mu_prior, "seed": seed, "converged": res.converged,
                "ess": e, "tau": t}
        res.mixture.save(out, **json.loads(json.dumps(meta, default=float)))
        click.echo(f"wrote {out}", err=True)


@plan.command()
@click.argument("prior", type=click.Path())
@click.option("--weight", required=True, type=float, help="Weight of the vague component, in (0, 1).")
@click.option("--mean", "mean", default=0.5, show_default=True, type=float,
              help="Mean of the vague component (set it to the null rate).")
@click.option("--n", "n", default=1.0, show_default=True, type=float,
              help="Observations the vague component is worth (RBesT convention: Beta with a+b = n+1).")
@click.option("--out", required=True, type=click.Path(), help="JSON file to write.")
def robustify(prior, weight, mean, n, out) -> None:
    """Add a vague component to PRIOR (a mixture JSON file)."""
    from bayes_blina.plan import ess_all

    mix = _load_prior(prior).robustify(weight, mean=mean, n=n)
    mix.save(out, created_by="bayes-blina plan robustify", source=str(prior), weight=weight, mean=mean, n=n)
    click.echo(f"robust prior: {_fmt_summary(mix)}")
    click.echo(_fmt_components(mix))
    click.echo(f"ESS: {_fmt_ess(ess_all(mix))}")
    click.echo(f"wrote {out}", err=True)


@plan.command("ess")
@click.argument("prior", type=click.Path())
@click.option("--method", type=click.Choice(["all", "elir", "moment", "morita"]), default="all", show_default=True)
def ess_cmd(prior, method) -> None:
    """Effective sample size of PRIOR."""
    from bayes_blina.plan import ess, ess_all

    mix = _load_prior(prior)
    e = ess_all(mix) if method == "all" else {method: ess(mix, method)}
    for k, v in e.items():
        click.echo(f"{k}\t{v:.2f}")


@plan.command()
@click.argument("prior", type=click.Path())
@click.option("--n", "n", required=True, type=click.IntRange(1), help="Patients in the new study.")
@click.option("--observed", type=click.IntRange(0), default=None, help="Observed responders: give its tail probabilities.")
def predictive(prior, n, observed) -> None:
    """Prior predictive distribution of the responders among --n new patients."""
    from bayes_blina.plan import PlanError

    pred = _load_prior(prior).predictive(n)
    q = pred.quantiles((0.025, 0.5, 0.975))
    click.echo(f"responders in {n}: mean {pred.mean:.2f}  sd {pred.sd:.2f}  2.5% {q[0]}  50% {q[1]}  97.5% {q[2]}")
    if observed is not None:
        if observed > n:
            raise PlanError(f"--observed {observed} exceeds --n {n}")
        click.echo(f"P(Y >= {observed}) = {float(pred.tail_prob(observed)):.4f}")
        click.echo(f"P(Y <= {observed}) = {float(pred.tail_prob(observed, upper=False)):.4f}")


def _rule_options(f):
    for opt in reversed([
        click.option("--n", "n", required=True, type=click.IntRange(1), help="Patients in the new study."),
        click.option("--threshold", required=True, type=click.FloatRange(0, 1), help="Rate threshold t."),
        click.option("--prob", required=True, type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Success if P(theta > t | data) > prob."),
        click.option("--lower-tail", is_flag=True, help="Success if P(theta <= t | data) > prob instead."),
    ]):
        f = opt(f)
    return f


@plan.command()
@click.argument("prior", type=click.Path())
@_rule_options
@click.option("--grid", default=None, help="True rates: START:STOP:STEP or a comma list (default 0.05:0.95:0.05).")
@click.option("--out", type=click.Path(), default=None, help="Write the table as CSV.")
def oc(prior, n, threshold, prob, lower_tail, grid, out) -> None:
    """Operating characteristics of a one-arm design analysed with PRIOR."""
    from bayes_blina.plan import decision_1s, oc_1s
    from bayes_blina.report.tables import format_table

    rule = decision_1s(prob, threshold, lower_tail)
    f = oc_1s(_load_prior(prior), n, rule)
    click.echo(f"rule: {rule}; n = {n}", err=True)
    if f.side == "upper":
        click.echo(f"success iff responders >= {f.critical_value} of {n}", err=True)
    elif f.side == "lower":
        click.echo(f"success iff responders <= {f.critical_value} of {n}", err=True)
    table = f.table(_parse_grid(grid))
    if out:
        _write_text(table.to_csv(index=False, float_format="%.6g", lineterminator="\n"), out=out)
    else:
        click.echo(format_table(table, "md", digits=4), nl=False)


@plan.command()
@click.argument("prior", type=click.Path())
@_rule_options
@click.option("--design-prior", required=True, type=click.Path(), help="Mixture JSON of the planner's belief about the rate.")
def pos(prior, n, threshold, prob, lower_tail, design_prior) -> None:
    """Probability of success (assurance) of a one-arm design analysed with PRIOR."""
    from bayes_blina.plan import decision_1s, pos_1s

    rule = decision_1s(prob, threshold, lower_tail)
    p = pos_1s(_load_prior(prior), n, rule, _load_prior(design_prior))
    click.echo(f"rule: {rule}; n = {n}", err=True)
    click.echo(f"probability of success: {p:.4f}")


@plan.command()
@click.option("--p0", required=True, type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Uninteresting rate.")
@click.option("--p1", required=True, type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Rate of interest.")
@click.option("--alpha", default=0.05, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--beta", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True))
@click.option("--kind", type=click.Choice(["optimal", "minimax"]), default="optimal", show_default=True)
@click.option("--n-max", type=click.IntRange(2, 300), default=80, show_default=True)
def simon(p0, p1, alpha, beta, kind, n_max) -> None:
    """Simon's two-stage design (exact enumeration)."""
    from bayes_blina.plan import simon_design

    d = simon_design(p0, p1, alpha, beta, kind=kind, n_max=n_max)
    click.echo(f"{kind} design: stage 1 stop if <= {d.r1} of {d.n1} respond; "
               f"promising if > {d.r} of {d.n} respond")
    click.echo(f"r1/n1 = {d.r1}/{d.n1}  r/n = {d.r}/{d.n}  EN(p0) = {d.en0:.2f}  PET(p0) = {d.pet0:.3f}  "
               f"alpha = {d.actual_alpha:.4f}  power = {d.actual_power:.4f}")


def _parse_thresholds(items: tuple[str, ...]) -> dict[str, float]:
    from bayes_blina.data.analytes import resolve_analyte
    from bayes_blina.plan import PlanError

    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        code = resolve_analyte(name.strip()) if sep else None
        try:
            out[code] = float(value)
        except (TypeError, ValueError):
            code = None
        if code is None or not out[code] > 0:
            raise PlanError(f"--threshold must be ANALYTE=VALUE with a known analyte and a positive value "
                            f"(found {item!r})")
    return out


@plan.command()
@click.argument("fitdir", type=click.Path())
@click.option("--regimen", "regimens", multiple=True, required=True,
              help="Candidate regimen (repeatable): '15', '5-15', '10-30', '5-15-30' (steps on days 8 and 15).")
@click.option("--analyte", "analytes", multiple=True, help="Analytes (default: all of the fit).")
@click.option("--threshold", "thresholds", multiple=True,
              help="ANALYTE=VALUE (repeatable): also give P(peak > VALUE), e.g. IL6=1000 (pg/mL).")
@click.option("--window-days", type=click.FloatRange(0, min_open=True), default=28.0, show_default=True,
              help="Peak over the first this many days.")
@click.option("--draws", type=click.IntRange(10), default=400, show_default=True, help="Posterior draws used.")
@click.option("--patients", type=click.IntRange(1), default=25, show_default=True,
              help="Virtual patients per posterior draw.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--allow-unconverged", is_flag=True, help="Use a fit that fails the convergence gate.")
@click.option("--out", type=click.Path(), default=None, help="Write the table as CSV.")
def regimen(fitdir, regimens, analytes, thresholds, window_days, draws, patients, seed, allow_unconverged, out) -> None:
    """Predicted cytokine peaks of new patients under candidate regimens (from a pulse fit)."""
    from bayes_blina.plan.regimen import predict_regimen_peaks
    from bayes_blina.report.tables import format_table, gate_or_raise
    from bayes_blina.store import load_fit

    limits = _parse_thresholds(thresholds)
    stored = load_fit(fitdir)
    gate_or_raise(stored.verdict, allow_unconverged)
    res = predict_regimen_peaks(stored, list(regimens), analytes=list(analytes) or None,
                                window_h=24.0 * window_days, n_draws=draws, patients_per_draw=patients,
                                thresholds=limits, seed=seed)
    click.echo(format_table(res.table, "md", digits=3))
    extrap = res.table.loc[res.table["extrapolated_doses"] != "", "regimen"].unique()
    if len(extrap):
        click.echo(f"note: doses outside the fitted range {res.fitted_doses} are extrapolated along the "
                   f"model's log-linear dose effect (regimens: {', '.join(extrap)})", err=True)
    if out:
        _write_text(res.table.to_csv(index=False), out=out)


def _parse_sizes(text: str) -> list[int]:
    from bayes_blina.plan import PlanError

    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 2:
        raise PlanError(f"--sizes must be a comma-separated list of study sizes >= 2 (found {text!r})")
    return sizes


@plan.command("biomarker-power")
@click.argument("fitdir", type=click.Path())
@click.option("--sizes", default="50,100,200,400", show_default=True, help="Study sizes, comma-separated.")
@click.option("--sims", type=click.IntRange(1), default=100, show_default=True, help="Virtual studies per size.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Success: P(OR > 1 | study) above this.")
@click.option("--scheduler", default=None, help="Address of a running dask scheduler (default: a local cluster).")
@click.option("--workers", type=click.IntRange(0), default=2, show_default=True,
              help="Local dask worker processes (0: run in this process).")
@click.option("--draws", type=click.IntRange(50), default=500, show_default=True, help="MCMC draws per refit (2 chains).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--allow-unconverged", is_flag=True, help="Use a fit that fails the convergence gate.")
@click.option("--out", type=click.Path(), default=None, help="Write the power table as CSV (studies beside it).")
def biomarker_power_cmd(fitdir, sizes, sims, threshold, scheduler, workers, draws, seed, allow_unconverged, out) -> None:
    """Power to show the biomarker -> CR links (P(OR > 1) > threshold) by study size, from a joint fit."""
    from pathlib import Path

    from bayes_blina.plan.biomarker import biomarker_power, source_from_joint
    from bayes_blina.report.tables import format_table, gate_or_raise
    from bayes_blina.store import load_fit

    size_list = _parse_sizes(sizes)
    stored = load_fit(fitdir)
    gate_or_raise(stored.verdict, allow_unconverged)
    res = biomarker_power(source_from_joint(stored, seed=seed), size_list, sims=sims, threshold=threshold,
                          scheduler=scheduler, workers=workers, draws=draws, tune=draws, seed=seed)
    click.echo(format_table(res.table, "md", digits=3))
    click.echo(f"{len(res.studies)} virtual studies in {res.wall_s:.0f} s "
               f"({'scheduler ' + scheduler if scheduler else f'{workers} local worker(s)'})")
    if out:
        _write_text(res.table.to_csv(index=False), out=out)
        studies = Path(out).with_name(Path(out).stem + "-studies.csv")
        _write_text(res.studies.to_csv(index=False), out=str(studies))
