"""The self-contained HTML report: its content (sections, numbers equal to the fit's), the
convergence banner, the CLI commands, and rendering in headless Chromium.

Browser check
-------------
No Selenium or Playwright (Playwright needs its own browser download; pyppeteer is unmaintained):
Debian's ``chromium`` runs headless with ``--dump-dom``, which prints the DOM after the page's load
event. The report's one inline script (:data:`bayes_blina.report.html.RENDER_CHECK_SCRIPT`) has by
then written into ``#render-check`` how many ``<img>`` the browser decoded (``naturalWidth > 0``)
and how many error events (failed image decodes, blocked resources, ``console.error``) it saw.
``--enable-logging=stderr --v=0`` also prints every console message to stderr as an
``INFO:CONSOLE`` line (without its level), so the test requires that there are none at all: the
report logs nothing when it is fine. A deliberately broken page shows that both signals fail.

The fixture finds ``/usr/bin/chromium`` (or ``$BAYES_BLINA_CHROMIUM``, or ``chromium`` /
``chromium-browser`` / ``google-chrome`` on PATH); when there is none and the tests run as root
with ``apt-get``, it installs Debian's package (``apt-get install -y chromium``). Otherwise the
browser tests are skipped with the reason, except on CI (``$CI`` set), where they fail.
"""
from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from bayes_blina.errors import ConvergenceError
from bayes_blina.report.html import build_report, write_report
from bayes_blina.report.tables import UNCONVERGED_BANNER, posterior_table
from test_vpc import ANALYTES, synthetic_pulse_dataset, synthetic_pulse_fit

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


# ------------------------------------------------------------------------------------- browser
def _find_chromium() -> str | None:
    env = os.environ.get("BAYES_BLINA_CHROMIUM")
    if env and Path(env).is_file():
        return env
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def _unavailable(reason: str):
    # never a silent skip: `make test` installs Chromium (as root), and the report is checked in it
    pytest.fail(f"headless Chromium is required for the report's browser test: {reason}")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium binary; installs Debian's package when running as root with apt-get."""
    exe = _find_chromium()
    if exe:
        return exe
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        _unavailable("no Chromium found and cannot install it (not root, or no apt-get); "
                     "install Debian's 'chromium' package or set BAYES_BLINA_CHROMIUM")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "chromium"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if res.returncode != 0:  # stale package lists: refresh once and retry
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env, timeout=600)
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    exe = _find_chromium()
    if exe is None:
        _unavailable(f"'apt-get install -y chromium' failed (exit {res.returncode}): {res.stderr[-500:]}")
    return exe


