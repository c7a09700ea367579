"""Runs a pipeline on the local or Beam runner and reports what really happened, from MLMD.

``LocalDagRunner.run()`` returns normally even when a component fails, so success is never
inferred from it: after the run, every node's execution state is read back from MLMD.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import traceback
from typing import Dict, List, Optional

from driftguard.pipeline.config import Config

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_STATE_NAMES = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED",
                5: "CACHED", 6: "CANCELED"}


@dataclasses.dataclass
class NodeResult:
    node_id: str
    state: str                      # COMPLETE, CACHED, FAILED, ..., or NOT_RUN
    execution_id: Optional[int] = None
    error: Optional[str] = None
    seconds: Optional[float] = None  # wall time, from MLMD's create and last-update times
    custom_properties: Dict[str, object] = dataclasses.field(default_factory=dict)
    traceback: Optional[str] = None  # of the exception the runner raised, when it raised


@dataclasses.dataclass
class RunResult:
    pipeline_name: str
    nodes: List[NodeResult]
    runner_error: Optional[str] = None  # what the runner raised, if it raised

    @property
    def failed(self) -> List[NodeResult]:
        return [n for n in self.nodes if n.state in ("FAILED", "CANCELED")]

    @property
    def not_run(self) -> List[NodeResult]:
        return [n for n in self.nodes if n.state == "NOT_RUN"]

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_run and self.runner_error is None

    def node(self, node_id: str) -> NodeResult:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def first_error(self) -> Optional[NodeResult]:
        return self.failed[0] if self.failed else None


def open_store(config: Config):
    """A read-only MLMD store over the project's store (``metadata:``; pipeline/metadata.py)."""
    from driftguard.pipeline import metadata

    return metadata.open_store(config, readonly=True)


def _pipeline_executions(store, pipeline_name: str) -> list:
    """The executions of one pipeline (its ``pipeline`` context): a shared store holds other
    projects' too, and reading only these keeps the cost independent of them."""
    ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    return [] if ctx is None else store.get_executions_by_context(ctx.id)


def _max_execution_id(config: Config, pipeline_name: str) -> int:
    from driftguard.pipeline import metadata

    if not metadata.store_exists(config):
        return 0
    store = open_store(config)
    return max((e.id for e in _pipeline_executions(store, pipeline_name)), default=0)


def error_message(execution) -> Optional[str]:
    """The executor's error as TFX stored it on the execution (``__execution_result__``)."""
    prop = execution.custom_properties.get("__execution_result__")
    if prop is None or not prop.string_value:
        return None
    try:
        return json.loads(prop.string_value).get("resultMessage") or prop.string_value
    except ValueError:
        return prop.string_value


def short_error(message: Optional[str]) -> str:
    """The last exception line of a traceback (plus any indented detail lines after it)."""
    if not message:
        return "no error message was recorded"
    lines = message.strip().splitlines()
    # A Python traceback ends with "ExceptionType: message" followed by the message's lines.
    for i in range(len(lines) - 1, -1, -1):
        if lines[i] and not lines[i].startswith(" ") and ":" in lines[i] and (
                "Error" in lines[i].split(":")[0] or "Exception" in lines[i].split(":")[0]):
            return "\n".join(lines[i:])
    return lines[-1]


def interrupted_nodes(config: Config, pipeline_name: str) -> List[NodeResult]:
    """Nodes the latest run of ``pipeline_name`` left NEW or RUNNING: the run was killed.

    TFX marks an execution COMPLETE, CACHED or FAILED when its node ends, even on an exception;
    only a process that died mid-node (SIGKILL, OOM, power loss) leaves one active. The latest
    run is the ``pipeline_run`` context of the pipeline's newest execution. Older interrupted
    runs do not count: once a run after them finished, there is nothing left to resume.
    """
    from driftguard.pipeline import metadata

    if not metadata.store_exists(config):
        return []
    store = open_store(config)
    executions = _pipeline_executions(store, pipeline_name)
    if not executions:
        return []
    newest = max(executions, key=lambda e: e.id)
    run_ctx = [c for c in store.get_contexts_by_execution(newest.id)
               if store.get_context_types_by_id([c.type_id])[0].name == "pipeline_run"]
    if not run_ctx:
        return []
    active = []
    for execution in sorted(store.get_executions_by_context(run_ctx[0].id), key=lambda e: e.id):
        state = _STATE_NAMES.get(execution.last_known_state, "UNKNOWN")
        if state not in ("NEW", "RUNNING"):
            continue
        node = next((c.name[len(pipeline_name) + 1:]
                     for c in store.get_contexts_by_execution(execution.id)
                     if c.name.startswith(pipeline_name + ".")
                     and store.get_context_types_by_id([c.type_id])[0].name == "node"), "?")
        active.append(NodeResult(node_id=node, state=state, execution_id=execution.id))
    return active


