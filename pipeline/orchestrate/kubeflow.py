"""Kubeflow Pipelines v2 / Vertex AI: one pipeline = the span check + the training branch.

::

    Check*  ExampleGen (the newest span, found when the run starts) -> StatisticsGen
            -> ExampleValidator -> DriftDetector -> PredictionMonitor -> RetrainGate
    under tfx.dsl.Cond(RetrainGate.decision.custom_property('retrain') == 1):
            the training pipeline; its ExampleGen reads the window the gate decided

KFP v2 evaluates the condition on the gate's output artifact (a CEL ``trigger_policy``), so
the training tasks run only when the gate says so and show as skipped otherwise.

Nothing about the spans is fixed at compile time: the check's ExampleGen (driftguard's
SpanExampleGen) takes the newest span the data holds when the run starts, every component
after it reads the span from its Examples artifact, and the training ExampleGen reads the
window from the gate's ``decision.json`` (the newest ``training.window_spans`` spans, fewer if
some are blocked by anomalies, the newest only for the ``online`` policy). One compiled
pipeline, run on a schedule (a KFP recurring run, Vertex AI's scheduler), checks each new span
and retrains on its window with no recompile. ``--span N`` still compiles a pipeline fixed on
span N (a re-check).

Paths: every path in the config (data, schemas, registry) and the pipeline root must be
reachable from every pod at the same absolute path (a shared volume mounted at the same
place), or the pipeline root is on GCS (``--pipeline-root gs://...``; Vertex AI takes gs://
only). The pipeline root is ``--pipeline-root`` (used as given), else the config's pipeline
root ``/<model>-check-and-train``. An ``s3://`` root (the config's ``pipeline_root`` or
``--pipeline-root``) is refused (:func:`check_pipeline_root`): the tasks run TFX's container
entrypoint in the image, which has no tensorflow-io (the Dockerfile does not install it), so
``tf.io.gfile`` has no ``s3://`` there, and a process that used tensorflow-io's S3 file system
aborts at exit (components/object_root.py).
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import warnings
from typing import Dict, Optional, Sequence

from driftguard.pipeline.config import Config

TFX_VERSION = "1.16.0"
DEFAULT_IMAGE = f"driftguard:tfx-{TFX_VERSION}"
PIPELINE_JOB_FILE = "pipeline_job.json"   # Vertex AI PipelineJob (aiplatform.PipelineJob)
PIPELINE_SPEC_FILE = "pipeline.yaml"      # KFP OSS pipeline spec (kfp.Client)
CHECK_PREFIX = "Check"                    # ids of the span-check nodes in the combined graph
GATE_ID = f"{CHECK_PREFIX}RetrainGate"
DELIVERY_ID = f"{CHECK_PREFIX}AlertDelivery"
DEFAULT_ALERTS_SECRET = "driftguard-alerts"   # the Kubernetes secret holding the sinks' variables
RETRAIN_PROPERTY = "retrain"


class KubeflowConfigError(ValueError):
    """The pipeline cannot be compiled for Kubeflow as configured; the message names the setting."""


def check_pipeline_root(root: str, setting: str) -> None:
    """:class:`KubeflowConfigError` naming ``setting`` for an ``s3://`` pipeline root (see the
    module's docstring); a gs:// root and a path are taken as they are."""
    if str(root).lower().startswith("s3://"):
        raise KubeflowConfigError(
            f"{setting}: {root!r}: an s3:// pipeline root is not supported with Kubeflow: the tasks run TFX's "
            f"container entrypoint, which has no S3 file system for TensorFlow (tensorflow-io is not in the "
            f"image, and a process that used it aborts at exit), and Vertex AI takes gs:// only; pass "
            f"--pipeline-root gs://BUCKET/prefix or a path every pod mounts (docs/orchestrators.md)")


def combined_pipeline_name(config: Config) -> str:
    return f"{config.model_name}-check-and-train"


