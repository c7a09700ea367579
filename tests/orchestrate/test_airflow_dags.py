"""The Airflow DAGs, run for real with `dag.test()` against a sqlite metadata database in a
temporary AIRFLOW_HOME (airflow_scenario.py, in a subprocess: Airflow reads its home at import).

Starts from a copy of `first_push`'s runs folder (version 1 trained on spans 1-2). No drift
(span 7): the check DAG skips the trigger and no training DAG run exists. Drift (span 8, fares
+25 %): the check DAG triggers the training DAG with conf spans "7,8"; that run pushes version 2.

Alerts: the config has a webhook sink for critical alerts, whose URL (a random token in its
path) and HMAC secret reach the scenario process -- the Airflow worker -- only as environment
variables. The check DAG's AlertDelivery task delivers span 8's critical alert to a real
receiver on 127.0.0.1 once; the same task cleared and run again (try 2 of the same DagRun)
sends nothing; and neither secret appears in the DAG file, MLMD, the Airflow database (XCom,
rendered fields, serialized DAGs), the logs, or any other file the runs left behind.
"""
from __future__ import annotations

import collections
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys

import pytest

from airflow_scenario import HOOK_SECRET_ENV, HOOK_URL_ENV
from helpers import REPO, make_config, ws_data
from orchestrate_cli import TESTS_DIR

sys.path.insert(0, str(REPO / "tests" / "alerts"))
from alerts_servers import free_port  # noqa: E402

pytestmark = [pytest.mark.tfx, pytest.mark.airflow]

# The check's TFX nodes.
TFX_TASKS = {"ImportSchemaGen", "ExampleGen", "StatisticsGen", "ExampleValidator",
             "DriftDetector", "PredictionMonitor", "RetrainGate", "AlertDelivery"}


@pytest.fixture(scope="module")
def scenario(first_push, workspace, tmp_path_factory):
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-3000:]
    root = tmp_path_factory.mktemp("airflow")
    runs = root / "runs"
    shutil.copytree(workspace / "runs", runs, ignore=shutil.ignore_patterns("state.json", "alerts*", "outbox*"))
    data = root / "data"
    for s in (1, 2, 7):
        shutil.copytree(ws_data(workspace) / f"span-{s}", data / f"span-{s}")
    cfg = make_config(root, "airflow", data={"root": str(data)}, schemas=str(workspace / "schemas"),
                      runs=str(runs), training={"train_steps": 60},
                      # bless any candidate above AUC 0.7, whatever the serving model's AUC
                      evaluation={"metrics": {"AUC": {"min": 0.7, "baseline_tolerance": 1.0}}},
                      alerts={"sinks": [{"type": "jsonl"},
                                        {"type": "webhook", "url_env": HOOK_URL_ENV, "hmac_secret_env": HOOK_SECRET_ENV,
                                         "min_severity": "critical"}]})
    port = free_port()
    hook_secrets = {HOOK_URL_ENV: f"dgsecret{secrets.token_hex(8)}", HOOK_SECRET_ENV: f"dgsecret{secrets.token_hex(8)}"}
    home = root / "airflow-home"
    home.mkdir()
    env = {**os.environ,
           "AIRFLOW_HOME": str(home),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
           "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "900",
           # INFO: the task logs (AlertDelivery's included) are part of what the secret scan reads
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
           "PYTHONPATH": str(REPO),
           # the webhook's secrets: only here, in the worker's environment
           HOOK_URL_ENV: f"http://127.0.0.1:{port}/hooks/{hook_secrets[HOOK_URL_ENV]}",
           HOOK_SECRET_ENV: hook_secrets[HOOK_SECRET_ENV]}
    out = root / "result.json"
    proc = subprocess.run([sys.executable, str(TESTS_DIR / "airflow_scenario.py"), str(cfg), str(data),
                           str(ws_data(workspace) / "span-8" / "data.csv"), str(out), str(port)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=2400)
    (root / "scenario.stdout").write_text(proc.stdout)    # the task logs (dag.test prints them), kept for reading
    (root / "scenario.stderr").write_text(proc.stderr)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-6000:]
    result = json.loads(out.read_text())
    print(json.dumps(result["timings"], indent=1))
    return {"result": result, "runs": runs, "home": home, "root": root, "proc": proc,
            "secrets": list(hook_secrets.values())}


