"""Builds the driftguard TFX pipelines from one Config.

Training pipeline, for a rolling window of spans ``[s_1, ..., s_K]``::

    per span s:  ExampleGen_span<s> -> StatisticsGen_span<s> -> ExampleValidator_span<s>
    ImportSchemaGen (schemas/<model>/v<N>/schema.pbtxt)
    AnomalyGate (all spans' anomalies; error severity stops the run here)
    -> Transform (all spans) -> Trainer (Keras)
    Resolver (latest blessed model) -> Evaluator (TFMA: value + change thresholds)
    -> RegistryPusher (only when blessed)

Span-check pipeline, for one new span ``s``::

    ExampleGen_span<s> -> StatisticsGen -> ExampleValidator (schema of the config's version)
                       -> DriftDetector (vs the profile next to the serving model version)
                       -> PredictionMonitor (the serving model's predictions on the span)
                       -> RetrainGate (alert rules + retraining policy -> int property `retrain`)

ExampleGen ingests exactly one span per node (TFX's rule for ``RangeConfig``), so the window
is one ExampleGen per span, joined with ``tfx.dsl.union`` where Transform and Evaluator read
all of them. Every span is validated on its own, so an anomaly names its span.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from driftguard.pipeline.config import Config

# Import paths, not a module_file: `pipeline` is an installed package (also in the container
# image), so TFX needs no per-run user-code wheel build and pip install (~20 s per run).
PREPROCESSING_FN = "driftguard.pipeline.taxi_model.preprocessing_fn"
RUN_FN = "driftguard.pipeline.taxi_model.run_fn"
LABEL_FN = "driftguard.pipeline.taxi_labels.labels"  # raw columns -> label, for realized accuracy (no TF)
SPAN_PATTERN = "span-{SPAN}/*"
RESOLVER_ID = "latest_blessed_model_resolver"


def eval_config(config: Config):
    """TFMA config: AUC must reach ``min_auc`` and not fall more than ``max_auc_drop`` below
    the blessed baseline on the same evaluation data."""
    import tensorflow_model_analysis as tfma

    from driftguard.pipeline import taxi_model

    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": config.evaluation.min_auc}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -config.evaluation.max_auc_drop}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default",
            label_key=taxi_model.LABEL_KEY,
            preprocessing_function_names=["transform_features"])],
        # The gate judges the overall slice only; thresholds apply to every configured slice,
        # and per-payment-type slices are too small for a meaningful AUC.
        slicing_specs=[tfma.SlicingSpec()],
        # Without this TFMA also evaluates the model's compiled Keras metrics, whose "auc"
        # (200 thresholds) shares its name with TFMA's AUC below: one name, one number.
        options=tfma.Options(include_default_metrics={"value": False}),
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="BinaryAccuracy"),
            tfma.MetricConfig(class_name="AUC", threshold=auc_threshold),
        ])])


def example_gen(config: Config, span: int, data_root: Optional[str] = None):
    from tfx import v1 as tfx

    return tfx.components.CsvExampleGen(
        input_base=str(data_root or config.data_path),
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="single_split", pattern=SPAN_PATTERN)]),
        range_config=tfx.proto.RangeConfig(static_range=tfx.proto.StaticRange(
            start_span_number=int(span), end_span_number=int(span))),
    ).with_id(f"ExampleGen_span{int(span)}")


def create_pipeline(config: Config, spans: Sequence[int], *, data_root: Optional[str] = None,
                    enable_cache: bool = False, warm_start_from: Optional[str] = None):
    """The training pipeline over the window ``spans`` (oldest first).

    Args:
      config: paths, thresholds and training parameters.
      spans: the span numbers to train on (at most ``config.training.window_spans``).
      data_root: folder holding ``span-<N>/`` folders; defaults to ``config.data_path``.
      enable_cache: reuse outputs of identical executions (off: each run is a fresh run).
      warm_start_from: a SavedModel folder (the serving version) whose weights initialize the
        new model (the ``online`` retraining policy).
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
                       span_by_node={v.id: s for v, s in zip(validators, spans)})
    schema = gate.outputs["validated_schema"]
    # Transform's own pre/post statistics would double its run time; the profile takes the
    # per-span statistics StatisticsGen already computed.
    transform = tfx.components.Transform(examples=examples, schema=schema,
                                         preprocessing_fn=PREPROCESSING_FN,
                                         disable_statistics=True)
    t = config.training
    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema,
        train_args=tfx.proto.TrainArgs(num_steps=t.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=t.eval_steps),
        custom_config={"batch_size": t.batch_size, "hidden_units": list(t.hidden_units),
                       "learning_rate": t.learning_rate,
                       **({"warm_start_from": str(warm_start_from)} if warm_start_from else {})},
    )
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
        statistics=joined([s.outputs["statistics"] for s in statistics]),
        evaluation=evaluator.outputs["evaluation"],
        examples=examples,
        registry_dir=str(config.model_registry),
        schema_version=config.schema_version,
        profile_extra={"model_name": config.model_name},
        span_by_node={s.id: span for s, span in zip(statistics, spans)},
        reference_max_rows=config.drift.max_rows,
        require_approval=config.retrain.require_approval,
    )
    components += [gate, transform, trainer, resolver, evaluator, pusher]
    return tfx.dsl.Pipeline(
        pipeline_name=config.training_pipeline_name(),
        pipeline_root=str(config.pipeline_root / config.training_pipeline_name()),
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(config.metadata_path)),
        beam_pipeline_args=list(config.beam_args),
    )


