"""driftguard monitor decides a rollout: champion against challenger on the same traffic, the
decision applied to the registry's labels once, with one notification, across SIGKILL.

The logs are written the way serve writes them under a rollout (tests/serving/test_serve_rollout.py
checks the server's side): canary, one record per request, 20 % of the ids answered by the
challenger; shadow, the champion's record then the challenger's, with the same request id.
Both versions are the first_push model; a version made worse has its output flipped
(``1 - p``) on some records, as a broken candidate would.
"""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from helpers import DRIFTGUARD, REPO
from test_monitor import load, outcome, state_dir_of, traffic, two_versions, write_labels  # noqa: F401

pytestmark = pytest.mark.tfx

N_CANARY, N_SHADOW = 3000, 2000
ROLLOUT = {"min_labels": 300, "check_every": 100, "margin": 0.02}


def _log(directory, records):
    """records: (version, example, probability, request id), in log order."""
    from driftguard.serving import predictlog as pl

    with pl.PredictionLogWriter(directory) as w:
        for i, (version, example, prob, rid) in enumerate(records):
            w.write(pl.make_predict_log("taxi", version, [example],
                                        {"probabilities": np.full((1, 1), prob, np.float32)}, [rid],
                                        timestamp=1_700_000_000 + i))


@pytest.fixture(scope="module")
def canary(tmp_path_factory, traffic):  # noqa: F811
    """Every 5th request answered by the challenger, whose output is flipped."""
    root = tmp_path_factory.mktemp("canary")
    ex, prob, y = traffic["examples"], traffic["prob"], traffic["labels"]
    ids = [f"c-{i}" for i in range(N_CANARY)]
    challenger = np.arange(N_CANARY) % 5 == 0
    _log(root / "logs", [(2, ex[i], 1 - prob[i], ids[i]) if challenger[i] else (1, ex[i], prob[i], ids[i])
                         for i in range(N_CANARY)])
    write_labels(root / "labels.csv", ids, y[:N_CANARY])
    return root


@pytest.fixture(scope="module")
def shadow(tmp_path_factory, traffic):  # noqa: F811
    """Every request answered by the champion, whose output is flipped on 30 % of them, and shadowed
    by the challenger (the model itself): the challenger is better."""
    root = tmp_path_factory.mktemp("shadow")
    ex, prob, y = traffic["examples"], traffic["prob"], traffic["labels"]
    flip = np.random.default_rng(3).random(N_SHADOW) < 0.3
    records = []
    for i in range(N_SHADOW):
        records.append((1, ex[i], 1 - prob[i] if flip[i] else prob[i], f"s-{i}"))
        records.append((2, ex[i], prob[i], f"s-{i}"))
    _log(root / "logs", records)
    write_labels(root / "labels.csv", [f"s-{i}" for i in range(N_SHADOW)], y[:N_SHADOW])
    return {"root": root, "flipped": int(flip.sum())}


def _project(root, first_push, name, mode):
    from driftguard.components.registry_pusher import labels as labels_lib

    cfg_path = two_versions(root, first_push, name, window=500)
    cfg = json.loads(cfg_path.read_text())
    cfg["rollout"] = {"mode": mode, **ROLLOUT}
    cfg_path.write_text(json.dumps(cfg))
    registry = load(cfg_path).model_registry
    labels_lib.set_labels(registry, {"champion": 1, "challenger": 2}, action="push", reason="test", who="t@h")
    return cfg_path, registry


def _monitor_in_process(cfg_path, data):
    from click.testing import CliRunner

    from driftguard.cli.main import main

    r = CliRunner().invoke(main, ["--config", str(cfg_path), "monitor", "--once", "--logs", str(data / "logs"),
                                  "--labels", str(data / "labels.csv")])
    assert r.exit_code == 0, (r.output, r.exception)
    return r.output


def _rollout_alerts(cfg_path):
    lines = (load(cfg_path).runs_path / "alerts.jsonl").read_text().splitlines()
    return [a for a in map(json.loads, lines) if a["rule"].startswith("rollout_")]


def _decisions(registry):
    from driftguard.components.registry_pusher import labels as labels_lib

    return [e for e in labels_lib.read_audit(registry) if e.get("decision")]


