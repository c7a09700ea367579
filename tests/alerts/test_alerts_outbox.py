"""The outbox against real receivers: retries, exactly-once in the normal case, bounded time
with a hanging receiver, backoff, giving up, two deliverers, and the documented crash resend."""
import threading
import time

import pytest

from alerts_servers import Receiver, free_port
from driftguard.components.alerts import Outbox, outbox_path, parse_alerts_config, send_alerts
from driftguard.components.alerts.config import DeliveryConfig
from driftguard.components.alerts.sinks import build_sinks

T0 = 1_800_000_000.0   # a fixed "now" (epoch seconds) for the backoff arithmetic


def webhook_sinks(tmp_path, env="T_HOOK_URL"):
    cfg = parse_alerts_config({"sinks": [{"type": "webhook", "url_env": env}]})
    return build_sinks(cfg, tmp_path)


def deliver(outbox, sinks, now=None, timeout=1.0, max_attempts=8, backoff=30.0):
    return outbox.deliver(sinks, timeout=timeout, max_attempts=max_attempts, backoff_seconds=backoff, now=now)


def test_down_then_up_delivers_exactly_once(tmp_path, make_alert, monkeypatch):
    port = free_port()
    monkeypatch.setenv("T_HOOK_URL", f"http://127.0.0.1:{port}/hook")
    sinks = webhook_sinks(tmp_path)
    box = Outbox(tmp_path / "outbox.sqlite")
    alerts = [make_alert("taxi/span-8/a"), make_alert("taxi/span-8/b")]
    assert box.enqueue(alerts, ["webhook"], now=T0) == 2

    result = deliver(box, sinks, now=T0)                  # nobody listens on the port
    assert (result.delivered, result.failed, result.deferred, result.pending) == (0, 1, 1, 2)
    assert "ConnectionRefusedError" in result.errors[0][2]
    rows = box.rows()
    assert [r["state"] for r in rows] == ["pending", "pending"]
    assert rows[0]["attempts"] == 1 and "ConnectionRefusedError" in rows[0]["last_error"]
    assert rows[1]["attempts"] == 0        # deferred after the sink failed once: not charged an attempt

    server = Receiver(port=port)
    try:
        result = deliver(box, sinks, now=T0 + 31)         # the failed row is due again after 30 s
        assert (result.delivered, result.failed, result.pending) == (2, 0, 0) and result.ok
        assert server.count == 2
        assert {r["state"] for r in box.rows()} == {"delivered"}
        assert all(r["delivered_at"] for r in box.rows())

        assert deliver(box, sinks, now=T0 + 3600).delivered == 0     # nothing left to send
        assert box.enqueue(alerts, ["webhook"], now=T0 + 3600) == 0   # the same span again: no new rows
        assert deliver(box, sinks, now=T0 + 7200).delivered == 0
        assert server.count == 2
        assert sorted(r["path"] for r in server.requests) == ["/hook", "/hook"]
    finally:
        server.close()


def test_503_backoff_then_gives_up(tmp_path, receiver, make_alert, monkeypatch):
    server = receiver(status=503)
    monkeypatch.setenv("T_HOOK_URL", server.url("/hook"))
    sinks, box = webhook_sinks(tmp_path), Outbox(tmp_path / "o.sqlite")
    box.enqueue([make_alert()], ["webhook"], now=T0)
    expected_next = []
    t = T0
    for attempt in range(1, 4):
        result = deliver(box, sinks, now=t, max_attempts=3, backoff=10)
        assert result.failed == 1 and "HTTP 503" in result.errors[0][2]
        [row] = box.rows()
        assert row["attempts"] == attempt
        if attempt < 3:
            assert row["state"] == "pending"
            wait = 10 * 2 ** (attempt - 1)              # 10 s, then 20 s
            expected_next.append(wait)
            assert deliver(box, sinks, now=t + wait - 1, max_attempts=3, backoff=10).failed == 0   # not due yet
            t += wait
    assert expected_next == [10, 20]
    [row] = box.rows()
    assert row["state"] == "failed" and result.gave_up == 1 and "HTTP 503" in row["last_error"]
    assert deliver(box, sinks, now=t + 10 ** 6).failed == 0        # failed rows are not retried
    assert server.count == 3
    assert box.rows("failed") == [row] and box.rows("pending") == []


def test_backoff_is_capped(tmp_path, receiver, make_alert, monkeypatch):
    monkeypatch.setenv("T_HOOK_URL", receiver(status=500).url())
    sinks, box = webhook_sinks(tmp_path), Outbox(tmp_path / "o.sqlite")
    box.enqueue([make_alert()], ["webhook"], now=T0)
    t = T0
    for _ in range(12):
        box.deliver(sinks, timeout=1, max_attempts=100, backoff_seconds=30, max_backoff_seconds=3600, now=t)
        t += 4000
    import sqlite3
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        attempts, next_at = db.execute("SELECT attempts, next_attempt_at FROM outbox").fetchone()
    assert attempts == 12 and next_at == pytest.approx(t - 4000 + 3600)


