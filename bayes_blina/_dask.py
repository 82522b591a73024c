"""The one place that opens a dask.distributed client for the package's parallel simulations."""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def dask_client(scheduler: str | None, workers: int):
    """A client of the running scheduler at ``scheduler``, or of a local cluster of ``workers``
    single-threaded processes (closed on exit)."""
    from dask.distributed import Client, LocalCluster

    cluster = None if scheduler else LocalCluster(n_workers=max(1, workers), threads_per_worker=1,
                                                  processes=True, dashboard_address=":0")
    try:
        with Client(scheduler or cluster) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()
