"""Commands that write a folder or a file under a parent that is a file: a clear error naming the
path and exit status 2, no traceback, nothing left behind (issue 21). They raised FileExistsError
from a bare mkdir (exit 1 with a traceback)."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bayes_blina.cli import main

EXAMPLE = Path(__file__).parent / "data" / "minimal"


@pytest.mark.parametrize("args", [
    ["simulate", "--preset", "adult-null", "--n", "4", "--seed", "1", "--out", "{bad}/cohort"],
    ["export", "nonmem", str(EXAMPLE), "--out", "{bad}/nm.csv"],
    ["export", "adam", str(EXAMPLE), "--out", "{bad}/adam"],
    ["import", "nonmem", str(Path(__file__).parent / "data" / "nonmem" / "example.csv"), "--out", "{bad}/ds"],
])
def test_a_parent_that_is_a_file(tmp_path, args):
    bad = tmp_path / "afile"
    bad.write_text("not a folder")
    res = CliRunner().invoke(main, [a.format(bad=bad) for a in args])
    assert res.exit_code == 2, res.output
    assert f"{bad} exists and is a file, not a folder" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"] and bad.read_text() == "not a folder"
