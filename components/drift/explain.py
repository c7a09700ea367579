r"""Why the domain classifier tells the tables apart: which features, and which rows.

From a :class:`driftguard.components.drift.classifier.DomainClassifierFit`:

Feature importances (with uncertainty)
    Permutation importance of the held-out AUC: in each fold, the feature's values are
    shuffled among the fold's held-out rows and the rows re-scored by the fold's model
    (which never saw them); the importance is the AUC lost, averaged over folds
    (:data:`SHUFFLES` shuffles each). Its uncertainty is the folds' standard deviation:
    the folds share training rows and are correlated (as the test's are, see
    :mod:`.classifier`), so sd/sqrt(folds) understates it (a noise feature came out at
    0.015 +- 0.003 that way, "significant"), while the standard error of a mean of
    correlated folds is at most their own spread. A feature is named as *separating*
    when its importance is at least :data:`IMPORTANCE_Z` such errors above zero and at
    least :data:`MIN_IMPORTANCE_SHARE` of ``auc - 0.5``. A feature the model can replace
    by a correlated one (``fare`` and ``trip_seconds``)
    shares its importance with it: read them together.

Segments
    A shallow decision tree (depth <= 3, each leaf holding at least
    :data:`MIN_LEAF_SHARE` of the rows, the two sides weighted equally) separating the
    rows the classifier scores most current-like (the top :data:`TAIL` of the held-out
    scores) and most reference-like (the bottom :data:`TAIL`) from the rest: a
    distillation of the classifier into a few rules. A tree on the side labels
    themselves is blind to a pure interaction (when no single feature's marginal
    changed, its greedy first split has nothing to go on), and so is a tree regressing
    the scores (their mean given any one feature is flat); the score *tails* are not.
    Each leaf is a rule on the features, and its share of the reference rows and of the
    current rows says where the current data has more (or fewer) rows than the
    reference: ``"trip_start_hour >= 22 and company = Taxi Affiliation Services: 3.6% ->
    10.6% of rows"`` (``benchmarks/drift_classifier.py --part shifts``). Thresholds are
    printed in the feature's units (whole numbers for a
    feature holding only whole numbers; the classifier's bin edges, halfway between
    neighbouring values), categories by name (a categorical feature's categories are
    ordered by their mean score before the tree sees them, so one threshold split is the
    best partition of its categories [1]_). Segments are listed by their term of the
    symmetric Kullback-Leibler divergence between the leaf shares, (q - p) ln(q/p), so
    a small segment whose share tripled comes before a large one that lost a few
    points. The shares are counts of the sampled rows: descriptive, not a test. Sibling leaves
    whose shares of current rows do not differ by :data:`PRUNE_Z` standard errors are
    merged (the last splits of a tree grown to depth 3 are often noise).

References
----------
.. [1] L. Breiman, J. Friedman, R. Olshen and C. Stone, *Classification and Regression
   Trees* (1984), section 9.4 (ordering categories by class proportion).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .classifier import THREADS, DomainClassifierFit, mann_whitney

__all__ = ["explain_drift", "Explanation", "FeatureImportance", "Segment", "MIN_LEAF_SHARE", "MAX_DEPTH"]

MAX_DEPTH = 3
#: Smallest share of the rows (both sides together) in a leaf of the segment tree.
MIN_LEAF_SHARE = 0.03
#: Segments reported (by decreasing change of share).
MAX_SEGMENTS = 5
#: Sibling leaves whose shares of current rows differ by less than this many standard errors are merged.
PRUNE_Z = 3.5
#: The segment tree separates the rows the classifier scores most current-like (the top ``TAIL`` of the
#: held-out scores) and most reference-like (the bottom ``TAIL``) from the rest.
TAIL = 0.1
#: Shuffles per fold for the permutation importances.
SHUFFLES = 2
#: A feature is named as separating when its importance is at least this share of ``auc - 0.5`` ...
MIN_IMPORTANCE_SHARE = 0.1
#: ... and at least this many standard errors (the folds' spread) above zero (one-sided 1 %).
IMPORTANCE_Z = 2.33


@dataclass(frozen=True)
class FeatureImportance:
    """Held-out AUC lost when one feature is shuffled: mean over folds and its standard error (the folds'
    standard deviation, an upper bound whatever their correlation)."""

    feature: str
    importance: float
    se: float
    separating: bool

    def to_dict(self) -> Dict[str, Any]:
        return {"feature": self.feature, "importance": self.importance, "se": self.se,
                "separating": self.separating}


@dataclass(frozen=True)
class Segment:
    """A leaf of the segment tree: its rule and its share of each side's rows."""

    rule: str
    conditions: Tuple[Dict[str, Any], ...]
    share_reference: float
    share_current: float
    n_reference: int
    n_current: int

    @property
    def text(self) -> str:
        return f"{self.rule}: {self.share_reference:.1%} -> {self.share_current:.1%} of rows"

    def to_dict(self) -> Dict[str, Any]:
        return {"rule": self.rule, "conditions": [dict(c) for c in self.conditions],
                "share_reference": self.share_reference, "share_current": self.share_current,
                "n_reference": self.n_reference, "n_current": self.n_current, "text": self.text}


