"""Reading and writing dataset folders (``docs/data-format.md``).

:func:`read_dataset` is the single door through which data enter the package: it reads a folder
(or the folders of a bundled dataset), validates every table with :mod:`bayes_blina.data.schema`
and raises one :class:`~bayes_blina.errors.DataValidationError` listing every problem found, file
problems (unreadable, empty, not UTF-8, not CSV) included. :func:`write_dataset` writes a
validated :class:`Dataset` back as canonical CSV files, atomically.
"""
from __future__ import annotations

from bayes_blina._atomic import swap_in

import io
import math
import os
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from bayes_blina.data.dataset import TABLES, Dataset
from bayes_blina.data.schema import COLUMNS, validate_tables
from bayes_blina.errors import BayesBlinaError, DataValidationError, Problem

#: File suffixes read for each table, in order of preference.
SUFFIXES = (".csv", ".parquet")

#: An ``observations.csv`` larger than this many bytes is read and validated in chunks of
#: :data:`CHUNK_ROWS` rows, so that memory holds the validated table and one chunk of text, not
#: the whole file as Python strings (``docs/data-format.md``, "Large files").
STREAM_BYTES = 64 * 2**20

#: Rows per chunk of a streamed file.
CHUNK_ROWS = 250_000


class DatasetNotFoundError(BayesBlinaError, FileNotFoundError):
    """The dataset source is neither an existing folder nor a bundled dataset name."""


class DatasetExistsError(BayesBlinaError, FileExistsError):
    """The output folder of :func:`write_dataset` exists, is not empty, and overwriting is off."""


# ----------------------------------------------------------------------------------------------
# Reading files
# ----------------------------------------------------------------------------------------------

def _drop_blank_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Drop rows whose cells are all empty; keep the original data-row numbers in ``attrs``."""
    if len(df.columns) == 0:
        return df
    blank = (df.fillna("").astype(str).apply(lambda s: s.str.strip()) == "").all(axis=1)
    out = df.loc[~blank.to_numpy()].reset_index(drop=True)
    # an array, not a list: pandas deep-copies attrs on every column access
    out.attrs["row_numbers"] = (~blank).to_numpy().nonzero()[0].astype(np.int64) + 1
    return out


def decode_bytes(data: bytes, label: str) -> tuple[str | None, Problem | None]:
    """UTF-8 text of a file (a byte-order mark is dropped), or the problem."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        return None, Problem(label, None, None, "file must be UTF-8 encoded (line "
                             f"{line} has the byte 0x{data[err.start]:02x}; save it as UTF-8 CSV)")


def _read_csv(path: Path, label: str) -> tuple[pd.DataFrame | None, Problem | None]:
    """Read a CSV file as text cells, or say why it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return None, Problem(label, None, None, f"file could not be read ({err.strerror or err})")
    text, problem = decode_bytes(data, label)
    if text is None:
        return None, problem
    if not text.strip():
        return None, Problem(label, None, None, "file is empty")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False,
                         skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
        reason = str(err).strip().splitlines()[-1].replace("Error tokenizing data. C error: ", "")
        return None, Problem(label, None, None, f"file could not be parsed as CSV ({reason})")
    if len(df.columns) == 1 and ";" in str(df.columns[0]):
        return None, Problem(label, None, None, "columns must be separated by commas "
                             "(the header line contains ';')", str(df.columns[0])[:60])
    return _drop_blank_rows(df), None


_UTF8_BLOCK = 16 * 2**20


def _utf8_problem(path: Path, label: str) -> Problem | None:
    """The first byte of a file that is not UTF-8, as a problem naming its line; read in blocks."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with open(path, "rb") as fh:
        while data := fh.read(_UTF8_BLOCK):
            try:
                decoder.decode(data)
            except UnicodeDecodeError as err:
                # the error's position is within the decoder's pending bytes plus this block
                at = max(0, err.start - (len(err.object) - len(data)))
                line = lines + data[:at].count(b"\n") + 1
                return Problem(label, None, None, "file must be UTF-8 encoded (line "
                               f"{line} has the byte 0x{err.object[err.start]:02x}; save it as "
                               "UTF-8 CSV)")
            lines += data.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as err:
            return Problem(label, None, None, "file must be UTF-8 encoded (it ends inside a "
                           f"character, byte 0x{err.object[err.start]:02x}; save it as UTF-8 CSV)")
    return None


