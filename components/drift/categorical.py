r"""Two-sample comparisons of a categorical feature, from category counts.

Everything here works on ``{category: count}`` mappings, so a Beam job that only ships
counts can call the same functions as :func:`driftguard.components.drift.detect_drift`.

- :func:`compare_categorical` -- PSI, Jensen-Shannon, Hellinger and L-infinity on the
  frequent reference categories plus one pooled bucket
  (:func:`driftguard.components.drift.binning.category_bins`), and Pearson's chi-square test.
- :func:`unseen_categories` -- share of current values whose category the reference
  never holds, with an exact conditional p-value.

Sparse categories
    Chi-square on 61 taxi companies, most seen a handful of times, flags almost every
    small sample because its approximation needs expected counts of about 5 per cell.
    The test here keeps a category on its own only when its *pooled* count gives an
    expected count of at least 5 on both sides and pools the rest
    (:func:`driftguard.components.drift.divergence.chi_square` with ``ordered=False``). The choice
    looks only at the pooled counts, which the test conditions on, so it stays valid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, NamedTuple, Tuple

import numpy as np

from ._distributions import hypergeom_logpmf, normal_sf
from .binning import align_counts, category_bins
from .divergence import chi_square_counts, histogram_scores

__all__ = ["UnseenResult", "unseen_categories", "CategoricalComparison", "compare_categorical"]

#: Above this many steps (categories x observed unseen count) the exact p-value of
#: :func:`unseen_categories` gives way to its normal approximation.
_EXACT_WORK_LIMIT = 20_000_000


class UnseenResult(NamedTuple):
    """Result of :func:`unseen_categories`."""

    share: float
    count: int
    p_value: float
    categories: Tuple[str, ...]


def _unseen_tail(totals: np.ndarray, n_ref: int, n_cur: int, observed: int) -> float:
    """P(U >= observed) for U = sum_c t_c * [reference holds none of category c]."""
    grand = n_ref + n_cur
    t = totals[(totals > 0) & (totals <= n_cur)].astype(np.int64)
    q = np.exp(hypergeom_logpmf(0, grand, t, n_ref))  # P(all t_c values fall in current)
    keep = q > 1e-300
    t, q = t[keep], q[keep]
    if t.size == 0:
        return 0.0 if observed > 0 else 1.0
    if t.size * observed > _EXACT_WORK_LIMIT:
        mean = float(np.sum(t * q))
        sd = float(np.sqrt(np.sum(t.astype(float) ** 2 * q * (1 - q))))
        return 1.0 if sd == 0 else min(1.0, normal_sf((observed - 0.5 - mean) / sd))
    dist = np.zeros(observed + 1)  # dist[j] = P(U = j) for j < observed, dist[observed] = P(U >= observed)
    dist[0] = 1.0
    for weight, prob in zip(t, q):
        moved = dist * prob
        dist *= 1.0 - prob
        dist[observed] += moved[observed]
        cut = max(observed - weight, 0)
        dist[weight:observed] += moved[:cut]
        dist[observed] += moved[cut:observed].sum()
    return float(min(1.0, max(0.0, dist[observed])))


def unseen_categories(reference: Mapping[str, int], current: Mapping[str, int]) -> UnseenResult:
    r"""Share of current values in categories absent from the reference, and its p-value.

    Parameters
    ----------
    reference, current : mapping of str to int
        Category counts (missing values excluded).

    Returns
    -------
    UnseenResult
        ``share`` :math:`U/m`, ``count`` :math:`U`, ``p_value`` and up to ten
        ``categories`` (most frequent first).

    Notes
    -----
    :math:`U = \sum_c c_c\,[r_c = 0]` counts current values whose category has no
    reference value. Rare categories are missed by any finite reference, so some
    :math:`U > 0` is expected without drift; the test asks whether :math:`U` is larger
    than chance. Conditional on the pooled count :math:`t_c = r_c + c_c` of every
    category, without drift :math:`r_c` is hypergeometric and
    :math:`q_c = P(r_c = 0) = \binom{N - t_c}{n}/\binom{N}{n}`. The p-value is
    :math:`P(\sum_c t_c B_c \ge U)` for independent :math:`B_c \sim
    \mathrm{Bernoulli}(q_c)`, computed exactly by dynamic programming (a normal
    approximation beyond :math:`2\cdot10^7` steps). The category counts of a
    multivariate hypergeometric are negatively associated, which makes the
    independent-Bernoulli tail an upper bound in practice: the test is conservative.

    Examples
    --------
    >>> ref = {"Cash": 60, "Credit Card": 40}
    >>> r = unseen_categories(ref, {"Cash": 55, "Credit Card": 35, "Mobile": 10})
    >>> r.share, r.count, r.categories, r.p_value < 0.01
    (0.1, 10, ('Mobile',), True)
    >>> unseen_categories(ref, {"Cash": 50, "Credit Card": 49, "Prcard": 1}).p_value > 0.4
    True
    """
    return _unseen(*align_counts(reference, current))


def _unseen(labels: List[str], ref: np.ndarray, cur: np.ndarray) -> UnseenResult:
    """:func:`unseen_categories` of counts already aligned (:func:`driftguard.components.drift.binning.align_counts`)."""
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if n_ref <= 0 or n_cur <= 0:
        raise ValueError(f"both samples need at least one value, got {n_ref} reference and {n_cur} current")
    unseen = (ref == 0) & (cur > 0)
    observed = int(cur[unseen].sum())
    names = tuple(label for label, flag in zip(labels, unseen) if flag)[:10]
    if observed == 0:
        return UnseenResult(0.0, 0, 1.0, ())
    p_value = _unseen_tail(ref + cur, n_ref, n_cur, observed)
    return UnseenResult(observed / n_cur, observed, p_value, names)


@dataclass(frozen=True)
class CategoricalComparison:
    """Every score, p-value and descriptive statistic of one categorical feature."""

    scores: Dict[str, float]
    p_values: Dict[str, float]
    unseen: UnseenResult
    details: Dict[str, object] = field(default_factory=dict)


def _top_changes(labels: List[str], ref: np.ndarray, cur: np.ndarray, limit: int = 5) -> List[Dict[str, object]]:
    p, q = ref / ref.sum(), cur / cur.sum()
    order = np.argsort(-np.abs(q - p), kind="stable")[:limit]
    return [{"category": labels[i], "share_reference": float(p[i]), "share_current": float(q[i])} for i in order]


def compare_categorical(
    reference: Mapping[str, int], current: Mapping[str, int], min_share: float = 0.01
) -> CategoricalComparison:
    r"""Compare the category counts of two samples with every available score.

    Parameters
    ----------
    reference, current : mapping of str to int
        Category counts (missing values excluded), e.g. from
        :func:`driftguard.components.drift.binning.category_counts`.
    min_share : float, default 0.01
        Reference share below which a category is pooled into ``__other__`` for the
        histogram scores.

    Returns
    -------
    CategoricalComparison
        ``scores``: ``psi``, ``jensen_shannon``, ``hellinger``, ``linf`` and
        ``cramers_v`` on the pooled bins, ``chi_square`` (statistic of the test);
        ``p_values``: ``chi_square``; ``unseen``: see :func:`unseen_categories`;
        ``details``: the largest share changes.

    Examples
    --------
    >>> ref = {"Cash": 660, "Credit Card": 330, "No Charge": 10}
    >>> cur = {"Cash": 560, "Credit Card": 430, "No Charge": 10}
    >>> c = compare_categorical(ref, cur)
    >>> round(c.scores["linf"], 3), round(c.scores["psi"], 3), c.p_values["chi_square"] < 1e-4
    (0.1, 0.043, True)
    >>> c.details["top_changes"][0]["category"]
    'Cash'
    """
    if sum(reference.values()) <= 0 or sum(current.values()) <= 0:
        raise ValueError("both samples need at least one categorical value")
    labels, ref_bins, cur_bins = category_bins(reference, current, min_share)
    all_labels, ref_all, cur_all = align_counts(reference, current)
    chi = chi_square_counts(ref_all, cur_all, ordered=False)
    unseen = _unseen(all_labels, ref_all, cur_all)
    scores = histogram_scores(ref_bins, cur_bins, ordered=False)  # psi, ..., cramers_v
    scores["chi_square"] = chi.statistic
    details = {
        "n_categories_reference": int(np.count_nonzero(ref_all)),
        "n_categories_current": int(np.count_nonzero(cur_all)),
        "bins": labels,
        "reference_counts": ref_bins.tolist(),
        "current_counts": cur_bins.tolist(),
        "top_changes": _top_changes(all_labels, ref_all, cur_all),
    }
    return CategoricalComparison(scores, {"chi_square": chi.p_value}, unseen, details)
