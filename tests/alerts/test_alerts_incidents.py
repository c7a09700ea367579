"""Incidents: alarms of one rule and feature become one incident (open, updates at most once per
repeat_interval, resolved after the source is back in control), on real rule output; the
config's incident settings and their errors; Alertmanager's view of an incident."""
import json
import re

import pytest

from driftguard.components.alerts import IncidentTracker, evaluate, parse_alerts_config, send_alerts
from driftguard.components.alerts.config import AlertsConfigError, IncidentsConfig
from driftguard.components.alerts.outbox import Outbox, outbox_path

CFG = parse_alerts_config(None)
T0 = 1_800_000_000.0


def error_alarm(at: int):
    """What the monitor's error-rate detector hands the rules when it alarms at joined label ``at``."""
    alarm = {"name": "error", "direction": "up", "mean_before": 0.2, "mean_after_estimate": 0.8,
             "statistic": 9.1, "threshold": 8.0, "change_point": 11_500, "index_in_stream": at,
             "detector": "CUSUM", "record": at}
    return evaluate(CFG, model="taxi", scope=f"live/j{at}", drift_report=None, alarms=[alarm])


def fare_window(n: int):
    report = {"status": "compared", "drift_detected": True, "drifted_features": ["fare"],
              "features": {"fare": {"scores": {"psi": 0.4}, "drifted": True, "kind": "float", "method": "psi",
                                    "score": 0.4}}}
    return evaluate(CFG, model="taxi", scope=f"live/w{n * 500}-{n * 500 + 999}", drift_report=report)


def test_a_sustained_error_rate_change_is_one_incident_with_updates_per_repeat_interval():
    tracker = IncidentTracker(IncidentsConfig(repeat_interval=600), model="taxi", resolve_records=1000)
    pages = []
    # 30 alarms, one every 50 labels and 60 s: what the CUSUM does once the error rate has risen
    for k in range(30):
        at = 11_550 + 50 * k
        alerts = error_alarm(at)
        assert [a.rule for a in alerts] == ["error_rate_change"]
        tracker.observe("stream:error", at, alerts, T0 + 60 * k)
        pages += tracker.take(T0 + 60 * k)
    keys = [p.dedup_key for p in pages]
    opened = "taxi/live/j11550/error_rate_change/error"
    # 29 minutes of alarms, repeat_interval 10 min: the open, then an update at 10 and 20 minutes
    assert keys == [opened, f"{opened}/update-1", f"{opened}/update-2"]
    assert tracker.open["taxi/live/error_rate_change/error"]["count"] == 30
    assert tracker.totals == {"opened": 1, "updated": 2, "repeated": 27, "resolved": 0, "pages": 3}
    update = pages[1]
    assert update.values["incident"]["state"] == "update" and update.values["incident"]["count"] == 11
    assert "still firing: 11 alarms since live/j11550" in update.title
    assert update.labels["incident"] == opened and "scope" not in update.labels
    # the stream back in control: 999 labels without an alarm is not enough, 1000 resolves
    last = 11_550 + 50 * 29
    tracker.observe("stream:error", last + 999, [], T0 + 3000)
    assert tracker.take(T0 + 3000) == []
    tracker.observe("stream:error", last + 1000, [], T0 + 3060)
    resolved = tracker.take(T0 + 3060)
    assert [p.dedup_key for p in resolved] == [f"{opened}/resolved"]
    assert resolved[0].values["incident"]["state"] == "resolved"
    assert "has not alarmed for 1000 joined labels" in resolved[0].summary
    assert tracker.open == {}
    # a new change later is a new incident with its own id
    tracker.observe("stream:error", 20_000, error_alarm(20_000), T0 + 4000)
    assert [p.dedup_key for p in tracker.take(T0 + 4000)] == ["taxi/live/j20000/error_rate_change/error"]


def test_window_rules_resolve_after_n_windows_without_them_and_state_survives_a_restart():
    config = IncidentsConfig(resolve_after_windows=3)
    tracker = IncidentTracker(config, model="taxi", resolve_records=1000)
    pages = []
    for n in range(1, 6):                                    # five windows with fare drifted
        tracker.observe("window", n, fare_window(n), T0 + n)
        pages += tracker.take(T0 + n)
    assert sorted(p.dedup_key for p in pages) == ["taxi/live/w500-1499/dataset_drift",
                                                  "taxi/live/w500-1499/feature_psi/fare"]
    # a restart: the committed state (through JSON, as the monitor stores it) carries on
    state = json.loads(json.dumps(tracker.state_dict()))
    tracker = IncidentTracker(config, model="taxi", resolve_records=1000, state=state)
    for n in (6, 7):
        tracker.observe("window", n, [], T0 + n)
        assert tracker.take(T0 + n) == []
    tracker.observe("labels", 99, [], T0 + 8)               # another source does not resolve them
    assert tracker.take(T0 + 8) == []
    tracker.observe("window", 8, [], T0 + 8)
    assert sorted(p.dedup_key for p in tracker.take(T0 + 8)) == [
        "taxi/live/w500-1499/dataset_drift/resolved", "taxi/live/w500-1499/feature_psi/fare/resolved"]


