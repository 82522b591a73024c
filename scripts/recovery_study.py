"""Parameter recovery of the trajectory families on virtual cohorts, across seeds.

For each study (model spec × cohort size × seed) a virtual adult cohort is simulated
(:func:`bayes_blina.simulate.simulate_cohort`, preset ``adult-exploratory``), the spec is fitted,
and every population parameter with a known truth is checked against its 90% equal-tailed interval.
Results are appended to ``docs/recovery.csv`` and ``docs/recovery.md`` is regenerated from it.

The criterion (also in ``docs/recovery.md`` and tested on one seed in ``tests/test_recovery.py``):

* every fit passes the convergence gate (R-hat < 1.01, ESS >= 400, no divergences);
* per fit, at least 75% of the population parameters have their truth inside the 90% interval
  (with perfect calibration the expected share is 90%; the slack covers the deliberate model
  simplifications listed below and the small number of parameters per fit);
* per fit, the predicted typical trajectory tracks the true one: at least 60% of the (analyte,
  time) points of the true typical curve (a new patient on a flat 15 µg/m²/day infusion with every
  patient effect at its population value, covariates at the reference level) lie inside the 90%
  interval of the typical prediction (``typical_share``; ``typical_max_log_err`` is the largest
  ``|log(predicted median / truth)|``), **or** the predicted median is within 20% of the truth at
  every point (``typical_max_log_err <= log 1.2``: with 200 patients the band is so narrow that a
  5% offset falls outside it). The points of one analyte's curve share its few population
  parameters, so they miss together: one chance miss of, say, ``log_amp_mu`` of one of three
  analytes leaves about 2/3 of the points inside; hence 60%, not the 75% per parameter;
* pooled over the seeds of one (spec, n), at least 80%.

The pulse model's population parameters include the between-patient SD of the log time to peak
(``sd_log_tpeak``, option ``patient_timing``), as in the simulator. The kinetics truths are the
simulator's parameters under the names of :mod:`bayes_blina.families.kinetics` (``logit_depth_mu``
is ``logit(depth)``); run ``tcell`` with ``--analytes CD3``: the subsets CD4/CD8 are fractions of
CD3 in the simulator and have no kinetics-form truth.

    python scripts/recovery_study.py --spec cytokine-core --n 36 --seeds 1 2 3
    python scripts/recovery_study.py --spec cytokine-core --n 200 --seeds 1 2
    python scripts/recovery_study.py --spec cytokine-core --n 36 --seeds 1 2 3 --truths moved
    python scripts/recovery_study.py --report-only
"""
from __future__ import annotations

