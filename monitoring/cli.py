"""``driftguard monitor``: the click command of the live monitor (registered on the main group
by ``cli/main.py``).

Exit status: 0 when the log was followed to the end (``--once``) or the monitor was stopped
(SIGTERM / Ctrl-C finish the current batch first), 2 on an error (message on stderr naming the
file, line or setting).
"""
from __future__ import annotations

import dataclasses
import pathlib
import json
from typing import List, Optional, Tuple

import click

from driftguard.pipeline.cli_support import DriftguardError, load_config, setup_logging, token_from_env


# counters of what the monitor left out, and how the console names them
LEFT_OUT = (
    ("labels_duplicate", "duplicate label(s) dropped (an id labelled again; its first label counts)"),
    ("labels_unknown_id", "label(s) for request ids no logged prediction carries (dropped)"),
    ("labels_expired", "label(s) dropped unmatched: more were waiting than monitor.label_retention"),
    ("predictions_reused_id", "prediction(s) reusing a request id already predicted (in the windows, "
                              "but not joined to a label)"),
    ("predictions_expired", "prediction(s) dropped before their label came (monitor.label_retention)"),
    ("discarded", "record(s) of unfinished windows dropped"),
)
SKIP_TEXT = {"unreadable": "unreadable log record(s) skipped",
             "unknown_version": "record(s) skipped: answered by a model version not in the registry"}


def _window_line(w: dict) -> str:
    from driftguard.monitoring.windows import features_text

    if not w:
        return ""
    parts = [f"window w{w['first']}-{w['last']} (v{w.get('version')}, {w.get('records')} records): "
             f"{features_text(w)}"]
    if w.get("prediction_drifted"):
        parts.append("prediction drift")
    if w.get("estimated") is not None:
        interval = (f" [{w['estimated_low']:.4g}, {w['estimated_high']:.4g}]"
                    if w.get("estimated_low") is not None and w.get("estimated_high") is not None else "")
        parts.append(f"estimated {w.get('estimated_metric', 'metric')} {w['estimated']:.4g}{interval}")
    parts.append(f"{len(w.get('alerts') or [])} alert(s)")
    return " | ".join(parts)


def _left_out_lines(now: dict, before: dict) -> List[str]:
    """One line per kind of record or label left out since ``before`` (counters), with the total."""
    lines = []
    skipped, was = now.get("skipped") or {}, before.get("skipped") or {}
    for reason in sorted(skipped):
        d = skipped[reason] - was.get(reason, 0)
        if d:
            lines.append(f"left out: {d} {SKIP_TEXT.get(reason, 'record(s) skipped: ' + reason)} "
                         f"({skipped[reason]} in all)")
    for key, text in LEFT_OUT:
        d = now.get(key, 0) - before.get(key, 0)
        if d:
            lines.append(f"left out: {d} {text} ({now.get(key, 0)} in all)")
    return lines


@click.command("monitor")
@click.option("--logs", type=click.Path(path_type=pathlib.Path), default=None,
              help="Prediction log file or folder (default: <runs>/prediction_logs/<model>, where serve writes).")
