"""What the trajectory families share: prefixes, add_to_model, mean_log against the PyMC graph.

No sampling here: every test builds models and evaluates them at points.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bayes_blina.families import FAMILIES, TRAJECTORY_FAMILIES, get_family
from bayes_blina.families.depletion import DepletionModel
from bayes_blina.families.kinetics import KineticsModel
from bayes_blina.families.pulse import PulseModel
from bayes_blina.families.response import ResponseModel
from bayes_blina.families.trajectory import TrajectoryFamily, prefixed_coords, unprefixed
from bayes_blina.likelihood import censored_lognormal_logp_np
from bayes_blina.simulate.cohort import simulate_cohort

#: (family, options, the names add_to_model must return)
CASES = {
    "pulse": (PulseModel, {"analytes": ["IL6", "IL10"]}, ["log_peak_first", "log_baseline", "log_amp"]),
    "pulse-nc": (PulseModel, {"analytes": ["IL6", "IL10"], "peak_coordinates": False, "correlated": False},
                 ["log_peak_first", "log_baseline", "log_amp"]),
    "kinetics": (KineticsModel, {"analytes": ["CD3", "CD4"]}, ["log_expansion", "log_baseline"]),
    "kinetics-corr-nc": (KineticsModel, {"analytes": ["CD3", "CD8"], "correlated": True, "centred": False,
                                         "covariates": ["regimen"]}, ["log_expansion", "log_baseline"]),
    "kinetics-cells": (KineticsModel, {"analytes": ["NEUT", "PLT"], "covariates": ["response"]},
                       ["log_expansion", "log_baseline"]),
    "depletion": (DepletionModel, {}, ["log_floor", "log_baseline"]),
}


@pytest.fixture(scope="module")
def cohort():
    ds, _ = simulate_cohort("adult-exploratory", n=12, seed=5)
    return ds


def _point(model, seed=3, scale=0.3):
    rng = np.random.default_rng(seed)
    return {k: v + rng.normal(0, scale, size=np.shape(v)) for k, v in model.initial_point().items()}


def _eval(model, names, point):
    import pytensor

    outs = model.replace_rvs_by_values([model[n] for n in names])
    f = pytensor.function(model.value_vars, outs, on_unused_input="ignore")
    return dict(zip(names, f(*[point[v.name] for v in model.value_vars])))


def test_trajectory_families_are_marked():
    assert TRAJECTORY_FAMILIES == {"pulse", "kinetics", "depletion"}
    assert all(FAMILIES[n].is_trajectory for n in TRAJECTORY_FAMILIES)
    assert not ResponseModel.is_trajectory
    assert get_family("kinetics") is KineticsModel and get_family("depletion") is DepletionModel
    assert all(issubclass(FAMILIES[n], TrajectoryFamily) for n in TRAJECTORY_FAMILIES)
    assert KineticsModel.sigma_name == DepletionModel.sigma_name == PulseModel.sigma_name == "sigma_obs"


def test_mean_log_of_a_non_trajectory_family_is_a_clear_error():
    with pytest.raises(NotImplementedError, match="'response' has no trajectory mean"):
        ResponseModel({"factors": []}).mean_log({}, None)


def test_prefixed_coords_and_unprefixed():
    import xarray as xr

    c = {"subject": ["P1", "P2"], "analyte": ["CD3"], "regimen_contrast": [], "obs": ["0", "1"]}
    assert prefixed_coords(c, "t_") == {"t_subject": ["P1", "P2"], "t_analyte": ["CD3"], "t_obs": ["0", "1"]}
    assert prefixed_coords({"subject": [], "analyte": []}, "") == {"subject": [], "analyte": []}
    ds = xr.Dataset({"t_a": (("chain", "t_subject"), np.zeros((1, 2))), "b": (("chain",), np.zeros(1))})
    out = unprefixed(ds, "t_")
    assert list(out.data_vars) == ["a"] and out["a"].dims == ("chain", "subject")
    assert unprefixed(ds, "") is ds


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_mean_log_agrees_with_the_model_graph(cohort, case):
    """``mean_log`` + the numpy M3 likelihood equal the model's ``loglik`` potential at a random point."""
    cls, options, _ = CASES[case]
    fam = cls(options)
    prep = fam.prepare(cohort)
    model = fam.build(prep)
    names = [v.name for v in model.deterministics] + [v.name for v in model.free_RVs] + ["loglik"]
    vals = _eval(model, names, _point(model))
    A = prep.arrays
    mu = fam.mean_log(vals, prep)
    assert mu.shape == A["log_y"].shape and np.all(np.isfinite(mu))
    ll = censored_lognormal_logp_np(mu, vals["sigma_obs"][A["obs_analyte"]], A["log_y"], A["log_limit"],
                                    A["is_censored"].astype(bool))
    assert np.isfinite(vals["loglik"])
    assert ll.sum() == pytest.approx(float(vals["loglik"]), rel=1e-9)
    # leading draw axes broadcast: two identical draws give two identical rows
    two = {k: np.stack([np.asarray(v)] * 2) for k, v in vals.items()}
    np.testing.assert_allclose(fam.mean_log(two, prep), np.stack([mu, mu]), rtol=1e-12)


