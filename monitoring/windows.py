"""What one window shows against the serving version's baseline: a window of log records (feature,
prediction and confidence drift, the performance metric estimated without labels) and a window
of joined labels (the realized metrics and a one-sided test of the watched one's worsening).

The functions here only evaluate: the monitor (``monitoring/monitor.py``) cuts the windows,
counts them, raises the alerts the rules find in what is returned, and keeps the summaries for
its metrics.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from driftguard.monitoring.baseline import THRESHOLD, Baseline

log = logging.getLogger(__name__)

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclasses.dataclass
class WindowReport:
    """One window, as the alert rules read it (``drift``, ``monitor``) and as the metrics show
    it (``summary``, without its alerts: the monitor adds their keys)."""

    scope: str                           # the alerts' scope: live/w<first>-<last> or live/labels-j<first>-<last>
    drift: Optional[Dict[str, Any]]      # the features' drift report; None when they were not compared
    monitor: Dict[str, Any]              # the model's outputs and performance
    summary: Dict[str, Any]
    features_error: Optional[str] = None   # why the features were not compared


def evaluate_window(baseline: Baseline, first: int, last: int, rows: Mapping[str, np.ndarray], *,
                    alpha: float, multivariate: bool, classes: Sequence[Any], classifier: bool = True,
                    classifier_max_rows: int = 2000) -> WindowReport:
    """Records ``first``..``last`` (``rows``: the compared features, ``probability`` as model_io
    reads the prediction, a multi-class model's ``confidence``) against ``baseline``, every test
    at level ``alpha``."""
    from driftguard.components.drift import DriftInputError, detect_drift

    features = {f: rows[f] for f in baseline.features}
    scope = f"live/w{first}-{last}"
    error = None
    try:
        report = detect_drift(baseline.prepared, features, feature_config=baseline.feature_config, alpha=alpha,
                              multivariate=multivariate, multivariate_alpha=alpha, all_missing="compare",
                              classifier=classifier, classifier_max_rows=classifier_max_rows)
    except DriftInputError as e:
        log.warning("window %s: features not compared: %s", scope, e)
        report, error = None, str(e)
    prob = rows["probability"]
    p = prob[np.isfinite(prob)]
    window: Dict[str, Any] = {"first": first, "last": last, "records": int(prob.size),
                              "time": time.time(), "version": baseline.version}
    if error is not None:
        window["features_skipped"] = error
    drift: Optional[Dict[str, Any]] = None
    if report is not None:
        drift = report.to_dict()
        drift["status"] = "compared"
        ranked = sorted((f for f in report.features.values() if f.drifted), key=lambda f: -f.severity)
        drift["drifted_features"] = [f.name for f in ranked]
        window["features"] = {name: {"psi": f.scores.get("psi"), "drifted": f.drifted,
                                     "p_value": f.p_value_adjusted}
                              for name, f in report.features.items()}
        window["drift_detected"] = report.drift_detected
        window["multivariate_drifted"] = bool(report.multivariate is not None and report.multivariate.drifted)
        window["classifier_auc"] = report.classifier.auc if report.classifier is not None else None
        window["drifted_features"] = drift["drifted_features"]
    monitor: Dict[str, Any] = {"task": baseline.task}
    if p.size:
        conf_rows = rows.get("confidence")
        columns = baseline.output_columns(prob, conf_rows)
        outputs = detect_drift(baseline.prepared_outputs, columns, alpha=alpha, multivariate=False,
                               feature_config=baseline.output_config)
        for what, f in outputs.features.items():
            monitor[what] = {"drifted": f.drifted, "psi": f.scores.get("psi"), "p_value": f.p_value_adjusted,
                             "direction": f.direction}
        window.update(prediction_psi=outputs.features["prediction"].scores.get("psi"),
                      prediction_drifted=bool(outputs.drift_detected))
        if "confidence" in outputs.features:
            conf = columns["confidence"]
            window.update(confidence_psi=outputs.features["confidence"].scores.get("psi"),
                          mean_confidence=float(np.mean(conf)) if conf.size else None)
        if baseline.task == "multiclass":
            shares = np.bincount(p.astype(int), minlength=baseline.n_classes) / p.size
            window["class_shares"] = {str(c): float(v) for c, v in zip(classes, shares)}
        else:
            window.update(prediction_quantiles={str(q): float(v) for q, v in zip(QUANTILES, np.quantile(p, QUANTILES))},
                          mean_prediction=float(np.mean(p)))
            if baseline.task == "binary":
                window.update(positive_rate=float(np.mean(p > THRESHOLD)), mean_probability=float(np.mean(p)))
        perf = estimate_performance(baseline, prob, rows, alpha)
        if perf is not None:
            monitor["performance"] = perf
            window["estimated"] = perf["estimated"].get(baseline.metric)
            window["estimated_metric"] = baseline.metric
            low_high = perf["estimated_interval"].get(baseline.metric) or [None, None]
            window["estimated_low"], window["estimated_high"] = low_high
    return WindowReport(scope, drift, monitor, window, error)


def features_text(summary: Mapping[str, Any]) -> str:
    """What a window's summary says of its features, in words: the drifted ones, "no feature
    drift", or that the check was skipped and why (never "no feature drift" then)."""
    if summary.get("features_skipped"):
        return f"feature check skipped: {summary['features_skipped']}"
    if summary.get("drift_detected"):
        return "drift in " + (", ".join(summary.get("drifted_features") or []) or "the joint check")
    return "no feature drift"


def top_class_matrix(index: np.ndarray, confidence: np.ndarray, k: int) -> np.ndarray:
    """(n, k) probabilities holding only each row's predicted class and its probability (the
    rest spread evenly): what a window keeps of a multi-class model's output."""
    n = index.size
    rest = np.clip((1.0 - confidence) / max(k - 1, 1), 0.0, 1.0)
    out = np.repeat(rest[:, None], k, axis=1)
    out[np.arange(n), index.astype(int)] = confidence
    return out


def estimate_performance(baseline: Baseline, prob: np.ndarray, rows: Mapping[str, np.ndarray], alpha: float
                         ) -> Optional[Dict[str, Any]]:
    """The window's performance estimated without labels (CBPE, DLE) with its 95 % interval
    (``estimated_interval``: the window's sampling error and the calibration's), against the same
    estimate on the held-out reference rows, and whether the worsening is significant: a
    one-sided z-test on the per-row loss (a classifier's expected 0/1 error, whose
    standard deviation is at most 0.5; a regression's predicted absolute error, with its
    reference standard deviation)."""
    from driftguard.components import tasks as tasks_lib

    if baseline.estimator is None or not baseline.estimated_reference:
        return None
    keep = np.isfinite(prob)
    if not keep.any():
        return None
    features = {f: rows[f][keep] for f in baseline.features}
    probs = None
    if baseline.task == "binary":
        probs = np.stack([1.0 - prob[keep], prob[keep]], axis=1)
    elif baseline.task == "multiclass":
        # a window keeps the class and its probability, not the whole vector: the estimate
        # calibrates the top-class probability (one-vs-rest on the predicted class)
        probs = top_class_matrix(prob[keep], rows["confidence"][keep], baseline.n_classes)
    full = baseline.estimator.estimate_with_interval(prob[keep], probs, features)
    est = full["estimated"]
    metric = baseline.metric
    value, ref = est.get(metric), baseline.estimated_reference.get(metric)
    significant = False
    if value is not None and ref is not None:
        worse = tasks_lib.worse_by(baseline.task, metric, value, ref) * abs(ref)
        sd = 0.5 if baseline.task != "regression" else float(np.std(baseline.reference_errors)
                                                              if baseline.reference_errors is not None else 0.0)
        if sd > 0:
            z = worse / (sd / math.sqrt(int(keep.sum())))
            significant = bool(0.5 * math.erfc(z / math.sqrt(2.0)) <= alpha)
    return {"task": baseline.task, "metric": metric, "estimated": est,
            "estimated_interval": {m: v for m, v in full["interval"].items() if v is not None},
            "estimated_se": full["se"], "estimator": baseline.estimator.method,
            "estimated_reference": dict(baseline.estimated_reference), "estimated_significant": significant}


def evaluate_label_window(baseline: Baseline, part: Mapping[str, np.ndarray], *, alpha: float) -> WindowReport:
    """A window of joined labels (``part``: ``probability``, ``label``, ``join`` index): the
    realized metrics, and a one-sided test of the watched metric's worsening against the
    held-out reference (a binomial test of accuracy; a Welch test of the absolute errors for
    MAE; the share test of the 0/1 error otherwise), at level ``alpha``."""
    from scipy.stats import binomtest, ttest_ind

    from driftguard.components.prediction_monitor import performance

    n = int(part["label"].size)
    value, label = part["probability"], part["label"]
    realized = performance.realized(baseline.task, value, label)
    first, last = int(part["join"][0]), int(part["join"][-1])
    metric = baseline.metric
    perf: Dict[str, Any] = {"task": baseline.task, "metric": metric, "realized": realized,
                            "baseline": dict(baseline.baseline_metrics)}
    p_value = None
    base = baseline.baseline_metric
    if base is not None and realized.get(metric) is not None:
        errors = baseline.errors(value, label)
        if baseline.task == "regression" and baseline.reference_errors is not None:
            p_value = float(ttest_ind(errors, baseline.reference_errors, equal_var=False,
                                      alternative="greater").pvalue)
        elif metric == "accuracy":
            p_value = float(binomtest(int(n - errors.sum()), n, min(max(base, 1e-9), 1 - 1e-9),
                                      alternative="less").pvalue)
        elif baseline.reference_errors is not None:     # AUC, macro-F1: the 0/1 error's share
            ref_err = float(np.mean(baseline.reference_errors))
            p_value = float(binomtest(int(errors.sum()), n, min(max(ref_err, 1e-9), 1 - 1e-9),
                                      alternative="greater").pvalue)
        if p_value is not None:
            perf["realized_significant"] = p_value <= alpha
    summary = {"first": first, "last": last, "labels": n, "metric": metric, "value": realized.get(metric),
               "realized": realized, "p_value": p_value, "time": time.time()}
    if metric == "accuracy":
        summary["accuracy"] = realized.get("accuracy")
    return WindowReport(f"live/labels-j{first}-{last}", None, {"task": baseline.task, "performance": perf}, summary)
