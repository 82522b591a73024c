"""Publication figures of fits (matplotlib): VPC, trajectory bands by responder status, cytokine
peak by starting dose and dose step (adult Fig 6), odds ratios of the biomarker links, and the CR
fit by subgroup.

Each figure comes with the table it draws (computed here from the fit, so numbers in a report and
in its figures are the same), and is saved with :func:`bayes_blina.report.figures.save_figure`
(PNG, SVG or PDF). Censored results are always drawn, as open downward triangles at their limit;
no censored value is substituted or left out.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

from typing import Sequence

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError
from bayes_blina.report.figures import _plt

__all__ = ["SCENARIO_LABELS", "cytokine_peak_figure", "cytokine_peak_table", "observed_peaks",
           "odds_ratio_figure", "odds_ratio_table", "response_fit_figure", "response_fit_table",
           "responder_band_table", "responder_bands_figure", "vpc_figure"]

#: Labels of the pulse family's ``typical_peak`` scenarios (the adult paper's Fig 6).
SCENARIO_LABELS = {
    "flat15_first": "15 µg/m²/d from the start",
    "start5_first": "5 µg/m²/d at the start",
    "step15_after5": "step to 15 after 5 (day 8)",
}

_CENSORED_MARK = dict(marker="v", facecolors="none")


def _analyte_unit(code: str) -> str:
    try:
        from bayes_blina.data.analytes import analyte_info

        return analyte_info(code).unit
    except Exception:  # an unknown code still gets a figure
        return ""


# ----------------------------------------------------------------------------------------- VPC
def vpc_figure(table: pd.DataFrame, *, xaxis: str = "time", log: bool = True, title: str | None = None):
    """VPC: observed percentiles against the predictive intervals of the same percentiles, and the
    observed against the predicted fraction below the limit, per analyte and time bin.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`bayes_blina.checks.vpc.vpc_table` (or ``vpc_from_fit``).
    xaxis : {"time", "bin"}
        Bins at their median time, or evenly spaced bins labelled with their median time
        (readable when samples cluster after each infusion event).
    log : bool
        Log concentration axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if xaxis not in ("time", "bin"):
        raise BayesBlinaError(f"xaxis must be 'time' or 'bin' (found {xaxis!r})")
    plt = _plt()
    analytes = list(dict.fromkeys(table["analyte"]))
    pcts = [s for s in dict.fromkeys(table["statistic"]) if s != "below_limit"]
    colors = dict(zip(pcts, ["tab:blue", "tab:red", "tab:blue", "tab:green", "tab:purple"][: len(pcts)]))
    if len(pcts) == 3:
        colors = {pcts[0]: "tab:blue", pcts[1]: "tab:red", pcts[2]: "tab:blue"}
    fig, axes = plt.subplots(2, len(analytes), figsize=(4.4 * len(analytes), 5.6), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2, 1]}, sharex="col")
    prob = table.attrs.get("prob", 0.9)
    for k, a in enumerate(analytes):
        t = table[table["analyte"] == a]
        ax, axf = axes[0][k], axes[1][k]
        for s in pcts:
            d = t[t["statistic"] == s].sort_values("bin")
            x = d["time_mid"].to_numpy() if xaxis == "time" else d["bin"].to_numpy()
            ax.fill_between(x, d["pred_lower"], d["pred_upper"], color=colors[s], alpha=0.18, lw=0,
                            label=f"predicted {s} ({prob:.0%} PI)" if k == 0 else None)
            ax.plot(x, d["pred_median"], color=colors[s], lw=0.8, ls="--")
            cen = d["observed_censored"].to_numpy(bool)
            ax.plot(x, d["observed"], color=colors[s], lw=0.8, alpha=0.6)
            ax.scatter(x[~cen], d["observed"].to_numpy()[~cen], color=colors[s], s=14, zorder=3,
                       label=f"observed {s}" if k == 0 else None)
            ax.scatter(x[cen], d["observed"].to_numpy()[cen], edgecolors=colors[s], s=22, zorder=3,
                       label=f"observed {s} < limit" if k == 0 and cen.any() else None, **_CENSORED_MARK)
            out = d["outside"].to_numpy(bool)
            ax.scatter(x[out], d["observed"].to_numpy()[out], marker="o", s=70, facecolors="none",
                       edgecolors="black", lw=0.8, zorder=4, label=None)
        lim = t["limit_max"].dropna()
        if len(lim):
            ax.axhline(float(lim.max()), color="grey", ls=":", lw=0.8)
        if log:
            ax.set_yscale("log")
        ax.set_title(a, fontsize=9)
        unit = _analyte_unit(a)
        if k == 0:
            ax.set_ylabel(f"concentration{f' ({unit})' if unit else ''}")
        d = t[t["statistic"] == "below_limit"].sort_values("bin")
        x = d["time_mid"].to_numpy() if xaxis == "time" else d["bin"].to_numpy()
        axf.fill_between(x, d["pred_lower"], d["pred_upper"], color="grey", alpha=0.3, lw=0,
                         label=f"predicted ({prob:.0%} PI)")
        axf.plot(x, d["pred_median"], color="grey", ls="--", lw=0.8)
        axf.plot(x, d["observed"], "o-", color="black", ms=3, lw=0.8, label="observed")
        axf.set_ylim(-0.03, 1.03)
        if k == 0:
            axf.set_ylabel("fraction below limit")
            axf.legend(fontsize=6, frameon=False)
        if xaxis == "bin":
            axf.set_xticks(d["bin"].to_numpy())
            axf.set_xticklabels([f"{v:g}" for v in d["time_mid"]], rotation=90, fontsize=6)
            axf.set_xlabel("time bin (median hours since first infusion start)")
        else:
            axf.set_xlabel("hours since first infusion start")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(4, len(labels)), fontsize=6, frameon=False)
    fig.suptitle(title or "", fontsize=9, y=1.04 if title else None)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


