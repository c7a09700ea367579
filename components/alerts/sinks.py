"""Sinks: one class per destination, each with ``send(alert, timeout) -> None``.

A failed send raises :class:`DeliveryError` whose message never contains a secret: sinks
read URLs, HMAC secrets and SMTP passwords from the environment variables the config names,
at send time, and scrub those values out of any error text before raising. A missing variable
is a delivery failure naming the variable, never its value.

``timeout`` bounds the whole attempt, not each socket operation: the TCP connect and every
read and write carry it as their socket timeout, and a :class:`Deadline` shuts the socket down
when the attempt as a whole has taken ``timeout`` seconds. So a receiver that accepts the
connection and never answers fails after ``timeout`` seconds, and so does one that drips a byte
a second (which per-read timeouts alone would wait on forever).

HTTP goes through :mod:`http.client`, not urllib or requests: urllib's errors embed the full
URL (for Slack and most webhooks the URL *is* the secret) and it follows redirects, which must
not happen to a signed POST. The HTTP client is injectable (``post=``) for tests and proxies.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import pathlib
import re
import smtplib
import socket
import ssl
import threading
import urllib.parse
from email.message import EmailMessage
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

from driftguard.components.alerts.alert import Alert
from driftguard.components.alerts.config import (AlertmanagerSinkConfig, AlertsConfig, EmailSinkConfig,
                                      JsonlSinkConfig, SinkConfig, SlackSinkConfig, WebhookSinkConfig)

SIGNATURE_HEADER = "X-Driftguard-Signature"
USER_AGENT = "driftguard-alerts/1"
_MAX_ERROR_BODY = 200   # characters of a failing response quoted in the error (scrubbed)


class DeliveryError(Exception):
    """A send failed. The message is safe to log and store: it holds no secret values."""


# (url, body, headers, timeout) -> (status, body bytes). Raises OSError/HTTPException.
HttpPost = Callable[[str, bytes, Mapping[str, str], float], Tuple[int, bytes]]


class Deadline:
    """Shuts down the sockets of one send attempt once ``seconds`` have passed in total.

    Socket timeouts bound each connect, read and write, not their sum, and neither http.client,
    smtplib, urllib3 nor requests offers a total deadline; a timer thread that shuts the socket
    down wakes whichever call is blocked on it (it then fails with EOF or a reset), so the attempt
    ends on time wherever it is. ``expired`` tells the caller why it failed.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:        # already closed or never connected
        pass


class AttemptTimeout(OSError):
    """The attempt's total deadline passed (raised instead of the EOF the shutdown caused)."""


def http_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Tuple[int, bytes]:
    """POST ``body`` to an http(s) URL; no redirects; at most ``timeout`` seconds in total.

    Credentials in the URL (``https://user:pass@host/...``) become a Basic Authorization header.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    headers = dict(headers)
    if parts.username is not None:
        token = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with Deadline(timeout) as deadline:
        # http.client opens its TCP socket through this attribute (the TLS handshake, for https,
        # runs on top of it), so the deadline watches the socket before the first byte moves.
        create = conn._create_connection
        conn._create_connection = lambda *a, **k: deadline.watch(create(*a, **k))
        timed_out = AttemptTimeout(f"timed out: no complete reply within {timeout:g} s "
                                   f"(connect, request and reply: the limit for the whole attempt)")
        try:
            conn.request("POST", target, body=body, headers={"User-Agent": USER_AGENT, **headers})
            response = conn.getresponse()
            status, reply = response.status, response.read(64 * 1024)
        except (OSError, http.client.HTTPException):
            if deadline.expired:
                raise timed_out from None
            raise
        finally:
            conn.close()
        if deadline.expired:     # http.client takes the EOF of a shut-down socket for the end of
            raise timed_out      # the headers or body: what it read is not the receiver's reply
        return status, reply


class Sink:
    """Base class: a name, a minimum severity, and ``send``."""

    def __init__(self, config: SinkConfig):
        self.config = config
        self.name = config.name

    def send(self, alert: Alert, timeout: float) -> None:
        raise NotImplementedError

    def _env(self, var: Optional[str], what: str) -> str:
        value = os.environ.get(var or "")
        if not var or not value:
            raise DeliveryError(f"{self.name}: environment variable {var} ({what}) is not set")
        return value

    def _fail(self, what: str, error: BaseException, secrets: Sequence[str]) -> DeliveryError:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return DeliveryError(scrub(f"{self.name}: {what}: {text}", secrets))


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret (and the parts of a secret URL that may be sensitive) masked."""
    pieces = set()
    for s in secrets:
        if not s:
            continue
        pieces.add(s)
        parts = urllib.parse.urlsplit(s) if "://" in s else None
        if parts is not None:
            # Paths, queries and user info of webhook URLs carry tokens; quote them unquoted too.
            for p in (parts.path, parts.query, parts.password, parts.username, parts.netloc, parts.hostname):
                if p and len(p) >= 4 and p != "/":
                    pieces.add(p)
                    pieces.add(urllib.parse.unquote(p))
    for p in sorted(pieces, key=len, reverse=True):
        text = text.replace(p, "***")
    return text


