"""driftguard.components.retrain_gate.policy.decide: every policy, pure."""
from driftguard.components.retrain_gate.policy import decide

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
