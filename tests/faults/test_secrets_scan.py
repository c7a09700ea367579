"""Secrets (webhook URLs, HMAC secrets, SMTP passwords, Alertmanager credentials) live only in
the environment: after real flows that used them, no file under the runs folder (logs,
artifacts, MLMD, reports, state, the outbox and its WAL, the alert log) and no line of any
command's stdout or stderr contains one.

The secrets are random markers made for this session. Receivers on 127.0.0.1 first fail with
replies that quote the secret URL path back (so error handling is exercised), then accept;
each test checks the secrets really reached the receivers, so an empty scan means something.

- without TFX: `check`'s alert delivery (driftguard.pipeline.loop.deliver_alerts with logging to runs/logs,
  on the alerts a real span-8 drift report raises), `alerts test|list|deliver`, `status`;
- with the session's training run (`first_push`, run with secrets in its environment under the
  names the sinks read; tests/conftest.py): every file it wrote, plus `driftguard run` (nothing
  to replay: logs, reports, state) and the alert flow again on a copy of its runs folder.
"""
from __future__ import annotations

import base64
import gzip
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import textwrap
from typing import Dict, List

import pytest

from helpers import DRIFTGUARD, REPO, write_config, ws_data

sys.path.insert(0, str(REPO / "tests" / "alerts"))
from alerts_servers import Mailbox, Receiver  # noqa: E402

SPAN8_REPORT = REPO / "tests" / "alerts" / "span8_report.json"

DELIVER = textwrap.dedent("""
    # What `driftguard check` does after the span check: log to runs/logs, queue and deliver.
    import json, sys
    from driftguard.components.alerts import evaluate
    from driftguard.pipeline import cli_support, config, loop
    cfg = config.load(sys.argv[1])
    cli_support.setup_logging(cfg.runs_path, "check-span8", verbose=True)
    report = json.loads(open(sys.argv[2]).read())
    alerts = evaluate(cfg.alerts_settings, model="taxi", span=8, drift_report=report,
                      monitor={"status": "monitored", "performance": {
                          "task": "binary", "metric": "accuracy", "baseline": {"accuracy": 0.9},
                          "realized": {"accuracy": 0.5}}})
    print(loop.deliver_alerts(cfg, [a.to_dict() for a in alerts]))
""")


class Outputs:
    def __init__(self):
        self.items: List[tuple] = []

    def run(self, *args, config, env, code=None):
        cmd = [sys.executable, "-c", code] if code else list(DRIFTGUARD) + ["--config", str(config)]
        proc = subprocess.run(cmd + [str(a) for a in args], cwd=REPO, capture_output=True, text=True,
                              timeout=300, env={**os.environ, **env})
        self.items.append((" ".join(map(str, args)) or "deliver", proc.stdout + proc.stderr))
        return proc


def _markers() -> Dict[str, str]:
    return {k: f"dgsecret{secrets.token_hex(8)}" for k in ("hook", "hmac", "slack", "am", "smtp")}


