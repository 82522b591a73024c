"""Trajectory prediction from a stored fit: population-typical (or patient-specific) curves.

For new subjects (covariates) with their dosing history, the posterior of the noise-free
concentration of a *typical* patient (patient effects at the population mean) at the requested
times; with ``individual=True``, the fitted patients' own curves. The curves come from the same
family code that built the model (its ``prepare`` and numpy mean function), so a prediction is
exactly what the model says.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from bayes_blina.data.analytes import analyte_info
from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import BayesBlinaError, SpecError

DEFAULT_TIMES = (0.0, 2.0, 6.0, 24.0, 48.0, 168.0)


def read_subjects_and_dosing(subjects_file: str, dosing_file: str) -> Dataset:
    """Read and validate a subjects file and a dosing file (the package format) together."""
    from bayes_blina.data.io import read_table_file
    from bayes_blina.data.schema import validate_dataset

    tables = {"subjects": read_table_file(subjects_file), "dosing": read_table_file(dosing_file)}
    return validate_dataset(tables, files={"subjects": str(subjects_file), "dosing": str(dosing_file)},
                            name="prediction", origin=f"{subjects_file}+{dosing_file}")


def predict_trajectories(stored, dataset: Dataset, *, times: Sequence[float] = DEFAULT_TIMES,
                         prob: float = 0.95, individual: bool = False) -> pd.DataFrame:
    """Posterior median and interval of each subject's curve, per analyte and time.

    Parameters
    ----------
    stored : StoredFit
        A fit of a trajectory family (currently ``pulse``).
    dataset : Dataset
        ``subjects`` and ``dosing`` of the subjects to predict for.
    times : sequence of float
        Hours since each subject's first infusion start.
    prob : float
        Central interval probability.
    individual : bool
        Use the fitted patients' own effects (subjects must be in the fit) instead of a typical
        patient's.

    Returns
    -------
    DataFrame
        ``subject_id, analyte, time_h, median, lower, upper`` (canonical units of the analyte).
    """
    from bayes_blina.families import get_family
    from bayes_blina.families.pulse import pulse_log_mu

    if stored.family_name != "pulse":
        raise BayesBlinaError(f"trajectory prediction for family {stored.family_name!r} is not available yet")
    if not 0 < prob < 1:
        raise SpecError(f"prob must be between 0 and 1 (found {prob})")
    opts = stored.options
    analytes = list(opts["analytes"])
    subjects = dataset.subjects["subject_id"].astype(str).tolist()
    grid = pd.DataFrame([(s, a, float(t)) for s in subjects for a in analytes for t in times],
                        columns=["subject_id", "analyte", "time_h"])
    grid["value"] = 1.0
    grid["unit"] = [analyte_info(a).unit for a in grid["analyte"]]
    grid["below"] = ""
    fam = get_family("pulse")({**opts, "censoring": "m3", "relative_to_baseline": False,
                               "covariates": []})
    prepared = fam.prepare(Dataset(subjects=dataset.subjects, dosing=dataset.dosing, observations=grid))
    A = prepared.arrays
    post = stored.idata.posterior.stack(sample=("chain", "draw")).transpose("sample", ...)
    fitted_analytes = [str(a) for a in post["log_amp_mu"].coords["analyte"].values]
    order = [fitted_analytes.index(a) for a in analytes]
    pred_subjects = prepared.coords["subject"]
    vals = {k: post[k].values[:, order] for k in ("gamma_dose", "delta_reexposure", "kappa_cycle",
                                                    "log_tpeak", "k_shape")}
    if individual:
        fitted = [str(s) for s in post["log_amp"].coords["subject"].values]
        missing = [s for s in pred_subjects if s not in fitted]
        if missing:
            raise BayesBlinaError(f"--individual needs subjects of the fit; not in it: {', '.join(missing[:10])}")
        idx = [fitted.index(s) for s in pred_subjects]
        vals["log_amp"] = post["log_amp"].values[:, idx][:, :, order]
        vals["log_baseline"] = post["log_baseline"].values[:, idx][:, :, order]
    else:  # a typical patient: patient effects at the population mean
        n = len(pred_subjects)
        vals["log_amp"] = np.repeat(post["log_amp_mu"].values[:, None, order], n, axis=1)
        vals["log_baseline"] = np.repeat(post["log_baseline_mu"].values[:, None, order], n, axis=1)
    conc = np.exp(pulse_log_mu(vals, A))  # (sample, obs)
    q = (1 - prob) / 2
    out = grid.iloc[A["obs_position"]][["subject_id", "analyte", "time_h"]].reset_index(drop=True)
    out["median"] = np.median(conc, axis=0)
    out["lower"] = np.quantile(conc, q, axis=0)
    out["upper"] = np.quantile(conc, 1 - q, axis=0)
    return out.sort_values(["subject_id", "analyte", "time_h"], kind="mergesort").reset_index(drop=True)
