"""Rules: each fires on a crafted report and stays quiet below its threshold."""
import copy
import datetime

import pytest

from driftguard.components.alerts import evaluate, parse_alerts_config

NOW = datetime.datetime(2026, 11, 25, 21, 0, tzinfo=datetime.timezone.utc)


def cfg(**rules):
    return parse_alerts_config({"rules": rules})


def only(name, **settings):
    """A config with just one rule enabled."""
    names = ["feature_psi", "dataset_drift", "multivariate_drift", "schema_anomalies", "skew", "metric_drop",
             "estimated_metric_drop"]
    return parse_alerts_config({"rules": {n: ({"enabled": True, **settings} if n == name else {"enabled": False})
                                          for n in names}})


def report(**overrides):
    base = {
        "status": "compared", "drift_detected": False, "drifted_features": [], "type_changes": {},
        "features": {
            "fare": {"kind": "numeric", "method": "psi", "score": 0.31, "drifted": True,
                     "direction": "increase", "scores": {"psi": 0.31, "ks": 0.2}},
            "company": {"kind": "categorical", "method": "psi", "score": 0.12, "drifted": True,
                        "scores": {"psi": 0.12}},
            "trip_miles": {"kind": "numeric", "method": "ks", "score": 0.05, "drifted": False,
                           "scores": {"psi": 0.19}},
        },
        "multivariate": {"drifted": False, "method": "spearman", "score": 0.05, "threshold": 0.1, "pairs": []},
        "anomalies": [], "skew": {},
    }
    base.update(overrides)
    return base


def run(config, rep=None, monitor=None):
    return evaluate(config, model="taxi", span=8, drift_report=rep, monitor=monitor, now=NOW)


def test_feature_psi_one_alert_per_feature_above_threshold():
    alerts = run(only("feature_psi"), report())
    assert [a.labels["feature"] for a in alerts] == ["fare"]          # company 0.12 and trip_miles 0.19 < 0.2
    a = alerts[0]
    assert a.title == "taxi span 8: PSI 0.31 > 0.2 on fare"
    assert a.rule == "feature_psi" and a.severity == "critical"
    assert dict(a.labels) == {"model": "taxi", "span": "8", "rule": "feature_psi", "feature": "fare"}
    assert a.dedup_key == "taxi/span-8/feature_psi/fare"
    assert a.created_at == "2026-11-25T21:00:00Z"
    assert "0.31" in a.summary and a.values["psi"] == 0.31
    lower = run(only("feature_psi", threshold=0.1), report())
    # worst first; trip_miles' PSI 0.19 is above 0.1 but its drift test did not fire: no page
    assert [a.labels["feature"] for a in lower] == ["fare", "company"]
    assert run(only("feature_psi", threshold=0.31), report()) == []                    # not strictly above


def test_feature_psi_reads_score_when_method_is_psi_without_scores():
    rep = report(features={"fare": {"method": "psi", "score": 0.5}, "x": {"method": "ks", "score": 0.9}})
    assert [a.labels["feature"] for a in run(only("feature_psi"), rep)] == ["fare"]


def test_dataset_drift_lists_top_features_and_type_changes():
    rep = report(drift_detected=True, drifted_features=["fare", "company"], type_changes={"hour": "INT -> STRING"})
    [a] = run(only("dataset_drift"), rep)
    assert a.dedup_key == "taxi/span-8/dataset_drift" and a.severity == "warning" and "feature" not in a.labels
    assert a.title == "taxi span 8: drift in 3 features (fare, company, hour)"
    assert "fare: psi=0.31" in a.summary and "hour: type changed: INT -> STRING" in a.summary
    assert run(only("dataset_drift"), report(drift_detected=False)) == []


def test_multivariate_drift():
    mv = {"drifted": True, "method": "spearman", "score": 0.25, "threshold": 0.1, "pairs": [
        {"features": ["fare", "trip_miles"], "delta": 0.249, "drifted": True},
        {"features": ["trip_miles", "trip_seconds"], "delta": -0.251, "drifted": True},
        {"features": ["a", "b"], "delta": 0.01, "drifted": False}]}
    [a] = run(only("multivariate_drift"), report(multivariate=mv))
    assert a.title == "taxi span 8: joint drift in 2 feature pairs (trip_miles x trip_seconds, fare x trip_miles)"
    assert "delta -0.251" in a.summary
    assert run(only("multivariate_drift"), report()) == []
    assert run(only("multivariate_drift"), report(multivariate=None)) == []


