"""The Kubeflow pipeline definition (span check + training under a Cond on the gate) run by the
local runner twice, as a recurring KFP run would run it: nothing about the spans is fixed when it
is built. The first run finds spans 1-2, checks span 2 (no model serving yet: the gate says
retrain) and trains version 1 on the window the gate chose; span 3 then arrives and the second
run of the *same pipeline object* checks span 3 and trains version 2 on spans 2-3 (the
`scheduled` policy, every span). Node states are read from MLMD, not from the runner's return.
"""
from __future__ import annotations

import json
import pathlib

import pytest

from helpers import DATA, write_config

pytestmark = pytest.mark.tfx

ROWS = 600      # real taxi trips per span: small spans, the same code paths


def _add_span(data: pathlib.Path, span: int) -> None:
    (data / f"span-{span}").mkdir(parents=True)
    with open(DATA / f"span-{span}" / "data.csv") as src:
        head = [line for _, line in zip(range(ROWS + 1), src)]
    (data / f"span-{span}" / "data.csv").write_text("".join(head))


def _newest(runs: pathlib.Path, node: str, key: str, name: str) -> dict:
    folders = sorted((runs / "pipelines" / "taxi-check-and-train" / node / key).glob("*"), key=lambda p: int(p.name))
    return json.loads((folders[-1] / name).read_text())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from driftguard.pipeline import config as config_lib
    from driftguard.pipeline import runner
    from driftguard.pipeline.orchestrate import kubeflow

    root = tmp_path_factory.mktemp("kfp-local")
    data = root / "data"
    for span in (1, 2):
        _add_span(data, span)
    # every candidate is blessed: what is tested is which spans are read, not the gate (tested elsewhere);
    # the drift reference is the previous span, which the compiled pipeline must find when it runs
    cfg = config_lib.load(write_config(root / "driftguard.json", data={"root": str(data)}, runs=str(root / "runs"),
                                       retrain={"policy": "scheduled", "every_spans": 1},
                                       drift={"reference": {"strategy": "previous"}},
                                       evaluation={"metrics": {"AUC": {"min": 0.0, "baseline_tolerance": 1.0}}}))
    pipeline = kubeflow.create_check_and_train_pipeline(cfg)     # built once, run twice
    first = runner.run(pipeline, cfg)
    after_first = {"decision": _newest(cfg.runs_path, "CheckRetrainGate", "decision", "decision.json")}
    _add_span(data, 3)
    second = runner.run(pipeline, cfg)
    return {"cfg": cfg, "first": first, "second": second, "after_first": after_first}


def test_every_node_of_both_runs_completed(two_runs):
    for name in ("first", "second"):
        result = two_runs[name]
        assert result.ok, [(n.node_id, n.state, n.error) for n in result.nodes if n.state != "COMPLETE"]
        assert {n.node_id for n in result.nodes} >= {"CheckExampleGen", "CheckRetrainGate", "ExampleGen", "Trainer",
                                                      "Evaluator", "RegistryPusher"}


def test_the_first_run_checks_the_newest_span_and_trains_the_first_version(two_runs):
    from driftguard.components.registry_pusher.registry import read_profile

    decision = two_runs["after_first"]["decision"]
    assert decision["span"] == 2 and decision["serving_version"] is None
    assert decision["decision"]["retrain"] is True and decision["decision"]["spans"] == [1, 2]
    assert read_profile(two_runs["cfg"].model_registry, 1)["spans"] == [1, 2]


def test_the_second_run_of_the_same_pipeline_checks_the_new_span_and_trains_on_its_window(two_runs):
    from driftguard.components.registry_pusher.registry import existing_versions, read_profile

    runs = two_runs["cfg"].runs_path
    report = _newest(runs, "CheckDriftDetector", "drift_report", "report.json")
    assert report["context"]["span"] == 3 and report["context"]["baseline_version"] == 1
    # "the previous span" was resolved when this run's DriftDetector ran: span 2, which the
    # pipeline object built before span 3 existed knew nothing about
    ref = report["reference"]
    assert (ref["strategy"], ref["used"], ref["spans"], ref["fallback"]) == ("previous", "previous", [2], False)
    assert report["rows"]["reference"]["rows"] == ROWS
    decision = _newest(runs, "CheckRetrainGate", "decision", "decision.json")
    assert decision["span"] == 3 and decision["decision"]["spans"] == [2, 3]
    assert existing_versions(two_runs["cfg"].model_registry) == [1, 2]
    assert read_profile(two_runs["cfg"].model_registry, 2)["spans"] == [2, 3]