@pytest.mark.parametrize("case", ["pulse", "kinetics-corr-nc", "depletion"])
def test_two_prefixed_copies_live_in_one_model(cohort, case):
    """Two copies with different prefixes: no name clash, every name and dim prefixed, the returned
    tensors have dims (subject, analyte), and the joint log density is the sum of the two models'."""
    import pymc as pm

    cls, options, returned = CASES[case]
    fa, fb = cls(options), cls({**options})
    pa, pb = fa.prepare(cohort), fb.prepare(cohort)
    with pm.Model(coords={**prefixed_coords(pa.coords, "a_"), **prefixed_coords(pb.coords, "b_")}) as m:
        out_a = fa.add_to_model(pa, prefix="a_")
        out_b = fb.add_to_model(pb, prefix="b_")
    assert list(out_a) == returned and list(out_b) == returned
    for k, t in out_a.items():
        assert t.name == "a_" + k
        assert m.named_vars_to_dims[t.name] == ("a_subject", "a_analyte")
    assert all(n.startswith(("a_", "b_")) for n in m.named_vars)
    assert all(d.startswith(("a_", "b_")) for d in m.coords)
    assert "a_loglik" in m.named_vars and "b_loglik" in m.named_vars
    ip = m.initial_point()
    single = fa.build(pa)
    la = single.compile_logp()({k[2:]: v for k, v in ip.items() if k.startswith("a_")})
    lb = single.compile_logp()({k[2:]: v for k, v in ip.items() if k.startswith("b_")})
    assert float(m.compile_logp()(ip)) == pytest.approx(float(la + lb), rel=1e-10)


def test_add_to_model_adds_missing_coords(cohort):
    """A caller that forgets the coords still gets a working model (they are added, prefixed)."""
    import pymc as pm

    fam = KineticsModel({})
    prep = fam.prepare(cohort)
    with pm.Model() as m:
        fam.add_to_model(prep, prefix="k_")
    assert m.coords["k_subject"] == tuple(prep.coords["subject"])
    assert np.isfinite(m.compile_logp()(m.initial_point()))


def test_shared_preparation_is_the_same_for_every_family(cohort):
    """The same rows, order and data_use for the same analyte whichever family prepares them."""
    base = {"analytes": ["CD3"], "cycles": 1, "max_event_lag_h": 336.0}
    pk = KineticsModel(base).prepare(cohort)
    pp = PulseModel({**base, "correlated": False}).prepare(cohort)
    pd_ = DepletionModel(base).prepare(cohort)
    for k in ("obs_position", "obs_subject", "log_y", "log_limit", "is_censored", "pair_obs", "pair_lag"):
        np.testing.assert_array_equal(pk.arrays[k], pp.arrays[k], err_msg=k)
    np.testing.assert_array_equal(pk.arrays["obs_position"], pd_.arrays["obs_position"])
    assert pk.data_use["rows_left_out"] == pp.data_use["rows_left_out"] == pd_.data_use["rows_left_out"]
    # depletion does not use the events: no pairs
    assert len(pd_.arrays["pair_obs"]) == 0 and "observation_event_pairs" not in pd_.data_use
    # uncensored rows first, then censored
    c = pk.arrays["is_censored"]
    assert np.all(np.diff(c) >= 0)


