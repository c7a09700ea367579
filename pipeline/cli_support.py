"""What every ``driftguard`` command module shares: the user-error exception, the project's
config from the click context, the log set-up, span-list parsing, the bearer token from the
environment.

It sits in ``pipeline/``, below ``monitoring/`` and ``serving/``, so that command modules anywhere
(``cli/``, ``monitoring/cli.py``, ``serving/cli.py``) import it without an import cycle; it holds
no command.
Library modules never import it (``.importlinter`` says so): they raise their own plain
exceptions, which the commands turn into :class:`DriftguardError`.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import pathlib
import re
import sys
import time
import warnings
from typing import Iterator, List, Optional, Type

import click

from driftguard.pipeline import config as config_lib

# Set before any command imports TensorFlow: TFT needs Keras 2 (tf_keras), and TF's C++
# start-up chatter (CUDA probes) would bury the progress lines.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class DriftguardError(click.ClickException):
    """An error the user can act on: printed as 'error: ...' on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@contextlib.contextmanager
def user_errors(*types: Type[BaseException]) -> Iterator[None]:
    """Turn a library's exceptions of ``types`` (their message says what to do) into
    :class:`DriftguardError`, so the command exits 2 with 'error: <message>'."""
    try:
        yield
    except types as e:
        raise DriftguardError(str(e)) from None


def token_from_env(token_env: Optional[str]) -> Optional[str]:
    """The bearer token from environment variable ``token_env`` (``--token-env``: a token never
    comes from the command line, where ``ps`` shows it); None when no variable is named."""
    if not token_env:
        return None
    token = os.environ.get(token_env)
    if not token:
        raise DriftguardError(f"--token-env {token_env}: environment variable {token_env} is not set or empty")
    return token


def load_config(ctx: click.Context, overrides: Optional[dict] = None, *,
                storage: bool = True) -> config_lib.Config:
    """The project's config (``--config``, ``--project`` or found from the working directory);
    remembers the config file's path in ``ctx.obj["config_path"]``. ``storage``: reach the
    config's buckets and sync the local copies first (:func:`prepare_storage`); False for a
    command that checks the config before (then it calls :func:`prepare_storage` itself)."""
    from driftguard.pipeline import project

    obj = ctx.find_root().obj or {}
    try:
        cfg = project.load(obj.get("project"), obj.get("config_file"), overrides)
    except config_lib.ConfigError as e:
        raise DriftguardError(str(e)) from None
    if storage:
        prepare_storage(cfg)
    obj["config_path"] = str(pathlib.Path(obj.get("config_file") or
                                          pathlib.Path(cfg.project_dir) / project.PROJECT_FILE).resolve())
    return cfg


def prepare_storage(cfg: config_lib.Config) -> None:
    """The config's object-storage settings (``registry``, ``reports``, ``data.root``,
    ``pipeline_root``): reach each
    bucket first (exit 2 naming the setting when the scheme, the endpoint, the credentials or the
    bucket is wrong; nothing is written then), then bring the local copies the pipelines read up
    to date (the registry's mirror, the spans' copy); before any component runs. Nothing when
    every setting is local."""
    if not (cfg.registry_uri or cfg.reports_uri or cfg.data_uri or cfg.pipeline_root_is_remote):
        return
    from driftguard.components import object_root, storage
    from driftguard.components.registry_pusher import remote

    log = logging.getLogger(__name__)
    with user_errors(storage.StorageError):
        if cfg.pipeline_root_is_remote:
            object_root.preflight(cfg.pipeline_root_uri)
        for setting, uri, write in (("registry", cfg.registry_uri, True), ("reports", cfg.reports_uri, True),
                                    ("data.root", cfg.data_uri, False)):
            if uri:
                storage.preflight(setting, uri, write=write)
    for setting, uri, local, sync in (("registry", cfg.registry_uri, cfg.model_registry, remote.sync),
                                      ("data.root", cfg.data_uri, cfg.data_path, storage.sync_tree)):
        if not uri:
            continue
        try:
            log.info("%s %s -> %s: %s", setting, uri, local, sync(uri, local))
        except storage.StorageError as e:
            raise DriftguardError(str(e)) from None
        except OSError as e:
            raise DriftguardError(f"{setting}: cannot copy {uri} into {local}: {type(e).__name__}: {e}") from None


def parse_spans(cfg: config_lib.Config, text: str) -> List[int]:
    """'3', '1,2', '1-4' (or '2013-03..2013-06' for calendar spans) -> span numbers."""
    try:
        return cfg.spans.parse_list(text)
    except ValueError as e:
        raise DriftguardError(str(e)) from None


class ProgressHandler(logging.Handler):
    """Echoes TFX's 'Component X is running/finished' lines as a compact progress log."""

    _RE = re.compile(r"Component (\S+) is (running|finished)\.")

    def __init__(self):
        super().__init__(level=logging.INFO)
        self._started = {}

    def emit(self, record: logging.LogRecord) -> None:
        m = self._RE.search(record.getMessage())
        if not m:
            return
        node, what = m.groups()
        if what == "running":
            self._started[node] = time.monotonic()
        else:
            took = time.monotonic() - self._started.get(node, time.monotonic())
            click.echo(f"  {node:<32} done   {took:6.1f} s", err=True)


def setup_logging(runs_path: pathlib.Path, command: str, verbose: bool, progress: bool = True) -> pathlib.Path:
    """Full logs go to runs/logs/<time>-<command>.log; the console gets progress only
    (``progress``: one line per finished TFX component; ``verbose``: the whole log)."""
    log_dir = runs_path / "logs"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = log_dir / f"{stamp}-{command}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_path)
    except OSError as e:
        raise DriftguardError(f"cannot write the log file {log_path}: {e.strerror or e}") from None
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    root.setLevel(logging.INFO)
    if verbose:
        sh = logging.StreamHandler(sys.stderr)
        sh.setLevel(logging.INFO)
        root.addHandler(sh)
    elif progress:
        root.addHandler(ProgressHandler())
    # TensorFlow attaches its own stderr handler when it is imported before the root logger
    # has one; route its records to the log file like everything else, whatever the order.
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.handlers.clear()
    tf_logger.propagate = True
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.captureWarnings(True)
    from absl import logging as absl_logging   # installed with TensorFlow (requirements.lock)

    absl_logging.use_python_logging(quiet=True)
    absl_logging.set_verbosity(absl_logging.INFO)
    return log_path
