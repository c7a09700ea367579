"""AlertDelivery (components/alert_delivery/): a RetrainGate decision's alerts through the outbox
to a real receiver on 127.0.0.1 -- once, also when run again; a failed sink leaves them pending
without raising; the executor writes delivery.json and the custom properties MLMD shows.
(The Airflow check DAG running it for real: tests/orchestrate/test_airflow_dags.py.)"""
from __future__ import annotations

import json
import re

import pytest

from driftguard.components.alert_delivery.delivery import deliver, delivery_settings, headline
from driftguard.components.alerts import AlertsConfigError, OutboxError, outbox_path


def _decision(make_alert):
    alerts = [make_alert("taxi/span-8/feature_psi/fare", "critical", "feature_psi"),
              make_alert("taxi/span-8/dataset_drift", "warning", "dataset_drift")]
    return {"span": 8, "span_label": "8", "model": "taxi", "alerts": [a.to_dict() for a in alerts]}


def _config(**delivery):
    return delivery_settings({"sinks": [{"type": "jsonl"},
                                        {"type": "webhook", "url_env": "T_HOOK_URL", "min_severity": "critical"}],
                              "delivery": {"timeout_seconds": 2, "backoff_seconds": 0, **delivery}})


def test_a_decision_is_delivered_once_and_a_second_run_sends_nothing(tmp_path, receiver, make_alert, monkeypatch):
    server = receiver()
    monkeypatch.setenv("T_HOOK_URL", server.url("/hooks/t0ken"))
    decision = _decision(make_alert)
    first = deliver(decision, _config(), tmp_path)
    assert [json.loads(r["body"])["dedup_key"] for r in server.requests] == ["taxi/span-8/feature_psi/fare"]
    assert first["states"] == {"pending": 0, "delivered": 3, "failed": 0}     # jsonl x2 + webhook x1
    assert first["sinks"] == {"jsonl": {"pending": 0, "delivered": 2, "failed": 0},
                              "webhook": {"pending": 0, "delivered": 1, "failed": 0}}
    assert first["pass"]["delivered"] == 3 and first["errors"] == []
    assert first["outbox"] == str(outbox_path(tmp_path)) and (tmp_path / "alerts.jsonl").exists()

    second = deliver(decision, _config(), tmp_path)       # a retried task, a re-run of the span
    assert server.count == 1
    assert second["states"] == first["states"] and second["pass"]["delivered"] == 0
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 2
    assert headline(second) == "span 8: 2 alert(s), 3 deliveries: 3 delivered, 0 pending, 0 failed; 0 sent in this pass"


def test_a_failed_sink_leaves_the_alert_pending_without_raising(tmp_path, receiver, make_alert, monkeypatch):
    server = receiver(status=503, echo_path=True)          # the reply quotes the secret path back
    monkeypatch.setenv("T_HOOK_URL", server.url("/hooks/s3cr3t-t0ken"))
    decision = _decision(make_alert)
    summary = deliver(decision, _config(), tmp_path)
    assert summary["states"] == {"pending": 1, "delivered": 2, "failed": 0}
    assert summary["sinks"]["webhook"] == {"pending": 1, "delivered": 0, "failed": 0}
    (error,) = summary["errors"]
    assert error["sink"] == "webhook" and error["dedup_key"] == "taxi/span-8/feature_psi/fare"
    assert re.search(r"HTTP 503 from \$T_HOOK_URL", error["error"]) and "s3cr3t" not in json.dumps(summary)
    assert "retried by the next delivery" in headline(summary)

    server.status = 200                                    # the receiver is back: the next run sends it
    again = deliver(decision, _config(), tmp_path)
    assert again["states"] == {"pending": 0, "delivered": 3, "failed": 0} and again["pass"]["delivered"] == 1
    assert server.count == 2


def test_after_max_attempts_the_row_is_failed(tmp_path, receiver, make_alert, monkeypatch):
    server = receiver(status=500)
    monkeypatch.setenv("T_HOOK_URL", server.url("/hook"))
    summary = deliver(_decision(make_alert), _config(max_attempts=1), tmp_path)
    assert summary["states"] == {"pending": 0, "delivered": 2, "failed": 1} and summary["pass"]["gave_up"] == 1