@click.option("--labels", type=click.Path(path_type=pathlib.Path), default=None,
              help="Delayed labels: a CSV file or folder of CSVs with header request_id,label (0/1 or "
                   "true/false for a binary model, a class for a multi-class one, a number for regression).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="Where the monitor keeps its position and state (default: <runs>/monitor/<model>).")
@click.option("--once", is_flag=True, help="Process what the log holds now, then exit (default: follow it).")
@click.option("--max-records", type=click.IntRange(min=1), default=None,
              help="Stop after this many records (at the next request boundary).")
@click.option("--poll-seconds", type=click.FloatRange(min=0.01), default=None,
              help="Follow mode: seconds between polls of an idle log (default: config monitor.poll_seconds, 5).")
@click.option("--window", type=click.IntRange(min=100), default=None,
              help="Records per window (default: config monitor.window, 10000).")
@click.option("--step", type=click.IntRange(min=0), default=None,
              help="Records between windows: sliding windows; 0 or unset = tumbling (config monitor.step).")
@click.option("--max-false-alerts-per-100k", "budget", type=click.FloatRange(min=1e-6), default=None,
              help="False-alarm budget over all window tests and detectors (default: config, 1).")
@click.option("--stream-feature", "stream_features", multiple=True, metavar="NAME",
              help="Also run a streaming detector on this numeric feature (repeatable).")
@click.option("--metrics-port", type=click.IntRange(min=0, max=65535), default=None,
              help="Serve /metrics for Prometheus on this port (0: any free port; the URL is printed).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Address for /metrics; another than loopback needs --token-env.")
@click.option("--token-env", metavar="VAR", default=None,
              help="Require 'Authorization: Bearer <token>' on /metrics, the token read from env var VAR.")
@click.option("--retrain", type=click.Choice(["none", "local", "airflow", "kfp"]), default="none", show_default=True,
              help="On a critical alert, trigger retraining once per serving version.")
@click.option("--airflow-url", default=None, metavar="URL", help="--retrain airflow: the Airflow webserver.")
@click.option("--dag", "dag_id", default=None, metavar="ID",
              help="--retrain airflow: the training DAG (default: <model>-training).")
@click.option("--kfp-host", default=None, metavar="URL", help="--retrain kfp: the KFP API endpoint.")
@click.option("--kfp-package", default=None, metavar="PATH",
              help="--retrain kfp: the compiled pipeline (default: build/kfp/pipeline.yaml).")
@click.option("-v", "--verbose", is_flag=True, help="Log to stderr as well as to the log file.")
@click.pass_context
def monitor(ctx: click.Context, logs: Optional[pathlib.Path], labels: Optional[pathlib.Path],
            state_dir: Optional[pathlib.Path], once: bool, max_records: Optional[int],
            poll_seconds: Optional[float], window: Optional[int], step: Optional[int], budget: Optional[float],
            stream_features: Tuple[str, ...], metrics_port: Optional[int], metrics_host: str,
            token_env: Optional[str], retrain: str, airflow_url: Optional[str], dag_id: Optional[str],
            kfp_host: Optional[str], kfp_package: Optional[str], verbose: bool) -> None:
    """Watch live traffic: windows of the prediction log against the serving version's profile
    (feature, prediction and confidence drift; the performance metric estimated without labels),
    delayed labels (the realized metric), streaming detectors, alerts, Prometheus metrics and a
    retrain trigger.

    \b
      driftguard monitor --once                          process what the log holds, then exit
      driftguard monitor --labels labels/ --metrics-port 9108
      driftguard monitor --window 1000 --step 250 --retrain local
    """
    from driftguard.pipeline import config as config_lib

    cfg = load_config(ctx)
    changes = {}
    for key, value in (("window", window), ("step", step), ("max_false_alerts_per_100k", budget),
                       ("poll_seconds", poll_seconds)):
        if value is not None:
            changes[key] = value
    if stream_features:
        changes["stream_features"] = tuple(stream_features)
    if changes:
        if "window" in changes and "step" not in changes and cfg.monitor.step > changes["window"]:
            changes["step"] = 0
        try:
            cfg = cfg.replace(monitor=dataclasses.replace(cfg.monitor, **changes))
        except config_lib.ConfigError as e:
            raise DriftguardError(f"{e} (from the command line)") from None
    token = token_from_env(token_env)
    log_path = setup_logging(cfg.runs_path, "monitor", verbose, progress=False)

    from driftguard.monitoring import exporter
    from driftguard.monitoring import monitor as monitor_lib
    from driftguard.monitoring.errors import MonitorError
    from driftguard.monitoring.labels import LabelsError
    from driftguard.monitoring.store import state_dir as default_state_dir
    from driftguard.monitoring.trigger import Retrainer
    from driftguard.serving.predictlog import PredictionLogError

    server = None
    mon = None
    try:
        retrainer = Retrainer(
            cfg, mode=retrain, state_dir=pathlib.Path(state_dir or default_state_dir(cfg)),
            config_path=ctx.obj.get("config_path") if ctx.obj else None, airflow_url=airflow_url, dag_id=dag_id,
            kfp_host=kfp_host, kfp_package=kfp_package)
        mon = monitor_lib.Monitor(cfg, logs=logs, labels=labels, state=state_dir, retrain=retrainer,
                                  config_path=ctx.obj.get("config_path") if ctx.obj else None)
        collector = exporter.MonitorCollector()
        collector.snapshot = mon.snapshot()
        registry = exporter.make_registry(collector)
        textfile = mon.state_dir / exporter.METRICS_FILE
        if metrics_port is not None:
            server = exporter.MetricsServer(registry, metrics_host, metrics_port, token)
            click.echo(f"metrics: {server.url}", nl=True)
        click.echo(f"monitoring {mon.logs} (state {mon.state_dir}; log {log_path})", err=True)
        printed = set()
        seen = {"counters": json.loads(json.dumps(mon.counters))}
        last_events = []

        def published(snapshot):
            nonlocal last_events
            collector.snapshot = snapshot
            exporter.write_textfile(textfile, registry)
            for w in snapshot.get("step_windows") or []:
                key = (w.get("version"), w.get("first"), w.get("last"))
                if key not in printed:
                    click.echo(_window_line(w))
                    printed.add(key)
            counters = snapshot.get("counters") or {}
            for line in _left_out_lines(counters, seen["counters"]):
                click.echo(line)
            seen["counters"] = counters
            for d in (snapshot.get("rollout") or {}).get("step_decisions") or []:
                if d["id"] not in printed:
                    click.echo(_decision_line(d))
                    printed.add(d["id"])
            events = (snapshot.get("incidents") or {}).get("events") or []
            if events != last_events:         # the final snapshot repeats the last step's
                for kind, incident, title in events:
                    click.echo(f"incident {kind}: {title} [{incident}]")
                last_events = events

        with monitor_lib.stop_on_signals() as should_stop:
            total = monitor_lib.run(mon, once=once, max_records=max_records,
                                    poll_seconds=cfg.monitor.poll_seconds, on_window=published,
                                    should_stop=should_stop)
        published(mon.snapshot())
    except (MonitorError, PredictionLogError, LabelsError, exporter.MetricsError) as e:
        raise DriftguardError(str(e)) from None
    finally:
        if server is not None:
            server.close()
        if mon is not None:
            mon.close()
    c = mon.counters
    click.echo(f"read {total['records']} record(s) ({total['log_records']} log records), {total['labels']} label(s); "
               f"{total['windows']} window(s), {total['alerts']} alert(s) this run | total: {c['records']} records, "
               f"{c['windows']} windows, {c['labels_joined']} labels joined, "
               f"{sum(c['alerts'].values())} alerts, {_incidents_text(mon)} | metrics "
               f"{mon.state_dir / exporter.METRICS_FILE}")
    lanes = ", ".join(f"v{v}: {ln.records} records, {ln.windows} windows, {ln.unfinished()} in the next"
                      for v, ln in sorted(mon.lanes.items()))
    if lanes:
        click.echo(f"per version: {lanes}")
    rollout = mon.snapshot()["rollout"]
    if rollout["active"] or rollout["decisions"]:
        click.echo(_rollout_line(rollout))
    left = [f"{n} {SKIP_TEXT.get(r, r)}" for r, n in sorted(c["skipped"].items()) if n]
    left += [f"{c.get(k, 0)} {text}" for k, text in LEFT_OUT if c.get(k, 0)]
    if c.get("window_errors"):
        left.append(f"{c['window_errors']} window(s) whose feature check was skipped (the window lines say why)")
    click.echo("left out (in all): " + ("; ".join(left) if left else "nothing"))


def _incidents_text(mon) -> str:
    t = mon.incidents.summary()["totals"]
    return (f"incidents: {t['opened']} opened, {t['updated']} updates sent, {t['repeated']} repeats recorded, "
            f"{t['resolved']} resolved, {len(mon.incidents.open)} open")


def _decision_line(d: dict) -> str:
    what = "rolled back" if d["action"] == "rollback" else "promoted to champion"
    return f"rollout decision: challenger version {d['challenger']} {what} ({d['status']}): {d['reason']}"


def _rollout_line(rollout: dict) -> str:
    """The comparison running now, or the last decision."""
    a = rollout["active"]
    if a is None:
        d = rollout["decisions"][-1]
        return (f"rollout: none running; last: {d['action']} of version {d['challenger']} against version "
                f"{d['champion']} ({d['status']})")
    loss = a["loss"]
    text = (f"rollout {a['mode']}: challenger v{a['challenger']} vs champion v{a['champion']}: labels "
            f"{a['labels']['challenger']} / {a['labels']['champion']}")
    if loss["challenger"] is not None and loss["champion"] is not None:
        text += f", loss {loss['challenger']:.4g} vs {loss['champion']:.4g}"
    est = a.get("estimated") or {}
    if est.get("challenger") is not None and est.get("champion") is not None:
        text += f", estimated metric {est['challenger']:.4g} vs {est['champion']:.4g}"
    if a["agreement"] is not None:
        text += f", agreement {100 * a['agreement']:.1f} % on {a['pairs']} shadowed ids"
    elif a["pairs"]:
        text += f", mean |difference| {a['mean_abs_difference']:.4g} on {a['pairs']} shadowed ids"
    d = a["decision"]
    return text + (f"; decision: {d['action']} ({d['status']})" if d else f"; {a['looks']} look(s), no decision yet")
