"""Rules: a span's drift report (+ the prediction monitor's accuracies) -> alert records.

Drift rules (feature_psi, dataset_drift, multivariate_drift, skew) fire only on a report with
``status == "compared"``: a ``no_baseline`` report is "not assessed", not drift. Schema
anomalies come from ExampleValidator, which runs with or without a baseline, so
schema_anomalies fires on either. Each alert's ``dedup_key`` is
``{model}/span-{span}/{rule}[/{feature}]``: re-running a span gives the same keys.

``feature_psi`` fires on a feature whose PSI is above the threshold *and* whose drift test
fired (the report's ``drifted``; a report without that verdict, such as a hand-made one, is
taken at its PSI): on a span of a few hundred rows PSI alone is noise (0.29 between two years of
120 penguins whose Cliff's delta is 0.09), and an operator must not be paged for noise.

Live monitoring (``driftguard monitor``) evaluates the same rules on windows of traffic with
``scope`` instead of ``span`` (e.g. ``scope="live/w1000-1999"``; keys
``{model}/{scope}/{rule}[/{feature}]``). A window is small, so there a threshold alone would
fire on noise: the metric rules need the window's ``*_significant`` flag. The live-only rules read what only
the monitor reports: ``prediction_drift`` (``monitor["prediction"]["drifted"]``) and the
streaming detectors' ``alarms`` (``stream_change``; ``error_rate_change`` for an error rate
that rose).
"""
from __future__ import annotations

import datetime
import math
from typing import Any, Iterable, List, Mapping, Optional, Sequence

from driftguard.components import tasks as tasks_lib
from driftguard.components.alerts.alert import Alert, utc_now_iso
from driftguard.components.alerts.config import AlertsConfig, RuleConfig

# Re-exported: the interface names rules.Alert.
__all__ = ["Alert", "evaluate"]

_LIST_LIMIT = 5   # names listed in a title before "+N more"


def evaluate(config: AlertsConfig, *, model: str, span: Optional[int] = None,
             drift_report: Optional[Mapping[str, Any]], monitor: Optional[Mapping[str, Any]] = None,
             now: Optional[datetime.datetime] = None, scope: Optional[str] = None,
             alarms: Optional[Sequence[Mapping[str, Any]]] = None, span_label: Optional[str] = None) -> List[Alert]:
    """All alerts the enabled rules raise for one span (or one live ``scope``), in rule order.
    ``span_label``: the span as people write it (``2013-05`` for calendar spans; default the number)."""
    if (span is None) == (scope is None):
        raise ValueError("evaluate needs exactly one of span (span check) and scope (live monitoring)")
    label = None if span is None else (span_label or str(int(span)))
    ctx = _Context(model=model, span=label, created_at=utc_now_iso(now), scope=scope)
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
        elif name == "metric_drop":
            alerts.extend(_metric_drop(ctx, rule, monitor, estimated=False))
        elif name == "estimated_metric_drop":
            alerts.extend(_metric_drop(ctx, rule, monitor, estimated=True))
        elif name == "slice_metric_drop":
            alerts.extend(_slice_metric_drop(ctx, rule, monitor))
        elif name == "prediction_drift":
            alerts.extend(_prediction_drift(ctx, rule, monitor))
        elif name in ("stream_change", "error_rate_change"):
            alerts.extend(_stream_alarms(ctx, rule, alarms or ()))
        elif name == "model_cannot_score":
            if monitor and monitor.get("status") == "cannot_score":
                alerts.append(ctx.alert(rule, "the serving model cannot score this span",
                                        str(monitor.get("message", "")),
                                        values={"model_version": monitor.get("model_version")}))
    return alerts


