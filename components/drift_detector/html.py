"""Self-contained HTML page of one DriftReport (no script, no external asset: opens from disk).

Charts are inline SVG drawn by ``driftguard.components.reports.charts`` (pure Python): the reference and
current distributions of every drifted feature, and, when the PredictionMonitor's report is
given, the prediction / confidence / accuracy panel.
"""
from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Any, Mapping, Optional

import jinja2

from driftguard.components.drift_detector.compare import headline
from driftguard.components.impact.report import span_impact
from driftguard.components.impact.weighted import order_key, summary as weighted_summary
from driftguard.components.reports import charts

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("driftguard.components.drift_detector", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 10 ** 6):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _metric(value, h) -> str:
    """A performance number: percent for shares (accuracy, AUC, F1), plain for errors (MAE)."""
    if value is None:
        return "–"
    return _pct(value) if h.get("percent") else _fmt(value, 4 if abs(value) < 10 else 2)


_ENV.filters["fmt"] = _fmt
_ENV.filters["pct"] = _pct
_ENV.filters["metric"] = _metric


def performance_panel(monitor: Optional[Mapping[str, Any]]) -> dict:
    """The watched metric of a span check's monitor.json, ready for the page."""
    from driftguard.components import tasks as tasks_lib
    from driftguard.components.prediction_monitor.metrics import headline as performance_headline

    perf = (monitor or {}).get("performance") or {}
    if not perf:
        return {}
    h = performance_headline(perf)
    metric = h.get("metric")
    realized = perf.get("realized") or {}
    change = h.get("realized_change")
    higher = h.get("higher_is_better")
    return {**h, "title": tasks_lib.METRIC_TITLES.get(metric, metric or "performance"),
            "percent": metric in ("accuracy", "auc", "macro_f1"),
            "worse": change is not None and ((change < -0.05) if higher else (change > 0.05)),
            "other_realized": {tasks_lib.METRIC_TITLES.get(k, k): v for k, v in realized.items()
                               if k != metric and v is not None},
            "note": perf.get("estimated_note"), "estimator": perf.get("estimator"),
            "shift_aware_ess": (perf.get("shift_aware") or {}).get("effective_sample_size")}


def reference_text(report: Mapping[str, Any]) -> str:
    """What the span was compared with (drift.reference), "" when the report does not say."""
    if not report.get("reference"):
        return ""
    from driftguard.components.drift_detector.reference import describe

    return describe(report["reference"], report.get("context"))


def render_html(report: Mapping[str, Any], monitor: Optional[Mapping[str, Any]] = None, *,
                decision: Optional[Mapping[str, Any]] = None, dashboard: Optional[str] = None) -> str:
    """The page of one span check.

    ``monitor`` (PredictionMonitor's monitor.json) adds the prediction/confidence/accuracy
    panel, ``decision`` (RetrainGate's decision.json) the alerts and the retraining decision,
    ``dashboard`` a link back to the trend dashboard (a relative URL).
    """
    features = report.get("features", {})

    def severity(item):
        f = item[1]
        checks = f.get("checks", {}).values()
        worst = max(((c["score"] or 0) / c["threshold"] if c.get("threshold") else 0 for c in checks), default=0)
        return (not f.get("drifted"), -worst, item[0])

    ordered = sorted(features.items(), key=severity)
    importance = report.get("importance") or {}
    weighted_rows = sorted((importance.get("features") or {}).items(), key=lambda item: order_key(*item))[:30]
    distributions = [(name, charts.feature_distribution(name, f)) for name, f in ordered if f.get("drifted")]
    return _ENV.get_template("drift_report.html.j2").render(
        report=report, features=ordered, headline=headline(report), context=report.get("context", {}),
        reference_text=reference_text(report),
        distributions=[(n, svg) for n, svg in distributions if svg is not None],
        monitor=monitor, decision=decision, dashboard=dashboard, performance=performance_panel(monitor),
        importance=importance, weighted_rows=weighted_rows, weighted_summary=weighted_summary(importance),
        impact=span_impact(report, monitor) if (monitor or {}).get("status") == "monitored" else None,
        prediction_chart=charts.prediction_distribution(monitor) if monitor else None)


def write_html(report: Mapping[str, Any], path: pathlib.Path, monitor: Optional[Mapping[str, Any]] = None,
               **options: Any) -> None:
    """Write atomically (temp file + rename): a reader never sees half a page."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render_html(report, monitor, **options))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
