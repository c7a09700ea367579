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

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

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


def rank_correlation_check(
    reference: Mapping[str, np.ndarray],
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
    reference, current : mapping of str to numpy.ndarray
        Numeric columns (float, ``nan`` for missing) of equal length within each side.
    columns : sequence of str, optional
        Columns to pair up; default all keys of ``reference``.
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
    Cost: :math:`O(p^2\,n\log n)` for :math:`p` columns.

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
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not float(threshold) >= 0.0:
        raise ValueError(f"threshold must be >= 0, got {threshold!r}")
    if int(max_rows) < MIN_ROWS:
        raise ValueError(f"max_rows must be at least {MIN_ROWS}, got {max_rows!r}")
    names = list(reference if columns is None else columns)
    n_ref = len(next(iter(reference.values()))) if reference else 0
    n_cur = len(next(iter(current.values()))) if current else 0
    rng = np.random.default_rng(seed)
    rows_ref = _sample_rows(n_ref, int(max_rows), rng)
    rows_cur = _sample_rows(n_cur, int(max_rows), rng)
    ref = {k: np.asarray(reference[k], dtype=float)[rows_ref] for k in names}
    cur = {k: np.asarray(current[k], dtype=float)[rows_cur] for k in names}

    skipped: Dict[str, str] = {}
    usable = []
    for k in names:
        for side, data in (("reference", ref[k]), ("current", cur[k])):
            present = data[~np.isnan(data)]
            if present.size < MIN_ROWS:
                skipped[k] = f"fewer than {MIN_ROWS} values in the {side} sample"
                break
            if np.all(present == present[0]):
                skipped[k] = f"constant in the {side} sample"
                break
        else:
            usable.append(k)

    # mid-ranks of a column on a set of complete rows, shared by every pair with the same rows
    ranked: Dict[Tuple[int, str, bytes], Tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def midranks(side: int, data: Dict[str, np.ndarray], name: str, rows: np.ndarray, key: bytes):
        found = ranked.get((side, name, key))
        if found is None:
            found = ranked[(side, name, key)] = _midrank_cdf(data[name][rows])
        return found

    present = [{k: ~np.isnan(data[k]) for k in usable} for data in (ref, cur)]
    raw: List[Tuple[Tuple[str, str], SpearmanResult, SpearmanResult, float]] = []
    for i, a in enumerate(usable):
        for b in usable[i + 1:]:
            results = []
            for side, data in enumerate((ref, cur)):
                both = present[side][a] & present[side][b]
                n_both = int(both.sum())
                if n_both >= MIN_ROWS:
                    key = np.packbits(both).tobytes()
                    results.append(_spearman_ranked(midranks(side, data, a, both, key),
                                                    midranks(side, data, b, both, key), n_both))
                else:
                    results.append(SpearmanResult(float("nan"), float("nan"), n_both))
            r_ref, r_cur = results
            if not (math.isfinite(r_ref.rho) and math.isfinite(r_cur.rho)):
                continue
            raw.append(((a, b), r_ref, r_cur, _difference_p(r_ref, r_cur)))

    adjusted = adjust_p_values([p for *_, p in raw], correction) if raw else np.array([])
    pairs = []
    for ((a, b), r_ref, r_cur, p), p_adj in zip(raw, adjusted):
        delta = r_cur.rho - r_ref.rho
        drifted = bool(p_adj <= alpha and abs(delta) >= threshold)
        pairs.append(PairDrift((a, b), r_ref.rho, r_cur.rho, delta, p, float(p_adj), drifted, r_ref.n, r_cur.n))
    pairs.sort(key=lambda p: (-abs(p.delta), p.features))
    return MultivariateResult(
        method="spearman",
        drifted=any(p.drifted for p in pairs),
        score=max((abs(p.delta) for p in pairs), default=None),
        threshold=float(threshold),
        p_value=min((p.p_value_adjusted for p in pairs), default=None),
        alpha=float(alpha),
        correction=correction,
        n_reference=int(rows_ref.size),
        n_current=int(rows_cur.size),
        columns=tuple(usable),
        pairs=tuple(pairs),
        skipped=skipped,
    )
