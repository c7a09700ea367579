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

Every estimator also gives each estimate's standard error and 95 % interval for the realized
value it predicts (:meth:`Estimator.estimate_with_interval`; the pieces in :mod:`.uncertainty`):
the current rows' sampling error (CBPE: Bernoulli variance of accuracy, seeded Monte Carlo for
AUC and macro-F1; DLE: the predicted per-row variance of the error) and the calibration's own
error (a seeded bootstrap of the held-out rows: ``CBPE_BOOTSTRAP`` refits of the calibrators,
``DLE_REFITS`` refits of the error models), added in variance. CBPE also estimates a binary
model's AUC: the expected AUC when row i is positive with its calibrated probability.

**Shift-aware** (:meth:`Estimator.reweighted`, as PAPE, Białek et al. 2024): the same estimator
refitted with each held-out row weighted by its density ratio p_current(x) / p_reference(x)
(isotonic ``sample_weight``; DLE's trees likewise), so the calibration is the one of the
current inputs' region when P(label | score) differs across the inputs.

No TensorFlow: arrays in, numbers out.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from driftguard.components import tasks as tasks_lib
from driftguard.components.prediction_monitor import uncertainty

MIN_CALIBRATION_ROWS = 50
MIN_DLE_ROWS = 200
MAX_DLE_ROWS = 20_000      # rows the error model is fitted on (a seeded subsample beyond that)
CBPE_BOOTSTRAP = 100       # refits of the calibrators on bootstrap samples (the calibration's error)
DLE_REFITS = 8             # refits of DLE's error models on bootstrap samples (each ~2 model fits)
DLE_REFIT_ROWS = 5_000     # rows per refit (an m-out-of-n bootstrap, its variance scaled by m/n)


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
    """One-vs-rest isotonic calibration of each class's score (CBPE); ``sample_weight``: one
    weight per calibration row (the shift-aware variant's density ratio)."""

    def __init__(self, probabilities: np.ndarray, label: np.ndarray, sample_weight: Optional[np.ndarray] = None):
        from sklearn.isotonic import IsotonicRegression

        self.k = probabilities.shape[1]
        self.models = []
        for c in range(self.k):
            y = (label == c).astype(float)
            self.models.append(IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
                               .fit(probabilities[:, c], y, sample_weight=sample_weight))

    def __call__(self, probabilities: np.ndarray) -> np.ndarray:
        return np.stack([m.predict(probabilities[:, c]) for c, m in enumerate(self.models)], axis=1)


def _expected_auc(score: np.ndarray, positive: np.ndarray) -> Optional[float]:
    """The expected ROC AUC when row i is positive with probability ``positive[i]``: each row
    counted once as a positive (weight p) and once as a negative (weight 1 - p), as
    ``roc_auc_score`` with those ``sample_weight`` computes it, from sorted cumulative sums
    (the bootstrap calls it a hundred times per estimate)."""
    pos = np.clip(positive, 0.0, 1.0)
    neg = 1.0 - pos
    total = float(pos.sum()) * float(neg.sum())
    if not total > 0:
        return None
    _, inverse = np.unique(score, return_inverse=True)
    neg_at = np.bincount(inverse, weights=neg)           # negative weight per distinct score
    below = np.cumsum(neg_at) - neg_at                   # negative weight strictly below it
    pos_at = np.bincount(inverse, weights=pos)
    return float(np.sum(pos_at * (below + 0.5 * neg_at)) / total)


def _expected_metrics(task: str, calibrated: np.ndarray, predicted: np.ndarray,
                      score: Optional[np.ndarray] = None) -> Dict[str, float]:
    n, k = calibrated.shape
    rows = np.arange(n)
    correct = calibrated[rows, predicted]
    out = {"accuracy": float(np.mean(correct))}
    if task == tasks_lib.BINARY and score is not None:
        auc = _expected_auc(score, calibrated[:, 1])
        if auc is not None:
            out["auc"] = auc
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


def _with_interval(task: str, point: Dict[str, float], sampling: Dict[str, float],
                   replicates: List[Dict[str, float]], confidence: float, **extra: Any) -> Dict[str, Any]:
    """The estimate with its standard errors and normal interval per metric."""
    out: Dict[str, Any] = {"estimated": dict(point), "se": {}, "se_sampling": {}, "se_calibration": {},
                           "interval": {}, "confidence": confidence, **extra}
    bounds = (0.0, math.inf) if task == tasks_lib.REGRESSION else (0.0, 1.0)
    for m, value in point.items():
        sd_a = sampling.get(m, float("nan"))
        sd_b = uncertainty.bootstrap_sd([r.get(m) for r in replicates])
        se = uncertainty.combined_se(sd_a, sd_b)
        out["se_sampling"][m], out["se_calibration"][m] = sd_a, sd_b
        out["se"][m] = se
        out["interval"][m] = uncertainty.normal_interval(value, se, confidence, bounds)
    return out


def _bootstrap_rows(n: int, weight: Optional[np.ndarray], rng: np.random.Generator):
    idx = rng.integers(0, n, n)
    return idx, (None if weight is None else weight[idx])


class Estimator:
    """A fitted estimator: ``estimate(...)`` gives the task's metrics for unlabelled rows,
    ``estimate_with_interval(...)`` the same with their standard errors and 95 % intervals,
    ``reweighted(weights)`` the shift-aware variant fitted on the same rows with weights.

    ``rows``: the indices of the rows given to :func:`fit_estimator` that it was fitted on."""

    method = ""
    rows: np.ndarray = np.zeros(0, dtype=int)
    sample_weight: Optional[np.ndarray] = None

    def estimate(self, value, probabilities=None, features: Optional[Mapping[str, np.ndarray]] = None
                 ) -> Dict[str, float]:
        raise NotImplementedError

    def estimate_with_interval(self, value, probabilities=None, features: Optional[Mapping[str, np.ndarray]] = None,
                               *, confidence: float = uncertainty.DEFAULT_CONFIDENCE) -> Dict[str, Any]:
        """``{"estimated": {metric: value}, "interval": {metric: [low, high]}, "se", "se_sampling",
        "se_calibration", "confidence", "rows"}``: the interval is for the realized value on these
        rows (their labels' sampling error and the calibration's own error, see
        :mod:`.uncertainty`)."""
        raise NotImplementedError

    def _refit(self, sample_weight: np.ndarray) -> "Estimator":
        raise NotImplementedError

    def reweighted(self, weights, max_weight: Optional[float] = None) -> Tuple["Estimator", Dict[str, Any]]:
        """``(estimator, info)``: the same estimator fitted on the same calibration rows weighted by
        ``weights`` (one per row given to :func:`fit_estimator`: the density ratio
        p_current(x) / p_reference(x)), normalised to mean 1 and clipped at ``max_weight`` times the
        mean (:func:`driftguard.components.impact.effect.normalised_weights`); ``info``: the effective
        sample size, the rows and the clipped rows."""
        from driftguard.components.impact.effect import DEFAULT_MAX_WEIGHT, effective_sample_size, normalised_weights

        w = np.asarray(weights, dtype=float)[self.rows]
        w, clipped = normalised_weights(w, DEFAULT_MAX_WEIGHT if max_weight is None else max_weight)
        est = self._refit(w)
        est.method = SHIFT_AWARE_PREFIX + self.method
        return est, {"effective_sample_size": effective_sample_size(w), "rows": int(w.size), "clipped_rows": clipped,
                     "max_weight": float(DEFAULT_MAX_WEIGHT if max_weight is None else max_weight)}


SHIFT_AWARE_PREFIX = "shift-aware (calibration rows weighted by the density ratio) "


class CBPE(Estimator):
    method = "CBPE (isotonic one-vs-rest calibration on held-out reference rows)"

    def __init__(self, task: str, probabilities: np.ndarray, label: np.ndarray,
                 sample_weight: Optional[np.ndarray] = None, *, seed: int = 0, n_bootstrap: int = CBPE_BOOTSTRAP):
        self.task = task
        self.probabilities, self.label = np.asarray(probabilities, float), np.asarray(label, float)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight, float)
        self.rows = np.arange(self.label.size)
        self.seed, self.n_bootstrap = seed, int(n_bootstrap)
        self.calibrate = _Calibrator(self.probabilities, self.label, self.sample_weight)
        self._replicates: Optional[List[_Calibrator]] = None

    def _refit(self, sample_weight: np.ndarray) -> "CBPE":
        est = CBPE(self.task, self.probabilities, self.label, sample_weight, seed=self.seed,
                   n_bootstrap=self.n_bootstrap)
        est.rows = self.rows
        return est

    @property
    def replicates(self) -> List[_Calibrator]:
        """The calibrators refitted on ``n_bootstrap`` seeded bootstrap samples of the calibration
        rows (their weights attached), fitted once on first use."""
        if self._replicates is None:
            rng = np.random.default_rng(self.seed)
            out = []
            for _ in range(self.n_bootstrap):
                idx, w = _bootstrap_rows(self.label.size, self.sample_weight, rng)
                out.append(_Calibrator(self.probabilities[idx], self.label[idx], w))
            self._replicates = out
        return self._replicates

    def _rows(self, probabilities):
        probs = np.asarray(probabilities, dtype=float)
        probs = probs[np.isfinite(probs).all(axis=1)]
        if self.task == tasks_lib.BINARY:
            predicted = (probs[:, 1] > 0.5).astype(int)
        else:
            predicted = np.argmax(probs, axis=1)
        return probs, predicted

    def _metrics(self, calibrate, probs, predicted) -> Dict[str, float]:
        return _expected_metrics(self.task, calibrate(probs), predicted,
                                 probs[:, 1] if self.task == tasks_lib.BINARY else None)

    def estimate(self, value, probabilities=None, features=None) -> Dict[str, float]:
        probs, predicted = self._rows(probabilities)
        if not probs.shape[0]:
            return {}
        return self._metrics(self.calibrate, probs, predicted)

    def estimate_with_interval(self, value, probabilities=None, features=None, *,
                               confidence: float = uncertainty.DEFAULT_CONFIDENCE) -> Dict[str, Any]:
        from scipy.stats import rankdata

        probs, predicted = self._rows(probabilities)
        n = probs.shape[0]
        if not n:
            return {"estimated": {}, "interval": {}, "se": {}, "confidence": confidence, "rows": 0}
        calibrated = self.calibrate(probs)
        point = _expected_metrics(self.task, calibrated, predicted, probs[:, 1] if self.task == tasks_lib.BINARY else None)
        correct = calibrated[np.arange(n), predicted]
        sampling = {"accuracy": math.sqrt(uncertainty.bernoulli_mean_variance(correct))}
        if "auc" in point:
            q = np.clip(calibrated[:, 1], 0.0, 1.0)
            ranks = rankdata(probs[:, 1])
            sampling["auc"] = uncertainty.monte_carlo_sd(lambda y: uncertainty.rank_auc(ranks, y == 1),
                                                         np.stack([1.0 - q, q], axis=1), seed=self.seed)
        if "macro_f1" in point:
            k = calibrated.shape[1]
            sampling["macro_f1"] = uncertainty.monte_carlo_sd(lambda y: uncertainty.macro_f1(predicted, y, k),
                                                              calibrated, seed=self.seed)
        replicates = [self._metrics(c, probs, predicted) for c in self.replicates]
        return _with_interval(self.task, point, sampling, replicates, confidence, rows=int(n))


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