def create_check_pipeline(config: Config, span: int, *, data_root: Optional[str] = None,
                          blocked_spans: Sequence[int] = ()):
    """The span-check pipeline: validate span ``span`` and compare it with the serving baseline.

    The DriftDetector finds its baseline on disk (the newest version in the registry), so the
    check needs no resolver and runs the same on every orchestrator. ``blocked_spans``: earlier
    spans with training-blocking schema anomalies, which the RetrainGate keeps out of a window.
    """
    from tfx import v1 as tfx

    from driftguard.components.drift_detector.component import DriftDetector
    from driftguard.components.prediction_monitor.component import PredictionMonitor
    from driftguard.components.retrain_gate.component import RetrainGate

    span = int(span)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(config.schema_file))
    eg = example_gen(config, span, data_root)
    stats = tfx.components.StatisticsGen(examples=eg.outputs["examples"])
    validator = tfx.components.ExampleValidator(statistics=stats.outputs["statistics"],
                                                schema=schema_gen.outputs["schema"])
    detector = DriftDetector(examples=eg.outputs["examples"], anomalies=validator.outputs["anomalies"],
                             registry_dir=str(config.model_registry),
                             span=span, alpha=config.drift.alpha, max_rows=config.drift.max_rows,
                             exclude=config.drift.exclude, feature_config=config.drift.features)
    monitor = PredictionMonitor(examples=eg.outputs["examples"], registry_dir=str(config.model_registry),
                                span=span, label_fn=LABEL_FN, max_rows=config.drift.max_rows)
    r = config.retrain
    gate = RetrainGate(drift_report=detector.outputs["drift_report"], model_monitor=monitor.outputs["model_monitor"],
                       registry_dir=str(config.model_registry), span=span, model_name=config.model_name,
                       policy={"policy": r.policy, "every_spans": r.every_spans,
                               "trigger_severity": r.trigger_severity, "min_spans_between": r.min_spans_between,
                               "fail_on_severity": config.validation.fail_on_severity,
                               "blocked_spans": sorted(int(s) for s in blocked_spans)},
                       window_spans=config.training.window_spans, alerts_config=config.alerts)
    return tfx.dsl.Pipeline(
        pipeline_name=config.check_pipeline_name(),
        pipeline_root=str(config.pipeline_root / config.check_pipeline_name()),
        components=[schema_gen, eg, stats, validator, detector, monitor, gate],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(config.metadata_path)),
        beam_pipeline_args=list(config.beam_args),
    )
