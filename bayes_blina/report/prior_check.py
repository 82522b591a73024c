"""Rendering of a prior predictive check (:func:`bayes_blina.checks.prior.prior_check`): the
Markdown report and the figure. The check itself computes; this module only draws and writes."""
from __future__ import annotations

import numpy as np

from bayes_blina.checks.prior import PriorCheck
from bayes_blina.report.figures import _plt
from bayes_blina.report.tables import format_table

__all__ = ["prior_check_figure", "prior_check_markdown"]


def prior_check_markdown(res: PriorCheck) -> str:
    """The check as a Markdown report (flags first, then the tables)."""
    lines = [f"# Prior predictive check: {res.spec_name}", "",
             f"Family `{res.family}`, design of dataset `{res.dataset}`, {res.draws} prior draws (seed {res.seed}).", ""]
    if "values" in res.tables:  # assay values (trajectory and joint families)
        lines += ["Values are what the assay would measure without limits (before censoring), in the "
                  "analyte's canonical unit; `prior_below_limit` is the fraction of replicated results "
                  "below the row's limit.", ""]
    lines += ["## Flags", ""]
    lines += [f"* {f}" for f in res.flags] if res.flags else ["No absurd implications found."]
    lines.append("")
    titles = {"values": "Prior predictive values by analyte and time",
              "survival": "Implied marginal survival of the cohort against its Kaplan-Meier estimate",
              "subgroups": "Implied CR rate by subgroup", "aggregates": "Implied CR rate of the aggregate rows",
              "quantities": "Named quantities"}
    for key, df in res.tables.items():
        if len(df):
            lines += [f"## {titles.get(key, key)}", "", format_table(df, "md", digits=3)]
    return "\n".join(lines)


def prior_check_figure(res: PriorCheck):
    """Prior predictive bands with the observed data (trajectories), or implied CR rates (response)."""
    plt = _plt()
    if res.plot.get("kind") == "trajectory":
        panels = res.plot["panels"]
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
        for ax, p in zip(axes[0], panels):
            band = p["band"]
            ax.fill_between(band[:, 0], band[:, 1], band[:, 5], color="C0", alpha=0.2, label="prior 90%")
            ax.fill_between(band[:, 0], band[:, 2], band[:, 4], color="C0", alpha=0.35, label="prior 50%")
            ax.plot(band[:, 0], band[:, 3], color="C0", lw=1.2, label="prior median")
            ax.scatter(p["t_obs"], p["y_obs"], s=6, color="k", alpha=0.6, label="observed")
            ax.scatter(p["t_cens"], p["y_cens"], s=10, marker="v", facecolors="none", edgecolors="k",
                       alpha=0.6, label="below limit (at the limit)")
            ax.set_yscale("log")
            ax.set_xscale("symlog", linthresh=24.0)
            t_all = np.concatenate([band[:, 0], p["t_obs"], p["t_cens"]])
            ax.set_xlim(left=min(float(t_all.min()) - 1.0, -1.0))
            ax.set_title(p["analyte"], fontsize=9)
            ax.set_xlabel("hours since first infusion start")
            ax.set_ylabel(p["unit"])
        axes[0][-1].legend(fontsize=6, frameon=False)
    elif res.plot.get("kind") == "survival":
        band, km = res.plot["band"], res.plot["km"]
        fig, ax = plt.subplots(figsize=(5.0, 3.4))
        ax.fill_between(band[:, 0], band[:, 1], band[:, 5], color="C0", alpha=0.2, label="prior 90%")
        ax.fill_between(band[:, 0], band[:, 2], band[:, 4], color="C0", alpha=0.35, label="prior 50%")
        ax.plot(band[:, 0], band[:, 3], color="C0", lw=1.2, label="prior median")
        ax.step(band[:, 0], km, where="post", color="k", lw=1.2, label="Kaplan-Meier (data)")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("months since the first infusion start")
        ax.set_ylabel("survival")
        ax.legend(fontsize=6, frameon=False)
    else:
        rows = res.plot["rows"]
        fig, ax = plt.subplots(figsize=(6.0, 0.3 * len(rows) + 1.2))
        yy = np.arange(len(rows))[::-1]
        for y, r in zip(yy, rows):
            ax.plot([r["rate_q05"], r["rate_q95"]], [y, y], color="C0", lw=1.5)
            ax.plot([r["rate_q50"]], [y], "|", color="C0", ms=8)
            ax.plot([r["observed_rate"]], [y], "o", color="k", ms=4)
        ax.set_yticks(yy, [r["subgroup"] for r in rows], fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_xlabel("CR rate (prior 90% interval, median | ; observed ●)")
    fig.suptitle(f"Prior predictive check: {res.spec_name}", fontsize=9)
    fig.tight_layout()
    return fig
