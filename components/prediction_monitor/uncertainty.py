"""How far a label-free estimate may be from the realized value it predicts: the pieces of its interval.

An estimate of a span's metric (:mod:`.performance`: CBPE, DLE) is wrong for two reasons:

(a) **sampling**: even with a perfect calibration the realized metric is a random draw: the
    span's labels are. CBPE's accuracy is a sum of independent Bernoulli(p_i), ``p_i`` the
    calibrated probability that row ``i`` is right: variance ``sum p_i (1 - p_i) / n^2``
    (:func:`bernoulli_mean_variance`). Macro-F1 and ROC AUC have no such closed form: labels
    are drawn from the calibrated probabilities (seeded Monte Carlo, :func:`monte_carlo_sd`)
    and the metric's standard deviation over the draws is taken.
(b) **calibration**: the calibrators (or DLE's error models) are fitted on a finite held-out
    sample; a bootstrap of that sample (refit, re-estimate) gives the estimate's own standard
    deviation. The estimators do the refits; :func:`combined_se` adds the two.

The interval is normal: ``value +- z * sqrt(var_a + var_b)`` (:func:`normal_interval`), cut to
the metric's range. Arrays in, numbers out; no TensorFlow.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Callable, List, Optional, Sequence

import numpy as np

DEFAULT_CONFIDENCE = 0.95
MONTE_CARLO_DRAWS = 200


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (0.95 -> 1.96)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def bernoulli_mean_variance(p) -> float:
    """Variance of the mean of independent Bernoulli(p_i): ``sum p_i (1 - p_i) / n^2``."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    return float(np.sum(p * (1.0 - p)) / p.size ** 2) if p.size else float("nan")


def draw_labels(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One label per row drawn from its class probabilities ``(n, k)`` (rows need not sum to 1:
    they are normalised; a row of zeros draws uniformly)."""
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    p = np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])
    cum = np.cumsum(p, axis=1)
    u = rng.random(p.shape[0])[:, None] * cum[:, -1:]
    return np.minimum((u > cum).sum(axis=1), p.shape[1] - 1)


def monte_carlo_sd(metric: Callable[[np.ndarray], float], probabilities: np.ndarray, *,
                   draws: int = MONTE_CARLO_DRAWS, seed: int = 0) -> float:
    """Standard deviation of ``metric(labels)`` over ``draws`` seeded draws of the labels from
    ``probabilities`` (:func:`draw_labels`); NaN values of the metric are left out."""
    rng = np.random.default_rng(seed)
    values = [metric(draw_labels(probabilities, rng)) for _ in range(int(draws))]
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    return float(values.std(ddof=1)) if values.size > 1 else float("nan")


def macro_f1(predicted: np.ndarray, label: np.ndarray, k: int) -> float:
    """Macro-F1 over the classes present (as label or prediction), as
    ``sklearn.metrics.f1_score(average="macro")`` computes it, from one bincount (the Monte
    Carlo loop calls it hundreds of times)."""
    counts = np.bincount(predicted.astype(int) * k + label.astype(int), minlength=k * k).reshape(k, k)
    tp = np.diag(counts).astype(float)
    pred_n, true_n = counts.sum(axis=1), counts.sum(axis=0)
    present = (pred_n + true_n) > 0
    denom = pred_n + true_n
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return float(f1[present].mean()) if present.any() else float("nan")


def rank_auc(ranks: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC from the scores' ranks (``scipy.stats.rankdata``, ties averaged) and a 0/1 label:
    the Mann-Whitney U over ``n_pos * n_neg``; NaN with one class only."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def bootstrap_sd(values: Sequence[Optional[float]]) -> float:
    """Standard deviation of bootstrap replicates (None and NaN left out); NaN under 2."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    return float(v.std(ddof=1)) if v.size > 1 else float("nan")


def combined_se(sampling_sd: float, calibration_sd: float) -> float:
    """``sqrt(var_a + var_b)``; a missing (NaN) part counts as 0 unless both are."""
    parts: List[float] = [x for x in (sampling_sd, calibration_sd) if x is not None and math.isfinite(x)]
    return float(math.sqrt(sum(x * x for x in parts))) if parts else float("nan")


def normal_interval(value: float, se: float, confidence: float = DEFAULT_CONFIDENCE,
                    bounds=(-math.inf, math.inf)) -> Optional[List[float]]:
    """``[value - z se, value + z se]`` cut to ``bounds``; None without a finite value and se."""
    if value is None or se is None or not (math.isfinite(value) and math.isfinite(se)):
        return None
    half = z_value(confidence) * se
    return [float(max(bounds[0], value - half)), float(min(bounds[1], value + half))]
