"""Fit store: round trip, provenance, atomic writes and refusal of damaged fits."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import FitExistsError, FitStoreError
from bayes_blina.inference import fit
from bayes_blina.store import POSTERIOR, PROVENANCE, load_fit, save_fit, seal_provenance
from conftest import aggregates_frame, response_spec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result():
    ds = Dataset(aggregates=aggregates_frame([("P", "all", "all", "5-15", 27, 70)]), name="tiny", origin="test")
    return fit(response_spec(draws=500, tune=500), ds)


@pytest.fixture
def saved(result, tmp_path):
    return save_fit(result, tmp_path / "fit")


def test_round_trip_keeps_posterior_and_provenance(result, saved):
    st = load_fit(saved)
    np.testing.assert_allclose(st.idata.posterior["p_typical"].values, result.idata.posterior["p_typical"].values)
    for g in ("posterior", "sample_stats", "log_likelihood", "observed_data", "constant_data"):
        assert g in st.idata.children, g
    p = st.provenance
    assert p["data"]["sha256"] == result.data_sha256 and len(p["data"]["sha256"]) == 64
    assert p["model"]["family"] == "response" and p["model"]["spec"]["name"] == "test-response"
    assert p["sampler"]["seed"] == 11 and p["sampler"]["draws"] == 500 and p["sampler"]["backend_used"]
    assert p["package"]["name"] == "bayes_blina" and p["package"]["version"]
    assert p["created"].endswith("+00:00")
    assert p["diagnostics"]["passed"] == result.verdict.passed
    assert st.verdict.passed == result.verdict.passed
    assert st.spec.sampler.draws == 500


def test_a_fit_in_memory_and_read_back_are_one_type(result, saved):
    from bayes_blina.families.response import ResponseModel
    from bayes_blina.store import Fit

    st = load_fit(saved)
    assert type(result) is Fit and type(st) is Fit and result.path is None and st.path == saved
    # the same record: what was written is the fit's own provenance (plus the file checksums)
    assert {k: v for k, v in st.provenance.items() if k not in ("files", "integrity")} == result.provenance
    for name in ("family_name", "options", "dataset_name", "dataset_origin", "data_sha256", "backend", "timing"):
        assert getattr(st, name) == getattr(result, name), name
    # rebuilt by the store: the family from the recorded options and priors, the prepared arrays
    # from constant_data, the data use from the provenance
    assert isinstance(st.family, ResponseModel) and st.family.describe() == result.family.describe()
    assert set(st.prepared.arrays) == set(result.prepared.arrays)
    for k, v in result.prepared.arrays.items():
        np.testing.assert_array_equal(st.prepared.arrays[k], v)
    assert st.prepared.data_use == json.loads(json.dumps(result.prepared.data_use))
    assert st.verdict.to_dict() == result.verdict.to_dict()


def test_save_fit_takes_a_fit_and_the_old_names_warn(result, tmp_path):
    import bayes_blina.inference as inference
    import bayes_blina.store as store

    with pytest.raises(FitStoreError, match="save_fit takes a Fit .* found dict"):
        save_fit({"idata": result.idata}, tmp_path / "fit")
    assert not (tmp_path / "fit").exists()
    with pytest.warns(DeprecationWarning, match="StoredFit is bayes_blina.store.Fit"):
        assert store.StoredFit is store.Fit
    with pytest.warns(DeprecationWarning, match="FitResult is bayes_blina.store.Fit"):
        assert inference.FitResult is store.Fit
    with pytest.raises(AttributeError):
        store.NoSuchThing  # noqa: B018


def test_existing_fit_is_not_overwritten_without_force(result, saved):
    before = (saved / POSTERIOR).read_bytes()
    with pytest.raises(FitExistsError, match="--force"):
        save_fit(result, saved)
    assert (saved / POSTERIOR).read_bytes() == before
    save_fit(result, saved, force=True)
    assert load_fit(saved).provenance["files"][POSTERIOR]
    assert [p.name for p in saved.parent.iterdir()] == ["fit"]  # no temporary or old folders left


def test_interrupted_write_leaves_nothing(result, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise KeyboardInterrupt("interrupted")

    monkeypatch.setattr(type(result.idata), "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        save_fit(result, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_replacement_keeps_the_old_fit(result, saved, monkeypatch):
    before = (saved / POSTERIOR).read_bytes()
    monkeypatch.setattr(type(result.idata), "to_netcdf", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        save_fit(result, saved, force=True)
    assert (saved / POSTERIOR).read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == ["fit"]


def test_tampered_posterior_is_refused(saved):
    data = bytearray((saved / POSTERIOR).read_bytes())
    data[-100] ^= 0xFF
    (saved / POSTERIOR).write_bytes(bytes(data))
    with pytest.raises(FitStoreError, match="does not match its checksum"):
        load_fit(saved)


def test_corrupted_netcdf_is_refused_even_with_matching_checksum(saved):
    (saved / POSTERIOR).write_bytes(b"not a netcdf file")
    prov = json.loads((saved / PROVENANCE).read_text())
    from bayes_blina.store import sha256_file

    prov["files"][POSTERIOR] = sha256_file(saved / POSTERIOR)
    (saved / PROVENANCE).write_text(seal_provenance(prov))  # an adversary who also reseals
    with pytest.raises(FitStoreError, match="cannot read .* as NetCDF"):
        load_fit(saved)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / PROVENANCE).unlink(), "provenance.json is missing"),
    (lambda d: (d / POSTERIOR).unlink(), "posterior.nc is missing"),
    (lambda d: (d / PROVENANCE).write_text("{not json"), "is not valid JSON"),
    (lambda d: (d / PROVENANCE).write_text("[1, 2]"), "does not hold a provenance record"),
    (lambda d: (d / PROVENANCE).write_text(json.dumps({"format": "bayes_blina.fit"})), "lacks required field"),
    (lambda d: _edit(d, format_version=99), "format version 99"),
    (lambda d: _edit(d, seed=12345), "was edited after the fit was written"),
    (lambda d: _edit(d, integrity=None), "lacks its integrity digest"),
    (lambda d: _edit(d, format="something.else"), "is not a bayes_blina fit"),
    (lambda d: shutil.rmtree(d), "no fit at"),
])
def test_damaged_fits_are_refused_with_a_clear_message(saved, damage, message):
    damage(saved)
    with pytest.raises(FitStoreError, match=message):
        load_fit(saved)


def _edit(d, **changes):
    prov = json.loads((d / PROVENANCE).read_text())
    prov.update(changes)
    (d / PROVENANCE).write_text(json.dumps(prov))


def test_no_pickle_in_the_fit_folder(saved):
    for f in saved.iterdir():
        head = f.read_bytes()[:8]
        assert not head.startswith(b"\x80"), f  # pickle protocol marker
    assert (saved / POSTERIOR).read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"  # NetCDF4/HDF5


def test_prior_group_is_stored_when_sampled(tmp_path):
    ds = Dataset(aggregates=aggregates_frame([("P", "all", "all", "5-15", 27, 70)]))
    spec = response_spec(draws=200, tune=200)
    spec["sampler"]["prior_draws"] = 300
    st = load_fit(save_fit(fit(spec, ds), tmp_path / "withprior"))
    assert "prior" in st.idata.children
    prior = st.idata.prior["p_typical"].values.ravel()
    assert prior.size == 300 and 0.4 < prior.mean() < 0.6  # Beta(1, 1) prior
