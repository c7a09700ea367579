"""Builds the driftguard TFX pipelines from one project Config.

Training pipeline, for a rolling window of spans ``[s_1, ..., s_K]``::

    per span s:  ExampleGen_span<s> -> StatisticsGen_span<s> -> ExampleValidator_span<s>
    ImportSchemaGen (schemas/<model>/v<N>/schema.pbtxt)
    AnomalyGate (all spans' anomalies; error severity stops the run here)
    -> Transform (the project's preprocessing_fn) -> Trainer (its run_fn)
    Resolver (latest blessed model) -> Evaluator (TFMA: the config's metrics, value + change thresholds)
    -> RegistryPusher (only when blessed)

Span-check pipeline, for one new span ``s``::

    ExampleGen_span<s> -> StatisticsGen -> ExampleValidator (schema of the config's version)
                       -> DriftDetector (vs the profile next to the serving model version)
                       -> PredictionMonitor (the serving model's predictions on the span)
                       -> RetrainGate (alert rules + retraining policy -> int property `retrain`)

ExampleGen ingests exactly one span per node (TFX's rule for ``RangeConfig``), so the window
is one ExampleGen per span, joined with ``tfx.dsl.union`` where Transform and Evaluator read
all of them. Every span is validated on its own, so an anomaly names its span.

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


def example_gen(config: Config, span: int, data_root: Optional[str] = None):
    """One ExampleGen reading span ``span`` in the project's format and layout."""
    from tfx import v1 as tfx

    pattern = config.spans
    root = str(data_root or config.data_path)
    split_patterns = dict(config.data.splits) if config.data.splits else {"single_split": config.data.pattern}
    native = pattern.unit == "span"        # {SPAN}: TFX resolves it and records the span in MLMD
    input_config = tfx.proto.Input(splits=[
        tfx.proto.Input.Split(name=name, pattern=p if native else pattern.glob(span, p))
        for name, p in split_patterns.items()])
    kwargs = dict(input_base=root, input_config=input_config)
    if not config.data.splits:
        kwargs["output_config"] = tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
            tfx.proto.SplitConfig.Split(name=name, hash_buckets=n) for name, n in config.data.buckets.items()]))
    if native:
        kwargs["range_config"] = tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=int(span), end_span_number=int(span)))
    fmt = config.data.format
    if fmt == "csv":
        component = tfx.components.CsvExampleGen(**kwargs)
    elif fmt == "tfrecord":
        component = tfx.components.ImportExampleGen(**kwargs)
    else:
        from tfx.components.example_gen.component import FileBasedExampleGen
        from tfx.dsl.components.base import executor_spec

        from driftguard.components.example_gen import parquet_executor   # zeros kept (see its doc)

        component = FileBasedExampleGen(custom_executor_spec=executor_spec.BeamExecutorSpec(
            parquet_executor.Executor), **kwargs)
    return component.with_id(f"ExampleGen_span{int(span)}")


def _metadata(config: Config):
    from tfx import v1 as tfx

    return tfx.orchestration.metadata.sqlite_metadata_connection_config(str(config.metadata_path))


def create_pipeline(config: Config, spans: Sequence[int], *, data_root: Optional[str] = None,
                    enable_cache: bool = False, warm_start_from: Optional[str] = None,
                    package_user_module: bool = False):
    """The training pipeline over the window ``spans`` (oldest first).

    Args:
      config: the project: data, model module, metrics and thresholds, training parameters.
      spans: the span numbers to train on (at most ``config.training.window_spans``).
      data_root: folder the span pattern is relative to; defaults to ``config.data_path``.
      enable_cache: reuse outputs of identical executions (off: each run is a fresh run).
      warm_start_from: a SavedModel folder (the serving version) whose weights initialize the
        new model (the ``online`` retraining policy), passed to run_fn as
        ``fn_args.custom_config["warm_start_from"]``.
      package_user_module: package a module file as a wheel for remote workers (TFX's default);
        off for local runs, which read the file where it is.
    """
    from tfx import v1 as tfx
    from tfx.types import channel_utils

    from driftguard.components.anomaly_gate.component import AnomalyGate
    from driftguard.components.registry_pusher.component import RegistryPusher

    spans = [int(s) for s in spans]
    if not spans:
        raise ValueError("create_pipeline needs at least one span")
    if len(set(spans)) != len(spans):
        raise ValueError(f"spans must be distinct, got {spans}")

    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(config.schema_file))
    example_gens, statistics, validators = [], [], []
    components: List = [schema_gen]
    for span in spans:
        eg = example_gen(config, span, data_root)
        stats = tfx.components.StatisticsGen(examples=eg.outputs["examples"]).with_id(
            f"StatisticsGen_span{span}")
        validator = tfx.components.ExampleValidator(
            statistics=stats.outputs["statistics"], schema=schema_gen.outputs["schema"]
        ).with_id(f"ExampleValidator_span{span}")
        example_gens.append(eg)
        statistics.append(stats)
        validators.append(validator)
        components += [eg, stats, validator]

    def joined(channels):
        return channels[0] if len(channels) == 1 else channel_utils.union(channels)

    examples = joined([eg.outputs["examples"] for eg in example_gens])
    gate = AnomalyGate(anomalies=joined([v.outputs["anomalies"] for v in validators]),
                       schema=schema_gen.outputs["schema"],
                       fail_on_severity=config.validation.fail_on_severity,
                       span_by_node={v.id: s for v, s in zip(validators, spans)},
                       span_labels={s: config.span_label(s) for s in spans})
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
    span_by_node = {eg.id: span for eg, span in zip(example_gens, spans)}
    span_by_node.update({s.id: span for s, span in zip(statistics, spans)})
    pusher = RegistryPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        schema=schema,
        statistics=joined([s.outputs["statistics"] for s in statistics]),
        evaluation=evaluator.outputs["evaluation"],
        examples=examples,
        registry_dir=str(config.model_registry),
        schema_version=config.schema_version,
        profile_extra={"model_name": config.model_name, "task": config.task, "classes": list(config.classes)},
        span_by_node=span_by_node,
        reference_max_rows=config.drift.max_rows,
        require_approval=config.retrain.require_approval,
        model_spec=config.model_spec(),
        span_labels={s: config.span_label(s) for s in spans},
    )
    components += [gate, transform, trainer, resolver, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=config.training_pipeline_name(),
        pipeline_root=str(config.pipeline_root / config.training_pipeline_name()),
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=_metadata(config),
        beam_pipeline_args=list(config.beam_args),
    )


