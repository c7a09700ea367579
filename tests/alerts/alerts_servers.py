"""Real receivers on 127.0.0.1 for the alert tests: an HTTP server that records requests, a
socket server that accepts and never answers, and an SMTP server (aiosmtpd).

A unique module name (imported as `alerts_servers`): tests/helpers.py and several
conftest.py modules already exist, and two test helpers with one name once collided.
"""
from __future__ import annotations

import http.server
import socket
import threading
from typing import Dict, List, Optional


def free_port() -> int:
    """A port nothing listens on right now (for "the receiver is down, then comes up")."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A ThreadingHTTPServer that records every POST (path, headers, body) and answers
    ``status`` (settable while running; ``echo_path`` puts the request path in the reply)."""

    def __init__(self, port: int = 0, status: int = 200, echo_path: bool = False):
        self.requests: List[Dict[str, object]] = []
        self.status = status
        self.echo_path = echo_path
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    status = receiver.status
                reply = (f"error at {self.path}" if receiver.echo_path else "ok").encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):   # keep test output quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class Hanging:
    """Accepts TCP connections and never reads or answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: List[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted.append(conn)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for c in self.accepted:
            c.close()
        self.sock.close()


class Mailbox:
    """An aiosmtpd SMTP server on 127.0.0.1 that keeps every message; optional AUTH with one
    user/password (plain-text AUTH allowed without TLS: loopback only)."""

    def __init__(self, user: Optional[str] = None, password: Optional[str] = None):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: List[Dict[str, object]] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
                mailbox.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                         "data": envelope.content})
                return "250 Message accepted"

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (getattr(auth_data, "login", b"") == (user or "").encode()
                  and getattr(auth_data, "password", b"") == (password or "").encode())
            # handled=False: aiosmtpd then answers 535 itself (handled=True would send nothing).
            return AuthResult(success=ok, handled=False)

        kwargs = {}
        if user is not None:
            kwargs = {"authenticator": authenticate, "auth_require_tls": False}
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
