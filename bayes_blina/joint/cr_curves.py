"""P(CR) as a function of a biomarker, by regimen, with credible bands (from a joint fit).

For a grid of biomarker values ``g`` (T-cell fold change at day 29, or a cytokine peak in pg/mL)
and each level of ``by`` (default: regimen)::

    P(CR | g, level) = expit(alpha + beta_by[level] + beta_b * log2(g / ref) + sum_o beta_o * x_o)

per posterior draw: the other biomarkers ``o`` are held at ``x_o``, the median over the fitted
patients of their posterior mean (log2 scale), the numeric covariates (e.g. baseline platelets) at
the fitted patients' median, and the other covariate factors at their mean (0, their zero-sum
average). The band is the central ``prob`` interval over draws: the uncertainty of
the curve, not of a patient's outcome.
"""
from __future__ import annotations

from bayes_blina._tree import as_dataset

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import special

from bayes_blina.errors import BayesBlinaError, SpecError
from bayes_blina.families.joint import BIOMARKERS, LN2, PARTS, JointModel

__all__ = ["pcr_curve", "fitted_biomarkers", "DEFAULT_GRIDS"]

#: Default grids (natural scale): fold changes for expansion, pg/mL for peaks.
DEFAULT_GRIDS: dict[str, np.ndarray] = {
    "tcell_expansion": 2.0 ** np.linspace(-2.0, 4.0, 49),
    "il10_peak": 2.0 ** np.linspace(np.log2(10.0), np.log2(20000.0), 49),
    "il6_peak": 2.0 ** np.linspace(np.log2(10.0), np.log2(20000.0), 49),
    "ifng_peak": 2.0 ** np.linspace(np.log2(10.0), np.log2(20000.0), 49),
}


def _family_and_post(fit):
    fam = getattr(fit, "family", None)
    if fam is None:
        raise BayesBlinaError(f"cannot read a joint fit from {type(fit).__name__}")
    if not isinstance(fam, JointModel):
        raise BayesBlinaError(f"P(CR) curves need a joint-model fit (found {fam.name!r})")
    return fam, fit.idata


def _numeric_use(fit, fam: JointModel) -> dict:
    """The fit's record of its numeric CR covariates (``data_use['cr']['numeric']``)."""
    if not fam.options.numeric_covariates:
        return {}
    use = fit.prepared.data_use
    return (use.get("cr") or {}).get("numeric") or {}


def fitted_biomarkers(fit) -> pd.DataFrame:
    """Posterior mean of each biomarker (log2 scale) of the fitted CR patients, with their response.

    Returns
    -------
    DataFrame
        ``subject_id, response`` and one column per biomarker (log2 scale of the model).
    """
    fam, idata = _family_and_post(fit)
    post = as_dataset(idata.posterior)
    ids = [str(s) for s in post["p_cr"].coords["cr_patient"].values]
    out = pd.DataFrame({"subject_id": ids})
    if "cr" in getattr(idata, "observed_data", {}):
        out["response"] = np.asarray(idata.observed_data["cr"].values, dtype=int)
    elif "constant_data" in idata.children and "cr_y" in idata.constant_data:
        out["response"] = np.asarray(idata.constant_data["cr_y"].values, dtype=int)
    for b in fam.options.biomarkers:
        bm = BIOMARKERS[b]
        prefix = PARTS[bm.part][1]
        da = post[prefix + bm.key].sel({prefix + "analyte": bm.analyte}).mean(("chain", "draw"))
        lut = dict(zip([str(s) for s in da.coords[prefix + "subject"].values], np.asarray(da.values, float)))
        out[b] = [(lut[s] - fam.log_ref(b)) / LN2 for s in ids]
    return out


def pcr_curve(fit, biomarker: str = "tcell_expansion", *, grid: Sequence[float] | None = None,
              by: str | None = "regimen", prob: float = 0.9) -> pd.DataFrame:
    """Posterior median and band of P(CR) over a grid of one biomarker, per level of ``by``.

    Parameters
    ----------
    fit : Fit
        A joint-model fit with a CR part.
    biomarker : str
        One of the fit's biomarkers.
    grid : sequence of float, optional
        Biomarker values on the natural scale (fold change; pg/mL); default
        :data:`DEFAULT_GRIDS`.
    by : str or None
        A CR covariate factor of the fit (one curve per level); None, or a factor the fit dropped:
        one curve at the covariates' mean (level ``"all"``).
    prob : float
        Band probability.

    Returns
    -------
    DataFrame
        ``biomarker, value, level, p_median, p_lower, p_upper``; ``attrs['others']`` holds the
        values the other biomarkers were held at (natural scale), ``attrs['numeric']`` those of
        the numeric covariates.
    """
    fam, idata = _family_and_post(fit)
    if not 0 < prob < 1:
        raise SpecError(f"prob must be between 0 and 1 (found {prob})")
    if biomarker not in fam.options.biomarkers:
        raise SpecError(f"biomarker {biomarker!r} is not in this fit; its biomarkers are {fam.options.biomarkers}")
    g = np.asarray(DEFAULT_GRIDS[biomarker] if grid is None else grid, dtype=float)
    if g.size == 0 or np.any(~np.isfinite(g)) or np.any(g <= 0):
        raise SpecError("the grid must hold positive numbers")
    post = as_dataset(idata.posterior).stack(sample=("chain", "draw")).transpose("sample", ...)
    alpha = np.asarray(post["alpha"].values, dtype=float)
    eta = alpha[:, None] + np.asarray(post[f"beta_{biomarker}"].values, dtype=float)[:, None] \
        * ((np.log(g) - fam.log_ref(biomarker)) / LN2)[None, :]
    others = {}
    fitted = fitted_biomarkers(fit)
    for o in fam.options.biomarkers:
        if o == biomarker:
            continue
        x_o = float(np.median(fitted[o]))
        scale = 0.0 if BIOMARKERS[o].part == "tcell" else fam.log_ref(o) / LN2
        others[o] = float(2.0 ** (x_o + scale))
        eta = eta + np.asarray(post[f"beta_{o}"].values, dtype=float)[:, None] * x_o
    numeric = {}
    for c, info in _numeric_use(fit, fam).items():  # numeric covariates at the CR patients' median
        numeric[c] = float(info["median"])
        eta = eta + np.asarray(post[f"beta_{c}"].values, dtype=float)[:, None] * float(info["median_model_scale"])
    if by is not None and f"beta_{by}" in post:
        beta = post[f"beta_{by}"].transpose("sample", by)
        levels = [str(v) for v in beta.coords[by].values]
        shifts = np.asarray(beta.values, dtype=float)
    else:
        levels, shifts = ["all"], np.zeros((len(alpha), 1))
    q = (1.0 - prob) / 2.0
    rows = []
    for k, lv in enumerate(levels):
        p = special.expit(eta + shifts[:, k][:, None])
        med = np.median(p, axis=0)
        lo, hi = np.quantile(p, [q, 1.0 - q], axis=0)
        rows.append(pd.DataFrame({"biomarker": biomarker, "value": g, "level": lv, "p_median": med,
                                  "p_lower": lo, "p_upper": hi}))
    df = pd.concat(rows, ignore_index=True)
    df.attrs.update({"prob": prob, "by": by if levels != ["all"] else None, "others": others, "numeric": numeric,
                     "ref": float(np.exp(fam.log_ref(biomarker)))})
    return df
