"""Builds the driftguard TFX pipelines from one project Config.

Training pipeline, for a window of spans::

    ExampleGen (driftguard's SpanExampleGen: every span of the window, hash-split train/eval)
    -> StatisticsGen -> ExampleValidator (schemas/<model>/v<N>/schema.pbtxt, ImportSchemaGen)
    -> AnomalyGate (error severity stops the run here)
    -> Transform (the project's preprocessing_fn) -> Trainer (its run_fn)
    Resolver (latest blessed model) -> Evaluator (TFMA: the config's metrics, value + change thresholds)
    -> RegistryPusher (only when blessed)

Span-check pipeline, for one span::

    ExampleGen (one span) -> StatisticsGen -> ExampleValidator (schema of the config's version)
                          -> DriftDetector (vs the profile next to the serving model version)
                          -> PredictionMonitor (the serving model's predictions on the span)
                          -> RetrainGate (alert rules + retraining policy -> int property `retrain`)

Which spans the ExampleGen reads is decided when it runs, the same way on every orchestrator:
the spans the pipeline was built with (the CLI's ``check --span 7``, a window it chose), else
the window of a RetrainGate decision (the Kubeflow pipeline's training branch), else the newest
span(s) the data holds (a scheduled Kubeflow run). The components downstream read the spans
from the Examples artifact, so one compiled pipeline serves every new span. A window is one
ExampleGen, not one per span joined with a channel union (which KubeflowV2DagRunner cannot
compile), and its CSV column types are inferred over the whole window.

The model module is the project's file (TFX's ``module_file``) or an import path. A file is
loaded from where it is (TFX's ``UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES``): packaging it as
a wheel and pip-installing that into every Transform and Trainer run exists for remote
workers, and costs each local run its seconds for nothing.
"""
from __future__ import annotations

import contextlib
import os
from typing import Dict, List, Optional, Sequence

from driftguard.components import tasks as tasks_lib
from driftguard.pipeline.config import Config

RESOLVER_ID = "latest_blessed_model_resolver"
_NO_PACKAGING = "UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES"


@contextlib.contextmanager
def _user_module_packaging(enabled: bool):
    """TFX reads this switch when a Transform or Trainer is constructed."""
    old = os.environ.get(_NO_PACKAGING)
    if enabled:
        os.environ.pop(_NO_PACKAGING, None)
    else:
        os.environ[_NO_PACKAGING] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(_NO_PACKAGING, None)
        else:
            os.environ[_NO_PACKAGING] = old


def module_args(config: Config, fn: str) -> Dict[str, str]:
    """Transform's / Trainer's user-code arguments: ``module_file`` for a file, the function's
    import path for a module (``my_pkg.model.run_fn``)."""
    if config.model.is_file:
        return {"module_file": str(config.module_path)}
    return {fn: f"{config.model.module}.{fn}"}


def project_facts(config: Config) -> Dict[str, object]:
    """What a generic model module may want to know about the project, passed to both
    ``preprocessing_fn(inputs, custom_config)`` and ``run_fn`` (``fn_args.custom_config``) under
    the key ``"driftguard"``: the task, the classes, the label (its raw column and TFMA key) and
    the example-weight key. A module written for one dataset can ignore it."""
    m = config.model
    return {"task": config.task, "classes": list(config.classes), "label_column": m.label.column,
            "label_key": m.label.tfma_key, "example_weight_key": m.example_weight_key}