def test_priors_per_analyte(cohort):
    """``NAME[ANALYTE]`` overrides one analyte's prior; the model uses it; bad names are clear errors."""
    from bayes_blina.errors import SpecError, UnknownPriorError

    fam = KineticsModel({"analytes": ["CD3", "CD8"]},
                        {"t_nadir[CD8]": "LogNormal(mu=3, sigma=0.2)", "t_nadir": "LogNormal(mu=1.8, sigma=0.5)"})
    dist, params = fam.analyte_prior("t_nadir")
    assert dist == "LogNormal"
    np.testing.assert_allclose(params["mu"], [1.8, 3.0])
    np.testing.assert_allclose(params["sigma"], [0.5, 0.2])
    # T cells have their own default k_shape (the paper's 6-h nadir); the caller's t_nadir replaced
    # the T-cell default of t_nadir for both analytes
    np.testing.assert_allclose(fam.analyte_prior("k_shape")[1]["mu"], [0.405465, 0.405465])
    assert fam.describe()["priors"]["k_shape[CD3]"] == {"dist": "LogNormal", "mu": 0.405465, "sigma": 0.5}
    assert ("t_nadir", "CD3") not in fam.analyte_priors
    neut = KineticsModel({"analytes": ["NEUT", "PLT"]})
    assert neut.analyte_priors == {}
    assert neut.analyte_prior("k_shape")[1] == neut.priors["k_shape"].params  # no override: plain floats
    mixed = KineticsModel({"analytes": ["CD3", "NEUT"]})
    np.testing.assert_allclose(mixed.analyte_prior("t_nadir")[1]["mu"], [math.log(6.0), math.log(24.0)], atol=1e-6)
    assert fam.describe()["priors"]["t_nadir[CD8]"] == {"dist": "LogNormal", "mu": 3.0, "sigma": 0.2}
    model = fam.build(fam.prepare(cohort))
    import pymc as pm

    logp = pm.logp(model["t_nadir"], np.array([math.exp(1.8), math.exp(3.0)])).eval()
    expected = [stats.lognorm(0.5, scale=math.exp(1.8)).logpdf(math.exp(1.8)),
                stats.lognorm(0.2, scale=math.exp(3.0)).logpdf(math.exp(3.0))]
    np.testing.assert_allclose(logp, expected, rtol=1e-10)
    with pytest.raises(UnknownPriorError, match="names analyte 'NEUT', which is not modelled"):
        KineticsModel({"analytes": ["CD3"]}, {"t_nadir[NEUT]": "LogNormal(mu=3, sigma=0.2)"})
    with pytest.raises(UnknownPriorError, match="no prior 'beta_regimen' that can be given per analyte"):
        KineticsModel({"covariates": ["regimen"]}, {"beta_regimen[CD3]": "Normal(mu=0, sigma=1)"})
    with pytest.raises(SpecError, match="must use the same distribution"):
        KineticsModel({"analytes": ["CD3", "CD8"]}, {"t_nadir[CD8]": "Gamma(alpha=2, beta=1)"})
    # aliases resolve; pulse and depletion take them too
    assert ("t_nadir", "CD3") in KineticsModel({}, {"t_nadir[T cells]": "LogNormal(mu=2, sigma=1)"}).analyte_priors
    PulseModel({"analytes": ["IL6", "IL10"]}, {"log_amp_mu[IL10]": "Normal(mu=5, sigma=1)"}).build(
        PulseModel({"analytes": ["IL6", "IL10"]}).prepare(cohort))
    assert DepletionModel({}, {"logit_floor[CD19]": "Normal(mu=-9, sigma=3)"}).analyte_prior("logit_floor")[1]["mu"][0] == -9.0


def test_model_specs_load_and_build(cohort):
    from bayes_blina.spec import load_spec

    for name, family, analytes in [("tcell", "kinetics", ["CD3", "CD4", "CD8"]), ("cells", "kinetics", ["NEUT", "PLT"]),
                                   ("bcell", "depletion", ["CD19"]),
                                   ("lab", "pulse", ["ALT", "AST", "GGT", "BILI", "CRP", "DDIMER"])]:
        spec = load_spec(name)
        fam = get_family(spec.family)(spec.options, spec.priors)
        assert spec.family == family and fam.options.analytes == analytes
    lab = load_spec("lab")
    assert lab.options["relative_to_baseline"] is True
    cells = get_family("kinetics")(load_spec("cells").options, load_spec("cells").priors)
    np.testing.assert_allclose(cells.analyte_prior("t_nadir")[1]["mu"], [math.log(120.0), math.log(48.0)], atol=1e-5)


def test_event_pairs_do_not_depend_on_the_pairing_block(cohort, monkeypatch):
    """The (observation, event) pairs are built block by block of subjects to bound memory; the
    blocks must not change a single pair (nor their order)."""
    import bayes_blina.families.trajectory as trajectory

    opts = {"analytes": ["IL6", "IL10"]}
    whole = PulseModel(opts).prepare(cohort).arrays
    monkeypatch.setattr(trajectory, "PAIR_BLOCK_SUBJECTS", 5)  # 12 patients: three blocks
    blocked = PulseModel(opts).prepare(cohort).arrays
    assert len(whole["pair_obs"]) > 100
    for k in ("pair_obs", "pair_lag", "pair_subject", "pair_log_dose", "obs_subject", "obs_analyte"):
        np.testing.assert_array_equal(blocked[k], whole[k])
    lag = whole["pair_lag"]
    assert lag.min() > 0 and lag.max() <= 336.0
    assert "_pos" not in cohort.observations.columns  # prepare never changes the dataset
