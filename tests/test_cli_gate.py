"""Every command that publishes numbers from a stored fit refuses one failing the gate (issue 21).

The command tree is walked: each command taking a fit folder (``FITDIR``/``FITDIRS``) must offer
``--allow-unconverged`` and, given a fit whose verdict fails, exit with status 3 and the gate's
message before it uses anything else of the fit (the stub below fails the test on any other
attribute). ``check`` is the one exception: it reports the verdict itself. With the override, a
failing fit's outputs carry the warning banner (tested on real fits in tests/test_cli.py and
tests/test_demo.py; here for the checks that had no gate before issue 21: ppc, loo, loo-pit).
"""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from bayes_blina.cli import main
from bayes_blina.cli.common import EXIT_UNCONVERGED
from bayes_blina.diagnostics import Verdict
from bayes_blina.report.tables import UNCONVERGED_BANNER
from conftest import cli_commands

FAILED = Verdict(passed=False, max_rhat=1.2, min_ess_bulk=20, min_ess_tail=15, n_divergent=3, min_bfmi=0.5,
                 n_draws=50, n_chains=2, failures=["R-hat 1.2 of mu exceeds 1.01"])

#: Commands taking a fit that do not refuse a failing one, and why.
NOT_GATED = {"check": "reports the gate's verdict itself"}

#: The family each command is given (commands check it before anything else) and its other
#: required arguments.
CASES = {
    "ppc": ("response", []),
    "loo": ("response", []),
    "summary": ("response", []),
    "predict": ("response", ["--subjects", "subjects.csv", "--out", "p.csv"]),
    "report": ("response", ["--out", "r.html"]),
    "vpc": ("pulse", []),
    "loo-pit": ("pulse", []),
    "figure peaks": ("pulse", ["--out", "f.png"]),
    "figure responder-bands": ("pulse", ["--out", "f.png"]),
    "figure odds-ratios": ("joint", ["--out", "f.png"]),
    "figure survival": ("survival", ["--out", "f.png"]),
    "sensitivity": ("response", []),
    "plan regimen": ("pulse", ["--regimen", "15"]),
    "plan biomarker-power": ("joint", []),
    "escalate": ("dose-toxicity", ["--doses", "5,15"]),
}


class FailingFit:
    """A stored fit that fails the gate; anything but its verdict, path and family is off limits."""

    def __init__(self, family: str, path: str):
        self.family_name, self.path, self.part, self.verdict = family, path, None, FAILED

    def __getattr__(self, name):
        raise AssertionError(f"the command used the fit's {name!r} before its convergence gate")


def commands_taking_a_fit() -> list[tuple[str, click.Command]]:
    return [(name, cmd) for name, cmd in cli_commands()
            if any(isinstance(p, click.Argument) and p.name in ("fitdir", "fitdirs") for p in cmd.params)]


def test_every_command_taking_a_fit_is_listed():
    names = {name for name, _ in commands_taking_a_fit()}
    assert len(names) >= 14
    assert names == CASES.keys() | NOT_GATED.keys()


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_failing_fit_is_refused_unless_overridden(name, tmp_path, monkeypatch):
    family, extra = CASES[name]
    cmd = dict(commands_taking_a_fit())[name]
    assert any("--allow-unconverged" in p.opts for p in cmd.params), f"{name} has no --allow-unconverged"
    monkeypatch.setattr("bayes_blina.store.load_fit", lambda path, **k: FailingFit(family, str(path)))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subjects.csv").write_text("subject_id,regimen\nA,15\n")
    r = CliRunner().invoke(main, [*name.split(), "fits/x", *extra])
    assert r.exit_code == EXIT_UNCONVERGED, (name, r.output, r.exception)
    assert "failed the convergence gate" in r.stderr and "R-hat 1.2 of mu" in r.stderr
    assert "--allow-unconverged" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subjects.csv"]  # nothing written


@pytest.fixture(scope="module")
def unconverged_response(tmp_path_factory):
    from bayes_blina.data.dataset import Dataset
    from bayes_blina.inference import fit
    from bayes_blina.store import save_fit
    from conftest import aggregates_frame, response_spec

    ds = Dataset(aggregates=aggregates_frame([("P", "all", "all", "5-15", 27, 70)]), name="tiny", origin="test")
    res = fit(response_spec(draws=30, tune=30), ds)
    assert not res.verdict.passed  # 4 x 30 draws: far below the ESS floor
    return save_fit(res, tmp_path_factory.mktemp("fits") / "weak")


@pytest.mark.parametrize("name, args, reader", [
    ("ppc", ["--format", "csv"], "text"),
    ("loo", ["--format", "md"], "text"),
])
def test_checks_of_an_allowed_failing_fit_carry_the_banner(unconverged_response, name, args, reader):
    r = CliRunner().invoke(main, [name, str(unconverged_response), *args])
    assert r.exit_code == EXIT_UNCONVERGED, r.output
    r = CliRunner().invoke(main, [name, str(unconverged_response), *args, "--allow-unconverged"])
    assert r.exit_code == 0, r.output
    assert "FAILED the convergence gate" in r.stdout.splitlines()[0] + r.stdout.splitlines()[1]
    if name == "loo":
        assert "fit(s) weak FAILED" in r.stdout
    assert UNCONVERGED_BANNER in r.stderr
