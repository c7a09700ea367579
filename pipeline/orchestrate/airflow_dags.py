"""Airflow 2 DAGs for driftguard, built by TFX's AirflowDagRunner from the same pipelines.

Two DAGs per model (ids = the TFX pipeline names, so MLMD contexts match the local runs):

``<model>-check`` (on a schedule, default ``@daily``)::

    ImportSchemaGen, ExampleGen (span N) -> StatisticsGen -> ExampleValidator -> DriftDetector
    -> PredictionMonitor -> RetrainGate                 (TFX components, one task each)
    -> AlertDelivery      TFX component: the gate's alerts -> the outbox ``<runs>/alerts/outbox.sqlite``
                          -> the configured sinks, secrets from the worker's environment
    -> retrain_decision   ShortCircuitOperator: the RetrainGate's decision of *this* run,
                          read from MLMD (int property ``retrain``, ``decision.json``)
    -> trigger_training   TriggerDagRunOperator -> ``<model>-training``,
                          conf {"spans": "7,8", "span": "8", "reason": "..."}

AlertDelivery and retrain_decision both follow the RetrainGate, independently: a sink that is
down never holds up training (it leaves the alert pending in the outbox and the task succeeds,
as ``driftguard run`` does), and a retried or cleared AlertDelivery sends nothing twice (one
outbox row per dedup key and sink). Sink secrets come from environment variables that the config
names (``url_env`` ...), read by the worker at send time: never from the DAG file, the TFX
execution properties, MLMD or XCom (docs/orchestrators.md: how to set them on the workers).

``<model>-training`` (no schedule: triggered by the check DAG, ``driftguard trigger``, the UI)::

    check_window -> the training pipeline (ExampleGen of the window's spans ... Evaluator -> RegistryPusher)

Which span is checked: the newest span under the config's ``data.root`` (the files that match
``data.pattern``) when Airflow parses the DAG file (a new span arriving = new files; the next
scheduled run checks it). Which spans are trained: the window of the newest RetrainGate decision that said
"retrain" (read from MLMD when the file is parsed), or the config's ``first_spans`` before any
decision (the first model). AirflowDagRunner builds a static graph per parse, so the spans are
parse-time values; ``check_window`` fails a run whose ``conf["spans"]`` differs from the
graph's, instead of silently training on other spans. ``tfx.dsl.Cond`` is ignored by
AirflowDagRunner, which is why the check DAG triggers training through Airflow operators.

Parsing imports TensorFlow and TFX (tens of seconds on a small machine): raise Airflow's
``[core] dagbag_import_timeout`` (``AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=300``).
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
from typing import Any, Dict, List, Mapping, Optional

from driftguard.pipeline import config as config_lib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

DAG_FILE_NAME = "driftguard_{model}_dags.py"
DECISION_TASK_ID = "retrain_decision"
DELIVERY_TASK_ID = "AlertDelivery"      # the TFX node id (the class name), hence the Airflow task id
GATE_NODE_ID = "RetrainGate"
TRIGGER_TASK_ID = "trigger_training"
WINDOW_TASK_ID = "check_window"
DECISION_TYPE = "DriftguardRetrainDecision"
START_DATE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

_DAG_FILE = '''"""driftguard DAGs for Airflow 2 -- written by `driftguard compile --target airflow`.