def _alert_flow(runs: pathlib.Path, tmp_path: pathlib.Path, outputs: Outputs,
                data_root: pathlib.Path = REPO / "data" / "taxi"):
    """Every alert path with secrets from the environment; returns (secrets used, final env)."""
    m = _markers()
    hook, slack, am = (Receiver(status=503, echo_path=True), Receiver(status=500, echo_path=True),
                       Receiver(status=500, echo_path=True))
    box = Mailbox(user="bot", password=m["smtp"])
    try:
        env = {"T_HOOK_URL": hook.url(f"/hooks/{m['hook']}"), "T_HOOK_SECRET": m["hmac"],
               "T_SLACK_URL": slack.url(f"/services/T0/B0/{m['slack']}"),
               "T_AM_URL": f"http://am:{m['am']}@127.0.0.1:{am.port}",
               "T_SMTP_USER": "bot", "T_SMTP_PASSWORD": m["smtp"] + "-wrong"}
        cfg = write_config(tmp_path / "secrets.json", runs=str(runs), data={"root": str(data_root)},
                           first_spans=[1, 2], replay_spans=[], alerts={
                               "sinks": [{"type": "jsonl"},
                                         {"type": "webhook", "url_env": "T_HOOK_URL", "hmac_secret_env": "T_HOOK_SECRET"},
                                         {"type": "slack", "url_env": "T_SLACK_URL"},
                                         {"type": "alertmanager", "url_env": "T_AM_URL"},
                                         {"type": "email", "port": box.port, "sender": "dg@example.org",
                                          "to": ["oncall@example.org"], "username_env": "T_SMTP_USER",
                                          "password_env": "T_SMTP_PASSWORD"}],
                               "delivery": {"timeout_seconds": 2, "backoff_seconds": 0}})
        failing = outputs.run(cfg, SPAN8_REPORT, config=cfg, env=env, code=DELIVER)
        assert failing.returncode == 0, failing.stderr[-2000:]
        assert "HTTP 503" in failing.stdout and "pending in the outbox" in failing.stdout, failing.stdout
        outputs.run("alerts", "test", config=cfg, env=env)
        outputs.run("alerts", "list", config=cfg, env=env)
        outputs.run("alerts", "list", "--json", config=cfg, env=env)
        outputs.run("status", config=cfg, env=env)

        hook.status = slack.status = am.status = 200
        env["T_SMTP_PASSWORD"] = m["smtp"]
        delivered = outputs.run("alerts", "deliver", config=cfg, env=env)
        assert delivered.returncode == 0 and "failed 0" in delivered.stdout, delivered.stdout + delivered.stderr
        ok = outputs.run("alerts", "test", config=cfg, env=env)
        assert ok.returncode == 0, ok.stdout

        # The secrets were live: each receiver got what only the environment held.
        assert any(m["hook"] in r["path"] for r in hook.requests)
        assert any(r["headers"].get("X-Driftguard-Signature", "").startswith("sha256=") for r in hook.requests)
        assert any(m["slack"] in r["path"] for r in slack.requests)
        basic = "Basic " + base64.b64encode(f"am:{m['am']}".encode()).decode()
        assert any(r["headers"].get("Authorization") == basic for r in am.requests)
        assert box.messages, "the SMTP login with the right password delivered nothing"
    finally:
        for s in (hook, slack, am, box):
            s.close()
    m["am_basic"] = base64.b64encode(f"am:{m['am']}".encode()).decode()
    return m, env


def _scan(runs: pathlib.Path, outputs: Outputs, secret_values) -> int:
    """Assert no secret in any file under ``runs`` (gzip members decompressed) or output; return
    the number of files read."""
    needles = [s.encode() for s in secret_values]
    blobs = {f"output of `{name}`": text.encode() for name, text in outputs.items}
    files = [p for p in sorted(runs.rglob("*")) if p.is_file()]
    for p in files:
        data = p.read_bytes()
        blobs[str(p.relative_to(runs))] = data
        if data[:2] == b"\x1f\x8b":
            try:
                blobs[f"{p.relative_to(runs)} (gunzipped)"] = gzip.decompress(data)
            except (OSError, EOFError):
                pass
    found = [(name, n.decode()) for name, blob in blobs.items() for n in needles if n in blob]
    assert not found, f"secrets found: {found[:5]}"
    return len(files)


def test_alert_flows_leave_no_secret_in_files_logs_or_output(tmp_path):
    runs = tmp_path / "runs"
    outputs = Outputs()
    used, _ = _alert_flow(runs, tmp_path, outputs)
    kinds = {p.name for p in runs.rglob("*")}
    assert {"outbox.sqlite", "alerts.jsonl"} <= kinds and any(p.suffix == ".log" for p in runs.rglob("*"))
    log = next((runs / "logs").glob("*.log")).read_text()
    assert "HTTP 503" in log                     # the failures were logged, scrubbed
    scanned = _scan(runs, outputs, used.values())
    print(f"\nscanned {scanned} files under the runs folder and {len(outputs.items)} command outputs")


@pytest.mark.tfx
def test_a_training_run_and_a_replay_leave_no_secret(first_push, workspace, tmp_path):
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-2000:]
    runs = tmp_path / "runs"
    shutil.copytree(workspace / "runs", runs, ignore=shutil.ignore_patterns(".driftguard.lock"))
    outputs = Outputs()
    outputs.items.append(("first_push train", first_push["proc"].stdout + first_push["proc"].stderr))
    used, env = _alert_flow(runs, tmp_path, outputs, data_root=ws_data(workspace))
    replay = outputs.run("run", config=tmp_path / "secrets.json", env={**env, **first_push["secret_env"]})
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert "no spans to replay" in replay.stdout and "dashboard:" in replay.stdout
    assert (runs / "metadata.sqlite").exists() and (runs / "reports" / "index.html").exists()
    values = list(used.values()) + [v for v in first_push["secret_env"].values()]
    values += [v.split("dgsecret", 1)[1] for v in first_push["secret_env"].values()]   # the token alone
    scanned = _scan(runs, outputs, values)
    print(f"\nscanned {scanned} files (MLMD, artifacts, model, logs, reports, outbox) and "
          f"{len(outputs.items)} command outputs")
