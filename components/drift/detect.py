r"""``detect_drift``: compare a current table with a reference table, feature by feature.

The rule
    Each feature gives up to three hypotheses ("checks"), four for a numeric one:

    - ``distribution`` -- its method's score (default PSI on 10 reference-quantile
      bins) with the method's test (numeric: chi-square on 20 and on 50 reference-quantile
      bins and a rank test on the 50 bins, the smallest p-value tripled (Bonferroni within
      the feature), see ``numeric.FINE_TEST_BINS`` and ``numeric.RANK_TEST``; categorical:
      chi-square on the categories; or Kolmogorov-Smirnov for ``ks``/``wasserstein``);
    - ``location`` (numeric) -- how far the mean moved, in standard deviations, both
      taken after winsorizing at the pooled 10% and 90% quantiles, with Welch's t-test
      on those values (``numeric.winsorized_t_test``): it sees the actual distance a
      recorded-on-a-grid feature moved, which bins round to whole grid steps;
    - ``missing_rate`` -- difference of the missing-value rates, Fisher's exact test
      (only when a value is missing on either side);
    - ``unseen_categories`` -- share of current values in categories the reference
      lacks, exact conditional test (categorical features only).

    The p-values of all checks of all features are adjusted together (Holm by default).
    A check drifts when its adjusted p-value is at most ``alpha`` **and** its score is
    at least its threshold: statistical evidence alone flags meaningless shifts on big
    samples (``fare * 1.003`` on 100,000 rows), a score alone flags noise on small ones.
    A feature drifts when any of its checks does. The dataset drifts when any feature
    drifts or a joint check fires: the Spearman pairs
    (:mod:`driftguard.components.drift.multivariate`) or the domain classifier
    (:mod:`driftguard.components.drift.classifier`), one family at ``multivariate_alpha``
    (weighted Holm, the classifier weighing 1/2), each with its own effect threshold.
    When the dataset drifted, the classifier explains itself
    (:mod:`driftguard.components.drift.explain`).

Defaults (measured on the Chicago taxi data, see ``README.md``)
    ``alpha=0.01`` with Holm over all checks; PSI >= 0.005 on 10 reference-quantile bins
    (numeric) or on categories with >= 1% of the reference plus one pooled bucket
    (categorical); winsorized mean moved by >= 0.07 standard deviations (the shift of a normal
    feature whose decile PSI is 0.005); missing rate changed by >= 5 points; >= 2% of current values in
    unseen categories; multivariate: Spearman correlations changed by >= 0.1, and the
    domain classifier's cross-fitted AUC >= 0.52, at ``multivariate_alpha=0.01`` (one
    weighted-Holm family) on <= 5,000 rows per side.

    Why ``alpha=0.01``: below about 10,000 rows the PSI of an undrifted feature is often
    above 0.005 by chance (its expected value is about 18/n for 10 bins), so there the
    false-alarm rate is the family-wise level itself. With 0.01 for features and 0.01 for the joint check the
    dataset-level rate is at most about 2% at every size (union bound); with 0.05 it
    would sit at the 5% target with no margin. The power cost is small (see README).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .categorical import compare_categorical
from .classifier import (CLASSIFIER_WEIGHT, DEFAULT_CLASSIFIER_THRESHOLD, DEFAULT_FOLDS,
                         ClassifierResult, fit_domain_classifier)
from .config import FeatureConfig, as_feature_config
from .correction import CORRECTIONS, adjust_p_values
from .errors import DriftInputError
from .missing import missing_rate
from .multivariate import (DEFAULT_MAX_ROWS, DEFAULT_MULTIVARIATE_ALPHA, DEFAULT_MULTIVARIATE_THRESHOLD,
                           MultivariateResult, _rank_correlation)
from .prepared import PreparedReference
from .registry import DEFAULT_METHODS, DEFAULT_MISSING_THRESHOLD, DEFAULT_UNSEEN_THRESHOLD, get_method
from .report import CheckResult, DriftReport, FeatureDrift
from .tables import Column, read_table

__all__ = ["detect_drift", "DEFAULT_ALPHA", "DEFAULT_LOCATION_THRESHOLD"]

DEFAULT_ALPHA = 0.01

#: Default threshold of the ``location`` check: the shift, in standard deviations, of a normal feature
#: whose PSI on its deciles is 0.005 (the default PSI threshold): both effect sizes say "as large as
#: the smallest change worth a look".
DEFAULT_LOCATION_THRESHOLD = 0.07

_KIND_WORDS = {"numeric": "numeric", "categorical": "text"}


def _check_probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _check_threshold(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value) >= 0.0 \
            or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _match_columns(ref: Mapping[str, Column], cur: Mapping[str, Column], exclude: Sequence[str],
                   absent_is_missing: bool = False) -> List[str]:
    """The compared columns. ``absent_is_missing``: a column of one table only is compared as a
    column with no value at all in the other (a feature that stopped arriving, or a new one);
    the tables must still share a column."""
    excluded = set(exclude)
    unknown = sorted(excluded - set(ref) - set(cur))
    if unknown:
        raise DriftInputError(f"exclude names column(s) {unknown} found in neither table", column=unknown[0])
    only_ref = [c for c in ref if c not in cur and c not in excluded]
    only_cur = [c for c in cur if c not in ref and c not in excluded]
    shared = [c for c in ref if c in cur and c not in excluded]
    if absent_is_missing and shared:
        return [c for c in ref if c not in excluded] + only_cur
    if only_ref or only_cur:
        parts = []
        if only_ref:
            parts.append(f"column(s) {only_ref} only in the reference table")
        if only_cur:
            parts.append(f"column(s) {only_cur} only in the current table")
        raise DriftInputError("the tables have different columns: " + "; ".join(parts), column=(only_ref + only_cur)[0])
    names = [c for c in ref if c not in excluded]
    if not names:
        raise DriftInputError("every column is excluded; nothing to compare")
    return names


def _rows(columns: Mapping[str, Column]) -> int:
    return next(iter(columns.values())).values.size


def _absent_column(like: Column, rows: int) -> Column:
    """A column of ``rows`` missing values, of ``like``'s kind: a column one table lacks."""
    values = np.full(rows, np.nan) if like.kind == "numeric" else np.full(rows, None, dtype=object)
    return Column(like.name, like.kind, values)


