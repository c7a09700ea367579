"""``driftguard serve``: the model registry over TF Serving's REST API, with prediction logs
and Prometheus metrics.

Endpoints (the paths and JSON shapes of TF Serving's REST API, so its clients work unchanged):

* ``POST /v1/models/<name>[/versions/<v>]:predict``: row format ``{"signature_name"?,
  "instances": [...]}`` answered with ``{"predictions": [...]}``, or columnar format
  ``{"inputs": ...}`` answered with ``{"outputs": ...}``. An instance is ``{"b64": "<base64
  serialized tf.Example>"}`` (what TF Serving clients send for the ``examples`` string input),
  ``{"examples": {"b64": ...}}``, or a plain dict of raw feature values (``{"fare": 12.5,
  "payment_type": "Cash"}``), typed by the version's schema (``profile/schema.pbtxt``).
* ``GET /v1/models/<name>[/versions/<v>]``: status (``model_version_status``);
  ``GET .../metadata``: the signatures.
* ``GET /metrics`` (Prometheus text format) and ``GET /healthz`` (never needs the token).

Errors are ``{"error": "<message>"}`` with a 4xx status naming the request part at fault.

Request ids: the client's ``X-Request-Id`` header (at most 128 characters of
``[A-Za-z0-9._:-]``) or a fresh uuid4 hex, returned in the ``X-Request-Id`` response header.
In the prediction log, instance ``i`` of a request is identified by the request id itself when
the request has one instance, and by ``<request id>-<i>`` (``i`` from 0) when it has several.
Delayed labels are joined on these ids.

Versions: the newest version in the registry is served; a background thread polls the registry
and loads a new version off the request path, then swaps it in with one assignment. The newest
``keep_versions`` (2) loaded versions answer version-specific requests. A version that fails to
load is logged and counted, and the versions already loaded keep serving.

Why ``http.server.ThreadingHTTPServer`` and not werkzeug's server: werkzeug 2.2's server
closes the connection after every response (``Connection: close``), which costs a TCP
handshake per prediction; the standard library keeps HTTP/1.1 connections alive and lets the
body limit be enforced from ``Content-Length`` before reading and again while reading. The one
hand-rolled HTTP detail, chunked request bodies, is decoded by werkzeug's ``DechunkedInput``.
"""
from __future__ import annotations

from __future__ import annotations

import http.server
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any, Dict, Mapping, Optional, Tuple

from driftguard.serving.request import RequestError, shorten
from driftguard.serving.service import PredictionService
from driftguard.serving.settings import ServeError, ServeSettings

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PATH_RE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                      r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?$")
_READ_CHUNK = 64 << 10
_LINGER_SECONDS = 2.0                  # drain an unread body this long before closing


def _route(path: str) -> Tuple[str, Dict[str, Optional[str]]]:
    """(path kind, parts): kind is predict | status | metadata | metrics | healthz | unknown."""
    if path == "/metrics":
        return "metrics", {}
    if path == "/healthz":
        return "healthz", {}
    m = _PATH_RE.match(path)
    if not m:
        return "unknown", {}
    parts = {"name": m.group("name"), "version": m.group("version")}
    if m.group("metadata"):
        return "metadata", parts
    verb = m.group("verb")
    if verb is None:
        return "status", parts
    if verb == "predict":
        return "predict", parts
    return "unsupported_verb", {**parts, "verb": verb}


