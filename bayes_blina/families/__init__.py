"""Model families, registered by name (the ``family`` key of a spec)."""
from __future__ import annotations

from bayes_blina.errors import SpecError
from bayes_blina.families.base import ModelFamily, Prepared
from bayes_blina.families.pulse import PulseModel
from bayes_blina.families.response import ResponseModel
from bayes_blina.families.subgroups import SubgroupModel

FAMILIES: dict[str, type[ModelFamily]] = {
    ResponseModel.name: ResponseModel,
    SubgroupModel.name: SubgroupModel,
    PulseModel.name: PulseModel,
}


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


__all__ = ["FAMILIES", "ModelFamily", "Prepared", "get_family", "ResponseModel", "SubgroupModel", "PulseModel"]
