"""Predictions per second through ``driftguard serve``, and request latency.

Run by hand (it prints a table; no assertions)::

    .venv/bin/python benchmarks/serve_throughput.py                       # runs/serving/taxi, ~1 min
    .venv/bin/python benchmarks/serve_throughput.py --registry /path/to/runs/serving/taxi --seconds 20
    .venv/bin/python benchmarks/serve_throughput.py --payload b64         # serialized tf.Examples
    .venv/bin/python benchmarks/serve_throughput.py --inference-threads 2 # serve's thread pool size

What is measured: a real ``driftguard serve`` subprocess on 127.0.0.1 (port 0) serving the newest
version of ``--registry`` (read only; prediction logs go to a temporary folder, sample rate 1.0,
so logging is included). For each case (instances per request x client threads) the client
threads send requests back to back for ``--seconds`` over keep-alive HTTP/1.1 connections
(``http.client``), after a short warm-up; the last case holds 200 keep-alive connections open
at once, one client thread each (what a fleet of clients, or a load balancer's pool, does to the
server). Instances are real training rows: the version's
reference sample (``profile/reference_sample/sample.parquet``) without the label, as TF Serving
REST ``instances`` (feature dicts by default). The clients run in this process, on the same
machine, so they compete with the server for the cores: the numbers are a lower bound for the
server alone.

``bench_serve(registry, ...)`` returns the rows as dicts (``benchmarks/serving_monitor.py`` uses it).
"""
from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import pathlib
import queue
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from driftguard.components.registry_pusher import registry as registry_lib  # noqa: E402

# (instances per request, client threads); every client thread holds one keep-alive connection
BASE_CASES = ((1, 1), (1, 4), (100, 1), (100, 4))
CASES = BASE_CASES + ((1, 200),)                  # + 200 concurrent keep-alive clients
_TOKEN_ENV = "DRIFTGUARD_BENCH_TOKEN"


def sample_instances(registry: pathlib.Path, n: int = 1000, *, payload: str = "features") -> List[dict]:
    """Up to ``n`` rows of the newest version's reference sample as TF Serving REST instances:
    feature dicts (``payload='features'``) or ``{"b64": serialized tf.Example}`` ('b64')."""
    import pandas as pd

    version = max(registry_lib.existing_versions(registry))
    df = pd.read_parquet(registry / str(version) / "profile" / "reference_sample" / "sample.parquet")
    # the label, bookkeeping columns (``__split__``), and the census tract the old server refused
    # (an integer above 2**24 for a FLOAT feature), kept out so the rows compare with earlier runs
    df = df.drop(columns=[c for c in df.columns if c in ("tips", "pickup_census_tract") or c.startswith("__")])
    df = df.head(n)
    rows = json.loads(df.to_json(orient="records"))
    if payload == "features":
        return rows
    if payload != "b64":
        raise ValueError(f"payload must be 'features' or 'b64', got {payload!r}")
    from google.protobuf import text_format
    from tensorflow.core.example import example_pb2
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse((registry / str(version) / "profile" / "schema.pbtxt").read_text(),
                               schema_pb2.Schema())
    kinds = {f.name: f.type for f in schema.feature}
    out = []
    for row in rows:
        ex = example_pb2.Example()
        for k, v in row.items():
            if v is None:
                continue
            if kinds[k] == schema_pb2.INT:
                ex.features.feature[k].int64_list.value.append(int(v))
            elif kinds[k] == schema_pb2.FLOAT:
                ex.features.feature[k].float_list.value.append(float(v))
            else:
                ex.features.feature[k].bytes_list.value.append(str(v).encode())
        out.append({"b64": base64.b64encode(ex.SerializeToString()).decode()})
    return out


def start_server(registry: pathlib.Path, *, log_dir: pathlib.Path, extra_args: Sequence[str] = (),
                 token: Optional[str] = None, timeout: float = 600) -> Tuple[subprocess.Popen, str]:
    """Start ``driftguard serve`` on 127.0.0.1:0 for ``registry`` (``<runs>/serving/<model>``);
    return (process, base URL) once it printed its start line."""
    registry = pathlib.Path(registry).resolve()
    cfg = pathlib.Path(tempfile.mkdtemp(prefix="serve-bench-cfg-")) / "config.json"
    from driftguard.pipeline.project import example_config

    cfg.write_text(json.dumps({**example_config("taxi"), "runs": str(registry.parent.parent),
                               "model_name": registry.name}))
    env = dict(os.environ)
    args = [sys.executable, "-m", "driftguard.cli", "--config", str(cfg), "serve", "--port", "0",
            "--log-dir", str(log_dir), *extra_args]
    if token:
        env[_TOKEN_ENV] = token
        args += ["--token-env", _TOKEN_ENV]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env=env)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        proc.kill()
        raise RuntimeError(f"driftguard serve did not start within {timeout} s") from None
    if " at http://" not in line:
        proc.kill()
        raise RuntimeError(f"driftguard serve failed to start (exit {proc.wait()}); run it by hand to see why")
    shutil.rmtree(cfg.parent, ignore_errors=True)
    return proc, line.strip().rsplit(" at ", 1)[1]


