"""`driftguard trigger` against a real Airflow 2.10 webserver on 127.0.0.1 (stable REST API,
basic-auth backend, sqlite metadata DB in a temporary AIRFLOW_HOME).

The served DAG is a one-task stand-in with the training DAG's id: the REST call is what is under
test, and a DAG file importing TensorFlow would add ~50 s of parsing. The TFX DAGs themselves run
in test_airflow_dags.py. ~70 s on 2 cores (db migrate + reserialize + user ~38 s, webserver ~30 s).
"""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from orchestrate_cli import invoke

pytestmark = pytest.mark.airflow

AIRFLOW = os.path.join(os.path.dirname(sys.executable), "airflow")
DAG = '''import datetime
from airflow import DAG
from airflow.operators.empty import EmptyOperator
with DAG("taxi-training", start_date=datetime.datetime(2024, 1, 1), schedule=None, catchup=False) as dag:
    EmptyOperator(task_id="noop")
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow_api")
    (home / "dags").mkdir()
    (home / "dags" / "training.py").write_text(DAG)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__API__AUTH_BACKENDS": "airflow.api.auth.backend.basic_auth",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "AIRFLOW__WEBSERVER__WORKERS": "1"}
    for cmd in (["db", "migrate"], ["dags", "reserialize"],
                ["users", "create", "--username", "admin", "--password", "s3cret", "--role", "Admin",
                 "--firstname", "a", "--lastname", "b", "--email", "a@example.com"]):
        proc = subprocess.run([AIRFLOW, *cmd], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (cmd, proc.stderr[-2000:])
    port = _free_port()
    server = subprocess.Popen([AIRFLOW, "webserver", "--port", str(port), "--hostname", "127.0.0.1"], env=env,
                              stdout=open(home / "webserver.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (home / "webserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "Airflow webserver did not come up in 240 s"
            time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def _dag_runs(url):
    request = urllib.request.Request(f"{url}/api/v1/dags/taxi-training/dagRuns", headers={
        "Authorization": "Basic " + base64.b64encode(b"admin:s3cret").decode()})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())["dag_runs"]


def test_trigger_creates_a_dag_run_with_the_window_as_conf(airflow_api, monkeypatch):
    monkeypatch.setenv("AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "s3cret")
    result = invoke("trigger", "--airflow", airflow_api, "--dag", "taxi-training", "--spans", "7,8")
    assert result.exit_code == 0, result.output
    assert "triggered taxi-training: run manual__" in result.output and "state queued" in result.output
    runs = _dag_runs(airflow_api)
    assert [r["conf"] for r in runs] == [{"spans": "7,8"}]


def test_wrong_password_and_unknown_dag_are_clear_errors(airflow_api, monkeypatch):
    monkeypatch.setenv("AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "wrong-password")
    result = invoke("trigger", "--airflow", airflow_api, "--dag", "taxi-training")
    assert result.exit_code == 2 and "HTTP 401" in result.output and "wrong-password" not in result.output
    monkeypatch.setenv("AIRFLOW_PASSWORD", "s3cret")
    result = invoke("trigger", "--airflow", airflow_api, "--dag", "nope")
    assert result.exit_code == 2 and "HTTP 404" in result.output and "no DAG 'nope'" in result.output
