"""The two-stage (plug-in) analysis, for comparison with the joint model.

Stage 1 fits the trajectory sub-models alone (the joint model with ``response_part = false``: the
same sub-models, priors and data). Stage 2 plugs each patient's posterior mean biomarker (on the
model's log2 scale) into the same CR part (:func:`bayes_blina.families.joint.add_cr_part`: same
priors, covariates and centring) as if it were known exactly.

What it gets wrong: the biomarker values are estimates, so their uncertainty is ignored (the
posterior of ``beta`` is too narrow for what the data say), and the CR outcome cannot inform the
biomarker. :func:`compare_beta` puts the two side by side.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayes_blina.families.joint import BIOMARKERS, LN2, PARTS, JointModel, add_cr_part
from bayes_blina.spec import load_spec

__all__ = ["TwoStageResult", "two_stage_fit", "stage1_spec", "compare_beta", "true_betas"]


@dataclass
class TwoStageResult:
    """Both stages of a two-stage fit.

    Attributes
    ----------
    stage1 : Fit
        The trajectory-only fit.
    idata : xarray.DataTree
        Stage 2 (the CR part with plugged-in biomarkers).
    plug_in : DataFrame
        ``subject_id`` and the plugged-in value of each biomarker (log2 scale).
    verdict : Verdict
        Convergence verdict of stage 2.
    timing : dict
        Sampling seconds of each stage.
    """

    stage1: Any
    idata: Any
    plug_in: pd.DataFrame
    verdict: Any
    timing: dict[str, float]


def stage1_spec(spec):
    """The stage-1 spec of a joint spec: the same, with ``response_part = false`` and without the
    priors of the CR part (which stage 1 does not have)."""
    spec = load_spec(spec)
    options = {**spec.options, "response_part": False}
    valid = JointModel(options).priors
    return spec.model_copy(update={"options": options, "name": spec.name + "-stage1",
                                   "priors": {k: v for k, v in spec.priors.items() if k in valid}})


def two_stage_fit(spec, dataset, *, seed: int | None = None, chains: int | None = None, draws: int | None = None,
                  tune: int | None = None, backend: str | None = None) -> TwoStageResult:
    """Fit the two-stage version of a joint-model spec.

    Parameters
    ----------
    spec : str, dict or ModelSpec
        A joint-model spec (its ``response_part`` is switched off for stage 1).
    dataset : Dataset
    seed, chains, draws, tune, backend : optional
        Sampler overrides, used for both stages.

    Returns
    -------
    TwoStageResult
    """
    import time

    from bayes_blina.diagnostics import convergence_verdict
    from bayes_blina.inference import fit, sample_model

    spec = load_spec(spec).with_sampler(seed=seed, chains=chains, draws=draws, tune=tune, backend=backend)
    from bayes_blina.errors import SpecError
    from bayes_blina.families import require_family

    require_family(spec.family, JointModel, "the two-stage comparison", fit=f"spec {spec.name!r}", error=SpecError)
    stage1 = fit(stage1_spec(spec), dataset)
    full = JointModel(spec.options, spec.priors)
    prepared = full.prepare(dataset)
    post = as_dataset(stage1.idata.posterior)
    x: dict[str, np.ndarray] = {}
    for b in full.options.biomarkers:
        bm = BIOMARKERS[b]
        prefix = PARTS[bm.part][1]
        da = post[prefix + bm.key].sel({prefix + "analyte": bm.analyte})
        subj = [str(s) for s in da.coords[prefix + "subject"].values]
        mean_log = np.asarray(da.mean(("chain", "draw")).values, dtype=float)
        lut = dict(zip(subj, mean_log))
        ids = prepared.coords["cr_patient"]
        x[b] = (np.array([lut[s] for s in ids]) - full.log_ref(b)) / LN2
    import pymc as pm

    factors = full.cr_factors(prepared)
    coords = {"cr_patient": prepared.coords["cr_patient"], **{f: prepared.coords[f] for f in factors}}
    if "study" in prepared.coords and "cr_study" in prepared.arrays:
        coords["study"] = prepared.coords["study"]
    with pm.Model(coords=coords) as model:
        add_cr_part(full, prepared, x)
    t0 = time.perf_counter()
    idata, _ = sample_model(model, spec.sampler)
    t2 = time.perf_counter() - t0
    verdict = convergence_verdict(idata, spec.gate)
    plug = pd.DataFrame({"subject_id": prepared.coords["cr_patient"], **x})
    return TwoStageResult(stage1=stage1, idata=idata, plug_in=plug, verdict=verdict,
                          timing={"stage1_s": stage1.timing.get("sampling_s", float("nan")), "stage2_s": round(t2, 3)})


def compare_beta(joint_idata, two_stage_idata, *, truth: dict[str, float] | None = None,
                 prob: float = 0.9) -> pd.DataFrame:
    """Posterior of each ``beta_<biomarker>`` in the joint and the two-stage fit.

    Parameters
    ----------
    joint_idata, two_stage_idata : xarray.DataTree
    truth : dict, optional
        True ``beta`` per biomarker (simulations), to report coverage.
    prob : float
        Interval probability.

    Returns
    -------
    DataFrame
        ``biomarker, joint_mean, joint_sd, joint_lower, joint_upper, two_stage_mean, two_stage_sd,
        two_stage_lower, two_stage_upper, sd_ratio, width_ratio`` (two-stage over joint; below 1:
        the two-stage interval is narrower), and ``truth, joint_covers, two_stage_covers`` with a
        truth.
    """
    q = (1.0 - prob) / 2.0
    rows = []
    for b in BIOMARKERS:
        name = f"beta_{b}"
        if name not in joint_idata.posterior or name not in two_stage_idata.posterior:
            continue
        row: dict[str, Any] = {"biomarker": b}
        for label, idata in (("joint", joint_idata), ("two_stage", two_stage_idata)):
            v = np.asarray(idata.posterior[name].values, dtype=float).ravel()
            row[f"{label}_mean"] = float(v.mean())
            row[f"{label}_sd"] = float(v.std(ddof=1))
            row[f"{label}_lower"], row[f"{label}_upper"] = (float(x) for x in np.quantile(v, [q, 1 - q]))
        row["sd_ratio"] = row["two_stage_sd"] / row["joint_sd"]
        row["width_ratio"] = ((row["two_stage_upper"] - row["two_stage_lower"])
                              / (row["joint_upper"] - row["joint_lower"]))
        if truth is not None and b in truth:
            t = float(truth[b])
            row["truth"] = t
            row["joint_covers"] = bool(row["joint_lower"] <= t <= row["joint_upper"])
            row["two_stage_covers"] = bool(row["two_stage_lower"] <= t <= row["two_stage_upper"])
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["prob"] = prob
    return df


def true_betas(truth: dict) -> dict[str, float]:
    """The simulator's true CR coefficients per doubling, by biomarker name (from ``truth.json``)."""
    r = truth["population"]["response"]
    return {"tcell_expansion": float(r["beta_tcell"]), "il10_peak": float(r["beta_il10"])}

