r"""Joint drift: changes in how features move together, with unchanged marginals.

If ``trip_miles`` is shuffled independently of ``fare``, each column keeps its
distribution and every per-feature test stays quiet, yet a model that learned
"fare grows with distance" is now wrong. :func:`rank_correlation_check` compares the
Spearman rank correlation of every pair of numeric features between the two samples.

Why rank correlations
    Each sample is ranked *within itself*, so any monotone change of a marginal
    (``fare * 1.10``, a unit change) leaves the ranks, and this check, untouched: it
    only looks at the copula, and marginal drift is the job of the per-feature tests.

The test per pair
    :math:`\hat\rho` is the Pearson correlation of mid-ranks (Spearman's rho with ties).
    Its standard error comes from the empirical influence function of that functional
    (:func:`spearman`), which is valid for any joint distribution, ties and heavy
    tails included; the textbook :math:`1.06/(n-3)` holds only for normal data and
    mis-states the error of strongly dependent pairs (4 times too large for fare and
    trip_seconds, rho = 0.94, and too small for pickup_latitude and community area).
    The statistic is :math:`Z = (\hat\rho_{ref} - \hat\rho_{cur}) /
    \sqrt{\mathrm{se}_{ref}^2 + \mathrm{se}_{cur}^2}`, two-sided normal. Fisher's
    :math:`z` transform was tried and dropped: combined with these standard errors its
    tail was 10 times too heavy for rho = 0.94 at 500 rows (``P(|Z| > 3.89)`` 0.001 for
    a nominal 0.0001 over 3,000 undrifted taxi splits), while the rho scale stayed at
    or under nominal. p-values are Holm-adjusted over all pairs.

Verdict
    A pair drifts when its adjusted p-value is at most ``alpha`` **and**
    :math:`|\rho_{cur} - \rho_{ref}| \ge` ``threshold`` (default 0.1). The check fires
    when any pair drifts. At most ``max_rows`` rows per side (default 5,000) are used,
    drawn without replacement by a seeded :class:`numpy.random.Generator`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ._distributions import normal_sf
from .correction import adjust_p_values

__all__ = ["SpearmanResult", "spearman", "PairDrift", "MultivariateResult", "rank_correlation_check",
           "DEFAULT_MULTIVARIATE_ALPHA", "DEFAULT_MULTIVARIATE_THRESHOLD", "DEFAULT_MAX_ROWS"]

DEFAULT_MULTIVARIATE_ALPHA = 0.01
DEFAULT_MULTIVARIATE_THRESHOLD = 0.1
DEFAULT_MAX_ROWS = 5000
#: Fewer complete rows than this on either side and a pair is skipped.
MIN_ROWS = 30


class SpearmanResult(NamedTuple):
    """Result of :func:`spearman`."""

    rho: float
    se: float
    n: int


def _midrank_cdf(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mid-distribution function u_i = (#{x < x_i} + #{x = x_i}/2)/n, plus group ids and sizes."""
    uniq, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    u = (below + counts / 2.0) / values.size
    return u[inverse], inverse, counts


def _upper_mid_mean(group: np.ndarray, n_groups: int, weights: np.ndarray) -> np.ndarray:
    """For each i: (1/n) sum_j ([x_j > x_i] + [x_j = x_i]/2) w_j, with x given by group ids."""
    sums = np.bincount(group, weights=weights, minlength=n_groups)
    above = np.concatenate([np.cumsum(sums[::-1])[::-1][1:], [0.0]])
    return (above + sums / 2.0)[group] / weights.size