def test_group_wait_batches_incidents_that_open_together():
    tracker = IncidentTracker(IncidentsConfig(group_wait=30), model="taxi", resolve_records=1000)
    tracker.observe("window", 1, fare_window(1), T0)         # two incidents at once
    tracker.observe("stream:error", 11_550, error_alarm(11_550), T0 + 10)
    assert tracker.take(T0 + 20) == [] and not tracker.due(T0 + 29)
    held = json.loads(json.dumps(tracker.state_dict()))
    flushed = IncidentTracker(IncidentsConfig(group_wait=30), model="taxi", resolve_records=1000, state=held)
    assert [p.dedup_key for p in flushed.take(T0 + 21, flush=True)] == ["taxi/live/w500-1499/feature_psi/fare"]
    assert tracker.due(T0 + 30)
    pages = tracker.take(T0 + 30)
    assert len(pages) == 1
    page = pages[0]
    assert page.dedup_key == "taxi/live/w500-1499/feature_psi/fare" and page.severity == "critical"
    assert page.title == "taxi: 3 incidents opened: feature_psi/fare, dataset_drift, error_rate_change/error"
    assert [m["dedup_key"] for m in page.values["members"]] == [
        "taxi/live/w500-1499/feature_psi/fare", "taxi/live/w500-1499/dataset_drift",
        "taxi/live/j11550/error_rate_change/error"]
    # one opening later than group_wait is a page of its own
    tracker.observe("stream:confidence", 9000, evaluate(CFG, model="taxi", scope="live/r9000", drift_report=None,
                                                        alarms=[{"name": "confidence", "direction": "down"}]),
                    T0 + 100)
    assert [p.dedup_key for p in tracker.take(T0 + 130)] == ["taxi/live/r9000/stream_change/confidence"]


def test_notifications_go_through_the_outbox_once_per_incident_sequence(tmp_path):
    """A batch replayed after a crash (the same committed state, the same alarms) enqueues the
    same keys: nothing twice."""
    config = parse_alerts_config({"incidents": {"repeat_interval": "1m"}})
    state = None
    for attempt in range(2):                       # the second attempt replays the first's input
        tracker = IncidentTracker(config.incidents, model="taxi", resolve_records=500, state=state)
        pages = []
        for k in range(5):
            tracker.observe("stream:error", 11_550 + 50 * k, error_alarm(11_550 + 50 * k), T0 + 40 * k)
            pages += tracker.take(T0 + 40 * k)
        tracker.observe("stream:error", 20_000, [], T0 + 400)
        pages += tracker.take(T0 + 400)
        send_alerts(config, pages, tmp_path, now=T0 + 400)
    rows = Outbox(outbox_path(tmp_path)).rows()
    opened = "taxi/live/j11550/error_rate_change/error"
    assert [r["dedup_key"] for r in rows] == [opened, f"{opened}/update-1", f"{opened}/update-2",
                                              f"{opened}/resolved"]
    assert all(r["state"] == "delivered" for r in rows)
    lines = [json.loads(x)["dedup_key"] for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert lines == [r["dedup_key"] for r in rows]


def test_alertmanager_sees_one_alert_per_incident_and_its_resolve(receiver, monkeypatch):
    from driftguard.components.alerts.sinks import AlertmanagerSink
    from driftguard.components.alerts.config import AlertmanagerSinkConfig

    r = receiver()
    monkeypatch.setenv("DRIFTGUARD_ALERTMANAGER_URL", r.url())
    tracker = IncidentTracker(IncidentsConfig(), model="taxi", resolve_records=100)
    tracker.observe("stream:error", 11_550, error_alarm(11_550), T0)
    tracker.observe("stream:error", 11_700, [], T0 + 60)
    sink = AlertmanagerSink(AlertmanagerSinkConfig(name="am"))
    for page in tracker.take(T0 + 60):
        sink.send(page, 5)
    bodies = [json.loads(q["body"]) for q in r.requests]
    assert [q["path"] for q in r.requests] == ["/api/v2/alerts"] * 2
    opened, resolved = bodies[0][0], bodies[1][0]
    assert opened["labels"] == resolved["labels"]            # the same alert to Alertmanager
    assert opened["labels"]["incident"] == "taxi/live/j11550/error_rate_change/error"
    assert "scope" not in opened["labels"] and "endsAt" not in opened
    assert resolved["startsAt"] == opened["startsAt"] and resolved["endsAt"] > resolved["startsAt"]


def test_incident_settings_parse_durations_and_errors_name_the_field():
    cfg = parse_alerts_config({"incidents": {"group_wait": "30s", "repeat_interval": "1h30m",
                                             "resolve_after_windows": 4, "resolve_after_records": 2000}})
    assert cfg.incidents == IncidentsConfig(True, 30.0, 5400.0, 4, 2000)
    assert parse_alerts_config(None).incidents == IncidentsConfig(True, 0.0, 14400.0, 3, None)
    assert parse_alerts_config({"incidents": False}).incidents.enabled is False
    assert parse_alerts_config({"incidents": {"repeat_interval": 60}}).incidents.repeat_interval == 60.0
    for data, message in [
        ({"repeat_interval": "4 hours"}, r"^alerts\.incidents\.repeat_interval must be a duration"),
        ({"repeat_interval": 0}, r"^alerts\.incidents\.repeat_interval must be > 0"),
        ({"group_wait": -1}, r"^alerts\.incidents\.group_wait must be a duration >= 0"),
        ({"group_wait": "2h"}, r"^alerts\.incidents\.group_wait must be at most 1h"),
        ({"group_wait": True}, r"^alerts\.incidents\.group_wait must be a duration"),
        ({"resolve_after_windows": 0}, r"^alerts\.incidents\.resolve_after_windows must be in 1\.\.1000"),
        ({"resolve_after_records": 1.5}, r"^alerts\.incidents\.resolve_after_records must be int"),
        ({"resolve_after": 3}, r"^alerts\.incidents\.resolve_after: unknown key; allowed: enabled, group_wait"),
    ]:
        with pytest.raises(AlertsConfigError, match=message):
            parse_alerts_config({"incidents": data})
    with pytest.raises(AlertsConfigError, match=re.escape("alerts.incidents must be a mapping")):
        parse_alerts_config({"incidents": "on"})
