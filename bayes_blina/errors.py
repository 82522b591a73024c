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

    Parameters
    ----------
    problems : list of Problem
        All problems found (validation does not stop at the first one).
    """

    def __init__(self, problems: list[Problem], max_shown: int = 50):
        self.problems = list(problems)
        shown = self.problems[:max_shown]
        lines = [f"{len(self.problems)} problem(s) in the input data:"]
        lines += [f"  - {p}" for p in shown]
        if len(self.problems) > max_shown:
            lines.append(f"  ... and {len(self.problems) - max_shown} more")
        super().__init__("\n".join(lines))


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
