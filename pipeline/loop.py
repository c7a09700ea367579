"""The closed loop as a library: train a window, check a span, deliver the span's alerts through
the outbox, replay spans in time order, and record what happened in ``runs/state.json``.

``driftguard run | train | check | status`` (``cli/loop_commands.py``) call these functions
and print; an Airflow task or a KFP component can call the same ones. Nothing here knows click
or prints:

- what the loop has to say goes to a :class:`Reporter`: ``say`` for results (a pushed version,
  a span's row: the CLI's stdout), ``note`` for what is starting or a failure the loop goes on
  after (stderr), ``step_log`` to set up the full log of a step once its inputs are validated.
  The base class logs everything to this module's logger, which is what a task wants;
- an error the user can act on is a :class:`LoopError` whose message says what was wrong and
  what to do (the CLI prints it as ``error: ...`` and exits 2).

Every function validates its inputs (schema version, span files, the runs folder's lock, span
fingerprints) before TensorFlow or TFX is imported, so a bad span fails in a second.
"""
from __future__ import annotations

import json
import logging
import pathlib
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from driftguard.components import artifact_dirs
from driftguard.pipeline import config as config_lib
from driftguard.pipeline import metadata as metadata_lib
from driftguard.pipeline import state

log = logging.getLogger(__name__)


class LoopError(Exception):
    """An error the user can act on; the message names the culprit and the way out."""


class Reporter:
    """Where the loop says what it does. Subclass it to print (the CLI) or leave it to log."""

    def say(self, text: str) -> None:
        """A result: a trained or pushed version, a replayed span's row, a summary."""
        log.info("%s", text)

    def note(self, text: str) -> None:
        """Progress (a pipeline starts) or a failure the loop goes on after (a failed retraining)."""
        log.info("%s", text)

    def step_log(self, step: str) -> Optional[pathlib.Path]:
        """Called when a step (``run``, ``train``, ``check-span8``) has validated its inputs and is
        about to run TFX: set up its full log and return the file, which summaries and errors
        name. The default keeps logging as it is (an orchestrator keeps the task's log): None."""
        return None


def _full_log(path: Optional[pathlib.Path]) -> str:
    return f"full log: {path}" if path is not None else "full log: the task's log"


def _labels(cfg: config_lib.Config, spans) -> str:
    return cfg.spans.format_list(spans)


# ---------------------------------------------------------------- inputs, checked before any work

def check_schema(cfg: config_lib.Config) -> None:
    """The configured schema version exists and parses, before any pipeline work starts."""
    from driftguard.pipeline import schemas

    if not cfg.schema_file.is_file():
        root = cfg.schema_root
        have = ", ".join(f"v{v}" for v in schemas.list_versions(root)) or "none"
        hint = "" if have != "none" else " (infer a first one: driftguard schema infer --from-spans ...)"
        raise LoopError(f"schema version {cfg.schema_version} not found (config key schema_version): "
                        f"{cfg.schema_file} does not exist (versions under {root}: {have}){hint}")
    try:
        schemas.load_schema(cfg.schema_file)
    except schemas.SchemaVersionError as e:
        raise LoopError(str(e)) from None


def check_spans(cfg: config_lib.Config, spans: Sequence[int], data_root: Optional[pathlib.Path] = None,
                training: bool = False):
    """Every file of every span is a file ExampleGen can read in the project's format
    (pipeline/spanfiles.py), checked before any TFX import or runs-folder write; training spans
    must hold the label column. Returns their SpanInfos (fingerprints).

    The schema's column types are checked in Parquet and TFRecord files, and in the CSV files of
    training spans: one ExampleGen reads a training window, inferring a CSV column's type over
    all its spans, so text in one span's numeric column is named here, by span, column and
    line. A span to check is not refused for it: the check reports it (a type anomaly and a
    critical alert), as a monitor must."""
    from driftguard.pipeline import schemas, spanfiles

    required = {cfg.model.label.column: "model.label.column"} if training and cfg.model.label.column else None
    types = None
    if (cfg.data.format != "csv" or training) and cfg.schema_file.is_file():
        try:
            types = spanfiles.schema_column_types(schemas.load_schema(cfg.schema_file))
        except schemas.SchemaVersionError:
            types = None
    try:
        return spanfiles.validate_spans(spanfiles.Layout.of(cfg, data_root), spans, required_columns=required,
                                        column_types=types)
    except spanfiles.SpanFileError as e:
        raise LoopError(str(e)) from None


def _lock_runs(cfg: config_lib.Config, command: str) -> None:
    """Take the runs folder's lock (pipeline/runlock.py) or fail at once naming its holder."""
    from driftguard.pipeline import runlock

    try:
        runlock.acquire(cfg.runs_path, command)
    except runlock.RunLockBusy as e:
        raise LoopError(str(e)) from None
    except OSError as e:
        raise LoopError(f"cannot lock the runs folder {cfg.runs_path}: {e.strerror or e}") from None


