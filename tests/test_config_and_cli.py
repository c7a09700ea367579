"""Config validation, span parsing, data spans and the CLI surface (no TFX run)."""
from __future__ import annotations

import subprocess

import pytest

from helpers import DATA, REPO, run_cli, write_config
from driftguard.pipeline import config as config_lib


def test_defaults_are_valid_and_under_runs():
    cfg = config_lib.load()
    assert cfg.metadata_path == REPO / "runs" / "metadata.sqlite"
    assert cfg.model_registry == REPO / "runs" / "serving" / "taxi"
    assert cfg.schema_file == REPO / "schemas" / "taxi" / "v2" / "schema.pbtxt"


@pytest.mark.parametrize("data, message", [
    ({"trainig": {}}, "unknown config key 'trainig'"),
    ({"training": {"window": 2}}, "unknown config key 'training.window'"),
    ({"training": {"window_spans": "two"}}, "training.window_spans must be an integer"),
    ({"training": {"window_spans": 0}}, "training.window_spans must be between 1"),
    ({"evaluation": {"min_auc": 1.5}}, "evaluation.min_auc must be between 0.0 and 1.0"),
    ({"runner": "spark"}, "runner must be 'local' or 'beam'"),
    ({"model_name": "../x"}, "model_name must match"),
    ({"validation": {"fail_on_severity": "FATAL"}}, "fail_on_severity must be one of"),
    ({"training": {"hidden_units": [8, "x"]}}, r"training.hidden_units\[1\] must be an integer"),
])
def test_bad_config_is_rejected_with_the_key_path(data, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.from_dict(data)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(config_lib.ConfigError, match="bad.yaml is not valid yaml"):
        config_lib.load(bad)
    missing = tmp_path / "nope.json"
    with pytest.raises(config_lib.ConfigError, match="nope.json does not exist"):
        config_lib.load(missing)


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    cfg = config_lib.load(write_config(tmp_path / "c.json", runs_dir="out"))
    assert cfg.runs_path == (tmp_path / "out").resolve()


@pytest.mark.parametrize("text, spans", [("3", [3]), ("1,2", [1, 2]), ("1-4", [1, 2, 3, 4]),
                                         ("2, 1", [1, 2])])
def test_parse_spans(text, spans):
    assert config_lib.parse_spans(text) == spans


@pytest.mark.parametrize("text", ["", "a", "4-2", "1;2"])
def test_parse_spans_rejects_garbage(text):
    with pytest.raises(config_lib.ConfigError, match="span"):
        config_lib.parse_spans(text)


def test_committed_spans_are_reproducible_from_the_wheel(tmp_path):
    """data/taxi is exactly what `driftguard data prepare` derives from the tfx wheel."""
    from driftguard.pipeline.data import load_manifest, write_taxi_spans

    manifest = write_taxi_spans(tmp_path)
    committed = load_manifest(DATA)
    assert len(manifest) == 16 and sum(r["rows"] for r in manifest) == 15002
    for row in manifest:
        assert committed[row["span"]] == row
    assert manifest[0]["period"] == "2013Q1" and manifest[-1]["period"] == "2016Q4"


@pytest.mark.parametrize("args", [[], ["run"], ["train"], ["compile"], ["schema"],
                                  ["schema", "new-version"], ["schema", "list"], ["data"],
                                  ["data", "prepare"], ["drift"]])
def test_every_command_has_help(args):
    proc = run_cli(*args, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "--spans", "99"], "span(s) 99 not found under"),
    (["train", "--spans", "1-5"], "training.window_spans is 2"),
    (["train", "--spans", "x"], "invalid span list 'x'"),
    (["compile", "--target", "kubeflow"], "needs --output DIR"),
])
def test_cli_errors_go_to_stderr_with_exit_2(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


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
