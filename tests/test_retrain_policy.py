"""driftguard.components.retrain_gate.policy.decide: every policy, pure."""
from driftguard.components.retrain_gate.policy import decide, impact_evidence

CRIT = [{"rule": "feature_psi", "severity": "critical"}]
WARN = [{"rule": "dataset_drift", "severity": "warning"}]


def test_no_model_trains_unless_never():
    d = decide("triggered", span=3, serving_spans=None, alerts=[], window_spans=2)
    assert d.retrain and d.spans == [2, 3] and "no model" in d.reason
    assert not decide("never", span=3, serving_spans=None, alerts=CRIT, window_spans=2).retrain


def test_triggered_needs_severity_and_respects_cooldown():
    assert not decide("triggered", span=5, serving_spans=[1, 2], alerts=WARN, window_spans=2).retrain
    d = decide("triggered", span=5, serving_spans=[1, 2], alerts=CRIT + WARN, window_spans=2)
    assert d.retrain and d.spans == [4, 5] and "feature_psi" in d.reason
    d = decide("triggered", span=5, serving_spans=[3, 4], alerts=CRIT, window_spans=2, min_spans_between=2)
    assert not d.retrain and "trained 1 span(s) ago" in d.reason
    assert decide("triggered", span=5, serving_spans=[3, 4], alerts=WARN, window_spans=3,
                  trigger_severity="warning", min_spans_between=1).spans == [3, 4, 5]


def test_scheduled_every_k_spans():
    assert not decide("scheduled", span=4, serving_spans=[1, 2], alerts=CRIT, window_spans=2, every_spans=3).retrain
    d = decide("scheduled", span=5, serving_spans=[1, 2], alerts=[], window_spans=2, every_spans=3)
    assert d.retrain and d.spans == [4, 5]


def test_online_every_span_newest_only_warm_started():
    d = decide("online", span=6, serving_spans=[5], alerts=[], window_spans=2)
    assert d.retrain and d.spans == [6] and d.warm_start
    assert not decide("online", span=5, serving_spans=[5], alerts=[], window_spans=2).retrain


def test_blocking_schema_anomalies_do_not_trigger_a_doomed_training():
    d = decide("triggered", span=5, serving_spans=[1, 2], alerts=CRIT, window_spans=2, blocking_anomalies=1)
    assert not d.retrain and "would stop training" in d.reason and "--from-span 5" in d.reason

    d = decide("triggered", span=8, serving_spans=[1, 2], alerts=CRIT, window_spans=2, blocked_spans=[5, 7])
    assert not d.retrain and "holds span(s) 7" in d.reason
    assert decide("triggered", span=9, serving_spans=[1, 2], alerts=CRIT, window_spans=2, blocked_spans=[5, 7]).retrain


# ---------------------------------------------------------------- impact: the estimated effect decides

def _evidence(change, se, reference=0.9, n_drifted=6, higher=True, metric="accuracy"):
    return {"metric": metric, "n_drifted": n_drifted, "matter": ["fare"],
            "entry": {"reference": reference, "change": change, "se": se, "higher_is_better": higher}}


def test_impact_retrains_only_when_the_whole_interval_is_past_the_threshold():
    # drop 5.6 %, half-width 1.96 * 0.01 / 0.9 = 2.2 %: 3.4 % > 2 % -> retrain
    d = decide("impact", span=5, serving_spans=[3, 4], alerts=[], window_spans=2,
               impact=_evidence(-0.05, 0.01), impact_threshold=0.02, impact_confidence=0.95)
    assert d.retrain and d.spans == [4, 5] and d.policy == "impact"
    assert d.reason == ("drift in 6 features (1 the model relies on), estimated effect on accuracy -0.050 ± 0.020 "
                        "(-5.6%): a drop above 2.0% with 95% confidence")
    # the same estimate, less sure: the interval reaches below the threshold -> no retraining
    d = decide("impact", span=5, serving_spans=[3, 4], alerts=[], window_spans=2,
               impact=_evidence(-0.05, 0.02), impact_threshold=0.02, impact_confidence=0.95)
    assert not d.retrain and "-0.050 ± 0.039" in d.reason and "not a drop above 2.0% with 95% confidence" in d.reason
    # a lower confidence narrows the interval: now it clears the threshold
    assert decide("impact", span=5, serving_spans=[3, 4], alerts=[], window_spans=2,
                  impact=_evidence(-0.05, 0.02), impact_threshold=0.02, impact_confidence=0.6).retrain


