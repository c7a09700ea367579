"""``driftguard compile | trigger | submit``: the orchestrators' commands.

``compile`` writes the Kubeflow v2 pipeline spec (``pipeline/orchestrate/kubeflow.py``) or the
Airflow DAG file (``pipeline/orchestrate/airflow_dags.py``); ``trigger`` and ``submit`` start a
run through :mod:`driftguard.pipeline.orchestrate.triggers`, which the live monitor's retrain
trigger uses too. Exit status: 0 success, 2 error.
"""
from __future__ import annotations

import json
import os
import pathlib
import urllib.error
from typing import Optional

import click

from driftguard.pipeline.cli_support import DriftguardError, load_config, prepare_storage, user_errors
from driftguard.pipeline.orchestrate import triggers

IMAGE_ENV = "DRIFTGUARD_IMAGE"


@click.command("compile")
@click.option("--target", type=click.Choice(["kubeflow", "airflow"]), required=True,
              help="Orchestrator to compile for.")
@click.option("--output", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="kubeflow: folder for pipeline_job.json (Vertex) and pipeline.yaml (KFP).")
@click.option("--dags-folder", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="airflow: Airflow's dags folder; the DAG file is written there.")
@click.option("--span", "span_text", default=None, metavar="SPAN",
              help="kubeflow: a fixed span to check (default: the newest span when each run starts, so a "
                   "recurring run needs no recompile).")
@click.option("--image-project-dir", default="/project", show_default=True, metavar="DIR",
              help="kubeflow: where the image holds the project (its model module, data, schemas, runs).")
@click.option("--image", default=None, metavar="IMAGE",
              help=f"kubeflow: container image of every task (default: env {IMAGE_ENV} or "
                   f"driftguard:tfx-1.16.0, built from the Dockerfile).")
@click.option("--pipeline-root", default=None, metavar="URI",
              help="kubeflow: pipeline root (gs://... or a path mounted in every pod; default: the config's "
                   "pipeline root/<model>-check-and-train; s3:// is refused).")
@click.option("--alerts-secret", default="driftguard-alerts", show_default=True, metavar="NAME",
              help="kubeflow: the Kubernetes secret holding the alert sinks' variables (one key per variable).")
@click.option("--schedule", default="@daily", show_default=True,
              help="airflow: schedule of the span-check DAG (cron or preset; 'none' for manual).")
@click.pass_context
def compile_command(ctx: click.Context, target: str, output: Optional[pathlib.Path],
                    dags_folder: Optional[pathlib.Path], span_text: Optional[str], image_project_dir: str,
                    image: Optional[str], pipeline_root: Optional[str], alerts_secret: str, schedule: str) -> None:
    """Write the Kubeflow v2 pipeline spec or the Airflow DAG file.

    \b
      driftguard compile --target kubeflow --output build/kfp --image REGISTRY/driftguard:1
      driftguard compile --target airflow --dags-folder ~/airflow/dags
    """
    if target == "airflow" and dags_folder is None:
        raise DriftguardError("compile --target airflow needs --dags-folder DIR (Airflow's dags folder)")
    if target == "kubeflow" and output is None:
        raise DriftguardError("compile --target kubeflow needs --output DIR")
    if target == "airflow":
        from driftguard.pipeline.orchestrate import airflow_dags

        # an s3:// pipeline_root is refused (exit 2) before any bucket is reached or file written
        cfg = load_config(ctx, storage=False)
        with user_errors(airflow_dags.AirflowConfigError):
            airflow_dags.refuse_object_root(cfg)
        prepare_storage(cfg)
        with user_errors(airflow_dags.AirflowConfigError):
            path = airflow_dags.write_airflow_dags(ctx.obj.get("config_path") if ctx.obj else None, dags_folder,
                                                   schedule=None if schedule.lower() == "none" else schedule)
        click.echo(f"wrote {path}\n"
                   f"DAGs: {airflow_dags.check_dag_id(cfg)} (span check, schedule {schedule}) -> triggers "
                   f"{airflow_dags.training_dag_id(cfg)} (training)\n"
                   f"Airflow needs driftguard installed and AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT=300")
        return
    from driftguard.pipeline.orchestrate import kubeflow

    # an s3:// pipeline root is refused (exit 2) before any bucket is reached
    cfg = load_config(ctx, storage=False)
    with user_errors(kubeflow.KubeflowConfigError):
        kubeflow.check_pipeline_root(pipeline_root or cfg.pipeline_root_uri,
                                     "--pipeline-root" if pipeline_root else "pipeline_root")
    prepare_storage(cfg)

    span = None                          # the newest span when the run starts
    if span_text is not None:
        try:
            span = cfg.spans.number(span_text)
        except ValueError as e:
            raise DriftguardError(f"--span: {e}") from None
    image = image or os.environ.get(IMAGE_ENV) or kubeflow.DEFAULT_IMAGE
    with user_errors(kubeflow.KubeflowConfigError):
        paths = kubeflow.compile_kubeflow(cfg, span, output, image, pipeline_root=pipeline_root,
                                          image_project_dir=image_project_dir, alerts_secret=alerts_secret)
    secrets = (f"alert delivery reads {', '.join(paths['secret_variables'])} from the Kubernetes secret "
               f"{alerts_secret!r}" if paths["secret_variables"] else "alert delivery needs no secret")
    click.echo(f"wrote {paths['pipeline_job']} (Vertex AI PipelineJob)\n"
               f"wrote {paths['pipeline_spec']} (KFP pipeline spec: driftguard submit --kfp-host URL "
               f"--package {paths['pipeline_spec']})\n"
               f"{'the newest span when the run starts' if span is None else f'span {span}'}; training branch "
               f"under Cond({kubeflow.GATE_ID}.retrain == 1); image {image}\n"
               f"{secrets}")


