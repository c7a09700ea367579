"""Keys, artifact type and spec of PredictionMonitor."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.system_artifacts import Metrics

EXAMPLES_KEY = "examples"
MONITOR_KEY = "model_monitor"
REGISTRY_DIR_KEY = "registry_dir"
SPAN_KEY = "span"
MAX_ROWS_KEY = "max_rows"
LABEL_FN_KEY = "label_fn"

MONITOR_JSON = "monitor.json"
PREDICTION_LOGS_DIR = "prediction_logs"


class ModelMonitorReport(types.Artifact):
    """JSON of the serving model's behaviour on one span, plus its PredictionLog records."""

    TYPE_NAME = "DriftguardModelMonitor"
    TYPE_ANNOTATION = Metrics


class PredictionMonitorSpec(types.ComponentSpec):
    PARAMETERS = {
        REGISTRY_DIR_KEY: ExecutionParameter(type=str),
        SPAN_KEY: ExecutionParameter(type=int),
        MAX_ROWS_KEY: ExecutionParameter(type=int),
        # import path of f(pyarrow.Table) -> labels (0/1 floats, NaN unknown) or None
        LABEL_FN_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
    OUTPUTS = {MONITOR_KEY: ChannelParameter(type=ModelMonitorReport)}
