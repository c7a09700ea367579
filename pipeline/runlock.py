"""One writer per runs folder: an OS lock (``fcntl.flock``) on ``<runs>/.driftguard.lock``.

``driftguard run``, ``train`` and ``check`` share the runs folder's MLMD database, pipeline
outputs, registry staging and state file; two of them at once would interleave pipeline runs
and state rows. The second one refuses at once, naming the holder.

Why flock and not a pid file: the kernel drops the lock when the holder's last descriptor of
the file closes, which happens when it exits for any reason, SIGKILL and OOM included, so a
crashed holder never leaves a stale lock and no recycled pid can pass for a live holder. The
descriptor is close-on-exec (Python's default), so programs the holder starts do not inherit
the lock; a child it forks without exec (a Beam worker pool) holds it until that child exits,
which is right: it may still be writing. The file's content (pid, host, command, start time)
only names the holder in the refusal; the lock itself is the flock. flock works on local file
systems and on NFS (Linux emulates it with NFS byte-range locks).
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import pathlib
import socket
import sys
from typing import Dict, Optional

LOCK_FILE = ".driftguard.lock"

_HELD: Dict[str, "RunLock"] = {}   # resolved runs path -> lock held by this process


class RunLockBusy(RuntimeError):
    """Another process holds the runs folder's lock."""


class RunLock:
    def __init__(self, path: pathlib.Path, fd: int, holder: Dict[str, object]):
        self.path, self.fd, self.holder = path, fd, holder

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)           # closing the last descriptor releases the flock
            self.fd = -1
        _HELD.pop(str(self.path.parent), None)


def acquire(runs_path: os.PathLike, command: str) -> RunLock:
    """Take the runs folder's lock for this process (a no-op if it already holds it), or raise
    :class:`RunLockBusy` naming the holder. Creates the runs folder if needed."""
    runs = pathlib.Path(runs_path).resolve()
    held = _HELD.get(str(runs))
    if held is not None and held.fd >= 0:
        return held
    runs.mkdir(parents=True, exist_ok=True)
    path = runs / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunLockBusy(busy_message(runs, command, read_holder(path))) from None
    except BaseException:
        os.close(fd)
        raise
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "argv": sys.argv[1:]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
    lock = RunLock(path, fd, holder)
    _HELD[str(runs)] = lock
    return lock


def read_holder(path: os.PathLike) -> Optional[Dict[str, object]]:
    """What the holder wrote into the lock file (None while it is still writing it)."""
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def busy_message(runs: pathlib.Path, command: str, holder: Optional[Dict[str, object]]) -> str:
    if holder:
        who = (f"`driftguard {holder.get('command', '?')}` (pid {holder.get('pid', '?')} on host "
               f"{holder.get('host', '?')}, started {holder.get('started', '?')})")
    else:
        who = "another driftguard process (it is just starting)"
    return (f"cannot {command}: runs folder {runs} is in use by {who}. Wait for it to finish or stop "
            f"it; the lock ({runs / LOCK_FILE}) is released the moment that process exits, even if killed")
