"""Compare a span's sample with the serving model's reference sample: the DriftDetector's logic.

No TFX, Beam or TensorFlow here: the executor reads the files and hands tables in, so this is
tested on plain Arrow tables. The statistics themselves are ``driftguard.components.drift``.

What is compared
    Every feature of the baseline schema that the SERVING environment expects (the label is
    not a feature; its drift shows in the model's realized accuracy), minus ``exclude`` and
    features the schema deprecates. A feature that stopped arriving is reported through its
    missing rate (100% missing is drift, not bad input). A feature whose type changed (a
    number now arriving as text) cannot be compared value by value: it is listed under
    ``type_changes`` and counts as drift, because a model fed text for a number is broken
    whatever the values are.
"""
from __future__ import annotations

import datetime
from typing import Any, Dict, Mapping, Optional, Sequence

import pyarrow as pa

from driftguard.components.drift import detect_drift
from driftguard.components.drift.multivariate import DEFAULT_MULTIVARIATE_ALPHA
from driftguard.components.drift.report import json_safe
from driftguard.components.drift.slices import DEFAULT_MIN_ROWS
from driftguard.components.model_io import serving_features  # noqa: F401  (re-exported: what is compared)

REPORT_VERSION = 1


def _kind(data_type: pa.DataType) -> Optional[str]:
    if pa.types.is_null(data_type):
        return None
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "numeric"
    if pa.types.is_boolean(data_type) or pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "categorical"
    return "other"


