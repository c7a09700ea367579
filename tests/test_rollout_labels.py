"""`driftguard promote | rollback` (click's runner, in process), their audit trail and MLMD
record; the `rollout:` config section; the RegistryPusher's labelling under a rollout.

The pusher's labelling is tested on the helpers its executor calls around the publishing rename
(``labels.pin_champion``, ``labels.label_new_version``) over a registry of plain folders, not in
a TFX run (minutes).
"""
from __future__ import annotations

import json
import pathlib

import pytest
from click.testing import CliRunner

from helpers import taxi_config, write_config
from driftguard.cli.main import main
from driftguard.components.registry_pusher import labels as labels_lib
from driftguard.components.registry_pusher.registry import PROFILE_DIR, PROFILE_FILE, publish_version
from driftguard.pipeline import config as config_lib


@pytest.fixture
def project(tmp_path):
    cfg = write_config(tmp_path / "driftguard.json", runs="runs")
    registry = tmp_path / "runs" / "serving" / "taxi"
    for v in (1, 2, 3):
        (registry / str(v) / PROFILE_DIR).mkdir(parents=True)
        (registry / str(v) / PROFILE_DIR / PROFILE_FILE).write_text(json.dumps({"model_artifact": {"id": v}}))
    return cfg, registry


def _cli(cfg, *args):
    return CliRunner().invoke(main, ["--config", str(cfg), *args])


# ---------------------------------------------------------------- promote / rollback


