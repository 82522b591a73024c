"""Rendering of simulation-based calibration (:func:`bayes_blina.checks.sbc.run_sbc`): rank
histograms, the Markdown summary and the output folder. The run computes; this module draws and
writes."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy import stats

from bayes_blina._atomic import write_text_atomic
from bayes_blina.checks.sbc import SBCResult
from bayes_blina.report.figures import _plt, save_figure
from bayes_blina.report.tables import format_table

__all__ = ["rank_histogram_figure", "sbc_markdown", "write_sbc"]


def rank_histogram_figure(res: SBCResult, *, max_panels: int = 48):
    """Rank histograms (one panel per quantity) with the central 99% band of a uniform bin count."""
    plt = _plt()
    tests = res.tests.head(max_panels)
    n = len(tests)
    ncol = min(6, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.3 * ncol, 1.8 * nrow + 0.6), squeeze=False)
    L = res.settings.rank_draws
    for ax, (_, t) in zip(axes.ravel(), tests.iterrows()):
        B = int(t["bins"])
        r = res.ranks.loc[res.ranks["quantity"] == t["quantity"], "rank"].to_numpy()
        counts = np.bincount(r * B // (L + 1), minlength=B)
        N = len(r)
        lo, hi = stats.binom.ppf([0.005, 0.995], N, 1 / B)
        ax.axhspan(lo, hi, color="grey", alpha=0.25, lw=0)
        ax.axhline(N / B, color="grey", lw=0.8)
        ax.bar(np.arange(B), counts, width=1.0, color="C0" if t["passed"] else "C3", edgecolor="white", lw=0.3)
        ax.set_title(f"{t['quantity']}\np = {min(t['p_chi2'], t['p_ecdf']):.2g}", fontsize=6)
        ax.set_xticks([])
        ax.tick_params(labelsize=5)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"SBC rank histograms: {res.spec_name} ({res.settings.sims} simulations, "
                 f"{'passed' if res.passed else 'FAILED'})", fontsize=8)
    fig.tight_layout()
    return fig


def sbc_markdown(res: SBCResult) -> str:
    """Summary of an SBC run as Markdown: settings, verdict, timing, per-quantity tests."""
    s = res.settings
    wall = res.sims["wall_s"]
    lines = [f"# Simulation-based calibration: {res.spec_name}", "",
             f"**{res.verdict}**", "",
             f"* family `{res.family}`, design `{res.design}`",
             f"* {s.sims} simulations, seed {s.seed} (simulation i: seed {s.seed} + i); nutpie, {s.chains} chains, "
             f"{s.tune} tuning + {s.draws} draws each, thinned to {s.rank_draws}; target_accept {s.target_accept}",
             f"* wall time {res.wall_s:.1f} s; per simulation median {wall.median():.2f} s, max {wall.max():.2f} s "
             f"(data simulation and fit, compilation included where it happened)",
             f"* divergences: {int(res.sims['divergences'].sum())} in {int((res.sims['divergences'] > 0).sum())} "
             f"simulations; worst R-hat {res.sims['max_rhat'].max():.3f}",
             ]
    lines += [f"* note: {n}" for n in res.notes]
    lines += ["", format_table(res.tests, "md", digits=4)]
    return "\n".join(lines)


def write_sbc(res: SBCResult, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``ranks.csv``, ``sims.csv``, ``uniformity.csv``, ``rank_histograms.png``,
    ``settings.json`` and ``sbc.md`` to ``out_dir`` (created); returns the paths."""
    from bayes_blina._atomic import make_parent

    out = Path(out_dir)
    make_parent(out / "ranks.csv")  # the folder itself: OutputError when it cannot be made
    paths = [
        write_text_atomic(out / "ranks.csv", res.ranks.to_csv(index=False, lineterminator="\n")),
        write_text_atomic(out / "sims.csv", res.sims.to_csv(index=False, lineterminator="\n")),
        write_text_atomic(out / "uniformity.csv", res.tests.to_csv(index=False, lineterminator="\n")),
        write_text_atomic(out / "settings.json", json.dumps(
            {"spec": res.spec_name, "family": res.family, "design": res.design, **asdict(res.settings),
             "passed": res.passed, "verdict": res.verdict, "wall_s": round(res.wall_s, 2)}, indent=2) + "\n"),
        write_text_atomic(out / "sbc.md", sbc_markdown(res)),
    ]
    fig = rank_histogram_figure(res)
    paths.append(save_figure(fig, out / "rank_histograms.png", dpi=120))
    _plt().close(fig)
    return [Path(p) for p in paths]
