"""Joint model example: odds ratios, P(CR) against T-cell expansion, landmark predictions.

Given a joint-model fit (``bayes-blina fit joint --data DIR --out FITDIR``), this script writes

* ``odds-ratios.md`` / ``.csv``: odds ratio of CR per doubling of T-cell expansion and of the IL-10
  peak, 90% interval and P(OR > 1);
* ``pcr-vs-expansion.png`` / ``.csv`` (and ``pcr-vs-il10.png``): P(CR) against the biomarker by
  regimen, with 90% credible bands and the fitted patients;
* ``new-patients/{subjects,observations}.csv``: a few new virtual patients (a fresh seed of the
  fitted cohort's preset; their cycle-1 CD3 and IL-10 results), ready for
  ``bayes-blina predict FITDIR --subjects ... --observations ... --landmark-day D``;
* ``landmark.csv``: their landmark predictions at days 1, 2, 8, 15 and 29, with their true outcome;
* with ``--loo``: ``loo.md``, PSIS-LOO of the CR part with against without the biomarkers (the
  covariates-only model is fitted to the same data and stored in ``fit-covariates-only/``).

Usage::

    python examples/joint_model.py --fit fits/demo-joint --out out/joint [--new-patients 4 --seed 99]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Odds ratios, P(CR) curves and landmark predictions of a joint fit.")
    ap.add_argument("--fit", required=True, help="Joint-model fit folder (bayes-blina fit joint ...).")
    ap.add_argument("--out", required=True, type=Path, help="Output folder.")
    ap.add_argument("--new-patients", type=int, default=4, help="Number of new virtual patients (default 4).")
    ap.add_argument("--preset", default=None,
                    help="Preset of the new patients (default: the fitted cohort's, from its truth.json, else "
                         "adult-exploratory).")
    ap.add_argument("--seed", type=int, default=99, help="Seed of the new patients (default 99).")
    ap.add_argument("--days", default="1,2,8,15,29", help="Landmark days (default 1,2,8,15,29).")
    ap.add_argument("--loo", action="store_true",
                    help="Also fit the covariates-only model to the same data and compare the CR parts by "
                         "PSIS-LOO (loo.md).")
    ap.add_argument("--allow-unconverged", action="store_true",
                    help="Use a fit that fails the convergence gate (outputs are marked).")
    args = ap.parse_args(argv)

    import pandas as pd

    from bayes_blina.families.joint import derived_summary
    from bayes_blina.joint.cr_curves import fitted_biomarkers, pcr_curve
    from bayes_blina.report.figures import pcr_curve_figure
    from bayes_blina.joint.landmark import predict_landmark, read_landmark_inputs
    from bayes_blina.report.figures import save_figure
    from bayes_blina.report.tables import UNCONVERGED_BANNER, format_table, gate_or_raise
    from bayes_blina.simulate import simulate_cohort
    from bayes_blina.store import load_fit

    stored = load_fit(args.fit)
    verdict = stored.verdict
    gate_or_raise(verdict, args.allow_unconverged)
    banner = None if verdict.passed else UNCONVERGED_BANNER
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    # 1. odds ratios per doubling
    ors = derived_summary(stored.idata, prob=0.9)
    (out / "odds-ratios.csv").write_text(ors.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
                                         encoding="utf-8")
    (out / "odds-ratios.md").write_text(format_table(
        ors.rename(columns={"p_gt_1": "P(OR > 1)"}), "md", banner=banner,
        caption="Odds ratio of CR per doubling of the biomarker: posterior median and mean, 90% interval"),
        encoding="utf-8")
    print(ors.to_string(index=False))

    # 2. P(CR) against the biomarkers, by regimen
    patients = fitted_biomarkers(stored)
    for b, stem in (("tcell_expansion", "pcr-vs-expansion"), ("il10_peak", "pcr-vs-il10")):
        if b not in stored.options["biomarkers"]:
            continue
        curve = pcr_curve(stored, b, by="regimen", prob=0.9)
        curve.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g", lineterminator="\n")
        save_figure(pcr_curve_figure(curve, patients=patients, title=banner and "UNCONVERGED FIT"),
                    out / f"{stem}.png")
        print(f"wrote {out / (stem + '.png')}")

    # 3. new virtual patients with their cycle-1 biomarker data
    preset = args.preset
    data_origin = stored.provenance["data"].get("origin", "")
    truth_file = Path(data_origin) / "truth.json" if data_origin else None
    if preset is None and truth_file is not None and truth_file.is_file():
        preset = json.loads(truth_file.read_text(encoding="utf-8")).get("preset")
    preset = preset or "adult-exploratory"
    new, truth = simulate_cohort(preset, args.new_patients, seed=args.seed)
    folder = out / "new-patients"
    folder.mkdir(exist_ok=True)
    subj = new.subjects.drop(columns=["response"])
    subj.to_csv(folder / "subjects.csv", index=False, lineterminator="\n")
    obs = new.observations[new.observations["analyte"].isin(["CD3", "IL10"])
                           & (new.observations["time_h"] <= 672.0)]
    obs[["subject_id", "analyte", "time_h", "value", "unit", "lod", "lloq", "below"]].to_csv(
        folder / "observations.csv", index=False, lineterminator="\n")
    new.dosing[["subject_id", "cycle", "start_h", "end_h", "dose", "dose_unit"]].to_csv(
        folder / "dosing.csv", index=False, lineterminator="\n")

    # 4. landmark predictions from the files (as `bayes-blina predict` reads them)
    days = [float(d) for d in args.days.split(",") if d.strip()]
    ds = read_landmark_inputs(str(folder / "subjects.csv"), str(folder / "observations.csv"),
                              str(folder / "dosing.csv"))
    pred = predict_landmark(stored, ds, landmark_days=days, prob=0.9, seed=args.seed)
    outcome = dict(zip(truth["patients"]["subject_id"], truth["patients"]["response"]))
    pred.insert(3, "true_response", pred["subject_id"].map(outcome))
    pred.to_csv(out / "landmark.csv", index=False, float_format="%.4g", lineterminator="\n")
    show = pred.pivot(index="subject_id", columns="landmark_day", values="p_cr")
    show.columns = [f"day {d:g}" for d in show.columns]
    show.insert(0, "CR", pd.Series(outcome))
    print("P(CR) by landmark day:\n" + show.round(3).to_string())
    print(f"wrote {out / 'landmark.csv'} and {folder}/")

    # 5. PSIS-LOO of the CR part: with against without the biomarkers (same data)
    if args.loo:
        from bayes_blina.checks.loo import loo_table
        from bayes_blina.data import read_dataset
        from bayes_blina.inference import fit
        from bayes_blina.store import save_fit

        spec = stored.spec
        base_spec = spec.model_copy(update={
            "name": spec.name + "-covariates-only",
            "options": {**spec.options, "biomarkers": []},
            "priors": {k: v for k, v in spec.priors.items() if not k.startswith(("beta_", "tcell_", "cyt_"))}})
        data = read_dataset(stored.provenance["data"]["origin"])
        base = fit(base_spec, data)
        base_path = save_fit(base, out / "fit-covariates-only", force=True)
        per_fit, comparison = loo_table({"joint": stored, "covariates only": load_fit(base_path)}, "cr")
        text = format_table(per_fit, "md", caption="PSIS-LOO of the CR part (log-likelihood 'cr')")
        text += "\n" + format_table(comparison, "md", caption="comparison (elpd difference and its SE)")
        (out / "loo.md").write_text(text, encoding="utf-8")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
