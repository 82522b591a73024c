"""How a DataValidationError reads: grouped by kind and value, every kind shown (issue 23)."""
from __future__ import annotations

import csv
import io

import pytest

from bayes_blina.errors import DataValidationError, Problem


def test_a_few_problems_of_a_kind_read_one_per_line_as_before():
    err = DataValidationError([Problem("dosing.csv", "dose", 3, "dose must be > 0", "-1"),
                               Problem("dosing.csv", "dose", 5, "dose must be > 0", "0")])
    assert str(err).splitlines()[1:] == ["  - dosing.csv, column 'dose', row 3: dose must be > 0 (found '-1')",
                                         "  - dosing.csv, column 'dose', row 5: dose must be > 0 (found '0')"]


def test_many_problems_group_by_value_with_row_ranges_and_counts():
    problems = [Problem("adsl.csv", "ARM", r, "unknown arm", "Placebo") for r in range(1, 101)]
    problems += [Problem("adsl.csv", "ARM", r, "unknown arm", "Comparator") for r in (101, 103, 105, 107)]
    problems += [Problem("adlb.csv", "ADY", 9, "too early", "-26")]
    text = str(DataValidationError(problems))
    assert text.splitlines() == [
        "105 problem(s) in the input data, 2 kinds:",
        "  - adsl.csv, column 'ARM': unknown arm (104 rows, 2 values)",
        "      found 'Placebo' in rows 1-100 (100 rows)",
        "      found 'Comparator' in rows 101, 103, 105, 107 (4 rows)",
        "  - adlb.csv, column 'ADY', row 9: too early (found '-26')",
    ]


def test_the_message_stays_short_however_many_values_and_kinds():
    problems = [Problem("obs.csv", "value", r, "must be a number", f"x{r}") for r in range(1, 1001)]
    problems += [Problem("obs.csv", f"c{k}", 1, f"rule {k}", "v") for k in range(80)]
    err = DataValidationError(problems)
    lines = str(err).splitlines()
    assert "      ... and 988 other values" in lines  # 12 values shown of the first kind
    assert lines[-1] == "  ... and 21 more kinds of problem"  # 60 kinds shown of 81
    assert len(lines) < 80
    assert len(err.problems) == 1080  # nothing is lost: every problem is kept


def test_to_csv_gives_every_problem():
    problems = [Problem("a.csv", None, None, "file is empty"), Problem("b.csv", "x", 2, "bad, really", 'q"1')]
    rows = list(csv.DictReader(io.StringIO(DataValidationError(problems).to_csv(), newline="")))
    assert rows == [{"file": "a.csv", "column": "", "row": "", "rule": "file is empty", "value": ""},
                    {"file": "b.csv", "column": "x", "row": "2", "rule": "bad, really", "value": 'q"1'}]


def test_an_error_without_problems_is_refused():
    """A reader once raised one holding no problem at all ("0 problem(s)")."""
    with pytest.raises(ValueError, match="at least one problem"):
        DataValidationError([])
