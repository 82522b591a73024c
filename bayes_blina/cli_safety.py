"""``bayes-blina escalate``: the EWOC table and the next dose from a dose-toxicity fit."""
from __future__ import annotations

import click

from bayes_blina.cli_common import gate_banner, write_text
from bayes_blina.errors import BayesBlinaError


def _doses(text: str) -> list[float]:
    try:
        doses = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected doses in ug/m2/day separated by commas (e.g. 5,15,30); got {text!r}")
    if not doses or any(not d > 0 for d in doses):
        raise click.BadParameter(f"doses must be positive numbers (ug/m2/day); got {text!r}")
    return doses


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
    try:
        low, high = (float(x) for x in target.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LOW,HIGH (e.g. 0.16,0.33); got {target!r}", param_hint="--target")
    rule = EwocRule(target_low=low, target_high=high, max_overdose=max_overdose, max_step=max_step, prob=prob)
    stored = load_fit(fitdir)
    require_family(stored.family_name, DoseToxicityModel, "escalation", fit=fitdir)
    banner = gate_banner(stored, allow_unconverged)
    result = run(stored, dose_list, rule, current_dose=current_dose, method=method)
    if fmt is None:
        suffix = (out or "").rsplit(".", 1)[-1].lower() if out and "." in out else "md"
        fmt = {"csv": "csv", "tex": "latex", "md": "md"}.get(suffix)
        if fmt is None:
            raise BayesBlinaError(f"--out {out}: give --format (csv, md, latex) or a .csv, .md or .tex file")
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
