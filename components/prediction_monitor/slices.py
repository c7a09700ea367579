"""The serving model's realized performance per slice (``drift.slices``), with labels.

Pure (numpy, pyarrow, scipy.stats): no TFX. For each value of a slicing spec with at least
``min_rows`` labelled rows in the span *and* among the model's held-out reference rows, the
watched metric on the span's slice is set beside the same metric on the held-out rows of the
same slice, and a one-sided test asks whether the model's errors grew there:

- classification (binary, multiclass): Fisher's exact test on the 2x2 table of wrong/right
  predictions, span vs held-out reference (``alternative="greater"``: more errors now);
- regression: the Mann-Whitney U test on the absolute errors (``alternative="greater"``).

The test is on the errors whatever the watched metric is (AUC has no exact per-slice test; a
rise in errors is what a drop in any of them means for the operator). The p-values of the
``K`` slices tested are Bonferroni-adjusted (``min(1, K p)``), so the chance that any slice is
called worse by chance is at most ``alpha`` under any dependence between slices. A slice
counts as worse when its adjusted p-value is at most ``alpha``; the ``slice_metric_drop``
alert rule also needs the metric to be worse by more than its ``threshold`` (relative), as
``metric_drop`` does for the whole span.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from driftguard.components import tasks as tasks_lib
from driftguard.components.drift.slices import DEFAULT_MIN_ROWS, slice_keys, slice_name
from driftguard.components.prediction_monitor.performance import realized

def _keys(table, spec: Sequence[str]) -> Optional[List[Optional[tuple]]]:
    """Each row's slice key, or None when the table lacks a slicing feature."""
    if any(f not in table.column_names for f in spec):
        return None
    return slice_keys(table, spec)


def _name(spec: Sequence[str], key: tuple) -> str:
    return slice_name(dict(zip(spec, key)))


def _errors(task: str, value: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Per row: 1/0 wrong/right (classification), or the absolute error (regression)."""
    if task == tasks_lib.REGRESSION:
        return np.abs(value - label)
    if task == tasks_lib.BINARY:
        return ((value > 0.5) != (label > 0.5)).astype(float)
    return (value != label).astype(float)


def _p_worse(task: str, cur_err: np.ndarray, ref_err: np.ndarray) -> float:
    """One-sided p-value that the span's errors are larger than the reference's."""
    from scipy import stats

    if task == tasks_lib.REGRESSION:
        return float(stats.mannwhitneyu(cur_err, ref_err, alternative="greater").pvalue)
    a, b = int(cur_err.sum()), int(ref_err.sum())
    table = [[a, cur_err.size - a], [b, ref_err.size - b]]
    return float(stats.fisher_exact(table, alternative="greater")[1])


def slice_performance(task: str, metric: str, slices: Sequence[Sequence[str]], *, reference_rows, ref_value,
                      ref_label, held_out, current_rows, cur_value, cur_label, min_rows: int = DEFAULT_MIN_ROWS,
                      alpha: float = 0.01) -> Dict[str, Any]:
    """The monitor report's ``performance_slices`` block.

    ``reference_rows``/``current_rows``: pyarrow Tables of raw rows (the slicing features);
    ``ref_value``/``cur_value``: the predictions as ``Predictions.value`` reads them;
    ``ref_label``/``cur_label``: labels (NaN: unknown); ``held_out``: the reference rows the
    model never trained on (its baseline). Returns ``{metric, alpha, min_rows, tested,
    alpha_per_slice, test, worse_slices, slices: [{name, key, rows, realized, baseline,
    relative_change, p_value, p_value_adjusted, worse}], skipped: [{name, reason}]}``.

    >>> import pyarrow as pa
    >>> rng = np.random.default_rng(0)
    >>> seg = rng.choice(["a", "b"], 2000)
    >>> y = rng.integers(0, 2, 2000).astype(float)
    >>> good = np.where(rng.random(2000) < 0.9, y, 1 - y)             # 90 % right
    >>> bad = np.where((seg == "a") & (rng.random(2000) < 0.3), 1 - good, good)   # "a" gets worse
    >>> out = slice_performance("binary", "accuracy", [["seg"]], reference_rows=pa.table({"seg": seg}),
    ...     ref_value=good, ref_label=y, held_out=np.ones(2000, bool), current_rows=pa.table({"seg": seg}),
    ...     cur_value=bad, cur_label=y)
    >>> out["worse_slices"], out["tested"]
    (['seg=a'], 2)
    """
    ref_value, cur_value = np.asarray(ref_value, float), np.asarray(cur_value, float)
    ref_label, cur_label = np.asarray(ref_label, float), np.asarray(cur_label, float)
    held_out = np.asarray(held_out, bool)
    ref_ok = held_out & np.isfinite(ref_value) & np.isfinite(ref_label)
    cur_ok = np.isfinite(cur_value) & np.isfinite(cur_label)
    test = "Mann-Whitney U on absolute errors" if task == tasks_lib.REGRESSION else "Fisher's exact on errors"
    candidates, skipped = [], []
    for spec in slices:
        spec = tuple(spec)
        ref_keys, cur_keys = _keys(reference_rows, spec), _keys(current_rows, spec)
        if ref_keys is None or cur_keys is None:
            side = "reference sample" if ref_keys is None else "span"
            skipped.append({"name": ", ".join(spec), "reason": f"not in the {side}"})
            continue
        ref_groups: Dict[tuple, List[int]] = {}
        cur_groups: Dict[tuple, List[int]] = {}
        for i, k in enumerate(ref_keys):
            if k is not None and ref_ok[i]:
                ref_groups.setdefault(k, []).append(i)
        for i, k in enumerate(cur_keys):
            if k is not None and cur_ok[i]:
                cur_groups.setdefault(k, []).append(i)
        for k in sorted(set(ref_groups) | set(cur_groups), key=lambda k: (-len(cur_groups.get(k, ())), str(k))):
            n_ref, n_cur = len(ref_groups.get(k, ())), len(cur_groups.get(k, ()))
            if n_ref < min_rows or n_cur < min_rows:
                skipped.append({"name": _name(spec, k), "reason": f"{n_ref} labelled held-out reference rows, "
                                                                 f"{n_cur} labelled rows in the span "
                                                                 f"(fewer than {min_rows} on a side)"})
                continue
            candidates.append((spec, k, np.asarray(ref_groups[k]), np.asarray(cur_groups[k])))
    k_tested = len(candidates)
    rows: List[Dict[str, Any]] = []
    for spec, k, ri, ci in candidates:
        now = realized(task, cur_value[ci], cur_label[ci]).get(metric)
        base = realized(task, ref_value[ri], ref_label[ri]).get(metric)
        p = _p_worse(task, _errors(task, cur_value[ci], cur_label[ci]), _errors(task, ref_value[ri], ref_label[ri]))
        p_adj = min(1.0, p * k_tested)
        change = None if now is None or base is None or not base else (now - base) / abs(base)
        rows.append({"name": _name(spec, k), "key": {f: str(v) for f, v in zip(spec, k)},
                     "rows": {"reference_held_out": int(ri.size), "current": int(ci.size)},
                     "realized": now, "baseline": base, "relative_change": change,
                     "p_value": p, "p_value_adjusted": p_adj, "worse": bool(p_adj <= alpha)})
    return {"metric": metric, "alpha": float(alpha), "min_rows": int(min_rows), "tested": k_tested,
            "alpha_per_slice": float(alpha) / k_tested if k_tested else None, "test": test,
            "worse_slices": [r["name"] for r in sorted(rows, key=lambda r: r["p_value"]) if r["worse"]],
            "slices": rows, "skipped": skipped}
