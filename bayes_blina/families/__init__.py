"""Model families, registered by name (the ``family`` key of a spec)."""
from __future__ import annotations

from bayes_blina.errors import SpecError
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.families.joint import JointModel
from bayes_blina.families.depletion import DepletionModel
from bayes_blina.families.kinetics import KineticsModel
from bayes_blina.families.pulse import PulseModel
from bayes_blina.families.response import ResponseModel
from bayes_blina.families.subgroups import SubgroupModel

FAMILIES: dict[str, type[ModelFamily]] = {
    ResponseModel.name: ResponseModel,
    SubgroupModel.name: SubgroupModel,
    PulseModel.name: PulseModel,
    KineticsModel.name: KineticsModel,
    DepletionModel.name: DepletionModel,
    JointModel.name: JointModel,
}

#: Names of the trajectory families (``is_trajectory``; they have ``add_to_model`` and ``mean_log``).
TRAJECTORY_FAMILIES: frozenset[str] = frozenset(k for k, v in FAMILIES.items() if v.is_trajectory)


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


__all__ = ["FAMILIES", "TRAJECTORY_FAMILIES", "DepletionModel", "JointModel", "KineticsModel", "ModelFamily",
           "Prepared", "get_family", "ResponseModel", "SubgroupModel", "PulseModel"]
