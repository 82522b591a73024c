"""The CR-by-subgroup table (the pediatric paper's Fig 2 as numbers, plus Bayesian estimates).

Computation only (it fits the pooled model when asked); ``report/figures.py`` draws it.

For every aggregate row of the endpoint: ``responders, n, rate`` and the exact Clopper-Pearson
interval (as papers print it), then

* **unpooled**: the closed-form posterior of the row alone, ``Beta(a + r, b + n - r)`` with a
  ``Beta(a, b)`` prior (default Beta(1, 1), the response model's default for a typical rate);
* **pooled**: the partial-pooling posterior of the :class:`~bayes_blina.families.SubgroupModel`,
  in which the levels of one family (e.g. the three age groups) borrow strength from each other.
  Families with a single level have nothing to pool: their pooled columns repeat the unpooled ones.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bayes_blina.families.subgroups import subgroup_blocks
from bayes_blina.diagnostics import gate_or_raise
from bayes_blina.stats import beta_binomial_posterior, clopper_pearson

COLUMNS = ["study", "family", "level", "regimen", "responders", "n", "rate", "exact_lower", "exact_upper",
           "unpooled_median", "unpooled_lower", "unpooled_upper", "pooled_median", "pooled_lower",
           "pooled_upper", "source"]


def exact_table(aggregates: pd.DataFrame, *, endpoint: str = "CR", prob: float = 0.95,
                prior: tuple[float, float] = (1.0, 1.0)) -> pd.DataFrame:
    """Exact and unpooled columns of the subgroup table (no MCMC)."""
    a = subgroup_blocks(aggregates, endpoint)
    r, n = a["responders"].to_numpy(float), a["n"].to_numpy(float)
    lo, hi = clopper_pearson(r, n, prob)
    post = beta_binomial_posterior(r, n, *prior)
    q = (1 - prob) / 2
    out = pd.DataFrame({
        "study": a["study"].astype(str), "family": a["family"].astype(str), "level": a["level"].astype(str),
        "regimen": a["regimen"].astype(str), "responders": a["responders"].astype(int), "n": a["n"].astype(int),
        "rate": r / n, "exact_lower": lo, "exact_upper": hi,
        "unpooled_median": post.median(), "unpooled_lower": post.ppf(q), "unpooled_upper": post.ppf(1 - q),
        "source": a["source"].astype(str) if "source" in a else "",
    })
    out["_block"] = a["block"].to_numpy()
    out["_cell"] = (a["block"] + "|" + a["level"].astype(str)).to_numpy()
    return out


def cr_subgroup_table(dataset, *, prob: float = 0.95, endpoint: str = "CR", pooled: bool = True,
                      prior: tuple[float, float] = (1.0, 1.0), spec="subgroups", seed: int | None = None,
                      chains: int | None = None, draws: int | None = None, tune: int | None = None,
                      backend: str | None = None, allow_unconverged: bool = False,
                      progress: bool = False) -> pd.DataFrame:
    """The full subgroup table: exact, unpooled and (optionally) partially pooled estimates.

    Parameters
    ----------
    dataset : Dataset
        Must have an aggregates table.
    prob : float
        Interval probability for all three kinds of interval.
    pooled : bool
        Fit the partial-pooling model (MCMC). Without it, the pooled columns are empty.
    prior : (a, b)
        Beta prior of the unpooled posterior.
    spec : str
        Spec of the subgroup model (``models/subgroups.toml`` by default).
    allow_unconverged : bool
        Produce the table even if the pooled fit fails the convergence gate (the table's
        ``attrs['converged']`` is then False).

    Raises
    ------
    ConvergenceError
        If the pooled fit fails the gate and ``allow_unconverged`` is false.
    """
    from bayes_blina.inference import fit

    table = exact_table(dataset.aggregates, endpoint=endpoint, prob=prob, prior=prior)
    for c in ("pooled_median", "pooled_lower", "pooled_upper"):
        table[c] = np.nan
    table.attrs["converged"] = True
    if pooled:
        res = fit(spec, dataset, seed=seed, chains=chains, draws=draws, tune=tune, backend=backend,
                  progress=progress)
        gate_or_raise(res.verdict, allow_unconverged)
        table.attrs["converged"] = res.verdict.passed
        table.attrs["verdict"] = str(res.verdict)
        p = res.idata.posterior["p"].stack(s=("chain", "draw"))
        cells = [str(c) for c in p.coords["cell"].values]
        q = (1 - prob) / 2
        stats_ = {c: (np.median(v), np.quantile(v, q), np.quantile(v, 1 - q)) for c, v in zip(cells, p.values)}
        for i, cell in enumerate(table["_cell"]):
            if cell in stats_:
                table.loc[i, ["pooled_median", "pooled_lower", "pooled_upper"]] = stats_[cell]
            else:  # single-level block: nothing to pool
                table.loc[i, ["pooled_median", "pooled_lower", "pooled_upper"]] = table.loc[
                    i, ["unpooled_median", "unpooled_lower", "unpooled_upper"]].to_numpy(float)
    out = table[COLUMNS].copy()
    out.attrs.update(table.attrs)
    return out
