"""PredictionMonitor executor: RunInference over the span in Beam, then ``metrics`` on a bounded sample.

Beam workers only run inference and keep a uniform sample of (raw row, prediction); the
user's label function runs afterwards, in this process, on the sample: no user code has to
be importable by Beam workers.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import re
from typing import Any, Dict, List

import apache_beam as beam
import numpy as np
import pyarrow as pa
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from driftguard.components import model_io, storage
from driftguard.components.examples_io import (SampleSpanFn, column_floats, examples_file_patterns, flatten_batch,
                                               read_sample, write_sample)
from driftguard.components.artifacts import example_spans
from driftguard.components.prediction_monitor import spec
from driftguard.components.prediction_monitor.slices import slice_performance
from driftguard.components.prediction_monitor.metrics import impact_report, performance_report, prediction_report
from driftguard.components.registry_pusher.labels import champion_version

VALUE_COLUMN = "__prediction__"
CONFIDENCE_COLUMN = "__confidence__"
PROBABILITY_COLUMN = "__probability_{}__"


def _log_outputs(log, model_spec: model_io.ModelSpec) -> model_io.Predictions:
    """One PredictionLog's response read per task (a log holds the examples of one request)."""
    import tensorflow as tf

    outputs = log.predict_log.response.outputs
    name = model_io.pick_output(outputs, model_spec)
    n = len(log.predict_log.request.inputs["examples"].string_val)
    return model_io.read_outputs(tf.make_ndarray(outputs[name]), n, model_spec, where=f"output {name!r}")


def _rows_of(logs, model_spec_json: str) -> pa.Table:
    """A batch of PredictionLogs -> Arrow table: the raw features of each example (from the
    request the log carries) and the prediction columns, for the bounded sample."""
    from tfx_bsl.coders import example_coder

    model_spec = model_io.ModelSpec.from_json(model_spec_json)
    predictions: List[model_io.Predictions] = []
    examples: List[bytes] = []
    for log in logs:
        predictions.append(_log_outputs(log, model_spec))
        examples.extend(log.predict_log.request.inputs["examples"].string_val)
    decoder = example_coder.ExamplesToRecordBatchDecoder()
    table = flatten_batch(decoder.DecodeBatch(examples))
    p = model_io.Predictions.concat(predictions, model_spec.task)
    table = table.append_column(VALUE_COLUMN, pa.array(p.value, pa.float64()))
    if p.confidence is not None:
        table = table.append_column(CONFIDENCE_COLUMN, pa.array(p.confidence, pa.float64()))
    if p.probabilities is not None and model_spec.task == "multiclass":
        for k in range(p.probabilities.shape[1]):
            table = table.append_column(PROBABILITY_COLUMN.format(k), pa.array(p.probabilities[:, k], pa.float64()))
    return table


def split_sample(table: pa.Table, model_spec: model_io.ModelSpec):
    """(raw rows, Predictions) of a sample written by :func:`_rows_of`."""
    value = column_floats(table.column(VALUE_COLUMN))
    conf = column_floats(table.column(CONFIDENCE_COLUMN)) if CONFIDENCE_COLUMN in table.column_names else None
    probs = None
    if model_spec.task == "binary":
        probs = np.stack([1.0 - value, value], axis=1)
    elif model_spec.task == "multiclass":
        probs = np.stack([column_floats(table.column(PROBABILITY_COLUMN.format(k)))
                          for k in range(len(model_spec.classes))], axis=1)
    ours = {VALUE_COLUMN, CONFIDENCE_COLUMN} | {PROBABILITY_COLUMN.format(k) for k in range(len(model_spec.classes))}
    raw = table.drop([c for c in table.column_names if c in ours])
    return raw, model_io.Predictions(model_spec.task, value, conf, probs)


def feature_columns(table: pa.Table, names) -> Dict[str, np.ndarray]:
    """The named columns as numpy (floats with NaN, or objects with None for text)."""
    out = {}
    for name in names:
        if name not in table.column_names:
            continue
        col = table.column(name)
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            out[name] = column_floats(col)
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            values = np.empty(len(col), dtype=object)
            values[:] = col.to_pylist()
            out[name] = values
    return out