def test_dag_file_builds_a_check_dag_and_a_training_dag(scenario):
    r = scenario["result"]
    assert r["dag_ids"] == ["taxi-check", "taxi-training"]
    tasks = r["check_tasks"]
    assert set(tasks) == TFX_TASKS | {"retrain_decision", "trigger_training"}
    assert len(tasks) == len(TFX_TASKS) + 2                  # one ExampleGen
    assert tasks["retrain_decision"] == ["RetrainGate"] and tasks["trigger_training"] == ["retrain_decision"]
    assert tasks["AlertDelivery"] == ["RetrainGate"]   # beside the trigger branch, not behind it
    assert "span 7" in r["check_doc"] and "span 8" in r["check_doc_2"]   # the newest span folder
    assert r["check_schedule"] in ("@daily", "0 0 * * *")
    train = r["training_tasks"]
    assert {"check_window", "Transform", "Trainer", "Evaluator", "RegistryPusher"} <= set(train)
    assert [t for t in train if t.startswith("ExampleGen")] == ["ExampleGen"]   # one, reading the window
    assert "check_window" in train["ExampleGen"]
    assert "check_window" in train["ImportSchemaGen"]


def test_without_drift_the_check_dag_triggers_no_training(scenario):
    r = scenario["result"]["no_drift"]
    assert r["state"] == "success", r
    assert {t for t, state in r["tasks"].items() if state == "success"} >= TFX_TASKS, r["tasks"]
    assert r["tasks"]["retrain_decision"] == "success" and r["tasks"]["trigger_training"] == "skipped"
    assert r["training_runs"] == []


def test_with_drift_the_check_dag_triggers_training_with_the_window(scenario):
    r = scenario["result"]["drift"]
    assert r["state"] == "success", r
    assert r["tasks"]["trigger_training"] == "success", r["tasks"]
    (run,) = r["training_runs"]
    assert run["state"] == "queued"
    assert run["conf"]["spans"] == "7,8" and run["conf"]["span"] == "8"
    assert run["conf"]["triggered_by"].startswith("taxi-check/")


def test_the_triggered_training_run_pushes_a_blessed_model(scenario):
    r = scenario["result"]
    assert "spans 7, 8" in r["training_doc"]
    assert r["training"]["state"] == "success", r["training"]
    assert set(r["training"]["tasks"].values()) == {"success"}, r["training"]["tasks"]
    assert r["registry_versions"] == [1, 2]
    profile = json.loads((scenario["runs"] / "serving" / "taxi" / "2" / "profile" / "profile.json").read_text())
    assert profile["spans"] == [7, 8]


def test_a_run_triggered_for_another_window_fails_before_any_tfx_task(scenario):
    r = scenario["result"]["wrong_window"]
    assert r["state"] == "failed"
    assert r["tasks"]["check_window"] == "failed"
    assert r["tasks"]["Trainer"] in ("upstream_failed", None)


def _critical(alerts):
    return sorted(a["dedup_key"] for a in alerts if a["severity"] == "critical")


def test_the_check_dag_delivers_each_critical_alert_once_to_the_webhook(scenario):
    r = scenario["result"]
    # span 7: whatever it raised went out once per critical alert (none is expected on a resample)
    assert sorted(w["dedup_key"] for w in r["no_drift"]["webhook"]) == _critical(r["no_drift"]["alerts"])
    drift = r["drift"]
    assert drift["tasks"]["AlertDelivery"] == "success"
    critical = _critical(drift["alerts"])
    assert "taxi/span-8/feature_psi/fare" in critical, [a["dedup_key"] for a in drift["alerts"]]
    new = drift["webhook"][len(r["no_drift"]["webhook"]):]
    counts = collections.Counter(w["dedup_key"] for w in new)
    assert sorted(counts) == critical and set(counts.values()) == {1}, counts
    assert all(w["severity"] == "critical" and w["path_ok"] and w["signature_ok"] for w in new), new
    (delivery,) = drift["deliveries"]
    n_warnings = sum(a["severity"] != "critical" for a in drift["alerts"])
    assert delivery["properties"] == {"delivered": 2 * len(critical) + n_warnings, "pending": 0, "failed": 0,
                                      "delivered_now": 2 * len(critical) + n_warnings,
                                      "n_alerts": len(drift["alerts"])}
    content = delivery["content"]
    assert content["sinks"]["webhook"] == {"delivered": len(critical), "pending": 0, "failed": 0}
    assert content["sinks"]["jsonl"]["delivered"] == len(drift["alerts"])
    assert content["outbox"] == str(scenario["runs"] / "alerts" / "outbox.sqlite") and content["errors"] == []
    logged = [json.loads(line)["dedup_key"] for line in (scenario["runs"] / "alerts.jsonl").read_text().splitlines()]
    assert sorted(logged) == sorted(a["dedup_key"] for a in r["no_drift"]["alerts"] + drift["alerts"])