def spearman(x, y) -> SpearmanResult:
    r"""Spearman's rank correlation with a distribution-free standard error.

    Parameters
    ----------
    x, y : array_like of float
        Paired finite values (complete rows only).

    Returns
    -------
    SpearmanResult
        ``rho``, its standard error ``se`` and the number of rows ``n``. ``rho`` is
        ``nan`` when either column is constant.

    Notes
    -----
    With mid-distribution values :math:`u_i = \hat F(x_i)`, :math:`v_i = \hat G(y_i)`
    (so :math:`\bar u = \bar v = 1/2`), :math:`\hat\rho = (\overline{uv} - 1/4) /
    \sqrt{BC}` with :math:`B = \overline{u^2} - 1/4`, :math:`C = \overline{v^2} - 1/4`.
    Its influence function is

    .. math::
        IF_i = \frac{\phi^{uv}_i}{\sqrt{BC}} - \frac{\rho}{2}\Big(\frac{\phi^{uu}_i}{B}
        + \frac{\phi^{vv}_i}{C}\Big),\qquad
        \phi^{uv}_i = u_iv_i + \overline{[x \succ x_i]\,v} + \overline{u\,[y \succ y_i]}
        - 3\,\overline{uv},

    where :math:`[x \succ x_i] = [x > x_i] + \tfrac12[x = x_i]` (the derivative of the
    rank transform itself), and :math:`\phi^{uu}, \phi^{vv}` likewise. Then
    :math:`\mathrm{se} = \sqrt{\overline{IF^2}/n}` [1]_. For independent continuous
    columns :math:`IF_i = 12(u_i - \tfrac12)(v_i - \tfrac12)` and
    :math:`\mathrm{se} \approx 1/\sqrt n`, the classical null variance.

    References
    ----------
    .. [1] F. R. Hampel, "The influence curve and its role in robust estimation",
       JASA 69 (1974), 383-393; for rank correlations see C. Croux and C. Dehon,
       "Influence functions of the Spearman and Kendall correlation measures",
       Stat. Methods Appl. 19 (2010), 497-515.

    Examples
    --------
    >>> r = spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    >>> round(r.rho, 6), r.n
    (1.0, 5)
    >>> rng = np.random.default_rng(0)
    >>> r = spearman(rng.normal(size=4000), rng.normal(size=4000))
    >>> abs(r.rho) < 0.05, round(r.se * math.sqrt(4000), 1)
    (True, 1.0)
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    n = x.size
    if y.size != n:
        raise ValueError(f"x and y must have the same length, got {n} and {y.size}")
    if n < 3:
        return SpearmanResult(float("nan"), float("nan"), n)
    return _spearman_ranked(_midrank_cdf(x), _midrank_cdf(y), n)


def _spearman_ranked(ranked_x, ranked_y, n: int) -> SpearmanResult:
    """:func:`spearman` from the :func:`_midrank_cdf` of each column (n >= 3 rows)."""
    u, gx, cx = ranked_x
    v, gy, cy = ranked_y
    b = float(np.mean(u * u) - 0.25)
    c = float(np.mean(v * v) - 0.25)
    if b <= 0 or c <= 0:
        return SpearmanResult(float("nan"), float("nan"), n)
    uv = u * v
    rho = float((np.mean(uv) - 0.25) / math.sqrt(b * c))
    phi_uv = uv + _upper_mid_mean(gx, cx.size, v) + _upper_mid_mean(gy, cy.size, u) - 3.0 * np.mean(uv)
    phi_uu = u * u + 2.0 * _upper_mid_mean(gx, cx.size, u) - 3.0 * np.mean(u * u)
    phi_vv = v * v + 2.0 * _upper_mid_mean(gy, cy.size, v) - 3.0 * np.mean(v * v)
    influence = phi_uv / math.sqrt(b * c) - 0.5 * rho * (phi_uu / b + phi_vv / c)
    se = float(math.sqrt(np.mean(influence ** 2) / n))
    return SpearmanResult(max(-1.0, min(1.0, rho)), se, n)


@dataclass(frozen=True)
class PairDrift:
    """Rank correlation of one pair of features in both samples."""

    features: Tuple[str, str]
    rho_reference: float
    rho_current: float
    delta: float
    p_value: float
    p_value_adjusted: float
    drifted: bool
    n_reference: int
    n_current: int

    def to_dict(self) -> Dict[str, object]:
        return {"features": list(self.features), "rho_reference": self.rho_reference,
                "rho_current": self.rho_current, "delta": self.delta, "p_value": self.p_value,
                "p_value_adjusted": self.p_value_adjusted, "drifted": self.drifted,
                "n_reference": self.n_reference, "n_current": self.n_current}


@dataclass(frozen=True)
class MultivariateResult:
    """Outcome of :func:`rank_correlation_check`.

    ``score`` is the largest :math:`|\\Delta\\rho|` over tested pairs, ``p_value`` the
    smallest adjusted p-value, ``pairs`` every tested pair by decreasing
    :math:`|\\Delta\\rho|`, ``skipped`` the features left out and why.
    """

    method: str
    drifted: bool
    score: Optional[float]
    threshold: float
    p_value: Optional[float]
    alpha: float
    correction: str
    n_reference: int
    n_current: int
    columns: Tuple[str, ...]
    pairs: Tuple[PairDrift, ...] = ()
    skipped: Dict[str, str] = field(default_factory=dict)

    @property
    def drifted_pairs(self) -> List[PairDrift]:
        return [p for p in self.pairs if p.drifted]

    def to_dict(self) -> Dict[str, object]:
        return {"method": self.method, "drifted": self.drifted, "score": self.score,
                "threshold": self.threshold, "p_value": self.p_value, "alpha": self.alpha,
                "correction": self.correction, "n_reference": self.n_reference,
                "n_current": self.n_current, "columns": list(self.columns),
                "pairs": [p.to_dict() for p in self.pairs], "skipped": dict(self.skipped)}


def _difference_p(a: SpearmanResult, b: SpearmanResult) -> float:
    """Two-sided p-value of rho_a == rho_b from two independent samples."""
    spread = math.sqrt(a.se * a.se + b.se * b.se)
    if spread == 0.0:
        return 1.0 if a.rho == b.rho else 0.0
    return min(1.0, 2.0 * normal_sf(abs(a.rho - b.rho) / spread))


def _sample_rows(n: int, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if n <= max_rows:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


class _Ranks(NamedTuple):
    """One column on one set of complete rows: what :func:`_spearman_ranked` needs of it alone."""

    u: np.ndarray  # mid-distribution value of each row (:func:`_midrank_cdf`)
    group: np.ndarray  # each row's value code: increasing with the value, equal for equal values
    n_groups: int  # codes are below this (some may be absent from the rows)
    b: float  # mean(u^2) - 1/4; <= 0 for a constant column
    own: Optional[np.ndarray]  # phi_uu / b, the column's own term of every pair's influence function


def _gather(table: np.ndarray, group: np.ndarray) -> np.ndarray:
    """``table[group]`` for group codes known to be in range (numpy's bounds check is most of a take's time)."""
    return table.take(group, mode="wrap")


def _upper_mid_table(group: np.ndarray, n_groups: int, weights: np.ndarray) -> np.ndarray:
    """Per group, the value of :func:`_upper_mid_mean` (its rows take it: ``_gather(table, group)``).

    The same additions in the same order: the sums above a group accumulate from the top group down.
    """
    sums = np.bincount(group, weights=weights, minlength=n_groups)
    table = np.empty(n_groups)
    sums[:0:-1].cumsum(out=table[-2::-1])
    table[-1] = 0.0
    table += sums / 2.0
    table /= weights.size
    return table


def _pair(x: _Ranks, y: _Ranks, n: int) -> SpearmanResult:
    """:func:`_spearman_ranked` from what each column brings (its ranks, ``b`` and own term).

    Only the pair's own terms are computed, in place, with the operations of
    :func:`_spearman_ranked` in the same order: the numbers are bit-for-bit the same.
    """
    uv = x.u * y.u
    mean_uv = uv.sum() / n  # numpy.mean of a 1-D array: its pairwise sum over n
    root = math.sqrt(x.b * y.b)
    rho = float((mean_uv - 0.25) / root)
    k = _kernels()
    if k is not None:
        phi = k.pair(k.table(x.group, x.n_groups, y.u), x.group, k.table(y.group, y.n_groups, x.u), y.group, uv,
                     3.0 * mean_uv, root, x.own, y.own, 0.5 * rho)
    else:
        phi = _gather(_upper_mid_table(x.group, x.n_groups, y.u), x.group)
        phi += uv  # (uv + T1) + T2, in place
        phi += _gather(_upper_mid_table(y.group, y.n_groups, x.u), y.group)
        phi -= 3.0 * mean_uv
        phi /= root  # the influence function: phi_uv / sqrt(bc) - rho/2 (phi_uu / b + phi_vv / c)
        own = x.own + y.own
        own *= 0.5 * rho
        phi -= own
        phi *= phi
    return SpearmanResult(max(-1.0, min(1.0, rho)), math.sqrt(phi.sum() / n / n), n)


def _ranks(group: np.ndarray, n_codes: int) -> _Ranks:
    """:func:`_midrank_cdf` of a column given as value codes (see :meth:`RankedSample._ranked`)."""
    k = _kernels()
    if k is not None:
        u = k.midranks(group, n_codes)
    else:
        counts = np.bincount(group, minlength=n_codes)
        below = counts.cumsum() - counts
        u = _gather((below + counts / 2.0) / group.size, group)
    uu = u * u
    mean_uu = uu.sum() / uu.size
    b = float(mean_uu - 0.25)
    own = None
    if b > 0:  # phi_uu of _spearman_ranked, over b
        if k is not None:
            own = k.own(k.table(group, n_codes, u), group, uu, 3.0 * mean_uu, b)
        else:
            own = _gather(_upper_mid_table(group, n_codes, u), group)
            own *= 2.0
            own += uu
            own -= 3.0 * mean_uu
            own /= b
    return _Ranks(u, group, n_codes, b, own)


# ---- compiled loops
#
# Hand-written because numpy makes a dozen passes over the rows per pair and per column, each
# allocating an array: for a monitor's window (5,000 sampled rows, ~70 pairs) that was ~40 % of
# the window's time. Each loop does a row's operations in numpy's order (bincount adds in row
# order, cumulative sums run in numpy's direction, no reassociation, no fused multiply-add:
# numba's default), so the results are bit-for-bit those of the numpy lines above (tested:
# tests/drift/test_drift_prepared.py); the sums over all rows stay numpy's (pairwise). Without
# numba (an image that lacks it) the numpy lines run.

USE_COMPILED = True  # tests switch it off to compare


class _Kernels(NamedTuple):
    table: Callable
    midranks: Callable
    pair: Callable
    own: Callable


_KERNELS: List[Optional[_Kernels]] = []


def _kernels() -> Optional[_Kernels]:
    if not USE_COMPILED:
        return None
    if not _KERNELS:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is in the lock
            _KERNELS.append(None)
        else:
            loops = (_table_loop, _midranks_loop, _pair_loop, _own_loop)
            try:
                compiled = [numba.njit(cache=True, nogil=True)(f) for f in loops]
            except RuntimeError:  # no writable cache folder (a read-only install): compile per process
                compiled = [numba.njit(nogil=True)(f) for f in loops]
            _KERNELS.append(_Kernels(*compiled))
    return _KERNELS[0]


def _table_loop(group, n_groups, weights):  # pragma: no cover - compiled
    """:func:`_upper_mid_table`."""
    n = group.size
    sums = np.zeros(n_groups)
    for i in range(n):
        sums[group[i]] += weights[i]
    table = np.empty(n_groups)
    if n_groups:
        table[n_groups - 1] = 0.0
        if n_groups > 1:
            acc = sums[n_groups - 1]
            table[n_groups - 2] = acc
            for j in range(n_groups - 3, -1, -1):
                acc = acc + sums[j + 1]
                table[j] = acc
        for j in range(n_groups):
            table[j] = (table[j] + sums[j] / 2.0) / n
    return table


def _midranks_loop(group, n_groups):  # pragma: no cover - compiled
    """The mid-distribution value of each row: (rows below its value + half its ties) / n."""
    n = group.size
    counts = np.zeros(n_groups, dtype=np.int64)
    for i in range(n):
        counts[group[i]] += 1
    table = np.empty(n_groups)
    below = 0
    for j in range(n_groups):
        table[j] = (np.float64(below) + counts[j] / 2.0) / n
        below += counts[j]
    u = np.empty(n)
    for i in range(n):
        u[i] = table[group[i]]
    return u


def _pair_loop(table_x, gx, table_y, gy, uv, three_mean_uv, root, own_x, own_y, half_rho):  # pragma: no cover
    """The squared influence function of a pair, row by row (the numpy lines of :func:`_pair`)."""
    n = uv.size
    phi = np.empty(n)
    for i in range(n):
        p = table_x[gx[i]] + uv[i]
        p = p + table_y[gy[i]]
        p = p - three_mean_uv
        p = p / root
        o = own_x[i] + own_y[i]
        o = o * half_rho
        p = p - o
        phi[i] = p * p
    return phi


def _own_loop(table, group, uu, three_mean_uu, b):  # pragma: no cover - compiled
    """A column's own term of the influence function, over ``b`` (the numpy lines of :func:`_ranks`)."""
    n = uu.size
    own = np.empty(n)
    for i in range(n):
        o = table[group[i]] * 2.0
        o = o + uu[i]
        o = o - three_mean_uu
        own[i] = o / b
    return own


