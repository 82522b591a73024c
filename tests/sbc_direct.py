"""Test helpers for simulation-based calibration: a model swapped to a simulation's data, and the
model built directly on those data (the two must have the same log density)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from bayes_blina.checks import sbc


def swapped_model(ctx: dict, data: dict):
    """SBC's swappable model with the simulation's data put in by ``Model.set_data``."""
    model = sbc._swappable_model(ctx)
    names = {v.name for v in model.data_vars}
    for k, v in sbc._data_updates(ctx, data).items():
        if k in names:
            model.set_data(k, v)
    return model, names


def direct_model(ctx: dict, data: dict):
    """The spec's model built, as for a fit (fixed censoring flags), on the simulation's data."""
    fam = sbc._fit_family(ctx)
    A = dict(ctx["prepared"].arrays)
    for q in sbc._trajectory_prefixes(data):
        A.update(sbc.sim_rows(data, q))
    for key in ("cell_y", "agg_r", "cr_y"):
        if key in data:
            A[key] = np.asarray(data[key]).astype(np.int64)
    return fam.build(replace(ctx["prepared"], arrays=A))