@dataclass(frozen=True)
class Explanation:
    """:func:`explain_drift`'s result: importances (decreasing) and segments (largest change of share first)."""

    importances: Tuple[FeatureImportance, ...]
    segments: Tuple[Segment, ...]

    @property
    def separating_features(self) -> List[str]:
        return [f.feature for f in self.importances if f.separating]

    def to_dict(self) -> Dict[str, Any]:
        return {"separating_features": self.separating_features,
                "importances": [f.to_dict() for f in self.importances],
                "segments": [s.to_dict() for s in self.segments]}

    def format_lines(self, limit: int = 5) -> List[str]:
        """Text lines for a table: the separating features, then the segments."""
        named = [f for f in self.importances if f.separating][:limit]
        lines = ["features separating current from reference (held-out AUC lost when shuffled): "
                 + (", ".join(f"{f.feature} {f.importance:.3f} +- {f.se:.3f}" for f in named) or "none clearly")]
        if self.segments:
            lines.append("segments whose share changed most:")
            lines.extend(f"  {s.text}" for s in self.segments[:limit])
        return lines


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    cur, ref = scores[labels == 1], scores[labels == 0]
    return mann_whitney(cur, ref)[0] / (cur.size * ref.size)


def _importances(fit: DomainClassifierFit, rng: np.random.Generator) -> List[FeatureImportance]:
    folds = sorted(set(fit.fold_of.tolist()))
    losses = np.empty((len(fit.columns), len(folds)))
    for k, fold in enumerate(folds):
        held = fit.fold_of == fold
        x, y = fit.features[held], fit.labels[held]
        base = _auc(fit.scores[held], y)
        model = fit.models[fold]
        copies = np.tile(x, (len(fit.columns) * SHUFFLES, 1))  # one prediction call per fold
        for j in range(len(fit.columns)):
            for r in range(SHUFFLES):
                block = (j * SHUFFLES + r) * y.size
                copies[block:block + y.size, j] = x[rng.permutation(y.size), j]
        scores = model.decision_function(copies).reshape(len(fit.columns), SHUFFLES, y.size)
        for j in range(len(fit.columns)):
            losses[j, k] = base - np.mean([_auc(scores[j, r], y) for r in range(SHUFFLES)])
    out = []
    floor = MIN_IMPORTANCE_SHARE * max(fit.auc - 0.5, 0.0)
    for j, name in enumerate(fit.columns):
        mean = float(losses[j].mean())
        # the folds are correlated (they share training rows), so their mean is not sd / sqrt(K) precise;
        # whatever the correlation its standard error is at most the folds' own spread: report and use that
        se = float(losses[j].std(ddof=1))
        out.append(FeatureImportance(name, mean, se, bool(mean > 0 and mean >= floor and mean >= IMPORTANCE_Z * se)))
    out.sort(key=lambda f: (-f.importance, f.feature))
    return out


def _number(value: float) -> str:
    return f"{value:.4g}"


