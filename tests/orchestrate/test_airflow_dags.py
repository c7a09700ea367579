"""The Airflow DAGs, run for real with `dag.test()` against a sqlite metadata database in a
temporary AIRFLOW_HOME (airflow_scenario.py, in a subprocess: Airflow reads its home at import).

Starts from a copy of `first_push`'s runs folder (version 1 trained on spans 1-2). No drift
(span 7): the check DAG skips the trigger and no training DAG run exists. Drift (span 8, fares
+25 %): the check DAG triggers the training DAG with conf spans "7,8"; that run pushes version 2.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import REPO, make_config, ws_data
from orchestrate_cli import TESTS_DIR

pytestmark = [pytest.mark.tfx, pytest.mark.airflow]

TFX_TASKS = {"ImportSchemaGen", "ExampleGen_span{s}", "StatisticsGen", "ExampleValidator",
             "DriftDetector", "PredictionMonitor", "RetrainGate"}


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
                      evaluation={"metrics": {"AUC": {"min": 0.7, "baseline_tolerance": 1.0}}})
    home = root / "airflow-home"
    home.mkdir()
    env = {**os.environ,
           "AIRFLOW_HOME": str(home),
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
           "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "900",
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
           "PYTHONPATH": str(REPO)}
    out = root / "result.json"
    proc = subprocess.run([sys.executable, str(TESTS_DIR / "airflow_scenario.py"), str(cfg), str(data),
                           str(ws_data(workspace) / "span-8" / "data.csv"), str(out)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0 and out.exists(), proc.stderr[-6000:]
    result = json.loads(out.read_text())
    print(json.dumps(result["timings"], indent=1))
    return {"result": result, "runs": runs, "home": home}


def test_dag_file_builds_a_check_dag_and_a_training_dag(scenario):
    r = scenario["result"]
    assert r["dag_ids"] == ["taxi-check", "taxi-training"]
    tasks = r["check_tasks"]
    assert set(tasks) == {t.format(s=7) for t in TFX_TASKS} | {"retrain_decision", "trigger_training"}
    assert tasks["retrain_decision"] == ["RetrainGate"] and tasks["trigger_training"] == ["retrain_decision"]
    assert "span 7" in r["check_doc"] and "span 8" in r["check_doc_2"]   # the newest span folder
    assert r["check_schedule"] in ("@daily", "0 0 * * *")
    train = r["training_tasks"]
    assert {"check_window", "Transform", "Trainer", "Evaluator", "RegistryPusher"} <= set(train)
    assert "check_window" in train["ExampleGen_span1"] and "check_window" in train["ImportSchemaGen"]


def test_without_drift_the_check_dag_triggers_no_training(scenario):
    r = scenario["result"]["no_drift"]
    assert r["state"] == "success", r
    assert all(r["tasks"][t.format(s=7)] == "success" for t in TFX_TASKS), r["tasks"]
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
