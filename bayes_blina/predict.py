"""Trajectory prediction from a stored fit: population-typical (or patient-specific) curves.

For new subjects (covariates) with their dosing history, the posterior of the noise-free
concentration (or count) of a *typical* patient (patient effects at the population mean) at the
requested times; with ``individual=True``, the fitted patients' own curves. Every trajectory
family (pulse, kinetics, depletion) is supported. The curves come from the same family code that
built the model (its ``prepare`` and numpy ``mean_log``), so a prediction is exactly what the
model says.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

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
    stored : Fit
        A fit of a trajectory family (``pulse``, ``kinetics`` or ``depletion``).
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
        ``subject_id, analyte, time_h, median, lower, upper`` (canonical units of the analyte; for
        a fit with ``relative_to_baseline``, ratios to the pre-treatment value).

    Notes
    -----
    The typical patient has every patient effect at its population value (the family's
    :meth:`~bayes_blina.families.trajectory.TrajectoryFamily.typical_patient`; for the pulse family
    the population time to peak ``log_tpeak`` too) and every covariate at its reference level;
    an individual prediction uses the patient's own effects (pulse: its own ``log_tpeak_i`` when
    the fit has patient-level timing). Times in cycles beyond the fit's ``cycles`` option are not predicted.
    """
    from bayes_blina.families import get_family

    cls = get_family(stored.family_name)
    if not cls.is_trajectory:
        raise BayesBlinaError(f"trajectory prediction needs a fit of a trajectory family (pulse, kinetics, "
                              f"depletion); this fit is of family {stored.family_name!r}")
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
    fam = cls({**opts, "censoring": "m3", "relative_to_baseline": False, "covariates": []})
    prepared = fam.prepare(Dataset(subjects=dataset.subjects, dosing=dataset.dosing, observations=grid))
    A = prepared.arrays
    post = as_dataset(stored.idata.posterior).stack(sample=("chain", "draw")).transpose("sample", ...)
    fitted_analytes = [str(a) for a in post[fam.sigma_name].coords["analyte"].values]
    order = [fitted_analytes.index(a) for a in analytes]
    pred_subjects = prepared.coords["subject"]
    vals = {k: post[k].values[:, order] for k in fam.population_vars}
    if individual:
        fitted = [str(s) for s in post.coords["subject"].values]
        missing = [s for s in pred_subjects if s not in fitted]
        if missing:
            raise BayesBlinaError(f"--individual needs subjects of the fit; not in it: {', '.join(missing[:10])}")
        idx = [fitted.index(s) for s in pred_subjects]
        for k in fam.patient_vars:
            if k not in post and k in getattr(fam, "optional_patient_vars", ()):
                continue  # e.g. a pulse fit without patient-level timing: population value used
            vals[k] = post[k].values[:, idx][:, :, order]
    else:  # a typical patient: patient effects at their population values
        n = len(pred_subjects)
        for k, v in fam.typical_patient(post).items():
            vals[k] = np.repeat(np.asarray(v)[:, None, order], n, axis=1)
    conc = np.exp(fam.mean_log(vals, prepared))  # (sample, obs)
    q = (1 - prob) / 2
    out = grid.iloc[A["obs_position"]][["subject_id", "analyte", "time_h"]].reset_index(drop=True)
    out["median"] = np.median(conc, axis=0)
    out["lower"] = np.quantile(conc, q, axis=0)
    out["upper"] = np.quantile(conc, 1 - q, axis=0)
    return out.sort_values(["subject_id", "analyte", "time_h"], kind="mergesort").reset_index(drop=True)
