"""A model's performance per task: realized with labels, estimated without them.

Realized (:func:`realized`), from predictions and labels:

- binary: accuracy (threshold 0.5) and ROC AUC;
- multi-class: accuracy and macro-F1 (the unweighted mean of the per-class F1 scores);
- regression: MAE and RMSE.

Estimated without labels (:func:`fit_estimator`), fitted on labelled *held-out* reference rows
(the eval split of the training window: rows the model did not train on, where it is not
overconfident) and applied to rows whose labels have not arrived:

- **CBPE** for classification (confidence-based performance estimation, the method of NannyML):
  each class's score is calibrated one-vs-rest on the reference with isotonic regression
  (:class:`sklearn.isotonic.IsotonicRegression`), so a calibrated score is P(class | score).
  The expected confusion matrix of the current rows follows: for class k, expected true
  positives are the calibrated P(k) of the rows predicted k, false positives their 1 - P(k),
  false negatives the P(k) of rows predicted otherwise. Accuracy and macro-F1 are read from
  it. Valid while P(label | score) holds (covariate shift); blind to concept drift, which only
  labels show.
- **DLE** for regression (direct loss estimation, as NannyML's DLE): a gradient-boosted model
  (:class:`sklearn.ensemble.HistGradientBoostingRegressor`) of the absolute error (and of the
  squared error) from the prediction and the features, fitted on the reference; the estimated
  MAE is the mean predicted absolute error of the current rows, the RMSE the root of the mean
  predicted squared error. With fewer than ``MIN_DLE_ROWS`` labelled held-out rows there is no
  estimate: the report says so instead of showing a number.

No TensorFlow: arrays in, numbers out.
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np

from driftguard.components import tasks as tasks_lib

MIN_CALIBRATION_ROWS = 50
MIN_DLE_ROWS = 200
MAX_DLE_ROWS = 20_000      # rows the error model is fitted on (a seeded subsample beyond that)


def _finite_pairs(value: np.ndarray, label: np.ndarray):
    keep = np.isfinite(value) & np.isfinite(label)
    return keep


def realized(task: str, value, label, weights=None) -> Dict[str, Optional[float]]:
    """The task's metrics on rows with a label (``value``: the prediction as
    :class:`~driftguard.components.model_io.Predictions` reads it). ``{}`` without labels.

    ``weights``: one non-negative weight per row (default: all 1), e.g. importance weights that
    make the reference rows stand for another distribution (:mod:`driftguard.components.impact.effect`);
    every metric is then its weighted version (sklearn's ``sample_weight`` for AUC and F1)."""
    value = np.asarray(value, dtype=float)
    label = np.asarray(label, dtype=float)
    keep = _finite_pairs(value, label)
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        if w.shape != value.shape:
            raise ValueError(f"weights: {w.size} values for {value.size} rows")
        keep &= np.isfinite(w) & (w >= 0)
    if not keep.any() or (w is not None and not w[keep].sum() > 0):
        return {}
    v, y = value[keep], label[keep]
    if w is not None:
        w = w[keep]
    if task == tasks_lib.REGRESSION:
        err = v - y
        return {"mae": float(np.average(np.abs(err), weights=w)),
                "rmse": float(np.sqrt(np.average(err ** 2, weights=w)))}
    if task == tasks_lib.BINARY:
        from sklearn.metrics import roc_auc_score

        acc = float(np.average((v > 0.5) == (y > 0.5), weights=w))
        pos = y > 0.5
        has_both = (pos.any() and (~pos).any()) if w is None else (w[pos].sum() > 0 and w[~pos].sum() > 0)
        auc = float(roc_auc_score(y, v, sample_weight=w)) if has_both else None
        return {"accuracy": acc, "auc": auc}
    from sklearn.metrics import f1_score

    # macro-F1 over the classes present (as label or prediction), sklearn's default: a class
    # absent from a small span or slice would otherwise count as F1 = 0 at perfect accuracy.
    return {"accuracy": float(np.average(v == y, weights=w)),
            "macro_f1": float(f1_score(y.astype(int), v.astype(int), average="macro", zero_division=0,
                                       sample_weight=w))}


class _Calibrator:
    """One-vs-rest isotonic calibration of each class's score (CBPE)."""

    def __init__(self, probabilities: np.ndarray, label: np.ndarray):
        from sklearn.isotonic import IsotonicRegression

        self.k = probabilities.shape[1]
        self.models = []
        for c in range(self.k):
            y = (label == c).astype(float)
            self.models.append(IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                               .fit(probabilities[:, c], y))

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        return np.stack([m.predict(probabilities[:, c]) for c, m in enumerate(self.models)], axis=1)


def _expected_metrics(task: str, calibrated: np.ndarray, predicted: np.ndarray) -> Dict[str, float]:
    n, k = calibrated.shape
    rows = np.arange(n)
    correct = calibrated[rows, predicted]
    out = {"accuracy": float(np.mean(correct))}
    if task == tasks_lib.MULTICLASS:
        f1 = []
        for c in range(k):
            is_c = predicted == c
            # like the realized macro-F1: only classes present, i.e. predicted at least once or
            # expected in at least half a row
            if not is_c.any() and float(np.sum(calibrated[:, c])) < 0.5:
                continue
            tp = float(np.sum(calibrated[is_c, c]))
            fp = float(np.sum(1.0 - calibrated[is_c, c]))
            fn = float(np.sum(calibrated[~is_c, c]))
            f1.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else 0.0)
        out["macro_f1"] = float(np.mean(f1)) if f1 else float("nan")
    return out