class CsvChunks:
    """A large CSV table read lazily: successive raw chunks of text cells.

    Iterating yields DataFrames of at most :data:`CHUNK_ROWS` rows, blank rows dropped, each with
    the file's data-row numbers in ``attrs['row_numbers']`` (so problems name the row of the
    file). A file that cannot be read stops the iteration and leaves the reason in
    :attr:`problem`; the validator then reports it instead of the table, as for a small file.

    Parameters
    ----------
    path : Path
        The CSV file.
    label : str
        Its name in messages.
    chunk_rows : int, optional
        Rows per chunk (default :data:`CHUNK_ROWS`).
    """

    def __init__(self, path: Path, label: str, chunk_rows: int | None = None):
        self.path = path
        self.label = label
        self.chunk_rows = int(chunk_rows or CHUNK_ROWS)
        self.problem: Problem | None = None

    def __repr__(self) -> str:
        return f"CsvChunks({self.label!r}, {self.chunk_rows} rows per chunk)"

    def __iter__(self):
        self.problem = _utf8_problem(self.path, self.label)
        if self.problem is not None:
            return
        seen = 0
        try:
            reader = pd.read_csv(self.path, dtype=str, keep_default_na=False, na_filter=False,
                                 skip_blank_lines=False, encoding="utf-8-sig",
                                 chunksize=self.chunk_rows)
            with reader:
                for raw in reader:
                    if seen == 0 and len(raw.columns) == 1 and ";" in str(raw.columns[0]):
                        self.problem = Problem(self.label, None, None, "columns must be "
                                               "separated by commas (the header line contains "
                                               "';')", str(raw.columns[0])[:60])
                        return
                    chunk = _drop_blank_rows(raw.reset_index(drop=True))
                    chunk.attrs["row_numbers"] = chunk.attrs.get(
                        "row_numbers", np.arange(1, len(chunk) + 1)) + seen
                    seen += len(raw)
                    yield chunk
        except pd.errors.EmptyDataError:
            self.problem = Problem(self.label, None, None, "file is empty")
        except (pd.errors.ParserError, ValueError) as err:
            reason = str(err).strip().splitlines()[-1].replace("Error tokenizing data. C error: ",
                                                                "")
            self.problem = Problem(self.label, None, None,
                                   f"file could not be parsed as CSV ({reason})")
        except OSError as err:
            self.problem = Problem(self.label, None, None,
                                   f"file could not be read ({err.strerror or err})")


def _read_parquet(path: Path, label: str) -> tuple[pd.DataFrame | None, Problem | None]:
    """Read a Parquet file, or say why it cannot be read."""
    try:
        df = pd.read_parquet(path)
    except ImportError as err:  # pragma: no cover - pyarrow is a pandas extra
        return None, Problem(label, None, None, f"reading Parquet needs pyarrow ({err})")
    except Exception as err:  # noqa: BLE001 - any reader failure becomes a Problem
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return None, Problem(label, None, None, f"file could not be read as Parquet ({reason})")
    return df.reset_index(drop=True), None


def _find_files(folder: Path) -> dict[str, list[Path]]:
    """Candidate files of each table in a folder (names matched case-insensitively)."""
    by_name = {p.name.lower(): p for p in sorted(folder.iterdir()) if p.is_file()}
    found: dict[str, list[Path]] = {}
    for table in TABLES:
        paths = [by_name[table + s] for s in SUFFIXES if table + s in by_name]
        if paths:
            found[table] = paths
    return found


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def load_tables(folder: Path, prefix: str = ""
                ) -> tuple[dict[str, pd.DataFrame], dict[str, str], list[Problem]]:
    """Read the table files of a dataset folder without validating them.

    Parameters
    ----------
    folder : Path
        An existing folder.
    prefix : str
        Put before file names in messages (e.g. ``'pediatric/'``).

    Returns
    -------
    (dict of DataFrame, dict of str, list of Problem)
        Raw tables (text cells), the file label of each table, and file-level problems. An
        ``observations.csv`` over :data:`STREAM_BYTES` is a :class:`CsvChunks` instead, read
        while it is validated.
    """
    tables: dict[str, pd.DataFrame] = {}
    files: dict[str, str] = {}
    problems: list[Problem] = []
    for table, paths in _find_files(folder).items():
        if len(paths) > 1:
            problems.append(Problem(prefix + paths[0].name, None, None, "give the table either "
                                    f"as {table}.csv or as {table}.parquet, not both"))
            continue
        path = paths[0]
        label = prefix + path.name
        if (table == "observations" and path.suffix.lower() == ".csv"
                and _size(path) > STREAM_BYTES):
            tables[table], files[table] = CsvChunks(path, label), label
            continue
        reader = _read_parquet if path.suffix.lower() == ".parquet" else _read_csv
        df, problem = reader(path, label)
        if problem is not None:
            problems.append(problem)
        else:
            tables[table], files[table] = df, label
    return tables, files, problems