def _resolve_kind(name: str, ref: Column, cur: Column, config: FeatureConfig) -> str:
    for side, col in (("reference", ref), ("current", cur)):
        if bool(col.missing.all()):
            raise DriftInputError(f"column {name!r} of the {side} table has only missing values; "
                                  "exclude it or fill it", column=name, side=side)
    if config.kind == "categorical":
        return "categorical"
    if ref.kind != cur.kind:
        raise DriftInputError(
            f"column {name!r} is {_KIND_WORDS[ref.kind]} in the reference table but {_KIND_WORDS[cur.kind]} in the "
            f"current table; fix the data, or set FeatureConfig(kind='categorical') to compare it as labels",
            column=name)
    if config.kind == "numeric" and ref.kind != "numeric":
        raise DriftInputError(f"column {name!r} holds text, so FeatureConfig(kind='numeric') cannot apply",
                              column=name, side="reference")
    return ref.kind


def _numeric_direction(delta: float) -> str:
    if delta > 0:
        return f"increase (Cliff's delta {delta:+.3f})"
    if delta < 0:
        return f"decrease (Cliff's delta {delta:+.3f})"
    return "none"


def _two_numbers(a: float, b: float) -> str:
    """``"a -> b"`` with as many significant digits as it takes to tell them apart (4 to 10):
    latitudes 41.8977 and 41.8985 both read 41.9 at 4 digits.

    >>> _two_numbers(41.89771, 41.89852), _two_numbers(12.5, 13.75)
    ('41.898 -> 41.899', '12.5 -> 13.75')
    """
    digits = 4
    while digits < 10 and f"{a:.{digits}g}" == f"{b:.{digits}g}" and a != b:
        digits += 1
    return f"{a:.{digits}g} -> {b:.{digits}g}"


