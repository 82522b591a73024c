"""PSIS-LOO with Pareto-k diagnostics, and comparison of fits on the same data."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError


def loo_table(fits: dict[str, object], var_name: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSIS-LOO of each fit and their comparison.

    Parameters
    ----------
    fits : dict of name -> StoredFit
        Fits of the same data (same ``data.sha256`` in provenance), e.g. with and without a factor.
    var_name : str, optional
        The ``log_likelihood`` variable to use (default: the only one, or ``y``).

    Returns
    -------
    per_fit : DataFrame
        ``fit, elpd_loo, se, p_loo, n_obs, k_good, k_ok, k_bad, k_very_bad`` (Pareto-k counts in
        (-inf, 0.5], (0.5, 0.7], (0.7, 1], (1, inf)); ``k_bad + k_very_bad > 0`` means the LOO
        estimate is unreliable for those observations.
    comparison : DataFrame
        ArviZ's comparison (rank, elpd difference and its SE, weight), empty for a single fit.

    Raises
    ------
    BayesBlinaError
        If a fit has no pointwise log-likelihood, or the fits were made on different data.
    """
    import arviz as az

    hashes = {name: f.provenance["data"]["sha256"] for name, f in fits.items()}
    if len(set(hashes.values())) > 1:
        raise BayesBlinaError("LOO comparison needs fits of the same data; data hashes differ: "
                              + ", ".join(f"{k} {v[:12]}" for k, v in hashes.items()))
    loos, rows = {}, []
    for name, f in fits.items():
        idata = f.idata
        if "log_likelihood" not in idata.groups() or not idata.log_likelihood.data_vars:
            raise BayesBlinaError(f"fit {name} has no pointwise log-likelihood")
        names = list(idata.log_likelihood.data_vars)
        v = var_name or ("y" if "y" in names else names[0] if len(names) == 1 else None)
        if v is None:
            raise BayesBlinaError(f"fit {name} has several log-likelihood variables {names}; choose one")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the Pareto-k warning is reported in the table instead
            res = az.loo(idata, var_name=v, pointwise=True)
        k = np.asarray(res.pareto_k).ravel()
        loos[name] = res
        rows.append({"fit": name, "elpd_loo": float(res.elpd_loo), "se": float(res.se), "p_loo": float(res.p_loo),
                     "n_obs": int(k.size), "k_good": int((k <= 0.5).sum()), "k_ok": int(((k > 0.5) & (k <= 0.7)).sum()),
                     "k_bad": int(((k > 0.7) & (k <= 1)).sum()), "k_very_bad": int((k > 1).sum())})
    comparison = pd.DataFrame()
    if len(loos) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            comparison = az.compare(loos).reset_index(names="fit")
    return pd.DataFrame(rows), comparison
