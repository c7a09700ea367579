"""Model monitoring numbers from predicted probabilities (binary classifier), with or without labels.

- prediction drift: the probability distribution of the span against the reference's
  (``driftguard.components.drift.compare_numeric``: PSI on reference deciles, chi-square and KS tests);
- confidence: mean top-class probability and mean entropy, and the drift of the confidence
  distribution;
- estimated accuracy without labels, confidence-based (the idea of NannyML's CBPE): the
  probabilities are calibrated on labelled reference data (isotonic regression), and the
  expected accuracy of the span is the mean calibrated probability of the predicted class.
  It stays valid under covariate shift as long as P(label | score) holds; it cannot see a
  change of P(label | features) (concept drift), which only realized accuracy shows;
- realized accuracy and AUC when the span's labels have arrived.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Optional

import numpy as np

from driftguard.components.drift import compare_numeric

THRESHOLD = 0.5


def _clean(prob, label=None):
    prob = np.asarray(prob, dtype=float).ravel()
    if label is None:
        return prob[np.isfinite(prob)], None
    label = np.asarray(label, dtype=float).ravel()
    keep = np.isfinite(prob)
    return prob[keep], label[keep]


def _entropy(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-12, 1 - 1e-12)
    return -(q * np.log2(q) + (1 - q) * np.log2(1 - q))


def _accuracy(prob: np.ndarray, label: np.ndarray) -> Dict[str, Optional[float]]:
    from sklearn.metrics import roc_auc_score

    have = np.isfinite(label)
    if not have.any():
        return {"accuracy": None, "auc": None, "labelled_rows": 0}
    p, y = prob[have], label[have]
    acc = float(np.mean((p > THRESHOLD) == (y > 0.5)))
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else None
    return {"accuracy": acc, "auc": auc, "labelled_rows": int(have.sum())}


def accuracy_estimator(calibration_prob, calibration_label) -> Optional[Callable[[Any], Optional[float]]]:
    """:func:`estimated_accuracy` with the calibration fitted once: a function of the current
    probabilities (None when the labelled data cannot calibrate: < 50 rows or one class).
    A live monitor estimates every window against the same reference."""
    from sklearn.isotonic import IsotonicRegression

    cp, cl = _clean(calibration_prob, calibration_label)
    have = np.isfinite(cl)
    if have.sum() < 50 or len(np.unique(cl[have])) < 2:
        return None
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(cp[have], cl[have])

    def estimate(prob) -> Optional[float]:
        p, _ = _clean(prob)
        if p.size == 0:
            return None
        calibrated = iso.predict(p)
        return float(np.mean(np.where(p > THRESHOLD, calibrated, 1.0 - calibrated)))

    return estimate


def estimated_accuracy(calibration_prob, calibration_label, prob) -> Optional[float]:
    """Expected accuracy of thresholded predictions, from probabilities calibrated on labelled data."""
    estimate = accuracy_estimator(calibration_prob, calibration_label)
    return estimate(prob) if estimate is not None else None


def monitor_metrics(reference_prob, reference_label, current_prob, current_label=None,
                    baseline_accuracy: Optional[float] = None) -> Dict[str, Any]:
    """Everything the span check reports about the model's behaviour on the span.

    ``reference_*``: the serving model's probabilities on its reference sample (the training
    window) and their labels. ``baseline_accuracy``: its accuracy in the blessing evaluation
    (TFMA), the number alerts compare with.
    """
    ref_p, ref_y = _clean(reference_prob, reference_label)
    cur_p, cur_y = _clean(current_prob, current_label)
    if ref_p.size == 0 or cur_p.size == 0:
        raise ValueError(f"no predictions to compare (reference {ref_p.size}, current {cur_p.size})")
    pred = compare_numeric(ref_p, cur_p)
    ref_conf, cur_conf = np.maximum(ref_p, 1 - ref_p), np.maximum(cur_p, 1 - cur_p)
    conf = compare_numeric(ref_conf, cur_conf)
    out: Dict[str, Any] = {
        "rows": {"reference": int(ref_p.size), "current": int(cur_p.size)},
        "prediction": {
            "positive_rate_reference": float(np.mean(ref_p > THRESHOLD)),
            "positive_rate_current": float(np.mean(cur_p > THRESHOLD)),
            "mean_probability_reference": float(np.mean(ref_p)),
            "mean_probability_current": float(np.mean(cur_p)),
            "psi": pred.scores["psi"], "ks": pred.scores["ks"], "p_value": pred.p_values["chi_square"],
            "bin_edges": pred.details["bin_edges"], "reference_counts": pred.details["reference_counts"],
            "current_counts": pred.details["current_counts"],
        },
        "confidence": {
            "mean_reference": float(np.mean(ref_conf)), "mean_current": float(np.mean(cur_conf)),
            "entropy_reference": float(np.mean(_entropy(ref_p))), "entropy_current": float(np.mean(_entropy(cur_p))),
            "psi": conf.scores["psi"], "p_value": conf.p_values["chi_square"],
        },
        "baseline_accuracy": baseline_accuracy,
        "estimated_accuracy": estimated_accuracy(ref_p, ref_y, cur_p) if ref_y is not None else None,
        "estimated_accuracy_reference": estimated_accuracy(ref_p, ref_y, ref_p) if ref_y is not None else None,
    }
    realized = _accuracy(cur_p, cur_y) if cur_y is not None else {"accuracy": None, "auc": None,
                                                                   "labelled_rows": 0}
    out["realized_accuracy"] = realized["accuracy"]
    out["realized_auc"] = realized["auc"]
    out["labelled_rows"] = realized["labelled_rows"]
    # Realized accuracy is compared with the blessing evaluation (TFMA, held-out rows). The
    # estimate is compared with the same estimator on the reference sample: that sample is the
    # training window, on which the model is a little better than on held-out rows, and
    # comparing like with like cancels that optimism.
    def change(value, base):
        return value / base - 1.0 if value is not None and base else None

    out["realized_accuracy_change"] = change(out["realized_accuracy"], baseline_accuracy)
    out["estimated_accuracy_change"] = change(out["estimated_accuracy"], out["estimated_accuracy_reference"])
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
