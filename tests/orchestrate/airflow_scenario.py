"""Runs the driftguard DAGs with Airflow's own machinery, in a process of its own (Airflow reads
AIRFLOW_HOME and its config once, at import). Used by test_airflow_dags.py:

    python airflow_scenario.py CONFIG DATA_ROOT SPAN8_CSV RESULT_JSON WEBHOOK_PORT

Phase "no drift": the newest span is 7 (a resample of the training window) -> the check DAG's
ShortCircuit skips the trigger. Phase "drift": span 8 (fares +25 %) arrives -> the check DAG
triggers the training DAG (a queued DagRun with conf), which is then run with that conf.
Results (task states, dag runs, timings, registry versions) go to RESULT_JSON.

Alerts: a webhook receiver (tests/alerts/alerts_servers.Receiver) listens on 127.0.0.1:WEBHOOK_PORT
in this process, which is also the Airflow worker (dag.test runs tasks in-process). The config's
webhook sink reads its URL (with a secret token in the path) and HMAC secret from the
environment variables HOOK_URL_ENV and HOOK_SECRET_ENV, which the test sets. After the drift
run, the AlertDelivery task is cleared and run again in the same DagRun, as Airflow reruns a
retried or cleared task: the scheduler's part (try_number + 1, queued) done here by hand, the
worker's part by ``TaskInstance.run``. What the receiver got after each step goes to RESULT_JSON
(never the URL path itself: only whether it matched).
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import time
import urllib.parse

HOOK_URL_ENV = "DG_TEST_HOOK_URL"        # http://127.0.0.1:<port>/hooks/<secret token>
HOOK_SECRET_ENV = "DG_TEST_HOOK_SECRET"  # the HMAC key of X-Driftguard-Signature
DELIVERY_TYPE = "DriftguardAlertDelivery"


def received(hook) -> list:
    """What the webhook got: one record per POST (the path only as matched / not matched)."""
    from driftguard.components.alerts.sinks import SIGNATURE_HEADER, sign

    expected_path = urllib.parse.urlsplit(os.environ[HOOK_URL_ENV]).path
    out = []
    for r in list(hook.requests):
        body = json.loads(r["body"])
        out.append({"dedup_key": body["dedup_key"], "severity": body["severity"], "rule": body["rule"],
                    "feature": body["labels"].get("feature"), "path_ok": r["path"] == expected_path,
                    "signature_ok": r["headers"].get(SIGNATURE_HEADER)
                    == "sha256=" + sign(os.environ[HOOK_SECRET_ENV], r["body"])})
    return out


def run_artifacts(cfg, pipeline_name: str, run_id: str, type_name: str, file_name: str) -> list:
    """Every artifact of ``type_name`` published in the TFX run ``run_id``: int properties + file."""
    from driftguard.pipeline import runner

    store = runner.open_store(cfg)
    context = store.get_context_by_type_and_name("run", f"{pipeline_name}.{run_id}")
    try:
        type_id = store.get_artifact_type(type_name).id
    except Exception:  # noqa: BLE001 - not registered: nothing of the type was ever published
        return []
    out = []
    for a in sorted(store.get_artifacts_by_context(context.id), key=lambda a: a.id):
        if a.type_id == type_id:
            out.append({"id": a.id, "uri": a.uri,
                        "properties": {k: v.int_value for k, v in a.custom_properties.items() if v.HasField("int_value")},
                        "content": json.loads((pathlib.Path(a.uri) / file_name).read_text())})
    return out


def node_executions(cfg, pipeline_name: str, run_id: str, node_id: str) -> list:
    """[{"id", "state"}] of the executions of ``node_id`` in the TFX run ``run_id``."""
    from driftguard.pipeline import runner

    store = runner.open_store(cfg)
    context = store.get_context_by_type_and_name("run", f"{pipeline_name}.{run_id}")
    return [{"id": e.id, "state": e.properties["state"].string_value}
            for e in store.get_executions_by_context(context.id)
            if e.properties["component_id"].string_value == node_id]


def rerun_task(dag, run_id: str, task_id: str) -> dict:
    """Clear ``task_id`` in the DagRun ``run_id`` and run it again, as Airflow does with a
    cleared or retried task: clear (state None, DagRun running), the scheduler's part (try_number
    + 1, queued), then the worker's part (``TaskInstance.run``: deps, then the task)."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from sqlalchemy import select

    def ti_of(session):
        return session.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.task_id == task_id, TaskInstance.run_id == run_id)).one()

    (dag_run,) = DagRun.find(dag_id=dag.dag_id, run_id=run_id)
    dag.clear(task_ids=[task_id], start_date=dag_run.execution_date, end_date=dag_run.execution_date,
              dag_run_state=DagRunState.RUNNING)
    with create_session() as session:
        ti = ti_of(session)
        cleared = ti.state
        ti.try_number += 1
        ti.state = TaskInstanceState.QUEUED
    with create_session() as session:
        ti = ti_of(session)
        ti.task = dag.get_task(task_id)
        ti.run(session=session)
        return {"cleared_state": cleared, "state": ti.state, "try_number": ti.try_number}


