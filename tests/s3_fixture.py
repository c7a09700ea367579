"""A local S3-compatible server on 127.0.0.1 for the object-storage tests: moto's standalone
server (``moto_server``, from ``moto[server]`` in requirements.lock; s3fs's own tests run against
it), on a free port, started once per session and stopped at its end.

Authentication is ON: ``INITIAL_NO_AUTH_ACTION_COUNT`` lets the first requests through unsigned
(they create an IAM user, its access key and an allow-all policy), and every later request must
be signed with that key, so a wrong secret gets S3's 403 as on AWS. One bucket,
:attr:`S3Server.bucket`, exists; :meth:`S3Server.env` is the environment a driftguard process
needs (the standard AWS variables: access key, secret, region, ``AWS_ENDPOINT_URL_S3``).

A missing ``moto_server`` FAILS the tests that use it (they are not skipped): it is in the lock,
so ``make setup`` installs it.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict

import pytest

# create_user, create_access_key, put_user_policy: the unsigned requests allowed before auth starts
_SETUP_ACTIONS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: pathlib.Path, what: str) -> None:
    """Until the server process ``proc`` listens on 127.0.0.1:``port`` (60 s); fails the test,
    with the end of its ``log``, if it exits first or never listens."""
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}", pytrace=False)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within 60 s", pytrace=False)
            time.sleep(0.1)


def stop_server(proc, root: pathlib.Path) -> None:
    """Terminate the server process (kill it after 10 s) and remove its folder."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(root, ignore_errors=True)


def _moto_server() -> str:
    found = pathlib.Path(sys.executable).parent / "moto_server"
    if found.is_file():
        return str(found)
    path = shutil.which("moto_server")
    if path:
        return path
    pytest.fail("moto_server not found beside the interpreter or on PATH: it comes with moto[server] "
                "(requirements.lock; `make setup` installs it)", pytrace=False)


class S3Server:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.region = "us-east-1"
        self.bucket = "driftguard-test"
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="driftguard-s3-"))
        self.log = self.root / "moto.log"
        self.proc = None
        self.access_key = self.secret_key = ""

    def start(self) -> "S3Server":
        import boto3

        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_SETUP_ACTIONS))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([_moto_server(), "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_port(self.port, self.proc, self.log, "moto_server")
        except BaseException:
            self.stop()
            raise
        anonymous = dict(endpoint_url=self.url, region_name=self.region, aws_access_key_id="setup",
                         aws_secret_access_key="setup")
        iam = boto3.client("iam", **anonymous)
        iam.create_user(UserName="driftguard")
        key = iam.create_access_key(UserName="driftguard")["AccessKey"]
        iam.put_user_policy(UserName="driftguard", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def stop(self) -> None:
        stop_server(self.proc, self.root)

    def env(self, **changes: str) -> Dict[str, str]:
        """The variables a driftguard process reads (botocore's standard ones)."""
        env = {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
               "AWS_DEFAULT_REGION": self.region, "AWS_ENDPOINT_URL_S3": self.url}
        env.update(changes)
        return env

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def keys(self, prefix: str = "") -> list:
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(out)

    def prefix_uri(self) -> str:
        """A fresh ``s3://<bucket>/<random>`` for one test (tests share the bucket, not a prefix)."""
        return f"s3://{self.bucket}/t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def s3_env(s3_server, monkeypatch):
    """This process's environment pointed at the server (and the storage module's cached
    file systems dropped, so the new variables are read)."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    from driftguard.components import storage

    storage.clear_cache()
    yield s3_server
    storage.clear_cache()
