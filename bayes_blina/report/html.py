"""One self-contained HTML page reporting one or more stored fits.

For each fit: the data (name, hash, rows used and left out with reasons), the model (family,
options, spec text), the priors, the convergence verdict (a loud banner when the fit failed the
gate) with the slowest quantities and their rank plots, the posterior summary, the checks (CR
predictive check for response fits; the censoring-aware VPC for trajectory fits, and one per trajectory part of a joint fit
(:mod:`bayes_blina.joint.parts`); PSIS-LOO with Pareto k and LOO-PIT for every fit with a
pointwise log-likelihood) and the figures of the family (for a joint fit with T-cell expansion also
P(CR) against the expansion by regimen). Several fits of the same data also get a LOO comparison
table.

The page needs nothing outside itself: figures are embedded as base64 PNG or SVG ``<img>``
elements, the style sheet is inline, and a Content-Security-Policy forbids loading anything else
(``default-src 'none'``; images only from ``data:`` URIs). One small inline script (allowed by its
SHA-256 hash) counts the images the browser decoded and any error events, and writes them into the
page's footer (``#render-check``); the browser test reads them back.

A part that cannot be computed for a reason the package knows (the dataset is not available, the
family has no such check) is replaced by a visible note saying why; it is never silently left out.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from bayes_blina.errors import BayesBlinaError, SpecError

__all__ = ["RENDER_CHECK_SCRIPT", "build_report", "figure_html", "fit_section", "resolve_dataset", "table_html",
           "write_report"]

#: The page's only script: counts decoded images and error events into ``#render-check``.
RENDER_CHECK_SCRIPT = (
    "(function(){var errs=[];"
    "window.addEventListener('error',function(e){errs.push(e.message||((e.target&&e.target.tagName)||'error'));},true);"
    "document.addEventListener('securitypolicyviolation',function(e){errs.push('blocked '+e.blockedURI);});"
    "var ce=console.error;console.error=function(){errs.push('console.error');return ce.apply(console,arguments);};"
    "window.addEventListener('load',function(){var im=document.images,ok=0;"
    "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0){ok++;}}"
    "var el=document.getElementById('render-check');if(!el){return;}"
    "el.setAttribute('data-images',String(im.length));el.setAttribute('data-decoded',String(ok));"
    "el.setAttribute('data-errors',String(errs.length));"
    "el.textContent='Render check: '+ok+' of '+im.length+' figures decoded, '+errs.length+' errors'"
    "+(errs.length?': '+errs.join('; '):'')+'.';});})();"
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0 auto;max-width:1180px;
padding:0 1.2em 3em;color:#1b1b1b;line-height:1.4}
h1{font-size:1.6em;margin:.8em 0 .2em}h2{font-size:1.3em;border-bottom:2px solid #ccd;margin-top:2em}
h3{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;font-size:.82em;margin:.4em 0 1em}
th,td{border:1px solid #ccd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#eef;text-align:center}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.flag td{background:#fff0d0}
caption{caption-side:top;text-align:left;font-weight:600;padding:2px 0}
pre{background:#f5f5f8;border:1px solid #dde;padding:.6em;overflow-x:auto;font-size:.8em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#444}
.banner{padding:.8em 1em;margin:1em 0;border-radius:4px;font-weight:600}
.banner.failed{background:#b00020;color:#fff;font-size:1.15em;border:3px solid #600}
.banner.passed{background:#e3f4e3;color:#124d12;border:1px solid #8c8}
.note{background:#fff8e0;border-left:4px solid #e0a000;padding:.4em .8em;margin:.6em 0}
.meta{color:#555;font-size:.85em}details{margin:.5em 0}summary{cursor:pointer;color:#224}
#render-check{color:#777;font-size:.8em;margin-top:3em}
"""


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(RENDER_CHECK_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; "
            "base-uri 'none'; form-action 'none'")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower() or "fit"


# ------------------------------------------------------------------------------------ elements
def _cell(v: Any, digits: int) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return ""
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.3g}"
    if v is None:
        return ""
    return str(v)


_NUM = ' class="num"'


