"""Incidents: the live monitor's alarms grouped the way Alertmanager groups alerts.

A sustained change makes the monitor's rules fire again and again: the error-rate CUSUM alarms
every detector block once it has reset, a drifted feature fails every window. Each alarm is an
:class:`~driftguard.components.alerts.alert.Alert` keyed by its window, so without grouping
each one is a page. :class:`IncidentTracker` turns them into **incidents**:

* an incident is identified by its rule and what it is about, not by the window: the
  **group key** ``{model}/live/{rule}[/{feature}][/{slice}]``. Its **id** is the dedup key of
  the alert that opened it (``taxi/live/j11540/error_rate_change/error``), so ids are unique
  over the life of a log and the same after a restart;
* ``open``: the first alarm of a group with no open incident opens one; its notification's
  dedup key is the id. With ``group_wait`` > 0 the page waits that long, and incidents that
  open meanwhile go out in the same notification (one page listing them);
* ``update``: an alarm of a group whose incident is open bumps ``count`` and ``last_seen``.
  It is sent (key ``{id}/update-{n}``) only when ``repeat_interval`` has passed since the
  incident's last notification; otherwise it is recorded, not paged;
* ``resolved`` (key ``{id}/resolved``): the incident's source has been in control for a
  stretch. What "in control" means depends on where the alarm came from (``source``):

  ===================  =======================================================================
  source               back in control after
  ===================  =======================================================================
  ``window``           ``resolve_after_windows`` windows of traffic in a row that did not raise
                       the group's alert (feature, prediction, joint and estimated-metric rules)
  ``labels``           ``resolve_after_windows`` label windows in a row without it (metric_drop,
                       slice_metric_drop)
  ``stream:<name>``    ``resolve_after_records`` records of the stream (joined labels for the
                       ``error`` stream) since its last alarm: the CUSUM did not cross its
                       threshold again (it restarts from zero after each alarm)
  ===================  =======================================================================

Exactly once: the tracker is deterministic given its state and its input, and its state
(:meth:`IncidentTracker.state_dict`) is committed with the monitor's state *after* the
notifications of the batch are in the outbox. The outbox keeps one row per (dedup key, sink)
and the keys carry the incident id and a sequence number, so a batch replayed after a crash
produces the same keys and enqueues nothing new: one row per incident open, per update, per
resolve. The clock (``now``) is the only input that is not replayed; a replay only sees a later
time, so it may page an update the first attempt had held back (still one row for that
sequence number), never one twice.

Pure Python, no TensorFlow; the monitor (``monitoring/monitor.py``) feeds it.
"""
from __future__ import annotations

import datetime
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from driftguard.components.alerts.alert import Alert, severity_rank, utc_now_iso
from driftguard.components.alerts.config import IncidentsConfig

log = logging.getLogger(__name__)

STATE_VERSION = 1
_IDENTITY_LABELS = ("feature", "slice")       # with model and rule: what an incident is about


def group_key(alert: Alert) -> str:
    """``{model}/live/{rule}[/{feature}][/{slice}]``: the alert's identity without its window."""
    labels = alert.labels
    parts = [labels.get("model", "?"), "live", alert.rule] + [labels[k] for k in _IDENTITY_LABELS if k in labels]
    return "/".join(parts)


def source_kind(source: str) -> str:
    """``window``, ``labels`` or ``stream`` (from ``stream:<name>``)."""
    kind = source.split(":", 1)[0]
    if kind not in ("window", "labels", "stream"):
        raise ValueError(f"unknown incident source {source!r}; known: window, labels, stream:<name>")
    return kind


def _iso(epoch: float) -> str:
    return utc_now_iso(datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc))