def compare_span(reference: pa.Table, current: pa.Table, features: Sequence[str], *,
                 current_summary: Optional[Mapping[str, Any]] = None,
                 reference_summary: Optional[Mapping[str, Any]] = None,
                 exclude: Sequence[str] = (), feature_config: Optional[Mapping[str, Any]] = None,
                 alpha: float = 0.01, context: Optional[Mapping[str, Any]] = None,
                 slices: Sequence[Sequence[str]] = (), min_slice_rows: int = DEFAULT_MIN_ROWS,
                 slice_alpha_share: float = 0.5) -> Dict[str, Any]:
    """The DriftReport artifact's JSON: ``driftguard.components.drift`` verdicts plus what the span check adds.

    ``reference``/``current``: flat tables (one scalar column per feature). ``features``: the
    features to compare (see :func:`serving_features`). Returns a JSON-safe dict with
    ``drift_detected``, ``features``, ``multivariate``, ``classifier`` (with its
    ``explanation`` when the span drifted; the ``driftguard drift --json`` contract), and
    ``type_changes``, ``not_compared``, ``rows``, ``context``.

    ``slices`` (``drift.slices``): also compare each slice (:func:`slice_report`); the whole
    span is then tested at ``(1 - slice_alpha_share)`` of ``alpha`` and of the joint checks'
    level (the Spearman pairs and the classifier share it), the slices together at the rest,
    so the span's false-alarm rate stays within the level of the whole-span check alone
    (weighted Bonferroni).
    """
    exclude = set(exclude)
    compared: Dict[str, pa.Array] = {}
    current_cols: Dict[str, pa.Array] = {}
    type_changes: Dict[str, str] = {}
    not_compared: Dict[str, str] = {}
    for name in features:
        if name in exclude:
            not_compared[name] = "excluded by configuration"
            continue
        if name not in reference.column_names:
            not_compared[name] = "not in the reference sample"
            continue
        ref_col = reference.column(name)
        cur_col = current.column(name) if name in current.column_names else pa.nulls(current.num_rows)
        ref_kind, cur_kind = _kind(ref_col.type), _kind(cur_col.type)
        if ref_kind is None and cur_kind is None:
            not_compared[name] = "no value on either side"
            continue
        if ref_kind == "other" or cur_kind == "other":
            not_compared[name] = f"unsupported type {ref_col.type} / {cur_col.type}"
            continue
        if ref_kind and cur_kind and ref_kind != cur_kind:
            type_changes[name] = (f"{'number' if ref_kind == 'numeric' else 'text'} in the reference, "
                                  f"{'number' if cur_kind == 'numeric' else 'text'} in this span")
            continue
        if ref_kind is None or cur_kind is None:  # all missing on one side: give it the other side's type
            kind_type = (cur_col if ref_kind is None else ref_col).type
            if ref_kind is None:
                ref_col = pa.nulls(len(ref_col), kind_type)
            else:
                cur_col = pa.nulls(len(cur_col), kind_type)
        compared[name] = ref_col
        current_cols[name] = cur_col
    extra_features = sorted(set(current.column_names) - set(reference.column_names) - exclude)

    report: Dict[str, Any]
    share = float(slice_alpha_share) if slices else 0.0
    if compared:
        config = {k: v for k, v in (feature_config or {}).items() if k in compared}   # not type changes
        result = detect_drift(pa.table(compared), pa.table(current_cols), feature_config=config,
                              alpha=alpha * (1.0 - share), multivariate_alpha=DEFAULT_MULTIVARIATE_ALPHA * (1.0 - share),
                              all_missing="compare")
        report = result.to_dict()
        ranked = sorted((f for f in result.features.values() if f.drifted), key=lambda f: -f.severity)
        report["drifted_features"] = [f.name for f in ranked]
        report["table"] = result.format_table()
    else:
        report = {"drift_detected": False, "features": {}, "multivariate": None, "classifier": None,
                  "drifted_features": []}
    report["drift_detected"] = bool(report["drift_detected"] or type_changes)
    # ---- drift per slice (drift.slices): a block of its own in the report
    if slices and compared:
        report["slices"] = slice_report(reference, current, compared, current_cols, slices,
                                        feature_config=feature_config, min_rows=min_slice_rows,
                                        alpha=alpha * share, multivariate_alpha=DEFAULT_MULTIVARIATE_ALPHA * share)
        report["drift_detected"] = bool(report["drift_detected"] or report["slices"]["drift_detected"])
    report["type_changes"] = type_changes
    report["not_compared"] = not_compared
    report["new_features"] = extra_features
    report["rows"] = {"reference": dict(reference_summary or {"sampled_rows": reference.num_rows}),
                      "current": dict(current_summary or {"sampled_rows": current.num_rows})}
    report["status"] = "compared"
    report["report_version"] = REPORT_VERSION
    report["created_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    report["context"] = dict(context or {})
    return json_safe(report)


def slice_report(reference: pa.Table, current: pa.Table, compared: Mapping[str, pa.Array],
                 current_cols: Mapping[str, pa.Array], slices: Sequence[Sequence[str]], *,
                 feature_config: Optional[Mapping[str, Any]], min_rows: int, alpha: float,
                 multivariate_alpha: float) -> Dict[str, Any]:
    """The report's ``slices`` block: :func:`driftguard.components.drift.slices.detect_slice_drift`
    over the compared features plus the slicing features (taken from the samples, compared or
    not). A slicing feature in neither sample is a configuration error naming ``drift.slices``."""
    from driftguard.components.drift.slices import detect_slice_drift

    slicing = sorted({f for spec in slices for f in spec})
    unknown = [f for f in slicing if f not in reference.column_names and f not in current.column_names]
    if unknown:
        raise ValueError(f"drift.slices names {', '.join(unknown)}, a feature in neither the reference sample nor "
                         f"this span (features: {', '.join(sorted(reference.column_names))})")
    ref_cols, cur_cols = dict(compared), dict(current_cols)
    for f in slicing:
        if f in reference.column_names:
            ref_cols[f] = reference.column(f)
        if f in current.column_names:
            cur_cols[f] = current.column(f)
    config = {k: v for k, v in (feature_config or {}).items() if k in compared}
    result = detect_slice_drift(pa.table(ref_cols), pa.table(cur_cols), [list(s) for s in slices],
                                features=list(compared), alpha=alpha, multivariate_alpha=multivariate_alpha,
                                min_rows=int(min_rows), feature_config=config)
    out = result.to_dict()
    out["table"] = result.format_table()
    return out


def no_baseline_report(registry_dir: str, context: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The report of a span checked before any model was pushed: explicitly nothing to compare."""
    return {
        "status": "no_baseline", "drift_detected": False, "features": {}, "multivariate": None,
        "drifted_features": [], "type_changes": {}, "not_compared": {}, "new_features": [],
        "message": f"no model version in {registry_dir} yet, so there is no baseline profile to compare "
                   "this span with; drift is not assessed (this is not a 'no drift' verdict)",
        "report_version": REPORT_VERSION,
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "context": dict(context or {}),
    }


def headline(report: Mapping[str, Any], limit: int = 3) -> str:
    """One line for people: the verdict and the worst features with their scores."""
    if report.get("status") == "no_baseline":
        return "no baseline yet (no model pushed): drift not assessed"
    parts = []
    for name in report.get("drifted_features", [])[:limit]:
        f = report["features"][name]
        parts.append(f"{name} {f['method']}={f['score']:.3g}" if f.get("score") is not None else name)
    for name in list(report.get("type_changes", {}))[:limit]:
        parts.append(f"{name} type changed")
    mv = report.get("multivariate") or {}
    if mv.get("drifted"):
        pairs = [p for p in mv.get("pairs", []) if p.get("drifted")]
        if pairs:
            parts.append("joint " + "x".join(pairs[0].get("features", [])))
        else:
            parts.append("joint drift")
    cls = report.get("classifier") or {}
    if cls.get("drifted"):
        named = ((cls.get("explanation") or {}).get("separating_features") or [])[:3]
        parts.append(f"classifier AUC {cls['auc']:.3f}" + (f" ({', '.join(named)})" if named else ""))
    sliced = (report.get("slices") or {}).get("drifted_slices") or []
    if sliced:
        parts.append(f"slice {sliced[0]}" + (f" (+{len(sliced) - 1} more slices)" if len(sliced) > 1 else ""))
    suffix = reference_suffix(report)
    if not report.get("drift_detected"):
        return "no drift" + suffix
    more = len(report.get("drifted_features", [])) - limit
    return "DRIFT: " + ", ".join(parts) + (f" (+{more} more)" if more > 0 else "") + suffix


def reference_suffix(report: Mapping[str, Any]) -> str:
    """`` [vs the previous span 7]`` when the reference is not the training window (or fell back
    to it); "" for the default, so the usual headline stays as it was."""
    ref = report.get("reference") or {}
    if not ref or (ref.get("strategy", "training") == "training"):
        return ""
    from driftguard.components.drift_detector.reference import describe

    return f" [vs {describe(ref, report.get('context'))}]"
