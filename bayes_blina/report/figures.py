"""Publication figures (matplotlib), saved as PNG, SVG or PDF by file extension."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = (".png", ".svg", ".pdf")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 200) -> Path:
    """Save ``fig`` to ``path`` (format from the extension: .png, .svg or .pdf), atomically.

    Raises
    ------
    SpecError
        For another extension.
    OutputError
        If ``path`` is a folder, a parent is a file, or the file system refuses the write (nothing
        is left behind).
    """
    from bayes_blina._atomic import make_parent
    from bayes_blina.errors import OutputError, SpecError

    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise SpecError(f"figure file must end in one of {', '.join(FORMATS)} (found {path.name!r})")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is an existing folder (expected a file name)")
    make_parent(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
        tmp.replace(path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


FAMILY_LABELS = {
    "all": "All patients", "region": "Geographic region", "blast_burden": "Bone marrow blasts at baseline",
    "age_group": "Age group, years", "prior_hsct": "Previous HSCT", "refractory": "Refractory disease",
    "prior_relapses": "Previous relapses", "phase": "Study phase",
}


def forest_cr_subgroups(table: pd.DataFrame, *, families: list[str] | None = None, title: str | None = None):
    """Forest plot of CR by subgroup: raw rate with its exact interval beside the pooled estimate.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`bayes_blina.subgroup_table.cr_subgroup_table`.
    families : list of str, optional
        Families to show, in order (default: those of the pediatric Fig 2 that are present).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    families = families or [f for f in ("all", "region", "blast_burden", "age_group", "prior_hsct",
                                        "refractory", "prior_relapses") if f in set(table["family"])]
    rows: list[tuple[str, pd.Series | None]] = []
    for f in families:
        sub = table[table["family"] == f]
        if f != "all":
            rows.append((FAMILY_LABELS.get(f, f), None))
        for _, r in sub.iterrows():
            label = "All patients" if f == "all" else f"   {r['level']}"
            rows.append((f"{label}  ({r['responders']}/{r['n']})", r))
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    pooled = table["pooled_median"].notna().any()
    for yi, (label, r) in zip(y, rows):
        if r is None:
            continue
        ax.errorbar(100 * r["rate"], yi + (0.15 if pooled else 0), xerr=[[100 * (r["rate"] - r["exact_lower"])],
                    [100 * (r["exact_upper"] - r["rate"])]], fmt="s", color="black", ms=4, capsize=2,
                    label="observed (exact 95% CI)" if yi == y[0] else None)
        if pooled and np.isfinite(r["pooled_median"]):
            ax.errorbar(100 * r["pooled_median"], yi - 0.15, xerr=[[100 * (r["pooled_median"] - r["pooled_lower"])],
                        [100 * (r["pooled_upper"] - r["pooled_median"])]], fmt="o", color="tab:blue", ms=4,
                        capsize=2, label="partially pooled (95% CrI)" if yi == y[0] else None)
    overall = table[table["family"] == "all"]
    if len(overall):
        ax.axvline(100 * overall["rate"].iloc[0], ls="--", color="grey", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([lab for lab, _ in rows], fontsize=8)
    for tick, (_, r) in zip(ax.get_yticklabels(), rows):
        if r is None:
            tick.set_fontweight("bold")
    ax.set_xlim(0, 100)
    ax.set_xlabel("CR within first two cycles, % (95% interval)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def trajectory_figure(pred: pd.DataFrame, observations: pd.DataFrame | None = None, *, log: bool = True):
    """Predicted curves (median and interval band) per analyte, one line per subject, optionally
    over observed data (censored values drawn as open triangles at their limit, never dropped).

    Works for every trajectory family (cytokines and labs, cell counts, B-cell depletion): one panel
    per analyte, labelled with the analyte's canonical unit, on a log scale by default.

    Parameters
    ----------
    pred : DataFrame
        Output of :func:`bayes_blina.predict.predict_trajectories`.
    observations : DataFrame, optional
        Canonical observations (e.g. the data the model was fitted to). If every predicted subject
        is in them (individual predictions), only those subjects' rows are drawn; otherwise all.
    log : bool
        Logarithmic value axis.
    """
    from bayes_blina.data.analytes import UnknownAnalyteError, analyte_info

    plt = _plt()
    analytes = list(dict.fromkeys(pred["analyte"]))
    fig, axes = plt.subplots(1, len(analytes), figsize=(4.2 * len(analytes), 3.4), squeeze=False)
    tmax = pred["time_h"].max()
    if observations is not None:
        pred_subjects = set(pred["subject_id"].astype(str))
        if pred_subjects <= set(observations["subject_id"].astype(str)):
            observations = observations[observations["subject_id"].astype(str).isin(pred_subjects)]
    for ax, a in zip(axes[0], analytes):
        if observations is not None:
            o = observations[(observations["analyte"] == a) & (observations["time_h"] <= tmax)]
            below = o["below"].fillna("").astype(str) if "below" in o else pd.Series("", index=o.index)
            cens = below.isin(["LOD", "LLOQ"]).to_numpy()
            lod = o["lod"].to_numpy(float) if "lod" in o else np.full(len(o), np.nan)
            lloq = o["lloq"].to_numpy(float) if "lloq" in o else np.full(len(o), np.nan)
            lim = np.where(below.to_numpy() == "LOD", lod, lloq)
            ax.scatter(o["time_h"].to_numpy()[~cens], o["value"].to_numpy(float)[~cens], s=6, color="grey",
                       alpha=0.5, label="observed")
            if cens.any():
                ax.scatter(o["time_h"].to_numpy()[cens], lim[cens], s=10, marker="v", facecolors="none",
                           edgecolors="grey", alpha=0.6, label="below limit (at the limit)")
        for sid, g in pred[pred["analyte"] == a].groupby("subject_id", sort=False):
            g = g.sort_values("time_h")
            line, = ax.plot(g["time_h"], g["median"], lw=1.5, label=f"{sid} (median)")
            ax.fill_between(g["time_h"], g["lower"], g["upper"], color=line.get_color(), alpha=0.2)
        if log:
            ax.set_yscale("log")
        ax.set_title(a, fontsize=9)
        ax.set_xlabel("hours since first infusion start")
        try:
            unit = analyte_info(a).unit
        except UnknownAnalyteError:  # an analyte code the package does not know: no unit to show
            unit = "canonical unit"
        ax.set_ylabel(f"{a} ({unit})", fontsize=8)
    axes[0][-1].legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig


def loo_pit_figure(pit: pd.DataFrame, *, title: str | None = None, prob: float = 0.95):
    """ECDF of the LOO-PIT values minus the uniform CDF, with simultaneous confidence bands
    (``arviz_stats.ecdf_utils.ecdf_pit``); a calibrated model stays inside the band.

    Parameters
    ----------
    pit : DataFrame
        Output of :func:`loo_pit`.
    title : str, optional
    prob : float
        Probability of the simultaneous band.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from arviz_stats.ecdf_utils import ecdf_pit

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    # the ECDF and its simultaneous band from arviz-stats; drawn here as ECDF minus the uniform CDF
    x, ecdf, lower, upper = ecdf_pit(np.sort(np.array(pit["pit"], dtype=float)), prob, n_simulations=1000,
                                     rng=np.random.default_rng(0))
    ax.fill_between(x, lower - x, upper - x, step="post", color="C0", alpha=0.2, lw=0,
                    label=f"{prob:.0%} simultaneous band")
    ax.step(x, ecdf - x, where="post", color="C0", lw=1.2, label="LOO-PIT ECDF")
    n_r = int(pit.attrs.get("n_randomised", 0))
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("LOO-PIT")
    ax.set_ylabel("ECDF - uniform CDF")
    ax.set_title(title or f"LOO-PIT, {len(pit)} observations ({n_r} randomised), {prob:.0%} simultaneous band",
                 fontsize=8)
    fig.tight_layout()
    return fig


def rank_figure(draws, *, title: str | None = None):
    """Rank plots of a few quantities (ArviZ's fractional-rank ECDF per chain with its simultaneous
    envelope): chains that mix show ECDFs inside the band, a stuck or lagging chain leaves it.

    Parameters
    ----------
    draws : xarray.Dataset
        One ``(chain, draw)`` variable per quantity (:func:`bayes_blina.checks.slowest.slowest_draws`).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import arviz_plots as azp
    import xarray as xr

    _plt()
    pc = azp.plot_rank(xr.DataTree.from_dict({"posterior": draws}), backend="matplotlib",
                       figure_kwargs={"figsize": (3.2 * min(len(draws.data_vars), 4), 2.8)})
    fig = next(iter(pc.viz["plot"].ds.data_vars.values())).item().figure
    for ax in fig.axes:
        ax.title.set_fontsize(7)
        for t in ax.texts:
            t.set_fontsize(6)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


def pcr_curve_figure(curve: pd.DataFrame, *, patients: pd.DataFrame | None = None, title: str | None = None):
    """Plot :func:`~bayes_blina.joint.cr_curves.pcr_curve` (log2 x axis), one line and band per level; optionally the fitted
    patients (posterior mean biomarker, CR 1 at the top, 0 at the bottom) as ticks.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from bayes_blina.families.joint import BIOMARKERS

    plt = _plt()
    b = str(curve["biomarker"].iloc[0])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for lv, d in curve.groupby("level", sort=False):
        line, = ax.plot(d["value"], d["p_median"], lw=2, label=str(lv) if lv != "all" else "posterior median")
        ax.fill_between(d["value"], d["p_lower"], d["p_upper"], color=line.get_color(), alpha=0.18, lw=0)
    if patients is not None and b in patients and "response" in patients:
        x = 2.0 ** patients[b].to_numpy(float) * float(curve.attrs.get("ref", 1.0))
        y = patients["response"].to_numpy(float)
        ax.plot(x, np.where(y == 1, 1.02, -0.02), "|", color="0.3", ms=8, label="fitted patients (CR / no CR)")
    ax.set_xscale("log", base=2)
    lo, hi = curve["value"].min(), curve["value"].max()
    ax.set_xlim(lo, hi)
    ticks = 2.0 ** np.arange(np.ceil(np.log2(lo)), np.floor(np.log2(hi)) + 1)
    if len(ticks) > 9:
        ticks = ticks[::2]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel(BIOMARKERS[b].label)
    ax.set_ylabel("P(CR)")
    prob = curve.attrs.get("prob", 0.9)
    by = curve.attrs.get("by")
    ax.set_title(title or f"P(CR) by {b.replace('_', ' ')}"
                 + (f" and {by}" if by else "") + f" ({prob:.0%} credible bands)")
    others = {**(curve.attrs.get("others") or {}), **(curve.attrs.get("numeric") or {})}
    if others:
        ax.text(0.01, 0.93, "held at: " + ", ".join(f"{k} = {v:.3g}" for k, v in others.items()),
                transform=ax.transAxes, fontsize=8, color="0.3")
    ax.legend(loc="lower right" if not others else "center right", fontsize=8, frameon=False,
              title=by.replace("_", " ") if by else None)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
