"""Biomarker planning: the power to detect a biomarker → CR link as a function of study size.

The question a trial team asks of the joint model (:mod:`bayes_blina.families.joint`) is: *with N
patients, how likely is the next study to show that T-cell expansion (or the IL-10 peak) raises
the chance of CR?* "Show" is a decision rule on the posterior of the new study:
``P(beta > 0 | new data) > threshold`` (``beta``: log odds ratio per doubling; default threshold
0.95).

Virtual studies are simulated from the fitted joint model's posterior:

1. pick a posterior draw ``s`` at random;
2. draw ``N`` patients with replacement from the fitted patients, each carrying its covariates,
   its biomarker values in draw ``s`` (the noise-free log2 T-cell expansion and log2 IL-10 peak of
   its underlying trajectory) and its CR probability in draw ``s``;
3. draw each patient's CR from that probability;
4. each patient's biomarker is observed with the uncertainty the study's sampling design leaves
   about it: ``x_obs = x + N(0, se)`` with ``se`` the posterior sd of that patient's biomarker in
   the fit (so a design like the fitted one is assumed).

Each virtual study is refitted by MCMC with the CR sub-model of the joint model in its
measurement-error form (biomarkers latent, ``x_obs ~ N(x, se)``, ``x ~ N(mu_x, sd_x)``,
``logit P(CR) = alpha + covariates + beta · x``): the same uncertainty propagation as the joint
model (a plug-in of ``x_obs`` would overstate the power), at a cost of seconds per study instead of
minutes. The refit model is compiled once per worker (nutpie, data swapped with ``with_data``).

Simulations run in parallel on ``dask.distributed``: a local cluster by default, or an existing
cluster given by its scheduler address; progress is printed as studies finish.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError

__all__ = ["BiomarkerSource", "PowerResult", "simulate_study", "refit_study", "biomarker_power",
           "source_from_joint"]


@dataclass
class BiomarkerSource:
    """What virtual studies are drawn from (usually :func:`source_from_joint` of a joint fit).

    Attributes
    ----------
    x : ndarray (draw, patient, biomarker)
        Noise-free biomarker values (log2 scale) of the fitted patients, per posterior draw.
    se : ndarray (patient, biomarker)
        Posterior sd of each patient's biomarker (its measurement uncertainty under the design).
    p_cr : ndarray (draw, patient)
        CR probability of each fitted patient, per posterior draw.
    covariates : ndarray (patient, C)
        Covariate columns of the CR model (0/1 contrasts), possibly with C = 0.
    biomarkers : list of str
        Names, e.g. ``["tcell_expansion", "il10_peak"]``.
    covariate_names : list of str
        Names of the covariate columns.
    """

    x: np.ndarray
    se: np.ndarray
    p_cr: np.ndarray
    covariates: np.ndarray
    biomarkers: list[str]
    covariate_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        s, n, k = self.x.shape
        if self.se.shape != (n, k) or self.p_cr.shape != (s, n) or self.covariates.shape[0] != n:
            raise BayesBlinaError(
                f"inconsistent shapes: x {self.x.shape}, se {self.se.shape}, p_cr {self.p_cr.shape}, "
                f"covariates {self.covariates.shape} (expected (S, N, K), (N, K), (S, N), (N, C))")
        if len(self.biomarkers) != k:
            raise BayesBlinaError(f"{k} biomarker columns but names {self.biomarkers}")
        if not (np.all(self.se >= 0) and np.all((self.p_cr >= 0) & (self.p_cr <= 1))):
            raise BayesBlinaError("se must be >= 0 and p_cr within [0, 1]")


@dataclass
class PowerResult:
    """Result of :func:`biomarker_power`.

    Attributes
    ----------
    table : DataFrame
        One row per study size: ``n``, ``sims``, for each biomarker the power (share of studies with
        ``P(beta > 0) > threshold``) and its Monte Carlo standard error, refits failing the
        convergence check, mean seconds per refit.
    studies : DataFrame
        One row per simulated study.
    wall_s : float
        Wall time of the whole run.
    """

    table: pd.DataFrame
    studies: pd.DataFrame
    wall_s: float


def source_from_joint(stored, *, max_draws: int = 1000, seed: int = 0) -> BiomarkerSource:
    """The virtual-study source of a stored fit of the ``joint`` family.

    Parameters
    ----------
    stored : Fit
        A joint fit with a CR part and at least one biomarker.
    max_draws : int
        Posterior draws kept (a random subset when the fit has more).
    seed : int
        Seed of that subset.

    Returns
    -------
    BiomarkerSource
        Per CR patient: each biomarker on the model's log2 scale (``log2`` fold change for
        ``tcell_expansion``, ``log2(peak / peak_ref)`` for cytokine peaks) and ``p_cr`` per draw;
        the CR covariates as 0/1 contrasts against each factor's first level (a patient with an
        unknown level gets zeros, as the joint model gives it the mean effect).
    """
    from bayes_blina.families import JointModel, get_family, require_family
    from bayes_blina.families.joint import BIOMARKERS, PARTS

    require_family(stored.family_name, JointModel, "biomarker planning", fit=stored)
    opts = stored.options
    biomarkers = list(opts.get("biomarkers", []))
    post = as_dataset(stored.idata.posterior).stack(sample=("chain", "draw")).transpose("sample", ...)
    if not biomarkers or "p_cr" not in post:
        raise BayesBlinaError("the joint fit has no CR part with biomarkers (options biomarkers, response_part)")
    const = as_dataset(stored.idata.constant_data)
    rng = np.random.default_rng(seed)
    n_total = post.sizes["sample"]
    pick = np.sort(rng.choice(n_total, size=min(max_draws, n_total), replace=False))
    family = get_family("joint")(opts)  # for log_ref: the biomarkers' reference values
    cols = []
    for b in biomarkers:
        bm = BIOMARKERS[b]
        prefix = PARTS[bm.part][1]
        da = post[prefix + bm.key].sel({prefix + "analyte": bm.analyte})
        vals = da.values[pick][:, np.asarray(const[f"cr_{b}_subject"].values, dtype=np.int64)]
        cols.append((vals - family.log_ref(b)) / np.log(2.0))
    x = np.stack(cols, axis=-1)
    covs, names = [], []
    for f in opts.get("covariates", []):
        if f"cr_{f}" not in const:
            continue
        idx = np.asarray(const[f"cr_{f}"].values, dtype=np.int64)
        levels = [str(v) for v in const[f"cr_{f}"].attrs.get("levels", [])] or \
            [str(v) for v in stored.idata.posterior[f"beta_{f}"].coords[f].values]
        for k in range(1, len(levels)):
            covs.append((idx == k).astype(float))
            names.append(f"{f}={levels[k]}")
    covariates = np.stack(covs, axis=1) if covs else np.zeros((x.shape[1], 0))
    return BiomarkerSource(x=x, se=x.std(axis=0), p_cr=post["p_cr"].values[pick], covariates=covariates,
                           biomarkers=biomarkers, covariate_names=names)


def simulate_study(source: BiomarkerSource, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One virtual study of ``n`` patients (see the module docstring, steps 1-4)."""
    s = rng.integers(source.x.shape[0])
    idx = rng.integers(source.x.shape[1], size=n)
    x = source.x[s, idx]
    y = (rng.random(n) < source.p_cr[s, idx]).astype(np.int64)
    x_obs = x + source.se[idx] * rng.standard_normal(x.shape)
    return {"y": y, "x_obs": x_obs, "se": np.maximum(source.se[idx], 1e-6),
            "covariates": source.covariates[idx], "draw": np.int64(s)}