def _use_spans(cfg: config_lib.Config, infos, command: str, record: bool = True) -> None:
    """Refuse a span whose content changed since this runs folder used it; remember new ones."""
    from driftguard.pipeline import spanfiles

    try:
        spanfiles.changed_spans(state.span_fingerprints(cfg.runs_path), infos)
        if record:
            state.record_fingerprints(cfg.runs_path, {i.span: i.fingerprint() for i in infos}, command)
    except (spanfiles.SpanChangedError, ValueError) as e:
        raise LoopError(str(e)) from None
    except OSError as e:
        raise LoopError(f"cannot record the span fingerprints in "
                        f"{cfg.runs_path / state.STATE_FILE}: {e.strerror or e}") from None


# ---------------------------------------------------------------- training

def train_spans(cfg: config_lib.Config, spans: Sequence[int], *, runner: Optional[str] = None,
                data_root: Optional[pathlib.Path] = None, warm_start_from: Optional[str] = None,
                reporter: Optional[Reporter] = None):
    """Run the training pipeline on ``spans``; say what it pushed; return the RunResult.
    A failed or incomplete pipeline is a :class:`LoopError` (nothing was pushed)."""
    from driftguard.pipeline import pipeline as pipeline_lib
    from driftguard.pipeline import runner as runner_lib

    reporter = reporter or Reporter()
    data_root = pathlib.Path(data_root or cfg.data_path)
    check_schema(cfg)
    infos = check_spans(cfg, spans, data_root, training=True)
    _lock_runs(cfg, "train")
    _use_spans(cfg, infos, "train")
    log_path = reporter.step_log("train")
    reporter.note(f"training {cfg.model_name} ({cfg.task}) on span(s) {_labels(cfg, spans)} from {data_root} "
                  f"(schema v{cfg.schema_version}, runner {runner or cfg.runner})")
    t0 = time.monotonic()
    # A killed run (SIGKILL, OOM) leaves its node RUNNING in MLMD. Resume it: with the cache on,
    # the completed steps are reused, so the Pusher gets the same model artifact and finds the
    # version a killed push already published instead of pushing a retrained copy.
    interrupted = runner_lib.interrupted_nodes(cfg, cfg.training_pipeline_name())
    if interrupted:
        reporter.note("the previous training run was interrupted in "
                      f"{', '.join(n.node_id for n in interrupted)}; resuming it (completed steps "
                      "are reused)")
    pipe = pipeline_lib.create_pipeline(cfg, spans, data_root=str(data_root), warm_start_from=warm_start_from,
                                        enable_cache=bool(interrupted))
    result = runner_lib.run(pipe, cfg, runner)
    _report_training(cfg, result, time.monotonic() - t0, log_path, reporter)
    return result


def _report_training(cfg: config_lib.Config, result, elapsed: float, log_path, reporter: Reporter) -> None:
    failed = result.first_error()
    if failed is not None:
        raise LoopError(
            f"the training pipeline failed at {failed.node_id}:\n"
            f"{node_error(cfg, failed)}\n"
            f"(nothing was pushed; {_full_log(log_path)})")
    if result.not_run or result.runner_error:
        names = ", ".join(n.node_id for n in result.not_run) or "all components"
        cause = f": {result.runner_error}" if result.runner_error else ""
        raise LoopError(f"the training pipeline did not complete{cause}\n"
                        f"(components not run: {names}; {_full_log(log_path)})")
    reporter.say(f"pipeline completed in {elapsed:.0f} s; {_full_log(log_path)}")
    evaluation = evaluation_text(cfg, result)
    version = pushed_version(cfg, result)
    candidate = pending_candidate(cfg, result)
    if candidate is not None:
        reporter.say(f"candidate blessed: {evaluation}\n"
                     f"waiting for approval as candidate {candidate}: driftguard approve {candidate} "
                     f"(or reject {candidate}); serving stays at {serving_version_text(cfg)}")
        return
    if version is None:
        reporter.say(f"candidate NOT blessed by the Evaluator: {evaluation}\n"
                     f"nothing was pushed; serving stays at {serving_version_text(cfg)}")
        return
    serving, _ = serving_labels(cfg)
    stays = "" if serving == version else f" (not served: serving stays at {serving_version_text(cfg)})"
    reporter.say(f"candidate blessed: {evaluation}\n"
                 f"pushed {cfg.model_name} version {version} -> {cfg.model_registry / str(version)}{stays}")