import argparse
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT / "docs" / "recovery.csv"
MD = ROOT / "docs" / "recovery.md"
#: Hand-written findings appended to the report (why misses and gate failures happen).
FINDINGS = """
* **Before patient-level timing** (pulse model with one time to peak per analyte; fits of
  2026-11-21 before 04:40, not kept in the table): `sigma_obs` 0.40 to 0.53 against the truth 0.3,
  `log_tpeak` and `k_shape` biased, 26/36 and 27/36 truths inside. The simulator gives every
  patient its own time to peak (`sd_log_tpeak` 0.25); the model absorbed that into the residual.
  With patient timing (`patient_timing = true`, the default now) `sigma_obs`, `log_tpeak`,
  `k_shape` and `sd_log_tpeak` are recovered (e.g. seed 1, n = 36: `sigma_obs` 0.30/0.30/0.29).
* **Sampler.** In session 2 the cytokine fits passed the gate only marginally (R-hat 1.010 to
  1.020 with 1,000 draws per chain; the plain non-centred timing coordinates were worse). Session 3
  found the cause: chains started, as PyMC and nutpie do by default, from a jittered prior location
  of the timing, and a sparse pulse's timing has poor local modes (one chain of a 3-cytokine fit sat
  at an IL-6 peak of 6 h with a between-patient SD of 2, R-hat 1.5 to 2.4). The pulse family now
  starts the population time to peak from the data and the patient deviations near 0, unjittered
  (see `families/pulse.py`). With that, the three n = 36 cytokine-core fits passed the gate
  (session 3), but the n = 200 fit (seed 1) still failed it narrowly with the diagonal mass matrix
  (largest R-hat 1.011, no divergences). Session 4 made nutpie's low-rank mass matrix the
  default of `models/cytokine-core.toml` (as of `models/cytokine.toml`): every cytokine-core row in
  the table is a fit with it, and all six pass (n = 200: 5.6 to 8.6 min on 2 cores, the machine
  shared with other fits; n = 36: 1.5 to 2.6 min).
  The tcell rows at n = 36 and n = 200 seeds 2 and 3 are fits with the T-cell timing priors of the
  adult paper and the data-driven starting baselines (`families/kinetics.py`, sessions 3 and 4);
  the n = 200 seed 1 row is from session 2 (21 min, before those starts).
* **Chance, not misspecification.** The remaining misses track the realised cohort, not the
  model: e.g. seed 1 (n = 36) realised `beta_blast_burden[IL6]` -0.43 (truth 0.5; estimate -0.30),
  realised `sd_log_tpeak[IFNG]` 0.305 (truth 0.25; estimate 0.33), realised IFNG log amplitude of
  the low-blast group 4.18 (truth 4.5; estimate 3.92); seed 3 realised `beta_blast_burden`
  -0.25/-0.23/-0.32 (estimates -0.12/-0.20/-0.16); n = 200 seed 1 realised low-blast IL6 log
  amplitude 4.47 (truth 4.70; estimate 4.34); tcell n = 200 seed 1 realised mean expansion 0.821
  (truth 0.693, 2.2 standard errors away; estimate 0.815). `sd_log_amp[IL6]` (seed 1) and the
  amplitude correlations are the weakest: with mostly censored baselines the split of each peak's
  variance into baseline and amplitude parts is poorly determined at n = 36.
* **Results between the LOD and the LLOQ** (issue 15, part 4; not in the table above). Virtual
  adults with `report_below_lloq = "censor"` (IL-6 and IL-10, LOD 20 and LLOQ 125 pg/mL, results
  between the limits flagged `LLOQ` with both limits on the row), `beta_blast_amp = 0`, n = 30,
  fitted with cytokine-core's priors and options for the two analytes (4 chains x 250 draws; the
  gate is not the point): the typical curve (`typical_curves`, 9 times per analyte, 18 points) and
  the mean log ratio of its median to the truth.

  | seed | rows flagged `LLOQ` / `LOD` | `LLOQ` rows left-censored at the LLOQ (before) | interval-censored in [LOD, LLOQ) (now) | values given (reference) |
  | --- | --- | --- | --- | --- |
  | 2 | 327 / 475 | 14/18 inside, -0.54 (42% too low) | 18/18 inside, -0.15 | 17/18 inside, -0.16 |
  | 3 | 295 / 451 | 12/18 inside, -0.56 (43% too low) | 17/18 inside, -0.10 | 17/18 inside, -0.11 |

  Before, both typical baselines (`log_baseline_mu`, truth 1.61) lay above their 90% intervals
  (medians -0.16 to 0.18) in both seeds; now they are inside. Interval censoring recovers what the
  values themselves give. `tests/test_likelihood_interval.py` fits seed 2 (slow test).
* **Truths away from the priors' centres** (issue 15, part 5; rows `moved`): the simulator's
  between-patient SD of the log time to peak 0.4 (prior centre 0.25), dose exponent 0.8 (prior
  centre 1) and CD3 nadir at 10 h (prior centre 24 h); fits with the shipped specs' priors and
  options (event effects in decorrelated coordinates, session 7). The T-cell model recovers them
  (n = 36: 8/10, 10/10, 9/10 inside, all pass the gate; the moved nadir 10 h is inside or just
  below the interval; n = 200: 8/10, 10/10, 9/10, all pass).
* **Cytokine-core with moved truths, session 14: centred patient timing.** Session 13 found the
  n = 200 fits failing the gate in 3 of 3 seeds (R-hat 1.021-1.028) with the patient-mean timing
  coordinates of that time (before session 12 the two fits run had passed, 1.007 and 1.010). The
  slow quantities were `log_tpeak` and `sd_log_tpeak` (seed 3: bulk ESS 154-290), the
  non-centred funnel of well-identified patient timings (docs/sampling.md). `models/cytokine-core.toml`
  now samples the patient timing centred (`timing_sampling = "centred"`); every cytokine-core
  `moved` row and every `default` row is a fit with it (session 14; the n = 200 rows rerun in
  session 15 on the current model, `--covariates blast_burden`; fit times measured with other
  fits and tests sharing the 2 cores). All twelve pass the gate (n = 200 default: largest R-hat
  1.008, 1.004, 1.006; moved: 1.003, 1.004, 1.007) and meet the written criterion.
* **What the moved n = 200 rows missed without the covariate, and why.** Fitted without
  covariates (session 14), IL-10's (and less IL-6's) `log_amp_mu` lay above the truth (90%
  intervals 4.75-5.23, 4.79-5.27 against 4.7) and the typical curves were high (typical share
  0.37, 0.56, 0.22), so none of the three met the criterion although all passed the gate. The
  simulator raises every cytokine's log amplitude by 0.5 for high blast burden in 60% of the
  patients, so without the covariate `log_amp_mu` is the cohort average (about 4.7 + 0.6 x 0.5 =
  5.0), not the reference level's 4.7 that the typical-curve check compares with. **Confirmed in
  session 15**: the same seeds fitted with `--covariates blast_burden` (the rows in the tables)
  meet the criterion in 3 of 3 (35/39, 34/39, 37/39 inside; typical share 0.74, 1.00, 1.00).
  IL-10's `gamma_dose` and `delta_reexposure` trade off against each
  other from seed to seed (seed 2 low/high, seed 3 high/low): the step from 5 to 15 is both a
  dose and a re-exposure, and only the flat-dose arms separate them.
"""
PER_FIT_MIN, POOLED_MIN, TYPICAL_MIN = 0.75, 0.80, 0.60
#: Or the typical trajectory tracks when its median is within 20% of the truth at every point.
TYPICAL_MAX_LOG_ERR = math.log(1.2)