class RankedSample:
    """One side's sample of :func:`rank_correlation_check`, ranked lazily and once.

    The mid-ranks of a column depend on the column and on the set of rows complete for
    the pair, not on the pair itself: they are computed once per (column, rows) and
    shared, together with the column's own term of the influence function (``phi_uu / b``
    of :func:`_spearman_ranked`). Results of pairs are kept too, so the sample of a
    prepared reference (:class:`ReferenceSample`) ranks and correlates its pairs once for
    all windows. A pair then costs a few passes over its rows (:func:`_pair`).

    Parameters
    ----------
    column : callable
        ``column(name)`` gives the sample's float values of a column (``nan`` missing).
    side : {"reference", "current"}
        For the reasons given for skipped columns.
    codes : mapping, optional
        Per column, ``(codes, n_codes)``: for each row an integer in ``[0, n_codes)``
        that increases with the value (equal values, equal codes; missing rows
        arbitrary), e.g. positions on a grid of distinct values that is already known.
        Saves the sort of that column.
    """

    def __init__(self, column: Callable[[str], np.ndarray], side: str,
                 codes: Optional[Mapping[str, Tuple[np.ndarray, int]]] = None):
        self._column = column
        self.side = side
        self._values: Dict[str, np.ndarray] = {}
        self._codes: Dict[str, Tuple[np.ndarray, int]] = dict(codes or {})
        self._masks: Dict[str, Tuple[Optional[np.ndarray], Optional[bytes], int]] = {}
        self._both: Dict[Tuple[bytes, bytes], Tuple[np.ndarray, bytes, int]] = {}
        self._ranks: Dict[Tuple[str, Optional[bytes]], _Ranks] = {}
        self._results: Dict[Tuple[str, str], SpearmanResult] = {}

    def values(self, name: str) -> np.ndarray:
        found = self._values.get(name)
        if found is None:
            found = self._values[name] = self._column(name)
        return found

    def _present(self, name: str) -> Tuple[Optional[np.ndarray], Optional[bytes], int]:
        """Mask of the rows where the column is present (``None``: all), its key, and their number."""
        found = self._masks.get(name)
        if found is None:
            present = ~np.isnan(self.values(name))
            count = int(np.count_nonzero(present))
            found = (None, None, count) if count == present.size else (present, np.packbits(present).tobytes(), count)
            self._masks[name] = found
        return found

    def skip_reason(self, name: str) -> Optional[str]:
        """Why the column cannot take part (too few values, constant), or ``None``."""
        mask, _, count = self._present(name)
        if count < MIN_ROWS:
            return f"fewer than {MIN_ROWS} values in the {self.side} sample"
        codes = self._value_codes(name)[0]
        present = codes if mask is None else codes[mask]
        if present.min() == present.max():
            return f"constant in the {self.side} sample"
        return None

    def _value_codes(self, name: str) -> Tuple[np.ndarray, int]:
        found = self._codes.get(name)
        if found is None:
            values = self.values(name)
            mask = self._present(name)[0]
            distinct, inverse = np.unique(values if mask is None else values[mask], return_inverse=True)
            if mask is None:
                codes = inverse
            else:
                codes = np.zeros(values.size, dtype=np.intp)
                codes[mask] = inverse
            found = self._codes[name] = (codes, distinct.size)
        return found

    def _pair_rows(self, a: str, b: str) -> Tuple[Optional[np.ndarray], Optional[bytes], int]:
        """The rows complete for a pair: mask (``None``: all), key and number."""
        mask_a, key_a, n_a = self._present(a)
        mask_b, key_b, n_b = self._present(b)
        if mask_a is None or key_a == key_b:
            return mask_b, key_b, n_b
        if mask_b is None:
            return mask_a, key_a, n_a
        found = self._both.get((key_a, key_b))
        if found is None:  # (pairs of columns with the same two gaps share it: pickup x dropoff latitude, longitude)
            both = mask_a & mask_b
            found = self._both[(key_a, key_b)] = (both, np.packbits(both).tobytes(), int(np.count_nonzero(both)))
        return found

    def _ranked(self, name: str, mask: Optional[np.ndarray], key: Optional[bytes]) -> _Ranks:
        """:func:`_midrank_cdf` of the column on the rows of ``mask``, from its value codes."""
        found = self._ranks.get((name, key))
        if found is None:
            codes, n_codes = self._value_codes(name)
            # Codes absent from these rows are empty groups, kept: they add exact zeros to the counts
            # below a value and to the sums above it, so u and the sums are those of the distinct values
            # of these rows alone, as numpy.unique would number them.
            found = self._ranks[(name, key)] = _ranks(codes if mask is None else codes[mask], n_codes)
        return found

    def results(self, pairs: Sequence[Tuple[str, str]]) -> List[SpearmanResult]:
        """:func:`spearman` of each pair on the rows where both columns are present."""
        for pair in pairs:
            if pair in self._results:
                continue
            mask, key, n = self._pair_rows(*pair)
            result = SpearmanResult(float("nan"), float("nan"), n)
            if n >= MIN_ROWS:
                left, right = self._ranked(pair[0], mask, key), self._ranked(pair[1], mask, key)
                if left.b > 0 and right.b > 0:
                    result = _pair(left, right, n)
            self._results[pair] = result
        return [self._results[pair] for pair in pairs]


