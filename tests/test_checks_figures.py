"""Posterior predictive check of the CR model, and the forest plot."""
from __future__ import annotations

import pytest

from bayes_blina.checks import response_ppc
from bayes_blina.data import read_dataset
from bayes_blina.data.dataset import Dataset
from bayes_blina.errors import OutputError, SpecError
from bayes_blina.inference import fit
from bayes_blina.report.figures import forest_cr_subgroups, save_figure
from bayes_blina.subgroup_table import cr_subgroup_table
from bayes_blina.simulate import simulate_response_cohort
from conftest import aggregates_frame, response_spec


@pytest.mark.slow
def test_ppc_covers_data_from_the_model_and_flags_a_misfit():
    ds, _ = simulate_response_cohort(400, seed=2)
    res = fit(response_spec(factors=["age_group", "blast_burden"], seed=2), ds)
    table = response_ppc(res.idata, factors=["age_group", "blast_burden"], prob=0.9)
    assert {"subgroup", "n", "observed", "predicted_median", "predicted_lower", "predicted_upper", "ppp"} <= set(table.columns)
    assert table.iloc[0]["subgroup"] == "all patients" and table.iloc[0]["n"] == 400
    inside = (table.observed >= table.predicted_lower) & (table.observed <= table.predicted_upper)
    assert inside.all()
    # a model without the blast factor cannot reproduce a strong blast difference: flagged
    agg = Dataset(aggregates=aggregates_frame([("P", "blast_burden", "<50", "5-15", 17, 18),
                                               ("P", "blast_burden", ">=50", "5-15", 3, 52)]))
    res3 = fit(response_spec(factors=[], seed=4), agg)  # no blast factor: one common rate
    t3 = response_ppc(res3.idata, factors=[])
    assert (t3["ppp"] < 0.01).all()


def test_forest_plot_files(tmp_path):
    t = cr_subgroup_table(read_dataset("vonstackelberg2016"), pooled=False)
    fig = forest_cr_subgroups(t)
    labels = [tl.get_text() for tl in fig.axes[0].get_yticklabels()]
    assert "All patients  (27/70)" in labels and "   <2  (6/10)" in labels and "Age group, years" in labels
    for ext in (".png", ".svg", ".pdf"):
        p = save_figure(fig, tmp_path / f"forest{ext}")
        assert p.stat().st_size > 1000
    with pytest.raises(SpecError, match="must end in one of"):
        save_figure(fig, tmp_path / "forest.jpg")
    # a figure that cannot be written where asked: a clear error, nothing left behind
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile exists and is a file, not a folder"):
        save_figure(fig, tmp_path / "afile" / "forest.png")
    (tmp_path / "adir.png").mkdir()
    with pytest.raises(OutputError, match="it is an existing folder"):
        save_figure(fig, tmp_path / "adir.png")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_loo_prefers_the_model_with_the_true_factor(tmp_path):
    from bayes_blina.checks import loo_table
    from bayes_blina.errors import BayesBlinaError
    from bayes_blina.store import load_fit, save_fit

    ds, _ = simulate_response_cohort(600, seed=8)
    with_blast = load_fit(save_fit(fit(response_spec(factors=["blast_burden"], seed=8), ds), tmp_path / "with"))
    without = load_fit(save_fit(fit(response_spec(factors=[], seed=8), ds), tmp_path / "without"))
    per_fit, comparison = loo_table({"with": with_blast, "without": without})
    assert set(per_fit.fit) == {"with", "without"} and (per_fit.n_obs == 600).all()
    assert (per_fit.k_bad + per_fit.k_very_bad == 0).all()
    assert comparison.iloc[0]["fit"] == "with"
    other = load_fit(save_fit(fit(response_spec(seed=8), simulate_response_cohort(50, seed=1)[0]), tmp_path / "other"))
    with pytest.raises(BayesBlinaError, match="same data"):
        loo_table({"with": with_blast, "other": other})
