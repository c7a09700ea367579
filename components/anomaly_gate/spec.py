"""Keys and spec of AnomalyGate, imported by both the component and the executor."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

ANOMALIES_KEY = "anomalies"
SCHEMA_KEY = "schema"
VALIDATED_SCHEMA_KEY = "validated_schema"
FAIL_ON_SEVERITY_KEY = "fail_on_severity"
EXAMPLES_KEY = "examples"       # optional: the validated examples, whose spans name the anomalies


class AnomalyGateSpec(types.ComponentSpec):
    """Inputs: the ExampleAnomalies of the training window, the schema they were validated
    against, and (optional) the examples, whose spans the messages name.

    Output: the same schema, published only when no anomaly reaches ``fail_on_severity``.
    Downstream Transform reads this output, so a failed gate stops Transform and Trainer
    by a real data dependency, on every orchestrator.
    """

    PARAMETERS = {
        FAIL_ON_SEVERITY_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }
    OUTPUTS = {VALIDATED_SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema)}