class _Context:
    def __init__(self, model: str, span: Optional[str], created_at: str, scope: Optional[str] = None):
        self.model, self.span, self.created_at, self.scope = model, span, created_at, scope

    @property
    def live(self) -> bool:
        return self.scope is not None

    def alert(self, rule: RuleConfig, title: str, summary: str, feature: Optional[str] = None,
              values: Optional[Mapping[str, Any]] = None, slice_name: Optional[str] = None) -> Alert:
        if self.live:
            labels = {"model": self.model, "scope": str(self.scope), "rule": rule.name}
            key = f"{self.model}/{self.scope}/{rule.name}"
            where = f"{self.model} {self.scope}"
        else:
            labels = {"model": self.model, "span": self.span, "rule": rule.name}
            key = f"{self.model}/span-{self.span}/{rule.name}"
            where = f"{self.model} span {self.span}"
        if feature is not None:
            labels["feature"] = feature
            key += f"/{feature}"
        if slice_name is not None:
            labels["slice"] = slice_name
            key += f"/{slice_name}"
        return Alert(rule=rule.name, severity=rule.severity, title=f"{where}: {title}",
                     summary=summary, labels=labels, dedup_key=key, created_at=self.created_at,
                     values=values or {})


def _feature_psi(ctx: _Context, rule: RuleConfig, report: Mapping[str, Any]) -> List[Alert]:
    hits = []
    for name, f in (report.get("features") or {}).items():
        psi = _psi(f)
        if not f.get("drifted", True):     # the drift test must agree: PSI alone is noise on a small span
            continue
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
    sliced = list((report.get("slices") or {}).get("drifted_slices") or [])
    for name in sliced:
        lines.append(f"- slice {name} drifted (see slice_drift)")
    cls = report.get("classifier") or {}
    if cls.get("drifted"):
        explanation = cls.get("explanation") or {}
        named = explanation.get("separating_features") or []
        lines.append(f"- a domain classifier tells the rows apart (AUC {_fmt(cls.get('auc'), '.3f')})"
                     + (f", mostly by {', '.join(named[:5])}" if named else ""))
        for segment in (explanation.get("segments") or [])[:3]:
            lines.append(f"  - {segment.get('text')}")
    names = drifted + [n for n in changed if n not in drifted]
    what = (f"drift in {len(names)} feature{'s' if len(names) != 1 else ''}" if names
            else "joint drift" if mv.get("drifted") or not sliced
            else f"drift in {len(sliced)} slice{'s' if len(sliced) != 1 else ''}")
    if not names and sliced:
        names = sliced
    title = f"{what}{_list_suffix(names)}"
    summary = f"Dataset drift detected against {_reference_text(report)}.\n" + "\n".join(lines)
    return [ctx.alert(rule, title, summary, values={"drifted_features": drifted, "type_changes": changed})]


def _reference_text(report: Mapping[str, Any]) -> str:
    ref = report.get("reference") or {}
    if not ref or ref.get("used", "training") == "training":
        return "the serving model's training profile"
    from driftguard.components.drift_detector.reference import describe

    return describe(ref, report.get("context"))


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


def _metric_drop(ctx: _Context, rule: RuleConfig, monitor: Optional[Mapping[str, Any]], estimated: bool) -> List[Alert]:
    """The rule's metric (``rule.metric``) worse than its baseline by more than ``rule.threshold``
    (relative). Realized: the span's (or window's) metric against the serving model's metric on
    held-out reference rows; estimated: the estimate on the span against the same estimator on
    the reference (like with like), and, when the estimate has its interval
    (``performance.estimated_interval``), only when the whole interval is worse than the line
    (its upper end for a metric where higher is better, its lower end for an error)."""
    perf = (monitor or {}).get("performance") or {}
    metric = rule.metric or perf.get("metric")
    task = perf.get("task") or (monitor or {}).get("task") or "binary"
    if not metric or metric not in tasks_lib.METRICS.get(task, {}):
        return []
    what = "estimated" if estimated else "realized"
    current = (perf.get(what) or {}).get(metric)
    baseline = (perf.get("estimated_reference" if estimated else "baseline") or {}).get(metric)
    if not _finite(baseline) or not _finite(current):
        return []
    if not perf.get(f"{what}_significant", True):    # live windows carry a test's verdict
        return []
    worse = tasks_lib.worse_by(task, metric, current, baseline)
    if not worse > rule.threshold:
        return []
    higher = tasks_lib.METRICS[task][metric]
    # an estimate fires only when its whole interval is past the threshold line: its best end too
    interval = (perf.get("estimated_interval") or {}).get(metric) if estimated else None
    interval = interval if interval and all(_finite(b) for b in interval) else None
    if interval is not None:
        best = interval[1] if higher else interval[0]
        if not tasks_lib.worse_by(task, metric, best, baseline) > rule.threshold:
            return []
    title_metric = tasks_lib.METRIC_TITLES.get(metric, metric)
    direction = "below" if higher else "above"
    limit = baseline * (1.0 - rule.threshold) if higher else baseline * (1.0 + rule.threshold)
    shown = f"{current:.4g}" + (f" [{interval[0]:.4g}, {interval[1]:.4g}]" if interval else "")
    summary = (f"The serving model's {what} {title_metric} on this {'window' if ctx.live else 'span'} is "
               f"{shown}, {worse:.1%} worse than its baseline {baseline:.4g} (alert when more than "
               f"{rule.threshold:.1%} worse, i.e. {direction} {limit:.4g}"
               + (f"; the whole 95 % interval is {direction} it" if interval else "") + ").")
    if estimated and perf.get("estimator"):
        summary += f" Estimated without labels by {perf['estimator']}."
    values = {"metric": metric, "baseline": baseline, what: current, "relative_change": worse,
              "threshold": rule.threshold}
    if interval:
        values["interval"] = list(interval)
    return [ctx.alert(rule, f"{what} {title_metric} {shown} is {worse:.1%} worse than baseline {baseline:.4g}",
                      summary, values=values)]


