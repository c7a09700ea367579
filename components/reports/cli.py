"""``driftguard report [RUNS_DIR]``: (re)build the span pages and the trend dashboard."""
from __future__ import annotations

import pathlib
from typing import Optional

import click


@click.command("report")
@click.argument("runs_dir", required=False, type=click.Path(file_okay=False, path_type=pathlib.Path))
@click.option("--force", is_flag=True, help="Rewrite every span page, even those up to date.")
@click.pass_context
def report(ctx: click.Context, runs_dir: Optional[pathlib.Path], force: bool) -> None:
    """Build runs/reports/index.html (trend dashboard) and one page per checked span.

    RUNS_DIR defaults to the config's runs_dir. Prints the dashboard's path.
    """
    from components.reports.build import build_reports

    if runs_dir is None:
        load = (ctx.obj or {}).get("load_config")
        runs_dir = load().runs_path if load else pathlib.Path("runs")
    try:
        index = build_reports(runs_dir, force=force)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    click.echo(str(index))
