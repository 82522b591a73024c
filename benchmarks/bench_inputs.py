"""Inputs at scale (issue 21): reading, validation, event-time features and data preparation. Not a test.

A canonical dataset folder (``subjects.csv``, ``dosing.csv``, ``observations.csv``) of N patients
with 40 observations each is written by a plain generator (step dosing 5 -> 15 or flat 15, IL-6,
IL-10 and IFN-gamma at 10 times and CD3+ T cells at 10 times, some results below the LLOQ or
between the LOD and the LLOQ). Each step then runs in a fresh process whose peak resident memory is
watched (``_common.run_child``):

``read``
    :func:`bayes_blina.data.read_dataset` on the folder (CSV parsing, validation, unit
    conversion, canonical form).
``features``
    The dataset read, then :func:`bayes_blina.events.time_features` for every observation (events,
    cycles, doses, cumulative exposure).
``prepare-<spec>``
    The dataset read, then the family's ``prepare`` for the bundled spec (``cytokine-core``: pulse
    model data; ``tcell``: expansion curves; ``joint``: windowed biomarker features and CR).
``error``
    The same folder with one bad value written into the *last* row of ``observations.csv``: the
    time to the refusal, and whether the message names that row (``row_named``).

Each child reports its own time for the step and for reading (so ``step_s`` excludes reading for
``features`` and ``prepare-*``). Rows go to ``results/inputs.csv``; RESULTS.md gives, per step, the
log-log slope of time and of peak memory against the number of observations (1 = linear).

    python benchmarks/bench_inputs.py                          # 1,000, 3,000 and 10,000 patients
    python benchmarks/bench_inputs.py --patients 10000 --gb 1  # plus a ~1 GB observations.csv
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, append_csv, emit, load1, now, run_child  # noqa: E402

RESULTS = RESULTS_DIR / "inputs.csv"
COLUMNS = ["run_id", "created", "step", "patients", "observations", "csv_mb", "read_s", "step_s", "peak_mem_mb",
           "row_named", "load1_start", "error"]
STEPS = ["read", "features", "prepare-cytokine-core", "prepare-tcell", "prepare-joint", "error"]
OBS_PER_PATIENT = 40
#: bytes of observations.csv per patient (measured on the generator's output), to size the 1 GB file
BYTES_PER_PATIENT = 1_300


def write_cohort(folder: Path, n: int, seed: int = 1) -> int:
    """Write a canonical dataset of ``n`` patients x 40 observations; returns observations.csv's size."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.char.add("P", np.char.zfill(np.arange(1, n + 1).astype(str), 7))
    step = rng.random(n) < 0.6
    regimen = np.where(step, "5-15", "15")
    age = np.round(rng.uniform(1, 75, n), 1)
    response = (rng.random(n) < 0.4).astype(int)
    with open(folder / "subjects.csv", "w", encoding="utf-8") as fh:
        fh.write("subject_id,study,regimen,age_years,blast_pct,bsa_m2,prior_hsct,refractory,prior_relapses,"
                 "region,response\n")
        blast = np.round(rng.uniform(5, 95, n), 0)
        bsa = np.round(np.clip(0.2 + age / 40, 0.4, 2.2), 2)
        hsct = np.where(rng.random(n) < 0.3, "yes", "no")
        refr = np.where(rng.random(n) < 0.4, "yes", "no")
        rel = rng.integers(0, 3, n)
        for row in zip(ids, regimen, age, blast, bsa, hsct, refr, rel, response):
            fh.write(f"{row[0]},SCALE,{row[1]},{row[2]},{row[3]:g},{row[4]},{row[5]},{row[6]},{row[7]},EU,{row[8]}\n")
    with open(folder / "dosing.csv", "w", encoding="utf-8") as fh:
        fh.write("subject_id,cycle,start_h,end_h,dose,dose_unit\n")
        for sid, s in zip(ids, step):
            if s:
                fh.write(f"{sid},1,0,168,5,ug/m2/day\n{sid},1,168,672,15,ug/m2/day\n")
            else:
                fh.write(f"{sid},1,0,672,15,ug/m2/day\n")
    cyt_t = np.array([-24, 2, 6, 12, 24, 48, 72, 168, 174, 336], float)
    cell_t = np.array([-24, 6, 24, 48, 96, 168, 336, 504, 600, 672], float)
    analytes = [("IL6", "pg/mL", cyt_t, 2.0, 3.0), ("IL10", "pg/mL", cyt_t, 2.0, 4.0),
                ("IFNG", "pg/mL", cyt_t, 2.0, 2.5), ("CD3", "cells/uL", cell_t, None, 6.5)]
    with open(folder / "observations.csv", "w", encoding="utf-8") as fh:
        fh.write("subject_id,analyte,time_h,value,unit,lod,lloq,below\n")
        chunk = 20_000  # patients per block: bounded memory whatever n is
        for lo in range(0, n, chunk):
            block = ids[lo:lo + chunk]
            lines = []
            for code, unit, times, lloq, mu in analytes:
                v = np.exp(rng.normal(mu, 1.2, (len(block), len(times))))
                for i, sid in enumerate(block):
                    for t, x in zip(times, v[i]):
                        if lloq is not None and x < lloq:
                            below = "LLOQ" if x >= 0.5 else "LOD"
                            lines.append(f"{sid},{code},{t:g},,{unit},0.5,{lloq:g},{below}\n")
                        else:
                            lines.append(f"{sid},{code},{t:g},{x:.4g},{unit},,,\n")
            fh.write("".join(lines))
    return (folder / "observations.csv").stat().st_size


