"""`driftguard check --span N`: the real span-check pipeline (ExampleGen -> StatisticsGen ->
ExampleValidator -> DriftDetector) against the profile of the version `first_push` pushed."""
from __future__ import annotations

import json
import pathlib

import pytest

from helpers import make_config, run_cli

pytestmark = pytest.mark.tfx


def _check(config, span, *extra):
    proc = run_cli("check", "--span", span, "--json", *extra, config=config)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    return proc, report


@pytest.fixture(scope="session")
def checks(first_push):
    """One check per interesting span, run once for the whole session."""
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-3000:]
    cfg = first_push["config"]
    out = {s: _check(cfg, s) for s in (4, 5, 7)}
    # the drifted span runs with DirectRunner multi_processing: the custom Beam code must
    # pickle and run in worker processes, as on a distributed runner
    out[8] = _check(cfg, 8, "--beam-arg=--direct_running_mode=multi_processing",
                    "--beam-arg=--direct_num_workers=2")
    return out


def _artifact_properties(config_path, report_dir):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    runs = pathlib.Path(json.loads(pathlib.Path(config_path).read_text())["runs_dir"])
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
    assert report["rows"]["current"]["rows"] == 1000
    props = _artifact_properties(first_push["config"], report["report_dir"])
    assert props["drift_detected"] == 0 and props["has_baseline"] == 1 and props["baseline_version"] == 1


def test_fare_increase_is_detected_under_multi_processing(checks, first_push):
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


def test_missing_column_is_drift_and_a_schema_anomaly(checks):
    proc, report = checks[4]
    assert proc.returncode == 1
    payment = report["features"]["payment_type"]
    assert payment["drifted"] and payment["reasons"] == ["missing_rate"]
    assert payment["details"]["missing_rate_current"] == 1.0
    assert any(a["feature"] == "payment_type" for a in report["anomalies"])


def test_type_change_is_reported_not_crashed_on(checks):
    proc, report = checks[5]
    assert proc.returncode == 1
    assert report["drift_detected"] is True
    assert "trip_start_hour" in report["type_changes"]
    assert "text in this span" in report["type_changes"]["trip_start_hour"]
    assert any(a["feature"] == "trip_start_hour" for a in report["anomalies"])


def test_human_readable_output_names_the_drifted_feature(first_push, checks):
    report_dir = pathlib.Path(checks[8][1]["report_dir"])
    proc = run_cli("check", "--span", 8, config=first_push["config"])
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "span 8 vs version 1 (trained on spans 1, 2): DRIFT: fare psi=" in proc.stdout
    assert "report: " in proc.stdout and "report.html" in proc.stdout
    assert report_dir.is_dir()


def test_check_before_any_push_says_there_is_no_baseline(workspace):
    cfg = make_config(workspace, "nobaseline", runs_dir=str(workspace / "runs-nobaseline"))
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
