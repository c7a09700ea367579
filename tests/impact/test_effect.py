"""driftguard.components.impact.effect: density-ratio re-weighting, on data whose ratio is known."""
import numpy as np
import pyarrow as pa
import pytest

from driftguard.components.impact.effect import (effective_sample_size, estimate_effect, normalised_weights,
                                                 span_effect, worse_interval, z_value)
from driftguard.components.prediction_monitor.performance import realized


def _draw(rng, n, shift):
    """x ~ N(shift, 1); the label follows x with the same noise everywhere (covariate shift only);
    the model is surest far from 0, so moving the inputs towards 0 makes it worse."""
    x = rng.normal(shift, 1.0, n)
    y = (x + rng.normal(0, 0.7, n) > 0).astype(float)
    return x, y, 1.0 / (1.0 + np.exp(-2.5 * x))


def test_the_reweighted_reference_predicts_the_metric_on_the_shifted_data():
    rng = np.random.default_rng(3)
    x, y, p = _draw(rng, 2000, 1.5)             # reference: mostly far from the boundary
    xc, yc, pc = _draw(rng, 200_000, 0.0)       # current: centred on it
    truth = realized("binary", pc, yc)
    ratio = np.exp(-0.5 * x ** 2) / np.exp(-0.5 * (x - 1.5) ** 2)     # N(0,1) / N(1.5,1)
    out = estimate_effect("binary", p, y, ratio, n_bootstrap=150)
    assert out["status"] == "estimated" and out["rows"] == 2000
    assert 20 < out["effective_sample_size"] < 2000
    for metric in ("accuracy", "auc"):
        m = out["metrics"][metric]
        assert m["change"] < (-0.05 if metric == "accuracy" else 0.0), m     # the model gets worse
        assert m["se"] > 0
        assert abs(m["estimated"] - truth[metric]) < 3 * m["se"], (metric, m, truth)
        assert m["reference"] == pytest.approx(realized("binary", p, y)[metric])


def test_equal_weights_estimate_no_change_with_no_error():
    rng = np.random.default_rng(4)
    x, y, p = _draw(rng, 500, 0.5)
    out = estimate_effect("binary", p, y, np.full(500, 3.0), n_bootstrap=20)
    assert out["metrics"]["accuracy"]["change"] == 0.0 and out["metrics"]["accuracy"]["se"] == 0.0
    assert out["effective_sample_size"] == pytest.approx(500)


def test_regression_and_multiclass_have_weighted_metrics_too():
    rng = np.random.default_rng(5)
    x = rng.normal(size=400)
    pred = x + np.where(x > 0, 2.0, 0.1) * rng.normal(size=400)      # errors larger for x > 0
    out = estimate_effect("regression", pred, x, np.where(x > 0, 3.0, 1.0), n_bootstrap=50)
    assert out["metrics"]["mae"]["change"] > 0 and not out["metrics"]["mae"]["higher_is_better"]
    assert worse_interval(out["metrics"]["mae"], 0.95)["worse"] > 0
    cls = rng.integers(0, 3, 400).astype(float)
    out = estimate_effect("multiclass", cls, np.where(x > 0, cls, (cls + 1) % 3), np.where(x > 0, 1.0, 4.0),
                          n_bootstrap=50)
    assert out["metrics"]["accuracy"]["change"] < 0 and out["metrics"]["macro_f1"]["change"] < 0


def test_weights_are_normalised_clipped_and_checked():
    w, clipped = normalised_weights([1.0] * 99 + [1000.0], max_weight=20.0)
    assert clipped == 1 and w.mean() == pytest.approx(1.0) and w.max() == pytest.approx(20.0)
    assert effective_sample_size(np.ones(10)) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        normalised_weights([1.0, -1.0])
    with pytest.raises(ValueError, match="one entry per row"):
        estimate_effect("binary", np.ones(3), np.ones(3), np.ones(2))
    assert estimate_effect("binary", np.ones(10), np.ones(10), np.ones(10))["status"] == "not_estimated"


def test_the_worse_interval_follows_the_metric_direction_and_the_confidence():
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-5)
    auc = {"reference": 0.8, "change": -0.04, "se": 0.01, "higher_is_better": True}
    i = worse_interval(auc, 0.95)
    assert i["worse"] == pytest.approx(0.05) and i["low"] == pytest.approx(0.05 - 1.959964 * 0.01 / 0.8, abs=1e-6)
    mae = {"reference": 10.0, "change": -1.0, "se": 0.1, "higher_is_better": False}
    assert worse_interval(mae, 0.9)["worse"] == pytest.approx(-0.1)
    assert worse_interval({"reference": 0.8, "change": -0.04, "se": None}, 0.95) is None
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        z_value(1.0)


def test_span_effect_weights_the_labelled_rows_by_the_domain_classifier():
    """The real classifier (components/drift/classifier.py) on inputs moved towards the boundary:
    its weights give nearly what the true density ratio gives, and it saw the shift."""
    rng = np.random.default_rng(6)
    x, y, p = _draw(rng, 2000, 1.5)
    xc, _, _ = _draw(rng, 1500, 0.0)
    other = rng.normal(size=2000)
    reference = pa.table({"x": x, "other": other, "label": y})
    current = pa.table({"x": xc, "other": rng.normal(size=1500), "new": np.ones(1500)})
    rows = np.arange(2000) % 3 == 0                                # the "held-out" labelled rows
    out = span_effect("binary", reference, current, p, y, rows, columns=["x", "other", "new"], n_bootstrap=50)
    assert out["rows"] == rows.sum() and out["classifier"]["auc"] > 0.75 and out["classifier"]["columns"] == 2
    truth = estimate_effect("binary", p[rows], y[rows], (np.exp(-0.5 * x ** 2) / np.exp(-0.5 * (x - 1.5) ** 2))[rows],
                            n_bootstrap=50)
    got, want = out["metrics"]["accuracy"], truth["metrics"]["accuracy"]
    assert got["change"] < -0.04 and abs(got["change"] - want["change"]) < 3 * want["se"], (got, want)
    none = span_effect("binary", reference, pa.table({"z": np.ones(5)}), p, y, rows, columns=["x"])
    assert none["status"] == "not_estimated" and "share no compared feature" in none["note"]
