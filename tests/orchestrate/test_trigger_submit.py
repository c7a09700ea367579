"""`driftguard trigger` against a local HTTP server standing in for Airflow's stable REST API
(it checks the request shape: method, path, basic auth from env vars, JSON body), and
`driftguard submit` with kfp.Client replaced by a recorder (no KFP cluster here)."""
from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrate_cli import invoke


class _FakeAirflow:
    """POST /api/v1/dags/<id>/dagRuns -> 200 with a DAGRun JSON, like Airflow 2.10; 401 without auth."""

    def __init__(self, user="admin", password="s3cret", known_dags=("taxi-training",)):
        self.requests = []
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if self.headers.get("Authorization") != expected:
                    return self._send(401, {"title": "Unauthorized", "status": 401})
                parts = self.path.split("/")
                if parts[:4] != ["", "api", "v1", "dags"] or parts[5:] != ["dagRuns"]:
                    return self._send(404, {"title": "Not found"})
                if parts[4] not in known_dags:
                    return self._send(404, {"title": "DAG not found", "detail": f"DAG with dag_id: '{parts[4]}' not found"})
                payload = json.loads(body)
                return self._send(200, {"dag_id": parts[4], "dag_run_id": payload.get("dag_run_id", "manual__2026-01-01"),
                                        "state": "queued", "conf": payload.get("conf", {})})

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def airflow():
    server = _FakeAirflow()
    yield server
    server.close()


ENV = {"AIRFLOW_USERNAME": "admin", "AIRFLOW_PASSWORD": "s3cret"}


def test_trigger_posts_a_dag_run_with_basic_auth_from_env(airflow):
    result = invoke("trigger", "--airflow", airflow.url + "/", "--dag", "taxi-training", "--spans", "7-8",
                    "--run-id", "manual-7-8", env=ENV)
    assert result.exit_code == 0, result.output
    (req,) = airflow.requests
    assert req["path"] == "/api/v1/dags/taxi-training/dagRuns"
    assert req["headers"]["Content-Type"] == "application/json"
    assert json.loads(req["body"]) == {"conf": {"spans": "7,8"}, "dag_run_id": "manual-7-8"}
    assert "triggered taxi-training: run manual-7-8 state queued" in result.output
    assert "s3cret" not in result.output


def test_trigger_defaults_to_the_configs_training_dag(airflow, tmp_path):
    from helpers import write_config

    cfg = write_config(tmp_path / "c.json")
    result = invoke("--config", cfg, "trigger", "--airflow", airflow.url, "--conf", '{"note": "drift seen upstream"}',
                    env=ENV)
    assert result.exit_code == 0, result.output
    assert airflow.requests[0]["path"] == "/api/v1/dags/taxi-training/dagRuns"
    assert json.loads(airflow.requests[0]["body"]) == {"conf": {"note": "drift seen upstream"}}


def test_trigger_without_credentials_says_which_env_vars(airflow):
    result = invoke("trigger", "--airflow", airflow.url, "--dag", "taxi-training",
                    env={"AIRFLOW_USERNAME": "", "AIRFLOW_PASSWORD": ""})
    assert result.exit_code == 2
    assert "HTTP 401" in result.output and "AIRFLOW_USERNAME and AIRFLOW_PASSWORD" in result.output
    assert "Authorization" not in airflow.requests[0]["headers"]


def test_trigger_unknown_dag_and_half_credentials_and_unreachable(airflow):
    result = invoke("trigger", "--airflow", airflow.url, "--dag", "nope", env=ENV)
    assert result.exit_code == 2 and "HTTP 404" in result.output and "no DAG 'nope'" in result.output
    result = invoke("trigger", "--airflow", airflow.url, "--dag", "x", env={"AIRFLOW_USERNAME": "admin", "AIRFLOW_PASSWORD": ""})
    assert result.exit_code == 2 and "AIRFLOW_PASSWORD is not set" in result.output
    result = invoke("trigger", "--airflow", "http://127.0.0.1:9", "--dag", "x", env=ENV)
    assert result.exit_code == 2 and "cannot reach Airflow at http://127.0.0.1:9" in result.output


def test_submit_hands_the_compiled_yaml_to_kfp_client(tmp_path, monkeypatch):
    from driftguard.pipeline.orchestrate import triggers

    calls = []

    class FakeClient:
        def create_run_from_pipeline_package(self, path, **kwargs):
            calls.append((path, kwargs))
            return type("Run", (), {"run_id": "run-123"})()

    monkeypatch.setattr(triggers, "kfp_client", lambda host: calls.append(host) or FakeClient())
    package = tmp_path / "pipeline.yaml"
    package.write_text("pipelineInfo: {name: x}\n")
    result = invoke("submit", "--kfp-host", "http://kfp.example:8080", "--package", package, "--run-name", "span-8")
    assert result.exit_code == 0, result.output
    assert calls[0] == "http://kfp.example:8080"
    path, kwargs = calls[1]
    assert path == str(package)
    assert kwargs["experiment_name"] == "driftguard" and kwargs["run_name"] == "span-8"
    assert kwargs["enable_caching"] is False
    assert "run run-123" in result.output


def test_submit_reports_an_unreachable_kfp(tmp_path):
    package = tmp_path / "pipeline.yaml"
    package.write_text("pipelineInfo: {name: x}\n")
    result = invoke("submit", "--kfp-host", "http://127.0.0.1:9", "--package", package)
    assert result.exit_code == 2
    assert "KFP at http://127.0.0.1:9 did not accept" in result.output