def eval_config(config: Config):
    """TFMA's EvalConfig from ``evaluation`` (metrics by class name with value and change
    thresholds, slices) and ``model`` (label, signature, output, weights)."""
    import tensorflow_model_analysis as tfma

    e, m = config.evaluation, config.model
    overall = tfma.SlicingSpec()
    metrics = []
    for class_name, settings in e.metrics_for(config.task).items():
        threshold = _threshold(tfma, class_name, settings)
        if threshold is None:
            metrics.append(tfma.MetricConfig(class_name=class_name))
        elif e.gate_slices:
            metrics.append(tfma.MetricConfig(class_name=class_name, threshold=threshold))
        else:
            # The overall slice gates; the other slices are computed and shown. (On the
            # MetricConfig: MetricsSpec.per_slice_thresholds keys the metric without its
            # example-weight flag in TFMA 0.47, so no computed metric ever matches it.)
            metrics.append(tfma.MetricConfig(class_name=class_name, per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[overall], threshold=threshold)]))
    spec_kwargs = dict(signature_name=m.signature, label_key=m.label.tfma_key)
    if m.transform_signature:
        spec_kwargs["preprocessing_function_names"] = [m.transform_signature]
    if m.output:
        spec_kwargs["prediction_key"] = m.output
    if m.example_weight_key:
        spec_kwargs["example_weight_key"] = m.example_weight_key
    options = tfma.Options(include_default_metrics={"value": False})
    # Without include_default_metrics off, TFMA also evaluates the model's compiled Keras
    # metrics, whose names can clash with the configured ones (an "auc" of 200 thresholds).
    if e.min_slice_examples:
        options.min_slice_size.value = int(e.min_slice_examples)
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(**spec_kwargs)],
        slicing_specs=[overall] + [tfma.SlicingSpec(feature_keys=list(s)) for s in e.slices],
        options=options,
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)])


def _threshold(tfma, class_name: str, settings) -> Optional[object]:
    lower, upper = settings.get("min"), settings.get("max")
    absolute, relative = settings.get("baseline_tolerance"), settings.get("baseline_relative_tolerance")
    if lower is None and upper is None and absolute is None and relative is None:
        return None
    kwargs = {}
    if lower is not None or upper is not None:
        bounds = {}
        if lower is not None:
            bounds["lower_bound"] = {"value": float(lower)}
        if upper is not None:
            bounds["upper_bound"] = {"value": float(upper)}
        kwargs["value_threshold"] = tfma.GenericValueThreshold(**bounds)
    if absolute is not None or relative is not None:
        higher = tasks_lib.direction(class_name, settings)
        sign = -1.0 if higher else 1.0     # how much worse the candidate may be, in TFMA's terms
        change = {"direction": tfma.MetricDirection.HIGHER_IS_BETTER if higher
                  else tfma.MetricDirection.LOWER_IS_BETTER}
        if absolute is not None:
            change["absolute"] = {"value": sign * float(absolute)}
        if relative is not None:
            change["relative"] = {"value": sign * float(relative)}
        kwargs["change_threshold"] = tfma.GenericChangeThreshold(**change)
    return tfma.MetricThreshold(**kwargs)


def example_gen(config: Config, spans: Optional[Sequence[int]] = None, data_root: Optional[str] = None, *,
                window_spans: int = 1, decision=None, shuffle: bool = True):
    """driftguard's SpanExampleGen over the project's data: ``spans`` if given, else the window
    of ``decision`` (a RetrainGate output channel), else the newest ``window_spans`` spans the
    data holds when it runs. ``shuffle``: TFX's shuffle of the rows before writing (training)."""
    from driftguard.components.example_gen.component import SpanExampleGen

    d = config.data
    return SpanExampleGen(data_root=str(data_root or config.data_path), pattern=d.pattern, data_format=d.format,
                          splits=dict(d.splits) if d.splits else None, buckets=dict(d.buckets),
                          spans=[int(s) for s in spans] if spans else None, window_spans=window_spans,
                          decision=decision, shuffle=shuffle).with_id("ExampleGen")


def metadata_connection(config: Config):
    """The pipeline's MLMD connection (the config's ``metadata:``; pipeline/metadata.py)."""
    from driftguard.pipeline import metadata

    return metadata.pipeline_connection_config(config)


