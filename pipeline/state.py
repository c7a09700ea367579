"""What `driftguard run` has done so far: ``runs/state.json`` (one row per span replayed),
the spans `driftguard check` checked (``checks``: kept apart, since a check does not act on the
gate's decision and `run` must still replay such a span), which of the two checked a span last,
and the fingerprint of every span this runs folder used (``span_fingerprints``).

Written atomically (temp file + fsync + rename) after every span, so a crash loses at most the
span being checked, which the next run checks again (its alerts are deduplicated by the outbox),
and a failed write (disk full, read-only folder) leaves the previous file whole.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import tempfile
from typing import Any, Dict, List, Optional

STATE_FILE = "state.json"
CHECKS = "checks"                   # rows of `driftguard check`, the newest last
LAST_CHECKED_BY = "last_checked_by"  # "run" or "check": whose rows end with the span checked last


def _path(runs: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(runs) / STATE_FILE


def load(runs: pathlib.Path) -> Dict[str, Any]:
    path = _path(runs)
    if not path.is_file():
        return {"spans": []}
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); move it away to start the replay over") from None
    if not isinstance(data, dict) or not isinstance(data.get("spans"), list):
        raise ValueError(f"{path} does not hold a driftguard run state (no 'spans' list)")
    return data


def save(runs: pathlib.Path, data: Dict[str, Any]) -> None:
    path = _path(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=1, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise


def record_span(runs: pathlib.Path, row: Dict[str, Any]) -> None:
    """A span `driftguard run` replayed (replacing an earlier row of the same span)."""
    data = load(runs)
    data["spans"] = [r for r in data["spans"] if r.get("span") != row["span"]] + [row]
    data[LAST_CHECKED_BY] = "run"
    save(runs, data)


def record_check(runs: pathlib.Path, row: Dict[str, Any]) -> None:
    """A span `driftguard check` checked (replacing an earlier check of the same span)."""
    data = load(runs)
    data[CHECKS] = [r for r in data.get(CHECKS) or [] if r.get("span") != row["span"]] + [row]
    data[LAST_CHECKED_BY] = "check"
    save(runs, data)


def checked_spans(runs: pathlib.Path) -> List[int]:
    """The spans `driftguard run` replayed (not those only `driftguard check` checked)."""
    return [int(r["span"]) for r in load(runs)["spans"]]


def last_row(runs: pathlib.Path) -> Optional[Dict[str, Any]]:
    """The row of the span checked last, by `driftguard run` or `driftguard check`."""
    data = load(runs)
    rows = (data.get(CHECKS) or []) if data.get(LAST_CHECKED_BY) == "check" else data["spans"]
    return rows[-1] if rows else None


FINGERPRINTS = "span_fingerprints"


def span_fingerprints(runs: pathlib.Path) -> Dict[str, Dict[str, Any]]:
    """{"<span>": {"sha256", "files", "rows", "recorded_at", "command"}} of the spans used here."""
    return dict(load(runs).get(FINGERPRINTS) or {})


def record_fingerprints(runs: pathlib.Path, fingerprints: Dict[int, Dict[str, Any]], command: str) -> None:
    """Remember the fingerprint of spans used for the first time (a known span keeps its first)."""
    data = load(runs)
    known = dict(data.get(FINGERPRINTS) or {})
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    new = {str(s): {**fp, "recorded_at": stamp, "command": command}
           for s, fp in fingerprints.items() if str(s) not in known}
    if not new:
        return
    data[FINGERPRINTS] = {**known, **new}
    save(runs, data)
