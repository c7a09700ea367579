r"""A classifier two-sample test: can a model tell the current rows from the reference rows?

The per-feature tests see marginals and the Spearman check sees pairs; a change in how
three or more features combine (a segment of the data that now holds other values, with
every marginal and every pairwise rank correlation unchanged) escapes both. A *domain
classifier* looks at all features at once: gradient-boosted trees
(:class:`sklearn.ensemble.HistGradientBoostingClassifier`, native missing values and
categories) learn to predict which table a row comes from. If they do better than
chance on rows they did not see, the joint distributions differ [1]_ [2]_.

Features
    Numeric columns as their bin among :data:`NUMERIC_BINS` quantile bins of both
    samples pooled, each edge in the widest gap between neighbouring distinct values
    near its quantile (:func:`resolution_edges`): a model given raw values splits
    between ``7.25`` and ``7.27`` and "detects" ``fare * 1.003`` (a shift below the
    data's resolution that no one should be paged for); ``NaN``
    stays missing (the trees send missing values down the side of a split that fits
    best). Categorical columns as codes over the union of
    both samples' categories; categories with fewer than
    :data:`MIN_CATEGORY_SHARE` of the rows, or past the :data:`MAX_CATEGORIES` most
    frequent, share one code ("other"; categories never seen in training get it too);
    missing values stay missing.

Cross-fitting
    At most ``max_rows`` rows per side, drawn without replacement by a seeded
    :class:`numpy.random.Generator` (the Spearman check's rule). Each side is split
    into ``folds`` parts of equal size (stratified by side); fold :math:`k`'s rows are
    scored by a model trained on the other folds only, so every row has a held-out
    score.

The test
    Per fold, the Mann-Whitney statistic :math:`U_k` of the held-out scores, current vs
    reference (:math:`\mathrm{AUC}_k = U_k / (n_{c,k} n_{r,k})`). Given the fold's
    model, which never saw the fold, the fold's rows are independent draws, and under
    "no drift" the side of a row is exchangeable: :math:`U_k` then has exactly the
    Mann-Whitney null distribution, whatever the model (mean :math:`n_c n_r/2`,
    variance :math:`\frac{n_c n_r}{12}\big(n+1-\sum_t (t^3-t)/(n(n-1))\big)` with
    ties :math:`t`; one-sided normal p-value with continuity correction, drift making
    the AUC larger; :math:`z_k = (U_k - E U_k - \tfrac12)/\sqrt{\mathrm{Var}\,U_k}`).
    The folds are dependent through their training data (fold :math:`j`'s rows train
    fold :math:`k`'s model), so their sum is *not* standard normal: summing the
    :math:`z_k` as if independent (Stouffer) rejected 9-10% of undrifted taxi splits at
    a nominal 5% and 4.0-4.7% at 1% (``benchmarks/drift_classifier.py --part null``: the
    folds' z are correlated, +0.16 on average). The test uses their mean
    instead, :math:`\bar z = \frac1K \sum_k z_k`, referred to :math:`N(0, 1)`: each
    :math:`z_k` is (asymptotically) standard normal, and the variance of a mean of unit
    variances is at most 1 whatever their correlations
    (:math:`\mathrm{Var}\,\bar z = \frac1{K^2}\sum_{j,k}\rho_{jk} \le 1`), so
    :math:`P(\bar z > c) \le \bar\Phi(c)` for jointly normal :math:`z_k`: valid under
    any dependence, exact when the folds are perfectly correlated and conservative
    otherwise (it gives up the :math:`\sqrt K` gain of independent folds, not the
    folds' rows: every row still counts). The pooled
    :math:`\mathrm{AUC} = \sum_k U_k / \sum_k n_{c,k} n_{r,k}` is the effect size. The
    per-fold p-values (each exact in law) are reported too.

Verdict (in :func:`driftguard.components.drift.detect_drift`)
    Drift needs evidence **and** effect: the adjusted p-value at most ``alpha`` and
    the cross-fitted AUC at least ``threshold`` (default :data:`DEFAULT_CLASSIFIER_THRESHOLD`):
    with thousands of rows a classifier finds shifts no one should be paged for.

Density ratio
    With :math:`\bar p(x)` the fold models' averaged probability of "current",
    :math:`\hat r(x) = \frac{\bar p(x)}{1-\bar p(x)} \cdot \frac{n_r}{n_c}` estimates
    :math:`p_{cur}(x)/p_{ref}(x)` (Bayes' rule with the training prior
    :math:`n_c/(n_c+n_r)`), clipped to :data:`DENSITY_RATIO_RANGE`.

References
----------
.. [1] D. Lopez-Paz and M. Oquab, "Revisiting classifier two-sample tests", ICLR 2017.
.. [2] I. Kim, A. Ramdas, A. Singh and L. Wasserman, "Classification accuracy as a proxy
   for two-sample testing", Ann. Statist. 49 (2021), 411-434.

scikit-learn is imported inside the functions that fit or score: importing this module
stays cheap (``import driftguard.components.drift`` loads no scikit-learn).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ._distributions import normal_sf
from .binning import resolution_edges
from .errors import DriftInputError
from .tables import Column, as_labels, read_table

__all__ = ["fit_domain_classifier", "DomainClassifierFit", "FoldResult", "ClassifierResult",
           "DEFAULT_CLASSIFIER_THRESHOLD", "CLASSIFIER_WEIGHT",
           "DEFAULT_FOLDS", "DEFAULT_CLASSIFIER_MAX_ROWS", "DENSITY_RATIO_RANGE", "MAX_CATEGORIES",
           "MIN_CATEGORY_SHARE", "MIN_ROWS_PER_FOLD", "mann_whitney"]

#: Smallest cross-fitted AUC that counts as drift (see ``components/drift/README.md``).
DEFAULT_CLASSIFIER_THRESHOLD = 0.52
DEFAULT_FOLDS = 5
#: The classifier's share of the joint family's level (the Spearman pairs share the rest; weighted Holm).
CLASSIFIER_WEIGHT = 0.5
DEFAULT_CLASSIFIER_MAX_ROWS = 5000
#: Range :meth:`DomainClassifierFit.density_ratio` clips its estimates to.
DENSITY_RATIO_RANGE = (0.05, 20.0)
#: Categories kept apart per categorical feature (the others share one code).
MAX_CATEGORIES = 60
#: Categories under this share of the training rows share one code.
MIN_CATEGORY_SHARE = 0.005
#: Bins per numeric feature (:func:`~.binning.resolution_edges` of both samples pooled).
NUMERIC_BINS = 20
#: Fewer rows than this per side and fold: fewer folds; under 2 folds possible, no test.
MIN_ROWS_PER_FOLD = 20

#: OpenMP threads of the trees. One: a drift check runs beside other work (a monitor, a pipeline, other
#: checks), and OpenMP's spinning threads made a fit 10-25 times slower on 2 busy cores (5,000 rows per
#: side: 31.9 s with the default threads, 1.3 s with one; ``benchmarks/drift_classifier.py --part timing``).
THREADS = 1

#: The trees: small, a fixed number of rounds (early stopping would hold out a further split).
MODEL_PARAMS: Dict[str, Any] = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 15,
                                "min_samples_leaf": 20, "l2_regularization": 1.0, "early_stopping": False}


@dataclass(frozen=True)
class FoldResult:
    """One fold: its held-out rows, AUC and exact-in-law one-sided Mann-Whitney p-value."""

    fold: int
    auc: float
    p_value: float
    n_reference: int
    n_current: int

    def to_dict(self) -> Dict[str, Any]:
        return {"fold": self.fold, "auc": self.auc, "p_value": self.p_value, "n_reference": self.n_reference,
                "n_current": self.n_current}


def mann_whitney(scores_current: np.ndarray, scores_reference: np.ndarray) -> Tuple[float, float, float]:
    r"""Mann-Whitney :math:`U` of current over reference scores, its null mean and variance (ties corrected).

    ``U / (n_c n_r)`` is the AUC of the scores for telling current (positive) from reference.

    Examples
    --------
    >>> u, mean, var = mann_whitney(np.array([3.0, 4.0]), np.array([1.0, 2.0, 3.0]))
    >>> u, mean, round(var, 4)
    (5.5, 3.0, 2.85)
    """
    n_c, n_r = scores_current.size, scores_reference.size
    pooled = np.concatenate([scores_current, scores_reference])
    _, inverse, counts = np.unique(pooled, return_inverse=True, return_counts=True)
    below = np.cumsum(counts) - counts
    ranks = (below + (counts + 1) / 2.0)[inverse]
    u = float(ranks[:n_c].sum() - n_c * (n_c + 1) / 2.0)
    n = n_c + n_r
    ties = float(np.sum(counts.astype(float) ** 3 - counts)) / (n * (n - 1)) if n > 1 else 0.0
    return u, n_c * n_r / 2.0, n_c * n_r / 12.0 * (n + 1 - ties)


class _Encoder:
    """Columns to the model's float matrix, ``NaN`` missing: numeric values as their bin among
    :func:`~.binning.resolution_edges` of both samples pooled, categories as codes."""

    def __init__(self, columns: Sequence[str], kinds: Mapping[str, str], labels: Mapping[str, np.ndarray],
                 pooled_values: Mapping[str, np.ndarray]):
        self.columns = list(columns)
        self.kinds = dict(kinds)
        self.categories: Dict[str, List[str]] = {}
        self.edges: Dict[str, np.ndarray] = {}
        for name in self.columns:
            if self.kinds[name] != "categorical":
                self.edges[name] = resolution_edges(pooled_values[name], NUMERIC_BINS)
                continue
            values = labels[name]
            present = values[~np.equal(values, None)]
            found, counts = np.unique(present.astype(str), return_counts=True) if present.size else ([], [])
            order = sorted(zip(counts, found), key=lambda t: (-t[0], t[1]))
            floor = MIN_CATEGORY_SHARE * values.size
            self.categories[name] = [str(c) for n, c in order[:MAX_CATEGORIES] if n >= floor]

    def other_code(self, name: str) -> int:
        """The code shared by rare and unknown categories (one past the kept ones)."""
        return len(self.categories[name])

    def category_name(self, name: str, code: int) -> str:
        kept = self.categories[name]
        return kept[code] if 0 <= code < len(kept) else "(other)"

    def encode(self, table: Mapping[str, Column], rows: Optional[np.ndarray] = None) -> np.ndarray:
        n = next(iter(table.values())).values.size if rows is None else rows.size
        out = np.empty((n, len(self.columns)))
        for j, name in enumerate(self.columns):
            col = table[name]
            if self.kinds[name] == "categorical":
                labels = as_labels(col) if rows is None else as_labels(Column(name, col.kind, col.values[rows]))
                codes = {c: i for i, c in enumerate(self.categories[name])}
                other = float(self.other_code(name))
                out[:, j] = [np.nan if v is None else codes.get(v if isinstance(v, str) else str(v), other)
                             for v in labels]
            else:
                values = col.values if rows is None else col.values[rows]
                codes = np.searchsorted(self.edges[name], values, side="right").astype(float)
                codes[np.isnan(values)] = np.nan
                out[:, j] = codes
        return out

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([self.kinds[c] == "categorical" for c in self.columns], dtype=bool)


@dataclass(eq=False)
class DomainClassifierFit:
    """A cross-fitted domain classifier (:func:`fit_domain_classifier`) and its test.

    Attributes
    ----------
    auc : float
        Cross-fitted AUC of telling current (positive) from reference rows, pooled over
        folds (``sum U_k / sum n_c,k n_r,k``); 0.5 is chance.
    p_value : float
        One-sided p-value of "no difference": the mean of the folds' z statistics against N(0, 1)
        (module docstring).
    z : float
        That mean.
    n_reference, n_current : int
        Rows used per side (at most ``max_rows``).
    columns : tuple of str
        Features the classifier saw, in the order of :attr:`features`' columns.
    kinds : dict of str to str
        ``"numeric"`` or ``"categorical"`` per column.
    folds : tuple of FoldResult
        Per-fold AUC and p-value.
    features : numpy.ndarray
        The encoded sample, ``(n_reference + n_current, len(columns))``, reference rows first.
    labels : numpy.ndarray
        1 for current rows, 0 for reference rows.
    fold_of : numpy.ndarray
        Each row's fold.
    scores : numpy.ndarray
        Each row's held-out score (log-odds of "current" from the model that did not see it).
    """

    auc: float
    p_value: float
    z: float
    n_reference: int
    n_current: int
    columns: Tuple[str, ...]
    kinds: Dict[str, str]
    folds: Tuple[FoldResult, ...]
    features: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    fold_of: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    models: Tuple[Any, ...] = field(repr=False)
    encoder: _Encoder = field(repr=False)
    seed: Optional[int] = None

    def encode(self, table) -> np.ndarray:
        """The model's feature matrix of a table (DataFrame, Arrow, dict of arrays) holding :attr:`columns`."""
        cols = table if _is_columns(table) else read_table(table, "scored")
        missing = [c for c in self.columns if c not in cols]
        if missing:
            raise DriftInputError(f"the scored table lacks column(s) {missing} the domain classifier was fitted on",
                                  column=missing[0])
        for name in self.columns:
            if self.kinds[name] == "numeric" and cols[name].kind != "numeric":
                raise DriftInputError(f"column {name!r} of the scored table holds text; the domain classifier "
                                      "was fitted on numbers there", column=name)
        return self.encoder.encode(cols)

    def probability(self, table) -> np.ndarray:
        """The fold models' averaged probability that each row of ``table`` is a current row."""
        from threadpoolctl import threadpool_limits

        x = self.encode(table)
        with threadpool_limits(limits=THREADS, user_api="openmp"):
            return np.mean([m.predict_proba(x)[:, 1] for m in self.models], axis=0)

    def density_ratio(self, table) -> np.ndarray:
        r"""Estimated :math:`p_{cur}(x)/p_{ref}(x)` for each row of ``table``.

        The odds of :meth:`probability` times ``n_reference / n_current``, clipped to
        :data:`DENSITY_RATIO_RANGE` (0.05 to 20): beyond, the estimate rests on a few
        training rows, and weights of unbounded size would let one row decide a weighted
        average. Importance weights for reference rows: their mean is about 1 when the
        classifier is well calibrated.
        """
        p = np.clip(self.probability(table), 1e-9, 1 - 1e-9)
        ratio = p / (1.0 - p) * (self.n_reference / self.n_current)
        return np.clip(ratio, *DENSITY_RATIO_RANGE)

    def to_dict(self) -> Dict[str, Any]:
        return {"auc": self.auc, "p_value": self.p_value, "z": self.z, "n_reference": self.n_reference,
                "n_current": self.n_current, "columns": list(self.columns),
                "folds": [f.to_dict() for f in self.folds]}