def node_error(cfg: config_lib.Config, node) -> str:
    """A failed node's error: its last exception line, and the line of the user's own module
    that raised it (a run_fn or preprocessing_fn error), when there is one."""
    from driftguard.components import model_io
    from driftguard.pipeline import runner as runner_lib

    text = runner_lib.short_error(node.error)
    path = cfg.module_path if cfg.model.is_file else None
    if path is None:
        try:
            path = model_io.module_file(cfg.model.module)
        except model_io.ModelIOError:
            path = None
    frame = model_io.user_frame_from_text((node.traceback or "") + "\n" + (node.error or ""), path)
    if frame:
        text += f"\nin your model module (model.module): {frame}"
    return text


def pushed_version(cfg: config_lib.Config, result) -> Optional[int]:
    """The registry version the RegistryPusher of this run published, or None."""
    from driftguard.pipeline import runner as runner_lib

    pusher = result.node("RegistryPusher")
    artifact = runner_lib.output_artifact(cfg, pusher.execution_id,
                                          "pushed_model")
    if artifact is None or artifact.custom_properties["pushed"].int_value != 1:
        return None
    return int(artifact.custom_properties["pushed_version"].int_value)


def pending_candidate(cfg: config_lib.Config, result) -> Optional[str]:
    """The candidate id this run's RegistryPusher held for approval, or None."""
    from driftguard.pipeline import runner as runner_lib

    pusher = result.node("RegistryPusher")
    artifact = runner_lib.output_artifact(cfg, pusher.execution_id, "pushed_model")
    if artifact is None or "pending_candidate" not in artifact.custom_properties:
        return None
    return artifact.custom_properties["pending_candidate"].string_value


def evaluation_text(cfg: config_lib.Config, result) -> str:
    """'AUC 0.612 (blessed baseline 0.947); thresholds: AUC >= 0.70 and at most 0.010 below the
    baseline' for every thresholded metric of the run's TFMA output."""
    from driftguard.components import tasks as tasks_lib
    from driftguard.components.registry_pusher.executor import overall_metrics
    from driftguard.pipeline import runner as runner_lib

    node = result.node("Evaluator")
    artifact = runner_lib.output_artifact(cfg, node.execution_id,
                                          "evaluation")
    if artifact is None:
        return "no evaluation was recorded"
    metrics = overall_metrics(artifact.uri)
    parts, rules = [], []
    configured = cfg.evaluation.metrics_for(cfg.task)
    gated = [c for c, s in configured.items() if any(s.get(k) is not None for k in
                                                     ("min", "max", "baseline_tolerance", "baseline_relative_tolerance"))]
    for class_name in gated or list(configured)[:1]:
        name = tasks_lib.tfma_name(class_name)
        cand = metrics.get("candidate", {}).get(name)
        base = metrics.get("baseline", {}).get(name)
        text = f"{class_name} {cand:.4g}" if cand is not None else f"{class_name} n/a"
        text += f" (blessed baseline {base:.4g})" if base is not None else " (no blessed baseline yet)"
        parts.append(text)
        s = configured[class_name]
        if s.get("min") is not None:
            rules.append(f"{class_name} >= {s['min']:g}")
        if s.get("max") is not None:
            rules.append(f"{class_name} <= {s['max']:g}")
        if base is not None:
            worse = "below" if tasks_lib.direction(class_name, s) else "above"
            if s.get("baseline_tolerance") is not None:
                rules.append(f"at most {s['baseline_tolerance']:g} {worse} the baseline")
            if s.get("baseline_relative_tolerance") is not None:
                rules.append(f"at most {s['baseline_relative_tolerance']:.1%} {worse} the baseline")
    return "; ".join(parts) + (f"; thresholds: {' and '.join(rules)}" if rules else "")


def serving_labels(cfg: config_lib.Config) -> Tuple[Optional[int], Dict[str, int]]:
    """(the serving version, the registry's version labels): the version is the ``champion``
    label's, else the newest (``labels.champion_version``; None: the registry is empty). A
    corrupt labels.json is a LoopError naming the file."""
    from driftguard.components.registry_pusher import labels as labels_lib

    try:
        labels = labels_lib.read_labels(cfg.model_registry)
    except labels_lib.LabelError as e:
        raise LoopError(str(e)) from None
    return labels_lib.champion_version(cfg.model_registry, labels), labels


def _challenger(serving: Optional[int], labels: Dict[str, int]) -> Optional[int]:
    """The ``challenger`` label's version, unless it is the serving version itself."""
    from driftguard.components.registry_pusher.labels import CHALLENGER

    challenger = labels.get(CHALLENGER)
    return challenger if challenger != serving else None


