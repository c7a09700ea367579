"""The serving version is the champion (labels.champion_version), not the newest version, in the
span check's executors (DriftDetector, PredictionMonitor, RetrainGate), the loop's messages and
`driftguard status`; without a labels file everything is as before (the newest version).

The executors' ``Do()`` is called directly on hand-made artifacts (no TFX run). DriftDetector
and PredictionMonitor stop at ``load_baseline`` (patched to raise with the version it was asked
for): what follows needs a real SavedModel and a Beam pass, which the TFX tests cover.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from helpers import write_config
from driftguard.cli.main import main
from driftguard.components.registry_pusher import labels as labels_lib
from driftguard.components.registry_pusher.registry import PROFILE_DIR, PROFILE_FILE
from driftguard.pipeline import config as config_lib
from driftguard.pipeline import loop

# version -> the spans it was trained on
TRAINED_ON = {1: [1, 2], 2: [3, 4], 3: [5, 6]}


def _registry(root):
    for version, spans in TRAINED_ON.items():
        (root / str(version) / PROFILE_DIR).mkdir(parents=True)
        (root / str(version) / PROFILE_DIR / PROFILE_FILE).write_text(
            json.dumps({"spans": spans, "span_labels": list(map(str, spans)), "schema_version": 1}))
    return root


def _rollout(registry):
    """What a rollout leaves: champion 2, challenger 3 (the newest)."""
    labels_lib.set_labels(registry, {"champion": 2, "challenger": 3}, action="promote", reason="test", who="t@h")


@pytest.fixture(params=["no labels", "rollout", "corrupt"])
def registry(request, tmp_path):
    reg = _registry(tmp_path / "runs" / "serving" / "taxi")
    if request.param == "rollout":
        _rollout(reg)
    elif request.param == "corrupt":
        (reg / labels_lib.LABELS_FILE).write_text("{not json")
    return request.param, reg


EXPECTED = {"no labels": 3, "rollout": 2}        # the version taken as the serving one
CORRUPT = r"labels file .*labels\.json is corrupt \(not JSON"


# ---------------------------------------------------------------- executors


def _examples(tmp_path, span):
    from tfx.types import standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["train", "eval"]'
    examples.set_string_custom_property("spans", json.dumps([span]))     # what SpanExampleGen records
    examples.set_string_custom_property("span_labels", json.dumps({str(span): str(span)}))
    examples.set_string_custom_property("available_spans", json.dumps(list(range(1, span + 1))))
    return examples


class _Picked(Exception):
    """Raised by the patched load_baseline with the version the executor asked for."""


def _pick(registry, version, *args, **kwargs):
    raise _Picked(version)


def _expect_pick(case):
    """A corrupt labels file stops the executor with LabelError; otherwise the patched loader says which version."""
    return pytest.raises(labels_lib.LabelError, match=CORRUPT) if case == "corrupt" else pytest.raises(_Picked)


def test_drift_detector_compares_with_the_champion(registry, tmp_path, monkeypatch):
    from driftguard.components.drift_detector import executor as detector_executor
    from driftguard.components.drift_detector import spec as detector_spec

    case, reg = registry
    monkeypatch.setattr(detector_executor, "load_baseline", _pick)
    report = detector_spec.DriftReport()
    report.uri = str(tmp_path / "report")
    expected = _expect_pick(case)
    with expected as raised:
        detector_executor.Executor().Do(
            {detector_spec.EXAMPLES_KEY: [_examples(tmp_path, 7)]}, {detector_spec.DRIFT_REPORT_KEY: [report]},
            {detector_spec.REGISTRY_DIR_KEY: str(reg), detector_spec.ALPHA_KEY: 0.01,
             detector_spec.MAX_ROWS_KEY: 1000})
    if case != "corrupt":
        assert raised.value.args == (EXPECTED[case],)


def test_prediction_monitor_scores_with_the_champion(registry, tmp_path, monkeypatch):
    from driftguard.components import model_io
    from driftguard.components.prediction_monitor import executor as monitor_executor
    from driftguard.components.prediction_monitor import spec as monitor_spec

    case, reg = registry
    monkeypatch.setattr(model_io, "load_baseline", _pick)
    report = monitor_spec.ModelMonitorReport()
    report.uri = str(tmp_path / "monitor")
    expected = _expect_pick(case)
    with expected as raised:
        monitor_executor.Executor().Do(
            {monitor_spec.EXAMPLES_KEY: [_examples(tmp_path, 7)]}, {monitor_spec.MONITOR_KEY: [report]},
            {monitor_spec.REGISTRY_DIR_KEY: str(reg), monitor_spec.MODEL_SPEC_KEY: model_io.ModelSpec().to_json(),
             monitor_spec.METRIC_KEY: "auc", monitor_spec.MAX_ROWS_KEY: 1000})
    if case != "corrupt":
        assert raised.value.args == (EXPECTED[case],)


def test_executors_without_a_registry_report_no_baseline(tmp_path):
    """The cold start is unchanged: no registry folder, no version."""
    from driftguard.components.drift_detector import executor as detector_executor
    from driftguard.components.drift_detector import spec as detector_spec

    report = detector_spec.DriftReport()
    report.uri = str(tmp_path / "report")
    detector_executor.Executor().Do(
        {detector_spec.EXAMPLES_KEY: [_examples(tmp_path, 7)]}, {detector_spec.DRIFT_REPORT_KEY: [report]},
        {detector_spec.REGISTRY_DIR_KEY: str(tmp_path / "missing"), detector_spec.ALPHA_KEY: 0.01,
         detector_spec.MAX_ROWS_KEY: 1000})
    assert report.get_int_custom_property(detector_spec.HAS_BASELINE) == 0
    assert report.get_int_custom_property(detector_spec.BASELINE_VERSION) == 0


def test_retrain_gate_decides_on_the_champions_spans(registry, tmp_path):
    """Policy 'scheduled' every 4 spans, span 9: the champion (version 2, spans 3-4) is 5 spans
    old, so retrain; the newest (version 3, spans 5-6) is 3 spans old, so not."""
    from driftguard.components.retrain_gate import executor as gate_executor
    from driftguard.components.retrain_gate import spec as gate_spec

    case, reg = registry
    decision = gate_spec.RetrainDecision()
    decision.uri = str(tmp_path / "decision")
    run = lambda: gate_executor.Executor().Do(                                         # noqa: E731
        {gate_spec.EXAMPLES_KEY: [_examples(tmp_path, 9)], gate_spec.DRIFT_REPORT_KEY: []},
        {gate_spec.DECISION_KEY: [decision]},
        {gate_spec.REGISTRY_DIR_KEY: str(reg), gate_spec.MODEL_NAME_KEY: "taxi", gate_spec.ALERTS_CONFIG_KEY: "{}",
         gate_spec.POLICY_KEY: json.dumps({"policy": "scheduled", "every_spans": 4}),
         gate_spec.WINDOW_SPANS_KEY: 2, gate_spec.TASK_KEY: "binary"})
    if case == "corrupt":
        with pytest.raises(labels_lib.LabelError, match=CORRUPT):
            run()
        return
    run()
    out = json.loads((tmp_path / "decision" / gate_spec.DECISION_JSON).read_text())
    version = EXPECTED[case]
    assert out["serving_version"] == version and out["serving_spans"] == TRAINED_ON[version]
    assert out["decision"]["retrain"] is (case == "rollout"), out["decision"]
    assert decision.get_int_custom_property(gate_spec.RETRAIN) == int(case == "rollout")


# ---------------------------------------------------------------- the loop and status


def _project(root):
    """A taxi project in ``root``: its registry is root/runs/serving/taxi (the fixture's)."""
    root.mkdir(parents=True, exist_ok=True)
    path = write_config(root / "driftguard.json", runs="runs")
    cfg = config_lib.load(path)
    assert cfg.model_registry == (root / "runs" / "serving" / "taxi").resolve()
    return path, cfg


def test_serving_version_text_names_the_champion_and_the_challenger(registry, tmp_path):
    case, reg = registry
    _, cfg = _project(tmp_path)
    if case == "corrupt":
        with pytest.raises(loop.LoopError, match=CORRUPT):
            loop.serving_version_text(cfg)
        return
    text, short = loop.serving_version_text(cfg), loop._serving_short(cfg)
    if case == "no labels":
        assert (text, short) == ("version 3", "v3")                           # as before labels
    else:
        assert text == "version 2 (champion); challenger: version 3"
        assert short == "v2 (champion); challenger: v3"


def test_serving_version_text_without_a_challenger_and_empty(tmp_path):
    reg = _registry(tmp_path / "runs" / "serving" / "taxi")
    _, cfg = _project(tmp_path)
    labels_lib.promote(reg, 1, reason="3 misbehaves", who="t@h")
    assert loop.serving_version_text(cfg) == "version 1 (champion)"
    labels_lib.promote(reg, 1, label="challenger", reason="the same", who="t@h")
    assert loop.serving_version_text(cfg) == "version 1 (champion)"     # a challenger that is served is no challenger
    _, empty = _project(tmp_path / "empty")
    assert loop.serving_version_text(empty) == "no version (registry empty)"


class _Said(loop.Reporter):
    def __init__(self):
        self.lines = []

    def say(self, text):
        self.lines.append(text)


def test_first_model_reports_the_champion(registry, tmp_path):
    """A registry with a version trains no first model; it says which version serves."""
    case, reg = registry
    _, cfg = _project(tmp_path)
    said = _Said()
    if case == "corrupt":
        with pytest.raises(loop.LoopError, match=CORRUPT):
            loop.first_model(cfg, reporter=said)
        return
    loop.first_model(cfg, reporter=said)
    if case == "no labels":
        assert said.lines == ["serving taxi version 3 (trained on spans 5, 6, schema v1)"]
    else:
        assert said.lines == ["serving taxi version 2 (champion; trained on spans 3, 4, schema v1); "
                              "challenger: version 3"]


def _cli(path, *args):
    return CliRunner().invoke(main, ["--config", str(path), *args])


def test_status_shows_the_champion_the_challenger_and_labels(registry, tmp_path):
    case, reg = registry
    path, cfg = _project(tmp_path)
    r = _cli(path, "status")
    if case == "corrupt":
        assert r.exit_code == 2
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.output
        assert f"labels file {reg / 'labels.json'} is corrupt (not JSON" in r.stderr
        return
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    info = json.loads(_cli(path, "status", "--json").stdout)
    if case == "no labels":
        assert "serving:  taxi version 3 (spans 5, 6, schema v1)" in lines          # as before labels
        assert not any(line.startswith(("challenger:", "labels:")) for line in lines)
        assert info["serving"]["version"] == 3 and info["challenger"] is None and info["labels"] == {}
    else:
        assert "serving:  taxi version 2 (champion; spans 3, 4, schema v1)" in lines
        assert ("challenger: taxi version 3 (challenger; spans 5, 6, schema v1): "
                "driftguard promote challenger --reason ...") in lines
        assert not any(line.startswith("labels:") for line in lines)
        assert info["serving"]["version"] == 2 and info["serving"]["labels"] == ["champion"]
        assert info["serving"]["path"] == str(reg / "2")
        assert info["challenger"]["version"] == 3 and info["challenger"]["spans"] == ["5", "6"]
        assert info["labels"] == {"challenger": 3, "champion": 2}


def test_status_lists_other_labels(tmp_path):
    reg = _registry(tmp_path / "runs" / "serving" / "taxi")
    path, _ = _project(tmp_path)
    labels_lib.set_labels(reg, {"champion": 2, "canary": 1}, action="promote", reason="test", who="t@h")
    r = _cli(path, "status")
    assert r.exit_code == 0, r.output
    assert "serving:  taxi version 2 (champion; spans 3, 4, schema v1)" in r.stdout.splitlines()
    assert "labels:   canary -> version 1" in r.stdout.splitlines()


def test_reject_says_the_champion_stays(registry, tmp_path):
    case, reg = registry
    path, _ = _project(tmp_path)
    (reg / ".pending" / "c1" / PROFILE_DIR).mkdir(parents=True)
    (reg / ".pending" / "c1" / PROFILE_DIR / PROFILE_FILE).write_text("{}")
    r = _cli(path, "reject", "c1")
    assert (reg / ".rejected" / "c1").is_dir()
    if case == "corrupt":       # rejected all the same; the error is one line naming the file
        assert r.exit_code == 2 and "Traceback" not in r.output
        assert r.stdout.startswith("rejected c1 (kept at ")
        assert f"labels file {reg / 'labels.json'} is corrupt" in r.stderr and r.stderr.count("\n") == 1
        return
    assert r.exit_code == 0, r.output
    stays = {"no labels": "version 3", "rollout": "version 2 (champion); challenger: version 3"}[case]
    assert r.stdout.rstrip().endswith(f"serving stays at {stays}")


def test_airflow_training_plan_warm_starts_from_the_champion(registry, tmp_path, monkeypatch):
    """The training DAG's plan (RetrainGate decision patched in: reading it needs MLMD)."""
    from driftguard.pipeline.orchestrate import airflow_dags

    case, reg = registry
    _, cfg = _project(tmp_path)
    monkeypatch.setattr(airflow_dags, "latest_retrain_decision", lambda config: {
        "span": 9, "decision": {"spans": [9], "warm_start": True, "reason": "policy 'online'"}})
    if case == "corrupt":
        with pytest.raises(labels_lib.LabelError, match=CORRUPT):
            airflow_dags.training_plan(cfg)
        return
    assert airflow_dags.training_plan(cfg)["warm_start_from"] == str(cfg.model_registry / str(EXPECTED[case]))


def test_dashboard_versions_mark_the_champion_serving(registry, tmp_path):
    from driftguard.components.reports.runs import load_versions

    case, reg = registry
    runs = tmp_path / "runs"
    if case == "corrupt":
        with pytest.raises(labels_lib.LabelError, match=CORRUPT):
            load_versions(runs)
        return
    statuses = {v.version: v.status for v in load_versions(runs)}
    if case == "no labels":
        assert statuses == {"1": "pushed", "2": "pushed", "3": "serving"}            # as before labels
    else:
        assert statuses == {"1": "pushed", "2": "serving", "3": "challenger"}
    labels_lib.promote(reg, 1, label="canary", reason="test", who="t@h")
    assert {v.version: v.status for v in load_versions(runs)}["1"] == "pushed (canary)"


def test_report_command_names_a_corrupt_labels_file(tmp_path):
    reg = _registry(tmp_path / "runs" / "serving" / "taxi")
    (reg / labels_lib.LABELS_FILE).write_text("{not json")
    r = CliRunner().invoke(main, ["report", str(tmp_path / "runs")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"labels file {reg / 'labels.json'} is corrupt (not JSON" in r.stderr and r.stderr.count("\n") == 1


def test_approve_says_whether_the_version_is_served(tmp_path):
    reg = _registry(tmp_path / "runs" / "serving" / "taxi")
    path, _ = _project(tmp_path)
    for candidate, mode in (("c1", None), ("c2", "canary")):
        (reg / ".pending" / candidate / PROFILE_DIR).mkdir(parents=True)
        (reg / ".pending" / candidate / PROFILE_DIR / PROFILE_FILE).write_text(
            json.dumps({"rollout_mode": mode} if mode else {}))
    r = _cli(path, "approve", "c1")                  # no rollout, no labels: served at once, as before
    assert r.exit_code == 0, r.output
    assert r.stdout == f"approved c1: taxi version 4 -> {reg / '4'}\n"
    r = _cli(path, "approve", "c2")                  # canary: the challenger, champion 4 stays
    assert r.exit_code == 0, r.output
    assert r.stdout == (f"approved c2: taxi version 5 -> {reg / '5'} (not served: serving stays at "
                        f"version 4 (champion); challenger: version 5)\n")
