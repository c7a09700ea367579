"""``driftguard promote | rollback``: move the registry's version labels, with an audit trail.

Both change ``<registry>/labels.json`` atomically (components/registry_pusher/labels.py), append
who/when/what/why to ``<registry>/audit.jsonl``, and record the change in the project's MLMD
store when it has one (components/registry_pusher/mlmd_record.py). ``driftguard serve`` picks the
change up at its next poll, without a restart.
"""
from __future__ import annotations

import click

from driftguard.pipeline.cli_support import DriftguardError, load_config, user_errors


def _record(cfg, changes) -> None:
    """The changes in MLMD (best effort: the label change stands, and is in the audit trail,
    whether or not MLMD takes it)."""
    from driftguard.components.registry_pusher import labels as labels_lib
    from driftguard.components.registry_pusher import mlmd_record
    from driftguard.pipeline import metadata

    if not changes:
        return
    where = metadata.describe(cfg)
    try:
        connection = metadata.connection_config(cfg) if metadata.store_exists(cfg) else None
        ids = mlmd_record.record_label_changes(connection, cfg.model_registry, cfg.model_name, changes,
                                               labels_lib.read_labels(cfg.model_registry))
    except Exception as e:  # noqa: BLE001 - e.g. the store locked by a running pipeline
        click.echo(f"warning: the change is in {cfg.model_registry / labels_lib.AUDIT_FILE} but could not be "
                   f"recorded in MLMD ({where}): {type(e).__name__}: {e}", err=True)
        return
    if ids:
        click.echo(f"recorded in MLMD ({where}): execution {', '.join(map(str, ids))}")


def _reason_option(f):
    return click.option("--reason", required=True, metavar="TEXT",
                        help="Why (kept in the audit trail and in MLMD).")(f)


@click.command()
@click.argument("version", metavar="VERSION")
@click.option("--label", default="champion", show_default=True,
              help="The label to point at VERSION (champion: the version served by default; any other, "
                   "e.g. canary, is served at /v1/models/<model>/labels/<label>:predict).")
@_reason_option
@click.pass_context
def promote(ctx: click.Context, version: str, label: str, reason: str) -> None:
    """Point a label (champion by default) at a version.

    VERSION is a version number or a label: `driftguard promote challenger --reason ...` makes
    the challenger's version the champion."""
    from driftguard.components import storage
    from driftguard.components.registry_pusher import labels as labels_lib

    cfg = load_config(ctx)
    registry = cfg.model_registry
    with user_errors(labels_lib.LabelError, storage.StorageError):
        number = labels_lib.resolve(registry, version)
        change = labels_lib.promote(registry, number, label=label, reason=reason)
    if change is None:
        click.echo(f"{cfg.model_name}: label {label} already points to version {number}; nothing changed")
        return
    was = "none" if change.previous is None else f"version {change.previous}"
    if change.entry.get("previous_implicit"):
        was += " (the newest, served by default)"
    click.echo(f"{cfg.model_name}: {label} -> version {number} (was {was}); audit: "
               f"{registry / labels_lib.AUDIT_FILE}")
    _record(cfg, [change])


@click.command()
@_reason_option
@click.pass_context
def rollback(ctx: click.Context, reason: str) -> None:
    """Put the previous champion back (from the registry's audit trail)."""
    from driftguard.components import storage
    from driftguard.components.registry_pusher import labels as labels_lib

    cfg = load_config(ctx)
    registry = cfg.model_registry
    if not registry.is_dir():
        raise DriftguardError(f"no registry at {registry}: nothing was ever pushed, nothing to roll back")
    with user_errors(labels_lib.LabelError, storage.StorageError):
        change = labels_lib.rollback(registry, reason=reason)
    click.echo(f"{cfg.model_name}: champion -> version {change.version} (rolled back from version "
               f"{change.previous}); audit: {registry / labels_lib.AUDIT_FILE}")
    _record(cfg, [change])


COMMANDS = (promote, rollback)