def _is_columns(table) -> bool:
    return isinstance(table, Mapping) and bool(table) and all(isinstance(v, Column) for v in table.values())


def _sample_rows(n: int, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    if n <= max_rows:
        return np.arange(n)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def _fold_ids(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    ids = np.empty(n, dtype=np.intp)
    ids[rng.permutation(n)] = np.arange(n) % folds
    return ids


def _resolve_columns(ref: Mapping[str, Column], cur: Mapping[str, Column], columns: Optional[Sequence[str]],
                     kinds: Optional[Mapping[str, str]]) -> Tuple[List[str], Dict[str, str]]:
    if columns is None:
        names = [c for c in ref if c in cur]
        if not names:
            raise DriftInputError("the tables share no column: nothing for the domain classifier to compare")
    else:
        names = list(columns)
        for name in names:
            for side, cols in (("reference", ref), ("current", cur)):
                if name not in cols:
                    raise DriftInputError(f"column {name!r} is not in the {side} table", column=name, side=side)
        if not names:
            raise ValueError("columns must name at least one column")
    resolved: Dict[str, str] = {}
    for name in names:
        kind = (kinds or {}).get(name)
        if kind is None:
            kind = "numeric" if ref[name].kind == cur[name].kind == "numeric" else "categorical"
        elif kind not in ("numeric", "categorical"):
            raise ValueError(f"kinds[{name!r}] must be 'numeric' or 'categorical', got {kind!r}")
        elif kind == "numeric":
            for side, cols in (("reference", ref), ("current", cur)):
                if cols[name].kind != "numeric":
                    raise DriftInputError(f"column {name!r} of the {side} table holds text; it cannot be "
                                          "compared as numeric", column=name, side=side)
        resolved[name] = kind
    return names, resolved


def _columns_of(table, side: str) -> Mapping[str, Column]:
    from .prepared import PreparedReference  # prepared imports modules this one may later serve

    if isinstance(table, PreparedReference):
        return table.columns
    if _is_columns(table):
        return table
    return read_table(table, side)


def fit_domain_classifier(reference, current, columns: Optional[Sequence[str]] = None, *,
                          kinds: Optional[Mapping[str, str]] = None, max_rows: int = DEFAULT_CLASSIFIER_MAX_ROWS,
                          folds: int = DEFAULT_FOLDS, seed: Optional[int] = 0,
                          model_params: Optional[Mapping[str, Any]] = None) -> DomainClassifierFit:
    r"""Cross-fit gradient-boosted trees telling ``current`` rows from ``reference`` rows, and test them.

    Parameters
    ----------
    reference, current : pandas.DataFrame, pyarrow.Table, mapping of str to array_like, or PreparedReference
        As :func:`driftguard.components.drift.detect_drift` accepts them.
    columns : sequence of str, optional
        Features to use; default the columns both tables have (reference order).
    kinds : mapping of str to {"numeric", "categorical"}, optional
        Per column, how to encode it; default numeric when numeric on both sides, else
        categorical (numbers as labels, ``8.0`` -> ``"8"``).
    max_rows : int, default 5000
        Rows sampled per side (without replacement).
    folds : int, default 5
        Cross-fitting folds; fewer when a side has under ``20 * folds`` rows.
    seed : int or None, default 0
        Seeds the sample, the folds and the trees (:class:`numpy.random.Generator`; the
        global RNG is never used).
    model_params : mapping, optional
        Overrides of :data:`MODEL_PARAMS` for :class:`sklearn.ensemble.HistGradientBoostingClassifier`.

    Returns
    -------
    DomainClassifierFit
        ``auc``, ``p_value``, per-fold results, and :meth:`~DomainClassifierFit.density_ratio`.

    Raises
    ------
    DriftInputError
        A table unreadable as ``detect_drift`` reads it, a named column absent, text
        asked to be numeric, or fewer than ``2 * MIN_ROWS_PER_FOLD`` (40) rows on a side.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> x, y = rng.normal(size=2000), rng.normal(size=2000)
    >>> ref = {"x": x, "y": y, "z": np.sign(x * y) * rng.exponential(size=2000)}
    >>> x, y = rng.normal(size=2000), rng.normal(size=2000)
    >>> cur = {"x": x, "y": y, "z": -np.sign(x * y) * rng.exponential(size=2000)}
    >>> fit = fit_domain_classifier(ref, cur)
    >>> fit.auc > 0.9, fit.p_value < 1e-10, fit.columns
    (True, True, ('x', 'y', 'z'))
    >>> fit.density_ratio({"x": [1.0], "y": [1.0], "z": [-1.0]}) > 5
    array([ True])
    """
    if isinstance(max_rows, bool) or not isinstance(max_rows, (int, np.integer)) or max_rows < 2 * MIN_ROWS_PER_FOLD:
        raise ValueError(f"max_rows must be an integer >= {2 * MIN_ROWS_PER_FOLD}, got {max_rows!r}")
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    ref = _columns_of(reference, "reference")
    cur = _columns_of(current, "current")
    names, kinds_ = _resolve_columns(ref, cur, columns, kinds)
    n_ref_all, n_cur_all = next(iter(ref.values())).values.size, next(iter(cur.values())).values.size
    rng = np.random.default_rng(seed)
    rows_ref = _sample_rows(n_ref_all, int(max_rows), rng)
    rows_cur = _sample_rows(n_cur_all, int(max_rows), rng)
    n_ref, n_cur = rows_ref.size, rows_cur.size
    k = min(int(folds), min(n_ref, n_cur) // MIN_ROWS_PER_FOLD)
    if k < 2:
        side = "reference" if n_ref <= n_cur else "current"
        raise DriftInputError(f"the {side} table has {min(n_ref, n_cur)} rows; the domain classifier needs at "
                              f"least {2 * MIN_ROWS_PER_FOLD} per side", side=side)
    labels_by_column = {}
    for name in names:
        if kinds_[name] == "categorical":
            labels_by_column[name] = np.concatenate([as_labels(Column(name, ref[name].kind, ref[name].values[rows_ref])),
                                                     as_labels(Column(name, cur[name].kind, cur[name].values[rows_cur]))])
    encoder = _Encoder(names, kinds_, labels_by_column,
                       {n: np.concatenate([ref[n].values[rows_ref], cur[n].values[rows_cur]])
                        for n in names if kinds_[n] == "numeric"})
    x = np.vstack([encoder.encode(ref, rows_ref), encoder.encode(cur, rows_cur)])
    y = np.concatenate([np.zeros(n_ref, dtype=np.int8), np.ones(n_cur, dtype=np.int8)])
    fold_of = np.concatenate([_fold_ids(n_ref, k, rng), _fold_ids(n_cur, k, rng)])
    tree_seed = int(rng.integers(2 ** 31 - 1))

    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=THREADS, user_api="openmp"):
        return _cross_fit(HistGradientBoostingClassifier, x, y, fold_of, k, encoder, model_params, tree_seed,
                          n_ref, n_cur, names, kinds_, seed)


def _cross_fit(estimator, x, y, fold_of, k, encoder, model_params, tree_seed, n_ref, n_cur, names, kinds_, seed):
    params = dict(MODEL_PARAMS)
    params.update(model_params or {})
    params.setdefault("random_state", tree_seed)
    mask = encoder.categorical_mask
    scores = np.empty(y.size)
    models = []
    fold_results = []
    u_sum = pairs = 0.0
    z_folds = []
    for fold in range(k):
        held = fold_of == fold
        model = estimator(categorical_features=mask if mask.any() else None, **params)
        model.fit(x[~held], y[~held])
        models.append(model)
        scores[held] = model.decision_function(x[held])
        s_cur, s_ref = scores[held & (y == 1)], scores[held & (y == 0)]
        u, mean, var = mann_whitney(s_cur, s_ref)
        z_fold = (u - mean - 0.5) / math.sqrt(var) if var > 0 else 0.0
        z_folds.append(z_fold)
        fold_results.append(FoldResult(fold, u / (s_cur.size * s_ref.size), float(normal_sf(z_fold)),
                                       int(s_ref.size), int(s_cur.size)))
        u_sum += u
        pairs += s_cur.size * s_ref.size
    z = float(np.mean(z_folds))  # variance <= 1 whatever the folds' correlation: see the module docstring
    return DomainClassifierFit(
        auc=float(u_sum / pairs), p_value=float(normal_sf(z)), z=z,
        n_reference=int(n_ref), n_current=int(n_cur), columns=tuple(names), kinds=kinds_,
        folds=tuple(fold_results), features=x, labels=y, fold_of=fold_of, scores=scores, models=tuple(models),
        encoder=encoder, seed=seed)


@dataclass(frozen=True)
class ClassifierResult:
    """The domain-classifier check of :func:`driftguard.components.drift.detect_drift`.

    ``drifted`` is ``p_value_adjusted <= alpha and auc >= threshold``; ``p_value_adjusted``
    is the classifier's p-value adjusted within the joint family (the classifier and the
    Spearman pairs, weighted Holm: see ``components/drift/README.md``). ``skipped`` says
    why the check did not run (then ``auc`` and the p-values are ``None``);
    ``explanation`` is filled when the dataset drifted or it was asked for
    (:mod:`driftguard.components.drift.explain`). ``fit`` (not serialised) is the fitted
    classifier, for density ratios or further explanation.
    """

    method: str
    drifted: bool
    auc: Optional[float]
    threshold: float
    p_value: Optional[float]
    p_value_adjusted: Optional[float]
    alpha: float
    weight: float
    n_reference: int
    n_current: int
    columns: Tuple[str, ...]
    folds: Tuple[FoldResult, ...] = ()
    skipped: Optional[str] = None
    explanation: Optional[Any] = None
    fit: Optional[DomainClassifierFit] = field(default=None, repr=False, compare=False)

    def to_dict(self) -> Dict[str, Any]:
        return {"method": self.method, "drifted": self.drifted, "auc": self.auc, "threshold": self.threshold,
                "p_value": self.p_value, "p_value_adjusted": self.p_value_adjusted, "alpha": self.alpha,
                "weight": self.weight, "n_reference": self.n_reference, "n_current": self.n_current,
                "columns": list(self.columns), "folds": [f.to_dict() for f in self.folds], "skipped": self.skipped,
                "explanation": self.explanation.to_dict() if self.explanation is not None else None}
