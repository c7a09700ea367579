"""PredictionMonitor executor: RunInference over the span in Beam, then ``metrics.monitor_metrics``."""
from __future__ import annotations

import importlib
import json
import logging
import os
import pathlib
import re
from typing import Any, Dict, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from driftguard.components.examples_io import SampleSpanFn, column_floats, examples_file_patterns, read_sample, write_sample
from driftguard.components.prediction_monitor import spec
from driftguard.components.prediction_monitor.metrics import monitor_metrics
from driftguard.components.registry_pusher.registry import PROFILE_DIR, REFERENCE_SAMPLE_DIR, existing_versions, read_profile

OUTPUT_NAME = "probabilities"


def import_function(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import the label function {path!r}: {e}") from e


def _probability(log) -> float:
    outputs = log.predict_log.response.outputs
    tensor = outputs[OUTPUT_NAME] if OUTPUT_NAME in outputs else next(iter(outputs.values()))
    return float(tensor.float_val[0])


def _rows_of(logs, label_fn_path: str):
    """A batch of PredictionLogs -> Arrow table (probability, label) for the bounded sample."""
    from tfx_bsl.coders import example_coder

    from driftguard.components.examples_io import flatten_batch

    probs, examples = [], []
    for log in logs:
        probs.append(_probability(log))
        examples.append(log.predict_log.request.inputs["examples"].string_val[0])
    # labels come from the raw example carried in the log's request
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    table = flatten_batch(decoder.DecodeBatch(examples))
    labels = import_function(label_fn_path)(table)
    columns = {"probability": pa.array(probs, pa.float64())}
    columns["label"] = pa.array(labels if labels is not None else np.full(len(probs), np.nan), pa.float64())
    return pa.table(columns)


def table_to_examples(table: pa.Table):
    """Serialized tf.Examples from a flat table (nulls left out, as ExampleGen does)."""
    import tensorflow as tf

    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    kinds = {}
    for name in table.column_names:
        t = table.schema.field(name).type
        kinds[name] = "int" if pa.types.is_integer(t) else "float" if pa.types.is_floating(t) else \
            "bytes" if (pa.types.is_string(t) or pa.types.is_large_string(t)) else None
    out = []
    for i in range(table.num_rows):
        feature = {}
        for name, values in columns.items():
            v, kind = values[i], kinds[name]
            if v is None or kind is None:
                feature[name] = tf.train.Feature()
            elif kind == "int":
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
            elif kind == "float":
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
            else:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out


def predict_table(model_dir: str, table: pa.Table, batch_size: int = 1024) -> np.ndarray:
    """The serving signature on every row of ``table`` (in process: the bounded reference sample)."""
    import tensorflow as tf

    model = tf.saved_model.load(model_dir)
    fn = model.signatures["serving_default"]
    serialized = table_to_examples(table)
    out = []
    for start in range(0, len(serialized), batch_size):
        result = fn(examples=tf.constant(serialized[start:start + batch_size]))
        tensor = result[OUTPUT_NAME] if OUTPUT_NAME in result else next(iter(result.values()))
        out.append(tensor.numpy().reshape(-1))
    return np.concatenate(out) if out else np.zeros(0)


def baseline_accuracy(profile: Dict[str, Any]) -> Optional[float]:
    metrics = profile.get("eval_metrics", {}).get("candidate", {})
    return metrics.get("binary_accuracy")


def _inference_error(error: Exception) -> str:
    """The useful line of a TensorFlow/Beam inference error (they run to pages)."""
    text = str(error)
    m = re.search(r"(Key: \S+\.\s+Data types don't match[^\n\]\[]*)", text) or \
        re.search(r"((?:Invalid argument|InvalidArgumentError)[^\n]*)", text)
    line = m.group(1) if m else text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return line[:400]


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        from tfx_bsl.public.proto import model_spec_pb2

        report_artifact = artifact_utils.get_single_instance(output_dict[spec.MONITOR_KEY])
        out = pathlib.Path(report_artifact.uri)
        out.mkdir(parents=True, exist_ok=True)
        registry = pathlib.Path(exec_properties[spec.REGISTRY_DIR_KEY])
        span = int(exec_properties[spec.SPAN_KEY])
        label_fn = exec_properties[spec.LABEL_FN_KEY]
        import_function(label_fn)  # fail early, naming the path
        versions = existing_versions(registry) if registry.is_dir() else []
        report: Dict[str, Any] = {"span": span, "registry": str(registry)}
        if not versions:
            report.update(status="no_model", message=f"no model version in {registry} yet: nothing to monitor")
            report_artifact.set_int_custom_property("has_model", 0)
            self._finish(report_artifact, out, report, span)
            return
        version = versions[-1]
        model_dir = str(registry / str(version))
        profile = read_profile(registry, version)
        report.update(model_version=version, model_spans=profile.get("spans"))
        report_artifact.set_int_custom_property("has_model", 1)
        report_artifact.set_int_custom_property("model_version", version)
        inference = model_spec_pb2.InferenceSpecType(saved_model_spec=model_spec_pb2.SavedModelSpec(
            model_path=model_dir, signature_name=["serving_default"]))
        sample_dir = str(out / "predictions_sample")
        try:
            self._infer(input_dict, exec_properties, inference, out, sample_dir, label_fn)
        except Exception as e:  # noqa: BLE001 -- an inference failure is the finding itself
            # A span the serving model cannot read (e.g. a number arriving as text) is what
            # monitoring must report, not crash on: the same input would fail in serving.
            message = _inference_error(e)
            logging.warning("span %d: model version %d cannot score it: %s", span, version, message)
            report.update(status="cannot_score", message=f"model version {version} cannot score span {span}: {message}")
            report_artifact.set_int_custom_property("cannot_score", 1)
            self._finish(report_artifact, out, report, span)
            return
        current, summary = read_sample(sample_dir)
        reference, _ = read_sample(str(registry / str(version) / PROFILE_DIR / REFERENCE_SAMPLE_DIR))
        ref_prob = predict_table(model_dir, reference)
        ref_label = import_function(label_fn)(reference)
        cur_label = column_floats(current.column("label"))
        metrics = monitor_metrics(ref_prob, ref_label, column_floats(current.column("probability")),
                                  cur_label if np.isfinite(cur_label).any() else None, baseline_accuracy(profile))
        report.update(status="monitored", rows_total=summary["rows"], **metrics)
        report_artifact.set_int_custom_property("cannot_score", 0)
        for key in ("realized_accuracy", "estimated_accuracy", "baseline_accuracy"):
            if report.get(key) is not None:
                report_artifact.set_float_custom_property(key, float(report[key]))
        self._finish(report_artifact, out, report, span)

    def _infer(self, input_dict, exec_properties, inference, out: pathlib.Path, sample_dir: str, label_fn: str):
        from tensorflow_serving.apis import prediction_log_pb2
        from tfx_bsl.public.beam import RunInference

        with self._make_beam_pipeline() as pipeline:
            logs = (pipeline
                    | "Read" >> beam.io.ReadFromTFRecord(_first_pattern(input_dict))
                    | "Parse" >> beam.Map(_parse_example)
                    | "RunInference" >> RunInference(inference))
            _ = logs | "WriteLogs" >> beam.io.WriteToTFRecord(
                str(out / spec.PREDICTION_LOGS_DIR / "prediction_logs"),
                coder=beam.coders.ProtoCoder(prediction_log_pb2.PredictionLog), file_name_suffix=".gz")
            write_sample(logs
                         | "Batch" >> beam.BatchElements(min_batch_size=256, max_batch_size=4096)
                         | "ToRows" >> beam.Map(_rows_of, label_fn)
                         | "Sample" >> beam.CombineGlobally(SampleSpanFn(int(exec_properties[spec.MAX_ROWS_KEY]))),
                         sample_dir)

    @staticmethod
    def _finish(report_artifact, out: pathlib.Path, report: Dict[str, Any], span: int) -> None:
        report_artifact.set_int_custom_property("span", span)
        (out / spec.MONITOR_JSON).write_text(json.dumps(report, indent=1, sort_keys=True))
        logging.info("span %d model monitor: %s", span, {k: report.get(k) for k in (
            "status", "realized_accuracy", "estimated_accuracy", "baseline_accuracy")})


def _parse_example(serialized: bytes):
    import tensorflow as tf

    return tf.train.Example.FromString(serialized)


def _first_pattern(input_dict) -> str:
    patterns = examples_file_patterns(input_dict[spec.EXAMPLES_KEY])
    if len(patterns) == 1:
        return patterns[0]
    # ReadFromTFRecord takes one glob; the splits are sibling folders of one artifact
    uris = {os.path.dirname(os.path.dirname(p)) for p in patterns}
    if len(uris) != 1:
        raise ValueError(f"PredictionMonitor reads one Examples artifact, got {sorted(uris)}")
    return os.path.join(uris.pop(), "Split-*", "*")
