"""``driftguard run | train | check | status | approve | reject``: the loop's commands.

Each parses its options, calls :mod:`driftguard.pipeline.loop` with an :class:`EchoReporter`
(results on stdout, progress on stderr, the full log in runs/logs/) and prints what it returns.
"""
from __future__ import annotations

import json
import pathlib
from typing import Optional

import click

from driftguard.pipeline import config as config_lib
from driftguard.pipeline import loop
from driftguard.pipeline.cli_support import DriftguardError, load_config, parse_spans, setup_logging, user_errors


class EchoReporter(loop.Reporter):
    """The loop's reporter on a terminal: ``say`` to stdout, ``note`` to stderr, and each step's
    full log in runs/logs/<time>-<step>.log with one progress line per TFX component on stderr.

    ``one_log``: the whole call is one step (``run``): the first step's log takes every later
    step's records, and no component lines are shown (the replay's rows are its progress)."""

    def __init__(self, runs_path: pathlib.Path, verbose: bool, one_log: bool = False):
        self.runs_path, self.verbose, self.one_log = runs_path, verbose, one_log
        self._log: Optional[pathlib.Path] = None

    def say(self, text: str) -> None:
        click.echo(text)

    def note(self, text: str) -> None:
        click.echo(text, err=True)

    def step_log(self, step: str) -> pathlib.Path:
        if self._log is None or not self.one_log:
            self._log = setup_logging(self.runs_path, step, self.verbose, progress=not self.one_log)
        return self._log


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


def _config(ctx: click.Context, beam_args=(), preflight: bool = False) -> config_lib.Config:
    """The project's config; with ``preflight``, the metadata database (a server's) is reached
    once first, so a wrong host, password or database name exits 2 before any component runs,
    and so does a Beam runner whose remote workers could not run driftguard."""
    from driftguard.pipeline import beam_staging, metadata

    cfg = load_config(ctx)
    if beam_args:
        cfg = cfg.replace(beam_args=tuple(cfg.beam_args) + tuple(beam_args))
    if preflight:
        with user_errors(metadata.MetadataError):
            metadata.preflight(cfg)
        with user_errors(beam_staging.RunnerError):
            beam_staging.preflight(cfg.beam_args, {"data.root": cfg.data_uri or str(cfg.data_path),
                                                     "pipeline_root": cfg.pipeline_root_uri})
    return cfg


@click.command()
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
    cfg = _config(ctx, beam_args, preflight=True)
    spans = parse_spans(cfg, spans_text) if spans_text else None
    with user_errors(loop.LoopError):
        loop.replay(cfg, spans, runner=runner, reporter=EchoReporter(cfg.runs_path, verbose, one_log=True))


@click.command()
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
    cfg = _config(ctx, beam_args, preflight=True)
    spans = parse_spans(cfg, spans_text)
    if len(spans) > cfg.training.window_spans:
        raise DriftguardError(
            f"{len(spans)} spans given but training.window_spans is {cfg.training.window_spans}; "
            f"pass at most {cfg.training.window_spans} spans or raise the window in the config")
    with user_errors(loop.LoopError):
        loop.train_spans(cfg, spans, runner=runner, data_root=data_root,
                         reporter=EchoReporter(cfg.runs_path, verbose))


@click.command()
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
    cfg = _config(ctx, beam_args, preflight=True)
    try:
        span = cfg.spans.number(span_text)
    except ValueError as e:
        raise DriftguardError(f"--span: {e}") from None
    with user_errors(loop.LoopError):
        result = loop.check(cfg, span, runner=runner, data_root=data_root,
                            reporter=EchoReporter(cfg.runs_path, verbose))
    if as_json:
        click.echo(json.dumps({**result.report, "report_dir": str(result.report_dir), "monitor": result.monitor,
                               "gate": result.decision, "delivery": result.delivery}, sort_keys=True))
    else:
        click.echo(_check_text(result))
        click.echo(f"alerts: {result.delivery}")
    if result.report.get("drift_detected") or result.report.get("anomalies"):
        ctx.exit(1)


