"""The `impact` retraining policy end to end: `driftguard run` with real TFX span checks decides on
the *estimated* effect of the drift on the model, not on the drift itself.

Starts from a copy of the runs folder of `first_push` (version 1 on spans 1-2, whose profile now
holds its permutation importance), over a copy of the workspace's spans plus one:

span 8: span 7 (rows of the training window) with every fare 25 % higher: strong drift in one
        feature and a critical feature_psi alert (the `triggered` policy retrains on it,
        tests/test_closed_loop.py), in a feature the model hardly uses;
span 9: the credit-card trips of the real 2013Q3-Q4 spans only: payment type, the feature the
        model relies on most, moves to the trips whose tip is hard to predict (cash trips
        almost never record a tip). Covariate shift: the model gets worse, and its labels show it.
"""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from helpers import DATA, make_config, run_cli, ws_data

pytestmark = pytest.mark.tfx

THRESHOLD, CONFIDENCE = 0.05, 0.95


@pytest.fixture(scope="session")
def impact_run(first_push, workspace, tmp_path_factory):
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-3000:]
    root = tmp_path_factory.mktemp("impact")
    data = root / "data"
    shutil.copytree(ws_data(workspace), data)
    real = pd.concat([pd.read_csv(DATA / f"span-{s}" / "data.csv") for s in (3, 4)])
    (data / "span-9").mkdir()
    real[real["payment_type"] == "Credit Card"].to_csv(data / "span-9" / "data.csv", index=False)
    runs = root / "runs"
    shutil.copytree(workspace / "runs", runs, ignore=shutil.ignore_patterns("state.json", "alerts*", "outbox*"))
    cfg = make_config(workspace, "impact", runs=str(runs), data={"root": str(data)},
                      evaluation={"metrics": {"AUC": {"min": 0.5, "baseline_tolerance": 1.0}}},
                      retrain={"policy": "impact", "impact_threshold": THRESHOLD, "impact_confidence": CONFIDENCE,
                               "require_approval": True})
    proc = run_cli("run", "--spans", "8,9", config=cfg)
    rows = json.loads((runs / "state.json").read_text())["spans"] if (runs / "state.json").exists() else []
    return {"proc": proc, "runs": runs, "rows": {r["span"]: r for r in rows}, "config": cfg}


def _outputs(runs, component, name, span):
    """The newest output of ``component`` for ``span`` (the copied runs folder may hold older checks)."""
    paths = sorted(runs.glob(f"pipelines/taxi-check/{component}/*/*/{name}"), key=lambda p: int(p.parent.name))
    found = [json.loads(p.read_text()) for p in paths]
    return [f for f in found if f.get("span") == span or (f.get("context") or {}).get("span") == span][-1]


def _acted_on_estimate(monitor, decision):
    """The gate's verdict recomputed from the monitor's estimate: retrain iff the whole interval
    of the relative drop lies above the threshold."""
    from driftguard.components.impact.effect import worse_interval

    entry = monitor["impact"]["metrics"]["accuracy"]
    interval = worse_interval(entry, CONFIDENCE)
    assert decision["decision"]["retrain"] is (interval["low"] > THRESHOLD), (entry, interval, decision)
    return entry, interval


def test_version_1_was_pushed_with_its_permutation_importance(first_push):
    importance = json.loads((first_push["registry"] / "1" / "profile" / "feature_importance.json").read_text())
    assert importance["status"] == "computed" and importance["primary"] == "accuracy"
    assert importance["repeats"] == 5 and importance["rows"] > 100 and "held-out rows" in importance["rows_note"]
    accuracy = importance["metrics"]["accuracy"]["features"]
    assert max(accuracy, key=lambda f: accuracy[f]["mean"]) == "payment_type"
    assert accuracy["payment_type"]["mean"] > 0.05 and len(accuracy["payment_type"]["drops"]) == 5


def test_a_strong_drift_in_a_feature_the_model_hardly_uses_does_not_retrain(impact_run):
    proc, runs = impact_run["proc"], impact_run["runs"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    row = impact_run["rows"][8]
    assert row["drift_detected"] and row["critical_alerts"] >= 1          # `triggered` would retrain here
    assert row["decision"]["policy"] == "impact" and row["decision"]["retrain"] is False
    report = _outputs(runs, "DriftDetector", "report.json", 8)
    assert "fare" in report["drifted_features"]
    weighted = report["importance"]
    assert weighted["status"] == "weighted" and weighted["version"] == 1 and weighted["metric"] == "accuracy"
    fare = weighted["features"]["fare"]
    assert fare["drifted"] and fare["weighted"] < fare["psi"] * 0.5       # weighted down: the model barely uses it
    monitor = _outputs(runs, "PredictionMonitor", "monitor.json", 8)
    entry, interval = _acted_on_estimate(monitor, _outputs(runs, "RetrainGate", "decision.json", 8))
    assert monitor["impact"]["classifier"]["auc"] > 0.6                   # the classifier saw the shift
    assert f"estimated effect on accuracy {entry['change']:+.3f} ± {interval['half_width']:.3f}" \
        in row["decision"]["reason"]
    assert "span  8 |" in proc.stdout and "impact on accuracy: estimated" in proc.stdout


def test_a_shift_towards_rows_the_model_gets_wrong_retrains_on_the_estimate(impact_run):
    proc, runs = impact_run["proc"], impact_run["runs"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    row = impact_run["rows"][9]
    assert row["decision"]["retrain"] is True and row["decision"]["spans"] == [8, 9]
    assert row["outcome"].startswith("retrained on 8,9: candidate c1 waits for approval"), row["outcome"]
    monitor = _outputs(runs, "PredictionMonitor", "monitor.json", 9)
    entry, interval = _acted_on_estimate(monitor, _outputs(runs, "RetrainGate", "decision.json", 9))
    assert interval["low"] > THRESHOLD and entry["change"] < 0
    assert monitor["impact"]["effective_sample_size"] < monitor["impact"]["rows"]
    # the estimate beside CBPE's and the realized change (the span has its labels)
    impact = row["impact"]
    assert impact["density_ratio"]["change"] == pytest.approx(entry["change"])
    assert impact["realized"]["change"] < 0 and impact["cbpe"]["change"] is not None
    report = _outputs(runs, "DriftDetector", "report.json", 9)
    assert report["importance"]["ranking"][0] == "payment_type"
    page = (runs / "reports" / "span-9.html").read_text()
    assert "Does the drift matter to the model?" in page and 'id="importance-weighted"' in page
    assert "realized (labels)" in page
