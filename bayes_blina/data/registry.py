"""Registry of the datasets bundled with bayes_blina.

The bundled datasets hold the published aggregate numbers of the two source papers, copied into
CSV files inside the package (``bayes_blina/data/bundled/<folder>/``), so nothing outside the
package is read at run time. A bundled dataset is one or more such folders: the composite
``published`` stacks both papers.

Examples
--------
>>> from bayes_blina.data.registry import list_datasets, bundled_folders
>>> list_datasets()["name"].tolist()
['vonstackelberg2016', 'nagele2017', 'vonstackelberg2016-escalation', 'published']
>>> [p.name for p in bundled_folders("published")]
['vonstackelberg2016', 'nagele2017']
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bayes_blina.errors import BayesBlinaError

#: Folder holding one sub-folder per bundled study.
BUNDLED_ROOT = Path(__file__).resolve().parent / "bundled"

#: Table names a bundled folder may hold, in canonical order (``NAME.csv``).
_TABLES = ("subjects", "dosing", "observations", "aggregates", "summaries", "dlt")

_VS_CITATION = (
    "von Stackelberg A, et al. J Clin Oncol 2016;34:4381. doi:10.1200/JCO.2016.67.3301 "
    "(NCT01471782)"
)
_NG_CITATION = "Nägele V, et al. Exp Hematol Oncol 2017;6:14 (NCT01209286)"

#: Metadata of every bundled dataset: name -> description, citation, study labels, folders.
BUNDLED: dict[str, dict] = {
    "vonstackelberg2016": {
        "description": (
            "Pediatric phase I/II (n=93; 70 at the recommended 5-15 ug/m2/day): CR within two "
            "cycles overall and by subgroup (Fig 2, Table 2), MRD, DLTs by dose cohort, CRS and "
            "other adverse events, baseline characteristics, RFS/OS"
        ),
        "citation": _VS_CITATION,
        "studies": ("vonStackelberg2016",),
        "folders": ("vonstackelberg2016",),
    },
    "nagele2017": {
        "description": (
            "Adult exploratory phase II (n=36; flat 15, 5-15, 5-15-30 ug/m2/day): CR/CRh 25/36, "
            "Css by dose, assay limits, liver and first-dose lab peaks, neutrophil, platelet and "
            "T-cell kinetics by responder status, cytokine peak times"
        ),
        "citation": _NG_CITATION,
        "studies": ("Nagele2017",),
        "folders": ("nagele2017",),
    },
    "vonstackelberg2016-escalation": {
        "description": (
            "Pediatric phase I dose escalation (rolling six): DLTs by cohort at 5, 15, 30 and "
            "15-30 ug/m2/day (0/5, 1/7, 2/5, 1/6), in the dlt.csv format of the dose-toxicity model"
        ),
        "citation": _VS_CITATION,
        "studies": ("vonStackelberg2016",),
        "folders": ("vonstackelberg2016_escalation",),
    },
    "published": {
        "description": "Both source papers together (vonstackelberg2016 + nagele2017)",
        "citation": f"{_VS_CITATION}; {_NG_CITATION}",
        "studies": ("vonStackelberg2016", "Nagele2017"),
        "folders": ("vonstackelberg2016", "nagele2017"),
    },
}


def _resolve(name: str) -> str:
    key = str(name).strip().lower()
    if key not in BUNDLED:
        valid = ", ".join(BUNDLED)
        raise BayesBlinaError(f"unknown bundled dataset {name!r}; valid names are: {valid}")
    return key


def bundled_folders(name: str) -> list[Path]:
    """The folders that make up a bundled dataset.

    Parameters
    ----------
    name : str
        A bundled dataset name (case-insensitive), e.g. ``"vonstackelberg2016"`` or the composite
        ``"published"``.

    Returns
    -------
    list of pathlib.Path
        One folder per study, in a fixed order.

    Raises
    ------
    BayesBlinaError
        If ``name`` is not a bundled dataset; the message lists the valid names.
    """
    key = _resolve(name)
    return [BUNDLED_ROOT / folder for folder in BUNDLED[key]["folders"]]


def _tables(folders: list[Path]) -> list[str]:
    return [t for t in _TABLES if any((f / f"{t}.csv").is_file() for f in folders)]


def list_datasets() -> pd.DataFrame:
    """The bundled datasets, one row each.

    Returns
    -------
    pandas.DataFrame
        Columns ``name``, ``description``, ``studies`` (study labels, comma-separated),
        ``tables`` (tables present, comma-separated) and ``citation``.
    """
    rows = []
    for name, meta in BUNDLED.items():
        rows.append(
            {
                "name": name,
                "description": meta["description"],
                "studies": ", ".join(meta["studies"]),
                "tables": ", ".join(_tables(bundled_folders(name))),
                "citation": meta["citation"],
            }
        )
    return pd.DataFrame(rows, columns=["name", "description", "studies", "tables", "citation"])


__all__ = ["BUNDLED", "BUNDLED_ROOT", "bundled_folders", "list_datasets"]
