"""The estimated change of a model's metric on the current data, from the reference's labelled rows.

Under covariate shift (the inputs' distribution moves, P(label | inputs) does not), the model's
metric on the current data is its metric on the reference rows re-weighted by the density
ratio ``w(x) = p_current(x) / p_reference(x)`` (importance weighting; Shimodaira 2000,
Sugiyama et al. 2007)::

    M_current ~= M_w(reference rows)     e.g. accuracy: sum_i w_i [pred_i == y_i] / sum_i w_i
    change     = M_w - M                 M: the same metric unweighted, on the same rows

The ratio comes from a domain classifier that tells current rows from reference rows
(``driftguard.components.drift.classifier``: ``w = P(current | x) / P(reference | x)`` times
the sample-size ratio), each reference row's from the fold model that did not see it
(:func:`reference_ratio`); here the weights are normalised to mean 1 (self-normalised
importance weighting, so the sample-size constant does not matter) and clipped at
``max_weight`` times the mean, so a handful of rows cannot carry the estimate. Every metric of
the task has a weighted version (``performance.realized(..., weights=...)``: AUC and macro-F1
through scikit-learn's ``sample_weight``).

Uncertainty: a bootstrap over the labelled reference rows (the weights stay attached to their
rows) gives the standard error of ``change``; the effective sample size
``(sum w)^2 / sum w^2`` says how many reference rows the estimate effectively rests on. Not
included: the variance of the classifier's fit itself (it is fitted once). When the current
data lie where the reference has no rows, no weighting can see it (the ESS collapses: the
report shows it), and a change of P(label | inputs) (concept drift) is invisible to any
label-free estimate; the realized metric, once labels arrive, is shown beside it.

No TFX, no TensorFlow: arrays in, numbers out.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from driftguard.components import tasks as tasks_lib
from driftguard.components.prediction_monitor.uncertainty import z_value

DEFAULT_BOOTSTRAP = 200
DEFAULT_MAX_WEIGHT = 20.0
MIN_ROWS = 50
METHOD = ("density-ratio re-weighting of the reference's labelled rows (domain classifier), "
          "bootstrap standard error")


def normalised_weights(weights, max_weight: float = DEFAULT_MAX_WEIGHT) -> Tuple[np.ndarray, int]:
    """``weights`` scaled to mean 1 and clipped at ``max_weight`` (then scaled to mean 1 again);
    (weights, number of rows clipped). Raises ValueError on negative or non-finite weights."""
    w = np.asarray(weights, dtype=float)
    if w.size == 0:
        raise ValueError("weights: no rows")
    if not np.isfinite(w).all() or (w < 0).any():
        bad = w[~np.isfinite(w) | (w < 0)][0]
        raise ValueError(f"weights must be finite and >= 0 (a density ratio), got {bad!r}")
    if not w.sum() > 0:
        raise ValueError("weights are all zero")
    w = w / w.mean()
    clipped = 0
    for _ in range(100):        # clipping raises the others' mean weight: repeat until none exceeds
        over = w > max_weight * (1 + 1e-9)
        if not over.any():
            break
        w = np.minimum(w, max_weight)
        w = w / w.mean()
        clipped = int(np.sum(w >= max_weight * (1 - 1e-9)))
    return w, clipped


def effective_sample_size(weights) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``: n for equal weights, 1 for one row."""
    w = np.asarray(weights, dtype=float)
    return float(w.sum() ** 2 / np.sum(w ** 2)) if np.sum(w ** 2) > 0 else 0.0