class ReferenceSample:
    """The reference side of :func:`rank_correlation_check` for one ``max_rows`` and ``seed``.

    The reference rows are drawn first, by the same generator that then draws the
    current rows: with ``replay=True`` (a seeded generator, kept for many windows),
    :meth:`current_rows` continues from a copy of the generator as the reference draw
    left it, so every window gets the rows a fresh call would; they depend on the
    window's length alone, and the last length's rows are kept (windows usually have
    one length). With ``replay=False`` the generator itself is used on.
    """

    def __init__(self, column: Callable[[str], np.ndarray], n_rows: int, max_rows: int, seed, replay: bool):
        rng = np.random.default_rng(seed)
        self.rows = _sample_rows(n_rows, max_rows, rng)
        self.max_rows = max_rows
        self._rng = rng
        self._replay = replay
        self._current: Tuple[int, np.ndarray] = (-1, np.arange(0))
        everything = self.rows.size == n_rows  # then the sample is the column itself (only read)
        self.ranked = RankedSample(lambda name: column(name) if everything else column(name)[self.rows], "reference")

    def current_rows(self, n_rows: int) -> np.ndarray:
        if not self._replay:
            return _sample_rows(n_rows, self.max_rows, self._rng)
        if self._current[0] != n_rows:
            rows = _sample_rows(n_rows, self.max_rows, copy.deepcopy(self._rng))
            rows.setflags(write=False)
            self._current = (n_rows, rows)
        return self._current[1]


