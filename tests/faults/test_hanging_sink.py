"""An alert receiver that hangs: every delivery attempt ends within `alerts.delivery.timeout_seconds`
in total (connect, request and reply together), the span check goes on, the alert stays queued
in the outbox, and a later `driftguard alerts deliver` to a working receiver delivers it once.

Real servers on 127.0.0.1: one that accepts and never answers (tests/alerts/alerts_servers.py),
one that answers a line every 0.2 s forever (HTTP headers / an SMTP greeting) so that no single
read ever times out, and a listener with a full accept queue, where connect() itself hangs.
Durations are printed, not asserted; the subprocess timeouts only guard against a hang.
"""
from __future__ import annotations

import json
import sys
import time

import pytest

from helpers import REPO, run_cli, write_config

sys.path.insert(0, str(REPO / "tests" / "alerts"))
from alerts_servers import Hanging, Receiver  # noqa: E402
from fault_servers import Dripping, Unreachable  # noqa: E402

TIMEOUT = 1.0


@pytest.fixture
def servers():
    started = []

    def start(cls, *args):
        s = cls(*args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def _sinks(http_url_env: str, smtp_port: int):
    return [{"type": "webhook", "url_env": http_url_env},
            {"type": "slack", "url_env": http_url_env},
            {"type": "alertmanager", "url_env": http_url_env},
            {"type": "email", "host": "127.0.0.1", "port": smtp_port, "sender": "dg@example.org",
             "to": ["oncall@example.org"]}]


def _alerts_test(tmp_path, sinks, env):
    cfg = write_config(tmp_path / "c.json", runs=str(tmp_path / "runs"),
                       alerts={"sinks": sinks, "delivery": {"timeout_seconds": TIMEOUT}})
    t0 = time.monotonic()
    proc = run_cli("alerts", "test", config=cfg, env=env, timeout=120)
    return proc, time.monotonic() - t0


def test_every_network_sink_gives_up_on_a_receiver_that_never_answers(tmp_path, servers):
    hanging = servers(Hanging)
    proc, took = _alerts_test(tmp_path, _sinks("T_HANG_URL", hanging.port), {"T_HANG_URL": hanging.url("/h")})
    print(f"\n4 sinks against a silent receiver, timeout {TIMEOUT:g} s each: `alerts test` took {took:.1f} s")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    for name in ("webhook", "slack", "alertmanager", "email"):
        assert "FAILED" in lines[name] and "timed out" in lines[name], proc.stdout
    assert len(hanging.accepted) >= 4      # each one connected: these were reply timeouts


def test_a_receiver_that_drips_is_cut_at_the_total_deadline(tmp_path, servers):
    http = servers(Dripping, "http", 0.2)
    smtp = servers(Dripping, "smtp", 0.2)
    sinks = [_sinks("T_DRIP_URL", smtp.port)[0], _sinks("T_DRIP_URL", smtp.port)[3]]
    proc, took = _alerts_test(tmp_path, sinks, {"T_DRIP_URL": http.url("/h")})
    print(f"\n2 sinks against receivers answering a line every 0.2 s: `alerts test` took {took:.1f} s "
          f"(HTTP server sent {http.bytes_sent} bytes, SMTP server {smtp.bytes_sent})")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()}
    assert "no complete reply within 1 s (connect, request and reply: the limit for the whole attempt)" \
        in lines["webhook"], proc.stdout
    assert "the SMTP exchange took longer than 1 s (the limit for the whole attempt)" in lines["email"], proc.stdout
    # Several lines arrived, each well inside the 1 s socket timeout: only the total deadline ended them.
    assert http.bytes_sent > 3 * len("X-Drip: .\r\n") and smtp.bytes_sent > 3 * len("220-still greeting\r\n")


def test_a_connect_that_never_completes_times_out(tmp_path, servers):
    target = servers(Unreachable)
    if not target.full:
        pytest.skip("this kernel accepted a connection past a full listen queue, so connect() cannot be "
                    "made to hang on loopback here")
    cfg_sinks = [_sinks("T_UNREACHABLE_URL", target.port)[0]]
    proc, took = _alerts_test(tmp_path, cfg_sinks, {"T_UNREACHABLE_URL": target.url("/h")})
    print(f"\nconnect() to a full listen queue: `alerts test` took {took:.1f} s")
    assert proc.returncode == 1
    assert "webhook" in proc.stdout and "timed out" in proc.stdout, proc.stdout


def test_the_check_goes_on_the_alert_stays_queued_then_is_delivered_once(tmp_path, servers, monkeypatch):
    """driftguard.pipeline.loop.deliver_alerts is what `check` and `run` call after the span check."""
    from driftguard.components.alerts import Alert, Outbox, outbox_path
    from driftguard.pipeline import config, loop

    hanging = servers(Hanging)
    monkeypatch.setenv("T_HOOK_URL", hanging.url("/hook"))
    cfg = config.load(write_config(
        tmp_path / "c.json", runs=str(tmp_path / "runs"),
        alerts={"sinks": [{"type": "webhook", "url_env": "T_HOOK_URL"}],
                "delivery": {"timeout_seconds": TIMEOUT, "backoff_seconds": 0}}))
    alert = Alert(rule="feature_psi", severity="critical", title="taxi span 8: fare PSI 0.31 > 0.2",
                  summary="fare drifted", labels={"model": "taxi", "span": "8"}, dedup_key="taxi/span-8/feature_psi/fare")
    t0 = time.monotonic()
    text = loop.deliver_alerts(cfg, [alert.to_dict()])        # returns: the check goes on
    print(f"\ndelivery to a silent webhook returned after {time.monotonic() - t0:.1f} s: {text!r}")
    assert text.startswith("1 alert(s); 0 delivered now, 1 pending in the outbox")
    assert "sink webhook: webhook: POST failed ($T_HOOK_URL): AttemptTimeout: timed out" in text or \
        "sink webhook: webhook: POST failed ($T_HOOK_URL): TimeoutError: timed out" in text, text
    [row] = Outbox(outbox_path(cfg.runs_path)).rows()
    assert row["state"] == "pending" and row["attempts"] == 1 and "timed out" in row["last_error"]

    receiver = servers(Receiver)
    env = {"T_HOOK_URL": receiver.url("/hook")}
    cfg_file = tmp_path / "c.json"
    first = run_cli("alerts", "deliver", config=cfg_file, env=env, timeout=120)
    second = run_cli("alerts", "deliver", config=cfg_file, env=env, timeout=120)
    assert first.returncode == 0 and "delivered 1, failed 0" in first.stdout, first.stdout + first.stderr
    assert second.returncode == 0 and "delivered 0, failed 0" in second.stdout
    assert receiver.count == 1
    assert json.loads(receiver.requests[0]["body"])["dedup_key"] == "taxi/span-8/feature_psi/fare"
    [row] = Outbox(outbox_path(cfg.runs_path)).rows()
    assert row["state"] == "delivered" and row["attempts"] == 2
