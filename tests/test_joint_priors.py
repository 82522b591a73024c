"""The joint model's sub-model priors are the sub-model families' own priors for the analyte modelled
(issue 15, item 5), and the shipped joint spec also fits the covariates-only model."""
from __future__ import annotations

import pytest

from bayes_blina.families import get_family
from bayes_blina.priors import Prior
from bayes_blina.spec import load_spec


def _joint(**options):
    spec = load_spec("joint")
    return get_family("joint")({**spec.options, **options}, spec.priors)


def test_tcell_dip_priors_are_the_kinetics_families_t_cell_priors():
    """Earlier, the joint model replaced them with LogNormal(log 2, 0.3) for the shape, centred on
    the virtual cohorts' own dip, while the docs described the kinetics family's T-cell prior."""
    joint = _joint()
    kinetics = get_family("kinetics")({"analytes": ["CD3"]})
    for name in ("t_nadir", "k_shape"):
        expected = kinetics.analyte_priors[(name, "CD3")]
        assert joint.priors[f"tcell_{name}"] == expected
        # ... and the sub-model uses exactly what the joint model's priors (and provenance) say
        dist, params = joint.parts["tcell"].analyte_prior(name)
        assert Prior(dist, **params) == expected
    assert joint.priors["tcell_k_shape"] == Prior("LogNormal", mu=0.405465, sigma=0.5)


def test_the_joint_model_sets_the_dip_depth_sd_itself():
    joint = _joint()
    assert joint.priors["tcell_sd_logit_depth"] == Prior("Gamma", alpha=2.0, beta=2.0)
    assert joint.parts["tcell"].priors["sd_logit_depth"] == Prior("Gamma", alpha=2.0, beta=2.0)
    # every other sub-model prior is the sub-model family's own default
    kinetics = get_family("kinetics")({"analytes": ["CD3"]})
    assert joint.priors["tcell_sigma_obs"] == kinetics.priors["sigma_obs"]


def test_the_shipped_spec_fits_the_covariates_only_model():
    joint = _joint(biomarkers=[])
    assert joint.part_names() == []
    assert sorted(joint.priors) == ["p_typical", "sd_age_group", "sd_blast_burden", "sd_regimen"]


def test_a_user_prior_for_a_sub_model_still_wins():
    spec = load_spec("joint")
    joint = get_family("joint")(spec.options, {**spec.priors, "tcell_k_shape": {"dist": "LogNormal", "mu": 1.0,
                                                                              "sigma": 0.2}})
    dist, params = joint.parts["tcell"].analyte_prior("k_shape")
    assert (dist, params["mu"], params["sigma"]) == ("LogNormal", 1.0, 0.2)
    with pytest.raises(Exception, match="no prior named 'tcell_nope'"):
        get_family("joint")(spec.options, {"tcell_nope": {"dist": "Normal", "mu": 0, "sigma": 1}})
