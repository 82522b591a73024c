"""`make demo` end to end at small settings: every output it promises is written, nothing else.

The commands are read from the Makefile's ``demo`` recipe itself, so this test cannot drift from
what ``make demo`` runs. Only the sampling effort changes: fits and MCMC-backed tables get a few
draws, and the commands that refuse a fit failing the convergence gate get ``--allow-unconverged``
(the numbers are not the point here; the files are). Issue 21: the demo once exited 0 while
``plan regimen --out`` wrote a folder named after a CSV's first line instead of the CSV.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest

from bayes_blina.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow

#: Small sampling effort for every command that samples.
FIT_ARGS = ["--draws", "100", "--tune", "100", "--chains", "2"]
#: The planning example refuses a MAP prior failing the gate and has no override: it keeps its own
#: sampling effort (about 10 s) and only its Monte Carlo check is made small.
PLAN_EXAMPLE_ARGS = ["--trials", "500"]
#: Options naming a file or folder the command promises to write.
OUTPUT_OPTIONS = ("--out", "--figure", "--table")


def demo_recipe() -> list[str]:
    """The demo recipe's command lines, continuation lines joined, as written in the Makefile."""
    lines = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    start = lines.index("demo: $(STAMP)") + 1
    recipe: list[str] = []
    for line in lines[start:]:
        if not line.startswith("\t"):
            break
        text = line[1:]
        if recipe and recipe[-1].endswith("\\"):
            recipe[-1] = recipe[-1][:-1].rstrip() + " " + text.strip()
        else:
            recipe.append(text)
    return recipe


def _click_command(words: list[str]) -> click.Command | None:
    cmd: click.Command = cli_main
    for w in words:
        if not isinstance(cmd, click.Group) or w not in cmd.commands:
            break
        cmd = cmd.commands[w]
    return None if cmd is cli_main else cmd


def _takes(cmd: click.Command | None, option: str) -> bool:
    return cmd is not None and any(option in p.opts for p in cmd.params)


def adapt(line: str, out: Path) -> list[str] | None:
    """The recipe line as an argument list at small settings (None: a line this test does itself)."""
    if line.startswith("@"):
        return None  # mkdir -p $(OUT), the closing echo
    words = shlex.split(line.replace("$(OUT)", str(out)))
    if words[0] == "$(BB)":
        args = words[1:]
        cmd = _click_command(args)
        extra = []
        if _takes(cmd, "--draws") and _takes(cmd, "--tune") and _takes(cmd, "--chains"):
            extra += FIT_ARGS
        if _takes(cmd, "--allow-unconverged"):
            extra.append("--allow-unconverged")
        return [str(BIN / "bayes-blina"), *args, *extra]
    if words[0] == "$(BIN)/python":
        script = words[1]
        extra = PLAN_EXAMPLE_ARGS if script.endswith("plan_study.py") else ["--allow-unconverged"]
        return [sys.executable, str(ROOT / script), *words[2:], *extra]
    raise AssertionError(f"demo recipe line this test does not know how to run: {line!r}")


def promised_outputs(recipe: list[str], out: Path) -> list[Path]:
    paths = []
    for line in recipe:
        words = shlex.split(line.lstrip("@").replace("$(OUT)", str(out)))
        paths += [Path(words[i + 1]) for i, w in enumerate(words[:-1]) if w in OUTPUT_OPTIONS]
    return paths


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    (work / "examples").symlink_to(ROOT / "examples")
    out = work / "out"
    out.mkdir()
    recipe = demo_recipe()
    env = {**os.environ, "MPLBACKEND": "Agg"}
    for line in recipe:
        argv = adapt(line, Path("out"))
        if argv is None:
            continue
        r = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"{line}\nexit {r.returncode}\n{r.stderr[-4000:]}"
    return work, recipe


def test_the_recipe_is_read_whole():
    recipe = demo_recipe()
    assert recipe[0].startswith("@mkdir") and recipe[-1].startswith("@echo")
    assert any("plan regimen" in line for line in recipe) and any("report" in line for line in recipe)
    assert all(not line.endswith("\\") for line in recipe)


def test_every_promised_output_is_written(demo_run):
    work, recipe = demo_run
    promised = promised_outputs(recipe, Path("out"))
    assert len(promised) >= 25
    missing = [str(p) for p in promised if not (work / p).exists()]
    assert not missing, missing
    for p in promised:
        f = work / p
        if f.is_dir():
            assert any(f.iterdir()), f"{p} is an empty folder"
            continue
        data = f.read_bytes()
        assert len(data) > 50, p
        if f.suffix == ".png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n", p
        elif f.suffix == ".csv":
            df = pd.read_csv(f, comment="#")  # a fit failing the gate at these settings heads its tables with a warning
            assert len(df) >= 1 and len(df.columns) >= 2, p
        elif f.suffix in (".md", ".tex", ".html"):
            assert data.decode("utf-8").strip(), p


def test_outputs_have_the_expected_content(demo_run):
    work, _ = demo_run
    out = work / "out"
    regimen = pd.read_csv(out / "plan" / "regimen-peaks.csv", comment="#")
    assert set(regimen["regimen"]) == {"15", "5-15", "10-30"}
    assert {"analyte", "regimen"} <= set(regimen.columns)
    assert (out / "plan" / "robust-map-prior.json").is_file() and (out / "plan" / "oc.csv").is_file()
    cr = pd.read_csv(out / "cr-predictions.csv", comment="#")
    new = pd.read_csv(ROOT / "examples" / "data" / "new-patients.csv")
    assert len(cr) == len(new)
    prob_cols = [c for c in cr.columns if c.startswith("p_cr")] or [c for c in cr.columns if "mean" in c]
    assert prob_cols and cr[prob_cols[0]].between(0, 1).all()
    esc = pd.read_csv(out / "escalation.csv", comment="#").set_index("dose")
    assert esc["ewoc_ok"].tolist() == [True, True, True, True, False]  # quadrature: no Monte Carlo error
    assert esc.loc[30, "p_overdose"] > 0.25 > esc.loc[15, "p_overdose"]
    rfs = (out / "rfs-summary.md").read_text(encoding="utf-8")
    assert "hr_mrd_response" in rfs and "median_months" in rfs
    html = (out / "report.html").read_text(encoding="utf-8")
    for name in ("demo-response", "demo-cytokine", "demo-tcell", "demo-bcell", "demo-joint"):
        assert name in html, name
    for fit in ("demo-response", "demo-cytokine", "demo-tcell", "demo-bcell", "demo-joint"):
        assert (work / "fits" / fit / "posterior.nc").is_file(), fit


def test_nothing_else_appears_in_the_working_folder(demo_run):
    work, recipe = demo_run
    assert sorted(p.name for p in work.iterdir()) == ["examples", "fits", "out"]
    promised = {work / p for p in promised_outputs(recipe, Path("out"))}
    top = {p for p in (work / "out").iterdir()}
    unexpected = [p.name for p in top if p not in promised and not any(q.is_relative_to(p) for q in promised)]
    assert not unexpected, unexpected
    hidden = [str(p.relative_to(work)) for p in work.rglob(".*") if not p.is_relative_to(work / "examples")]
    assert not hidden, f"temporary files left behind: {hidden}"