def create_check_and_train_pipeline(config: Config, span: Optional[int] = None, *, data_root: Optional[str] = None,
                                    pipeline_root: Optional[str] = None, blocked_spans: Sequence[int] = (),
                                    features: Optional[Sequence[str]] = None):
    """The span check (of ``span``, or of the newest span when the run starts) and, under a
    Cond on the gate's ``retrain``, training on the window the gate decided.

    Built from ``create_check_pipeline`` and ``create_pipeline``: the check's nodes are renamed
    ``Check<id>`` (both pipelines have an ``ImportSchemaGen``, an ``ExampleGen``, ...).
    """
    from tfx import v1 as tfx
    from tfx.dsl.context_managers import dsl_context_registry

    from driftguard.components.retrain_gate import spec as gate_spec
    from driftguard.pipeline import pipeline as pipeline_lib

    check = pipeline_lib.create_check_pipeline(config, span, data_root=data_root, blocked_spans=blocked_spans,
                                               features=features, deliver_alerts=True)
    check_nodes = list(check.components)
    for node in check_nodes:
        node.with_id(CHECK_PREFIX + node.id)
    gate = next(n for n in check_nodes if n.id == GATE_ID)
    decision = gate.outputs[gate_spec.DECISION_KEY]
    with warnings.catch_warnings():
        # Built alone, the training pipeline warns that its ExampleGen reads the gate, which it
        # does not hold; the combined pipeline below holds both.
        warnings.filterwarnings("ignore", message=r"Node .* depends on the output of node")
        train = pipeline_lib.create_pipeline(config, data_root=data_root, decision=decision)
    train_nodes = list(train.components)
    # Each sub-pipeline took its nodes out of the global DSL registry when it was built; the
    # combined pipeline gets a registry of its own in which the training nodes sit under Cond.
    registry = dsl_context_registry.DslContextRegistry()
    with dsl_context_registry.use_registry(registry):
        for node in check_nodes:
            registry.put_node(node)
        retrain = decision.future()[0].custom_property(gate_spec.RETRAIN)
        with tfx.dsl.Cond(retrain == 1):
            for node in train_nodes:
                registry.put_node(node)
    root = pipeline_root or config.pipeline_root_of(combined_pipeline_name(config))
    return tfx.dsl.Pipeline(
        pipeline_name=combined_pipeline_name(config),
        pipeline_root=root,
        components=check_nodes + train_nodes,
        enable_cache=False,
        metadata_connection_config=pipeline_lib.metadata_connection(config),   # the local runner's store (tests)
        beam_pipeline_args=list(config.beam_args),
        dsl_context_registry=registry,
    )


KFP_TITLE_NAMESPACE = "driftguard"


@contextlib.contextmanager
def _kfp_schema_titles():
    """Let KubeflowV2's compiler accept driftguard's artifact type names.

    KFP v2 wants a custom artifact's schema title as ``<namespace>.<Name>``
    (``compiler_utils._SCHEMA_TITLE_RE``); our types are named ``DriftguardDriftReport`` etc.
    (their MLMD names, shared with the local runs), so the compiled spec titles them
    ``driftguard.DriftguardDriftReport``. At run time TFX's KFP v2 entrypoint finds no Python
    class of that name and rebuilds a generic artifact class, which is all our executors use
    (uri and custom properties). Scoped to the compile call: nothing global stays patched.
    """
    import yaml
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    original = compiler_utils.get_artifact_schema

    def schema(artifact_type):
        try:
            return original(artifact_type)
        except ValueError:
            title = f"{KFP_TITLE_NAMESPACE}.{artifact_type.TYPE_NAME}"
            if not compiler_utils._SCHEMA_TITLE_RE.fullmatch(title):  # noqa: SLF001
                raise
            template = pathlib.Path(compiler_utils.__file__).parent / "artifact_types" / "Artifact.yaml"
            data = yaml.safe_load(template.read_text())
            data["title"] = title
            return yaml.dump(data, sort_keys=False)

    compiler_utils.get_artifact_schema = schema
    try:
        yield
    finally:
        compiler_utils.get_artifact_schema = original


@contextlib.contextmanager
def _cond_over_resolver_inputs():
    """Let KubeflowV2 put a node reading a resolver's output under a Cond.

    For a conditional node, ``step_builder`` keys *every* input channel with
    ``implicit_channel_key`` only to see whether the node already consumes the predicate's
    channel; that function raises for a resolver's producer-less channel (the Evaluator's
    baseline model). Such a channel can never be the predicate's channel (an output of the
    gate), so a key of its own is exact. Scoped to the compile call.
    """
    from tfx.dsl.compiler import compiler_utils as tfx_compiler_utils

    original = tfx_compiler_utils.implicit_channel_key

    def key(channel):
        try:
            return original(channel)
        except ValueError:
            return f"_unkeyable.{id(channel)}"

    tfx_compiler_utils.implicit_channel_key = key
    try:
        yield
    finally:
        tfx_compiler_utils.implicit_channel_key = original


def in_image(config: Config, image_project_dir: Optional[str]) -> Config:
    """The config as the pods see it: the project (model module, data, schemas, runs) at
    ``image_project_dir`` in the image (the Dockerfile copies it there). Not validated here: the
    paths exist in the image, not on the machine that compiles."""
    import dataclasses

    if not image_project_dir:
        return config
    return dataclasses.replace(config, project_dir=str(pathlib.PurePosixPath(image_project_dir)))


