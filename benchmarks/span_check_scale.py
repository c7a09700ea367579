"""Span check at scale: wall time per component, rows/s and peak memory for spans of N rows.

Run by hand (not part of the tests):

    .venv/bin/python benchmarks/span_check_scale.py [--rows 100000,1000000,5000000]
        [--format parquet|tfrecord|csv] [--beam-arg=--direct_running_mode=multi_processing ...]
        [--workdir DIR]

It trains version 1 of the taxi example (its driftguard.yaml, spans 1-2 of data/taxi) once in
``--workdir`` (reused when it already holds a trained model), writes a span of N rows resampled
(seeded) from the committed taxi rows in ``--format``, and runs the span-check pipeline on it
(``pipeline.create_check_pipeline`` + ``runner.run``, what ``driftguard check`` runs). Each
node's seconds come from MLMD (execution create -> last update); peak memory is the largest
resident set of this process and all its children (Beam's worker processes), summed, sampled
every 0.2 s while the check runs, with their CPU seconds (printed per component too: on a
shared machine they move less than the wall time does).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import threading
import time
from typing import Dict, List

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parent.parent
TAXI = REPO / "data" / "taxi"
COMPONENTS = ["ExampleGen", "StatisticsGen", "ExampleValidator", "DriftDetector", "PredictionMonitor",
              "RetrainGate"]
SHORT = {"ExampleGen": "ExampleGen", "StatisticsGen": "Stats", "ExampleValidator": "Validator",
         "DriftDetector": "Drift", "PredictionMonitor": "Predict", "RetrainGate": "Gate"}
CHECK_SPAN = 20
CHUNK_ROWS = 250_000


class TreeRss:
    """Peak of the summed resident memory of this process and its descendants (from /proc), and
    their CPU seconds (user + system, live processes), sampled together."""

    def __init__(self, every: float = 0.2):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self.samples: List[tuple] = []       # (epoch seconds, bytes, CPU seconds)
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree(root: int) -> tuple:
        parents: Dict[int, int] = {}
        rss: Dict[int, int] = {}
        cpu: Dict[int, int] = {}
        page = os.sysconf("SC_PAGE_SIZE")
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(entry)
            parents[pid] = int(fields[1])
            rss[pid] = int(fields[21]) * page
            cpu[pid] = int(fields[11]) + int(fields[12])
        total, ticks = 0, 0
        for pid in rss:
            p = pid
            while p and p != root:
                p = parents.get(p, 0)
            if p == root:
                total += rss[pid]
                ticks += cpu[pid]
        return total, ticks / os.sysconf("SC_CLK_TCK")

    @classmethod
    def _tree_bytes(cls, root: int) -> int:
        return cls._tree(root)[0]

    def _run(self):
        me = os.getpid()
        while not self._stop.is_set():
            rss, cpu = self._tree(me)
            self.samples.append((time.time(), rss, cpu))
            self.peak = max(self.peak, rss)
            self._stop.wait(self.every)

    def __enter__(self):
        self.peak = self._tree_bytes(os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> int:
        return max((rss for t, rss, _ in self.samples if start <= t <= end), default=0)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the process tree used between two times (the samples nearest inside)."""
        inside = [cpu for t, _, cpu in self.samples if start <= t <= end]
        return inside[-1] - inside[0] if len(inside) > 1 else 0.0


