"""Trajectory parts of a stored joint fit seen as stored fits of their families
(:mod:`bayes_blina.joint.parts`): the view's contents, the VPC and LOO-PIT on it, the report's
per-part VPCs and P(CR) figure, and ``bayes-blina vpc --part``."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from bayes_blina.checks.loo import loo_pit
from bayes_blina.checks.vpc import stored_prepared, vpc_from_fit
from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import BayesBlinaError
from bayes_blina.families.joint import PARTS, JointModel
from bayes_blina.families.trajectory import unprefixed
from bayes_blina.inference import fit
from bayes_blina.joint.parts import part_view
from bayes_blina.likelihood import censored_lognormal_logp_np
from bayes_blina.report.html import build_report
from bayes_blina.simulate import simulate_cohort
from bayes_blina.store import load_fit, save_fit
from conftest import aggregates_frame, response_spec

JOINT_SPEC = {"name": "j", "family": "joint", "options": {},
              "sampler": {"chains": 2, "draws": 200, "tune": 200, "seed": 1}}


@pytest.fixture(scope="module")
def joint(tmp_path_factory):
    """A small joint fit (36 simulated adults), saved and loaded back, with its dataset."""
    ds, _ = simulate_cohort("adult-exploratory", 36, seed=1)
    folder = tmp_path_factory.mktemp("joint-parts")
    path = save_fit(fit(JOINT_SPEC, ds), folder / "joint")
    return load_fit(path), ds


@pytest.fixture(scope="module")
def response_fit(tmp_path_factory):
    """A tiny non-joint (response) fit."""
    ds = Dataset(aggregates=aggregates_frame([("P", "all", "all", "5-15", 27, 70)]), name="tiny", origin="test")
    spec = response_spec(draws=100, tune=100)
    spec["sampler"]["chains"] = 2
    return save_fit(fit(spec, ds), tmp_path_factory.mktemp("response-fit") / "response")


def _cli(*args):
    from bayes_blina.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


def test_part_view_of_a_non_joint_fit_is_refused():
    with pytest.raises(BayesBlinaError, match="needs a fit of the 'joint' family; .* is a 'pulse' fit"):
        part_view(SimpleNamespace(family_name="pulse", path="somewhere"), "tcell")


@pytest.mark.slow
def test_view_has_the_parts_variables_without_prefix(joint):
    stored, _ = joint
    fam = JointModel(stored.options, stored.provenance["model"]["resolved"]["priors"])
    for part, (family, prefix) in PARTS.items():
        view = part_view(stored, part)
        assert view.family_name == family and view.part == part and view.path == stored.path
        assert view.options == fam.parts[part].options.model_dump()
        assert view.provenance["model"]["resolved"]["priors"] == {k: v.to_dict() for k, v in
                                                                   fam.parts[part].priors.items()}
        assert view.provenance["data"]["use"] == stored.provenance["data"]["use"][part]
        assert view.provenance["data"]["sha256"] == stored.provenance["data"]["sha256"]
        assert view.spec.sampler == stored.spec.sampler
        for group in ("posterior", "constant_data", "log_likelihood"):
            joint_ds, view_ds = getattr(stored.idata, group), getattr(view.idata, group)
            names = [str(v) for v in joint_ds.data_vars if str(v).startswith(prefix)]
            assert sorted(str(v) for v in view_ds.data_vars) == sorted(v[len(prefix):] for v in names)
            assert not [d for d in view_ds.dims if str(d).startswith(("tcell_", "cyt_", "cr_"))]
            for v in names:
                assert view_ds[v[len(prefix):]].shape == joint_ds[v].shape
                np.testing.assert_array_equal(view_ds[v[len(prefix):]].values, joint_ds[v].values)
    with pytest.raises(BayesBlinaError, match=r"no trajectory part 'cr'.*tcell, cyt \(or cytokines\)"):
        part_view(stored, "cr")
    assert part_view(stored, "cytokines").part == "cyt"


@pytest.mark.slow
def test_vpc_and_loo_pit_of_the_tcell_part_account_for_every_cd3_row(joint):
    stored, ds = joint
    view = part_view(stored, "tcell")
    cd3 = stored.provenance["data"]["use"]["censored"]["CD3"]
    for dataset in (None, ds):
        table = vpc_from_fit(view, dataset, bins=4, n_draws=40)
        assert table.attrs["accounting"] == [{"analyte": "CD3", "rows": cd3["rows"], "censored": cd3["censored"],
                                              "rows_in_fit": cd3["rows"], "censored_in_fit": cd3["censored"]}]
        assert set(table["analyte"]) == {"CD3"}
    assert len(stored.idata.constant_data["tcell_obs_time_h"]) == cd3["rows"]
    pit = loo_pit(view)
    assert len(pit) == cd3["rows"] and pit["pit"].between(0, 1).all()
    cyt = part_view(stored, "cyt")
    table = vpc_from_fit(cyt, ds, bins=4, n_draws=40)
    use = stored.provenance["data"]["use"]["censored"]
    assert {r["analyte"]: (r["rows"], r["censored"]) for r in table.attrs["accounting"]} == {
        a: (use[a]["rows"], use[a]["censored"]) for a in cyt.options["analytes"]}


@pytest.mark.slow
def test_mean_log_of_the_view_is_the_joint_models_part_mean(joint):
    stored, ds = joint
    fam = JointModel(stored.options, stored.provenance["model"]["resolved"]["priors"])
    prepared = fam.prepare(ds)
    for part, (_, prefix) in PARTS.items():
        family, view_prepared, view_post = stored_prepared(part_view(stored, part))
        pick = [0, 57, 399]
        draws = view_post.stack(sample=("chain", "draw")).transpose("sample", ...).isel(sample=pick)
        mu_view = family.mean_log(draws, view_prepared)
        # the joint model's part: its own prepared arrays (prepared again from the data) and posterior
        joint_draws = unprefixed(stored.idata.posterior, prefix).stack(sample=("chain", "draw")) \
            .transpose("sample", ...).isel(sample=pick)
        sub = fam.sub_prepared(prepared, part)
        mu_joint = fam.parts[part].mean_log(joint_draws, sub)
        np.testing.assert_allclose(mu_view, mu_joint, rtol=1e-12, atol=1e-12)
        # and the pointwise log-likelihood the joint fit stored for the part
        A = view_prepared.arrays
        sigma = np.asarray(draws[family.sigma_name].values)[:, A["obs_analyte"].astype(int)]
        ll = censored_lognormal_logp_np(mu_view, sigma, A["log_y"], A["log_limit"], A["is_censored"].astype(bool))
        stored_ll = stored.idata.log_likelihood[prefix + "y"].stack(sample=("chain", "draw")) \
            .transpose("sample", ...).isel(sample=pick).values
        np.testing.assert_allclose(ll, stored_ll, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_report_has_a_vpc_per_part_and_the_pcr_figure(joint):
    stored, ds = joint
    page = build_report({"joint": stored}, datasets=[ds], vpc_bins=4, vpc_draws=30, allow_unconverged=True)
    heads = re.findall(r"<h4>([^<]*)</h4>", page)
    assert "T cells (tcell part): VPC" in heads and "Cytokines (cyt part): VPC" in heads
    assert "P(CR) against T-cell expansion by regimen" in heads
    for key in ("vpc-tcell", "vpc-cyt", "odds-ratios", "pcr-expansion", "loo-pit-tcell", "loo-pit-cyt"):
        assert f'data-figure="joint-{key}"' in page
    assert "no predictive check for family" not in page and "VPC not shown" not in page
    assert not re.search(r"LOO-PIT[^<]* not shown", page)  # the rows of each part, not the binary CR
    assert 'id="joint-tcell-vpc-accounting"' in page and 'id="joint-cyt-vpc-accounting"' in page


@pytest.mark.slow
def test_cli_vpc_part(joint, response_fit, tmp_path):
    stored, _ = joint
    r = _cli("vpc", stored.path, "--part", "tcell", "--bins", "3", "--draws", "20", "--format", "csv",
             "--out", tmp_path / "vpc.csv", "--allow-unconverged")
    assert r.exit_code == 0, r.output
    cd3 = stored.provenance["data"]["use"]["censored"]["CD3"]
    assert f"CD3: {cd3['rows']} rows ({cd3['censored']} censored) in the VPC" in r.output
    assert (tmp_path / "vpc.csv").stat().st_size > 100
    r = _cli("vpc", stored.path, "--bins", "3", "--draws", "20", "--allow-unconverged")
    assert r.exit_code != 0 and "--part" in r.output and "tcell, cyt (or cytokines)" in r.output
    r = _cli("vpc", stored.path, "--part", "il10", "--allow-unconverged")
    assert r.exit_code != 0 and "tcell, cyt (or cytokines)" in r.output
    r = _cli("vpc", response_fit, "--part", "tcell")
    assert r.exit_code != 0 and "only for joint fits" in r.output and "'response'" in r.output