def test_a_flipped_canary_is_rolled_back_with_one_critical_alert(tmp_path, first_push, canary):
    from driftguard.components.registry_pusher import labels as labels_lib

    cfg_path, registry = _project(tmp_path, first_push, "a", "canary")
    out = _monitor_in_process(cfg_path, canary)
    assert labels_lib.read_labels(registry) == {"champion": 1}
    audit = _decisions(registry)
    assert [(e["action"], e["label"], e["version"], e["previous"], e["who"]) for e in audit] == \
        [("rollback", "challenger", None, 2, "driftguard monitor")]
    alerts = _rollout_alerts(cfg_path)
    assert [(a["rule"], a["severity"]) for a in alerts] == [("rollout_rollback", "critical")]
    assert "challenger version 2 rolled back, champion version 1 stays" in alerts[0]["title"]
    assert "rollout decision: challenger version 2 rolled back (applied)" in out, out[-3000:]
    meta = outcome(load(cfg_path))["meta"]
    [decision] = meta["rollout"]["decisions"]
    assert decision["status"] == "applied" and decision["id"] == audit[0]["decision"]
    assert meta["serving"]["version"] == 1
    # the challenger's own alarms (its error stream) are counted, not paged: the decision is the page
    keys = [json.loads(x)["dedup_key"] for x in (load(cfg_path).runs_path / "alerts.jsonl").read_text().splitlines()]
    assert keys == ["taxi/live/rollout-v1-v2-r0/rollout_rollback"]
    assert meta["counters"]["challenger_alerts_held"] >= 1
    # it decided early: a flipped model is told apart within a few hundred labels
    assert decision["record"] < N_CANARY
    from driftguard.monitoring import exporter

    samples = exporter.parse_exposition((state_dir_of(cfg_path) / exporter.METRICS_FILE).read_text())
    model = (("model", "taxi"),)
    assert samples["driftguard_monitor_rollout_decisions_total"][(("action", "rollback"),) + model] == 1
    assert samples["driftguard_monitor_rollout_decisions_total"][(("action", "promote"),) + model] == 0
    assert samples["driftguard_monitor_rollout_challenger_version"][model] == 0        # the rollout ended


def test_a_better_shadow_challenger_is_promoted_and_both_versions_are_joined(tmp_path, first_push, shadow):
    from driftguard.components.registry_pusher import labels as labels_lib

    cfg_path, registry = _project(tmp_path, first_push, "a", "shadow")
    out = _monitor_in_process(cfg_path, shadow["root"])
    assert labels_lib.read_labels(registry) == {"champion": 2}
    audit = _decisions(registry)
    assert sorted((e["action"], e["label"], e["version"], e["previous"]) for e in audit) == \
        [("promote", "challenger", None, 2), ("promote", "champion", 2, 1)]
    assert [(a["rule"], a["severity"]) for a in _rollout_alerts(cfg_path)] == [("rollout_promote", "info")]
    state = outcome(load(cfg_path))
    c = state["counters"]
    # one label joins both versions' predictions of a request id: nothing is a reused id
    assert c["predictions_reused_id"] == 0 and c["labels_duplicate"] == 0
    assert c["labels_joined"] == 2 * N_SHADOW and c["records"] == 2 * N_SHADOW
    [decision] = state["meta"]["rollout"]["decisions"]
    assert decision["action"] == "promote" and decision["status"] == "applied"
    assert "challenger not worse by 0.02" in decision["reason"]
    assert " paired on " in decision["reason"]          # both versions' losses on the same ids
    assert "rollout decision: challenger version 2 promoted to champion (applied)" in out
    assert "rollout: none running; last: promote of version 2 against version 1 (applied)" in out


def test_labels_arriving_after_both_predictions_join_both_and_pair_them(tmp_path, first_push, shadow):
    """The other order: the log is read first (both versions' predictions wait), the labels come
    in a later run; each label takes the champion's prediction and the challenger's."""
    import shutil

    from driftguard.components.registry_pusher import labels as labels_lib

    cfg_path, registry = _project(tmp_path, first_push, "a", "shadow")
    labels = tmp_path / "late" / "labels.csv"
    labels.parent.mkdir()
    labels.write_text("request_id,label\n")
    (tmp_path / "late" / "logs").symlink_to(shadow["root"] / "logs")
    _monitor_in_process(cfg_path, tmp_path / "late")
    c = outcome(load(cfg_path))["counters"]
    assert c["labels_joined"] == 0 and c["records"] == 2 * N_SHADOW and c["predictions_reused_id"] == 0
    shutil.copyfile(shadow["root"] / "labels.csv", labels)
    _monitor_in_process(cfg_path, tmp_path / "late")
    state = outcome(load(cfg_path))
    assert state["counters"]["labels_joined"] == 2 * N_SHADOW and state["counters"]["labels_duplicate"] == 0
    [decision] = state["meta"]["rollout"]["decisions"]
    assert decision["action"] == "promote" and " paired on " in decision["reason"]
    assert labels_lib.read_labels(registry) == {"champion": 2}


