"""Patient-level CR data simulated from the response model with known parameters."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bayes_blina.data.dataset import Dataset


@dataclass
class ResponseTruth:
    """True parameters of the logistic CR model (logit scale effects).

    Defaults are loosely calibrated to the pediatric study (von Stackelberg et al. 2016, Fig 2):
    overall CR about 39%, higher with < 50% blasts and in the youngest children.
    """

    alpha: float = -0.45
    effects: dict[str, dict[str, float]] = field(default_factory=lambda: {
        "regimen": {"5-15": 0.0, "15": 0.25, "5-15-30": 0.1},
        "age_group": {"<2": 0.7, "2-6": 0.1, "7-17": -0.2},
        "blast_burden": {"<50": 0.5, ">=50": -0.3},
    })
    composition: dict[str, dict[str, float]] = field(default_factory=lambda: {
        "regimen": {"5-15": 0.6, "15": 0.2, "5-15-30": 0.2},
        "age_group": {"<2": 0.15, "2-6": 0.3, "7-17": 0.55},
        "blast_burden": {"<50": 0.3, ">=50": 0.7},
    })
    study_effects: dict[str, float] = field(default_factory=lambda: {"SIM": 0.0})

    def probability(self, subjects: pd.DataFrame) -> np.ndarray:
        """True CR probability of each subject."""
        eta = np.full(len(subjects), self.alpha) + subjects["study"].map(self.study_effects).to_numpy(float)
        for f, eff in self.effects.items():
            eta += subjects[f].map(eff).to_numpy(float)
        return 1.0 / (1.0 + np.exp(-eta))


def simulate_response_cohort(n: int, truth: ResponseTruth | None = None, *, seed: int = 0) -> tuple[Dataset, pd.DataFrame]:
    """Simulate ``n`` patients with covariates and CR outcomes.

    Returns
    -------
    dataset : Dataset
        With a canonical ``subjects`` table.
    subjects_truth : DataFrame
        The same subjects with the true probability ``p_true``.
    """
    truth = truth or ResponseTruth()
    rng = np.random.default_rng(seed)
    studies = list(truth.study_effects)
    df = pd.DataFrame({
        "subject_id": [f"S{i:04d}" for i in range(n)],
        "study": rng.choice(studies, size=n),
    })
    for f, comp in truth.composition.items():
        levels, w = list(comp), np.array(list(comp.values()), float)
        df[f] = rng.choice(levels, size=n, p=w / w.sum())
    df["p_true"] = truth.probability(df)
    df["response"] = (rng.random(n) < df["p_true"]).astype(int)
    subjects = df.drop(columns="p_true").copy()
    subjects["response"] = subjects["response"].astype("Int64")
    return Dataset(subjects=subjects, name=f"simulated-response-{n}", origin=f"simulate_response_cohort(seed={seed})"), df
