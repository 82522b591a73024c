"""Shared pieces of the benchmark scripts: machine description, child processes with peak memory."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: where the CSV files go; ``BENCH_RESULTS_DIR`` redirects them (``run_all.py --quick`` uses
#: ``results-quick/`` so that a smoke run never replaces real measurements in RESULTS.md)
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR", HERE / "results")).resolve()
REPO = HERE.parent


def machine() -> str:
    """CPU model, cores, memory, Python and OS of this machine."""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:  # pragma: no cover
        mem = ""
    return (f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}")


def versions() -> str:
    """Versions of the libraries that matter for speed."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("pymc", "pytensor", "nutpie", "numpyro", "jax", "pystan", "httpstan", "pymc-extras"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load1() -> float:
    """One-minute load average (other processes on the machine)."""
    return round(os.getloadavg()[0], 2)


def run_child(args: list[str], timeout: float, env: dict | None = None) -> tuple[dict | None, str, float]:
    """Run ``python <args>`` and watch its process tree's resident memory.

    Returns
    -------
    result : dict or None
        The JSON after the child's ``BENCH `` line (None if it printed none).
    error : str
        Last lines of stderr when it failed.
    peak_mb : float
        Peak of the summed resident set size of the child and all its descendants (sampled every
        0.2 s), in MiB.
    """
    import psutil

    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, cwd=REPO)
    peak = [0.0]
    done = threading.Event()

    def watch():
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                rss = 0
                for p in procs:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        done.set()
        return None, f"timed out after {timeout:.0f} s", peak[0]
    done.set()
    t.join(1.0)
    line = next((l for l in out.splitlines() if l.startswith("BENCH ")), None)
    if line is None:
        tail = [l for l in err.strip().splitlines() if l.strip()][-3:]
        return None, " | ".join(tail), peak[0]
    return json.loads(line[6:]), "", peak[0]


def emit(result: dict) -> None:
    """Print a child's result for :func:`run_child`."""
    print("BENCH " + json.dumps(result), flush=True)


def append_csv(path: Path, columns: list[str], row: dict) -> None:
    """Append one row (creating the file with a header).

    If the file's header lacks some of ``columns`` (a newer script), the file is rewritten with the
    missing columns added (empty in the old rows); columns of the file that ``columns`` lacks stay
    empty in the new row.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size:
        with open(path, encoding="utf-8") as fh:
            header = fh.readline().rstrip("\n").split(",")
        missing = [c for c in columns if c not in header]
        if missing:
            import pandas as pd

            df = pd.read_csv(path, dtype=str, keep_default_na=False)
            for c in missing:
                df[c] = ""
            df.to_csv(path, index=False)
            header = header + missing
    else:
        header = list(columns)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(",".join(header) + "\n")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(",".join(_cell(row.get(c, "")) for c in header) + "\n")


def _cell(v) -> str:
    s = "" if v is None else str(v)
    return '"' + s.replace('"', '""') + '"' if ("," in s or '"' in s) else s