def _refit_model(n: int, k: int, c: int):
    """The measurement-error CR model for ``n`` patients (data containers, values swapped per study)."""
    import pymc as pm

    coords = {"biomarker": [f"b{j}" for j in range(k)], "covariate": [f"c{j}" for j in range(c)]}
    with pm.Model(coords=coords) as model:
        y = pm.Data("y", np.zeros(n, dtype=np.int64))
        x_obs = pm.Data("x_obs", np.zeros((n, k)))
        se = pm.Data("se", np.ones((n, k)))
        alpha = pm.Normal("alpha", 0.0, 2.0)
        beta = pm.Normal("beta", 0.0, 1.0, dims="biomarker")
        mu_x = pm.Normal("mu_x", 0.0, 3.0, dims="biomarker")
        sd_x = pm.HalfNormal("sd_x", 2.0, dims="biomarker")
        x = pm.Normal("x", mu_x, sd_x, shape=(n, k))
        pm.Normal("x_measured", x, se, observed=x_obs)
        eta = alpha + (x * beta).sum(axis=-1)
        if c:
            xc = pm.Data("xc", np.zeros((n, c)))
            gamma = pm.Normal("gamma", 0.0, 1.0, dims="covariate")
            eta = eta + (xc * gamma).sum(axis=-1)
        pm.Bernoulli("cr", logit_p=eta, observed=y)
    return model


#: Compiled refit models of this process, by (patients, biomarkers, covariates).
_COMPILED: dict[tuple[int, int, int], Any] = {}


