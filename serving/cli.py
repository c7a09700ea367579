"""``driftguard serve``: the click command of the serving product (registered on the main group
by ``cli/main.py``).

Exit status: 0 when the server was stopped (SIGTERM / Ctrl-C), 2 on an error (message on
stderr naming the setting or the registry problem).
"""
from __future__ import annotations

import logging
import pathlib
import sys
from typing import Optional

import click

from driftguard.pipeline.cli_support import DriftguardError, load_config, token_from_env


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; a non-loopback address needs --token-env.")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="Port (0: any free port; the start line prints the URL).")
@click.option("--poll-seconds", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="How often the registry is checked for a new version.")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=10 << 20, show_default=True,
              help="Larger request bodies get 413.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="Prediction log folder (default: <runs>/prediction_logs/<model>).")
@click.option("--log-sample-rate", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Share of requests written to the prediction log (0 turns logging off).")
@click.option("--log-max-mb", type=click.FloatRange(min=0, min_open=True), default=64.0, show_default=True,
              help="Start a new prediction log file at this size.")
@click.option("--log-max-age", type=click.FloatRange(min=0, min_open=True), default=3600.0, show_default=True,
              help="Start a new prediction log file after this many seconds.")
@click.option("--token-env", metavar="VAR", default=None,
              help="Require 'Authorization: Bearer <token>', the token read from environment variable VAR.")
@click.option("--inference-threads", type=click.IntRange(min=1), default=4, show_default=True,
              help="Threads that run predictions (JSON decoding, TensorFlow, the log write); "
                   "connections are served by one event loop (docs/serving.md).")
@click.option("-v", "--verbose", is_flag=True, help="Log every request (access log) to stderr.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, poll_seconds: float, max_body_bytes: int,
          log_dir: Optional[pathlib.Path], log_sample_rate: float, log_max_mb: float, log_max_age: float,
          token_env: Optional[str], inference_threads: int, verbose: bool) -> None:
    """Serve the registry's champion version (the newest without labels) over TF Serving's REST API (see README, "Serving").

    With a `rollout:` section in the config and a loaded `challenger` label, requests without
    /versions/ or /labels/ are split: shadow (the challenger predicts too, logged only) or
    canary (it answers canary_share of the request ids). docs/serving.md, "Shadow and canary".

    \b
    POST /v1/models/<model>[/versions/<v>]:predict   GET /v1/models/<model>[/versions/<v>][/metadata]
    GET /metrics (Prometheus)   GET /healthz
    Runs until SIGTERM/SIGINT; prints 'serving <model> v<N> at <url>' once it is ready.
    """
    from driftguard.serving import server as server_lib
    from driftguard.serving.settings import ServeError, ServeSettings

    cfg = load_config(ctx)
    token = token_from_env(token_env)
    settings = ServeSettings(
        registry=cfg.model_registry, model_name=cfg.model_name, host=host, port=port,
        poll_seconds=poll_seconds, max_body_bytes=max_body_bytes,
        log_dir=None if log_sample_rate == 0 else (log_dir or cfg.runs_path / "prediction_logs" / cfg.model_name),
        log_sample_rate=log_sample_rate, log_max_bytes=max(1, int(log_max_mb * (1 << 20))),
        log_max_age_seconds=log_max_age, token=token, inference_threads=inference_threads,
        model_spec=cfg.model_spec(),
        rollout_mode=cfg.rollout.mode if cfg.rollout is not None else None,
        canary_share=cfg.rollout.canary_share if cfg.rollout is not None else 0.1)
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorflow", "absl", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        server_lib.serve(settings.validate())
    except ServeError as e:
        raise DriftguardError(str(e)) from None
