"""`driftguard check --span N`: the real span-check pipeline (ExampleGen -> StatisticsGen ->
ExampleValidator -> DriftDetector) against the profile of the version `first_push` pushed."""
from __future__ import annotations

import json
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import REPO, make_config, run_cli, runs_of
from postgres_fixture import free_port

pytestmark = pytest.mark.tfx


def _check(config, span, *extra):
    """The human-readable command; the report is read from the report.json it points at."""
    proc = run_cli("check", "--span", span, *extra, config=config)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("report: ")]
    report_dir = pathlib.Path(line[len("report: "):]).parent
    report = json.loads((report_dir / "report.json").read_text())
    report["report_dir"] = str(report_dir)
    return proc, report


@pytest.fixture(scope="session")
def checks(first_push):
    """One check per interesting span, run once for the whole session."""
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-3000:]
    cfg = first_push["config"]
    # span 4 (payment_type column dropped) is covered without TFX in
    # tests/test_drift_detector_compare.py; each real check costs ~55 s of the suite's budget
    return {s: _check(cfg, s) for s in (5, 7, 8)}


def _artifact_properties(config_path, report_dir):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    runs = runs_of(config_path)
    conn = metadata_store_pb2.ConnectionConfig()
    conn.sqlite.filename_uri = str(runs / "metadata.sqlite")
    conn.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = metadata_store.MetadataStore(conn)
    [artifact] = [a for a in store.get_artifacts_by_type("DriftguardDriftReport") if a.uri == report_dir]
    return {k: v.int_value for k, v in artifact.custom_properties.items()}


def test_span_from_the_training_window_does_not_drift(checks, first_push):
    proc, report = checks[7]
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert report["status"] == "compared" and report["drift_detected"] is False
    assert report["drifted_features"] == [] and report["anomalies"] == []
    assert report["context"]["baseline_version"] == 1 and report["context"]["baseline_spans"] == [1, 2]
    # every score is kept, below threshold too; excluded time features are said to be excluded
    assert report["features"]["fare"]["scores"]["psi"] >= 0
    assert report["not_compared"]["trip_start_timestamp"] == "excluded by configuration"
    assert "tips" not in report["features"]  # the label is not a SERVING feature
    # integer codes the schema marks categorical are compared as categories, as are the
    # community areas the taxi config declares categorical (floats in the CSV)
    for name in ("trip_start_hour", "trip_start_day", "pickup_community_area", "dropoff_community_area"):
        assert report["features"][name]["kind"] == "categorical", name
    assert report["features"]["fare"]["kind"] == "numeric"
    assert report["rows"]["current"]["rows"] == 1000
    assert "retrain gate (triggered): no -- no critical alert" in proc.stdout
    props = _artifact_properties(first_push["config"], report["report_dir"])
    assert props["drift_detected"] == 0 and props["has_baseline"] == 1 and props["baseline_version"] == 1


def test_fare_increase_is_detected(checks, first_push):
    proc, report = checks[8]
    assert proc.returncode == 1
    assert report["drift_detected"] is True
    assert report["drifted_features"][0] == "fare", report["drifted_features"]
    assert report["features"]["fare"]["scores"]["psi"] > 0.05
    assert report["features"]["fare"]["direction"].startswith("increase")
    props = _artifact_properties(first_push["config"], report["report_dir"])
    assert props["drift_detected"] == 1  # what tfx.dsl.Cond tests
    html = (pathlib.Path(report["report_dir"]) / "report.html").read_text()
    assert "DRIFT" in html and "fare" in html


def test_type_change_is_reported_not_crashed_on(checks):
    proc, report = checks[5]
    assert proc.returncode == 1
    assert report["drift_detected"] is True
    assert "trip_start_hour" in report["type_changes"]
    assert "text in this span" in report["type_changes"]["trip_start_hour"]
    assert any(a["feature"] == "trip_start_hour" for a in report["anomalies"])


def test_human_readable_output_names_the_drifted_feature_and_the_model(checks):
    proc, report = checks[8]
    out = proc.stdout
    assert "span 8 vs version 1 (trained on spans 1, 2): DRIFT: fare psi=" in out
    assert "\nfare " in out and "DRIFT" in out            # the feature table
    assert "model: accuracy 0." in out and "estimated 0." in out
    assert "ALERT [critical]" in out and "PSI" in out     # fare's PSI is far above 0.2
    assert "retrain gate (triggered): RETRAIN on spans 7, 8" in out


def test_status_names_the_span_checked_last(checks, first_push):
    """`checks` ran `check` on spans 5, 7, 8 in that order: status shows 8, and that `check` did
    not train (`driftguard run` still replays it)."""
    status = run_cli("status", config=first_push["config"])
    assert status.returncode == 0, status.stderr
    assert re.search(r"last span checked: 8: DRIFT: fare psi=[0-9.]+.*; driftguard check: the gate would "
                     r"retrain on 7, 8 \(\d+ critical alert", status.stdout), status.stdout
    checks_rows = json.loads((runs_of(first_push["config"]) / "state.json").read_text())["checks"]
    assert [r["span"] for r in checks_rows][-3:] == [5, 7, 8]
    assert "delivered now" in checks_rows[-1]["delivery"]


