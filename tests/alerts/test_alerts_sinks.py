"""Sinks against real receivers on 127.0.0.1: HTTP (webhook, Slack, Alertmanager), SMTP, a
socket that never answers, and the JSON-lines file."""
import email
import email.policy
import hashlib
import hmac
import json
import time

import pytest

from driftguard.components.alerts.config import parse_alerts_config
from driftguard.components.alerts.sinks import (AlertmanagerSink, DeliveryError, EmailSink, JsonlSink, SlackSink, WebhookSink,
                                     build_sinks)


def sink_of(data, tmp_path=None):
    cfg = parse_alerts_config({"sinks": [data]})
    return next(iter(build_sinks(cfg, tmp_path or "/nonexistent").values()))


def test_webhook_posts_the_alert_json_with_a_verifiable_hmac(receiver, make_alert, monkeypatch):
    r = receiver()
    monkeypatch.setenv("T_HOOK_URL", r.url("/hooks/driftguard?x=1"))
    monkeypatch.setenv("T_HOOK_SECRET", "s3cr3t-key")
    sink = sink_of({"type": "webhook", "url_env": "T_HOOK_URL", "hmac_secret_env": "T_HOOK_SECRET"})
    assert isinstance(sink, WebhookSink)
    alert = make_alert()
    sink.send(alert, timeout=2)
    [req] = r.requests
    assert req["path"] == "/hooks/driftguard?x=1"
    assert req["headers"]["Content-Type"] == "application/json"
    assert json.loads(req["body"]) == alert.to_dict()
    expected = hmac.new(b"s3cr3t-key", req["body"], hashlib.sha256).hexdigest()
    assert req["headers"]["X-Driftguard-Signature"] == f"sha256={expected}"
    assert not hmac.compare_digest(req["headers"]["X-Driftguard-Signature"],
                                   "sha256=" + hmac.new(b"other", req["body"], hashlib.sha256).hexdigest())


def test_webhook_without_secret_sends_no_signature(receiver, make_alert, monkeypatch):
    r = receiver()
    monkeypatch.setenv("T_HOOK_URL", r.url("/h"))
    sink_of({"type": "webhook", "url_env": "T_HOOK_URL"}).send(make_alert(), timeout=2)
    assert "X-Driftguard-Signature" not in r.requests[0]["headers"]


def test_slack_incoming_webhook_format(receiver, make_alert, monkeypatch):
    r = receiver()
    monkeypatch.setenv("T_SLACK_URL", r.url("/services/T0/B0/xyz"))
    sink = sink_of({"type": "slack", "url_env": "T_SLACK_URL"})
    assert isinstance(sink, SlackSink)
    alert = make_alert(severity="critical")
    sink.send(alert, timeout=2)
    [req] = r.requests
    assert req["path"] == "/services/T0/B0/xyz" and req["headers"]["Content-Type"] == "application/json"
    body = json.loads(req["body"])
    assert body["text"] == f"[critical] {alert.title}"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": alert.title}
    assert body["blocks"][1]["text"] == {"type": "mrkdwn", "text": alert.summary}
    assert alert.dedup_key in body["blocks"][2]["elements"][0]["text"]


def test_alertmanager_v2_format(receiver, make_alert, monkeypatch):
    r = receiver()
    monkeypatch.setenv("T_AM_URL", r.url("/am/"))     # base URL; the trailing slash is tolerated
    sink = sink_of({"type": "alertmanager", "url_env": "T_AM_URL"})
    assert isinstance(sink, AlertmanagerSink)
    alert = make_alert()
    sink.send(alert, timeout=2)
    [req] = r.requests
    assert req["path"] == "/am/api/v2/alerts" and req["headers"]["Content-Type"] == "application/json"
    [am] = json.loads(req["body"])
    assert am["labels"] == {"alertname": "DriftguardDatasetDrift", "severity": "warning", "source": "driftguard",
                            "model": "taxi", "span": "8", "rule": "dataset_drift"}
    assert am["annotations"]["summary"] == alert.title and am["annotations"]["description"] == alert.summary
    assert am["startsAt"] == "2026-11-25T21:26:48Z"
    assert all(isinstance(v, str) for v in am["labels"].values())


@pytest.mark.parametrize("status", [503, 404, 302])
def test_non_2xx_is_a_failure(receiver, make_alert, monkeypatch, status):
    r = receiver(status=status)
    monkeypatch.setenv("T_HOOK_URL", r.url("/h"))
    with pytest.raises(DeliveryError, match=rf"^webhook: HTTP {status} from \$T_HOOK_URL"):
        sink_of({"type": "webhook", "url_env": "T_HOOK_URL"}).send(make_alert(), timeout=2)
    assert r.count == 1


