"""`driftguard compile --target kubeflow`: KubeflowV2DagRunner's PipelineJob JSON and the KFP
pipeline-spec YAML, checked the way KFP reads them (no cluster here). The default config
(a training window of two spans) compiles, and no span is fixed in the spec: the check reads the
newest span when the run starts, the training branch the window its gate decided
(tests/orchestrate/test_kubeflow_local.py runs the same pipeline definition locally)."""
from __future__ import annotations

import importlib
import json
import re

import pytest

from helpers import make_config
from orchestrate_cli import invoke

IMAGE = "registry.example.com/driftguard:tfx-1.16.0"
SPAN = 8
CHECK_TASKS = {"CheckImportSchemaGen", "CheckExampleGen", "CheckStatisticsGen", "CheckExampleValidator",
               "CheckDriftDetector", "CheckPredictionMonitor", "CheckRetrainGate", "CheckAlertDelivery"}
SECRETS = {"DG_KFP_HOOK_URL": "http://127.0.0.1:9/hooks/" + "k" * 24, "DG_KFP_HOOK_KEY": "hmac-" + "s" * 24}
TRAIN_TASKS = {"ImportSchemaGen", "ExampleGen", "StatisticsGen", "ExampleValidator", "AnomalyGate", "Transform",
               "Trainer", "Evaluator", "RegistryPusher"}
CONDITION = "(inputs.artifacts['_CheckRetrainGate.decision'].artifacts[0].metadata['retrain'] == 1.0)"


@pytest.fixture(scope="module")
def compiled(workspace, tmp_path_factory):
    cfg = make_config(workspace, "kfp", training={"train_steps": 60},      # the default window: 2 spans
                      alerts={"sinks": [{"type": "webhook", "url_env": "DG_KFP_HOOK_URL",
                                         "hmac_secret_env": "DG_KFP_HOOK_KEY"}]})
    out = tmp_path_factory.mktemp("kfp")
    result = invoke("--config", cfg, "compile", "--target", "kubeflow", "--output", out,
                    "--image", IMAGE, "--pipeline-root", "gs://bucket/driftguard", env=SECRETS)
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
    # the gate reads the spans the ExampleGen resolved (the window it decides ends there)
    assert deps["CheckRetrainGate"] == {"CheckExampleGen", "CheckDriftDetector", "CheckPredictionMonitor"}
    assert deps["CheckDriftDetector"] >= {"CheckExampleGen", "CheckExampleValidator"}
    assert deps["Trainer"] >= {"Transform", "AnomalyGate"}
    assert deps["RegistryPusher"] >= {"Trainer", "Evaluator"}
    assert "CheckRetrainGate" in deps["ExampleGen"]   # training waits for the gate
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


def _parameter(task, name):
    value = task["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]
    return next(iter(value.values()))


def test_no_span_is_fixed_the_check_takes_the_newest_and_training_the_gates_window(compiled):
    tasks = _spec(compiled)["root"]["dag"]["tasks"]
    check, train = tasks["CheckExampleGen"], tasks["ExampleGen"]
    assert _parameter(check, "spans_json") == "" and int(_parameter(check, "window_spans")) == 1
    assert _parameter(check, "span_pattern") == "span-{SPAN}/*"
    assert _parameter(train, "spans_json") == ""
    decision = train["inputs"]["artifacts"]["decision"]["taskOutputArtifact"]
    assert decision == {"producerTask": "CheckRetrainGate", "outputArtifactKey": "decision"}
    for name in ("CheckDriftDetector", "CheckPredictionMonitor", "CheckRetrainGate"):
        assert "span" not in tasks[name]["inputs"].get("parameters", {}), name   # read from the examples
    assert "span 8" not in compiled["result"].output
    assert "the newest span when the run starts" in compiled["result"].output


def test_alerts_are_delivered_by_a_step_after_the_gate_with_secrets_from_a_kubernetes_secret(compiled):
    from driftguard.pipeline.orchestrate.kubeflow import load_platform_spec

    spec = _spec(compiled)
    task = spec["root"]["dag"]["tasks"]["CheckAlertDelivery"]
    assert task["dependentTasks"] == ["CheckRetrainGate"] and "triggerPolicy" not in task   # every run
    executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    platform = load_platform_spec(compiled["out"] / "pipeline.yaml")["platforms"]["kubernetes"]
    [secret] = platform["deploymentSpec"]["executors"][executor]["secretAsEnv"]
    assert secret["secretName"] == "driftguard-alerts"
    assert sorted((k["secretKey"], k["envVar"]) for k in secret["keyToEnv"]) == \
        [("DG_KFP_HOOK_KEY", "DG_KFP_HOOK_KEY"), ("DG_KFP_HOOK_URL", "DG_KFP_HOOK_URL")]
    assert list(platform["deploymentSpec"]["executors"]) == [executor]        # no other step sees them
    for path in compiled["out"].iterdir():                                   # names, never values
        text = path.read_text()
        assert not any(value in text for value in SECRETS.values()), path
    from kfp.client import client as kfp_client

    doc = kfp_client._extract_pipeline_yaml(str(compiled["out"] / "pipeline.yaml"))
    assert "kubernetes" in doc.platform_spec.platforms                       # what upload sends


def test_a_fixed_span_compiles_too(workspace, tmp_path):
    cfg = make_config(workspace, "kfp2")
    result = invoke("--config", cfg, "compile", "--target", "kubeflow", "--output", tmp_path, "--span", SPAN)
    assert result.exit_code == 0, result.output
    from driftguard.pipeline.orchestrate.kubeflow import load_pipeline_yaml

    tasks = load_pipeline_yaml(tmp_path / "pipeline.yaml")["root"]["dag"]["tasks"]
    assert _parameter(tasks["CheckExampleGen"], "spans_json") == f"[{SPAN}]"
    assert _parameter(tasks["ExampleGen"], "spans_json") == ""         # training: the gate's window


def test_a_reference_strategy_and_slices_compile_with_no_span_fixed(workspace, tmp_path):
    """drift.reference: rolling and drift.slices reach the DriftDetector as parameters; the
    reference spans are not in the spec: the detector finds them in the data when it runs."""
    cfg = make_config(workspace, "kfp-reference", drift={"reference": {"strategy": "rolling", "spans": 3},
                                                         "slices": [["payment_type"]]})
    result = invoke("--config", cfg, "compile", "--target", "kubeflow", "--output", tmp_path)
    assert result.exit_code == 0, result.output
    from driftguard.pipeline.orchestrate.kubeflow import load_pipeline_yaml

    detector = load_pipeline_yaml(tmp_path / "pipeline.yaml")["root"]["dag"]["tasks"]["CheckDriftDetector"]
    reference = json.loads(_parameter(detector, "reference_json"))
    assert reference["settings"] == {"strategy": "rolling", "spans": 3, "period": 0}
    assert reference["data"]["pattern"] == "span-{SPAN}/*" and "spans" not in reference["data"]
    assert json.loads(_parameter(detector, "slices_json")) == {"slices": [["payment_type"]], "min_rows": 200,
                                                                "alpha_share": 0.5}
