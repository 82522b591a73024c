#!/usr/bin/env python
"""Compare a large simulated adult cohort with the published numbers it was calibrated to.

Usage::

    python scripts/calibration.py [--n 2000] [--seed 1] [--out docs/calibration.md]
                                  [--preset adult-exploratory]

Every row of the bundled ``nagele2017`` summaries (Nägele et al. 2017, *Exp Hematol Oncol* 6:14)
and its CR aggregate is either computed on the simulated cohort *the way the paper computed it*
(medians against medians, means against means, values below the LOD set to ½·LOD for means, values
between LOD and LLOQ kept as measured, the same nominal sampling times and patient groups) and
shown beside the published value with the ratio simulated / published, or listed as not covered
with the reason. The result is written as a Markdown document.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from bayes_blina.data.analytes import analyte_info
from bayes_blina.data.io import read_dataset
from bayes_blina.events import time_features
from bayes_blina.simulate import get_preset, simulate_cohort

LOW, HIGH = 0.67, 1.5  # acceptable ratio band for point values
CYCLE2_H = 1008.0
PRE_H = -1.0


# ------------------------------------------------------------------------------------------------
# analysis values, as the paper computed them
# ------------------------------------------------------------------------------------------------


@dataclass
class Sim:
    """A simulated cohort prepared for the comparisons."""

    obs: pd.DataFrame  # with 'x' (analysis value), 'responder' and 'frequent'
    subjects: pd.DataFrame
    dosing: pd.DataFrame
    truth: dict

    def __post_init__(self) -> None:
        key = self.obs["analyte"].astype(str) + "@" + self.obs["time_h"].round(6).astype(str)
        self._rows = pd.Series(np.arange(len(self.obs))).groupby(key.to_numpy()).indices
        self._x = self.obs["x"].to_numpy(float)
        self._masks = {
            "all": np.ones(len(self.obs), dtype=bool),
            "responders": self.obs["responder"].to_numpy() == 1,
            "nonresponders": self.obs["responder"].to_numpy() == 0,
            "frequent_sampling": self.obs["frequent"].to_numpy(bool),
        }

    def rows(self, analyte: str, t: float) -> np.ndarray:
        """Row positions of one analyte at one nominal time."""
        return self._rows.get(f"{analyte}@{round(float(t), 6)}", np.zeros(0, dtype=np.int64))

    def values(self, analyte: str, t: float, group: str = "all") -> np.ndarray:
        idx = self.rows(analyte, t)
        return self._x[idx[self._masks[group][idx]]]


def prepare(ds, truth) -> Sim:
    obs = ds.observations.copy()
    value = obs["value"].to_numpy(float)
    lod = obs["lod"].to_numpy(float)
    lloq = obs["lloq"].to_numpy(float)
    below = obs["below"].to_numpy()
    x = value.copy()
    x[below == "LOD"] = 0.5 * lod[below == "LOD"]          # the paper: ½ LOD
    mid = np.where(np.isfinite(lod), 0.5 * (lod + lloq), 0.5 * lloq)
    x[below == "LLOQ"] = mid[below == "LLOQ"]              # only if censored at the LLOQ
    obs["x"] = x
    subj = ds.subjects.set_index("subject_id")
    obs["responder"] = subj.loc[obs["subject_id"], "response"].to_numpy(dtype=float)
    freq = dict(zip(truth["patients"]["subject_id"], truth["patients"]["frequent_sampling"]))
    obs["frequent"] = obs["subject_id"].map(freq).to_numpy(bool)
    return Sim(obs, ds.subjects, ds.dosing, truth)


def _stat(x: np.ndarray, statistic: str) -> float:
    if len(x) == 0:
        return float("nan")
    return float(np.median(x) if statistic.startswith("median") else np.mean(x))


def course(sim: Sim, analyte: str, times: list[float], statistic: str, group: str = "all"
           ) -> np.ndarray:
    """Median or mean of an analyte at each nominal time."""
    return np.array([_stat(sim.values(analyte, t, group), statistic) for t in times])


# ------------------------------------------------------------------------------------------------
# the statistics
# ------------------------------------------------------------------------------------------------

LAB_C1 = [24.0, 48.0, 168.0, 336.0, 504.0, 672.0]
LAB_C2 = [CYCLE2_H + h for h in LAB_C1]
CYTO_C1 = [2.0, 6.0, 24.0, 48.0, 168.0]


def peak_time(sim: Sim, analyte: str, cycle: int, statistic: str, group: str = "all") -> float:
    times = (CYTO_C1 if analyte_info(analyte).kind == "cytokine" else LAB_C1) if cycle == 1 \
        else LAB_C2
    c = course(sim, analyte, times, statistic, group)
    return times[int(np.nanargmax(c))]


def return_time(sim: Sim, analyte: str, statistic: str, factor: float = 1.25) -> float:
    """First nominal time after the peak at which the course is back within ``factor`` x baseline."""
    times = CYTO_C1 if analyte_info(analyte).kind == "cytokine" else LAB_C1
    base = _stat(sim.values(analyte, PRE_H), statistic)
    c = course(sim, analyte, times, statistic)
    k = int(np.nanargmax(c))
    for t, v in zip(times[k + 1:], c[k + 1:]):
        if v <= factor * base:
            return t
    return float("inf")


def fold_uln_peak(sim: Sim, analyte: str) -> float:
    return float(np.nanmax(course(sim, analyte, LAB_C1, "median"))) / analyte_info(analyte).uln


def css(sim: Sim, dose: float, statistic: str) -> float:
    """Mean (or SD) over patient-cycles of each patient-cycle's mean plateau concentration.

    Plateau samples: at least 10 h (about 5 half-lives) after the last event, during or at the end
    of an infusion at ``dose``; samples below the LLOQ are left out.
    """
    o = sim.obs[(sim.obs["analyte"] == "BLINA") & (sim.obs["below"] == "")]
    probe = o[["subject_id", "time_h"]].assign(time_h=o["time_h"] - 1e-6)
    tf = time_features(probe, sim.dosing)
    ok = (tf["time_since_event_h"].to_numpy() >= 10.0) & np.isclose(tf["dose_current"], dose)
    per = pd.DataFrame({"id": o["subject_id"].to_numpy()[ok], "cycle": tf["cycle"].to_numpy()[ok],
                        "x": o["x"].to_numpy()[ok]}).groupby(["id", "cycle"])["x"].mean()
    return float(per.mean() if statistic == "mean" else per.std(ddof=1))


def pct_of_baseline(sim: Sim, analyte: str, t: float, group: str) -> float:
    ref = CYCLE2_H + PRE_H if t > CYCLE2_H else PRE_H
    return 100.0 * _stat(sim.values(analyte, t, group), "median") / _stat(
        sim.values(analyte, ref, group), "median")


def count_at(sim: Sim, analyte: str, t: float, group: str, statistic: str) -> float:
    tt = PRE_H if t == 0 else (CYCLE2_H + PRE_H if t == CYCLE2_H else t)  # baselines pre-dose
    return _stat(sim.values(analyte, tt, group), statistic)


# ------------------------------------------------------------------------------------------------
# dispatch over the published rows
# ------------------------------------------------------------------------------------------------

NOT_COVERED = {
    "anti_drug_antibody_positive": "anti-drug antibodies are not simulated",
    "uln": "reference range (used to express simulated labs as fold ULN), not a simulated quantity",
    "lln": "reference range, not a simulated quantity",
    "eligibility_max_fold_uln": "inclusion criterion; the simulator does not screen patients",
    "lfa1_activated_fraction": "LFA-1 / CD69 activation markers are not simulated",
    "cd69_positive_fraction": "LFA-1 / CD69 activation markers are not simulated",
}

CHOICES = [
    "**One population for all cohorts.** Cohort (and sampling schedule) changes only the dosing "
    "and the sampling times, never a parameter, so subgroup medians of the 12 frequently sampled "
    "patients are not reproduced in absolute terms (see above).",
    "**CD3 expansion causes response.** `E_i` is drawn from one log-normal population "
    "(`expansion_mu`, `sd_expansion`) and CR from the response model that depends on it; the "
    "responders' 2.6-fold and the nonresponders' ~1-fold medians are the result of that selection, "
    "not of a responder-specific expansion.",
    "**Platelet and neutrophil recovery follow response.** Recovery of counts is part of the CR "
    "definition, so the platelet and neutrophil `E_i` are shifted in responders "
    "(`expansion_response_effect`); baseline platelets enter the response model "
    "(`beta_plt_baseline`) to reproduce the responders' higher baseline (59,000 vs 29,000/µL).",
    "**Neutrophils on the kinetics form**: dip with `t_nadir` = 120 h and `k_shape` = 3 (sampled "
    "nadir on day 8), recovery by day 29 in responders, none in nonresponders. The early rise of "
    "the mean cannot be represented.",
    "**Linear PK.** `SteadyStatePK` is linear in dose; one Css per unit dose cannot give both "
    "published means (198 at 5 = 39.6 per unit, 694 at 15 = 46.3 per unit), so Css at 5 "
    "µg/m²/day comes out ~15% high.",
    "**IL-10 in later cycles.** IL-10 has the same priming penalty at the week-2 step as the "
    "other cytokines (Fig 6 shows lower IL-10 at the step too) but a positive `kappa_cycle`, so "
    "it rises again at the start of cycle 2 while the others hardly do.",
    "**Liver and inflammation markers** are pulses on patient baselines near the ULN; GGT peaks "
    "at ~72 h with a broad shape so that its median peak falls within a week in cycle 1 and within "
    "48 h of the restart in cycle 2.",
]


def compute(sim: Sim, row: pd.Series) -> tuple[float | None, str]:
    """Simulated statistic for one published row, or (None, reason) if not covered."""
    q, a, g = row["quantity"], row["analyte"], row["group"]
    stat, t = row["statistic"], row["time_h"]
    cyc = row["cycle"]
    a = None if pd.isna(a) else str(a)
    g = "all" if pd.isna(g) else str(g)
    if q in NOT_COVERED:
        return None, NOT_COVERED[q]
    if q == "baseline_count":
        arms = sim.truth["design"]["arms"]
        frac = [x["n"] for x in arms if x["cohort"] == row["level"]]
        total = sum(x["n"] for x in arms)
        return (36.0 * frac[0] / total if frac else None), "cohort size scaled to 36 patients"
    if a == "IL4":
        return None, "IL-4 is not simulated (it did not rise in the paper)"
    if q == "assay_limit":
        pop = sim.truth["population"]["assay"]
        if a == "BLINA":
            return pop["pk_lloq"], ""
        return (pop["cytokine_lod"] if stat == "lod" else pop["cytokine_lloq"])[a], ""
    if q == "css":
        return css(sim, float(row["regimen"]), "mean" if stat == "mean" else "sd"), ""
    if q == "fold_uln_peak":
        return fold_uln_peak(sim, a), ""
    if q == "peak_time":
        if a in ("CD3", "CD4", "CD8"):
            return None, "peak of the LFA-1 / CD69 activation markers (not simulated)"
        return peak_time(sim, a, int(cyc), stat, g), ""
    if q == "return_to_baseline_time":
        if a in ("CD3", "CD4", "CD8"):
            return None, "LFA-1 / CD69 activation markers (not simulated)"
        return return_time(sim, a, "mean" if stat.startswith("mean") else "median"), ""
    if q == "concentration":
        x = sim.values(a, PRE_H)
        below = sim.obs["below"].to_numpy()[sim.rows(a, PRE_H)]
        share = float((below == "LOD").mean())
        return float(np.quantile(x, 0.99)), \
            f"pre-dose {a}: {100 * share:.1f}% of the samples below the LOD; the simulated " \
            "value is the 99th percentile (½·LOD for censored samples)"
    if q == "count":
        if a not in ("CD3", "CD4", "CD8", "NEUT", "PLT"):
            return None, "naive / memory T-cell subsets are not simulated"
        if stat == "pct_of_baseline":
            return pct_of_baseline(sim, a, float(t), g), ""
        return count_at(sim, a, float(t), g, stat), ""
    return None, "no simulated counterpart"


def priming_table(sim: Sim) -> pd.DataFrame:
    """Mean observed Cmax by exposure: first start at 15, first start at 5, step to 15."""
    o = sim.obs
    reg = sim.subjects.set_index("subject_id")["regimen"]
    o = o.assign(regimen=reg.loc[o["subject_id"]].to_numpy())
    out = {}
    for c in ("IL2", "IL6", "IL10", "TNFA", "IFNG", "GZMB"):
        oc = o[o["analyte"] == c]
        t = oc["time_h"].to_numpy()
        week1 = oc[(t > 0) & (t <= 168.0)]
        week2 = oc[(t > 168.0) & (t <= 336.0)]
        cmax1 = week1.groupby(["subject_id", "regimen"])["x"].max().reset_index()
        cmax2 = week2[week2["regimen"] != "15"].groupby("subject_id")["x"].max()
        out[c] = {"start15": cmax1.loc[cmax1["regimen"] == "15", "x"].mean(),
                  "start5": cmax1.loc[cmax1["regimen"] != "15", "x"].mean(),
                  "step15": cmax2.mean()}
    return pd.DataFrame(out).T


def responder_fraction(sim: Sim) -> float:
    return float(sim.subjects["response"].astype(float).mean())


# ------------------------------------------------------------------------------------------------
# explanations of the rows outside the band (written after looking at the results)
# ------------------------------------------------------------------------------------------------

EXPLAIN: list[tuple[Callable[[pd.Series], bool], str]] = [
    (lambda r: r["quantity"] == "count" and r["group"] == "frequent_sampling"
     and r["statistic"] == "median",
     "The 12 frequently sampled patients (cohorts 1 and 2a) had a median baseline of 120/µL, "
     "about half of the 210-230/µL of the whole study; the simulator draws every cohort's "
     "baseline from one population distribution (no cohort effect), so the absolute counts of "
     "this small subgroup are about 1.8x higher. The shape is matched: the 6-h nadir is ~1/6 of "
     "baseline in both (see the derived row), and the day-8 rise as % of baseline is in the band."),
    (lambda r: r["quantity"] == "count" and r["analyte"] == "NEUT" and r["statistic"] == "mean"
     and r["time_h"] in (24.0, 1032.0),
     "The rise of the *mean* neutrophil count at 24 h (a few patients with large transient "
     "neutrophilia) cannot be produced by the kinetics form, whose early effect is a dip; only "
     "the median course (baseline, nadir on day 8, recovery) is calibrated."),
    (lambda r: r["quantity"] == "count" and r["analyte"] == "NEUT" and r["statistic"] == "median"
     and r["time_h"] == 1032.0,
     "Cycle-2 neutrophils follow the same dip as cycle 1, so the median 24 h after the restart "
     "is below the cycle-2 baseline rather than above it as published."),
    (lambda r: r["quantity"] == "peak_time" and r["cycle"] == 2 and r["analyte"] in
     ("AST", "ALP", "LDH"),
     "The published cycle-2 'peak maximum' of an almost flat median course (AST day 71, ALP "
     "day 44, LDH day 64) is not a feature the pulse model reproduces: its cycle-2 response is a "
     "small pulse after the restart; the ratio of times is not meaningful here."),
]


def explain(row: pd.Series) -> str:
    return " ".join(text for test, text in EXPLAIN if test(row))


# ------------------------------------------------------------------------------------------------
# the document
# ------------------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "never"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _signed(x: float) -> str:
    return f"+ {x:g}" if x >= 0 else f"- {abs(x):g}"


def _bound_ok(stat: str, sim: float, pub: float) -> bool:
    return sim <= pub + 1e-9


def build_table(sim: Sim) -> tuple[pd.DataFrame, pd.DataFrame]:
    pub = read_dataset("nagele2017")
    rows, skipped = [], []
    for _, row in pub.summaries.iterrows():
        value, note = compute(sim, row)
        if value is None:
            skipped.append({"quantity": row["quantity"], "analyte": row["analyte"],
                            "group": row["group"], "statistic": row["statistic"],
                            "value": row["value"], "reason": note})
            continue
        stat = str(row["statistic"])
        bound = "upper_bound" in stat
        ratio = value / row["value"] if row["value"] else float("nan")
        if row["quantity"] == "concentration":
            ok = value <= row["value"]
        elif bound:
            ok = _bound_ok(stat, value, float(row["value"]))
        else:
            ok = LOW <= ratio <= HIGH
        rows.append({**{k: row[k] for k in ("quantity", "analyte", "group", "regimen", "cycle",
                                            "time_h", "statistic", "unit")},
                     "published": float(row["value"]), "simulated": value, "ratio": ratio,
                     "ok": ok, "note": note, "why": "" if ok else explain(row)})
    # responder fraction (aggregates) and derived shape numbers
    cr = pub.aggregates.query("family == 'all' and endpoint == 'CR'").iloc[0]
    rf = responder_fraction(sim)
    rows.append({"quantity": "response", "analyte": "", "group": "all", "regimen": cr["regimen"],
                 "cycle": np.nan, "time_h": np.nan, "statistic": "fraction", "unit": "",
                 "published": cr["responders"] / cr["n"], "simulated": rf,
                 "ratio": rf / (cr["responders"] / cr["n"]),
                 "ok": LOW <= rf / (cr["responders"] / cr["n"]) <= HIGH,
                 "note": f"CR/CRh within two cycles, {cr['responders']}/{cr['n']}", "why": ""})
    nadir_pub = 20.0 / 120.0
    nadir_sim = _stat(sim.values("CD3", 6.0, "frequent_sampling"), "median") / _stat(
        sim.values("CD3", PRE_H, "frequent_sampling"), "median")
    rows.append({"quantity": "count (derived)", "analyte": "CD3", "group": "frequent_sampling",
                 "regimen": "15:7;5-15:5", "cycle": 1, "time_h": 6.0,
                 "statistic": "median ratio 6 h / baseline", "unit": "", "published": nadir_pub,
                 "simulated": nadir_sim, "ratio": nadir_sim / nadir_pub,
                 "ok": LOW <= nadir_sim / nadir_pub <= HIGH,
                 "note": "derived from the published medians 20/120", "why": ""})
    nr_fold = _stat(sim.values("CD3", 672.0, "nonresponders"), "median") / _stat(
        sim.values("CD3", PRE_H, "nonresponders"), "median")
    rows.append({"quantity": "count (derived)", "analyte": "CD3", "group": "nonresponders",
                 "regimen": "", "cycle": 1, "time_h": 672.0,
                 "statistic": "median ratio day 29 / baseline", "unit": "", "published": 1.0,
                 "simulated": nr_fold, "ratio": nr_fold, "ok": LOW <= nr_fold <= HIGH,
                 "note": "'no measurable expansion over the baseline level' read as 1.0",
                 "why": ""})
    return pd.DataFrame(rows), pd.DataFrame(skipped)


def render(table: pd.DataFrame, skipped: pd.DataFrame, priming: pd.DataFrame, args,
           n_sim: int) -> str:
    cfg = get_preset(args.preset)
    out = [
        "# Calibration of the virtual-cohort simulator",
        "",
        "Generated by `python scripts/calibration.py "
        f"--n {args.n} --seed {args.seed} --preset {args.preset}` "
        f"({n_sim} simulated patients). Do not edit by hand: change the defaults in "
        "`bayes_blina/simulate/presets.py` and run the script again.",
        "",
        "Each published number of Nägele et al. 2017 (*Exp Hematol Oncol* 6:14; bundled as "
        "`nagele2017`) that the simulator covers is computed on the simulated cohort the way the "
        "paper computed it: medians against medians and means against means at the same nominal "
        "sampling times (baseline = the pre-dose sample at -1 h, day 29 = 672 h, cycle 2 starts "
        "at 1008 h), in the same patient groups (responders = CR/CRh within two cycles; frequent "
        "sampling = cohorts 1 and 2a); for means, values below the LOD are set to ½·LOD and values "
        "between LOD and LLOQ are kept as measured. Peak times are the nominal time at which the "
        "median (or mean) course is highest; return-to-baseline times the first nominal time "
        "after the peak at which it is within 1.25x its pre-dose value. Css is the mean (SD) over "
        "patient-cycles of each patient-cycle's mean plateau concentration (samples >= 10 h after "
        "the last event, above the LLOQ), cycles counted as independent points as in the paper.",
        "",
        f"`ok`: ratio simulated / published within {LOW}-{HIGH} for point values; for upper "
        "bounds (`*_upper_bound`, `upper_bound`) the simulated value must not exceed the bound.",
        "",
        "`regimen` is the dose level for Css rows and the cohort mix for the frequent-sampling "
        "rows.",
        "",
        "| quantity | analyte | group | regimen | cycle | time (h) | statistic | published | "
        "simulated | ratio | ok |",
        "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for _, r in table.iterrows():
        cyc = "" if pd.isna(r["cycle"]) else str(int(r["cycle"]))
        th = "" if pd.isna(r["time_h"]) else _fmt(float(r["time_h"]))
        unit = f" {r['unit']}" if isinstance(r["unit"], str) and r["unit"] else ""
        out.append(
            f"| {r['quantity']} | {'' if pd.isna(r['analyte']) else r['analyte']} | "
            f"{'' if pd.isna(r['group']) else r['group']} | "
            f"{'' if pd.isna(r['regimen']) else r['regimen']} | {cyc} | {th} | {r['statistic']} | "
            f"{_fmt(r['published'])}{unit} | {_fmt(r['simulated'])} | {_fmt(r['ratio'])} | "
            f"{'yes' if r['ok'] else '**no**'} |")
    bad = table[~table["ok"]]
    out += ["", "## Numbers outside the band", ""]
    if bad.empty:
        out.append("None.")
    for _, r in bad.iterrows():
        label = f"{r['quantity']} {r['analyte'] if isinstance(r['analyte'], str) else ''} " \
                f"{r['group']} {r['statistic']}" + (
                    "" if pd.isna(r["time_h"]) else f" at {_fmt(float(r['time_h']))} h")
        out.append(f"* **{label.strip()}** (published {_fmt(r['published'])}, simulated "
                   f"{_fmt(r['simulated'])}, ratio {_fmt(r['ratio'])}): "
                   f"{r['why'] or 'not explained yet.'}")
    notes = table[table["note"].astype(str) != ""]
    if not notes.empty:
        out += ["", "## Notes on some rows", ""]
        for note, grp in notes.groupby("note", sort=False):
            labels = sorted({f"{r['quantity']} {r['analyte'] if isinstance(r['analyte'], str) else ''}"
                             .strip() for _, r in grp.iterrows()})
            out.append(f"* {', '.join(labels)}: {note}")
    out += ["", "## Priming by step dosing (Fig 6; no bundled numbers)", "",
            "Mean over patients of the highest observed concentration (½·LOD for censored "
            "values) in the week after the first start at 15 (cohort 1) or 5 µg/m²/day (step "
            "cohorts), and in the week after the step to 15. The paper shows higher peaks after "
            "a flat 15 start than after a 5 start, and lower ones still at the step to 15.", "",
            "| cytokine | start at 15 | start at 5 | step to 15 |",
            "| --- | ---: | ---: | ---: |"]
    for c, row in priming.iterrows():
        out.append(f"| {c} | {_fmt(row['start15'])} | {_fmt(row['start5'])} | "
                   f"{_fmt(row['step15'])} |")
    out += ["", "## Choices behind the numbers", "", *[f"* {c}" for c in CHOICES]]
    out += ["", "## Published numbers not covered", "",
            "| quantity | analyte | group | statistic | published | why not |",
            "| --- | --- | --- | --- | ---: | --- |"]
    for _, r in skipped.iterrows():
        out.append(f"| {r['quantity']} | {'' if pd.isna(r['analyte']) else r['analyte']} | "
                   f"{'' if pd.isna(r['group']) else r['group']} | {r['statistic']} | "
                   f"{_fmt(float(r['value']))} | {r['reason']} |")
    rp = cfg.response
    out += ["", "## Response model used", "",
            f"`logit P(CR) = {rp.alpha:g} {_signed(rp.beta_tcell)}·log2(expansion) "
            f"{_signed(rp.beta_il10)}·log2(il10_peak/{rp.il10_ref:g}) "
            f"{_signed(rp.beta_blast)}·[blast>=50] "
            f"{_signed(rp.beta_plt_baseline)}·log2(platelets_baseline/{rp.plt_ref:g})` "
            "(no age-group or regimen effects in the adult preset).", ""]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="number of simulated patients")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--preset", default="adult-exploratory")
    ap.add_argument("--out", default="docs/calibration.md", help="Markdown file to write")
    args = ap.parse_args(argv)
    t0 = time.time()
    ds, truth = simulate_cohort(args.preset, args.n, seed=args.seed)
    sim = prepare(ds, truth)
    table, skipped = build_table(sim)
    seconds = time.time() - t0
    text = render(table, skipped, priming_table(sim), args, len(ds.subjects))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    n_bad = int((~table["ok"]).sum())
    print(f"wrote {out}: {len(table)} numbers compared, {n_bad} outside the band, "
          f"{len(skipped)} not covered ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
