"""What the span check reports about the serving model's behaviour on a span, for every task.

- **prediction drift**: the distribution of the prediction against the model's predictions on
  its reference sample (:func:`driftguard.components.drift.compare_numeric`: PSI on reference
  deciles, chi-square and KS tests): the positive-class probability (binary), the predicted
  value (regression); for a multi-class model the predicted class's shares
  (:func:`~driftguard.components.drift.compare_categorical`) and each class's probability;
- **confidence** (classification): the top-class probability and the entropy, and the drift
  of the confidence distribution;
- **performance** (:mod:`.performance`): the task's metrics realized on the span's labels
  when they have arrived, estimated without them (CBPE, DLE) with a 95 % interval, and the
  shift-aware estimate (the calibration rows re-weighted to the span by the domain classifier's
  density ratio, the classifier the impact report uses), each next to the same number on the
  reference: realized against the serving model's metrics on held-out reference rows (the
  eval split), estimated against the same estimator on those rows (like with like).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

from driftguard.components import tasks as tasks_lib
from driftguard.components.drift import compare_categorical, compare_numeric
from driftguard.components.prediction_monitor import performance

THRESHOLD = 0.5


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def _entropy(probabilities: np.ndarray) -> np.ndarray:
    q = np.clip(probabilities, 1e-12, 1.0)
    return -np.sum(q * np.log2(q), axis=1)


def _numeric_drift(ref, cur) -> Dict[str, Any]:
    c = compare_numeric(ref, cur)
    return {"psi": c.scores["psi"], "ks": c.scores["ks"], "p_value": c.p_values["chi_square"],
            "bin_edges": c.details["bin_edges"], "reference_counts": c.details["reference_counts"],
            "current_counts": c.details["current_counts"]}


def _class_counts(index: np.ndarray, classes: Sequence[str]) -> Dict[str, int]:
    counts = np.bincount(index.astype(int), minlength=len(classes))
    return {str(c): int(n) for c, n in zip(classes, counts)}


def prediction_report(task: str, classes: Sequence[str], ref, cur) -> Dict[str, Any]:
    """The ``prediction`` and ``confidence`` sections (``ref``/``cur``: model_io.Predictions)."""
    ref_v, cur_v = _finite(ref.value), _finite(cur.value)
    if ref_v.size == 0 or cur_v.size == 0:
        raise ValueError(f"no predictions to compare (reference {ref_v.size}, current {cur_v.size})")
    out: Dict[str, Any] = {}
    if task == tasks_lib.MULTICLASS:
        ref_counts, cur_counts = _class_counts(ref_v, classes), _class_counts(cur_v, classes)
        c = compare_categorical(ref_counts, cur_counts)
        per_class = {}
        for k, name in enumerate(classes):
            rp, cp = _finite(ref.probabilities[:, k]), _finite(cur.probabilities[:, k])
            d = compare_numeric(rp, cp)
            per_class[str(name)] = {"mean_reference": float(rp.mean()), "mean_current": float(cp.mean()),
                                    "psi": d.scores["psi"], "p_value": d.p_values["chi_square"]}
        out["prediction"] = {
            "kind": "class", "psi": c.scores["psi"], "p_value": c.p_values["chi_square"],
            "class_share_reference": {k: v / max(1, sum(ref_counts.values())) for k, v in ref_counts.items()},
            "class_share_current": {k: v / max(1, sum(cur_counts.values())) for k, v in cur_counts.items()},
            "class_probabilities": per_class,
        }
    else:
        out["prediction"] = {"kind": "probability" if task == tasks_lib.BINARY else "value",
                             "mean_reference": float(ref_v.mean()), "mean_current": float(cur_v.mean()),
                             **_numeric_drift(ref_v, cur_v)}
        if task == tasks_lib.BINARY:
            out["prediction"]["positive_rate_reference"] = float(np.mean(ref_v > THRESHOLD))
            out["prediction"]["positive_rate_current"] = float(np.mean(cur_v > THRESHOLD))
        else:
            out["prediction"]["quantiles_reference"] = np.quantile(ref_v, [0.05, 0.5, 0.95]).tolist()
            out["prediction"]["quantiles_current"] = np.quantile(cur_v, [0.05, 0.5, 0.95]).tolist()
    if task != tasks_lib.REGRESSION:
        ref_c, cur_c = _finite(ref.confidence), _finite(cur.confidence)
        keep_r = np.isfinite(ref.probabilities).all(axis=1)
        keep_c = np.isfinite(cur.probabilities).all(axis=1)
        d = compare_numeric(ref_c, cur_c)
        out["confidence"] = {
            "mean_reference": float(ref_c.mean()), "mean_current": float(cur_c.mean()),
            "entropy_reference": float(_entropy(ref.probabilities[keep_r]).mean()),
            "entropy_current": float(_entropy(cur.probabilities[keep_c]).mean()),
            "psi": d.scores["psi"], "p_value": d.p_values["chi_square"]}
    return out


def performance_report(task: str, metric: str, ref, ref_label: Optional[np.ndarray], held_out: np.ndarray,
                       cur, cur_label: Optional[np.ndarray],
                       ref_features: Optional[Mapping[str, np.ndarray]] = None,
                       cur_features: Optional[Mapping[str, np.ndarray]] = None,
                       ref_ratio: Optional[np.ndarray] = None, ratio_note: Optional[str] = None,
                       confidence: float = 0.95) -> Dict[str, Any]:
    """The ``performance`` section: realized (with labels), baseline (the model on held-out
    reference rows), estimated with its interval (CBPE, DLE) and its reference value, the
    shift-aware estimate with its interval (the calibration rows weighted by ``ref_ratio``, the
    density ratio p_current(x) / p_reference(x) of every reference row, from the span's domain
    classifier; ``ratio_note`` says why there is none), and how each was estimated."""
    out: Dict[str, Any] = {"task": task, "metric": metric, "realized": {}, "baseline": {}, "estimated": {},
                           "estimated_interval": {}, "estimated_se": {}, "estimated_confidence": confidence,
                           "estimated_shift_aware": {}, "estimated_shift_aware_interval": {},
                           "estimated_shift_aware_se": {}, "shift_aware": None,
                           "estimated_reference": {}, "labelled_rows": 0, "estimator": None,
                           "estimated_note": None, "reference_rows_held_out": int(held_out.sum())}
    if cur_label is not None:
        out["realized"] = performance.realized(task, cur.value, cur_label)
        out["labelled_rows"] = int(np.sum(np.isfinite(cur_label) & np.isfinite(cur.value)))
    if ref_label is None:
        out["estimated_note"] = "no estimate: the reference sample has no labels"
        return _clean(out)
    ho = held_out
    ref_ho = ref.take(ho)
    out["baseline"] = performance.realized(task, ref_ho.value, ref_label[ho])
    feats_ho = {k: np.asarray(v)[ho] for k, v in (ref_features or {}).items()}
    estimator, note = performance.fit_estimator(task, ref_ho.value, ref_label[ho], ref_ho.probabilities, feats_ho)
    if estimator is None:
        out["estimated_note"] = note
        return _clean(out)
    out["estimator"] = estimator.method
    plain = estimator.estimate_with_interval(cur.value, cur.probabilities, cur_features, confidence=confidence)
    out.update(estimated=plain["estimated"], estimated_interval=plain["interval"], estimated_se=plain["se"])
    out["estimated_reference"] = estimator.estimate(ref_ho.value, ref_ho.probabilities, feats_ho)
    out["shift_aware"] = _shift_aware(estimator, out, ref_ratio, ho, ratio_note, cur, cur_features, confidence)
    return _clean(out)


def _shift_aware(estimator, out: Dict[str, Any], ref_ratio, held_out, ratio_note, cur, cur_features,
                 confidence: float) -> Dict[str, Any]:
    """Fill ``out``'s shift-aware estimate; return its ``shift_aware`` record (method, effective
    sample size, rows, clipped rows; or a note)."""
    if ref_ratio is None:
        return {"note": ratio_note or "no shift-aware estimate: no density ratio for the reference rows"}
    try:
        shifted, info = estimator.reweighted(np.asarray(ref_ratio, dtype=float)[held_out])
    except ValueError as e:     # weights all zero or not finite
        return {"note": f"no shift-aware estimate: {e}"}
    sa = shifted.estimate_with_interval(cur.value, cur.probabilities, cur_features, confidence=confidence)
    out.update(estimated_shift_aware=sa["estimated"], estimated_shift_aware_interval=sa["interval"],
               estimated_shift_aware_se=sa["se"])
    return {"method": shifted.method, **info}


def span_shift(reference_rows, current_rows, features: Sequence[str], kinds: Optional[Mapping[str, str]] = None,
               seed: int = 0):
    """``(shift, note)``: the span's domain classifier, fitted once and shared by the shift-aware
    estimate and the impact report (``shift``: ``(fit, columns)`` of
    :func:`driftguard.components.impact.effect.span_classifier`, and ``ratio``: the density ratio of
    every reference row), or None and why not."""
    from driftguard.components.impact.effect import reference_ratio, span_classifier

    try:
        fit, cols = span_classifier(reference_rows, current_rows, features, kinds=kinds, seed=seed)
    except ValueError as e:   # DriftInputError: too few rows for the classifier, an unreadable column
        return None, f"no estimate: {e}"
    ratio = reference_ratio(fit, reference_rows.select(cols), np.ones(reference_rows.num_rows, dtype=bool))
    return {"fit": (fit, cols), "ratio": ratio}, None


def impact_report(task: str, metric: str, reference_rows, current_rows, ref_value: np.ndarray,
                  ref_label: Optional[np.ndarray], held_out: np.ndarray, features: Sequence[str],
                  kinds: Optional[Mapping[str, str]] = None, rows_note: str = "",
                  shift: Optional[Mapping[str, Any]] = None, shift_note: Optional[str] = None) -> Dict[str, Any]:
    """The ``impact`` section: the change of every metric of the task on this span, estimated by
    re-weighting the labelled held-out reference rows with the domain classifier's density ratio
    (:func:`driftguard.components.impact.effect.span_effect`); ``metric`` is the watched one.
    ``shift``/``shift_note``: :func:`span_shift`'s result, when the caller fitted the classifier
    already (else it is fitted here)."""
    from driftguard.components.impact.effect import METHOD, span_effect

    base = {"metric": metric, "method": METHOD, "rows_note": rows_note}
    if ref_label is None:
        return {**base, "status": "not_estimated", "note": "no estimate: the reference sample has no labels"}
    if shift is None and shift_note is not None:
        return {**base, "status": "not_estimated", "note": shift_note}
    rows = np.asarray(held_out, dtype=bool) & np.isfinite(ref_label) & np.isfinite(ref_value)
    try:
        out = span_effect(task, reference_rows, current_rows, ref_value, ref_label, rows, columns=features,
                          kinds=kinds, fit=None if shift is None else shift["fit"])
    except ValueError as e:   # DriftInputError: too few rows for the classifier, an unreadable column
        return {**base, "status": "not_estimated", "note": f"no estimate: {e}"}
    return _clean({**base, **out})


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def headline(perf: Mapping[str, Any]) -> Dict[str, Optional[float]]:
    """The watched metric's realized, baseline, estimated numbers and relative changes."""
    metric, task = perf.get("metric"), perf.get("task")
    def get(section):
        return (perf.get(section) or {}).get(metric)
    realized, baseline = get("realized"), get("baseline")
    estimated, est_ref = get("estimated"), get("estimated_reference")

    def change(value, base):
        if value is None or base is None or not base:
            return None
        return (value - base) / abs(base)
    def bound(section, i):
        pair = (perf.get(section) or {}).get(metric)
        return pair[i] if pair else None
    return {"metric": metric, "realized": realized, "baseline": baseline, "estimated": estimated,
            "estimated_reference": est_ref, "realized_change": change(realized, baseline),
            "estimated_change": change(estimated, est_ref),
            "estimated_low": bound("estimated_interval", 0), "estimated_high": bound("estimated_interval", 1),
            "estimated_shift_aware": get("estimated_shift_aware"),
            "estimated_shift_aware_low": bound("estimated_shift_aware_interval", 0),
            "estimated_shift_aware_high": bound("estimated_shift_aware_interval", 1),
            "higher_is_better": tasks_lib.METRICS.get(task, {}).get(metric)}