class _Rules:
    """Turns tree paths into readable conditions over the original features."""

    def __init__(self, fit: DomainClassifierFit, order: Dict[int, List[str]]):
        self.fit = fit
        self.order = order  # categorical column -> its category names by tree code
        # a feature whose bin edges all sit halfway between whole numbers holds whole numbers
        self.whole = {name: bool(np.all(np.mod(edges, 1) == 0.5)) for name, edges in fit.encoder.edges.items()}

    def describe(self, path: Sequence[Tuple[int, float, bool, bool]]) -> Tuple[str, Tuple[Dict[str, Any], ...]]:
        """``path``: (column, threshold, went_left, missing_went_this_way) per split, root first."""
        bounds: Dict[int, Dict[str, Any]] = {}
        for j, threshold, left, with_missing in path:
            b = bounds.setdefault(j, {"low": -math.inf, "high": math.inf, "missing": True, "only_missing": False})
            if not math.isfinite(threshold):  # sklearn's split of the missing values from all others
                if left:
                    b["missing"] = b["missing"] and with_missing
                else:
                    b["only_missing"] = True
                continue
            if left:
                b["high"] = min(b["high"], threshold)
            else:
                b["low"] = max(b["low"], threshold)
            b["missing"] = b["missing"] and with_missing
        parts, conditions = [], []
        for j in sorted(bounds):
            name = self.fit.columns[j]
            b = bounds[j]
            if b["only_missing"]:
                parts.append(f"{name} is missing")
                conditions.append({"feature": name, "missing_only": True})
                continue
            if b["low"] == -math.inf and b["high"] == math.inf:
                if not b["missing"]:
                    parts.append(f"{name} is not missing")
                    conditions.append({"feature": name, "missing": False})
                continue
            if j in self.order:
                names = self.order[j]
                lo = int(math.floor(b["low"])) + 1 if b["low"] > -math.inf else 0
                hi = int(math.floor(b["high"])) if b["high"] < math.inf else len(names) - 1
                chosen = names[lo:hi + 1]
                others = len(names) - len(chosen)
                if len(chosen) <= 4 or others == 0:
                    text = f"{name} = {chosen[0]}" if len(chosen) == 1 else f"{name} in {{{', '.join(chosen)}}}"
                elif others <= 3:
                    rest = names[:lo] + names[hi + 1:]
                    text = f"{name} not in {{{', '.join(rest)}}}"
                else:
                    text = f"{name} in {{{', '.join(chosen[:4])}, ... ({len(chosen)} categories)}}"
                conditions.append({"feature": name, "categories": list(chosen), "missing": b["missing"]})
            else:
                edges = self.fit.encoder.edges[name]
                whole = self.whole[name]
                # code c holds edges[c-1] <= value < edges[c]; the tree splits codes at c + 0.5
                low = float(edges[int(math.floor(b["low"]))]) if b["low"] > -math.inf else None
                high = float(edges[int(math.floor(b["high"]))]) if b["high"] < math.inf else None
                if whole:  # edges sit halfway between whole numbers: say ">= 22", "<= 21"
                    low_text = str(int(math.ceil(low))) if low is not None else None
                    high_text = str(int(math.floor(high))) if high is not None else None
                    below = "<="
                else:
                    low_text = _number(low) if low is not None else None
                    high_text = _number(high) if high is not None else None
                    below = "<"
                if whole and low_text is not None and low_text == high_text:
                    text = f"{name} = {low_text}"
                elif low_text is not None and high_text is not None:
                    text = f"{low_text} <= {name} {below} {high_text}"
                elif low_text is not None:
                    text = f"{name} >= {low_text}"
                else:
                    text = f"{name} {below} {high_text}"
                conditions.append({"feature": name, "at_least": low, "below": high, "missing": b["missing"]})
            if b["missing"] and bool(np.isnan(self.fit.features[:, j]).any()):
                text += " (or missing)"
            parts.append(text)
        return " and ".join(parts) or "all rows", tuple(conditions)


