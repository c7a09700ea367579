"""Misbehaving receivers on 127.0.0.1 for the fault tests (imported as `fault_servers`, a unique
module name): servers that answer one byte at a time forever, and a listener whose accept queue
is full so that a connect to it never completes.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import List


class Dripping:
    """Accepts connections and answers with a never-ending reply, one line every ``interval``
    seconds: each read gets data well within any socket timeout, so only a deadline on the
    whole attempt ends it. ``protocol='http'`` sends a status line then endless headers;
    ``'smtp'`` sends an endless multi-line 220 greeting."""

    def __init__(self, protocol: str = "http", interval: float = 0.2):
        self.protocol, self.interval = protocol, interval
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.bytes_sent = 0
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted += 1
            t = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _drip(self, conn: socket.socket) -> None:
        first, line = ((b"HTTP/1.1 200 OK\r\n", b"X-Drip: .\r\n") if self.protocol == "http"
                       else (b"220-slow.example greets you\r\n", b"220-still greeting\r\n"))
        try:
            conn.sendall(first)
            self.bytes_sent += len(first)
            while not self._stop.wait(self.interval):
                conn.sendall(line)
                self.bytes_sent += len(line)
        except OSError:        # the client gave up and closed: what the test wants
            pass
        finally:
            conn.close()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._stop.set()
        self._accepter.join(5)
        for t in self._threads:
            t.join(5)
        self.sock.close()


class Unreachable:
    """A listener that never accepts, with its accept queue filled by parked connections, so
    the kernel drops further SYNs and a new connect() hangs until the client's timeout (on
    loopback, with no outside network)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.parked: List[socket.socket] = []
        # Fill the queue: connects succeed until it is full; the first one that times out
        # proves the next client will hang in connect.
        for _ in range(64):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self.parked.append(s)
            time.sleep(0.01)
        self.full = not self._connects(0.3)

    def _connects(self, timeout: float) -> bool:
        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect(("127.0.0.1", self.port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        for s in self.parked:
            s.close()
        self.sock.close()
