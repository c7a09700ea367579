"""DriftDetector executor: Beam pass over the span, then ``compare.compare_span`` against the profile."""
from __future__ import annotations

import json
import logging
import os
import pathlib
from typing import Any, Dict

from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from driftguard.components import artifact_dirs
from driftguard.components.registry_pusher import remote
from driftguard.components.artifacts import example_spans
from driftguard.components.drift_detector import spec
from driftguard.components.drift_detector.compare import compare_span, no_baseline_report
from driftguard.components.drift_detector.html import write_html
from driftguard.components.drift.slices import DEFAULT_MIN_ROWS
from driftguard.components.drift_detector.reference import (TRAINING, ReferenceSettings, available_spans,
                                                            resolve_reference, span_files)
from driftguard.components.examples_io import (examples_file_patterns, read_sample, sample_examples,
                                               sample_span_files, write_sample)
from driftguard.components.impact.weighted import importance_weighted_drift
from driftguard.components.model_io import compared_features, feature_kinds, load_baseline
from driftguard.components.registry_pusher.labels import champion_version


def skew_anomalies(reference, current, schema) -> Dict[str, Any]:
    """TFDV's training/serving skew comparators of the schema, on the same two samples."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    type_name = anomalies_pb2.AnomalyInfo.Type.Name

    from driftguard.components.model_io import SPLIT_COLUMN

    def frame(table):
        return table.drop([SPLIT_COLUMN]).to_pandas() if SPLIT_COLUMN in table.column_names else table.to_pandas()

    ref_df, cur_df = frame(reference), frame(current)
    ref_stats = tfdv.generate_statistics_from_dataframe(ref_df)
    cur_stats = tfdv.generate_statistics_from_dataframe(cur_df)
    anomalies = tfdv.validate_statistics(ref_stats, schema, environment="SERVING", serving_statistics=cur_stats)
    skew = {}
    for name, info in anomalies.anomaly_info.items():
        reasons = [r for r in info.reason if "SKEW" in type_name(r.type) or "COMPARATOR" in type_name(r.type)]
        if reasons:
            skew[name] = [{"type": type_name(r.type), "description": r.description} for r in reasons]
    return skew


def choose_reference(reference_json: str, span: int):
    """``(ReferenceChoice, data layout)`` of the check of ``span``: ``drift.reference``'s strategy
    resolved against the spans the data holds now (``reference.resolve_reference``)."""
    from driftguard.components.spans import SpanPattern

    config = json.loads(reference_json or "{}")
    settings = ReferenceSettings.from_dict(config.get("settings"))
    layout = dict(config.get("data") or {})
    if settings.strategy == TRAINING:
        return resolve_reference(settings, span, [], "span"), layout
    pattern = SpanPattern(layout["pattern"])
    available = available_spans(layout["root"], layout["pattern"], layout.get("patterns") or [])
    choice = resolve_reference(settings, span, available, pattern.unit, label=pattern.label)
    if choice.fallback:
        logging.warning("span %s: %s", pattern.label(span), choice.message)
    else:
        logging.info("span %s: reference %s", pattern.label(span), choice.message)
    return choice, layout


def reference_record(choice, layout, profile, version) -> Dict[str, Any]:
    """The report's ``reference``: the strategy, what was used, its spans as people write them."""
    from driftguard.components.spans import SpanPattern

    label = SpanPattern(layout["pattern"]).label if layout.get("pattern") else str
    record = choice.to_dict(label)
    if choice.used == TRAINING:
        record["spans"] = list(profile.get("spans") or [])
        record["span_labels"] = list(profile.get("span_labels") or map(str, record["spans"]))
        record["version"] = version
    return record


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        # outputs on object storage are written locally, then copied (artifact_dirs)
        with artifact_dirs.written_locally(output_dict[spec.DRIFT_REPORT_KEY]):
            self._do(input_dict, output_dict, exec_properties)

    def _do(self, input_dict, output_dict, exec_properties) -> None:
        report_artifact = artifact_utils.get_single_instance(output_dict[spec.DRIFT_REPORT_KEY])
        registry = pathlib.Path(exec_properties[spec.REGISTRY_DIR_KEY])
        remote.refresh(registry)      # the mirror of an s3:// registry: up to date first
        read = example_spans(input_dict[spec.EXAMPLES_KEY])     # resolved when the ExampleGen ran
        span = read.span
        # an object-storage registry is read through its local mirror: the report names the bucket
        context: Dict[str, Any] = {"span": span, "span_label": read.label(span),
                                   "registry": remote.mirror_source(registry) or str(registry)}
        # the baseline is the serving version: the champion label's, else the newest (labels.py).
        # Under a rollout the challenger is not compared with the span (not built yet).
        version = champion_version(registry) if registry.is_dir() else None
        out = pathlib.Path(report_artifact.uri)
        out.mkdir(parents=True, exist_ok=True)

        if version is None:
            report = no_baseline_report(str(registry), context)
            report_artifact.set_int_custom_property(spec.HAS_BASELINE, 0)
            report_artifact.set_int_custom_property(spec.BASELINE_VERSION, 0)
        else:
            baseline = load_baseline(registry, version)
            profile, schema, reference = baseline.profile, baseline.schema, baseline.reference
            context.update({"baseline_version": version, "baseline_spans": profile.get("spans"),
                            "baseline_span_labels": profile.get("span_labels"),
                            "schema_version": profile.get("schema_version"),
                            "model_name": registry.name})
            examples = input_dict[spec.EXAMPLES_KEY]
            sample_dir = str(out / "current_sample")
            max_rows = int(exec_properties[spec.MAX_ROWS_KEY])
            choice, layout = choose_reference(exec_properties.get(spec.REFERENCE_KEY), span)
            reference_dir = str(out / "reference_sample")
            with self._make_beam_pipeline() as pipeline:
                write_sample(sample_examples(pipeline, examples_file_patterns(examples), max_rows), sample_dir)
                if choice.spans:
                    files = span_files(layout["root"], layout["pattern"], layout.get("patterns") or [],
                                       choice.spans)
                    write_sample(sample_span_files(pipeline, layout["format"], files, max_rows, "SampleReference"),
                                 reference_dir, label="WriteReferenceSample")
            current, current_summary = read_sample(sample_dir)
            if current_summary["rows"] == 0:
                raise ValueError(f"span {read.label(span)} has no rows ({', '.join(a.uri for a in examples)})")
            reference_summary = baseline.summary
            if choice.spans:
                reference, reference_summary = read_sample(reference_dir)
                if reference_summary["rows"] == 0:
                    raise ValueError(f"reference span(s) {', '.join(map(str, choice.spans))} have no rows "
                                     f"({layout['root']}, {layout['pattern']!r})")
            include = json.loads(exec_properties.get(spec.INCLUDE_KEY) or "[]")
            exclude = json.loads(exec_properties.get(spec.EXCLUDE_KEY) or "[]")
            features = compared_features(schema, include=include)
            overrides = json.loads(exec_properties.get(spec.FEATURE_CONFIG_KEY) or "{}")
            slicing = json.loads(exec_properties.get(spec.SLICES_KEY) or "{}")
            report = compare_span(
                reference, current, features, current_summary=current_summary,
                reference_summary=reference_summary, exclude=exclude,
                feature_config=feature_kinds(schema, overrides, [f for f in features if f not in set(exclude)]),
                alpha=float(exec_properties[spec.ALPHA_KEY]), context=context,
                slices=slicing.get("slices") or (), min_slice_rows=int(slicing.get("min_rows", DEFAULT_MIN_ROWS)),
                slice_alpha_share=float(slicing.get("alpha_share", 0.5)))
            report["reference"] = reference_record(choice, layout, profile, version)
            report["skew"] = skew_anomalies(reference, current, schema)
            # drift weighted by the version's permutation importance (none for older versions)
            report["importance"] = importance_weighted_drift(report.get("features", {}), baseline.importance,
                                                             version=version,
                                                             type_changes=list(report.get("type_changes", {})))
            report_artifact.set_int_custom_property(spec.HAS_BASELINE, 1)
            report_artifact.set_int_custom_property(spec.BASELINE_VERSION, version)

        anomalies = []
        if input_dict.get(spec.ANOMALIES_KEY):
            from driftguard.components.anomaly_gate.executor import collect_anomalies, merge_splits

            anomalies = merge_splits(collect_anomalies(input_dict[spec.ANOMALIES_KEY], span, context["span_label"]))
        report["anomalies"] = anomalies
        report_artifact.set_int_custom_property(spec.N_ANOMALIES, len(anomalies))
        drifted = int(bool(report["drift_detected"]))
        report_artifact.set_int_custom_property(spec.DRIFT_DETECTED, drifted)
        report_artifact.set_int_custom_property(
            spec.N_DRIFTED, len(report.get("drifted_features", [])) + len(report.get("type_changes", {})))
        report_artifact.set_int_custom_property("span", span)
        (out / spec.REPORT_JSON).write_text(json.dumps(report, indent=1, sort_keys=True))
        write_html(report, out / spec.REPORT_HTML)
        logging.info("span %d: %s (report %s)", span, "DRIFT" if drifted else "no drift",
                     os.path.join(report_artifact.uri, spec.REPORT_HTML))
