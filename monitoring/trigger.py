"""The monitor's retrain trigger: on a critical alert, retraining starts once per serving version,
locally or through the orchestrator (``driftguard.pipeline.orchestrate.triggers``)."""
from __future__ import annotations

import datetime
import logging
import os
import pathlib
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

from driftguard.monitoring.errors import MonitorError

if TYPE_CHECKING:
    from driftguard.monitoring.monitor import Monitor

log = logging.getLogger(__name__)

RETRAIN_MODES = ("none", "local", "airflow", "kfp")


class Retrainer:
    """Triggers retraining on a critical alert, once per serving version (remembered in the
    monitor's state, and marked there *before* the trigger, so a crash never triggers twice).

    ``local`` starts ``driftguard run`` in the background (its pid and log file are logged);
    ``airflow`` posts a DAG run of the training DAG through Airflow's REST API
    (``driftguard.pipeline.orchestrate.triggers.trigger_airflow_dag``, basic auth from ``AIRFLOW_USERNAME`` /
    ``AIRFLOW_PASSWORD``); ``kfp`` submits the compiled pipeline package to Kubeflow Pipelines.
    """

    def __init__(self, cfg, *, mode: str = "none", state_dir: pathlib.Path, config_path: Optional[str] = None,
                 airflow_url: Optional[str] = None, dag_id: Optional[str] = None,
                 kfp_host: Optional[str] = None, kfp_package: Optional[str] = None):
        if mode not in RETRAIN_MODES:
            raise MonitorError(f"--retrain must be one of {', '.join(RETRAIN_MODES)}, got {mode!r}")
        if mode == "airflow" and not airflow_url:
            raise MonitorError("--retrain airflow needs --airflow-url URL (the Airflow webserver)")
        if mode == "kfp" and not kfp_host:
            raise MonitorError("--retrain kfp needs --kfp-host URL")
        self.cfg, self.mode, self.state_dir, self.config_path = cfg, mode, state_dir, config_path
        self.airflow_url, self.dag_id = airflow_url, dag_id or cfg.training_pipeline_name()
        self.kfp_host, self.kfp_package = kfp_host, kfp_package or "build/kfp/pipeline.yaml"

    def maybe_trigger(self, monitor: Monitor, alerts: Sequence[Any]) -> None:
        if self.mode == "none":
            return
        critical = [a for a in alerts if a.severity == "critical"]
        version = monitor.serving.get("version")
        if not critical or version is None:
            return
        done = monitor.retrain_state.setdefault("versions", {})
        if str(version) in done:
            log.info("retraining for serving version %s was already triggered (%s); not again", version,
                     done[str(version)].get("status"))
            return
        reason = critical[0].dedup_key
        record = {"status": "starting", "mode": self.mode, "reason": reason, "at": time.time()}
        done[str(version)] = record
        monitor.commit()          # the intent first: a crash after this never triggers twice
        try:
            record.update(self._trigger(version, reason))
            record["status"] = "triggered"
            monitor.counters["retrain_triggers"] += 1
        except Exception as e:  # noqa: BLE001 - a failed trigger is reported, monitoring goes on
            record["status"] = "failed"
            record["error"] = f"{type(e).__name__}: {e}"[:500]
            log.error("retraining trigger (%s) failed: %s", self.mode, record["error"])

    def _trigger(self, version: int, reason: str) -> Dict[str, Any]:
        if self.mode == "local":
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            log_path = self.state_dir / f"retrain-{stamp}.log"
            cmd = [sys.executable, "-m", "driftguard.cli"]
            if self.config_path:
                cmd += ["--config", str(self.config_path)]
            cmd += ["run"]
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=str(pathlib.Path(__file__).resolve().parent.parent),
                                        start_new_session=True)
            log.warning("critical alert %s: started `driftguard run` (pid %d), log %s", reason, proc.pid, log_path)
            return {"pid": proc.pid, "log": str(log_path), "command": cmd}
        if self.mode == "airflow":
            from driftguard.pipeline.orchestrate.triggers import AIRFLOW_PASSWORD_ENV, AIRFLOW_USER_ENV, trigger_airflow_dag

            user, password = os.environ.get(AIRFLOW_USER_ENV), os.environ.get(AIRFLOW_PASSWORD_ENV)
            auth = None
            if user and password:
                import base64

                auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            run_id = f"driftguard-monitor-{self.cfg.model_name}-v{version}"
            answer = trigger_airflow_dag(self.airflow_url, self.dag_id,
                                         {"reason": reason, "source": "driftguard monitor"}, auth, run_id=run_id)
            log.warning("critical alert %s: triggered Airflow DAG %s run %s", reason, self.dag_id,
                        answer.get("dag_run_id"))
            return {"dag_id": self.dag_id, "dag_run_id": answer.get("dag_run_id", run_id)}
        from driftguard.pipeline.orchestrate.triggers import kfp_client

        run = kfp_client(self.kfp_host).create_run_from_pipeline_package(
            str(self.kfp_package), arguments={}, run_name=f"driftguard-monitor-v{version}",
            experiment_name="driftguard", enable_caching=False)
        log.warning("critical alert %s: submitted %s to KFP run %s", reason, self.kfp_package, run.run_id)
        return {"kfp_run_id": run.run_id}