class JsonlSink(Sink):
    """Appends one JSON line per alert and fsyncs it. Relative paths resolve against base_dir."""

    def __init__(self, config: JsonlSinkConfig, base_dir: pathlib.Path):
        super().__init__(config)
        path = pathlib.Path(config.path).expanduser()
        self.path = path if path.is_absolute() else pathlib.Path(base_dir) / path

    def send(self, alert: Alert, timeout: float) -> None:
        line = json.dumps(alert.to_dict(), sort_keys=True, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write() of a whole line on an O_APPEND file: concurrent writers do not interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise DeliveryError(f"{self.name}: cannot append to {self.path}: {e.strerror or e}") from None


class _HttpSink(Sink):
    """POSTs a JSON body to a URL read from ``url_env``; non-2xx is a failure."""

    what = "URL"
    path_suffix = ""

    def __init__(self, config, post: Optional[HttpPost] = None):
        super().__init__(config)
        self._post = post or http_post

    def body(self, alert: Alert) -> object:
        raise NotImplementedError

    def headers(self, body: bytes) -> Tuple[Dict[str, str], Sequence[str]]:
        """Extra headers and the secrets they used (to scrub)."""
        return {}, ()

    def send(self, alert: Alert, timeout: float) -> None:
        url = self._env(self.config.url_env, f"{self.config.type} {self.what}")
        secrets = [url]
        body = json.dumps(self.body(alert), sort_keys=True).encode("utf-8")
        extra, used = self.headers(body)
        secrets.extend(used)
        target = url.rstrip("/") + self.path_suffix if self.path_suffix else url
        try:
            status, reply = self._post(target, body, {"Content-Type": "application/json", **extra}, timeout)
        except ValueError as e:
            raise DeliveryError(f"{self.name}: ${self.config.url_env} is not a usable http(s) URL "
                                f"({scrub(str(e), secrets)})") from None
        except (OSError, http.client.HTTPException) as e:   # socket.timeout is an OSError
            raise self._fail(f"POST failed (${self.config.url_env})", e, secrets) from None
        if not 200 <= status < 300:
            snippet = reply[:_MAX_ERROR_BODY].decode("utf-8", "replace").strip()
            snippet = re.sub(r"\s+", " ", snippet)
            raise DeliveryError(scrub(f"{self.name}: HTTP {status} from ${self.config.url_env}"
                                      + (f": {snippet}" if snippet else ""), secrets))


class WebhookSink(_HttpSink):
    """``alert.to_dict()`` as JSON. With ``hmac_secret_env``: ``X-Driftguard-Signature:
    sha256=<hex HMAC-SHA256 of the exact body>``. Receivers dedupe on ``dedup_key``."""

    what = "webhook URL"

    def body(self, alert: Alert) -> object:
        return alert.to_dict()

    def headers(self, body: bytes) -> Tuple[Dict[str, str], Sequence[str]]:
        if not self.config.hmac_secret_env:
            return {}, ()
        secret = self._env(self.config.hmac_secret_env, "webhook HMAC secret")
        return {SIGNATURE_HEADER: "sha256=" + sign(secret, body)}, (secret,)


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body`` keyed with ``secret`` (what receivers recompute)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


_SEVERITY_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


class SlackSink(_HttpSink):
    """A Slack incoming-webhook message: ``text`` (notification fallback) and Block Kit blocks."""

    what = "incoming-webhook URL"

    def body(self, alert: Alert) -> object:
        return slack_message(alert)


def slack_message(alert: Alert) -> Dict[str, object]:
    context = (f"{_SEVERITY_EMOJI[alert.severity]} *{alert.severity}* | rule `{alert.rule}` | "
               f"`{alert.dedup_key}` | {alert.created_at}")
    return {
        "text": f"[{alert.severity}] {alert.title}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},  # Slack's limit
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


class AlertmanagerSink(_HttpSink):
    """``POST {base}/api/v2/alerts`` with a list of one alert in Alertmanager's v2 format."""

    what = "Alertmanager base URL"
    path_suffix = "/api/v2/alerts"

    def body(self, alert: Alert) -> object:
        members = alert.values.get("members")
        if members:      # incidents opened within group_wait: Alertmanager groups them itself
            return [alertmanager_alert(Alert.from_dict(m)) for m in members]
        return [alertmanager_alert(alert)]


def alertmanager_alert(alert: Alert) -> Dict[str, object]:
    """Alertmanager groups and dedupes on labels, so they hold identity only (no scores). An
    incident's open, updates and resolve carry the same labels (its ``incident`` id, no window
    ``scope``), so Alertmanager sees one alert; the resolve sets ``endsAt``."""
    alertname = "Driftguard" + "".join(w.capitalize() for w in alert.rule.split("_"))
    labels = {"alertname": alertname, "severity": alert.severity, "source": "driftguard", **alert.labels}
    incident = alert.values.get("incident") or {}
    body = {
        "labels": labels,
        "annotations": {"summary": alert.title, "description": alert.summary, "dedup_key": alert.dedup_key},
        "startsAt": incident.get("opened_at") or alert.created_at,
    }
    if incident.get("state") == "resolved":
        body["endsAt"] = incident.get("resolved_at") or alert.created_at
    return body


class EmailSink(Sink):
    """Plain-text mail through SMTP (optional STARTTLS and login); subject = the alert title."""

    def __init__(self, config: EmailSinkConfig, smtp_factory: Optional[Callable[..., smtplib.SMTP]] = None):
        super().__init__(config)
        self._smtp = smtp_factory

    def send(self, alert: Alert, timeout: float) -> None:
        cfg: EmailSinkConfig = self.config
        user = password = None
        if cfg.username_env:
            user = self._env(cfg.username_env, "SMTP user")
            password = self._env(cfg.password_env, "SMTP password")
        msg = EmailMessage()
        msg["Subject"] = alert.title
        msg["From"] = cfg.sender
        msg["To"] = ", ".join(cfg.to)
        msg["X-Driftguard-Dedup-Key"] = alert.dedup_key
        msg.set_content(email_body(alert))
        secrets = [s for s in (user, password) if s]
        with Deadline(timeout) as deadline:
            try:
                factory = self._smtp or _smtp_class(deadline)
                with factory(cfg.host, cfg.port, timeout=timeout) as smtp:
                    if getattr(smtp, "sock", None) is not None:
                        deadline.watch(smtp.sock)
                    if cfg.starttls:
                        smtp.starttls(context=ssl.create_default_context())
                    if user is not None:
                        smtp.login(user, password)
                    smtp.send_message(msg)
            except (OSError, smtplib.SMTPException) as e:
                error: Exception = e
                if deadline.expired:
                    error = AttemptTimeout(f"timed out: the SMTP exchange took longer than {timeout:g} s "
                                           f"(the limit for the whole attempt)")
                raise self._fail(f"SMTP {cfg.host}:{cfg.port}", error, secrets) from None


def _smtp_class(deadline: Deadline):
    """smtplib.SMTP whose socket the deadline watches from the connect on (the server's
    greeting is read inside the constructor, so watching after it would be too late)."""

    class _SMTP(smtplib.SMTP):
        def _get_socket(self, host, port, timeout):
            return deadline.watch(super()._get_socket(host, port, timeout))

    return _SMTP


def email_body(alert: Alert) -> str:
    labels = "\n".join(f"  {k}: {v}" for k, v in alert.labels.items())
    return (f"{alert.summary}\n\nseverity: {alert.severity}\nrule: {alert.rule}\n"
            f"created: {alert.created_at}\ndedup key: {alert.dedup_key}\nlabels:\n{labels}\n")


_SINK_CLASSES = {JsonlSinkConfig: JsonlSink, WebhookSinkConfig: WebhookSink, SlackSinkConfig: SlackSink,
                 AlertmanagerSinkConfig: AlertmanagerSink, EmailSinkConfig: EmailSink}


def build_sink(config: SinkConfig, base_dir: pathlib.Path) -> Sink:
    """The sink for one sink config. Never reads the environment (that happens at send time)."""
    cls = _SINK_CLASSES[type(config)]
    return cls(config, base_dir) if cls is JsonlSink else cls(config)


def build_sinks(config: AlertsConfig, base_dir: pathlib.Path) -> Dict[str, Sink]:
    """{sink name: sink} for every configured sink, in config order."""
    return {s.name: build_sink(s, pathlib.Path(base_dir)) for s in config.sinks}
