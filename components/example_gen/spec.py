"""Keys and spec of SpanExampleGen, imported by both the component and the executor."""
from tfx import types
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from driftguard.components.retrain_gate.spec import RetrainDecision

INPUT_BASE_KEY = standard_component_specs.INPUT_BASE_KEY          # "input_base": the data root
INPUT_CONFIG_KEY = standard_component_specs.INPUT_CONFIG_KEY      # the split patterns (placeholders kept)
OUTPUT_CONFIG_KEY = standard_component_specs.OUTPUT_CONFIG_KEY    # hash buckets (train/eval)
OUTPUT_DATA_FORMAT_KEY = standard_component_specs.OUTPUT_DATA_FORMAT_KEY
OUTPUT_FILE_FORMAT_KEY = standard_component_specs.OUTPUT_FILE_FORMAT_KEY
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
SPAN_PATTERN_KEY = "span_pattern"       # data.pattern: "span-{SPAN}/*", "{YYYY}-{MM}/*.parquet"
DATA_FORMAT_KEY = "data_format"         # csv | parquet | tfrecord
SPANS_KEY = "spans_json"                # explicit spans (JSON list); empty: resolved when it runs
WINDOW_SPANS_KEY = "window_spans"       # without explicit spans: the newest N spans the data holds
DECISION_KEY = "decision"               # optional: a RetrainGate decision; its window is read
SHUFFLE_KEY = "shuffle"                 # 1 (default): TFX's Reshuffle before writing; 0: rows in read order

# Custom properties of the Examples artifact (besides TFX's span, split_names, formats).
SPANS = "spans"                         # JSON list of the span numbers read, oldest first
SPAN_LABELS = "span_labels"             # JSON {number: label} of the spans read and the available ones
AVAILABLE_SPANS = "available_spans"     # JSON list: the spans the data held up to the newest read
INPUT_FINGERPRINT = "input_fingerprint"  # the files read: path, size, modification time


class SpanExampleGenSpec(types.ComponentSpec):
    """Parameters: where the spans are and how they are written (driftguard.yaml's ``data``),
    and which spans to read: ``spans_json`` (fixed), else the window of the ``decision`` input,
    else the newest ``window_spans`` spans found when the component runs."""

    PARAMETERS = {
        INPUT_BASE_KEY: ExecutionParameter(type=str),
        INPUT_CONFIG_KEY: ExecutionParameter(type=str),
        OUTPUT_CONFIG_KEY: ExecutionParameter(type=str),
        OUTPUT_DATA_FORMAT_KEY: ExecutionParameter(type=int),
        OUTPUT_FILE_FORMAT_KEY: ExecutionParameter(type=int),
        SPAN_PATTERN_KEY: ExecutionParameter(type=str),
        DATA_FORMAT_KEY: ExecutionParameter(type=str),
        SPANS_KEY: ExecutionParameter(type=str, optional=True),
        WINDOW_SPANS_KEY: ExecutionParameter(type=int),
        SHUFFLE_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        DECISION_KEY: ChannelParameter(type=RetrainDecision, optional=True),
    }
    OUTPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}
