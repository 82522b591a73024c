"""Back ends and timing of bayes_blina.inference; the Stan references' data contract.

Fast tests check back-end resolution, sampler settings, the JAX ``erfcx`` used by the numpyro
back end on censored likelihoods, and that the Stan reference programs in ``benchmarks/stan/``
declare exactly the data the benchmark harness gives them (CI does not install pystan, so the
programs themselves are checked by ``benchmarks/check_stan.py``). Slow tests run nutpie and
numpyro on small models.
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from bayes_blina.errors import SpecError
from bayes_blina.inference import fit, resolve_backend
from bayes_blina.spec import load_spec

from conftest import response_spec

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


# ---------------------------------------------------------------------------------- back ends
def test_auto_backend_is_nutpie_when_installed():
    expected = "nutpie" if importlib.util.find_spec("nutpie") else "pymc"
    assert resolve_backend("auto") == expected
    assert resolve_backend("pymc") == "pymc"


def test_unknown_backend_is_refused():
    with pytest.raises(SpecError, match="unknown sampler back end 'stan'"):
        resolve_backend("stan")


def test_missing_numpyro_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    # whether or not numpyro itself is installed here (CI installs only the test extra)
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("jax", "numpyro") else real(name, *a))
    with pytest.raises(SpecError, match=r"needs numpyro, jax.*pip install numpyro jax"):
        resolve_backend("numpyro")


def test_sampler_method_is_validated():
    spec = load_spec(response_spec(factors=["regimen"]))
    assert spec.sampler.method == "nuts" and not spec.sampler.approximate
    assert spec.with_sampler(method="pathfinder").sampler.approximate
    with pytest.raises(SpecError, match="sampler settings.*method"):
        spec.with_sampler(method="hmc")
    with pytest.raises(SpecError, match="approx_steps"):
        spec.with_sampler(approx_steps=5)


def test_jax_erfcx_gives_a_stable_censored_likelihood():
    """The numpyro back end needs erfcx in JAX: log Phi must match scipy from z = -40 to 8."""
    pytest.importorskip("jax")
    import pytensor
    import pytensor.tensor as pt

    from bayes_blina.inference import register_jax_erfcx
    from bayes_blina.likelihood import log_ndtr

    register_jax_erfcx()
    register_jax_erfcx()  # idempotent
    z = pt.dvector("z")
    out = log_ndtr(z)
    f = pytensor.function([z], [out, pytensor.grad(out.sum(), z)], mode="JAX")
    zs = np.array([-40.0, -20.0, -5.0, -1.5, -1.0, -0.3, 0.0, 2.0, 8.0])
    val, grad = f(zs)
    np.testing.assert_allclose(val, special.log_ndtr(zs), rtol=1e-10, atol=1e-12)
    # d/dz log Phi(z) = phi(z) / Phi(z)
    ref = np.exp(-0.5 * zs**2 - 0.5 * np.log(2 * np.pi) - special.log_ndtr(zs))
    np.testing.assert_allclose(grad, ref, rtol=1e-8)


# ---------------------------------------------------------------------------------- Stan data contract
def _stan_data_names(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    block = text[text.index("\ndata {") + 7: text.index("\ntransformed data {")]
    block = re.sub(r"//[^\n]*", "", block)
    names = set()
    for stmt in block.split(";"):
        stmt = stmt.strip().rstrip("}").strip()
        if stmt:
            names.add(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", stmt)[0])
    return names


@pytest.fixture(scope="module")
def stan_ref():
    sys.path.insert(0, str(BENCH))
    import stan_ref as mod

    yield mod
    sys.path.remove(str(BENCH))


def test_stan_response_data_match_the_program(stan_ref):
    from bayes_blina.families import get_family
    from bayes_blina.simulate import simulate_response_cohort

    ds = simulate_response_cohort(120, seed=2)[0]
    spec = load_spec(response_spec(factors=["regimen", "age_group", "blast_burden"]))
    fam = get_family("response")(spec.options, spec.priors)
    prep = fam.prepare(ds)
    data = stan_ref.response_data(fam, prep)
    assert set(data) == _stan_data_names(stan_ref.STAN_FILES["response"])
    assert sum(data["cell_n"]) == 120 and sum(data["cell_y"]) == int(prep.arrays["pat_y"].sum())
    for f, lev, k in zip(fam.options.factors, data["cell_level"], data["K"]):
        assert len(lev) == data["C"] and min(lev) >= 0 and max(lev) <= k  # 1-based, 0 = unknown


def test_stan_pulse_data_match_the_program(stan_ref):
    from bayes_blina.families import get_family
    from bayes_blina.simulate import simulate_cohort

    ds = simulate_cohort("adult-exploratory", 4, seed=3)[0]
    spec = load_spec("cytokine-core")
    fam = get_family(spec.family)(spec.options, spec.priors)
    prep = fam.prepare(ds)
    data = stan_ref.pulse_data(fam, prep)
    assert set(data) == _stan_data_names(stan_ref.STAN_FILES["pulse"])
    assert data["N"] == len(prep.arrays["log_y"]) and data["P"] == len(prep.arrays["pair_obs"])
    assert data["correlated"] == 1 and data["A"] == 3
    assert min(data["pair_obs"]) >= 1 and max(data["pair_obs"]) <= data["N"]
    # every censored row after the uncensored ones (the program's two likelihood slices)
    assert not prep.arrays["is_censored"][: data["N_unc"]].any()
    assert prep.arrays["is_censored"][data["N_unc"]:].all()


def test_stan_reference_refuses_other_priors(stan_ref):
    from bayes_blina.families import get_family
    from bayes_blina.simulate import simulate_response_cohort

    ds = simulate_response_cohort(50, seed=2)[0]
    spec = load_spec(response_spec(factors=["regimen"], priors={"sd_regimen": {"dist": "HalfNormal", "sigma": 1}}))
    fam = get_family("response")(spec.options, spec.priors)
    with pytest.raises(ValueError, match="needs a Gamma prior for sd_regimen"):
        stan_ref.response_data(fam, fam.prepare(ds))


# ---------------------------------------------------------------------------------- slow: samplers
@pytest.mark.slow
def test_nutpie_fit_times_compilation_apart():
    from bayes_blina.simulate import simulate_response_cohort

    ds = simulate_response_cohort(200, seed=4)[0]
    res = fit(response_spec(factors=["regimen", "blast_burden"], draws=200, tune=200), ds, backend="nutpie",
              chains=2)
    assert res.backend == "nutpie"
    assert res.timing["compile_s"] > 0 and res.timing["sampling_s"] > 0
    assert res.timing["wall_s"] >= res.timing["compile_s"] + res.timing["sampling_s"]
    post = res.idata.posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 200
    assert not [v for v in post.data_vars if str(v).endswith("__")]
    assert "diverging" in res.idata.sample_stats and "warmup_posterior" not in res.idata.children
    assert post.attrs["inference"] == "NUTS (nutpie)"


@pytest.mark.slow
def test_numpyro_fits_the_censored_pulse_model():
    pytest.importorskip("numpyro")
    from bayes_blina.simulate import simulate_cohort

    ds = simulate_cohort("adult-exploratory", 4, seed=7)[0]
    spec = {"name": "p", "family": "pulse", "options": {"analytes": ["IL6"], "correlated": False}}
    res = fit(spec, ds, backend="numpyro", chains=2, draws=150, tune=150, seed=3)
    assert res.backend == "numpyro" and res.timing["device"] in ("cpu", "gpu", "tpu")
    post = res.idata.posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 150
    assert np.isfinite(post["sigma_obs"].values).all()
    assert np.isfinite(res.idata.log_likelihood["y"].values).all()
    # the fit moved from the prior: the residual SD is well below its HalfNormal(1) prior mean 0.8
    assert float(post["sigma_obs"].mean()) < 0.6


def test_a_dumped_spec_parses_back_to_the_same_spec():
    """``parse_spec(spec.model_dump())`` round-trips (it raised TypeError: text and path twice)."""
    from bayes_blina.spec import parse_spec

    spec = load_spec("response")
    again = parse_spec(spec.model_dump())
    assert again == spec
    assert again.path == spec.path and again.text == spec.text
    assert parse_spec(spec.model_dump(), path="elsewhere.toml").path == "elsewhere.toml"
