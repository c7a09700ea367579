r"""Distances between two histograms given as bin counts.

Every function takes the reference and current **counts over the same bins** (as built
by :mod:`driftguard.components.drift.binning`), so the same code serves :func:`detect_drift` on raw
arrays and a Beam job that only ships counts. The order of arguments is always
``(reference, current)``.

=================== ======================================================== ========
function            formula (:math:`p` reference, :math:`q` current shares)  range
=================== ======================================================== ========
:func:`psi`         :math:`\sum_i (q_i - p_i)\ln(q_i/p_i)`, smoothed shares  [0, inf)
:func:`jensen_shannon` :math:`\tfrac12 KL(p\|m) + \tfrac12 KL(q\|m)`, base 2     [0, 1]
:func:`hellinger`   :math:`\sqrt{1 - \sum_i \sqrt{p_i q_i}}`                 [0, 1]
:func:`linf`        :math:`\max_i |p_i - q_i|`                               [0, 1]
:func:`chi_square`  Pearson's test of homogeneity + Cramer's V               [0, 1]
=================== ======================================================== ========

Empty bins
    Only PSI divides by a share. It uses additive (Laplace/Lidstone) smoothing with the
    Jeffreys pseudo-count :math:`a = 1/2` per bin, :math:`\hat p_i = (r_i + a)/(n + ka)`,
    the Krichevsky-Trofimov estimator of a multinomial share: it is the posterior mean
    under the Jeffreys prior, finite for every bin, and its influence vanishes as counts
    grow. Jensen-Shannon, Hellinger and L-infinity are finite on raw shares (with
    :math:`0 \ln 0 = 0`), so they are not smoothed. The chi-square test merges bins
    whose expected count is below 5 (Cochran's rule) using only the margins, which keeps
    the test valid. No magic epsilons.
"""
from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Tuple

import numpy as np
from scipy import special

from ._distributions import chi2_sf

__all__ = ["psi", "jensen_shannon", "hellinger", "linf", "chi_square", "ChiSquareResult", "JEFFREYS",
           "chi_square_counts", "histogram_scores"]

#: Jeffreys pseudo-count added to every bin by :func:`psi`.
JEFFREYS = 0.5


def _check_counts(reference, current) -> Tuple[np.ndarray, np.ndarray]:
    return _checked(reference, current)[:2]


