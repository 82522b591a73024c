"""``bayes-blina escalate`` (the EWOC table and the next dose from a dose-toxicity fit) and
``bayes-blina plan dose-escalation`` (operating characteristics of escalation designs)."""
from __future__ import annotations

import click
import numpy as np

from bayes_blina.cli.common import gate_banner, write_text
from bayes_blina.errors import BayesBlinaError


def _doses(text: str) -> list[float]:
    try:
        doses = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected doses in ug/m2/day separated by commas (e.g. 5,15,30); got {text!r}")
    if not doses or any(not d > 0 for d in doses):
        raise click.BadParameter(f"doses must be positive numbers (ug/m2/day); got {text!r}")
    return doses


def _target(text: str) -> tuple[float, float]:
    """``--target LOW,HIGH``."""
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH (e.g. 0.16,0.33); got {text!r}", param_hint="--target") from None
    return low, high


def _table_format(fmt: str | None, out: str | None) -> str:
    """``--format``, else from the ``--out`` suffix (md on screen)."""
    if fmt is not None:
        return fmt
    suffix = out.rsplit(".", 1)[-1].lower() if out and "." in out else "md"
    found = {"csv": "csv", "tex": "latex", "md": "md"}.get(suffix)
    if found is None:
        raise BayesBlinaError(f"--out {out}: give --format (csv, md, latex) or a .csv, .md or .tex file")
    return found


@click.command("escalate")
@click.argument("fitdir", type=click.Path())
@click.option("--doses", required=True, help="Provisional doses, ug/m2/day, comma-separated (e.g. 5,15,30).")
@click.option("--current-dose", type=click.FloatRange(0, min_open=True), default=None,
              help="Dose of the last cohort: the next dose is at most --max-step times it.")
@click.option("--max-step", type=click.FloatRange(1), default=2.0, show_default=True,
              help="Largest escalation factor from --current-dose.")
@click.option("--target", default="0.16,0.33", show_default=True,
              help="Target interval of the DLT rate, LOW,HIGH: under-dosing below LOW, overdosing from HIGH.")
@click.option("--ewoc", "max_overdose", type=click.FloatRange(0, 1, min_open=True), default=0.25,
              show_default=True, help="A dose is allowed when P(overdose) is below this.")
@click.option("--prob", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Central credible interval of the DLT rate.")
@click.option("--method", type=click.Choice(["quadrature", "mcmc"]), default="quadrature", show_default=True,
              help="Posterior by deterministic quadrature (no Monte Carlo error) or from the fit's draws.")
@click.option("--format", "fmt", type=click.Choice(["csv", "md", "latex"]), default=None,
              help="Table format (default: from the --out suffix, md on screen).")
@click.option("--out", type=click.Path(), default=None, help="Write the table to this file (.csv, .md, .tex).")
@click.option("--allow-unconverged", is_flag=True, help="Use a fit that fails the convergence gate.")
def escalate(fitdir, doses, current_dose, max_step, target, max_overdose, prob, method, fmt, out,
             allow_unconverged) -> None:
    """Escalation with overdose control: P(under-dosing), P(target), P(overdosing) of the DLT rate per
    dose from a dose-toxicity fit, and the recommended next dose."""
    from bayes_blina.families import DoseToxicityModel, require_family
    from bayes_blina.report.tables import format_table
    from bayes_blina.safety import EwocRule, escalate as run
    from bayes_blina.store import load_fit

    dose_list = _doses(doses)
    low, high = _target(target)
    rule = EwocRule(target_low=low, target_high=high, max_overdose=max_overdose, max_step=max_step, prob=prob)
    stored = load_fit(fitdir)
    require_family(stored.family_name, DoseToxicityModel, "escalation", fit=fitdir)
    banner = gate_banner(stored, allow_unconverged)
    result = run(stored, dose_list, rule, current_dose=current_dose, method=method)
    fmt = _table_format(fmt, out)
    caption = (f"EWOC: P(DLT rate in [0, {low:g}), [{low:g}, {high:g}), [{high:g}, 1]) per dose; allowed when "
               f"P(overdose) < {max_overdose:g}; posterior by {method}")
    table = result.table.assign(dose=[f"{d:g}" for d in result.table["dose"]])
    write_text(format_table(table, fmt, banner=banner, caption=caption, digits=4), out=out)
    limit = f" (at most {max_step:g} x {current_dose:g})" if current_dose is not None else ""
    if result.recommended is None:
        click.echo(f"recommended next dose: none - every dose{limit} has P(overdose) >= {max_overdose:g}: stop",
                   err=True)
    else:
        click.echo(f"recommended next dose{limit}: {result.recommended:g} ug/m2/day "
                   "(largest P(target) among the allowed doses)", err=True)


def _scenario(text: str) -> tuple[str, list[float]]:
    name, sep, rates = str(text).partition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"expected NAME=P1,P2,... (true DLT rates per dose level); got {text!r}",
                                 param_hint="--scenario")
    try:
        return name.strip(), [float(x) for x in rates.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"scenario {name.strip()!r}: rates must be numbers; got {rates!r}",
                                 param_hint="--scenario") from None


DESIGNS = ("3+3", "BOIN", "CRM", "BLRM-EWOC")