def serving_version_text(cfg: config_lib.Config) -> str:
    """'version 3', 'version 3 (champion); challenger: version 4' when labels name them, or
    'no version (registry empty)'."""
    from driftguard.components.registry_pusher.labels import CHAMPION

    version, labels = serving_labels(cfg)
    if version is None:
        return "no version (registry empty)"
    text = f"version {version}" + (" (champion)" if CHAMPION in labels else "")
    challenger = _challenger(version, labels)
    return text + (f"; challenger: version {challenger}" if challenger is not None else "")


def first_model(cfg: config_lib.Config, *, runner: Optional[str] = None, reporter: Optional[Reporter] = None) -> None:
    """Train on the config's first spans unless a version (or pending candidate) already has."""
    from driftguard.components.registry_pusher.labels import CHAMPION
    from driftguard.components.registry_pusher.registry import pending_candidates, read_profile

    reporter = reporter or Reporter()
    spans = cfg.span_numbers(cfg.first_spans)
    version, labels = serving_labels(cfg)
    if version is not None:
        profile = read_profile(cfg.model_registry, version)
        challenger = _challenger(version, labels)
        reporter.say(f"serving {cfg.model_name} version {version} ({'champion; ' if CHAMPION in labels else ''}"
                     f"trained on spans {_labels(cfg, profile.get('spans', []))}, "
                     f"schema v{profile.get('schema_version')})"
                     + (f"; challenger: version {challenger}" if challenger is not None else ""))
        return
    if not spans:
        raise LoopError("no model yet and first_spans is empty: set first_spans in driftguard.yaml to the "
                        "spans the first version trains on, or run `driftguard train --spans ...`")
    if pending_candidates(cfg.model_registry):
        raise LoopError(f"no version is serving and candidate(s) "
                        f"{', '.join(pending_candidates(cfg.model_registry))} wait for approval: "
                        f"driftguard approve <id> first (see driftguard status)")
    reporter.say(f"no model yet: training the first version on span(s) {_labels(cfg, spans)}")
    train_spans(cfg, spans, runner=runner, reporter=reporter)


# ---------------------------------------------------------------- the span check

class SpanCheck:
    """What one span check produced: drift report, model monitor, gate decision (+ alerts), and,
    once :func:`deliver_alerts` ran, the line saying how the alerts were delivered."""

    def __init__(self, span, report, report_dir, monitor, decision, cfg=None):
        self.span, self.report, self.report_dir = span, report, report_dir
        self.monitor, self.decision, self.cfg = monitor, decision, cfg
        self.delivery: Optional[str] = None

    @property
    def alerts(self):
        return self.decision.get("alerts", [])

    @property
    def retrain(self) -> bool:
        return bool(self.decision["decision"]["retrain"])


def check_span(cfg: config_lib.Config, span: int, *, runner: Optional[str] = None,
               data_root: Optional[pathlib.Path] = None, blocked_spans=(),
               reporter: Optional[Reporter] = None) -> SpanCheck:
    """Run the span-check pipeline on ``span``; return its :class:`SpanCheck`. ``blocked_spans``:
    earlier spans with blocking anomalies, which the gate keeps out of the training window."""
    reporter = reporter or Reporter()
    data_root = pathlib.Path(data_root or cfg.data_path)
    check_schema(cfg)
    reference = reference_choice(cfg, span, data_root)
    # before the TFX imports: a bad span (or reference span) fails in a second
    infos = check_spans(cfg, [span, *reference.spans], data_root)
    _lock_runs(cfg, "check")
    _use_spans(cfg, infos, "check")

    from driftguard.components.drift_detector import spec as detector_spec
    from driftguard.pipeline import pipeline as pipeline_lib
    from driftguard.pipeline import runner as runner_lib

    log_path = reporter.step_log(f"check-span{span}")
    label = cfg.span_label(span)
    reporter.note(f"checking span {label} from {data_root} (schema v{cfg.schema_version}, "
                  f"baseline: {serving_version_text(cfg)}"
                  f"{'' if reference.strategy == 'training' else '; reference: ' + reference.message})")
    pipe = pipeline_lib.create_check_pipeline(cfg, span, data_root=str(data_root), blocked_spans=blocked_spans)
    result = runner_lib.run(pipe, cfg, runner)
    failed = result.first_error()
    if failed is not None:
        raise LoopError(f"the span check of span {label} failed at {failed.node_id}:\n"
                        f"{node_error(cfg, failed)}\n({_full_log(log_path)})")
    if result.not_run or result.runner_error:
        names = ", ".join(n.node_id for n in result.not_run) or "all components"
        raise LoopError(f"the span check of span {label} did not complete "
                        f"(not run: {names}; {_full_log(log_path)})")

    def output_json(node_id: str, key: str, name: str):
        node = result.node(node_id)
        artifact = runner_lib.output_artifact(cfg, node.execution_id, key)
        return json.loads(artifact_dirs.read_text(artifact.uri, name)), artifact.uri

    report, report_dir = output_json("DriftDetector", "drift_report", detector_spec.REPORT_JSON)
    monitor, _ = output_json("PredictionMonitor", "model_monitor", "monitor.json")
    decision, _ = output_json("RetrainGate", "decision", "decision.json")
    return SpanCheck(span, report, report_dir, monitor, decision, cfg)


