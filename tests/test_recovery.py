"""Parameter recovery on the adult simulator, with the criterion written in ``scripts/recovery_study.py``.

The criterion (per fit: convergence gate passed, at least 75% of the population parameters' truths
inside their 90% intervals, the true typical trajectory inside the 90% interval of the typical
prediction at at least 60% of its points or the predicted median within 20% of it everywhere;
pooled over seeds: at least 80%) is applied through the
script's own functions (``run_one``, ``verdicts``), so the test and ``docs/recovery.md`` use one
definition. The fast test checks the criterion's arithmetic; the slow test fits one seed.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "recovery_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("recovery_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows(seed: int, n_inside: int, n_params: int = 20, gate: bool = True, typical: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame({"spec": "s", "n": 36, "seed": seed, "parameter": [f"p{k}" for k in range(n_params)],
                         "inside": [k < n_inside for k in range(n_params)], "gate_passed": gate, "max_rhat": 1.0,
                         "divergences": 0, "fit_s": 1.0, "typical_share": typical, "typical_max_log_err": 0.1})


def test_criterion_arithmetic(study):
    assert (study.PER_FIT_MIN, study.POOLED_MIN, study.TYPICAL_MIN) == (0.75, 0.80, 0.60)
    df = pd.concat([_rows(1, 15), _rows(2, 14), _rows(3, 20, gate=False), _rows(4, 20, typical=0.5),
                    _rows(5, 20, typical=0.5).assign(typical_max_log_err=0.15)])
    df.loc[df["seed"] == 4, "typical_max_log_err"] = 0.3
    # seed 4: truth inside the typical band at half the points and off by more than 20% somewhere;
    # seed 5: inside at half the points but within 16% everywhere (a narrow band): it tracks
    per_fit, pooled = study.verdicts(df)
    assert per_fit.set_index("seed")["meets"].to_dict() == {1: True, 2: False, 3: False, 4: False, 5: True}
    assert not bool(pooled["meets"].iloc[0])  # a fit fails, so the pooled criterion fails
    per_fit, pooled = study.verdicts(pd.concat([_rows(1, 15), _rows(2, 18)]))  # 33/40 = 82.5%
    assert per_fit["meets"].all() and bool(pooled["meets"].iloc[0])
    assert pooled["share"].iloc[0] == pytest.approx(33 / 40)
    _, pooled = study.verdicts(pd.concat([_rows(1, 15), _rows(2, 16)]))  # 31/40 = 77.5% < 80%
    assert not bool(pooled["meets"].iloc[0])


@pytest.mark.slow
def test_cytokine_core_recovers_its_truths_on_one_seed(study):
    """cytokine-core (with the blast-burden covariate the simulator's amplitudes depend on) on a
    36-patient virtual adult cohort, seed 1: the written criterion holds, the patient-timing SD is
    among the parameters checked, and the typical trajectory tracks the true one."""
    df, res, curves = study.run_one("cytokine-core", 36, 1,
                                    options={"covariates": ["blast_burden"]}, return_fit=True)
    per_fit, _ = study.verdicts(df)
    row = per_fit.iloc[0]
    misses = df.loc[~df["inside"], ["parameter", "labels", "truth", "q05", "q95"]].round(3).to_dict("records")
    assert bool(row["gate_passed"]), res.verdict
    assert row["share"] >= study.PER_FIT_MIN, misses
    assert set(df.loc[df["parameter"] == "sd_log_tpeak", "labels"]) == {"IL6", "IL10", "IFNG"}
    # typical trajectory: inside the 90% band at >= 60% of the points, median within a factor 1.65
    assert row["typical_share"] >= study.TYPICAL_MIN, curves.round(2).to_dict("records")
    assert curves["log_err"].max() < 0.5, curves.round(2).to_dict("records")
    assert bool(row["meets"])
