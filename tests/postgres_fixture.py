"""A real PostgreSQL server on 127.0.0.1 for the tests of ``metadata: {kind: postgresql}``
(tests/test_metadata_postgres.py): Debian's ``postgresql`` package's binaries, a data folder in
a temporary folder, a free port, password (scram-sha-256) authentication over TCP for a test
user owning one database. Started once per session, stopped at its end.

Missing binaries FAIL the tests that use it (they are not skipped): CI installs the package
(.ci/run, ``make system-deps``); set DRIFTGUARD_PG_BIN to a folder holding initdb and pg_ctl to
use another installation. initdb and postgres refuse to run as root: as root, they run as the
``postgres`` user the Debian package creates (``runuser -u postgres``).
"""
from __future__ import annotations

import glob
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import tempfile

import pytest

PASSWORD_ENV = "DRIFTGUARD_TEST_MLMD_PASSWORD"


def _bin_dir() -> pathlib.Path:
    candidates = [os.environ["DRIFTGUARD_PG_BIN"]] if os.environ.get("DRIFTGUARD_PG_BIN") else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for c in candidates:
        if (pathlib.Path(c) / "initdb").is_file() and (pathlib.Path(c) / "pg_ctl").is_file():
            return pathlib.Path(c)
    pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
                "(or DRIFTGUARD_PG_BIN): install Debian's package (`apt-get install -y postgresql`; .ci/run "
                "does it) to run the metadata-on-PostgreSQL tests", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self):
        self.bin = _bin_dir()
        self.as_root = os.geteuid() == 0
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="driftguard-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        self.user, self.database = "driftguard", "driftguard_mlmd"
        self.password = "pw" + secrets.token_hex(12)
        self.started = False

    def _run(self, *cmd, check=True, **kwargs) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        proc = subprocess.run(prefix + [str(c) for c in cmd], capture_output=True, text=True, timeout=120,
                              cwd=self.root, **kwargs)
        if check and proc.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.is_file() else ""
            pytest.fail(f"{' '.join(map(str, cmd[:2]))} failed ({proc.returncode}): {proc.stderr[-2000:]}\n{log}",
                        pytrace=False)
        return proc

    def psql(self, sql: str, database: str = "postgres") -> str:
        return self._run(self.bin / "psql", "-h", self.root, "-p", self.port, "-U", "postgres", "-d", database,
                         "-v", "ON_ERROR_STOP=1", "-At", "-c", sql).stdout

    def start(self) -> "PostgresServer":
        if self.as_root:
            shutil.chown(self.root, user="postgres")
        self._run(self.bin / "initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                  "-o", f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off", "start")
        self.started = True
        self.psql(f"CREATE ROLE {self.user} LOGIN PASSWORD '{self.password}'")
        self.psql(f"CREATE DATABASE {self.database} OWNER {self.user}")
        return self

    def stop(self) -> None:
        if self.started:
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def metadata(self, **overrides) -> dict:
        """The ``metadata:`` section of a config that uses this server."""
        return {"kind": "postgresql", "host": "127.0.0.1", "port": self.port, "database": self.database,
                "user": self.user, "password_env": PASSWORD_ENV, **overrides}

    @property
    def env(self) -> dict:
        return {PASSWORD_ENV: self.password}


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