def _check_text(check: loop.SpanCheck) -> str:
    """The span check for a reader: drift (the report's table), type changes, skew, schema
    anomalies, the model's behaviour, alerts, the gate's decision, the report's path."""
    from driftguard.components.drift_detector.compare import headline

    report, cfg = check.report, check.cfg
    lines = []
    ctx = report.get("context", {})
    label = ctx.get("span_label") or str(check.span)
    if report.get("status") == "no_baseline":
        lines.append(f"span {label}: {headline(report)}")
    else:
        trained = ctx.get("baseline_span_labels") or ctx.get("baseline_spans") or []
        ref = report.get("reference") or {}
        if ref.get("strategy", "training") == "training":
            lines.append(f"span {label} vs version {ctx.get('baseline_version')} (trained on spans "
                         f"{', '.join(map(str, trained))}): {headline(report)}")
        else:
            from driftguard.components.drift_detector.reference import describe

            lines.append(f"span {label} vs {describe(ref, ctx)} (reference: {ref['strategy']}; serving version "
                         f"{ctx.get('baseline_version')}): {headline(report)}")
            if ref.get("fallback"):
                lines.append(f"reference: {ref.get('message')}")
        if report.get("table"):
            lines.append(report["table"])
        if (report.get("slices") or {}).get("table"):
            lines.append(report["slices"]["table"])
        for name, what in report.get("type_changes", {}).items():
            lines.append(f"type change: {name}: {what}")
        for name, items in report.get("skew", {}).items():
            for item in items:
                lines.append(f"skew: {name}: {item['type']}: {item['description']}")
    anomalies = report.get("anomalies", [])
    if anomalies:
        from driftguard.components.anomaly_gate.executor import format_record

        lines.append(f"schema anomalies ({len(anomalies)}):")
        lines.extend(f"  {record['severity']}: {format_record(record)}" for record in anomalies)
    lines.append(_model_text(cfg, check.monitor))
    lines.extend(_slice_performance_lines(check.monitor))
    lines.extend(_impact_lines(check))
    lines.extend(f"ALERT [{alert['severity']}] {alert['title']}" for alert in check.alerts)
    d = check.decision["decision"]
    lines.append(f"retrain gate ({d['policy']}): "
                 f"{'RETRAIN on spans ' + cfg.spans.format_list(d['spans']) if d['retrain'] else 'no'} "
                 f"-- {d['reason']}")
    lines.append(f"report: {check.report_dir}/report.html")
    return "\n".join(lines)


def _slice_performance_lines(monitor: dict) -> list:
    """The realized metric per slice (drift.slices, with labels), worse slices first."""
    block = (monitor or {}).get("performance_slices") or {}
    if not block.get("slices"):
        return []
    lines = [f"performance per slice ({block['metric']}, {block['test']}, Bonferroni over {block['tested']} slices):"]
    for s in sorted(block["slices"], key=lambda s: (not s["worse"], s["p_value"]))[:8]:
        change = f" ({s['relative_change']:+.1%})" if s.get("relative_change") is not None else ""
        now = "n/a" if s.get("realized") is None else f"{s['realized']:.4g}"
        base = "n/a" if s.get("baseline") is None else f"{s['baseline']:.4g}"
        lines.append(f"  {s['name']}: {now} vs {base}{change}, adjusted p {s['p_value_adjusted']:.2g}"
                     f"{' WORSE' if s['worse'] else ''}")
    return lines


def _impact_lines(check: loop.SpanCheck) -> list:
    """Does the drift matter to the model: the drift weighted by the version's feature importance
    (its table), and the estimated change of the watched metric beside CBPE's and the realized one."""
    from driftguard.components.impact.report import impact_text, span_impact
    from driftguard.components.impact.weighted import summary, table

    lines = []
    section = check.report.get("importance")
    if section:
        lines.append(f"importance-weighted drift: {summary(section)}")
        if table(section):
            lines.append(table(section))
    if check.monitor.get("status") == "monitored":
        lines.append(impact_text(span_impact(check.report, check.monitor)))
    return lines


