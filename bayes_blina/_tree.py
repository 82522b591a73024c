"""Groups of a fit's results (an ArviZ 1.x ``xarray.DataTree``) as plain ``xarray.Dataset``.

``idata.posterior`` is a DataTree node: it indexes one variable like a Dataset, but has no
``stack``, ``to_dataframe`` or selection of several variables. Code that needs those takes the
group through :func:`as_dataset`, which also accepts a Dataset (tests and tools that build one).
"""
from __future__ import annotations

from typing import Any


def as_dataset(group: Any):
    """The group as an ``xarray.Dataset`` (a DataTree node's own variables; a Dataset unchanged).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"a": (("chain", "draw"), np.zeros((2, 3)))})})
    >>> type(as_dataset(tree.posterior)).__name__, list(as_dataset(tree.posterior).data_vars)
    ('Dataset', ['a'])
    """
    to_dataset = getattr(group, "to_dataset", None)
    if to_dataset is None or not hasattr(group, "children"):  # a Dataset (DataArray.to_dataset differs)
        return group
    return to_dataset()