# ------------------------------------------------------------------------------------------ truths
def _pulse_truth(pop: dict, analytes: list[str], options: dict) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for a in analytes:
        p = pop["pulse"][a]
        for name in ("log_baseline_mu", "sd_log_baseline", "log_amp_mu", "sd_log_amp", "gamma_dose",
                     "delta_reexposure", "kappa_cycle", "k_shape", "sigma_obs"):
            out[(name, a)] = float(p[name])
        out[("log_tpeak", a)] = float(p["log_tpeak_mu"])
        if options.get("patient_timing", True):
            out[("sd_log_tpeak", a)] = float(p["sd_log_tpeak"])
        if "blast_burden" in options.get("covariates", []):
            out[("beta_blast_burden", a)] = float(p["beta_blast_amp"])
    corr = pop["cytokine_corr"]
    idx = {a: i for i, a in enumerate(corr["analytes"])}
    if options.get("correlated", True) and len(analytes) > 1:
        for i, a in enumerate(analytes):
            for b in analytes[i + 1:]:
                out[("corr_amp", a, b)] = float(corr["matrix"][idx[a]][idx[b]])
    return out


def _kinetics_truth(pop: dict, analytes: list[str], options: dict) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for a in analytes:
        p = pop["kinetics"].get(a)
        if p is None:
            continue
        out[("log_baseline_mu", a)] = float(p["log_baseline_mu"])
        out[("sd_log_baseline", a)] = float(p["sd_log_baseline"])
        out[("logit_depth_mu", a)] = math.log(p["depth"] / (1 - p["depth"]))
        out[("sd_logit_depth", a)] = float(p["sd_logit_depth"])
        out[("t_nadir", a)] = float(p["t_nadir"])
        out[("k_shape", a)] = float(p["k_shape"])
        out[("expansion_mu", a)] = float(p["expansion_mu"])
        out[("sd_expansion", a)] = float(p["sd_expansion"])
        out[("tau_e", a)] = float(p["tau_e"])
        out[("sigma_obs", a)] = float(p["sigma_obs"])
    return out


def _depletion_truth(pop: dict, analytes: list[str], options: dict) -> dict[tuple[str, ...], float]:
    p = pop["depletion"]["CD19"]
    return {(name, "CD19"): float(p[name]) for name in ("log_baseline_mu", "sd_log_baseline", "log_k_dep_mu",
                                                          "sd_log_k_dep", "sigma_obs") if "CD19" in analytes}


TRUTHS = {"pulse": _pulse_truth, "kinetics": _kinetics_truth, "depletion": _depletion_truth}