{check_id}: span check on schedule {schedule!r}; triggers {train_id} when the
RetrainGate says so. {train_id}: the training pipeline. Details: pipeline/orchestrate/airflow_dags.py.
Needs the driftguard package installed where Airflow parses and runs tasks, and
AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=300 (parsing imports TensorFlow).
"""
from driftguard.pipeline.orchestrate.airflow_dags import build_dags

CONFIG_PATH = {config_path!r}  # None: driftguard's built-in defaults

globals().update(build_dags(CONFIG_PATH, schedule={schedule!r}))
'''


class AirflowConfigError(ValueError):
    """The config cannot be run by Airflow; the message names the setting and says why."""


def refuse_object_root(config: config_lib.Config) -> None:
    """:class:`AirflowConfigError` naming ``pipeline_root`` when it is an object-storage URI: not
    supported with Airflow (yet). Each task runs TFX's executors in an Airflow worker process, in
    which tensorflow-io's S3 file system would be used, and such a process aborts at exit
    ("pure virtual method called", components/object_root.py: only driftguard's own command line
    ends through ``os._exit``); and the ``retrain_decision`` task reads the RetrainGate's
    ``decision.json`` as a local file."""
    if config.pipeline_root_is_remote:
        raise AirflowConfigError(
            f"pipeline_root: {config.pipeline_root!r}: an object-storage pipeline root is not supported with "
            f"Airflow: the tasks' processes would abort at exit once tensorflow-io's S3 file system was used "
            f"(only the driftguard command line exits around it), and the {DECISION_TASK_ID} task reads the "
            f"RetrainGate's decision.json as a local file; use a pipeline_root folder every worker mounts "
            f"(docs/storage.md)")


def check_dag_id(config: config_lib.Config) -> str:
    return config.check_pipeline_name()


def training_dag_id(config: config_lib.Config) -> str:
    return config.training_pipeline_name()


def write_airflow_dags(config_path: Optional[os.PathLike], dags_folder: os.PathLike, *,
                       schedule: Optional[str] = "@daily") -> pathlib.Path:
    """Write the DAG file (both DAGs) into ``dags_folder``; return its path.

    The file names the config file by absolute path (None: the built-in defaults), so Airflow
    builds the DAGs from the same config as ``driftguard run``. It is validated here, before
    anything is written (:class:`AirflowConfigError` for an object-storage ``pipeline_root``).
    """
    config = config_lib.load(config_path)
    refuse_object_root(config)
    folder = pathlib.Path(dags_folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DAG_FILE_NAME.format(model=config.model_name.replace("-", "_"))
    text = _DAG_FILE.format(config_path=str(pathlib.Path(config_path).resolve()) if config_path else None,
                            schedule=schedule, check_id=check_dag_id(config),
                            train_id=training_dag_id(config))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)   # the scheduler never parses a half-written file
    return path


# ---- what the DAGs decide at parse time --------------------------------------------------

def span_to_check(config: config_lib.Config) -> int:
    """The newest span under ``data.root`` (matched by ``data.pattern``)."""
    from driftguard.pipeline import spanfiles

    spans = spanfiles.available_spans(spanfiles.Layout.of(config))
    if not spans:
        raise FileNotFoundError(f"data.pattern {config.data.pattern!r} matches no span under {config.data_path}")
    return spans[-1]


def _open_store(config):
    """The project's MLMD store (a Config, or a ``metadata.Location``), None when there is none yet."""
    from driftguard.pipeline import metadata, runner

    if not metadata.store_exists(config):
        return None
    return runner.open_store(config)


def _decision_payload(artifact) -> Dict[str, Any]:
    from driftguard.components.retrain_gate import spec as gate_spec

    return json.loads((pathlib.Path(artifact.uri) / gate_spec.DECISION_JSON).read_text())


def latest_retrain_decision(config: config_lib.Config) -> Optional[Dict[str, Any]]:
    """The newest RetrainGate decision.json (of any orchestrator) that said "retrain"."""
    store = _open_store(config)
    if store is None:
        return None
    try:
        artifacts = store.get_artifacts_by_type(DECISION_TYPE)
    except Exception:  # noqa: BLE001 - the type is registered only after a first check
        return None
    for artifact in sorted(artifacts, key=lambda a: a.id, reverse=True):
        prop = artifact.custom_properties.get("retrain")
        if prop is not None and prop.int_value == 1:
            return _decision_payload(artifact)
    return None


def training_plan(config: config_lib.Config) -> Dict[str, Any]:
    """{"spans": [...], "warm_start_from": path or None, "source": text} for the training DAG."""
    from driftguard.components.registry_pusher.labels import champion_version

    decision = latest_retrain_decision(config)
    if decision is None:
        return {"spans": config.span_numbers(config.first_spans), "warm_start_from": None,
                "source": "config first_spans (no retrain decision yet)"}
    d = decision["decision"]
    warm = None
    if d.get("warm_start"):      # from the serving model: the champion, else the newest version
        serving = champion_version(config.model_registry)
        warm = str(config.model_registry / str(serving)) if serving is not None else None
    return {"spans": [int(s) for s in d["spans"]], "warm_start_from": warm,
            "source": f"RetrainGate decision of span {decision.get('span')}: {d.get('reason')}"}


# ---- task callables (module-level: Airflow pickles nothing, workers import this module) ---

def gate_decision_for_run(location: Dict[str, Any], pipeline_name: str, run_id: str) -> Optional[Dict[str, Any]]:
    """The RetrainGate decision.json published in the TFX run ``run_id`` (None if none);
    ``location``: the store's ``driftguard.pipeline.metadata.location(config)``."""
    from driftguard.pipeline import metadata

    store = _open_store(metadata.from_location(location))
    if store is None:
        return None
    context = store.get_context_by_type_and_name("run", f"{pipeline_name}.{run_id}")
    if context is None:
        return None
    type_id = store.get_artifact_type(DECISION_TYPE).id
    decisions = [a for a in store.get_artifacts_by_context(context.id) if a.type_id == type_id]
    if not decisions:
        return None
    return _decision_payload(max(decisions, key=lambda a: a.id))


