"""The slowest-mixing quantities of a fit, element by element (what a reviewer looks at first).

:func:`slowest_quantities` ranks every scalar element of every posterior variable by its bulk ESS
(ties by R-hat) and returns the ``k`` slowest with their diagnostics; :func:`slowest_draws` gives
their draws as one small dataset, one variable per element, for a rank plot
(:func:`bayes_blina.report.figures.rank_figure`). Computation only: nothing is drawn here.

Examples
--------
>>> import numpy as np, xarray as xr
>>> rng = np.random.default_rng(1)
>>> post = xr.Dataset({"a": (("chain", "draw"), rng.normal(size=(2, 200))),
...                    "b": (("chain", "draw", "k"), np.cumsum(rng.normal(size=(2, 200, 3)), axis=1))},
...                   coords={"k": ["x", "y", "z"]})
>>> table = slowest_quantities(post, k=2)
>>> list(table["variable"])
['b', 'b']
>>> sorted(slowest_draws(post, table).data_vars) == sorted(table["quantity"])
True
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayes_blina._tree import as_dataset

__all__ = ["slowest_quantities", "slowest_draws"]


def _posterior(idata_or_posterior) -> xr.Dataset:
    if isinstance(idata_or_posterior, xr.Dataset):
        return idata_or_posterior
    return as_dataset(idata_or_posterior.posterior)


def _label(name: str, da: xr.DataArray, idx: tuple[int, ...]) -> str:
    if not idx:
        return name
    return f"{name}[{','.join(str(da[d].values[i]) if d in da.coords else str(i) for d, i in zip(da.dims, idx))}]"


def slowest_quantities(idata, k: int = 4) -> pd.DataFrame:
    """The ``k`` posterior elements with the smallest bulk ESS.

    Parameters
    ----------
    idata : xarray.DataTree or xarray.Dataset
        A fit's results (with ``posterior``) or the posterior itself (``chain``, ``draw``, ...).
    k : int, default 4
        How many elements.

    Returns
    -------
    pandas.DataFrame
        ``quantity`` (label, e.g. ``"sd_log_tpeak[IL6]"``), ``variable``, ``index`` (positions
        along the variable's other dimensions), ``ess_bulk``, ``ess_tail``, ``rhat``; slowest first.
        Elements whose diagnostics are not finite (constants) are left out.
    """
    import arviz as az

    post = _posterior(idata)
    post = post[[v for v, da in post.data_vars.items() if np.issubdtype(da.dtype, np.number)]]
    with np.errstate(invalid="ignore", divide="ignore"):
        ess_b = az.ess(post, method="bulk")
        ess_t = az.ess(post, method="tail")
        rhat = az.rhat(post, method="rank")
    rows: list[dict[str, Any]] = []
    for name, da in ess_b.data_vars.items():
        eb, et, rh = (np.asarray(x[name].values, dtype=float) for x in (ess_b, ess_t, rhat))
        for idx in np.ndindex(da.shape):
            if not np.isfinite(eb[idx]):
                continue
            rows.append({"quantity": _label(name, da, idx), "variable": name, "index": dict(zip(da.dims, idx)),
                         "ess_bulk": float(eb[idx]), "ess_tail": float(et[idx]), "rhat": float(rh[idx])})
    if not rows:
        return pd.DataFrame(columns=["quantity", "variable", "index", "ess_bulk", "ess_tail", "rhat"])
    table = pd.DataFrame(rows)
    table = table.assign(_r=-table["rhat"]).sort_values(["ess_bulk", "_r"], kind="stable").drop(columns="_r")
    return table.head(k).reset_index(drop=True)


def slowest_draws(idata, table: pd.DataFrame) -> xr.Dataset:
    """The draws of the elements of ``table`` (from :func:`slowest_quantities`), one variable each,
    named by its ``quantity`` label, with dimensions ``(chain, draw)``."""
    post = _posterior(idata)
    return xr.Dataset({row.quantity: post[row.variable].isel(row.index).drop_vars(
        [c for c in post[row.variable].isel(row.index).coords if c not in ("chain", "draw")])
        for row in table.itertuples()})
