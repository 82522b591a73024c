"""What every model family provides.

A family turns a validated :class:`~bayes_blina.data.Dataset` into a PyMC model. It declares its
default priors (overridable by name), validates its options at construction, records what data it
used and what it left out (never silently), and names the derived quantities that summaries show.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np
from pydantic import BaseModel, ValidationError

from bayes_blina.errors import SpecError
from bayes_blina.priors import Prior, merge_priors


@dataclass
class Prepared:
    """Model-ready arrays plus a record of which data were used.

    Attributes
    ----------
    arrays : dict
        Numpy arrays the model is built from.
    coords : dict
        PyMC coordinates (dimension name to labels).
    data_use : dict
        Plain-data account of the rows used and left out, with reasons; stored with the fit.
    swappable : bool
        Build the model so that every observed array can be replaced with ``pm.set_data`` (or
        nutpie's ``with_data``) without a rebuild: the observed values, limits, censoring flags and
        outcomes are ``pm.Data`` (the censored likelihood then evaluates each branch on every row).
        Simulation-based calibration builds with ``True``. With ``False`` (the default, for
        fitting) they are constants of the graph, which the compiler folds, and each censoring
        branch is computed on its own rows only.
    """

    arrays: dict[str, np.ndarray]
    coords: dict[str, list[str]]
    data_use: dict[str, Any] = field(default_factory=dict)
    swappable: bool = False


#: Attribute of a PyMC model holding the names of the variables that start without jitter.
UNJITTERED_ATTR = "_bayes_blina_unjittered"


def start_unjittered(*rvs) -> None:
    """Start these random variables of the current PyMC model at their initial values, unjittered.

    By default every chain starts at the model's initial point with a random jitter of each free
    variable (up to +-1 on the unconstrained scale), so that R-hat can see chains that end in
    different places. For variables whose likelihood has poor local modes (the time to peak of a
    sparsely sampled pulse, a dip's timing), a start far from the data can trap a chain there for
    good. Families call this for those variables after giving them data-driven initial values;
    the other variables are still jittered. Honoured by the nutpie back end (the default);
    PyMC's own sampler jitters every variable.
    """
    import pymc as pm

    model = pm.modelcontext(None)
    names = set(getattr(model, UNJITTERED_ATTR, set()))
    names.update(rv.name for rv in rvs)
    setattr(model, UNJITTERED_ATTR, names)


def unjittered_names(model) -> set[str]:
    """Names recorded by :func:`start_unjittered` on ``model`` (empty when none)."""
    return set(getattr(model, UNJITTERED_ATTR, set()))


class ModelFamily(ABC):
    """Base class of model families.

    Parameters
    ----------
    options : mapping, optional
        Family options; validated against :attr:`Options`.
    priors : mapping, optional
        Prior overrides by name; an unknown name raises
        :class:`~bayes_blina.errors.UnknownPriorError` listing the valid names.
    """

    #: Registry name, used in specs (``family = "..."``).
    name: ClassVar[str] = ""
    #: True for the trajectory families (pulse, kinetics, depletion; see
    #: :mod:`bayes_blina.families.trajectory`).
    is_trajectory: ClassVar[bool] = False
    #: Name of the residual SD per analyte (trajectory families).
    sigma_name: ClassVar[str] = "sigma_obs"
    #: Predictive checks the HTML report shows for a fit of this family, in order, by the names of
    #: :data:`bayes_blina.report.html.CHECKS` (``"vpc"``, ``"response_ppc"``, ``"joint_vpc"``, ...).
    #: The family says what applies to it; the report renders it and never tests a family's name.
    report_checks: ClassVar[tuple[str, ...]] = ()
    #: Family figures of the report, by the names of :data:`bayes_blina.report.html.FIGURES`.
    report_figures: ClassVar[tuple[str, ...]] = ()
    #: The fit is made of trajectory parts with their own pointwise log-likelihoods and a binary
    #: outcome (the joint model): LOO-PIT is computed per part (:mod:`bayes_blina.joint.parts`).
    loo_pit_by_part: ClassVar[bool] = False
    #: What the family's observed data are, for the checks that simulate and compare them
    #: (:mod:`bayes_blina.checks`): ``"trajectory"`` (log values with LOD/LLOQ censoring),
    #: ``"binary"`` (patient outcomes and aggregate counts), ``"composite"`` (trajectory parts and a
    #: binary outcome), ``"survival"`` (right-censored event times) or ``""`` (no simulation-based
    #: check applies).
    outcome: ClassVar[str] = ""
    #: Patients in the built-in design of simulation-based calibration
    #: (:func:`bayes_blina.checks.sbc.builtin_design`).
    sbc_patients: ClassVar[int] = 10
    #: Prefixes of summary variables that are transforms of others (an odds ratio of its log):
    #: SBC does not rank them again.
    derived_summary_prefixes: ClassVar[tuple[str, ...]] = ()

    class Options(BaseModel):
        """Family options (override in subclasses)."""

    def __init__(self, options: Mapping[str, Any] | None = None,
                 priors: Mapping[str, Any] | None = None):
        try:
            self.options = self.Options(**dict(options or {}))
        except ValidationError as e:
            msgs = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or '(options)'}: {err['msg']}" for err in e.errors()
            )
            raise SpecError(f"invalid options for model family {self.name!r}: {msgs}") from None
        self.priors: dict[str, Prior] = merge_priors(self.default_priors(), priors, model=f"model family {self.name!r}")

    @classmethod
    def plain_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` for the same model in its plain parameterisation (no flat sampling
        coordinates), which prior draws need (:func:`bayes_blina.checks.prior.prior_family`)."""
        out = dict(options)
        if "peak_coordinates" in cls.Options.model_fields:
            out["peak_coordinates"] = False
        return out

    @abstractmethod
    def default_priors(self) -> dict[str, Prior]:
        """The family's declared default priors, by name (may depend on the options)."""

    @abstractmethod
    def prepare(self, dataset) -> Prepared:
        """Turn a dataset into model-ready arrays; raise a clear error if it cannot be used."""

    @abstractmethod
    def build(self, prepared: Prepared):
        """Build and return the ``pymc.Model``."""

    def log_likelihood(self, idata, prepared: Prepared) -> dict[str, Any]:
        """Pointwise log-likelihood arrays (chain, draw, obs) for the ``log_likelihood`` group."""
        return {}

    def mean_log(self, draws, prepared: Prepared) -> np.ndarray:
        """Noise-free log value of every observation row of ``prepared``, for each draw (numpy).

        Parameters
        ----------
        draws : xarray.Dataset or mapping
            Draws of the family's variables, named without prefix, with leading draw axes (e.g.
            ``idata.posterior``, or one chain of it).
        prepared : Prepared
            From :meth:`prepare`.

        Returns
        -------
        numpy.ndarray
            Shape ``(..., obs)``: the leading axes of ``draws``, then one value per row.

        Raises
        ------
        NotImplementedError
            For a family that models no trajectories.
        """
        raise NotImplementedError(f"model family {self.name!r} has no trajectory mean (mean_log); "
                                  "only the trajectory families (pulse, kinetics, depletion) do")

    def pointwise_observed(self) -> list[str] | None:
        """Observed variables whose pointwise log-likelihood PyMC should compute (None: all)."""
        return None

    def observed_arrays(self, prepared: Prepared) -> dict[str, np.ndarray]:
        """Observed data that are not PyMC observed variables (e.g. rows of a weighted likelihood)."""
        return {}

    def summary_vars(self) -> list[str]:
        """Variables shown in summaries, in order."""
        return []

    def prior_terms(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """The declared priors as ``{variable: (distribution, parameters)}``.

        These are the model's top-level priors (the ones a spec can override), which a
        power-scaling sensitivity analysis scales. Parameters may be arrays along the variable's
        last axis (per-analyte priors of the trajectory families).
        """
        return {name: (p.dist, dict(p.params)) for name, p in self.priors.items()}

    def log_prior(self, posterior) -> dict[str, Any]:
        """Log density of each declared prior at every posterior draw.

        Parameters
        ----------
        posterior : xarray.Dataset
            Posterior draws (``chain``, ``draw``, ...).

        Returns
        -------
        dict of str to xarray.DataArray
            One ``(chain, draw)`` array per declared prior whose variable is in the posterior
            (summed over the variable's other dimensions).
        """
        import pymc as pm
        import xarray as xr

        out = {}
        for name, (dist, params) in self.prior_terms().items():
            if name not in posterior:
                continue
            da = posterior[name]
            values = np.asarray(da.values, dtype=float)
            lp = pm.logp(getattr(pm, dist).dist(**params), values).eval()
            lp = np.broadcast_to(lp, values.shape).reshape(values.shape[:2] + (-1,)).sum(axis=-1)
            out[name] = xr.DataArray(lp, dims=("chain", "draw"), coords={"chain": da.chain, "draw": da.draw})
        return out

    def describe(self) -> dict[str, Any]:
        """Plain-data description (options and priors) stored with the fit."""
        return {
            "family": self.name,
            "options": self.options.model_dump(),
            "priors": {k: v.to_dict() for k, v in self.priors.items()},
        }
