"""Label changes recorded in the project's MLMD store, beside the pipelines' executions.

``driftguard promote`` and ``rollback`` run outside any pipeline, so they write with
ml_metadata's Python API to the project's store (the config's ``metadata:``: the sqlite file
``runs/metadata.sqlite`` or a server database; the caller passes its ``ConnectionConfig`` from
``driftguard.pipeline.metadata``, or None when there is no store yet: a sqlite registry no
pipeline ever pushed to has none):

- one ``Execution`` of type ``driftguard.VersionLabelChange`` per label change, COMPLETE, with
  the properties ``action``, ``label``, ``version``, ``previous_version`` (-1: none), ``who``,
  ``reason``, ``revision`` (the audit line's) and ``registry``;
- an INPUT ``Event`` from the version's Model artifact (``profile.json`` ``model_artifact.id``)
  to that execution, so the model's lineage shows where it was promoted;
- both attributed to a ``Context`` of type ``driftguard.ModelRegistry`` named
  ``<model_name>@<registry path>``, whose custom property ``version_labels`` holds the labels
  after the change as JSON (and ``champion``, the champion's version or -1).

The pusher itself records nothing here: inside a pipeline its ``pushed_model`` artifact's
custom properties (``version_labels``) are what MLMD keeps.
"""
from __future__ import annotations

import json
import pathlib
from typing import Iterable, Mapping, Optional

from driftguard.components.registry_pusher import registry as registry_lib

EXECUTION_TYPE = "driftguard.VersionLabelChange"
CONTEXT_TYPE = "driftguard.ModelRegistry"


def context_name(model_name: str, registry: pathlib.Path) -> str:
    return f"{model_name}@{pathlib.Path(registry).resolve()}"


def record_label_changes(connection, registry: pathlib.Path, model_name: str,
                         changes: Iterable, labels: Mapping[str, int]) -> Optional[list]:
    """Record ``changes`` (``labels.LabelChange``) in the MLMD store ``connection`` (ml-metadata's
    ``ConnectionConfig``); return the new execution ids, or None when ``connection`` is None (no
    store)."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    if connection is None:
        return None
    store = metadata_store.MetadataStore(connection)
    exec_type = pb.ExecutionType(name=EXECUTION_TYPE)
    for key in ("action", "label", "who", "reason", "registry"):
        exec_type.properties[key] = pb.STRING
    for key in ("version", "previous_version", "revision"):
        exec_type.properties[key] = pb.INT
    exec_type_id = store.put_execution_type(exec_type, can_add_fields=True)
    ctx_type_id = store.put_context_type(pb.ContextType(name=CONTEXT_TYPE), can_add_fields=True)

    name = context_name(model_name, registry)
    context = store.get_context_by_type_and_name(CONTEXT_TYPE, name)
    if context is None:
        context = pb.Context(type_id=ctx_type_id, name=name)
    context.custom_properties["version_labels"].string_value = json.dumps(dict(labels), sort_keys=True)
    context.custom_properties["champion"].int_value = int(labels.get("champion", -1))
    [context.id] = store.put_contexts([context])

    ids = []
    for change in changes:
        e = change.entry
        execution = pb.Execution(type_id=exec_type_id, last_known_state=pb.Execution.COMPLETE)
        for key in ("action", "label", "who", "reason"):
            execution.properties[key].string_value = str(e.get(key) or "")
        execution.properties["registry"].string_value = str(pathlib.Path(registry).resolve())
        execution.properties["version"].int_value = -1 if change.version is None else int(change.version)  # -1: dropped
        execution.properties["previous_version"].int_value = -1 if change.previous is None else int(change.previous)
        execution.properties["revision"].int_value = int(e.get("revision", 0))
        if e.get("decision"):            # the monitor's rollout decision that made the change
            execution.custom_properties["decision"].string_value = str(e["decision"])
        artifact_and_events = []
        model = _model_artifact(store, registry, change.previous if change.version is None else change.version)
        if model is not None:
            artifact_and_events.append((model, pb.Event(type=pb.Event.INPUT)))
        execution_id, _, _ = store.put_execution(execution, artifact_and_events, [context])
        ids.append(execution_id)
    return ids


def _model_artifact(store, registry: pathlib.Path, version: Optional[int]):
    if version is None:
        return None
    try:
        artifact_id = registry_lib.read_profile(pathlib.Path(registry), version).get("model_artifact", {}).get("id")
    except (OSError, ValueError):
        return None
    if not isinstance(artifact_id, int):
        return None
    found = store.get_artifacts_by_id([artifact_id])
    return found[0] if found else None
