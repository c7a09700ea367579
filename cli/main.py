"""``driftguard``: the click group (``--project``, ``--config``) and every command registered on it.

Exit status everywhere: 0 success, 2 error (message on stderr). ``driftguard drift`` adds 1
for "drift detected", ``driftguard check`` 1 for drift or schema anomalies. Heavy imports
(TensorFlow, TFX) happen inside the commands that need them, so ``--help`` and
``driftguard drift`` start fast.
"""
from __future__ import annotations

import warnings
from typing import Optional

import click

from driftguard.cli import loop_commands, orchestrator_commands, project_commands, registry_commands, schema_commands
from driftguard.components.alerts.cli import alerts
from driftguard.components.drift.cli import drift
from driftguard.components.reports.cli import report
from driftguard.monitoring.cli import monitor
from driftguard.pipeline import config as config_lib
from driftguard.pipeline import loop
from driftguard.pipeline.cli_support import load_config
from driftguard.serving.cli import serve

# Google's client libraries (imported by TFX's Kubeflow/Vertex modules) warn at import that
# Python 3.10 and google-cloud-storage 2 will not be supported for long: TFX 1.16 pins both
# (requirements.lock), so the user can do nothing about it.
warnings.filterwarnings("ignore", message="You are using a non-supported Python version", category=FutureWarning)
warnings.filterwarnings("ignore", message="Support for google-cloud-storage < 3.0.0", category=FutureWarning)


class _Group(click.Group):
    """The command line's group: a process in which tensorflow-io's S3 file system was used (an
    s3:// ``pipeline_root``) ends through ``object_root.exit_now``, because the interpreter's own
    exit aborts there (components/object_root.py); every other process exits as usual."""

    def main(self, *args, **kwargs):
        from driftguard.components import object_root

        try:
            return super().main(*args, **kwargs)
        except SystemExit as e:
            if object_root.registered() and kwargs.get("standalone_mode", True):
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                if not isinstance(e.code, (int, type(None))):
                    click.echo(e.code, err=True)
                object_root.exit_now(code)
            raise


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj["config_path"] = None            # set by load_config: the project's config file
    ctx.obj["load_config"] = lambda: _AlertsSettings(load_config(ctx))


class _AlertsSettings:
    """What `driftguard alerts ...` and `driftguard report` need from the config: the component
    CLIs (components/alerts/cli.py, components/reports/cli.py) get it through
    ``ctx.obj["load_config"]``, so they import nothing from the pipeline."""

    def __init__(self, cfg: config_lib.Config):
        self.alerts = cfg.alerts_settings
        self.runs_path = cfg.runs_path
        self.model_name = cfg.model_name
        self.reports_uri = cfg.reports_uri
        self.pipeline_root_uri = cfg.pipeline_root_uri
        # before `driftguard report` builds: the local mirror of an s3:// pipeline_root (the loop's)
        self.prepare_reports = lambda: loop.mirror_pipeline_root(cfg)


for _command in (*loop_commands.COMMANDS, *registry_commands.COMMANDS, *schema_commands.COMMANDS,
                 *project_commands.COMMANDS, *orchestrator_commands.COMMANDS, serve, monitor, drift, alerts, report):
    main.add_command(_command)

if __name__ == "__main__":
    main()