#: Times (h) of the typical-trajectory check, per family.
TYPICAL_TIMES = {"pulse": (2.0, 6.0, 12.0, 24.0, 36.0, 48.0, 72.0, 96.0, 168.0),
                 "kinetics": (2.0, 6.0, 24.0, 48.0, 168.0, 336.0, 504.0, 672.0),
                 # depletion: before the typical count falls below the LOD (the floor is not identified)
                 "depletion": (2.0, 6.0, 12.0, 24.0, 36.0)}


def typical_curves(res, truth: dict, family: str, analytes: list[str], prob: float = 0.9) -> pd.DataFrame:
    """Predicted typical trajectory (posterior median and ``prob`` interval) against the true one.

    The true typical curve is the simulator's curve (:func:`bayes_blina.simulate.cohort.true_curve`)
    of a patient on a flat 15 µg/m²/day cycle whose every patient effect is at its population value
    and whose covariates are at the reference level; the prediction is
    :func:`bayes_blina.predict.predict_trajectories` of the same patient from the fit.

    Returns
    -------
    DataFrame
        ``analyte, time_h, truth, median, lower, upper, inside, log_err``.
    """
    from types import SimpleNamespace

    from bayes_blina.data.dataset import Dataset
    from bayes_blina.events import standard_schedule
    from bayes_blina.predict import predict_trajectories
    from bayes_blina.simulate.cohort import true_curve

    times = list(TYPICAL_TIMES[family])
    dosing = standard_schedule("15", 1)
    dosing.insert(0, "subject_id", "typical")
    subjects = pd.DataFrame({"subject_id": ["typical"], "study": ["typical"], "regimen": ["15"]})
    new = Dataset(subjects=subjects, dosing=dosing)
    stored = SimpleNamespace(family_name=family, options=res.family.options.model_dump(), idata=res.idata)
    pred = predict_trajectories(stored, new, times=times, prob=prob)
    pop = truth["population"]
    rows = []
    for a in analytes:
        if family == "pulse":
            p = pop["pulse"][a]
            vals = {"baseline": math.exp(p["log_baseline_mu"]), "log_amp": p["log_amp_mu"],
                    "t_peak": math.exp(p["log_tpeak_mu"])}
            kind = "pulse"
        elif family == "depletion":
            p = pop["depletion"][a]
            vals = {"baseline": math.exp(p["log_baseline_mu"]), "k_dep": math.exp(p["log_k_dep_mu"]),
                    "floor": p["floor"]}
            kind = "depletion"
        else:
            if a not in pop["kinetics"]:
                continue
            p = pop["kinetics"][a]
            vals = {"baseline": math.exp(p["log_baseline_mu"]), "depth": p["depth"], "E": p["expansion_mu"]}
            kind = "kinetics"
        pats = {"subject_id": ["typical"], "kinetics": {}, "depletion": {}, "pulse": {}, "subsets": {}}
        pats[kind][a] = {k: [v] for k, v in vals.items()}
        true = true_curve(new, {"patients": pats, "population": pop}, a, times, ["typical"])[0]
        g = pred[pred["analyte"] == a].sort_values("time_h")
        for t, y, (_, r) in zip(times, true, g.iterrows()):
            rows.append({"analyte": a, "time_h": t, "truth": float(y), "median": float(r["median"]),
                         "lower": float(r["lower"]), "upper": float(r["upper"]),
                         "inside": bool(r["lower"] <= y <= r["upper"]),
                         "log_err": float(abs(math.log(r["median"] / y)))})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ truths
#: ``--truths moved``: simulator truths moved away from the centres of the specs' priors (issue 15,
#: part 5), so that coverage is not flattered by priors centred on the truth. Prior centres:
#: ``sd_log_tpeak`` Gamma(2, 8) (mean 0.25), ``gamma_dose`` Normal(0, 1), T-cell ``t_nadir``
#: LogNormal(log 6 h, 0.3).
MOVED = {"sd_log_tpeak": 0.4, "gamma_dose": 0.8, "t_nadir": 10.0}


def cohort_config(truths: str):
    """The ``adult-exploratory`` preset, its truths as they are (``default``) or moved (``moved``)."""
    from dataclasses import replace

    from bayes_blina.simulate.presets import get_preset

    cfg = get_preset("adult-exploratory")
    if truths == "default":
        return cfg
    if truths != "moved":
        raise SystemExit(f"--truths must be 'default' or 'moved' (found {truths!r})")
    cyt = {a: replace(p, sd_log_tpeak=MOVED["sd_log_tpeak"], gamma_dose=MOVED["gamma_dose"])
           for a, p in cfg.cytokines.items()}
    kin = {a: (replace(p, t_nadir=MOVED["t_nadir"]) if a == "CD3" else p) for a, p in cfg.kinetics.items()}
    return replace(cfg, name="adult-exploratory-moved", cytokines=cyt, kinetics=kin)


