"""``driftguard report [RUNS_DIR]``: (re)build the span pages and the trend dashboard."""
from __future__ import annotations

import pathlib
from typing import Optional

import click


class ReportError(click.ClickException):
    """'error: ...' on stderr, exit status 2 (as every driftguard error)."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@click.command("report")
@click.argument("runs_dir", required=False, type=click.Path(file_okay=False, path_type=pathlib.Path))
@click.option("--force", is_flag=True, help="Rewrite every span page, even those up to date.")
@click.pass_context
def report(ctx: click.Context, runs_dir: Optional[pathlib.Path], force: bool) -> None:
    """Build runs/reports/index.html (trend dashboard) and one page per checked span.

    RUNS_DIR defaults to the project's runs folder (the config's `runs`); then, with an s3://
    `pipeline_root`, the span checks' report files are first copied from the bucket into
    runs/pipeline-cache (a RUNS_DIR given here is read as it is). Prints the dashboard's path.
    """
    from driftguard.components.reports.build import build_reports

    reports_uri = ""
    if runs_dir is None:
        load = (ctx.obj or {}).get("load_config")
        settings = load() if load else None
        runs_dir = settings.runs_path if settings else pathlib.Path("runs")
        reports_uri = getattr(settings, "reports_uri", "")
        prepare = getattr(settings, "prepare_reports", None)
        if prepare is not None:     # an s3:// pipeline_root: its report files copied under runs first
            try:
                prepare()
            except (OSError, ValueError) as e:     # storage.StorageError is a ValueError
                raise ReportError(f"pipeline_root: cannot copy the span checks' report files from "
                                  f"{getattr(settings, 'pipeline_root_uri', '')}: {type(e).__name__}: {e}") from None
    try:
        index = build_reports(runs_dir, force=force)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:      # ReportWriteError: disk full, read-only, a file where a folder goes
        raise ReportError(e.strerror or str(e)) from None
    except ValueError as e:   # a state.json or report.json that is not what driftguard wrote
        raise ReportError(f"cannot build the reports of {runs_dir}: {e}") from None
    if reports_uri:     # the config's `reports`: a copy in object storage (components/storage.py)
        from driftguard.components import storage

        try:
            count = storage.upload_tree(index.parent, reports_uri)
        except (OSError, storage.StorageError) as e:
            raise ReportError(f"reports: built {index} but could not copy it to {reports_uri}: "
                              f"{type(e).__name__}: {e}") from None
        click.echo(f"{index} (copied to {reports_uri}/, {count} files)")
        return
    click.echo(str(index))
