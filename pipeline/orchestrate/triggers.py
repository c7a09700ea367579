"""Start a run on an orchestrator: an Airflow DAG run through Airflow's stable REST API, a
Kubeflow Pipelines run of a compiled package through ``kfp.Client``.

Used by the ``driftguard trigger`` and ``submit`` commands (``cli/orchestrator_commands.py``)
and by the live monitor's retrain trigger (``monitoring/trigger.py``). No click here: errors
are :class:`TriggerError` (a setting to fix) or the transport's own exception
(``urllib.error.HTTPError`` / ``URLError``, kfp's), which each caller words for its reader.
"""
from __future__ import annotations

import base64
import json
import os
import pathlib
import urllib.parse
import urllib.request
from typing import Optional, Union

AIRFLOW_USER_ENV = "AIRFLOW_USERNAME"
AIRFLOW_PASSWORD_ENV = "AIRFLOW_PASSWORD"


class TriggerError(ValueError):
    """A trigger's settings are incomplete (the message names the missing one)."""


def airflow_auth_header(user_env: str = AIRFLOW_USER_ENV, password_env: str = AIRFLOW_PASSWORD_ENV) -> Optional[str]:
    """'Basic ...' from the user name and password in the environment variables ``user_env`` and
    ``password_env`` (credentials never come from a command line or a file); None when neither is
    set (an Airflow without authentication); :class:`TriggerError` when only one is."""
    user, password = os.environ.get(user_env), os.environ.get(password_env)
    if not user and not password:
        return None
    if not (user and password):
        missing = user_env if not user else password_env
        raise TriggerError(f"environment variable {missing} is not set (Airflow basic auth needs "
                           f"both {user_env} and {password_env})")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Basic {token}"


def trigger_airflow_dag(base_url: str, dag_id: str, conf: dict, auth_header: Optional[str],
                        run_id: Optional[str] = None, timeout: float = 30.0) -> dict:
    """``POST {base_url}/api/v1/dags/{dag_id}/dagRuns``; return Airflow's JSON answer."""
    url = f"{base_url.rstrip('/')}/api/v1/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns"
    body = {"conf": conf}
    if run_id:
        body["dag_run_id"] = run_id
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
    if auth_header:
        request.add_header("Authorization", auth_header)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - user's URL
        return json.loads(response.read().decode() or "{}")


def kfp_client(host: str):
    """A ``kfp.Client`` for the KFP API at ``host`` (kfp is imported here, when needed)."""
    import kfp

    return kfp.Client(host=host)


def submit_kfp_run(host: str, package: Union[str, pathlib.Path], *, run_name: Optional[str] = None,
                   experiment: str = "driftguard", pipeline_root: Optional[str] = None):
    """Start a run of the compiled pipeline ``package`` on KFP at ``host`` (no caching: every
    run checks its span anew); return kfp's run result (``.run_id``)."""
    return kfp_client(host).create_run_from_pipeline_package(
        str(package), arguments={}, run_name=run_name, experiment_name=experiment,
        pipeline_root=pipeline_root, enable_caching=False)
