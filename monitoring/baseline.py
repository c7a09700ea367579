"""What live traffic of one model version is compared with: the reference sample stored with the
version's profile at push (``serving/<model>/<v>/profile/reference_sample``), the model's
predictions on it, its labels, the task's metrics on the held-out rows and the estimator of a
window's metrics fitted on them (CBPE, DLE)."""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from driftguard.monitoring.errors import MonitorError

log = logging.getLogger(__name__)

THRESHOLD = 0.5                  # a probability above it predicts the positive class


@dataclasses.dataclass
class Baseline:
    """What live traffic of one model version is compared with."""

    version: int
    task: str                            # binary | multiclass | regression (components.tasks)
    features: List[str]                  # compared features, in schema order
    kinds: Dict[str, str]                # feature -> float | int | string (how the logs carry it)
    reference: Dict[str, np.ndarray]     # feature -> float64 (NaN missing) or object (None missing)
    prediction: np.ndarray               # the model on the reference rows: probability, class index or value
    confidence_values: Optional[np.ndarray]   # top-class probability (classification), else None
    probabilities: Optional[np.ndarray]  # (n, K) class probabilities (classification)
    label: Optional[np.ndarray]          # their labels (NaN unknown), from model.label
    held_out: np.ndarray                 # rows of the eval split (the model did not train on them)
    metric: str                          # the metric the alert rules watch (alerts.rules.metric_drop.metric)
    baseline_metrics: Dict[str, float]   # the task's metrics on the held-out reference rows
    estimated_reference: Dict[str, float]
    not_compared: Dict[str, str]
    n_classes: int = 0
    # the estimate of a window's metrics, fitted once on the held-out reference rows (CBPE, DLE)
    estimator: Any = None
    feature_config: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def confidence(self) -> np.ndarray:
        if self.confidence_values is None:
            return np.zeros(0)
        c = self.confidence_values
        return c[np.isfinite(c)]

    @property
    def baseline_metric(self) -> Optional[float]:
        return self.baseline_metrics.get(self.metric)

    @functools.cached_property
    def prepared(self):
        """The features' reference, read once for every window (``detect_drift`` then redoes
        only the current side: ~10x faster per window)."""
        from driftguard.components.drift import prepare_reference

        return prepare_reference(self.reference)

    @functools.cached_property
    def prepared_outputs(self):
        """The reference of the prediction and confidence checks, likewise."""
        from driftguard.components.drift import prepare_reference

        return prepare_reference(self.output_columns(self.prediction, self.confidence_values))

    @property
    def output_config(self) -> Dict[str, Dict[str, Any]]:
        return {"prediction": {"kind": "categorical"}} if self.task == "multiclass" else {}

    def output_columns(self, prediction: np.ndarray, confidence: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
        """The model's outputs as drift columns: the prediction (a class name for a multi-class
        model, so the check counts classes), and the confidence of a classifier."""
        keep = np.isfinite(prediction)
        out: Dict[str, np.ndarray] = {}
        if self.task == "multiclass":
            names = np.empty(int(keep.sum()), dtype=object)
            names[:] = [str(int(c)) for c in prediction[keep]]
            out["prediction"] = names
        else:
            out["prediction"] = prediction[keep]
        if self.task == "binary":
            p = prediction[keep]
            out["confidence"] = np.maximum(p, 1.0 - p)
        elif self.task == "multiclass" and confidence is not None:
            out["confidence"] = confidence[keep]
        return out

    def errors(self, prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
        """The error stream of joined labels: 0/1 wrong for a classifier, the absolute error of
        a regression model (both in the units its CUSUM detector is designed on)."""
        if self.task == "regression":
            return np.abs(prediction - label)
        if self.task == "binary":
            return ((prediction > THRESHOLD) != (label > 0.5)).astype(float)
        return (prediction != label).astype(float)

    @property
    def reference_errors(self) -> Optional[np.ndarray]:
        """The error stream on the held-out reference rows (the detector's in-control design)."""
        if self.label is None:
            return None
        have = np.isfinite(self.label) & np.isfinite(self.prediction) & self.held_out
        if have.sum() < 2:
            return None
        return self.errors(self.prediction[have], self.label[have])


_BASELINES: Dict[Tuple[str, str], Baseline] = {}   # in-process: one baseline per model version and config

def load_baseline(cfg, version: int) -> Baseline:
    """The reference of ``version``: its profile's sample (model_io.load_baseline), the compared
    features (the schema's serving features, drift.include/exclude, categorical ints as
    categories), the model's predictions on the sample (stored with the profile at push, or
    scored now), the labels (model.label), the task's metrics on the held-out rows and the
    estimator of a window's metrics fitted on them."""
    import pyarrow as pa

    from driftguard.components import model_io
    from driftguard.components.examples_io import column_floats
    from driftguard.components.prediction_monitor import performance

    spec = cfg.model_spec()
    model_dir = cfg.model_registry / str(version)
    # the version too: two registry names may lead to one folder (a link), each with its own number
    settings = json.dumps(dataclasses.asdict(cfg.drift), sort_keys=True, default=str)
    memo_key = (f"{model_dir.resolve()} v{version}", spec.to_json() + settings + cfg.metric)
    if memo_key in _BASELINES:
        return _BASELINES[memo_key]
    try:
        b = model_io.load_baseline(cfg.model_registry, version, spec, score=True)
    except model_io.ModelIOError as e:
        raise MonitorError(f"model version {version}: {e}") from None
    table = b.reference
    exclude = set(cfg.drift.exclude)
    features, kinds, reference, not_compared = [], {}, {}, {}
    for name in model_io.compared_features(b.schema, cfg.drift.include, ()):
        if name in exclude:
            not_compared[name] = "excluded by configuration (drift.exclude)"
            continue
        if name not in table.column_names:
            not_compared[name] = "not in the reference sample"
            continue
        col = table.column(name)
        t = col.type
        if pa.types.is_floating(t):
            kind = "float"
        elif pa.types.is_integer(t):
            kind = "int"
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            kind = "string"
        else:
            not_compared[name] = "no value in the reference sample" if pa.types.is_null(t) else f"unsupported type {t}"
            continue
        features.append(name)
        kinds[name] = kind
        if kind == "string":
            values = np.empty(len(col), dtype=object)
            values[:] = col.to_pylist()
            reference[name] = values
        else:
            reference[name] = column_floats(col)
    if not features:
        raise MonitorError(f"model version {version}: no feature of the schema can be compared "
                           f"({not_compared})")
    p = b.predictions
    try:
        label = model_io.labels_of(table, spec)
    except model_io.ModelIOError as e:
        raise MonitorError(f"model version {version}: labels of the reference sample: {e}") from None
    held = b.held_out
    baseline_metrics: Dict[str, float] = {}
    estimated_reference: Dict[str, float] = {}
    estimator = None
    if label is not None:
        ho = p.take(held)
        baseline_metrics = performance.realized(cfg.task, ho.value, label[held])
        feats = {k: v[held] for k, v in reference.items()}
        estimator, note = performance.fit_estimator(cfg.task, ho.value, label[held], ho.probabilities, feats)
        if estimator is not None:
            estimated_reference = estimator.estimate(ho.value, ho.probabilities, feats)
        else:
            log.info("model version %d: %s", version, note)
    baseline = Baseline(version=version, task=cfg.task, features=features, kinds=kinds, reference=reference,
                        prediction=p.value, confidence_values=p.confidence, probabilities=p.probabilities,
                        label=label, held_out=held, metric=cfg.metric, baseline_metrics=baseline_metrics,
                        estimated_reference=estimated_reference, not_compared=not_compared,
                        n_classes=len(cfg.classes), estimator=estimator,
                        feature_config=model_io.feature_kinds(b.schema, cfg.drift.features, features))
    _BASELINES[memo_key] = baseline
    return baseline