def _should_train(location: Dict[str, Any], pipeline_name: str, **context) -> bool:
    """ShortCircuit: True (go on and trigger training) when this run's gate said retrain."""
    ti = context["ti"]
    run_id = ti.get_dagrun().run_id
    payload = gate_decision_for_run(location, pipeline_name, run_id)
    if payload is None:
        from driftguard.pipeline import metadata

        where = metadata.describe(metadata.from_location(location))
        raise RuntimeError(f"no RetrainGate decision in MLMD ({where}) for run {run_id} of "
                           f"{pipeline_name}: did the RetrainGate task succeed?")
    d = payload["decision"]
    logging.info("span %s: retrain=%s (%s)", payload.get("span"), d["retrain"], d.get("reason"))
    ti.xcom_push(key="spans", value=",".join(str(s) for s in d.get("spans", [])))
    ti.xcom_push(key="span", value=str(payload.get("span")))
    ti.xcom_push(key="reason", value=str(d.get("reason")))
    return bool(d["retrain"])


def conf_spans(conf: Optional[Mapping[str, Any]], config: Optional[config_lib.Config] = None) -> Optional[List[int]]:
    """The spans a run was triggered with: conf {"spans": "7,8"} or {"spans": [7, 8]} (span
    numbers; calendar spans may also be given as written: "2013-05,2013-06")."""
    from driftguard.components.spans import SpanPattern

    if not conf or conf.get("spans") in (None, ""):
        return None
    value = conf["spans"]
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    text = str(value)
    if config is not None and config.spans.unit != "span" and not all(p.strip().isdigit() for p in text.split(",")):
        return config.spans.parse_list(text)
    return SpanPattern("span-{SPAN}").parse_list(text)


def _check_window(dag_spans: List[int], **context) -> None:
    """Fail the run when it was triggered for other spans than the graph was built for."""
    from airflow.exceptions import AirflowFailException

    wanted = conf_spans(context["dag_run"].conf)
    if wanted is not None and wanted != list(dag_spans):
        raise AirflowFailException(
            f"this run was triggered for spans {wanted}, but the DAG was built for spans "
            f"{list(dag_spans)} (the newest RetrainGate decision with retrain=1, read when the DAG "
            f"file was parsed); re-trigger after the DAG file is parsed again, or trigger "
            f"without conf to train on {list(dag_spans)}")
    logging.info("training on spans %s", list(dag_spans))


# ---- the DAGs ------------------------------------------------------------------------------

_NAMING_DRIVERS: Dict[type, type] = {}
_EXAMPLES_KEY, _TRANSFORMED_KEY = "examples", "transformed_examples"


class _RerunSafeMetadata:
    """The launcher's MLMD handle, with a ``register_execution`` that survives a re-run.

    When a task runs again in the same Airflow run (a retry, or a cleared task), TFX 1.16's
    ``Metadata.register_execution`` finds the node's component-run context and reuses its
    execution, as intended, but re-adds the execution's input events, which MLMD refuses
    (``AlreadyExistsError: Given event already exists``): the retry fails before the executor
    runs. Here the earlier execution is updated instead (state back to new, its properties; the
    input events it has are kept, as ``update_execution`` does). Everything else is the handle's.
    """

    def __init__(self, handle):
        self._handle = handle

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def register_execution(self, pipeline_info, component_info, contexts, exec_properties=None,
                           input_artifacts=None):
        from tfx.orchestration import metadata

        earlier = self._handle.get_component_run_context(component_info)
        if earlier is None:
            return self._handle.register_execution(pipeline_info=pipeline_info, component_info=component_info,
                                                   contexts=contexts, exec_properties=exec_properties,
                                                   input_artifacts=input_artifacts)
        [execution] = self._handle.store.get_executions_by_context(earlier.id)
        logging.info("%s runs again in TFX run %s: reusing execution %s and its output artifacts",
                     component_info.component_id, pipeline_info.run_id, execution.id)
        self._handle.update_execution(execution=execution, component_info=component_info,
                                      input_artifacts=input_artifacts, exec_properties=exec_properties,
                                      execution_state=metadata.EXECUTION_STATE_NEW, contexts=[*contexts, earlier])
        contexts.append(earlier)
        return execution


