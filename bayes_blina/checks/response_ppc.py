"""Posterior predictive check of the CR model: observed against predicted responders.

For every published row the model used, the replicated number of responders is drawn as
``Binomial(n, p_row)`` for each posterior draw; for patient-level data, the replicated responders of
each factor level are the sum of Bernoulli draws of its patients. The table gives the observed
count beside the predictive median and interval and the two-sided posterior predictive p-value
``2 * min(P(rep >= obs), P(rep <= obs))`` (capped at 1). Small p-values flag subgroups the model
fits poorly.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import numpy as np
import pandas as pd


def _row(label, obs, n, rep, prob):
    q = (1 - prob) / 2
    p_hi, p_lo = (rep >= obs).mean(), (rep <= obs).mean()
    return {"subgroup": label, "n": int(n), "observed": int(obs), "predicted_median": float(np.median(rep)),
            "predicted_lower": float(np.quantile(rep, q)), "predicted_upper": float(np.quantile(rep, 1 - q)),
            "ppp": float(min(1.0, 2 * min(p_hi, p_lo)))}


def response_ppc(idata, *, factors: list[str], prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Observed vs posterior predictive responders, per published row and per factor level.

    Parameters
    ----------
    idata : xarray.DataTree
        A fitted response model (with ``constant_data`` and ``observed_data`` as stored by
        :func:`bayes_blina.inference.fit`).
    factors : list of str
        The model's factors.
    prob : float
        Predictive interval probability.
    seed : int
        Seed of the replicated data.

    Returns
    -------
    DataFrame
        ``subgroup, n, observed, predicted_median, predicted_lower, predicted_upper, ppp``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    post = as_dataset(idata.posterior)
    if "p_agg" in post:
        p = post["p_agg"].stack(s=("chain", "draw")).transpose("agg_row", "s").values
        r = idata.observed_data["agg_r"].values
        n = idata.observed_data["agg_n"].values
        labels = [str(x) for x in post["p_agg"].coords["agg_row"].values]
        for i, lab in enumerate(labels):
            rep = rng.binomial(n[i], p[i])
            rows.append(_row(lab, r[i], n[i], rep, prob))
    const = as_dataset(idata.constant_data)
    if "pat_y" in const and const["pat_y"].size:
        y = const["pat_y"].values
        p = post["p_cell"].stack(s=("chain", "draw")).transpose("cell", "s").values[const["pat_cell"].values]
        rep = rng.random(p.shape) < p
        rows.append(_row("all patients", y.sum(), len(y), rep.sum(0), prob))
        for f in factors:
            idx = const[f"pat_{f}"].values
            labels = [str(x) for x in post[f"beta_{f}"].coords[f].values]
            for k, lab in enumerate(labels):
                sel = idx == k
                if sel.any():
                    rows.append(_row(f"{f}={lab}", y[sel].sum(), sel.sum(), rep[sel].sum(0), prob))
    return pd.DataFrame(rows)
