"""Partial pooling of CR rates across the levels of each published subgroup family.

Used for the pediatric Fig 2 style table (``bayes-blina table cr-subgroups``). Every block is one
(study, population, family) partition, e.g. the three age groups of the 70 children at the
recommended dosage. Within a block::

    logit p[level] = logit(p_typical[block]) + sd_level[block] * z[level],   z ~ Normal(0, 1)

Blocks share no parameters, so the joint posterior is the product of independent per-partition
posteriors: each partition is fitted on its own (exact likelihood, no patient counted twice),
in one sampler run. Blocks with a single level have nothing to pool and are left out (their
pooled estimate is the unpooled one).
"""
from __future__ import annotations

from typing import Any, override

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from bayes_blina.errors import DataValidationError, Problem
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.priors import Prior


class SubgroupOptions(BaseModel):
    """Options of the subgroup model."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = "CR"
    families: list[str] | None = None  # default: every family with at least two levels


def subgroup_blocks(aggregates: pd.DataFrame, endpoint: str = "CR",
                    families: list[str] | None = None) -> pd.DataFrame:
    """Aggregate rows of ``endpoint`` with a ``block`` label and the block's number of levels."""
    a = aggregates.copy()
    if "endpoint" not in a:
        a["endpoint"] = "CR"
    a = a[a["endpoint"].astype(str) == endpoint].copy()
    if "population" not in a:
        a["population"] = "all"
    a["population"] = a["population"].fillna("all").astype(str).replace("", "all")
    if families is not None:
        a = a[a["family"].astype(str).isin(families)]
    a["block"] = a["study"].astype(str) + "|" + a["population"] + "|" + a["family"].astype(str)
    a["block_levels"] = a.groupby("block")["level"].transform("count")
    return a.reset_index(drop=True)


class SubgroupModel(ModelFamily):
    """Independent partial-pooling models, one per subgroup family (see module docstring).

    Default priors: ``p_typical`` Beta(1, 1) (typical rate of a block), ``sd_level`` HalfNormal(1.0)
    (spread of the level effects on the logit scale).
    """

    name = "subgroups"
    Options = SubgroupOptions

    @override
    def default_priors(self) -> dict[str, Prior]:
        return {"p_typical": Prior("Beta", alpha=1.0, beta=1.0), "sd_level": Prior("HalfNormal", sigma=1.0)}

    @override
    def prepare(self, dataset) -> Prepared:
        if dataset.aggregates is None:
            raise DataValidationError([Problem("aggregates.csv", None, None,
                                               "the subgroup model needs an aggregates table")])
        a = subgroup_blocks(dataset.aggregates, self.options.endpoint, self.options.families)
        left_out = a[a["block_levels"] < 2]
        a = a[a["block_levels"] >= 2].reset_index(drop=True)
        if a.empty:
            raise DataValidationError([Problem(
                "aggregates.csv", "family", None,
                f"no subgroup family with two or more levels for endpoint {self.options.endpoint!r}")])
        blocks = list(dict.fromkeys(a["block"]))
        cells = (a["block"] + "|" + a["level"].astype(str)).tolist()
        if len(set(cells)) != len(cells):
            dup = pd.Series(cells)[pd.Series(cells).duplicated()].tolist()
            raise DataValidationError([Problem("aggregates.csv", "level", None,
                                               "each level may appear once per study, population and family",
                                               ", ".join(dup[:5]))])
        arrays = {
            "r": a["responders"].to_numpy(dtype=np.int64),
            "n": a["n"].to_numpy(dtype=np.int64),
            "cell_block": np.array([blocks.index(b) for b in a["block"]], dtype=np.int64),
        }
        use: dict[str, Any] = {
            "cells": cells,
            "left_out": [{"block": b, "reason": "single level: nothing to pool"} for b in left_out["block"].unique()],
        }
        return Prepared(arrays=arrays, coords={"block": blocks, "cell": cells}, data_use=use)

    @override
    def build(self, prepared: Prepared):
        import pymc as pm

        A = prepared.arrays
        with pm.Model(coords=prepared.coords) as model:
            p_typ = self.priors["p_typical"].create("p_typical", dims="block")
            sd = self.priors["sd_level"].create("sd_level", dims="block")
            z = pm.Normal("z", 0.0, 1.0, dims="cell")
            eta = pm.math.logit(p_typ)[A["cell_block"]] + sd[A["cell_block"]] * z
            p = pm.Deterministic("p", pm.math.invlogit(eta), dims="cell")
            pm.Binomial("y", n=A["n"], p=p, observed=A["r"], dims="cell")
        return model

    @override
    def summary_vars(self) -> list[str]:
        return ["p_typical", "sd_level", "p"]