class Estimator:
    """A fitted estimator: ``estimate(...)`` gives the task's metrics for unlabelled rows."""

    method = ""

    def estimate(self, value, probabilities=None, features: Optional[Mapping[str, np.ndarray]] = None
                 ) -> Dict[str, float]:
        raise NotImplementedError


class CBPE(Estimator):
    method = "CBPE (isotonic one-vs-rest calibration on held-out reference rows)"

    def __init__(self, task: str, probabilities: np.ndarray, label: np.ndarray):
        self.task = task
        self.calibrate = _Calibrator(probabilities, label)

    def estimate(self, value, probabilities=None, features=None) -> Dict[str, float]:
        probs = np.asarray(probabilities, dtype=float)
        keep = np.isfinite(probs).all(axis=1)
        if not keep.any():
            return {}
        probs = probs[keep]
        calibrated = self.calibrate(probs)
        if self.task == tasks_lib.BINARY:
            predicted = (probs[:, 1] > 0.5).astype(int)
        else:
            predicted = np.argmax(probs, axis=1)
        return _expected_metrics(self.task, calibrated, predicted)


class _Encoder:
    """Features as a numeric matrix for the DLE model: numbers as they are (NaN missing),
    categories as codes of the reference's values (unseen and missing: -1)."""

    def __init__(self, features: Mapping[str, np.ndarray]):
        self.names = sorted(features)
        self.codes: Dict[str, Dict[object, int]] = {}
        for name in self.names:
            col = np.asarray(features[name])
            if col.dtype.kind not in "fiub":
                values = [v for v in dict.fromkeys(col.tolist()) if v is not None]
                self.codes[name] = {v: i for i, v in enumerate(values[:254])}

    def __call__(self, prediction: np.ndarray, features: Mapping[str, np.ndarray]) -> np.ndarray:
        columns = [np.asarray(prediction, dtype=float)]
        for name in self.names:
            col = features.get(name)
            if col is None:
                columns.append(np.full(prediction.size, np.nan))
                continue
            col = np.asarray(col)
            if name in self.codes:
                mapping = self.codes[name]
                columns.append(np.array([mapping.get(v, -1) for v in col.tolist()], dtype=float))
            else:
                columns.append(col.astype(float))
        return np.stack(columns, axis=1)

    @property
    def categorical(self) -> np.ndarray:
        return np.array([False] + [n in self.codes for n in self.names])


class DLE(Estimator):
    method = "DLE (gradient-boosted model of the absolute and squared error, fitted on held-out reference rows)"

    def __init__(self, prediction: np.ndarray, label: np.ndarray, features: Mapping[str, np.ndarray],
                 seed: int = 0):
        from sklearn.ensemble import HistGradientBoostingRegressor

        prediction, label = np.asarray(prediction, float), np.asarray(label, float)
        if prediction.size > MAX_DLE_ROWS:
            keep = np.sort(np.random.default_rng(seed).choice(prediction.size, MAX_DLE_ROWS, replace=False))
            prediction, label = prediction[keep], label[keep]
            features = {k: np.asarray(v)[keep] for k, v in features.items()}
        self.encode = _Encoder(features)
        x = self.encode(prediction, features)
        err = prediction - label
        kwargs = dict(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20,
                      categorical_features=self.encode.categorical, random_state=seed)
        # squared-error loss: the model learns the conditional *mean* of |e| (and of e^2), whose
        # average over the rows is the MAE (the MSE); an absolute-error loss would learn the
        # median of |e|, ~15 % below its mean for normal errors
        self.abs_model = HistGradientBoostingRegressor(**kwargs).fit(x, np.abs(err))
        self.sq_model = HistGradientBoostingRegressor(**kwargs).fit(x, err ** 2)

    def estimate(self, value, probabilities=None, features=None) -> Dict[str, float]:
        value = np.asarray(value, dtype=float)
        keep = np.isfinite(value)
        if not keep.any():
            return {}
        feats = {k: np.asarray(v)[keep] for k, v in (features or {}).items()}
        x = self.encode(value[keep], feats)
        mae = float(np.mean(np.clip(self.abs_model.predict(x), 0.0, None)))
        mse = float(np.mean(np.clip(self.sq_model.predict(x), 0.0, None)))
        return {"mae": mae, "rmse": float(np.sqrt(mse))}


def fit_estimator(task: str, value, label, probabilities=None,
                  features: Optional[Mapping[str, np.ndarray]] = None):
    """``(estimator, note)``: an :class:`Estimator` fitted on labelled reference rows, or None
    with the reason (too few rows, one class only, no features)."""
    value = np.asarray(value, dtype=float)
    label = np.asarray(label, dtype=float)
    keep = _finite_pairs(value, label)
    if task == tasks_lib.REGRESSION:
        if keep.sum() < MIN_DLE_ROWS:
            return None, (f"no estimate: DLE needs at least {MIN_DLE_ROWS} labelled held-out reference rows "
                          f"to learn the model's errors, the profile has {int(keep.sum())}")
        feats = {k: np.asarray(v)[keep] for k, v in (features or {}).items()}
        return DLE(value[keep], label[keep], feats), None
    probs = np.asarray(probabilities, dtype=float)
    keep &= np.isfinite(probs).all(axis=1)
    if keep.sum() < MIN_CALIBRATION_ROWS:
        return None, (f"no estimate: CBPE needs at least {MIN_CALIBRATION_ROWS} labelled held-out reference "
                      f"rows to calibrate the scores, the profile has {int(keep.sum())}")
    y = label[keep]
    if len(np.unique(y)) < 2:
        return None, "no estimate: the labelled reference rows hold a single class, nothing to calibrate"
    return CBPE(task, probs[keep], y), None