# ------------------------------------------------------------------------------------------ one study
def run_one(spec_name: str, n: int, seed: int, *, draws: int | None = None, tune: int | None = None,
            options: dict | None = None, chains: int | None = None, return_fit: bool = False,
            truths: str = "default"):
    """Fit one virtual cohort; one row per population parameter with truth and 90% interval.

    Every row also carries the fit's verdict, time and typical-trajectory check
    (:func:`typical_curves`: ``typical_share``, ``typical_max_log_err``). With ``return_fit``,
    returns ``(rows, fit result, typical curves)``.
    """
    from bayes_blina.inference import fit
    from bayes_blina.simulate import simulate_cohort
    from bayes_blina.spec import load_spec

    spec = load_spec(spec_name)
    if options:
        spec = spec.model_copy(update={"options": {**spec.options, **options}})
    dataset, truth = simulate_cohort(cohort_config(truths), n, seed=seed)
    t0 = time.perf_counter()
    res = fit(spec, dataset, draws=draws, tune=tune, chains=chains, seed=1000 + seed)
    wall = time.perf_counter() - t0
    fam_opts = res.family.options.model_dump()
    known = TRUTHS[spec.family](truth["population"], list(fam_opts["analytes"]), fam_opts)
    post = res.idata.posterior
    curves = typical_curves(res, truth, spec.family, list(fam_opts["analytes"]))
    typ_share = float(curves["inside"].mean()) if len(curves) else float("nan")
    typ_err = float(curves["log_err"].max()) if len(curves) else float("nan")
    rows = []
    for key, value in known.items():
        name, labels = key[0], key[1:]
        if name not in post:
            continue
        da = post[name]
        for d in [d for d in da.dims if d.endswith("_contrast")]:  # two-level covariates: one contrast
            da = da.isel({d: 0})
        dims = [d for d in da.dims if d not in ("chain", "draw")]
        da = da.sel(**dict(zip(dims, labels)))
        lo, hi = np.quantile(da.values.ravel(), [0.05, 0.95])
        rows.append({"spec": spec_name, "truths": truths, "n": n, "seed": seed, "parameter": name, "labels": "/".join(labels),
                     "truth": value, "q05": lo, "median": float(np.median(da.values)), "q95": hi,
                     "inside": bool(lo <= value <= hi), "gate_passed": res.verdict.passed,
                     "max_rhat": res.verdict.max_rhat, "divergences": res.verdict.n_divergent,
                     "fit_s": round(wall, 1), "typical_share": typ_share, "typical_max_log_err": typ_err,
                     "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    out = pd.DataFrame(rows)
    return (out, res, curves) if return_fit else out


# ------------------------------------------------------------------------------------------ report
def verdicts(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-fit and pooled shares inside, with the criterion applied."""
    df = df.assign(truths=df["truths"].fillna("default") if "truths" in df else "default")
    per_fit = (df.groupby(["spec", "truths", "n", "seed"])
                 .agg(parameters=("inside", "size"), inside=("inside", "sum"), gate_passed=("gate_passed", "all"),
                      max_rhat=("max_rhat", "max"), divergences=("divergences", "max"), fit_s=("fit_s", "max"),
                      typical_share=("typical_share", "max"), typical_max_log_err=("typical_max_log_err", "max"))
                 .reset_index())
    per_fit["share"] = per_fit["inside"] / per_fit["parameters"]
    per_fit["typical_tracks"] = ((per_fit["typical_share"] >= TYPICAL_MIN)
                                 | (per_fit["typical_max_log_err"] <= TYPICAL_MAX_LOG_ERR))
    per_fit["meets"] = per_fit["gate_passed"] & (per_fit["share"] >= PER_FIT_MIN) & per_fit["typical_tracks"]
    pooled = (per_fit.groupby(["spec", "truths", "n"])
                     .agg(seeds=("seed", "nunique"), parameters=("parameters", "sum"), inside=("inside", "sum"),
                          fits_meeting=("meets", "sum"))
                     .reset_index())
    pooled["share"] = pooled["inside"] / pooled["parameters"]
    pooled["meets"] = (pooled["share"] >= POOLED_MIN) & (pooled["fits_meeting"] == pooled["seeds"])
    return per_fit, pooled


def write_report(df: pd.DataFrame) -> None:
    from bayes_blina.report.tables import format_table

    per_fit, pooled = verdicts(df)
    df = df.assign(truths=df["truths"].fillna("default") if "truths" in df else "default")
    misses = df[~df["inside"]][["spec", "truths", "n", "seed", "parameter", "labels", "truth", "q05", "q95"]]
    text = [
        "# Parameter recovery of the trajectory families",
        "",
        "Generated by `scripts/recovery_study.py` from `docs/recovery.csv` (virtual adult cohorts,",
        "preset `adult-exploratory`; one fit per row of the first table).",
        "",
        "**Criterion.** Every fit passes the convergence gate (R-hat < 1.01, bulk and tail ESS >= 400, "
        f"no divergences), has at least {PER_FIT_MIN:.0%} of its population parameters' truths inside "
        "their 90% intervals, and its predicted typical trajectory (flat 15 µg/m²/day, covariates at "
        "the reference level) has the true typical curve inside its 90% interval at at least "
        f"{TYPICAL_MIN:.0%} of the (analyte, time) points (`typical_share`; the points of one curve "
        "miss together, see the script) or its median within 20% of the truth everywhere "
        "(`typical_max_log_err` <= log 1.2); pooled over the seeds of one spec and cohort size, at least "
        f"{POOLED_MIN:.0%} of the parameters inside and every fit meeting its criterion. (Perfect "
        "calibration gives 90% inside on average.) Truths are the simulator's population values, "
        "not the realised cohort's: with 36 patients a realised mean or SD can sit outside a "
        "correctly calibrated interval by chance.",
        "",
        "## Pooled over seeds",
        "",
        format_table(pooled, "md", digits=3),
        "",
        "## Per fit",
        "",
        format_table(per_fit, "md", digits=3),
        "",
        "## Parameters whose truth fell outside the 90% interval",
        "",
        format_table(misses, "md", digits=3) if len(misses) else "None.",
        "",
    ]
    if FINDINGS:
        text += ["## Findings", "", FINDINGS.strip(), ""]
    MD.write_text("\n".join(text))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="cytokine-core")
    ap.add_argument("--n", type=int, nargs="+", default=[36])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--draws", type=int, default=None)
    ap.add_argument("--tune", type=int, default=None)
    ap.add_argument("--covariates", nargs="*", default=None,
                    help="Override the spec's covariates option (e.g. blast_burden: the simulator's "
                         "cytokine amplitudes depend on it).")
    ap.add_argument("--analytes", nargs="+", default=None,
                    help="Override the spec's analytes option (e.g. CD3 for tcell: the subsets CD4/CD8 "
                         "have no population truth of the kinetics form).")
    ap.add_argument("--truths", choices=["default", "moved"], default="default",
                    help="'moved': simulator truths away from the priors' centres (MOVED).")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    old = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame()
    if not args.report_only:
        opts = {}
        if args.covariates is not None:
            opts["covariates"] = args.covariates
        if args.analytes is not None:
            opts["analytes"] = args.analytes
        for n in args.n:
            for seed in args.seeds:
                df = run_one(args.spec, n, seed, draws=args.draws, tune=args.tune, options=opts or None,
                             truths=args.truths)
                print(f"{args.spec} ({args.truths} truths) n={n} seed={seed}: {int(df['inside'].sum())}/{len(df)} inside, "
                      f"gate {'passed' if df['gate_passed'].all() else 'FAILED'}, {df['fit_s'].max()} s", flush=True)
                old = pd.read_csv(CSV) if CSV.exists() else pd.DataFrame()  # other runs may have written
                if len(old):
                    same_truths = (old["truths"].fillna("default") if "truths" in old else "default") == args.truths
                    old = old[~((old["spec"] == args.spec) & (old["n"] == n) & (old["seed"] == seed) & same_truths)]
                old = pd.concat([old, df], ignore_index=True)
                CSV.parent.mkdir(parents=True, exist_ok=True)
                old.to_csv(CSV, index=False)
    if len(old):
        write_report(old)
        print(MD.read_text())


if __name__ == "__main__":
    main()