def reference_choice(cfg: config_lib.Config, span: int, data_root: Optional[pathlib.Path] = None):
    """What ``drift.reference`` compares ``span`` with, given the data now (the DriftDetector
    resolves it again when it runs, the same way: ``components/drift_detector/reference.py``)."""
    from driftguard.components.drift_detector import reference as reference_lib

    d = cfg.data
    root = data_root or cfg.data_path
    settings = cfg.drift.reference
    if settings.strategy == reference_lib.TRAINING:
        return reference_lib.resolve_reference(settings, span, [], cfg.spans.unit)
    available = reference_lib.available_spans(root, d.pattern, sorted(d.splits.values()) if d.splits else [d.pattern])
    return reference_lib.resolve_reference(settings, span, available, cfg.spans.unit, label=cfg.span_label)


def deliver_alerts(cfg: config_lib.Config, alerts) -> str:
    """Queue the span's alerts in the outbox and deliver them; one line saying what happened.
    A sink that fails leaves its alert pending in the outbox (``driftguard alerts deliver``
    retries it); an outbox that cannot be written is a :class:`LoopError`."""
    from driftguard.components.alerts import Alert, send_alerts
    from driftguard.components.alerts.outbox import OutboxError

    if not alerts:
        return "no alert"
    try:
        result = send_alerts(cfg.alerts_settings, [Alert.from_dict(a) for a in alerts], cfg.runs_path)
    except OutboxError as e:
        raise LoopError(f"{len(alerts)} alert(s) could not be queued: {e}") from None
    text = f"{len(alerts)} alert(s); {result.delivered} delivered now"
    if result.pending:
        text += f", {result.pending} pending in the outbox (retried later: driftguard alerts deliver)"
    if result.gave_up:
        text += f", {result.gave_up} given up"
    for _, sink, message in result.errors[:3]:
        text += f"\n  sink {sink}: {message}"
    return text


def check(cfg: config_lib.Config, span: int, *, runner: Optional[str] = None,
          data_root: Optional[pathlib.Path] = None, reporter: Optional[Reporter] = None) -> SpanCheck:
    """``driftguard check``: check ``span``, deliver its alerts, and record its row among the
    state's checks (``driftguard status`` shows it). Not among the replay's rows: a check does
    not act on the gate's decision, so ``driftguard run`` still replays that span."""
    result = check_span(cfg, span, runner=runner, data_root=data_root, reporter=reporter)
    result.delivery = deliver_alerts(cfg, result.alerts)
    d = result.decision["decision"]
    outcome = (f"driftguard check: the gate would retrain on {_labels(cfg, d['spans'])} ({d['reason']}); "
               f"driftguard run trains" if d["retrain"] else f"driftguard check: no retraining ({d['reason']})")
    row = span_row(cfg, result, outcome, _serving_short(cfg))
    row["delivery"] = result.delivery
    _record(cfg, span, state.record_check, row, "")
    return result


# ---------------------------------------------------------------- the replay

