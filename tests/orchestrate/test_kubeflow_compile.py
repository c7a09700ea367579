"""`driftguard compile --target kubeflow`: KubeflowV2DagRunner's PipelineJob JSON and the KFP
pipeline-spec YAML, checked the way KFP reads them (no cluster here)."""
from __future__ import annotations

import importlib
import json
import re

import pytest

from helpers import make_config
from orchestrate_cli import invoke

IMAGE = "registry.example.com/driftguard:tfx-1.16.0"
SPAN = 8
CHECK_TASKS = {"CheckImportSchemaGen", f"CheckExampleGen_span{SPAN}", "CheckStatisticsGen",
               "CheckExampleValidator", "CheckDriftDetector", "CheckPredictionMonitor", "CheckRetrainGate"}
TRAIN_TASKS = {"ImportSchemaGen", f"ExampleGen_span{SPAN}", f"StatisticsGen_span{SPAN}",
               f"ExampleValidator_span{SPAN}", "AnomalyGate", "Transform", "Trainer", "Evaluator",
               "RegistryPusher"}
CONDITION = "(inputs.artifacts['_CheckRetrainGate.decision'].artifacts[0].metadata['retrain'] == 1.0)"


@pytest.fixture(scope="module")
def compiled(workspace, tmp_path_factory):
    cfg = make_config(workspace, "kfp", training={"window_spans": 1, "train_steps": 60})
    out = tmp_path_factory.mktemp("kfp")
    result = invoke("--config", cfg, "compile", "--target", "kubeflow", "--output", out,
                    "--span", SPAN, "--image", IMAGE, "--pipeline-root", "gs://bucket/driftguard")
    assert result.exit_code == 0, result.output
    return {"out": out, "result": result, "config": cfg}


def _spec(compiled):
    from driftguard.pipeline.orchestrate.kubeflow import load_pipeline_yaml

    return load_pipeline_yaml(compiled["out"] / "pipeline.yaml")


def test_yaml_loads_as_kfp_client_reads_it_and_as_a_component(compiled):
    import kfp.components
    from kfp.client import client as kfp_client
    from kfp.pipeline_spec import pipeline_spec_pb2

    doc = kfp_client._extract_pipeline_yaml(str(compiled["out"] / "pipeline.yaml"))  # what upload/run use
    assert isinstance(doc.pipeline_spec, pipeline_spec_pb2.PipelineSpec)
    assert doc.pipeline_spec.pipeline_info.name == "taxi-check-and-train"
    assert doc.pipeline_spec.default_pipeline_root == "gs://bucket/driftguard"
    component = kfp.components.load_component_from_file(str(compiled["out"] / "pipeline.yaml"))
    assert component.name == "taxi-check-and-train"


def test_pipeline_job_json_parses_as_the_pipeline_job_proto(compiled):
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    job = json_format.ParseDict(json.loads((compiled["out"] / "pipeline_job.json").read_text()),
                                pipeline_spec_pb2.PipelineJob(), ignore_unknown_fields=False)
    assert job.runtime_config.gcs_output_directory == "gs://bucket/driftguard"
    assert set(job.pipeline_spec["root"]["dag"]["tasks"].keys()) >= CHECK_TASKS | TRAIN_TASKS


def test_every_task_the_dependencies_and_the_image(compiled):
    spec = _spec(compiled)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) >= CHECK_TASKS | TRAIN_TASKS
    deps = {name: set(t.get("dependentTasks", [])) for name, t in tasks.items()}
    assert deps["CheckRetrainGate"] == {"CheckDriftDetector", "CheckPredictionMonitor"}
    assert deps["CheckDriftDetector"] >= {f"CheckExampleGen_span{SPAN}", "CheckExampleValidator"}
    assert deps["Trainer"] >= {"Transform", "AnomalyGate"}
    assert deps["RegistryPusher"] >= {"Trainer", "Evaluator"}
    assert "CheckRetrainGate" in deps[f"ExampleGen_span{SPAN}"]   # training waits for the gate
    executors = spec["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images == {IMAGE}


def test_training_runs_only_under_the_gates_retrain_condition(compiled):
    tasks = _spec(compiled)["root"]["dag"]["tasks"]
    for name in TRAIN_TASKS:
        assert tasks[name].get("triggerPolicy", {}).get("condition") == CONDITION, name
    for name in CHECK_TASKS:
        assert "triggerPolicy" not in tasks[name], name


def test_every_executor_class_imports_and_none_lives_in_main(compiled):
    from driftguard.pipeline.orchestrate.kubeflow import executor_class_paths

    paths = executor_class_paths(_spec(compiled))
    assert len(paths) >= len(CHECK_TASKS | TRAIN_TASKS)
    assert {"driftguard.components.retrain_gate.executor.Executor", "driftguard.components.drift_detector.executor.Executor",
            "driftguard.components.registry_pusher.executor.Executor"} <= set(paths.values())
    for path in set(paths.values()):
        assert not path.startswith("__main__"), path
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name), path


def test_custom_artifacts_carry_kfp_schema_titles(compiled):
    text = (compiled["out"] / "pipeline.yaml").read_text()
    assert "title: driftguard.DriftguardRetrainDecision" in text
    assert re.search(r"title: driftguard\.DriftguardDriftReport", text)


def test_a_window_of_several_spans_is_refused_with_the_reason(workspace, tmp_path):
    cfg = make_config(workspace, "kfp2", training={"window_spans": 2})
    result = invoke("--config", cfg, "compile", "--target", "kubeflow", "--output", tmp_path, "--span", SPAN)
    assert result.exit_code == 2
    assert re.search(r"spans \[7, 8\].*no channel union.*training.window_spans: 1", result.output, re.S)
    assert not (tmp_path / "pipeline.yaml").exists()