def test_monitor_reports_accuracy_and_prediction_logs(checks, first_push):
    proc, report = checks[7]
    runs = runs_of(first_push["config"])
    [monitor_dir] = [p for p in (runs / "pipelines" / "taxi-check" / "PredictionMonitor" / "model_monitor").iterdir()
                     if json.loads((p / "monitor.json").read_text())["span"] == 7]
    monitor = json.loads((monitor_dir / "monitor.json").read_text())
    assert monitor["status"] == "monitored" and monitor["model_version"] == 1
    perf = monitor["performance"]
    assert monitor["rows_total"] == 1000 and perf["labelled_rows"] == 1000
    assert perf["task"] == "binary" and perf["metric"] == "accuracy"
    assert 0.7 < perf["realized"]["accuracy"] <= 1.0 and 0.7 < perf["estimated"]["accuracy"] <= 1.0
    assert 0.7 < perf["realized"]["auc"] <= 1.0 and 0.7 < perf["baseline"]["accuracy"] <= 1.0
    assert perf["estimator"].startswith("CBPE") and perf["reference_rows_held_out"] > 0
    low, high = perf["estimated_interval"]["accuracy"]
    assert low < perf["estimated"]["accuracy"] < high
    low, high = perf["estimated_shift_aware_interval"]["accuracy"]
    assert low <= perf["estimated_shift_aware"]["accuracy"] <= high
    assert perf["shift_aware"]["method"].startswith("shift-aware") and perf["shift_aware"]["effective_sample_size"] > 0
    assert abs(monitor["prediction"]["psi"]) < 0.1  # same distribution as the training window
    logs = list((monitor_dir / "prediction_logs").glob("*.gz"))
    assert logs, "no PredictionLog files"
    from tensorflow_serving.apis import prediction_log_pb2
    import tensorflow as tf

    records = list(tf.data.TFRecordDataset([str(p) for p in logs], compression_type="GZIP").take(3))
    log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
    assert "probabilities" in log.predict_log.response.outputs


def test_span_the_model_cannot_read_is_reported_and_alerts(checks):
    proc, report = checks[5]
    assert "model: model version 1 cannot score span 5" in proc.stdout
    assert "ALERT [critical]" in proc.stdout and "cannot score" in proc.stdout


def test_check_before_any_push_says_there_is_no_baseline(workspace):
    cfg = make_config(workspace, "nobaseline", runs=str(workspace / "runs-nobaseline"))
    proc, report = _check(cfg, 7)
    assert proc.returncode == 0
    assert report["status"] == "no_baseline" and report["drift_detected"] is False
    assert "not a 'no drift' verdict" in report["message"]
    props = _artifact_properties(cfg, report["report_dir"])
    assert props["has_baseline"] == 0 and props["drift_detected"] == 0


def test_check_of_a_missing_span_fails_before_any_work(first_push):
    proc = run_cli("check", "--span", 99, config=first_push["config"])
    assert proc.returncode == 2
    assert "span(s) 99 not found under" in proc.stderr


def test_drift_detector_executor_under_multi_processing(checks, first_push, tmp_path):
    """The DriftDetector's executor on span 8's real ExampleGen output, with DirectRunner
    multi_processing and 2 workers: its Beam code must pickle and run in worker processes, as on
    a distributed runner. (The executor alone: the whole check under multi_processing spends
    minutes starting TensorFlow in workers of every Beam component.)"""
    from tfx.dsl.components.base import base_beam_executor
    from tfx.types import standard_artifacts

    from driftguard.components.drift_detector import executor as detector_executor
    from driftguard.components.drift_detector import spec as detector_spec

    runs = runs_of(first_push["config"])
    con = sqlite3.connect(f"file:{runs / 'metadata.sqlite'}?mode=ro", uri=True)
    [(examples_uri,)] = con.execute(
        "SELECT a.uri FROM Artifact a JOIN ArtifactProperty p ON p.artifact_id = a.id AND p.name = 'span' "
        "AND p.is_custom_property = 0 AND p.int_value = 8 WHERE a.uri LIKE '%/taxi-check/ExampleGen/examples/%' "
        "ORDER BY a.id DESC LIMIT 1").fetchall()
    con.close()
    examples = standard_artifacts.Examples()
    examples.uri = str(examples_uri)
    examples.split_names = '["train", "eval"]'
    examples.set_string_custom_property("spans", "[8]")        # what SpanExampleGen records
    examples.set_string_custom_property("span_labels", '{"8": "8"}')
    report = detector_spec.DriftReport()
    report.uri = str(tmp_path / "report")
    context = base_beam_executor.BaseBeamExecutor.Context(
        beam_pipeline_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
        tmp_dir=str(tmp_path / "tmp"))
    detector_executor.Executor(context).Do(
        {detector_spec.EXAMPLES_KEY: [examples]}, {detector_spec.DRIFT_REPORT_KEY: [report]},
        {detector_spec.REGISTRY_DIR_KEY: str(runs / "serving" / "taxi"),
         detector_spec.ALPHA_KEY: 0.01, detector_spec.MAX_ROWS_KEY: 100_000,
         detector_spec.EXCLUDE_KEY: json.dumps(["trip_start_timestamp", "trip_start_month"])})
    result = json.loads((tmp_path / "report" / "report.json").read_text())
    assert result["drift_detected"] is True and result["drifted_features"][0] == "fare"
    assert result["rows"]["current"]["rows"] == 1000
    # the same verdict and scores as the in-process run of the pipeline
    assert result["features"]["fare"]["score"] == pytest.approx(checks[8][1]["features"]["fare"]["score"])
    assert report.get_int_custom_property("drift_detected") == 1