def create_check_pipeline(config: Config, span: int, *, data_root: Optional[str] = None,
                          blocked_spans: Sequence[int] = (), available_spans: Sequence[int] = (),
                          features: Optional[Sequence[str]] = None):
    """The span-check pipeline: validate span ``span`` and compare it with the serving baseline.

    The DriftDetector finds its baseline on disk (the newest version in the registry), so the
    check needs no resolver and runs the same on every orchestrator. ``blocked_spans``: earlier
    spans with training-blocking schema anomalies, which the RetrainGate keeps out of a window;
    ``available_spans``: the spans the data holds (the gate's training window takes the newest
    of them); ``features``: the compared features (default: read from the schema).
    """
    from tfx import v1 as tfx

    from driftguard.components.drift_detector.component import DriftDetector
    from driftguard.components.prediction_monitor.component import PredictionMonitor
    from driftguard.components.retrain_gate.component import RetrainGate

    span = int(span)
    label = config.span_label(span)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(config.schema_file))
    eg = example_gen(config, span, data_root)
    stats = tfx.components.StatisticsGen(examples=eg.outputs["examples"])
    validator = tfx.components.ExampleValidator(statistics=stats.outputs["statistics"],
                                                schema=schema_gen.outputs["schema"])
    d = config.drift
    detector = DriftDetector(examples=eg.outputs["examples"], anomalies=validator.outputs["anomalies"],
                             registry_dir=str(config.model_registry), span=span, span_label=label,
                             alpha=d.alpha, max_rows=d.max_rows, exclude=d.exclude, include=d.include,
                             feature_config=d.features)
    monitor = PredictionMonitor(examples=eg.outputs["examples"], registry_dir=str(config.model_registry),
                                span=span, span_label=label, model_spec=config.model_spec(), metric=config.metric,
                                features=monitored_features(config) if features is None else list(features),
                                max_rows=d.max_rows)
    r = config.retrain
    if not available_spans:
        available_spans = _available(config, data_root, span)
    window = sorted(set(int(s) for s in available_spans) | {span}) if available_spans else []
    gate = RetrainGate(drift_report=detector.outputs["drift_report"], model_monitor=monitor.outputs["model_monitor"],
                       registry_dir=str(config.model_registry), span=span, model_name=config.model_name,
                       policy={"policy": r.policy, "every_spans": r.every_spans,
                               "trigger_severity": r.trigger_severity, "min_spans_between": r.min_spans_between,
                               "fail_on_severity": config.validation.fail_on_severity,
                               "blocked_spans": sorted(int(s) for s in blocked_spans),
                               "available_spans": window,
                               "span_labels": {str(s): config.span_label(s)
                                               for s in window or range(max(0, span - 64), span + 1)}},
                       window_spans=config.training.window_spans, alerts_config=config.alerts,
                       task=config.task, span_label=label)
    return tfx.dsl.Pipeline(
        pipeline_name=config.check_pipeline_name(),
        pipeline_root=str(config.pipeline_root / config.check_pipeline_name()),
        components=[schema_gen, eg, stats, validator, detector, monitor, gate],
        enable_cache=False,
        metadata_connection_config=_metadata(config),
        beam_pipeline_args=list(config.beam_args),
    )


def _available(config: Config, data_root: Optional[str], span: int) -> List[int]:
    """The spans the data holds up to ``span`` (none when the data is not reachable from here,
    as when compiling for a cluster: the gate then takes consecutive span numbers)."""
    from driftguard.pipeline import spanfiles

    try:
        return [s for s in spanfiles.available_spans(spanfiles.Layout.of(config, data_root)) if s <= span]
    except (spanfiles.SpanFileError, OSError):
        return []


def monitored_features(config: Config) -> List[str]:
    """The features compared for drift (the schema's serving features, include/exclude applied)."""
    from driftguard.components import model_io

    schema = model_io.read_schema(config.schema_file)
    return model_io.compared_features(schema, config.drift.include, config.drift.exclude)