def _checked(reference, current) -> Tuple[np.ndarray, np.ndarray, float, float]:
    """Both count arrays as floats, checked, and their sums."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    totals = []
    for name, arr in (("reference", ref), ("current", cur)):
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{name} counts must be a non-empty 1-D array, got shape {arr.shape}")
        total = arr.sum()
        totals.append(total)
        if arr.min() >= 0 and 0 < total < math.inf:  # the usual case in two passes: no NaN, no infinity
            continue
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"{name} counts must be finite and non-negative, got {arr.tolist()!r}")
        if total <= 0:
            raise ValueError(f"{name} counts must not all be zero, got {arr.tolist()!r}")
    if ref.shape != cur.shape:
        raise ValueError(f"reference and current counts must have the same bins, got {ref.size} and {cur.size} bins")
    return ref, cur, totals[0], totals[1]


def psi(reference, current, smoothing: float = JEFFREYS) -> float:
    r"""Population Stability Index between two histograms.

    Parameters
    ----------
    reference, current : array_like
        Counts per bin (same bins, same order).
    smoothing : float, default 0.5
        Pseudo-count added to every bin of both histograms (Jeffreys). With ``0``, an
        empty bin on one side only gives ``inf``.

    Returns
    -------
    float
        :math:`\mathrm{PSI} = \sum_i (q_i - p_i)\ln(q_i / p_i)` with
        :math:`p_i = (r_i + a)/(n + ka)` and :math:`q_i = (c_i + a)/(m + ka)`.

    Notes
    -----
    PSI is the symmetrised Kullback-Leibler divergence
    :math:`KL(p\|q) + KL(q\|p)` (Jeffreys' J-divergence) [1]_ [2]_. For a small change it
    is close to :math:`\sum_i (q_i-p_i)^2/p_i`, so under no drift its expected value is
    about :math:`(k-1)(1/n + 1/m)` for :math:`k` bins, which is why a fixed threshold
    needs enough rows. The usual credit-scoring reading, "< 0.1 stable, > 0.25 shifted",
    is far too coarse for monitoring: on the Chicago taxi data a 10% fare increase
    scores only about 0.06 on reference deciles (see ``components/drift/README.md``).

    References
    ----------
    .. [1] B. Yurdakul, "Statistical properties of population stability index", PhD
       thesis, Western Michigan University, 2018.
    .. [2] H. Jeffreys, "An invariant form for the prior probability in estimation
       problems", Proc. R. Soc. A 186 (1946), 453-461.

    Examples
    --------
    >>> round(psi([50, 50], [40, 60], smoothing=0), 6)  # 0.1 ln(0.5/0.4) + 0.1 ln(0.6/0.5)
    0.040547
    >>> round(psi([10, 0], [5, 5]), 4)  # the empty bin is smoothed, not dropped
    1.3839
    """
    ref, cur = _check_counts(reference, current)
    a = float(smoothing)
    if a < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing!r}")
    return _psi(ref, cur, a, ref.sum(), cur.sum())


def _psi(ref: np.ndarray, cur: np.ndarray, a: float, n: float, m: float) -> float:
    """:func:`psi` of checked arrays with sums ``n`` and ``m``."""
    k = ref.size
    p = (ref + a) / (n + k * a)
    q = (cur + a) / (m + k * a)
    if not (p.min() > 0 and q.min() > 0):  # a share of 0 needs (next to) no smoothing
        both_zero = (p == 0) & (q == 0)
        p, q = p[~both_zero], q[~both_zero]
        if np.any((p == 0) | (q == 0)):
            return float("inf")
    return float(((q - p) * np.log(q / p)).sum())


def _shares(ref: np.ndarray, cur: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    return ref / ref.sum(), cur / cur.sum()


def jensen_shannon(reference, current, base: float = 2.0) -> float:
    r"""Jensen-Shannon divergence between two histograms (not its square root).

    Returns
    -------
    float
        :math:`\tfrac12\sum_i p_i\log(p_i/m_i) + \tfrac12\sum_i q_i\log(q_i/m_i)` with
        :math:`m = (p+q)/2`, in [0, 1] for base 2 (the default).

    Notes
    -----
    Finite without smoothing (:math:`0\log 0 = 0`). TFDV's drift comparator uses the
    same quantity; its square root is the Jensen-Shannon *distance* of
    ``scipy.spatial.distance.jensenshannon`` [1]_.

    References
    ----------
    .. [1] J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf.
       Theory 37 (1991), 145-151.

    Examples
    --------
    >>> jensen_shannon([1, 0], [0, 1])
    1.0
    >>> round(jensen_shannon([50, 50], [40, 60]), 6)
    0.007299
    """
    return _jensen_shannon(*_shares(*_check_counts(reference, current)), base)


def _jensen_shannon(p: np.ndarray, q: np.ndarray, base: float = 2.0) -> float:
    m = (p + q) / 2.0
    value = 0.5 * special.rel_entr(p, m).sum() + 0.5 * special.rel_entr(q, m).sum()
    return float(max(0.0, value / np.log(base)))


def hellinger(reference, current) -> float:
    r"""Hellinger distance between two histograms.

    Returns
    -------
    float
        :math:`H = \sqrt{1 - \sum_i \sqrt{p_i q_i}} =
        \tfrac{1}{\sqrt2}\,\lVert\sqrt p - \sqrt q\rVert_2`, in [0, 1].

    References
    ----------
    .. [1] E. Hellinger, "Neue Begruendung der Theorie quadratischer Formen von
       unendlichvielen Veraenderlichen", J. Reine Angew. Math. 136 (1909), 210-271.

    Examples
    --------
    >>> hellinger([1, 0], [0, 1])
    1.0
    >>> round(hellinger([50, 50], [40, 60]), 6)
    0.071161
    """
    return _hellinger(*_shares(*_check_counts(reference, current)))


def _hellinger(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sqrt(max(0.0, 1.0 - np.sqrt(p * q).sum())))


def linf(reference, current) -> float:
    r"""L-infinity distance: the largest change of any bin's share.

    Returns
    -------
    float
        :math:`\max_i |p_i - q_i|`, in [0, 1] (0.1 = some bin moved by 10 points).

    Notes
    -----
    TFDV's ``infinity_norm`` comparator for categorical features [1]_.

    References
    ----------
    .. [1] TensorFlow Data Validation, "Drift and skew detection",
       https://www.tensorflow.org/tfx/data_validation/get_started

    Examples
    --------
    >>> linf([66, 34], [56, 44])
    0.1
    """
    return _linf(*_shares(*_check_counts(reference, current)))


def _linf(p: np.ndarray, q: np.ndarray) -> float:
    return float(round(np.abs(p - q).max(), 15))


class ChiSquareResult(NamedTuple):
    """Result of :func:`chi_square`."""

    statistic: float
    p_value: float
    dof: int
    cramers_v: float
    n_bins: int


def _segment_sums(values: np.ndarray, starts: List[int], counts: bool) -> np.ndarray:
    """``values[a:b].sum()`` for the segments starting at ``starts``, the last one running to the end.

    ``numpy.add.reduceat`` adds each segment in sequence, not pairwise as ``sum`` does; the
    results agree exactly for counts (integers with a total below 2**53, ``counts`` when
    the caller knows it), which is what :func:`chi_square` gets from ``detect_drift``.
    Other numbers go one slice at a time.
    """
    if counts or float(values.sum()) < 2.0 ** 53 and not np.any(values % 1.0):
        return np.add.reduceat(values, starts)
    ends = list(starts[1:]) + [values.size]
    return np.array([values[a:b].sum() for a, b in zip(starts, ends)])


def _merge_bins(ref: np.ndarray, cur: np.ndarray, min_expected: float, ordered: bool,
                totals: Tuple[float, float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Merge bins until every expected count is >= ``min_expected``, looking at margins only.

    ``totals``: the sums of the two arrays when they hold counts (integers with a sum below
    2**53), exact whatever the order of the additions.
    """
    counts = totals is not None
    n, m = totals if counts else (ref.sum(), cur.sum())
    need = min_expected * (n + m) / min(n, m)  # pooled count a bin needs
    total = ref + cur
    if ordered:
        starts, start, acc = [], 0, 0.0
        for i, t in enumerate(total.tolist()):
            acc += t
            if acc >= need:
                starts.append(start)
                start, acc = i + 1, 0.0
        if not starts:  # (a remainder joins the last group)
            starts = [0]
        return _segment_sums(ref, starts, counts), _segment_sums(cur, starts, counts)
    big = total >= need
    r, c = list(ref[big]), list(cur[big])
    if not big.all():
        r.append(ref[~big].sum())
        c.append(cur[~big].sum())
        if r[-1] + c[-1] < need and len(r) > 1:
            smallest = int(np.argmin(np.array(r[:-1]) + np.array(c[:-1])))
            r[smallest] += r.pop()
            c[smallest] += c.pop()
    return np.array(r, dtype=float), np.array(c, dtype=float)


def chi_square(reference, current, min_expected: float = 5.0, ordered: bool = True) -> ChiSquareResult:
    r"""Pearson's chi-square test that two histograms come from one distribution.

    Parameters
    ----------
    reference, current : array_like
        Counts per bin.
    min_expected : float, default 5
        Bins are merged until each expected count is at least this (Cochran's rule);
        ``0`` merges nothing (empty bins are always dropped).
    ordered : bool, default True
        ``True`` (numeric bins): merge neighbouring bins left to right. ``False``
        (categories): pool every small bin into one, then that pool into the smallest
        large bin if it is still small.

    Returns
    -------
    ChiSquareResult
        ``statistic`` :math:`X^2 = \sum_{s,i} (O_{si} - E_{si})^2 / E_{si}` over the
        2 x k table with :math:`E_{si} = (\text{row}_s\,\text{col}_i)/N`; ``p_value``
        from :math:`\chi^2_{k-1}`; ``dof``; ``cramers_v`` :math:`= \sqrt{X^2/N}`, an
        effect size in [0, 1] that does not grow with :math:`N`; ``n_bins`` after merging.

    Notes
    -----
    Merging looks only at the column totals, which the test conditions on, so it does not
    bias the p-value. With a single bin left there is nothing to test (p = 1) [1]_.

    References
    ----------
    .. [1] W. G. Cochran, "Some methods for strengthening the common chi-square tests",
       Biometrics 10 (1954), 417-451.

    Examples
    --------
    >>> r = chi_square([50, 50], [40, 60])
    >>> round(r.statistic, 4), round(r.p_value, 4), r.dof, round(r.cramers_v, 4)
    (2.0202, 0.1552, 1, 0.1005)
    >>> chi_square([10, 0, 0], [0, 0, 10], min_expected=0).statistic
    20.0
    """
    ref, cur = _check_counts(reference, current)
    return _chi_square(ref, cur, min_expected, ordered)


def _chi_square(ref: np.ndarray, cur: np.ndarray, min_expected: float = 5.0, ordered: bool = True,
                totals: Tuple[float, float] = None) -> ChiSquareResult:
    """:func:`chi_square` of checked arrays; ``totals``: their sums when they hold counts (see :func:`_merge_bins`)."""
    keep = (ref + cur) > 0
    if not keep.all():
        ref, cur = ref[keep], cur[keep]
    if min_expected > 0:
        ref, cur = _merge_bins(ref, cur, float(min_expected), ordered, totals)
    k = ref.size
    if k < 2:
        return ChiSquareResult(0.0, 1.0, 0, 0.0, int(k))
    table = np.array([ref, cur])
    if totals is None:
        total = table.sum()
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / total
    else:  # merging keeps the sums; sums of counts are exact: the same margins, without adding them up again
        total = totals[0] + totals[1]
        expected = np.array([[totals[0]], [totals[1]]]) * (ref + cur) / total
    stat = float(((table - expected) ** 2 / expected).sum())
    return ChiSquareResult(stat, chi2_sf(stat, k - 1), int(k - 1), float(np.sqrt(stat / total)), int(k))


def chi_square_counts(reference: np.ndarray, current: np.ndarray, ordered: bool = True,
                      totals: Tuple[float, float] = None) -> ChiSquareResult:
    """:func:`chi_square` (default ``min_expected``) of two arrays of counts (integers), as ``detect_drift`` has them.

    ``totals``: their sums, when the caller knows them; the arrays are then taken as float
    arrays of valid counts and not checked again.
    """
    if totals is None:
        reference, current, *totals = _checked(reference, current)
    return _chi_square(reference, current, ordered=ordered, totals=tuple(totals))


def histogram_scores(reference: np.ndarray, current: np.ndarray, ordered: bool,
                     totals: Tuple[float, float] = None) -> Dict[str, float]:
    """:func:`psi`, :func:`jensen_shannon`, :func:`hellinger`, :func:`linf` and the ``cramers_v`` of
    :func:`chi_square` (defaults throughout) of two arrays of counts (integers), checked once.

    The same numbers as the five calls: they share the check and the shares, not the arithmetic.
    ``totals`` as in :func:`chi_square_counts`.
    """
    if totals is None:
        reference, current, *totals = _checked(reference, current)
    n, m = totals
    p, q = reference / n, current / m
    return {"psi": _psi(reference, current, JEFFREYS, n, m), "jensen_shannon": _jensen_shannon(p, q),
            "hellinger": _hellinger(p, q), "linf": _linf(p, q),
            "cramers_v": _chi_square(reference, current, ordered=ordered, totals=(n, m)).cramers_v}
