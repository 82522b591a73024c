"""Decorrelated sampling coordinates of the pulse family's event effects (issue 15, part 3).

In a cohort whose every patient starts at 5 and steps to 15 µg/m²/day, each step is both a higher
dose and a re-exposure: the data pin ``gamma_dose * log 3 + delta_reexposure`` and leave the rest
to the prior, a posterior correlation near -1. ``event_coordinates = true`` (default) samples
coordinates in which that correlation is gone, with exactly the declared prior.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from bayes_blina.families import get_family
from bayes_blina.inference import fit
from bayes_blina.simulate import simulate_cohort
from bayes_blina.simulate.presets import Arm, get_preset
from bayes_blina.spec import load_spec


def _step_only_cohort(n: int, seed: int):
    cfg = replace(get_preset("adult-exploratory"), arms=(Arm("step", "5-15", n, "sparse"),))
    return simulate_cohort(cfg, seed=seed)


def _il10_spec(**options):
    spec = load_spec("cytokine-core").to_toml_dict()
    spec["options"].update({"analytes": ["IL10"], "cycles": 1, **options})
    return spec


def test_event_coordinates_keep_the_declared_prior():
    """Forward draws of gamma, delta, kappa through the new coordinates have the declared
    means and SDs (per analyte, here with an analyte-specific prior) and no correlation."""
    import pymc as pm

    ds, _ = _step_only_cohort(12, seed=3)
    spec = load_spec(_il10_spec(analytes=["IL6", "IL10"]) | {
        "priors": {**load_spec("cytokine-core").priors,
                   "delta_reexposure[IL10]": {"dist": "Normal", "mu": -1.0, "sigma": 0.5}}})
    fam = get_family(spec.family)(spec.options, spec.priors)
    prep = fam.prepare(ds)
    with pm.Model(coords={"analyte": ["IL6", "IL10"]}):
        g, d, k = fam._event_effects(prep.arrays, 2)
        draws = pm.draw([g, d, k], draws=40_000, random_seed=1)
    g, d, k = (np.asarray(x) for x in draws)
    np.testing.assert_allclose([g.mean(0), d.mean(0), k.mean(0)], [[0, 0], [0, -1.0], [0, 0]], atol=0.03)
    np.testing.assert_allclose([g.std(0), d.std(0), k.std(0)], [[1, 1], [1.5, 0.5], [1, 1]], rtol=0.03)
    for a in range(2):
        c = np.corrcoef(np.stack([g[:, a], d[:, a], k[:, a]]))
        assert np.abs(c[np.triu_indices(3, 1)]).max() < 0.02


def test_event_coordinates_off_or_non_normal_prior_keeps_plain_variables():
    import pymc as pm

    ds, _ = _step_only_cohort(12, seed=3)
    for spec in (load_spec(_il10_spec(event_coordinates=False)),
                 load_spec(_il10_spec() | {"priors": {**load_spec("cytokine-core").priors,
                                                      "gamma_dose": {"dist": "StudentT", "nu": 4, "mu": 0, "sigma": 1}}})):
        fam = get_family(spec.family)(spec.options, spec.priors)
        prep = fam.prepare(ds)
        with pm.Model(coords={"analyte": ["IL10"]}) as m:
            fam._event_effects(prep.arrays, 1)
        assert "event_effects_raw" not in m.named_vars
        assert {"gamma_dose", "delta_reexposure", "kappa_cycle"} <= {v.name for v in m.free_RVs}


@pytest.mark.slow
def test_step_only_cohort_samples_well_in_event_coordinates():
    """60 patients all on 5-15 (IL-10, cycle 1, diagonal mass matrix, 4 x 1,000 draws):
    gamma and delta correlate at about -1 a posteriori, the sampler's coordinates do not, and
    delta's bulk ESS passes the gate. Measured with event_coordinates = false on the same cohort
    and seed: R-hat 1.029, bulk ESS 73 for delta_reexposure."""
    import arviz as az

    ds, _ = _step_only_cohort(60, seed=1)
    spec = _il10_spec()
    spec["sampler"].update({"draws": 1000, "mass_matrix": "diag"})
    res = fit(spec, ds, seed=1)
    post = res.idata.posterior
    g, d = post["gamma_dose"].values.ravel(), post["delta_reexposure"].values.ravel()
    assert np.corrcoef(g, d)[0, 1] < -0.9
    raw = post["event_effects_raw"].values.reshape(-1, 3)
    c = np.corrcoef(raw.T)
    assert np.abs(c[np.triu_indices(3, 1)]).max() < 0.2
    ess = az.ess(post, var_names=["gamma_dose", "delta_reexposure"], method="bulk")
    assert float(ess["delta_reexposure"].min()) >= 400 and float(ess["gamma_dose"].min()) >= 400
    assert float(az.rhat(post, var_names=["delta_reexposure"])["delta_reexposure"].max()) < 1.01


def _mixed_cohort(n_step: int, n_flat: int, seed: int):
    cfg = replace(get_preset("adult-exploratory"),
                  arms=(Arm("step", "5-15", n_step, "sparse"), Arm("flat", "15", n_flat, "sparse")))
    return simulate_cohort(cfg, seed=seed)


def test_patient_peaks_sit_at_each_patients_own_average_event():
    """``log_peak_i`` is the patient's log peak (``log B + log A`` of an event) averaged over *their*
    events, at any point of the sampler's space: so given the peaks, ``gamma_dose`` moves a
    patient's event peaks only through the contrast between that patient's events (a patient with
    one event does not move at all), and the between-patient spread of first doses (5 against 15)
    reaches the event effects through the prior of the peaks."""
    import pytensor

    ds, _ = _mixed_cohort(8, 6, seed=4)
    spec = load_spec(_il10_spec())
    fam = get_family(spec.family)(spec.options, spec.priors)
    prep = fam.prepare(ds)
    model = fam.build(prep)
    A = prep.arrays
    rng = np.random.default_rng(2)
    names = ["log_baseline", "log_amp", "gamma_dose", "delta_reexposure", "kappa_cycle"]
    f = pytensor.function(model.value_vars, model.replace_rvs_by_values([model[n] for n in names]),
                          on_unused_input="ignore")
    ip = model.initial_point()
    n_events = np.bincount(A["event_subject"], minlength=len(prep.coords["subject"]))
    assert n_events.min() >= 1 and n_events.max() >= 2  # both kinds of patient are fitted
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.5, size=np.shape(v)) for k, v in ip.items()}
        v = dict(zip(names, f(*[point[x.name] for x in model.value_vars])))
        s = A["event_subject"]
        peaks = (v["log_baseline"][s, 0] + v["log_amp"][s, 0] + v["gamma_dose"][0] * A["event_log_dose"]
                 + v["delta_reexposure"][0] * A["event_reexposure"] + v["kappa_cycle"][0] * A["event_cycle_m1"])
        own = np.bincount(s, weights=peaks) / n_events
        np.testing.assert_allclose(own, point["log_peak_i"][:, 0], atol=1e-10)
