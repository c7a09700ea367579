"""Keys, artifact type and spec of PredictionMonitor."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.system_artifacts import Metrics

EXAMPLES_KEY = "examples"
MONITOR_KEY = "model_monitor"
REGISTRY_DIR_KEY = "registry_dir"
MAX_ROWS_KEY = "max_rows"
MODEL_SPEC_KEY = "model_spec_json"   # driftguard.components.model_io.ModelSpec: task, classes, output, label
METRIC_KEY = "metric"                # the performance metric the alert rules watch (components.tasks)
FEATURES_KEY = "features_json"       # the compared features (the regression estimator's inputs)
# drift.slices for performance per slice: {"slices": [[feature, ...]], "min_rows": int, "alpha": float}
SLICES_KEY = "slices_json"

MONITOR_JSON = "monitor.json"
PREDICTION_LOGS_DIR = "prediction_logs"


class ModelMonitorReport(types.Artifact):
    """JSON of the serving model's behaviour on one span, plus its PredictionLog records."""

    TYPE_NAME = "DriftguardModelMonitor"
    TYPE_ANNOTATION = Metrics


class PredictionMonitorSpec(types.ComponentSpec):
    PARAMETERS = {
        REGISTRY_DIR_KEY: ExecutionParameter(type=str),
        MAX_ROWS_KEY: ExecutionParameter(type=int),
        MODEL_SPEC_KEY: ExecutionParameter(type=str),
        METRIC_KEY: ExecutionParameter(type=str),
        FEATURES_KEY: ExecutionParameter(type=str, optional=True),
        SLICES_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {MONITOR_KEY: ChannelParameter(type=ModelMonitorReport)}
