"""``driftguard alerts``: test the sinks, list the outbox, retry due deliveries.

The group reads its settings through ``ctx.obj["load_config"]()``, which returns an object
with ``.alerts`` (an :class:`AlertsConfig`) and ``.runs_path`` (the outbox lives at
``runs_path/alerts/outbox.sqlite``). The main CLI adds it with ``main.add_command(alerts)``.

Exit status: 0 success, 1 a delivery failed, 2 usage or configuration error.
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Dict, List

import click

from driftguard.components.alerts.alert import Alert
from driftguard.components.alerts.outbox import STATES, Outbox, OutboxError, outbox_path
from driftguard.components.alerts.sinks import DeliveryError, build_sinks


class OutboxUnusable(click.ClickException):
    """The outbox file cannot be read or written: 'error: ...' on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _settings(ctx: click.Context):
    loader = (ctx.obj or {}).get("load_config")
    if loader is None:
        raise click.UsageError("no configuration loader (ctx.obj['load_config']) was set up", ctx)
    return loader()


@click.group("alerts")
def alerts() -> None:
    """Alert sinks and the delivery outbox."""


@alerts.command("test")
@click.pass_context
def test_cmd(ctx: click.Context) -> None:
    """Send one test alert through every configured sink (no outbox, no dedup)."""
    cfg = _settings(ctx)
    sinks = build_sinks(cfg.alerts, cfg.runs_path)
    if not sinks:
        click.echo("no sinks configured (alerts.sinks is empty)")
        return
    model = getattr(cfg, "model_name", "driftguard")
    unique = uuid.uuid4().hex[:12]
    alert = Alert(rule="test", severity="info", title=f"{model}: driftguard test alert {unique}",
                  summary="A test alert from `driftguard alerts test`; no action needed.",
                  labels={"model": model, "rule": "test"}, dedup_key=f"{model}/test/{unique}")
    width = max(len(n) for n in sinks)
    all_ok = True
    for name, sink in sinks.items():
        try:
            sink.send(alert, cfg.alerts.delivery.timeout_seconds)
        except DeliveryError as e:
            all_ok = False
            click.echo(f"{name:<{width}}  {sink.config.type:<12}  FAILED: {e}")
        else:
            click.echo(f"{name:<{width}}  {sink.config.type:<12}  ok")
    ctx.exit(0 if all_ok else 1)


@alerts.command("list")
@click.option("--state", type=click.Choice(STATES), help="Only rows in this delivery state.")
@click.option("--json", "as_json", is_flag=True, help="One JSON list instead of a table.")
@click.pass_context
def list_cmd(ctx: click.Context, state: str, as_json: bool) -> None:
    """The outbox: one row per (alert, sink) with its delivery state."""
    cfg = _settings(ctx)
    path = outbox_path(cfg.runs_path)
    try:
        rows = Outbox(path).rows(state) if path.exists() else []
    except OutboxError as e:
        raise OutboxUnusable(str(e)) from None
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"no alerts{f' in state {state}' if state else ''} ({path})")
        return
    click.echo(_table(rows))


def _table(rows: List[Dict[str, Any]]) -> str:
    header = ("id", "state", "sink", "tries", "severity", "created", "delivered/next", "dedup_key")
    lines = [header]
    for r in rows:
        when = r["delivered_at"] if r["state"] == "delivered" else (r["next_attempt_at"] or "-")
        lines.append((str(r["id"]), r["state"], r["sink"], str(r["attempts"]), r["severity"], r["created_at"],
                      when, r["dedup_key"]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines]
    for r in rows:
        if r["last_error"] and r["state"] != "delivered":
            out.append(f"  #{r['id']} last error: {r['last_error']}")
    return "\n".join(out)


@alerts.command("deliver")
@click.pass_context
def deliver_cmd(ctx: click.Context) -> None:
    """Send every due pending alert now (retries with backoff otherwise wait for the next run)."""
    cfg = _settings(ctx)
    path = outbox_path(cfg.runs_path)
    if not path.exists():
        click.echo(f"outbox is empty ({path})")
        return
    d = cfg.alerts.delivery
    try:
        result = Outbox(path).deliver(build_sinks(cfg.alerts, cfg.runs_path), timeout=d.timeout_seconds,
                                      max_attempts=d.max_attempts, backoff_seconds=d.backoff_seconds,
                                      max_backoff_seconds=d.max_backoff_seconds)
    except OutboxError as e:
        raise OutboxUnusable(f"{e}; an alert whose delivery could not be recorded stays pending and is "
                             f"sent again by the next `driftguard alerts deliver`") from None
    for key, sink, message in result.errors:
        click.echo(f"FAILED {key} -> {sink}: {message}")
    click.echo(f"delivered {result.delivered}, failed {result.failed} (gave up {result.gave_up}), "
               f"deferred {result.deferred}, pending {result.pending}")
    ctx.exit(0 if result.failed == 0 else 1)
