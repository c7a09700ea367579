"""The shift-aware estimate (PAPE-like): the held-out calibration rows re-weighted to the span by
the domain classifier's density ratio, beside plain CBPE/DLE (seeded simulations, no TFX)."""
import numpy as np
import pyarrow as pa
import pytest

from driftguard.components.model_io import ModelSpec, read_outputs
from driftguard.components.prediction_monitor import performance
from driftguard.components.prediction_monitor.metrics import headline, performance_report, span_shift


def _sample(n, rng, mu):
    """The model's score ignores x, but how far its score can be trusted depends on x: where x
    is low the truth is much flatter than the score, where x is high the score is calibrated.
    P(y | score) therefore differs across the input space; x shifts, the score does not."""
    x = rng.normal(mu, 1.0, n)
    s = 1 / (1 + np.exp(-rng.normal(0, 2.0, n)))
    trust = 0.2 + 0.8 / (1 + np.exp(-2.5 * x))
    y = (rng.random(n) < 0.5 + (s - 0.5) * trust).astype(float)
    return pa.table({"x": x}), s, y


def _report(rng, mu_current, n=3000):
    ref_rows, ref_s, ref_y = _sample(n, rng, 0.0)
    cur_rows, cur_s, cur_y = _sample(n, rng, mu_current)
    spec = ModelSpec(task="binary")
    ref, cur = read_outputs(ref_s, n, spec), read_outputs(cur_s, n, spec)
    shift, note = span_shift(ref_rows, cur_rows, ["x"])
    assert note is None
    perf = performance_report("binary", "accuracy", ref, ref_y, np.ones(n, bool), cur, cur_y,
                              ref_ratio=shift["ratio"])
    return perf


def test_shift_aware_estimate_follows_the_calibration_of_the_shifted_inputs():
    rng = np.random.default_rng(30)
    plain_err, aware_err = [], []
    for _ in range(3):
        perf = _report(rng, 1.5)
        real = perf["realized"]["accuracy"]
        plain_err.append(abs(perf["estimated"]["accuracy"] - real))
        aware_err.append(abs(perf["estimated_shift_aware"]["accuracy"] - real))
        lo, hi = perf["estimated_shift_aware_interval"]["accuracy"]
        assert lo <= perf["estimated_shift_aware"]["accuracy"] <= hi
        assert 0 < perf["shift_aware"]["effective_sample_size"] < 3000
        assert perf["shift_aware"]["method"].startswith("shift-aware")
    print("mean abs error: plain CBPE", np.mean(plain_err), "shift-aware", np.mean(aware_err))
    assert np.mean(plain_err) > 0.03                 # the plain estimate misses the shift ...
    assert np.mean(aware_err) < 0.5 * np.mean(plain_err)   # ... the re-weighted one much less


def test_without_shift_both_estimates_agree():
    rng = np.random.default_rng(31)
    perf = _report(rng, 0.0)
    print("no shift: plain", perf["estimated"]["accuracy"], "shift-aware", perf["estimated_shift_aware"]["accuracy"],
          "realized", perf["realized"]["accuracy"])
    assert perf["estimated_shift_aware"]["accuracy"] == pytest.approx(perf["estimated"]["accuracy"], abs=0.01)
    h = headline(perf)
    assert h["estimated_low"] < h["estimated"] < h["estimated_high"]
    assert h["estimated_shift_aware_low"] < h["estimated_shift_aware"] < h["estimated_shift_aware_high"]


def test_multiclass_and_regression_get_intervals_and_the_shift_aware_variant():
    rng = np.random.default_rng(32)
    n = 1500
    x_ref, x_cur = rng.normal(0, 1, n), rng.normal(1, 1, n)
    # multi-class: three classes from x-dependent logits
    def probs(x):
        logits = np.stack([x, -x, 0.3 * rng.normal(size=x.size)], axis=1) + rng.normal(0, 1, (x.size, 3))
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    spec = ModelSpec(task="multiclass", classes=("a", "b", "c"))
    pr, pc = probs(x_ref), probs(x_cur)
    draw = lambda p: np.minimum((rng.random(p.shape[0])[:, None] > np.cumsum(p, axis=1)).sum(axis=1), 2).astype(float)
    ref, cur = read_outputs(pr, n, spec), read_outputs(pc, n, spec)
    shift, _ = span_shift(pa.table({"x": x_ref}), pa.table({"x": x_cur}), ["x"])
    perf = performance_report("multiclass", "macro_f1", ref, draw(pr), np.ones(n, bool), cur, draw(pc),
                              ref_ratio=shift["ratio"])
    for section in ("estimated_interval", "estimated_shift_aware_interval"):
        assert set(perf[section]) == {"accuracy", "macro_f1"}
        for lo, hi in perf[section].values():
            assert 0 <= lo < hi <= 1
    # regression: DLE fitted with the density ratio as sample_weight
    pred_r, pred_c = rng.normal(0, 1, n), rng.normal(0, 1, n)
    lab_r = pred_r + rng.normal(0, 0.5 + np.abs(x_ref))
    lab_c = pred_c + rng.normal(0, 0.5 + np.abs(x_cur))
    rspec = ModelSpec(task="regression")
    perf = performance_report("regression", "mae", read_outputs(pred_r, n, rspec), lab_r, np.ones(n, bool),
                              read_outputs(pred_c, n, rspec), lab_c, ref_features={"x": x_ref},
                              cur_features={"x": x_cur}, ref_ratio=shift["ratio"])
    assert set(perf["estimated_shift_aware"]) == {"mae", "rmse"}
    lo, hi = perf["estimated_interval"]["mae"]
    assert lo < perf["realized"]["mae"] < hi or abs(perf["estimated"]["mae"] - perf["realized"]["mae"]) < 0.1
    lo, hi = perf["estimated_shift_aware_interval"]["mae"]
    assert lo < perf["estimated_shift_aware"]["mae"] < hi


def test_reweighted_refuses_zero_weights_and_keeps_the_plain_estimator():
    rng = np.random.default_rng(33)
    s = rng.random(500)
    y = (rng.random(500) < s).astype(float)
    est, _ = performance.fit_estimator("binary", s, y, np.stack([1 - s, s], axis=1))
    with pytest.raises(ValueError):
        est.reweighted(np.zeros(500))
    same, info = est.reweighted(np.ones(500))
    probs = np.stack([1 - s, s], axis=1)
    assert same.estimate(s, probs) == pytest.approx(est.estimate(s, probs))
    assert info["effective_sample_size"] == pytest.approx(500)
