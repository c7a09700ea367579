"""The PredictionMonitor's numbers per task on seeded synthetic scores (no TFX):
prediction drift, realized metrics, CBPE (binary and multi-class) and DLE (regression)."""
import numpy as np
import pytest

from driftguard.components.model_io import ModelSpec, read_outputs
from driftguard.components.prediction_monitor import performance
from driftguard.components.prediction_monitor.metrics import headline, performance_report, prediction_report


def _calibrated(n, rng, a=0.0):
    """Scores whose labels really follow them: P(y=1 | p) = p."""
    p = 1 / (1 + np.exp(-(rng.normal(a, 2.0, n))))
    return p, (rng.random(n) < p).astype(float)


def _binary(p):
    return read_outputs(p, p.size, ModelSpec(task="binary"))


def test_cbpe_tracks_realized_accuracy_under_covariate_shift():
    rng = np.random.default_rng(0)
    ref_p, ref_y = _calibrated(20_000, rng)
    cur_p, cur_y = _calibrated(20_000, rng, a=1.5)   # inputs shifted, P(y|p) unchanged
    ref = _binary(ref_p)
    estimator, note = performance.fit_estimator("binary", ref.value, ref_y, ref.probabilities)
    assert note is None
    cur = _binary(cur_p)
    est = estimator.estimate(cur.value, cur.probabilities)["accuracy"]
    realized = performance.realized("binary", cur.value, cur_y)["accuracy"]
    assert est == pytest.approx(realized, abs=0.01)


def test_binary_report_sees_concept_drift_in_realized_but_not_estimated_accuracy():
    rng = np.random.default_rng(1)
    ref_p, ref_y = _calibrated(5000, rng)
    ref = _binary(ref_p)
    held = np.ones(ref_p.size, bool)
    same_p, same_y = _calibrated(5000, rng)
    same = prediction_report("binary", (), ref, _binary(same_p))
    assert same["prediction"]["psi"] < 0.01 and same["confidence"]["psi"] < 0.01
    cur_p, cur_y = _calibrated(5000, rng)
    flip = rng.random(5000) < 0.33
    cur_y[flip] = 1 - cur_y[flip]
    perf = performance_report("binary", "accuracy", ref, ref_y, held, _binary(cur_p), cur_y)
    h = headline(perf)
    assert h["realized_change"] < -0.05
    assert abs(h["estimated_change"]) < 0.02
    shifted = prediction_report("binary", (), ref, _binary(np.clip(ref_p * 0.5, 0, 1)))
    assert shifted["prediction"]["psi"] > 0.2 and shifted["prediction"]["positive_rate_current"] < 0.3
    unlabelled = performance_report("binary", "accuracy", ref, ref_y, held, _binary(cur_p), None)
    assert unlabelled["realized"] == {} and unlabelled["labelled_rows"] == 0


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _multiclass(n, rng, shift=0.0):
    """Three classes whose labels follow the probabilities (calibrated by construction)."""
    z = rng.normal(0, 1.5, (n, 3))
    z[:, 0] += shift
    p = _softmax(z)
    y = np.array([rng.choice(3, p=row) for row in p], dtype=float)
    return p, y


def test_multiclass_cbpe_estimates_accuracy_and_macro_f1_one_vs_rest():
    rng = np.random.default_rng(2)
    spec = ModelSpec(task="multiclass", classes=("a", "b", "c"))
    ref_p, ref_y = _multiclass(6000, rng)
    cur_p, cur_y = _multiclass(6000, rng, shift=1.0)     # class 0 more likely, P(y | p) unchanged
    ref = read_outputs(ref_p, ref_p.shape[0], spec)
    cur = read_outputs(cur_p, cur_p.shape[0], spec)
    perf = performance_report("multiclass", "accuracy", ref, ref_y, np.ones(6000, bool), cur, cur_y)
    assert perf["estimated"]["accuracy"] == pytest.approx(perf["realized"]["accuracy"], abs=0.02)
    assert perf["estimated"]["macro_f1"] == pytest.approx(perf["realized"]["macro_f1"], abs=0.03)
    report = prediction_report("multiclass", spec.classes, ref, cur)
    assert report["prediction"]["kind"] == "class"
    assert report["prediction"]["class_share_current"]["a"] > report["prediction"]["class_share_reference"]["a"] + 0.1
    assert set(report["prediction"]["class_probabilities"]) == {"a", "b", "c"}
    assert report["prediction"]["class_probabilities"]["a"]["mean_current"] > \
        report["prediction"]["class_probabilities"]["a"]["mean_reference"]