def table_html(df: pd.DataFrame, *, caption: str | None = None, digits: int = 3, table_id: str | None = None,
               flag: Callable[[pd.Series], bool] | None = None) -> str:
    """An HTML table of ``df`` (numbers with ``digits`` decimals, like the Markdown tables).

    Parameters
    ----------
    df : DataFrame
    caption : str, optional
    digits : int
    table_id : str, optional
        ``id`` attribute (tests and links find the table by it).
    flag : callable, optional
        Rows for which it returns true are highlighted (``class="flag"``).
    """
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cls = ' class="flag"' if flag is not None and bool(flag(row)) else ""
        cells = []
        for v in row.to_numpy(dtype=object):
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            cells.append(f"<td{_NUM if num else ''}>{_e(_cell(v, digits))}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    ident = f' id="{_e(table_id)}"' if table_id else ""
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f"<table{ident}>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure_html(fig, *, caption: str, fmt: str = "png", name: str = "figure", dpi: int = 110) -> str:
    """An embedded figure: ``<figure><img src="data:..."></figure>`` (the matplotlib figure is closed).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    caption : str
    fmt : {"png", "svg"}
    name : str
        ``data-figure`` attribute of the image.
    dpi : int
        PNG resolution.
    """
    import matplotlib.pyplot as plt

    if fmt not in ("png", "svg"):
        raise SpecError(f"embedded figure format must be png or svg (found {fmt!r})")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    mime = "image/png" if fmt == "png" else "image/svg+xml"
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" data-figure="{_e(name)}" src="data:{mime};base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _pre(text: str) -> str:
    return f"<pre>{_e(text)}</pre>"


# ------------------------------------------------------------------------------------ datasets
def resolve_dataset(stored, datasets: Sequence = ()) -> tuple[Any, str]:
    """The fit's dataset: one of ``datasets`` with the fit's data hash, else its recorded origin
    (a bundled name or a folder) if that still has the same hash.

    Returns
    -------
    dataset or None, str
        The dataset, and how it was found (or why not).
    """
    want = stored.provenance["data"]["sha256"]
    for ds in datasets:
        if ds.sha256() == want:
            return ds, f"given ({ds.origin or ds.name})"
    origin = str(stored.provenance["data"].get("origin") or "")
    source = origin[len("bundled:"):] if origin.startswith("bundled:") else origin
    if source and (origin.startswith("bundled:") or Path(source).is_dir()):
        from bayes_blina.data import read_dataset

        try:
            ds = read_dataset(source)
        except BayesBlinaError as err:
            return None, f"recorded origin {origin!r} cannot be read ({err})"
        if ds.sha256() == want:
            return ds, f"recorded origin {origin}"
        return None, f"recorded origin {origin!r} now holds different data (sha256 {ds.sha256()[:12]})"
    return None, f"recorded origin {origin!r} is not available; pass the dataset with --data"


# ------------------------------------------------------------------------------------ sections
@dataclass
class Section:
    """One fit's part of the report."""

    name: str
    anchor: str
    family: str
    passed: bool
    html: str
    n_figures: int = 0
    parts: list[str] = field(default_factory=list)


def _data_part(stored, dataset_note: str) -> str:
    d = stored.provenance["data"]
    use = d.get("use", {}) or {}
    out = ["<h3>Data</h3>", table_html(pd.DataFrame([
        {"item": "dataset", "value": d.get("name", "")}, {"item": "origin", "value": d.get("origin", "")},
        {"item": "sha256", "value": d.get("sha256", "")}, {"item": "dataset for checks", "value": dataset_note},
    ]), table_id=f"{_anchor(stored.path.name)}-data")]
    if "rows_used" in use:
        out.append(_pre(f"observation rows used: {use['rows_used']} of {use.get('rows_total', '?')} "
                        f"({use.get('subjects_used', '?')} subjects, {use.get('events_used', '?')} dosing events)"))
        cens = use.get("censored") or {}
        if cens:
            out.append(table_html(pd.DataFrame([{"analyte": a, **c} for a, c in cens.items()]),
                                  caption="rows used and censored rows, per analyte",
                                  table_id=f"{_anchor(stored.path.name)}-censored"))
        left = use.get("rows_left_out") or []
        out.append(table_html(pd.DataFrame([{"reason": r.get("reason", ""), "rows": r.get("n_rows", 0)}
                                            for r in left], columns=["reason", "rows"]),
                              caption="observation rows left out, with reasons" + ("" if left else ": none"),
                              table_id=f"{_anchor(stored.path.name)}-left-out"))
    if "patients_used" in use or "aggregate_rows_used" in use:
        out.append(_pre(f"patient-level responses used: {use.get('patients_used', 0)}; "
                        f"patients left out: {len(use.get('patients_left_out') or [])}"))
        used = use.get("aggregate_rows_used") or []
        if used:
            out.append(table_html(pd.DataFrame(used), caption="published rows used",
                                  table_id=f"{_anchor(stored.path.name)}-aggregates-used"))
        notused = [r for r in use.get("aggregate_rows", []) if not r.get("used", True)]
        if notused:
            out.append(table_html(pd.DataFrame([{k: r.get(k, "") for k in ("study", "population", "family",
                                                                             "reason")} for r in notused]),
                                  caption="published rows not used, with reasons",
                                  table_id=f"{_anchor(stored.path.name)}-aggregates-not-used"))
    other = {k: v for k, v in use.items() if k not in ("censored", "rows_left_out", "aggregate_rows",
                                                        "aggregate_rows_used", "patients_left_out")}
    record = _pre(json.dumps(other, indent=1, default=str))
    out.append(f"<details><summary>complete record of the data use</summary>{record}</details>")
    return "".join(out)


def _model_part(stored) -> str:
    m = stored.provenance["model"]
    res = m.get("resolved", {})
    opts = pd.DataFrame([{"option": k, "value": json.dumps(v, default=str) if not isinstance(v, str) else v}
                         for k, v in (res.get("options") or {}).items()], columns=["option", "value"])
    pri = pd.DataFrame([{"prior": k, "distribution": v.get("dist", ""),
                         "parameters": ", ".join(f"{p}={q}" for p, q in v.items() if p != "dist")}
                        for k, v in (res.get("priors") or {}).items()], columns=["prior", "distribution", "parameters"])
    s = stored.provenance.get("sampler", {})
    a = _anchor(stored.path.name)
    return ("<h3>Model</h3>"
            + _pre(f"spec {m.get('name', '')} (family {m.get('family', '')}); {m.get('spec_path', '') or 'no file'}\n"
                   f"sampler: {s.get('backend_used', '')}, {s.get('chains', '?')} chains x {s.get('draws', '?')} draws "
                   f"({s.get('tune', '?')} tuning), seed {stored.provenance.get('seed', '')}")
            + table_html(opts, caption="options", table_id=f"{a}-options")
            + "<h3>Priors</h3>" + table_html(pri, caption="priors (defaults of the family, overridden by the spec)",
                                               table_id=f"{a}-priors")
            + (f"<details><summary>spec text</summary>{_pre(m.get('spec_text', ''))}</details>"
               if m.get("spec_text") else ""))


def _verdict_part(stored, verdict) -> str:
    from bayes_blina.report.tables import UNCONVERGED_BANNER

    a = _anchor(stored.path.name)
    d = verdict.to_dict()
    rows = pd.DataFrame([
        {"check": "max R-hat", "value": d["max_rhat"], "threshold": d["thresholds"].get("max_rhat"),
         "worst": d["worst"].get("rhat", "")},
        {"check": "min bulk ESS", "value": d["min_ess_bulk"], "threshold": d["thresholds"].get("min_ess_bulk"),
         "worst": d["worst"].get("ess_bulk", "")},
        {"check": "min tail ESS", "value": d["min_ess_tail"], "threshold": d["thresholds"].get("min_ess_tail"),
         "worst": d["worst"].get("ess_tail", "")},
        {"check": "divergences", "value": d["n_divergent"], "threshold": d["thresholds"].get("max_divergences"),
         "worst": ""},
        {"check": "min E-BFMI", "value": d["min_bfmi"], "threshold": d["thresholds"].get("min_bfmi"), "worst": ""},
    ], dtype=object)
    if verdict.passed:
        banner = (f'<div class="banner passed" data-verdict="passed">Convergence gate PASSED '
                  f"({verdict.n_chains} chains x {verdict.n_draws} draws).</div>")
    else:
        banner = (f'<div class="banner failed" role="alert" data-verdict="failed">{_e(UNCONVERGED_BANNER)}'
                  f"<ul>{''.join(f'<li>{_e(f)}</li>' for f in verdict.failures)}</ul></div>")
    return "<h3>Diagnostics</h3>" + banner + table_html(rows, caption="convergence gate (re-judged from the "
                                                                      "stored posterior)", table_id=f"{a}-verdict")


def _slowest_part(stored, a, fig, k: int = 4) -> str:
    """The ``k`` slowest-mixing quantities (bulk ESS) with their rank plots: what a reviewer looks
    at first, whether or not the gate passed."""
    from bayes_blina.checks.slowest import slowest_draws, slowest_quantities
    from bayes_blina.report.figures import rank_figure

    table = slowest_quantities(stored.idata, k=k)
    if table.empty:
        return _note("no quantity with finite diagnostics to rank")
    shown = table.drop(columns=["variable", "index"])
    return ("<h4>Slowest quantities</h4>"
            + table_html(shown, caption=f"the {len(table)} posterior quantities with the smallest bulk ESS",
                         table_id=f"{a}-slowest")
            + fig(rank_figure(slowest_draws(stored.idata, table)),
                  f"rank plots (fractional-rank ECDF per chain with its simultaneous envelope) of the "
                  f"{len(table)} slowest quantities; a chain that leaves the envelope mixes badly", "ranks"))


def _loo_var(stored) -> str | None:
    ll = stored.idata.log_likelihood if "log_likelihood" in stored.idata.children else None
    if ll is None or not ll.data_vars:
        return None
    names = list(ll.data_vars)
    for v in ("y", "cr"):
        if v in names:
            return v
    return names[0] if len(names) == 1 else None


def fit_section(stored, *, name: str | None = None, datasets: Sequence = (), prob: float = 0.95,
                interval: str = "eti", check_prob: float = 0.9, vpc_bins: int | Sequence[float] = 10,
                vpc_draws: int = 500, fig_format: str = "png", allow_unconverged: bool = False) -> Section:
    """The report section of one stored fit (see the module docstring).

    Parameters
    ----------
    stored : Fit
    name : str, optional
        Section title (default: the fit folder's name).
    datasets : sequence of Dataset
        Candidate datasets for checks that need the data (matched by hash; else the fit's recorded
        origin is tried).
    prob, interval
        Posterior table intervals.
    check_prob : float
        Predictive interval probability of the checks.
    vpc_bins : int or sequence of float
        VPC time bins (quantile bins, or edges).
    vpc_draws : int
        Replicated data sets of the VPC.
    fig_format : {"png", "svg"}
    allow_unconverged : bool
        Report a fit that failed the convergence gate (with a loud banner) instead of refusing.

    Raises
    ------
    ConvergenceError
        If the fit failed the gate and ``allow_unconverged`` is false.
    """
    from bayes_blina.report.tables import UNCONVERGED_BANNER, gate_or_raise, summarize_fit

    name = name or stored.path.name
    a = _anchor(name)
    verdict = stored.verdict
    gate_or_raise(verdict, allow_unconverged)
    dataset, ds_note = resolve_dataset(stored, datasets)
    fam = stored.family_name
    state = "passed" if verdict.passed else "failed"
    parts = [f'<section id="fit-{a}" data-family="{_e(fam)}" data-verdict="{state}">',
             f"<h2>{_e(name)}: {_e(stored.provenance['model'].get('name', ''))} ({_e(fam)})</h2>",
             f'<p class="meta">{_e(stored.path)}; fitted {_e(stored.provenance.get("created", ""))} with '
             f'bayes_blina {_e(stored.provenance.get("package", {}).get("version", ""))}</p>']
    banner = None if verdict.passed else UNCONVERGED_BANNER
    parts.append(_verdict_part(stored, verdict))
    n_fig = 0

    def fig(f, caption, key):
        nonlocal n_fig
        n_fig += 1
        return figure_html(f, caption=caption + (f" - {banner}" if banner else ""), fmt=fig_format, name=f"{a}-{key}")

    parts.append(_slowest_part(stored, a, fig))
    parts.append(_data_part(stored, ds_note))
    parts.append(_model_part(stored))
    sec_parts = ["verdict", "ranks", "data", "model", "priors"]

    # posterior summary
    df = summarize_fit(stored, prob=prob, interval=interval, allow_unconverged=True)
    cap = (f"posterior summary, {prob:.0%} {'HDI' if interval == 'hdi' else 'equal-tailed'} intervals"
           + (f" - {banner}" if banner else ""))
    parts.append("<h3>Posterior</h3>" + (f'<div class="banner failed">{_e(banner)}</div>' if banner else "")
                 + table_html(df, caption=cap, table_id=f"{a}-posterior"))
    sec_parts.append("posterior")

    # checks: those the family declares (ModelFamily.report_checks)
    parts.append("<h3>Checks</h3>")
    ctx = _Ctx(stored=stored, dataset=dataset, ds_note=ds_note, anchor=a, prob=prob, check_prob=check_prob,
               vpc_bins=vpc_bins, vpc_draws=vpc_draws, fig=fig, sec_parts=sec_parts)
    from bayes_blina.families import family_class

    family = family_class(fam)
    for key in family.report_checks:
        parts.append(CHECKS[key](ctx))
    if not family.report_checks:
        parts.append(_note(f"no predictive check for family {fam!r} in this report yet"))
    parts.append(_loo_part(stored, a, fig))
    sec_parts.append("loo")
    parts.append(_sensitivity_part(stored, a))
    sec_parts.append("sensitivity")

    # family figures
    parts.append("<h3>Figures</h3>")
    n_before = n_fig
    if any(str(v).startswith("or_") for v in stored.idata.posterior.data_vars):
        from bayes_blina.report.plots import odds_ratio_figure, odds_ratio_table

        ort = odds_ratio_table(stored.idata, prob=prob)
        parts.append(table_html(ort, caption=f"odds ratios of CR ({prob:.0%} and 50% intervals)",
                                table_id=f"{a}-odds-ratios"))
        parts.append(fig(odds_ratio_figure(ort), "odds ratios of CR for the biomarker links", "odds-ratios"))
        sec_parts.append("odds-ratios")
    for key in family.report_figures:
        parts.append(FIGURES[key](ctx))
    if n_fig == n_before:
        parts.append(_note("no further figures for this family"))
    parts.append("</section>")
    return Section(name=name, anchor=f"fit-{a}", family=fam, passed=verdict.passed, html="".join(parts),
                   n_figures=n_fig, parts=sec_parts)


@dataclass
class _Ctx:
    """What a report part of one fit needs (the fit, its data and the report's settings)."""

    stored: Any
    dataset: Any
    ds_note: str
    anchor: str
    prob: float
    check_prob: float
    vpc_bins: int
    vpc_draws: int
    fig: Callable
    sec_parts: list[str]


def _check_response_ppc(c: _Ctx) -> str:
    from bayes_blina.checks.response_ppc import response_ppc
    from bayes_blina.report.plots import response_fit_figure, response_fit_table

    stored = c.stored
    ppc = response_ppc(stored.idata, factors=stored.options.get("factors", []), prob=c.check_prob,
                       seed=stored.spec.sampler.seed)
    out = table_html(ppc, caption=f"posterior predictive check of CR: observed vs predicted responders, "
                                  f"{c.check_prob:.0%} predictive intervals (ppp: two-sided posterior "
                                  "predictive p-value)", table_id=f"{c.anchor}-ppc",
                     flag=lambda r: r["ppp"] < 0.05)
    c.sec_parts.append("ppc")
    if "p_agg" in stored.idata.posterior:
        rt = response_fit_table(stored, prob=c.prob)
        out += c.fig(response_fit_figure(rt), "CR by published row: observed (exact interval) beside the "
                                              "model's fitted rate", "response-forest")
    return out


def _check_vpc(c: _Ctx) -> str:
    stored = c.stored
    if not ("constant_data" in stored.idata.children and "obs_time_h" in stored.idata.constant_data):
        return _note("no VPC: the fit holds no observation times")
    c.sec_parts.append("vpc")
    return _vpc_part(stored, c.dataset, c.anchor, c.vpc_bins, c.vpc_draws, c.check_prob, c.fig)


def _check_joint_vpc(c: _Ctx) -> str:
    return _joint_vpc_parts(c.stored, c.dataset, c.anchor, c.vpc_bins, c.vpc_draws, c.check_prob, c.fig,
                            c.sec_parts)


def _figures_pulse(c: _Ctx) -> str:
    return _pulse_figures(c.stored, c.dataset, c.ds_note, c.check_prob, c.fig)


def _figures_pcr_expansion(c: _Ctx) -> str:
    if "beta_tcell_expansion" not in c.stored.idata.posterior:
        return ""
    c.sec_parts.append("pcr-expansion")
    return _pcr_expansion_part(c.stored, c.prob, c.fig)


def _check_survival_curves(c: _Ctx) -> str:
    from bayes_blina.checks.survival_curves import survival_curve_table
    from bayes_blina.report.plots import survival_figure

    stored = c.stored
    family = stored.family
    kept = [f for f in family.options.covariates if f"x_{f}" in stored.idata.constant_data]
    by = kept[0] if kept else None  # the first covariate factor the fit kept: one curve per level
    table = survival_curve_table(stored, by=by, prob=c.check_prob)
    inside = table["inside"].dropna()
    c.sec_parts.append("survival-curves")
    return (c.fig(survival_figure(table), f"Kaplan-Meier estimate (steps, 95% band) beside the model's survival "
                                         f"of the same patients ({c.check_prob:.0%} interval)"
                                         + (f", by {by}" if by else ""), "survival-curves")
            + _pre(f"Kaplan-Meier estimate inside the model's interval at {int(inside.sum())} of {len(inside)} "
                   "grid times with patients at risk"))


#: Predictive checks a family may declare in ``report_checks``, by name.
CHECKS: dict[str, Callable[[_Ctx], str]] = {
    "response_ppc": _check_response_ppc, "vpc": _check_vpc, "joint_vpc": _check_joint_vpc,
    "survival_curves": _check_survival_curves,
}
#: Family figures a family may declare in ``report_figures``, by name.
FIGURES: dict[str, Callable[[_Ctx], str]] = {
    "pulse_figures": _figures_pulse, "pcr_expansion": _figures_pcr_expansion,
}


def _vpc_part(stored, dataset, a, bins, n_draws, prob, fig, *,
              title: str = "Visual predictive check (censoring-aware)", key: str = "vpc") -> str:
    from bayes_blina.checks.vpc import vpc_from_fit
    from bayes_blina.report.plots import vpc_figure

    try:
        vpc = vpc_from_fit(stored, dataset, bins=bins, prob=prob, n_draws=n_draws)
    except BayesBlinaError as err:
        return f"<h4>{_e(title)}</h4>" + _note(f"VPC not shown: {err}")
    acc = pd.DataFrame(vpc.attrs["accounting"])
    left = vpc.attrs.get("rows_left_out") or []
    src = vpc.attrs.get("limit_sources") or {}
    return (f"<h4>{_e(title)}</h4>"
            + table_html(acc, caption="every row the fit used is in the VPC: rows and censored rows per analyte, "
                                      "in the table and in the fit's record", table_id=f"{a}-vpc-accounting")
            + _pre("rows the fit left out (not in the VPC): "
                   + ("; ".join(f"{r['n_rows']} - {r['reason']}" for r in left) if left else "none")
                   + "\nlimits of replicated rows: " + ", ".join(f"{k}: {v}" for k, v in src.items()))
            + fig(vpc_figure(vpc, xaxis="bin"), f"VPC: observed percentiles (points; open triangles: only known to "
                                                f"be below the limit) against {prob:.0%} predictive intervals of the "
                                                f"same percentiles from {vpc.attrs['n_replicates']} replicated data "
                                                "sets censored like the data; bottom: fraction below the limit; "
                                                "circled: outside the interval", key)
            + "<details><summary>VPC table</summary>"
            + table_html(vpc.drop(columns=["observed"]), caption="VPC per analyte, time bin and statistic "
                                                                 "(observed_label: '< x' = censored percentile)",
                         table_id=f"{a}-vpc", flag=lambda r: bool(r["outside"]))
            + "</details>")


def _joint_vpc_parts(stored, dataset, a, bins, n_draws, prob, fig, sec_parts: list[str]) -> str:
    """One censoring-aware VPC per trajectory part of a joint fit (:mod:`bayes_blina.joint.parts`)."""
    from bayes_blina.joint.parts import PART_LABELS, fit_parts, part_view

    names = fit_parts(stored)
    if not names:
        return _note("no predictive check of trajectories: this joint fit has no trajectory parts")
    out = []
    for p in names:
        view = part_view(stored, p)
        out.append(_vpc_part(view, dataset, f"{a}-{p}", bins, n_draws, prob, fig,
                             title=f"{PART_LABELS.get(p, p)} ({p} part): VPC", key=f"vpc-{p}"))
        sec_parts.append(f"vpc-{p}")
    return "".join(out)


def _pcr_expansion_part(stored, prob, fig) -> str:
    """P(CR) against T-cell expansion by regimen (:mod:`bayes_blina.joint.cr_curves`)."""
    from bayes_blina.joint.cr_curves import fitted_biomarkers, pcr_curve
    from bayes_blina.report.figures import pcr_curve_figure

    title = "P(CR) against T-cell expansion by regimen"
    try:
        curve = pcr_curve(stored, "tcell_expansion", by="regimen", prob=prob)
        patients = fitted_biomarkers(stored)
    except BayesBlinaError as err:
        return f"<h4>{_e(title)}</h4>" + _note(f"P(CR) curve not shown: {err}")
    by = curve.attrs.get("by")
    return (f"<h4>{_e(title)}</h4>"
            + fig(pcr_curve_figure(curve, patients=patients, title=title),
                  f"{title}: posterior median and {prob:.0%} credible bands of P(CR) over the day-29 CD3 fold "
                  + ("change, one curve per regimen" if by else "change (regimen not in the fit's CR part: one "
                                                                "curve at the covariates' mean)")
                  + "; other biomarkers held at the fitted patients' median; ticks: fitted patients' posterior "
                    "mean expansion (CR at the top, no CR at the bottom)", "pcr-expansion"))


def _sensitivity_part(stored, a) -> str:
    from bayes_blina.checks.sensitivity import power_scaling_sensitivity

    try:
        df = power_scaling_sensitivity(stored)
    except BayesBlinaError as err:
        return _note(f"prior sensitivity not shown: {err}")
    flagged = int((df["diagnosis"] != "").sum())
    return ("<h4>Prior and likelihood sensitivity</h4>"
            + table_html(df, caption=f"power-scaling sensitivity (cumulative Jensen-Shannon distance; scaled "
                                     f"priors: {', '.join(df.attrs['scaled_priors'])}); flagged at "
                                     f"{df.attrs['threshold']:g}: prior-data conflict (both sensitive) or "
                                     f"prior-dominated (prior only); {flagged} flagged",
                         table_id=f"{a}-sensitivity", flag=lambda r: r["diagnosis"] != ""))


def _loo_part(stored, a, fig) -> str:
    from bayes_blina.checks.loo import loo_pit, loo_table
    from bayes_blina.report.figures import loo_pit_figure

    v = _loo_var(stored)
    if v is None:
        return _note("LOO not shown: the fit has no single pointwise log-likelihood variable")
    try:
        per_fit, _ = loo_table({stored.path.name: stored}, v)
    except BayesBlinaError as err:
        return _note(f"LOO not shown: {err}")
    out = ["<h4>PSIS-LOO</h4>",
           table_html(per_fit, caption=f"PSIS-LOO of log-likelihood {v!r} (Pareto k: good <= 0.5 < ok <= 0.7 < "
                                       "bad <= 1 < very bad)", table_id=f"{a}-loo",
                      flag=lambda r: (r["k_bad"] + r["k_very_bad"]) > 0)]
    bad = int(per_fit["k_bad"].iloc[0] + per_fit["k_very_bad"].iloc[0])
    if bad:
        out.append(_note(f"{bad} observations have Pareto k > 0.7: the LOO estimate is unreliable for them"))
    targets = [(stored, v, "", "loo-pit")]
    from bayes_blina.families import family_class

    if family_class(stored.family_name).loo_pit_by_part:  # CR is binary: each trajectory part's rows
        from bayes_blina.joint.parts import PART_LABELS, fit_parts, part_view

        targets = []
        for p in fit_parts(stored):
            view = part_view(stored, p)
            targets.append((view, _loo_var(view), f" ({PART_LABELS.get(p, p)}, {p} part)", f"loo-pit-{p}"))
    for target, var, label, key in targets:
        try:
            pit = loo_pit(target, var_name=var)
        except BayesBlinaError as err:
            out.append(_note(f"LOO-PIT{label} not shown: {err}"))
            continue
        if len(pit) < 10:
            out.append(table_html(pit, caption=f"LOO-PIT values{label} (too few observations for a calibration "
                                               "plot)", table_id=f"{a}-{key}"))
        else:
            out.append(fig(loo_pit_figure(pit), f"LOO-PIT{label} of {len(pit)} observations "
                                                f"({pit.attrs['n_randomised']} randomised: censored or discrete); "
                                                "a calibrated model stays in the band", key))
    return "".join(out)


def _pulse_figures(stored, dataset, ds_note, prob, fig) -> str:
    from bayes_blina.report.plots import (
        _stored_observations,
        cytokine_peak_figure,
        cytokine_peak_table,
        observed_peaks,
        responder_band_table,
        responder_bands_figure,
    )

    out = []
    peaks = cytokine_peak_table(stored, prob=prob, seed=stored.spec.sampler.seed)
    obs_peaks = observed_peaks(stored)
    out.append(table_html(peaks, caption=f"peak by starting dose and dose step: typical patient ({prob:.0%} CrI) "
                                         "and a new patient's range", table_id=f"{_anchor(stored.path.name)}-peaks"))
    out.append(fig(cytokine_peak_figure(peaks, obs_peaks), "peak by starting dose and dose step (like the adult "
                                                           "Fig 6), with the observed per-patient peaks", "peaks"))
    if dataset is None:
        out.append(_note(f"responder-status bands not shown: the fit's dataset is needed ({ds_note})"))
        return "".join(out)
    try:
        bands = responder_band_table(stored, dataset, prob=prob, seed=stored.spec.sampler.seed)
    except BayesBlinaError as err:
        out.append(_note(f"responder-status bands not shown: {err}"))
        return "".join(out)
    subj = dataset.subjects
    resp = pd.to_numeric(subj["response"], errors="coerce")
    groups = dict(zip(subj["subject_id"].astype(str),
                      np.where(resp == 1, "responders", np.where(resp == 0, "non-responders", "response unknown"))))
    out.append(fig(responder_bands_figure(bands, _stored_observations(stored), groups),
                   "trajectories by responder status over cycles 1-2 (median patient's curve, "
                   f"{prob:.0%} CrI) with the data (open triangles: below the limit, at the limit)", "responder-bands"))
    return "".join(out)


# ------------------------------------------------------------------------------------ page
def _comparison_part(stored_fits: dict[str, Any]) -> str:
    from bayes_blina.checks.loo import loo_table

    groups: dict[str, list[str]] = {}
    for n, f in stored_fits.items():
        groups.setdefault(f.provenance["data"]["sha256"], []).append(n)
    out = []
    for h, names in groups.items():
        if len(names) < 2:
            continue
        vars_ = {n: _loo_var(stored_fits[n]) for n in names}
        common = set(vars_.values())
        if len(common) != 1 or None in common:
            out.append(_note(f"LOO comparison of {', '.join(names)} not shown: their log-likelihood variables "
                             f"differ ({vars_})"))
            continue
        try:
            per_fit, comp = loo_table({n: stored_fits[n] for n in names}, common.pop())
        except BayesBlinaError as err:
            out.append(_note(f"LOO comparison of {', '.join(names)} not shown: {err}"))
            continue
        out.append(table_html(comp, caption=f"LOO comparison of the fits of data {h[:12]} (elpd differences and their "
                                            "SE; weights: stacking)", table_id=f"loo-comparison-{h[:12]}"))
    if not out:
        return ""
    return '<section id="loo-comparison"><h2>Model comparison</h2>' + "".join(out) + "</section>"


def build_report(fits: dict[str, Any] | Sequence[Any], *, datasets: Sequence = (), title: str | None = None,
                 **section_options) -> str:
    """The HTML page of one or more stored fits.

    Parameters
    ----------
    fits : dict of name -> Fit, or sequence of Fit
        Names default to the fit folders' names.
    datasets : sequence of Dataset
        Candidate datasets for the data-dependent checks (matched to fits by hash).
    title : str, optional
    **section_options
        Passed to :func:`fit_section` (``prob``, ``interval``, ``check_prob``, ``vpc_bins``,
        ``vpc_draws``, ``fig_format``, ``allow_unconverged``).

    Returns
    -------
    str
        The page.

    Raises
    ------
    ConvergenceError
        If a fit failed the gate and ``allow_unconverged`` is not set.
    """
    from bayes_blina.report.tables import UNCONVERGED_BANNER

    if not isinstance(fits, dict):
        fits = {f.path.name: f for f in fits}
    if not fits:
        raise SpecError("a report needs at least one fit")
    sections = [fit_section(f, name=n, datasets=datasets, **section_options) for n, f in fits.items()]
    title = title or "bayes_blina report: " + ", ".join(fits)
    failed = [s.name for s in sections if not s.passed]
    toc = table_html(pd.DataFrame([{"fit": s.name, "family": s.family,
                                    "convergence": "PASSED" if s.passed else "FAILED", "figures": s.n_figures,
                                    "data sha256": fits[s.name].provenance["data"]["sha256"][:12]}
                                   for s in sections]), caption="fits in this report", table_id="contents")
    links = "".join(f'<li><a href="#{_e(s.anchor)}">{_e(s.name)}</a></li>' for s in sections)
    top = (f'<div class="banner failed" role="alert" id="unconverged">{_e(UNCONVERGED_BANNER)} '
           f"Failed: {_e(', '.join(failed))}.</div>" if failed else "")
    from importlib.metadata import version

    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_e(_csp())}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style><script>{RENDER_CHECK_SCRIPT}</script></head><body>"
            f"<h1>{_e(title)}</h1>"
            f'<p class="meta">written {_e(created)} by bayes_blina {_e(version("bayes_blina"))}</p>'
            + top + toc + f"<ul>{links}</ul>" + _comparison_part(fits)
            + "".join(s.html for s in sections)
            + '<p id="render-check" data-images="?" data-decoded="?" data-errors="?">Render check: not run '
              "(scripts disabled).</p></body></html>\n")


def write_report(path: str | Path, page: str) -> Path:
    """Write the page atomically."""
    from bayes_blina._atomic import write_text_atomic

    return Path(write_text_atomic(path, page))
