"""A large observations.csv is read and validated in chunks (issue 21, "inputs at scale").

The streamed path must give exactly what the whole-file path gives: the same canonical table (and
data hash), the same problems with the file's row numbers, the same file-level refusals. The tests
force streaming on small files by lowering the size threshold and the chunk length.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_blina.data import io as data_io
from bayes_blina.data import schema
from bayes_blina.data.io import read_dataset, write_dataset
from bayes_blina.errors import DataValidationError
from bayes_blina.simulate import simulate_cohort


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    ds, _ = simulate_cohort("adult-exploratory", 12, seed=5)
    out = tmp_path_factory.mktemp("cohort") / "study"
    write_dataset(ds, out)
    return out


def _copy(folder: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in folder.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


def _streamed(monkeypatch, chunk_rows: int = 7) -> None:
    monkeypatch.setattr(data_io, "STREAM_BYTES", 0)
    monkeypatch.setattr(data_io, "CHUNK_ROWS", chunk_rows)


def _problems(folder: Path) -> list[tuple]:
    with pytest.raises(DataValidationError) as err:
        read_dataset(folder)
    return [(p.file, p.column, p.row, p.rule, p.value) for p in err.value.problems]


def test_streamed_read_gives_the_same_dataset(folder, monkeypatch):
    whole = read_dataset(folder)
    _streamed(monkeypatch)
    tables, _, _ = data_io.load_tables(folder)
    assert isinstance(tables["observations"], data_io.CsvChunks)  # the streamed path was taken
    streamed = read_dataset(folder)
    assert len(whole.observations) > 7 * 10  # many chunks
    pd.testing.assert_frame_equal(streamed.observations, whole.observations)
    assert streamed.sha256() == whole.sha256()


def test_streamed_problems_are_the_whole_file_problems(folder, tmp_path, monkeypatch):
    bad = _copy(folder, tmp_path / "bad")
    lines = (bad / "observations.csv").read_text().splitlines()
    header = lines[0].split(",")
    v, t = header.index("value"), header.index("time_h")
    for row in (3, 40, len(lines) - 1):  # data rows in the first, a middle and the last chunk
        cells = lines[row].split(",")
        cells[v] = "high"
        lines[row] = ",".join(cells)
    cells = lines[25].split(",")
    cells[t] = "-9999"  # before the screening window
    lines[25] = ",".join(cells)
    lines.insert(10, ",,,,")  # a blank row shifts the numbering of every later row
    lines.insert(11, "")
    (bad / "observations.csv").write_text("\n".join(lines) + "\n")
    whole = _problems(bad)
    assert [p[2] for p in whole if p[1] == "value"] == [3, 42, len(lines) - 1]
    _streamed(monkeypatch, chunk_rows=5)
    assert _problems(bad) == whole


def test_streamed_missing_column_is_reported_once(folder, tmp_path, monkeypatch):
    bad = _copy(folder, tmp_path / "nocol")
    obs = pd.read_csv(bad / "observations.csv", dtype=str, keep_default_na=False)
    obs.drop(columns="unit").to_csv(bad / "observations.csv", index=False)
    whole = _problems(bad)
    _streamed(monkeypatch)
    streamed = _problems(bad)
    assert streamed == whole
    assert sum(p[1] == "unit" and p[2] is None for p in streamed) == 1


def test_streamed_parse_error_names_the_line_of_the_file(folder, tmp_path, monkeypatch):
    bad = _copy(folder, tmp_path / "parse")
    text = (bad / "observations.csv").read_text()
    n = text.count("\n")
    (bad / "observations.csv").write_text(text + "P1,IL6,1,2,pg/mL,,,,extra,cells\n")
    whole = _problems(bad)
    assert f"line {n + 1}" in whole[0][3]
    _streamed(monkeypatch)
    assert _problems(bad) == whole


def test_streamed_non_utf8_byte_names_its_line(folder, tmp_path, monkeypatch):
    bad = _copy(folder, tmp_path / "bytes")
    data = (bad / "observations.csv").read_bytes()
    n = data.count(b"\n")
    (bad / "observations.csv").write_bytes(data + b"P1,IL\xe96,1,2,pg/mL,,,\n")
    whole = _problems(bad)
    assert f"line {n + 1} has the byte 0xe9" in whole[0][3]
    _streamed(monkeypatch)
    monkeypatch.setattr(data_io, "_UTF8_BLOCK", 64)  # the bad byte far beyond the first block
    assert _problems(bad) == whole


def test_streamed_semicolons_and_empty_files_are_refused_as_small_ones(folder, tmp_path,
                                                                      monkeypatch):
    semi = _copy(folder, tmp_path / "semi")
    text = (semi / "observations.csv").read_text().replace(",", ";")
    (semi / "observations.csv").write_text(text)
    blank = _copy(folder, tmp_path / "blank")
    header = (blank / "observations.csv").read_text().splitlines()[0]
    (blank / "observations.csv").write_text(header + "\n" + ",,,\n" * 20)
    expected = [_problems(semi), _problems(blank)]
    assert "';'" in expected[0][0][3] and "no data rows" in expected[1][0][3]
    _streamed(monkeypatch)
    assert [_problems(semi), _problems(blank)] == expected


def test_streamed_validation_stops_after_many_problems(folder, tmp_path, monkeypatch):
    bad = _copy(folder, tmp_path / "many")
    obs = pd.read_csv(bad / "observations.csv", dtype=str, keep_default_na=False)
    obs["value"] = "high"
    obs.to_csv(bad / "observations.csv", index=False)
    _streamed(monkeypatch, chunk_rows=4)
    monkeypatch.setattr(schema, "MAX_STREAM_PROBLEMS", 10)
    problems = _problems(bad)
    stop = [p for p in problems if p[2] is None and "validation stopped" in p[3]]
    assert len(stop) == 1 and "after row 12:" in stop[0][3]  # three chunks of four rows
    assert np.array_equal([p[2] for p in problems if p[1] == "value"], np.arange(1, 13))
