"""Keys, artifact type and spec of RetrainGate."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.system_artifacts import Metrics

from driftguard.components.drift_detector.spec import DriftReport
from driftguard.components.prediction_monitor.spec import ModelMonitorReport

DRIFT_REPORT_KEY = "drift_report"
MONITOR_KEY = "model_monitor"
DECISION_KEY = "decision"
REGISTRY_DIR_KEY = "registry_dir"
MODEL_NAME_KEY = "model_name"
ALERTS_CONFIG_KEY = "alerts_config_json"   # the config's alerts section: env var NAMES, never secrets
POLICY_KEY = "retrain_policy_json"
WINDOW_SPANS_KEY = "window_spans"
TASK_KEY = "task"                 # binary | multiclass | regression: which metrics the alert rules may watch
EXAMPLES_KEY = "examples"         # the checked span's examples: which span, which spans the data holds

DECISION_JSON = "decision.json"
RETRAIN = "retrain"  # int custom property: 1 train now, 0 not (for tfx.dsl.Cond / KFP / Airflow)


class RetrainDecision(types.Artifact):
    """The gate's decision and the span's alerts (decision.json)."""

    TYPE_NAME = "DriftguardRetrainDecision"
    TYPE_ANNOTATION = Metrics


class RetrainGateSpec(types.ComponentSpec):
    PARAMETERS = {
        REGISTRY_DIR_KEY: ExecutionParameter(type=str),
        MODEL_NAME_KEY: ExecutionParameter(type=str),
        ALERTS_CONFIG_KEY: ExecutionParameter(type=str),
        POLICY_KEY: ExecutionParameter(type=str),
        WINDOW_SPANS_KEY: ExecutionParameter(type=int),
        TASK_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        DRIFT_REPORT_KEY: ChannelParameter(type=DriftReport),
        MONITOR_KEY: ChannelParameter(type=ModelMonitorReport, optional=True),
    }
    OUTPUTS = {DECISION_KEY: ChannelParameter(type=RetrainDecision)}
