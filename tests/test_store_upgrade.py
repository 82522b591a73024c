"""Fits written by the previous release (bayes_blina 0.1.0: PyMC 5, ArviZ 0.23 InferenceData, fit
format version 1) load under this one (ArviZ 1.x DataTree, format version 2); a fit of a newer
format is refused with a message naming the version that wrote it and what to do.

``tests/data/fit-0.1.0-response`` was written by ``bayes-blina fit response --data published
--chains 2 --draws 40 --tune 100`` with bayes_blina 0.1.0 (commit a99a878) under Python 3.11,
PyMC 5.28.5, ArviZ 0.23.4; it is deliberately short, so its gate fails.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayes_blina.errors import ConvergenceError, FitStoreError
from bayes_blina.report.tables import gate_or_raise, posterior_table
from bayes_blina.store import FORMAT_VERSION, PROVENANCE, READABLE_VERSIONS, load_fit

OLD_FIT = Path(__file__).parent / "data" / "fit-0.1.0-response"


def test_a_fit_of_the_previous_release_loads_with_every_group():
    st = load_fit(OLD_FIT)
    assert st.provenance["format_version"] == 1 and st.provenance["package"]["version"] == "0.1.0"
    assert isinstance(st.idata, xr.DataTree)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data"} <= set(st.idata.children)
    post = st.idata.posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 40
    assert st.family_name == "response" and st.spec.family == "response"
    p = np.asarray(post["p_typical"].values)
    assert p.shape == (2, 40) and ((p > 0) & (p < 1)).all()


def test_the_gate_is_rejudged_on_the_old_fit_and_its_summary_refused():
    st = load_fit(OLD_FIT)
    v = st.verdict
    assert not v.passed and v.n_chains == 2 and v.n_draws == 40
    assert np.isfinite(v.max_rhat) and np.isfinite(v.min_bfmi)  # E-BFMI computed from the old energy
    assert v.to_dict()["max_rhat"] == pytest.approx(st.provenance["diagnostics"]["max_rhat"], rel=1e-6)
    with pytest.raises(ConvergenceError, match="failed the convergence gate"):
        gate_or_raise(v, allow_unconverged=False)
    table = posterior_table(st.idata, ["p_typical"], prob=0.9)
    assert table.loc[0, "lower"] < table.loc[0, "median"] < table.loc[0, "upper"]


def test_a_fit_of_a_newer_format_is_refused_naming_the_version(tmp_path):
    assert FORMAT_VERSION in READABLE_VERSIONS and 1 in READABLE_VERSIONS
    fitdir = tmp_path / "newer"
    shutil.copytree(OLD_FIT, fitdir)
    prov = json.loads((fitdir / PROVENANCE).read_text())
    prov.update(format_version=FORMAT_VERSION + 1, package={"name": "bayes_blina", "version": "9.0.0"})
    (fitdir / PROVENANCE).write_text(json.dumps(prov))
    with pytest.raises(FitStoreError, match=rf"written by bayes_blina 9\.0\.0 in fit format version {FORMAT_VERSION + 1}.*upgrade bayes_blina"):
        load_fit(fitdir)
    prov.update(format_version=0)
    (fitdir / PROVENANCE).write_text(json.dumps(prov))
    with pytest.raises(FitStoreError, match="format version 0.*refit the model"):
        load_fit(fitdir)