def _prediction_drift(ctx: _Context, rule: RuleConfig, monitor: Optional[Mapping[str, Any]]) -> List[Alert]:
    parts = [(what, (monitor or {}).get(what) or {}) for what in ("prediction", "confidence")]
    drifted = [(what, d) for what, d in parts if d.get("drifted")]
    if not drifted:
        return []
    lines = []
    for what, d in drifted:
        lines.append(f"- {what}: PSI {_fmt(d.get('psi'), '.3g')}, adjusted p-value {_fmt(d.get('p_value'), '.2g')}"
                     f"{', ' + d['direction'] if d.get('direction') else ''}")
    names = [w for w, _ in drifted]
    return [ctx.alert(rule, f"the model's {' and '.join(names)} distribution drifted",
                      "The serving model's outputs on this traffic differ from its outputs on the reference "
                      "sample:\n" + "\n".join(lines),
                      values={w: {"psi": d.get("psi"), "p_value": d.get("p_value")} for w, d in drifted})]


def _stream_alarms(ctx: _Context, rule: RuleConfig, alarms: Sequence[Mapping[str, Any]]) -> List[Alert]:
    out = []
    for a in alarms:
        stream = str(a.get("name", "?"))
        is_error = stream == "error"
        if rule.name == "error_rate_change" and not (is_error and a.get("direction") == "up"):
            continue
        if rule.name == "stream_change" and is_error:
            continue
        before, after = a.get("mean_before"), a.get("mean_after_estimate")
        what = "error rate" if is_error else f"{stream} ({a.get('transform', 'mean')})"
        summary = (f"Streaming change detector ({a.get('detector', 'CUSUM')}) on {what}: mean "
                   f"{_fmt(before, '.4g')} -> {_fmt(after, '.4g')} ({a.get('direction')}), statistic "
                   f"{_fmt(a.get('statistic'), '.3g')} > threshold {_fmt(a.get('threshold'), '.3g')}; the change "
                   f"started near record {a.get('change_point')} of the stream, alarm at record "
                   f"{a.get('index_in_stream')}.")
        title = (f"error rate rose from {_fmt(before, '.3f')} to ~{_fmt(after, '.3f')}" if is_error
                 else f"{stream} changed ({a.get('direction')}): mean {_fmt(before, '.3g')} -> ~{_fmt(after, '.3g')}")
        out.append(ctx.alert(rule, title, summary, feature=stream, values=dict(a)))
    return out


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


