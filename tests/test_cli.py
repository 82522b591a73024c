"""The bayes-blina command line: the spine end to end, and its refusals."""
from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from bayes_blina.cli import EXIT_INPUT, EXIT_UNCONVERGED, main
from bayes_blina.data import write_dataset
from bayes_blina.data.dataset import Dataset
from conftest import aggregates_frame

pytestmark = pytest.mark.slow


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    ds = Dataset(aggregates=aggregates_frame([
        ("P", "age_group", "<2", "5-15", 6, 10),
        ("P", "age_group", "2-6", "5-15", 8, 20),
        ("P", "age_group", "7-17", "5-15", 13, 40),
        ("A", "age_group", "adult", "15:7;5-15:23;5-15-30:6", 25, 36),
    ]))
    return write_dataset(ds, tmp_path_factory.mktemp("data") / "study")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("spec") / "age.toml"
    p.write_text('name = "age"\nfamily = "response"\n[options]\nfactors = ["regimen", "age_group"]\n'
                 '[sampler]\ndraws = 1000\ntune = 1000\nseed = 5\n')
    return p


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, data_dir, spec_file):
    out = tmp_path_factory.mktemp("fits") / "age"
    r = run("fit", spec_file, "--data", data_dir, "--out", out, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "convergence gate PASSED" in r.stderr
    return out


def test_summary_formats(fitted, tmp_path):
    r = run("summary", fitted, "--format", "csv", "--prob", "0.9", "--out", tmp_path / "s.csv")
    assert r.exit_code == 0, r.output
    df = pd.read_csv(tmp_path / "s.csv")
    assert {"parameter", "mean", "sd", "lower", "upper", "r_hat", "ess_bulk"} <= set(df.columns)
    assert "p_age_group[<2]" in set(df.parameter)
    row = df.set_index("parameter").loc["p_typical"]
    assert row.lower < row["mean"] < row.upper
    md = run("summary", fitted, "--format", "md").stdout
    assert md.count("|") > 20 and "90%" not in md
    tex = run("summary", fitted, "--format", "latex").stdout
    assert r"\begin{tabular}" in tex and r"p\_typical" in tex


def test_check_passes(fitted):
    r = run("check", fitted)
    assert r.exit_code == 0 and "PASSED" in r.stdout


def test_predict(fitted, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("subject_id,study,regimen,age_years\nk1,X,5-15,1\nk2,X,5-15,12\nk3,X,15,40\n")
    r = run("predict", fitted, "--subjects", new, "--out", tmp_path / "p.csv", "--prob", "0.8")
    assert r.exit_code == 0, r.output
    p = pd.read_csv(tmp_path / "p.csv")
    assert list(p.columns[:5]) == ["subject_id", "p_cr_mean", "p_cr_median", "p_cr_lower", "p_cr_upper"]
    assert list(p.subject_id) == ["k1", "k2", "k3"]
    assert ((p.p_cr_lower < p.p_cr_median) & (p.p_cr_median < p.p_cr_upper)).all()


def test_predict_rejects_bad_subjects(fitted, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("subject_id,study,regimen,age_years\nk1,X,5-15,-3\n")
    r = run("predict", fitted, "--subjects", bad, "--out", tmp_path / "p.csv")
    assert r.exit_code == EXIT_INPUT
    assert "bad.csv, column 'age_years', row 1" in r.stderr
    assert not (tmp_path / "p.csv").exists()


def test_existing_fit_needs_force(fitted, data_dir, spec_file):
    r = run("fit", spec_file, "--data", data_dir, "--out", fitted, "--no-progress")
    assert r.exit_code == EXIT_INPUT and "--force" in r.stderr


def test_unconverged_fit_is_refused_unless_allowed(tmp_path, data_dir, spec_file):
    out = tmp_path / "short"
    r = run("fit", spec_file, "--data", data_dir, "--out", out, "--draws", "15", "--tune", "5",
            "--chains", "2", "--no-progress")
    assert r.exit_code == 0 and "convergence gate FAILED" in r.stderr
    r = run("summary", out)
    assert r.exit_code == EXIT_UNCONVERGED and "refusing to summarise" in r.stderr
    assert run("check", out).exit_code == EXIT_UNCONVERGED
    r = run("summary", out, "--allow-unconverged", "--format", "md")
    assert r.exit_code == 0 and "FAILED the convergence gate" in r.stdout
    r = run("predict", out, "--subjects", "examples/data/new-patients.csv", "--out", tmp_path / "p.csv")
    assert r.exit_code == EXIT_UNCONVERGED


def test_bad_data_is_reported_and_nothing_written(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "aggregates.csv").write_text("study,family,level,regimen,responders,n,source\n"
                                      "P,age_group,<2,5-15,12,10,x\nP,age_group,toddler,5-15,1,2,\n")
    r = run("fit", "response", "--data", d, "--out", tmp_path / "fit", "--no-progress")
    assert r.exit_code == EXIT_INPUT
    assert "column 'responders', row 1: responders must be <= n" in r.stderr
    assert "column 'level', row 2" in r.stderr and "column 'source', row 2" in r.stderr
    assert not (tmp_path / "fit").exists()


def test_unknown_spec_lists_the_available_ones(tmp_path):
    r = run("fit", "nosuchmodel", "--data", "published", "--out", tmp_path / "f")
    assert r.exit_code == EXIT_INPUT and "available:" in r.stderr and "response" in r.stderr


def test_datasets_and_exact_table(tmp_path):
    r = run("datasets")
    assert r.exit_code == 0
    for name in ("vonstackelberg2016", "nagele2017", "published"):
        assert name in r.stdout
    r = run("table", "cr-subgroups", "--data", "vonstackelberg2016", "--no-pooled", "--out", tmp_path / "t.csv")
    assert r.exit_code == 0, r.output
    t = pd.read_csv(tmp_path / "t.csv")
    assert {"exact_lower", "unpooled_median", "pooled_median"} <= set(t.columns)
    assert t.pooled_median.isna().all()


def test_simulate_writes_a_valid_dataset_with_truth(tmp_path):
    import json

    from bayes_blina.data import read_dataset

    out = tmp_path / "cohort"
    r = run("simulate", "--preset", "adult-exploratory", "--n", 12, "--seed", 3, "--out", out)
    assert r.exit_code == 0, r.output
    ds = read_dataset(out)
    assert len(ds.subjects) == 12 and len(ds.observations) > 100
    truth = json.loads((out / "truth.json").read_text())
    assert "population" in truth and len(truth["patients"]["subject_id"]) == 12
    again = run("simulate", "--preset", "adult-exploratory", "--n", 12, "--seed", 3, "--out", out)
    assert again.exit_code == EXIT_INPUT
    r = run("simulate", "--preset", "nosuch", "--seed", 1, "--out", tmp_path / "x")
    assert r.exit_code == EXIT_INPUT and "adult-exploratory" in r.stderr


def test_simulate_help_names_exactly_the_presets_there_are():
    """The option's help lists the presets by hand (building them at import would slow every
    command): it must not drift from simulate.PRESETS."""
    import re

    from bayes_blina.simulate import PRESETS

    from bayes_blina.cli import main

    [option] = [p for p in main.commands["simulate"].params if p.name == "preset"]
    listed = re.search(r"Cohort preset \(([^)]*)\)", option.help).group(1)
    assert sorted(n.strip() for n in listed.split(",")) == sorted(PRESETS)


def test_trajectory_predict_and_figure(tmp_path):
    data = tmp_path / "cohort"
    assert run("simulate", "--preset", "adult-exploratory", "--n", 18, "--seed", 2, "--out", data).exit_code == 0
    fitdir = tmp_path / "cyt"
    r = run("fit", "cytokine-core", "--data", data, "--out", fitdir, "--draws", 300, "--tune", 300, "--no-progress")
    assert r.exit_code == 0, r.output
    scen = "examples/data/dosing-scenarios"
    args = ["predict", fitdir, "--subjects", f"{scen}/subjects.csv", "--out", tmp_path / "p.csv",
            "--times", "0,24,192", "--allow-unconverged"]
    r = run(*args, "--dosing", f"{scen}/dosing.csv", "--data", data, "--figure", tmp_path / "traj.png")
    assert r.exit_code == 0, r.output
    p = pd.read_csv(tmp_path / "p.csv")
    assert list(p.columns) == ["subject_id", "analyte", "time_h", "median", "lower", "upper"]
    assert len(p) == 2 * 3 * 3 and (tmp_path / "traj.png").stat().st_size > 10_000
    il6 = p[p.analyte == "IL6"].set_index(["subject_id", "time_h"])["median"]
    assert il6[("flat-15", 24.0)] > il6[("step-5-15", 24.0)]  # higher first dose, higher peak
    assert il6[("step-5-15", 192.0)] < il6[("flat-15", 24.0)]  # priming: the step peaks lower
    r = run(*args)
    assert r.exit_code == EXIT_INPUT and "needs --dosing" in r.stderr
    r = run(*args, "--dosing", f"{scen}/dosing.csv", "--individual")
    assert r.exit_code == EXIT_INPUT and "not in it: flat-15" in r.stderr
