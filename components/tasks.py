"""What a model's task means to driftguard: binary, multi-class or regression.

One place for everything that depends on the task and not on the model:

- the performance metrics driftguard computes itself from predictions and labels (realized
  when labels arrive, estimated without them), with their direction;
- the TFMA metrics it knows (by class name, as in an ``EvalConfig``), the tasks each fits and
  whether higher is better, so a config asking for AUC on a regression fails before any work;
- the TFMA metrics the Evaluator computes when the config names none.

Pure Python: imported while a config is validated, long before TensorFlow.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping, Optional, Tuple

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)

# driftguard's own metrics per task (components.prediction_monitor.performance): name -> higher is better
METRICS: Dict[str, Dict[str, bool]] = {
    BINARY: {"accuracy": True, "auc": True},
    MULTICLASS: {"accuracy": True, "macro_f1": True},
    REGRESSION: {"mae": False, "rmse": False},
}
# the metric the `metric_drop` alert rule watches unless the config names another
DEFAULT_METRIC = {BINARY: "accuracy", MULTICLASS: "accuracy", REGRESSION: "mae"}
METRIC_TITLES = {"accuracy": "accuracy", "auc": "AUC", "macro_f1": "macro-F1", "mae": "MAE", "rmse": "RMSE"}


class TfmaMetric:
    """A TFMA metric class driftguard knows: the name TFMA reports it under, the tasks it fits,
    and its direction (None: a count or a plot, which takes no change threshold)."""

    def __init__(self, name: str, tasks: Tuple[str, ...], higher_is_better: Optional[bool]):
        self.name, self.tasks, self.higher_is_better = name, tasks, higher_is_better


_ANY = TASKS
_CLS = (BINARY, MULTICLASS)
TFMA_METRICS: Dict[str, TfmaMetric] = {
    "ExampleCount": TfmaMetric("example_count", _ANY, None),
    "WeightedExampleCount": TfmaMetric("weighted_example_count", _ANY, None),
    "MeanLabel": TfmaMetric("mean_label", _ANY, None),
    "MeanPrediction": TfmaMetric("mean_prediction", _ANY, None),
    "Calibration": TfmaMetric("calibration", (BINARY, REGRESSION), None),
    "AUC": TfmaMetric("auc", (BINARY,), True),
    "AUCPrecisionRecall": TfmaMetric("auc_precision_recall", (BINARY,), True),
    "BinaryAccuracy": TfmaMetric("binary_accuracy", (BINARY,), True),
    "Precision": TfmaMetric("precision", (BINARY,), True),
    "Recall": TfmaMetric("recall", (BINARY,), True),
    "BinaryCrossentropy": TfmaMetric("binary_crossentropy", (BINARY,), False),
    "SparseCategoricalAccuracy": TfmaMetric("sparse_categorical_accuracy", (MULTICLASS,), True),
    "SparseCategoricalCrossentropy": TfmaMetric("sparse_categorical_crossentropy", (MULTICLASS,), False),
    "SparseTopKCategoricalAccuracy": TfmaMetric("sparse_top_k_categorical_accuracy", (MULTICLASS,), True),
    "MeanAbsoluteError": TfmaMetric("mean_absolute_error", (REGRESSION,), False),
    "MeanSquaredError": TfmaMetric("mean_squared_error", (REGRESSION,), False),
    "RootMeanSquaredError": TfmaMetric("root_mean_squared_error", (REGRESSION,), False),
    "MeanAbsolutePercentageError": TfmaMetric("mean_absolute_percentage_error", (REGRESSION,), False),
    "MeanSquaredLogarithmicError": TfmaMetric("mean_squared_logarithmic_error", (REGRESSION,), False),
}

# evaluation.metrics when the config gives none: the gate blesses a candidate that is not worse
# than the serving model beyond a small tolerance (and, for a first model, better than chance).
DEFAULT_EVAL_METRICS: Dict[str, Dict[str, Dict[str, float]]] = {
    BINARY: {"AUC": {"min": 0.5, "baseline_tolerance": 0.01}, "BinaryAccuracy": {}, "ExampleCount": {}},
    # min 0: a first model is blessed as it is (a multi-class task has no chance level that
    # fits every class balance); configure a real floor for your model
    MULTICLASS: {"SparseCategoricalAccuracy": {"min": 0.0, "baseline_tolerance": 0.01}, "ExampleCount": {}},
    # no default: what MAE is acceptable depends on the unit of the label (evaluation.metrics must
    # give a max, or validation says so)
    REGRESSION: {"MeanAbsoluteError": {"baseline_relative_tolerance": 0.02}, "RootMeanSquaredError": {},
                 "ExampleCount": {}},
}

THRESHOLD_KEYS = ("min", "max", "baseline_tolerance", "baseline_relative_tolerance", "higher_is_better")


def tfma_name(class_name: str) -> str:
    """The name TFMA reports a metric class under: known ones from the table, others in
    snake case (TFMA's and Keras's convention: ``MeanAbsoluteError`` -> ``mean_absolute_error``)."""
    known = TFMA_METRICS.get(class_name)
    if known is not None:
        return known.name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()


def check_eval_metric(task: str, class_name: str, settings: Mapping, where: str) -> None:
    """Raise ValueError (message prefixed by ``where``) when a metric does not fit the task or
    its thresholds cannot apply to it."""
    known = TFMA_METRICS.get(class_name)
    if known is not None and task not in known.tasks:
        fitting = sorted(n for n, m in TFMA_METRICS.items() if task in m.tasks and m.higher_is_better is not None)
        raise ValueError(f"{where}: {class_name} is a metric for {' or '.join(known.tasks)} models; "
                         f"task is {task} (metrics that fit: {', '.join(fitting)})")
    for key in settings:
        if key not in THRESHOLD_KEYS:
            raise ValueError(f"{where}.{key}: unknown key; allowed: {', '.join(THRESHOLD_KEYS)}")
    for key in ("min", "max", "baseline_tolerance", "baseline_relative_tolerance"):
        value = settings.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{where}.{key} must be a number, got {value!r}")
    for key in ("baseline_tolerance", "baseline_relative_tolerance"):
        if settings.get(key) is not None and settings[key] < 0:
            raise ValueError(f"{where}.{key} must be >= 0 (how much worse than the blessed baseline the "
                             f"candidate may be), got {settings[key]!r}")
    if "higher_is_better" in settings and not isinstance(settings["higher_is_better"], bool):
        raise ValueError(f"{where}.higher_is_better must be true or false")
    wants_change = any(settings.get(k) is not None for k in ("baseline_tolerance", "baseline_relative_tolerance"))
    if wants_change and direction(class_name, settings) is None:
        raise ValueError(f"{where}: a baseline tolerance needs a direction; {class_name} is "
                         + ("a count or a plot" if known is not None else "not a metric driftguard knows")
                         + ": set higher_is_better: true or false")
    if settings.get("min") is not None and settings.get("max") is not None and settings["min"] > settings["max"]:
        raise ValueError(f"{where}: min {settings['min']} is above max {settings['max']}")


def direction(class_name: str, settings: Mapping) -> Optional[bool]:
    """True when higher is better, False when lower is, None when unknown."""
    if settings.get("higher_is_better") is not None:
        return bool(settings["higher_is_better"])
    known = TFMA_METRICS.get(class_name)
    return None if known is None else known.higher_is_better


def check_metric(task: str, metric: str, where: str) -> None:
    if metric not in METRICS[task]:
        raise ValueError(f"{where}: {metric!r} is not a {task} metric driftguard computes "
                         f"(one of: {', '.join(METRICS[task])})")


def worse_by(task: str, metric: str, value: float, baseline: float) -> float:
    """How much worse ``value`` is than ``baseline``, relative to the baseline (> 0: worse)."""
    higher = METRICS[task][metric]
    if baseline == 0:
        return 0.0 if value == baseline else float("inf")
    change = (value - baseline) / abs(baseline)
    return -change if higher else change