def refit_study(study: dict[str, np.ndarray], *, draws: int = 500, tune: int = 500, chains: int = 2,
                seed: int = 0) -> dict[str, Any]:
    """Fit the measurement-error CR model to one virtual study; posterior of each ``beta``.

    Returns
    -------
    dict
        ``p_gt0`` (list per biomarker), ``beta_mean``, ``beta_sd``, ``max_rhat``, ``divergences``,
        ``seconds``.
    """
    import arviz as az
    import nutpie

    t0 = time.perf_counter()
    n, k = study["x_obs"].shape
    c = study["covariates"].shape[1]
    key = (n, k, c)
    if key not in _COMPILED:
        _COMPILED[key] = nutpie.compile_pymc_model(_refit_model(n, k, c))
    data = {"y": study["y"], "x_obs": study["x_obs"], "se": study["se"]}
    if c:
        data["xc"] = study["covariates"].astype(float)
    compiled = _COMPILED[key].with_data(**data)
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed, progress_bar=False,
                          cores=1)
    beta = idata.posterior["beta"].values.reshape(-1, k)
    rhat = az.rhat(idata.posterior.to_dataset()[["alpha", "beta"]])
    return {"p_gt0": (beta > 0).mean(axis=0).tolist(), "beta_mean": beta.mean(axis=0).tolist(),
            "beta_sd": beta.std(axis=0).tolist(),
            "max_rhat": float(max(float(rhat[v].max()) for v in rhat.data_vars)),
            "divergences": int(idata.sample_stats["diverging"].values.sum()),
            "seconds": time.perf_counter() - t0}


def _task(source: BiomarkerSource, n: int, sim: int, seed: int, draws: int, tune: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, n, sim])
    study = simulate_study(source, n, rng)
    out = refit_study(study, draws=draws, tune=tune, seed=int(rng.integers(2**31)))
    return {"n": n, "sim": sim, "posterior_draw": int(study["draw"]), "responders": int(study["y"].sum()), **out}


def biomarker_power(source: BiomarkerSource, sizes: Sequence[int], *, sims: int = 100,
                    threshold: float = 0.95, scheduler: str | None = None, workers: int = 2,
                    draws: int = 500, tune: int = 500, seed: int = 0, progress: bool = True) -> PowerResult:
    """Power to show each biomarker's link to CR, per study size, by simulation and refitting.

    Parameters
    ----------
    source : BiomarkerSource
        What studies are simulated from (:func:`source_from_joint`).
    sizes : sequence of int
        Study sizes N.
    sims : int
        Virtual studies per size.
    threshold : float
        Success when ``P(beta > 0 | study) > threshold``.
    scheduler : str, optional
        Address of a running dask scheduler (e.g. ``tcp://10.0.0.5:8786``); default a local
        cluster of ``workers`` single-threaded processes. ``workers=0`` runs in this process
        (no dask; for tests and debugging).
    workers : int
        Local worker processes.
    draws, tune : int
        MCMC settings of each refit (2 chains).
    seed : int
        Base seed: study ``(n, i)`` uses ``default_rng([seed, n, i])``, so results do not depend on
        the number of workers or the order in which studies finish.
    progress : bool
        Print ``done/total`` to stderr as studies finish.

    Returns
    -------
    PowerResult
    """
    if not 0 < threshold < 1:
        raise BayesBlinaError(f"threshold must be in (0, 1) (found {threshold})")
    sizes = [int(n) for n in sizes]
    if not sizes or min(sizes) < 2 or sims < 1:
        raise BayesBlinaError(f"need sizes >= 2 and sims >= 1 (found sizes={sizes}, sims={sims})")
    jobs = [(n, i) for n in sizes for i in range(sims)]
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []

    def report(done: int) -> None:
        if progress:
            print(f"\rbiomarker power: {done}/{len(jobs)} studies", end="" if done < len(jobs) else "\n",
                  file=sys.stderr, flush=True)

    if scheduler is None and workers == 0:
        for k, (n, i) in enumerate(jobs, 1):
            rows.append(_task(source, n, i, seed, draws, tune))
            report(k)
    else:
        from dask.distributed import as_completed

        from bayes_blina._dask import dask_client

        with dask_client(scheduler, workers) as client:
            src = client.scatter(source, broadcast=True)
            futures = [client.submit(_task, src, n, i, seed, draws, tune, pure=False) for n, i in jobs]
            for k, fut in enumerate(as_completed(futures), 1):
                rows.append(fut.result())
                report(k)
    studies = pd.DataFrame(rows).sort_values(["n", "sim"]).reset_index(drop=True)
    for j, name in enumerate(source.biomarkers):
        studies[f"p_{name}_gt0"] = [p[j] for p in studies["p_gt0"]]
        studies[f"beta_{name}_mean"] = [b[j] for b in studies["beta_mean"]]
    studies = studies.drop(columns=["p_gt0", "beta_mean", "beta_sd"])
    studies["converged"] = (studies["max_rhat"] < 1.05) & (studies["divergences"] == 0)
    table = []
    for n, g in studies.groupby("n"):
        row: dict[str, Any] = {"n": int(n), "sims": len(g)}
        for name in source.biomarkers:
            hit = (g[f"p_{name}_gt0"] > threshold).to_numpy()
            row[f"power_{name}"] = float(hit.mean())
            row[f"mcse_{name}"] = float(np.sqrt(hit.mean() * (1 - hit.mean()) / len(g)))
        row["refits_not_converged"] = int((~g["converged"]).sum())
        row["mean_refit_s"] = float(g["seconds"].mean())
        table.append(row)
    return PowerResult(table=pd.DataFrame(table), studies=studies, wall_s=time.perf_counter() - t0)
