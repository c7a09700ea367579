"""The project's ML Metadata (MLMD) store: the config's ``metadata:`` section, in one place.

``kind: sqlite`` (the default) is the file ``<runs>/metadata.sqlite``, exactly as before this
module existed; ``postgresql`` and ``mysql`` are a database server that projects share (their
pipelines are told apart by their pipeline contexts, ``<model_name>-training`` and
``<model_name>-check``). Everything that reads or writes MLMD goes through here:

- :func:`connection_config`: ml-metadata's ``ConnectionConfig`` (what TFX's runners and
  ``MetadataStore`` take), the password read from the environment variable ``password_env``;
- :func:`open_store`, :func:`store_exists`: a ``MetadataStore``, and whether there is one yet
  (a sqlite file no pipeline has written does not exist; a server database always does);
- :func:`describe`: ``postgresql://user@host:port/db`` for messages (never the password);
- :func:`preflight`: connect once before any component runs, and turn a failure into one
  :class:`MetadataError` naming the setting to fix (``metadata.host``, ``metadata.password_env``...).

A server database must exist (``skip_db_creation``): MLMD would otherwise try to create it,
which needs a privilege a team's MLMD user rarely has and turns a typo into a new empty store.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import socket
import tempfile
from typing import Any, Dict, Iterator, Mapping

from driftguard.pipeline.config import Config, ConfigError, MetadataConfig


class MetadataError(ConfigError):
    """The metadata database cannot be used; the message names the setting (never the secret)."""


@dataclasses.dataclass(frozen=True)
class Location:
    """Only what this module reads of a Config (``metadata`` and ``metadata_path``): what an
    Airflow task gets in its ``op_kwargs`` (:func:`location` / :func:`from_location`), since the
    section holds no secret (the password stays in its environment variable)."""

    metadata: MetadataConfig
    metadata_path: pathlib.Path


def location(cfg: Config) -> Dict[str, Any]:
    """The store's location as plain values (JSON; no secret)."""
    return {"metadata": dataclasses.asdict(cfg.metadata), "metadata_path": str(cfg.metadata_path)}


def from_location(value: Mapping[str, Any]) -> Location:
    return Location(MetadataConfig(**value["metadata"]), pathlib.Path(value["metadata_path"]))


def sqlite_location(path: os.PathLike) -> Location:
    """The sqlite store at ``path`` (what tools and tests that hold only the file pass on)."""
    return Location(MetadataConfig(), pathlib.Path(path))


def _password(cfg: Config) -> str:
    m = cfg.metadata
    if not m.password_env:
        return ""
    value = os.environ.get(m.password_env)
    if value is None:
        raise MetadataError(f"metadata.password_env: the environment variable {m.password_env} is not set "
                            f"(it must hold the password of {describe(cfg)})")
    return value


def _quiet_driver_log() -> None:
    """ml-metadata's server drivers log two INFO lines to stderr per connection (glog, which reads
    its level from the environment when the library loads: this takes effect when it is called
    before ml_metadata is first imported, as the commands' preflight does); errors still show."""
    os.environ.setdefault("GLOG_minloglevel", "1")