def render(chromium: str, page: Path, profile: Path) -> tuple[str, list[str]]:
    """Load ``page`` in headless Chromium; return the DOM after the load event and the console
    messages."""
    args = [chromium, "--headless", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--no-default-browser-check", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            "--dump-dom", page.resolve().as_uri()]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    res = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"chromium failed ({res.returncode}): {res.stderr[-2000:]}"
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    return res.stdout, console


def render_check(dom: str) -> dict[str, int]:
    m = re.search(r'<p id="render-check"([^>]*)>', dom)
    assert m, "the dumped DOM has no #render-check element"
    attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', m.group(1)))
    assert attrs.get("images", "?").isdigit(), f"the render check did not run: {m.group(0)}"
    return {k: int(v) for k, v in attrs.items()}


# ----------------------------------------------------------------------------------- html parse
class _Tables(HTMLParser):
    """Tables (by id) as lists of rows of cell texts, images, and element ids."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.ids: set[str] = set()
        self.h3: list[str] = []
        self._table, self._row, self._cell, self._h3 = None, None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "table":
            self._table = a.get("id", f"_anon{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""
        elif tag == "img":
            self.images.append(a)
        elif tag == "h3":
            self._h3 = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "h3" and self._h3 is not None:
            self.h3.append(self._h3)
            self._h3 = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._h3 is not None:
            self._h3 += data


def parse(page: str) -> _Tables:
    p = _Tables()
    p.feed(page)
    return p


def frame(parsed: _Tables, table_id: str) -> pd.DataFrame:
    rows = parsed.tables[table_id]
    return pd.DataFrame(rows[1:], columns=rows[0])


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    from bayes_blina.data import read_dataset

    folder = tmp_path_factory.mktemp("report")
    ds, truth = synthetic_pulse_dataset(4)
    good = synthetic_pulse_fit(folder, dataset=ds, truth=truth, seed=4, name="cytokines")
    wide = synthetic_pulse_fit(folder, dataset=ds, truth=truth, seed=4, name="cytokines-wide", sigma_factor=2.0)
    failed = synthetic_pulse_fit(folder, dataset=ds, truth=truth, seed=4, name="unconverged", fail_gate=True)
    return SimpleNamespace(good=good, wide=wide, failed=failed, folder=folder, dataset=read_dataset(folder / "data"))


@pytest.fixture(scope="module")
def report(fits, tmp_path_factory):
    page = build_report({"cytokines": fits.good}, vpc_bins=6, vpc_draws=200)
    path = write_report(tmp_path_factory.mktemp("page") / "report.html", page)
    return SimpleNamespace(page=page, path=path, parsed=parse(page))


# ---------------------------------------------------------------------------------------- content
def test_report_has_every_section_with_the_fits_numbers(fits, report):
    p, stored = report.parsed, fits.good
    assert {"Diagnostics", "Data", "Model", "Priors", "Posterior", "Checks", "Figures"} <= set(p.h3)
    assert "fit-cytokines" in p.ids
    data = frame(p, "cytokines-data").set_index("item")["value"]
    assert data["sha256"] == stored.provenance["data"]["sha256"] and data["dataset"] == "data"
    assert data["dataset for checks"].startswith("recorded origin")
    use = stored.provenance["data"]["use"]
    cens = frame(p, "cytokines-censored").set_index("analyte")
    for a in ANALYTES:
        assert int(cens.loc[a, "rows"]) == use["censored"][a]["rows"]
        assert int(cens.loc[a, "censored"]) == use["censored"][a]["censored"] > 0
    left = frame(p, "cytokines-left-out")
    n_il2 = int((fits.dataset.observations.analyte == "IL2").sum())
    assert left.values.tolist() == [["analyte not modelled (options.analytes)", str(n_il2)]]
    priors = frame(p, "cytokines-priors").set_index("prior")
    resolved = stored.provenance["model"]["resolved"]["priors"]
    assert set(priors.index) == set(resolved)
    assert priors.loc["sigma_obs", "distribution"] == "HalfNormal"
    assert priors.loc["sigma_obs", "parameters"] == "sigma=1.0"
    # posterior table: the fit's own numbers, 3 decimals
    post = frame(p, "cytokines-posterior").set_index("parameter")
    expected = posterior_table(stored.idata, ["sigma_obs", "log_tpeak", "typical_peak"]).set_index("parameter")
    for name in ("sigma_obs[IL6]", "log_tpeak[IL10]", "typical_peak[IL6,flat15_first]"):
        for col in ("median", "lower", "upper"):
            assert post.loc[name, col] == f"{expected.loc[name, col]:.3f}"
    # verdict, VPC accounting, LOO
    assert '<div class="banner passed" data-verdict="passed">' in report.page
    acc = frame(p, "cytokines-vpc-accounting").set_index("analyte")
    for a in ANALYTES:
        assert acc.loc[a, "censored"] == acc.loc[a, "censored_in_fit"] == str(use["censored"][a]["censored"])
    from bayes_blina.checks.loo import loo_table

    loo = frame(p, "cytokines-loo").iloc[0]
    per_fit, _ = loo_table({"cytokines": stored})
    assert loo["elpd_loo"] == f"{per_fit.elpd_loo.iloc[0]:.3f}" and loo["n_obs"] == str(use["rows_used"])
    # figures: VPC, LOO-PIT, peaks (Fig 6), responder bands; all embedded, nothing external
    names = [img["data-figure"] for img in p.images]
    assert names == ["cytokines-ranks", "cytokines-vpc", "cytokines-loo-pit", "cytokines-peaks",
                     "cytokines-responder-bands"]
    # the slowest quantities, with the fit's own diagnostics, beside their rank plots (issue 23)
    from bayes_blina.checks.slowest import slowest_quantities

    slow = frame(p, "cytokines-slowest")
    expected_slow = slowest_quantities(stored.idata, k=4)
    assert slow["quantity"].tolist() == expected_slow["quantity"].tolist()
    assert slow["ess_bulk"].tolist() == [f"{x:.3f}" for x in expected_slow["ess_bulk"]]
    assert all(img["src"].startswith("data:image/png;base64,") for img in p.images)
    assert not re.search(r'(src|href)="(https?:|//|file:)', report.page)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', report.page).group(1)
    assert html.unescape(csp).startswith("default-src 'none'; img-src data:;")
    contents = frame(p, "contents").iloc[0]
    assert contents["convergence"] == "PASSED" and contents["figures"] == "5"


def test_an_unconverged_fit_is_refused_or_reported_under_a_loud_banner(fits):
    with pytest.raises(ConvergenceError, match="failed the convergence gate"):
        build_report({"u": fits.failed})
    page = build_report({"u": fits.failed}, allow_unconverged=True, vpc_bins=4, vpc_draws=50)
    p = parse(page)
    assert 'id="unconverged"' in page and page.count(UNCONVERGED_BANNER) >= 3
    assert '<div class="banner failed" role="alert" data-verdict="failed">' in page
    assert "R-hat" in page.split('data-verdict="failed">', 1)[1][:1500]  # the failures are listed
    assert frame(p, "contents").iloc[0]["convergence"] == "FAILED"
    assert all(UNCONVERGED_BANNER in img["alt"] for img in p.images)  # every figure carries the warning


def test_cli_report_vpc_loo_pit_and_figures(fits, tmp_path):
    from click.testing import CliRunner

    from bayes_blina.cli.common import ErrorHandlingGroup
    from bayes_blina.cli.report import figure, loo_pit_command, report, vpc

    cli = ErrorHandlingGroup("bb")
    for c in (report, vpc, loo_pit_command, figure):
        cli.add_command(c)
    run = CliRunner().invoke
    good, data = str(fits.good.path), str(fits.folder / "data")
    # two fits of the same data: a section each and a LOO comparison
    r = run(cli, ["report", good, str(fits.wide.path), "--out", str(tmp_path / "r.html"), "--data", data,
                  "--bins", "4", "--draws", "50", "--figure-format", "svg"])
    assert r.exit_code == 0, r.output
    p = parse((tmp_path / "r.html").read_text())
    h = fits.good.provenance["data"]["sha256"][:12]
    comp = frame(p, f"loo-comparison-{h}")
    assert comp["fit"].tolist() == ["cytokines", "cytokines-wide"]  # the true residual SD wins
    assert {"fit-cytokines", "fit-cytokines-wide", "loo-comparison"} <= p.ids
    assert len(p.images) == 10 and all(img["src"].startswith("data:image/svg+xml;base64,") for img in p.images)
    r = run(cli, ["vpc", good, "--data", data, "--edges", "-24,0,24,200,1100,1300", "--format", "csv",
                  "--out", str(tmp_path / "vpc.csv"), "--figure", str(tmp_path / "vpc.png")])
    assert r.exit_code == 0, r.output
    use = fits.good.provenance["data"]["use"]["censored"]
    for a in ANALYTES:
        assert f"{a}: {use[a]['rows']} rows ({use[a]['censored']} censored) in the VPC" in r.output
    table = pd.read_csv(tmp_path / "vpc.csv", comment="#")
    assert table.drop_duplicates(["analyte", "bin"]).n_censored.sum() == sum(u["censored"] for u in use.values())
    assert (tmp_path / "vpc.png").stat().st_size > 1000
    r = run(cli, ["vpc", good, "--edges", "0,24"])
    assert r.exit_code == 2 and "leave out" in r.output
    r = run(cli, ["loo-pit", good, "--out", str(tmp_path / "pit.csv"), "--figure", str(tmp_path / "pit.svg")])
    assert r.exit_code == 0
    assert len(pd.read_csv(tmp_path / "pit.csv")) == fits.good.provenance["data"]["use"]["rows_used"]
    for args in (["peaks", good], ["responder-bands", good, "--data", data, "--draws", "20"]):
        out = tmp_path / f"{args[0]}.png"
        r = run(cli, ["figure", *args, "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert out.stat().st_size > 1000
    r = run(cli, ["figure", "odds-ratios", good, "--out", str(tmp_path / "or.png")])
    assert r.exit_code == 2 and "no odds-ratio variables" in r.output
    r = run(cli, ["report", str(fits.failed.path), "--out", str(tmp_path / "u.html")])
    assert r.exit_code == 3 and not (tmp_path / "u.html").exists()


# ---------------------------------------------------------------------------------------- browser
def test_report_renders_in_headless_chromium(chromium, report, tmp_path):
    dom, console = render(chromium, report.path, tmp_path / "profile")
    check = render_check(dom)
    n_img = len(report.parsed.images)
    assert n_img == 5  # ranks, VPC, LOO-PIT, peaks, responder bands
    assert check == {"images": n_img, "decoded": n_img, "errors": 0}, check
    assert console == [], f"console messages: {console}"
    assert "figures decoded, 0 errors" in dom and "Posterior" in dom


def test_the_browser_check_catches_broken_figures_and_external_resources(chromium, report, tmp_path):
    page = report.page
    first = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]{40})', page).group(1)
    broken = page.replace(first, "A" * 40, 1)  # corrupt the first image's data
    broken = broken.replace("</h1>", '</h1><img alt="x" src="https://example.org/x.png">', 1)
    path = tmp_path / "broken.html"
    path.write_text(broken, encoding="utf-8")
    dom, console = render(chromium, path, tmp_path / "profile")
    check = render_check(dom)
    assert check["images"] == 6 and check["decoded"] == 4 and check["errors"] >= 2
    assert any("example.org" in line for line in console)  # the blocked load is a console message


@pytest.mark.slow
def test_report_of_real_fits_renders_in_chromium(chromium, fits, tmp_path):
    """A real (small) MCMC fit of the response model beside the synthetic pulse fit."""
    from bayes_blina.checks.response_ppc import response_ppc
    from bayes_blina.inference import fit
    from bayes_blina.simulate import simulate_response_cohort
    from bayes_blina.store import load_fit, save_fit
    from conftest import response_spec

    ds, _ = simulate_response_cohort(120, seed=3)
    spec = response_spec("report-response", factors=["blast_burden"], draws=300, tune=300, seed=3)
    spec["sampler"]["chains"] = 2
    stored = load_fit(save_fit(fit(spec, ds), tmp_path / "resp"))
    page = build_report({"resp": stored, "cytokines": fits.good}, vpc_bins=4, vpc_draws=50, allow_unconverged=True)
    p = parse(page)
    ppc = frame(p, "resp-ppc")
    expected = response_ppc(stored.idata, factors=["blast_burden"], prob=0.9, seed=3)
    assert ppc["subgroup"].tolist() == expected["subgroup"].tolist()
    assert ppc["observed"].tolist() == [str(v) for v in expected["observed"]]
    assert ppc.iloc[0]["n"] == "120"
    assert frame(p, "resp-loo").iloc[0]["n_obs"] == "120"
    path = write_report(tmp_path / "real.html", page)
    dom, console = render(chromium, path, tmp_path / "profile")
    check = render_check(dom)
    assert check["images"] == check["decoded"] == len(p.images) >= 5 and check["errors"] == 0
    assert console == []
    assert np.isfinite(float(frame(p, "resp-loo").iloc[0]["elpd_loo"]))
