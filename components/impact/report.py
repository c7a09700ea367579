"""A span's impact on the model, for people: the drift report's ``importance`` section and the
model monitor's ``impact`` and ``performance`` sections joined into one record and one line.

Three numbers for the watched metric's change, in the metric's own unit, side by side:

- **density ratio**: the reference's labelled held-out rows re-weighted to the span
  (:mod:`.effect`), with its 95 % half-width and effective sample size;
- **CBPE / DLE**: the existing label-free estimate, against the same estimator on the
  held-out rows (``performance.estimated - performance.estimated_reference``);
- **realized**: once labels arrive, the span's metric against the model's value on its
  held-out rows (``performance.realized - performance.baseline``).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from driftguard.components import tasks as tasks_lib
from driftguard.components.impact.effect import z_value
from driftguard.components.impact.weighted import summary as weighted_summary

DISPLAY_CONFIDENCE = 0.95


def _diff(a, b) -> Optional[float]:
    return None if a is None or b is None else float(a) - float(b)


def span_impact(report: Optional[Mapping[str, Any]], monitor: Optional[Mapping[str, Any]],
                metric: Optional[str] = None) -> Dict[str, Any]:
    """One record of the span's impact on the watched ``metric`` (default: the monitor's)."""
    report, monitor = report or {}, monitor or {}
    perf = monitor.get("performance") or {}
    impact = monitor.get("impact") or {}
    metric = metric or impact.get("metric") or perf.get("metric")
    out: Dict[str, Any] = {"metric": metric, "title": tasks_lib.METRIC_TITLES.get(metric, metric),
                           "weighted_drift": weighted_summary(report.get("importance")) or None,
                           "ranking": (report.get("importance") or {}).get("ranking"),
                           "density_ratio": None, "note": None, "rows_note": impact.get("rows_note")}
    entry = (impact.get("metrics") or {}).get(metric) if impact.get("status") == "estimated" else None
    if entry:
        se = entry.get("se")
        out["density_ratio"] = {
            "estimated": entry.get("estimated"), "reference": entry.get("reference"), "change": entry.get("change"),
            "se": se, "half_width_95": None if se is None else z_value(DISPLAY_CONFIDENCE) * se,
            "relative_change": entry.get("relative_change"), "rows": impact.get("rows"),
            "effective_sample_size": impact.get("effective_sample_size"),
            "classifier_auc": (impact.get("classifier") or {}).get("auc")}
    elif impact:
        out["note"] = impact.get("note") or f"no estimate of {metric}"
    else:
        out["note"] = "not estimated (a span check of an earlier driftguard)"
    def get(section):
        return (perf.get(section) or {}).get(metric)
    out["cbpe"] = {"estimator": perf.get("estimator"), "estimated": get("estimated"),
                   "change": _diff(get("estimated"), get("estimated_reference"))}
    out["realized"] = {"value": get("realized"), "baseline": get("baseline"),
                       "change": _diff(get("realized"), get("baseline"))}
    return out


def impact_text(record: Mapping[str, Any]) -> str:
    """'impact on accuracy: estimated -0.012 ± 0.020 (density ratio, ESS 412 of 640), CBPE -0.005,
    realized +0.020'."""
    title = record.get("title") or "the metric"
    dr = record.get("density_ratio")
    if dr and dr.get("change") is not None:
        pm = f" ± {dr['half_width_95']:.3f}" if dr.get("half_width_95") is not None else ""
        ess = dr.get("effective_sample_size")
        text = (f"impact on {title}: estimated {dr['change']:+.3f}{pm} (density ratio"
                + (f", ESS {ess:.0f} of {dr['rows']}" if ess is not None else "") + ")")
    else:
        text = f"impact on {title}: {record.get('note') or 'not estimated'}"
    cbpe = (record.get("cbpe") or {}).get("change")
    if cbpe is not None:
        name = "DLE" if str((record.get("cbpe") or {}).get("estimator") or "").startswith("DLE") else "CBPE"
        text += f", {name} {cbpe:+.3f}"
    realized = (record.get("realized") or {}).get("change")
    text += f", realized {realized:+.3f}" if realized is not None else ", realized: no labels yet"
    return text