def rank_correlation_check(
    reference,
    current: Mapping[str, np.ndarray],
    columns: Optional[Sequence[str]] = None,
    *,
    alpha: float = DEFAULT_MULTIVARIATE_ALPHA,
    threshold: float = DEFAULT_MULTIVARIATE_THRESHOLD,
    correction: str = "holm",
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: Optional[int] = 0,
) -> MultivariateResult:
    r"""Test whether the pairwise rank correlations of numeric features changed.

    Parameters
    ----------
    reference : mapping of str to numpy.ndarray, or PreparedReference
        Numeric columns (float, ``nan`` for missing) of equal length. A
        :class:`driftguard.components.drift.PreparedReference` keeps its sample, mid-ranks and
        per-pair results for the next call with the same ``max_rows`` and ``seed``.
    current : mapping of str to numpy.ndarray
        The same for the current sample.
    columns : sequence of str, optional
        Columns to pair up; default all keys of ``reference`` (of a prepared reference:
        its numeric columns).
    alpha : float, default 0.01
        Family-wise significance level over all pairs.
    threshold : float, default 0.1
        Smallest :math:`|\rho_{cur} - \rho_{ref}|` that counts as drift.
    correction : {"holm", "bonferroni", "none"}, default "holm"
    max_rows : int, default 5000
        Rows sampled per side (without replacement) before the check.
    seed : int or None, default 0
        Seed of the :class:`numpy.random.Generator` used for that sample.

    Returns
    -------
    MultivariateResult

    Notes
    -----
    See the module docstring. Pairs use the rows where both columns are present;
    a pair with fewer than 30 such rows on a side, or a constant column, is skipped.
    Cost: :math:`O(p\,n\log n + p^2 n)` for :math:`p` columns: each column is sorted
    once per side (not at all when its values come located on a known grid, as
    ``detect_drift`` passes them), ranked once per set of complete rows, and each pair
    takes a few passes over its rows. With a prepared reference only the current side
    is computed.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=3000)
    >>> ref = {"x": x, "y": x + rng.normal(size=3000)}
    >>> x2 = rng.normal(size=3000)
    >>> same = {"x": x2, "y": x2 + rng.normal(size=3000)}
    >>> decoupled = {"x": x2, "y": rng.permutation(x2 + rng.normal(size=3000))}
    >>> rank_correlation_check(ref, same).drifted
    False
    >>> r = rank_correlation_check(ref, decoupled)
    >>> r.drifted, round(r.pairs[0].rho_reference, 2), round(r.pairs[0].rho_current, 2)
    (True, 0.69, 0.01)
    """
    return _rank_correlation(reference, current, columns, alpha=alpha, threshold=threshold, correction=correction,
                             max_rows=max_rows, seed=seed)