def test_impact_ignores_raw_drift_and_critical_alerts_when_the_effect_is_small():
    d = decide("impact", span=8, serving_spans=[1, 2], alerts=CRIT * 3, window_spans=2,
               impact=_evidence(-0.004, 0.0015, n_drifted=6))
    assert not d.retrain
    assert d.reason.startswith("drift in 6 features (1 the model relies on), estimated effect on accuracy "
                               "-0.004 ± 0.003 (-0.4%)")
    # an estimated *improvement* never retrains, however sure
    assert not decide("impact", span=8, serving_spans=[1, 2], alerts=[], window_spans=2,
                      impact=_evidence(0.05, 0.001)).retrain


def test_impact_follows_the_metric_direction():
    # MAE up by 3 (10 %) with se 0.5 (1.96 * 0.5 / 30 = 3.3 %): 6.7 % > 5 %
    d = decide("impact", span=9, serving_spans=[7, 8], alerts=[], window_spans=2, impact_threshold=0.05,
               impact=_evidence(3.0, 0.5, reference=30.0, higher=False, metric="mae"))
    assert d.retrain and "effect on MAE +3.000 ± 0.980 (-10.0%)" in d.reason
    assert not decide("impact", span=9, serving_spans=[7, 8], alerts=[], window_spans=2, impact_threshold=0.05,
                      impact=_evidence(-3.0, 0.5, reference=30.0, higher=False, metric="mae")).retrain


def test_impact_without_an_estimate_does_not_retrain_and_says_why():
    d = decide("impact", span=5, serving_spans=[1, 2], alerts=CRIT, window_spans=2,
               impact={"metric": "auc", "n_drifted": 1, "note": "no estimate: the reference sample has no labels"})
    assert not d.retrain
    assert d.reason == ("drift in 1 feature, effect on AUC not estimated (no estimate: the reference sample has "
                        "no labels): no retraining")
    assert not decide("impact", span=5, serving_spans=[1, 2], alerts=[], window_spans=2).retrain
    # the rules every policy shares still come first
    assert decide("impact", span=3, serving_spans=None, alerts=[], window_spans=2).retrain
    assert not decide("impact", span=5, serving_spans=[1, 2], alerts=[], window_spans=2, blocking_anomalies=2,
                      impact=_evidence(-0.3, 0.001)).retrain


def test_impact_evidence_reads_the_span_reports():
    report = {"drifted_features": ["fare", "company"], "type_changes": {"hour": "number -> text"},
              "importance": {"ranking": ["hour", "fare"]}}
    entry = {"reference": 0.9, "estimated": 0.85, "change": -0.05, "se": 0.01, "higher_is_better": True}
    monitor = {"impact": {"status": "estimated", "effective_sample_size": 321.0, "metrics": {"accuracy": entry}}}
    ev = impact_evidence(report, monitor, "accuracy")
    assert ev == {"metric": "accuracy", "n_drifted": 3, "matter": ["hour", "fare"], "entry": entry,
                  "effective_sample_size": 321.0}
    assert impact_evidence(report, monitor, "auc")["note"] == "no estimate of auc"
    assert impact_evidence(report, {"impact": {"status": "not_estimated", "note": "too few rows"}},
                           "accuracy")["note"] == "too few rows"
    assert "no model monitor report" in impact_evidence(report, None, "accuracy")["note"]
    cannot = {"status": "cannot_score", "message": "model version 1 cannot score span 5: ..."}
    assert impact_evidence(report, cannot, "accuracy")["note"] == cannot["message"]
