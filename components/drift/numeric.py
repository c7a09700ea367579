r"""Two-sample comparisons of a numeric feature on raw values.

Binned scores (PSI, Jensen-Shannon, Hellinger, L-infinity, chi-square) live in
:mod:`driftguard.components.drift.divergence`; this module holds the tests that need the values
themselves, and :func:`compare_numeric`, which computes every score for one feature.

- :func:`ks` -- Kolmogorov-Smirnov statistic and p-value.
- :func:`wasserstein` -- earth mover's distance, in the feature's units.
- :func:`normalized_wasserstein` -- the same divided by the reference's mean absolute
  deviation around its median, so 0.1 reads "the mass moved by a tenth of a typical
  deviation".
- :func:`cliffs_delta` -- :math:`P(Y > X) - P(Y < X)`, the direction of a shift.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np

from ._distributions import ks_two_sample_sf, normal_sf, student_t_sf
from ._hashing import HashTable, ValueIndex, bits_for
from .binning import order_statistics, quantile_edges, quantile_edges_from_counts
from .divergence import chi_square_counts, histogram_scores

__all__ = ["KSResult", "ks", "wasserstein", "mean_absolute_deviation", "normalized_wasserstein", "cliffs_delta",
           "binned_rank_test", "LocationTest", "winsorized_t_test", "NumericComparison", "compare_numeric"]


def _finite(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one value, got an empty array")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; remove missing values and infinities first")
    return arr


class KSResult(NamedTuple):
    """Result of :func:`ks`."""

    statistic: float
    p_value: float


class _Grid(NamedTuple):
    """Both samples counted on their pooled distinct values: one sort serves every statistic."""

    values: np.ndarray  # distinct pooled values, increasing
    ref: np.ndarray  # reference count at each value
    cur: np.ndarray  # current count at each value
    hashed: bool = False  # counted by hashing bit patterns: -0.0 and 0.0 never merged

    @classmethod
    def build(cls, x: np.ndarray, y: np.ndarray) -> "_Grid":
        if x.size + y.size >= _HASH_MIN_ROWS:
            grid = _hashed_grid(x, y)
            if grid is not None:
                return grid
        values, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)
        return cls(values, np.bincount(inverse[:x.size], minlength=values.size),
                   np.bincount(inverse[x.size:], minlength=values.size))

    def _cdfs(self) -> Tuple[np.ndarray, np.ndarray]:
        return np.cumsum(self.ref) / self.ref.sum(), np.cumsum(self.cur) / self.cur.sum()

    def ks(self) -> KSResult:
        fx, fy = self._cdfs()
        d = float(np.max(np.abs(fx - fy)))
        return KSResult(d, ks_two_sample_sf(d, int(self.ref.sum()), int(self.cur.sum())))

    def wasserstein(self) -> float:
        fx, fy = self._cdfs()
        return float(np.sum(np.abs(fx[:-1] - fy[:-1]) * np.diff(self.values)))

    def distances(self) -> Tuple[KSResult, float, float]:
        """:meth:`ks`, :meth:`wasserstein` and :meth:`cliffs_delta` from one pair of CDFs (the same numbers)."""
        n_ref, n_cur = self.ref.sum(), self.cur.sum()
        cum_ref = np.cumsum(self.ref)
        gap = np.abs(cum_ref / n_ref - np.cumsum(self.cur) / n_cur)
        d = float(gap.max())
        ks = KSResult(d, ks_two_sample_sf(d, int(n_ref), int(n_cur)))
        u = float((self.cur * (cum_ref - self.ref + self.ref / 2.0)).sum())
        return ks, float((gap[:-1] * np.diff(self.values)).sum()), 2.0 * u / (float(n_ref) * float(n_cur)) - 1.0

    def cliffs_delta(self) -> float:
        below = np.cumsum(self.ref) - self.ref  # reference values strictly below each value
        u = float(np.sum(self.cur * (below + self.ref / 2.0)))
        return 2.0 * u / (float(self.ref.sum()) * float(self.cur.sum())) - 1.0


#: From this many pooled rows on, :meth:`_Grid.build` counts values in a hash table.
_HASH_MIN_ROWS = 1 << 16


def _has_negative_zero(values: np.ndarray) -> bool:
    return bool(np.any(np.signbit(values) & (values == 0.0)))


def _hashed_grid(x: np.ndarray, y: np.ndarray):
    """:meth:`_Grid.build` in linear time for data with few distinct values; ``None`` otherwise.

    Sorting 2 x 1,000,000 values costs ~0.2 s per feature; the taxi features hold at
    most a few ten thousand distinct values, which a cache-sized hash table
    (:mod:`driftguard.components.drift._hashing`) counts in a few passes. Same result as
    ``numpy.unique`` (NaN never reaches here; a sample holding both -0.0 and 0.0 goes
    back to the sort).
    """
    step = max(1, (x.size + y.size) // 4096)
    bits = bits_for(np.concatenate([x[::step], y[::step]]))
    if bits is None:  # (nearly) all distinct: continuous data, sort instead
        return None
    table = HashTable(bits)
    slots_x = table.insert(x.view(np.uint64))
    slots_y = None if slots_x is None else table.insert(y.view(np.uint64))
    if slots_y is None:
        return None
    occupied = np.flatnonzero(table.used)
    values = table.keys[occupied].view(np.float64)
    if np.count_nonzero(values == 0.0) > 1:  # both -0.0 and 0.0: numpy.unique merges them, sort instead
        return None
    order = np.argsort(values)
    ref = np.bincount(slots_x, minlength=table.used.size)[occupied][order]
    cur = np.bincount(slots_y, minlength=table.used.size)[occupied][order]
    return _Grid(values[order], ref, cur, True)


def _grid(reference, current) -> _Grid:
    return _Grid.build(_finite("reference", reference), _finite("current", current))


def ks(reference, current) -> KSResult:
    r"""Two-sample Kolmogorov-Smirnov test.

    Returns
    -------
    KSResult
        ``statistic`` :math:`D = \sup_t |F_{ref}(t) - F_{cur}(t)|` and its two-sided
        asymptotic ``p_value`` (:func:`driftguard.components.drift._distributions.ks_two_sample_sf`).

    Notes
    -----
    :math:`D` is a poor *effect size* for discrete-heavy data: multiplying every fare by
    1.003 moves each price atom past its old value and gives :math:`D \approx 0.03` on the
    taxi data, the value of a genuine 3% shift (``trip_seconds * 1.003``: 0.07). Use its
    p-value, or use :math:`D` with continuous features only.

    References
    ----------
    .. [1] N. Smirnov, "Table for estimating the goodness of fit of empirical
       distributions", Ann. Math. Statist. 19 (1948), 279-281.

    Examples
    --------
    >>> r = ks([1, 2, 3, 4], [3, 4, 5, 6])
    >>> r.statistic
    0.5
    >>> ks([1.0, 2.0], [1.0, 2.0]).p_value
    1.0
    """
    return _grid(reference, current).ks()


def wasserstein(reference, current) -> float:
    r"""First Wasserstein (earth mover's) distance between two samples, in their units.

    Notes
    -----
    :math:`W_1 = \int_{-\infty}^{\infty} |F_{ref}(t) - F_{cur}(t)|\,dt`, the least
    average distance the reference mass must travel to become the current one [1]_.
    Scaling every value by :math:`1+\epsilon` gives :math:`W_1 = \epsilon\,E|X|`: a tiny
    shift stays tiny even on discrete values. Heavy tails make it noisy (one 1,700-mile
    trip moves it a lot), which is why it is not the default score.

    References
    ----------
    .. [1] L. N. Vaserstein, "Markov processes over denumerable products of spaces
       describing large systems of automata", Probl. Inf. Transm. 5 (1969), 47-52.

    Examples
    --------
    >>> wasserstein([0, 1, 3], [5, 6, 8])
    5.0
    >>> wasserstein([0.0, 1.0], [0.0, 1.0])
    0.0
    """
    return _grid(reference, current).wasserstein()


def mean_absolute_deviation(values) -> float:
    r"""Mean absolute deviation around the median, :math:`E|X - \mathrm{med}(X)|`.

    Zero only for a constant sample, unlike the IQR or the median absolute deviation,
    which vanish as soon as half the values are equal (68% of taxi tips are 0).

    Examples
    --------
    >>> mean_absolute_deviation([0, 0, 0, 1, 9])
    2.0
    """
    x = _finite("values", values)
    return float(np.mean(np.abs(x - np.median(x))))


def _median_from_counts(distinct: np.ndarray, counts: np.ndarray) -> float:
    """``numpy.median`` of the sample given by its distinct values and their counts (bit-for-bit)."""
    n = int(counts.sum())
    if n % 2:
        return float(order_statistics(distinct, counts, [n // 2])[0])
    low, high = order_statistics(distinct, counts, [n // 2 - 1, n // 2])
    return float((low + high) / 2.0)  # numpy.median: the mean of the two middle values


def _normalized(distance: float, x: np.ndarray, y: np.ndarray, scale: float = None) -> float:
    """``distance`` over ``scale`` (default: the mean absolute deviation of ``x``), or the pooled one when that is 0."""
    if scale is None:
        scale = mean_absolute_deviation(x)
    if scale == 0.0:
        scale = mean_absolute_deviation(np.concatenate([x, y]))
    return 0.0 if scale == 0.0 else distance / scale


def normalized_wasserstein(reference, current) -> float:
    r"""Wasserstein distance divided by the reference's mean absolute deviation.

    Notes
    -----
    :math:`W_1(F_{ref}, F_{cur}) / E|X_{ref} - \mathrm{med}(X_{ref})|`. Evidently divides by
    the standard deviation instead; on heavy tails that standard deviation is itself
    dominated by a few outliers (taxi fares: sd 11.5 for a median of 7.85), so a 10%
    fare increase scores only about 0.1. When the reference is constant the pooled
    sample's deviation is used, and 0 is returned when both samples are one same value.

    Examples
    --------
    >>> normalized_wasserstein([0, 1, 2, 3, 4], [1, 2, 3, 4, 5])  # shift by 1, deviation 1.2
    0.8333333333333334
    """
    x = _finite("reference", reference)
    y = _finite("current", current)
    return _normalized(_Grid.build(x, y).wasserstein(), x, y)


def cliffs_delta(reference, current) -> float:
    r"""Cliff's delta, :math:`P(Y > X) - P(Y < X)` for :math:`X` reference, :math:`Y` current.

    Notes
    -----
    In [-1, 1]; positive means the current values tend to be larger. It is
    :math:`2U/(nm) - 1` for the Mann-Whitney :math:`U` of the current sample, with ties
    counted as one half [1]_.

    References
    ----------
    .. [1] N. Cliff, "Dominance statistics: ordinal analyses to answer ordinal
       questions", Psychological Bulletin 114 (1993), 494-509.

    Examples
    --------
    >>> cliffs_delta([1, 2, 3], [4, 5, 6])
    1.0
    >>> cliffs_delta([1, 2], [1, 2])
    0.0
    """
    return _grid(reference, current).cliffs_delta()


class RankTest(NamedTuple):
    """Result of :func:`binned_rank_test`."""

    statistic: float
    p_value: float


def binned_rank_test(reference_counts, current_counts) -> RankTest:
    r"""Wilcoxon-Mann-Whitney test on two histograms over the same *ordered* bins.

    Parameters
    ----------
    reference_counts, current_counts : array_like of float
        Counts per bin, bins in increasing order of value.

    Returns
    -------
    RankTest
        ``statistic``: the standardized :math:`U` of the current sample (positive: current
        values tend to be larger); ``p_value``: two-sided, normal approximation.

    Notes
    -----
    Every value of bin :math:`i` gets the pooled mid-rank of its bin,
    :math:`r_i = T_{i-1} + (t_i + 1)/2` with :math:`t_i` the pooled count of bin :math:`i` and
    :math:`T_i` the cumulative one. With :math:`n` reference and :math:`m` current values,
    :math:`N = n + m`, :math:`U = \sum_i c_i r_i - m(m+1)/2` (:math:`c_i` current counts) has,
    without drift, mean :math:`nm/2` and variance
    :math:`\frac{nm}{12}\left(N + 1 - \frac{\sum_i (t_i^3 - t_i)}{N(N-1)}\right)` (ties
    corrected) [1]_; :math:`Z = (U - nm/2)/\sqrt{\mathrm{var}}`. On the reference-quantile
    bins of :func:`compare_numeric` it is the rank test of a location shift that ignores moves
    within a bin: edges sit in the gaps above atoms and outside clusters, so prices moved by
    0.3% or coordinates moved by a metre do not count, which ranks of raw values would
    (every tied price becomes larger than its old copies). With 50 bins it keeps about
    :math:`1 - 1/50^2` of the raw test's efficiency for a continuous shift.

    References
    ----------
    .. [1] E. L. Lehmann, *Nonparametrics: Statistical Methods Based on Ranks*,
       Holden-Day (1975), section 1.4.

    Examples
    --------
    >>> r = binned_rank_test([10, 20, 30, 40], [40, 30, 20, 10])
    >>> round(r.statistic, 3), r.p_value < 1e-5
    (-6.309, True)
    >>> binned_rank_test([5, 5], [5, 5]).statistic
    0.0
    """
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    total = ref + cur
    n, m = float(ref.sum()), float(cur.sum())
    pooled = n + m
    if n <= 0 or m <= 0 or pooled < 2:
        return RankTest(0.0, 1.0)
    mid_ranks = np.cumsum(total) - (total - 1.0) / 2.0
    u = float(np.dot(cur, mid_ranks)) - m * (m + 1.0) / 2.0
    variance = n * m / 12.0 * ((pooled + 1.0) - float(np.sum(total ** 3 - total)) / (pooled * (pooled - 1.0)))
    if variance <= 0:  # every value in one bin
        return RankTest(0.0, 1.0)
    z = (u - n * m / 2.0) / math.sqrt(variance)
    return RankTest(z, min(1.0, 2.0 * normal_sf(abs(z))))


class LocationTest(NamedTuple):
    """Result of :func:`winsorized_t_test`."""

    statistic: float
    p_value: float
    shift: float  # difference of the winsorized means over their pooled standard deviation
    mean_reference: float
    mean_current: float


def winsorized_t_test(values, reference_counts, current_counts, share: float = 0.1) -> LocationTest:
    r"""Welch's t-test on values winsorized at the *pooled* sample's ``share`` and ``1 - share`` quantiles.

    Parameters
    ----------
    values : array_like of float
        Distinct values, increasing.
    reference_counts, current_counts : array_like of float
        How often each value occurs in each sample.
    share : float, default 0.1
        Share of the pooled sample clipped at each end, in [0, 0.5).

    Returns
    -------
    LocationTest
        ``statistic``: Welch's t of the current sample's winsorized mean against the
        reference's (positive: larger); ``p_value``: two-sided, Student's t with
        Welch-Satterthwaite degrees of freedom; ``shift``: the difference of the winsorized
        means over the pooled sample's winsorized standard deviation (an effect size; for a
        normal feature about the shift in standard deviations); the two winsorized means.

    Notes
    -----
    Why it joins the binned tests: a bin only sees whether a value crossed an edge, so a
    shift of 1.43 units of a column recorded on a grid (diamonds' ``depth`` + 0.1 standard
    deviation, values in tenths) reads as 1 unit, and the binned tests keep ~0.7 of the
    evidence the raw values hold. A mean sees the actual distance, and a distance below
    the recording resolution (a price atom moved by 0.3 %, a coordinate by a metre)
    stays a negligible distance: unlike ranks of raw values, ties carry no weight of their
    own. Clipping at pooled quantiles buys robustness to heavy tails (a mean of raw fares
    is at the mercy of one 1,000-dollar trip) and, because the clipping points are a
    symmetric function of the pooled sample, the test is a t-test on a transform that
    does not depend on which sample a value came from: under no drift its level is the
    nominal one, ties or not (a trimmed-mean test, Yuen's, estimates its variance assuming
    no atom at the trimming points). This is hand-written over the count grid every
    numeric statistic here shares (one hash count, no sort); ``scipy.stats.ttest_ind`` on
    the clipped raw values gives the same number (``test_winsorized_t_test_matches_scipy``).

    Examples
    --------
    >>> r = winsorized_t_test([1.0, 2.0, 3.0, 100.0], [10, 10, 10, 1], [5, 10, 15, 1])
    >>> round(r.statistic, 3), round(r.p_value, 4), round(r.shift, 3), round(r.mean_current, 3)
    (1.594, 0.1161, 0.4, 2.355)
    """
    v = np.asarray(values, dtype=float)
    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    n, m = float(ref.sum()), float(cur.sum())
    if not 0.0 <= share < 0.5:
        raise ValueError(f"share must be in [0, 0.5), got {share!r}")
    if n < 2 or m < 2:
        return LocationTest(0.0, 1.0, 0.0, float("nan"), float("nan"))
    cumulative = np.cumsum(ref + cur)
    clipped = int(math.floor(share * (n + m)))  # values clipped at each end
    low = v[np.searchsorted(cumulative, clipped + 1)]
    high = v[np.searchsorted(cumulative, n + m - clipped)]
    g = np.clip(v, low, high) - low  # shifted: the variances below lose no digits to a large offset
    mean_x, mean_y = float(np.dot(ref, g)) / n, float(np.dot(cur, g)) / m
    var_x = float(np.dot(ref, (g - mean_x) ** 2)) / (n - 1.0) / n
    var_y = float(np.dot(cur, (g - mean_y) ** 2)) / (m - 1.0) / m
    means = (mean_x + float(low), mean_y + float(low))
    if var_x + var_y <= 0.0:  # every clipped value equal
        return LocationTest(0.0, 1.0, 0.0, *means)
    t = (mean_y - mean_x) / math.sqrt(var_x + var_y)
    dof = (var_x + var_y) ** 2 / (var_x ** 2 / (n - 1.0) + var_y ** 2 / (m - 1.0))
    pooled_mean = (n * mean_x + m * mean_y) / (n + m)
    pooled_sd = math.sqrt(float(np.dot(ref + cur, (g - pooled_mean) ** 2)) / (n + m - 1.0))
    return LocationTest(t, min(1.0, 2.0 * student_t_sf(abs(t), dof)), (mean_y - mean_x) / pooled_sd, *means)


@dataclass(frozen=True)
class NumericComparison:
    """Every score, p-value and descriptive statistic of one numeric feature."""

    scores: Dict[str, float]
    p_values: Dict[str, float]
    details: Dict[str, object] = field(default_factory=dict)


#: Bins of the second chi-square test of :func:`compare_numeric`, read at each call (0: the
#: ``test_bins`` test alone, the rule before this test was added). ``detect_drift`` uses it.
FINE_TEST_BINS = 50


#: Add :func:`binned_rank_test` on the finest bins to the chi-square tests of :func:`compare_numeric`
#: (Bonferroni over all of them), read at each call. ``detect_drift`` uses it.
RANK_TEST = True


#: Share of the pooled sample clipped at each end by :func:`winsorized_t_test`, the location test of
#: :func:`compare_numeric` (``p_values["location"]``, ``scores["mean_shift"]``); 0: no location test
#: (the rule before it was added). Read at each call. ``detect_drift`` makes it a check of its own.
LOCATION_SHARE = 0.1


def compare_numeric(reference, current, n_bins: int = 10, test_bins: int = 20,
                    fine_test_bins: Optional[int] = None) -> NumericComparison:
    r"""Compare two samples of a numeric feature with every available score.

    Parameters
    ----------
    reference, current : array_like of float
        Finite values, missing values removed.
    n_bins : int, default 10
        Reference-quantile bins for the binned scores (see
        :func:`driftguard.components.drift.binning.quantile_edges`): deciles, the PSI convention.
    test_bins : int, default 20
        Reference-quantile bins for the chi-square test. On the taxi data, at the level a
        Holm correction over 30 checks asks for (3.3e-4), 20 bins detect a 2-hour shift of
        ``trip_start_hour`` in 100% of 2,000-row samples (10 bins: 90%), and without
        drift they reject at the nominal rate (0.0013-0.0030 at level 0.002, 4,000
        splits). Bins from the *pooled* sample would be more powerful (they can put an
        edge between a price atom and its displaced copy) but, for the same reason, find
        ``fare * 1.003`` significant in 92% of 2,000-row samples, which the noisy PSI of
        small samples then lets through (80% reported); these bins: 0.5%.
    fine_test_bins : int, optional
        Default :data:`FINE_TEST_BINS` (50):
        A second chi-square test on this many reference-quantile bins, each edge kept in
        the gap above an atom as the ``test_bins`` grid places it (``gap_bins``
        of :func:`driftguard.components.drift.binning.quantile_edges`). The evidence is the
        Bonferroni combination ``min(1, 2 min(p_20, p_50))`` (three-way with :data:`RANK_TEST`), valid whatever the
        dependence of the two tests. Finer bins catch a 10% change of a spread-out,
        zero-inflated feature (``trip_miles * 1.10``: 57% -> 99% of 2,000-row samples
        reported), the coarse gaps keep price atoms that move by 0.3% in their bins
        (``fare * 1.003``: 3% -> 5% at 2,000 rows; 50 bins with their own finer gaps:
        12%), but at 5,000 rows ``fare * 1.003`` is reported in about 10% of samples
        (2.5% before). ``0`` (or equal to ``test_bins``): the ``test_bins`` test alone.

    Returns
    -------
    NumericComparison
        ``scores``: ``psi``, ``jensen_shannon``, ``hellinger``, ``linf`` and
        ``cramers_v`` on the ``n_bins`` reference-quantile bins, ``chi_square`` (the test
        statistic on the ``test_bins`` reference-quantile bins), ``ks`` (:math:`D`) and ``wasserstein`` (normalized).
        ``p_values``: ``chi_square`` (the Bonferroni combination of the chi-square tests
        and, with :data:`RANK_TEST`, :func:`binned_rank_test` on the finest bins:
        ``min(1, k min(p_1, ..., p_k))`` over the k tests) and ``ks``. ``details``: decile
        edges and counts, means, medians, Cliff's delta, ``chi_square_tests`` (bins,
        statistic and p-value of each chi-square test) and ``rank_test`` (bins, standardized
        U, p-value).

    Notes
    -----
    Cramer's V is taken on the deciles, like the other effect sizes: on the finer test
    bins an edge can sit next to a price atom, and ``fare * 1.005`` then scores 0.07.

    All statistics come from one count of the pooled sample per distinct value (a
    hash count from 65,536 pooled rows on when values repeat, as on the taxi data; a
    sort otherwise): quantiles and medians are read off those counts, so 1,000,000 rows
    per side take a few tens of milliseconds per feature.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.lognormal(2.0, 0.6, 5000)
    >>> same = compare_numeric(ref, rng.lognormal(2.0, 0.6, 5000))
    >>> up = compare_numeric(ref, 1.10 * rng.lognormal(2.0, 0.6, 5000))
    >>> round(same.scores["psi"], 3), round(up.scores["psi"], 3)
    (0.005, 0.032)
    >>> same.p_values["chi_square"] > 0.05, up.p_values["chi_square"] < 1e-6
    (True, True)
    """
    x = _finite("reference", reference)
    y = _finite("current", current)
    grid = _Grid.build(x, y)
    if not grid.hashed and (_has_negative_zero(x) or _has_negative_zero(y)):
        # numpy.quantile may return -0.0 where numpy.unique kept 0.0 (or vice versa): keep numpy's own answers
        distinct = grid.values[grid.ref > 0]
        def edges(k: int, gap_bins: int = None) -> np.ndarray:
            return quantile_edges(x, k, distinct=distinct, gap_bins=gap_bins)
        median_x, median_y = float(np.median(x)), float(np.median(y))
    else:  # the same numbers from the counts, without sorting the rows again
        def edges(k: int, gap_bins: int = None) -> np.ndarray:
            return quantile_edges_from_counts(grid.values, grid.ref, k, gap_bins=gap_bins)
        median_x, median_y = _median_from_counts(grid.values, grid.ref), _median_from_counts(grid.values, grid.cur)
    fine = _fine_bins(test_bins, fine_test_bins)
    bins = [edges(n_bins), edges(test_bins)] + ([edges(fine, gap_bins=test_bins)] if fine else [])
    bins = [(e, _binned(e, grid.values, grid.ref)) for e in bins]
    return _comparison(grid, x, y, bins, median_x, median_y, float(np.mean(x)),
                       float(np.mean(np.abs(x - median_x))))


def _fine_bins(test_bins: int, fine_test_bins: Optional[int]) -> int:
    """Bins of the second chi-square test of :func:`compare_numeric`, 0 for none."""
    if fine_test_bins is None:
        fine_test_bins = FINE_TEST_BINS
    return int(fine_test_bins) if fine_test_bins and int(fine_test_bins) != int(test_bins) else 0


def _binned(edges: np.ndarray, values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Counts per bin of ``edges`` of a sample given as increasing values and their counts (as floats:
    sums of integers, exact)."""
    index = np.searchsorted(edges, values, side="left")
    return np.bincount(index, weights=counts, minlength=edges.size + 1)


