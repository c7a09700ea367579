"""`driftguard serve` under hostile and heavy HTTP: a real server subprocess on 127.0.0.1 and
real sockets, serving a small SavedModel made here (no TFX run: it parses tf.Examples with the
taxi schema's types, so the raw-feature path is the one clients use).

The bar of bad requests must each get a 4xx JSON error naming what is wrong, and leave no 500
in /metrics; 200 keep-alive connections at once must all be answered; request ids that were
issued before must be rewritten and the rewrite announced in a response header.
"""
from __future__ import annotations

import collections
import concurrent.futures
import json
import re
import socket
import threading
import time

import pytest

from helpers import ServeProcess, post_json, save_small_model, write_config
from helpers import raw_http as raw
from helpers import read_response as _read_response
from driftguard.serving import predictlog

P = "/v1/models/taxi:predict"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-http")
    registry = root / "runs" / "serving" / "taxi"
    registry.mkdir(parents=True)
    save_small_model(registry / "1")
    cfg = write_config(root / "serve.json", runs=str(root / "runs"))
    srv = ServeProcess(root, cfg, "--max-body-bytes", str(1 << 20)).start()
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def post(srv, body, headers=None, path=P):
    return post_json(srv, path, body, headers)


def metrics(srv):
    from prometheus_client.parser import text_string_to_metric_families

    status, _, text = raw(srv, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    out = collections.defaultdict(float)
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if s.name == "driftguard_serve_requests_total":
                out[(s.labels["path"], s.labels["code"])] += s.value
    return out


GOOD = {"instances": [{"fare": 9.25, "payment_type": "Cash", "trip_start_hour": 14}]}


# (what is sent, status, error pattern); JSON bodies, sent with a correct Content-Length
BAD_BODIES = {
    "NaN for FLOAT": (b'{"instances": [{"fare": 1.0}, {"fare": NaN}]}', 400,
                      r"^instance 1: feature 'fare': NaN is not a number serve accepts"),
    "Infinity for FLOAT": (b'{"instances": [{"fare": Infinity}]}', 400,
                           r"^instance 0: feature 'fare': Infinity is outside the range of FLOAT"),
    "-Infinity for FLOAT": (b'{"instances": [{"fare": 2}, {"fare": 3}, {"fare": -Infinity}]}', 400,
                            r"^instance 2: feature 'fare': -Infinity is outside the range of FLOAT"),
    "1e309 for FLOAT": (b'{"instances": [{"fare": 1e309}]}', 400,
                        r"^instance 0: feature 'fare': Infinity is outside the range .*1e309"),
    "1e39 for FLOAT (beyond float32)": (b'{"instances": [{"fare": 1e39}]}', 400,
                                        r"^instance 0: feature 'fare': 1e\+39 is outside the range of FLOAT"),
    "integer beyond float32 for FLOAT": (b'{"instances": [{"fare": 1' + b"0" * 39 + b'}]}', 400,
                                         r"^instance 0: feature 'fare': 1000.* is outside the range of FLOAT"),
    "integer beyond float64 for FLOAT": (b'{"instances": [{"fare": 1' + b"0" * 400 + b'}]}', 400,
                                         r"^instance 0: feature 'fare': 1000.* is outside the range of FLOAT"),
    "integer of 5000 digits": (b'{"instances": [{"fare": ' + b"7" * 5000 + b'}]}', 400,
                               r"^malformed JSON: Exceeds the limit \(4300\) for integer string conversion"),
    "NaN for INT": (b'{"instances": [{"trip_start_hour": NaN}]}', 400,
                    r"^instance 0: feature 'trip_start_hour' expects integers \(INT\), got NaN"),
    "Infinity for INT": (b'{"instances": [{"trip_start_hour": Infinity}]}', 400,
                         r"^instance 0: feature 'trip_start_hour' expects integers \(INT\), got Infinity"),
    "NaN in a column": (b'{"inputs": {"fare": [1.0, NaN]}}', 400, r"^instance 1: feature 'fare': NaN"),
    "nested 1000 deep": (b'{"instances": ' + b"[" * 1000 + b"]" * 1000 + b"}", 400,
                         r"^the JSON is nested 1001 levels deep; serve accepts at most 64"),
    "nested 100000 deep": (b"[" * 100000, 400, r"^the JSON is nested 100000 levels deep"),
    "nested 65 deep in an instance": (b'{"instances": [{"fare": ' + b"[" * 62 + b"1" + b"]" * 62 + b"}]}",
                                      400, r"^the JSON is nested 65 levels deep"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_a_bad_body_gets_a_400_naming_the_instance_and_feature(server, case):
    body, want, pattern = BAD_BODIES[case]
    status, headers, out = post(server, body)
    assert status == want, out
    assert headers["content-type"].startswith("application/json")
    assert re.search(pattern, json.loads(out)["error"]), out


def test_a_large_integer_for_a_float_feature_is_converted(server):
    """17031080100 (a census tract id sent as a FLOAT) > 2**24: converted to float32 (rounded
    to 17031079936, float32's nearest); so is 2**70."""
    status, _, out = post(server, {"instances": [{"fare": 17031080100, "trip_start_hour": 2}, {"fare": 2 ** 70}]})
    assert status == 200, out
    assert len(json.loads(out)["predictions"]) == 2


H = "Host: x\r\nContent-Type: application/json\r\n"
GOOD_BYTES = json.dumps(GOOD).encode()
# Refused by aiohttp's HTTP parser (llhttp) before any handler runs: 400, in JSON (server._JSONErrors).
BAD_HTTP = {
    "two equal Content-Lengths": (
        f"POST {P} HTTP/1.1\r\n{H}Content-Length: {len(GOOD_BYTES)}\r\nContent-Length: {len(GOOD_BYTES)}\r\n\r\n"
        .encode() + GOOD_BYTES, r"Duplicate Content-Length"),
    "conflicting Content-Lengths (28 and 5)": (
        f"POST {P} HTTP/1.1\r\n{H}Content-Length: 28\r\nContent-Length: 5\r\n\r\n".encode() + b"x" * 28,
        r"Duplicate Content-Length"),
    "Content-Length with Transfer-Encoding": (
        f"POST {P} HTTP/1.1\r\n{H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"5\r\nhello\r\n0\r\n\r\n", r"Transfer-Encoding can't be present with Content-Length"),
    "two Transfer-Encodings": (
        f"POST {P} HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"0\r\n\r\n", r"Invalid `Transfer-Encoding` header value"),
    "Transfer-Encoding other than chunked": (
        f"POST {P} HTTP/1.1\r\n{H}Transfer-Encoding: gzip\r\n\r\n".encode(), r"invalid `Transfer-Encoding`"),
    "negative Content-Length": (f"POST {P} HTTP/1.1\r\n{H}Content-Length: -5\r\n\r\n".encode(),
                                r"Invalid character in Content-Length"),
    "Content-Length not a number": (f"POST {P} HTTP/1.1\r\n{H}Content-Length: 1e3\r\n\r\n".encode(),
                                    r"Invalid character in Content-Length"),
    "garbage request line": (b"GARBAGE\r\n\r\n", r"Invalid method"),
    "TLS to the HTTP port": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", r"HTTPS traffic"),
    "header line too long": (f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 20000}\r\n\r\n".encode(),
                             r"a header line is longer than 8190 bytes"),
    "request line too long": (f"GET /{'a' * 20000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
                              r"the request line or a header line is longer"),
    "malformed chunk": (f"POST {P} HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n".encode()
                        + b"zz\r\nhello\r\n0\r\n\r\n", r"Invalid character in chunk size"),
}


@pytest.mark.parametrize("case", list(BAD_HTTP))
def test_malformed_http_gets_a_json_400_naming_the_header(server, case):
    data, pattern = BAD_HTTP[case]
    with socket.create_connection((server.host, server.port), timeout=60) as sock:
        sock.sendall(data)
        status, headers, body = _read_response(sock)
        assert sock.recv(1) == b"", "the server closes the connection after a malformed request"
    assert status == 400, (status, body)
    assert headers["content-type"].startswith("application/json"), (headers, body)
    error = json.loads(body)["error"]
    assert re.search(r"^malformed HTTP request: .*" + pattern, error), error


def test_a_malformed_chunk_after_the_handler_started_reading_is_a_400(server):
    with socket.create_connection((server.host, server.port), timeout=60) as sock:
        sock.sendall(f"POST {P} HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n5\r\n[1, 2\r\n".encode())
        time.sleep(0.3)
        sock.sendall(b"zz\r\nhello\r\n0\r\n\r\n")
        status, _, body = _read_response(sock)
    assert status == 400, body
    assert json.loads(body)["error"] == "malformed request body: Invalid character in chunk size"


def test_a_client_that_hangs_up_mid_body_is_not_a_server_error(server):
    before = metrics(server)
    for _ in range(3):
        sock = socket.create_connection((server.host, server.port), timeout=30)
        sock.sendall(f"POST {P} HTTP/1.1\r\n{H}Content-Length: 1000\r\n\r\n".encode() + b'{"instances": [')
        time.sleep(0.2)
        sock.close()
    deadline = time.monotonic() + 30
    while True:
        after = metrics(server)
        hung_up = after[("predict", "499")] - before[("predict", "499")]
        if hung_up == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert hung_up == 3, dict(after)
    assert not any(code.startswith("5") for (_, code), n in after.items() if n)
    status, _, out = post(server, GOOD)
    assert status == 200, out


def test_after_the_bar_metrics_show_no_server_error(server):
    """Runs after the bad-request tests (file order): not one 5xx was counted."""
    counts = metrics(server)
    assert counts[("malformed", "400")] >= 5, dict(counts)
    assert counts[("predict", "400")] >= len(BAD_BODIES), dict(counts)
    fives = {k: n for k, n in counts.items() if k[1].startswith("5") and n}
    assert not fives, fives
    assert "Traceback" not in server.stderr_path.read_text()


def test_200_concurrent_keep_alive_clients_are_all_answered(server):
    n, rounds = 200, 3
    socks = []
    t0 = time.perf_counter()
    for _ in range(n):
        socks.append(socket.create_connection((server.host, server.port), timeout=120))
    opened = time.perf_counter() - t0
    body = json.dumps(GOOD).encode()
    request = (f"POST {P} HTTP/1.1\r\n{H}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    barrier = threading.Barrier(n)

    def client(sock):
        barrier.wait()
        statuses = []
        for _ in range(rounds):   # the same connection each time: keep-alive
            sock.sendall(request)
            status, headers, _ = _read_response(sock)
            statuses.append((status, headers.get("connection", "keep-alive")))
        sock.close()
        return statuses

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(client, socks))
    assert opened < 5, f"opening {n} connections took {opened:.1f} s"
    assert all(s == [(200, "keep-alive")] * rounds for s in results), collections.Counter(map(str, results))


def _logged_ids(srv):
    ids = []
    for record, _ in predictlog.follow(srv.log_dir):
        ids += predictlog.decode(record).request_ids
    return ids


def test_a_reused_or_colliding_request_id_is_rewritten_and_said_so(server):
    two = {"instances": GOOD["instances"] * 2}
    status, h, _ = post(server, two, {"X-Request-Id": "coll"})
    assert status == 200 and h["x-request-id"] == "coll" and "x-request-id-rewritten" not in h
    # `coll-0` is instance 0 of the request above
    status, h, _ = post(server, GOOD, {"X-Request-Id": "coll-0"})
    assert status == 200 and h["x-request-id-rewritten"] == "coll-0"
    assert re.fullmatch(r"coll-0\.[0-9a-f]{8}", h["x-request-id"]), h
    first_rewrite = h["x-request-id"]
    # the same id again: rewritten again, to a new id
    status, h, _ = post(server, two, {"X-Request-Id": "coll"})
    assert status == 200 and h["x-request-id-rewritten"] == "coll"
    second = h["x-request-id"]
    assert re.fullmatch(r"coll\.[0-9a-f]{8}", second)
    # the other way round: a one-instance `pair-1` first, then `pair` with two instances
    status, h, _ = post(server, GOOD, {"X-Request-Id": "pair-1"})
    assert status == 200 and "x-request-id-rewritten" not in h
    status, h, _ = post(server, two, {"X-Request-Id": "pair"})
    assert status == 200 and h["x-request-id-rewritten"] == "pair"
    pair = h["x-request-id"]
    # a server-made id sent back by the client (a retry) is detected too
    status, h, _ = post(server, GOOD)
    made = h["x-request-id"]
    status, h, _ = post(server, GOOD, {"X-Request-Id": made})
    assert status == 200 and h["x-request-id-rewritten"] == made and h["x-request-id"] != made
    # a 128-character id stays within 128 characters when rewritten
    long_id = "L" * 128
    post(server, GOOD, {"X-Request-Id": long_id})
    status, h, _ = post(server, GOOD, {"X-Request-Id": long_id})
    assert len(h["x-request-id"]) == 128 and h["x-request-id-rewritten"] == long_id
    # a refused request issues no id
    status, h, _ = post(server, {"instances": [{"fare": "x"}]}, {"X-Request-Id": "refused"})
    assert status == 400 and h["x-request-id"] == "refused"
    status, h, _ = post(server, GOOD, {"X-Request-Id": "refused"})
    assert status == 200 and "x-request-id-rewritten" not in h

    ids = _logged_ids(server)
    counts = collections.Counter(ids)
    assert not [i for i, c in counts.items() if c > 1], "an id was logged twice"
    for i in ("coll-0", "coll-1", first_rewrite, f"{second}-0", f"{second}-1", "pair-1", f"{pair}-0",
              f"{pair}-1", "refused"):
        assert counts[i] == 1, i


def test_concurrent_requests_with_one_id_get_distinct_ids(server):
    def one(_):
        status, h, _ = post(server, GOOD, {"X-Request-Id": "same-id"})
        assert status == 200
        return h["x-request-id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        used = list(pool.map(one, range(32)))
    assert len(set(used)) == 32 and used.count("same-id") == 1


def test_labels_are_routed_unknown_ones_refused_and_new_ones_picked_up(server):
    from driftguard.components.registry_pusher import labels
    for method, path in (("POST", "/v1/models/taxi/labels/stable:predict"),
                         ("GET", "/v1/models/taxi/labels/stable"),
                         ("GET", "/v1/models/taxi/labels/stable/metadata")):
        data = GOOD_BYTES if method == "POST" else b""
        status, headers, body = raw(server, f"{method} {path} HTTP/1.1\r\n{H}Content-Length: {len(data)}\r\n\r\n"
                                    .encode() + data)
        assert status == 404, body
        assert "no label 'stable'" in json.loads(body)["error"]
    registry = server.log_dir.parents[1] / "serving" / "taxi"
    labels.promote(registry, 1, label="stable", reason="test: a label set while serving")
    request = f"POST /v1/models/taxi/labels/stable:predict HTTP/1.1\r\n{H}Content-Length: {len(GOOD_BYTES)}\r\n\r\n"
    deadline = time.monotonic() + 60  # the server polls the registry every 5 s
    while True:
        status, headers, body = raw(server, request.encode() + GOOD_BYTES)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200, body
    assert "predictions" in json.loads(body)