def create_pipeline(config: Config, spans: Optional[Sequence[int]] = None, *, data_root: Optional[str] = None,
                    enable_cache: bool = False, warm_start_from: Optional[str] = None,
                    package_user_module: bool = False, decision=None):
    """The training pipeline over the window ``spans`` (oldest first).

    Args:
      config: the project: data, model module, metrics and thresholds, training parameters.
      spans: the span numbers to train on (at most ``config.training.window_spans``); None with
        ``decision``: the window that decision names, read when the pipeline runs.
      data_root: folder the span pattern is relative to; defaults to ``config.data_path``.
      enable_cache: reuse outputs of identical executions (off: each run is a fresh run).
      warm_start_from: a SavedModel folder (the serving version) whose weights initialize the
        new model (the ``online`` retraining policy), passed to run_fn as
        ``fn_args.custom_config["warm_start_from"]``.
      package_user_module: package a module file as a wheel for remote workers (TFX's default);
        off for local runs, which read the file where it is.
      decision: a RetrainGate's ``decision`` channel (the Kubeflow pipeline's training branch).
    """
    from tfx import v1 as tfx

    from driftguard.components.anomaly_gate.component import AnomalyGate
    from driftguard.components.registry_pusher.component import RegistryPusher

    spans = [int(s) for s in spans or ()]
    if not spans and decision is None:
        raise ValueError("create_pipeline needs at least one span (or a RetrainGate decision)")
    if len(set(spans)) != len(spans):
        raise ValueError(f"spans must be distinct, got {spans}")

    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(config.schema_file))
    eg = example_gen(config, spans or None, data_root, decision=decision)
    examples = eg.outputs["examples"]
    stats = tfx.components.StatisticsGen(examples=examples)
    validator = tfx.components.ExampleValidator(statistics=stats.outputs["statistics"],
                                                schema=schema_gen.outputs["schema"])
    components: List = [schema_gen, eg, stats, validator]
    gate = AnomalyGate(anomalies=validator.outputs["anomalies"], schema=schema_gen.outputs["schema"],
                       fail_on_severity=config.validation.fail_on_severity, examples=examples)
    schema = gate.outputs["validated_schema"]
    t = config.training
    custom_config = dict(t.custom_config or {})
    if warm_start_from:
        custom_config["warm_start_from"] = str(warm_start_from)
    custom_config["driftguard"] = project_facts(config)
    with _user_module_packaging(package_user_module):
        # Transform's own pre/post statistics would double its run time; the profile takes the
        # per-span statistics StatisticsGen already computed.
        transform = tfx.components.Transform(examples=examples, schema=schema, disable_statistics=True,
                                             custom_config={"driftguard": project_facts(config)},
                                             **module_args(config, "preprocessing_fn"))
        trainer = tfx.components.Trainer(
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema,
            train_args=tfx.proto.TrainArgs(num_steps=t.train_steps),
            eval_args=tfx.proto.EvalArgs(num_steps=t.eval_steps),
            custom_config=custom_config,
            **module_args(config, "run_fn"))
    resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(RESOLVER_ID)
    evaluator = tfx.components.Evaluator(
        examples=examples,
        model=trainer.outputs["model"],
        baseline_model=resolver.outputs["model"],
        eval_config=eval_config(config),
    )
    pusher = RegistryPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        schema=schema,
        statistics=stats.outputs["statistics"],
        evaluation=evaluator.outputs["evaluation"],
        examples=examples,
        registry_dir=str(config.model_registry),
        registry_uri=config.registry_uri or None,    # object storage: registry_dir is its local mirror
        schema_version=config.schema_version,
        profile_extra={"model_name": config.model_name, "task": config.task, "classes": list(config.classes),
                       "metric": config.metric},
        reference_max_rows=config.drift.max_rows,
        require_approval=config.retrain.require_approval,
        model_spec=config.model_spec(),
        rollout_mode=config.rollout.mode if config.rollout else None,
    )
    components += [gate, transform, trainer, resolver, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=config.training_pipeline_name(),
        pipeline_root=config.pipeline_root_of(config.training_pipeline_name()),
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection(config),
        beam_pipeline_args=list(config.beam_args),
    )


