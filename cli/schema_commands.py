"""``driftguard schema list | new-version | infer``: the project's versioned schemas
(``pipeline/schemas.py``), never edited in place: a change is a new version."""
from __future__ import annotations

from typing import Optional

import click

from driftguard.pipeline import loop
from driftguard.pipeline.cli_support import DriftguardError, load_config, parse_spans, setup_logging, user_errors


@click.group()
def schema() -> None:
    """Versioned schemas under schemas/<model>/v<N>/ (never edited in place)."""


@schema.command("list")
@click.pass_context
def schema_list(ctx: click.Context) -> None:
    """List the schema versions and which one the config uses."""
    from driftguard.pipeline import schemas

    cfg = load_config(ctx)
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

    cfg = load_config(ctx)
    span = parse_spans(cfg, span_text)[0]
    with user_errors(loop.LoopError):
        loop.check_spans(cfg, [span])
    setup_logging(cfg.runs_path, "schema", verbose=False)
    root = cfg.schema_root
    with user_errors(schemas.SchemaVersionError):
        result = schemas.new_version_from_span(root, spanfiles.Layout.of(cfg), span, write=not dry_run,
                                               span_label=cfg.span_label(span))
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

    cfg = load_config(ctx)
    spans = parse_spans(cfg, spans_text) if spans_text else cfg.span_numbers(cfg.first_spans)
    if not spans:
        raise DriftguardError("--from-spans is needed (first_spans is empty)")
    with user_errors(loop.LoopError):
        loop.check_spans(cfg, spans, training=True)
    setup_logging(cfg.runs_path, "schema", verbose=False)
    with user_errors(schemas.SchemaVersionError):
        result = schemas.infer_first_version(cfg.schema_root, spanfiles.Layout.of(cfg), spans,
                                             label_column=cfg.model.label.column, write=not dry_run)
    if result.path is None:
        click.echo(result.diff, nl=False)
        click.echo("(dry run: v1 not written)")
        return
    click.echo(f"wrote {result.path}: inferred from span(s) {cfg.spans.format_list(spans)}.\n"
               f"Review it before training (presence, domains, integer codes that are categories, which "
               f"features serving lacks); set schema_version: 1 in driftguard.yaml.")


COMMANDS = (schema,)
