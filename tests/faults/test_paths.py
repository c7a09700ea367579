"""Names and paths from the config or the command line that would leave their folder are
refused, naming the field: the model name (a registry folder), the schema version (a schema
folder), span numbers, candidate ids (approve/reject), the alert log's path, the report pages.

Absolute folders the config author chooses on purpose (runs_dir, data_root, an absolute alert
log path) are accepted: they do not *leave* a folder, they name one.
"""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from helpers import REPO, taxi_config, tree_digest, write_config
from driftguard.cli.main import main
from driftguard.pipeline import config as config_lib

ESCAPES = ["../x", "/etc", "a/b", "..", "taxi\0", "", "taxi/../../x", "C:\\x"]


@pytest.mark.parametrize("name", ESCAPES)
def test_model_name_must_be_a_plain_folder_name(tmp_path, name):
    with pytest.raises(config_lib.ConfigError, match=r"^model_name must match .* \(a plain folder name\)"):
        config_lib.from_dict(taxi_config(model_name=name), tmp_path)


@pytest.mark.parametrize("version, message", [("../v1", "must be an integer"), ("v2", "must be an integer"),
                                              (0, "must be between 1"), (-1, "must be between 1"),
                                              (2.0, "must be an integer")])
def test_schema_version_is_a_number(tmp_path, version, message):
    with pytest.raises(config_lib.ConfigError, match=f"^schema_version {message}"):
        config_lib.from_dict(taxi_config(schema_version=version), tmp_path)


@pytest.mark.parametrize("path, message", [
    ("../alerts.jsonl", r"'\.\./alerts\.jsonl' leaves the runs folder"),
    ("logs/../../../etc/cron.d/x", r"leaves the runs folder"),
    ("..\\..\\x.jsonl", r"leaves the runs folder"),
    ("alerts\0.jsonl", r"must not contain a NUL byte"),
    ("logs/", r"names a folder, not a file"),
])
def test_alert_log_path_stays_in_the_runs_folder(tmp_path, path, message):
    with pytest.raises(config_lib.ConfigError, match=r"^alerts\.sinks\[0\]\.path" + r".*" + message):
        config_lib.from_dict(taxi_config(alerts={"sinks": [{"type": "jsonl", "path": path}]}), tmp_path)


def test_alert_log_paths_that_stay_inside_or_are_explicitly_absolute_are_accepted(tmp_path):
    for path in ("alerts.jsonl", "alerts/drift.jsonl", str(tmp_path / "elsewhere.jsonl")):
        cfg = config_lib.from_dict(taxi_config(alerts={"sinks": [{"type": "jsonl", "path": path}]}), tmp_path)
        assert cfg.alerts_settings.sinks[0].path == path


@pytest.fixture
def registry(tmp_path):
    """A runs folder whose registry has one pending candidate c1 (a folder with a profile)."""
    runs = tmp_path / "runs"
    pending = runs / "serving" / "taxi" / ".pending" / "c1" / "profile"
    pending.mkdir(parents=True)
    (pending / "profile.json").write_text(json.dumps({"spans": [1, 2]}))
    (tmp_path / "outside").mkdir()
    return tmp_path, write_config(tmp_path / "c.json", runs=str(runs))


@pytest.mark.parametrize("command", ["approve", "reject"])
@pytest.mark.parametrize("candidate", ["../c1", "../../outside", "/etc", "c1/../../../../outside", "c1\0",
                                       ".pending/c1", "1"])
def test_candidate_ids_cannot_leave_the_registry(registry, command, candidate):
    root, cfg = registry
    before = tree_digest(root)
    result = CliRunner().invoke(main, ["--config", str(cfg), command, candidate])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {candidate!r} is not a candidate id (they look like c1, c2, ...")
    assert tree_digest(root) == before


@pytest.mark.parametrize("args, message", [
    (["check", "--span", "../x"], "--span: span '../x' is not a span number"),
    (["check", "--span", "-1"], "--span: span '-1' is not a span number"),
    (["train", "--spans", "../1"], "span '../1' is not a span number"),
    (["run", "--spans", "/etc"], "span '/etc' is not a span number"),
    (["schema", "new-version", "--from-span", "1/.."], "span '1/..' is not a span number"),
])
def test_span_arguments_are_numbers(tmp_path, args, message):
    cfg = write_config(tmp_path / "c.json", runs=str(tmp_path / "runs"))
    result = CliRunner().invoke(main, ["--config", str(cfg)] + args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "runs").exists()


def test_report_pages_are_named_by_span_number_only(tmp_path):
    """A state.json naming a span '../../evil' makes `driftguard report` fail with a message;
    no page is written outside runs/reports."""
    runs = tmp_path / "runs"
    shutil.copytree(REPO / "tests" / "reports" / "fixtures" / "runs", runs)
    state = json.loads((runs / "state.json").read_text())
    state["spans"][0]["span"] = "../../evil"
    (runs / "state.json").write_text(json.dumps(state))
    result = CliRunner().invoke(main, ["report", str(runs)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cannot build the reports of {runs}: ")
    assert "'../../evil'" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert not list(tmp_path.rglob("evil*"))