def test_hanging_receiver_costs_one_timeout(tmp_path, hanging, make_alert, monkeypatch):
    monkeypatch.setenv("T_HOOK_URL", hanging.url("/hook"))
    sinks, box = webhook_sinks(tmp_path), Outbox(tmp_path / "o.sqlite")
    box.enqueue([make_alert(f"k{i}") for i in range(3)], ["webhook"])
    start = time.monotonic()
    result = deliver(box, sinks, timeout=0.5)
    took = time.monotonic() - start
    assert took < 0.5 + 1.5, took
    assert (result.failed, result.deferred, result.pending) == (1, 2, 3)
    assert "timed out" in result.errors[0][2]
    assert {r["state"] for r in box.rows()} == {"pending"}


def test_send_alerts_routes_by_min_severity_and_retries_older_rows(tmp_path, receiver, make_alert, monkeypatch):
    server = receiver()
    monkeypatch.setenv("T_HOOK_URL", server.url("/hook"))
    cfg = parse_alerts_config({"sinks": [{"type": "jsonl"},
                                         {"type": "webhook", "url_env": "T_HOOK_URL", "min_severity": "critical"}]})
    info, crit = make_alert("k-info", "info"), make_alert("k-crit", "critical")
    result = send_alerts(cfg, [info, crit], tmp_path)
    assert result.delivered == 3 and result.ok
    rows = Outbox(outbox_path(tmp_path)).rows()
    assert sorted((r["dedup_key"], r["sink"]) for r in rows) == [("k-crit", "jsonl"), ("k-crit", "webhook"),
                                                                 ("k-info", "jsonl")]
    assert [r["path"] for r in server.requests] == ["/hook"]
    assert (tmp_path / "alerts.jsonl").read_text().count("\n") == 2
    assert send_alerts(cfg, [info, crit], tmp_path).delivered == 0      # a re-run of the span: nothing new
    assert server.count == 1


def test_two_deliverers_never_send_a_row_twice(tmp_path, receiver, make_alert, monkeypatch):
    """Two Outbox objects (own connections, as two processes would have) deliver at once."""
    server = receiver()
    monkeypatch.setenv("T_HOOK_URL", server.url("/hook"))
    path = tmp_path / "o.sqlite"
    Outbox(path).enqueue([make_alert(f"k{i:02d}") for i in range(30)], ["webhook"])
    results = []

    def work():
        results.append(deliver(Outbox(path), webhook_sinks(tmp_path)))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r.delivered for r in results) == 30
    assert server.count == 30
    assert sorted(__import__("json").loads(r["body"])["dedup_key"] for r in server.requests) == \
        [f"k{i:02d}" for i in range(30)]


class _CrashAfterSend:
    """Sends for real, then dies before the outbox can mark the row (like a killed process)."""

    def __init__(self, sink):
        self.sink = sink

    def send(self, alert, timeout):
        self.sink.send(alert, timeout)
        raise KeyboardInterrupt


def test_crash_between_send_and_mark_resends_once_after_the_lease(tmp_path, receiver, make_alert, monkeypatch):
    server = receiver()
    monkeypatch.setenv("T_HOOK_URL", server.url("/hook"))
    sinks, box = webhook_sinks(tmp_path), Outbox(tmp_path / "o.sqlite")
    box.enqueue([make_alert()], ["webhook"], now=T0)
    with pytest.raises(KeyboardInterrupt):
        deliver(box, {"webhook": _CrashAfterSend(sinks["webhook"])}, now=T0, timeout=1)
    assert server.count == 1 and box.rows()[0]["state"] == "pending"
    assert deliver(box, sinks, now=T0 + 5, timeout=1).delivered == 0    # still leased by the "dead" sender
    assert deliver(box, sinks, now=T0 + 60, timeout=1).delivered == 1   # lease expired: resent once
    assert deliver(box, sinks, now=T0 + 120, timeout=1).delivered == 0
    assert server.count == 2
    bodies = {r["body"] for r in server.requests}
    assert len(bodies) == 1        # the same body both times: the receiver can dedupe on dedup_key


def test_unknown_sink_rows_stay_pending(tmp_path, make_alert):
    box = Outbox(tmp_path / "o.sqlite")
    box.enqueue([make_alert()], ["removed-sink"])
    result = deliver(box, {})
    assert (result.deferred, result.pending, result.ok) == (1, 1, False)
    with pytest.raises(ValueError, match="unknown state 'done'; known: pending, delivered, failed"):
        box.rows("done")


def test_delivery_defaults():
    d = DeliveryConfig()
    assert (d.timeout_seconds, d.max_attempts, d.backoff_seconds, d.max_backoff_seconds) == (5, 8, 30, 3600)
