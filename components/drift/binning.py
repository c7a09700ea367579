r"""Bins that stay sound on heavy tails, discrete-heavy numbers and sparse categories.

Every binned score in :mod:`driftguard.components.drift.divergence` compares a reference and a
current histogram over the *same* bins. This module builds those bins from the reference
alone, so a profile computed once (for instance by a Beam job over a training span) can
be reused for every later span.

Numeric features
    :func:`quantile_edges` cuts the reference at its deciles (``n_bins=10``), so each bin
    holds about a tenth of the reference however long the tails are (equal-width bins put
    almost everything in one bin when ``fare`` reaches 700). Repeated quantiles of a
    discrete-heavy feature (68% of ``tips`` are 0) are deduplicated, and each edge is put
    *in the gap above an atom* (halfway to the next reference percentile), never on a
    value: a tiny shift of an atom (``fare * 1.003``) then stays in its bin instead of
    jumping to the next one. An edge that would sit inside a tight cluster of neighbouring
    values (GPS coordinates of one address) moves to a gap beside it
    (:data:`CLUSTER_TOLERANCE`).

Categorical features
    :func:`category_bins` keeps categories holding at least ``min_share`` of the reference
    and pools the rest, together with categories the reference never saw, into
    :data:`OTHER` (61 taxi companies, most with a handful of trips, become one bucket).
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from ._hashing import distinct_objects

__all__ = ["OTHER", "quantile_edges", "quantile_edges_from_counts", "inverted_cdf_positions",
           "order_statistics", "bin_counts", "category_counts", "align_counts", "category_bins"]

#: Label of the bucket pooling rare and unseen categories.
OTHER = "__other__"
#: From this many values on, :func:`category_counts` counts string objects in a hash table.
_FAST_MIN_ROWS = 1 << 16


def quantile_edges(reference, n_bins: int = 10, distinct=None, gap_bins: int = None) -> np.ndarray:
    r"""Interior bin edges at the reference quantiles, placed in the gaps between atoms.

    Parameters
    ----------
    reference : array_like of float
        Finite reference values (missing values removed).
    n_bins : int, default 10
        Number of quantile bins wanted; fewer come back when quantiles coincide.
    distinct : array_like, optional
        ``numpy.unique(reference)``, when the caller already has it.
    gap_bins : int, optional
        The edges sit halfway to the next value on the grid of ``10 * gap_bins``
        reference quantiles (default ``n_bins``). A finer binning with a coarser grid
        (50 bins, ``gap_bins=20``) keeps each edge as far from an atom as 20 bins would.

    Returns
    -------
    numpy.ndarray
        Increasing interior edges :math:`e_1 < \dots < e_{k-1}`; the bins are
        :math:`(-\infty, e_1], (e_1, e_2], \dots, (e_{k-1}, \infty)`.

    Notes
    -----
    Let :math:`Q(u)` be the smallest reference value with empirical CDF :math:`\ge u`.
    For :math:`j = 1, \dots, k-1` (:math:`k` = ``n_bins``) the cut value is
    :math:`v_j = Q(j/k)` and :math:`v_j^+` is the next larger value on the reference's
    grid of :math:`10k` quantiles, :math:`\{Q(i/10k)\}` (its percentiles when
    :math:`k = 10`); the edge is :math:`(v_j + v_j^+)/2`. Repeated edges are dropped and
    a :math:`v_j` with nothing above it on the grid takes the next distinct reference
    value instead (the maximum gives no edge).

    Going to the next *grid* value rather than the next distinct value matters for
    discrete-heavy data: the taxi ``trip_seconds`` are multiples of 60 except a few
    single trips (554 s next to 6.4% of trips at 540 s). Halfway to 554 would put an
    edge at 547 s, and a 3% change would carry the whole 540 s atom into the next bin
    (PSI 0.45); the grid edge sits at 570 s. Values holding less than a tenth of a bin
    cannot pin an edge against an atom, and a continuous feature moves each edge by at
    most a twentieth of a bin. A constant reference (one value :math:`v`) gets the
    edges :math:`[v^-, v]`, with :math:`v^-` the float just below :math:`v`, so values
    below, at and above :math:`v` fall in three bins.

    **Clusters.** Values recorded at a fixed resolution can pile up in tight clusters of
    neighbouring values (GPS coordinates: thousands of stops geocoded within a metre of
    one address), which a cut then falls inside. An edge halfway to the next grid value
    is still inside the cluster, and moving every value by one unit of its last digit
    carries a tenth of a bin across it (significant from a few thousand rows, yet
    Cliff's delta is about 0.001). So an edge with a grid value within
    :math:`\tau_j = c \cdot (Q(p_j + 1/g) - Q(p_j - 1/g))/2` of it
    (:math:`c` = :data:`CLUSTER_TOLERANCE` = 0.01 of the local width of a bin of the
    ``gap_bins`` = :math:`g` binning, :math:`p_j` the cut's probability), i.e. with at
    least a tenth of such a bin that close, moves to the middle of the nearest gap
    between grid values wider than :math:`2\tau_j` within one such bin of the cut (and
    above the previous edge); with none, it stays. Values moved by less than
    :math:`\tau_j` then cross no edge with more than a tenth of a bin. Smooth densities
    and well-separated atoms (clock hours, prices) have no grid value that close, so
    their edges do not move.

    Examples
    --------
    >>> quantile_edges([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], n_bins=5)
    array([2.5, 4.5, 6.5, 8.5])
    >>> quantile_edges([0] * 70 + [1, 2, 3] * 10, n_bins=5)  # 70% zeros
    array([0.5, 1.5])
    >>> quantile_edges([300] * 50 + [301] + [360] * 49, n_bins=2)  # one 301 does not pin the edge
    array([330.])
    >>> quantile_edges([4.0, 4.0, 4.0])
    array([4., 4.])
    >>> clustered = list(range(100)) + [50.0, 50.001, 50.002, 50.003] * 5  # a cluster at 50
    >>> quantile_edges(clustered, n_bins=2)  # after the cluster, not inside it at 50.0015
    array([50.501])
    """
    values = np.asarray(reference, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("reference must hold at least one value, got an empty array")
    if not np.all(np.isfinite(values)):
        raise ValueError("reference must be finite (remove missing values and infinities first)")
    k = int(n_bins)
    if k < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins!r}")
    distinct = np.unique(values) if distinct is None else np.asarray(distinct, dtype=float)
    if distinct.size == 1:
        v = distinct[0]
        return np.array([np.nextafter(v, -np.inf), v])
    g = k if gap_bins is None else int(gap_bins)
    steps = np.quantile(values, np.arange(1, 10 * g) / (10 * g), method="inverted_cdf")
    cuts = np.unique(np.quantile(values, np.arange(1, k) / k, method="inverted_cdf"))
    return _edges_between(steps, cuts, distinct)


#: Moves of a value smaller than this share of the local bin width carry no more than a tenth of a
#: bin across an edge, when a wide enough gap lies within a bin of the cut (see
#: :func:`quantile_edges`, Notes); 0 turns the rule off. Read at each call.
CLUSTER_TOLERANCE = 0.01


def _edges_between(steps: np.ndarray, cuts: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """The edge rule of :func:`quantile_edges`, given its quantile grid (``steps``: every grid
    quantile, repeats kept), cut values and distinct values."""
    grid = np.unique(steps)
    on_grid = np.searchsorted(grid, cuts, side="right")
    on_values = np.searchsorted(distinct, cuts, side="right")
    upper = np.where(on_grid < grid.size, grid[np.minimum(on_grid, grid.size - 1)],
                     np.where(on_values < distinct.size, distinct[np.minimum(on_values, distinct.size - 1)], np.nan))
    keep = np.isfinite(upper)
    low, high = cuts[keep], upper[keep]
    edges = low + (high - low) / 2.0
    if CLUSTER_TOLERANCE > 0 and edges.size:
        edges = _out_of_clusters(edges, low, steps, grid)
    return np.unique(edges)


def _out_of_clusters(edges: np.ndarray, cuts: np.ndarray, steps: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Move each edge with a grid value within the tolerance of it into the nearest gap of the grid
    wide enough, within one bin of the grid's binning of its cut (see :func:`quantile_edges`, Notes)."""
    last = steps.size - 1  # ten grid steps make one bin of the grid's binning (``gap_bins``)
    lower = np.minimum(steps[np.clip(np.searchsorted(steps, cuts, side="left") - 10, 0, last)], cuts)
    upper = np.maximum(steps[np.clip(np.searchsorted(steps, cuts, side="right") + 9, 0, last)], cuts)
    tolerance = CLUSTER_TOLERANCE * (upper - lower) / 2.0
    at = np.searchsorted(grid, edges, side="left")
    below = grid[np.maximum(at - 1, 0)]  # the nearest grid values below and above each edge
    above = grid[np.minimum(at, grid.size - 1)]
    crowded = ((edges - below <= tolerance) & (at > 0)) | ((above - edges <= tolerance) & (at < grid.size))
    out = edges.copy()
    floor = -np.inf
    for j in range(edges.size):
        if crowded[j] and tolerance[j] > 0:
            start = max(np.searchsorted(grid, lower[j], side="left"), np.searchsorted(grid, floor, side="right"))
            window = grid[start:np.searchsorted(grid, upper[j], side="right")]
            widths = np.diff(window)
            wide = np.flatnonzero(widths > 2.0 * tolerance[j])
            if wide.size:
                middles = window[wide] + widths[wide] / 2.0
                out[j] = middles[np.argmin(np.abs(middles - edges[j]))]
        floor = max(floor, out[j])
    return out


def resolution_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Bin edges near the ``bins``-quantiles of ``values``, each in the widest gap between neighbouring
    distinct values within a quarter of a bin's share of its quantile (or the gap on either side).

    ``values`` are both samples pooled: the edges are then a symmetric function of the
    pooled rows, so under "no drift" the sides stay exchangeable given the encoding (edges
    at the reference's own quantiles would give the reference exactly equal bin counts and
    the current sample random ones: a difference the cross-fitted folds share, which the
    classifier learns; measured: 10% false alarms at 2,000 rows per side). Placing each
    edge in the widest nearby gap keeps it off a sub-resolution move: ``fare * 1.003``
    turns 7.25 into 7.27, and the edge goes between 7.27 and 7.50, not between 7.25 and 7.27.
    When every nearby gap is that narrow (clustered coordinates), the edge moves out of the
    cluster as :func:`quantile_edges` moves its own (:func:`_wide_gap_near`).

    Examples
    --------
    >>> resolution_edges(np.array([7.25, 7.27, 7.5, 7.52, 8.0, 8.02, 9.0, 9.03]), 4).tolist()
    [7.385, 7.76, 8.51]
    """
    present = values[~np.isnan(values)]
    distinct, counts = np.unique(present, return_counts=True)
    if distinct.size < 2:
        return np.empty(0)
    below = np.cumsum(counts)[:-1] / present.size  # share of values at or below each gap
    gaps = np.diff(distinct)
    half_window = 0.25 / bins
    edges = []
    for k in range(1, bins):
        target = k / bins
        lo = int(np.searchsorted(below, target - half_window, side="left"))
        hi = int(np.searchsorted(below, target + half_window, side="right")) - 1
        # and one more gap on each side: a mass point may span the window (then lo is the gap right after it)
        lo = max(min(lo, gaps.size - 1) - 1, 0)
        hi = min(max(hi, lo) + 1, gaps.size - 1)
        widest = np.flatnonzero(gaps[lo:hi + 1] == gaps[lo:hi + 1].max()) + lo
        i = int(widest[np.argmin(np.abs(below[widest] - target))])  # of equal gaps, the one nearest the quantile
        if CLUSTER_TOLERANCE > 0:
            i = _wide_gap_near(i, k, bins, below, gaps, distinct)
        edges.append((distinct[i] + distinct[i + 1]) / 2.0)
    return np.unique(np.array(edges))


def _wide_gap_near(i: int, k: int, bins: int, below: np.ndarray, gaps: np.ndarray, distinct: np.ndarray) -> int:
    """The gap for :func:`resolution_edges`' ``k``-th edge: gap ``i``, or, when it is within the cluster
    tolerance (:data:`CLUSTER_TOLERANCE` of the local bin width), the nearest gap wider than twice it within
    a bin on either side (the rule of :func:`quantile_edges`, Notes).

    Pooled values of a clustered coordinate moved by one unit hold each address twice, the reference's
    copy and the current one a metre away; with every nearby gap that narrow, the widest was the one
    between the copies, and the classifier told 6% of the rows apart by it (Minneapolis stops, every
    latitude + 1e-5: 13% of 10,000-row samples reported).
    """
    lo_at = int(np.searchsorted(below, (k - 1) / bins, side="left"))
    hi_at = int(np.searchsorted(below, (k + 1) / bins, side="right"))
    lower, upper = distinct[min(lo_at, distinct.size - 1)], distinct[min(hi_at, distinct.size - 1)]
    tolerance = CLUSTER_TOLERANCE * (upper - lower) / 2.0
    if gaps[i] > 2.0 * tolerance or tolerance <= 0:
        return i
    window = np.arange(max(lo_at - 1, 0), min(hi_at + 1, gaps.size))
    wide = window[gaps[window] > 2.0 * tolerance]
    if not wide.size:
        return i
    return int(wide[np.argmin(np.abs(wide - i))])


def inverted_cdf_positions(n: int, probabilities: np.ndarray) -> np.ndarray:
    """0-based order statistics that ``numpy.quantile(..., method="inverted_cdf")`` returns.

    The same arithmetic as numpy's ``_inverted_cdf`` (``n*p - 1`` rounded up, exact
    integers kept, clipped at 0), so quantiles read from counts are bit-for-bit those
    of ``numpy.quantile`` on the raw values.

    Examples
    --------
    >>> inverted_cdf_positions(10, np.array([0.1, 0.25, 0.5, 1.0])).tolist()
    [0, 2, 4, 9]
    """
    index = n * np.asarray(probabilities, dtype=float) - 1
    previous = np.floor(index)
    positions = np.where(index - previous == 0, previous, previous + 1).astype(np.intp)
    positions[positions < 0] = 0
    return positions


def order_statistics(distinct: np.ndarray, counts: np.ndarray, positions) -> np.ndarray:
    """Values at 0-based ``positions`` of the sorted sample given as distinct values and their counts.

    Examples
    --------
    >>> order_statistics(np.array([0.0, 1.0, 5.0]), np.array([3, 1, 2]), [0, 2, 3, 5]).tolist()
    [0.0, 0.0, 1.0, 5.0]
    """
    cumulative = np.cumsum(counts)
    return distinct[np.searchsorted(cumulative, np.asarray(positions), side="right")]


def quantile_edges_from_counts(distinct, counts, n_bins: int = 10, gap_bins: int = None) -> np.ndarray:
    r""":func:`quantile_edges` of a reference given as distinct values and their counts.

    Bit-for-bit the edges :func:`quantile_edges` gives on the raw values (with no
    negative zeros among them), at the cost of the distinct values instead of the rows:
    the quantiles are read off the cumulative counts. This is what lets
    :func:`driftguard.components.drift.numeric.compare_numeric` handle millions of rows, and a
    Beam job bin a span from its value counts alone.

    Parameters
    ----------
    distinct : array_like of float
        Increasing distinct finite values.
    counts : array_like of int
        How often each occurs (values with count 0 are ignored).
    n_bins, gap_bins : int
        As in :func:`quantile_edges`.

    Examples
    --------
    >>> quantile_edges_from_counts([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [1] * 10, n_bins=5)
    array([2.5, 4.5, 6.5, 8.5])
    >>> quantile_edges_from_counts([0, 1, 2, 3], [70, 10, 10, 10], n_bins=5)
    array([0.5, 1.5])
    """
    distinct = np.asarray(distinct, dtype=float).ravel()
    counts = np.asarray(counts).ravel()
    if distinct.shape != counts.shape:
        raise ValueError(f"distinct and counts must have the same length, got {distinct.size} and {counts.size}")
    present = counts > 0
    distinct, counts = distinct[present], counts[present].astype(np.int64)
    if distinct.size == 0:
        raise ValueError("reference must hold at least one value, got no counts")
    if not np.all(np.isfinite(distinct)) or np.any(np.diff(distinct) <= 0):
        raise ValueError("distinct values must be finite and strictly increasing")
    k = int(n_bins)
    if k < 2:
        raise ValueError(f"n_bins must be at least 2, got {n_bins!r}")
    if distinct.size == 1:
        v = distinct[0]
        return np.array([np.nextafter(v, -np.inf), v])
    n = int(counts.sum())
    g = k if gap_bins is None else int(gap_bins)
    steps = order_statistics(distinct, counts, inverted_cdf_positions(n, np.arange(1, 10 * g) / (10 * g)))
    cuts = np.unique(order_statistics(distinct, counts, inverted_cdf_positions(n, np.arange(1, k) / k)))
    return _edges_between(steps, cuts, distinct)


def bin_counts(values, edges) -> np.ndarray:
    """Count ``values`` in the bins ``(-inf, e1], (e1, e2], ..., (e_last, inf)``.

    Examples
    --------
    >>> bin_counts([0.0, 1.0, 2.0, 3.0, 10.0], [0.5, 2.5])
    array([1, 2, 2])
    """
    edges = np.asarray(edges, dtype=float)
    index = np.searchsorted(edges, np.asarray(values, dtype=float), side="left")
    return np.bincount(index, minlength=edges.size + 1)


def category_counts(values: Iterable) -> Dict[str, int]:
    """Count each distinct label (missing values removed beforehand).

    Examples
    --------
    >>> category_counts(["Cash", "Credit Card", "Cash"])
    {'Cash': 2, 'Credit Card': 1}
    """
    fast = _count_strings(values)
    if fast is not None:
        return fast
    counts = Counter(values)
    return {str(label): int(counts[label]) for label in sorted(counts, key=str)}


def _count_strings(values):
    """:func:`category_counts` of a large object array of ``str``, counted per distinct object.

    Same result as ``Counter``: equal strings held by different objects are merged by
    value, over the distinct objects only. ``None`` when not applicable.
    """
    if not isinstance(values, np.ndarray) or values.dtype != object or values.ndim != 1 \
            or values.size < _FAST_MIN_ROWS:
        return None
    found = distinct_objects(np.ascontiguousarray(values))
    if found is None:
        return None
    objects, codes = found
    if any(type(v) is not str for v in objects):  # equal non-str labels (1, 1.0, True) keep Counter's rules
        return None
    merged: Dict[str, int] = {}
    for label, count in zip(objects.tolist(), np.bincount(codes, minlength=objects.size).tolist()):
        merged[label] = merged.get(label, 0) + count
    return {label: merged[label] for label in sorted(merged)}


def align_counts(reference: Mapping[str, int], current: Mapping[str, int]) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """Put two label->count mappings on the union of their labels.

    Labels come out by decreasing pooled count, then alphabetically.

    Examples
    --------
    >>> align_counts({"a": 3, "b": 1}, {"b": 2, "c": 5})
    (['c', 'a', 'b'], array([0, 3, 1]), array([5, 0, 2]))
    """
    labels = sorted(set(reference) | set(current), key=lambda k: (-(reference.get(k, 0) + current.get(k, 0)), k))
    ref = np.array([reference.get(k, 0) for k in labels], dtype=np.int64)
    cur = np.array([current.get(k, 0) for k in labels], dtype=np.int64)
    return labels, ref, cur


def category_bins(
    reference: Mapping[str, int], current: Mapping[str, int], min_share: float = 0.01
) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """Histogram bins for a categorical feature: frequent reference categories plus :data:`OTHER`.

    Parameters
    ----------
    reference, current : mapping of str to int
        Category counts of each sample.
    min_share : float, default 0.01
        A category keeps its own bin when it holds at least this share of the reference.

    Returns
    -------
    labels : list of str
        Kept categories by decreasing reference count, then :data:`OTHER` if anything
        was pooled (rare reference categories and categories unseen in the reference).
    reference_counts, current_counts : numpy.ndarray
        Counts per bin.

    Examples
    --------
    >>> ref = {"Cash": 60, "Credit Card": 39, "Dispute": 1}
    >>> cur = {"Cash": 50, "Credit Card": 40, "Mobile": 10}
    >>> category_bins(ref, cur, min_share=0.05)
    (['Cash', 'Credit Card', '__other__'], array([60, 39,  1]), array([50, 40, 10]))
    """
    if not 0.0 <= float(min_share) < 1.0:
        raise ValueError(f"min_share must be in [0, 1), got {min_share!r}")
    n_ref = sum(reference.values())
    if n_ref <= 0:
        raise ValueError("reference counts must hold at least one value")
    kept: Sequence[str] = sorted(
        (k for k, v in reference.items() if v > 0 and v >= min_share * n_ref), key=lambda k: (-reference[k], k)
    )
    kept_set = set(kept)
    ref = [reference[k] for k in kept]
    cur = [current.get(k, 0) for k in kept]
    ref_other = n_ref - sum(ref)
    cur_other = sum(current.values()) - sum(cur)
    labels = list(kept)
    if ref_other or cur_other or any(k not in kept_set for k in current):
        labels.append(OTHER)
        ref.append(ref_other)
        cur.append(cur_other)
    return labels, np.array(ref, dtype=np.int64), np.array(cur, dtype=np.int64)