def replay(cfg: config_lib.Config, spans: Optional[Sequence[int]] = None, *, runner: Optional[str] = None,
           reporter: Optional[Reporter] = None) -> List[Dict[str, Any]]:
    """``driftguard run``: spans in time order, as if they arrived in production.

    No model yet: train on the config's first spans. Then each span of ``spans`` (default: the
    config's replay_spans) not replayed before: span check, alerts through the outbox, the
    retraining policy's decision and, when it says so, training on the window it names; the
    span's row is recorded in runs/state.json and said. Returns the rows of this call.
    """
    from driftguard.components.alerts.outbox import outbox_path

    reporter = reporter or Reporter()
    t0 = time.monotonic()
    replay_spans = list(spans) if spans is not None else cfg.span_numbers(cfg.replay_spans)
    first = cfg.span_numbers(cfg.first_spans)
    check_schema(cfg)
    infos = check_spans(cfg, first, training=True) if first else []
    infos += check_spans(cfg, [s for s in replay_spans if s not in first])
    _lock_runs(cfg, "run")
    _use_spans(cfg, infos, "run", record=False)   # each span is recorded when checked or trained on
    try:
        done = set(state.checked_spans(cfg.runs_path))
    except ValueError as e:
        raise LoopError(str(e)) from None
    log_path = reporter.step_log("run")
    if log_path is not None:
        reporter.say(f"log: {log_path}")
    first_model(cfg, runner=runner, reporter=reporter)
    todo = [s for s in replay_spans if s not in done]
    if not replay_spans:
        reporter.say("no spans to replay (replay_spans is empty)")
    elif not todo:
        reporter.say(f"span(s) {_labels(cfg, replay_spans)} were already replayed (runs/state.json); nothing to do")
    elif done & set(replay_spans):
        reporter.say(f"already replayed: {_labels(cfg, [s for s in replay_spans if s in done])}; continuing")
    rows = []
    for span in todo:
        blocked = [r["span"] for r in state.load(cfg.runs_path)["spans"] if r.get("blocking_anomalies")]
        checked = check_span(cfg, span, runner=runner, blocked_spans=blocked, reporter=reporter)
        checked.delivery = deliver_alerts(cfg, checked.alerts)
        d = checked.decision["decision"]
        if d["retrain"]:
            serving, _ = serving_labels(cfg)      # warm start from the serving model (the champion)
            warm = str(cfg.model_registry / str(serving)) if d.get("warm_start") and serving is not None else None
            reporter.say(f"span {cfg.span_label(span)}: retraining on span(s) {_labels(cfg, d['spans'])} "
                         f"({d['reason']})")
            try:
                result = train_spans(cfg, d["spans"], runner=runner, warm_start_from=warm, reporter=reporter)
                version = pushed_version(cfg, result)
                candidate = pending_candidate(cfg, result)
                outcome = (f"retrained on {_labels(cfg, d['spans']).replace(', ', ',')}: " +
                           (f"pushed v{version}" if version else
                            f"candidate {candidate} waits for approval" if candidate else "NOT blessed, not pushed"))
            except LoopError as e:
                outcome = "retraining FAILED: " + " ".join(str(e).splitlines()[:2])[:300]
                reporter.note(f"span {cfg.span_label(span)}: {e}")
        else:
            outcome = f"no retraining ({d['reason']})"
        row = span_row(cfg, checked, outcome, _serving_short(cfg))
        row["delivery"] = checked.delivery
        _record(cfg, span, state.record_span, row,
                f" (the previous state is intact; the next run checks span {cfg.span_label(span)} again)")
        reporter.say(row_text(row))
        rows.append(row)
    reporter.say(f"\ndone in {time.monotonic() - t0:.0f} s\n"
                 f"serving:   {serving_version_text(cfg)} -> {cfg.model_registry}\n"
                 f"reports:   {cfg.runs_path / 'reports'} (rebuild: driftguard report)\n"
                 f"alerts:    {cfg.runs_path / 'alerts.jsonl'} (outbox {outbox_path(cfg.runs_path)}; "
                 f"driftguard alerts list)\n"
                 f"state:     {cfg.runs_path / state.STATE_FILE}; MLMD: {metadata_lib.describe(cfg)}")
    from driftguard.components.reports import build_reports

    try:
        mirrored = mirror_pipeline_root(cfg)
        if mirrored is not None:
            reporter.note(f"pipeline_root {cfg.pipeline_root_uri}: {mirrored[0]} report file(s) copied, "
                          f"{mirrored[1]} dropped")
        dashboard = build_reports(cfg.runs_path)
        reporter.say(f"dashboard: {dashboard}  (per-span pages beside it)")
        if cfg.reports_uri:
            from driftguard.components import storage

            count = storage.upload_tree(dashboard.parent, cfg.reports_uri)
            reporter.say(f"reports copied to {cfg.reports_uri}/ ({count} files)")
    except Exception as e:  # noqa: BLE001 -- a report must never fail a completed replay
        reporter.note(f"reports not built or not copied: {e} (retry: driftguard report)")
    return rows


def mirror_pipeline_root(cfg: config_lib.Config) -> Optional[Tuple[int, int]]:
    """With an object-storage ``pipeline_root``: bring its local mirror for the reports,
    ``<runs>/pipeline-cache/pipelines/...``, up to date before they are built, and return
    (downloaded, deleted); None for a local pipeline root (the reports read it in place) and
    when the runs folder does not exist (nothing ran here: the reports say so).

    Only the files the reports read are copied (``reports.runs.report_input``: the drift
    reports, monitors, gate decisions and statistics; never examples or models), through
    ``storage.sync_tree`` (fsspec, not ``tf.io.gfile``: no tensorflow-io in this process), so a
    second call downloads only what is new. ``.source`` names the bucket prefix, so the paths
    ``state.json`` records (``s3://...``) are found in the mirror (``reports.runs.rebase``).
    Raises ``storage.StorageError`` or OSError when the bucket or the folder cannot be used."""
    if not cfg.pipeline_root_is_remote or not cfg.runs_path.is_dir():
        return None
    from driftguard.components import storage
    from driftguard.components.reports import runs as report_runs

    mirror = cfg.runs_path / report_runs.PIPELINE_MIRROR
    result = storage.sync_tree(cfg.pipeline_root_uri, mirror / "pipelines", select=report_runs.report_input)
    source = mirror / report_runs.MIRROR_SOURCE
    if not source.is_file() or source.read_text(encoding="utf-8").strip() != cfg.pipeline_root_uri:
        tmp = mirror / f"{report_runs.MIRROR_SOURCE}.tmp"
        tmp.write_text(cfg.pipeline_root_uri + "\n", encoding="utf-8")
        tmp.replace(source)
    return result


