"""The label-free estimates' 95 % intervals cover the realized value they predict (seeded
simulations, no TFX): binary (accuracy, AUC), multi-class (accuracy, macro-F1), regression (MAE).

Each repetition draws a fresh held-out calibration sample and a fresh current span from the
same P(label | score) with the score distribution shifted (covariate shift), so the
calibration's error is a random draw too, as it is for a real model version.
"""
import numpy as np
import pytest

from driftguard.components.prediction_monitor import performance, uncertainty

Z = uncertainty.z_value(0.95)


def _true_p(s):
    """An overconfident model: the truth is less extreme than its score."""
    return 0.5 + (s - 0.5) * 0.7


def _binary_sample(n, rng, a=2.0, b=2.0):
    s = rng.beta(a, b, n)
    return np.stack([1 - s, s], axis=1), (rng.random(n) < _true_p(s)).astype(float)


def _covered(result, metric, realized, parts=("se_sampling", "se_calibration")):
    """Whether ``realized`` is inside the normal interval built from the named parts only."""
    se = np.sqrt(sum(np.nan_to_num(result[p][metric]) ** 2 for p in parts))
    return abs(result["estimated"][metric] - realized) <= Z * se


def test_binary_interval_covers_the_realized_accuracy_and_auc_and_needs_both_terms():
    rng = np.random.default_rng(20)
    reps, n_ref, n_cur = 200, 1000, 1000
    hits = {"full": 0, "auc": 0, "sampling_only": 0, "calibration_only": 0, "reported": 0}
    for i in range(reps):
        ref_probs, ref_y = _binary_sample(n_ref, rng)
        cur_probs, cur_y = _binary_sample(n_cur, rng, a=3.0, b=2.0)      # scores shifted up
        est, note = performance.fit_estimator("binary", ref_probs[:, 1], ref_y, ref_probs, seed=i, n_bootstrap=40)
        assert note is None
        r = est.estimate_with_interval(cur_probs[:, 1], cur_probs)
        real = performance.realized("binary", cur_probs[:, 1], cur_y)
        lo, hi = r["interval"]["accuracy"]
        hits["reported"] += lo <= real["accuracy"] <= hi
        hits["full"] += _covered(r, "accuracy", real["accuracy"])
        hits["sampling_only"] += _covered(r, "accuracy", real["accuracy"], ("se_sampling",))
        hits["calibration_only"] += _covered(r, "accuracy", real["accuracy"], ("se_calibration",))
        lo, hi = r["interval"]["auc"]
        hits["auc"] += lo <= real["auc"] <= hi
    coverage = {k: v / reps for k, v in hits.items()}
    print("binary coverage", coverage)
    assert coverage["reported"] >= 0.90 and coverage["full"] >= 0.90
    assert coverage["auc"] >= 0.90
    # at these sizes (calibration rows ~ current rows) each term alone is too narrow: the test
    # would catch dropping either
    assert coverage["sampling_only"] < 0.90
    assert coverage["calibration_only"] < 0.90


def _multiclass_sample(n, rng, shift=0.0):
    """Three classes; the model's softmax is sharper than the truth (temperature 0.6)."""
    logits = rng.normal(0, 1.5, (n, 3)) + np.array([shift, 0.0, -shift])
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    model = np.exp(logits / 0.6) / np.exp(logits / 0.6).sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    label = np.minimum((u > np.cumsum(truth, axis=1)).sum(axis=1), 2).astype(float)
    return model, label


def test_multiclass_interval_covers_accuracy_and_macro_f1():
    rng = np.random.default_rng(21)
    reps = 80
    hits = {"accuracy": 0, "macro_f1": 0}
    for i in range(reps):
        ref_probs, ref_y = _multiclass_sample(1000, rng)
        cur_probs, cur_y = _multiclass_sample(500, rng, shift=0.8)
        est, _ = performance.fit_estimator("multiclass", ref_probs.argmax(axis=1), ref_y, ref_probs, seed=i,
                                            n_bootstrap=40)
        r = est.estimate_with_interval(cur_probs.argmax(axis=1), cur_probs)
        real = performance.realized("multiclass", cur_probs.argmax(axis=1), cur_y)
        for m in hits:
            lo, hi = r["interval"][m]
            hits[m] += lo <= real[m] <= hi
    coverage = {k: v / reps for k, v in hits.items()}
    print("multi-class coverage", coverage)
    assert min(coverage.values()) >= 0.90


def test_regression_interval_covers_the_realized_mae():
    rng = np.random.default_rng(22)
    reps = 20           # each repetition fits DLE and its refits: kept small

    def sample(n, mu):
        x = rng.normal(mu, 1.0, n)
        pred = rng.normal(0, 1, n)
        label = pred + rng.normal(0, 0.5 + 0.5 * np.abs(x), n)      # errors grow with |x|
        return pred, label, {"x": x}

    hits = 0
    for i in range(reps):
        p, y, f = sample(600, 0.0)
        est, note = performance.fit_estimator("regression", p, y, None, f, seed=i, n_refits=5)
        assert note is None
        cp, cy, cf = sample(300, 0.7)
        r = est.estimate_with_interval(cp, None, cf)
        real = performance.realized("regression", cp, cy)["mae"]
        lo, hi = r["interval"]["mae"]
        hits += lo <= real <= hi
        assert r["se_sampling"]["mae"] > 0 and r["se_calibration"]["mae"] > 0
    print("regression MAE coverage", hits / reps)
    assert hits / reps >= 0.90


def test_interval_pieces_are_the_documented_formulas():
    p = np.array([0.9, 0.8, 0.6, 0.99])
    assert uncertainty.bernoulli_mean_variance(p) == pytest.approx(np.sum(p * (1 - p)) / 16)
    assert uncertainty.combined_se(3.0, 4.0) == pytest.approx(5.0)
    assert uncertainty.combined_se(3.0, float("nan")) == pytest.approx(3.0)
    assert uncertainty.normal_interval(0.95, 0.05, bounds=(0, 1)) == pytest.approx([0.95 - Z * 0.05, 1.0])
    rng = np.random.default_rng(0)
    pred, label = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    from sklearn.metrics import f1_score, roc_auc_score
    from scipy.stats import rankdata

    assert uncertainty.macro_f1(pred, label, 4) == pytest.approx(f1_score(label, pred, average="macro"))
    s = np.round(rng.random(500), 1)
    assert uncertainty.rank_auc(rankdata(s), label > 1) == pytest.approx(roc_auc_score(label > 1, s))
    q = rng.random(500)
    n = q.size
    assert performance._expected_auc(s, q) == pytest.approx(roc_auc_score(
        np.r_[np.ones(n), np.zeros(n)], np.r_[s, s], sample_weight=np.r_[q, 1 - q]))