@click.command("trigger")
@click.option("--airflow", "airflow_url", required=True, metavar="URL",
              help="Airflow webserver base URL, e.g. http://localhost:8080")
@click.option("--dag", "dag_id", default=None, metavar="ID",
              help="DAG id (default: the config's training DAG, <model>-training).")
@click.option("--spans", "spans_text", default=None, metavar="SPANS",
              help="conf spans for the training DAG, e.g. '7,8' (must match the DAG's window).")
@click.option("--conf", "conf_text", default=None, metavar="JSON", help="Full dag run conf as JSON.")
@click.option("--run-id", default=None, help="dag_run_id (default: Airflow makes one).")
@click.option("--user-env", default=triggers.AIRFLOW_USER_ENV, show_default=True,
              help="Environment variable holding the Airflow user name.")
@click.option("--password-env", default=triggers.AIRFLOW_PASSWORD_ENV, show_default=True,
              help="Environment variable holding the Airflow password.")
@click.pass_context
def trigger(ctx: click.Context, airflow_url: str, dag_id: Optional[str], spans_text: Optional[str],
            conf_text: Optional[str], run_id: Optional[str], user_env: str, password_env: str) -> None:
    """Start a DAG run through Airflow's stable REST API (basic auth from env vars only)."""
    if dag_id is None:
        dag_id = load_config(ctx).training_pipeline_name()
    try:
        conf = json.loads(conf_text) if conf_text else {}
    except ValueError as e:
        raise DriftguardError(f"--conf is not valid JSON: {e}") from None
    if not isinstance(conf, dict):
        raise DriftguardError("--conf must be a JSON object")
    if spans_text:
        # span numbers as the training DAG takes them; a project's calendar spans may be given as
        # written (2013-05,2013-06) when the command runs in the project
        from driftguard.pipeline import project
        from driftguard.components.spans import SpanPattern

        pattern = SpanPattern("span-{SPAN}/*")
        try:
            pattern = project.load(ctx.obj.get("project"), ctx.obj.get("config_file")).spans
        except project.config_lib.ConfigError:
            pass
        try:
            conf["spans"] = ",".join(map(str, pattern.parse_list(spans_text)))
        except ValueError as e:
            raise DriftguardError(str(e)) from None
    with user_errors(triggers.TriggerError):
        auth = triggers.airflow_auth_header(user_env, password_env)
    try:
        answer = triggers.trigger_airflow_dag(airflow_url, dag_id, conf, auth, run_id)
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        hint = {401: f" (set {user_env} and {password_env})", 403: " (the user may not trigger DAGs)",
                404: f" (no DAG {dag_id!r} on {airflow_url}; is the DAG file parsed?)"}.get(e.code, "")
        raise DriftguardError(f"Airflow answered HTTP {e.code} for DAG {dag_id}{hint}: {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DriftguardError(f"cannot reach Airflow at {airflow_url}: {getattr(e, 'reason', e)}") from None
    click.echo(f"triggered {dag_id}: run {answer.get('dag_run_id')} state {answer.get('state')} "
               f"conf {json.dumps(answer.get('conf', conf), sort_keys=True)}\n"
               f"watch: {airflow_url.rstrip('/')}/dags/{dag_id}/grid")


@click.command("submit")
@click.option("--kfp-host", required=True, metavar="URL", help="KFP API endpoint, e.g. http://localhost:8080")
@click.option("--package", type=click.Path(dir_okay=False, exists=True, path_type=pathlib.Path),
              default=pathlib.Path("build/kfp/pipeline.yaml"), show_default=True,
              help="The compiled KFP pipeline spec (driftguard compile --target kubeflow).")
@click.option("--experiment", default="driftguard", show_default=True)
@click.option("--run-name", default=None)
@click.option("--pipeline-root", default=None, metavar="URI", help="Override the compiled pipeline root.")
def submit(kfp_host: str, package: pathlib.Path, experiment: str, run_name: Optional[str],
           pipeline_root: Optional[str]) -> None:
    """Submit the compiled pipeline to Kubeflow Pipelines (kfp.Client) as a new run."""
    if pipeline_root:
        from driftguard.pipeline.orchestrate import kubeflow

        with user_errors(kubeflow.KubeflowConfigError):
            kubeflow.check_pipeline_root(pipeline_root, "--pipeline-root")
    try:
        result = triggers.submit_kfp_run(kfp_host, package, run_name=run_name, experiment=experiment,
                                         pipeline_root=pipeline_root)
    except Exception as e:  # noqa: BLE001 - kfp raises many types (ApiException, MaxRetryError...)
        raise DriftguardError(f"KFP at {kfp_host} did not accept {package}: {type(e).__name__}: {e}") from None
    click.echo(f"submitted {package} to {kfp_host}: run {result.run_id} (experiment {experiment})\n"
               f"watch: {kfp_host.rstrip('/')}/#/runs/details/{result.run_id}")


COMMANDS = (compile_command, trigger, submit)
