"""Partially pooled effect blocks, partially centred by the information the data carry.

A block of effects shares one spread ``sd``: the level effects of a factor (zero-sum, so that the
intercept is the average of the levels) or the study effects (independent). Written as
``b = B @ gamma`` with ``gamma ~ Normal(0, sd^2 I_m)`` and ``B`` a ``K x m`` matrix with orthonormal
columns (the zero-sum subspace, ``m = K - 1``; or the identity, ``m = K``), the block's prior is
exactly PyMC's ``ZeroSumNormal(sd)`` (or ``Normal(0, sd)``), whatever orthonormal ``B`` is used.

How ``gamma`` is handed to the sampler decides whether NUTS can explore it:

* **centred** (``gamma`` itself) is right where the data pin the effects: their likelihood then
  dominates the prior, and ``gamma`` is nearly independent of ``sd``;
* **non-centred** (``gamma = sd * z``, ``z ~ N(0, 1)``) is right where the data say little (a level
  without patients, a contrast confounded with the intercept): there the centred form is a funnel;
* where the data pin the effects, the non-centred form is an *inverse* funnel: ``z = b / sd`` is a
  ridge whose width shrinks like ``1 / sd``, on which NUTS diverges in the upper tail of the
  spread (measurements in ``docs/sampling.md``).

A factor usually has both kinds of direction at once (levels with hundreds of patients and a level
with none), so no single choice per factor works. This module therefore rotates each block into the
eigenvectors of the information the data carry about it and centres each direction partially
(Papaspiliopoulos, Roberts and Sköld 2007, *Statistical Science* 22:59; the variationally inferred
parameterisation of Gorinova, Moore and Hoffman 2020, with the weights computed in closed form)::

    gamma_j = sd^(1 - w_j) * g_j,      g_j ~ Normal(0, sd^w_j)

``lam_j`` is the data's precision along eigen-direction ``j`` (the Fisher information of a logistic
model at the pooled response rate, with the other parameters integrated out under their priors, see
:func:`marginal_block_precision`), and ``w_j`` keeps the conditional scale of ``g_j`` as constant
as it can over the spread prior's central 99.8% (:func:`centring_weights`). ``w = 1`` is the centred
form, ``w = 0`` the non-centred one; directions without data get ``w = 0``, directions the data pin
get ``w`` near 1. The prior (and so the posterior) is the same for every choice of ``w``:
only the sampler's coordinates change. The weights are recorded in the fit's ``data_use``.

Examples
--------
>>> import numpy as np
>>> B = zero_sum_basis(3)
>>> B.shape, bool(np.allclose(B.sum(axis=0), 0.0)), bool(np.allclose(B.T @ B, np.eye(2)))
((3, 2), True, True)
>>> centring_weights(np.array([0.0, 1.0, 1e4]), sd_range=(0.1, 3.0)).tolist()
[0.0, 0.335, 1.0]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EffectBlock", "centring_weights", "effect_block", "marginal_block_precision",
           "pooled_effects", "zero_sum_basis"]


def zero_sum_basis(k: int) -> np.ndarray:
    """Orthonormal basis of the zero-sum subspace of R^k: the matrix of PyMC's zero-sum transform.

    Column ``j`` is the backward zero-sum transform of the unit vector ``e_j`` (the map PyMC's
    ``ZeroSumNormal`` uses, and the Stan reference's ``zerosum_backward``), so with every weight 0
    the coordinates are exactly those of ``sd * ZeroSumNormal(1)``.

    Parameters
    ----------
    k : int
        Number of levels (at least 1).

    Returns
    -------
    numpy.ndarray
        ``(k, k - 1)``; columns orthonormal and each summing to zero.
    """
    if k < 1:
        raise ValueError(f"a factor needs at least one level (found {k})")
    basis = np.zeros((k, k - 1))
    for j in range(k - 1):
        x = np.zeros(k - 1)
        x[j] = 1.0
        s = x.sum()
        nrm = s / (np.sqrt(k) + k)
        basis[:, j] = np.append(x, nrm - s / np.sqrt(k)) - nrm
    return basis


def centring_weights(precision: np.ndarray, sd_range: tuple[float, float]) -> np.ndarray:
    """Partial-centring weight of each direction, chosen over the spread's plausible range.

    Given the spread ``sd``, the coordinate ``g = gamma / sd^(1 - w)`` has conditional precision
    about ``P(sd) = sd^(-2w) + lam sd^(2 - 2w)`` (prior plus data). A good coordinate keeps ``P``
    nearly constant while the sampler moves ``sd``: ``w`` minimises ``max P / min P`` over
    ``sd_range`` (the response model passes its spread prior's 0.1% and 99.9% quantiles), on a
    grid of 201 weights. ``lam = 0`` gives 0 (non-centred); a large ``lam`` gives nearly 1.

    Parameters
    ----------
    precision : numpy.ndarray
        The data's precision ``lam_j`` along each direction (negative values are treated as 0).
    sd_range : tuple of float
        Low and high plausible spread (``0 < low < high``).

    Returns
    -------
    numpy.ndarray
        Weights in ``[0, 1]``.
    """
    lo, hi = (float(x) for x in sd_range)
    if not 0 < lo < hi:
        raise ValueError(f"sd_range must be 0 < low < high (found {sd_range})")
    lam = np.clip(np.asarray(precision, dtype=float), 0.0, None)
    sd = np.geomspace(lo, hi, 64)[:, None]
    grid = np.linspace(0.0, 1.0, 201)[None, :]
    out = np.empty(lam.shape)
    for j, lj in enumerate(lam.ravel()):
        logp = np.logaddexp(-2.0 * grid * np.log(sd), np.log(lj) + (2.0 - 2.0 * grid) * np.log(sd)) \
            if lj > 0 else -2.0 * grid * np.log(sd)
        spread = logp.max(axis=0) - logp.min(axis=0)
        out.ravel()[j] = grid[0, int(np.argmin(spread))]
    return out


def marginal_block_precision(design: np.ndarray, weight: np.ndarray, prior_precision: np.ndarray,
                             block: slice) -> np.ndarray:
    """The data's precision matrix about one block, the other parameters integrated out.

    For a generalised linear model with design ``X`` and working weights ``W``, the posterior
    precision of all coefficients is about ``X' W X + D`` (``D``: prior precisions). The marginal
    posterior precision of the block is the inverse of the block of its inverse; subtracting the
    block's own prior precision leaves what the data (through the other parameters) say about it.

    Parameters
    ----------
    design : numpy.ndarray
        ``(n_units, n_par)`` design of the linear predictor.
    weight : numpy.ndarray
        ``(n_units,)`` working weights (e.g. ``n p (1 - p)`` for binomial units).
    prior_precision : numpy.ndarray
        ``(n_par,)`` prior precision of each coefficient.
    block : slice
        The block's columns.

    Returns
    -------
    numpy.ndarray
        Symmetric ``(m, m)`` matrix, ``m`` the block's size.
    """
    X = np.asarray(design, dtype=float)
    info = X.T @ (np.asarray(weight, dtype=float)[:, None] * X) + np.diag(prior_precision)
    cov = np.linalg.inv(info)
    marginal = np.linalg.inv(cov[block, block])
    out = marginal - np.diag(np.asarray(prior_precision, dtype=float)[block])
    return 0.5 * (out + out.T)


@dataclass(frozen=True)
class EffectBlock:
    """Coordinates of one pooled block: ``effects = basis @ gamma``, ``gamma_j`` centred by ``w_j``.

    Attributes
    ----------
    basis : numpy.ndarray
        ``(K, m)`` orthonormal columns (eigen-directions of the block's information).
    weights : numpy.ndarray
        ``(m,)`` partial-centring weight of each column.
    precision : numpy.ndarray
        ``(m,)`` the data's precision along each column.
    """

    basis: np.ndarray
    weights: np.ndarray
    precision: np.ndarray

    def describe(self) -> str:
        """Short words for provenance: 'centred', 'non-centred' or 'partial (w = ...)'."""
        w = self.weights
        if w.size == 0:
            return "none (one level)"
        if np.all(w >= 0.999):
            return "centred"
        if np.all(w <= 0.001):
            return "non-centred"
        return "partial (w = " + ", ".join(f"{x:.2f}" for x in w) + ")"


def effect_block(basis: np.ndarray, precision_matrix: np.ndarray | None, sd_range: tuple[float, float],
                 mode: str = "auto") -> EffectBlock:
    """Rotate a block into the eigenvectors of its data precision and choose its weights.

    Parameters
    ----------
    basis : numpy.ndarray
        ``(K, m)`` orthonormal basis of the block (:func:`zero_sum_basis` or the identity).
    precision_matrix : numpy.ndarray or None
        ``(m, m)`` data precision in ``basis`` coordinates (:func:`marginal_block_precision`);
        ``None`` with a fixed ``mode``.
    sd_range : tuple of float
        Plausible range of the spread (e.g. its prior's 0.1% and 99.9% quantiles).
    mode : {'auto', 'centered', 'noncentered'}
        ``auto`` weights each direction by its information; the others fix every weight to 1 or 0.

    Returns
    -------
    EffectBlock
    """
    m = basis.shape[1]
    if mode == "auto" and m:
        lam, vec = np.linalg.eigh(precision_matrix)
        order = np.argsort(lam)[::-1]
        lam, vec = np.clip(lam[order], 0.0, None), vec[:, order]
        return EffectBlock(basis=basis @ vec, weights=centring_weights(lam, sd_range), precision=lam)
    fixed = {"centered": 1.0, "noncentered": 0.0}.get(mode)
    if fixed is None and m:
        raise ValueError(f"unknown parameterisation {mode!r}: use 'auto', 'centered' or 'noncentered'")
    return EffectBlock(basis=basis, weights=np.full(m, fixed if fixed is not None else 0.0),
                       precision=np.full(m, np.nan))


def pooled_effects(name: str, sd, block: EffectBlock, dims: str):
    """The block's effects as a PyMC deterministic ``name`` (inside a model context).

    The free variable ``<name>_raw`` (dimension ``<dims>_direction``, added to the model's
    coordinates) holds ``g``; the effects are
    ``basis @ (sd^(1 - w) * g)`` with ``g_j ~ Normal(0, sd^w_j)``.

    Parameters
    ----------
    name : str
        Name of the effects (e.g. ``beta_regimen``).
    sd : pytensor scalar
        The block's spread.
    block : EffectBlock
        Coordinates from :func:`effect_block`.
    dims : str
        Dimension of the effects (the factor's levels, or ``study``).

    Returns
    -------
    pytensor.tensor.TensorVariable
        The ``K`` effects.
    """
    import pymc as pm
    import pytensor.tensor as pt

    m = block.basis.shape[1]
    if m == 0:
        return pm.Deterministic(name, pt.zeros(block.basis.shape[0]), dims=dims)
    w = block.weights
    model = pm.modelcontext(None)
    direction = f"{dims}_direction"
    if direction not in model.coords:
        model.add_coord(direction, list(range(m)))
    g = pm.Normal(f"{name}_raw", 0.0, sd ** w, dims=direction)
    gamma = sd ** (1.0 - w) * g
    return pm.Deterministic(name, pt.dot(block.basis, gamma), dims=dims)