def create_check_pipeline(config: Config, span: Optional[int] = None, *, data_root: Optional[str] = None,
                          blocked_spans: Sequence[int] = (), features: Optional[Sequence[str]] = None,
                          deliver_alerts: bool = False):
    """The span-check pipeline: validate a span and compare it with the serving baseline.

    ``span``: the span to check; None: the newest span the data holds when the pipeline runs
    (one compiled pipeline for every new span). The DriftDetector finds its baseline on disk
    (the newest version in the registry), so the check needs no resolver and runs the same on
    every orchestrator. ``blocked_spans``: earlier spans with training-blocking schema
    anomalies, which the RetrainGate keeps out of a window; ``features``: the compared
    features (default: read from the schema); ``deliver_alerts``: an AlertDelivery node after
    the gate queues its alerts in the project's outbox and delivers them (the Airflow and
    Kubeflow pipelines; the CLI delivers them itself, printing what happened).
    """
    from tfx import v1 as tfx

    from driftguard.components.drift_detector.component import DriftDetector
    from driftguard.components.prediction_monitor.component import PredictionMonitor
    from driftguard.components.retrain_gate.component import RetrainGate

    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(config.schema_file))
    # no shuffle: the check only aggregates the span, and a shuffle holds it in memory whole
    eg = example_gen(config, [int(span)] if span is not None else None, data_root, window_spans=1, shuffle=False)
    examples = eg.outputs["examples"]
    stats = tfx.components.StatisticsGen(examples=examples)
    validator = tfx.components.ExampleValidator(statistics=stats.outputs["statistics"],
                                                schema=schema_gen.outputs["schema"])
    d = config.drift
    detector = DriftDetector(examples=examples, anomalies=validator.outputs["anomalies"],
                             registry_dir=str(config.model_registry), alpha=d.alpha, max_rows=d.max_rows,
                             exclude=d.exclude, include=d.include, feature_config=d.features,
                             reference=drift_reference(config, data_root), slices=drift_slices(config))
    monitor = PredictionMonitor(examples=examples, registry_dir=str(config.model_registry),
                                model_spec=config.model_spec(), metric=config.metric,
                                features=monitored_features(config) if features is None else list(features),
                                max_rows=d.max_rows,
                                slices={**drift_slices(config), "alpha": d.alpha} if d.slices else None)
    r = config.retrain
    gate = RetrainGate(examples=examples, drift_report=detector.outputs["drift_report"],
                       model_monitor=monitor.outputs["model_monitor"],
                       registry_dir=str(config.model_registry), model_name=config.model_name,
                       policy={"policy": r.policy, "every_spans": r.every_spans,
                               "trigger_severity": r.trigger_severity, "min_spans_between": r.min_spans_between,
                               "impact_threshold": r.impact_threshold, "impact_confidence": r.impact_confidence,
                               "impact_metric": r.impact_metric or config.metric,
                               "fail_on_severity": config.validation.fail_on_severity,
                               "blocked_spans": sorted(int(s) for s in blocked_spans)},
                       window_spans=config.training.window_spans, alerts_config=config.alerts,
                       task=config.task)
    components = [schema_gen, eg, stats, validator, detector, monitor, gate]
    if deliver_alerts:
        from driftguard.components.alert_delivery.component import AlertDelivery

        # the sinks name environment variables; the outbox is <runs>/alerts/outbox.sqlite, shared
        # with `driftguard run` and `driftguard alerts deliver`
        components.append(AlertDelivery(decision=gate.outputs["decision"], alerts_config=config.alerts,
                                        outbox_dir=str(config.runs_path)))
    return tfx.dsl.Pipeline(
        pipeline_name=config.check_pipeline_name(),
        pipeline_root=config.pipeline_root_of(config.check_pipeline_name()),
        components=components,
        enable_cache=False,
        metadata_connection_config=metadata_connection(config),
        beam_pipeline_args=list(config.beam_args),
    )


def drift_reference(config: Config, data_root: Optional[str] = None) -> Dict[str, object]:
    """The DriftDetector's ``reference``: ``drift.reference`` and where the spans are, so the
    executor finds "the previous span" (or a year earlier, or a rolling window) when it runs."""
    d = config.data
    return {"settings": config.drift.reference.to_dict(),
            "data": {"root": str(data_root or config.data_path), "pattern": d.pattern, "format": d.format,
                     "patterns": sorted(d.splits.values()) if d.splits else [d.pattern]}}


def drift_slices(config: Config) -> Dict[str, object]:
    """The DriftDetector's ``slices``: ``drift.slices`` with its minimum size and share of alpha."""
    d = config.drift
    if not d.slices:
        return {}
    return {"slices": [list(s) for s in d.slices], "min_rows": d.min_slice_rows, "alpha_share": d.slice_alpha_share}


def monitored_features(config: Config) -> List[str]:
    """The features compared for drift (the schema's serving features, include/exclude applied)."""
    from driftguard.components import model_io

    schema = model_io.read_schema(config.schema_file)
    return model_io.compared_features(schema, config.drift.include, config.drift.exclude)