class IncidentTracker:
    """Open incidents and the notifications they owe.

    ``observe(source, position, alerts, now)`` after every evaluation (a window, a label window,
    a detector's batch of values) with the alerts it raised (maybe none); ``take(now)`` returns
    the notifications to enqueue (opens whose ``group_wait`` is over, updates, resolves);
    ``state_dict()`` is what the monitor commits. ``events`` lists ``(kind, id, title)`` with kind
    ``opened``, ``updated`` or ``resolved``, for the console, until the caller clears it; repeats
    that were not paged are only counted (``totals["repeated"]``).
    """

    def __init__(self, config: IncidentsConfig, *, model: str, resolve_records: int,
                 state: Optional[Mapping[str, Any]] = None):
        self.config = config
        self.model = model
        self.resolve_records = int(config.resolve_after_records or resolve_records)
        state = dict(state or {})
        if state and state.get("version") != STATE_VERSION:
            log.warning("incident state of version %s ignored (this driftguard writes %s)", state.get("version"),
                        STATE_VERSION)
            state = {}
        self.open: Dict[str, Dict[str, Any]] = {k: dict(v) for k, v in (state.get("open") or {}).items()}
        self.held: List[Dict[str, Any]] = [dict(g) for g in state.get("held") or []]
        self.totals: Dict[str, int] = {"opened": 0, "updated": 0, "repeated": 0, "resolved": 0, "pages": 0,
                                       **(state.get("totals") or {})}
        self._outgoing: List[Alert] = []
        self.events: List[Tuple[str, str, str]] = []

    # -- input

    def observe(self, source: str, position: int, alerts: Sequence[Alert], now: float) -> None:
        """One evaluation of ``source`` at ``position`` (a window count, a stream index) raised
        ``alerts``: open or bump their incidents, then resolve the source's quiet ones."""
        kind = source_kind(source)
        seen = set()
        for alert in alerts:
            key = group_key(alert)
            seen.add(key)
            incident = self.open.get(key)
            if incident is None:
                self._open(key, alert, source, position, now)
            else:
                self._bump(incident, alert, position, now)
        threshold = self.resolve_records if kind == "stream" else self.config.resolve_after_windows
        for key, incident in list(self.open.items()):
            if incident["source"] != source or key in seen or incident["notified_at"] is None:
                continue          # another source, alarming right now, or its open page still waits
            if position - incident["last_position"] >= threshold:
                self._resolve(key, incident, position, now)

    def _open(self, key: str, alert: Alert, source: str, position: int, now: float) -> None:
        incident = {"id": alert.dedup_key, "group": key, "rule": alert.rule, "severity": alert.severity,
                    "labels": {k: v for k, v in alert.labels.items() if k != "scope"}, "source": source,
                    "opened_scope": alert.labels.get("scope"), "opened_at": _iso(now),
                    "first_position": int(position), "last_position": int(position),
                    "last_scope": alert.labels.get("scope"), "last_seen_at": _iso(now), "count": 1, "updates": 0,
                    "notified_at": None, "alert": alert.to_dict()}
        self.open[key] = incident
        self.totals["opened"] += 1
        self.events.append(("opened", incident["id"], alert.title))
        if self.config.group_wait > 0:
            for group in self.held:
                if now - group["since"] < self.config.group_wait:
                    group["ids"].append(key)
                    return
            self.held.append({"since": now, "ids": [key]})
        else:
            self._notify_open([key], now)

    def _bump(self, incident: Dict[str, Any], alert: Alert, position: int, now: float) -> None:
        incident["count"] += 1
        incident["last_position"] = int(position)
        incident["last_scope"] = alert.labels.get("scope")
        incident["last_seen_at"] = _iso(now)
        incident["alert"] = alert.to_dict()
        notified = incident["notified_at"]
        if notified is not None and now - notified >= self.config.repeat_interval:
            incident["updates"] += 1
            incident["notified_at"] = now
            self.totals["updated"] += 1
            self._outgoing.append(self._notification(incident, "update", now))
            self.events.append(("updated", incident["id"], f"{alert.title} ({incident['count']} alarms)"))
        else:
            self.totals["repeated"] += 1       # recorded, not paged

    def _resolve(self, key: str, incident: Dict[str, Any], position: int, now: float) -> None:
        del self.open[key]
        self.totals["resolved"] += 1
        note = self._notification(incident, "resolved", now, position=position)
        self._outgoing.append(note)
        self.events.append(("resolved", incident["id"], note.title))

    # -- output

    def take(self, now: float, flush: bool = False) -> List[Alert]:
        """The notifications due now (in the order they arose), and forget them: the caller
        enqueues them before committing :meth:`state_dict`. ``flush``: groups still within
        their ``group_wait`` too (a ``--once`` run that is about to exit)."""
        for group in [g for g in self.held if flush or now - g["since"] >= self.config.group_wait]:
            self.held.remove(group)
            self._notify_open([k for k in group["ids"] if k in self.open], now)
        out, self._outgoing = self._outgoing, []
        self.totals["pages"] += len(out)
        return out

    def due(self, now: float) -> bool:
        """Whether :meth:`take` has something to send (a held group whose wait is over)."""
        return bool(self._outgoing) or any(now - g["since"] >= self.config.group_wait for g in self.held)

    def state_dict(self) -> Dict[str, Any]:
        return {"version": STATE_VERSION, "open": self.open, "held": self.held, "totals": self.totals}

    def summary(self) -> Dict[str, Any]:
        """For metrics and the console: totals and the open incidents (id, count, last seen)."""
        return {"totals": dict(self.totals),
                "open": [{"id": i["id"], "rule": i["rule"], "severity": i["severity"], "count": i["count"],
                          "last_scope": i["last_scope"], "opened_at": i["opened_at"]} for i in self.open.values()]}

    def _notify_open(self, keys: List[str], now: float) -> None:
        incidents = [self.open[k] for k in keys]
        if not incidents:
            return
        for incident in incidents:
            incident["notified_at"] = now
        if len(incidents) == 1:
            self._outgoing.append(self._notification(incidents[0], "open", now))
        else:
            self._outgoing.append(self._group_notification(incidents, now))

    def _notification(self, incident: Dict[str, Any], state: str, now: float,
                      position: Optional[int] = None) -> Alert:
        alert = Alert.from_dict(incident["alert"])
        what = incident["group"].split("/", 2)[2]          # rule[/feature][/slice]
        info = _incident_info(incident, state)
        if state == "open":
            key, title, summary = incident["id"], alert.title, alert.summary
        elif state == "update":
            key = f"{incident['id']}/update-{incident['updates']}"
            title = f"{alert.title} (still firing: {incident['count']} alarms since {incident['opened_scope']})"
            summary = (f"Incident {incident['id']} is still open: {incident['count']} alarms since it opened at "
                       f"{incident['opened_at']} ({incident['opened_scope']}), the last at {incident['last_scope']}.\n"
                       f"Latest alarm:\n{alert.summary}")
        else:
            key = f"{incident['id']}/resolved"
            title = f"{self.model}: resolved: {what} back in control (opened {incident['opened_scope']})"
            summary = (f"Incident {incident['id']} is resolved: {_in_control_text(incident, self, position)}. "
                       f"It was open from {incident['opened_at']} ({incident['opened_scope']}) to "
                       f"{_iso(now)}, with {incident['count']} alarm(s); the last at {incident['last_scope']}.")
            info["resolved_at"] = _iso(now)
        labels = {**incident["labels"], "incident": incident["id"]}
        values = {**dict(alert.values), "incident": info}
        return Alert(rule=alert.rule, severity=incident["severity"], title=title, summary=summary, labels=labels,
                     dedup_key=key, created_at=_iso(now), values=values)

    def _group_notification(self, incidents: List[Dict[str, Any]], now: float) -> Alert:
        """One page for the incidents that opened within ``group_wait``; keyed by the first
        one's id. Sinks that know incidents (Alertmanager) send them as separate alerts."""
        first = incidents[0]
        severity = max((i["severity"] for i in incidents), key=severity_rank)
        whats = [i["group"].split("/", 2)[2] for i in incidents]
        title = f"{self.model}: {len(incidents)} incidents opened: {', '.join(whats[:5])}" + \
            (f", +{len(whats) - 5} more" if len(whats) > 5 else "")
        parts = []
        members = []
        for i in incidents:
            a = Alert.from_dict(i["alert"])
            parts.append(f"- [{i['severity']}] {a.title}\n  {a.summary.replace(chr(10), chr(10) + '  ')}")
            members.append({"dedup_key": i["id"], "rule": i["rule"], "severity": i["severity"], "title": a.title,
                            "summary": a.summary, "labels": {**i["labels"], "incident": i["id"]},
                            "created_at": a.created_at})
        summary = (f"{len(incidents)} incidents opened within group_wait ({self.config.group_wait:g} s):\n"
                   + "\n".join(parts))
        labels = {"model": self.model, "rule": first["rule"] if len({i["rule"] for i in incidents}) == 1
                  else "incident_group", "incident": first["id"]}
        values = {"incident": {**_incident_info(first, "open"), "group": [i["id"] for i in incidents]},
                  "members": members}
        return Alert(rule=labels["rule"], severity=severity, title=title, summary=summary, labels=labels,
                     dedup_key=first["id"], created_at=_iso(now), values=values)


def _incident_info(incident: Mapping[str, Any], state: str) -> Dict[str, Any]:
    return {"id": incident["id"], "state": state, "count": incident["count"], "sequence": incident["updates"],
            "opened_at": incident["opened_at"], "opened_scope": incident["opened_scope"],
            "last_seen_at": incident["last_seen_at"], "last_scope": incident["last_scope"],
            "source": incident["source"]}


def _in_control_text(incident: Mapping[str, Any], tracker: IncidentTracker, position: Optional[int]) -> str:
    kind = source_kind(incident["source"])
    quiet = (position or incident["last_position"]) - incident["last_position"]
    if kind == "stream":
        stream = incident["source"].split(":", 1)[1]
        unit = "joined labels" if stream == "error" else "records"
        return (f"the {stream} stream's detector has not alarmed for {quiet} {unit} "
                f"(resolve_after_records {tracker.resolve_records})")
    what = "label windows" if kind == "labels" else "windows"
    return (f"{quiet} {what} in a row did not raise it (resolve_after_windows "
            f"{tracker.config.resolve_after_windows})")