def _compare_feature(name: str, kind: str, reference: PreparedReference, cur: Column, method_name: str,
                     threshold: float, n_bins: int, test_bins: int, min_category_share: float,
                     missing_threshold: float, unseen_threshold: float, location_threshold: float
                     ) -> Tuple[List[Tuple[str, str, float, float, float, str]], Dict[str, Any], Optional[Tuple]]:
    """Raw checks ``(check, method, score, threshold, p_value, direction)``, the feature's numbers, and for
    a numeric feature the value codes of its current rows (``codes`` of
    :class:`driftguard.components.drift.multivariate.RankedSample`) when its comparison gave them."""
    method = get_method(method_name, kind)
    ref = reference.columns[name]
    ref_missing, cur_missing = ref.missing, cur.missing
    n_ref_missing, n_cur_missing = int(np.count_nonzero(ref_missing)), int(np.count_nonzero(cur_missing))
    checks = []
    extra: Dict[str, Any] = {}
    codes = None
    if kind == "numeric":
        present = cur.values[~cur_missing] if n_cur_missing else cur.values
        comparison, located = reference.numeric(name).compare(present, n_bins, test_bins)
        if located is not None:  # each value's place among the pooled distinct values: the joint check's codes
            positions, n_distinct = located
            if n_cur_missing:  # a code for every row (missing rows: 0, never read)
                positions = np.zeros(cur_missing.size, dtype=np.intp)
                positions[~cur_missing] = located[0]
            codes = (positions, n_distinct)
        direction = _numeric_direction(comparison.details["cliffs_delta"])
        p_values = dict(comparison.p_values)
    else:
        # label counts (numbers as labels, 8.0 -> "8"), kept with the column: the reference's are counted once
        comparison = compare_categorical(ref.label_counts(), cur.label_counts(), min_category_share)
        top = comparison.details["top_changes"][0]
        direction = (f"{top['category']}: {top['share_reference']:.1%} -> {top['share_current']:.1%}")
        p_values = dict(comparison.p_values)
        unseen = comparison.unseen
        p_values["unseen_categories"] = unseen.p_value
        extra["unseen_share"] = unseen.share
        extra["unseen_categories"] = list(unseen.categories)
    scores = dict(comparison.scores)
    checks.append(("distribution", method.name, scores[method.score], threshold, p_values[method.test], direction))
    if "location" in p_values:
        t = comparison.details["winsorized_t_test"]
        checks.append(("location", "mean_shift", abs(t["shift"]), location_threshold, t["p_value"],
                       f"winsorized mean {_two_numbers(t['mean_reference'], t['mean_current'])} "
                       f"({t['shift']:+.2f} sd)"))
    if kind == "categorical":
        scores["unseen_share"] = comparison.unseen.share
        names = ", ".join(comparison.unseen.categories[:3]) or "none"
        checks.append(("unseen_categories", "unseen_share", comparison.unseen.share, unseen_threshold,
                       comparison.unseen.p_value,
                       f"{comparison.unseen.share:.1%} of values in new categories ({names})"))
    n_ref, n_cur = ref.values.size, cur.values.size
    miss = missing_rate(n_ref_missing, n_ref, n_cur_missing, n_cur)
    scores["missing_rate_difference"] = miss.difference
    if n_ref_missing or n_cur_missing:
        p_values["missing_rate"] = miss.p_value
        checks.append(("missing_rate", "missing_rate_difference", abs(miss.difference), missing_threshold, miss.p_value,
                       f"missing {miss.rate_reference:.1%} -> {miss.rate_current:.1%}"))
    details = dict(comparison.details)
    details.update(extra)
    details["missing_rate_reference"] = miss.rate_reference
    details["missing_rate_current"] = miss.rate_current
    return checks, {"scores": scores, "p_values": p_values, "details": details,
                    "n_reference": n_ref - n_ref_missing, "n_current": n_cur - n_cur_missing}, codes


def _missing_only(ref: Column, cur: Column, missing_threshold: float, absent: bool = False
                  ) -> Tuple[List[Tuple[str, str, float, float, float, str]], Dict[str, Any]]:
    """Checks of a column with only missing values on one side (``absent``: that table has no
    such column): its missing rate alone."""
    n_ref, n_cur = ref.values.size, cur.values.size
    ref_missing, cur_missing = int(ref.missing.sum()), int(cur.missing.sum())
    miss = missing_rate(ref_missing, n_ref, cur_missing, n_cur)
    side = "reference" if ref_missing == n_ref else "current"
    why = f"no such column in the {side} table" if absent else f"no value at all in the {side} data"
    checks = [("missing_rate", "missing_rate_difference", abs(miss.difference), missing_threshold, miss.p_value,
               f"missing {miss.rate_reference:.1%} -> {miss.rate_current:.1%} ({why})")]
    details = {"missing_rate_reference": miss.rate_reference, "missing_rate_current": miss.rate_current,
               "all_missing": side}
    if absent:
        details["absent"] = side
    return checks, {"scores": {"missing_rate_difference": miss.difference}, "p_values": {"missing_rate": miss.p_value},
                    "details": details,
                    "n_reference": n_ref - ref_missing, "n_current": n_cur - cur_missing}