def test_missing_env_var_names_the_variable(make_alert, monkeypatch):
    monkeypatch.delenv("T_NOT_SET_URL", raising=False)
    with pytest.raises(DeliveryError, match=r"^slack: environment variable T_NOT_SET_URL .* is not set$"):
        sink_of({"type": "slack", "url_env": "T_NOT_SET_URL"}).send(make_alert(), timeout=2)


def test_not_a_url(make_alert, monkeypatch):
    monkeypatch.setenv("T_HOOK_URL", "ftp://files.example/secretpath")
    with pytest.raises(DeliveryError, match=r"\$T_HOOK_URL is not a usable http\(s\) URL") as e:
        sink_of({"type": "webhook", "url_env": "T_HOOK_URL"}).send(make_alert(), timeout=2)
    assert "secretpath" not in str(e.value)


def test_hanging_receiver_times_out(hanging, make_alert, monkeypatch):
    monkeypatch.setenv("T_HOOK_URL", hanging.url("/h"))
    start = time.monotonic()
    with pytest.raises(DeliveryError, match=r"POST failed .*(timed out|Timeout)"):
        sink_of({"type": "webhook", "url_env": "T_HOOK_URL"}).send(make_alert(), timeout=0.5)
    assert time.monotonic() - start < 3
    assert hanging.accepted   # the connection was accepted: this was a read timeout, not a refused connect


def test_email_arrives_with_subject_and_body(mailbox, make_alert):
    box = mailbox()
    sink = sink_of({"type": "email", "host": "127.0.0.1", "port": box.port, "sender": "driftguard@example.org",
                    "to": ["oncall@example.org", "ml@example.org"]})
    assert isinstance(sink, EmailSink)
    alert = make_alert()
    sink.send(alert, timeout=2)
    [m] = box.messages
    assert m["from"] == "driftguard@example.org" and m["to"] == ["oncall@example.org", "ml@example.org"]
    msg = email.message_from_bytes(m["data"], policy=email.policy.default)
    assert msg["Subject"] == alert.title
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content().replace("\r\n", "\n")
    assert "line one\nline two" in body and alert.dedup_key in body


def test_email_login(mailbox, make_alert, monkeypatch):
    box = mailbox(user="bot", password="pw-123")
    monkeypatch.setenv("T_SMTP_USER", "bot")
    monkeypatch.setenv("T_SMTP_PASSWORD", "pw-123")
    sink = sink_of({"type": "email", "port": box.port, "sender": "a@b.c", "to": ["c@d.e"],
                    "username_env": "T_SMTP_USER", "password_env": "T_SMTP_PASSWORD"})
    sink.send(make_alert(), timeout=2)
    assert len(box.messages) == 1
    monkeypatch.setenv("T_SMTP_PASSWORD", "wrong-pw-456")
    with pytest.raises(DeliveryError, match=r"^email: SMTP 127\.0\.0\.1:\d+: SMTPAuthenticationError") as e:
        sink.send(make_alert(), timeout=2)
    assert "wrong-pw-456" not in str(e.value)
    assert len(box.messages) == 1


def test_email_server_down(make_alert):
    from alerts_servers import free_port

    sink = sink_of({"type": "email", "port": free_port(), "sender": "a@b.c", "to": ["c@d.e"]})
    with pytest.raises(DeliveryError, match=r"^email: SMTP 127\.0\.0\.1:\d+: ConnectionRefusedError"):
        sink.send(make_alert(), timeout=1)


def test_jsonl_appends_one_line_per_alert(tmp_path, make_alert):
    sink = sink_of({"type": "jsonl", "path": "sub/alerts.jsonl"}, tmp_path)
    assert isinstance(sink, JsonlSink) and sink.path == tmp_path / "sub" / "alerts.jsonl"
    a, b = make_alert("k1"), make_alert("k2")
    sink.send(a, timeout=1)
    sink.send(b, timeout=1)
    lines = (tmp_path / "sub" / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [a.to_dict(), b.to_dict()]


def test_jsonl_unwritable_is_a_delivery_error(tmp_path, make_alert):
    (tmp_path / "file").write_text("")
    with pytest.raises(DeliveryError, match=r"^jsonl: cannot append to"):
        sink_of({"type": "jsonl", "path": str(tmp_path / "file" / "alerts.jsonl")}).send(make_alert(), timeout=1)
