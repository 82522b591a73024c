"""The bad-input corpus (tests/bad_inputs/): every malformed input is refused with a message that
names the file, the column (variable), the row and the rule, and nothing is written.

Each case of ``tests/bad_inputs/cases.toml`` goes through the command a user would run:
``bayes-blina export nonmem FOLDER`` (dataset folders), ``bayes-blina import adam``,
``bayes-blina import nonmem``; model specs through :func:`bayes_blina.spec.load_spec`.
"""
from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from bayes_blina.cli.import_export import EXIT_INPUT, export_group, import_group
from bayes_blina.errors import SpecError

HERE = Path(__file__).parent
CORPUS = HERE / "bad_inputs"
BASES = {"dataset": HERE / "data" / "minimal", "adam": HERE / "data" / "adam" / "example-csv"}
CASES = tomllib.loads((CORPUS / "cases.toml").read_text(encoding="utf-8"))["case"]
READERS = ("dataset", "adam", "nonmem", "spec")


def _param_list():
    for case in CASES:
        marks = [pytest.mark.xfail(reason=case["xfail"], strict=True)] if "xfail" in case else []
        yield pytest.param(case, id=case["id"], marks=marks)


def test_manifest_is_complete():
    """At least 50 cases, one folder each, every reader covered, ids unique."""
    ids = [c["id"] for c in CASES]
    assert len(ids) >= 50 and len(set(ids)) == len(ids)
    assert {c["reader"] for c in CASES} == set(READERS)
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == set(ids)
    for c in CASES:
        assert {"reader", "file", "message"} <= set(c), c["id"]


def _prepare(case: dict, tmp: Path) -> Path:
    """The input folder of a case: the base files overlaid with the case's files."""
    folder = tmp / "input"
    base = BASES.get(case["reader"])
    if base is not None:
        shutil.copytree(base, folder)
        for name in case.get("remove", []):
            (folder / name).unlink()
    else:
        folder.mkdir()
    for p in (CORPUS / case["id"]).iterdir():
        shutil.copy(p, folder / p.name)
    return folder


def _where(case: dict, word: str) -> str:
    where = case["file"]
    if "column" in case:
        where += f", {word} '{case['column']}'"
    if "row" in case:
        where += f", row {case['row']}"
    return where


def _run(args: list[str], group) -> tuple[int, str]:
    result = CliRunner().invoke(group, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"traceback instead of a message:\n{result.output}"
    return result.exit_code, result.output


@pytest.mark.parametrize("case", list(_param_list()))
def test_bad_input_is_refused(case, tmp_path):
    folder = _prepare(case, tmp_path)
    out = tmp_path / "out"
    reader = case["reader"]
    if reader == "spec":
        from bayes_blina.spec import load_spec

        with pytest.raises(SpecError) as err:
            load_spec(folder / "spec.toml")
        text = str(err.value)
        assert case["file"] in text and case["message"] in text, text
        if "column" in case:
            assert case["column"] in text, text
        if "row" in case:
            assert f"line {case['row']}" in text, text
        return
    if reader == "dataset":
        code, text = _run(["nonmem", folder, "--out", out / "data.csv"], export_group)
    elif reader == "adam":
        args = ["adam", "--out", out]
        for key in ("adsl", "adlb", "adrs", "adex", "adpc"):
            found = [p for p in folder.iterdir() if p.stem == key]
            if found:
                args += [f"--{key}", found[0]]
        if (folder / "mapping.toml").exists():
            args += ["--mapping", folder / "mapping.toml"]
        code, text = _run(args, import_group)
    else:
        code, text = _run(["nonmem", folder / "data.csv", "--out", out], import_group)
    assert code == EXIT_INPUT, text
    where = _where(case, "variable" if reader == "adam" else "column")
    lines = [ln for ln in text.splitlines() if f"{where}: " in ln]
    assert any(case["message"] in ln for ln in lines), \
        f"expected '{where}: ...{case['message']}...' in:\n{text}"
    assert not out.exists(), "nothing may be written when the input is refused"
    assert not any(p.name.startswith((".out", "out")) for p in tmp_path.iterdir()
                   if p.name != "input"), list(tmp_path.iterdir())