def test_schema_anomalies_one_alert_listing_them_even_without_baseline():
    anomalies = [{"feature": "payment_type", "severity": "ERROR", "short": "Unexpected string values",
                  "description": "Bitcoin"},
                 {"feature": "fare", "severity": "WARNING", "short": "Out-of-range values", "description": "< 0"}]
    [a] = run(only("schema_anomalies"), report(anomalies=anomalies))
    assert a.severity == "critical" and a.dedup_key == "taxi/span-8/schema_anomalies"
    assert a.title == ("taxi span 8: 2 schema anomalies (payment_type: Unexpected string values, "
                       "fare: Out-of-range values)")
    assert "payment_type [ERROR] Unexpected string values: Bitcoin" in a.summary
    assert run(only("schema_anomalies"), report()) == []
    # ExampleValidator runs without a baseline too, so anomalies still alert on a no_baseline report.
    no_baseline = {"status": "no_baseline", "drift_detected": False, "features": {}, "anomalies": anomalies}
    assert [a.rule for a in run(cfg(), no_baseline)] == ["schema_anomalies"]


def test_skew():
    skew = {"fare": [{"type": "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "description": "0.2 > 0.1"}],
            "company": []}
    [a] = run(only("skew"), report(skew=skew))
    assert a.title == "taxi span 8: training/serving skew in 1 feature (fare)"
    assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in a.summary
    assert run(only("skew"), report(skew={"company": []})) == []


def perf(task="binary", metric="accuracy", **sections):
    return {"status": "monitored", "performance": {"task": task, "metric": metric, **sections}}


@pytest.mark.parametrize("rule, section, base", [("metric_drop", "realized", "baseline"),
                                                 ("estimated_metric_drop", "estimated", "estimated_reference")])
def test_metric_drop_is_relative_to_baseline(rule, section, base):
    # baseline 0.88, threshold 5 %: fires below 0.836
    [a] = run(only(rule), None, perf(**{base: {"accuracy": 0.88}, section: {"accuracy": 0.80}}))
    assert a.rule == rule and a.dedup_key == f"taxi/span-8/{rule}"
    assert f"{section} accuracy 0.8 is 9.1% worse than baseline 0.88" in a.title
    assert run(only(rule), None, perf(**{base: {"accuracy": 0.88}, section: {"accuracy": 0.84}})) == []
    assert run(only(rule), None, perf(**{base: {"accuracy": 0.88}, section: {}})) == []
    assert run(only(rule), None, None) == []
    assert len(run(only(rule, threshold=0.01), None, perf(**{base: {"accuracy": 0.88},
                                                             section: {"accuracy": 0.86}}))) == 1


def test_metric_drop_follows_the_metric_direction_for_regression():
    """MAE worse means higher: 12 -> 13.5 is 12.5 % worse (fires at 10 %); 12 -> 10 is better."""
    config = parse_alerts_config({"rules": {"metric_drop": {"metric": "mae", "threshold": 0.1}}}, task="regression")
    [a] = run(config, None, perf("regression", "mae", baseline={"mae": 12.0}, realized={"mae": 13.5}))
    assert a.title == "taxi span 8: realized MAE 13.5 is 12.5% worse than baseline 12"
    assert a.values["metric"] == "mae" and a.values["relative_change"] == pytest.approx(0.125)
    assert run(config, None, perf("regression", "mae", baseline={"mae": 12.0}, realized={"mae": 10.0})) == []
    rmse = parse_alerts_config({"rules": {"metric_drop": {"metric": "rmse"}}}, task="regression")
    assert [x.rule for x in run(rmse, None, perf("regression", "mae", baseline={"rmse": 20.0},
                                                  realized={"rmse": 23.0}))] == ["metric_drop"]


def test_metric_drop_default_metric_follows_the_task():
    assert parse_alerts_config(None, task="regression").rules["metric_drop"].metric == "mae"
    assert parse_alerts_config(None, task="multiclass").rules["metric_drop"].metric == "accuracy"
    with pytest.raises(ValueError, match="'auc' is not a regression metric"):
        parse_alerts_config({"rules": {"metric_drop": {"metric": "auc"}}}, task="regression")


def test_no_baseline_report_raises_no_drift_alerts():
    rep = report(status="no_baseline", drift_detected=True, drifted_features=["fare"],
                 multivariate={"drifted": True, "pairs": []}, skew={"fare": [{"type": "X", "description": "y"}]})
    assert run(cfg(), rep) == []
    assert run(cfg(), None) == []


def test_disabled_rules_and_severity_override():
    rep = report(drift_detected=True, drifted_features=["fare"])
    alerts = run(cfg(feature_psi={"enabled": False}, dataset_drift={"severity": "critical"}), rep)
    assert [(a.rule, a.severity) for a in alerts] == [("dataset_drift", "critical")]


def test_real_span8_report(span8_report):
    """The DriftDetector report of data/taxi span 8 vs spans 1-2 (tests/alerts/span8_report.json)."""
    rep = copy.deepcopy(span8_report)
    alerts = run(cfg(), rep)
    keys = [a.dedup_key for a in alerts]
    assert keys == ["taxi/span-8/feature_psi/trip_start_timestamp", "taxi/span-8/feature_psi/trip_start_month",
                    "taxi/span-8/feature_psi/trip_miles", "taxi/span-8/dataset_drift",
                    "taxi/span-8/multivariate_drift"]
    assert alerts[2].title == "taxi span 8: PSI 0.29 > 0.2 on trip_miles"
    assert all("\n" not in a.title for a in alerts)
    again = run(cfg(), rep)
    assert [a.dedup_key for a in again] == keys and [a.to_dict() for a in again] == [a.to_dict() for a in alerts]


def test_model_cannot_score_rule_and_estimated_drop_against_the_reference_estimate():
    from driftguard.components.alerts.config import parse_alerts_config
    from driftguard.components.alerts.rules import evaluate

    cfg = parse_alerts_config(None)
    alerts = evaluate(cfg, model="taxi", span=5, drift_report=None,
                      monitor={"status": "cannot_score", "message": "model version 1 cannot score span 5: Key: x"})
    assert [a.rule for a in alerts] == ["model_cannot_score"] and alerts[0].severity == "critical"
    # the estimate (0.90) is compared with the same estimator on the reference (0.96), not with
    # the held-out baseline accuracy (0.89): 6.3 % down -> fires
    monitor = perf(baseline={"accuracy": 0.89}, estimated={"accuracy": 0.90},
                   estimated_reference={"accuracy": 0.96}, realized={})
    fired = [a.rule for a in evaluate(cfg, model="taxi", span=6, drift_report=None, monitor=monitor)]
    assert fired == ["estimated_metric_drop"]


def test_dataset_drift_names_what_the_domain_classifier_found():
    cls = {"drifted": True, "auc": 0.634, "explanation": {
        "separating_features": ["trip_start_month", "trip_start_hour", "trip_start_day"],
        "segments": [{"text": "trip_start_month >= 11 and 12 <= trip_start_hour <= 17: 5.2% -> 14.4% of rows"}]}}
    [a] = run(only("dataset_drift"), report(drift_detected=True, classifier=cls))
    assert a.title == "taxi span 8: joint drift"
    assert ("a domain classifier tells the rows apart (AUC 0.634), mostly by trip_start_month, trip_start_hour, "
            "trip_start_day") in a.summary
    assert "  - trip_start_month >= 11 and 12 <= trip_start_hour <= 17: 5.2% -> 14.4% of rows" in a.summary
    quiet = run(only("dataset_drift"), report(drift_detected=True, drifted_features=["fare"],
                                              classifier={"drifted": False, "auc": 0.51}))
    assert "domain classifier" not in quiet[0].summary


def test_estimated_drop_fires_only_when_the_whole_interval_is_past_the_line():
    # reference estimate 0.88, threshold 5 %: the line is 0.836; the estimate 0.80 is below it
    def mon(low, high, task="binary", metric="accuracy", ref=0.88, value=0.80):
        return perf(task=task, metric=metric, estimated={metric: value}, estimated_reference={metric: ref},
                    estimated_interval={metric: [low, high]})
    [a] = run(only("estimated_metric_drop"), None, mon(0.78, 0.82))      # whole interval below 0.836
    assert "estimated accuracy 0.8 [0.78, 0.82] is 9.1% worse than baseline 0.88" in a.title
    assert "whole 95 % interval is below it" in a.summary and a.values["interval"] == [0.78, 0.82]
    assert run(only("estimated_metric_drop"), None, mon(0.76, 0.85)) == []  # its upper end is above the line
    # an error (lower is better): the interval's lower end must be above the line (MAE 1.0 -> 1.05)
    reg = dict(task="regression", metric="mae", ref=1.0, value=1.2)
    mae = parse_alerts_config({"rules": {"estimated_metric_drop": {"metric": "mae"}}}, task="regression")
    assert [x.rule for x in run(mae, None, mon(1.1, 1.3, **reg))] == ["estimated_metric_drop"]
    assert run(mae, None, mon(1.02, 1.38, **reg)) == []
    # the realized rule has no interval to clear
    assert len(run(only("metric_drop"), None, perf(baseline={"accuracy": 0.88}, realized={"accuracy": 0.80},
                                                   estimated_interval={"accuracy": [0.5, 0.99]}))) == 1
