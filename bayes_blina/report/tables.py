"""Posterior summary tables and their CSV, Markdown and LaTeX renderings."""
from __future__ import annotations

from bayes_blina._tree import as_dataset

from typing import Iterable

import numpy as np
import pandas as pd

from bayes_blina.diagnostics import gate_or_raise  # noqa: F401 - re-exported for callers
from bayes_blina.errors import SpecError


def unconverged_banner(fits: list[str] | None = None) -> str:
    """The warning printed above numbers from fits that failed the convergence gate.

    Parameters
    ----------
    fits : list of str, optional
        Names of the failing fits, where several are shown together (``loo``); ``None``: one fit.

    Examples
    --------
    >>> unconverged_banner(["a", "b"])[:55]
    'WARNING: fit(s) a, b FAILED the convergence gate; these'
    """
    who = "this fit" if fits is None else f"fit(s) {', '.join(fits)}"
    return (f"WARNING: {who} FAILED the convergence gate; these numbers are not reliable and must not be "
            "published as they are.")


UNCONVERGED_BANNER = unconverged_banner()


def _flat_name(var: str, coords: dict) -> str:
    if not coords:
        return var
    return f"{var}[{','.join(str(v) for v in coords.values())}]"


def posterior_table(idata, var_names: Iterable[str] | None = None, *, prob: float = 0.95,
                    interval: str = "eti") -> pd.DataFrame:
    """Tidy posterior summary: one row per scalar quantity.

    Parameters
    ----------
    idata : xarray.DataTree
    var_names : iterable of str, optional
        Variables to include (default: all posterior variables).
    prob : float
        Interval probability.
    interval : {"eti", "hdi"}
        Equal-tailed or highest-density interval.

    Returns
    -------
    DataFrame
        Columns ``parameter, mean, sd, median, lower, upper, r_hat, ess_bulk, ess_tail``.
    """
    import arviz as az

    if not 0 < prob < 1:
        raise SpecError(f"prob must be between 0 and 1 (found {prob})")
    if interval not in ("eti", "hdi"):
        raise SpecError(f"interval must be 'eti' or 'hdi' (found {interval!r})")
    post = as_dataset(idata.posterior)
    names = [v for v in (var_names or post.data_vars) if v in post.data_vars]
    sub = post[names]
    with np.errstate(invalid="ignore", divide="ignore"):
        rhat, essb, esst = az.rhat(sub), az.ess(sub, method="bulk"), az.ess(sub, method="tail")
        hdi = az.hdi(sub, prob=prob) if interval == "hdi" else None
    rows = []
    lo_q, hi_q = (1 - prob) / 2, 1 - (1 - prob) / 2
    for v in names:
        da = sub[v]
        extra = [d for d in da.dims if d not in ("chain", "draw")]
        stacked = da.stack(_s=("chain", "draw")).transpose(*extra, "_s")
        values = stacked.values.reshape(-1, stacked.sizes["_s"])
        idx = list(np.ndindex(*[da.sizes[d] for d in extra])) if extra else [()]
        for k, ii in enumerate(idx):
            sel = {d: da.coords[d].values[i] for d, i in zip(extra, ii)}
            x = values[k]
            if interval == "hdi":
                h = hdi[v].sel(sel)
                lo, hi = float(h.sel(ci_bound="lower")), float(h.sel(ci_bound="upper"))
            else:
                lo, hi = np.quantile(x, [lo_q, hi_q])
            rows.append({
                "parameter": _flat_name(v, sel), "mean": x.mean(), "sd": x.std(ddof=1), "median": np.median(x),
                "lower": lo, "upper": hi, "r_hat": float(rhat[v].sel(sel)), "ess_bulk": float(essb[v].sel(sel)),
                "ess_tail": float(esst[v].sel(sel)),
            })
    df = pd.DataFrame(rows)
    df.attrs.update({"prob": prob, "interval": interval})
    return df


def format_table(df: pd.DataFrame, fmt: str = "csv", *, digits: int = 3, caption: str | None = None,
                 banner: str | None = None) -> str:
    """Render a table as ``csv``, ``md`` (Markdown) or ``latex`` text."""
    if fmt not in ("csv", "md", "latex"):
        raise SpecError(f"format must be one of csv, md, latex (found {fmt!r})")

    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            if not np.isfinite(v):
                return ""
            return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
        if isinstance(v, (int, np.integer)):
            return str(v)
        return "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)

    if fmt == "csv":
        text = df.to_csv(index=False, float_format=f"%.{max(digits, 6)}g", lineterminator="\n")
        return (f"# {banner}\n" if banner else "") + text
    cols = list(df.columns)
    body = [[cell(v) for v in row] for row in df.itertuples(index=False)]
    if fmt == "md":
        lines = []
        if banner:
            lines += [f"> **{banner}**", ""]
        if caption:
            lines += [caption, ""]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("| " + " | ".join("---" for _ in cols) + " |")
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
        return "\n".join(lines) + "\n"

    def esc(t: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("<", r"$<$"), (">", r"$>$"), ("[", "{[}"), ("]", "{]}")):
            t = t.replace(a, b)
        return t

    lines = []
    if banner:
        lines.append(f"% {banner}")
    lines += [r"\begin{table}[ht]", r"\centering"]
    if banner:
        lines.append(r"\textbf{" + esc(banner) + r"}\\[4pt]")
    lines.append(r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}")
    lines += [r"\hline", " & ".join(esc(c) for c in cols) + r" \\", r"\hline"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in body]
    lines += [r"\hline", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + esc(caption) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def summarize_fit(stored, *, prob: float = 0.95, interval: str = "eti", allow_unconverged: bool = False,
                  var_names: list[str] | None = None) -> pd.DataFrame:
    """Posterior summary of a stored fit, gated on convergence.

    Raises
    ------
    ConvergenceError
        If the fit fails the convergence gate and ``allow_unconverged`` is false.
    """
    verdict = stored.verdict
    gate_or_raise(verdict, allow_unconverged)
    if var_names is None:
        fam = stored.family
        post = stored.idata.posterior
        # a family names what it can show; what this fit's data left out (one study, a factor
        # with one level: recorded in the data use) is not in the posterior
        var_names = [v for v in fam.summary_vars() if v in post] or None
    df = posterior_table(stored.idata, var_names, prob=prob, interval=interval)
    df.attrs["converged"] = verdict.passed
    return df
