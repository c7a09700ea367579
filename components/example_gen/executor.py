"""SpanExampleGen executor: resolve the spans to read when it runs, then TFX's ExampleGen steps.

Which spans, in order of precedence:

1. ``spans_json``: the spans the pipeline was built for (``driftguard check --span 7``, a
   training window the CLI chose);
2. the ``decision`` input: the window a RetrainGate decided (the training branch of the
   Kubeflow pipeline, under a Cond on that decision);
3. otherwise the newest ``window_spans`` spans the data holds when the component runs (a
   scheduled Kubeflow run checks whatever span arrived last, with no recompile).

The rest is TFX's ``BaseExampleGenExecutor``: hash-splitting into train/eval (or the input
splits of ``data.splits``), writing gzip TFRecords, the split names and formats on the
artifact. The artifact also records what was read (``span``, and the custom properties
``spans``, ``span_labels``, ``available_spans``, ``input_fingerprint``), which the components
downstream read instead of a span fixed when the pipeline was compiled.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any, Dict, List, Sequence

import apache_beam as beam
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.utils import proto_utils

from driftguard.components.example_gen import readers, spec
from driftguard.components.spans import SpanPattern

_FILES = "_driftguard_files"        # exec property set here for the read transform: {split pattern: files}
_FORMAT = "_driftguard_format"
MAX_LABELS = 400                    # available spans (and labels) kept on the artifact: the newest


class SpanResolutionError(ValueError):
    """No span to read, or a span without files (the message names the data root and pattern)."""


def split_patterns(input_config_json: str) -> List[example_gen_pb2.Input.Split]:
    config = example_gen_pb2.Input()
    proto_utils.json_to_proto(input_config_json, config)
    return list(config.splits)


def available_spans(root: str, pattern: SpanPattern, splits: Sequence[example_gen_pb2.Input.Split]) -> List[int]:
    """The spans with files for every split pattern under ``root``."""
    found = None
    for split in splits:
        spans = set(pattern.available(root, split.pattern))
        found = spans if found is None else found & spans
    return sorted(found or ())


def resolve_spans(exec_properties: Dict[str, Any], decision_artifacts, available: Sequence[int]) -> List[int]:
    explicit = json.loads(exec_properties.get(spec.SPANS_KEY) or "[]")
    if explicit:
        return sorted(int(s) for s in explicit)
    if decision_artifacts:
        path = os.path.join(artifact_utils.get_single_uri(decision_artifacts), "decision.json")
        with open(path) as f:
            decision = json.load(f)["decision"]
        spans = [int(s) for s in decision.get("spans") or []]
        if not decision.get("retrain") or not spans:
            raise SpanResolutionError(f"{path}: the RetrainGate decided not to retrain ({decision.get('reason')}); "
                                      f"there is no training window to read")
        return sorted(spans)
    window = int(exec_properties.get(spec.WINDOW_SPANS_KEY) or 1)
    if not available:
        raise SpanResolutionError(f"no span under {exec_properties[spec.INPUT_BASE_KEY]} matches data.pattern "
                                  f"{exec_properties[spec.SPAN_PATTERN_KEY]!r}")
    return list(available[-window:])


def fingerprint(files: Sequence[str]) -> str:
    """What TFX's ExampleGen fingerprints too (names, sizes, modification times), hashed."""
    h = hashlib.sha256()
    for path in sorted(files):
        st = os.stat(path)
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
def _SpanFilesToExamples(pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str):  # noqa: N802
    files = exec_properties[_FILES][split_pattern]
    return pipeline | "Read" >> readers.files_to_examples(exec_properties[_FORMAT], files)