def stop_server(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=120)
    finally:
        if proc.stdout:
            proc.stdout.close()


def _run_case(url: str, model: str, bodies: List[bytes], threads: int, seconds: float,
              token: Optional[str], warmup: int = 5) -> Dict[str, float]:
    host, port = url.split("//")[1].rsplit(":", 1)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    path = f"/v1/models/{model}:predict"
    latencies: List[List[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    start = threading.Barrier(threads + 1)
    deadline = [0.0]

    def client(t: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)

        def send(body: bytes) -> int:
            # A connection the server reset or refused is an error, not the end of the client
            # (a dead client would leave the others waiting at the barrier): reconnect.
            nonlocal conn
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                return resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=120)
                return 0

        i = t
        try:
            for _ in range(warmup):
                send(bodies[i % len(bodies)])
                i += threads
        finally:
            start.wait()
        while time.perf_counter() < deadline[0]:
            t0 = time.perf_counter()
            status = send(bodies[i % len(bodies)])
            latencies[t].append(time.perf_counter() - t0)
            if status != 200:
                errors[t] += 1
            i += threads
        conn.close()

    workers = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    deadline[0] = time.perf_counter() + seconds + 3600  # placeholder until every client is warm
    start.wait()
    t0 = time.perf_counter()
    deadline[0] = t0 + seconds
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    lat = np.array([x for per in latencies for x in per])
    return {"requests": int(lat.size), "seconds": elapsed, "errors": int(sum(errors)),
            "p50_ms": float(np.percentile(lat, 50) * 1e3), "p99_ms": float(np.percentile(lat, 99) * 1e3)}


def bench_serve(registry: pathlib.Path, *, cases: Sequence[Tuple[int, int]] = CASES, seconds: float = 10.0,
                payload: str = "features", log_dir: Optional[pathlib.Path] = None,
                url: Optional[str] = None, token: Optional[str] = None,
                server_args: Sequence[str] = ()) -> List[Dict[str, object]]:
    """Predictions/s and latency through ``serve`` for each (instances per request, threads).

    Starts a server for ``registry`` unless ``url`` points at a running one (then ``token`` is
    its bearer token, if any; else ``server_args`` are added to its command line). Prediction
    logs go to ``log_dir`` (default: a temporary folder,
    removed afterwards). Returns one dict per case: instances, threads, requests, seconds,
    requests_per_s, predictions_per_s, p50_ms, p99_ms, errors.
    """
    registry = pathlib.Path(registry)
    model = registry.name
    instances = sample_instances(registry, payload=payload)
    own_logs = log_dir is None
    log_dir = pathlib.Path(log_dir or tempfile.mkdtemp(prefix="serve-bench-logs-"))
    proc = None
    if url is None:
        token = secrets.token_hex(16)
        proc, url = start_server(registry, log_dir=log_dir, token=token, extra_args=server_args)
    rows = []
    try:
        for k, threads in cases:
            bodies = [json.dumps({"instances": [instances[(j * k + m) % len(instances)] for m in range(k)]}).encode()
                      for j in range(max(1, min(200, len(instances) // k)))]
            r = _run_case(url, model, bodies, threads, seconds, token)
            rows.append({"instances": k, "threads": threads, **r,
                         "requests_per_s": r["requests"] / r["seconds"],
                         "predictions_per_s": r["requests"] * k / r["seconds"]})
    finally:
        if proc is not None:
            stop_server(proc)
        if own_logs:
            shutil.rmtree(log_dir, ignore_errors=True)
    return rows


def print_table(rows: Sequence[Dict[str, object]]) -> None:
    print(f"{'instances/req':>13} {'threads':>7} {'requests':>8} {'req/s':>8} {'pred/s':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for r in rows:
        print(f"{r['instances']:>13} {r['threads']:>7} {r['requests']:>8} {r['requests_per_s']:>8.0f} "
              f"{r['predictions_per_s']:>9.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", type=pathlib.Path, default=ROOT / "demo" / "taxi" / "runs" / "serving" / "taxi",
                    help="<runs>/serving/<model> (default: the taxi registry `make demo` fills)")
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per case (default 10)")
    ap.add_argument("--payload", choices=["features", "b64"], default="features")
    ap.add_argument("--inference-threads", type=int, default=None,
                    help="serve's --inference-threads (default: serve's own, 4)")
    args = ap.parse_args(argv)
    server_args = [] if args.inference_threads is None else ["--inference-threads", str(args.inference_threads)]
    if not registry_lib.existing_versions(args.registry):
        raise SystemExit(f"{args.registry}: no model version (train one: driftguard train --spans 1,2)")
    print(f"driftguard serve, registry {args.registry} (newest version "
          f"{max(registry_lib.existing_versions(args.registry))}), payload {args.payload}, "
          f"{args.seconds:g} s per case, prediction logging on, {os.cpu_count()} cores "
          f"(load average before: {os.getloadavg()[0]:.1f})"
          + (f", --inference-threads {args.inference_threads}" if server_args else ""), flush=True)
    print_table(bench_serve(args.registry, seconds=args.seconds, payload=args.payload, server_args=server_args))


if __name__ == "__main__":
    main()
