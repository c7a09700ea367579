"""PredictionMonitor component: wiring only."""
import json
from typing import Any, Dict, Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec

from driftguard.components.prediction_monitor import executor
from driftguard.components.prediction_monitor.spec import ModelMonitorReport, PredictionMonitorSpec


class PredictionMonitor(base_beam_component.BaseBeamComponent):
    """Runs the serving model (newest registry version) on a span and reports on its predictions.

    Inference is the serving signature on 4096-row batches, in Beam (``executor.score_examples``);
    the predictions are kept as ``PredictionLog`` TFRecords, the format TF Serving's request
    logging writes (one log per batch). The
    model is found on disk next to its profile, like the DriftDetector's baseline. What the
    output means (a probability, class probabilities, a value) and where the label is come
    from ``model_spec`` (``driftguard.components.model_io.ModelSpec``). ``slices``
    (``drift.slices``, with ``min_rows`` and ``alpha``): the realized metric per slice too
    (``slices.py``), when the span has labels.
    """

    SPEC_CLASS = PredictionMonitorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, registry_dir: str, model_spec,
                 metric: str, features: Sequence[str] = (), max_rows: int = 100_000,
                 slices: Optional[Dict[str, Any]] = None):
        super().__init__(spec=PredictionMonitorSpec(
            examples=examples, registry_dir=str(registry_dir), max_rows=int(max_rows),
            model_spec_json=model_spec.to_json(), metric=metric,
            features_json=json.dumps(list(features)), slices_json=json.dumps(slices or {}, sort_keys=True),
            model_monitor=types.Channel(type=ModelMonitorReport)))
