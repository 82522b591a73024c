"""Every example script runs, small, in a subprocess."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script, *args, cwd):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / script), *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


@pytest.mark.slow
def test_fit_response_example(tmp_path):
    out = _run("fit_response.py", "--draws", 1000, "--tune", 1000, "--out", tmp_path / "fit", cwd=ROOT)
    assert "convergence gate PASSED" in out
    assert "p_age_group[<2]" in out
    assert (tmp_path / "fit" / "posterior.nc").is_file()


def test_subgroup_table_example_without_mcmc(tmp_path):
    _run("subgroup_table.py", "--no-pooled", "--out", tmp_path / "fig2.md", cwd=ROOT)
    text = (tmp_path / "fig2.md").read_text()
    assert "| age_group | <2 | 5-15 | 6 | 10 |" in text


@pytest.mark.slow
def test_custom_family_template_plugs_into_fit_gate_and_store(tmp_path):
    """The template family of ``examples/custom_family.py`` registers, fits through ``bb.fit``, passes
    the gate, is stored and summarised; its population mean of the log level agrees with the mean
    of the patients' own mean log values (a random-intercept model with wide priors) within 0.15."""
    out = _run("custom_family.py", "--out", tmp_path / "fit", cwd=ROOT)
    assert "convergence gate PASSED" in out and "| log_level_mu[GGT] |" in out
    assert (tmp_path / "fit" / "posterior.nc").is_file()
    lines = dict(line.split(": ", 1) for line in out.splitlines() if line.startswith(("posterior mean", "mean of")))
    fitted = float(lines["posterior mean of log_level_mu"])
    own = float(next(v for k, v in lines.items() if k.startswith("mean of")))
    assert abs(fitted - own) < 0.15