def _read_folder(folder: Path, *, name: str, origin: str, prefix: str,
                 screening_window_h: float) -> tuple[Dataset | None, list[Problem]]:
    """Read and validate one folder; a dataset only when there was no problem."""
    tables, files, problems = load_tables(folder, prefix)
    clean, found = validate_tables(tables, files, screening_window_h, where=prefix or str(folder))
    problems += found
    if problems:
        return None, problems
    return Dataset(**clean, name=name, origin=origin, meta={"files": files}), []


# ----------------------------------------------------------------------------------------------
# The public readers
# ----------------------------------------------------------------------------------------------

def _bundled_folders(name: str) -> list[Path]:
    """Folders of a bundled dataset, with a clear error when there is none of that name."""
    try:
        from bayes_blina.data.registry import bundled_folders
    except ModuleNotFoundError as err:
        if err.name != "bayes_blina.data.registry":
            raise
        raise DatasetNotFoundError(
            f"no dataset folder '{name}' exists (looked in {Path.cwd()}), and bundled datasets "
            "are not available in this installation") from None
    try:
        return [Path(p) for p in bundled_folders(name)]
    except (KeyError, BayesBlinaError) as err:
        reason = err.args[0] if err.args else str(err)
        raise DatasetNotFoundError(
            f"no dataset folder '{name}' exists (looked in {Path.cwd()}), and it is not a "
            f"bundled dataset: {reason}") from err


def _looks_like_name(source: str) -> bool:
    """Whether a string could be a bundled dataset name rather than a path."""
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", source)) and ".." not in source


def read_dataset(source: str | os.PathLike[str], *, screening_window_h: float = 504.0) -> Dataset:
    """Read and validate a dataset folder or a bundled dataset.

    Parameters
    ----------
    source : str or path-like
        A folder holding ``subjects``, ``dosing``, ``observations``, ``aggregates`` and/or
        ``summaries`` as ``.csv`` or ``.parquet`` files, or the name of a bundled dataset
        (``bayes-blina datasets`` lists them). An existing folder wins over a bundled name.
    screening_window_h : float, default 504
        Observations may lie this many hours (21 days) before the first infusion start.

    Returns
    -------
    Dataset
        All tables in canonical form; ``name`` is the folder or bundled name, ``origin`` the
        folder path or ``'bundled:NAME'``.

    Raises
    ------
    DatasetNotFoundError
        If ``source`` is neither an existing folder nor a bundled dataset name.
    DataValidationError
        Listing every problem in every file, if there is any.

    Examples
    --------
    >>> ds = read_dataset("examples/data/example-study")  # doctest: +SKIP
    >>> ds.subjects[["subject_id", "regimen", "response"]]  # doctest: +SKIP
    """
    path = Path(source).expanduser()
    if path.is_dir():
        ds, problems = _read_folder(path, name=path.resolve().name, origin=str(path),
                                    prefix="", screening_window_h=screening_window_h)
        if problems:
            raise DataValidationError(problems)
        return ds  # type: ignore[return-value]
    if path.exists():
        raise DatasetNotFoundError(f"a dataset is a folder of CSV files, but '{path}' is a file; "
                                   "pass the folder that holds it")
    text = os.fspath(source)
    if not _looks_like_name(text):
        raise DatasetNotFoundError(f"dataset folder not found: '{text}' (resolved to "
                                   f"{path.resolve()})")
    return _read_bundled(text, screening_window_h)


def _read_bundled(name: str, screening_window_h: float) -> Dataset:
    """Read every folder of a bundled dataset and stack them."""
    folders = _bundled_folders(name)
    parts: list[Dataset] = []
    problems: list[Problem] = []
    for folder in folders:
        ds, found = _read_folder(folder, name=folder.name, origin=f"bundled:{name}",
                                 prefix=f"{folder.name}/",
                                 screening_window_h=screening_window_h)
        problems += found
        if ds is not None:
            parts.append(ds)
    if problems:
        raise DataValidationError(problems)
    if not parts:
        raise DatasetNotFoundError(f"bundled dataset '{name}' has no folders")
    return replace(Dataset.concat(parts, name=name), name=name, origin=f"bundled:{name}")


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------

