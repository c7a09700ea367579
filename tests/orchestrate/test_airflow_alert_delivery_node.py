"""The AlertDelivery node of the check pipeline the Airflow DAG and the Kubeflow pipeline run
(`create_check_pipeline(..., deliver_alerts=True)`), checked without Airflow: wired after the
RetrainGate, given variable names and the runs folder; the CLI's check pipeline has none (the CLI
delivers itself). The DAG running it: test_airflow_dags.py (marked airflow)."""
from __future__ import annotations

import json

import pytest

from helpers import make_config


@pytest.fixture(scope="module")
def config(workspace):
    from driftguard.pipeline import config as config_lib

    path = make_config(workspace, "alert-delivery", alerts={"sinks": [
        {"type": "webhook", "url_env": "DRIFTGUARD_WEBHOOK_URL", "hmac_secret_env": "DRIFTGUARD_WEBHOOK_SECRET"}]})
    return config_lib.load(path)


def test_the_node_follows_the_gate_with_names_of_variables_and_the_runs_folder(config):
    from driftguard.pipeline import pipeline as pipeline_lib

    p = pipeline_lib.create_check_pipeline(config, 8, deliver_alerts=True)
    ids = [n.id for n in p.components]
    assert ids[-1] == "AlertDelivery" and ids.count("AlertDelivery") == 1
    node = p.components[-1]
    assert [u.id for u in node.upstream_nodes] == ["RetrainGate"]
    assert node.inputs["decision"].producer_component_id == "RetrainGate"
    assert json.loads(node.exec_properties["alerts_config_json"]) == config.alerts
    assert node.exec_properties["outbox_dir"] == str(config.runs_path)


def test_the_clis_check_pipeline_delivers_nothing_itself(config):
    from driftguard.pipeline import pipeline as pipeline_lib

    assert "AlertDelivery" not in [n.id for n in pipeline_lib.create_check_pipeline(config, 8).components]
