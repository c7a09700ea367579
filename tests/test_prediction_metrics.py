"""driftguard.components.prediction_monitor.metrics on seeded synthetic scores (no TFX)."""
import numpy as np
import pytest

from driftguard.components.prediction_monitor.metrics import estimated_accuracy, monitor_metrics


def _calibrated(n, rng, a=0.0):
    """Scores whose labels really follow them: P(y=1 | p) = p."""
    p = 1 / (1 + np.exp(-(rng.normal(a, 2.0, n))))
    return p, (rng.random(n) < p).astype(float)


def test_estimated_accuracy_tracks_realized_under_covariate_shift():
    rng = np.random.default_rng(0)
    ref_p, ref_y = _calibrated(20_000, rng)
    cur_p, cur_y = _calibrated(20_000, rng, a=1.5)   # inputs shifted, P(y|p) unchanged
    est = estimated_accuracy(ref_p, ref_y, cur_p)
    realized = np.mean((cur_p > 0.5) == (cur_y > 0.5))
    assert est == pytest.approx(realized, abs=0.01)


def test_monitor_reports_prediction_and_confidence_drift_and_accuracy_drop():
    rng = np.random.default_rng(1)
    ref_p, ref_y = _calibrated(5000, rng)
    same = monitor_metrics(ref_p, ref_y, *_calibrated(5000, rng), baseline_accuracy=0.8)
    assert same["prediction"]["psi"] < 0.01 and same["confidence"]["psi"] < 0.01
    # concept drift: labels flipped for a third of rows -> realized accuracy falls, estimate can't see it
    cur_p, cur_y = _calibrated(5000, rng)
    flip = rng.random(5000) < 0.33
    cur_y[flip] = 1 - cur_y[flip]
    m = monitor_metrics(ref_p, ref_y, cur_p, cur_y, baseline_accuracy=0.8)
    assert m["realized_accuracy_change"] < -0.05
    assert abs(m["estimated_accuracy_change"]) < 0.02
    shifted = monitor_metrics(ref_p, ref_y, np.clip(ref_p * 0.5, 0, 1), baseline_accuracy=0.8)
    assert shifted["prediction"]["psi"] > 0.2 and shifted["prediction"]["positive_rate_current"] < 0.3
    assert shifted["realized_accuracy"] is None and shifted["labelled_rows"] == 0


def test_no_predictions_is_an_error():
    with pytest.raises(ValueError, match="no predictions"):
        monitor_metrics(np.array([]), None, np.array([0.5]))