def compile_kubeflow(config: Config, span: Optional[int], output_dir, image: str = DEFAULT_IMAGE, *,
                     pipeline_root: Optional[str] = None, data_root: Optional[str] = None,
                     blocked_spans: Sequence[int] = (), image_project_dir: Optional[str] = "/project",
                     alerts_secret: str = DEFAULT_ALERTS_SECRET) -> Dict[str, pathlib.Path]:
    """Compile the check-and-train pipeline with ``KubeflowV2DagRunner``: of the newest span
    when the run starts (``span`` None, for a recurring run), or of ``span``.

    Writes ``pipeline_job.json`` (a Vertex AI PipelineJob: ``aiplatform.PipelineJob(
    template_path=...)``) and ``pipeline.yaml`` (the same PipelineSpec as KFP OSS's
    ``kfp.Client`` uploads it, followed by its Kubernetes platform spec: the alert delivery
    step's sink variables from the Kubernetes secret ``alerts_secret``, one key per variable).
    Returns ``{"pipeline_job": path, "pipeline_spec": path, "secret_variables": [...]}``.
    Every project path in the spec is under ``image_project_dir`` (where the image holds the
    project); the model module is read from there, not packaged.
    """
    if pipeline_root:
        check_pipeline_root(pipeline_root, "--pipeline-root")
    else:
        check_pipeline_root(config.pipeline_root_uri, "pipeline_root")
    from driftguard.components.alerts.config import parse_alerts_config, secret_variables
    from driftguard.pipeline import pipeline as pipeline_lib

    features = pipeline_lib.monitored_features(config)     # read here, from the local schema
    variables = secret_variables(parse_alerts_config(config.alerts, task=config.task))
    config = in_image(config, image_project_dir)
    import yaml
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kfp_v2

    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipe = create_check_and_train_pipeline(config, span, data_root=data_root, pipeline_root=pipeline_root,
                                           blocked_spans=blocked_spans, features=features)
    runner = kfp_v2.KubeflowV2DagRunner(
        config=kfp_v2.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=str(out), output_filename=PIPELINE_JOB_FILE)
    with _kfp_schema_titles(), _cond_over_resolver_inputs():
        job = runner.run(pipe, write_out=True)
    spec = dict(job["pipelineSpec"])
    # KFP OSS has no runtime_config.gcs_output_directory: the root travels in the spec.
    spec.setdefault("defaultPipelineRoot", pipe.pipeline_info.pipeline_root)
    spec_path = out / PIPELINE_SPEC_FILE
    which = "the newest span when the run starts" if span is None else f"span {int(span)}"
    header = (f"# driftguard: span check of {which} + training under a Cond on "
              f"{GATE_ID}.{RETRAIN_PROPERTY} == 1.\n# Compiled by TFX {TFX_VERSION} "
              f"KubeflowV2DagRunner; upload with kfp.Client (driftguard submit).\n")
    documents = [spec]
    if variables:
        header += (f"# {DELIVERY_ID} reads {', '.join(variables)} from the Kubernetes secret "
                   f"{alerts_secret!r} (the platform spec below; values never appear here).\n")
        documents.append(secrets_platform_spec(spec, DELIVERY_ID, alerts_secret, variables))
    spec_path.write_text(header + yaml.safe_dump_all(documents, sort_keys=False))
    return {"pipeline_job": out / PIPELINE_JOB_FILE, "pipeline_spec": spec_path, "secret_variables": variables}


def secrets_platform_spec(spec: dict, task: str, secret: str, variables: Sequence[str]) -> dict:
    """KFP's Kubernetes platform spec (the document kfp-kubernetes' ``use_secret_as_env`` writes
    after the PipelineSpec) giving ``task``'s container each of ``variables`` from the key of the
    same name in the Kubernetes secret ``secret``."""
    component = spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]
    executor = spec["components"][component]["executorLabel"]
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {executor: {"secretAsEnv": [
        {"secretName": secret, "keyToEnv": [{"secretKey": v, "envVar": v} for v in variables]}]}}}}}}


def executor_class_paths(pipeline_spec: dict) -> Dict[str, str]:
    """{executor label: class path} of every Python-class executor in a compiled spec."""
    out = {}
    for label, executor in pipeline_spec.get("deploymentSpec", {}).get("executors", {}).items():
        args = executor.get("container", {}).get("args", [])
        for i, arg in enumerate(args[:-1]):
            if arg == "--executor_class_path":
                out[label] = args[i + 1]
        # Custom components carry their class path inside the serialized executable spec.
        for i, arg in enumerate(args[:-1]):
            if arg == "--executable_spec" and label not in out:
                spec = json.loads(args[i + 1])
                path = spec.get("classPath") or spec.get("class_path")
                if path:
                    out[label] = path
    return out


def load_pipeline_yaml(path) -> dict:
    """The PipelineSpec dict of a compiled ``pipeline.yaml`` (comments skipped; its first document)."""
    import yaml

    return next(yaml.safe_load_all(pathlib.Path(os.fspath(path)).read_text()))


def load_platform_spec(path) -> dict:
    """The platform spec of a compiled ``pipeline.yaml`` (its second document), or {}."""
    import yaml

    documents = list(yaml.safe_load_all(pathlib.Path(os.fspath(path)).read_text()))
    return documents[1] if len(documents) > 1 else {}