def _rank_correlation(reference, current: Mapping[str, np.ndarray], columns: Optional[Sequence[str]], *,
                      alpha: float, threshold: float, correction: str, max_rows: int, seed,
                      codes: Optional[Mapping[str, Tuple[np.ndarray, int]]] = None) -> MultivariateResult:
    """:func:`rank_correlation_check`; ``codes`` optionally gives value codes of the current
    columns over *all* their rows (see :class:`RankedSample`), e.g. from the features' grids."""
    from .prepared import PreparedReference  # prepared builds on this module

    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not float(threshold) >= 0.0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    if int(max_rows) < MIN_ROWS:
        raise ValueError(f"max_rows must be at least {MIN_ROWS}, got {max_rows!r}")
    if isinstance(reference, PreparedReference):
        names = list(reference.numeric_columns() if columns is None else columns)
        sample = reference.rank_sample(names, int(max_rows), seed)
    else:
        names = list(reference if columns is None else columns)
        n_ref = len(next(iter(reference.values()))) if reference else 0
        sample = ReferenceSample({k: np.asarray(reference[k], dtype=float) for k in names}.__getitem__, n_ref,
                                 int(max_rows), seed, replay=False)
    n_cur = len(next(iter(current.values()))) if current else 0
    rows_cur = sample.current_rows(n_cur)
    cur_values = {k: np.asarray(current[k], dtype=float)[rows_cur] for k in names}
    cur = RankedSample(cur_values.__getitem__, "current",
                       {k: (c[rows_cur], n) for k, (c, n) in (codes or {}).items() if k in cur_values})
    ref = sample.ranked

    skipped: Dict[str, str] = {}
    usable = []
    for k in names:
        reason = ref.skip_reason(k) or cur.skip_reason(k)
        if reason:
            skipped[k] = reason
        else:
            usable.append(k)

    pairs = [(a, b) for i, a in enumerate(usable) for b in usable[i + 1:]]
    ref_results = ref.results(pairs)
    # a pair without a reference correlation is left out whatever the current one: skip computing it
    tested = [(pair, r) for pair, r in zip(pairs, ref_results) if math.isfinite(r.rho)]
    raw: List[Tuple[Tuple[str, str], SpearmanResult, SpearmanResult, float]] = []
    for (pair, r_ref), r_cur in zip(tested, cur.results([pair for pair, _ in tested])):
        if math.isfinite(r_cur.rho):
            raw.append((pair, r_ref, r_cur, _difference_p(r_ref, r_cur)))

    adjusted = adjust_p_values([p for *_, p in raw], correction) if raw else np.array([])
    pairs_drift = []
    for ((a, b), r_ref, r_cur, p), p_adj in zip(raw, adjusted):
        delta = r_cur.rho - r_ref.rho
        drifted = bool(p_adj <= alpha and abs(delta) >= threshold)
        pairs_drift.append(PairDrift((a, b), r_ref.rho, r_cur.rho, delta, p, float(p_adj), drifted, r_ref.n,
                                     r_cur.n))
    pairs_drift.sort(key=lambda p: (-abs(p.delta), p.features))
    return MultivariateResult(
        method="spearman",
        drifted=any(p.drifted for p in pairs_drift),
        score=max((abs(p.delta) for p in pairs_drift), default=None),
        threshold=float(threshold),
        p_value=min((p.p_value_adjusted for p in pairs_drift), default=None),
        alpha=float(alpha),
        correction=correction,
        n_reference=int(sample.rows.size),
        n_current=int(rows_cur.size),
        columns=tuple(usable),
        pairs=tuple(pairs_drift),
        skipped=skipped,
    )