# ---------------------------------------------------------------------- trajectory bands by response
def _grid_times(events_time: np.ndarray, t_max: float) -> np.ndarray:
    after = np.array([0.5, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 30, 36, 48, 60, 72, 96, 120, 144, 168])
    pts = [np.linspace(0.0, t_max, 120)] + [e + after for e in np.unique(events_time)]
    g = np.unique(np.concatenate(pts))
    return g[(g >= 0) & (g <= t_max)]


def responder_band_table(stored, dataset, *, analytes: Sequence[str] | None = None, prob: float = 0.9,
                         n_draws: int = 200, t_max: float | None = None, seed: int = 0) -> pd.DataFrame:
    """Posterior band of the median patient's noise-free curve, by responder status.

    For every posterior draw the fitted patients' own curves are evaluated on a time grid (dense
    after each infusion event); the median over the patients of each group (CR within the first two
    cycles yes / no, from ``subjects.response``) is taken per draw, and the table gives the median
    and ``prob`` interval of that group median over the draws.

    Parameters
    ----------
    stored : Fit
        A pulse fit.
    dataset : Dataset
        The fit's data (``subjects.response``, ``dosing``).
    analytes : sequence of str, optional
        Default: every analyte of the fit.
    prob : float
    n_draws : int
        Posterior draws used.
    t_max : float, optional
        Last grid time (default: end of the last dosing segment of the cycles modelled).
    seed : int

    Returns
    -------
    DataFrame
        ``analyte, group, time_h, n_patients, median, lower, upper``.
    """
    from bayes_blina.checks.vpc import _thin, mean_log_draws
    from bayes_blina.data.analytes import analyte_info
    from bayes_blina.data.dataset import Dataset
    from bayes_blina.events import infusion_events
    from bayes_blina.families import PulseModel, get_family, require_family

    require_family(stored.family_name, PulseModel, "responder-status bands", fit=stored)
    if dataset.sha256() != stored.provenance["data"]["sha256"]:
        raise BayesBlinaError(f"dataset {dataset.name!r} is not the data of fit {stored.path}")
    if dataset.subjects is None or "response" not in dataset.subjects:
        raise BayesBlinaError(f"dataset {dataset.name!r}: subjects.csv has no 'response' column; "
                              "responder-status bands need it")
    opts = dict(stored.options)
    analytes = list(analytes or opts["analytes"])
    post = as_dataset(stored.idata.posterior)
    fitted = [str(s) for s in post["log_baseline"].coords["subject"].values]
    subj = dataset.subjects[dataset.subjects["subject_id"].astype(str).isin(fitted)]
    resp = pd.to_numeric(subj["response"], errors="coerce")
    group = np.where(resp == 1, "responders", np.where(resp == 0, "non-responders", "response unknown"))
    groups = dict(zip(subj["subject_id"].astype(str), group))
    dosing = dataset.dosing[dataset.dosing["subject_id"].astype(str).isin(fitted)]
    dosing = dosing[dosing["cycle"] <= opts.get("cycles", 2)]
    ev = infusion_events(dosing, gap_tol_h=opts.get("gap_tol_h", 1.0))
    t_max = float(dosing["end_h"].max()) if t_max is None else float(t_max)
    grid_t = _grid_times(ev["time_h"].to_numpy(float), t_max)
    grid = pd.DataFrame([(s, a, t) for s in fitted for a in analytes for t in grid_t],
                        columns=["subject_id", "analyte", "time_h"])
    grid["value"] = 1.0
    grid["unit"] = [analyte_info(a).unit for a in grid["analyte"]]
    grid["below"] = ""
    fam = get_family("pulse")({**opts, "analytes": analytes, "censoring": "m3", "relative_to_baseline": False,
                               "covariates": []})
    prepared = fam.prepare(Dataset(subjects=dataset.subjects, dosing=dosing, observations=grid))
    A = prepared.arrays
    draws = _thin(post.sel(subject=prepared.coords["subject"], analyte=analytes), n_draws,
                  np.random.default_rng(seed))
    chunks = [mean_log_draws(fam, prepared, draws.isel(sample=slice(i, i + 25)))
              for i in range(0, draws.sizes["sample"], 25)]
    mu = np.concatenate(chunks, axis=0)  # (draw, row)
    rows = grid.iloc[A["obs_position"]].reset_index(drop=True)
    rows["group"] = rows["subject_id"].map(groups).fillna("response unknown")
    q = (1 - prob) / 2
    out = []
    for (a, g), sub in rows.groupby(["analyte", "group"], sort=False):
        times = np.sort(sub["time_h"].unique())
        idx = sub.index.to_numpy()
        t_idx = np.searchsorted(times, sub["time_h"].to_numpy())
        s_codes, s_uniq = pd.factorize(sub["subject_id"])
        cube = np.full((mu.shape[0], len(times), len(s_uniq)), np.nan)
        cube[:, t_idx, s_codes] = mu[:, idx]
        med = np.exp(np.nanmedian(cube, axis=2))  # (draw, time): the group's median patient
        lo, mid, hi = np.quantile(med, [q, 0.5, 1 - q], axis=0)
        for i, t in enumerate(times):
            out.append({"analyte": a, "group": g, "time_h": float(t), "n_patients": int(len(s_uniq)),
                        "median": mid[i], "lower": lo[i], "upper": hi[i]})
    df = pd.DataFrame(out)
    df["_a"] = df["analyte"].map({a: i for i, a in enumerate(analytes)})
    df = (df.sort_values(["_a", "group", "time_h"], kind="mergesort").drop(columns="_a")
          .reset_index(drop=True))
    df.attrs.update({"prob": prob, "n_draws": int(draws.sizes["sample"]),
                     "relative_to_baseline": bool(opts.get("relative_to_baseline"))})
    return df