def _classifier_check(prepared: PreparedReference, cur_cols: Mapping[str, Column], names: Sequence[str],
                      kinds: Mapping[str, str], info: Mapping[str, Dict[str, Any]], *, alpha: float,
                      threshold: float, max_rows: int, seed) -> ClassifierResult:
    """The domain classifier on the compared columns (not those with no value on a side: their missing-rate
    check already calls them drift, and a classifier would only rediscover it). Its verdict waits for the
    joint family's adjustment (:func:`_joint_family`)."""
    columns = [n for n in names if "all_missing" not in info[n]["details"]]

    def skipped(why: str) -> ClassifierResult:
        return ClassifierResult("domain_classifier", False, None, threshold, None, None, alpha, CLASSIFIER_WEIGHT,
                                0, 0, tuple(columns), skipped=why)

    if not columns:
        return skipped("no column with values on both sides")
    try:
        import sklearn  # noqa: F401  (an image without scikit-learn: say so, do not fail)
    except ImportError:  # pragma: no cover - scikit-learn is in the lock
        return skipped("scikit-learn is not installed")
    try:
        fit = fit_domain_classifier(prepared, {n: cur_cols[n] for n in columns}, columns,
                                    kinds={n: kinds[n] for n in columns}, max_rows=max_rows, seed=seed)
    except DriftInputError as exc:  # too few rows for cross-fitting
        return skipped(str(exc))
    return ClassifierResult("domain_classifier", False, fit.auc, threshold, fit.p_value, fit.p_value, alpha,
                            CLASSIFIER_WEIGHT, fit.n_reference, fit.n_current, fit.columns, fit.folds, fit=fit)


def _joint_family(mv: Optional[MultivariateResult], cls: ClassifierResult, correction: str
                  ) -> Tuple[Optional[MultivariateResult], ClassifierResult]:
    """Adjust the classifier's p-value and the Spearman pairs' together (one family at
    ``multivariate_alpha``): weighted Holm, the classifier weighing :data:`CLASSIFIER_WEIGHT`
    and the pairs the rest equally; then each verdict is p-value AND effect."""
    pairs = list(mv.pairs) if mv is not None else []
    weights = [CLASSIFIER_WEIGHT] + [(1.0 - CLASSIFIER_WEIGHT) / len(pairs)] * len(pairs) if pairs else [1.0]
    adjusted = adjust_p_values([cls.p_value] + [p.p_value for p in pairs], correction, weights=weights)
    cls_adj = float(adjusted[0])
    cls = dataclasses.replace(cls, p_value_adjusted=cls_adj,
                              drifted=bool(cls_adj <= cls.alpha and cls.auc >= cls.threshold))
    if pairs:
        new_pairs = tuple(dataclasses.replace(p, p_value_adjusted=float(a),
                                              drifted=bool(a <= mv.alpha and abs(p.delta) >= mv.threshold))
                          for p, a in zip(pairs, adjusted[1:]))
        mv = dataclasses.replace(mv, pairs=new_pairs, drifted=any(p.drifted for p in new_pairs),
                                 p_value=min(p.p_value_adjusted for p in new_pairs))
    return mv, cls


