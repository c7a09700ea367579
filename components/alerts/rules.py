"""Rules: a span's drift report (+ the prediction monitor's accuracies) -> alert records.

Drift rules (feature_psi, dataset_drift, multivariate_drift, skew) fire only on a report with
``status == "compared"``: a ``no_baseline`` report is "not assessed", not drift. Schema
anomalies come from ExampleValidator, which runs with or without a baseline, so
schema_anomalies fires on either. Each alert's ``dedup_key`` is
``{model}/span-{span}/{rule}[/{feature}]``: re-running a span gives the same keys.
"""
from __future__ import annotations

import datetime
import math
from typing import Any, Iterable, List, Mapping, Optional

from components.alerts.alert import Alert, utc_now_iso
from components.alerts.config import AlertsConfig, RuleConfig

# Re-exported: the interface names rules.Alert.
__all__ = ["Alert", "evaluate"]

_LIST_LIMIT = 5   # names listed in a title before "+N more"


def evaluate(config: AlertsConfig, *, model: str, span: int, drift_report: Optional[Mapping[str, Any]],
             monitor: Optional[Mapping[str, Any]] = None,
             now: Optional[datetime.datetime] = None) -> List[Alert]:
    """All alerts the enabled rules raise for one span, in rule order."""
    ctx = _Context(model=model, span=int(span), created_at=utc_now_iso(now))
    report = drift_report or {}
    compared = bool(report) and report.get("status", "compared") == "compared"
    alerts: List[Alert] = []
    for name, rule in config.rules.items():
        if not rule.enabled:
            continue
        if name in _DRIFT_RULES:
            if compared:
                alerts.extend(_DRIFT_RULES[name](ctx, rule, report))
        elif name == "schema_anomalies":
            alerts.extend(_schema_anomalies(ctx, rule, report))
        elif name == "accuracy_drop":
            alerts.extend(_accuracy_drop(ctx, rule, monitor, "realized_accuracy", "realized"))
        elif name == "estimated_accuracy_drop":
            alerts.extend(_accuracy_drop(ctx, rule, monitor, "estimated_accuracy", "estimated"))
        elif name == "model_cannot_score":
            if monitor and monitor.get("status") == "cannot_score":
                alerts.append(ctx.alert(rule, "the serving model cannot score this span",
                                        str(monitor.get("message", "")),
                                        values={"model_version": monitor.get("model_version")}))
    return alerts


class _Context:
    def __init__(self, model: str, span: int, created_at: str):
        self.model, self.span, self.created_at = model, span, created_at

    def alert(self, rule: RuleConfig, title: str, summary: str, feature: Optional[str] = None,
              values: Optional[Mapping[str, Any]] = None) -> Alert:
        labels = {"model": self.model, "span": str(self.span), "rule": rule.name}
        key = f"{self.model}/span-{self.span}/{rule.name}"
        if feature is not None:
            labels["feature"] = feature
            key += f"/{feature}"
        return Alert(rule=rule.name, severity=rule.severity, title=f"{self.model} span {self.span}: {title}",
                     summary=summary, labels=labels, dedup_key=key, created_at=self.created_at,
                     values=values or {})


def _feature_psi(ctx: _Context, rule: RuleConfig, report: Mapping[str, Any]) -> List[Alert]:
    hits = []
    for name, f in (report.get("features") or {}).items():
        psi = _psi(f)
        if psi is not None and psi > rule.threshold:
            hits.append((psi, name, f))
    out = []
    for psi, name, f in sorted(hits, key=lambda h: (-h[0], h[1])):
        lines = [f"Population stability index of {name} ({f.get('kind', 'feature')}) is {psi:.3g}, "
                 f"above the alert threshold {rule.threshold:g}."]
        if f.get("direction"):
            lines.append(f"Direction: {f['direction']}.")
        if f.get("reasons"):
            lines.append(f"Drift checks that fired: {', '.join(map(str, f['reasons']))}.")
        out.append(ctx.alert(rule, f"PSI {psi:.2f} > {rule.threshold:g} on {name}", "\n".join(lines),
                             feature=name, values={"psi": psi, "threshold": rule.threshold,
                                                   "kind": f.get("kind")}))
    return out


def _psi(feature: Mapping[str, Any]) -> Optional[float]:
    """The feature's PSI: ``scores.psi`` (DriftDetector), else ``score`` when the method is PSI
    (the ``driftguard drift --json`` shape). None when absent or not finite."""
    value = (feature.get("scores") or {}).get("psi")
    if value is None and feature.get("method") == "psi":
        value = feature.get("score")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _dataset_drift(ctx: _Context, rule: RuleConfig, report: Mapping[str, Any]) -> List[Alert]:
    if not report.get("drift_detected"):
        return []
    features = report.get("features") or {}
    drifted = list(report.get("drifted_features") or [])
    changed = dict(report.get("type_changes") or {})
    lines = []
    for name in drifted:
        f = features.get(name, {})
        score = f.get("score")
        score_text = f" {f.get('method')}={score:.3g}" if _finite(score) else ""
        detail = f" ({f['direction']})" if f.get("direction") else ""
        lines.append(f"- {name}:{score_text}{detail}")
    for name, text in changed.items():
        lines.append(f"- {name}: type changed: {text}")
    mv = report.get("multivariate") or {}
    if mv.get("drifted"):
        lines.append("- joint distribution drifted (see multivariate_drift)")
    names = drifted + [n for n in changed if n not in drifted]
    what = f"drift in {len(names)} feature{'s' if len(names) != 1 else ''}" if names else "joint drift"
    title = f"{what}{_list_suffix(names)}"
    summary = "Dataset drift detected against the serving model's training profile.\n" + "\n".join(lines)
    return [ctx.alert(rule, title, summary, values={"drifted_features": drifted, "type_changes": changed})]


