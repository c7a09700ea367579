r"""Multiple-testing corrections.

Drift reports test many hypotheses at once (one or more per feature, one per pair of
features in the multivariate check). Without a correction, 20 features at 5% give a
64% chance of at least one false alarm per comparison.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["CORRECTIONS", "holm", "bonferroni", "adjust_p_values"]

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


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjust p-values with ``method`` (one of :data:`CORRECTIONS`).

    Examples
    --------
    >>> adjust_p_values([0.01, 0.04], "none").tolist()
    [0.01, 0.04]
    >>> adjust_p_values([0.01], "sidak")
    Traceback (most recent call last):
    ...
    ValueError: unknown correction 'sidak'; available: holm, bonferroni, none
    """
    if method == "holm":
        return holm(p_values)
    if method == "bonferroni":
        return bonferroni(p_values)
    if method == "none":
        return np.asarray(p_values, dtype=float).copy()
    raise ValueError(f"unknown correction {method!r}; available: {', '.join(CORRECTIONS)}")
