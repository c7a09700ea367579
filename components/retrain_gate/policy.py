"""Retraining policies, as a pure function of the span, the serving model and the alerts.

- ``never``: the span check only reports and alerts;
- ``scheduled``: retrain when the serving model's newest training span is ``every_spans`` or
  more spans old;
- ``triggered``: retrain when an alert of at least ``trigger_severity`` fired, unless the model
  was trained less than ``min_spans_between`` spans ago (its window has not caught up with the
  drift yet: retraining again on nearly the same data would not help);
- ``online``: retrain on every span, on the newest span only, warm-started from the serving
  model's weights;
- ``impact``: retrain when the span's *estimated* drop of the watched metric (the reference's
  labelled rows re-weighted by the domain classifier's density ratio,
  :mod:`driftguard.components.impact.effect`), relative to the serving model's value, is above
  ``impact_threshold`` across the whole ``impact_confidence`` interval: drift that does not
  measurably hurt the model does not retrain it, whatever its size. No estimate (no labelled
  reference rows, too few rows for the classifier): no retraining, and the reason says why.

With no model in the registry every policy but ``never`` trains.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
POLICIES = ("never", "scheduled", "triggered", "online", "impact")


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reason: str
    policy: str
    spans: List[int] = field(default_factory=list)  # the training window when retrain
    warm_start: bool = False
    span_labels: List[str] = field(default_factory=list)  # the window as people write it

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def labelled(self, label) -> "Decision":
        from dataclasses import replace

        return replace(self, span_labels=[label(s) for s in self.spans])


def decide(policy: str, *, span: int, serving_spans: Optional[Sequence[int]], alerts: Sequence[Mapping[str, Any]],
           window_spans: int, every_spans: int = 4, trigger_severity: str = "critical",
           min_spans_between: int = 2, first_span: int = 0, blocking_anomalies: int = 0,
           blocked_spans: Sequence[int] = (), available: Optional[Sequence[int]] = None,
           labels: Optional[Mapping[int, str]] = None, impact: Optional[Mapping[str, Any]] = None,
           impact_threshold: float = 0.02, impact_confidence: float = 0.95) -> Decision:
    """Should the span ``span`` trigger a training run, and on which spans?

    ``serving_spans``: the spans the serving model was trained on (None: no model yet).
    ``alerts``: the span's alerts as dicts with a ``severity``.
    ``blocking_anomalies``: schema anomalies of the span severe enough to stop the training
    pipeline's AnomalyGate; training on this span would fail, so the gate says why instead.
    ``blocked_spans``: earlier spans known to have such anomalies (from the run's state); a
    window holding one would fail the same way.
    ``available``: the spans the data holds; the window is the newest ``window_spans`` of them
    up to ``span`` (a missing month does not leave a hole). Without it, consecutive numbers.
    ``labels``: how spans are written for people ({520: "2013-05"}; default the number).
    ``impact``: the span's evidence for the ``impact`` policy (:func:`impact_evidence`).
    """
    if available:
        window = sorted(s for s in set(int(a) for a in available) | {span} if s <= span)[-window_spans:]
    else:
        window = list(range(max(first_span, span - window_spans + 1), span + 1))
    names = {int(k): str(v) for k, v in (labels or {}).items()}

    def lbl(s: int) -> str:
        return names.get(int(s), str(s))

    def _done(decision: Decision) -> Decision:
        return decision.labelled(lbl)

    if policy == "never":
        return _done(Decision(False, "policy 'never': the span check only reports", policy))
    if blocking_anomalies:
        return _done(Decision(False, f"span {lbl(span)} has {blocking_anomalies} schema anomal{'y' if blocking_anomalies == 1 else 'ies'} "
                               f"that would stop training; fix the data or make a new schema version "
                               f"(driftguard schema new-version --from-span {lbl(span)})", policy))
    in_window = sorted(set(blocked_spans) & set(window))
    if in_window and policy != "online":
        return _done(Decision(False, f"the training window {lbl(window[0])}..{lbl(window[-1])} holds span(s) "
                               f"{', '.join(map(lbl, in_window))} with schema anomalies that would stop training; "
                               f"fix the data or make a new schema version "
                               f"(driftguard schema new-version --from-span {lbl(in_window[0])})", policy))
    if not serving_spans:
        return _done(Decision(True, "no model is serving yet", policy, window))
    since = span - max(serving_spans)
    if since <= 0:
        return _done(Decision(False, f"the serving model was already trained on span {lbl(span)}", policy))
    if policy == "online":
        return _done(Decision(True, "policy 'online': every span, warm-started from the serving model", policy,
                        [span], warm_start=True))
    if policy == "scheduled":
        if since >= every_spans:
            return _done(Decision(True, f"scheduled: the model's newest span is {since} spans old "
                                  f"(every {every_spans})", policy, window))
        return _done(Decision(False, f"scheduled: the model's newest span is {since} span(s) old; "
                               f"retraining every {every_spans}", policy))
    if policy == "impact":
        return _done(_impact_decision(impact or {}, impact_threshold, impact_confidence, window))
    if policy != "triggered":
        raise ValueError(f"unknown retrain policy {policy!r} (one of {', '.join(POLICIES)})")
    floor = SEVERITY_RANK[trigger_severity]
    firing = [a for a in alerts if SEVERITY_RANK.get(str(a.get("severity")), 0) >= floor]
    if not firing:
        return _done(Decision(False, f"no {trigger_severity} alert", policy))
    rules = sorted({str(a.get("rule")) for a in firing})
    if since < min_spans_between:
        return _done(Decision(False, f"{len(firing)} {trigger_severity} alert(s) ({', '.join(rules)}) but the serving "
                               f"model was trained {since} span(s) ago (min_spans_between={min_spans_between})",
                        policy))
    return _done(Decision(True, f"{len(firing)} {trigger_severity} alert(s): {', '.join(rules)}", policy, window))


def impact_evidence(report: Optional[Mapping[str, Any]], monitor: Optional[Mapping[str, Any]],
                    metric: str) -> Dict[str, Any]:
    """What the ``impact`` policy decides on, from the span's drift report (``report.json``) and
    model monitor (``monitor.json``): the drifted features, and ``metric``'s estimated change
    (``impact.metrics[metric]``: reference, change, se) or why there is none."""
    report, monitor = report or {}, monitor or {}
    drifted = sorted(set(report.get("drifted_features") or []) | set(report.get("type_changes") or {}))
    ranked = (report.get("importance") or {}).get("ranking")
    impact = monitor.get("impact") or {}
    out: Dict[str, Any] = {"metric": metric, "n_drifted": len(drifted), "matter": ranked}
    entry = (impact.get("metrics") or {}).get(metric)
    if impact.get("status") == "estimated" and entry:
        out.update(entry=dict(entry), effective_sample_size=impact.get("effective_sample_size"))
    elif impact:
        out["note"] = impact.get("note") or f"no estimate of {metric}"
    elif monitor.get("status") not in (None, "monitored"):
        out["note"] = monitor.get("message") or f"the model monitor's status is {monitor.get('status')}"
    else:
        out["note"] = "the span check estimated no effect (no model monitor report)"
    return out


def _impact_decision(evidence: Mapping[str, Any], threshold: float, confidence: float, window) -> Decision:
    from driftguard.components import tasks as tasks_lib
    from driftguard.components.impact.effect import worse_interval

    n = int(evidence.get("n_drifted") or 0)
    drift = f"drift in {n} feature{'s' if n != 1 else ''}"
    matter = evidence.get("matter")
    if n and matter is not None:
        drift += f" ({len(matter)} the model relies on)"
    metric = str(evidence.get("metric") or "the metric")
    title = tasks_lib.METRIC_TITLES.get(metric, metric)
    entry = evidence.get("entry")
    interval = worse_interval(entry, confidence) if entry else None
    if interval is None:
        return Decision(False, f"{drift}, effect on {title} not estimated "
                               f"({evidence.get('note') or 'no standard error'}): no retraining", "impact")
    effect = (f"{drift}, estimated effect on {title} {entry['change']:+.3f} ± {interval['half_width']:.3f} "
              f"({-interval['worse']:+.1%})")
    if interval["low"] > threshold:
        return Decision(True, f"{effect}: a drop above {threshold:.1%} with {confidence:.0%} confidence",
                        "impact", window)
    return Decision(False, f"{effect}: not a drop above {threshold:.1%} with {confidence:.0%} confidence", "impact")
