r"""Multiple-testing corrections.

Drift reports test many hypotheses at once (one or more per feature, one per pair of
features in the multivariate check). Without a correction, 20 features at 5% give a
64% chance of at least one false alarm per comparison.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["CORRECTIONS", "holm", "bonferroni", "weighted_holm", "adjust_p_values"]

#: Accepted names for ``correction`` arguments.
CORRECTIONS = ("holm", "bonferroni", "none")


def bonferroni(p_values: Sequence[float]) -> np.ndarray:
    r"""Bonferroni-adjusted p-values, :math:`\min(1, m\,p_i)`.

    Examples
    --------
    >>> bonferroni([0.01, 0.04, 0.5]).tolist()
    [0.03, 0.12, 1.0]
    """
    p = np.asarray(p_values, dtype=float)
    return np.minimum(1.0, p * p.size)


def holm(p_values: Sequence[float]) -> np.ndarray:
    r"""Holm step-down adjusted p-values.

    Notes
    -----
    With :math:`p_{(1)} \le \dots \le p_{(m)}`, the adjusted value of :math:`p_{(i)}` is
    :math:`\max_{j \le i} \min(1, (m - j + 1)\,p_{(j)})`. Rejecting every hypothesis
    whose adjusted p-value is at most :math:`\alpha` controls the family-wise error
    rate at :math:`\alpha` under any dependence, and is uniformly more powerful than
    Bonferroni [1]_.

    References
    ----------
    .. [1] S. Holm, "A simple sequentially rejective multiple test procedure",
       Scand. J. Statist. 6 (1979), 65-70.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.5]).tolist()
    [0.03, 0.08, 0.5]
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted


def weighted_holm(p_values: Sequence[float], weights: Sequence[float]) -> np.ndarray:
    r"""Weighted Holm adjusted p-values: hypothesis :math:`i` gets the share :math:`w_i` of the level.

    Notes
    -----
    With weights normalised to sum 1 and hypotheses ordered by :math:`p_i / w_i`, the
    adjusted value of the :math:`j`-th is :math:`\max_{l \le j} \min(1, W_l\,p_{(l)} /
    w_{(l)})`, :math:`W_l` the total weight of the hypotheses not yet rejected at step
    :math:`l`. It controls the family-wise error rate at :math:`\alpha` under any dependence
    [1]_; equal weights give :func:`holm`. Used to give one omnibus test (the domain
    classifier) half of the joint family's level and the many Spearman pairs the other
    half, instead of 1/(pairs + 1) each.

    References
    ----------
    .. [1] S. Holm (1979), section 4 (weighted procedure).

    Examples
    --------
    >>> weighted_holm([0.004, 0.001, 0.02], [0.5, 0.25, 0.25]).tolist()
    [0.006, 0.004, 0.02]
    >>> bool(np.allclose(weighted_holm([0.01, 0.04, 0.5], [1, 1, 1]), holm([0.01, 0.04, 0.5])))
    True
    """
    p = np.asarray(p_values, dtype=float)
    w = np.asarray(weights, dtype=float)
    if w.shape != p.shape or (w.size and (not np.all(w > 0) or not np.all(np.isfinite(w)))):
        raise ValueError(f"weights must be positive, one per p-value; got {list(weights)!r} for {p.size} p-values")
    if p.size == 0:
        return p.copy()
    w = w / w.sum()
    ratio = p / w
    order = np.argsort(ratio, kind="stable")
    remaining = np.cumsum(w[order][::-1])[::-1]  # weight not yet rejected at each step
    stepped = np.minimum(1.0, np.maximum.accumulate(remaining * ratio[order]))
    adjusted = np.empty(p.size)
    adjusted[order] = stepped
    return adjusted


def adjust_p_values(p_values: Sequence[float], method: str = "holm", weights=None) -> np.ndarray:
    """Adjust p-values with ``method`` (one of :data:`CORRECTIONS`), optionally weighted.

    ``weights`` (positive, normalised to sum 1) give each hypothesis its share of the
    level: weighted Holm (:func:`weighted_holm`) or Bonferroni (:math:`\min(1, p_i/w_i)`);
    ignored by ``"none"``.

    Examples
    --------
    >>> adjust_p_values([0.01, 0.04], "none").tolist()
    [0.01, 0.04]
    >>> adjust_p_values([0.01], "sidak")
    Traceback (most recent call last):
    ...
    ValueError: unknown correction 'sidak'; available: holm, bonferroni, none
    """
    if weights is not None and method == "holm":
        return weighted_holm(p_values, weights)
    if weights is not None and method == "bonferroni":
        w = np.asarray(weights, dtype=float)
        return np.minimum(1.0, np.asarray(p_values, dtype=float) / (w / w.sum()))
    if method == "holm":
        return holm(p_values)
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=float).copy()
    raise ValueError(f"unknown correction {method!r}; available: {', '.join(CORRECTIONS)}")
