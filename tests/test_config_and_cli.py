"""Project config validation, span parsing, data spans and the CLI surface (no TFX run)."""
from __future__ import annotations

import subprocess

import pytest

from helpers import DATA, REPO, TAXI, run_cli, taxi_config, write_config
from driftguard.pipeline import config as config_lib


def test_the_taxi_example_config_is_valid_and_resolves_under_its_project(tmp_path):
    cfg = config_lib.load(write_config(tmp_path / "driftguard.json", runs="runs"))
    assert cfg.project_path == tmp_path.resolve()
    assert cfg.metadata_path == tmp_path.resolve() / "runs" / "metadata.sqlite"
    assert cfg.model_registry == tmp_path.resolve() / "runs" / "serving" / "taxi"
    assert cfg.schema_file == REPO / "schemas" / "taxi" / "v2" / "schema.pbtxt"
    assert cfg.module_path == TAXI / "model.py"
    assert cfg.task == "binary" and cfg.metric == "accuracy"
    assert cfg.span_numbers(cfg.first_spans) == [1, 2]


@pytest.mark.parametrize("data, message", [
    ({"trainig": {}}, "unknown config key 'trainig'"),
    ({"training": {"window": 2}}, "unknown config key 'training.window'"),
    ({"training": {"window_spans": "two"}}, "training.window_spans must be an integer"),
    ({"training": {"window_spans": 0}}, "training.window_spans must be between 1"),
    ({"training": {"hidden_units": [8]}}, r"training.hidden_units' moved: it is now training.custom_config"),
    ({"evaluation": {"min_auc": 0.7}}, r"evaluation.min_auc' moved: it is now evaluation.metrics.AUC.min"),
    ({"data_root": "x"}, r"data_root' moved: it is now data.root"),
    ({"runner": "spark"}, "runner must be 'local' or 'beam'"),
    ({"model_name": "../x"}, "model_name must match"),
    ({"validation": {"fail_on_severity": "FATAL"}}, "fail_on_severity must be one of"),
    ({"task": "ranking"}, "task must be one of binary, multiclass, regression"),
    ({"task": "multiclass"}, "classes must list the label's values"),
    ({"classes": ["a", "b"]}, "classes is for task multiclass"),
    ({"task": "regression", "alerts": {"rules": {"metric_drop": {"metric": "mae"}}}},
     r"evaluation.metrics.AUC: AUC is a metric for binary models; task is regression \(metrics that fit: "
     r"MeanAbsoluteError"),
    ({"alerts": {"rules": {"metric_drop": {"metric": "mae"}}}},
     r"alerts.rules.metric_drop.metric: 'mae' is not a binary metric driftguard computes \(one of: accuracy, auc\)"),
    ({"alerts": {"rules": {"accuracy_drop": {}}}}, r"alerts.rules.accuracy_drop: the rule is now metric_drop"),
    ({"evaluation": {"metrics": {"AUC": {"min": "high"}}}}, r"evaluation.metrics.AUC.min must be a number"),
    ({"evaluation": {"metrics": {"AUC": {"lower": 0.5}}}}, r"evaluation.metrics.AUC.lower: unknown key"),
    ({"evaluation": {"metrics": {"MyMetric": {"baseline_tolerance": 0.1}}}},
     r"evaluation.metrics.MyMetric: a baseline tolerance needs a direction.*higher_is_better"),
    ({"data": {"format": "xlsx"}}, r"data.format must be one of csv, parquet, tfrecord"),
    ({"data": {"pattern": "all/*.csv"}}, r"data.pattern: pattern 'all/\*.csv' has no span placeholder"),
    ({"data": {"pattern": "../{SPAN}/*"}}, r"data.pattern: .* must stay inside the data folder"),
    ({"first_spans": ["2013-01"]}, r"first_spans\[0\]: span range '2013-01': the end is before the start \(spans "
                                   r"of 'span-\{SPAN\}/\*' are written like 7"),
    ({"first_spans": ["2013/01"]}, r"first_spans\[0\]: span '2013/01' is not a span number"),
    ({"model": {"label": {"column": "tips"}}}, r"model.label needs exactly one of column .* or fn"),
    ({"model": {"module": "nope.py"}}, r"model.module: .*nope.py does not exist"),
])
def test_bad_config_is_rejected_with_the_key_path(tmp_path, data, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.from_dict(taxi_config(**data), tmp_path)


def test_a_module_lacking_run_fn_is_named_with_its_file(tmp_path):
    module = tmp_path / "model.py"
    module.write_text("import tensorflow as tf\n\ndef preprocessing_fn(inputs):\n    return inputs\n")
    with pytest.raises(config_lib.ConfigError, match=r"model.module: .*model.py defines no run_fn at its top level"):
        config_lib.from_dict(taxi_config(model={"module": "model.py"}), tmp_path)
    module.write_text("def preprocessing_fn(inputs:\n")
    with pytest.raises(config_lib.ConfigError, match=r"model.py, line 1: "):
        config_lib.from_dict(taxi_config(model={"module": "model.py"}), tmp_path)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(config_lib.ConfigError, match="bad.yaml is not valid yaml"):
        config_lib.load(bad)
    missing = tmp_path / "nope.json"
    with pytest.raises(config_lib.ConfigError, match="nope.json does not exist"):
        config_lib.load(missing)


def test_relative_paths_resolve_against_the_project_folder(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.py").write_text((TAXI / "model.py").read_text())
    cfg = config_lib.load(write_config(tmp_path / "c.json", runs="out", model={"module": "models/m.py"}))
    assert cfg.runs_path == (tmp_path / "out").resolve()
    assert cfg.module_path == (tmp_path / "models" / "m.py").resolve()


def test_spans_are_parsed_by_the_data_pattern(tmp_path):
    cfg = config_lib.from_dict(taxi_config(), tmp_path)
    assert cfg.spans.parse_list("2, 1") == [1, 2]
    assert cfg.spans.parse_list("1-4") == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="span 'x' is not a span number"):
        cfg.spans.parse_list("x")
    monthly = config_lib.from_dict(taxi_config(data={"pattern": "{YYYY}-{MM}/*.csv"}, first_spans=["2013-01"],
                                               replay_spans=["2013-02"]),
                                   tmp_path)
    jan = monthly.spans.number("2013-01")
    assert monthly.spans.parse_list("2013-01..2013-03") == [jan, jan + 1, jan + 2]
    assert monthly.span_label(jan + 11) == "2013-12"


def test_committed_spans_are_reproducible_from_the_wheel(tmp_path):
    """data/taxi is exactly what `driftguard init --example taxi` derives from the tfx wheel."""
    from driftguard.examples.taxi.data import load_manifest, write_spans

    manifest = write_spans(tmp_path)
    committed = load_manifest(DATA)
    assert len(manifest) == 16 and sum(r["rows"] for r in manifest) == 15002
    for row in manifest:
        assert committed[row["span"]] == row
    assert manifest[0]["period"] == "2013Q1" and manifest[-1]["period"] == "2016Q4"


@pytest.mark.parametrize("args", [[], ["run"], ["train"], ["compile"], ["schema"], ["init"],
                                  ["schema", "new-version"], ["schema", "list"], ["schema", "infer"], ["data"],
                                  ["data", "prepare"], ["drift"]])
def test_every_command_has_help(args):
    proc = run_cli(*args, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


def test_commands_find_the_project_by_walking_up(tmp_path):
    project = tmp_path / "p"
    (project / "sub" / "deeper").mkdir(parents=True)
    write_config(project / "driftguard.yaml")    # JSON is YAML too
    proc = run_cli("status", cwd=project / "sub" / "deeper")
    assert proc.returncode == 0, proc.stderr
    assert f"project:  {project.resolve()} (taxi, binary)" in proc.stdout
    lost = run_cli("status", cwd=tmp_path)
    assert lost.returncode == 2
    assert f"no driftguard.yaml in {tmp_path.resolve()} or any folder above it" in lost.stderr
    assert "driftguard init DIR" in lost.stderr


@pytest.mark.parametrize("args, message", [
    (["train", "--spans", "99"], "span(s) 99 not found under"),
    (["train", "--spans", "1-5"], "training.window_spans is 2"),
    (["train", "--spans", "x"], "span 'x' is not a span number"),
    (["check", "--span", "2013-01"], "--span: span '2013-01' is not a span number"),
    (["compile", "--target", "kubeflow"], "needs --output DIR"),
])
def test_cli_errors_go_to_stderr_with_exit_2(tmp_path, args, message):
    proc = run_cli(*args, config=write_config(tmp_path / "c.json"))
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "runs").exists()


def test_find_python_reports_what_to_install(tmp_path):
    """With no Python 3.10 reachable, the bootstrap script says exactly what to install."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "none")}
    proc = subprocess.run(["bash", str(REPO / ".ci/find-python")], env=env,
                          capture_output=True, text=True)
    if proc.returncode == 0:  # this machine has a system python3.10 in /usr/bin
        assert proc.stdout.strip().endswith("python3.10")
    else:
        assert "needs Python 3.10" in proc.stderr
        assert "pyenv install 3.10" in proc.stderr


def test_find_python_finds_a_310():
    proc = subprocess.run(["bash", str(REPO / ".ci/find-python")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = subprocess.run([proc.stdout.strip(), "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "(3, 10)"
