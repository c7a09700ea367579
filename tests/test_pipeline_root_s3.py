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


# ---------------------------------------------------------------- the reports' mirror (no TFX)

_FIXTURE_RUNS = REPO / "tests" / "reports" / "fixtures" / "runs"


def test_the_reports_mirror_copies_only_their_files_once_and_the_dashboard_reads_it(s3_env, tmp_path):
    """The committed report fixture's pipelines/ uploaded to the bucket as an s3:// pipeline
    root: ``loop.mirror_pipeline_root`` copies the drift reports, monitors, decisions and
    statistics into ``<runs>/pipeline-cache/pipelines`` and nothing else (prediction logs,
    evaluations, anomalies, blessings stay in the bucket); a second call downloads nothing; the
    dashboard and span pages are built from the mirror, finding the s3:// paths state.json holds."""
    from helpers import taxi_config

    from driftguard.components.reports import build_reports
    from driftguard.components.reports import runs as report_runs
    from driftguard.pipeline import config as config_lib
    from driftguard.pipeline import loop

    root = s3_env.prefix_uri()
    prefix = root.split("/", 3)[3]
    client = s3_env.client()
    uploaded = sorted(p for p in (_FIXTURE_RUNS / "pipelines").rglob("*") if p.is_file())
    for path in uploaded:
        rel = path.relative_to(_FIXTURE_RUNS / "pipelines").as_posix()
        client.put_object(Bucket=s3_env.bucket, Key=f"{prefix}/{rel}", Body=path.read_bytes())
    runs = tmp_path / "runs"
    shutil.copytree(_FIXTURE_RUNS, runs, ignore=shutil.ignore_patterns("pipelines"))
    state = json.loads((runs / "state.json").read_text())
    for row in state["spans"]:      # what a check with an s3:// pipeline root records
        row["report"] = row["report"].replace("/driftguard-fixture/runs/pipelines", root)
    (runs / "state.json").write_text(json.dumps(state))
    cfg = config_lib.from_dict(taxi_config(pipeline_root=root, runs=str(runs)), tmp_path)

    wanted = [p for p in uploaded if report_runs.report_input(p.relative_to(_FIXTURE_RUNS / "pipelines").as_posix())]
    assert loop.mirror_pipeline_root(cfg) == (len(wanted), 0)
    mirror = runs / report_runs.PIPELINE_MIRROR
    assert (mirror / report_runs.MIRROR_SOURCE).read_text().strip() == root
    copied = sorted(p.relative_to(mirror / "pipelines").as_posix() for p in (mirror / "pipelines").rglob("*")
                    if p.is_file() and not p.name.startswith("."))
    assert copied == sorted(p.relative_to(_FIXTURE_RUNS / "pipelines").as_posix() for p in wanted)
    names = {c.rsplit("/", 1)[1] for c in copied}
    assert names == {"report.json", "monitor.json", "decision.json", "FeatureStats.pb"}, names
    assert not [c for c in copied if "/Evaluator/" in c or "/ExampleValidator/" in c or "prediction_logs" in c]
    assert len(wanted) < len(uploaded)
    def stamps():     # the copied files (the sync's own manifest is rewritten each time)
        return {p: p.stat().st_mtime_ns for p in (mirror / "pipelines").rglob("*")
                if p.is_file() and not p.name.startswith(".")}

    before = stamps()
    assert loop.mirror_pipeline_root(cfg) == (0, 0)          # one listing, nothing downloaded
    assert stamps() == before

    index = build_reports(runs)
    loaded = report_runs.load_runs(runs)
    for rec in loaded.spans:
        assert rec.report_path == (mirror / "pipelines" / rec.row["report"][len(root) + 1:]).with_name("report.json")
        assert (index.parent / f"span-{rec.span_label}.html").is_file()
        assert f"span-{rec.span_label}.html" in index.read_text()
        assert rec.monitor and rec.decision
    assert [rec.span for rec in loaded.spans] == [r["span"] for r in state["spans"]]
    assert not (runs / "pipelines").exists()
    # a local pipeline root has no mirror; no runs folder yet: none made (`report` says there is none)
    assert loop.mirror_pipeline_root(config_lib.from_dict(taxi_config(runs=str(runs)), tmp_path)) is None
    fresh = config_lib.from_dict(taxi_config(pipeline_root=root, runs=str(tmp_path / "r2")), tmp_path)
    assert loop.mirror_pipeline_root(fresh) is None and not (tmp_path / "r2").exists()


def test_report_input_takes_the_reports_files_only():
    from driftguard.components.reports.runs import report_input

    assert report_input("taxi-check/DriftDetector/drift_report/19/report.json")
    assert report_input("taxi-check/DriftDetector/drift_report/19/report.html")
    assert report_input("taxi-check/StatisticsGen/statistics/17/Split-eval/FeatureStats.pb")
    assert report_input("taxi-check/RetrainGate/decision/20/decision.json")
    for rel in ("taxi-check/ExampleGen/examples/15/Split-eval/data_tfrecord-00000-of-00001.gz",
                "taxi-training/Trainer/model/9/Format-Serving/saved_model.pb",
                "taxi-check/PredictionMonitor/model_monitor/16/prediction_logs/prediction_logs-00000-of-00001.gz",
                "taxi-training/Evaluator/evaluation/12/eval_config.json",
                "taxi-check/DriftDetector/drift_report/x/report.json", "report.json"):
        assert not report_input(rel), rel


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


@pytest.mark.storage
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

    # `driftguard report` copies the span check's report files out of the bucket and builds the
    # dashboard and the span's page from them (before: index.html alone)
    built = run_cli("report", config=s3_root_runs["config"], env={**s3_server.env(), **_ISOLATE}, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    dashboard = runs / "reports" / "index.html"
    assert built.stdout.strip() == str(dashboard)
    mirrored = runs / "pipeline-cache" / "pipelines" / "taxi-check"
    assert (mirrored / report["report_dir"][len(root) + len("/taxi-check/"):] / "report.json").is_file()
    assert not (runs / "pipeline-cache" / "pipelines" / "taxi-training" / "Trainer").exists()   # no model
    assert not list((runs / "pipeline-cache").rglob("*tfrecord*"))                               # no examples
    label = str(report.get("context", {}).get("span_label") or 2)
    page = runs / "reports" / f"span-{label}.html"
    assert page.is_file(), sorted(p.name for p in (runs / "reports").iterdir())
    assert f"span-{label}.html" in dashboard.read_text()
    html = page.read_text()
    assert f"Drift report — span {label}" in html
    assert report["features"] and all(name in html for name in report["features"])