def test_without_alerts_no_outbox_is_created_but_an_existing_one_is_retried(tmp_path, receiver, make_alert,
                                                                           monkeypatch):
    empty = {"span": 9, "span_label": "9", "model": "taxi", "alerts": []}
    summary = deliver(empty, _config(), tmp_path)
    assert summary["alerts"] == 0 and not outbox_path(tmp_path).exists()

    monkeypatch.setenv("T_HOOK_URL", "http://127.0.0.1:9/hook")      # discard port: refused
    deliver(_decision(make_alert), _config(), tmp_path)
    server = receiver()
    monkeypatch.setenv("T_HOOK_URL", server.url("/hook"))
    summary = deliver(empty, _config(), tmp_path)          # span 9 raised nothing; span 8's row goes out
    assert server.count == 1 and summary["pass"]["delivered"] == 1
    assert summary["states"] == {"pending": 0, "delivered": 0, "failed": 0}   # span 9's own rows: none


def test_an_outbox_that_cannot_be_written_raises(tmp_path, make_alert):
    (tmp_path / "alerts").write_text("a file where the outbox folder should be")
    with pytest.raises(OutboxError, match="alert outbox"):
        deliver(_decision(make_alert), _config(), tmp_path)


def test_settings_skip_the_rules_and_refuse_literal_secrets():
    # the rules are the RetrainGate's (checked with the task); delivery reads sinks and delivery only
    cfg = delivery_settings({"rules": {"metric_drop": {"metric": "mae"}}, "sinks": [{"type": "jsonl"}]})
    assert [s.name for s in cfg.sinks] == ["jsonl"]
    assert [s.name for s in delivery_settings(None).sinks] == ["jsonl"]
    with pytest.raises(AlertsConfigError, match=r"alerts.sinks\[0\].url: secrets are not allowed"):
        delivery_settings({"sinks": [{"type": "webhook", "url": "https://hooks.example.org/x"}]})


def test_the_executor_writes_delivery_json_and_the_properties(tmp_path, receiver, make_alert, monkeypatch):
    from tfx.types import standard_artifacts  # noqa: F401  (registers the standard types)

    from driftguard.components.alert_delivery import spec
    from driftguard.components.alert_delivery.executor import Executor
    from driftguard.components.retrain_gate.spec import DECISION_JSON, RetrainDecision

    server = receiver()
    monkeypatch.setenv("T_HOOK_URL", server.url("/hook"))
    decision = RetrainDecision()
    decision.uri = str(tmp_path / "gate")
    (tmp_path / "gate").mkdir()
    (tmp_path / "gate" / DECISION_JSON).write_text(json.dumps(_decision(make_alert)))
    out = spec.AlertDeliveryReport()
    out.uri = str(tmp_path / "delivery")
    runs = tmp_path / "runs"
    props = {spec.ALERTS_CONFIG_KEY: json.dumps({"sinks": [{"type": "webhook", "url_env": "T_HOOK_URL"}]}),
             spec.OUTBOX_DIR_KEY: str(runs)}
    Executor().Do({spec.DECISION_KEY: [decision]}, {spec.DELIVERY_KEY: [out]}, props)
    written = json.loads((tmp_path / "delivery" / spec.DELIVERY_JSON).read_text())
    assert written["sinks"] == {"webhook": {"pending": 0, "delivered": 2, "failed": 0}}
    assert written["outbox"] == str(runs / "alerts" / "outbox.sqlite") and server.count == 2
    assert {k: out.get_int_custom_property(k) for k in ("delivered", "pending", "failed", "delivered_now", "n_alerts")} \
        == {"delivered": 2, "pending": 0, "failed": 0, "delivered_now": 2, "n_alerts": 2}


def test_the_component_wires_the_decision_and_keeps_only_variable_names():
    from tfx import types

    from driftguard.components.alert_delivery.component import AlertDelivery
    from driftguard.components.retrain_gate.spec import RetrainDecision

    alerts = {"sinks": [{"type": "slack", "url_env": "DRIFTGUARD_SLACK_URL"}]}
    node = AlertDelivery(decision=types.Channel(type=RetrainDecision), alerts_config=alerts, outbox_dir="/runs")
    assert node.id == "AlertDelivery"
    assert json.loads(node.exec_properties["alerts_config_json"]) == alerts
    assert node.exec_properties["outbox_dir"] == "/runs"
    assert node.outputs["delivery"].type_name == "DriftguardAlertDelivery"
    assert node.executor_spec.executor_class.__module__ == "driftguard.components.alert_delivery.executor"
    with pytest.raises(ValueError, match="needs outbox_dir"):
        AlertDelivery(decision=types.Channel(type=RetrainDecision), alerts_config=alerts, outbox_dir="")
