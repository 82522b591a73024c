"""Plan a new single-arm pediatric blinatumomab study with a MAP prior built from the bundled data.

Shows: picking historical CR counts out of the bundled published aggregates, the meta-analytic-
predictive (MAP) prior of the CR rate of a new study (PyMC, convergence gate, beta-mixture
approximation), its effective sample size by three methods, robustification, the exact operating
characteristics of a one-arm design with a Bayesian success rule, the probability of success, a
sample-size search, a Monte Carlo check of the OC, and Simon's two-stage design for comparison.

Historical studies (CR within two cycles, rows of family ``all``/``cohort`` in
``read_dataset("published").aggregates``):

* von Stackelberg et al. 2016, recommended dosage 5-15 ug/m2/d: 27/70 (children);
* von Stackelberg et al. 2016, phase I dose escalation cohort: 7/23 (children, other doses; a
  separate population of the same trial, treated here as a separate historical "study" because
  its patients, doses and CR rate differ; drop it with ``--no-escalation``);
* Nägele et al. 2017: 25/36 (adults; drop it with ``--pediatric-only``). Adults respond more often
  than children in these data, so including them widens the MAP prior through the between-study
  sd: that is the point of a MAP prior - heterogeneity costs effective sample size.

With three (or two) studies the between-study sd is weakly identified and its prior matters; the
default HalfNormal(1) on the logit scale is RBesT's conservative recommendation.

    python examples/plan_study.py --draws 1000 --n 40 --threshold 0.2 --prob 0.9 --out out/plan
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_blina._atomic import write_text_atomic
from bayes_blina.data import read_dataset
from bayes_blina.plan import (
    BetaMixture,
    decision_1s,
    ess_all,
    map_prior,
    oc_1s,
    pos_1s,
    sample_size_1s,
    simon_design,
    simulate_oc_1s,
)


def historical_studies(pediatric_only: bool, escalation: bool) -> pd.DataFrame:
    """CR counts of the historical studies, taken from the bundled published aggregates."""
    agg = read_dataset("published").aggregates
    cr = agg[agg["endpoint"] == "CR"]
    rows = cr[(cr["family"] == "all") & (cr["level"] == "all")]
    if escalation:
        rows = pd.concat([rows, cr[(cr["family"] == "cohort") & (cr["level"] == "phase I dose escalation")]])
    if pediatric_only:
        rows = rows[rows["study"] != "Nagele2017"]
    return pd.DataFrame({
        "study": (rows["study"] + " / " + rows["population"]).tolist(),
        "n": rows["n"].astype(int).tolist(),
        "r": rows["responders"].astype(int).tolist(),
    })


def _ess_text(prior: BetaMixture) -> str:
    return ", ".join(f"{k} {v:.1f}" if np.isfinite(v) else f"{k} undefined"
                     for k, v in ess_all(prior).items())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=1000, help="MCMC draws per chain")
    ap.add_argument("--tune", type=int, default=1000, help="MCMC tuning steps per chain")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2016)
    ap.add_argument("--tau-scale", type=float, default=1.0, help="HalfNormal scale of the between-study sd")
    ap.add_argument("--pediatric-only", action="store_true", help="leave out the adult study (Nägele 2017)")
    ap.add_argument("--no-escalation", action="store_true", help="leave out the phase I dose-escalation cohort")
    ap.add_argument("--robust-weight", type=float, default=0.2, help="weight of the vague component")
    ap.add_argument("--robust-mean", type=float, default=0.5,
                    help="mean of the vague component (0.5 gives the uniform Beta(1, 1))")
    ap.add_argument("--n", type=int, default=40, help="patients in the new study")
    ap.add_argument("--threshold", type=float, default=0.2, help="CR rate that is not of interest")
    ap.add_argument("--prob", type=float, default=0.9, help="success if P(CR rate > threshold | data) > prob")
    ap.add_argument("--target", type=float, default=0.35, help="CR rate of interest for power and sample size")
    ap.add_argument("--trials", type=int, default=10_000, help="simulated trials per rate for the MC check")
    ap.add_argument("--out", default=None,
                    help="folder to write robust-map-prior.json (the robust prior) and oc.csv (the OC table) into")
    args = ap.parse_args(argv)

    hist = historical_studies(args.pediatric_only, not args.no_escalation)
    print("historical studies:")
    print(hist.to_string(index=False))

    res = map_prior(hist, ("HalfNormal", args.tau_scale), ("Normal", 0.0, 2.0), seed=args.seed,
                    chains=args.chains, draws=args.draws, tune=args.tune)
    print(f"\n{res.verdict}")
    t, s = res.tau_summary(), res.sample_summary()
    print(f"tau: mean {t['mean']:.3f}, 95% interval {t['q2.5']:.3f} - {t['q97.5']:.3f}")
    print(f"MAP prior of the new study's CR rate: mean {s['mean']:.3f}, sd {s['sd']:.3f}, "
          f"95% interval {s['q2.5']:.3f} - {s['q97.5']:.3f}")
    print(f"beta-mixture approximation ({res.fit.k} components): {res.mixture}")
    print("ESS of the MAP prior: " + _ess_text(res.mixture))

    robust = res.mixture.robustify(args.robust_weight, mean=args.robust_mean)
    _, ra, rb = robust.components()[-1]
    print(f"robust MAP (weight {args.robust_weight} on Beta({ra:g}, {rb:g})): ESS " + _ess_text(robust))
    if args.out:
        prior_file = Path(args.out) / "robust-map-prior.json"
        robust.save(str(prior_file), created_by="examples/plan_study.py", historical=hist.to_dict(orient="records"))
        print(f"wrote {prior_file}")

    rule = decision_1s(args.prob, args.threshold)
    print(f"\none-arm design, n = {args.n}, success if {rule}")
    grid = np.round(np.arange(0.10, 0.61, 0.05), 2)
    table = pd.DataFrame({"theta": grid})
    for name, prior in (("robust MAP", robust), ("MAP", res.mixture), ("uniform", BetaMixture.beta(1, 1))):
        oc = oc_1s(prior, args.n, rule)
        table[f"P(success) {name}"] = oc(grid)
        print(f"  {name:<10} success iff CR >= {oc.critical_value} of {args.n}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.out:
        oc_file = Path(args.out) / "oc.csv"
        write_text_atomic(oc_file, table.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
        print(f"wrote {oc_file}")

    sim = simulate_oc_1s(robust, args.n, rule, grid, n_trials=args.trials, seed=args.seed)
    dev = np.abs(sim["p_success"].to_numpy() - table["P(success) robust MAP"].to_numpy())
    print(f"Monte Carlo check ({args.trials} trials per rate, {sim.attrs['seconds']:.2f} s): "
          f"max |MC - exact| = {dev.max():.4f} (max MC se {sim['mc_se'].max():.4f})")

    print(f"\nprobability of success with the MAP prior as design prior: {pos_1s(robust, args.n, rule, res.mixture):.3f}")
    ss = sample_size_1s(robust, rule, theta=args.target, target_power=0.8, n_max=120, stable=True)
    if ss.n is None:
        print(f"no n <= 120 gives 80% power at a CR rate of {args.target}")
    else:
        print(f"smallest n with power >= 80% at CR rate {args.target} (and for every larger n up to 120): "
              f"{ss.n} (power {ss.power:.3f})")

    d = simon_design(args.threshold, args.target, 0.05, 0.2, kind="optimal", n_max=100)
    print(f"\nfor comparison, {d}")


if __name__ == "__main__":
    main()
