"""AnomalyGate executor: read every span's anomalies; fail with a precise message on errors."""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from driftguard.components.anomaly_gate import spec
from driftguard.components.artifacts import example_spans

ANOMALIES_FILE = "SchemaDiff.pb"
_SEVERITY_RANK = {"WARNING": 1, "ERROR": 2}


class AnomaliesFoundError(RuntimeError):
    """Validation found anomalies at or above the configured severity."""


def load_anomalies(artifact, split: str) -> anomalies_pb2.Anomalies:
    path = os.path.join(artifact_utils.get_split_uri([artifact], split), ANOMALIES_FILE)
    proto = anomalies_pb2.Anomalies()
    with fileio.open(path, "rb") as f:
        proto.ParseFromString(f.read())
    return proto


def collect_anomalies(artifacts, span: Optional[int] = None, span_label: Optional[str] = None
                      ) -> List[Dict[str, Any]]:
    """Flatten the anomalies of every split into plain records, dataset-level too. ``span``
    and ``span_label``: the span (or window: ``"5, 6"``) the anomalies were found in."""
    records = []
    for artifact in artifacts:
        for split in artifact_utils.decode_split_names(artifact.split_names):
            proto = load_anomalies(artifact, split)
            for feature, info in sorted(proto.anomaly_info.items()):
                records.append(_record(span, split, feature, info))
            if proto.HasField("dataset_anomaly_info"):
                records.append(_record(span, split, None, proto.dataset_anomaly_info))
    if span_label:
        for r in records:
            r["span_label"] = span_label
    return records


def _record(span, split, feature, info) -> Dict[str, Any]:
    reasons = [{"type": anomalies_pb2.AnomalyInfo.Type.Name(r.type),
                "short": r.short_description, "description": r.description}
               for r in info.reason]
    return {
        "span": span,
        "split": split,
        "feature": feature,
        "severity": anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
        "short": info.short_description,
        "description": info.description,
        "reasons": reasons,
    }


def format_record(r: Dict[str, Any]) -> str:
    where = f"feature '{r['feature']}'" if r["feature"] else "dataset"
    name = r.get("span_label") or r["span"]
    span = f"span{'s' if ', ' in str(name) else ''} {name}" if name is not None else "span ?"
    kinds = ", ".join(x["type"] for x in r["reasons"]) or "anomaly"
    splits = r.get("splits") or [r["split"]]
    return (f"{span} ({', '.join(splits)}): {where}: {r['short']} [{kinds}] — "
            f"{r['description']}")


def merge_splits(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One record per (span, feature, anomaly) with the list of splits where it was found."""
    merged: Dict[tuple, Dict[str, Any]] = {}
    for r in records:
        # Descriptions may differ between splits only in numbers ("~30%" vs "~29%").
        key = (r["span"], r["feature"], r["short"], tuple(x["type"] for x in r["reasons"]))
        if key in merged:
            merged[key]["splits"].append(r["split"])
        else:
            merged[key] = {**r, "splits": [r["split"]]}
    return sorted(merged.values(), key=lambda r: (r["span"] if r["span"] is not None else -1,
                                                  r["feature"] or ""))


def blocking(records, fail_on_severity: str) -> List[Dict[str, Any]]:
    threshold = _SEVERITY_RANK[fail_on_severity]
    return [r for r in records if _SEVERITY_RANK.get(r["severity"], 2) >= threshold]


def _json_within(records: List[Dict[str, Any]], limit: int) -> str:
    """``records`` as JSON of at most ``limit`` characters: as many whole records as fit, and
    ``{"truncated": n}`` for the rest (a cut string would not be JSON)."""
    text = json.dumps(records)
    if len(text) <= limit:
        return text
    kept: List[Dict[str, Any]] = []
    size = 2
    for r in records:
        item = json.dumps(r)
        if size + len(item) + 2 + 40 > limit:
            break
        kept.append(r)
        size += len(item) + 2
    return json.dumps(kept + [{"truncated": len(records) - len(kept)}])


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        fail_on = exec_properties.get(spec.FAIL_ON_SEVERITY_KEY) or "ERROR"
        if fail_on not in _SEVERITY_RANK:
            raise ValueError(f"fail_on_severity must be one of {sorted(_SEVERITY_RANK)}, "
                             f"got {fail_on!r}")
        read = example_spans(input_dict[spec.EXAMPLES_KEY]) if input_dict.get(spec.EXAMPLES_KEY) else None
        records = collect_anomalies(input_dict[spec.ANOMALIES_KEY], read.span if read else None,
                                    read.text if read else None)
        records = merge_splits(records)
        bad = blocking(records, fail_on)
        for r in records:
            logging.warning("anomaly: %s", format_record(r))
        if bad:
            lines = "\n  ".join(format_record(r) for r in bad)
            raise AnomaliesFoundError(
                f"{len(bad)} anomal{'y' if len(bad) == 1 else 'ies'} of severity >= {fail_on} "
                f"in the training data; Transform and Trainer will not run:\n  {lines}")
        schema_in = artifact_utils.get_single_uri(input_dict[spec.SCHEMA_KEY])
        out = artifact_utils.get_single_instance(output_dict[spec.VALIDATED_SCHEMA_KEY])
        for name in fileio.listdir(schema_in):
            fileio.copy(os.path.join(schema_in, name), os.path.join(out.uri, name))
        # Transform expects exactly one file in a Schema artifact, so the (non-blocking)
        # anomalies travel as custom properties instead of a file beside the schema.
        out.set_int_custom_property("anomaly_count", len(records))
        out.set_string_custom_property("anomalies", _json_within(records, 50_000))
