"""Write ``benchmarks/RESULTS.md`` from the CSV files in ``benchmarks/results/``.

Called by every benchmark script at its end; run it alone to regenerate the file
(``python benchmarks/report.py``). The latest invocation (``run_id``) of each configuration is
shown; older rows stay in the CSV files. The targets of issue 7 are judged from the figures, and the
hand-written analysis in ``benchmarks/notes.md`` (what limits the targets not met) is appended.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, RESULTS_DIR, machine, versions  # noqa: E402

RESULTS_MD = HERE / "RESULTS.md" if RESULTS_DIR == (HERE / "results").resolve() else RESULTS_DIR / "RESULTS.md"
NOTES = HERE / "notes.md"
DEFAULT_BACKEND = "nutpie"  # what backend = "auto" resolves to (bayes_blina.inference.resolve_backend)
BUSY = 2.5  # one-minute load average above which a row is marked as measured under load (2 cores)


def _read(name: str):
    import pandas as pd

    p = RESULTS_DIR / name
    if not p.exists() or p.stat().st_size == 0:
        return None
    df = pd.read_csv(p)
    if "note" in df:  # rows marked invalid (other work loaded the machine, code since reverted, ...)
        df = df[~df["note"].fillna("").astype(str).str.startswith("invalid")]
    return df


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e9:
            return str(int(v))
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.0f}"
    return str(v)


def _table(df, cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return out


def _latest(df, key: str):
    """Rows of the latest run_id of each value of ``key``."""
    if df is None or df.empty:
        return df
    last = df.groupby(key)["run_id"].transform("max")
    return df[df["run_id"] == last]


def _ratios(rows):
    """Per (run_id, config): mean min ESS/s of each back end / Stan's."""
    import pandas as pd

    ok = rows[rows["min_ess_per_s"].notna()]
    m = ok.groupby(["run_id", "config", "backend"])["min_ess_per_s"].mean().reset_index()
    out = []
    for (rid, cfg), g in m.groupby(["run_id", "config"]):
        stan = g.loc[g["backend"] == "stan", "min_ess_per_s"]
        for _, r in g.iterrows():
            out.append({"run_id": rid, "config": cfg, "backend": r["backend"],
                        "ratio_to_stan": (r["min_ess_per_s"] / float(stan.iloc[0])) if len(stan) else float("nan")})
    return pd.DataFrame(out, columns=["run_id", "config", "backend", "ratio_to_stan"])


def _slope(x, y) -> float:
    import numpy as np

    x, y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    ok = np.isfinite(x) & np.isfinite(y)
    return float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 else float("nan")



def _inputs_section(df) -> list[str]:
    """The inputs-at-scale table (``bench_inputs.py``, issue 21): latest run, slopes per step."""
    if df is None or df.empty:
        return []
    df = df[df["run_id"] == df["run_id"].max()].copy()
    out = ["## Inputs at scale (issue 21)", "",
           "`bench_inputs.py`: a canonical dataset folder of N patients x 40 observations (3 cytokines and "
           "CD3+ T cells, censored rows included), each step in a fresh process: `read` = `read_dataset` "
           "(parsing, validation, units, canonical form); `features` = `events.time_features` on the read "
           "data; `prepare-*` = the family's `prepare` for that bundled spec; `error` = a non-number written "
           "into the last row of `observations.csv` (`row_named`: the refusal names that row). `step_s` "
           "excludes reading except for `read` and `error`; `peak_mem_mb` is the process's peak resident memory "
           "(about 120 MiB of it is the interpreter and imports).", ""]
    order = {k: i for i, k in enumerate(["read", "features", "prepare-cytokine-core", "prepare-tcell",
                                         "prepare-joint", "error"])}
    df["_order"] = df["step"].map(lambda v: order.get(v, len(order)))
    df = df.sort_values(["_order", "patients"])
    out += _table(df,
                  ["step", "patients", "observations", "csv_mb", "read_s", "step_s", "peak_mem_mb", "row_named",
                   "load1_start", "error"])
    out.append("")
    slopes = []
    for step, g in df[df["step_s"].notna()].groupby("step", sort=False):
        g = g.sort_values("patients")
        if len(g) >= 2:
            extra = (g["peak_mem_mb"].iloc[-1] - g["peak_mem_mb"].iloc[-2]) / (
                (g["observations"].iloc[-1] - g["observations"].iloc[-2]) / 1e6)
            slopes.append(f"`{step}` time {_slope(g['observations'], g['step_s']):.2f}, peak memory "
                          f"{_slope(g['observations'], g['peak_mem_mb']):.2f} ({extra:.0f} MiB per million "
                          f"observations between the two largest)")
    if slopes:
        out += ["Log-log slopes against the number of observations (1 = linear): " + "; ".join(slopes) + ".", ""]
    return out