def test_promote_and_rollback_with_an_audit_trail(project):
    cfg, registry = project
    r = _cli(cfg, "promote", "2", "--reason", "3 drops AUC on Cash trips")
    assert r.exit_code == 0, r.stderr
    assert "taxi: champion -> version 2 (was version 3 (the newest, served by default))" in r.stdout
    assert labels_lib.read_labels(registry) == {"champion": 2}
    r = _cli(cfg, "promote", "3", "--label", "canary", "--reason", "canary 3 again")
    assert r.exit_code == 0, r.stderr
    r = _cli(cfg, "promote", "canary", "--reason", "canary looks good")      # a label names its version
    assert r.exit_code == 0 and "champion -> version 3 (was version 2)" in r.stdout
    r = _cli(cfg, "rollback", "--reason", "pager at 3am")
    assert r.exit_code == 0, r.stderr
    assert "champion -> version 2 (rolled back from version 3)" in r.stdout
    assert labels_lib.read_labels(registry) == {"champion": 2, "canary": 3}
    audit = [json.loads(line) for line in (registry / "audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e["label"], e["version"], e["previous"], e["reason"]) for e in audit] == [
        ("promote", "champion", 2, 3, "3 drops AUC on Cash trips"),
        ("promote", "canary", 3, None, "canary 3 again"),
        ("promote", "champion", 3, 2, "canary looks good"),
        ("rollback", "champion", 2, 3, "pager at 3am")]
    assert all("@" in e["who"] and e["time"] for e in audit)
    r = _cli(cfg, "rollback", "--reason", "again")                           # back to the implicit first one
    assert r.exit_code == 0 and "champion -> version 3" in r.stdout


def test_bad_input_exits_2_naming_the_version_label_or_file(project):
    cfg, registry = project
    r = _cli(cfg, "promote", "9", "--reason", "x")
    assert r.exit_code == 2
    assert r.stderr.strip() == (f"error: version 9 does not exist in {registry} (versions: 1, 2, 3); "
                                f"label 'champion' must point to an existing version")
    r = _cli(cfg, "promote", "nightly", "--reason", "x")
    assert r.exit_code == 2 and f"label 'nightly' does not exist in {registry / 'labels.json'}" in r.stderr
    r = _cli(cfg, "rollback", "--reason", "x")
    assert r.exit_code == 2 and "no previous champion" in r.stderr and "audit.jsonl" in r.stderr
    r = _cli(cfg, "promote", "1")
    assert r.exit_code == 2 and "--reason" in r.stderr
    assert not (registry / "labels.json").exists() and not (registry / "audit.jsonl").exists()
    (registry / "labels.json").write_text("{]")
    for args in (("promote", "1", "--reason", "x"), ("rollback", "--reason", "x")):
        r = _cli(cfg, *args)
        assert r.exit_code == 2, r.stdout
        assert r.stderr.startswith(f"error: labels file {registry / 'labels.json'} is corrupt")
        assert len(r.stderr.strip().splitlines()) == 1
    assert (registry / "labels.json").read_text() == "{]"
    assert not (registry / "audit.jsonl").exists()


def _sqlite_store(cfg):
    """The ConnectionConfig of the project's sqlite MLMD file, created on first open."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    conn = pb.ConnectionConfig()
    conn.sqlite.filename_uri = str(cfg.parent / "runs" / "metadata.sqlite")
    conn.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return conn


def test_promote_records_an_execution_in_the_projects_mlmd_store(project):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    cfg, registry = project
    conn = _sqlite_store(cfg)
    store = metadata_store.MetadataStore(conn)
    model_type = store.put_artifact_type(pb.ArtifactType(name="Model"))
    [model_id] = store.put_artifacts([pb.Artifact(type_id=model_type, uri="/models/2")])
    (registry / "2" / PROFILE_DIR / PROFILE_FILE).write_text(json.dumps({"model_artifact": {"id": model_id}}))

    r = _cli(cfg, "promote", "2", "--reason", "why not")
    assert r.exit_code == 0, r.stderr
    assert "recorded in MLMD" in r.stdout
    store = metadata_store.MetadataStore(conn)
    [execution] = store.get_executions_by_type("driftguard.VersionLabelChange")
    props = {k: (v.string_value or v.int_value) for k, v in execution.properties.items()}
    assert props["action"] == "promote" and props["label"] == "champion" and props["version"] == 2
    assert props["previous_version"] == 3 and props["reason"] == "why not"
    [event] = store.get_events_by_execution_ids([execution.id])
    assert event.artifact_id == model_id and event.type == pb.Event.INPUT
    [context] = store.get_contexts_by_type("driftguard.ModelRegistry")
    assert json.loads(context.custom_properties["version_labels"].string_value) == {"champion": 2}
    assert [e.id for e in store.get_executions_by_context(context.id)] == [execution.id]


def test_a_dropped_label_and_its_decision_are_recorded_in_mlmd(project):
    """What the monitor's rollback writes: the challenger label dropped, tagged with its decision."""
    from ml_metadata import metadata_store

    from driftguard.components.registry_pusher import mlmd_record

    cfg, registry = project
    conn = _sqlite_store(cfg)
    metadata_store.MetadataStore(conn)
    labels_lib.set_labels(registry, {"champion": 2, "challenger": 3}, action="push", reason="t", who="t@h")
    with pytest.raises(labels_lib.LabelError, match="moved meanwhile"):
        labels_lib.set_labels(registry, {}, remove=["challenger"], action="rollback", reason="r",
                              expect={"challenger": 1})
    changes = labels_lib.set_labels(registry, {}, remove=["challenger", "canary"], action="rollback", reason="worse",
                                    who="driftguard monitor", expect={"champion": 2, "challenger": 3},
                                    extra={"decision": "v2-v3-r0"})
    assert [(c.label, c.version, c.previous) for c in changes] == [("challenger", None, 3)]
    assert labels_lib.read_labels(registry) == {"champion": 2}
    assert labels_lib.read_audit(registry)[-1]["decision"] == "v2-v3-r0"
    mlmd_record.record_label_changes(conn, registry, "taxi", changes, labels_lib.read_labels(registry))
    [execution] = metadata_store.MetadataStore(conn).get_executions_by_type("driftguard.VersionLabelChange")
    assert execution.properties["version"].int_value == -1 and execution.properties["previous_version"].int_value == 3
    assert execution.custom_properties["decision"].string_value == "v2-v3-r0"


def test_without_a_metadata_store_nothing_is_recorded_in_mlmd(project):
    cfg, registry = project
    r = _cli(cfg, "promote", "1", "--reason", "x")
    assert r.exit_code == 0 and "MLMD" not in r.stdout + r.stderr
    assert not (cfg.parent / "runs" / "metadata.sqlite").exists()


# ---------------------------------------------------------------- config


def test_rollout_config_is_parsed():
    assert config_lib.from_dict(taxi_config(), ".").rollout is None
    cfg = config_lib.from_dict(taxi_config(rollout={"mode": "canary", "canary_share": 0.25}), ".")
    assert cfg.rollout == config_lib.RolloutConfig(mode="canary", canary_share=0.25)
    assert config_lib.from_dict(taxi_config(rollout={"mode": "shadow"}), ".").rollout.mode == "shadow"
    assert config_lib.from_dict(taxi_config(rollout=None), ".").rollout is None


@pytest.mark.parametrize("rollout, message", [
    ({"mode": "blue-green"}, r"rollout.mode must be one of shadow, canary, got 'blue-green'"),
    ({"canary_share": 0.1}, r"rollout.mode is required: one of shadow, canary"),
    ({"mode": "canary", "canary_share": 1.5}, r"rollout.canary_share must be a number between 0 and 1"),
    ({"mode": "canary", "canary_share": "10%"}, r"rollout.canary_share must be a number, got '10%'"),
    ({"mode": "shadow", "canary_share": 0.2}, r"rollout.canary_share applies to mode canary"),
    ({"mode": "canary", "share": 0.2}, r"unknown config key 'rollout.share'"),
    ("canary", r"rollout must be a mapping"),
])
def test_bad_rollout_config_names_the_field(tmp_path, rollout, message):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.from_dict(taxi_config(rollout=rollout), tmp_path)


# ---------------------------------------------------------------- the pusher's labels


def _push(registry, tmp_path, name, rollout_mode):
    """What the executor does around its publishing rename (executor.Executor.Do)."""
    from driftguard.components.registry_pusher.executor import label_new_version, pin_champion   # what Do() calls

    staged = registry / ".staging" / name
    staged.mkdir(parents=True)
    pin_champion(registry, rollout_mode)
    version = publish_version(registry, staged)
    return version, label_new_version(registry, version, rollout_mode)


def test_under_a_rollout_a_pushed_version_becomes_the_challenger(tmp_path):
    reg = tmp_path / "reg"
    assert _push(reg, tmp_path, "a", "canary") == (1, ["champion"])      # nothing else to serve
    assert _push(reg, tmp_path, "b", "canary") == (2, ["challenger"])
    assert labels_lib.read_labels(reg) == {"champion": 1, "challenger": 2}
    assert labels_lib.champion_version(reg) == 1
    assert _push(reg, tmp_path, "c", "shadow") == (3, ["challenger"])
    assert labels_lib.read_labels(reg) == {"champion": 1, "challenger": 3}
    assert {e["who"] for e in labels_lib.read_audit(reg)} == {"registry_pusher"}


def test_a_rollout_configured_on_a_registry_without_labels_pins_the_served_version(tmp_path):
    reg = tmp_path / "reg"
    _push(reg, tmp_path, "a", None)
    _push(reg, tmp_path, "b", None)
    assert not (reg / "labels.json").exists()                # without rollout and labels: as before
    assert _push(reg, tmp_path, "c", "canary") == (3, ["challenger"])
    assert labels_lib.read_labels(reg) == {"champion": 2, "challenger": 3}
    assert [e["action"] for e in labels_lib.read_audit(reg)] == ["pin", "push"]


def test_without_a_rollout_a_champion_label_moves_to_the_new_version(tmp_path):
    reg = tmp_path / "reg"
    _push(reg, tmp_path, "a", None)
    _push(reg, tmp_path, "b", None)
    labels_lib.promote(reg, 1, reason="2 is bad")
    assert _push(reg, tmp_path, "c", None) == (3, ["champion"])
    assert labels_lib.champion_version(reg) == 3
    assert labels_lib.rollback(reg, reason="3 too").version == 1


def test_a_corrupt_labels_file_fails_the_push_before_publishing(tmp_path):
    from driftguard.components.registry_pusher.executor import pin_champion

    reg = tmp_path / "reg"
    reg.mkdir()
    (reg / "labels.json").write_text("nope")
    for mode in (None, "canary"):
        with pytest.raises(labels_lib.LabelError, match=r"labels file .*labels.json is corrupt"):
            pin_champion(reg, mode)


def test_approve_labels_a_held_candidate_by_the_rollout_of_its_push(project):
    cfg, registry = project
    for candidate, mode in (("c1", "canary"), ("c2", None)):
        profile = registry / ".pending" / candidate / PROFILE_DIR
        profile.mkdir(parents=True)
        (profile / PROFILE_FILE).write_text(json.dumps({"rollout_mode": mode} if mode else {}))
    r = _cli(cfg, "approve", "c1")
    assert r.exit_code == 0, r.stderr
    assert labels_lib.read_labels(registry) == {"champion": 3, "challenger": 4}   # 3 pinned: it was served
    r = _cli(cfg, "approve", "c2")                                                # pushed without a rollout
    assert r.exit_code == 0, r.stderr
    assert labels_lib.read_labels(registry) == {"champion": 5, "challenger": 4}
    assert [(e["action"], e["who"]) for e in labels_lib.read_audit(registry)] == [
        ("pin", "driftguard approve"), ("push", "driftguard approve"), ("push", "driftguard approve")]


def _executor_push(tmp_path, registry, name, rollout_mode):
    """RegistryPusher's Executor.Do on a stand-in model (no TFX run: the profile, which needs the
    pipeline's statistics, evaluation and examples, is stubbed)."""
    from tfx.types import standard_artifacts
    from tfx.utils import path_utils

    from driftguard.components.registry_pusher import executor, spec

    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "trainer" / name)
    serving = pathlib.Path(path_utils.serving_model_path(model.uri))
    serving.mkdir(parents=True)
    (serving / "saved_model.pb").write_text(name)
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing" / name)
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    props = {spec.REGISTRY_DIR_KEY: str(registry), spec.SCHEMA_VERSION_KEY: 1}
    if rollout_mode:
        props[spec.ROLLOUT_MODE_KEY] = rollout_mode

    class Stubbed(executor.Executor):
        def _write_profile(self, profile_dir, input_dict, exec_properties, model, blessing):
            (profile_dir / PROFILE_FILE).write_text(json.dumps({"model_artifact": {"uri": model.uri}}))

    Stubbed().Do({spec.MODEL_KEY: [model], spec.MODEL_BLESSING_KEY: [blessing]},
                 {spec.PUSHED_MODEL_KEY: [pushed]}, props)
    labels = pushed.get_string_custom_property("version_labels") if pushed.has_custom_property(
        "version_labels") else None
    return pushed.get_int_custom_property("pushed_version"), labels


def test_the_executor_labels_a_blessed_push_challenger_under_a_rollout(tmp_path):
    registry = tmp_path / "registry"
    assert _executor_push(tmp_path, registry, "m1", None) == (1, None)          # no labels: as before
    assert not (registry / "labels.json").exists()
    assert _executor_push(tmp_path, registry, "m2", "canary") == (2, "challenger")
    assert labels_lib.read_labels(registry) == {"champion": 1, "challenger": 2}
    assert _executor_push(tmp_path, registry, "m3", None) == (3, "champion")     # rollout removed again
    assert labels_lib.read_labels(registry) == {"champion": 3, "challenger": 2}


def test_the_installed_command_exits_2_with_one_line(project):
    from helpers import run_cli

    cfg, registry = project
    proc = run_cli("promote", "7", "--reason", "x", config=cfg, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: version 7 does not exist in {registry} (versions: 1, 2, 3); "
                                   f"label 'champion' must point to an existing version")
    proc = run_cli("promote", "1", "--reason", "subprocess", config=cfg, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert labels_lib.read_labels(registry) == {"champion": 1}