def taxi_rows():
    """Every committed taxi row (spans 1-16) as one Arrow table, columns typed as CSV inference types them."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    tables = [pacsv.read_csv(p) for p in sorted(TAXI.glob("span-*/data.csv"))]
    return pa.concat_tables(tables, promote=True)


def write_span(folder: pathlib.Path, rows: int, data_format: str, seed: int = 0) -> None:
    """``rows`` rows resampled (with replacement, seeded) from the taxi rows, in ``data_format``,
    written chunk by chunk (several files: what a day of data usually is)."""
    import numpy as np
    import pyarrow.parquet as pq

    source = taxi_rows()
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, start in enumerate(range(0, rows, CHUNK_ROWS)):
        n = min(CHUNK_ROWS, rows - start)
        chunk = source.take(rng.integers(0, source.num_rows, n))
        if data_format == "csv":
            chunk.to_pandas().to_csv(folder / f"part-{i:04d}.csv", index=False)
        elif data_format == "parquet":
            pq.write_table(chunk, folder / f"part-{i:04d}.parquet")
        else:
            import tensorflow as tf

            from driftguard.components.model_io import encode_examples

            options = tf.io.TFRecordOptions(compression_type="GZIP")
            with tf.io.TFRecordWriter(str(folder / f"part-{i:04d}.tfrecord.gz"), options) as w:
                for record in encode_examples(chunk):
                    w.write(record)


def settings_for(workdir: pathlib.Path, data_root: pathlib.Path, data_format: str, beam_args: List[str]):
    from driftguard.pipeline.project import example_config

    settings = example_config("taxi")
    settings["data"]["root"] = str(data_root)
    settings["data"]["format"] = data_format
    settings["runs"] = str(workdir / "runs")
    if beam_args:
        settings["beam_args"] = list(beam_args)
    return settings


def ensure_model(workdir: pathlib.Path, beam_args: List[str]) -> None:
    from driftguard.pipeline import config as config_lib
    from driftguard.pipeline import pipeline as pipeline_lib
    from driftguard.pipeline import runner as runner_lib

    cfg = config_lib.from_dict(settings_for(workdir, TAXI, "csv", beam_args), workdir)
    if cfg.model_registry.is_dir() and any(p.name.isdigit() for p in cfg.model_registry.iterdir()):
        return
    print(f"# training version 1 on spans 1-2 in {workdir} ...", flush=True)
    result = runner_lib.run(pipeline_lib.create_pipeline(cfg, [1, 2]), cfg, "local")
    if not result.ok:
        sys.exit(f"training did not complete: {[n.node_id for n in result.failed + result.not_run]}")


def check(workdir: pathlib.Path, rows: int, data_format: str, beam_args: List[str]):
    from driftguard.pipeline import config as config_lib
    from driftguard.pipeline import pipeline as pipeline_lib
    from driftguard.pipeline import runner as runner_lib

    data_root = workdir / f"data-{data_format}-{rows}"
    if not (data_root / f"span-{CHECK_SPAN}").is_dir():
        shutil.rmtree(data_root, ignore_errors=True)
        t = time.monotonic()
        write_span(data_root / "partial", rows, data_format)
        (data_root / "partial").rename(data_root / f"span-{CHECK_SPAN}")     # complete spans only
        print(f"# wrote {rows:,} rows as {data_format} in {time.monotonic() - t:.0f} s", flush=True)
    cfg = config_lib.from_dict(settings_for(workdir, data_root, data_format, beam_args), workdir)
    pipe = pipeline_lib.create_check_pipeline(cfg, CHECK_SPAN, data_root=str(data_root))
    with TreeRss() as rss:
        t0 = time.monotonic()
        result = runner_lib.run(pipe, cfg, "local")
        wall = time.monotonic() - t0
    if not result.ok:
        sys.exit(f"check did not complete: {[n.node_id for n in result.failed + result.not_run]}")
    seconds = {n.node_id: n.seconds for n in result.nodes}
    store = runner_lib.open_store(cfg)
    peaks, cpu = {}, {}
    for n in result.nodes:
        if n.execution_id is not None:
            [e] = store.get_executions_by_id([n.execution_id])
            start, end = e.create_time_since_epoch / 1000, e.last_update_time_since_epoch / 1000
            peaks[n.node_id] = rss.peak_between(start, end)
            cpu[n.node_id] = rss.cpu_between(start, end)
    return wall, seconds, rss.peak, (peaks, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000,5000000")
    parser.add_argument("--format", choices=["parquet", "tfrecord", "csv"], default="parquet")
    parser.add_argument("--beam-arg", action="append", default=[],
                        help="a Beam pipeline argument (repeatable); default: the config's beam_args")
    parser.add_argument("--workdir", help="keeps the trained model and generated spans between runs")
    args = parser.parse_args()

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    sizes = [int(float(s)) for s in args.rows.split(",")]
    keep = args.workdir is not None
    workdir = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="dg-scale-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    start_load = os.getloadavg()
    try:
        ensure_model(workdir, args.beam_arg)
        from driftguard.pipeline import config as config_lib

        beam_args = args.beam_arg or list(config_lib.Config.beam_args)
        results = [(n, *check(workdir, n, args.format, args.beam_arg)) for n in sizes]
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    load = os.getloadavg()
    print(f"# span check, format {args.format}, beam_args {' '.join(beam_args)}")
    print(f"# {os.cpu_count()} cores, Python {platform.python_version()}, load average at the start "
          f"{start_load[0]:.1f} {start_load[1]:.1f} {start_load[2]:.1f}, at the end "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    head = f"{'rows':>10} {'wall s':>7} " + " ".join(f"{SHORT[c]:>10}" for c in COMPONENTS) + \
        f" {'rows/s':>8} {'peak RSS':>9}"
    print(head)
    print("-" * len(head))
    for n, wall, seconds, peak, _ in results:
        cells = " ".join(f"{seconds.get(c):10.1f}" if seconds.get(c) is not None else f"{'-':>10}"
                         for c in COMPONENTS)
        print(f"{n:>10,} {wall:7.0f} {cells} {n / wall:8,.0f} {peak / 2**30:7.2f} GB")
    print("# peak RSS (GB) of the process tree while each component ran")
    for n, _, _, _, (peaks, _) in results:
        cells = " ".join(f"{peaks[c] / 2**30:10.2f}" if peaks.get(c) else f"{'-':>10}" for c in COMPONENTS)
        print(f"{n:>10,} {'':7} {cells}")
    print("# CPU seconds (user + system) of the process tree while each component ran (sampled every "
          "0.2 s: less sensitive than wall time to what else runs on the machine)")
    for n, _, _, _, (_, cpu) in results:
        cells = " ".join(f"{cpu[c]:10.1f}" if c in cpu else f"{'-':>10}" for c in COMPONENTS)
        print(f"{n:>10,} {'':7} {cells}")


if __name__ == "__main__":
    main()
