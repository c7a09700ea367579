"""`driftguard run`: span checks -> alerts to a real webhook on 127.0.0.1 -> retraining gate ->
training -> a blessed candidate waiting for human approval -> `driftguard approve`.

Starts from a copy of the runs folder of `first_push` (version 1 trained on spans 1-2), so only
the replayed spans and one retraining run here.
"""
from __future__ import annotations

import json
import re
import shutil
import sys

import pytest

from helpers import REPO, make_config, run_cli

sys.path.insert(0, str(REPO / "tests" / "alerts"))
from alerts_servers import Receiver  # noqa: E402

pytestmark = pytest.mark.tfx


@pytest.fixture(scope="session")
def loop(first_push, workspace):
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-3000:]
    runs = workspace / "runs-loop"
    shutil.copytree(workspace / "runs", runs, ignore=shutil.ignore_patterns("state.json", "alerts*", "outbox*"))
    receiver = Receiver()
    cfg = make_config(workspace, "loop", runs=str(runs),
                      # bless any candidate above AUC 0.7, whatever the serving model's AUC
                      evaluation={"metrics": {"AUC": {"min": 0.7, "baseline_tolerance": 1.0}}},
                      retrain={"require_approval": True},
                      alerts={"sinks": [{"type": "jsonl"},
                                        {"type": "webhook", "url_env": "DG_TEST_WEBHOOK",
                                         "min_severity": "critical"}]})
    env = {"DG_TEST_WEBHOOK": receiver.url("/hook")}
    proc = run_cli("run", "--spans", "7,8", config=cfg, env=env)
    yield {"config": cfg, "proc": proc, "runs": runs, "receiver": receiver, "env": env}
    receiver.close()


def _hook_alerts(receiver):
    return [json.loads(r["body"]) for r in receiver.requests]


def test_run_prints_one_row_per_span_and_records_state(loop):
    proc = loop["proc"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout
    assert "span  7 | no drift" in out, out
    assert "span  8 | DRIFT: fare psi=" in out, out
    assert "candidate c1 waits for approval" in out and "serving v1" in out
    rows = json.loads((loop["runs"] / "state.json").read_text())["spans"]
    assert [r["span"] for r in rows] == [7, 8]
    assert rows[0]["decision"]["retrain"] is False and rows[1]["decision"]["retrain"] is True
    assert rows[1]["decision"]["spans"] == [7, 8]
    assert rows[1]["metric"] == "accuracy" and rows[1]["realized"] is not None and rows[1]["estimated"] is not None
    # the estimate's 95 % interval and the shift-aware estimate with its own, for the dashboard
    assert rows[1]["estimated_low"] < rows[1]["estimated"] < rows[1]["estimated_high"]
    assert rows[1]["estimated_shift_aware_low"] <= rows[1]["estimated_shift_aware"] <= rows[1]["estimated_shift_aware_high"]
    assert re.search(r"estimated 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\] \([+-]", out), out


def test_critical_alerts_reach_the_webhook_and_all_alerts_the_log(loop):
    hooks = _hook_alerts(loop["receiver"])
    assert hooks, "no alert reached the webhook"
    assert all(a["severity"] == "critical" for a in hooks)
    assert {a["labels"]["span"] for a in hooks} == {"8"}
    assert any(a["rule"] == "feature_psi" and a["labels"].get("feature") == "fare" for a in hooks)
    logged = [json.loads(line) for line in (loop["runs"] / "alerts.jsonl").read_text().splitlines()]
    assert {a["dedup_key"] for a in hooks} <= {a["dedup_key"] for a in logged}
    assert len(logged) >= len(hooks)


def test_rerun_raises_no_duplicate_then_approval_publishes_version_2(loop):
    cfg, env, receiver = loop["config"], loop["env"], loop["receiver"]
    before = len(receiver.requests)
    again = run_cli("run", "--spans", "7,8", config=cfg, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already replayed" in again.stdout
    check = run_cli("check", "--span", 8, config=cfg, env=env)
    assert check.returncode == 1, check.stderr[-3000:]
    assert "ALERT [critical]" in check.stdout and "0 delivered now" in check.stdout
    assert len(receiver.requests) == before  # same span, same alerts: deduplicated

    status = run_cli("status", config=cfg)
    assert "serving:  taxi version 1" in status.stdout and "candidate c1" in status.stdout
    bad = run_cli("approve", "../1", config=cfg)
    assert bad.returncode == 2 and "is not a candidate id" in bad.stderr
    ok = run_cli("approve", "c1", config=cfg)
    assert ok.returncode == 0, ok.stderr
    assert "version 2" in ok.stdout
    registry = loop["runs"] / "serving" / "taxi"
    assert (registry / "2" / "saved_model.pb").is_file()
    assert json.loads((registry / "2" / "profile" / "profile.json").read_text())["spans"] == [7, 8]
    status = run_cli("status", config=cfg)
    assert "serving:  taxi version 2" in status.stdout and "pending:  none" in status.stdout