def test_the_delivery_task_cleared_and_run_again_sends_nothing_twice(scenario):
    r = scenario["result"]
    retry = r["retry"]
    assert retry["cleared_state"] is None and retry["state"] == "success" and retry["try_number"] == 2, retry
    assert retry["webhook"] == r["drift"]["webhook"]       # nothing new reached the receiver
    # MLMD: the node's one execution of this TFX run and its one output artifact, published
    # again by the re-run (airflow_dags._naming_driver): now saying it sent nothing
    (first,), (again,) = r["drift"]["deliveries"], retry["deliveries"]
    assert retry["delivery_executions"] == r["drift"]["delivery_executions"]
    assert [e["state"] for e in retry["delivery_executions"]] == ["complete"]
    assert (again["id"], again["uri"]) == (first["id"], first["uri"])
    assert first["properties"]["delivered_now"] > 0 and again["properties"]["delivered_now"] == 0
    assert {k: again["properties"][k] for k in ("delivered", "pending", "failed", "n_alerts")} == \
        {k: first["properties"][k] for k in ("delivered", "pending", "failed", "n_alerts")}
    assert again["content"]["states"] == first["content"]["states"] and again["content"]["pass"]["delivered"] == 0


def test_the_webhook_secrets_appear_nowhere_airflow_or_tfx_keep_anything(scenario):
    tokens = scenario["secrets"]
    assert all(w["path_ok"] and w["signature_ok"] for w in scenario["result"]["drift"]["webhook"])  # they were used
    dag_file = scenario["result"]["dag_file"]
    text = open(dag_file).read()
    assert "build_dags" in text and not any(s in text for s in tokens)
    # MLMD: AlertDelivery's execution properties name the variables, never their values
    with sqlite3.connect(scenario["runs"] / "metadata.sqlite") as db:
        configs = [v for (v,) in db.execute("SELECT string_value FROM ExecutionProperty WHERE name = ?",
                                            ("alerts_config_json",))]
    assert any(HOOK_URL_ENV in c for c in configs) and not any(s in c for c in configs for s in tokens)
    # Airflow's database: XCom (the decision task's spans/span/reason), rendered fields, serialized DAGs
    with sqlite3.connect(scenario["home"] / "airflow.db") as db:
        xcom = [(k, bytes(v)) for k, v in db.execute("SELECT key, value FROM xcom")]
        rendered = [str(v) for (v,) in db.execute("SELECT rendered_fields FROM rendered_task_instance_fields")]
    assert {"spans", "span", "reason"} <= {k for k, _ in xcom}
    assert not any(s.encode() in v for _, v in xcom for s in tokens)
    assert any(HOOK_URL_ENV in v for v in rendered) and not any(s in v for v in rendered for s in tokens)
    # the logs: the scenario's stdout/stderr (dag.test prints every task's log there) and log files
    proc = scenario["proc"]
    logs = proc.stdout + proc.stderr
    assert "sent in this pass" in logs                    # AlertDelivery's own log lines are there
    assert not any(s in logs for s in tokens)
    # and every file the runs left behind (runs folder, Airflow home and its logs, the DAG file)
    leaked = [str(p) for p in scenario["root"].rglob("*") if p.is_file()
              and any(s.encode() in p.read_bytes() for s in tokens)]
    assert leaked == []
