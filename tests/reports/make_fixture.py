"""Regenerate tests/reports/fixtures/runs from a real `driftguard run` (run by hand).

    .venv/bin/python tests/reports/make_fixture.py /path/to/runs

Keeps only what the reports and notebooks read (JSON reports, MLMD, statistics, anomalies,
TFMA evaluations, prediction logs, registry profiles), no SavedModel and no examples: < 2 MB.
Absolute paths are rewritten to /driftguard-fixture/runs, which exists nowhere, so the tests
also prove the reports find everything in a moved runs folder.
"""
from __future__ import annotations

import pathlib
import re
import shutil
import sqlite3
import sys

HERE = pathlib.Path(__file__).resolve().parent
TARGET = HERE / "fixtures" / "runs"
NEUTRAL = "/driftguard-fixture/runs"
KEEP = [
    r"^state\.json$", r"^alerts\.jsonl$", r"^metadata\.sqlite$",
    r"^pipelines/[^/]+-check/(DriftDetector|PredictionMonitor|RetrainGate)/[^/]+/\d+/(report|monitor|decision)\.json$",
    r"^pipelines/[^/]+-check/PredictionMonitor/[^/]+/\d+/prediction_logs/",
    r"^pipelines/[^/]+-check/StatisticsGen/[^/]+/\d+/Split-[^/]+/FeatureStats\.pb$",
    r"^pipelines/[^/]+-check/ExampleValidator/anomalies/\d+/",
    r"^pipelines/[^/]+-training/Evaluator/",
    r"^serving/[^/]+/(\d+|\.pending/c\d+|\.rejected/c\d+)/profile/(profile\.json|eval_metrics\.json|schema\.pbtxt|training_statistics/)",
]


_ROOT = re.compile(r"/[^\"\s]*?/runs(?=/(pipelines|serving|alerts)\b)")


def _neutral(text: str) -> str:
    """Any absolute runs folder (the run may itself have been a copy) -> NEUTRAL."""
    return _ROOT.sub(NEUTRAL, text) if text else text


def main(source: str) -> None:
    src = pathlib.Path(source).resolve()
    if TARGET.exists():
        shutil.rmtree(TARGET)
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src).as_posix()
        if p.is_file() and any(re.search(k, rel) for k in KEEP):
            (TARGET / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, TARGET / rel)
    for p in TARGET.rglob("*.json*"):
        p.write_text(_neutral(p.read_text(encoding="utf-8")), encoding="utf-8")
    con = sqlite3.connect(TARGET / "metadata.sqlite")
    con.create_function("neutral", 1, _neutral)
    with con:
        con.execute("UPDATE Artifact SET uri = neutral(uri)")
    con.execute("VACUUM")
    con.close()
    size = sum(p.stat().st_size for p in TARGET.rglob("*") if p.is_file())
    print(f"{TARGET}: {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main(sys.argv[1])