def _comparison(grid: _Grid, x: np.ndarray, y: np.ndarray, bins, median_x: float, median_y: float,
                mean_x: float, deviation_x: float) -> NumericComparison:
    """:func:`compare_numeric` from the pooled grid, the reference's statistics and its ``bins``.

    ``bins`` holds ``(edges, reference counts)`` of the ``n_bins`` scores, of the
    ``test_bins`` test and, when there is one, of the fine test (counts as floats).
    """
    totals = (float(x.size), float(y.size))  # the sums of every histogram: the counts need no check

    def current(edges: np.ndarray) -> np.ndarray:
        return _binned(edges, grid.values, grid.cur)

    (edges, ref_counts), (test_edges, ref_test_counts) = bins[:2]
    cur_counts = current(edges)
    chi = chi_square_counts(ref_test_counts, current(test_edges), totals=totals)
    tests = [{"bins": int(test_edges.size + 1), "statistic": chi.statistic, "p_value": chi.p_value}]
    chi_p = chi.p_value
    rank_edges, ref_rank_counts = bins[-1]  # the finest bins
    cur_rank_counts = current(rank_edges) if len(bins) > 2 else None
    if len(bins) > 2:  # Bonferroni within the feature: valid whatever the dependence of the tests
        fine_edges, ref_fine_counts = bins[2]
        chi_fine = chi_square_counts(ref_fine_counts, cur_rank_counts, totals=totals)
        tests.append({"bins": int(fine_edges.size + 1), "statistic": chi_fine.statistic, "p_value": chi_fine.p_value})
        chi_p = min(1.0, 2.0 * min(chi.p_value, chi_fine.p_value))
    rank = None
    if RANK_TEST:
        if cur_rank_counts is None:
            cur_rank_counts = current(rank_edges)
        rank = binned_rank_test(ref_rank_counts, cur_rank_counts)
        chi_p = min(1.0, (len(tests) + 1) * min([t["p_value"] for t in tests] + [rank.p_value]))
    location = winsorized_t_test(grid.values, grid.ref, grid.cur, LOCATION_SHARE) if LOCATION_SHARE else None
    ks_result, distance, cliffs = grid.distances()
    scores = histogram_scores(ref_counts, cur_counts, ordered=True, totals=totals)  # psi, ..., cramers_v
    scores["chi_square"] = chi.statistic
    scores["ks"] = ks_result.statistic
    scores["wasserstein"] = _normalized(distance, x, y, deviation_x)
    p_values = {"chi_square": chi_p, "ks": ks_result.p_value}
    if location is not None:
        scores["mean_shift"] = location.shift
        p_values["location"] = location.p_value
    details = {
        "bin_edges": edges.tolist(),
        "reference_counts": ref_counts.astype(np.int64).tolist(),
        "current_counts": cur_counts.astype(np.int64).tolist(),
        "mean_reference": mean_x,
        "mean_current": float(np.mean(y)),
        "median_reference": median_x,
        "median_current": median_y,
        "cliffs_delta": cliffs,
        "chi_square_tests": tests,
    }
    if rank is not None:
        details["rank_test"] = {"bins": int(rank_edges.size + 1), "statistic": rank.statistic, "p_value": rank.p_value}
    if location is not None:
        details["winsorized_t_test"] = {"share": LOCATION_SHARE, "statistic": location.statistic,
                                        "p_value": location.p_value, "shift": location.shift,
                                        "mean_reference": location.mean_reference,
                                        "mean_current": location.mean_current}
    return NumericComparison(scores, p_values, details)


