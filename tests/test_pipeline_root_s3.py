"""``pipeline_root: s3://bucket/prefix``: TFX's artifacts in object storage, through the real
CLI against moto's S3 server on 127.0.0.1 (tests/s3_fixture.py). Bad settings exit 2 naming
``pipeline_root`` before anything runs; (tfx) a training and a span check write every artifact
to the bucket, none under the local runs folder, and exit with their own status (tensorflow-io's
S3 client aborts the interpreter at exit otherwise: components/object_root.py)."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers import REPO, assert_refused_before_work, run_cli, write_config
from s3_fixture import free_port

# the variables of the developer's machine must not decide the outcome
_ISOLATE = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true"}
# TFX's own names for its components' output folders: none may appear under the local runs folder
_TFX_FOLDERS = {"ExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Transform", "Trainer",
                "Evaluator", "DriftDetector", "PredictionMonitor", "RetrainGate", "AnomalyGate", "RegistryPusher"}


def _project(tmp_path, name: str, **values):
    folder = tmp_path / name
    folder.mkdir()
    shutil.copytree(REPO / "schemas" / "taxi", folder / "schemas" / "taxi")
    return write_config(folder / "driftguard.json", **{"runs": "runs", "schemas": "schemas", **values})


@pytest.mark.parametrize("case", ["gs scheme", "unknown scheme", "trailing slash", "missing bucket", "wrong secret",
                                  "unreachable endpoint"])
def test_a_bad_pipeline_root_exits_2_naming_it_before_anything_runs(s3_server, tmp_path, case):
    env = {**s3_server.env(), **_ISOLATE}
    root = s3_server.prefix_uri()
    if case == "gs scheme":
        root = "gs://bucket/pipelines"
    elif case == "unknown scheme":
        root = "hdfs://namenode/pipelines"
    elif case == "trailing slash":
        root += "/"
    elif case == "missing bucket":
        root = "s3://no-such-bucket/pipelines"
    elif case == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-value"
    elif case == "unreachable endpoint":
        env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{free_port()}"
    config = _project(tmp_path, "p", pipeline_root=root)
    assert_refused_before_work(config, env, "pipeline_root", [s3_server.secret_key, "wrong-secret-value"],
                               ["pipelines", "serving", "metadata.sqlite"])
    if root.startswith(f"s3://{s3_server.bucket}/"):
        assert s3_server.keys(root.rstrip("/").split("/", 3)[3]) == []     # not even the probe is left


def test_tensorflow_io_gets_the_endpoint_and_region_of_botocore_variables():
    from driftguard.components import object_root

    env = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_DEFAULT_REGION": "eu-west-1"}
    object_root.tensorflow_io_environment(env)
    assert env["S3_ENDPOINT"] == "http://127.0.0.1:9000" and env["AWS_REGION"] == "eu-west-1"
    own = {"AWS_ENDPOINT_URL": "http://a:1", "S3_ENDPOINT": "http://b:2", "AWS_REGION": "us-east-2",
           "AWS_DEFAULT_REGION": "eu-west-1"}
    object_root.tensorflow_io_environment(own)      # tensorflow-io's own variables win
    assert own["S3_ENDPOINT"] == "http://b:2" and own["AWS_REGION"] == "us-east-2"


def test_the_plugin_is_found_without_importing_tensorflow_io():
    import sys

    from driftguard.components import object_root

    had = "tensorflow_io" in sys.modules
    path = object_root.plugin_path()
    assert path is not None and path.name == "libtensorflow_io_plugins.so" and path.is_file()
    assert ("tensorflow_io" in sys.modules) == had


def test_a_local_pipeline_root_is_a_folder_of_its_own(tmp_path):
    from driftguard.pipeline import config as config_lib

    config = _project(tmp_path, "p", pipeline_root="artifacts")
    cfg = config_lib.load(config)
    assert cfg.pipeline_root_uri == str(tmp_path / "p" / "artifacts")
    assert cfg.pipeline_root_of("taxi-check") == str(tmp_path / "p" / "artifacts" / "taxi-check")
    default = config_lib.load(_project(tmp_path, "q"))
    assert default.pipeline_root_uri == str(tmp_path / "q" / "runs" / "pipelines")


# ---------------------------------------------------------------- a real training and check


@pytest.fixture(scope="module")
def s3_root_runs(s3_server, tmp_path_factory):
    """Train on span 1 and check span 2 with ``pipeline_root: s3://...`` (MLMD, state and the
    registry stay local)."""
    tmp = tmp_path_factory.mktemp("s3-root")
    root = s3_server.prefix_uri()
    env = {**s3_server.env(), **_ISOLATE}
    config = _project(tmp, "p", pipeline_root=root)
    train = run_cli("train", "--spans", "1", config=config, env=env)
    check = run_cli("check", "--span", "2", "--json", config=config, env=env)
    return {"config": config, "root": root, "train": train, "check": check}


def _store(runs):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    conn = pb.ConnectionConfig()
    conn.sqlite.filename_uri = str(runs / "metadata.sqlite")
    conn.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(conn)


@pytest.mark.tfx
def test_a_training_and_a_check_write_every_artifact_to_the_bucket(s3_server, s3_root_runs):
    train, check, root = s3_root_runs["train"], s3_root_runs["check"], s3_root_runs["root"]
    assert train.returncode == 0, train.stderr[-3000:]
    report = json.loads(check.stdout)
    verdict = 1 if report["drift_detected"] or report.get("anomalies") else 0
    assert check.returncode == verdict, (check.returncode, check.stderr[-3000:])    # its own status, not 134
    runs = s3_root_runs["config"].parent / "runs"
    assert report["report_dir"].startswith(f"{root}/taxi-check/DriftDetector/")
    assert (runs / "serving" / "taxi" / "1" / "saved_model.pb").is_file()      # the registry stays local

    store = _store(runs)
    executions = {}
    for pipeline in ("taxi-training", "taxi-check"):
        ctx = store.get_context_by_type_and_name("pipeline", pipeline)
        executions[pipeline] = store.get_executions_by_context(ctx.id)
    assert len(executions["taxi-training"]) >= 9 and len(executions["taxi-check"]) >= 7, executions
    states = {e.last_known_state for es in executions.values() for e in es}
    assert states == {3}, states      # every execution COMPLETE: none FAILED, RUNNING or CACHED

    keys = set(s3_server.keys(root.split("/", 3)[3]))
    types = {t.id: t.name for t in store.get_artifact_types()}
    written = {"Examples", "ExampleStatistics", "Schema", "TransformGraph", "Model", "ModelEvaluation",
               "ModelBlessing", "DriftguardDriftReport"}
    seen = set()
    for artifact in store.get_artifacts():
        name = types[artifact.type_id]
        assert artifact.uri.startswith(f"{root}/"), (name, artifact.uri)
        # an empty output folder (the taxi model writes no TensorBoard logs: ModelRun) is no object
        if name in written:
            prefix = artifact.uri.split("/", 3)[3] + "/"
            assert any(k.startswith(prefix) for k in keys), (name, artifact.uri)
            seen.add(name)
    assert seen == written, seen
    for name in ("Trainer/model/", "Evaluator/evaluation/", "StatisticsGen/statistics/"):
        assert any(f"/taxi-training/{name}" in k for k in keys), name
    for name in ("DriftDetector/drift_report/", "PredictionMonitor/model_monitor/", "RetrainGate/decision/"):
        assert any(f"/taxi-check/{name}" in k for k in keys), name

    # nothing artifact-like under the local runs folder: no pipelines/, no TFX component folder
    assert not (runs / "pipelines").exists()
    local = {part for path in runs.rglob("*") for part in path.relative_to(runs).parts}
    assert not local & _TFX_FOLDERS, sorted(local & _TFX_FOLDERS)
    assert not [p for p in os.listdir(runs) if p.startswith("s3:")]
