"""Approximate mode against NUTS: time and the summaries simulation studies use. Not a test.

For each configuration, the model is fitted by NUTS (the default back end, 4 x 1000 draws) and by
each approximate method (``bayes_blina.approx``: ADVI, Pathfinder, Laplace; 4000 draws), each in a
fresh process, and the posterior mean and SD of a few key quantities are compared with NUTS's:

``response-300``
    the response model on 300 simulated patients: standardised CR rate of each age group and the
    log odds ratio of blast burden < 50% vs >= 50%.
``cytokine-core-36``
    the pulse model on 36 virtual patients: the typical first-exposure peak (log) and the priming
    effect ``delta_reexposure`` of each cytokine.

Rows (one per method, quantity and element) are appended to ``results/approx.csv``.

    python benchmarks/bench_approx.py
    python benchmarks/bench_approx.py --config response-300 --method pathfinder
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, append_csv, emit, load1, now, run_child  # noqa: E402

RESULTS = RESULTS_DIR / "approx.csv"
COLUMNS = ["run_id", "created", "config", "method", "load1_start", "seconds", "nuts_seconds", "nuts_max_rhat",
           "quantity", "nuts_mean", "mean", "abs_diff", "diff_in_nuts_sds", "nuts_sd", "sd", "sd_ratio"]
METHODS = ["nuts", "advi", "pathfinder", "laplace"]
FACTORS = ["regimen", "age_group", "blast_burden"]


def _data(config):
    if config == "response-300":
        from bayes_blina.simulate import simulate_response_cohort

        return simulate_response_cohort(300, seed=3)[0]
    from bayes_blina.simulate import simulate_cohort

    return simulate_cohort("adult-exploratory", 36, seed=1)[0]


def _spec(config):
    if config == "response-300":
        return {"name": config, "family": "response", "options": {"factors": FACTORS, "study_effect": False}}
    return "cytokine-core"


def quantities(config, res, ds) -> dict[str, np.ndarray]:
    """Draws (n, ) of each named scalar quantity."""
    post = as_dataset(res.idata.posterior).stack(sample=("chain", "draw"))
    out = {}
    if config == "response-300":
        from bayes_blina.families.response import subgroup_rates

        sg = subgroup_rates(res.idata, ds.subjects, factors=FACTORS, by="age_group")
        for col in sg.columns:
            out[f"CR rate, age {col}"] = sg[col].to_numpy()
        b = post["beta_blast_burden"]
        out["log-OR blasts <50 vs >=50"] = (b.sel(blast_burden="<50") - b.sel(blast_burden=">=50")).values
    else:
        for a in post["analyte"].values:
            out[f"log typical peak {a}"] = np.log(post["typical_peak"].sel(analyte=a, scenario="flat15_first").values)
            out[f"delta_reexposure {a}"] = post["delta_reexposure"].sel(analyte=a).values
    return out


def run_one(config: str, method: str, seed: int) -> dict:
    from bayes_blina.inference import fit

    ds = _data(config)
    t0 = time.perf_counter()
    res = fit(_spec(config), ds, method=method, chains=4, draws=1000, tune=1000, seed=seed)
    secs = time.perf_counter() - t0
    q = {k: [float(np.mean(v)), float(np.std(v))] for k, v in quantities(config, res, ds).items()}
    return {"seconds": round(secs, 2), "q": q, "max_rhat": round(float(res.verdict.max_rhat), 4)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", choices=["response-300", "cytokine-core-36"])
    ap.add_argument("--method", action="append", choices=METHODS[1:])
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--no-report", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        cfg, method = args.child.split(":")
        emit(run_one(cfg, method, args.seed))
        return
    run_id = now()
    for cfg in args.config or ["response-300", "cytokine-core-36"]:
        l0 = load1()
        ref, err, _ = run_child([__file__, "--child", f"{cfg}:nuts", "--seed", str(args.seed)], timeout=7200)
        if ref is None:
            print(f"{cfg}: NUTS failed: {err}")
            continue
        print(f"{cfg}: NUTS {ref['seconds']} s, max R-hat {ref['max_rhat']} (load {l0})")
        for method in args.method or METHODS[1:]:
            l0 = load1()
            res, err, _ = run_child([__file__, "--child", f"{cfg}:{method}", "--seed", str(args.seed)], timeout=7200)
            if res is None:
                print(f"{cfg}: {method} failed: {err}")
                append_csv(RESULTS, COLUMNS, {"run_id": run_id, "created": now(), "config": cfg, "method": method,
                                              "load1_start": l0, "quantity": f"failed: {err}"[:200]})
                continue
            worst = 0.0
            for name, (m, s) in res["q"].items():
                rm, rs = ref["q"][name]
                row = {"run_id": run_id, "created": now(), "config": cfg, "method": method, "load1_start": l0,
                       "seconds": res["seconds"], "nuts_seconds": ref["seconds"], "nuts_max_rhat": ref["max_rhat"],
                       "quantity": name,
                       "nuts_mean": round(rm, 4), "mean": round(m, 4), "abs_diff": round(abs(m - rm), 4),
                       "diff_in_nuts_sds": round(abs(m - rm) / rs, 2), "nuts_sd": round(rs, 4), "sd": round(s, 4),
                       "sd_ratio": round(s / rs, 2)}
                worst = max(worst, row["diff_in_nuts_sds"])
                append_csv(RESULTS, COLUMNS, row)
            print(f"{cfg}: {method} {res['seconds']} s (NUTS {ref['seconds']} s); worst mean difference "
                  f"{worst:.2f} NUTS SDs")
    if not args.no_report:
        import report

        report.write_results_md()


if __name__ == "__main__":
    main()