def _error_models(x: np.ndarray, err: np.ndarray, weight: Optional[np.ndarray], categorical, seed: int):
    """(model of |e|, model of e^2): gradient-boosted trees with a squared-error loss, so each
    learns the conditional *mean* (of |e|, of e^2), whose average over the rows is the MAE (the
    MSE); an absolute-error loss would learn the median of |e|, ~15 % below its mean for normal
    errors."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    kwargs = dict(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=20,
                  categorical_features=categorical, random_state=seed)
    # one OpenMP thread, as the domain classifier (drift/classifier.py THREADS): on busy cores the
    # default threads' spinning made the fits many times slower
    with threadpool_limits(limits=1, user_api="openmp"):
        return (HistGradientBoostingRegressor(**kwargs).fit(x, np.abs(err), sample_weight=weight),
                HistGradientBoostingRegressor(**kwargs).fit(x, err ** 2, sample_weight=weight))


class DLE(Estimator):
    method = "DLE (gradient-boosted model of the absolute and squared error, fitted on held-out reference rows)"

    def __init__(self, prediction: np.ndarray, label: np.ndarray, features: Mapping[str, np.ndarray],
                 seed: int = 0, sample_weight: Optional[np.ndarray] = None, *, n_refits: int = DLE_REFITS):
        prediction, label = np.asarray(prediction, float), np.asarray(label, float)
        self.rows = np.arange(prediction.size)
        weight = None if sample_weight is None else np.asarray(sample_weight, float)
        if prediction.size > MAX_DLE_ROWS:
            keep = np.sort(np.random.default_rng(seed).choice(prediction.size, MAX_DLE_ROWS, replace=False))
            prediction, label, self.rows = prediction[keep], label[keep], self.rows[keep]
            features = {k: np.asarray(v)[keep] for k, v in features.items()}
            weight = None if weight is None else weight[keep]
        self.prediction, self.label, self.features = prediction, label, features
        self.sample_weight, self.seed, self.n_refits = weight, seed, int(n_refits)
        self.encode = _Encoder(features)
        self._x = self.encode(prediction, features)
        self._err = prediction - label
        self.abs_model, self.sq_model = _error_models(self._x, self._err, weight, self.encode.categorical, seed)
        self._replicates = None

    def _refit(self, sample_weight: np.ndarray) -> "DLE":
        # sample_weight is aligned with self.rows (the rows kept): no second subsample
        est = DLE.__new__(DLE)
        est.prediction, est.label, est.features, est.rows = self.prediction, self.label, self.features, self.rows
        est.sample_weight, est.seed, est.n_refits = sample_weight, self.seed, self.n_refits
        est.encode, est._x, est._err = self.encode, self._x, self._err
        est.abs_model, est.sq_model = _error_models(self._x, self._err, sample_weight, self.encode.categorical,
                                                    self.seed)
        est._replicates = None
        return est

    @property
    def replicates(self):
        """``(models, rows)``: the error models refitted on ``n_refits`` seeded bootstrap samples of
        at most ``DLE_REFIT_ROWS`` calibration rows (weights attached; an m-out-of-n bootstrap,
        whose variance :meth:`estimate_with_interval` scales by m/n), fitted once on first use."""
        if self._replicates is None:
            rng = np.random.default_rng(self.seed + 1)
            n = self._err.size
            m = min(n, DLE_REFIT_ROWS)
            models = []
            for i in range(self.n_refits):
                idx = rng.integers(0, n, m)
                w = None if self.sample_weight is None else self.sample_weight[idx]
                models.append(_error_models(self._x[idx], self._err[idx], w, self.encode.categorical,
                                            self.seed + 1 + i))
            self._replicates = (models, m)
        return self._replicates

    def _predict(self, models, x):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            return (np.clip(models[0].predict(x), 0.0, None), np.clip(models[1].predict(x), 0.0, None))

    def _x_of(self, value, features):
        value = np.asarray(value, dtype=float)
        keep = np.isfinite(value)
        feats = {k: np.asarray(v)[keep] for k, v in (features or {}).items()}
        return self.encode(value[keep], feats) if keep.any() else None

    def estimate(self, value, probabilities=None, features=None) -> Dict[str, float]:
        x = self._x_of(value, features)
        if x is None:
            return {}
        a, s = self._predict((self.abs_model, self.sq_model), x)
        return {"mae": float(np.mean(a)), "rmse": float(np.sqrt(np.mean(s)))}

    def estimate_with_interval(self, value, probabilities=None, features=None, *,
                               confidence: float = uncertainty.DEFAULT_CONFIDENCE) -> Dict[str, Any]:
        x = self._x_of(value, features)
        if x is None:
            return {"estimated": {}, "interval": {}, "se": {}, "confidence": confidence, "rows": 0}
        n = x.shape[0]
        a, s = self._predict((self.abs_model, self.sq_model), x)
        mae, mse = float(np.mean(a)), float(np.mean(s))
        rmse = math.sqrt(mse)
        # (a) sampling: Var|e_i| ~ E e^2 - (E|e|)^2; Var e_i^2 <= 2 (E e^2)^2 for a normal error (exact at mean 0)
        sd_mae = math.sqrt(float(np.sum(np.clip(s - a ** 2, 0.0, None))) / n ** 2)
        sd_mse = math.sqrt(float(np.sum(2.0 * s ** 2)) / n ** 2)
        sampling = {"mae": sd_mae, "rmse": sd_mse / (2.0 * rmse) if rmse > 0 else 0.0}
        # (b) calibration: refits on bootstrap samples of m rows; the variance scaled by m / n
        models, m = self.replicates
        scale = math.sqrt(m / self._err.size)
        reps = []
        for pair in models:
            ra, rs = self._predict(pair, x)
            reps.append({"mae": float(np.mean(ra)), "rmse": float(np.sqrt(np.mean(rs)))})
        point = {"mae": mae, "rmse": rmse}
        # shrink each replicate's deviation from the replicates' mean by sqrt(m / n)
        centre = {k: float(np.mean([r[k] for r in reps])) for k in point} if reps else {}
        reps = [{k: centre[k] + (r[k] - centre[k]) * scale for k in point} for r in reps]
        return _with_interval(tasks_lib.REGRESSION, point, sampling, reps, confidence, rows=int(n))


def fit_estimator(task: str, value, label, probabilities=None,
                  features: Optional[Mapping[str, np.ndarray]] = None, *, seed: int = 0,
                  n_bootstrap: int = CBPE_BOOTSTRAP, n_refits: int = DLE_REFITS):
    """``(estimator, note)``: an :class:`Estimator` fitted on labelled reference rows, or None
    with the reason (too few rows, one class only, no features). ``estimator.rows``: the
    indices of the given rows it was fitted on (what :meth:`Estimator.reweighted` weights);
    ``n_bootstrap``: CBPE's calibrator refits for the calibration's error, ``n_refits`` DLE's."""
    value = np.asarray(value, dtype=float)
    label = np.asarray(label, dtype=float)
    keep = _finite_pairs(value, label)
    if task == tasks_lib.REGRESSION:
        if keep.sum() < MIN_DLE_ROWS:
            return None, (f"no estimate: DLE needs at least {MIN_DLE_ROWS} labelled held-out reference rows "
                          f"to learn the model's errors, the profile has {int(keep.sum())}")
        feats = {k: np.asarray(v)[keep] for k, v in (features or {}).items()}
        est = DLE(value[keep], label[keep], feats, seed=seed, n_refits=n_refits)
        est.rows = np.flatnonzero(keep)[est.rows]
        return est, None
    probs = np.asarray(probabilities, dtype=float)
    keep &= np.isfinite(probs).all(axis=1)
    if keep.sum() < MIN_CALIBRATION_ROWS:
        return None, (f"no estimate: CBPE needs at least {MIN_CALIBRATION_ROWS} labelled held-out reference "
                      f"rows to calibrate the scores, the profile has {int(keep.sum())}")
    y = label[keep]
    if len(np.unique(y)) < 2:
        return None, "no estimate: the labelled reference rows hold a single class, nothing to calibrate"
    est = CBPE(task, probs[keep], y, seed=seed, n_bootstrap=n_bootstrap)
    est.rows = np.flatnonzero(keep)
    return est, None
