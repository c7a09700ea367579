"""Runs the driftguard DAGs with Airflow's own machinery, in a process of its own (Airflow reads
AIRFLOW_HOME and its config once, at import). Used by test_airflow_dags.py:

    python airflow_scenario.py CONFIG DATA_ROOT SPAN8_CSV RESULT_JSON

Phase "no drift": the newest span is 7 (a resample of the training window) -> the check DAG's
ShortCircuit skips the trigger. Phase "drift": span 8 (fares +25 %) arrives -> the check DAG
triggers the training DAG (a queued DagRun with conf), which is then run with that conf.
Results (task states, dag runs, timings, registry versions) go to RESULT_JSON.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import time


def main(config_path: str, data_root: str, span8_csv: str, result_path: str) -> None:
    home = pathlib.Path(os.environ["AIRFLOW_HOME"])
    dags_folder = home / "dags"
    result = {"timings": {}}
    t0 = time.monotonic()
    from airflow.models import DagBag, DagRun
    from airflow.utils import db
    from airflow.utils.state import DagRunState

    db.initdb()
    result["timings"]["airflow_db_init"] = time.monotonic() - t0

    from driftguard.components.registry_pusher.registry import existing_versions
    from driftguard.pipeline import config as config_lib
    from driftguard.pipeline.orchestrate import airflow_dags

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
    result["no_drift"] = {"state": run.state, "tasks": states(run), "training_runs": training_runs()}

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
    result["drift"] = {"state": run.state, "tasks": states(run), "training_runs": triggered}
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
    main(*sys.argv[1:5])