def test_the_shadow_comparison_reports_agreement_before_deciding(tmp_path, first_push, shadow):
    """Without labels nothing is decided, and the two versions' agreement is what flipping 30 % gives."""
    from driftguard.monitoring import monitor as monitor_lib

    cfg_path, registry = _project(tmp_path, first_push, "a", "shadow")
    mon = monitor_lib.Monitor(load(cfg_path), logs=shadow["root"] / "logs")
    try:
        monitor_lib.run(mon, once=True)
        snapshot = mon.snapshot()
        summary = snapshot["rollout"]["active"]
    finally:
        mon.close()
    assert summary["pairs"] == N_SHADOW and summary["decision"] is None
    assert summary["agreement"] == pytest.approx(1 - shadow["flipped"] / N_SHADOW, abs=0.005)
    # each version's own windows estimate its accuracy: the champion's flipped outputs look as
    # confident as before, so estimates agree although the realized accuracy will not
    assert set(summary["estimated"]) == {"champion", "challenger"}
    assert all(0.5 < v <= 1 for v in summary["estimated"].values()), summary["estimated"]
    from driftguard.monitoring.cli import _rollout_line

    line = _rollout_line({"active": summary, "decisions": []})
    assert line.startswith("rollout shadow: challenger v2 vs champion v1: labels 0 / 0, estimated metric ")
    assert f"agreement {100 * summary['agreement']:.1f} % on {N_SHADOW} shadowed ids; 0 look(s)" in line
    from prometheus_client import CollectorRegistry, generate_latest

    from driftguard.monitoring import exporter

    metrics = CollectorRegistry()
    collector = exporter.MonitorCollector()
    collector.snapshot = snapshot
    metrics.register(collector)
    samples = exporter.parse_exposition(generate_latest(metrics).decode())
    model = (("model", "taxi"),)
    assert samples["driftguard_monitor_rollout_agreement"][model] == pytest.approx(summary["agreement"])
    assert samples["driftguard_monitor_rollout_challenger_version"][model] == 2
    assert samples.get("driftguard_monitor_rollout_loss", {}) == {}          # no labels yet


@pytest.mark.parametrize("point, mode", [("before_apply", "canary"), ("after_apply", "shadow")])
def test_sigkill_at_the_decision_loses_nothing_and_applies_it_once(tmp_path, first_push, canary, shadow, point, mode):
    from driftguard.components.registry_pusher import labels as labels_lib
    from driftguard.monitoring.monitor import FAULT_KILL_ENV

    data = canary if mode == "canary" else shadow["root"]
    cfg_path, registry = _project(tmp_path, first_push, "a", mode)
    proc = subprocess.run(DRIFTGUARD + ["--config", str(cfg_path), "monitor", "--once", "--logs", str(data / "logs"),
                                        "--labels", str(data / "labels.csv")],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, FAULT_KILL_ENV: point})
    assert proc.returncode == -9, proc.stderr[-3000:]
    [decision] = outcome(load(cfg_path))["meta"]["rollout"]["decisions"]
    assert decision["status"] == "pending"                    # committed before the registry changed
    assert len(_rollout_alerts(cfg_path)) == 1                 # and notified before the commit
    moved = labels_lib.read_labels(registry) != {"champion": 1, "challenger": 2}
    assert moved == (point == "after_apply")
    _monitor_in_process(cfg_path, data)                        # the restart
    want = {"champion": 1} if mode == "canary" else {"champion": 2}
    assert labels_lib.read_labels(registry) == want
    assert len(_decisions(registry)) == (1 if mode == "canary" else 2)      # applied once
    assert len(_rollout_alerts(cfg_path)) == 1
    [decision] = outcome(load(cfg_path))["meta"]["rollout"]["decisions"]
    assert decision["status"] == "applied"
