"""Permutation importance of a model version's features, computed once when the version is pushed.

For a feature ``j``, shuffle its column across the labelled reference rows (breaking its link
with the label and the other features, keeping its distribution), predict again, and measure
how much worse the task's metric gets; repeat with ``n_repeats`` shuffles::

    importance_j = mean_r [ M(original) - M(column j shuffled, repeat r) ]   (higher is better)
    importance_j = mean_r [ M(column j shuffled, repeat r) - M(original) ]   (lower is better)

so a positive importance is "the model is this much worse without the feature", in the
metric's own unit (accuracy points, minutes of MAE), for every metric of the task at once (one
set of predictions per shuffle serves them all). The standard deviation over the repeats is its
uncertainty; a feature *matters* when its mean is more than two standard errors above zero
(:func:`matters`). Breiman (2001) introduced it for random forests; Fisher, Rudin and Dominici
(2019, "model reliance") study it for any model; scikit-learn's
``sklearn.inspection.permutation_importance`` is the same idea for estimators with ``predict``.

It runs on the profile's labelled reference rows: the held-out rows (the eval split of the
training window) when the sample has them, else all of them (training rows: importances then
include what the model overfitted). The model is called through ``predict``, a callable from a
table to the monitored value per row, so this module needs no TensorFlow.

The result is a plain dict, the content of ``profile/feature_importance.json``
(``registry_pusher.registry.IMPORTANCE_FILE``; ``model_io.load_baseline`` reads it back as
``Baseline.importance``); :func:`importance_of` picks one metric's importances.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa

from driftguard.components import tasks as tasks_lib

DEFAULT_REPEATS = 5
DEFAULT_MAX_ROWS = 2_000       # labelled rows shuffled (a seeded subsample beyond that)
MIN_ROWS = 50                  # fewer labelled rows: no importance (the note says why)
METHOD = "permutation importance (mean metric loss over shuffles of the feature's column)"


def permutation_importance(table: pa.Table, label: np.ndarray, predict: Callable[[pa.Table], np.ndarray],
                           task: str, features: Sequence[str], *, n_repeats: int = DEFAULT_REPEATS,
                           max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                           rows_note: str = "") -> Dict[str, Any]:
    """Permutation importance of ``features`` for every metric of ``task``.

    ``table``: the labelled rows (the model's raw input columns); ``label``: their labels as
    :func:`driftguard.components.model_io.encode_labels` gives them (NaN: unknown, left out);
    ``predict``: table -> the monitored value per row (the positive-class probability, the
    class index, the predicted value); ``features``: the columns to shuffle (a name missing
    from ``table`` is skipped and listed). ``rows_note`` says which rows these are.

    Returns ``{"status": "computed", "method", "task", "metrics": {metric: {"higher_is_better",
    "baseline", "features": {name: {"mean", "std", "drops"}}}}, "rows", "repeats", "seed",
    "rows_note", "skipped"}``, or ``{"status": "not_computed", "note": why}`` when fewer than
    :data:`MIN_ROWS` rows have a label.
    """
    if task not in tasks_lib.TASKS:
        raise ValueError(f"task must be one of {', '.join(tasks_lib.TASKS)}, got {task!r}")
    if n_repeats < 2:
        raise ValueError(f"n_repeats must be at least 2 (the spread of the repeats is the uncertainty), "
                         f"got {n_repeats}")
    label = np.asarray(label, dtype=float)
    if label.size != table.num_rows:
        raise ValueError(f"label: {label.size} values for a table of {table.num_rows} rows")
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(np.isfinite(label))
    if keep.size < MIN_ROWS:
        return {"status": "not_computed", "method": METHOD, "task": task,
                "note": f"no importance: {keep.size} labelled reference rows, at least {MIN_ROWS} needed"}
    if keep.size > max_rows:
        keep = np.sort(rng.choice(keep, max_rows, replace=False))
    rows = table.take(pa.array(keep))
    y = label[keep]
    base_value = np.asarray(predict(rows), dtype=float)
    if base_value.shape != (rows.num_rows,):
        raise ValueError(f"predict returned {base_value.size} values for {rows.num_rows} rows")
    from driftguard.components.prediction_monitor.performance import realized

    base = realized(task, base_value, y)
    higher = tasks_lib.METRICS[task]
    metrics = {m: v for m, v in base.items() if v is not None and math.isfinite(v)}
    present = [f for f in features if f in rows.column_names]
    drops: Dict[str, Dict[str, list]] = {m: {f: [] for f in present} for m in metrics}
    for name in present:
        index = rows.column_names.index(name)
        column = rows.column(name)
        for _ in range(n_repeats):
            shuffled = rows.set_column(index, name, column.take(pa.array(rng.permutation(rows.num_rows))))
            scores = realized(task, np.asarray(predict(shuffled), dtype=float), y)
            for m in metrics:
                s = scores.get(m)
                if s is None:
                    continue
                drops[m][name].append(float(metrics[m] - s) if higher[m] else float(s - metrics[m]))
    out_metrics = {}
    for m in metrics:
        feats = {}
        for name, values in drops[m].items():
            arr = np.asarray(values, dtype=float)
            feats[name] = {"mean": float(arr.mean()) if arr.size else 0.0,
                           "std": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
                           "drops": [round(v, 6) for v in values]}
        out_metrics[m] = {"higher_is_better": bool(higher[m]), "baseline": float(metrics[m]), "features": feats}
    return {"status": "computed", "method": METHOD, "task": task, "metrics": out_metrics,
            "rows": int(rows.num_rows), "repeats": int(n_repeats), "seed": int(seed), "rows_note": rows_note,
            "skipped": [f for f in features if f not in rows.column_names]}


def importance_of(importance: Optional[Mapping[str, Any]], metric: Optional[str] = None
                  ) -> Optional[Dict[str, Any]]:
    """One metric's part of a ``feature_importance.json`` (``metric`` None: the file's
    ``primary`` metric, else its first), with the metric's name under ``"metric"``; None when
    the version has no importance, or none for ``metric``."""
    if not importance or importance.get("status") != "computed":
        return None
    metrics = importance.get("metrics") or {}
    if metric is not None:
        name = metric if metric in metrics else None
    else:
        name = importance.get("primary") if importance.get("primary") in metrics else next(iter(metrics), None)
    if name is None:
        return None
    return {"metric": name, "repeats": importance.get("repeats"), "rows": importance.get("rows"),
            **metrics[name]}


def matters(entry: Mapping[str, Any], repeats: int) -> bool:
    """A feature matters to the model when its importance is more than two standard errors
    (over the repeats) above zero, and above zero at all for a model that ignores noise."""
    mean, std = float(entry.get("mean") or 0.0), float(entry.get("std") or 0.0)
    return mean > 0 and mean > 2.0 * std / math.sqrt(max(int(repeats or 1), 1))
