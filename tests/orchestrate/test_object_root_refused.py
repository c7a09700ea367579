"""An s3:// pipeline_root with the orchestrators (fast, no bucket reached): Airflow's DAG builder
and `driftguard compile --target airflow` refuse it (the tasks would abort at exit once
tensorflow-io's S3 file system was used, and the DAG reads the gate's decision as a local file);
`compile --target kubeflow` refuses an s3:// root, from the config or --pipeline-root (no S3 file
system for TensorFlow in the image; Vertex takes gs://), and still takes a gs:// --pipeline-root
ahead of the config's s3:// one."""
from __future__ import annotations

import pytest

from helpers import write_config
from orchestrate_cli import invoke

ROOT = "s3://driftguard-bucket/artifacts"
# a bucket that cannot be reached: a refusal naming pipeline_root proves nothing was tried first
UNREACHABLE = {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
               "AWS_DEFAULT_REGION": "us-east-1"}


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_compile_airflow_refuses_an_s3_pipeline_root_before_anything(tmp_path):
    cfg = write_config(tmp_path / "prod.json", runs=str(tmp_path / "runs"), pipeline_root=ROOT)
    dags = tmp_path / "dags"
    result = invoke("--config", cfg, "compile", "--target", "airflow", "--dags-folder", dags, env=UNREACHABLE)
    assert result.exit_code == 2, result.output
    line = _error_line(result)
    assert "pipeline_root" in line and ROOT in line and "Airflow" in line, line
    assert "abort at exit" in line and "decision.json" in line, line
    assert not dags.exists() and not (tmp_path / "runs").exists()


def test_the_airflow_dag_builders_refuse_an_s3_pipeline_root(tmp_path):
    from driftguard.pipeline import config as config_lib
    from driftguard.pipeline.orchestrate import airflow_dags

    path = write_config(tmp_path / "prod.json", runs=str(tmp_path / "runs"), pipeline_root=ROOT)
    config = config_lib.load(path)
    for build in (lambda: airflow_dags.write_airflow_dags(path, tmp_path / "dags"),
                  lambda: airflow_dags.build_dags(path),
                  lambda: airflow_dags.build_check_dag(config, 1),
                  lambda: airflow_dags.build_training_dag(config, {"spans": [1], "warm_start_from": None,
                                                                   "source": "test"})):
        with pytest.raises(airflow_dags.AirflowConfigError, match="pipeline_root"):
            build()
    assert not (tmp_path / "dags").exists()
    local = config_lib.load(write_config(tmp_path / "local.json", runs=str(tmp_path / "runs")))
    airflow_dags.refuse_object_root(local)     # a local pipeline root is fine


@pytest.mark.parametrize("where", ["config", "flag"])
def test_compile_kubeflow_refuses_an_s3_pipeline_root(tmp_path, where):
    values = {"pipeline_root": ROOT} if where == "config" else {}
    cfg = write_config(tmp_path / "prod.json", runs=str(tmp_path / "runs"), **values)
    flag = ["--pipeline-root", "s3://other/kfp"] if where == "flag" else []
    out = tmp_path / "kfp"
    result = invoke("--config", cfg, "compile", "--target", "kubeflow", "--output", out, *flag, env=UNREACHABLE)
    assert result.exit_code == 2, result.output
    line = _error_line(result)
    assert ("--pipeline-root: 's3://other/kfp'" if where == "flag" else f"pipeline_root: {ROOT!r}") in line, line
    assert "Kubeflow" in line and "gs://" in line, line
    assert not out.exists()


def test_submit_refuses_an_s3_pipeline_root(tmp_path):
    package = tmp_path / "pipeline.yaml"
    package.write_text("{}")
    result = invoke("submit", "--kfp-host", "http://127.0.0.1:9", "--package", package,
                    "--pipeline-root", "s3://b/p")
    assert result.exit_code == 2 and "--pipeline-root: 's3://b/p'" in _error_line(result), result.output


def test_kubeflow_takes_a_gs_root_ahead_of_the_configs_s3_one(tmp_path):
    from driftguard.pipeline.orchestrate import kubeflow

    kubeflow.check_pipeline_root("gs://bucket/driftguard", "--pipeline-root")
    kubeflow.check_pipeline_root("/mnt/shared/pipelines", "pipeline_root")
    # past the refusal, the command reaches the config's buckets as every command does (here
    # unreachable: exit 2 for that, not for Kubeflow)
    cfg = write_config(tmp_path / "prod.json", runs=str(tmp_path / "runs"), pipeline_root=ROOT)
    result = invoke("--config", cfg, "compile", "--target", "kubeflow", "--output", tmp_path / "kfp",
                    "--pipeline-root", "gs://bucket/driftguard", env=UNREACHABLE)
    line = _error_line(result)
    assert result.exit_code == 2 and "cannot reach the S3 endpoint" in line and "Kubeflow" not in line, line
