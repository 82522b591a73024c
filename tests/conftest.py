"""Shared fixtures. Fits are expensive: fixtures that fit are session-scoped and reused."""
from __future__ import annotations

import os

import pandas as pd
import pytest

os.environ.setdefault("PYTENSOR_FLAGS", "compiledir_format=compiledir_%(platform)s-%(python_version)s")


def response_spec(name="test-response", *, factors=None, study_effect=False, priors=None,
                  draws=1000, tune=1000, seed=11, **options):
    """A response-model spec dict for tests."""
    opts = {"factors": factors if factors is not None else [], "study_effect": study_effect, **options}
    return {"name": name, "family": "response", "options": opts, "priors": priors or {},
            "sampler": {"chains": 4, "draws": draws, "tune": tune, "seed": seed, "target_accept": 0.95}}


def aggregates_frame(rows):
    """Aggregates table from tuples (study, family, level, regimen, r, n[, population])."""
    out = []
    for row in rows:
        study, family, level, regimen, r, n = row[:6]
        pop = row[6] if len(row) > 6 else "all"
        out.append({"study": study, "endpoint": "CR", "family": family, "level": level, "regimen": regimen,
                    "responders": r, "n": n, "source": "test", "population": pop, "subset_of": ""})
    return pd.DataFrame(out)


# Pediatric recommended-dosage margins (von Stackelberg et al. 2016, Fig 2): 70 patients, 27 CR.
PEDIATRIC_MARGINS = [
    ("P", "age_group", "<2", "5-15", 6, 10),
    ("P", "age_group", "2-6", "5-15", 8, 20),
    ("P", "age_group", "7-17", "5-15", 13, 40),
    ("P", "blast_burden", "<50", "5-15", 10, 18),
    ("P", "blast_burden", ">=50", "5-15", 17, 52),
]


@pytest.fixture(scope="session")
def pediatric_margins():
    return aggregates_frame(PEDIATRIC_MARGINS)
