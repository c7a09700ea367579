"""PredictionMonitor executor: the serving signature over the span in Beam (batched), then ``metrics`` on a bounded sample.

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

from driftguard.components import artifact_dirs
from driftguard.components import model_io
from driftguard.components.registry_pusher import remote
from driftguard.components.examples_io import (SampleSpanFn, column_floats, decode_batch, examples_file_patterns,
                                               read_record_batches, read_sample, write_sample)
from driftguard.components.artifacts import example_spans
from driftguard.components.prediction_monitor import spec
from driftguard.components.prediction_monitor.slices import slice_performance
from driftguard.components.prediction_monitor.metrics import (impact_report, performance_report, prediction_report,
                                                               span_shift)
from driftguard.components.registry_pusher.labels import champion_version

VALUE_COLUMN = "__prediction__"
CONFIDENCE_COLUMN = "__confidence__"
PROBABILITY_COLUMN = "__probability_{}__"
INFERENCE_BATCH_ROWS = 4096      # rows per call of the signature: the taxi model scores ~380k rows/s at 4096


def sample_rows(records: List[bytes], predictions: model_io.Predictions, model_spec: model_io.ModelSpec) -> pa.Table:
    """Serialized tf.Examples and their predictions -> Arrow table: the raw features of each
    example and the prediction columns, for the bounded sample."""
    table = decode_batch(records).append_column(VALUE_COLUMN, pa.array(predictions.value, pa.float64()))
    if predictions.confidence is not None:
        table = table.append_column(CONFIDENCE_COLUMN, pa.array(predictions.confidence, pa.float64()))
    if predictions.probabilities is not None and model_spec.task == "multiclass":
        for k in range(predictions.probabilities.shape[1]):
            table = table.append_column(PROBABILITY_COLUMN.format(k),
                                        pa.array(predictions.probabilities[:, k], pa.float64()))
    return table


class PredictBatchFn(beam.DoFn):
    """Batches of serialized tf.Examples -> (sample rows, tagged ``logs``: a PredictionLog per batch).

    Hand-written instead of tfx-bsl's RunInference: that builds one PredictionLog per example
    with a ``make_tensor_proto`` per output (~20 s per 100k rows on the taxi model, where the
    signature itself takes 0.3 s on 4096-row batches), and the sample then had to decode every
    log back. Here each batch is one call of the signature (``model_io.Predictor``, which also
    serves the reference predictions), decoded once for the sample.
    """

    LOGS = "logs"

    def __init__(self, model_dir: str, model_spec_json: str):
        self._model_dir, self._spec_json = model_dir, model_spec_json
        self._predictor = None

    def setup(self):
        model_spec = model_io.ModelSpec.from_json(self._spec_json)
        self._predictor = model_io.Predictor(self._model_dir, model_spec)

    def process(self, records: List[bytes]):
        predictor = self._predictor
        outputs = predictor.outputs(records)
        predictions = model_io.read_outputs(outputs[predictor.output_name], len(records), predictor.spec,
                                            where=f"output {predictor.output_name!r}")
        log = model_io.predict_log(records, outputs, input_name=predictor.input_name,
                                   signature=predictor.spec.signature)
        yield beam.pvalue.TaggedOutput(self.LOGS, log.SerializeToString())
        yield sample_rows(records, predictions, predictor.spec)


def split_sample(table: pa.Table, model_spec: model_io.ModelSpec):
    """(raw rows, Predictions) of a sample written by :func:`sample_rows`."""
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
    graph = re.search(r"Graph execution error:(.*)", text, re.S)
    if graph and not re.search(r"Key: \S+\.\s+Data types don't match", text):
        # a tf.function's error (the signature called eagerly): the message follows the
        # "Detected at node ... defined at" traceback
        for line in graph.group(1).splitlines():
            if line.strip() and not line.startswith((" ", "Detected at node", "<stack traces")):
                return line.strip()[:400]
    m = re.search(r"(Key: \S+\.\s+Data types don't match[^\n\]\[]*)", text) or \
        re.search(r"((?:Invalid argument|InvalidArgumentError)[^\n]*)", text)
    line = m.group(1) if m else text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return line[:400]


def score_examples(pipeline: beam.Pipeline, pattern: str, model_dir: str, model_spec: model_io.ModelSpec,
                   logs_prefix: str, sample_dir: str, max_rows: int, batch_rows: int = INFERENCE_BATCH_ROWS) -> None:
    """Score every gzipped tf.Example record of ``pattern`` with the SavedModel in ``model_dir``:
    PredictionLog TFRecords under ``logs_prefix`` (``-*.gz``), and a uniform sample of at most
    ``max_rows`` (raw row, prediction) rows in ``sample_dir`` (``examples_io.write_sample``).
    Nothing holds more than one batch and the sample: memory does not grow with the span."""
    scored = (read_record_batches(pipeline, [pattern], batch_rows)
              | "Predict" >> beam.ParDo(PredictBatchFn(model_dir, model_spec.to_json())).with_outputs(
                  PredictBatchFn.LOGS, main="rows"))
    _ = scored[PredictBatchFn.LOGS] | "WriteLogs" >> beam.io.WriteToTFRecord(logs_prefix, file_name_suffix=".gz")
    write_sample(scored.rows | "Sample" >> beam.CombineGlobally(SampleSpanFn(max_rows)), sample_dir)


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        # outputs on object storage are written locally, then copied (artifact_dirs)
        with artifact_dirs.written_locally(output_dict[spec.MONITOR_KEY]):
            self._do(input_dict, output_dict, exec_properties)

    def _do(self, input_dict, output_dict, exec_properties) -> None:
        report_artifact = artifact_utils.get_single_instance(output_dict[spec.MONITOR_KEY])
        out = pathlib.Path(report_artifact.uri)
        out.mkdir(parents=True, exist_ok=True)
        registry = pathlib.Path(exec_properties[spec.REGISTRY_DIR_KEY])
        remote.refresh(registry)      # the mirror of an s3:// registry: up to date first
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
        sample_dir = str(out / "predictions_sample")
        try:
            self._infer(input_dict, exec_properties, model_dir, out, sample_dir, model_spec)
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
        kinds = {f: "categorical" for f in model_io.categorical_ints(baseline.schema)}
        # the domain classifier of reference vs span, fitted once: its density ratio weights the
        # shift-aware estimate's calibration rows and the impact report's labelled rows
        shift, shift_note = span_shift(reference_rows, current_rows, features, kinds) if ref_label is not None \
            else (None, "no estimate: the reference sample has no labels")
        report["performance"] = performance_report(
            model_spec.task, metric, baseline.predictions, ref_label, baseline.held_out, current, cur_label,
            ref_features=feature_columns(reference_rows, features), cur_features=feature_columns(current_rows, features),
            ref_ratio=shift["ratio"] if shift else None, ratio_note=shift_note)
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
            baseline.held_out, features, kinds=kinds, rows_note=model_io.held_out_note(reference_rows),
            shift=shift, shift_note=shift_note)
        report_artifact.set_int_custom_property("cannot_score", 0)
        perf = report["performance"]
        for section in ("realized", "estimated", "baseline", "estimated_shift_aware"):
            value = (perf.get(section) or {}).get(metric)
            if value is not None:
                report_artifact.set_float_custom_property(f"{section}_{metric}", float(value))
        for side, i in (("low", 0), ("high", 1)):
            pair = (perf.get("estimated_interval") or {}).get(metric)
            if pair and pair[i] is not None:
                report_artifact.set_float_custom_property(f"estimated_{metric}_{side}", float(pair[i]))
        self._finish(report_artifact, out, report, span)

    def _infer(self, input_dict, exec_properties, model_dir: str, out: pathlib.Path, sample_dir: str,
               model_spec: model_io.ModelSpec):
        with self._make_beam_pipeline() as pipeline:
            score_examples(pipeline, _first_pattern(input_dict), model_dir, model_spec,
                           str(out / spec.PREDICTION_LOGS_DIR / "prediction_logs"), sample_dir,
                           int(exec_properties[spec.MAX_ROWS_KEY]))

    @staticmethod
    def _finish(report_artifact, out: pathlib.Path, report: Dict[str, Any], span: int) -> None:
        report_artifact.set_int_custom_property("span", span)
        (out / spec.MONITOR_JSON).write_text(json.dumps(report, indent=1, sort_keys=True))
        logging.info("span %d model monitor: %s %s", span, report.get("status"),
                     (report.get("performance") or {}).get("realized"))


def _first_pattern(input_dict) -> str:
    patterns = examples_file_patterns(input_dict[spec.EXAMPLES_KEY])
    if len(patterns) == 1:
        return patterns[0]
    # ReadFromTFRecord takes one glob; the splits are sibling folders of one artifact
    uris = {os.path.dirname(os.path.dirname(p)) for p in patterns}
    if len(uris) != 1:
        raise ValueError(f"PredictionMonitor reads one Examples artifact, got {sorted(uris)}")
    return os.path.join(uris.pop(), "Split-*", "*")
