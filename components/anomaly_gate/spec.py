"""Keys and spec of AnomalyGate, imported by both the component and the executor."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

ANOMALIES_KEY = "anomalies"
SCHEMA_KEY = "schema"
VALIDATED_SCHEMA_KEY = "validated_schema"
FAIL_ON_SEVERITY_KEY = "fail_on_severity"
SPAN_BY_NODE_KEY = "span_by_node_json"
SPAN_LABELS_KEY = "span_labels_json"


class AnomalyGateSpec(types.ComponentSpec):
    """Inputs: one ExampleAnomalies per span, and the schema they were validated against.

    Output: the same schema, published only when no anomaly reaches ``fail_on_severity``.
    Downstream Transform reads this output, so a failed gate stops Transform and Trainer
    by a real data dependency, on every orchestrator.
    """

    PARAMETERS = {
        FAIL_ON_SEVERITY_KEY: ExecutionParameter(type=str),
        # {"ExampleValidator_span3": 3, ...}: which span each validator node checked. TFX 1.16
        # loses the span between ExampleGen (custom property) and StatisticsGen (property 0),
        # so the span is recovered from the producing node, whose id is part of the URI.
        SPAN_BY_NODE_KEY: ExecutionParameter(type=str, optional=True),
        # {"516": "2013-01", ...}: how the project names each span (calendar spans), for messages.
        SPAN_LABELS_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
    }
    OUTPUTS = {VALIDATED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}
