"""Operating characteristics of dose-escalation designs on true dose-toxicity scenarios.

Each (scenario, design) pair is simulated ``trials`` times; trial ``i`` of scenario ``s`` draws its
DLTs from ``numpy.random.default_rng([seed, s, i])``, so results do not depend on the number of
workers or on the order in which chunks finish. Chunks of trials run on ``dask.distributed`` (a
local cluster by default, an existing scheduler by address) or, with ``workers=0``, in this process.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError
from bayes_blina.safety.designs import Design


@dataclass(frozen=True)
class OperatingCharacteristics:
    """``table``: one row per (scenario, design); ``trials``: one row per simulated trial."""

    table: pd.DataFrame
    trials: pd.DataFrame
    wall_s: float


def _chunk(design: Design, true_p: np.ndarray, s: int, start: int, stop: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, stop):
        t = design.run(true_p, np.random.default_rng([seed, s, i]))
        rows.append({"trial": i, "selected": -1 if t.selected is None else t.selected, "n": t.n.tolist(),
                     "dlt": t.dlt.tolist(), "stopped_early": t.stopped_early})
    return rows


def _summarise(rows: pd.DataFrame, true_p: np.ndarray, target: tuple[float, float]) -> dict[str, Any]:
    n = np.array(rows["n"].tolist(), dtype=float)
    dlt = np.array(rows["dlt"].tolist(), dtype=float)
    sel = rows["selected"].to_numpy()
    in_target = (true_p >= target[0]) & (true_p < target[1])
    over = true_p >= target[1]
    out: dict[str, Any] = {f"p_select_{k}": float(np.mean(sel == k)) for k in range(len(true_p))}
    out["p_select_none"] = float(np.mean(sel == -1))
    out["p_select_target"] = float(np.mean(in_target[np.maximum(sel, 0)] & (sel >= 0)))
    out["p_select_overdose"] = float(np.mean(over[np.maximum(sel, 0)] & (sel >= 0)))
    out.update({f"mean_n_{k}": float(n[:, k].mean()) for k in range(len(true_p))})
    out["mean_n"] = float(n.sum(axis=1).mean())
    out["mean_n_overdose"] = float(n[:, over].sum(axis=1).mean())
    out["mean_dlt"] = float(dlt.sum(axis=1).mean())
    out["p_stopped_early"] = float(rows["stopped_early"].mean())
    return out


def simulate_designs(designs: Sequence[Design], scenarios: Mapping[str, Sequence[float]], *, trials: int = 1000,
                     seed: int = 1, target: tuple[float, float] = (0.16, 0.33), scheduler: str | None = None,
                     workers: int = 2, chunk: int = 100, progress: bool = False) -> OperatingCharacteristics:
    """Simulate every design on every scenario and tabulate their operating characteristics.

    Parameters
    ----------
    designs : sequence of Design
        E.g. ``[ThreePlusThree(), BOIN(target=0.25), CRM(...), BlrmEwoc(doses=...)]``; all must
        have the scenarios' number of levels.
    scenarios : mapping of str to sequence of float
        True DLT probability per dose level, non-decreasing, by scenario name.
    trials : int
        Simulated trials per (scenario, design).
    seed : int
        Base seed (see module docstring).
    target : (float, float)
        The target interval of the DLT rate: ``p_select_target`` is the probability of selecting a
        level whose true rate lies in it, ``p_select_overdose`` / ``mean_n_overdose`` concern the
        levels at or above its upper end.
    scheduler, workers, chunk
        A running dask scheduler's address, or the number of local worker processes (0: in this
        process, no dask); trials per task.
    progress : bool
        Print ``done/total`` tasks to stderr.

    Returns
    -------
    OperatingCharacteristics
        ``table`` columns: ``scenario``, ``design``, ``trials``, ``p_select_<k>`` per level,
        ``p_select_none``, ``p_select_target``, ``p_select_overdose``, ``mean_n_<k>``, ``mean_n``,
        ``mean_n_overdose``, ``mean_dlt``, ``p_stopped_early``.

    Raises
    ------
    BayesBlinaError
        For an empty design list, a scenario that is not a non-decreasing vector of probabilities,
        scenarios of different lengths, or ``trials < 1``.
    """
    if not designs:
        raise BayesBlinaError("no design to simulate")
    if trials < 1 or chunk < 1:
        raise BayesBlinaError(f"need trials >= 1 and chunk >= 1 (found {trials}, {chunk})")
    names = [d.name for d in designs]
    if len(set(names)) != len(names):
        raise BayesBlinaError(f"design names must be unique (found {names})")
    truth = {}
    for name, p in scenarios.items():
        p = np.asarray(p, dtype=float)
        if p.ndim != 1 or len(p) < 2 or not np.all((p > 0) & (p < 1)) or np.any(np.diff(p) < 0):
            raise BayesBlinaError(f"scenario {name!r}: true DLT rates must be a non-decreasing list of at least two "
                                  f"probabilities in (0, 1) (found {p.tolist()})")
        truth[name] = p
    if len({len(p) for p in truth.values()}) != 1:
        raise BayesBlinaError("every scenario needs the same number of dose levels")
    jobs = [(s, name, d, start, min(start + chunk, trials))
            for s, name in enumerate(truth) for d in designs for start in range(0, trials, chunk)]
    t0 = time.perf_counter()
    results: list[tuple[str, str, list[dict[str, Any]]]] = []

    def report(done: int) -> None:
        if progress:
            print(f"\rdesign simulation: {done}/{len(jobs)} tasks", end="" if done < len(jobs) else "\n",
                  file=sys.stderr, flush=True)

    if scheduler is None and workers == 0:
        for k, (s, name, d, a, b) in enumerate(jobs, 1):
            results.append((name, d.name, _chunk(d, truth[name], s, a, b, seed)))
            report(k)
    else:
        from dask.distributed import as_completed

        from bayes_blina._dask import dask_client

        with dask_client(scheduler, workers) as client:
            futures = {client.submit(_chunk, d, truth[name], s, a, b, seed, pure=False): (name, d.name)
                       for s, name, d, a, b in jobs}
            for k, fut in enumerate(as_completed(futures), 1):
                results.append((*futures[fut], fut.result()))
                report(k)
    per_trial = pd.DataFrame([{"scenario": sc, "design": dn, **r} for sc, dn, rows in results for r in rows])
    per_trial = per_trial.sort_values(["scenario", "design", "trial"], kind="mergesort").reset_index(drop=True)
    table = []
    for sc in truth:
        for dn in names:
            g = per_trial[(per_trial["scenario"] == sc) & (per_trial["design"] == dn)]
            table.append({"scenario": sc, "design": dn, "trials": len(g), **_summarise(g, truth[sc], target)})
    return OperatingCharacteristics(table=pd.DataFrame(table), trials=per_trial, wall_s=time.perf_counter() - t0)