class Executor(BaseExampleGenExecutor):
    """SpanExampleGen: the examples of the resolved spans, split as TFX's ExampleGen splits them."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 (TFX's name)
        return _SpanFilesToExamples

    def _write_in_read_order(self, output_dict, exec_properties) -> None:
        """``BaseExampleGenExecutor.Do`` without the ``Reshuffle`` of TFX's ``WriteSplit``: a
        shuffle is a GroupByKey, which the DirectRunner holds in memory whole (the span), and
        nothing downstream of a span check depends on the order of its rows. The same splits,
        file names, gzip TFRecords and artifact properties as TFX's."""
        from tfx.components.example_gen import utils, write_split
        from tfx.types import standard_component_specs as specs
        from tfx.components.util import examples_utils

        input_config, output_config = example_gen_pb2.Input(), example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[specs.INPUT_CONFIG_KEY], input_config)
        proto_utils.json_to_proto(exec_properties[specs.OUTPUT_CONFIG_KEY], output_config)
        artifacts = output_dict[specs.EXAMPLES_KEY]
        artifact_utils.get_single_instance(artifacts).split_names = artifact_utils.encode_split_names(
            utils.generate_output_split_names(input_config, output_config))
        with self._make_beam_pipeline() as pipeline:
            for name, records in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                path = os.path.join(artifact_utils.get_split_uri(artifacts, name), write_split.DEFAULT_FILE_NAME)
                _ = (records
                     | f"Serialize[{name}]" >> beam.ParDo(write_split.MaybeSerialize())
                     | f"Write[{name}]" >> beam.io.WriteToTFRecord(path, file_name_suffix=".gz"))
        for artifact in artifacts:
            examples_utils.set_payload_format(artifact, exec_properties[specs.OUTPUT_DATA_FORMAT_KEY])
            examples_utils.set_file_format(
                artifact, write_split.to_file_format_str(exec_properties[specs.OUTPUT_FILE_FORMAT_KEY]))

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        root = exec_properties[spec.INPUT_BASE_KEY]
        pattern = SpanPattern(exec_properties[spec.SPAN_PATTERN_KEY])
        splits = split_patterns(exec_properties[spec.INPUT_CONFIG_KEY])
        available = available_spans(root, pattern, splits) if os.path.isdir(root) else []
        spans = resolve_spans(exec_properties, input_dict.get(spec.DECISION_KEY), available)
        files: Dict[str, List[str]] = {}
        for split in splits:
            chosen = []
            for span in spans:
                found = [str(p) for p in pattern.files(root, span, split.pattern) if p.is_file()]
                if not found:
                    raise SpanResolutionError(f"span {pattern.label(span)}: no file matches "
                                              f"{os.path.join(root, pattern.glob(span, split.pattern))}")
                if exec_properties[spec.DATA_FORMAT_KEY] == "csv":   # a span is one table; a window may differ
                    readers.check_span_headers(found, f"span {pattern.label(span)}")
                chosen += found
            files[split.pattern] = chosen
        upto = [s for s in available if s <= spans[-1]][-MAX_LABELS:]      # what a window may take
        labels = {str(s): pattern.label(s) for s in sorted(set(upto) | set(spans))}
        logging.info("SpanExampleGen: span(s) %s from %s (%d file(s))", ", ".join(labels[str(s)] for s in spans),
                     root, sum(len(v) for v in files.values()))
        properties = dict(exec_properties)
        properties[_FILES] = files
        properties[_FORMAT] = exec_properties[spec.DATA_FORMAT_KEY]
        shuffle = exec_properties.get(spec.SHUFFLE_KEY)
        if shuffle is None or int(shuffle):
            super().Do(input_dict, output_dict, properties)
        else:
            self._write_in_read_order(output_dict, properties)

        examples = artifact_utils.get_single_instance(output_dict[spec.EXAMPLES_KEY])
        examples.span = int(spans[-1])
        examples.set_string_custom_property(spec.SPANS, json.dumps(spans))
        examples.set_string_custom_property(spec.SPAN_LABELS, json.dumps(labels, sort_keys=True))
        examples.set_string_custom_property(spec.AVAILABLE_SPANS, json.dumps(upto))
        examples.set_string_custom_property(spec.INPUT_FINGERPRINT,
                                            fingerprint([f for v in files.values() for f in v]))