def _registered_outputs(handle, execution_id: int) -> Dict[str, list]:
    """{output key: [artifact, ...]} that an earlier attempt of execution ``execution_id``
    registered (empty when it registered none)."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.types import artifact_utils

    events = [e for e in handle.store.get_events_by_execution_ids([execution_id])
              if e.type == metadata_store_pb2.Event.OUTPUT]
    if not events:
        return {}
    by_id = {a.id: a for a in handle.store.get_artifacts_by_id([e.artifact_id for e in events])}
    types = {t.id: t for t in handle.store.get_artifact_types_by_id(list({a.type_id for a in by_id.values()}))}
    result: Dict[str, list] = {}
    for e in sorted(events, key=lambda e: (e.path.steps[0].key, e.path.steps[1].index)):
        artifact = by_id[e.artifact_id]
        result.setdefault(e.path.steps[0].key, []).append(
            artifact_utils.deserialize_artifact(types[artifact.type_id], artifact))
    return result


def _naming_driver(driver_class: type) -> type:
    """``driver_class`` naming output artifacts ``<node id>.<key>:<run id>``, and safe to run again.

    TFX 1.16's legacy driver (the one AirflowDagRunner's launcher runs) names every output
    artifact ``<output key>:<run id>``, but MLMD keeps artifact names unique per type, so the
    second per-span StatisticsGen (or ExampleValidator) of the training window fails its run
    with ``AlreadyExistsError: Given node already exists``. Inputs are resolved by producer and
    event key, never by this name, so adding the node id is safe.

    Also: Transform over a window of K Examples artifacts replicates its one output artifact
    into K inside the executor; the legacy driver has already registered the one, so Trainer
    would get K+1 (one without splits: "Split does not exist over all example artifacts").
    The driver prepares the K artifacts itself (what TFX's IR launcher does), so the executor
    replicates nothing.

    Re-runs: a task retried or cleared in the same Airflow run executes its node again under the
    same TFX run id. TFX means that to reuse the node's execution and its output URIs (see
    ``base_driver._prepare_output_paths``), but fails on it (``_RerunSafeMetadata``); and new
    output artifacts would collide by name with the first attempt's, or, named apart, leave
    the execution two outputs per key for the downstream nodes. So a re-run reuses the output
    artifacts the earlier attempt registered (same ids, names and URIs): the executor writes
    them again and the publisher publishes them with the new properties.
    """
    if driver_class not in _NAMING_DRIVERS:
        def __init__(self, metadata_handle, *args, **kwargs):
            driver_class.__init__(self, _RerunSafeMetadata(metadata_handle), *args, **kwargs)

        def _prepare_output_artifacts(self, input_artifacts, output_dict, exec_properties, execution_id,
                                      pipeline_info, component_info):
            from tfx.dsl.components.base import base_driver
            from tfx.types import artifact_utils

            earlier = _registered_outputs(self._metadata_handle, execution_id)
            if earlier:
                for artifact in (a for artifacts in earlier.values() for a in artifacts):
                    base_driver._prepare_output_paths(artifact)  # noqa: SLF001
                return earlier
            result = driver_class._prepare_output_artifacts(  # noqa: SLF001
                self, input_artifacts, output_dict, exec_properties, execution_id, pipeline_info, component_info)
            n_examples = len(input_artifacts.get(_EXAMPLES_KEY) or [])
            if n_examples > 1 and len(result.get(_TRANSFORMED_KEY) or []) == 1:
                result[_TRANSFORMED_KEY] = artifact_utils.replicate_artifacts(result[_TRANSFORMED_KEY][0], n_examples)
            for key, artifacts in result.items():
                for i, artifact in enumerate(artifacts):
                    suffix = f".{i}" if len(artifacts) > 1 else ""
                    artifact.name = f"{component_info.component_id}.{key}{suffix}:{pipeline_info.run_id}"
                    artifact.producer_component = component_info.component_id
                    base_driver._prepare_output_paths(artifact)  # noqa: SLF001
            return result

        _NAMING_DRIVERS[driver_class] = type(f"NodeNaming{driver_class.__name__}", (driver_class,),
                                             {"__init__": __init__,
                                              "_prepare_output_artifacts": _prepare_output_artifacts,
                                              "__module__": __name__})
    return _NAMING_DRIVERS[driver_class]


def _airflow_dag(tfx_pipeline, dag_config: Dict[str, Any]):
    """AirflowDagRunner(...).run(pipeline), with per-node artifact names (see _naming_driver)."""
    from tfx.dsl.components.base import base_component
    from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

    for component in tfx_pipeline.components:
        if isinstance(component, base_component.BaseComponent) and component.driver_class is not None:
            component.driver_class = _naming_driver(component.driver_class)
    return AirflowDagRunner(AirflowPipelineConfig(dag_config)).run(tfx_pipeline)

def _dag_config(schedule: Optional[str], doc: str, tags: List[str]) -> Dict[str, Any]:
    return {"schedule": schedule, "start_date": START_DATE, "catchup": False,
            "max_active_runs": 1, "tags": ["driftguard", *tags], "doc_md": doc}


def _tfx_roots(dag, exclude=()) -> list:
    return [t for t in dag.tasks if not t.upstream_task_ids and t.task_id not in exclude]


def build_check_dag(config: config_lib.Config, span: Optional[int] = None, *, schedule: Optional[str] = "@daily"):
    refuse_object_root(config)
    from airflow.operators.python import ShortCircuitOperator
    from airflow.operators.trigger_dagrun import TriggerDagRunOperator
    from driftguard.pipeline import metadata
    from driftguard.pipeline import pipeline as pipeline_lib
    from driftguard.pipeline import state

    span = span_to_check(config) if span is None else int(span)
    blocked = [r["span"] for r in state.load(config.runs_path)["spans"] if r.get("blocking_anomalies")]
    tfx_pipeline = pipeline_lib.create_check_pipeline(config, span, blocked_spans=blocked, deliver_alerts=True)
    doc = (f"driftguard span check of **span {config.span_label(span)}** (the newest span under `{config.data_path}`), "
           f"schema v{config.schema_version}, baseline: the serving version in `{config.model_registry}`. "
           f"`{DELIVERY_TASK_ID}` delivers the span's alerts through the outbox under `{config.runs_path}`. "
           f"Triggers `{training_dag_id(config)}` when the RetrainGate says retrain.")
    dag = _airflow_dag(tfx_pipeline, _dag_config(schedule, doc, ["check", f"span-{span}"]))
    gate_task = dag.get_task(GATE_NODE_ID)
    decision = ShortCircuitOperator(
        task_id=DECISION_TASK_ID, dag=dag, python_callable=_should_train,
        op_kwargs={"location": metadata.location(config), "pipeline_name": config.check_pipeline_name()},
        ignore_downstream_trigger_rules=True)
    xcom = "ti.xcom_pull(task_ids='" + DECISION_TASK_ID + "', key='{}')"
    trigger = TriggerDagRunOperator(
        task_id=TRIGGER_TASK_ID, dag=dag, trigger_dag_id=training_dag_id(config),
        conf={"spans": "{{ " + xcom.format("spans") + " }}", "span": "{{ " + xcom.format("span") + " }}",
              "reason": "{{ " + xcom.format("reason") + " }}",
              "triggered_by": "{{ dag.dag_id }}/{{ run_id }}"},
        wait_for_completion=False)
    gate_task >> decision >> trigger
    return dag


def build_training_dag(config: config_lib.Config, plan: Optional[Dict[str, Any]] = None):
    refuse_object_root(config)
    from airflow.operators.python import PythonOperator

    from driftguard.pipeline import pipeline as pipeline_lib

    plan = plan or training_plan(config)
    spans = plan["spans"]
    tfx_pipeline = pipeline_lib.create_pipeline(config, spans, warm_start_from=plan["warm_start_from"])
    doc = (f"driftguard training on **spans {', '.join(map(str, spans))}** ({plan['source']}); pushes to "
           f"`{config.model_registry}` only when TFMA blesses the candidate. Trigger conf: "
           f'`{{"spans": "{",".join(map(str, spans))}"}}` (or none).')
    dag = _airflow_dag(tfx_pipeline, _dag_config(None, doc, ["training"]))
    roots = _tfx_roots(dag)
    window = PythonOperator(task_id=WINDOW_TASK_ID, dag=dag, python_callable=_check_window,
                            op_kwargs={"dag_spans": list(spans)})
    window >> roots
    return dag


def build_dags(config_path: Optional[os.PathLike] = None, *, schedule: Optional[str] = "@daily") -> Dict[str, Any]:
    """{dag_id: DAG} for the DAG file: the span-check DAG and the training DAG."""
    from driftguard.pipeline import beam_staging

    beam_staging.install()          # the tasks' executors run in processes that import this file
    config = config_lib.load(config_path)
    refuse_object_root(config)      # before any DAG: the DAG file fails to import with the reason
    check = build_check_dag(config, schedule=schedule)
    training = build_training_dag(config)
    return {"driftguard_check_dag": check, "driftguard_training_dag": training}
