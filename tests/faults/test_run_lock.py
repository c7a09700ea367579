"""One writer per runs folder. While a process holds the runs folder's lock, `driftguard run`,
`train` and `check` refuse at once, naming the holder's pid, host and start time, without
importing TensorFlow; once the holder is killed with SIGKILL the kernel has released the lock
and the next command goes on.

The holder is a real process that took the real lock (pipeline/runlock.py, what the CLI calls)
and then sleeps, standing in for a long `driftguard run`, so that no TFX run is needed here.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from helpers import DATA, REPO, run_cli, write_config
from driftguard.pipeline import runlock, state

HOLD = textwrap.dedent("""
    import sys, time
    from driftguard.pipeline import runlock
    runlock.acquire(sys.argv[1], "run")
    print("held", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def runs_folder(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA / "span-1", data / "span-1")
    runs = tmp_path / "runs"
    cfg = write_config(tmp_path / "c.json", data={"root": str(data)}, runs=str(runs),
                       first_spans=[1], replay_spans=[])
    return tmp_path, runs, cfg


def _hold(runs):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(runs)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


COMMANDS = [("run",), ("train", "--spans", "1"), ("check", "--span", "1")]


def test_second_command_refuses_naming_the_holder_then_proceeds_after_sigkill(runs_folder):
    root, runs, cfg = runs_folder
    holder = _hold(runs)
    try:
        info = json.loads((runs / runlock.LOCK_FILE).read_text())
        assert info["pid"] == holder.pid and info["host"] == socket.gethostname()
        for args in COMMANDS:
            proc = run_cli(*args, config=cfg, timeout=120)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert (f"error: cannot {args[0]}: runs folder {runs} is in use by `driftguard run` (pid {holder.pid} "
                    f"on host {info['host']}, started {info['started']})") in proc.stderr, proc.stderr
            assert "released the moment that process exits, even if killed" in proc.stderr
            assert not (runs / "logs").exists() and not (runs / "state.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    assert holder.returncode == -signal.SIGKILL
    # The kernel dropped the dead holder's lock: `run` takes it and goes on to its next step.
    # Here that step refuses on purpose (span 1 is recorded with other content), which shows
    # the lock was acquired without starting a TFX run in this test.
    state.record_fingerprints(runs, {1: {"sha256": "0" * 64, "files": {"data.csv": "0" * 64}, "rows": 1}}, "check")
    proc = run_cli("run", config=cfg, timeout=120)
    assert proc.returncode == 2
    assert "is in use by" not in proc.stderr
    assert "span 1 changed since this runs folder used it" in proc.stderr, proc.stderr
    assert json.loads((runs / runlock.LOCK_FILE).read_text())["pid"] != holder.pid   # the new holder wrote itself


def test_refusal_happens_before_tensorflow_is_imported(runs_folder):
    root, runs, cfg = runs_folder
    holder = _hold(runs)
    probe = textwrap.dedent("""
        import sys
        from driftguard.cli.main import main
        try:
            main(sys.argv[1:], standalone_mode=False)
        except Exception as e:
            print("refused:", type(e).__name__)
        print("tensorflow imported:", "tensorflow" in sys.modules, "tfx imported:", "tfx" in sys.modules)
    """)
    try:
        proc = subprocess.run([sys.executable, "-c", probe, "--config", str(cfg), "train", "--spans", "1"],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        holder.kill()
        holder.wait(30)
    assert "refused: DriftguardError" in proc.stdout, proc.stdout + proc.stderr
    assert "tensorflow imported: False tfx imported: False" in proc.stdout


def test_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    lock = runlock.acquire(tmp_path / "runs", "run")
    assert runlock.acquire(tmp_path / "runs", "train") is lock       # `run` calls train/check inside
    other = subprocess.run([sys.executable, "-c", "import sys; from pipeline import runlock; "
                            "runlock.acquire(sys.argv[1], 'check')", str(tmp_path / "runs")],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert other.returncode != 0 and "RunLockBusy" in other.stderr
    assert f"pid {os.getpid()}" in other.stderr
    lock.release()
    again = subprocess.run([sys.executable, "-c", "import sys; from pipeline import runlock; "
                            "runlock.acquire(sys.argv[1], 'check'); print('got it')", str(tmp_path / "runs")],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == "got it", again.stderr


def test_different_runs_folders_do_not_block_each_other(tmp_path):
    holder = _hold(tmp_path / "runs-a")
    try:
        lock = runlock.acquire(tmp_path / "runs-b", "run")
        lock.release()
    finally:
        holder.kill()
        holder.wait(30)
