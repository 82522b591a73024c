"""Prior distributions as plain data, overridable by name.

A :class:`Prior` is a distribution name from a fixed list plus numeric parameters. Priors are
read from model specifications (TOML), stored in fit provenance (JSON) and turned into PyMC random
variables only when a model is built; nothing is ever evaluated as code.

Examples
--------
>>> Prior("HalfNormal", sigma=0.5)
Prior('HalfNormal', sigma=0.5)
>>> Prior.parse({"dist": "Normal", "mu": 0, "sigma": 1.5})
Prior('Normal', mu=0.0, sigma=1.5)
>>> Prior.parse("Beta(alpha=1, beta=1)")
Prior('Beta', alpha=1.0, beta=1.0)
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np

from bayes_blina.errors import SpecError, UnknownPriorError

#: Distributions a prior may use, with their required parameters (and optional ones).
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Normal": (("mu", "sigma"), ()),
    "StudentT": (("nu", "mu", "sigma"), ()),
    "HalfNormal": (("sigma",), ()),
    "HalfStudentT": (("nu", "sigma"), ()),
    "HalfCauchy": (("beta",), ()),
    "Exponential": (("lam",), ()),
    "Gamma": (("alpha", "beta"), ()),
    "LogNormal": (("mu", "sigma"), ()),
    "Beta": (("alpha", "beta"), ()),
    "Uniform": (("lower", "upper"), ()),
    "TruncatedNormal": (("mu", "sigma"), ("lower", "upper")),
}

_POSITIVE = {"sigma", "beta", "alpha", "lam", "nu"}
_CALL = re.compile(r"^\s*([A-Za-z]+)\s*\((.*)\)\s*$")


class Prior:
    """A prior distribution: a name from :data:`DISTRIBUTIONS` and its parameters.

    Parameters
    ----------
    dist : str
        Distribution name, e.g. ``"Normal"`` or ``"HalfNormal"`` (case-insensitive).
    **params : float
        The distribution's parameters, by PyMC's names.

    Raises
    ------
    SpecError
        If the distribution is unknown or a parameter is missing, unknown or out of range.
    """

    __slots__ = ("dist", "params")

    def __init__(self, dist: str, **params: float):
        canonical = {d.lower(): d for d in DISTRIBUTIONS}.get(str(dist).lower())
        if canonical is None:
            raise SpecError(
                f"unknown prior distribution {dist!r}; expected one of {', '.join(DISTRIBUTIONS)}"
            )
        required, optional = DISTRIBUTIONS[canonical]
        missing = [p for p in required if p not in params]
        extra = [p for p in params if p not in required + optional]
        if missing or extra:
            raise SpecError(
                f"{canonical} prior takes parameters {', '.join(required + optional)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(extra)}" if extra else "")
            )
        clean: dict[str, float] = {}
        for k, v in params.items():
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise SpecError(f"{canonical} prior parameter {k} must be a number (found {v!r})") from None
            if not math.isfinite(x) or (k in _POSITIVE and x <= 0):
                positive = " positive" if k in _POSITIVE else ""
                raise SpecError(f"{canonical} prior parameter {k} must be a finite{positive} number (found {v!r})")
            clean[k] = x
        if canonical == "Uniform" and clean["lower"] >= clean["upper"]:
            raise SpecError("Uniform prior needs lower < upper")
        self.dist = canonical
        self.params = clean

    @classmethod
    def parse(cls, value: "Prior | Mapping[str, Any] | str") -> "Prior":
        """Read a prior from a spec value: a Prior, a mapping with ``dist``, or ``"Name(k=v, ...)"``."""
        if isinstance(value, Prior):
            return value
        if isinstance(value, Mapping):
            if "dist" not in value:
                raise SpecError(f"a prior table needs a 'dist' key (found keys {sorted(value)})")
            params = {k: v for k, v in value.items() if k != "dist"}
            return cls(value["dist"], **params)
        if isinstance(value, str):
            m = _CALL.match(value)
            if not m:
                raise SpecError(f"cannot read prior {value!r}; write it as 'Normal(mu=0, sigma=1)'")
            params: dict[str, str] = {}
            body = m.group(2).strip()
            if body:
                for part in body.split(","):
                    if "=" not in part:
                        raise SpecError(f"cannot read prior {value!r}: parameters must be named (k=v)")
                    k, v = part.split("=", 1)
                    params[k.strip()] = v.strip()
            return cls(m.group(1), **params)
        raise SpecError(f"cannot read prior from {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for TOML/JSON)."""
        return {"dist": self.dist, **self.params}

    def create(self, name: str, **kwargs: Any):
        """Create the PyMC random variable (inside a model context)."""
        import pymc as pm

        return getattr(pm, self.dist)(name, **self.params, **kwargs)

    def quantile(self, q: float, *, draws: int = 20_000, seed: int = 0) -> float:
        """The prior's ``q`` quantile: exact where PyMC has the inverse CDF, else from seeded draws.

        Examples
        --------
        >>> round(Prior("HalfNormal", sigma=1.0).quantile(0.5), 4)
        0.6745
        """
        import pymc as pm

        dist = getattr(pm, self.dist).dist(**self.params)
        try:
            return float(pm.icdf(dist, q).eval())
        except NotImplementedError:
            return float(np.quantile(pm.draw(dist, draws=draws, random_seed=seed), q))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prior) and (self.dist, self.params) == (other.dist, other.params)

    def __hash__(self) -> int:
        return hash((self.dist, tuple(sorted(self.params.items()))))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Prior({self.dist!r}, {inner})"

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.dist}({inner})"


def merge_priors(defaults: Mapping[str, Prior], overrides: Mapping[str, Any] | None,
                 *, model: str = "model") -> dict[str, Prior]:
    """Override default priors by name.

    Parameters
    ----------
    defaults : mapping of str to Prior
        The model's declared default priors.
    overrides : mapping, optional
        User priors by name; values are anything :meth:`Prior.parse` accepts.
    model : str
        Model name for the error message.

    Raises
    ------
    UnknownPriorError
        If an override names no prior of the model; the message lists the valid names.
    """
    merged = dict(defaults)
    for name, value in (overrides or {}).items():
        if name not in defaults:
            raise UnknownPriorError(
                f"{model} has no prior named {name!r}; valid names are: {', '.join(sorted(defaults))}"
            )
        merged[name] = Prior.parse(value)
    return merged
