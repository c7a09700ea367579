r"""driftguard drift statistics: pure functions over arrays, counts and tables.

No TensorFlow, TFX, Beam or TFDV here (not even transitively), and neither pandas nor
scipy.stats is imported, so ``driftguard drift`` starts in about a second.

Front door::

    from driftguard.components.drift import detect_drift, FeatureConfig
    report = detect_drift(reference_df, current_df, exclude=["tips"],
                          feature_config={"fare": FeatureConfig(method="psi", threshold=0.2)})
    report.drift_detected, report.features["fare"].scores["psi"], report.to_json()

A monitor comparing many windows with one reference prepares it once (the same reports,
without recomputing what depends on the reference alone; :mod:`.prepared`)::

    reference = prepare_reference(reference_df)
    for window in windows:
        report = detect_drift(reference, window)

Defaults (why: ``components/drift/README.md``)
    - numeric features: PSI >= 0.005 on 10 reference-quantile bins, with chi-square
      evidence on 20 and 50 reference-quantile bins (Bonferroni-combined);
    - categorical features: PSI >= 0.005 on categories holding >= 1% of the reference
      plus a pooled bucket, with chi-square evidence on pooled-count-safe bins;
    - missing rate changed by >= 5 points (Fisher's exact test);
    - >= 2% of current values in categories the reference lacks (exact test);
    - a check drifts when its Holm-adjusted p-value <= 0.01 AND its score >= threshold;
    - joint drift: Spearman correlations of numeric pairs changed by >= 0.1, and a
      domain classifier (cross-fitted gradient-boosted trees telling current from
      reference rows) with a cross-fitted AUC >= 0.52, in one family at weighted-Holm
      adjusted p <= 0.01, on <= 5,000 seeded rows per side;
    - the dataset drifts when any feature drifts or a joint check fires; then the
      classifier explains itself (separating features, changed segments).

Building blocks, also usable on precomputed counts (e.g. from a Beam job):
:func:`psi`, :func:`jensen_shannon`, :func:`hellinger`, :func:`linf`,
:func:`chi_square` (:mod:`.divergence`), :func:`quantile_edges`, :func:`bin_counts`,
:func:`category_bins` (:mod:`.binning`), :func:`compare_categorical`,
:func:`unseen_categories` (:mod:`.categorical`), :func:`missing_rate` (:mod:`.missing`),
:func:`ks`, :func:`wasserstein`, :func:`normalized_wasserstein` (:mod:`.numeric`),
:func:`rank_correlation_check` (:mod:`.multivariate`), :func:`holm` (:mod:`.correction`),
:func:`fit_domain_classifier` (:mod:`.classifier`, with ``density_ratio``), :func:`explain_drift`
(:mod:`.explain`). scikit-learn is imported only when a classifier is fitted.
"""
from .binning import bin_counts, category_bins, category_counts, quantile_edges
from .categorical import compare_categorical, unseen_categories
from .classifier import ClassifierResult, DomainClassifierFit, fit_domain_classifier
from .config import FeatureConfig
from .correction import bonferroni, holm
from .detect import detect_drift
from .divergence import chi_square, hellinger, jensen_shannon, linf, psi
from .errors import DriftInputError
from .explain import Explanation, explain_drift
from .missing import missing_rate
from .multivariate import MultivariateResult, PairDrift, rank_correlation_check, spearman
from .numeric import compare_numeric, ks, normalized_wasserstein, wasserstein
from .prepared import PreparedReference, prepare_reference
from .registry import DEFAULT_METHODS, METHODS, Method
from .report import CheckResult, DriftReport, FeatureDrift

__all__ = [
    "detect_drift", "prepare_reference", "PreparedReference",
    "DriftReport", "FeatureDrift", "CheckResult", "MultivariateResult", "PairDrift",
    "fit_domain_classifier", "DomainClassifierFit", "ClassifierResult", "explain_drift", "Explanation",
    "FeatureConfig", "DriftInputError", "METHODS", "DEFAULT_METHODS", "Method",
    "psi", "jensen_shannon", "hellinger", "linf", "chi_square", "ks", "wasserstein", "normalized_wasserstein",
    "quantile_edges", "bin_counts", "category_bins", "category_counts", "compare_numeric", "compare_categorical",
    "unseen_categories", "missing_rate", "rank_correlation_check", "spearman", "holm", "bonferroni",
]