def _model_text(cfg: config_lib.Config, monitor: dict) -> str:
    """The model's behaviour on the span in two lines: performance, and the predictions' drift."""
    from driftguard.components.prediction_monitor.metrics import headline as performance_headline

    if monitor.get("status") == "cannot_score":
        return f"model: {monitor.get('message')}"
    if monitor.get("status") != "monitored":
        return "model: none serving"
    perf = monitor.get("performance") or {}
    row = {"task": cfg.task, "model_status": "monitored", **performance_headline(perf)}
    text = f"model: {loop.metric_text(row)}"
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Serving version (champion), challenger, pending candidates, last span checked, open alerts."""
    cfg = load_config(ctx)
    with user_errors(loop.LoopError):
        info = loop.status(cfg)
    if as_json:
        click.echo(json.dumps(info, sort_keys=True, default=str))
        return
    serving, challenger, pending, last = info["serving"], info["challenger"], info["pending"], info["last_span"]

    def described(v) -> str:
        """'version 3 (champion; spans 5, 6, schema v1, AUC 0.946)'"""
        ev = f", {v['evaluation']}" if v["evaluation"] else ""
        labelled = "".join(f"{label}; " for label in v["labels"])
        return (f"version {v['version']} ({labelled}spans {', '.join(map(str, v['spans'] or []))}, "
                f"schema v{v['schema_version']}{ev})")

    click.echo(f"project:  {cfg.project_dir} ({cfg.model_name}, {cfg.task})")
    if serving:
        click.echo(f"serving:  {cfg.model_name} {described(serving)}")
    else:
        click.echo(f"serving:  nothing yet ({cfg.model_registry} is empty)")
    if challenger:
        click.echo(f"challenger: {cfg.model_name} {described(challenger)}: "
                   f"driftguard promote challenger --reason ...")
    shown = {serving and serving["version"], challenger and challenger["version"]}
    others = [f"{label} -> version {v}" for label, v in info["labels"].items() if v not in shown]
    if others:
        click.echo(f"labels:   {', '.join(others)}")
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
    undelivered = info["undelivered_alerts"]
    click.echo(f"undelivered alerts: {undelivered}" + (" (driftguard alerts list)" if undelivered else ""))


@click.command()
@click.argument("candidate")
@click.pass_context
def approve(ctx: click.Context, candidate: str) -> None:
    """Publish a pending candidate (blessed by TFMA) as the next serving version."""
    from driftguard.components.registry_pusher.registry import ApprovalError, approve_candidate

    cfg = load_config(ctx)
    with user_errors(ApprovalError):
        version = approve_candidate(cfg.model_registry, candidate)
    approved = f"approved {candidate}: {cfg.model_name} version {version} -> {cfg.model_registry / str(version)}"
    try:
        serving, _ = loop.serving_labels(cfg)
        stays = "" if serving == version else f" (not served: serving stays at {loop.serving_version_text(cfg)})"
    except loop.LoopError as e:      # labels.json corrupted since the approval read it
        click.echo(approved)
        raise DriftguardError(str(e)) from None
    click.echo(approved + stays)


@click.command()
@click.argument("candidate")
@click.pass_context
def reject(ctx: click.Context, candidate: str) -> None:
    """Reject a pending candidate: it is moved to .rejected/ and never served."""
    from driftguard.components.registry_pusher.registry import ApprovalError, reject_candidate

    cfg = load_config(ctx)
    with user_errors(ApprovalError):
        path = reject_candidate(cfg.model_registry, candidate)
    try:
        serving = loop.serving_version_text(cfg)
    except loop.LoopError as e:      # a corrupt labels.json: the candidate is rejected all the same
        click.echo(f"rejected {candidate} (kept at {path})")
        raise DriftguardError(str(e)) from None
    click.echo(f"rejected {candidate} (kept at {path}); serving stays at {serving}")


COMMANDS = (run, train, check, status, approve, reject)