def _segments(fit: DomainClassifierFit, seed: int, max_depth: int, min_leaf_share: float) -> List[Segment]:
    from sklearn.tree import DecisionTreeClassifier

    x = fit.features.copy()
    y = fit.labels
    n_ref, n_cur = int(np.sum(y == 0)), int(np.sum(y == 1))
    # the held-out log-odds, each side weighted by half: where the classifier scores rows "current"
    target = fit.scores
    order: Dict[int, List[str]] = {}
    for j, name in enumerate(fit.columns):
        if fit.kinds[name] != "categorical":
            continue
        codes = x[:, j]
        present = ~np.isnan(codes)
        n_codes = fit.encoder.other_code(name) + 1
        counts = np.bincount(codes[present].astype(int), minlength=n_codes)
        sums = np.bincount(codes[present].astype(int), weights=target[present], minlength=n_codes)
        ranking = np.argsort(np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf), kind="stable")
        recode = np.empty(n_codes)
        recode[ranking] = np.arange(n_codes)
        x[present, j] = recode[codes[present].astype(int)]
        order[j] = [fit.encoder.category_name(name, int(c)) for c in ranking]
    weight = np.where(y == 1, 0.5 / max(n_cur, 1), 0.5 / max(n_ref, 1)) * y.size
    low, high = np.quantile(target, [TAIL, 1.0 - TAIL])
    tails = np.where(target >= high, 2, np.where(target <= low, 0, 1))
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=max(1, int(min_leaf_share * y.size)),
                                  criterion="entropy", random_state=seed)
    tree.fit(x, tails, sample_weight=weight)
    t = tree.tree_
    rules = _Rules(fit, order)
    # rows by leaf: tree.apply follows missing_go_to_left (decision_path of scikit-learn 1.5 does not: it sends
    # every missing value right)
    leaf_of = tree.apply(x)
    segments = []

    def leaves(node: int) -> List[int]:
        if t.children_left[node] == -1:
            return [node]
        return leaves(int(t.children_left[node])) + leaves(int(t.children_right[node]))

    def counts(node: int) -> Tuple[int, int]:
        inside = np.isin(leaf_of, leaves(node))
        return int(np.sum(inside & (y == 0))), int(np.sum(inside & (y == 1)))

    def distinct(a: Tuple[int, int], b: Tuple[int, int]) -> bool:
        """Do two sibling leaves differ in their share of current rows? (two-proportion z >= PRUNE_Z)"""
        n_a, n_b = sum(a), sum(b)
        if not n_a or not n_b:
            return True
        pooled = (a[1] + b[1]) / (n_a + n_b)
        spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
        return spread == 0 or abs(a[1] / n_a - b[1] / n_b) / spread >= PRUNE_Z

    def walk(node: int, path: List[Tuple[int, float, bool, bool]]) -> List[Tuple[List, int]]:
        """The leaves under ``node`` as (path, node), sibling leaves that do not differ merged."""
        if t.children_left[node] == -1:
            return [(path, node)]
        j, threshold = int(t.feature[node]), float(t.threshold[node])
        missing_left = bool(t.missing_go_to_left[node])
        left = walk(int(t.children_left[node]), path + [(j, threshold, True, missing_left)])
        right = walk(int(t.children_right[node]), path + [(j, threshold, False, not missing_left)])
        if len(left) == len(right) == 1 and not distinct(counts(left[0][1]), counts(right[0][1])):
            return [(path, node)]
        return left + right

    for path, node in walk(0, []):
        rule, conditions = rules.describe(path)
        k_ref, k_cur = counts(node)
        segments.append(Segment(rule, conditions, k_ref / n_ref, k_cur / n_cur, k_ref, k_cur))
    segments.sort(key=lambda s: (-_jeffreys(s), s.rule))
    return segments


def _jeffreys(segment: Segment) -> float:
    """The segment's term of the symmetric Kullback-Leibler divergence of the leaf shares: (q - p) ln(q / p)."""
    p, q = max(segment.share_reference, 1e-6), max(segment.share_current, 1e-6)
    return (q - p) * math.log(q / p)


def explain_drift(fit: DomainClassifierFit, *, seed: Optional[int] = 0, max_depth: int = MAX_DEPTH,
                  min_leaf_share: float = MIN_LEAF_SHARE, max_segments: int = MAX_SEGMENTS) -> Explanation:
    r"""The features that separate the tables (importances with uncertainty) and the segments that changed.

    Parameters
    ----------
    fit : DomainClassifierFit
        From :func:`driftguard.components.drift.classifier.fit_domain_classifier`.
    seed : int or None, default 0
        Seeds the shuffles and the tree.
    max_depth : int, default 3
        Depth of the segment tree (rules of at most this many conditions).
    min_leaf_share : float, default 0.03
        Smallest share of all rows in a leaf.
    max_segments : int, default 5
        Segments kept, by decreasing :math:`|share_{cur} - share_{ref}|`.

    Returns
    -------
    Explanation

    Examples
    --------
    >>> from driftguard.components.drift.classifier import fit_domain_classifier
    >>> rng = np.random.default_rng(5)
    >>> def table(n, night_share):
    ...     hour = np.where(rng.random(n) < night_share, rng.integers(22, 24, n), rng.integers(0, 22, n))
    ...     return {"hour": hour, "amount": rng.exponential(10.0, n), "kind": rng.choice(["a", "b"], n)}
    >>> e = explain_drift(fit_domain_classifier(table(3000, 0.08), table(3000, 0.30)))
    >>> e.separating_features
    ['hour']
    >>> e.segments[0].text
    'hour >= 22: 8.8% -> 31.5% of rows'
    """
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or not 1 <= max_depth <= 6:
        raise ValueError(f"max_depth must be an integer in [1, 6], got {max_depth!r}")
    if not 0.0 < float(min_leaf_share) < 0.5:
        raise ValueError(f"min_leaf_share must be in (0, 0.5), got {min_leaf_share!r}")
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    with threadpool_limits(limits=THREADS, user_api="openmp"):
        importances = _importances(fit, rng)
    segments = _segments(fit, int(rng.integers(2 ** 31 - 1)), max_depth, float(min_leaf_share))
    return Explanation(tuple(importances), tuple(segments[:max_segments]))