def _slice_drift(ctx: _Context, rule: RuleConfig, report: Mapping[str, Any]) -> List[Alert]:
    """One alert per drifted slice of ``report["slices"]`` (drift.slices), naming the slice and
    its drifted features: ``drift in slice payment_type=Cash: fare psi=0.31``."""
    block = report.get("slices") or {}
    out = []
    for s in block.get("slices") or []:
        if not s.get("drift_detected"):
            continue
        name = str(s.get("name"))
        features = s.get("features") or {}
        drifted = list(s.get("drifted_features") or [])
        parts = []
        for f in drifted:
            score = (features.get(f) or {}).get("score")
            parts.append(f"{f} {(features.get(f) or {}).get('method')}={score:.3g}" if _finite(score) else f)
        pairs = ((s.get("multivariate") or {}).get("pairs") or []) if (s.get("multivariate") or {}).get("drifted") else []
        if pairs:
            parts.append("joint " + ", ".join(" x ".join(map(str, p)) for p in pairs[:3]))
        rows = s.get("rows") or {}
        lines = [f"Within slice {name} ({rows.get('reference')} reference rows, {rows.get('current')} rows in this "
                 f"span), these drifted:"]
        for f in drifted:
            d = features.get(f) or {}
            lines.append(f"- {f}: {d.get('method')}={_fmt(d.get('score'), '.3g')}, adjusted p-value "
                         f"{_fmt(d.get('p_value_adjusted'), '.2g')}{', ' + d['direction'] if d.get('direction') else ''}")
        for p in pairs:
            lines.append(f"- joint: {' x '.join(map(str, p))}")
        lines.append(f"Each of the {block.get('tested')} slices tested at alpha {_fmt(block.get('alpha_per_slice'), '.3g')} "
                     f"(Bonferroni across slices).")
        title = f"drift in slice {name}: {', '.join(parts[:3])}{f' (+{len(parts) - 3} more)' if len(parts) > 3 else ''}"
        out.append(ctx.alert(rule, title, "\n".join(lines), slice_name=name,
                             values={"slice": name, "key": s.get("key"), "drifted_features": drifted,
                                     "rows": rows}))
    return out


def _slice_metric_drop(ctx: _Context, rule: RuleConfig, monitor: Optional[Mapping[str, Any]]) -> List[Alert]:
    """One alert per slice of ``monitor["performance_slices"]`` whose errors grew significantly
    (``worse``: Bonferroni across slices) and whose metric is worse than on the held-out rows of
    the same slice by more than ``rule.threshold`` (relative)."""
    block = (monitor or {}).get("performance_slices") or {}
    metric = block.get("metric")
    task = (monitor or {}).get("task") or "binary"
    if not metric or metric not in tasks_lib.METRICS.get(task, {}):
        return []
    title_metric = tasks_lib.METRIC_TITLES.get(metric, metric)
    out = []
    for s in block.get("slices") or []:
        now, base = s.get("realized"), s.get("baseline")
        if not s.get("worse") or not _finite(now) or not _finite(base):
            continue
        worse = tasks_lib.worse_by(task, metric, now, base)
        if not worse > rule.threshold:
            continue
        name = str(s.get("name"))
        rows = s.get("rows") or {}
        summary = (f"In slice {name} the serving model's realized {title_metric} is {now:.4g} on {rows.get('current')} "
                   f"labelled rows of this span, {worse:.1%} worse than {base:.4g} on its {rows.get('reference_held_out')} "
                   f"held-out reference rows of that slice (alert when more than {rule.threshold:.1%} worse and "
                   f"the errors grew significantly: {block.get('test')}, adjusted p-value "
                   f"{_fmt(s.get('p_value_adjusted'), '.2g')}, Bonferroni over {block.get('tested')} slices).")
        out.append(ctx.alert(rule, f"{title_metric} in slice {name} {now:.4g} is {worse:.1%} worse than {base:.4g}",
                             summary, slice_name=name,
                             values={"slice": name, "metric": metric, "baseline": base, "realized": now,
                                     "relative_change": worse, "threshold": rule.threshold,
                                     "p_value_adjusted": s.get("p_value_adjusted")}))
    return out


_DRIFT_RULES = {"feature_psi": _feature_psi, "dataset_drift": _dataset_drift,
                "multivariate_drift": _multivariate_drift, "skew": _skew, "slice_drift": _slice_drift}