# ---------------------------------------------------------------- state rows

def _serving_short(cfg: config_lib.Config) -> str:
    """'v3' or 'no model serving', as a state row holds it."""
    serving = serving_version_text(cfg)
    return serving.replace("version ", "v") if serving.startswith("version ") else "no model serving"


def _record(cfg: config_lib.Config, span: int, write, row: Dict[str, Any], hint: str) -> None:
    try:
        write(cfg.runs_path, row)
    except OSError as e:
        raise LoopError(f"span {cfg.span_label(span)}: cannot record its result in "
                        f"{cfg.runs_path / state.STATE_FILE}: {e.strerror or e}{hint}") from None


def span_row(cfg: config_lib.Config, check: SpanCheck, outcome: str, serving: str) -> Dict[str, Any]:
    """One row of runs/state.json (what `run` said for the span; the dashboard reads them)."""
    from driftguard.components.anomaly_gate.executor import blocking as blocking_anomalies
    from driftguard.components.drift_detector.compare import headline
    from driftguard.components.impact.report import span_impact
    from driftguard.components.prediction_monitor.metrics import headline as performance_headline

    m = check.monitor
    severities = [a["severity"] for a in check.alerts]
    perf = m.get("performance") or {}
    h = performance_headline(perf) if perf else {}
    return {
        "span": check.span, "span_label": cfg.span_label(check.span), "period": _period(cfg, check.span),
        "drift": headline(check.report), "drift_detected": bool(check.report.get("drift_detected")),
        "anomalies": len(check.report.get("anomalies", [])),
        "blocking_anomalies": len(blocking_anomalies(check.report.get("anomalies", []),
                                                     cfg.validation.fail_on_severity)),
        "task": cfg.task, "metric": h.get("metric") or cfg.metric,
        "realized": h.get("realized"), "baseline": h.get("baseline"), "estimated": h.get("estimated"),
        "estimated_reference": h.get("estimated_reference"), "realized_change": h.get("realized_change"),
        "estimated_change": h.get("estimated_change"), "estimated_note": perf.get("estimated_note"),
        "estimated_low": h.get("estimated_low"), "estimated_high": h.get("estimated_high"),
        "estimated_shift_aware": h.get("estimated_shift_aware"),
        "estimated_shift_aware_low": h.get("estimated_shift_aware_low"),
        "estimated_shift_aware_high": h.get("estimated_shift_aware_high"),
        "labelled_rows": perf.get("labelled_rows"),
        "model_status": m.get("status"),
        "alerts": len(severities), "critical_alerts": severities.count("critical"),
        "alert_titles": [a["title"] for a in check.alerts],
        "impact": span_impact(check.report, m) if m.get("status") == "monitored" else None,
        "decision": check.decision["decision"], "outcome": outcome, "serving": serving,
        "report": f"{check.report_dir}/report.html",
    }


def _period(cfg: config_lib.Config, span: int) -> Optional[str]:
    """The span's period from ``<data>/spans.json`` (``[{"span": 3, "period": "2013Q3"}, ...]``), if the
    project's data has one: a span number says little to people, its period says when."""
    path = cfg.data_path / "spans.json"
    try:
        rows = json.loads(path.read_text())
        return next((str(r.get("period")) for r in rows if int(r.get("span", -1)) == int(span) and r.get("period")),
                    None)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def metric_text(row: Dict[str, Any]) -> str:
    """'accuracy 0.914 (+2.0% vs 0.896), estimated 0.894 [0.877, 0.911] (-1.3%), shift-aware 0.889
    [0.869, 0.909]' for the row's watched metric (the intervals: 95 %)."""
    from driftguard.components import tasks as tasks_lib

    if row.get("model_status") == "cannot_score":
        return "model cannot score this span"
    if row.get("model_status") not in (None, "monitored"):
        return "no model serving"
    name = tasks_lib.METRIC_TITLES.get(row.get("metric"), row.get("metric") or "metric")

    def num(x):
        return "n/a" if x is None else f"{x:.4g}" if row.get("task") == "regression" else f"{x:.3f}"

    def pct(x):
        return "n/a" if x is None else f"{x:+.1%}"
    realized = (f"{name} {num(row.get('realized'))} ({pct(row.get('realized_change'))} vs {num(row.get('baseline'))})"
                if row.get("realized") is not None else f"{name}: no labels yet")
    def interval(low, high):
        return f" [{num(row.get(low))}, {num(row.get(high))}]" if row.get(low) is not None else ""
    estimated = (f"estimated {num(row.get('estimated'))}{interval('estimated_low', 'estimated_high')}"
                 f" ({pct(row.get('estimated_change'))})" if row.get("estimated") is not None else "not estimated")
    if row.get("estimated_shift_aware") is not None:
        estimated += (f", shift-aware {num(row.get('estimated_shift_aware'))}"
                      f"{interval('estimated_shift_aware_low', 'estimated_shift_aware_high')}")
    return f"{realized}, {estimated}"


