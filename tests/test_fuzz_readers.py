"""Fuzzed readers (issue 21): any input either loads or raises the package's own error.

Valid seed files (the example study in the package's format, the ADaM example in csv, the NONMEM
example, a bundled spec) are mutated by hypothesis at the text level: a cell replaced by a tricky
value, a column dropped or renamed, a row duplicated or deleted, the file cut at a byte, bytes
inserted. Each reader must then return data or raise a :class:`~bayes_blina.errors.BayesBlinaError`
(whose message names the file); never another exception, never a hang (a deadline per input), and
for the package's own format never silent row loss (a loaded table has every non-blank row of its
file).

The runs are bounded and derandomized (fixed examples, the same in CI every time); a longer local
hunt is ``BAYES_BLINA_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_readers.py``. Inputs that once broke
a reader are kept under ``tests/fuzz_corpus/<reader>/`` and replayed by
:func:`test_corpus_inputs_load_or_are_refused`.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayes_blina.data import read_dataset
from bayes_blina.data.adam import read_adam_folder
from bayes_blina.data.nonmem import read_nonmem
from bayes_blina.errors import BayesBlinaError
from bayes_blina.spec import load_spec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "examples" / "data" / "example-study"
ADAM = HERE / "data" / "adam" / "example-csv"
NONMEM = HERE / "data" / "nonmem" / "example.csv"
SPEC = ROOT / "models" / "response.toml"
CORPUS = HERE / "fuzz_corpus"

EXAMPLES = int(os.environ.get("BAYES_BLINA_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=10_000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

TRICKY = ["", " ", "NA", "NaN", "nan", "inf", "-inf", "1e309", "-1", "0", "-0", "1,5", "1.2.3", "١٢",
          "\u00a0", "\x00", "'", '"', "\\", "x" * 5000, "2020-13-45", "2020-01-01T25:00",
          "9" * 40, "1e-320", "<0.5", ">100", "TRUE", "None", "null", "µg/m²", "=1+1", "\ufeff1",
          "1\n2", "\t", "5-15-", "-5-15", "5--15", "0-0", "cells/uL", "pg/mL", "EU", "<2", "99999999"]


@st.composite
def mutation(draw, n_rows: int, n_cols: int, n_bytes: int):
    kind = draw(st.sampled_from(["cell", "cell", "cell", "drop_col", "rename_col", "dup_row", "del_row",
                                 "cut", "insert", "swap_cols", "encoding"]))
    row = draw(st.integers(0, max(n_rows - 1, 0)))
    col = draw(st.integers(0, max(n_cols - 1, 0)))
    col2 = draw(st.integers(0, max(n_cols - 1, 0)))
    value = draw(st.one_of(st.sampled_from(TRICKY), st.text(max_size=12)))
    pos = draw(st.integers(0, max(n_bytes - 1, 0)))
    blob = draw(st.binary(min_size=1, max_size=8))
    return kind, row, col, col2, value, pos, blob


ENCODINGS = ["latin-1", "utf-16", "utf-8-sig", "crlf", "semicolon", "tabs", "cp1252"]


def mutate(text: str, m) -> bytes:
    kind, row, col, col2, value, pos, blob = m
    data = text.encode("utf-8", errors="surrogateescape")
    if kind == "encoding":
        how = ENCODINGS[pos % len(ENCODINGS)]
        if how == "crlf":
            return text.replace("\n", "\r\n").encode("utf-8", errors="surrogateescape")
        if how in ("semicolon", "tabs"):
            return text.replace(",", ";" if how == "semicolon" else "\t").encode("utf-8", errors="surrogateescape")
        return text.encode(how, errors="replace")
    if kind == "cut":
        return data[:pos]
    if kind == "insert":
        return data[:pos] + blob + data[pos:]
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error:  # an earlier mutation broke the quoting: mutate the bytes instead
        return data[:pos] + blob + data[pos:]
    if not rows or not rows[0]:
        return data + blob
    header, body = rows[0], [r for r in rows[1:]]
    col %= len(header)
    col2 %= len(header)
    if kind == "cell" and body:
        r = body[row % len(body)]
        if r:
            r[col % len(r)] = value
    elif kind == "drop_col":
        header = header[:col] + header[col + 1:]
        body = [r[:col] + r[col + 1:] for r in body]  # ragged rows lose whatever is at that place
    elif kind == "rename_col":
        header = header.copy()
        header[col] = value or "x"
    elif kind == "swap_cols":
        header = header.copy()
        header[col], header[col2] = header[col2], header[col]
    elif kind == "dup_row" and body:
        body.insert(row % len(body), list(body[row % len(body)]))
    elif kind == "del_row" and body:
        del body[row % len(body)]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *body])
    return out.getvalue().encode("utf-8", errors="surrogateescape")


def mutate_all(text: str, ms) -> bytes:
    """Apply several mutations in turn (each to the previous result)."""
    raw = text.encode("utf-8")
    for m in ms:
        raw = mutate(raw.decode("utf-8", errors="surrogateescape"), m)
    return raw


def _non_blank_rows(raw: bytes) -> int | None:
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        return None
    return sum(1 for r in rows[1:] if any(c.strip() for c in r))


def _assert_own_error(e: BaseException, names: tuple[str, ...]):
    assert isinstance(e, BayesBlinaError), f"{type(e).__name__}: {e}"
    text = str(e)
    assert any(n in text for n in names) or "dataset" in text.lower(), text[:500]


def check_dataset(folder: Path, mutated: str, raw: bytes):
    try:
        ds = read_dataset(folder)
    except BayesBlinaError as e:
        _assert_own_error(e, (mutated, folder.name))
        return
    except Exception as e:  # noqa: BLE001 - the point of the test
        raise AssertionError(f"{mutated}: {type(e).__name__}: {e}") from e
    expected = _non_blank_rows(raw)
    table = getattr(ds, Path(mutated).stem)
    if expected is not None and table is not None:
        assert len(table) == expected, f"{mutated}: {expected} rows in the file, {len(table)} loaded"


def _example_strategy(files: list[Path]):
    sizes = {}
    for f in files:
        text = f.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        sizes[f.name] = (len(rows) - 1, len(rows[0]), len(text.encode()))
    return st.sampled_from(sorted(sizes)).flatmap(
        lambda name: st.tuples(st.just(name), st.lists(mutation(*sizes[name]), min_size=1, max_size=3)))


@FUZZ
@given(case=_example_strategy(sorted(EXAMPLE.glob("*.csv"))))
def test_dataset_reader(case, tmp_path_factory):
    name, m = case
    folder = tmp_path_factory.mktemp("fuzz") / "study"
    shutil.copytree(EXAMPLE, folder)
    raw = mutate_all((EXAMPLE / name).read_text(encoding="utf-8"), m)
    (folder / name).write_bytes(raw)
    check_dataset(folder, name, raw)


@FUZZ
@given(case=_example_strategy(sorted(ADAM.glob("*.csv"))))
def test_adam_reader(case, tmp_path_factory):
    name, m = case
    folder = tmp_path_factory.mktemp("fuzz") / "adam"
    shutil.copytree(ADAM, folder)
    (folder / name).write_bytes(mutate_all((ADAM / name).read_text(encoding="utf-8"), m))
    try:
        read_adam_folder(folder)
    except BayesBlinaError as e:
        _assert_own_error(e, (name, name.upper(), Path(name).stem.upper(), "mapping"))
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{name} {[x[0] for x in m]}: {type(e).__name__}: {e}") from e


@FUZZ
@given(m=st.lists(mutation(*(lambda t: (len(t.splitlines()) - 1, len(t.splitlines()[0].split(",")), len(t.encode())))(
    NONMEM.read_text(encoding="utf-8"))), min_size=1, max_size=3))
def test_nonmem_reader(m, tmp_path_factory):
    f = tmp_path_factory.mktemp("fuzz") / "nm.csv"
    f.write_bytes(mutate_all(NONMEM.read_text(encoding="utf-8"), m))
    try:
        read_nonmem(f)
    except BayesBlinaError as e:
        _assert_own_error(e, ("nm.csv",))
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{[x[0] for x in m]}: {type(e).__name__}: {e}") from e


@st.composite
def spec_mutation(draw):
    lines = SPEC.read_text(encoding="utf-8").splitlines()
    i = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(["value", "drop", "dup", "key", "cut"]))
    value = draw(st.one_of(st.sampled_from(["-1", "0", "1e309", "nan", "inf", '"x"', "[]", "{}", "true",
                                            '"Normal"', "[1, 2]", '["HalfNormal", -1]', "1_000_000_000"]),
                           st.text(max_size=10)))
    if kind == "value" and "=" in lines[i]:
        lines[i] = lines[i].split("=", 1)[0] + "= " + value
    elif kind == "drop":
        del lines[i]
    elif kind == "dup":
        lines.insert(i, lines[i])
    elif kind == "key" and "=" in lines[i]:
        lines[i] = (value or "k") + " =" + lines[i].split("=", 1)[1]
    elif kind == "cut":
        lines = lines[:i]
    return "\n".join(lines) + "\n"


@FUZZ
@given(text=spec_mutation())
def test_spec_reader(text, tmp_path_factory):
    f = tmp_path_factory.mktemp("fuzz") / "spec.toml"
    f.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_spec(str(f))
    except BayesBlinaError as e:
        assert "spec.toml" in str(e) or "spec" in str(e).lower(), str(e)
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{type(e).__name__}: {e}\n{text}") from e


def _corpus_cases():
    if not CORPUS.is_dir():
        return []
    return sorted(p for p in CORPUS.glob("*/*") if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize("case", _corpus_cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corpus_inputs_load_or_are_refused(case, tmp_path):
    reader, target = case.parent.name, case.name.split("--", 1)[0]
    raw = case.read_bytes()
    if reader == "dataset":
        folder = tmp_path / "study"
        shutil.copytree(EXAMPLE, folder)
        (folder / target).write_bytes(raw)
        check_dataset(folder, target, raw)
        return
    if reader == "adam":
        folder = tmp_path / "adam"
        shutil.copytree(ADAM, folder)
        (folder / target).write_bytes(raw)
        call = lambda: read_adam_folder(folder)  # noqa: E731
        names = (target, target.upper(), Path(target).stem.upper(), "mapping", folder.name)
    elif reader == "nonmem":
        (tmp_path / "nm.csv").write_bytes(raw)
        call = lambda: read_nonmem(tmp_path / "nm.csv")  # noqa: E731
        names = ("nm.csv",)
    elif reader == "spec":
        (tmp_path / "spec.toml").write_bytes(raw)
        call = lambda: load_spec(str(tmp_path / "spec.toml"))  # noqa: E731
        names = ("spec",)
    else:
        raise AssertionError(f"unknown reader folder {reader}")
    try:
        call()
    except BayesBlinaError as e:  # the package's own error, naming the file (not an empty list)
        _assert_own_error(e, names)


def test_damaged_sas_transport_files_load_or_are_refused_naming_the_file(tmp_path):
    """Truncated, overwritten and padded .xpt files (40 fixed cases): data or the package's error."""
    import numpy as np

    src = HERE / "data" / "adam" / "example-xpt"
    rng = np.random.default_rng(2026)
    refused = 0
    for i in range(40):
        d = tmp_path / f"x{i}"
        shutil.copytree(src, d)
        f = sorted(d.glob("*.xpt"))[i % 5]
        data = bytearray(f.read_bytes())
        how = i % 3
        if how == 0:
            data = data[: int(rng.integers(0, len(data)))]
        elif how == 1:
            for _ in range(int(rng.integers(1, 6))):
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        else:
            p = int(rng.integers(0, len(data)))
            data[p:p] = rng.bytes(int(rng.integers(1, 100)))
        f.write_bytes(bytes(data))
        try:
            read_adam_folder(d)
        except BayesBlinaError as e:
            refused += 1
            assert f.name in str(e) or f.stem.upper() in str(e), str(e)[:300]
    assert refused >= 20  # most damage is caught (a flipped byte inside a value can read as another value)
