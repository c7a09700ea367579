"""``driftguard serve``: the model registry over TF Serving's REST API, with prediction logs
and Prometheus metrics.

Endpoints (the paths and JSON shapes of TF Serving's REST API, so its clients work unchanged):

* ``POST /v1/models/<name>[/versions/<v>|/labels/<label>]:predict``: row format
  ``{"signature_name"?, "instances": [...]}`` answered with ``{"predictions": [...]}``, or
  columnar format ``{"inputs": ...}`` answered with ``{"outputs": ...}``. An instance is
  ``{"b64": "<base64 serialized tf.Example>"}`` (what TF Serving clients send for the
  ``examples`` string input), ``{"examples": {"b64": ...}}``, or a plain dict of raw feature
  values (``{"fare": 12.5, "payment_type": "Cash"}``), typed by the version's schema
  (``profile/schema.pbtxt``).
* ``GET /v1/models/<name>[/versions/<v>|/labels/<label>]``: status (``model_version_status``);
  ``GET .../metadata``: the signatures.
* ``GET /metrics`` (Prometheus text format) and ``GET /healthz`` (never needs the token).

Errors are ``{"error": "<message>"}`` with a 4xx status naming the request part at fault; that
includes requests the HTTP parser refuses before they reach the handler (a garbage request
line, duplicate or conflicting ``Content-Length`` / ``Transfer-Encoding``, oversized header
lines), which :class:`_JSONErrors` answers in JSON too.

Request ids: the client's ``X-Request-Id`` header (at most 128 characters of
``[A-Za-z0-9._:-]``) or a fresh uuid4 hex, returned in the ``X-Request-Id`` response header.
In the prediction log, instance ``i`` of a request is identified by the request id itself when
the request has one instance, and by ``<request id>-<i>`` (``i`` from 0) when it has several.
An id the server has issued before (a reused id, or ``coll-0`` after a two-instance ``coll``)
is rewritten (``service.IssuedIds``): the response's ``X-Request-Id`` is the id used and
``X-Request-Id-Rewritten`` holds the one the client sent.

Worker model: aiohttp's HTTP/1.1 server on one asyncio event loop (the main thread) owns every
connection: parsing, keep-alive, the listen backlog, slow and vanished clients. Predictions
(JSON decoding, the schema checks, the tf.Example encoding, TensorFlow and the prediction log
write) run in a bounded thread pool of ``inference_threads`` (4) threads; a request that finds
every thread busy waits in the pool's queue with its body already read. Status, metadata,
``/metrics`` and ``/healthz`` are answered on the loop. See docs/serving.md for why 4.

Versions: the champion (``labels.json``; the newest version without a champion label) is served;
a background thread polls the registry (versions and labels) and loads a new version off the
request path, then swaps it in with one assignment. The newest ``keep_versions`` (2) loaded
versions and every labelled one answer ``/versions/<v>`` and ``/labels/<label>`` requests. A version that fails to
load is logged and counted, and the versions already loaded keep serving. Every predict
response names the version that answered in ``X-Model-Version``.

Rollout (``rollout:`` in the config, ``serving/rollout.py``): while the ``challenger`` label's
version is loaded and is not the champion, a default-route predict request (no ``/versions/``,
no ``/labels/``: pinned requests are never split) is split. ``shadow``: the champion answers,
and the challenger predicts on the same serialized examples in the same inference thread
(twice the model work per request); its outputs are logged as a second record with the same
instance ids, right after the champion's (both or neither sampled), and a failure of it is
counted and logged once per error type, never seen by the client. ``canary``: the challenger
answers the requests whose client request id (before any rewrite) hashes below
``canary_share`` (``rollout.canary_bucket``), the champion the rest.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
import signal
import sys
import time
import uuid
from typing import Any, Dict, List, Mapping, Optional, Tuple

from aiohttp import http_exceptions, web, web_protocol, web_server

from driftguard.serving.request import RequestError, shorten
from driftguard.serving.service import PredictionService
from driftguard.serving.settings import ServeError, ServeSettings

log = logging.getLogger(__name__)

SERVER_NAME = "driftguard-serve"       # the Server header (no library or Python version)
REQUEST_ID_HEADER = "X-Request-Id"
REWRITTEN_HEADER = "X-Request-Id-Rewritten"
MODEL_VERSION_HEADER = "X-Model-Version"   # the version that answered a predict request
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PATH_RE = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                      r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                      r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?$")
_LISTEN_BACKLOG = 1024                 # the kernel caps it at net.core.somaxconn (4096 here)
_LINGER_SECONDS = 2.0                  # drain an unread body this long before closing
_SHUTDOWN_SECONDS = 30.0               # SIGTERM: how long requests in flight may take to finish
_BODY_READ = "driftguard.body_read"     # set on a request whose body was read to its end
CLIENT_CLOSED = 499                    # the metrics' code for a client that hung up (nginx's)


def _route(path: str) -> Tuple[str, Dict[str, Optional[str]]]:
    """(path kind, parts): kind is predict | status | metadata | metrics | healthz | unknown."""
    if path == "/metrics":
        return "metrics", {}
    if path == "/healthz":
        return "healthz", {}
    m = _PATH_RE.match(path)
    if not m:
        return "unknown", {}
    parts = {"name": m.group("name"), "version": m.group("version"), "label": m.group("label")}
    if m.group("metadata"):
        return "metadata", parts
    verb = m.group("verb")
    if verb is None:
        return "status", parts
    if verb == "predict":
        return "predict", parts
    return "unsupported_verb", {**parts, "verb": verb}


_METHODS = {"predict": "POST", "status": "GET", "metadata": "GET", "metrics": "GET", "healthz": "GET"}


class _ClientGone(Exception):
    """The client closed the connection before its request body arrived."""


def _json(status: int, payload: Any, headers: Optional[Mapping[str, str]] = None) -> web.Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    resp = web.Response(status=status, body=body, content_type="application/json", headers=headers)
    resp.headers["Server"] = SERVER_NAME
    return resp


class _Handler:
    """The request handler: routing, the token, body limits, ids, metrics; predictions go to
    the thread pool."""

    def __init__(self, service: PredictionService, pool: concurrent.futures.ThreadPoolExecutor):
        self.service, self.pool = service, pool

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        service = self.service
        started = time.perf_counter()
        path = request.raw_path.split("?", 1)[0]   # as sent (not percent-decoded), as before
        kind, parts = _route(path)
        request_id = uuid.uuid4().hex
        status = 500
        service.begin()
        try:
            try:
                given = request.headers.get(REQUEST_ID_HEADER)
                if given is not None:
                    if not _REQUEST_ID_RE.match(given):
                        raise RequestError(400, f"the {REQUEST_ID_HEADER} header must be 1-128 characters "
                                                "of A-Z a-z 0-9 . _ : - (a fresh id was assigned)")
                    request_id = given
                resp = await self._answer(request, kind, parts, path, request_id)
            except _ClientGone:
                status = CLIENT_CLOSED
                log.info("request %s: the client closed the connection before its body arrived", request_id)
                resp = _json(400, {"error": "the request body ended early"})  # nobody reads it
                resp.force_close()
                return resp
            except RequestError as e:
                resp = _json(e.status, {"error": e.message}, e.headers)
            except asyncio.CancelledError:   # still running when the shutdown's grace period ended
                status = 503
                raise
            except Exception as e:  # noqa: BLE001 - answer 500, keep serving
                log.exception("request %s %s failed", request_id, path)
                resp = _json(500, {"error": f"internal error ({type(e).__name__}); request id {request_id}"})
            resp.headers.setdefault(REQUEST_ID_HEADER, request_id)
            if service.stopping or (request.body_exists and not request.get(_BODY_READ)):
                # a body answered before it was read whole (413, 401, ...): Connection: close;
                # aiohttp lingers (reads and drops what the client still sends), then closes
                resp.force_close()
            status = resp.status
            return resp
        finally:
            service.end()
            service.metrics.requests.labels(kind, str(status)).inc()
            service.metrics.latency.labels(kind).observe(time.perf_counter() - started)

    async def _answer(self, request: web.BaseRequest, kind: str, parts: Dict[str, Optional[str]],
                      path: str, request_id: str) -> web.Response:
        service = self.service
        if service.stopping:
            raise RequestError(503, "the server is shutting down")
        if kind != "healthz":
            service.check_token(request.headers.get("Authorization"))
        if kind == "unknown":
            raise RequestError(404, f"no such endpoint: {shorten(path, 80)} (see TF Serving's REST API: "
                                    "/v1/models/<name>[/versions/<v>|/labels/<l>][:predict|/metadata])")
        if kind == "unsupported_verb":
            raise RequestError(400, f"':{shorten(parts['verb'])[1:-1]}' is not supported; serve answers "
                                    "':predict'")
        allowed = _METHODS[kind]
        if request.method != allowed:
            raise RequestError(405, f"{request.method} is not allowed on {shorten(path, 80)}; use {allowed}",
                               headers={"Allow": allowed})
        if kind == "predict":
            body = await self._read_body(request)
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.pool, service.predict, parts["name"], parts["version"],
                                                body, request_id, parts["label"])
            headers = {REQUEST_ID_HEADER: result.request_id, MODEL_VERSION_HEADER: str(result.version)}
            if result.rewritten_from is not None:
                headers[REWRITTEN_HEADER] = result.rewritten_from
            return _json(200, result.body, headers)
        if kind == "status":
            return _json(200, service.status(parts["name"], parts["version"], parts["label"]))
        if kind == "metadata":
            return _json(200, service.metadata(parts["name"], parts["version"], parts["label"]))
        if kind == "metrics":
            data, ctype = service.metrics.render()
            return web.Response(status=200, body=data, headers={"Content-Type": ctype, "Server": SERVER_NAME})
        served = service.repository.served
        return _json(200, {"status": "ok", "model": service.settings.model_name,
                           "version": served.version if served else None})

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        """The request body, refused with 413 from ``Content-Length`` before reading and again
        while reading a chunked one; 408 when it does not arrive in ``read_timeout_seconds``.
        aiohttp's parser has already refused a duplicate or conflicting Content-Length and
        Transfer-Encoding, and decodes chunked bodies."""
        limit = self.service.settings.max_body_bytes
        length = request.content_length
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if length is None and not chunked:
            raise RequestError(411, "the request needs a Content-Length header (or chunked Transfer-Encoding)")
        if length is not None and length > limit:
            raise RequestError(413, f"the request body is {length} bytes, more than the limit of {limit} "
                                    "bytes (--max-body-bytes)")
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        parts: List[bytes] = []
        size = 0

        async def read_all() -> None:
            nonlocal size
            while True:
                data = await request.content.readany()
                if not data:
                    return
                size += len(data)
                self.service.metrics.request_bytes.inc(len(data))
                if size > limit:
                    raise RequestError(413, f"the request body is more than the limit of {limit} bytes "
                                            "(--max-body-bytes)")
                parts.append(data)

        try:
            await asyncio.wait_for(read_all(), self.service.settings.read_timeout_seconds)
        except asyncio.TimeoutError:
            raise RequestError(408, "timed out reading the request body") from None
        except (ConnectionError, web_protocol.RequestPayloadError) as e:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise _ClientGone() from None
            raise RequestError(400, f"malformed request body: {e}") from None
        body_error = getattr(request.protocol, "body_error", None)
        if body_error:
            raise RequestError(400, f"malformed request body: {body_error}")
        request[_BODY_READ] = True
        return b"".join(parts)


class _JSONErrors(web_protocol.RequestHandler):
    """aiohttp's connection handler, answering the requests its HTTP parser refuses (before any
    handler runs) with ``{"error": ...}`` instead of plain text, counted in the metrics as
    path ``malformed``."""

    service: PredictionService
    body_error: Optional[str] = None

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        # A body the parser refuses midway (a malformed chunk after the first ones) becomes a
        # queued error "request" while the handler still waits for the body: hand the handler
        # the error instead, so it answers 400 now rather than 408 when its read times out.
        request = self._current_request
        if request is not None and len(self._messages) > queued and not request.content.is_eof():
            err = self._messages[-1][0]
            if isinstance(err, web_protocol._ErrInfo):  # noqa: SLF001 - aiohttp's parse-error message
                what = (err.message or str(err.exc)).strip().splitlines()
                self.body_error = what[0].rstrip(": ") if what else "refused by the HTTP parser"
                request.content.feed_eof()   # (not set_exception: aiohttp's linger would log it)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: Optional[BaseException] = None,
                     message: Optional[str] = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started: no error response can follow")
        if status >= 500:
            log.error("unhandled error answering a request from %s", request.remote, exc_info=exc)
            text = "internal error"
        elif isinstance(exc, http_exceptions.LineTooLong):
            text = (f"malformed HTTP request: the request line or a header line is longer than "
                    f"{self.max_line_size} bytes")
        else:
            # llhttp's message is "<what>:" then the offending bytes on the next lines
            first = (message or getattr(exc, "message", "") or str(exc)).strip().splitlines()
            what = first[0].rstrip(": ")[:200] if first else "refused by the HTTP parser"
            text = f"malformed HTTP request: {what}"
        if status < 500:
            log.info("refused a malformed HTTP request from %s: %s", request.remote, text)
        self.service.metrics.requests.labels("malformed", str(status)).inc()
        resp = _json(status, {"error": text})
        resp.force_close()
        return resp


class _LowLevelServer(web_server.Server):
    """aiohttp's low-level server (no router or middlewares: ``_Handler`` routes), whose
    connections are :class:`_JSONErrors`."""

    def __init__(self, service: PredictionService, handler: _Handler, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self.service = service

    def __call__(self) -> web_protocol.RequestHandler:
        connection = _JSONErrors(self, loop=self._loop, **self._kwargs)
        connection.service = self.service
        return connection


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _serve(service: PredictionService, out, stop: asyncio.Event) -> None:
    settings = service.settings
    pool = concurrent.futures.ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="predict")
    access = logging.getLogger(__name__ + ".access")
    server = _LowLevelServer(
        service, _Handler(service, pool), handler_cancellation=False,
        keepalive_timeout=settings.read_timeout_seconds, lingering_time=_LINGER_SECONDS,
        access_log=access if log.isEnabledFor(logging.DEBUG) else None)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=_SHUTDOWN_SECONDS)
    await runner.setup()
    host = settings.host.strip("[]")
    site = web.TCPSite(runner, host, settings.port, backlog=_LISTEN_BACKLOG, reuse_address=True)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        pool.shutdown()
        raise ServeError(f"cannot bind {settings.host}:{settings.port}: {e.strerror or e}") from None
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the port chosen for port 0
    url = url_of(host, port)
    served = service.repository.served
    print(f"serving {settings.model_name} v{served.version} at {url}", file=out, flush=True)
    log.info("serving %s v%d at %s (registry %s, prediction logs: %s, %d inference threads)",
             settings.model_name, served.version, url, settings.registry, settings.log_dir or "off",
             settings.inference_threads)
    try:
        await stop.wait()
    finally:
        service.stopping = True
        # Stop listening, let the requests in flight finish (new ones on open connections get
        # 503 and Connection: close), close idle keep-alive connections.
        await runner.cleanup()
        pool.shutdown(wait=True)


def serve(settings: ServeSettings, *, out=None) -> None:
    """Load the served version (the champion, else the newest), print ``serving <model> v<N> at <url>``, serve until SIGTERM or
    SIGINT, then stop accepting, finish the requests in flight and close the prediction log."""
    settings.validate()
    service = PredictionService(settings)
    service.start()
    out = out or sys.stdout

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            log.info("signal %d: shutting down", signum)
            stop.set()

        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, on_signal, s)
        try:
            await _serve(service, out, stop)
        finally:
            for s in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(s)

    try:
        asyncio.run(main())
    finally:
        service.close()
        log.info("stopped; prediction log closed")