def test_regression_dle_estimates_mae_from_the_features_that_predict_the_error():
    """The noise grows with x; a span of mostly large x (within the reference's range: trees do
    not extrapolate) has a larger MAE, which DLE sees without labels."""
    rng = np.random.default_rng(3)
    spec = ModelSpec(task="regression")

    def data(x):
        y = 2 * x + rng.normal(0, 0.5 + x, x.size)
        return x, y, 2 * x

    xr, yr, pr = data(rng.uniform(0, 3, 8000))
    xc, yc, pc = data(3 * rng.beta(4, 1.5, 4000))
    ref, cur = read_outputs(pr, pr.size, spec), read_outputs(pc, pc.size, spec)
    perf = performance_report("regression", "mae", ref, yr, np.ones(pr.size, bool), cur, yc,
                              ref_features={"x": xr}, cur_features={"x": xc})
    assert perf["realized"]["mae"] > 1.2 * perf["baseline"]["mae"]
    assert perf["estimated"]["mae"] == pytest.approx(perf["realized"]["mae"], rel=0.1)
    assert perf["estimated_reference"]["mae"] == pytest.approx(perf["baseline"]["mae"], rel=0.1)
    report = prediction_report("regression", (), ref, cur)
    assert report["prediction"]["kind"] == "value" and "confidence" not in report


def test_dle_says_why_it_gives_no_number_on_too_few_rows():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, 50)
    estimator, note = performance.fit_estimator("regression", x, x + rng.normal(0, 1, 50), None, {"x": x})
    assert estimator is None and "DLE needs at least" in note


def test_read_outputs_refuses_what_does_not_fit_the_task():
    from driftguard.components.model_io import ModelIOError

    with pytest.raises(ModelIOError, match="3 values per row; a binary classifier"):
        read_outputs(np.zeros(6), 2, ModelSpec(task="binary"))
    with pytest.raises(ModelIOError, match="classes lists 3"):
        read_outputs(np.zeros(4), 2, ModelSpec(task="multiclass", classes=("a", "b", "c")))
    with pytest.raises(ModelIOError, match="a regression model .* outputs one"):
        read_outputs(np.zeros(4), 2, ModelSpec(task="regression"))
    with pytest.raises(ModelIOError, match="outside \\[0, 1\\]"):
        read_outputs(np.array([2.0, -1.0]), 2, ModelSpec(task="binary"))
    two = read_outputs(np.array([[0.3, 0.7], [0.9, 0.1]]), 2, ModelSpec(task="binary"))
    assert two.value.tolist() == pytest.approx([0.7, 0.1])


def test_no_predictions_is_an_error():
    empty = _binary(np.zeros(0))
    with pytest.raises(ValueError, match="no predictions"):
        prediction_report("binary", (), empty, _binary(np.array([0.5])))


def test_macro_f1_averages_over_the_classes_present():
    """A span (or a slice) without any row of one class, perfectly predicted: macro-F1 is 1, not
    2/3 (an absent class is not a class the model got wrong)."""
    from driftguard.components.prediction_monitor import performance

    perfect = performance.realized("multiclass", [0, 0, 1, 1], [0, 0, 1, 1])
    assert perfect == {"accuracy": 1.0, "macro_f1": 1.0}
    # a class predicted but never the label counts (F1 0 for it)
    assert performance.realized("multiclass", [0, 2, 1, 1], [0, 0, 1, 1])["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