class NumericReference:
    """The reference side of :func:`compare_numeric`, computed once for many current samples.

    What depends on the reference alone is kept: its distinct values and counts, the
    quantile edges and reference counts of every binning asked for (keyed by
    ``(n_bins, gap_bins)``), its median, mean and mean absolute deviation. A current
    sample's values are located among the reference's distinct values by hashing
    (:class:`driftguard.components.drift._hashing.ValueIndex`, built on first use), and only the
    values the reference lacks are sorted, instead of sorting the pooled sample.
    :meth:`compare` gives bit-for-bit the result of :func:`compare_numeric`, and calls it
    when a side holds a negative zero (hashing tells -0.0 from 0.0, ``numpy.unique``
    does not) or the reference more distinct values than the table takes (continuous
    data, where nearly every current value is new and sorted anyway).

    Parameters
    ----------
    values : array_like of float
        The reference's finite values (missing values removed).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = NumericReference(np.round(rng.lognormal(2.0, 0.6, 3000), 2))
    >>> cur = np.round(1.10 * rng.lognormal(2.0, 0.6, 3000), 2)
    >>> comparison, (positions, n_distinct) = ref.compare(cur)
    >>> comparison == compare_numeric(ref.values, cur)
    True
    """

    def __init__(self, values):
        self.values = _finite("reference", values)
        counted = _Grid.build(self.values, self.values[:0])  # hash-counted from 65,536 rows, like compare_numeric
        self.distinct, self.counts = counted.values, counted.ref
        self.negative_zero = _has_negative_zero(self.values)
        self._bins: Dict[Tuple[int, Optional[int]], Tuple[np.ndarray, np.ndarray]] = {}
        self._index: Optional[ValueIndex] = None
        self._summary: Optional[Tuple[float, float, float]] = None

    def bins(self, n_bins: int, gap_bins: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Edges of :func:`driftguard.components.drift.binning.quantile_edges` and the reference's count per bin (floats)."""
        key = (int(n_bins), None if gap_bins is None else int(gap_bins))
        found = self._bins.get(key)
        if found is None:
            edges = quantile_edges_from_counts(self.distinct, self.counts, *key)
            found = self._bins[key] = (edges, _binned(edges, self.distinct, self.counts))
        return found

    def summary(self) -> Tuple[float, float, float]:
        """Median, mean, and mean absolute deviation around the median."""
        if self._summary is None:
            median = _median_from_counts(self.distinct, self.counts)
            self._summary = (median, float(np.mean(self.values)), float(np.mean(np.abs(self.values - median))))
        return self._summary

    def locate(self, current: np.ndarray) -> Optional[Tuple[_Grid, np.ndarray]]:
        """The pooled grid of the reference (without -0.0) and ``current`` (finite), and the position
        of each current value on it; ``None`` when ``current`` holds -0.0."""
        if self._index is None:
            self._index = ValueIndex(self.distinct)
        at = self._index.positions(current)
        absent = at < 0
        if not absent.any():
            return _Grid(self.distinct, self.counts, np.bincount(at, minlength=self.distinct.size)), at
        new_values = current[absent]
        if _has_negative_zero(new_values):  # (a -0.0 is never found: the reference has none)
            return None
        new, new_index = np.unique(new_values, return_inverse=True)
        # both increasing and disjoint: each value's place on the pooled grid is its own index plus
        # the number of the other side's values below it
        new_at = np.searchsorted(self.distinct, new) + np.arange(new.size)
        old_at = np.searchsorted(new, self.distinct) + np.arange(self.distinct.size)
        values = np.empty(self.distinct.size + new.size)
        values[old_at], values[new_at] = self.distinct, new
        ref = np.zeros(values.size, dtype=np.int64)
        ref[old_at] = self.counts
        position = np.empty(current.size, dtype=np.intp)
        position[~absent] = old_at[at[~absent]]
        position[absent] = new_at[new_index]
        return _Grid(values, ref, np.bincount(position, minlength=values.size)), position

    def compare(self, current, n_bins: int = 10, test_bins: int = 20, fine_test_bins: Optional[int] = None
                ) -> Tuple[NumericComparison, Optional[Tuple[np.ndarray, int]]]:
        """:func:`compare_numeric` of the reference and ``current``, and the index of each current
        value among the pooled distinct values with their number (``None`` when this fell back to
        :func:`compare_numeric`: see the class docstring)."""
        y = _finite("current", current)
        # With more distinct values than a cache-sized table holds (continuous data: nearly every
        # current value is new and must be sorted anyway) the pooled values are sorted once instead.
        located = None if self.negative_zero or self.distinct.size > ValueIndex.LIMIT else self.locate(y)
        if located is None:
            return compare_numeric(self.values, y, n_bins, test_bins, fine_test_bins), None
        grid, position = located
        fine = _fine_bins(test_bins, fine_test_bins)
        bins = [self.bins(n_bins), self.bins(test_bins)] + ([self.bins(fine, test_bins)] if fine else [])
        median_x, mean_x, deviation_x = self.summary()
        comparison = _comparison(grid, self.values, y, bins, median_x, _median_from_counts(grid.values, grid.cur),
                                 mean_x, deviation_x)
        return comparison, (position, grid.values.size)
