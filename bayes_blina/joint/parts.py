"""One trajectory part of a stored joint fit, seen as a stored fit of that part's family.

A joint fit (:mod:`bayes_blina.families.joint`) holds its trajectory sub-models in one PyMC model,
their variables, dimensions and prepared arrays prefixed (``tcell_`` for the kinetics sub-model of
CD3 T cells, ``cyt_`` for the pulse sub-model of the cytokines). :func:`part_view` strips the
prefix of one part and presents it as if it were a stored fit of the part's own family, so that
the checks written for single trajectory fits (the censoring-aware VPC,
:func:`bayes_blina.checks.vpc.vpc_from_fit`; LOO-PIT, :func:`bayes_blina.checks.loo.loo_pit`) apply
to it unchanged.

The view is a :class:`~bayes_blina.store.Fit` (nothing is written or copied to disk):

* ``idata``: the part's variables only, without the prefix, in the groups ``posterior``,
  ``constant_data`` (the part's prepared arrays), ``log_likelihood`` and ``observed_data`` (the
  part's rows), ``prior`` when sampled; ``sample_stats`` is the joint fit's (the sampler ran once);
* ``provenance``: the joint fit's, with ``model`` describing the part (family, resolved options and
  priors as the joint family builds them, a spec with the joint spec's sampler and gate),
  ``data.use`` the part's record of the data it used and ``part`` saying where the view came from;
  ``data.sha256`` stays the joint fit's;
* ``path``: the joint fit's folder.

``verdict()`` of a view re-judges the part's posterior only, with the joint spec's gate; the
convergence of the fit as a whole is the joint fit's own ``verdict()``.

Part names are the keys of :data:`bayes_blina.families.joint.PARTS` (``tcell``, ``cyt``);
``cytokines`` (the name of the joint model's option table) is accepted for ``cyt``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from bayes_blina.errors import BayesBlinaError
from bayes_blina.store import Fit

__all__ = ["PART_ALIASES", "PART_LABELS", "PartView", "describe_parts", "fit_parts", "part_view", "resolve_part"]

#: Other accepted names of the parts (the joint model's option tables).
PART_ALIASES: dict[str, str] = {"cytokines": "cyt"}

#: What each part models, in words (report titles).
PART_LABELS: dict[str, str] = {"tcell": "T cells", "cyt": "Cytokines"}


@dataclass
class PartView(Fit):
    """A trajectory part of a stored joint fit, presented as a stored fit of the part's family.

    Attributes
    ----------
    idata : xarray.DataTree
        The part's groups, without prefix (see the module docstring).
    provenance : dict
        The joint fit's provenance, with ``model`` and ``data.use`` of the part.
    path : Path
        The joint fit's folder.
    part : str
        The part's name (key of :data:`bayes_blina.families.joint.PARTS`).
    joint : Fit
        The joint fit the view was made from.
    """

    part: str = ""
    joint: Any = field(default=None, repr=False)


def _joint_family(stored):
    from bayes_blina.families import JointModel, require_family

    require_family(stored.family_name, JointModel, "a view of trajectory parts", fit=stored)
    return stored.family


def describe_parts(parts: list[str]) -> str:
    """Part names for messages, with their aliases: ``"tcell, cyt (or cytokines)"``.

    Parameters
    ----------
    parts : list of str
        Canonical part names.

    Returns
    -------
    str
        ``"none"`` when ``parts`` is empty.
    """
    aliases = {p: [a for a, q in PART_ALIASES.items() if q == p] for p in parts}
    return ", ".join(p + (f" (or {', '.join(aliases[p])})" if aliases[p] else "") for p in parts) or "none"


def fit_parts(stored) -> list[str]:
    """The trajectory parts of a stored joint fit, in :data:`~bayes_blina.families.joint.PARTS` order.

    Parameters
    ----------
    stored : Fit
        A joint fit.

    Returns
    -------
    list of str
        Empty for a joint fit without trajectory parts (``biomarkers = []``).

    Raises
    ------
    BayesBlinaError
        If the fit is not a joint fit.
    """
    return list(_joint_family(stored).parts)


def resolve_part(stored, part: str) -> str:
    """The canonical name of ``part`` in a stored joint fit (aliases resolved).

    Parameters
    ----------
    stored : Fit
        A joint fit.
    part : str
        A part name or alias (:data:`PART_ALIASES`).

    Returns
    -------
    str

    Raises
    ------
    BayesBlinaError
        If the fit is not a joint fit, or has no such part (the message lists its parts).
    """
    parts = fit_parts(stored)
    name = PART_ALIASES.get(str(part), str(part))
    if name not in parts:
        raise BayesBlinaError(f"joint fit {stored.path} has no trajectory part {part!r}; its parts are: "
                              f"{describe_parts(parts)}")
    return name


def _strip(ds, prefix: str):
    """Variables of ``ds`` that start with ``prefix`` (and their dimensions), prefix removed."""
    from bayes_blina.families.trajectory import unprefixed

    out = unprefixed(ds, prefix)
    out.attrs = dict(ds.attrs)
    return out


def part_view(stored, part: str) -> PartView:
    """One trajectory part of a stored joint fit as a stored fit of the part's own family.

    Parameters
    ----------
    stored : Fit
        A joint fit (``family = "joint"``), as :func:`bayes_blina.store.load_fit` returns it.
    part : str
        ``tcell`` (kinetics sub-model) or ``cyt`` (pulse sub-model; alias ``cytokines``), when the
        fit has that part.

    Returns
    -------
    PartView
        ``family_name`` is the part's family (``kinetics``, ``pulse``), ``options`` its resolved
        options, ``provenance["model"]["resolved"]["priors"]`` its priors (without prefix),
        ``provenance["data"]["use"]`` its data use, ``spec.sampler`` the joint spec's sampler,
        ``idata`` the part's variables without prefix, ``path`` the joint fit's folder.

    Raises
    ------
    BayesBlinaError
        If the fit is not a joint fit, or has no such part (the message names the valid parts).

    Examples
    --------
    >>> from bayes_blina.checks.vpc import vpc_from_fit     # doctest: +SKIP
    >>> table = vpc_from_fit(part_view(load_fit("fits/joint"), "tcell"))  # doctest: +SKIP
    """
    import xarray as xr

    from bayes_blina.families.joint import PARTS

    joint = _joint_family(stored)
    name = resolve_part(stored, part)
    fam = joint.parts[name]
    prefix = PARTS[name][1]
    idata = stored.idata
    groups: dict[str, Any] = {}
    for g in idata.children:
        ds = idata[g].to_dataset()
        if g == "sample_stats":
            groups[g] = ds
        elif g in ("posterior", "prior", "constant_data", "log_likelihood", "observed_data",
                   "posterior_predictive", "prior_predictive"):
            sub = _strip(ds, prefix)
            if sub.data_vars:
                groups[g] = sub
    view_idata = xr.DataTree.from_dict(groups)

    prov = copy.deepcopy(stored.provenance)
    model = prov["model"]
    joint_spec = model.get("spec") or {}
    spec_priors = {k[len(prefix):]: v for k, v in (joint_spec.get("priors") or {}).items() if k.startswith(prefix)}
    part_spec = {"name": f"{model.get('name', '')}:{name}", "family": fam.name,
                 "description": f"{name} part ({fam.name}) of joint fit {model.get('name', '')}",
                 "options": fam.options.model_dump(), "priors": spec_priors}
    for k in ("sampler", "gate"):
        if k in joint_spec:
            part_spec[k] = joint_spec[k]
    prov["model"] = {"name": part_spec["name"], "family": fam.name, "spec_path": model.get("spec_path", ""),
                     "spec_text": "", "spec": part_spec, "resolved": fam.describe()}
    prov["data"] = {**prov.get("data", {}), "use": copy.deepcopy((stored.provenance.get("data", {}).get("use")
                                                                  or {}).get(name, {}))}
    prov["part"] = {"name": name, "family": fam.name, "prefix": prefix, "joint_model": model.get("name", ""),
                    "joint_family": "joint", "joint_path": str(stored.path)}
    return PartView(idata=view_idata, provenance=prov, path=stored.path, part=name, joint=stored)
