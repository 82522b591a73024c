"""The planning example runs end to end, small, in a subprocess."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bayes_blina.plan import BetaMixture

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_plan_study_example(tmp_path):
    out = tmp_path / "out" / "plan"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "plan_study.py"), "--draws", "1000", "--tune", "1000",
                        "--trials", "2000", "--out", str(out)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    text = r.stdout
    assert "convergence gate PASSED" in text
    assert "vonStackelberg2016 / recommended dosage 70 27" in text
    assert "Nagele2017 / all 36 treated 36 25" in text
    assert "ESS of the MAP prior: elir" in text
    assert "probability of success" in text and "Simon optimal design" in text
    assert BetaMixture.load(out / "robust-map-prior.json").n_components >= 2
    oc = pd.read_csv(out / "oc.csv")
    assert list(oc.columns) == ["theta", "P(success) robust MAP", "P(success) MAP", "P(success) uniform"]
    assert len(oc) == 11 and oc["P(success) uniform"].is_monotonic_increasing
    assert sorted(p.name for p in out.iterdir()) == ["oc.csv", "robust-map-prior.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing else in the working folder
