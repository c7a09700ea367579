r"""Drift of the share of missing values.

A feature that suddenly arrives empty more often is a pipeline incident even when the
values that do arrive look the same, so the missing rate is checked on its own, for
numeric and categorical features alike, from four counts.
"""
from __future__ import annotations

from typing import NamedTuple

from ._distributions import fisher_exact_two_sided

__all__ = ["MissingRateResult", "missing_rate"]


class MissingRateResult(NamedTuple):
    """Result of :func:`missing_rate`."""

    rate_reference: float
    rate_current: float
    difference: float
    p_value: float


def missing_rate(missing_reference: int, total_reference: int,
                 missing_current: int, total_current: int) -> MissingRateResult:
    r"""Compare the missing-value rates of two samples.

    Parameters
    ----------
    missing_reference, total_reference : int
        Missing values and rows of the reference.
    missing_current, total_current : int
        Missing values and rows of the current sample.

    Returns
    -------
    MissingRateResult
        ``rate_reference`` :math:`a/n`, ``rate_current`` :math:`c/m`, ``difference``
        :math:`c/m - a/n` (positive: more missing now) and the two-sided ``p_value`` of
        Fisher's exact test on :math:`[[a, n-a], [c, m-c]]` [1]_.

    Notes
    -----
    The effect size is the difference in percentage points, not a ratio: 0% -> 1% and
    34% -> 35% are both one point, which keeps a default threshold meaningful on
    features that are never missing and on features that often are.

    References
    ----------
    .. [1] R. A. Fisher, "On the interpretation of chi-square from contingency tables,
       and the calculation of P", JRSS 85 (1922), 87-94.

    Examples
    --------
    >>> r = missing_rate(0, 2000, 200, 2000)
    >>> r.rate_reference, r.rate_current, r.difference, r.p_value < 1e-50
    (0.0, 0.1, 0.1, True)
    >>> missing_rate(5, 100, 5, 100).p_value
    1.0
    """
    for name, value in (("missing_reference", missing_reference), ("total_reference", total_reference),
                        ("missing_current", missing_current), ("total_current", total_current)):
        if int(value) != value or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if total_reference <= 0 or total_current <= 0:
        raise ValueError(f"totals must be positive, got {total_reference!r} and {total_current!r}")
    if missing_reference > total_reference or missing_current > total_current:
        raise ValueError("missing counts cannot exceed totals")
    a, c = int(missing_reference), int(missing_current)
    n, m = int(total_reference), int(total_current)
    p = fisher_exact_two_sided(a, n - a, c, m - c)
    return MissingRateResult(a / n, c / m, c / m - a / n, p)