@click.command("dose-escalation")
@click.option("--doses", required=True, help="Dose levels, ug/m2/day, comma-separated (e.g. 5,15,30).")
@click.option("--scenario", "scenarios", multiple=True, required=True,
              help="NAME=P1,P2,...: a true DLT rate per dose level (repeat for several scenarios).")
@click.option("--designs", default=",".join(DESIGNS), show_default=True,
              help=f"Designs to compare, comma-separated, of {', '.join(DESIGNS)}.")
@click.option("--target", default="0.16,0.33", show_default=True,
              help="Target interval of the DLT rate, LOW,HIGH (EWOC and the selection summaries).")
@click.option("--target-rate", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.25,
              show_default=True, help="Target DLT rate of BOIN and the CRM.")
@click.option("--skeleton", default=None, help="CRM skeleton: a prior DLT rate per level (default: spaced around "
              "the target rate, centred on the middle level).")
@click.option("--ewoc", "max_overdose", type=click.FloatRange(0, 1, min_open=True), default=0.25, show_default=True)
@click.option("--cohort-size", type=click.IntRange(1), default=3, show_default=True)
@click.option("--max-n", type=click.IntRange(1), default=30, show_default=True, help="Maximum sample size.")
@click.option("--trials", type=click.IntRange(1), default=1000, show_default=True,
              help="Simulated trials per scenario and design.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=2, show_default=True,
              help="Local dask worker processes (0: in this process).")
@click.option("--scheduler", default=None, help="Address of a running dask scheduler (instead of --workers).")
@click.option("--format", "fmt", type=click.Choice(["csv", "md", "latex"]), default=None,
              help="Table format (default: from the --out suffix, md on screen).")
@click.option("--out", type=click.Path(), default=None, help="Write the table to this file (.csv, .md, .tex).")
def dose_escalation(doses, scenarios, designs, target, target_rate, skeleton, max_overdose, cohort_size, max_n,
                    trials, seed, workers, scheduler, fmt, out) -> None:
    """Operating characteristics of dose-escalation designs (3+3, BOIN, CRM, BLRM-EWOC) on scenarios of
    true DLT rates: P(selecting each level, none, a level in the target, an overdosing level),
    patients per level and at overdosing doses, DLTs, early stops."""
    from bayes_blina.report.tables import format_table
    from bayes_blina.safety.designs import BOIN, CRM, BlrmEwoc, ThreePlusThree
    from bayes_blina.safety.trials import simulate_designs

    dose_list = _doses(doses)
    low, high = _target(target)
    named = dict(_scenario(s) for s in scenarios)
    wrong = {k: len(v) for k, v in named.items() if len(v) != len(dose_list)}
    if wrong:
        raise click.BadParameter(f"every scenario needs one rate per dose level ({len(dose_list)}); "
                                 + ", ".join(f"{k} has {n}" for k, n in wrong.items()), param_hint="--scenario")
    wanted = [d.strip() for d in designs.split(",") if d.strip()]
    unknown = [d for d in wanted if d.upper() not in {x.upper() for x in DESIGNS}]
    if unknown or not wanted:
        raise click.BadParameter(f"unknown design(s) {unknown}; choose from {', '.join(DESIGNS)}",
                                 param_hint="--designs")
    k = len(dose_list)
    if skeleton is None:  # spaced on the logit scale around the target, the target at the middle level
        from scipy.special import expit, logit

        sk = tuple(float(x) for x in expit(logit(target_rate) + 0.6 * (np.arange(k) - (k - 1) // 2)))
    else:
        try:
            sk = tuple(float(x) for x in skeleton.split(","))
        except ValueError:
            raise click.BadParameter(f"expected rates separated by commas; got {skeleton!r}", param_hint="--skeleton")
        if len(sk) != k or any(not 0 < x < 1 for x in sk) or any(b <= a for a, b in zip(sk, sk[1:])):
            raise click.BadParameter(f"the skeleton needs {k} increasing rates in (0, 1); got {skeleton!r}",
                                     param_hint="--skeleton")
    common = {"cohort_size": cohort_size, "max_n": max_n}
    make = {"3+3": lambda: ThreePlusThree(cohort_size=3, max_n=max_n),
            "BOIN": lambda: BOIN(target=target_rate, **common),
            "CRM": lambda: CRM(target=target_rate, skeleton=sk, **common),
            "BLRM-EWOC": lambda: BlrmEwoc(doses=tuple(dose_list), target_low=low, target_high=high,
                                          max_overdose=max_overdose, **common)}
    chosen = [make[next(x for x in DESIGNS if x.upper() == d.upper())]() for d in wanted]
    oc = simulate_designs(chosen, named, trials=trials, seed=seed, target=(low, high), scheduler=scheduler,
                          workers=workers, progress=False)
    fmt = _table_format(fmt, out)
    caption = (f"Operating characteristics, {trials} simulated trials per scenario and design, doses "
               f"{', '.join(f'{d:g}' for d in dose_list)} ug/m2/day, target interval [{low:g}, {high:g}), seed {seed}")
    write_text(format_table(oc.table, fmt, caption=caption, digits=4), out=out)
    click.echo(f"simulated {trials * len(named) * len(chosen)} trials in {oc.wall_s:.1f} s", err=True)
