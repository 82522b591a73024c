"""Exceptions and warnings raised by bayes_blina.

Every error a user can trigger with bad input derives from :class:`BayesBlinaError`, so scripts can
catch the package's errors in one place; the messages say what was found and what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass


class BayesBlinaError(Exception):
    """Base class of every error raised deliberately by bayes_blina."""


class BayesBlinaWarning(UserWarning):
    """Base class of warnings issued by bayes_blina (errors under the test suite)."""


@dataclass(frozen=True)
class Problem:
    """One broken rule in an input file.

    Attributes
    ----------
    file : str
        File name (or path) the problem was found in.
    column : str or None
        Column concerned, ``None`` for whole-file problems.
    row : int or None
        1-based data row (the header is row 0, so row 1 is the first line after the header),
        ``None`` when the problem concerns the whole column or file.
    rule : str
        The rule that was broken, phrased as what was expected.
    value : str or None
        The offending value as read, if any.
    """

    file: str
    column: str | None
    row: int | None
    rule: str
    value: str | None = None

    #: What the ``column`` is called in messages (ADaM files say "variable").
    column_word = "column"

    def __str__(self) -> str:
        where = self.file
        if self.column is not None:
            where += f", {self.column_word} '{self.column}'"
        if self.row is not None:
            where += f", row {self.row}"
        text = f"{where}: {self.rule}"
        if self.value is not None:
            text += f" (found {self.value!r})"
        return text


class DataValidationError(BayesBlinaError, ValueError):
    """Raised when input data break one or more rules; lists every problem found.

    The message groups the problems by kind (file, column and rule) and, within a kind, by the value
    found, with the rows as ranges, so that one unmapped code repeated on every subject reads as one
    line and the other kinds of problem stay visible beside it (issue 23); a kind with at most three
    problems is listed one problem per line. Every problem stays in
    :attr:`problems`; :meth:`write_csv` writes them one per line.

    Parameters
    ----------
    problems : list of Problem
        All problems found (validation does not stop at the first one); at least one.
    max_kinds : int, default 60
        Kinds of problem shown in the message (the rest are counted).
    max_values : int, default 12
        Distinct values shown per kind (the rest are counted).

    Examples
    --------
    >>> from bayes_blina.errors import DataValidationError, Problem
    >>> err = DataValidationError([Problem("adsl.csv", "ARM", r, "unknown arm", "Placebo") for r in (1, 2, 3, 7)])
    >>> print(err)
    4 problem(s) in the input data, 1 kind:
      - adsl.csv, column 'ARM', rows 1-3, 7 (4 rows): unknown arm (found 'Placebo')
    """

    def __init__(self, problems: list[Problem], max_kinds: int = 60, max_values: int = 12):
        self.problems = list(problems)
        if not self.problems:
            raise ValueError("DataValidationError needs at least one problem")
        super().__init__(_render_grouped(self.problems, max_kinds, max_values))

    def to_csv(self) -> str:
        """Every problem, one per line (``file,column,row,rule,value``), as CSV text.

        Examples
        --------
        >>> print(DataValidationError([Problem("a.csv", "x", 2, "bad, really")]).to_csv(), end="")
        file,column,row,rule,value
        a.csv,x,2,"bad, really",
        """
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "column", "row", "rule", "value"])
        for p in self.problems:
            w.writerow([p.file, "" if p.column is None else p.column, "" if p.row is None else p.row, p.rule,
                        "" if p.value is None else p.value])
        return buf.getvalue()


def _row_ranges(rows: list[int], limit: int = 8) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"`` (at most ``limit`` runs, then an ellipsis)."""
    runs: list[list[int]] = []
    for r in sorted(set(rows)):
        if runs and r == runs[-1][1] + 1:
            runs[-1][1] = r
        else:
            runs.append([r, r])
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in runs]
    return ", ".join(parts[:limit] + (["..."] if len(parts) > limit else []))


def _rows_text(rows: list[int | None]) -> str | None:
    known = [r for r in rows if r is not None]
    if not known:
        return None
    if len(known) == 1:
        return f"row {known[0]}"
    return f"rows {_row_ranges(known)} ({len(known)} rows)"


def _render_grouped(problems: list[Problem], max_kinds: int, max_values: int, few: int = 3) -> str:
    kinds: dict[tuple, dict] = {}
    for p in problems:
        kinds.setdefault((p.file, p.column, p.rule, p.column_word), {}).setdefault(p.value, []).append(p.row)
    lines = [f"{len(problems)} problem(s) in the input data, {len(kinds)} kind{'s' if len(kinds) != 1 else ''}:"]
    for (file, column, rule, word), values in list(kinds.items())[:max_kinds]:
        where = file if column is None else f"{file}, {word} '{column}'"
        n = sum(len(r) for r in values.values())
        if n <= few:  # a few problems of a kind read best one per line
            for value, rows in values.items():
                for row in rows:
                    found = "" if value is None else f" (found {value!r})"
                    lines.append(f"  - {where}{'' if row is None else f', row {row}'}: {rule}{found}")
            continue
        if len(values) == 1:
            (value, rows), = values.items()
            rows_text = _rows_text(rows)
            found = "" if value is None else f" (found {value!r})"
            lines.append(f"  - {where}{'' if rows_text is None else ', ' + rows_text}: {rule}{found}")
            continue
        lines.append(f"  - {where}: {rule} ({n} rows, {len(values)} values)")
        for value, rows in list(values.items())[:max_values]:
            rows_text = _rows_text(rows)
            lines.append(f"      found {value!r}" + ("" if rows_text is None else f" in {rows_text}"))
        if len(values) > max_values:
            lines.append(f"      ... and {len(values) - max_values} other values")
    if len(kinds) > max_kinds:
        lines.append(f"  ... and {len(kinds) - max_kinds} more kinds of problem")
    return "\n".join(lines)


class SpecError(BayesBlinaError, ValueError):
    """A model specification (TOML file or dict) is invalid."""


class UnknownPriorError(SpecError, KeyError):
    """A prior was given for a name the model does not have."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class FitExistsError(BayesBlinaError, FileExistsError):
    """A fit already exists at the output path and overwriting was not requested."""


class FitStoreError(BayesBlinaError):
    """A stored fit is missing, incomplete, corrupted, tampered with or incompatible."""


class OutputError(BayesBlinaError, OSError):
    """An output file or folder could not be written where asked (the message names the path)."""


class ConvergenceError(BayesBlinaError):
    """A fit failed the convergence gate and the caller did not override it."""