def _multivariate_drift(ctx: _Context, rule: RuleConfig, report: Mapping[str, Any]) -> List[Alert]:
    mv = report.get("multivariate") or {}
    if not mv.get("drifted"):
        return []
    pairs = [p for p in mv.get("pairs") or [] if p.get("drifted")]
    pairs.sort(key=lambda p: -abs(p.get("delta") or 0.0))
    names = [" x ".join(map(str, p.get("features", []))) for p in pairs]
    lines = [f"Correlation structure changed ({mv.get('method', 'multivariate')} check, "
             f"score {_fmt(mv.get('score'), '.3g')}, threshold {_fmt(mv.get('threshold'), '.3g')})."]
    for p, name in zip(pairs[:10], names):
        lines.append(f"- {name}: delta {_fmt(p.get('delta'), '+.3f')}")
    if len(pairs) > 10:
        lines.append(f"- ... {len(pairs) - 10} more pairs")
    title = (f"joint drift in {len(pairs)} feature pair{'s' if len(pairs) != 1 else ''}{_list_suffix(names, 3)}"
             if pairs else "joint drift")
    return [ctx.alert(rule, title, "\n".join(lines),
                      values={"score": mv.get("score"), "pairs": [list(p.get("features", [])) for p in pairs]})]


def _schema_anomalies(ctx: _Context, rule: RuleConfig, report: Mapping[str, Any]) -> List[Alert]:
    anomalies = list(report.get("anomalies") or [])
    if not anomalies:
        return []
    names = [f"{a.get('feature', '?')}: {a.get('short', 'anomaly')}" for a in anomalies]
    lines = [f"ExampleValidator found {len(anomalies)} schema anomal{'ies' if len(anomalies) != 1 else 'y'}:"]
    for a in anomalies:
        lines.append(f"- {a.get('feature', '?')} [{a.get('severity', '?')}] {a.get('short', '')}: "
                     f"{a.get('description', '')}".rstrip(": "))
    title = f"{len(anomalies)} schema anomal{'ies' if len(anomalies) != 1 else 'y'}{_list_suffix(names, 3)}"
    return [ctx.alert(rule, title, "\n".join(lines),
                      values={"features": sorted({str(a.get("feature")) for a in anomalies})})]


def _skew(ctx: _Context, rule: RuleConfig, report: Mapping[str, Any]) -> List[Alert]:
    skew = {k: v for k, v in (report.get("skew") or {}).items() if v}
    if not skew:
        return []
    lines = ["Training/serving skew (the schema's skew comparators):"]
    for name, reasons in skew.items():
        for r in reasons:
            lines.append(f"- {name}: {r.get('type', '?')}: {r.get('description', '')}")
    names = list(skew)
    title = f"training/serving skew in {len(names)} feature{'s' if len(names) != 1 else ''}{_list_suffix(names)}"
    return [ctx.alert(rule, title, "\n".join(lines), values={"features": names})]


def _accuracy_drop(ctx: _Context, rule: RuleConfig, monitor: Optional[Mapping[str, Any]], key: str,
                   what: str) -> List[Alert]:
    if not monitor:
        return []
    baseline, current = monitor.get("baseline_accuracy"), monitor.get(key)
    if key == "estimated_accuracy" and _finite(monitor.get("estimated_accuracy_reference")):
        # like with like: the estimator on the span vs the same estimator on the reference sample
        baseline = monitor["estimated_accuracy_reference"]
    if not _finite(baseline) or not _finite(current) or baseline <= 0:
        return []
    floor = baseline * (1.0 - rule.threshold)
    if not current < floor:
        return []
    drop = (baseline - current) / baseline
    summary = (f"The serving model's {what} accuracy on this span is {current:.3f}, {drop:.1%} below its "
               f"baseline {baseline:.3f} (alert when more than {rule.threshold:.1%} below, i.e. < {floor:.3f}).")
    return [ctx.alert(rule, f"{what} accuracy {current:.3f} is {drop:.1%} below baseline {baseline:.3f}",
                      summary, values={"baseline_accuracy": baseline, key: current,
                                       "relative_drop": drop, "threshold": rule.threshold})]


def _fmt(x: Any, spec: str) -> str:
    return format(x, spec) if _finite(x) else "n/a"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _list_suffix(names: Iterable[str], limit: int = _LIST_LIMIT) -> str:
    names = list(names)
    if not names:
        return ""
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return f" ({shown}{f', +{more} more' if more > 0 else ''})"


_DRIFT_RULES = {"feature_psi": _feature_psi, "dataset_drift": _dataset_drift,
                "multivariate_drift": _multivariate_drift, "skew": _skew}
