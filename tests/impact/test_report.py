"""The span's impact for people (components/impact/report.py) and where it is printed: the
replay's row (pipeline/loop.py) and `driftguard check`'s text (cli/loop_commands.py)."""
import pathlib

from driftguard.cli.loop_commands import _impact_lines
from driftguard.components.impact.report import impact_text, span_impact
from driftguard.components.impact.weighted import importance_weighted_drift
from driftguard.pipeline import loop

IMPORTANCE = {"status": "computed", "repeats": 5, "rows": 616, "primary": "accuracy", "metrics": {"accuracy": {
    "higher_is_better": True, "baseline": 0.9, "features": {
        "payment_type": {"mean": 0.2, "std": 0.017}, "fare": {"mean": 0.002, "std": 0.003}}}}}
FEATURES = {"payment_type": {"scores": {"psi": 0.38}, "drifted": True}, "fare": {"scores": {"psi": 0.2}, "drifted": True}}
REPORT = {"drifted_features": ["payment_type", "fare"], "type_changes": {},
          "importance": importance_weighted_drift(FEATURES, IMPORTANCE, version=1)}
MONITOR = {"status": "monitored",
           "performance": {"task": "binary", "metric": "accuracy", "realized": {"accuracy": 0.63},
                           "baseline": {"accuracy": 0.9}, "estimated": {"accuracy": 0.8},
                           "estimated_reference": {"accuracy": 0.95},
                           "estimator": "CBPE (isotonic one-vs-rest calibration on held-out reference rows)"},
           "impact": {"status": "estimated", "metric": "accuracy", "rows": 616, "effective_sample_size": 84.2,
                      "classifier": {"auc": 0.89}, "rows_note": "616 held-out rows",
                      "metrics": {"accuracy": {"reference": 0.9, "estimated": 0.66, "change": -0.24, "se": 0.0422,
                                               "relative_change": -0.267, "higher_is_better": True}}}}


def test_the_three_changes_stand_side_by_side():
    record = span_impact(REPORT, MONITOR)
    assert record["density_ratio"]["change"] == -0.24 and record["realized"]["change"] == -0.27
    assert abs(record["cbpe"]["change"] - (-0.15)) < 1e-12
    assert impact_text(record) == ("impact on accuracy: estimated -0.240 ± 0.083 (density ratio, ESS 84 of 616), "
                                   "CBPE -0.150, realized -0.270")
    assert record["weighted_drift"].startswith("drift in 2 features; 1 matter to the model: payment_type")


def test_a_span_checked_without_labels_or_estimate_says_so():
    monitor = {**MONITOR, "performance": {**MONITOR["performance"], "realized": {}},
               "impact": {"status": "not_estimated", "note": "no estimate: the reference sample has no labels"}}
    assert impact_text(span_impact(REPORT, monitor)) == ("impact on accuracy: no estimate: the reference sample has "
                                                         "no labels, CBPE -0.150, realized: no labels yet")
    old = span_impact({}, {k: v for k, v in MONITOR.items() if k != "impact"})
    assert old["note"].startswith("not estimated (a span check of an earlier driftguard)")
    assert old["weighted_drift"] is None


def test_the_replay_row_and_the_check_text_show_them():
    row = {"span": 9, "span_label": "9", "drift": "DRIFT: payment_type psi=0.38", "anomalies": 0, "alerts": 1,
           "critical_alerts": 0, "outcome": "no retraining (...)", "serving": "v1", "model_status": "monitored",
           "task": "binary", "metric": "accuracy", "realized": 0.63, "baseline": 0.9, "realized_change": -0.3,
           "estimated": 0.8, "estimated_change": -0.158, "impact": span_impact(REPORT, MONITOR)}
    lines = loop.row_text(row).splitlines()
    assert len(lines) == 4 and lines[2] == ("       | impact on accuracy: estimated -0.240 ± 0.083 (density ratio, "
                                            "ESS 84 of 616), CBPE -0.150, realized -0.270")
    assert lines[3].startswith("       | drift in 2 features; 1 matter to the model: payment_type")
    del row["impact"]                  # rows recorded before this existed
    assert len(loop.row_text(row).splitlines()) == 2
    check = loop.SpanCheck(9, REPORT, pathlib.Path("/r"), MONITOR, {"decision": {}, "alerts": []})
    text = "\n".join(_impact_lines(check))
    assert "importance-weighted drift: drift in 2 features; 1 matter" in text
    assert "payment_type  yes    0.3800" in text and text.endswith("CBPE -0.150, realized -0.270")
