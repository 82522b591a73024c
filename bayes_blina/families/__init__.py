"""Model families, registered by name (the ``family`` key of a spec)."""
from __future__ import annotations

from bayes_blina.errors import BayesBlinaError, SpecError
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.families.joint import JointModel
from bayes_blina.families.depletion import DepletionModel
from bayes_blina.families.dose_toxicity import DoseToxicityModel
from bayes_blina.families.kinetics import KineticsModel
from bayes_blina.families.pulse import PulseModel
from bayes_blina.families.response import ResponseModel
from bayes_blina.families.subgroups import SubgroupModel
from bayes_blina.families.survival import SurvivalModel

FAMILIES: dict[str, type[ModelFamily]] = {
    ResponseModel.name: ResponseModel,
    SubgroupModel.name: SubgroupModel,
    PulseModel.name: PulseModel,
    KineticsModel.name: KineticsModel,
    DepletionModel.name: DepletionModel,
    JointModel.name: JointModel,
    DoseToxicityModel.name: DoseToxicityModel,
    SurvivalModel.name: SurvivalModel,
}

#: Names of the package's trajectory families (``is_trajectory``; they have ``add_to_model`` and
#: ``mean_log``); families registered later with :func:`register_family` are not in it.
TRAJECTORY_FAMILIES: frozenset[str] = frozenset(k for k, v in FAMILIES.items() if v.is_trajectory)


def register_family(cls: type[ModelFamily]) -> type[ModelFamily]:
    """Register a model family class under its ``name``, so that specs can use it.

    Usable as a class decorator. A family defined outside the package (a user's own model, see
    ``examples/custom_family.py`` and ``docs/architecture.md``, "Adding a model family") plugs into
    ``fit``, the fit store, the convergence gate, summaries, predictions and the checks through
    the declarations and methods of :class:`~bayes_blina.families.base.ModelFamily`.

    Raises
    ------
    SpecError
        If ``cls`` is not a :class:`ModelFamily` subclass, has no ``name``, or its name is taken
        by another class.

    Examples
    --------
    >>> from bayes_blina.families import register_family, ResponseModel
    >>> register_family(ResponseModel) is ResponseModel  # registering the same class again is allowed
    True
    >>> class Other(ResponseModel):
    ...     name = "response"
    >>> register_family(Other)
    Traceback (most recent call last):
    ...
    bayes_blina.errors.SpecError: model family name 'response' is taken by bayes_blina.families.response.ResponseModel
    """
    if not (isinstance(cls, type) and issubclass(cls, ModelFamily)):
        raise SpecError(f"{cls!r} is not a model family (a subclass of bayes_blina.families.ModelFamily)")
    if not cls.name:
        raise SpecError(f"model family {cls.__qualname__} has no name (set the class attribute `name`)")
    taken = FAMILIES.get(cls.name)
    if taken is not None and taken is not cls:
        raise SpecError(f"model family name {cls.name!r} is taken by {taken.__module__}.{taken.__qualname__}")
    FAMILIES[cls.name] = cls
    return cls


def get_family(name: str) -> type[ModelFamily]:
    """The family class registered under ``name``.

    Raises
    ------
    SpecError
        For an unknown name; the message lists the known families.
    """
    try:
        return FAMILIES[name]
    except KeyError:
        raise SpecError(f"unknown model family {name!r}; known families: {', '.join(sorted(FAMILIES))}") from None


def family_class(name: str) -> type[ModelFamily]:
    """The family class of a stored fit's family ``name``; for a name this version does not know,
    :class:`ModelFamily` itself, whose declarations say that no family-specific part applies."""
    return FAMILIES.get(name, ModelFamily)


def require_family(family_name: str, cls: type[ModelFamily], what: str, *, fit: object = None,
                   error: type[BayesBlinaError] = BayesBlinaError) -> type[ModelFamily]:
    """The class of ``family_name`` when it is ``cls`` (or derives from it); otherwise ``error``.

    Tools built on one family's parameters (regimen planning on the pulse model, landmark
    prediction on the joint model) say so through this check, by class, not by name.

    Parameters
    ----------
    family_name : str
        The family of the fit or spec at hand.
    cls : type
        The family class the tool needs.
    what : str
        The tool, for the message (``"regimen planning"``).
    fit : object, optional
        For the message: a label, or a fit whose ``path`` names it (default "this fit").
    error : type, optional
        The exception raised (:class:`~bayes_blina.errors.BayesBlinaError`).

    Examples
    --------
    >>> from bayes_blina.families import PulseModel, require_family
    >>> require_family("pulse", PulseModel, "regimen planning").name
    'pulse'
    >>> require_family("response", PulseModel, "regimen planning", fit="fits/demo-response")
    Traceback (most recent call last):
    ...
    bayes_blina.errors.BayesBlinaError: regimen planning needs a fit of the 'pulse' family; fits/demo-response is a 'response' fit
    """
    found = family_class(family_name)
    if not issubclass(found, cls):
        label = fit if isinstance(fit, str) else getattr(fit, "path", None) or "this fit"
        raise error(f"{what} needs a fit of the {cls.name!r} family; {label} is a {family_name!r} fit")
    return found


__all__ = ["FAMILIES", "TRAJECTORY_FAMILIES", "DepletionModel", "DoseToxicityModel", "JointModel", "KineticsModel",
           "ModelFamily", "Prepared", "family_class", "get_family", "register_family", "require_family",
           "ResponseModel", "SubgroupModel", "SurvivalModel", "PulseModel"]
