"""A local GCS server on 127.0.0.1 for the ``gs://`` tests: ``gcp-storage-emulator`` (a JSON-API
emulator, from requirements.lock), on a free port, in memory, started once per session and
stopped at its end, like moto in tests/s3_fixture.py. One bucket, :attr:`GCSServer.bucket`,
exists; :meth:`GCSServer.env` is what a driftguard process needs (``STORAGE_EMULATOR_HOST``:
google-cloud-storage then talks to it without credentials).

What the emulator does not do (measured here): it ignores ``ifGenerationMatch`` (a second create
with ``ifGenerationMatch=0`` succeeds, a replace with a stale generation too) and it checks no
credentials. So :class:`RecordingProxy`, a small HTTP forwarder on 127.0.0.1 in front of it,
records every request driftguard's client sends (method, path, query, the object's name) and can
answer a chosen status (412, 403) for a chosen object instead of forwarding: that tests the
client's side of the protocol (the precondition is sent on every claim, marker and label write; a
412 is taken as "someone else wrote it first"), not the store's.

A missing ``gcp-storage-emulator`` FAILS the tests that use it (they are not skipped).
"""
from __future__ import annotations

import http.client
import http.server
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import pytest

from s3_fixture import free_port, stop_server, wait_for_port


def _emulator() -> str:
    found = pathlib.Path(sys.executable).parent / "gcp-storage-emulator"
    if found.is_file():
        return str(found)
    path = shutil.which("gcp-storage-emulator")
    if path:
        return path
    pytest.fail("gcp-storage-emulator not found beside the interpreter or on PATH: it is in "
                "requirements.lock (`make setup` installs it)", pytrace=False)


class GCSServer:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.bucket = "driftguard-test"
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="driftguard-gcs-"))
        self.log = self.root / "emulator.log"
        self.proc = None

    def start(self) -> "GCSServer":
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([_emulator(), "start", "--host=127.0.0.1", f"--port={self.port}",
                                          "--in-memory"], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, self.proc, self.log, "gcp-storage-emulator")
        except BaseException:
            self.stop()
            raise
        self.client().create_bucket(self.bucket)
        return self

    def stop(self) -> None:
        stop_server(self.proc, self.root)

    def env(self, **changes: str) -> Dict[str, str]:
        """The variables a driftguard process reads (Google's standard ones)."""
        env = {"STORAGE_EMULATOR_HOST": self.url}
        env.update(changes)
        return env

    def client(self, url: Optional[str] = None):
        """A client of the emulator (or of ``url``, a proxy in front of it), made without
        reading this process's environment."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage as gcs

        return gcs.Client(project="test", credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": url or self.url})

    def keys(self, prefix: str = "") -> List[str]:
        return sorted(b.name for b in self.client().list_blobs(self.bucket, prefix=prefix))

    def read(self, key: str) -> bytes:
        return self.client().bucket(self.bucket).blob(key).download_as_bytes()

    def write(self, key: str, data: bytes) -> None:
        self.client().bucket(self.bucket).blob(key).upload_from_string(data)

    def delete(self, key: str) -> None:
        self.client().bucket(self.bucket).blob(key).delete()

    def prefix_uri(self) -> str:
        """A fresh ``gs://<bucket>/<random>`` for one test (tests share the bucket, not a prefix)."""
        return f"gs://{self.bucket}/t-{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------- the recording proxy


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, str]
    name: str              # the object's name (uploads carry it in the body's metadata part)
    status: int = 0        # what the client was answered


@dataclass
class _Rule:
    name_suffix: str
    status: int
    times: int
    method: str = "POST"
    forward: bool = False      # write it through first, then answer ``status`` (a lost answer)
    hits: List[Request] = field(default_factory=list)


_ERRORS = {412: "At least one of the pre-conditions you specified did not hold.",
           403: "The caller does not have storage.objects.create access to the Google Cloud Storage object.",
           401: "Invalid Credentials"}