def connection_config(cfg: Config, readonly: bool = False):
    """ml-metadata's ``ConnectionConfig`` for the project's store. ``readonly`` applies to sqlite
    (the file opened read-only); a server connection is the same either way."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    m = cfg.metadata
    if m.is_server:
        _quiet_driver_log()
    conn = pb.ConnectionConfig()
    if m.kind == "sqlite":
        conn.sqlite.filename_uri = str(cfg.metadata_path)
        conn.sqlite.connection_mode = (pb.SqliteMetadataSourceConfig.READONLY if readonly
                                       else pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    elif m.kind in ("postgresql", "mysql"):
        server = getattr(conn, m.kind)      # the two messages differ in the port's type and the database's name
        if m.kind == "postgresql":
            server.port, server.dbname = str(m.server_port), m.database
        else:
            server.port, server.database = m.server_port, m.database
        server.host, server.user = m.host, m.user
        password = _password(cfg)
        if password:
            server.password = password
        server.skip_db_creation = True
    else:  # validated by MetadataConfig.validate
        raise MetadataError(f"metadata.kind {m.kind!r} is not supported")
    return conn


def pipeline_connection_config(cfg: Config):
    """What a TFX pipeline's ``metadata_connection_config`` gets: for sqlite exactly TFX's
    ``sqlite_metadata_connection_config(<runs>/metadata.sqlite)``, as before."""
    if cfg.metadata.kind == "sqlite":
        from tfx import v1 as tfx

        return tfx.orchestration.metadata.sqlite_metadata_connection_config(str(cfg.metadata_path))
    return connection_config(cfg)


def store_exists(cfg: Config) -> bool:
    """Whether there is a store to read: the sqlite file exists; a server database always does
    (:func:`preflight` says whether it can be reached)."""
    if cfg.metadata.kind == "sqlite":
        return cfg.metadata_path.is_file()
    return True


def open_store(cfg: Config, readonly: bool = False):
    """A ``MetadataStore`` over the project's store (sqlite: read-only when ``readonly``)."""
    from ml_metadata import metadata_store

    return metadata_store.MetadataStore(connection_config(cfg, readonly=readonly))


def describe(cfg: Config) -> str:
    """Where the store is, for messages: the sqlite file, or ``postgresql://user@host:port/db``."""
    m = cfg.metadata
    if m.kind == "sqlite":
        return str(cfg.metadata_path)
    return f"{m.kind}://{m.user}@{m.host}:{m.server_port}/{m.database}"


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list]:
    """ml-metadata's C++ code logs the server's error (wrong password, no such database) to file
    descriptor 2 and raises an empty RuntimeError: capture what it writes there."""
    out: list = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def preflight(cfg: Config, timeout: float = 5.0) -> None:
    """Connect to a server database once (nothing to do for sqlite); raise :class:`MetadataError`
    naming the setting when that fails: unset password variable, unreachable host or port, wrong
    user or password, missing database."""
    m = cfg.metadata
    if not m.is_server:
        return
    _quiet_driver_log()
    where = describe(cfg)
    password = _password(cfg)          # raises for an unset variable
    try:
        with socket.create_connection((m.host, m.server_port), timeout=timeout):
            pass
    except socket.gaierror as e:
        raise MetadataError(f"metadata.host: cannot resolve {m.host!r} ({e.strerror}) for {where}") from None
    except OSError as e:
        reason = "timed out" if isinstance(e, socket.timeout) else (e.strerror or type(e).__name__)
        raise MetadataError(f"metadata.host / metadata.port: no {m.kind} server answers at {m.host}:{m.server_port} "
                            f"({reason}) for {where}") from None
    from ml_metadata import metadata_store

    error = None
    with _captured_stderr() as log:
        try:
            metadata_store.MetadataStore(connection_config(cfg))
        except Exception as e:  # noqa: BLE001 - classified from the server's message below
            error = e
    if error is None:
        return
    text = (log[0] if log else "") + "\n" + str(error)
    if password:
        text = text.replace(password, "***")
    low = text.lower()
    if "password authentication failed" in low or "access denied" in low or "no password supplied" in low \
            or "authentication failed" in low:
        given = (f"with the password in ${m.password_env}" if m.password_env
                 else "without a password (metadata.password_env is not set in the config)")
        raise MetadataError(f"metadata.password_env / metadata.user: the server refused user {m.user!r} {given} "
                            f"(wrong password or user) for {where}") from None
    if ("database" in low and "does not exist" in low) or "unknown database" in low:
        raise MetadataError(f"metadata.database: database {m.database!r} does not exist on {m.host}:{m.server_port} "
                            f"(create it first; driftguard does not create it) for {where}") from None
    if "role" in low and "does not exist" in low:
        raise MetadataError(f"metadata.user: user {m.user!r} does not exist on {m.host}:{m.server_port} "
                            f"for {where}") from None
    detail = next((line.split("error:", 1)[-1].strip() for line in text.splitlines()
                   if "error:" in line.lower() and line.split("error:", 1)[-1].strip()), type(error).__name__)
    raise MetadataError(f"metadata: cannot open the MLMD store {where}: {detail}") from None
