"""`driftguard alerts test|list|deliver` through a tiny click group that provides
ctx.obj["load_config"] the way the main CLI does."""
import json
import pathlib
import types

import click
from click.testing import CliRunner

from alerts_servers import free_port
from driftguard.components.alerts import cli as alerts_cli
from driftguard.components.alerts import Outbox, outbox_path, parse_alerts_config


def make_main(runs_path: pathlib.Path, alerts_data):
    @click.group()
    @click.pass_context
    def main(ctx):
        ctx.ensure_object(dict)
        ctx.obj["load_config"] = lambda: types.SimpleNamespace(
            alerts=parse_alerts_config(alerts_data), runs_path=runs_path, model_name="taxi")

    main.add_command(alerts_cli.alerts)
    return main


def invoke(main, *args):
    return CliRunner().invoke(main, ["alerts", *args], catch_exceptions=False)


def test_test_command_reports_each_sink(tmp_path, receiver, monkeypatch):
    server = receiver()
    monkeypatch.setenv("T_HOOK_URL", server.url("/hook"))
    monkeypatch.setenv("T_DOWN_URL", f"http://127.0.0.1:{free_port()}/x")
    monkeypatch.delenv("T_UNSET_URL", raising=False)
    main = make_main(tmp_path, {"sinks": [{"type": "jsonl"}, {"type": "webhook", "url_env": "T_HOOK_URL"},
                                          {"type": "slack", "url_env": "T_DOWN_URL"},
                                          {"type": "alertmanager", "url_env": "T_UNSET_URL"}]})
    result = invoke(main, "test")
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert lines[0].split() == ["jsonl", "jsonl", "ok"]
    assert lines[1].split() == ["webhook", "webhook", "ok"]
    assert lines[2].startswith("slack") and "FAILED: slack: POST failed ($T_DOWN_URL): ConnectionRefusedError" in lines[2]
    assert "FAILED: alertmanager: environment variable T_UNSET_URL" in lines[3]
    [req] = server.requests
    sent = json.loads(req["body"])
    assert sent["rule"] == "test" and sent["dedup_key"].startswith("taxi/test/")
    assert not outbox_path(tmp_path).exists()                   # direct, not through the outbox
    # a unique key each time: a second test is not deduplicated away
    invoke(main, "test")
    assert server.count == 2 and json.loads(server.requests[1]["body"])["dedup_key"] != sent["dedup_key"]


def test_test_command_exit_0_when_all_ok(tmp_path):
    result = invoke(make_main(tmp_path, None), "test")
    assert result.exit_code == 0 and result.output.split() == ["jsonl", "jsonl", "ok"]
    assert (tmp_path / "alerts.jsonl").exists()


def test_list_and_deliver(tmp_path, receiver, make_alert, monkeypatch):
    port = free_port()
    monkeypatch.setenv("T_HOOK_URL", f"http://127.0.0.1:{port}/hook")
    main = make_main(tmp_path, {"sinks": [{"type": "webhook", "url_env": "T_HOOK_URL"}],
                                "delivery": {"timeout_seconds": 1, "backoff_seconds": 0}})
    assert invoke(main, "list").output.startswith("no alerts")
    assert invoke(main, "deliver").output.startswith("outbox is empty")
    box = Outbox(outbox_path(tmp_path))
    box.enqueue([make_alert("taxi/span-8/a"), make_alert("taxi/span-8/b")], ["webhook"])

    result = invoke(main, "deliver")                     # receiver down
    assert result.exit_code == 1
    assert "FAILED taxi/span-8/a -> webhook: webhook: POST failed" in result.output
    assert result.output.splitlines()[-1] == "delivered 0, failed 1 (gave up 0), deferred 1, pending 2"
    table = invoke(main, "list", "--state", "pending").output
    assert table.splitlines()[0].split() == ["id", "state", "sink", "tries", "severity", "created",
                                             "delivered/next", "dedup_key"]
    assert "#1 last error: webhook: POST failed" in table

    server = receiver(port=port)
    result = invoke(main, "deliver")
    assert result.exit_code == 0 and result.output.strip() == "delivered 2, failed 0 (gave up 0), deferred 0, pending 0"
    assert server.count == 2
    rows = json.loads(invoke(main, "list", "--json").output)
    assert [(r["dedup_key"], r["state"], r["attempts"]) for r in rows] == [("taxi/span-8/a", "delivered", 2),
                                                                          ("taxi/span-8/b", "delivered", 1)]
    assert json.loads(invoke(main, "list", "--state", "failed", "--json").output) == []
    assert invoke(main, "list", "--state", "nope").exit_code == 2