def estimate_effect(task: str, value, label, weights, *, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                    max_weight: float = DEFAULT_MAX_WEIGHT, seed: int = 0) -> Dict[str, Any]:
    """The task's metrics on the reference rows, unweighted and weighted by ``weights``, their
    difference and its bootstrap standard error.

    ``value``: the model's monitored value per reference row (``Predictions.value``);
    ``label``: the rows' labels (NaN: unknown, left out); ``weights``: the density ratio
    ``p_current(x) / p_reference(x)`` of each row (any positive scale).

    Returns ``{"status": "estimated", "method", "rows", "effective_sample_size", "clipped_rows",
    "max_weight", "bootstrap", "metrics": {metric: {"reference", "estimated", "change", "se",
    "relative_change", "higher_is_better"}}}``, or ``{"status": "not_estimated", "note"}`` with
    fewer than :data:`MIN_ROWS` labelled rows.
    """
    from driftguard.components.prediction_monitor.performance import realized

    if task not in tasks_lib.TASKS:
        raise ValueError(f"task must be one of {', '.join(tasks_lib.TASKS)}, got {task!r}")
    value = np.asarray(value, dtype=float)
    label = np.asarray(label, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if not value.shape == label.shape == weights.shape:
        raise ValueError(f"value, label and weights must have one entry per row, got {value.size}, "
                         f"{label.size}, {weights.size}")
    keep = np.isfinite(value) & np.isfinite(label)
    if keep.sum() < MIN_ROWS:
        return {"status": "not_estimated", "method": METHOD,
                "note": f"no estimate: {int(keep.sum())} labelled reference rows, at least {MIN_ROWS} needed"}
    v, y = value[keep], label[keep]
    w, clipped = normalised_weights(weights[keep], max_weight)
    base = realized(task, v, y)
    est = realized(task, v, y, w)
    names = [m for m in tasks_lib.METRICS[task] if base.get(m) is not None and est.get(m) is not None]
    rng = np.random.default_rng(seed)
    n = v.size
    draws: Dict[str, list] = {m: [] for m in names}
    for _ in range(int(n_bootstrap)):
        idx = rng.integers(0, n, n)
        b0, b1 = realized(task, v[idx], y[idx]), realized(task, v[idx], y[idx], w[idx])
        for m in names:
            if b0.get(m) is not None and b1.get(m) is not None:
                draws[m].append(b1[m] - b0[m])
    metrics = {}
    for m in names:
        change = float(est[m] - base[m])
        d = np.asarray(draws[m], dtype=float)
        metrics[m] = {"reference": float(base[m]), "estimated": float(est[m]), "change": change,
                      "se": float(d.std(ddof=1)) if d.size > 1 else None,
                      "relative_change": change / abs(base[m]) if base[m] else None,
                      "higher_is_better": bool(tasks_lib.METRICS[task][m])}
    return {"status": "estimated", "method": METHOD, "rows": int(n),
            "effective_sample_size": effective_sample_size(w), "clipped_rows": clipped,
            "max_weight": float(max_weight), "bootstrap": int(n_bootstrap), "seed": int(seed), "metrics": metrics}


def worse_interval(entry: Mapping[str, Any], confidence: float) -> Optional[Dict[str, float]]:
    """How much worse the metric is estimated to get, relative to its reference value (> 0:
    worse), with the normal interval at ``confidence``: ``{"worse", "low", "high",
    "half_width"}`` (``half_width`` in the metric's unit). None without a change or its error."""
    change, se, ref = entry.get("change"), entry.get("se"), entry.get("reference")
    if change is None or se is None or not ref or not all(math.isfinite(x) for x in (change, se, ref)):
        return None
    sign = -1.0 if entry.get("higher_is_better", True) else 1.0
    half = z_value(confidence) * se
    worse = sign * change / abs(ref)
    return {"worse": worse, "low": worse - half / abs(ref), "high": worse + half / abs(ref), "half_width": half}


def reference_ratio(fit, reference, rows: np.ndarray) -> np.ndarray:
    """The density ratio of the reference rows ``rows`` (a boolean mask over ``reference``).

    When the classifier was fitted on every reference row (no subsample), each row's ratio
    comes from its *out-of-fold* score (``fit.scores``: the log-odds of "current" from the
    fold model that did not see the row), so no row is weighted by a model that learned it;
    otherwise from ``fit.density_ratio`` (the fold models' average)."""
    from driftguard.components.drift.classifier import DENSITY_RATIO_RANGE

    rows = np.asarray(rows, dtype=bool)
    if int(fit.n_reference) == reference.num_rows and getattr(fit, "scores", None) is not None:
        logit = np.asarray(fit.scores, dtype=float)[: reference.num_rows]
        ratio = np.exp(np.clip(logit, -30, 30)) * (fit.n_reference / fit.n_current)
        return np.clip(ratio, *DENSITY_RATIO_RANGE)[rows]
    return np.asarray(fit.density_ratio(reference.filter(rows)), dtype=float)


def span_classifier(reference, current, columns, *, kinds=None, seed: int = 0):
    """``(fit, columns)``: the domain classifier
    (:func:`driftguard.components.drift.classifier.fit_domain_classifier`) of the reference and
    current tables on the ``columns`` both have, fitted once per span and shared by the impact
    estimate (:func:`span_effect`) and the shift-aware performance estimate
    (``prediction_monitor.performance``). Raises ValueError (DriftInputError) when there is no
    shared column or too few rows."""
    from driftguard.components.drift.classifier import fit_domain_classifier

    cols = [c for c in columns if c in reference.column_names and c in current.column_names]
    if not cols:
        raise ValueError("the reference and the span share no compared feature")
    fit = fit_domain_classifier(reference.select(cols), current.select(cols), cols,
                                kinds={k: v for k, v in (kinds or {}).items() if k in cols} or None, seed=seed)
    return fit, cols


def span_effect(task: str, reference, current, value, label, rows, *, columns, kinds=None, seed: int = 0,
                fit=None, **options: Any) -> Dict[str, Any]:
    """:func:`estimate_effect` on a span: fit the domain classifier (:func:`span_classifier`, or
    take ``fit``, a ``(fit, columns)`` pair it returned) on the reference and current tables'
    ``columns`` (those both have), weight the labelled reference rows ``rows`` (a boolean mask;
    ``value`` and ``label`` are aligned with ``reference``) by their density ratio, and say how
    well the classifier told the data apart (``classifier``: AUC, p-value)."""
    if fit is None:
        cols = [c for c in columns if c in reference.column_names and c in current.column_names]
        if not cols:
            return {"status": "not_estimated", "method": METHOD,
                    "note": "no estimate: the reference and the span share no compared feature"}
        fit = span_classifier(reference, current, cols, kinds=kinds, seed=seed)
    fit, cols = fit
    ref = reference.select(cols)
    rows = np.asarray(rows, dtype=bool)
    out = estimate_effect(task, np.asarray(value, float)[rows], np.asarray(label, float)[rows],
                          reference_ratio(fit, ref, rows), seed=seed, **options)
    out["classifier"] = {"auc": _float(fit.auc), "p_value": _float(fit.p_value), "columns": len(cols),
                         "n_reference": int(fit.n_reference), "n_current": int(fit.n_current)}
    return out


def _float(x) -> Optional[float]:
    try:
        return None if x is None or not math.isfinite(float(x)) else float(x)
    except (TypeError, ValueError):
        return None
