"""Disk full or an unwritable runs folder while writing a report, the alert outbox or the run
state: a clear error naming the path, exit status 2, and what was there before intact.

Real OS failures, no mocks. The tests run as root here, and root ignores chmod, so the
failures come from mechanisms that bind root too:

- RLIMIT_FSIZE (``resource.setrlimit`` in the child process): a write past the limit fails
  with EFBIG "File too large" (Python ignores SIGXFSZ, so it is an error, not a kill). It acts
  like a disk that is full for new data while reads work.
- /dev/full: every write fails with ENOSPC "No space left on device".
- a runs folder whose parent is a regular file: ENOTDIR.
- chmod (read-only folder) only when not root; as root that test is skipped, saying why.
"""
from __future__ import annotations

import json
import os
import pathlib
import resource
import shutil
import stat
import subprocess
import sys

import pytest

from helpers import DATA, DRIFTGUARD, REPO, tree_digest, write_config
from driftguard.pipeline import spanfiles, state

FIXTURE_RUNS = REPO / "tests" / "reports" / "fixtures" / "runs"


def cli(*args, config=None, fsize=None, timeout=120):
    """The real CLI in a subprocess, optionally with every file it writes capped at ``fsize`` bytes."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    cmd = list(DRIFTGUARD) + (["--config", str(config)] if config else []) + [str(a) for a in args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit if fsize is not None else None)


def leftovers(folder: pathlib.Path):
    return sorted(p.name for p in folder.rglob(".*") if p.is_file() and p.name != ".driftguard.lock")


def test_report_pages_survive_a_full_disk(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    first = cli("report", runs)
    assert first.returncode == 0, first.stderr
    before = tree_digest(runs / "reports")
    assert "index.html" in before and "span-3.html" in before

    proc = cli("report", runs, "--force", fsize=10_000)        # every page is larger than 10 kB
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: cannot write {runs / 'reports'}/span-")
    assert "File too large (the previous page, if any, is unchanged)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_digest(runs / "reports") == before
    assert leftovers(runs / "reports") == []                 # no half-written temp page left behind


def test_outbox_on_a_full_disk_loses_no_alert_and_delivers_once_later(tmp_path):
    from driftguard.components.alerts import Alert, Outbox, outbox_path

    runs = tmp_path / "runs"
    box = Outbox(outbox_path(runs))
    alerts = [Alert(rule="feature_psi", severity="critical", title=f"taxi span {s}: PSI", summary="s",
                    labels={"span": str(s)}, dedup_key=f"taxi/span-{s}/feature_psi") for s in (3, 4)]
    assert box.enqueue(alerts, ["jsonl"]) == 2
    cfg = write_config(tmp_path / "c.json", runs=str(runs))

    proc = cli("alerts", "deliver", config=cfg, fsize=1024)   # the WAL's first page is 4 kB
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"error: alert outbox {outbox_path(runs)}: ")
    assert "rows committed earlier are intact" in proc.stderr and "Traceback" not in proc.stderr
    assert [(r["dedup_key"], r["state"]) for r in box.rows()] == [
        ("taxi/span-3/feature_psi", "pending"), ("taxi/span-4/feature_psi", "pending")]

    proc = cli("alerts", "deliver", config=cfg)
    assert proc.returncode == 0 and "delivered 2, failed 0" in proc.stdout, proc.stdout + proc.stderr
    again = cli("alerts", "deliver", config=cfg)
    assert "delivered 0" in again.stdout
    lines = (runs / "alerts.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["dedup_key"] for x in lines) == ["taxi/span-3/feature_psi", "taxi/span-4/feature_psi"]


def test_check_and_run_name_the_outbox_when_alerts_cannot_be_queued(tmp_path):
    """`check` and `run` queue a span's alerts through driftguard.pipeline.loop.deliver_alerts."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "alerts").write_text("a file where the outbox folder goes\n")      # ENOTDIR / EEXIST
    cfg = write_config(tmp_path / "c.json", runs=str(runs))
    code = ("import sys; from driftguard.pipeline import config, loop; from driftguard.components.alerts import Alert; "
            "cfg = config.load(sys.argv[1]); "
            "alert = Alert(rule='feature_psi', severity='critical', title='t', summary='s', labels={}, "
            "dedup_key='taxi/span-3/feature_psi'); "
            "loop.deliver_alerts(cfg, [alert.to_dict()])")
    proc = subprocess.run([sys.executable, "-c", code, str(cfg)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert f"LoopError: 1 alert(s) could not be queued: alert outbox {runs}/alerts/outbox.sqlite" \
        in proc.stderr, proc.stderr
    assert (runs / "alerts").read_text() == "a file where the outbox folder goes\n"


def test_state_file_is_kept_whole_when_the_disk_fills(tmp_path):
    """`check` records the span's fingerprint in runs/state.json before any work; on a full disk
    it fails naming the file, and the previous state.json is byte-for-byte intact."""
    data = tmp_path / "data"
    shutil.copytree(DATA / "span-1", data / "span-1")
    shutil.copytree(DATA / "span-2", data / "span-2")
    runs = tmp_path / "runs"
    rows = [{"span": s, "drift": "no drift", "outcome": "no retraining", "alert_titles": []} for s in range(3, 9)]
    state.save(runs, {"spans": rows})
    [info] = spanfiles.validate_spans(data, [2])
    state.record_fingerprints(runs, {2: info.fingerprint()}, "check")
    before = (runs / "state.json").read_bytes()
    cfg = write_config(tmp_path / "c.json", data={"root": str(data)}, runs=str(runs))

    proc = cli("check", "--span", 1, config=cfg, fsize=len(before) + 100)   # the new file is larger
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == (f"error: cannot record the span fingerprints in {runs / 'state.json'}: "
                                   f"File too large")
    assert (runs / "state.json").read_bytes() == before
    assert leftovers(runs) == []
    assert not (runs / "logs").exists()            # stopped before any work


def test_runs_folder_under_a_file_is_named(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA / "span-1", data / "span-1")
    (tmp_path / "not-a-folder").write_text("x")
    cfg = write_config(tmp_path / "c.json", data={"root": str(data)}, runs=str(tmp_path / "not-a-folder" / "runs"))
    proc = cli("check", "--span", 1, config=cfg)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: cannot lock the runs folder {tmp_path / 'not-a-folder' / 'runs'}: "
                                   f"Not a directory")


def test_alert_log_on_a_full_device_keeps_the_alert_pending(tmp_path):
    """A JSON-lines sink on /dev/full (ENOSPC): `alerts test` says which sink failed and why."""
    cfg = write_config(tmp_path / "c.json", runs=str(tmp_path / "runs"),
                       alerts={"sinks": [{"type": "jsonl", "name": "full", "path": "/dev/full"},
                                         {"type": "jsonl", "name": "ok", "path": "ok.jsonl"}]})
    proc = cli("alerts", "test", config=cfg)
    assert proc.returncode == 1
    assert "FAILED: full: cannot append to /dev/full: No space left on device" in proc.stdout, proc.stdout
    assert " ok" in proc.stdout.splitlines()[1]
    assert (tmp_path / "runs" / "ok.jsonl").read_text().count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; the RLIMIT_FSIZE, /dev/full "
                                              "and ENOTDIR tests above cover the same write paths")
def test_read_only_reports_folder(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    assert cli("report", runs).returncode == 0
    before = tree_digest(runs / "reports")
    (runs / "reports").chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        proc = cli("report", runs, "--force")
    finally:
        (runs / "reports").chmod(stat.S_IRWXU)
    assert proc.returncode == 2 and "Permission denied" in proc.stderr and str(runs / "reports") in proc.stderr
    assert tree_digest(runs / "reports") == before


def test_an_outbox_that_is_not_a_database_is_named(tmp_path):
    runs = tmp_path / "runs"
    (runs / "alerts").mkdir(parents=True)
    (runs / "alerts" / "outbox.sqlite").write_bytes(b"not an sqlite file\n" * 100)
    cfg = write_config(tmp_path / "c.json", runs=str(runs))
    for args in (("status",), ("alerts", "list")):
        proc = cli(*args, config=cfg)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip() == (f"error: alert outbox {runs}/alerts/outbox.sqlite: file is not a database; "
                                       f"move the file away to start a new outbox")