def collect_results(pipeline, config: Config, after_execution_id: int) -> RunResult:
    """Execution state of every node of ``pipeline`` among executions newer than the given id."""
    store = open_store(config)
    by_node: Dict[str, NodeResult] = {}
    name = pipeline.pipeline_info.pipeline_name
    new = [e for e in _pipeline_executions(store, name) if e.id > after_execution_id]
    for execution in sorted(new, key=lambda e: e.id):
        for ctx in store.get_contexts_by_execution(execution.id):
            ctx_type = store.get_context_types_by_id([ctx.type_id])[0].name
            if ctx_type == "node" and ctx.name.startswith(name + "."):
                node_id = ctx.name[len(name) + 1:]
                props = {}
                for k, v in execution.custom_properties.items():
                    if k.startswith("__"):
                        continue
                    kind = v.WhichOneof("value")
                    if kind in ("int_value", "string_value", "double_value"):
                        props[k] = getattr(v, kind)
                by_node[node_id] = NodeResult(
                    node_id=node_id,
                    state=_STATE_NAMES.get(execution.last_known_state, "UNKNOWN"),
                    execution_id=execution.id,
                    error=error_message(execution),
                    seconds=(execution.last_update_time_since_epoch
                             - execution.create_time_since_epoch) / 1000.0,
                    custom_properties=props)
    results = []
    for component in pipeline.components:
        results.append(by_node.get(component.id, NodeResult(component.id, "NOT_RUN")))
    return RunResult(pipeline_name=name, nodes=results)


def run(pipeline, config: Config, runner: Optional[str] = None) -> RunResult:
    """Run ``pipeline`` on ``runner`` ('local' or 'beam') and return per-node results."""
    from tfx import v1 as tfx

    from driftguard.components import object_root
    from driftguard.pipeline import beam_staging

    beam_staging.install()
    object_root.register(config.pipeline_root_uri)     # s3://: tf.io.gfile (TFX, TF) reaches it
    runner = runner or config.runner
    config.runs_path.mkdir(parents=True, exist_ok=True)
    if runner not in ("local", "beam"):
        raise ValueError(f"runner must be 'local' or 'beam', got {runner!r}")
    before = _max_execution_id(config, pipeline.pipeline_info.pipeline_name)
    raised: Optional[BaseException] = None
    try:
        if runner == "local":
            tfx.orchestration.LocalDagRunner().run(pipeline)
        else:
            from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
            BeamDagRunner().run(pipeline)
    except Exception as e:  # noqa: BLE001 - the truth is read from MLMD below
        # Depending on where a node fails, the runners either return normally or re-raise
        # the executor's exception; either way the node states in MLMD say what happened.
        logging.exception("the %s runner raised", runner)
        raised = e
    result = collect_results(pipeline, config, before)
    if raised is not None:
        result.runner_error = f"{type(raised).__name__}: {raised}"
        failed = result.first_error()
        if failed is not None:
            # The traceback holds the line of the user's module that raised (run_fn ...).
            failed.traceback = "".join(traceback.format_exception(type(raised), raised, raised.__traceback__))
            if not failed.error:
                # When the launcher re-raises, TFX publishes the FAILED execution without its
                # message; the exception we caught is that message.
                failed.error = result.runner_error
            result.runner_error = None
    for n in result.nodes:
        logging.info("node %s: %s", n.node_id, n.state)
    return result


def output_artifact(config: Config, execution_id: Optional[int], output_key: str):
    """The MLMD artifact an execution published under ``output_key`` (or None)."""
    if execution_id is None:
        return None
    from ml_metadata.proto import metadata_store_pb2

    store = open_store(config)
    for event in store.get_events_by_execution_ids([execution_id]):
        if event.type != metadata_store_pb2.Event.OUTPUT:
            continue
        keys = [s.key for s in event.path.steps if s.HasField("key")]
        if output_key in keys:
            return store.get_artifacts_by_id([event.artifact_id])[0]
    return None