_METHODS = {"predict": "POST", "status": "GET", "metadata": "GET", "metrics": "GET", "healthz": "GET"}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (~40 ms per response on Linux).
    disable_nagle_algorithm = True
    server_version = "driftguard-serve"
    sys_version = ""
    service: PredictionService       # set on the subclass made by make_server
    timeout: float = 30.0

    def version_string(self) -> str:
        return self.server_version

    def handle_expect_100(self) -> bool:
        # No "100 Continue" for a body that will be refused anyway: the client then sends nothing
        # and reads the 413 that _read_body answers from the Content-Length.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.service.settings.max_body_bytes:
            return True
        return super().handle_expect_100()

    def log_message(self, fmt: str, *args) -> None:  # access lines at DEBUG, not on stderr
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_OPTIONS(self):
        self._handle("OPTIONS")

    # -- body
    def _read_body(self) -> bytes:
        limit = self.service.settings.max_body_bytes
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length_text = self.headers.get("Content-Length")
        if chunked:
            from werkzeug.serving import DechunkedInput

            stream, remaining = DechunkedInput(self.rfile), None
        elif length_text is None:
            self._unread = False
            if self.command == "POST":
                raise RequestError(411, "the request needs a Content-Length header (or chunked "
                                        "Transfer-Encoding)")
            return b""
        else:
            try:
                remaining = int(length_text)
                if remaining < 0:
                    raise ValueError
            except ValueError:
                raise RequestError(400, "the Content-Length header is not a non-negative integer") from None
            if remaining > limit:
                raise RequestError(413, f"the request body is {remaining} bytes, more than the limit of "
                                        f"{limit} bytes (--max-body-bytes)")
            stream = self.rfile
        parts, size = [], 0
        try:
            while remaining is None or remaining > 0:
                want = _READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining)
                data = stream.read(want)
                if not data:
                    if remaining:
                        raise RequestError(400, f"the request body ended {remaining} bytes short of "
                                                "its Content-Length")
                    break
                size += len(data)
                self.service.metrics.request_bytes.inc(len(data))
                if size > limit:
                    raise RequestError(413, f"the request body is more than the limit of {limit} bytes "
                                            "(--max-body-bytes)")
                parts.append(data)
                if remaining is not None:
                    remaining -= len(data)
        except socket.timeout:
            raise RequestError(408, "timed out reading the request body") from None
        except OSError as e:  # werkzeug's DechunkedInput raises OSError on a malformed chunk
            raise RequestError(400, f"malformed chunked request body: {e}") from None
        self._unread = False
        return b"".join(parts)

    # -- responses
    def _send(self, status: int, payload: Any, *, content_type: str = "application/json",
              headers: Optional[Mapping[str, str]] = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(REQUEST_ID_HEADER, self._request_id)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self._unread or self.service.stopping:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _linger(self) -> None:
        """After answering without reading the whole body (413, 401, ...): stop writing, then
        read and drop what the client still sends for a moment, so closing does not reset the
        connection before the client has read the answer."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            drained = 0
            while time.monotonic() < deadline and drained < 4 * self.service.settings.max_body_bytes + (1 << 20):
                self.connection.settimeout(max(0.01, deadline - time.monotonic()))
                data = self.connection.recv(_READ_CHUNK)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass

    def _handle(self, method: str) -> None:
        service = self.service
        started = time.perf_counter()
        path = self.path.split("?", 1)[0]
        kind, parts = _route(path)
        self._status, self._unread = 500, True
        self._request_id = uuid.uuid4().hex
        has_body = "chunked" in self.headers.get("Transfer-Encoding", "").lower() or \
            self.headers.get("Content-Length", "0").strip() not in ("", "0")
        if not has_body:
            self._unread = False
        service.begin()
        try:
            try:
                given = self.headers.get(REQUEST_ID_HEADER)
                if given is not None:
                    if not _REQUEST_ID_RE.match(given):
                        raise RequestError(400, f"the {REQUEST_ID_HEADER} header must be 1-128 characters "
                                                "of A-Z a-z 0-9 . _ : - (a fresh id was assigned)")
                    self._request_id = given
                if service.stopping:
                    raise RequestError(503, "the server is shutting down")
                if kind != "healthz":
                    service.check_token(self.headers.get("Authorization"))
                if kind == "unknown":
                    raise RequestError(404, f"no such endpoint: {shorten(path, 80)} (see TF Serving's REST "
                                            "API: /v1/models/<name>[/versions/<v>][:predict|/metadata])")
                if kind == "unsupported_verb":
                    raise RequestError(400, f"':{shorten(parts['verb'])[1:-1]}' is not supported; serve "
                                            "answers ':predict'")
                allowed = _METHODS[kind]
                if method != allowed:
                    raise RequestError(405, f"{method} is not allowed on {shorten(path, 80)}; use {allowed}",
                                       headers={"Allow": allowed})
                if kind == "predict":
                    body = self._read_body()
                    self._send(200, service.predict(parts["name"], parts["version"], body, self._request_id))
                elif kind == "status":
                    self._send(200, service.status(parts["name"], parts["version"]))
                elif kind == "metadata":
                    self._send(200, service.metadata(parts["name"], parts["version"]))
                elif kind == "metrics":
                    data, ctype = service.metrics.render()
                    self._send(200, data, content_type=ctype)
                else:
                    served = service.repository.served
                    self._send(200, {"status": "ok", "model": service.settings.model_name,
                                     "version": served.version if served else None})
            except RequestError as e:
                self._send(e.status, {"error": e.message}, headers=e.headers)
            except Exception as e:  # noqa: BLE001 - answer 500, keep serving
                log.exception("request %s %s failed", self._request_id, path)
                self._send(500, {"error": f"internal error ({type(e).__name__}); request id "
                                          f"{self._request_id}"})
        except OSError as e:   # the client went away mid-response
            self.close_connection = True
            log.debug("request %s: connection lost: %s", self._request_id, e)
        finally:
            service.end()
            service.metrics.requests.labels(kind, str(self._status)).inc()
            service.metrics.latency.labels(kind).observe(time.perf_counter() - started)
            if self._unread:
                self.close_connection = True
                self._linger()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(service: PredictionService) -> http.server.ThreadingHTTPServer:
    """A threaded HTTP server for ``service`` bound to its settings' host and port (not started)."""
    handler = type("Handler", (_Handler,), {"service": service,
                                            "timeout": service.settings.read_timeout_seconds})
    host = service.settings.host
    cls = _Server6 if ":" in host else _Server
    try:
        return cls((host.strip("[]"), service.settings.port), handler)
    except OSError as e:
        raise ServeError(f"cannot bind {host}:{service.settings.port}: {e.strerror or e}") from None


def url_of(server: http.server.HTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(settings: ServeSettings, *, out=None) -> None:
    """Load the newest version, print ``serving <model> v<N> at <url>``, serve until SIGTERM or
    SIGINT, then stop accepting, finish the requests in flight and close the prediction log."""
    settings.validate()
    service = PredictionService(settings)
    service.start()
    server = make_server(service)
    out = out or sys.stdout

    def stop(signum, _frame):
        log.info("signal %d: shutting down", signum)
        service.stopping = True
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        served = service.repository.served
        print(f"serving {settings.model_name} v{served.version} at {url_of(server)}", file=out, flush=True)
        log.info("serving %s v%d at %s (registry %s, prediction logs: %s)", settings.model_name,
                 served.version, url_of(server), settings.registry, settings.log_dir or "off")
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        service.close()
        for s, h in previous.items():
            signal.signal(s, h)
        log.info("stopped; prediction log closed")