def test_previous_span_reference_and_slices_in_a_real_check(first_push, workspace, tmp_path):
    """drift.reference: previous and drift.slices: [[payment_type]] in the real check pipeline:
    span 8 (span 7 with every fare 25 % higher) against span 7, read from the data when the
    DriftDetector runs, not against version 1's training window; the report, the console and
    the page name that reference, and the slice alerts name their slice. Its own runs folder
    holds a copy of the registry `first_push` filled (no training here; the shared runs
    folder's state is left alone)."""
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-3000:]

    runs = tmp_path / "runs"
    shutil.copytree(runs_of(first_push["config"]) / "serving", runs / "serving")
    cfg = make_config(workspace, "reference-previous", runs=str(runs),
                      drift={"reference": {"strategy": "previous"}, "slices": [["payment_type"]]})
    proc, report = _check(cfg, 8)
    assert proc.returncode == 1, proc.stdout[-3000:]
    ref = report["reference"]
    assert (ref["strategy"], ref["used"], ref["spans"], ref["span_labels"], ref["fallback"]) == \
        ("previous", "previous", [7], ["7"], False)
    assert report["rows"]["reference"]["rows"] == 1000          # span 7's rows, not the training window's
    assert report["drifted_features"] == ["fare"], report["drifted_features"]   # nothing else moved since span 7
    assert "span 8 vs the previous span 7 (reference: previous; serving version 1)" in proc.stdout
    assert "[vs the previous span 7]" in proc.stdout
    assert "Reference: <b>the previous span 7</b>" in (pathlib.Path(report["report_dir"]) / "report.html").read_text()
    # slices: every payment type with 200+ rows on both sides is tested; fare moved in each
    sl = report["slices"]
    assert "payment_type=Cash" in sl["drifted_slices"] and sl["tested"] >= 2
    assert f"slices: {sl['tested']} tested" in proc.stdout
    assert "ALERT [warning] taxi span 8: drift in slice payment_type=Cash: fare psi=" in proc.stdout
    # with labels, the model's accuracy per slice against its held-out rows of the slice
    assert "performance per slice (accuracy, Fisher's exact on errors, Bonferroni over" in proc.stdout
    monitor = json.loads(next((runs / "pipelines" / "taxi-check" / "PredictionMonitor").rglob("monitor.json"))
                         .read_text())
    ps = monitor["performance_slices"]
    assert ps["metric"] == "accuracy" and ps["tested"] + len(ps["skipped"]) >= 2
    assert all(0 <= s["realized"] <= 1 and s["rows"]["current"] >= 200 for s in ps["slices"])


# ---- Beam's portable runner protocol, the path Flink and Spark take: every Beam component is
# submitted as a job over gRPC to a job service (Beam's own local one here: Flink's and Spark's
# job-server jars cannot be fetched on this machine), with LOOPBACK workers.


@pytest.fixture
def job_service(tmp_path):
    port = free_port()
    log = tmp_path / "job_service.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main",
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while "Listening for beam jobs" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the job service did not start in 120 s"
            time.sleep(0.5)
        yield {"endpoint": f"localhost:{port}", "log": log}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_check_through_the_portable_runner_gives_the_direct_runners_verdict(checks, first_push, workspace,
                                                                               job_service, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(runs_of(first_push["config"]) / "serving", runs / "serving")
    cfg = make_config(workspace, "portable", runs=str(runs))
    proc = run_cli("check", "--span", 8, "--beam-arg=--runner=PortableRunner",
                   f"--beam-arg=--job_endpoint={job_service['endpoint']}", "--beam-arg=--environment_type=LOOPBACK",
                   config=cfg)
    assert proc.returncode == 1, proc.stderr[-3000:]          # span 8: fares 25 % higher, drift
    jobs = re.findall(r"Completed job in [0-9.]+ seconds with state (\w+)", job_service["log"].read_text())
    # ExampleGen, StatisticsGen, DriftDetector (its sample), PredictionMonitor (inference): each
    # at least one job, every one done
    assert len(jobs) >= 4 and set(jobs) == {"DONE"}, job_service["log"].read_text()[-3000:]
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("report: ")]
    report = json.loads((pathlib.Path(line[len("report: "):]).parent / "report.json").read_text())
    direct = checks[8][1]
    assert report["drifted_features"] == direct["drifted_features"]
    assert {f: round(v["score"], 9) for f, v in report["features"].items()} == \
        {f: round(v["score"], 9) for f, v in direct["features"].items()}
