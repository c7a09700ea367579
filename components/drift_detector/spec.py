"""Keys, artifact type and spec of DriftDetector, imported by both the component and the executor."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.system_artifacts import Metrics

EXAMPLES_KEY = "examples"
ANOMALIES_KEY = "anomalies"
DRIFT_REPORT_KEY = "drift_report"
REGISTRY_DIR_KEY = "registry_dir"
ALPHA_KEY = "alpha"
MAX_ROWS_KEY = "max_rows"
EXCLUDE_KEY = "exclude_json"
INCLUDE_KEY = "include_json"          # only these features (empty: every serving feature of the schema)
FEATURE_CONFIG_KEY = "feature_config_json"
# drift.reference: {"settings": {strategy, spans, period}, "data": {root, pattern, format, patterns}}
# (empty: the serving model's training window); resolved against the data when the check runs
REFERENCE_KEY = "reference_json"
# drift.slices: {"slices": [[feature, ...], ...], "min_rows": int, "alpha_share": float} (empty: none)
SLICES_KEY = "slices_json"

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"

# Custom properties of the DriftReport artifact (ints, so tfx.dsl.Cond and KFP can test them).
DRIFT_DETECTED = "drift_detected"      # 1 drift, 0 none (also 0 when there is no baseline)
HAS_BASELINE = "has_baseline"          # 1 compared with a baseline, 0 none yet
BASELINE_VERSION = "baseline_version"  # registry version compared with, 0 when none
N_DRIFTED = "n_drifted_features"
N_ANOMALIES = "n_anomalies"          # schema anomalies of the span (ExampleValidator)


class DriftReport(types.Artifact):
    """JSON + HTML drift report of one span against the serving model's profile."""

    TYPE_NAME = "DriftguardDriftReport"
    TYPE_ANNOTATION = Metrics


class DriftDetectorSpec(types.ComponentSpec):
    PARAMETERS = {
        REGISTRY_DIR_KEY: ExecutionParameter(type=str),
        ALPHA_KEY: ExecutionParameter(type=float),
        MAX_ROWS_KEY: ExecutionParameter(type=int),
        EXCLUDE_KEY: ExecutionParameter(type=str, optional=True),
        INCLUDE_KEY: ExecutionParameter(type=str, optional=True),
        FEATURE_CONFIG_KEY: ExecutionParameter(type=str, optional=True),
        REFERENCE_KEY: ExecutionParameter(type=str, optional=True),
        SLICES_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        # optional: the span's schema anomalies, carried into the report so one page says it all
        ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies, optional=True),
    }
    OUTPUTS = {DRIFT_REPORT_KEY: ChannelParameter(type=DriftReport)}