def main(config_path: str, data_root: str, span8_csv: str, result_path: str, hook_port: str) -> None:
    home = pathlib.Path(os.environ["AIRFLOW_HOME"])
    dags_folder = home / "dags"
    result = {"timings": {}}
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "alerts"))
    from alerts_servers import Receiver

    hook = Receiver(port=int(hook_port))
    t0 = time.monotonic()
    from airflow.models import DagBag, DagRun
    from airflow.utils import db
    from airflow.utils.state import DagRunState

    db.initdb()
    result["timings"]["airflow_db_init"] = time.monotonic() - t0
    # The migrations load alembic.ini's logging (root: WARNING, stderr); a worker never runs them
    # in-process, so restore Airflow's own logging, under which the tasks' INFO lines are printed.
    from airflow.logging_config import configure_logging

    configure_logging()

    from driftguard.components.registry_pusher.registry import existing_versions
    from driftguard.pipeline import config as config_lib
    from driftguard.pipeline.orchestrate import airflow_dags
    from driftguard.pipeline import metadata as metadata_lib

    cfg = config_lib.load(config_path)
    dag_file = airflow_dags.write_airflow_dags(config_path, dags_folder, schedule="@daily")
    result["dag_file"] = str(dag_file)
    check_id, train_id = airflow_dags.check_dag_id(cfg), airflow_dags.training_dag_id(cfg)

    def parse():
        t = time.monotonic()
        bag = DagBag(dag_folder=str(dags_folder), include_examples=False)
        assert not bag.import_errors, bag.import_errors
        bag.sync_to_db()   # TriggerDagRunOperator looks the target DAG up in the database
        return bag, time.monotonic() - t

    def states(dagrun):
        return {ti.task_id: ti.state for ti in dagrun.get_task_instances()}

    def alerts_of(dagrun):
        """The run's RetrainGate alerts and AlertDelivery artifacts, read from MLMD."""
        decision = airflow_dags.gate_decision_for_run(metadata_lib.location(cfg), check_id, dagrun.run_id)
        deliveries = run_artifacts(cfg, check_id, dagrun.run_id, DELIVERY_TYPE, "delivery.json")
        executions = node_executions(cfg, check_id, dagrun.run_id, airflow_dags.DELIVERY_TASK_ID)
        return {"alerts": (decision or {}).get("alerts", []), "deliveries": deliveries,
                "delivery_executions": executions}

    def training_runs():
        return [{"run_id": r.run_id, "conf": r.conf, "state": r.state, "execution_date": r.execution_date.isoformat()}
                for r in DagRun.find(dag_id=train_id)]

    # ---- phase 1: no drift ----
    bag, took = parse()
    result["timings"]["parse_1"] = took
    check = bag.get_dag(check_id)
    result["dag_ids"] = sorted(bag.dag_ids)
    result["check_tasks"] = {t.task_id: sorted(t.upstream_task_ids) for t in check.tasks}
    result["training_tasks"] = {t.task_id: sorted(t.upstream_task_ids) for t in bag.get_dag(train_id).tasks}
    result["check_schedule"] = str(check.timetable.summary)
    result["check_doc"] = check.doc_md
    t = time.monotonic()
    run = check.test()
    result["timings"]["check_no_drift"] = time.monotonic() - t
    result["no_drift"] = {"state": run.state, "tasks": states(run), "training_runs": training_runs(),
                          "webhook": received(hook)}
    result["no_drift"].update(alerts_of(run))

    # ---- phase 2: span 8 arrives, with drift ----
    (pathlib.Path(data_root) / "span-8").mkdir()
    shutil.copy(span8_csv, pathlib.Path(data_root) / "span-8" / "data.csv")
    bag, took = parse()
    result["timings"]["parse_2"] = took
    check = bag.get_dag(check_id)
    result["check_doc_2"] = check.doc_md
    t = time.monotonic()
    run = check.test()
    result["timings"]["check_drift"] = time.monotonic() - t
    triggered = training_runs()
    result["drift"] = {"state": run.state, "tasks": states(run), "training_runs": triggered,
                       "webhook": received(hook), "run_id": run.run_id}
    result["drift"].update(alerts_of(run))
    # ---- the delivery task of the same DagRun, cleared and run again (a retry) ----
    t = time.monotonic()
    result["retry"] = rerun_task(check, run.run_id, airflow_dags.DELIVERY_TASK_ID)
    result["timings"]["retry_delivery"] = time.monotonic() - t
    result["retry"]["webhook"] = received(hook)
    after = alerts_of(run)
    result["retry"]["deliveries"] = after["deliveries"]
    result["retry"]["delivery_executions"] = after["delivery_executions"]
    hook.close()
    if run.state != DagRunState.SUCCESS or len(triggered) != 1:
        pathlib.Path(result_path).write_text(json.dumps(result, default=str))
        return
    # ---- the triggered training run, as a worker would run it (the DAG file parsed again) ----
    bag, took = parse()
    training = bag.get_dag(train_id)
    result["training_doc"] = training.doc_md
    queued = DagRun.find(dag_id=train_id)[0]
    t = time.monotonic()
    run = training.test(execution_date=queued.execution_date, run_conf=queued.conf)
    result["timings"]["training"] = time.monotonic() - t
    result["training"] = {"state": run.state, "tasks": states(run), "conf": run.conf}
    result["registry_versions"] = existing_versions(cfg.model_registry)
    # A run triggered for other spans than the graph's window fails in check_window.
    t = time.monotonic()
    wrong = training.test(run_conf={"spans": "5,6"})
    result["timings"]["wrong_window"] = time.monotonic() - t
    result["wrong_window"] = {"state": wrong.state, "tasks": states(wrong)}
    pathlib.Path(result_path).write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    main(*sys.argv[1:6])