def _float_text(v: float) -> str:
    """Shortest text that reads back as the same float (``15.0`` -> ``'15'``)."""
    if math.isnan(v):
        return ""
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def _column_text(s: pd.Series) -> list[str]:
    """Cells of one column as CSV text: booleans 0/1, integers without '.0', missing ''."""
    dtype = str(s.dtype)
    if pd.api.types.is_bool_dtype(s) or dtype == "boolean":
        return ["" if pd.isna(v) else str(int(bool(v))) for v in s.tolist()]
    if pd.api.types.is_integer_dtype(s):
        return ["" if pd.isna(v) else str(int(v)) for v in s.tolist()]
    if pd.api.types.is_float_dtype(s):
        return [_float_text(float(v)) for v in s.to_numpy(dtype=float, na_value=float("nan"))]
    return ["" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v)
            for v in s.tolist()]


def _text_table(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """A table as text cells, canonical columns first."""
    canon = [c for c in COLUMNS.get(name, ()) if c in df.columns]
    cols = canon + [c for c in df.columns if c not in canon]
    return pd.DataFrame({c: _column_text(df[c]) for c in cols}, dtype=object)


_swap_in = swap_in  # one implementation for every writer (bayes_blina._atomic)


def write_dataset(ds: Dataset, folder: str | os.PathLike[str], *,
                  overwrite: bool = False) -> Path:
    """Write a dataset as canonical CSV files (``NAME.csv`` per present table).

    The files are written into a temporary folder next to ``folder`` and moved into place at the
    end, so a failure never leaves a half-written dataset. Reading the folder back gives a dataset
    with the same :meth:`Dataset.sha256`.

    Parameters
    ----------
    ds : Dataset
        The dataset (already validated, canonical tables).
    folder : str or path-like
        Output folder; created with its parents if needed.
    overwrite : bool, default False
        Replace an existing non-empty folder (its whole content is replaced).

    Returns
    -------
    Path
        The folder written.

    Raises
    ------
    DatasetExistsError
        If ``folder`` is a file, or a non-empty folder and ``overwrite`` is false.
    OutputError
        If a parent of ``folder`` is a file or the file system refuses to create it (nothing is
        left behind).
    """
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DatasetExistsError(f"cannot write the dataset to '{folder}': it is a file")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise DatasetExistsError(f"folder '{folder}' exists and is not empty; pass "
                                 "overwrite=True to replace it")
    from bayes_blina._atomic import make_parent
    from bayes_blina.errors import OutputError

    make_parent(folder)  # a parent that is a file, or a folder that cannot be made: OutputError
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    except OSError as e:
        raise OutputError(f"cannot write the dataset to {folder}: {e.strerror or e}") from None
    try:
        os.chmod(tmp, 0o755)
        for name, df in ds.tables().items():
            _text_table(name, df).to_csv(tmp / f"{name}.csv", index=False, lineterminator="\n",
                                         encoding="utf-8")
        _swap_in(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


__all__ = ["read_dataset", "write_dataset", "load_tables", "CsvChunks", "DatasetNotFoundError",
           "DatasetExistsError", "SUFFIXES", "STREAM_BYTES", "CHUNK_ROWS"]


def read_table_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read one table file (``.csv`` or ``.parquet``) as raw text cells, not yet validated.

    Raises
    ------
    DatasetNotFoundError
        If the file does not exist.
    DataValidationError
        If it cannot be read (encoding, empty, not CSV), naming the file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetNotFoundError(f"file not found: '{p}'")
    reader = _read_parquet if p.suffix.lower() == ".parquet" else _read_csv
    df, problem = reader(p, p.name)
    if problem is not None:
        raise DataValidationError([problem])
    return df


def read_subjects_file(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate one subjects file (e.g. new patients to predict for).

    The file follows the ``subjects.csv`` format (``response`` may be absent); ``.parquet`` is
    read as Parquet.

    Raises
    ------
    DatasetNotFoundError
        If the file does not exist.
    DataValidationError
        Listing every problem in the file.
    """
    from bayes_blina.data.schema import validate_subjects

    p = Path(path).expanduser()
    clean, problems = validate_subjects(read_table_file(p), file=p.name)
    if problems:
        raise DataValidationError(problems)
    return clean