def _config_error(error: BaseException) -> bool:
    """A ModelIOError anywhere in the chain (Beam re-raises worker errors wrapped)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, model_io.ModelIOError) or "ModelIOError" in str(error):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


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
        storage.refresh(registry)      # the mirror of an s3:// registry: up to date first
        read = example_spans(input_dict[spec.EXAMPLES_KEY])     # resolved when the ExampleGen ran
        span = read.span
        model_spec = model_io.ModelSpec.from_json(exec_properties[spec.MODEL_SPEC_KEY])
        metric = exec_properties[spec.METRIC_KEY]
        features = json.loads(exec_properties.get(spec.FEATURES_KEY) or "[]")
        # the serving version: the champion label's, else the newest (labels.py). Under a rollout
        # the challenger is not scored on the span (a report of it too is not built yet).
        version = champion_version(registry) if registry.is_dir() else None
        report: Dict[str, Any] = {"span": span, "span_label": read.label(span),
                                  "registry": str(registry), "task": model_spec.task,
                                  "classes": list(model_spec.classes)}
        if version is None:
            report.update(status="no_model", message=f"no model version in {registry} yet: nothing to monitor")
            report_artifact.set_int_custom_property("has_model", 0)
            self._finish(report_artifact, out, report, span)
            return
        model_dir = str(registry / str(version))
        baseline = model_io.load_baseline(registry, version, model_spec, score=True)
        report.update(model_version=version, model_spans=baseline.profile.get("spans"))
        report_artifact.set_int_custom_property("has_model", 1)
        report_artifact.set_int_custom_property("model_version", version)
        inference = model_spec_pb2.InferenceSpecType(saved_model_spec=model_spec_pb2.SavedModelSpec(
            model_path=model_dir, signature_name=[model_spec.signature]))
        sample_dir = str(out / "predictions_sample")
        try:
            self._infer(input_dict, exec_properties, inference, out, sample_dir, model_spec)
        except Exception as e:  # noqa: BLE001 -- an inference failure is the finding itself
            if _config_error(e):
                raise      # the model's output does not fit the config (task, classes, output)
            # A span the serving model cannot read (e.g. a number arriving as text) is what
            # monitoring must report, not crash on: the same input would fail in serving.
            message = _inference_error(e)
            logging.warning("span %d: model version %d cannot score it: %s", span, version, message)
            report.update(status="cannot_score", message=f"model version {version} cannot score span "
                                                         f"{report['span_label']}: {message}")
            report_artifact.set_int_custom_property("cannot_score", 1)
            self._finish(report_artifact, out, report, span)
            return
        sample, summary = read_sample(sample_dir)
        current_rows, current = split_sample(sample, model_spec)
        reference_rows = baseline.reference
        ref_label = model_io.labels_of(reference_rows, model_spec)
        cur_label = model_io.labels_of(current_rows, model_spec)
        report.update(status="monitored", rows_total=summary["rows"],
                      rows={"reference": int(reference_rows.num_rows), "current": int(current_rows.num_rows)},
                      **prediction_report(model_spec.task, model_spec.classes, baseline.predictions, current))
        report["performance"] = performance_report(
            model_spec.task, metric, baseline.predictions, ref_label, baseline.held_out, current, cur_label,
            ref_features=feature_columns(reference_rows, features), cur_features=feature_columns(current_rows, features))
        # ---- performance per slice (drift.slices), with labels on both sides
        slicing = json.loads(exec_properties.get(spec.SLICES_KEY) or "{}")
        if slicing.get("slices") and cur_label is not None and ref_label is not None:
            report["performance_slices"] = slice_performance(
                model_spec.task, metric, slicing["slices"], reference_rows=reference_rows,
                ref_value=baseline.predictions.value, ref_label=ref_label, held_out=baseline.held_out,
                current_rows=current_rows, cur_value=current.value, cur_label=cur_label,
                min_rows=int(slicing.get("min_rows", 200)), alpha=float(slicing.get("alpha", 0.01)))
        report["impact"] = impact_report(
            model_spec.task, metric, reference_rows, current_rows, baseline.predictions.value, ref_label,
            baseline.held_out, features, kinds={f: "categorical" for f in model_io.categorical_ints(baseline.schema)},
            rows_note=model_io.held_out_note(reference_rows))
        report_artifact.set_int_custom_property("cannot_score", 0)
        perf = report["performance"]
        for section in ("realized", "estimated", "baseline"):
            value = (perf.get(section) or {}).get(metric)
            if value is not None:
                report_artifact.set_float_custom_property(f"{section}_{metric}", float(value))
        self._finish(report_artifact, out, report, span)

    def _infer(self, input_dict, exec_properties, inference, out: pathlib.Path, sample_dir: str,
               model_spec: model_io.ModelSpec):
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
                         | "ToRows" >> beam.Map(_rows_of, model_spec.to_json())
                         | "Sample" >> beam.CombineGlobally(SampleSpanFn(int(exec_properties[spec.MAX_ROWS_KEY]))),
                         sample_dir)

    @staticmethod
    def _finish(report_artifact, out: pathlib.Path, report: Dict[str, Any], span: int) -> None:
        report_artifact.set_int_custom_property("span", span)
        (out / spec.MONITOR_JSON).write_text(json.dumps(report, indent=1, sort_keys=True))
        logging.info("span %d model monitor: %s %s", span, report.get("status"),
                     (report.get("performance") or {}).get("realized"))


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
