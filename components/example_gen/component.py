"""SpanExampleGen component: wiring only (the executor resolves the spans when it runs)."""
import json
from typing import Dict, Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from driftguard.components.example_gen import executor
from driftguard.components.example_gen.spec import SpanExampleGenSpec

DEFAULT_BUCKETS = {"train": 2, "eval": 1}


class SpanExampleGen(base_component.BaseComponent):
    """The examples of one span or a window of spans, in one Examples artifact.

    ``spans``: read these; else the window of ``decision`` (a RetrainGate's output); else the
    newest ``window_spans`` spans the data holds when it runs. ``pattern``: driftguard.yaml's
    ``data.pattern``; ``splits``: ``data.splits`` (input already split: {name: pattern}); else
    the rows are hash-split by ``buckets`` ({"train": 2, "eval": 1}). ``shuffle``: shuffle the
    rows before writing them, as TFX's ExampleGen does (what a Trainer reading the files in order
    wants); off, the rows are written in the order read, with no step holding the whole span
    (the span check, which only aggregates).
    """

    SPEC_CLASS = SpanExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, *, data_root: str, pattern: str, data_format: str,
                 splits: Optional[Dict[str, str]] = None, buckets: Optional[Dict[str, int]] = None,
                 spans: Optional[Sequence[int]] = None, window_spans: int = 1,
                 decision: Optional[types.BaseChannel] = None, shuffle: bool = True):
        input_config = example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=name, pattern=p)
            for name, p in (sorted(splits.items()) if splits else [("single_split", pattern)])])
        output_config = example_gen_pb2.Output()
        if not splits:
            output_config.split_config.CopyFrom(example_gen_pb2.SplitConfig(splits=[
                example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=int(n))
                for name, n in (buckets or DEFAULT_BUCKETS).items()]))
        super().__init__(spec=SpanExampleGenSpec(
            input_base=str(data_root),
            input_config=proto_utils.proto_to_json(input_config),
            output_config=proto_utils.proto_to_json(output_config),
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            span_pattern=pattern,
            data_format=data_format,
            spans_json=json.dumps([int(s) for s in spans]) if spans else "",
            window_spans=int(window_spans),
            shuffle=int(bool(shuffle)),
            decision=decision,
            examples=types.Channel(type=standard_artifacts.Examples),
        ))