_NAME_IN_BODY = re.compile(rb'"name":\s*"((?:[^"\\]|\\.)*)"')


class RecordingProxy:
    """Forwards every request to ``target`` and records it; :meth:`refuse` makes it answer
    ``status`` (GCS's JSON error) instead, for the next ``times`` requests writing an object whose
    name ends with ``name_suffix``."""

    def __init__(self, target: str):
        self.target = urllib.parse.urlsplit(target)
        self.requests: List[Request] = []
        self.rules: List[_Rule] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def refuse(self, name_suffix: str, status: int = 412, times: int = 1, method: str = "POST",
               forward: bool = False) -> _Rule:
        """``forward``: pass the request on (the store applies it) and still answer ``status``, as
        a client sees it when the first answer was lost and its retry got 412."""
        rule = _Rule(name_suffix, status, times, method, forward)
        with self.lock:
            self.rules.append(rule)
        return rule

    def writes(self, name_suffix: str = "") -> List[Request]:
        """The uploads recorded (POST .../upload/...), of objects whose name ends with ``name_suffix``."""
        return [r for r in self.requests if r.method == "POST" and "/upload/" in r.path
                and r.name.endswith(name_suffix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _forward(self, handler, body: bytes):
        conn = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=60)
        try:
            headers_out = {k: v for k, v in handler.headers.items()
                           if k.lower() not in ("host", "connection", "transfer-encoding")}
            conn.request(handler.command, handler.path, body=body, headers=headers_out)
            response = conn.getresponse()
            headers = {k: v for k, v in response.getheaders()
                       if k.lower() not in ("connection", "transfer-encoding", "content-length")}
            return response.status, response.read(), headers
        finally:
            conn.close()

    def _handle(self, handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        split = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(split.query))
        name = query.get("name", "")
        if not name:
            found = _NAME_IN_BODY.search(body[:4096])
            if found:
                name = json.loads(b'"' + found.group(1) + b'"')
            elif "/o/" in split.path:
                name = urllib.parse.unquote(split.path.split("/o/", 1)[1])
        request = Request(handler.command, split.path, query, name)
        with self.lock:
            self.requests.append(request)
            rule = next((r for r in self.rules if r.times > 0 and r.method == handler.command
                         and (not r.name_suffix or name.endswith(r.name_suffix))), None)
            if rule is not None:
                rule.times -= 1
                rule.hits.append(request)
        if rule is not None and rule.forward:
            self._forward(handler, body)
        if rule is not None:
            status = rule.status
            payload = json.dumps({"error": {"code": status, "message": _ERRORS.get(status, "refused"),
                                            "errors": [{"message": _ERRORS.get(status, "refused")}]}}).encode()
            headers = {"Content-Type": "application/json; charset=UTF-8"}
        else:
            status, payload, headers = self._forward(handler, body)
        request.status = status
        handler.send_response(status)
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


@pytest.fixture(scope="session")
def gcs_server():
    server = GCSServer().start()
    try:
        yield server
    finally:
        server.stop()


def _point_at(monkeypatch, url: str) -> None:
    for k in ("GOOGLE_APPLICATION_CREDENTIALS", "API_ENDPOINT_OVERRIDE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    from driftguard.components import storage

    storage.clear_cache()


@pytest.fixture()
def gcs_env(gcs_server, monkeypatch):
    """This process's environment pointed at the emulator (the storage module's cached clients
    dropped, so the new variables are read)."""
    from driftguard.components import storage

    _point_at(monkeypatch, gcs_server.url)
    yield gcs_server
    storage.clear_cache()


@pytest.fixture()
def gcs_proxy(gcs_server, monkeypatch):
    """This process's environment pointed at a :class:`RecordingProxy` in front of the emulator."""
    from driftguard.components import storage

    proxy = RecordingProxy(gcs_server.url)
    _point_at(monkeypatch, proxy.url)
    try:
        yield proxy
    finally:
        storage.clear_cache()
        proxy.close()
