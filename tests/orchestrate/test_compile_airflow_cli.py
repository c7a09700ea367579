"""`driftguard compile --target airflow` writes one DAG file naming the config (fast: no parse)."""
from __future__ import annotations

import ast

from helpers import write_config
from orchestrate_cli import invoke


def test_compile_airflow_writes_a_dag_file_that_names_the_config(tmp_path):
    cfg = write_config(tmp_path / "prod.json", model_name="taxi", runs=str(tmp_path / "runs"))
    dags = tmp_path / "dags"
    result = invoke("--config", cfg, "compile", "--target", "airflow", "--dags-folder", dags, "--schedule", "0 6 * * *")
    assert result.exit_code == 0, result.output
    (path,) = dags.iterdir()
    assert path.name == "driftguard_taxi_dags.py"
    text = path.read_text()
    ast.parse(text)
    assert f"CONFIG_PATH = {str(cfg.resolve())!r}" in text
    assert "build_dags(CONFIG_PATH, schedule='0 6 * * *')" in text
    assert "airflow" in text.lower() and "dag" in text.lower()   # Airflow's safe-mode parse heuristic
    assert "taxi-check" in result.output and "taxi-training" in result.output


def test_compile_airflow_needs_a_dags_folder_and_a_valid_config(tmp_path):
    result = invoke("compile", "--target", "airflow")
    assert result.exit_code == 2 and "--dags-folder" in result.output
    bad = write_config(tmp_path / "bad.json", evaluation={"metrics": {"AUC": {"min": "0.7"}}})
    result = invoke("--config", bad, "compile", "--target", "airflow", "--dags-folder", tmp_path / "d")
    assert result.exit_code == 2 and "evaluation.metrics.AUC.min must be a number" in result.output
    assert not (tmp_path / "d").exists()


def test_compile_kubeflow_needs_an_output_folder():
    result = invoke("compile", "--target", "kubeflow")
    assert result.exit_code == 2 and "--output" in result.output