def _child(step: str, folder: str) -> None:
    """Run one step in this (fresh) process and emit its timings."""
    import warnings

    warnings.simplefilter("ignore")
    from bayes_blina.data.io import read_dataset
    from bayes_blina.errors import BayesBlinaError

    t0 = time.perf_counter()
    if step == "error":
        try:
            read_dataset(folder)
        except BayesBlinaError as e:
            secs = time.perf_counter() - t0
            text = str(e)
            with open(Path(folder) / "observations.csv", "rb") as fh:
                bad_row = sum(1 for _ in fh) - 1  # data rows are numbered from 1 after the header
            problem = next((line.strip() for line in text.splitlines() if "observations.csv" in line), text)
            emit({"read_s": round(secs, 3), "step_s": round(secs, 3),
                  "row_named": f"row {bad_row}:" in problem, "error": problem[:200]})
            return
        emit({"error": "the bad value was not refused"})
        return
    ds = read_dataset(folder)
    read_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if step == "features":
        from bayes_blina.events import time_features

        time_features(ds.observations, ds.dosing)
    elif step.startswith("prepare-"):
        from bayes_blina.families import get_family
        from bayes_blina.spec import load_spec

        spec = load_spec(step.removeprefix("prepare-"))
        options = dict(spec.resolved()["options"])  # the family's defaults where the spec is silent
        if "analytes" in options:  # the generator's analytes only (CD3 of the T-cell spec's CD3, CD4, CD8)
            options["analytes"] = [a for a in options["analytes"] if a in set(ds.observations["analyte"])]
        get_family(spec.family)(options, spec.priors).prepare(ds)
    emit({"read_s": round(read_s, 3), "step_s": round(time.perf_counter() - t1 if step != "read" else read_s, 3),
          "observations": len(ds.observations)})


def _spoil_last_row(folder: Path) -> None:
    """Replace the value on the last row of observations.csv by text (the file is otherwise intact)."""
    path = folder / "observations.csv"
    with open(path, "rb+") as fh:
        fh.seek(max(0, path.stat().st_size - 400))
        tail = fh.read()
        start = tail.rstrip(b"\n").rfind(b"\n") + 1
        last = tail[start:].rstrip(b"\n").split(b",")
        last[3] = b"high"
        fh.seek(path.stat().st_size - len(tail) + start)
        fh.truncate()
        fh.write(b",".join(last) + b"\n")


def run(patients: list[int], steps: list[str], work: Path, timeout: float, no_report: bool,
        big: int | None = None, big_steps: list[str] | None = None) -> None:
    run_id = now()
    cohorts = [(n, steps) for n in patients] + ([(big, big_steps or steps)] if big else [])
    for n, steps in cohorts:
        folder = work / f"cohort-{n}"
        t0 = time.perf_counter()
        size = write_cohort(folder, n)
        print(f"{n} patients: observations.csv {size / 2**20:.0f} MiB written in {time.perf_counter() - t0:.0f} s",
              flush=True)
        for step in steps:
            if step == "error":
                _spoil_last_row(folder)
            load = load1()
            res, err, peak = run_child([__file__, "--child", step, str(folder)], timeout=timeout)
            row = {"run_id": run_id, "created": now(), "step": step, "patients": n,
                   "observations": n * OBS_PER_PATIENT, "csv_mb": round(size / 2**20, 1),
                   "peak_mem_mb": round(peak, 0), "load1_start": load, **(res or {})}
            if res is None:
                row["error"] = err or "no result"
            append_csv(RESULTS, COLUMNS, row)
            print(f"  {step}: read {row.get('read_s', '')} s, step {row.get('step_s', '')} s, "
                  f"peak {peak:.0f} MiB {row.get('error', '')}", flush=True)
        shutil.rmtree(folder)
    if not no_report:
        import report

        print("wrote", report.write_results_md())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=2, metavar=("STEP", "FOLDER"), help=argparse.SUPPRESS)
    ap.add_argument("--patients", type=int, action="append", help="cohort sizes (default 1000, 3000, 10000)")
    ap.add_argument("--gb", type=float, default=0.0, help="also a cohort whose observations.csv is about this many GB")
    ap.add_argument("--step", action="append", choices=STEPS, help="steps to run (default all)")
    ap.add_argument("--gb-step", action="append", choices=STEPS,
                    help="steps for the --gb cohort (default: read, features, prepare-cytokine-core, error; "
                         "the T-cell and joint preparations of a 1 GB cohort need about 20 GB of memory)")
    ap.add_argument("--work", default=None, help="folder for the generated cohorts (default: a temporary folder)")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    patients = list(args.patients or [1000, 3000, 10_000])
    big = int(args.gb * 2**30 / BYTES_PER_PATIENT) if args.gb else None
    steps = args.step or STEPS
    big_steps = args.gb_step or [s for s in ("read", "features", "prepare-cytokine-core", "error") if s in steps]
    if args.work:
        run(patients, steps, Path(args.work), args.timeout, args.no_report, big, big_steps)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-inputs-") as tmp:
            run(patients, steps, Path(tmp), args.timeout, args.no_report, big, big_steps)


if __name__ == "__main__":
    main()