def _stored_observations(stored) -> pd.DataFrame:
    """The rows a trajectory fit used (``constant_data``): subject, analyte, time, value or limit."""
    from bayes_blina.checks.vpc import stored_prepared

    _, prepared, post = stored_prepared(stored)
    A = prepared.arrays
    cens = A["is_censored"].astype(bool)
    subjects = np.asarray(prepared.coords["subject"], dtype=object)
    analytes = np.asarray(prepared.coords["analyte"], dtype=object)
    return pd.DataFrame({"subject_id": subjects[A["obs_subject"].astype(int)],
                         "analyte": analytes[A["obs_analyte"].astype(int)],
                         "time_h": A["obs_time_h"].astype(float),
                         "value": np.exp(np.where(cens, A["log_limit"], A["log_y"])), "censored": cens})


def responder_bands_figure(bands: pd.DataFrame, observations: pd.DataFrame | None = None,
                           groups: dict[str, str] | None = None, *, days: bool = True, title: str | None = None):
    """Trajectory bands by responder status with the data, log scale (like the adult Figs 1-5).

    Parameters
    ----------
    bands : DataFrame
        Output of :func:`responder_band_table`.
    observations : DataFrame, optional
        ``subject_id, analyte, time_h, value, censored`` (censored rows at their limit), e.g. the
        rows the fit used.
    groups : dict, optional
        Subject to group label, to colour the observations.
    days : bool
        Time axis in days since the first infusion start (else hours).
    """
    plt = _plt()
    analytes = list(dict.fromkeys(bands["analyte"]))
    palette = {"responders": "tab:blue", "non-responders": "tab:red", "response unknown": "tab:grey"}
    fig, axes = plt.subplots(1, len(analytes), figsize=(4.4 * len(analytes), 3.5), squeeze=False)
    scale = 24.0 if days else 1.0
    prob = bands.attrs.get("prob", 0.9)
    for ax, a in zip(axes[0], analytes):
        if observations is not None:
            o = observations[observations["analyte"] == a]
            g = o["subject_id"].map(groups or {}).fillna("response unknown")
            for lab, col in palette.items():
                sel = (g == lab).to_numpy()
                c = o["censored"].to_numpy(bool)
                ax.scatter(o["time_h"].to_numpy()[sel & ~c] / scale, o["value"].to_numpy()[sel & ~c], s=5,
                           color=col, alpha=0.35, lw=0)
                ax.scatter(o["time_h"].to_numpy()[sel & c] / scale, o["value"].to_numpy()[sel & c], s=8,
                           edgecolors=col, alpha=0.35, lw=0.5, **_CENSORED_MARK)
        for lab, d in bands[bands["analyte"] == a].groupby("group", sort=False):
            col = palette.get(lab, "tab:grey")
            n = int(d["n_patients"].iloc[0])
            ax.fill_between(d["time_h"] / scale, d["lower"], d["upper"], color=col, alpha=0.25, lw=0)
            ax.plot(d["time_h"] / scale, d["median"], color=col, lw=1.3, label=f"{lab} (n={n})")
        ax.set_yscale("log")
        ax.set_title(a, fontsize=9)
        ax.set_xlabel("days since first infusion start" if days else "hours since first infusion start")
    unit = _analyte_unit(analytes[0]) if analytes else ""
    rel = bands.attrs.get("relative_to_baseline")
    axes[0][0].set_ylabel("ratio to pre-treatment level" if rel else f"concentration{f' ({unit})' if unit else ''}")
    axes[0][-1].legend(fontsize=6, frameon=False, title=f"median patient, {prob:.0%} CrI; points: data "
                                                         "(▽ below limit)", title_fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------- cytokine peak (Fig 6)
def observed_peaks(stored, *, window_h: float = 168.0) -> pd.DataFrame:
    """Observed per-patient peaks after the events of the ``typical_peak`` scenarios.

    For every patient and analyte: the highest result in ``(t_e, t_e + window_h]`` (and before
    the patient's next event) after the first exposure (``flat15_first`` at 15 µg/m²/day,
    ``start5_first`` at 5) and after a cycle-1 step from 5 to 15 (``step15_after5``). When a
    censored result's limit exceeds every uncensored result of the window (or all are censored),
    the peak is only known to be below that limit (``censored`` true, ``value`` = the limit).

    Returns
    -------
    DataFrame
        ``subject_id, analyte, scenario, time_h, value, censored, n_samples``.
    """
    from bayes_blina.checks.vpc import stored_prepared

    _, prepared, _ = stored_prepared(stored)
    A = prepared.arrays
    obs = _stored_observations(stored)
    subjects = list(prepared.coords["subject"])
    ev = pd.DataFrame({"s": A["event_subject"].astype(int), "t": A["event_time_h"].astype(float),
                       "dose": (A["event_dose"].astype(float) if "event_dose" in A
                                else np.round(15.0 * np.exp(A["event_log_dose"].astype(float)), 6)),
                       "reexp": A["event_reexposure"].astype(float), "cyc": A["event_cycle_m1"].astype(float)})
    ev = ev.sort_values(["s", "t"], kind="mergesort").reset_index(drop=True)
    ev["next_t"] = ev.groupby("s")["t"].shift(-1).fillna(np.inf)
    ev["prev_dose"] = ev.groupby("s")["dose"].shift(1)
    scen = np.full(len(ev), "", dtype=object)
    first = ev["reexp"] == 0
    scen[(first & np.isclose(ev["dose"], 15.0) & (ev["cyc"] == 0)).to_numpy()] = "flat15_first"
    scen[(first & np.isclose(ev["dose"], 5.0) & (ev["cyc"] == 0)).to_numpy()] = "start5_first"
    step = (~first) & (ev["cyc"] == 0) & np.isclose(ev["dose"], 15.0) & np.isclose(ev["prev_dose"].fillna(-1), 5.0)
    scen[step.to_numpy()] = "step15_after5"
    ev["scenario"] = scen
    out = []
    for e in ev[ev["scenario"] != ""].itertuples():
        sid = subjects[e.s]
        hi = min(e.t + window_h, e.next_t)
        w = obs[(obs["subject_id"] == sid) & (obs["time_h"] > e.t) & (obs["time_h"] <= hi)]
        for a, d in w.groupby("analyte", sort=False):
            unc = d.loc[~d["censored"], "value"]
            lim = d.loc[d["censored"], "value"]
            top_u = float(unc.max()) if len(unc) else -np.inf
            top_l = float(lim.max()) if len(lim) else -np.inf
            cens = top_l > top_u
            row = d.loc[d["value"].idxmax()] if not cens else d.loc[lim.idxmax()]
            out.append({"subject_id": sid, "analyte": a, "scenario": e.scenario, "time_h": float(row["time_h"]),
                        "value": max(top_u, top_l) if cens else top_u, "censored": bool(cens),
                        "n_samples": int(len(d))})
    return pd.DataFrame(out, columns=["subject_id", "analyte", "scenario", "time_h", "value", "censored",
                                      "n_samples"])


def cytokine_peak_table(stored, *, prob: float = 0.9, seed: int = 0) -> pd.DataFrame:
    """Posterior of ``typical_peak`` (typical patient) and the predictive peak of a new patient, by
    analyte and scenario.

    Returns
    -------
    DataFrame
        ``analyte, scenario, median, lower, upper, new_patient_lower, new_patient_upper`` (the new
        patient's noise-free peak, with between-patient variation of baseline and amplitude).
    """
    from bayes_blina.families.pulse import SCENARIOS

    post = as_dataset(stored.idata.posterior)
    if "typical_peak" not in post:
        raise BayesBlinaError(f"fit {stored.path} has no typical_peak (a pulse fit is needed)")
    tp = post["typical_peak"].stack(sample=("chain", "draw")).transpose("analyte", "scenario", "sample")
    rng = np.random.default_rng(seed)
    q = (1 - prob) / 2
    st = post.stack(sample=("chain", "draw"))
    out = []
    for i, a in enumerate(tp.coords["analyte"].values):
        for j, s in enumerate(tp.coords["scenario"].values):
            v = tp.values[i, j]
            x_dose, x_re, x_cyc = SCENARIOS[str(s)]
            g = {k: st[k].sel(analyte=a).values for k in ("log_baseline_mu", "sd_log_baseline", "log_amp_mu",
                                                           "sd_log_amp", "gamma_dose", "delta_reexposure",
                                                           "kappa_cycle")}
            n = len(g["log_amp_mu"])
            log_b = g["log_baseline_mu"] + g["sd_log_baseline"] * rng.standard_normal(n)
            log_a = (g["log_amp_mu"] + g["sd_log_amp"] * rng.standard_normal(n) + g["gamma_dose"] * x_dose
                     + g["delta_reexposure"] * x_re + g["kappa_cycle"] * x_cyc)
            new = np.exp(log_b) * (1 + np.exp(log_a))
            out.append({"analyte": str(a), "scenario": str(s), "median": float(np.median(v)),
                        "lower": float(np.quantile(v, q)), "upper": float(np.quantile(v, 1 - q)),
                        "new_patient_lower": float(np.quantile(new, q)),
                        "new_patient_upper": float(np.quantile(new, 1 - q))})
    df = pd.DataFrame(out)
    df.attrs["prob"] = prob
    return df


def cytokine_peak_figure(peaks: pd.DataFrame, observed: pd.DataFrame | None = None, *,
                         title: str | None = None):
    """Cytokine peak by starting dose and dose step (like the adult Fig 6), log scale.

    Per analyte and scenario: the typical patient's peak (median and interval, thick), the range of
    a new patient's peak (thin), and the observed per-patient peaks (dots; open triangles at the
    limit where the peak is censored).

    Parameters
    ----------
    peaks : DataFrame
        Output of :func:`cytokine_peak_table`.
    observed : DataFrame, optional
        Output of :func:`observed_peaks`.
    """
    plt = _plt()
    analytes = list(dict.fromkeys(peaks["analyte"]))
    scenarios = list(dict.fromkeys(peaks["scenario"]))
    fig, axes = plt.subplots(1, len(analytes), figsize=(3.4 * len(analytes), 3.6), squeeze=False)
    prob = peaks.attrs.get("prob", 0.9)
    rng = np.random.default_rng(0)
    for ax, a in zip(axes[0], analytes):
        for k, s in enumerate(scenarios):
            r = peaks[(peaks["analyte"] == a) & (peaks["scenario"] == s)].iloc[0]
            ax.plot([k + 0.22, k + 0.22], [r["new_patient_lower"], r["new_patient_upper"]], color="tab:blue",
                    lw=1, alpha=0.6, label="new patient" if k == 0 else None)
            ax.plot([k + 0.22, k + 0.22], [r["lower"], r["upper"]], color="tab:blue", lw=4,
                    label=f"typical patient ({prob:.0%} CrI)" if k == 0 else None)
            ax.plot(k + 0.22, r["median"], "o", color="white", mec="tab:blue", ms=5)
            if observed is not None and len(observed):
                o = observed[(observed["analyte"] == a) & (observed["scenario"] == s)]
                x = k - 0.15 + rng.uniform(-0.08, 0.08, len(o))
                c = o["censored"].to_numpy(bool)
                ax.scatter(x[~c], o["value"].to_numpy()[~c], s=10, color="black", alpha=0.6, lw=0,
                           label="observed patient peak" if k == 0 else None)
                ax.scatter(x[c], o["value"].to_numpy()[c], s=14, edgecolors="black", alpha=0.6,
                           label="peak below limit" if k == 0 and c.any() else None, **_CENSORED_MARK)
        ax.set_xticks(range(len(scenarios)))
        ax.set_xticklabels([SCENARIO_LABELS.get(s, s) for s in scenarios], rotation=25, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_title(a, fontsize=9)
        unit = _analyte_unit(a)
        ax.set_ylabel(f"peak concentration{f' ({unit})' if unit else ''}", fontsize=8)
    axes[0][-1].legend(fontsize=6, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------- odds ratios
def odds_ratio_table(idata, var_names: Sequence[str] | None = None, *, prob: float = 0.95) -> pd.DataFrame:
    """Posterior summary of every odds ratio (posterior variables named ``or_*``).

    Returns
    -------
    DataFrame
        ``parameter, median, lower, upper, lower50, upper50, p_gt_1`` (one row per element).

    Raises
    ------
    BayesBlinaError
        If there is no ``or_*`` variable.
    """
    post = as_dataset(idata.posterior)
    names = list(var_names) if var_names else [v for v in post.data_vars if str(v).startswith("or_")]
    if not names:
        raise BayesBlinaError("the posterior has no odds-ratio variables (named or_*)")
    q = (1 - prob) / 2
    out = []
    for v in names:
        if v not in post:
            raise BayesBlinaError(f"the posterior has no variable {v!r}")
        da = post[v]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        st = da.stack(_s=("chain", "draw")).transpose(*extra, "_s")
        vals = st.values.reshape(-1, st.sizes["_s"])
        idx = list(np.ndindex(*[da.sizes[d] for d in extra])) if extra else [()]
        for k, ii in enumerate(idx):
            label = v if not extra else f"{v}[{','.join(str(da.coords[d].values[i]) for d, i in zip(extra, ii))}]"
            x = vals[k]
            out.append({"parameter": label, "median": float(np.median(x)), "lower": float(np.quantile(x, q)),
                        "upper": float(np.quantile(x, 1 - q)), "lower50": float(np.quantile(x, 0.25)),
                        "upper50": float(np.quantile(x, 0.75)), "p_gt_1": float((x > 1).mean())})
    df = pd.DataFrame(out)
    df.attrs["prob"] = prob
    return df


def odds_ratio_figure(table: pd.DataFrame, *, title: str | None = None):
    """Odds-ratio plot: posterior median, 50% and ``prob`` intervals on a log axis, a line at 1, and
    the posterior probability that each odds ratio exceeds 1.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`odds_ratio_table`.
    """
    plt = _plt()
    n = len(table)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * n + 1.3))
    y = np.arange(n)[::-1]
    prob = table.attrs.get("prob", 0.95)
    ax.hlines(y, table["lower"], table["upper"], color="tab:blue", lw=1.2, label=f"{prob:.0%} CrI")
    ax.hlines(y, table["lower50"], table["upper50"], color="tab:blue", lw=4, label="50% CrI")
    ax.plot(table["median"], y, "o", color="white", mec="tab:blue", ms=5, label="median")
    ax.axvline(1.0, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels(table["parameter"], fontsize=8)
    for yi, r in zip(y, table.itertuples()):
        ax.annotate(f"{r.median:.2f} [{r.lower:.2f}, {r.upper:.2f}]  P(OR>1)={r.p_gt_1:.2f}", (1.02, yi),
                    xycoords=("axes fraction", "data"), fontsize=7, va="center")
    ax.set_xlabel("odds ratio of CR (log scale)")
    ax.legend(fontsize=6, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3)
    if title:
        ax.set_title(title, fontsize=9, pad=18)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- survival fits
def survival_figure(table: pd.DataFrame, *, title: str | None = None):
    """Kaplan-Meier step curves (with their 95% bands) and the model's predicted survival (median
    and posterior interval) per group.

    Parameters
    ----------
    table : DataFrame
        Output of :func:`bayes_blina.checks.survival_curves.survival_curve_table`.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    prob = table.attrs.get("prob", 0.9)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, g) in enumerate(table.groupby("group", sort=False)):
        c = colours[k % len(colours)]
        t = g["time_months"].to_numpy()
        ax.fill_between(t, g["predicted_lower"], g["predicted_upper"], color=c, alpha=0.2, lw=0)
        ax.plot(t, g["predicted"], color=c, lw=1.2, ls="--")
        ax.step(t, g["km"], where="post", color=c, lw=1.6, label=f"{label} (n = {int(g['at_risk'].iloc[0])})")
        ax.step(t, g["km_lower"], where="post", color=c, lw=0.6, alpha=0.6)
        ax.step(t, g["km_upper"], where="post", color=c, lw=0.6, alpha=0.6)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("months from the first infusion start")
    ax.set_ylabel({"rfs": "relapse-free survival", "os": "overall survival"}.get(table.attrs.get("endpoint"), "survival"))
    ax.plot([], [], color="grey", ls="--", label=f"model: median and {prob:.0%} interval")
    ax.legend(fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- response fits
def response_fit_table(stored, *, prob: float = 0.95) -> pd.DataFrame:
    """Observed CR (exact interval) beside the fitted rate (posterior interval) of every published
    row the response model used.

    Returns
    -------
    DataFrame
        ``row, responders, n, weight, rate, exact_lower, exact_upper, fitted_median, fitted_lower,
        fitted_upper``.
    """
    from bayes_blina.stats import clopper_pearson

    post = as_dataset(stored.idata.posterior)
    if "p_agg" not in post:
        raise BayesBlinaError(f"fit {stored.path} has no published rows (p_agg)")
    p = post["p_agg"].stack(s=("chain", "draw")).transpose("agg_row", "s")
    od = as_dataset(stored.idata.observed_data)
    r, n = od["agg_r"].values.astype(int), od["agg_n"].values.astype(int)
    lo, hi = clopper_pearson(r, n, prob)
    q = (1 - prob) / 2
    df = pd.DataFrame({"row": [str(x) for x in p.coords["agg_row"].values], "responders": r, "n": n,
                       "weight": od["agg_weight"].values if "agg_weight" in od else 1.0, "rate": r / n,
                       "exact_lower": lo, "exact_upper": hi, "fitted_median": np.median(p.values, axis=1),
                       "fitted_lower": np.quantile(p.values, q, axis=1),
                       "fitted_upper": np.quantile(p.values, 1 - q, axis=1)})
    df.attrs["prob"] = prob
    return df


def response_fit_figure(table: pd.DataFrame, *, title: str | None = None):
    """Forest plot of CR by published row: observed (exact interval) beside the model's fitted rate."""
    plt = _plt()
    n = len(table)
    fig, ax = plt.subplots(figsize=(7.5, 0.36 * n + 1.2))
    y = np.arange(n)[::-1]
    prob = table.attrs.get("prob", 0.95)
    ax.errorbar(100 * table["rate"], y + 0.15, xerr=[100 * (table["rate"] - table["exact_lower"]),
                100 * (table["exact_upper"] - table["rate"])], fmt="s", color="black", ms=4, capsize=2,
                label=f"observed (exact {prob:.0%} CI)")
    ax.errorbar(100 * table["fitted_median"], y - 0.15,
                xerr=[100 * (table["fitted_median"] - table["fitted_lower"]),
                      100 * (table["fitted_upper"] - table["fitted_median"])],
                fmt="o", color="tab:blue", ms=4, capsize=2, label=f"model ({prob:.0%} CrI)")
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r.row.replace('|', ' · ')}  ({r.responders}/{r.n})" for r in table.itertuples()],
                       fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("CR, %")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    if title:
        ax.set_title(title, fontsize=9, pad=16)
    fig.tight_layout()
    return fig
