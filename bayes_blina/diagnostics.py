"""The convergence gate: rank-normalised R-hat, bulk and tail ESS, divergences and E-BFMI.

Every fit is judged by :func:`convergence_verdict`; summaries and publication tables refuse a fit
that fails unless the caller explicitly overrides (and then say so loudly).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bayes_blina._tree import as_dataset
from bayes_blina.errors import ConvergenceError
from bayes_blina.spec import GateConfig


@dataclass
class Verdict:
    """Outcome of the convergence gate.

    Attributes
    ----------
    passed : bool
        True when every check passed.
    max_rhat, min_ess_bulk, min_ess_tail : float
        Worst values over all posterior quantities (quantities whose R-hat is undefined, e.g.
        constants, are skipped; non-finite draws are a failure of their own).
    n_divergent : int
        Divergent transitions after tuning, all chains.
    min_bfmi : float
        Lowest per-chain E-BFMI (NaN when the sampler did not record energy).
    worst : dict
        Which quantity gave the worst R-hat and ESS.
    failures : list of str
        One sentence per failed check.
    thresholds : dict
        The gate thresholds used.
    """

    passed: bool
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    n_divergent: int
    min_bfmi: float
    n_draws: int
    n_chains: int
    worst: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), as stored in a fit's provenance."""
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Verdict":
        """The verdict of :meth:`to_dict`'s record."""
        d = {k: (float("nan") if v is None and k in ("max_rhat", "min_ess_bulk", "min_ess_tail", "min_bfmi") else v)
             for k, v in d.items()}
        return cls(**d)

    def __str__(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        line = (f"convergence gate {status}: max R-hat {self.max_rhat:.3f}, min bulk ESS {self.min_ess_bulk:.0f}, "
                f"min tail ESS {self.min_ess_tail:.0f}, divergences {self.n_divergent}, "
                f"min E-BFMI {self.min_bfmi:.2f} ({self.n_chains} chains x {self.n_draws} draws)")
        if self.failures:
            line += "\n" + "\n".join(f"  - {f}" for f in self.failures)
        return line


def _worst(ds, reducer, pick):
    best_val, best_name = None, ""
    for name, da in ds.data_vars.items():
        vals = np.asarray(da.values, dtype=float).ravel()
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        v = reducer(vals)
        if best_val is None or pick(v, best_val):
            best_val, best_name = v, name
    return (float("nan") if best_val is None else float(best_val)), best_name


def convergence_verdict(idata, gate: GateConfig | None = None, var_names: list[str] | None = None) -> Verdict:
    """Judge a posterior against the gate.

    Parameters
    ----------
    idata : xarray.DataTree
        Must have ``posterior``; ``sample_stats`` (divergences, energy) is used when present.
    gate : GateConfig, optional
        Thresholds; the defaults are R-hat <= 1.01, bulk and tail ESS >= 400, no divergences,
        E-BFMI >= 0.3.
    var_names : list of str, optional
        Quantities to judge (default: every posterior variable).
    """
    import arviz as az

    gate = gate or GateConfig()
    post = as_dataset(idata.posterior)
    if var_names is not None:
        post = post[var_names]
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat = az.rhat(post, method="rank")
        ess_b = az.ess(post, method="bulk")
        ess_t = az.ess(post, method="tail")
    max_rhat, rhat_name = _worst(rhat, np.max, lambda a, b: a > b)
    min_eb, eb_name = _worst(ess_b, np.min, lambda a, b: a < b)
    min_et, et_name = _worst(ess_t, np.min, lambda a, b: a < b)
    n_div, min_bfmi = 0, float("nan")
    ss = getattr(idata, "sample_stats", None)
    if ss is not None:
        if "diverging" in ss:
            n_div = int(np.asarray(ss["diverging"].values).sum())
        if "energy" in ss:
            energy = ss["energy"]
            if energy.dims[:2] == ("chain", "draw") and energy.ndim == 2 and energy.sizes["draw"] > 1:
                min_bfmi = float(np.min(az.bfmi(as_dataset(ss)[["energy"]])["energy"].values))
            # energy of another shape (e.g. one chain of approximate draws): reported as missing
    failures = []
    nonfinite = {name: int((~np.isfinite(np.asarray(da.values, dtype=float))).sum())
                 for name, da in post.data_vars.items() if np.issubdtype(da.dtype, np.number)}
    nonfinite = {k: v for k, v in nonfinite.items() if v}
    if nonfinite:  # R-hat and ESS skip NaN quantities, so such draws would otherwise pass unseen
        failures.append("non-finite draws (NaN or infinite): "
                        + ", ".join(f"{v} in {k}" for k, v in sorted(nonfinite.items())))
    if n_chains < 2:
        failures.append("R-hat needs at least 2 chains")
    if not np.isfinite(max_rhat) or max_rhat > gate.max_rhat:
        failures.append(f"R-hat {max_rhat:.3f} of {rhat_name} exceeds {gate.max_rhat}")
    if not np.isfinite(min_eb) or min_eb < gate.min_ess_bulk:
        failures.append(f"bulk ESS {min_eb:.0f} of {eb_name} is below {gate.min_ess_bulk:.0f}")
    if not np.isfinite(min_et) or min_et < gate.min_ess_tail:
        failures.append(f"tail ESS {min_et:.0f} of {et_name} is below {gate.min_ess_tail:.0f}")
    if n_div > gate.max_divergences:
        failures.append(f"{n_div} divergent transitions (at most {gate.max_divergences} allowed)")
    if np.isfinite(min_bfmi) and min_bfmi < gate.min_bfmi:
        failures.append(f"E-BFMI {min_bfmi:.2f} is below {gate.min_bfmi}")
    return Verdict(
        passed=not failures, max_rhat=max_rhat, min_ess_bulk=min_eb, min_ess_tail=min_et,
        n_divergent=n_div, min_bfmi=min_bfmi, n_draws=int(n_draws), n_chains=int(n_chains),
        worst={"rhat": rhat_name, "ess_bulk": eb_name, "ess_tail": et_name},
        failures=failures, thresholds=gate.model_dump(),
    )


def gate_or_raise(verdict: Verdict, allow_unconverged: bool) -> None:
    """Refuse (raise :class:`~bayes_blina.errors.ConvergenceError`) a fit that failed the gate
    unless explicitly allowed (the fit's numbers are then shown marked as unreliable)."""
    if not verdict.passed and not allow_unconverged:
        raise ConvergenceError(
            f"refusing to summarise a fit that failed the convergence gate:\n{verdict}\n"
            "Refit with more draws/tuning or a better parameterisation, or pass --allow-unconverged "
            "(allow_unconverged=True) to see the numbers anyway, marked as unreliable.")
