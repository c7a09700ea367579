"""Secrets never leave the environment: not in the outbox file (and its WAL), the JSON-lines
file, logs, CLI output or error messages, after failing and succeeding deliveries."""
import logging
import types

import click
from click.testing import CliRunner

from driftguard.components.alerts import Outbox, evaluate, outbox_path, parse_alerts_config, send_alerts
from driftguard.components.alerts import cli as alerts_cli

HOOK_TOKEN = "hooktoken-Zq81xW"
SLACK_TOKEN = "slacktoken-Pp93kL"
HMAC_SECRET = "hmacsecret-Yy27vB"
SMTP_PASSWORD = "smtppassword-Rt55nM"
SECRETS = (HOOK_TOKEN, SLACK_TOKEN, HMAC_SECRET, SMTP_PASSWORD)


def test_secrets_stay_out_of_files_logs_and_output(tmp_path, receiver, mailbox, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    hook = receiver(status=503, echo_path=True)       # the failure reply quotes the secret URL path back
    slack = receiver(status=500, echo_path=True)
    box = mailbox(user="bot", password=SMTP_PASSWORD)
    monkeypatch.setenv("T_HOOK_URL", hook.url(f"/hooks/{HOOK_TOKEN}"))
    monkeypatch.setenv("T_HOOK_SECRET", HMAC_SECRET)
    monkeypatch.setenv("T_SLACK_URL", slack.url(f"/services/T0/B0/{SLACK_TOKEN}"))
    monkeypatch.setenv("T_SMTP_USER", "bot")
    monkeypatch.setenv("T_SMTP_PASSWORD", SMTP_PASSWORD + "-wrong")
    data = {"sinks": [{"type": "jsonl"},
                      {"type": "webhook", "url_env": "T_HOOK_URL", "hmac_secret_env": "T_HOOK_SECRET"},
                      {"type": "slack", "url_env": "T_SLACK_URL"},
                      {"type": "email", "port": box.port, "sender": "a@b.c", "to": ["c@d.e"],
                       "username_env": "T_SMTP_USER", "password_env": "T_SMTP_PASSWORD"}],
            "delivery": {"timeout_seconds": 2, "backoff_seconds": 0}}
    cfg = parse_alerts_config(data)
    alerts = evaluate(cfg, model="taxi", span=8, drift_report=None,
                      monitor={"performance": {"task": "binary", "metric": "accuracy", "baseline": {"accuracy": 0.9},
                                               "realized": {"accuracy": 0.5}}})

    failing = send_alerts(cfg, alerts, tmp_path)
    assert failing.failed == 3 and failing.delivered == 1      # jsonl ok; webhook, slack, email fail
    errors = " | ".join(e[2] for e in failing.errors)
    assert "HTTP 503" in errors and "HTTP 500" in errors and "SMTPAuthenticationError" in errors

    @click.group()
    @click.pass_context
    def main(ctx):
        ctx.ensure_object(dict)
        ctx.obj["load_config"] = lambda: types.SimpleNamespace(alerts=cfg, runs_path=tmp_path)

    main.add_command(alerts_cli.alerts)
    runner = CliRunner()
    outputs = [runner.invoke(main, ["alerts", "test"]).output,
               runner.invoke(main, ["alerts", "list"]).output,
               runner.invoke(main, ["alerts", "list", "--json"]).output]

    hook.status = slack.status = 200
    monkeypatch.setenv("T_SMTP_PASSWORD", SMTP_PASSWORD)
    outputs.append(runner.invoke(main, ["alerts", "deliver"]).output)
    outputs.append(runner.invoke(main, ["alerts", "test"]).output)
    assert outputs[-2].strip().startswith("delivered 3, failed 0"), outputs[-2]
    assert {r["state"] for r in Outbox(outbox_path(tmp_path)).rows()} == {"delivered"}
    assert hook.requests[-1]["headers"]["X-Driftguard-Signature"].startswith("sha256=")
    assert len(box.messages) == 2      # the delivered alert and the second `alerts test`

    blobs = {"cli output": "\n".join(outputs).encode(), "logs": caplog.text.encode(),
             "errors": errors.encode()}
    for f in sorted((tmp_path / "alerts").iterdir()) + [tmp_path / "alerts.jsonl"]:
        blobs[f.name] = f.read_bytes()       # outbox.sqlite, outbox.sqlite-wal, -shm, alerts.jsonl
    assert "outbox.sqlite" in blobs and "alerts.jsonl" in blobs
    for name, blob in blobs.items():
        for secret in SECRETS:
            assert secret.encode() not in blob, f"{secret} found in {name}"