def detect_drift(
    reference,
    current,
    *,
    feature_config: Optional[Mapping[str, Any]] = None,
    exclude: Sequence[str] = (),
    alpha: float = DEFAULT_ALPHA,
    correction: str = "holm",
    n_bins: int = 10,
    test_bins: int = 20,
    min_category_share: float = 0.01,
    missing_threshold: float = DEFAULT_MISSING_THRESHOLD,
    unseen_threshold: float = DEFAULT_UNSEEN_THRESHOLD,
    location_threshold: float = DEFAULT_LOCATION_THRESHOLD,
    multivariate: bool = True,
    multivariate_alpha: float = DEFAULT_MULTIVARIATE_ALPHA,
    multivariate_threshold: float = DEFAULT_MULTIVARIATE_THRESHOLD,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: Optional[int] = 0,
    all_missing: str = "compare",
    classifier: bool = True,
    classifier_threshold: float = DEFAULT_CLASSIFIER_THRESHOLD,
    classifier_max_rows: Optional[int] = None,
    explain: Optional[bool] = None,
) -> DriftReport:
    r"""Compare ``current`` with ``reference`` and report drift per feature and jointly.

    Parameters
    ----------
    reference, current : pandas.DataFrame, pyarrow.Table or mapping of str to array_like
        Same columns (order may differ). Numeric columns (int, float, datetime) and
        categorical ones (string, object text, bool, category); missing values as
        ``NaN``/``None``/null. ``reference`` may also be a
        :class:`driftguard.components.drift.PreparedReference` (:func:`driftguard.components.drift.prepare_reference`):
        the same report, without recomputing what depends on the reference alone (for a
        monitor comparing many windows with one reference).
    feature_config : mapping of str to FeatureConfig (or dict), optional
        Per-feature ``method``, ``threshold`` and ``kind`` overrides.
    exclude : sequence of str, default ()
        Columns to ignore (listed in ``report.excluded``), e.g. the label.
    alpha : float, default 0.01
        Family-wise significance level over all checks of all features.
    correction : {"holm", "bonferroni", "none"}, default "holm"
    n_bins : int, default 10
        Reference-quantile bins for the scores of numeric features (deciles, as PSI is
        usually computed).
    test_bins : int, default 20
        Reference-quantile bins for the chi-square test of numeric features.
    min_category_share : float, default 0.01
        Categories under this reference share are pooled for the histogram scores.
    missing_threshold : float, default 0.05
        Smallest change of the missing rate (absolute) that counts.
    unseen_threshold : float, default 0.02
        Smallest share of current values in unseen categories that counts.
    location_threshold : float, default 0.07
        Smallest shift of a numeric feature's winsorized mean, in (winsorized) standard
        deviations, that counts for its ``location`` check.
    multivariate : bool, default True
        Run the rank-correlation check over numeric features.
    multivariate_alpha, multivariate_threshold : float, default 0.01 and 0.1
        Its family-wise level over pairs and its :math:`|\Delta\rho|` threshold.
    max_rows : int, default 5000
        Rows per side sampled for the multivariate check.
    seed : int or None, default 0
        Seed of that sample (:class:`numpy.random.Generator`); the global RNG is never used.
    all_missing : {"compare", "error"}, default "compare"
        A column with only missing values on one side, or in one table only:
        ``"compare"`` reports it through its missing-rate check alone, as drift (a feature
        that stopped arriving is the most severe drift there is; a new column is drift
        too), with ``details["all_missing"]`` naming the side (and ``details["absent"]``
        when that table has no such column); a column missing on *both* sides is skipped
        and listed in ``report.excluded``; tables sharing no column are refused.
        ``"error"`` raises :class:`DriftInputError` for any of these instead.
    classifier : bool, default True
        Run the domain-classifier check (:mod:`driftguard.components.drift.classifier`):
        cross-fitted gradient-boosted trees telling current from reference rows on all
        compared features; drift when its cross-fitted AUC >= ``classifier_threshold``
        and its p-value, adjusted together with the Spearman pairs' (weighted Holm, the
        classifier weighing 1/2), is <= ``multivariate_alpha``. Catches joint shifts the
        pairs miss. About 0.5-2 s per call at 5,000 rows per side (``benchmarks/drift_classifier.py``).
    classifier_threshold : float, default 0.52
        Smallest cross-fitted AUC that counts as drift.
    classifier_max_rows : int, optional
        Rows per side for the classifier (its cost grows linearly with them); default ``max_rows``.
    explain : bool, optional
        Compute ``report.classifier.explanation`` (the features that separate the tables,
        with uncertainty, and the segments whose share changed most:
        :mod:`driftguard.components.drift.explain`). Default: only when the dataset drifted.

    Returns
    -------
    DriftReport

    Raises
    ------
    DriftInputError
        Empty table, different column sets, a column numeric on one side and text on
        the other, an all-null column, infinite values, an unknown excluded or
        configured column. The message names the column and the side.
    ValueError
        An invalid parameter, e.g. an unknown method (the message lists them).

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> fare = rng.lognormal(2.0, 0.6, 3000)
    >>> ref = {"fare": fare, "payment_type": rng.choice(["Cash", "Credit Card"], 3000, p=[0.66, 0.34])}
    >>> cur = {"fare": 1.10 * rng.lognormal(2.0, 0.6, 3000),
    ...        "payment_type": rng.choice(["Cash", "Credit Card"], 3000, p=[0.66, 0.34])}
    >>> report = detect_drift(ref, cur)
    >>> report.drift_detected, report.drifted_features
    (True, ['fare'])
    >>> f = report.features["fare"]
    >>> f.method, f.threshold, round(f.score, 3), f.p_value_adjusted <= 0.01
    ('psi', 0.005, 0.032, True)
    >>> report.features["payment_type"].drifted
    False
    >>> detect_drift(ref, cur, feature_config={"fare": FeatureConfig(method="wasserstein")}).features["fare"].method
    'wasserstein'
    """
    alpha = _check_probability("alpha", alpha)
    if all_missing not in ("error", "compare"):
        raise ValueError(f"all_missing must be 'error' or 'compare', got {all_missing!r}")
    multivariate_alpha = _check_probability("multivariate_alpha", multivariate_alpha)
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; available: {', '.join(CORRECTIONS)}")
    missing_threshold = _check_threshold("missing_threshold", missing_threshold)
    unseen_threshold = _check_threshold("unseen_threshold", unseen_threshold)
    location_threshold = _check_threshold("location_threshold", location_threshold)
    multivariate_threshold = _check_threshold("multivariate_threshold", multivariate_threshold)
    classifier_threshold = _check_threshold("classifier_threshold", classifier_threshold)
    if not 0.5 <= classifier_threshold <= 1.0:
        raise ValueError(f"classifier_threshold must be an AUC in [0.5, 1], got {classifier_threshold!r}")
    if classifier_max_rows is not None and (isinstance(classifier_max_rows, bool)
                                            or not isinstance(classifier_max_rows, (int, np.integer))
                                            or classifier_max_rows < 40):
        raise ValueError(f"classifier_max_rows must be an integer >= 40, got {classifier_max_rows!r}")
    for name, value in (("n_bins", n_bins), ("test_bins", test_bins)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {value!r}")
    if not 0.0 <= float(min_category_share) < 1.0:
        raise ValueError(f"min_category_share must be in [0, 1), got {min_category_share!r}")
    if isinstance(exclude, str):
        exclude = [exclude]
    configs = {str(k): as_feature_config(v) for k, v in (feature_config or {}).items()}

    prepared = reference if isinstance(reference, PreparedReference) else PreparedReference(reference)
    ref_cols = prepared.columns
    cur_cols = read_table(current, "current")
    names = _match_columns(ref_cols, cur_cols, exclude, absent_is_missing=all_missing == "compare")
    absent = {n for n in names if n not in ref_cols or n not in cur_cols}
    if absent:
        ref_cols, cur_cols = dict(ref_cols), dict(cur_cols)
        for name in absent:
            here, there = (cur_cols, ref_cols) if name in cur_cols else (ref_cols, cur_cols)
            there[name] = _absent_column(here[name], _rows(there))
    unknown = sorted(set(configs) - set(names))
    if unknown:
        raise DriftInputError(f"feature_config names column(s) {unknown} that are not compared "
                              f"(absent or excluded)", column=unknown[0])

    raw_checks: List[Tuple[str, Tuple[str, str, float, float, float, str]]] = []
    info: Dict[str, Dict[str, Any]] = {}
    kinds: Dict[str, str] = {}
    codes: Dict[str, Tuple[np.ndarray, int]] = {}
    skipped: List[str] = []
    for name in names:
        config = configs.get(name, FeatureConfig())
        if all_missing == "compare":
            ref_none, cur_none = bool(ref_cols[name].missing.all()), bool(cur_cols[name].missing.all())
            if ref_none and cur_none:
                skipped.append(name)
                continue
            if ref_none or cur_none:
                present = cur_cols[name] if ref_none else ref_cols[name]
                kinds[name] = config.kind or present.kind
                checks, info[name] = _missing_only(ref_cols[name], cur_cols[name], missing_threshold,
                                                   absent=name in absent)
                raw_checks.extend((name, c) for c in checks)
                continue
        kind = _resolve_kind(name, ref_cols[name], cur_cols[name], config)
        kinds[name] = kind
        method_name = config.method or DEFAULT_METHODS[kind]
        method = get_method(method_name, kind)
        threshold = config.threshold if config.threshold is not None else method.default_threshold
        checks, info[name], found = _compare_feature(name, kind, prepared, cur_cols[name], method_name,
                                                     float(threshold), int(n_bins), int(test_bins),
                                                     float(min_category_share), missing_threshold, unseen_threshold,
                                                     location_threshold)
        if found is not None:
            codes[name] = found
        raw_checks.extend((name, c) for c in checks)

    adjusted = adjust_p_values([c[4] for _, c in raw_checks], correction)
    names = [n for n in names if n not in skipped]
    per_feature: Dict[str, Dict[str, CheckResult]] = {name: {} for name in names}
    for (name, (check, method_name, score, threshold, p, direction)), p_adj in zip(raw_checks, adjusted):
        drifted = bool(p_adj <= alpha and score >= threshold)
        per_feature[name][check] = CheckResult(check, method_name, float(score), float(threshold), float(p),
                                               float(p_adj), drifted, direction)

    features: Dict[str, FeatureDrift] = {}
    for name in names:
        checks = per_feature[name]
        reasons = tuple(k for k in ("distribution", "location", "unseen_categories", "missing_rate")
                        if k in checks and checks[k].drifted)
        deciding = checks[reasons[0]] if reasons else checks.get("distribution", next(iter(checks.values())))
        features[name] = FeatureDrift(
            name=name, kind=kinds[name], method=deciding.method, score=deciding.score, threshold=deciding.threshold,
            p_value=deciding.p_value, p_value_adjusted=deciding.p_value_adjusted, drifted=bool(reasons),
            direction=deciding.direction, reasons=reasons, checks=checks, **info[name])

    mv = None
    if multivariate:
        numeric = [n for n in names if kinds[n] == "numeric" and "all_missing" not in info[n]["details"]]
        # without numeric columns the check sees two empty tables (0 rows each), as it always has
        mv = _rank_correlation(prepared if numeric else {}, {n: cur_cols[n].values for n in numeric}, numeric,
                               alpha=multivariate_alpha, threshold=multivariate_threshold, correction=correction,
                               max_rows=max_rows, seed=seed, codes=codes)

    cls = None
    if classifier:
        cls = _classifier_check(prepared, cur_cols, names, kinds, info, alpha=multivariate_alpha,
                                threshold=classifier_threshold,
                                max_rows=int(max_rows if classifier_max_rows is None else classifier_max_rows),
                                seed=seed)
        if cls.p_value is not None:
            mv, cls = _joint_family(mv, cls, correction)

    settings = {
        "alpha": alpha, "correction": correction, "n_bins": int(n_bins), "test_bins": int(test_bins),
        "min_category_share": float(min_category_share),
        "missing_threshold": missing_threshold, "unseen_threshold": unseen_threshold,
        "default_methods": dict(DEFAULT_METHODS), "multivariate": bool(multivariate),
        "multivariate_alpha": multivariate_alpha, "multivariate_threshold": multivariate_threshold,
        "max_rows": int(max_rows), "seed": seed, "feature_config": {k: v.to_dict() for k, v in configs.items()},
        "classifier": bool(classifier), "classifier_threshold": classifier_threshold,
        "classifier_alpha": multivariate_alpha, "classifier_weight": CLASSIFIER_WEIGHT,
        "classifier_max_rows": int(max_rows if classifier_max_rows is None else classifier_max_rows),
        "classifier_folds": DEFAULT_FOLDS, "explain": explain,
    }
    n_ref = next(iter(ref_cols.values())).values.size
    n_cur = next(iter(cur_cols.values())).values.size
    drift = (any(f.drifted for f in features.values()) or bool(mv is not None and mv.drifted)
             or bool(cls is not None and cls.drifted))
    if cls is not None and cls.fit is not None and (explain or (explain is None and drift)):
        from .explain import explain_drift

        cls = dataclasses.replace(cls, explanation=explain_drift(cls.fit, seed=seed))
    every_column = list(ref_cols) + [c for c in cur_cols if c not in ref_cols]
    excluded = tuple(c for c in every_column if c in set(exclude) or c in skipped)
    return DriftReport(drift, features, mv, int(n_ref), int(n_cur), settings, excluded, classifier=cls)