def row_text(row: Dict[str, Any]) -> str:
    """A replayed span's row: drift and anomalies; metric, alerts, outcome, serving; and, when the
    span was scored, its impact on the model (the estimated change beside the realized one, and
    the drift weighted by the model's feature importance)."""
    from driftguard.components.impact.report import impact_text

    crit = f" ({row['critical_alerts']} critical)" if row["critical_alerts"] else ""
    anomalies = f"; {row['anomalies']} schema anomalies" if row["anomalies"] else ""
    label = row.get("span_label") or str(row["span"])
    pad = " " * (len(label) + 6)
    text = (f"span {label:>2} | {row['drift']}{anomalies}\n"
            f"{pad}| {metric_text(row)} | {row['alerts']} alert(s){crit}"
            f" | {row['outcome']} | serving {row['serving']}")
    impact = row.get("impact")
    if impact:
        text += f"\n{pad}| {impact_text(impact)}"
        if impact.get("weighted_drift"):
            text += f"\n{pad}| {impact['weighted_drift']}"
    return text


# ---------------------------------------------------------------- status

def status(cfg: config_lib.Config) -> Dict[str, Any]:
    """Serving version (the champion, else the newest), the challenger and the version labels,
    pending candidates, the span checked last (by ``run`` or ``check``) and the number of
    undelivered alerts, as ``driftguard status --json`` prints them."""
    from driftguard.components import tasks as tasks_lib
    from driftguard.components.alerts.outbox import Outbox, OutboxError, outbox_path
    from driftguard.components.registry_pusher.registry import (pending_candidates, read_candidate_profile,
                                                                read_profile)

    registry = cfg.model_registry

    def evaluation(p) -> str:
        """The gate's metrics of a profile: 'AUC 0.946' (the configured thresholded metrics)."""
        cand = (p.get("eval_metrics") or {}).get("candidate", {})
        parts = []
        for class_name in cfg.evaluation.metrics_for(cfg.task):
            value = cand.get(tasks_lib.tfma_name(class_name))
            if value is not None and class_name != "ExampleCount":
                parts.append(f"{class_name} {value:.4g}")
        return ", ".join(parts[:3])

    def version_info(version: int) -> Dict[str, Any]:
        p = read_profile(registry, version)
        return {"version": version, "spans": p.get("span_labels") or p.get("spans"),
                "schema_version": p.get("schema_version"), "evaluation": evaluation(p),
                "eval_metrics": (p.get("eval_metrics") or {}).get("candidate"),
                "labels": sorted(k for k, v in labels.items() if v == version),
                "path": str(registry / str(version))}

    version, labels = serving_labels(cfg)
    serving = version_info(version) if version is not None else None
    challenger = _challenger(version, labels)
    challenger = version_info(challenger) if challenger is not None else None
    pending = []
    for c in pending_candidates(registry):
        p = read_candidate_profile(registry, c)
        pending.append({"candidate": c, "spans": p.get("span_labels") or p.get("spans"), "evaluation": evaluation(p)})
    try:
        last = state.last_row(cfg.runs_path)
    except ValueError as e:
        raise LoopError(str(e)) from None
    open_alerts = []
    if outbox_path(cfg.runs_path).exists():
        try:
            open_alerts = [r for r in Outbox(outbox_path(cfg.runs_path)).rows() if r.get("state") != "delivered"]
        except OutboxError as e:
            raise LoopError(str(e)) from None
    return {"model": cfg.model_name, "serving": serving, "challenger": challenger,
            "labels": dict(sorted(labels.items())), "pending": pending,
            "last_span": last and {k: last.get(k) for k in ("span", "span_label", "drift", "outcome", "alert_titles")},
            "undelivered_alerts": len(open_alerts)}
