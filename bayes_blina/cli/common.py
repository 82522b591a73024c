"""What every ``bayes-blina`` command group shares: error handling, exit codes, text output."""
from __future__ import annotations

import sys
from typing import override

import click

from bayes_blina._atomic import write_text_atomic
from bayes_blina.errors import BayesBlinaError, ConvergenceError, DataValidationError

#: Exit status for bad input (data, spec, arguments) and for a fit that fails the convergence gate.
EXIT_INPUT, EXIT_UNCONVERGED = 2, 3


class ErrorHandlingGroup(click.Group):
    """Turns the package's errors into a clear message and a non-zero exit, not a traceback.

    Problems in input data are shown grouped by kind and value (:class:`DataValidationError`); the
    main group's ``--problems FILE`` writes every one of them to a CSV file and ``-v`` prints every
    one, one per line.
    """

    @override
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BayesBlinaError as err:
            root = ctx.find_root().params
            if isinstance(err, DataValidationError):
                _report_problems(err, verbose=bool(root.get("verbose")), problems_file=root.get("problems"))
            else:
                click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(EXIT_UNCONVERGED if isinstance(err, ConvergenceError) else EXIT_INPUT)


def _report_problems(err: DataValidationError, *, verbose: bool, problems_file: str | None) -> None:
    """The grouped message, or every problem with ``-v``; the full list written to ``problems_file``."""
    if verbose:
        text = "\n".join([f"{len(err.problems)} problem(s) in the input data:"] + [f"  - {p}" for p in err.problems])
    else:
        text = str(err)
    click.secho(f"error: {text}", fg="red", err=True)
    if problems_file:
        try:
            written = write_text_atomic(problems_file, err.to_csv())
            click.echo(f"wrote every problem ({len(err.problems)}) to {written}", err=True)
        except BayesBlinaError as out_err:
            click.secho(f"error: {out_err}", fg="red", err=True)
    elif not verbose and len(err.problems) > len(str(err).splitlines()) - 1:
        click.echo("(every problem, one per line: add -v, or --problems FILE for a CSV file, after "
                   "'bayes-blina')", err=True)


def write_text(text: str, *, out: str | None) -> None:
    """Write ``text`` to the file ``out`` atomically (and say so on stderr), or to stdout when ``out`` is None.

    ``out`` is keyword-only: with two positional strings, swapping them once wrote a folder named
    after a CSV's first line (issue 21).
    """
    if out is None:
        click.echo(text, nl=False)
        return
    click.echo(f"wrote {write_text_atomic(out, text)}", err=True)


def gate_banner(stored, allow_unconverged: bool) -> str | None:
    """Refuse a stored fit that fails the convergence gate unless allowed; return the warning banner
    (also printed on stderr) for outputs of an allowed failing fit, None for a fit that passed."""
    from bayes_blina.report.tables import UNCONVERGED_BANNER, gate_or_raise

    v = stored.verdict
    gate_or_raise(v, allow_unconverged)
    if not v.passed:
        click.secho(UNCONVERGED_BANNER, fg="red", bold=True, err=True)
        return UNCONVERGED_BANNER
    return None