def write_results_md() -> Path:
    """Regenerate ``RESULTS.md``; return its path."""
    import numpy as np

    lines = ["# Benchmark results", "",
             f"Generated by `benchmarks/report.py` (called by each benchmark script) on: {machine()}; {versions()}.",
             "",
             "Command: `python benchmarks/run_all.py` (runs `bench_fits.py --suite main`, `bench_fits.py --suite big`, "
             "`--suite models`, `bench_scaling.py`, `bench_approx.py` and `bench_oc.py`; see `benchmarks/README.md`).", "",
             f"**Load.** `load` columns are the machine's one-minute load average at the start of each fit. "
             f"This machine has 2 cores shared with other work: rows with load above {BUSY} were measured "
             "under load (the fit got only part of the 2 cores; every back end of a configuration was run "
             "interleaved, so ratios within a run are fairer than absolute times). Compare back ends only "
             "within one run.", ""]
    chk = RESULTS_DIR / "check_stan.txt"
    if chk.exists():
        lines += ["## The Stan references are the package's models", "",
                  "`benchmarks/check_stan.py`: the log densities of `stan/response.stan` and of `stan/pulse.stan` "
                  "(uncorrelated variant: same unconstrained coordinates as PyMC) differ from PyMC's by a constant "
                  "at random points; the correlated pulse model (Stan parameterises the correlation matrix "
                  "differently) gives the same posterior means within Monte Carlo error.", "", "```",
                  chk.read_text(encoding="utf-8").rstrip(), "```", ""]
    fits = _read("fits.csv")
    targets: list[tuple[str, str, str]] = []
    if fits is not None and not fits.empty:
        if "note" in fits:
            fits = fits[~fits["note"].fillna("").astype(str).str.startswith("invalid")]
        fits = _latest(fits, "config")
        ratios = _ratios(fits)
        lines += ["## Back ends against the Stan reference", "",
                  "Each row is one fit in a fresh process (PyMC's NUTS = `pymc`, nutpie = the package default, "
                  "`numpyro` through PyMC on the CPU, `stan` = pystan 3 running `benchmarks/stan/*.stan` on the same "
                  "arrays). ESS and R-hat: min / max over every quantity both implementations name "
                  "(`n_quantities` variables, each with all its elements). `min_ess_per_s` = min(bulk, tail ESS) / "
                  "sampling seconds; `compile_s` = compilation before sampling (numba for nutpie, C for PyMC, g++ "
                  "for Stan: after the first build httpstan takes it from its cache, and PyMC from its compile "
                  "cache; numpyro compiles inside `sampling_s`); peak memory = the process tree's maximum resident "
                  "memory; `mean_steps` = leapfrog steps per draw; `us_per_grad` = microseconds per gradient "
                  "evaluation, estimated as sampling time x min(chains, 2) cores / (chains x (tuning + draws) x "
                  "mean_steps) (it separates the cost of the log density from the sampler's efficiency).", ""]
        for cfg, g in fits.groupby("config", sort=False):
            g = g.copy()
            rid = g["run_id"].iloc[0]
            lines += [f"### {cfg}", "",
                      f"Run {rid}: {int(g['chains'].iloc[0])} chains, {int(g['tune'].iloc[0])} tuning + "
                      f"{int(g['draws'].iloc[0])} draws; {_fmt(g['n_subjects'].iloc[0])} patients, "
                      f"{_fmt(g['n_rows'].iloc[0])} rows.", ""]
            if "model_hash" in g and g["model_hash"].notna().any():
                hashes = {h for h in g["model_hash"].dropna().astype(str) if h.startswith("lp:")}
                if len(hashes) > 1:
                    lines += [f"**Warning:** the model changed during this run (fingerprints {sorted(hashes)}); "
                              "the rows are not comparable.", ""]
            g["load"] = g["load1_start"]
            cols = ["backend", "repeat", "load", "compile_s", "sampling_s", "min_ess_bulk", "min_ess_tail", "max_rhat",
                    "divergences", "min_ess_per_s", "mean_steps", "us_per_grad", "peak_mem_mb", "passed", "worst",
                    "note"]
            lines += _table(g, [c for c in cols if c in g and (c not in ("mean_steps", "us_per_grad", "worst", "note")
                                                                or g[c].notna().any())])
            ok = g[g["min_ess_per_s"].notna()]
            if not ok.empty:
                s = ok.groupby("backend").agg(fits=("repeat", "count"), sampling_s=("sampling_s", "mean"),
                                              min_ess_per_s=("min_ess_per_s", "mean"),
                                              divergences=("divergences", "sum"), max_rhat=("max_rhat", "max"),
                                              peak_mem_mb=("peak_mem_mb", "max"), load=("load1_start", "mean"))
                r = ratios[(ratios["config"] == cfg)].set_index("backend")["ratio_to_stan"]
                s["ratio_to_stan"] = [r.get(b, float("nan")) for b in s.index]
                s = s.reset_index()
                lines += ["", "Means over the repeats:", ""]
                lines += _table(s, ["backend", "fits", "load", "sampling_s", "min_ess_per_s", "ratio_to_stan",
                                    "divergences", "max_rhat", "peak_mem_mb"])
                if "stan" in set(s["backend"]) and DEFAULT_BACKEND in set(s["backend"]):
                    rr = float(s.loc[s["backend"] == DEFAULT_BACKEND, "ratio_to_stan"].iloc[0])
                    stuck = ok[(ok["backend"] == DEFAULT_BACKEND) & ((ok["max_rhat"] > 1.01) | (ok["divergences"] > 0))]
                    targets.append((f"default back end min ESS/s >= 2x Stan, no stuck chain ({cfg})",
                                    "met" if rr >= 2 and stuck.empty else "NOT met",
                                    f"ratio {rr:.2f}; {len(stuck)} of {int((ok['backend'] == DEFAULT_BACKEND).sum())} "
                                    f"default-back-end fits with R-hat > 1.01 or divergences"))
            lines.append("")
    big = None
    if fits is not None and not fits.empty:
        big = fits[(fits["config"] == "cytokine-core-1000") & (fits["backend"] == DEFAULT_BACKEND)
                   & fits["min_ess_per_s"].notna()]
    sc = _read("scaling.csv")
    if sc is not None and not sc.empty:
        sc = _latest(sc, "config")  # each point's latest run (points of a series may come from different runs)
        sc = sc[sc["min_ess_per_s"].notna()].copy()
    patients = sc[sc["series"] == "patients"] if sc is not None and not sc.empty else None
    if (big is None or big.empty) and patients is not None:
        big = patients[(patients["x"] == 1000) & (patients["backend"] == DEFAULT_BACKEND)]
    if big is not None and not big.empty:
        good = big[(big["max_rhat"] < 1.01) & (big["divergences"] == 0) & (big["wall_s"] < 600)]
        targets.append(("1,000 patients x 3 analytes: R-hat < 1.01, no divergences, under 10 minutes",
                        "met" if len(good) == len(big) else "NOT met",
                        "; ".join(f"wall {r.wall_s:.0f} s (compile {r.compile_s:.0f} + sampling {r.sampling_s:.0f}), "
                                  f"R-hat {r.max_rhat}, {int(r.divergences)} divergences, load {r.load1_start}"
                                  for r in big.itertuples())))
    elif patients is not None and not patients.empty:  # not measured: say so, with the largest point measured
        r = patients.loc[patients["x"].idxmax()]
        targets.append(("1,000 patients x 3 analytes: R-hat < 1.01, no divergences, under 10 minutes",
                        "NOT measured",
                        f"largest point measured: {int(r['x'])} patients, wall {r['wall_s']:.0f} s (compile "
                        f"{r['compile_s']:.0f} + sampling {r['sampling_s']:.0f}), R-hat {r['max_rhat']}, "
                        f"{int(r['divergences'])} divergences; see the notes below"))
    if sc is not None and not sc.empty:
        sc["s_per_ess"] = 1.0 / sc["min_ess_per_s"]
        lines += ["## Scaling", "",
                  "Pulse model (3 correlated cytokines, M3 censoring) with the default back end, in fresh processes; "
                  "`s_per_ess` = sampling seconds per effective draw of the worst quantity; `mean_steps` and "
                  "`us_per_grad` as above (NUTS trees double in length in steps: 31 = depth 5, 63 = depth 6).", ""]
        for series, g in sc.groupby("series"):
            agg = g.groupby("x").agg(fits=("repeat", "count"), load=("load1_start", "mean"),
                                     n_rows=("n_rows", "first"), compile_s=("compile_s", "mean"),
                                     sampling_s=("sampling_s", "mean"), min_ess_per_s=("min_ess_per_s", "mean"),
                                     s_per_ess=("s_per_ess", "mean"), mean_steps=("mean_steps", "mean"),
                                     us_per_grad=("us_per_grad", "mean"), divergences=("divergences", "sum"),
                                     max_rhat=("max_rhat", "max"), peak_mem_mb=("peak_mem_mb", "max")).reset_index()
            label = "patients" if series == "patients" else "analytes"
            agg = agg.rename(columns={"x": label})
            if "note" in g and g["note"].notna().any():
                notes = g.groupby("x")["note"].apply(lambda v: "; ".join(sorted({str(x) for x in v.dropna()})))
                agg["note"] = [notes.get(x, "") for x in agg[label]]
            lines += [f"### {label}", ""] + _table(agg, [label, "fits", "load", "n_rows", "compile_s", "sampling_s",
                                                         "min_ess_per_s", "s_per_ess", "mean_steps", "us_per_grad",
                                                         "divergences", "max_rhat", "peak_mem_mb"]
                                                  + (["note"] if "note" in agg else [])) + [""]
            runs = sorted(g["run_id"].astype(str).unique())
            if len(runs) > 1:
                lines.append(f"Points from {len(runs)} runs ({', '.join(runs)}); the load column shows how busy the "
                             "machine was for each.")
            s_all = _slope(agg[label], agg["sampling_s"])
            e_all = _slope(agg[label], agg["s_per_ess"])
            lines.append(f"Log-log slope over the series: sampling time {s_all:.2f}, seconds per effective draw "
                         f"{e_all:.2f}.")
            if series == "patients":
                big = agg[agg[label] >= 200]
                s2 = _slope(big[label], big["sampling_s"])
                e2 = _slope(big[label], big["s_per_ess"])
                if len(big) >= 2:
                    points = ", ".join(str(int(v)) for v in big[label])
                    lines.append(f"From 200 patients up (points {points}): sampling time {s2:.2f}, seconds per "
                                 f"effective draw {e2:.2f}.")
                    targets.append(("cost close to linear in patients (log-log slope <= 1.1, 200 to 1,000)",
                                    "met" if max(s2, e2) <= 1.1 else "NOT met",
                                    f"slope of sampling time {s2:.2f}, of seconds per effective draw {e2:.2f} "
                                    f"(points: {points})"))
                else:
                    lines.append("From 200 to 1,000 patients: fewer than two points measured (no slope yet).")
            lines.append("")
    oc = _read("oc.csv")
    if oc is not None and not oc.empty:
        oc = _latest(oc, "benchmark")
        lines += ["## Operating characteristics of simulated one-arm trials", "",
                  "`oc-closed-form`: `plan.simulate_oc_1s` (conjugate robust-mixture posterior per trial, exact); "
                  "`oc-model-*`: the hierarchical response model fitted per simulated trial (approximate mode), "
                  "model building and compilation included.", ""]
        lines += _table(oc, ["benchmark", "repeat", "load1_start", "trials", "n_per_trial", "seconds",
                             "seconds_per_trial", "seconds_for_10000", "max_abs_error_vs_exact", "workers", "note"])
        cf = oc[oc["benchmark"] == "oc-closed-form"]
        if not cf.empty:
            worst = float(cf["seconds_for_10000"].max())
            targets.append(("OC of 10,000 simulated one-arm trials in under 30 s",
                            "met" if worst < 30 else "NOT met",
                            f"closed form: at most {worst:.3f} s per 10,000 trials"))
        lines.append("")
    bp = _read("biomarker_power.csv")
    if bp is not None and not bp.empty:
        bp = bp[bp["run_id"] == bp["run_id"].max()]
        lines += ["## Biomarker power curve (issue 6)", "",
                  "`bench_biomarker_power.py`: virtual studies simulated from a joint fit and refitted with the "
                  "measurement-error CR model (nutpie, 2 chains) on a local dask cluster; power = share of studies "
                  "with P(beta > 0) > 0.95; `failed`: refits with R-hat >= 1.05 or divergences; `wall_s_curve`: "
                  "the whole curve.", ""]
        lines += _table(bp, ["fit_gate", "n", "sims", "workers", "draws", "load1_start", "power_tcell_expansion",
                             "se_tcell_expansion", "power_il10_peak", "se_il10_peak", "failed", "mean_refit_s",
                             "wall_s_curve", "peak_mb"])
        lines.append("")
    lines += _inputs_section(_read("inputs.csv"))
    ap = _read("approx.csv")
    if ap is not None and not ap.empty:
        ap = _latest(ap, "config")
        lines += ["## Approximate mode against NUTS", "",
                  "Quantities simulation studies use, fitted by each method on the same data; NUTS is the reference "
                  "(`abs_diff` in the quantity's units; `sd_ratio` = approximate SD / NUTS SD).", ""]
        lines += _table(ap, [c for c in ap.columns if c not in ("run_id", "created")])
        lines.append("")
    if targets:
        lines += ["## Targets (issue 7)", ""] + _table(
            __import__("pandas").DataFrame(targets, columns=["target", "status", "measured"]),
            ["target", "status", "measured"]) + [""]
    if NOTES.exists():
        lines += [NOTES.read_text(encoding="utf-8").rstrip(), ""]
    old = RESULTS_DIR / "fits_v0.csv"
    if old.exists():
        lines += ["Earlier measurements (first harness, nutpie's compilation counted in sampling time, R-hat/ESS over "
                  "every variable) are kept in `results/fits_v0.csv`.", ""]
    RESULTS_MD.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _ = np  # numpy is used by the helpers
    return RESULTS_MD


if __name__ == "__main__":
    print(write_results_md())
