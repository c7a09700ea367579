"""``driftguard monitor``: records/s per stage, false alerts on unchanged traffic, alert latency,
and predictions/s through ``driftguard serve`` (``benchmarks/serve_throughput.py``).

Run by hand (it prints tables; no assertions)::

    .venv/bin/python benchmarks/serving_monitor.py                    # 200,000 records, ~5-10 min
    .venv/bin/python benchmarks/serving_monitor.py --records 400000 --no-serve
    .venv/bin/python benchmarks/serving_monitor.py --registry /path/to/runs/serving/taxi

What is measured
    Traffic: rows drawn with replacement from the taxi spans the serving version was trained
    on (``data/taxi/span-<s>`` for the spans in its profile), scored once by its SavedModel,
    written as ``PredictionLog`` TFRecords exactly as ``serve`` writes them (one instance per
    request, a request id each), and every record's true label as a ``request_id,label`` line.
    Nothing changes in this traffic, so every alert it raises is a false alert.

    Throughput: the monitor in this process, pinned to one core (``sched_setaffinity``; TF's
    own threads included), over the whole log after a warm-up record (the reference's
    predictions are cached and the compiled loops loaded before timing). Stages are timed
    by wrapping the monitor's methods: reading (TFRecord framing, CRC checks), decoding
    (PredictionLog + tf.Example parsing), streaming detectors, label reading (parsing the
    labels file and joining each label to a waiting prediction), label joins (each
    prediction to a waiting label, or into the waiting set), window tests, label windows,
    alert delivery and the sqlite commit; "other" is the rest (buffers, version
    bookkeeping). Settings: the default (tumbling 10,000-record windows, no labels;
    ``--repeat`` runs, 3 by default, because timings on a shared host swing by tens of
    percent); with labels arriving one batch after their predictions ("labels late": this
    process appends them to the labels file after each step, untimed, so every prediction
    waits in the pending set across a commit, as delayed labels do), or all before the
    first timed step ("labels early": every prediction finds its label waiting); without
    the joint (multivariate) check; with 100,000-record windows; and the tests' small
    sliding windows (1,000 every 500). The first run of a process also loads the compiled
    loops (numba's cache; ``make setup`` compiles them) before timing starts: the warm-up
    record.

    Alert latency: a real ``driftguard monitor`` subprocess follows a log (polling every 0.1 s,
    tumbling 1,000-record windows); this process appends unchanged and drifted windows (fare x
    1.25) and measures, for each drifted window, the time from writing (and flushing) its last
    record to the window's ``feature_psi`` alert line appearing in ``alerts.jsonl``.

    Shadow: the same traffic under a shadow rollout (half the records, each logged twice: by the
    version and by a challenger that is the same model, with the same request id), so the
    versions alternate record by record and one label joins two predictions.

    Serve: ``bench_serve`` from ``benchmarks/serve_throughput.py`` (a real ``driftguard serve``
    subprocess), then the monitor over the prediction logs serve wrote, checking it read as
    many predictions as serve answered.

The registry is only read: everything is written under a temporary folder.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


# ---------------------------------------------------------------- traffic


def traffic_rows(registry: pathlib.Path, version: int):
    import pandas as pd

    from driftguard.components.registry_pusher.registry import read_profile

    spans = read_profile(registry, version).get("spans") or [1, 2]
    return pd.concat([pd.read_csv(ROOT / "data" / "taxi" / f"span-{s}" / "data.csv") for s in spans],
                     ignore_index=True), spans


def score(registry: pathlib.Path, version: int, rows):
    import pyarrow as pa

    from driftguard.components.model_io import ModelSpec, Predictor, encode_examples

    served = rows.drop(columns=["tips"])
    examples = encode_examples(pa.Table.from_pandas(served, preserve_index=False))
    return examples, Predictor(registry / str(version), ModelSpec()).predict(examples).value


def log_record(model: str, version: int, example: bytes, prob: float, rid: Optional[str], ts: int) -> bytes:
    """The record ``driftguard.serving.predictlog.make_predict_log`` builds, without ``tf.make_tensor_proto``
    (50x faster here; the test suite writes its logs with make_predict_log itself)."""
    from tensorflow_serving.apis import prediction_log_pb2

    p = prediction_log_pb2.PredictionLog()
    md = p.log_metadata
    md.model_spec.name = model
    md.model_spec.version.value = version
    md.model_spec.signature_name = "serving_default"
    md.timestamp_secs = ts
    md.sampling_config.sampling_rate = 1.0
    req = p.predict_log.request
    req.model_spec.CopyFrom(md.model_spec)
    t = req.inputs["examples"]
    t.dtype = 7
    t.tensor_shape.dim.add().size = 1
    t.string_val.append(example)
    resp = p.predict_log.response
    resp.model_spec.CopyFrom(md.model_spec)
    o = resp.outputs["probabilities"]
    o.dtype = 1
    o.tensor_shape.dim.add().size = 1
    o.tensor_shape.dim.add().size = 1
    o.tensor_content = np.float32(prob).tobytes()
    if rid is not None:
        ids = resp.outputs["request_id"]
        ids.dtype = 7
        ids.tensor_shape.dim.add().size = 1
        ids.string_val.append(rid.encode())
    return p.SerializeToString()


def write_traffic(directory: pathlib.Path, examples, prob, index: np.ndarray, *, version: int, start: int = 0,
                  model="taxi", writer=None, shadow: Optional[int] = None) -> None:
    """``shadow``: every record is followed by the same one from that version, with the same id
    (what serve writes under a shadow rollout)."""
    from driftguard.serving import predictlog as pl

    own = writer is None
    writer = writer or pl.PredictionLogWriter(directory)
    for k, i in enumerate(index.tolist()):
        for v in (version,) if shadow is None else (version, shadow):
            writer.write(log_record(model, v, examples[i], float(prob[i]), f"q{start + k}", 1_700_000_000 + start + k))
    if own:
        writer.close()


# ---------------------------------------------------------------- throughput


class Stages:
    """Exclusive wall time spent in wrapped callables, by stage name (a stage called inside
    another, e.g. the error detector inside label joins, counts only for itself)."""

    def __init__(self):
        self.seconds: Dict[str, float] = collections.defaultdict(float)
        self._stack: List[float] = []          # time spent in children of each open call

    def wrap(self, owner, attr: str, stage: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args, **kwargs):
            self._stack.append(0.0)
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.perf_counter() - t
                children = self._stack.pop()
                self.seconds[stage] += took - children
                if self._stack:
                    self._stack[-1] += took

        setattr(owner, attr, timed)


def monitor_config(runs: pathlib.Path, **monitor):
    from driftguard.pipeline import config as config_lib

    from driftguard.pipeline.project import example_config

    cfg = config_lib.from_dict({**example_config("taxi"), "runs": str(runs)}, runs.parent)
    return cfg.replace(monitor=dataclasses.replace(cfg.monitor, **monitor))


def throughput(root: pathlib.Path, registry: pathlib.Path, logs: pathlib.Path, labels: Optional[List[str]],
               name: str, arrival: str = "late", shadow: Optional[int] = None, **monitor) -> Dict[str, object]:
    """The monitor over the whole log. ``labels``: each record's ``request_id,label`` line, in
    log order; they arrive one batch after their predictions (``arrival="late"``: written to
    the labels file after each step, as delayed labels do, so every prediction waits in the
    pending set across a commit) or all before the first timed step (``"early"``: every
    prediction finds its label waiting). Writing the labels file is not timed; reading it is."""
    from driftguard.monitoring import logreader
    from driftguard.monitoring import monitor as monitor_lib

    runs = root / name / "runs"
    (runs / "serving").mkdir(parents=True)
    if shadow is None:
        os.symlink(registry, runs / "serving" / "taxi")
        cfg = monitor_config(runs, **monitor)
    else:    # a shadow rollout: version `shadow` is the newest version again, labelled challenger
        from driftguard.components.registry_pusher import labels as labels_lib
        from driftguard.pipeline.config import RolloutConfig

        own = runs / "serving" / "taxi"
        own.mkdir()
        champion = shadow - 1
        for v in (champion, shadow):
            os.symlink(registry / str(champion), own / str(v))
        labels_lib.set_labels(own, {"champion": champion, "challenger": shadow}, action="push", reason="bench")
        cfg = monitor_config(runs, **monitor).replace(rollout=RolloutConfig(mode="shadow"))
    labels_file = None
    if labels is not None:
        labels_file = root / name / "labels.csv"
        labels_file.write_text("request_id,label\n")
    mon = monitor_lib.Monitor(cfg, logs=logs, labels=labels_file)
    mon.step(max_records=1)                       # warm-up: baseline, detectors, compiled loops
    stages = Stages()
    decoder = mon._decoder
    stages.wrap(decoder, "decode", "decode")
    original_read = logreader.read_batch
    stages.wrap(logreader, "read_batch", "read")
    for attr, stage in (("_feed", "detectors"), ("_evaluate_window", "window tests"),
                        ("_evaluate_label_window", "label windows"), ("commit", "commit"),
                        ("_deliver", "alert delivery"), ("_join_predictions", "label joins"),
                        ("_ingest_labels", "label reading")):
        stages.wrap(mon, attr, stage)
    given = 0                                     # labels written to the file so far

    def give(upto: int) -> float:
        nonlocal given
        t = time.perf_counter()
        if upto > given:
            with open(labels_file, "a") as f:
                f.write("".join(labels[given:upto]))
            given = upto
        return time.perf_counter() - t

    untimed = 0.0
    total = {"records": 0}
    if labels is not None and arrival == "early":
        untimed += give(len(labels))
    t0 = time.perf_counter()
    try:
        while True:
            r = mon.step()
            total["records"] += r.records
            if labels is not None and arrival == "late":
                untimed += give(int(mon.counters["records"]))
            if r.idle:
                break
    finally:
        logreader.read_batch = original_read
    elapsed = time.perf_counter() - t0 - untimed
    c = mon.counters
    alerts = sum(c["alerts"].values())
    events = len({a.split("/")[2] for a in _keys(cfg)})
    budget = mon.snapshot()["budget"]          # the serving version's
    mon.close()
    accounted = sum(stages.seconds.values())
    return {"name": name, "records": total["records"], "seconds": elapsed, "rate": total["records"] / elapsed,
            "stages": dict(stages.seconds), "other": max(0.0, elapsed - accounted),
            "windows": c["windows"], "label_windows": c["label_windows"], "alerts": alerts, "alert_events": events,
            "budget": budget, "joined": c["labels_joined"]}


def _keys(cfg) -> List[str]:
    from driftguard.components.alerts.outbox import Outbox, outbox_path

    path = outbox_path(cfg.runs_path)
    return [r["dedup_key"] for r in Outbox(path).rows()] if path.exists() else []


def print_throughput(rows: List[Dict[str, object]]) -> None:
    names = ["read", "decode", "detectors", "label reading", "label joins", "window tests", "label windows",
             "alert delivery", "commit"]
    print(f"\n{'setting':<38} {'records':>8} {'seconds':>8} {'records/s':>10}  windows  labels joined  "
          "alerts (events)")
    for r in rows:
        print(f"{r['name']:<38} {r['records']:>8} {r['seconds']:>8.1f} {r['rate']:>10,.0f}  "
              f"{r['windows']:>7}  {r['joined']:>13}  {r['alerts']:>6} ({r['alert_events']})")
    print("\nseconds per stage (per 100,000 records: microseconds per record x 100,000 / 1e6)")
    print(f"{'setting':<38} " + " ".join(f"{n[:12]:>12}" for n in names + ["other"]))
    for r in rows:
        per = 100_000 / max(1, r["records"])
        cells = [r["stages"].get(n, 0.0) * per for n in names] + [r["other"] * per]
        print(f"{r['name']:<38} " + " ".join(f"{c:>12.2f}" for c in cells))


# ---------------------------------------------------------------- alert latency


def alert_latency(root: pathlib.Path, registry: pathlib.Path, version: int, examples, prob, drifted_examples,
                  rounds: int = 5) -> List[float]:
    from driftguard.serving import predictlog as pl

    runs = root / "latency" / "runs"
    (runs / "serving").mkdir(parents=True)
    os.symlink(registry, runs / "serving" / "taxi")
    cfg_path = root / "latency" / "cfg.json"
    from driftguard.pipeline.project import example_config

    cfg_path.write_text(json.dumps({**example_config("taxi"), "runs": str(runs),
                                    "monitor": {"window": 1000, "poll_seconds": 0.1}}))
    logs = root / "latency" / "logs"
    logs.mkdir()
    rng = np.random.default_rng(5)
    writer = pl.PredictionLogWriter(logs)
    write_traffic(logs, examples, prob, rng.integers(0, len(examples), 1000), start=0, writer=writer,
                  version=version)
    proc = subprocess.Popen([sys.executable, "-m", "driftguard.cli", "--config", str(cfg_path), "monitor",
                             "--logs", str(logs)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    jsonl = runs / "alerts.jsonl"
    state = runs / "monitor" / "taxi" / "state.sqlite"
    latencies = []
    try:
        _wait(lambda: _records(state) >= 1000, 600, proc)      # started, first (clean) window done
        start = 1000
        for _ in range(rounds):
            write_traffic(logs, examples, prob, rng.integers(0, len(examples), 1000), start=start, writer=writer,
                          version=version)
            start += 1000
            _wait(lambda: _records(state) >= start, 120, proc)
            index = rng.integers(0, len(drifted_examples[0]), 1000)
            write_traffic(logs, drifted_examples[0], drifted_examples[1], index[:-1], start=start, writer=writer,
                          version=version)
            _wait(lambda: _records(state) >= start + 999, 120, proc)
            key = f"taxi/live/w{start}-{start + 999}/feature_psi/fare"
            write_traffic(logs, drifted_examples[0], drifted_examples[1], index[-1:], start=start + 999, version=version,
                          writer=writer)
            t0 = time.perf_counter()
            _wait(lambda: jsonl.exists() and key in jsonl.read_text(), 120, proc)
            latencies.append(time.perf_counter() - t0)
            start += 1000
    finally:
        writer.close()
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
    return latencies


def _records(state: pathlib.Path) -> int:
    import sqlite3

    if not state.exists():
        return 0
    try:
        db = sqlite3.connect(state, timeout=1)
        row = db.execute("SELECT value FROM meta WHERE key = 'counters'").fetchone()
        db.close()
    except sqlite3.Error:
        return 0
    return json.loads(row[0])["records"] if row else 0


def _wait(condition, seconds: float, proc) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            raise SystemExit(f"the monitor exited ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.01)
    raise SystemExit(f"timed out after {seconds} s")


# ---------------------------------------------------------------- main


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--registry", type=pathlib.Path, default=ROOT / "demo" / "taxi" / "runs" / "serving" / "taxi",
                    help="a taxi registry (default: the one `make demo` fills)")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    ap.add_argument("--no-serve", action="store_true", help="skip predictions/s through serve")
    ap.add_argument("--no-latency", action="store_true", help="skip the alert latency measurement")
    ap.add_argument("--serve-seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs of the default setting (default 3)")
    args = ap.parse_args(argv)

    from driftguard.components.registry_pusher.registry import existing_versions

    registry = args.registry.resolve()
    versions = existing_versions(registry)
    if not versions:
        raise SystemExit(f"{registry}: no model version (train one: driftguard train --spans 1,2)")
    version = versions[-1]
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    root = pathlib.Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    print(f"driftguard monitor benchmark: registry {registry} (version {version}), {args.records:,} records, "
          f"pinned to core {cpu} of {os.cpu_count()} (load average before: {os.getloadavg()[0]:.1f}); "
          f"scratch {root}", flush=True)
    try:
        rows, spans = traffic_rows(registry, version)
        t = time.perf_counter()
        examples, prob = score(registry, version, rows)
        drifted = rows.assign(fare=(rows["fare"] * 1.25).round(2))
        drifted_examples = score(registry, version, drifted)
        labels = (rows["tips"] > 0.2 * rows["fare"].fillna(0.0)).astype(int).to_numpy()
        print(f"traffic: {len(rows)} rows of span(s) {spans} scored in {time.perf_counter() - t:.1f} s", flush=True)
        rng = np.random.default_rng(2024)
        index = rng.integers(0, len(rows), args.records)
        logs = root / "logs"
        t = time.perf_counter()
        write_traffic(logs, examples, prob, index, version=version)   # the version whose training rows these are
        label_lines = [f"q{k},{labels[i]}\n" for k, i in enumerate(index.tolist())]
        size = sum(f.stat().st_size for f in logs.iterdir())
        print(f"log: {args.records:,} records, {size / 1e6:.0f} MB, written in {time.perf_counter() - t:.1f} s",
              flush=True)
        # this machine's timings swing by tens of percent from run to run (other jobs, a shared
        # host): the default setting runs --repeat times and the table shows each run
        results = [
            throughput(root, registry, logs, None, f"default (10k tumbling), no labels #{k + 1}")
            for k in range(args.repeat)
        ] + [
            throughput(root, registry, logs, label_lines, "default (10k tumbling), labels late"),
            throughput(root, registry, logs, label_lines, "default, labels early", arrival="early"),
            throughput(root, registry, logs, label_lines, "1,000 every 500 (tests), labels late",
                       window=1000, step=500),
            throughput(root, registry, logs, label_lines, "default, no multivariate, labels late",
                       multivariate=False),
            throughput(root, registry, logs, label_lines, "100k tumbling, labels late", window=100_000),
        ]
        shadow_logs = root / "shadow-logs"       # half the records, each twice: the same record count
        write_traffic(shadow_logs, examples, prob, index[:args.records // 2], version=version, shadow=version + 1)
        results.append(throughput(root, registry, shadow_logs, label_lines[:args.records // 2],
                                  "shadow rollout (2 versions), labels late", shadow=version + 1))
        print_throughput(results)
        rates = sorted(r["rate"] for r in results[:args.repeat])
        print(f"\ndefault setting over {args.repeat} run(s): median {np.median(rates):,.0f} records/s "
              f"(min {rates[0]:,.0f}, max {rates[-1]:,.0f}); target 100,000")
        print("\nfalse alerts on unchanged traffic (budget: 1 per 100,000 records)")
        for r in results:
            b = r["budget"]
            print(f"  {r['name']:<38} {r['alert_events']} alert event(s) in {r['records']:,} records "
                  f"(expected at most {r['records'] / 1e5:.1f}); alpha per window test {b['alpha']:.2g} x "
                  f"{b['window_tests']} tests, detector ARL0 {b['arl0_records']:,.0f} records x {b['detectors']}")
        if not args.no_latency:
            os.sched_setaffinity(0, set(range(os.cpu_count())))
            lat = alert_latency(root, registry, version, examples, prob, drifted_examples)
            print(f"\nalert latency (follow mode, poll 0.1 s, 1,000-record windows): last record of a drifted "
                  f"window written -> alert in alerts.jsonl: median {np.median(lat):.2f} s, "
                  f"max {max(lat):.2f} s over {len(lat)} windows ({', '.join(f'{x:.2f}' for x in lat)})")
        serve = ROOT / "benchmarks" / "serve_throughput.py"
        if serve.exists() and not args.no_serve:
            os.sched_setaffinity(0, set(range(os.cpu_count())))
            sys.path.insert(0, str(serve.parent))
            import serve_throughput

            served_logs = root / "served-logs"
            rows_serve = serve_throughput.bench_serve(registry, cases=serve_throughput.BASE_CASES,
                                                      seconds=args.serve_seconds, log_dir=served_logs)
            print("\npredictions/s through driftguard serve (benchmarks/serve_throughput.py, clients on the same "
                  "machine)")
            serve_throughput.print_table(rows_serve)
            answered = sum(r["requests"] * r["instances"] for r in rows_serve)
            check = throughput(root, registry, served_logs, None, "monitor over serve's own logs")
            print(f"the monitor read {check['records']:,} predictions from serve's logs at {check['rate']:,.0f} "
                  f"records/s (serve answered {answered:,} in the timed part, plus warm-up requests)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
