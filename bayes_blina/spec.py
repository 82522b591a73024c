"""Model specifications: declarative TOML files in ``models/`` read into a validated object.

A spec names a model family, its options, prior overrides, sampler settings and the convergence
gate. It holds no code. Example (``models/response.toml``)::

    name = "response"
    family = "response"
    description = "CR probability by regimen, age group and blast burden"

    [options]
    factors = ["regimen", "age_group", "blast_burden"]

    [priors]
    sd_study = { dist = "HalfNormal", sigma = 0.5 }

    [sampler]
    chains = 4
    draws = 1000
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bayes_blina.errors import SpecError
from bayes_blina.priors import Prior

Backend = Literal["auto", "nutpie", "pymc", "numpyro"]
Method = Literal["nuts", "advi", "fullrank_advi", "pathfinder", "laplace"]
MassMatrix = Literal["diag", "low_rank"]

#: Approximate methods (not MCMC): meant for the inner loops of simulation studies.
APPROXIMATE_METHODS: tuple[str, ...] = ("advi", "fullrank_advi", "pathfinder", "laplace")


class SamplerConfig(BaseModel):
    """Inference settings.

    ``method = "nuts"`` (default) runs MCMC with the back end ``backend``: ``"auto"`` (nutpie when
    installed, the fastest reliable back end measured in ``benchmarks/``), ``"nutpie"``, ``"pymc"``
    (PyMC's NUTS) or ``"numpyro"`` (JAX; on a GPU when JAX sees one).

    ``method`` = ``"advi"``, ``"fullrank_advi"`` (PyMC's variational inference, ``pm.fit``),
    ``"pathfinder"`` or ``"laplace"`` (both need ``pymc-extras``) is a fast *approximate* mode for
    the inner loops of simulation studies: ``chains * draws`` independent draws from the
    approximation, stored as one chain. The convergence gate refuses such fits (they are not MCMC),
    so publication tables need an explicit override. ``approx_steps`` is the number of optimisation
    steps of ADVI (ignored by the other methods); ``backend``, ``tune`` and ``target_accept`` are
    ignored by the approximate methods.

    ``prior_draws > 0`` also draws from the prior (stored as the fit's ``prior`` group, for
    prior predictive checks).

    ``mass_matrix = "low_rank"`` (nutpie only) adapts a diagonal mass matrix plus a low-rank
    correction from the draws and gradients of warm-up, which captures strong posterior
    correlations that a diagonal one cannot (nutpie's ``adaptation="low_rank"``). Each draw
    costs more; for the six-cytokine pulse fit it raised the smallest bulk ESS about fivefold per
    draw (``models/cytokine.toml``). A spec that names another back end together with it is
    refused; choosing another back end for a low-rank spec at fit time (``--backend pymc``,
    :meth:`ModelSpec.with_sampler`) falls back to the diagonal mass matrix with a warning, and the
    fit's provenance records ``diag``.
    """

    model_config = ConfigDict(extra="forbid")
    method: Method = "nuts"
    backend: Backend = "auto"
    chains: int = Field(4, ge=1, le=64)
    draws: int = Field(1000, ge=10)
    tune: int = Field(1000, ge=0)
    target_accept: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = Field(20161003, ge=0)
    cores: int | None = Field(None, ge=1)
    prior_draws: int = Field(0, ge=0)
    approx_steps: int = Field(30_000, ge=100, le=10_000_000)
    mass_matrix: MassMatrix = "diag"

    @property
    def approximate(self) -> bool:
        """True when ``method`` is an approximate (non-MCMC) method."""
        return self.method in APPROXIMATE_METHODS


class GateConfig(BaseModel):
    """Convergence gate thresholds (rank-normalised R-hat, bulk/tail ESS, divergences, E-BFMI)."""

    model_config = ConfigDict(extra="forbid")
    max_rhat: float = Field(1.01, gt=1.0)
    min_ess_bulk: float = Field(400, ge=0)
    min_ess_tail: float = Field(400, ge=0)
    max_divergences: int = Field(0, ge=0)
    min_bfmi: float = Field(0.3, ge=0)


class ModelSpec(BaseModel):
    """A validated model specification."""

    model_config = ConfigDict(extra="forbid")
    name: str
    family: str
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    priors: dict[str, Any] = Field(default_factory=dict)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    text: str = ""
    path: str = ""

    @field_validator("priors")
    @classmethod
    def _parse_priors(cls, v: dict[str, Any]) -> dict[str, Any]:
        return {k: Prior.parse(p).to_dict() for k, p in v.items()}

    def prior_objects(self) -> dict[str, Prior]:
        """The prior overrides as :class:`~bayes_blina.priors.Prior` objects."""
        return {k: Prior.parse(v) for k, v in self.priors.items()}

    def with_sampler(self, **changes: Any) -> "ModelSpec":
        """A copy with some sampler settings changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        if (changes.get("backend", "auto") not in ("auto", "nutpie") and "mass_matrix" not in changes
                and self.sampler.mass_matrix != "diag"):
            import warnings

            warnings.warn(f"spec {self.name!r} asks for mass_matrix = {self.sampler.mass_matrix!r}, a nutpie "
                          f"option; the {changes['backend']} back end adapts a diagonal mass matrix instead "
                          "(recorded in the fit's sampler settings)", UserWarning, stacklevel=2)
            changes["mass_matrix"] = "diag"
        try:
            sampler = SamplerConfig(**{**self.sampler.model_dump(), **changes})
        except ValidationError as e:
            raise SpecError(_pydantic_message(e, "sampler settings")) from None
        return self.model_copy(update={"sampler": sampler})

    def to_toml_dict(self) -> dict[str, Any]:
        """The spec as plain data (what provenance records besides the original text)."""
        return self.model_dump(exclude={"text", "path"})

    def resolved(self) -> dict[str, Any]:
        """Everything a fit of this spec uses: the family's resolved options and priors (its
        declared defaults where the spec is silent), sampler settings and gate.

        Raises
        ------
        SpecError
            If the family does not accept the spec's options or priors.
        """
        from bayes_blina.families import get_family

        described = get_family(self.family)(self.options, self.priors).describe()
        return {"name": self.name, "family": self.family, "description": self.description,
                "options": described["options"], "priors": described["priors"],
                "sampler": self.sampler.model_dump(), "gate": self.gate.model_dump()}

    def resolved_toml(self) -> str:
        """:meth:`resolved` as TOML, each value the spec does not state marked ``# default``.

        Examples
        --------
        >>> text = load_spec("tcell").resolved_toml()
        >>> "[options]" in text and 'analytes = ["CD3", "CD4", "CD8"]' in text
        True
        >>> [line for line in text.splitlines() if line.startswith("cycles")]
        ['cycles = 2  # default']
        """
        r = self.resolved()
        stated = {"options": set(self.options), "priors": set(self.priors),
                  "sampler": set(self._stated("sampler")), "gate": set(self._stated("gate"))}
        lines = [f"name = {_toml_value(r['name'])}", f"family = {_toml_value(r['family'])}",
                 f"description = {_toml_value(r['description'])}"]
        for section in ("options", "priors", "sampler", "gate"):
            lines += ["", f"[{section}]"]
            for key, value in r[section].items():
                if value is None:
                    lines.append(f"# {_toml_key(key)}: not set" + ("" if key in stated[section] else "  (default)"))
                    continue
                mark = "" if key in stated[section] else "  # default"
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}{mark}")
        return "\n".join(lines) + "\n"

    def _stated(self, section: str) -> list[str]:
        """Keys of a section that the spec's own text states (all keys when there is no text)."""
        if not self.text:
            return list(getattr(self, section).model_dump())
        try:
            return list(tomllib.loads(self.text).get(section, {}))
        except tomllib.TOMLDecodeError:
            return list(getattr(self, section).model_dump())


def _toml_key(key: str) -> str:
    """A TOML key: bare when it can be, else quoted (``"t_nadir[CD3]"``)."""
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    """A plain value (str, bool, number, list, dict) as TOML."""
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    return json.dumps(str(value))


def _pydantic_message(err: ValidationError, where: str) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return f"invalid {where}: " + "; ".join(parts)


def models_dirs() -> list[Path]:
    """Folders searched for named specs, in order.

    ``$BAYES_BLINA_MODELS`` (if set), ``./models`` in the working directory, then the specs that
    ship inside the package (``bayes_blina/models/``; the source tree's top-level ``models/`` is a
    link to them), so that an installed package run from any folder finds its own specs.
    """
    dirs = []
    if os.environ.get("BAYES_BLINA_MODELS"):
        dirs.append(Path(os.environ["BAYES_BLINA_MODELS"]))
    dirs.append(Path.cwd() / "models")
    dirs.append(Path(__file__).resolve().parent / "models")
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen:
            seen.add(r)
            out.append(d)
    return out


def available_specs() -> dict[str, Path]:
    """Named specs found in :func:`models_dirs` (first folder wins)."""
    found: dict[str, Path] = {}
    for d in models_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    return found


def parse_spec(data: dict[str, Any], *, text: str = "", path: str = "") -> ModelSpec:
    """Validate a spec given as a dict (e.g. parsed TOML or ``ModelSpec.model_dump()``).

    ``text`` and ``path`` given as arguments take precedence over those keys of ``data`` (a dumped
    spec carries them).
    """
    data = dict(data)
    text = text or data.pop("text", "") or ""
    path = path or data.pop("path", "") or ""
    data.pop("text", None), data.pop("path", None)
    try:
        return ModelSpec(**data, text=text, path=path)
    except ValidationError as e:
        raise SpecError(_pydantic_message(e, f"model spec {path or data.get('name', '')}")) from None
    except SpecError as e:
        raise SpecError(f"model spec {path or data.get('name', '')}: {e}") from None


def load_spec(spec: str | os.PathLike | dict | ModelSpec) -> ModelSpec:
    """Load a spec by name (``models/NAME.toml``), by path, from a dict, or pass one through.

    Raises
    ------
    SpecError
        If no such spec exists (the message lists the available names) or it is invalid.
    """
    if isinstance(spec, ModelSpec):
        return spec
    if isinstance(spec, dict):
        return parse_spec(spec)
    p = Path(spec)
    if not p.suffix and not p.exists():
        known = available_specs()
        if str(spec) not in known:
            from bayes_blina.families import FAMILIES

            if str(spec) in FAMILIES:  # a family name alone: its declared defaults
                return parse_spec({"name": str(spec), "family": str(spec)})
            raise SpecError(
                f"no model spec named {str(spec)!r}; available: {', '.join(known) or '(none found)'}"
                f" (searched {', '.join(str(d) for d in models_dirs())})"
            )
        p = known[str(spec)]
    if not p.is_file():
        raise SpecError(f"model spec file {str(p)!r} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"model spec {p}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at position {e.start}); "
                        "save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"model spec {p}: not valid TOML ({e})") from None
    return parse_spec(data, text=text, path=str(p))
