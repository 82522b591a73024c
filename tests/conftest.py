"""Shared fixtures. Fits are expensive: fixtures that fit are session-scoped and reused."""
from __future__ import annotations

import os

import pandas as pd
import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (fixed seeds, as everywhere in the suite):
# a failure in CI is then reproducible on any machine.
settings.register_profile("bayes_blina", derandomize=True)
settings.load_profile("bayes_blina")

os.environ.setdefault("PYTENSOR_FLAGS", "compiledir_format=compiledir_%(platform)s-%(python_version)s")


def response_spec(name="test-response", *, factors=None, study_effect=False, priors=None,
                  draws=1000, tune=1000, seed=11, **options):
    """A response-model spec dict for tests."""
    opts = {"factors": factors if factors is not None else [], "study_effect": study_effect, **options}
    return {"name": name, "family": "response", "options": opts, "priors": priors or {},
            "sampler": {"chains": 4, "draws": draws, "tune": tune, "seed": seed, "target_accept": 0.99}}


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


# Fig 2 of von Stackelberg et al. 2016 (J Clin Oncol 34:4381): printed CR % with exact 95% CI.
FIG2_PRINTED = [
    # family, level, responders, n, printed %, CI low, CI high
    ("all", "all", 27, 70, 38.6, 27.2, 51.0),
    ("region", "EU", 19, 48, 39.6, 25.8, 54.7),
    ("region", "US", 8, 22, 36.4, 17.2, 59.3),
    ("blast_burden", "<50", 10, 18, 55.6, 30.8, 78.5),
    ("blast_burden", ">=50", 17, 52, 32.7, 20.3, 47.1),
    ("age_group", "<2", 6, 10, 60.0, 26.2, 87.8),
    ("age_group", "2-6", 8, 20, 40.0, 19.1, 63.9),
    ("age_group", "7-17", 13, 40, 32.5, 18.6, 49.1),
    ("prior_hsct", "no", 8, 30, 26.7, 12.3, 45.9),
    ("prior_hsct", "yes", 19, 40, 47.5, 31.5, 63.9),
    ("refractory", "yes", 12, 39, 30.8, 17.0, 47.6),
    ("refractory", "no", 15, 31, 48.4, 30.2, 66.9),
    ("prior_relapses", "0", 0, 2, 0.0, 0.0, 84.2),
    ("prior_relapses", "1", 10, 31, 32.3, 16.7, 51.4),
    ("prior_relapses", "2", 14, 29, 48.3, 29.4, 67.5),
    ("prior_relapses", ">=3", 3, 8, 37.5, 8.5, 75.5),
]


def cli_commands():
    """Every leaf command of ``bayes-blina`` as ``(path words joined by spaces, click command)``."""
    import click

    from bayes_blina.cli import main

    found = []

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            found.append((" ".join(path), cmd))

    walk(main, [])
    return found
