"""The outbox: a sqlite table of (alert, sink) deliveries, so nothing is lost or sent twice.

One row per ``(dedup_key, sink)``. ``enqueue`` inserts rows that do not exist yet (a re-run
of the same span adds nothing); ``deliver`` sends every due pending row and records the
outcome: ``delivered`` (with ``delivered_at``), or another attempt later with exponential
backoff (``backoff * 2**(attempts-1)``, capped), or ``failed`` after ``max_attempts``.

Concurrency and guarantees
--------------------------
The database runs in WAL mode; every change is one short ``BEGIN IMMEDIATE`` transaction, so
two processes (the span check and ``driftguard alerts deliver``, say) can share it. Before a
send, a row is *claimed* with a lease (``lease_until = now + timeout + margin``) in its own
transaction; a second process skips leased rows, so the two never send the same row at the
same time. The send and the "delivered" mark are two steps: a crash between them leaves the
row pending with an expired lease and it is sent again once — delivery is **at-least-once per
sink**. Webhook receivers dedupe on the ``dedup_key`` field; Alertmanager dedupes on labels.

A database that cannot be written (disk full, read-only folder, file size limit) raises
:class:`OutboxError` naming the file; sqlite's journal keeps every committed row intact, so
nothing queued earlier is lost and the failed change is simply not there.

Retrying is hand-written rather than tenacity's: tenacity retries inside one process with
sleeps, while these retries must survive the process and happen on a later run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import pathlib
import sqlite3
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from driftguard.components.alerts.alert import Alert, severity_rank, utc_now_iso
from driftguard.components.alerts.sinks import DeliveryError, Sink, build_sinks

log = logging.getLogger(__name__)

STATES = ("pending", "delivered", "failed")
_LEASE_MARGIN = 30.0      # seconds beyond the send timeout before another process may retry
_MAX_ERROR = 500          # characters of last_error kept

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY,
    dedup_key       TEXT NOT NULL,
    sink            TEXT NOT NULL,
    rule            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    title           TEXT NOT NULL,
    alert_json      TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    next_attempt_at REAL NOT NULL,
    lease_until     REAL,
    last_attempt_at TEXT,
    delivered_at    TEXT,
    last_error      TEXT,
    UNIQUE (dedup_key, sink)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
"""

Now = Union[None, float, datetime.datetime]


def outbox_path(runs_dir: Union[str, pathlib.Path]) -> pathlib.Path:
    """Where the outbox of a runs folder lives: ``<runs>/alerts/outbox.sqlite``."""
    return pathlib.Path(runs_dir) / "alerts" / "outbox.sqlite"


class OutboxError(Exception):
    """The outbox database cannot be opened, read or written; the message names the file."""


@dataclasses.dataclass(frozen=True)
class DeliveryResult:
    """What one ``deliver`` pass did. ``errors`` holds secret-free messages."""

    delivered: int = 0
    failed: int = 0            # attempts that failed in this pass (row retried later or given up)
    gave_up: int = 0           # rows that reached max_attempts in this pass (state 'failed')
    deferred: int = 0          # due rows not tried: their sink already failed in this pass, or unknown sink
    pending: int = 0           # rows still pending after the pass
    errors: tuple = ()         # (dedup_key, sink, message)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.deferred == 0


def _epoch(now: Now) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime.datetime):
        return now.timestamp()
    return float(now)


def _iso(epoch: float) -> str:
    return utc_now_iso(datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc))


class Outbox:
    """The outbox at ``path`` (created with its folder on first use)."""

    def __init__(self, path: Union[str, pathlib.Path]):
        self.path = pathlib.Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutboxError(f"alert outbox {self.path}: cannot create its folder: {e.strerror or e}") from None
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # autocommit mode; transactions are explicit (BEGIN IMMEDIATE takes the write lock up
        # front, so two writers queue on busy_timeout instead of failing on upgrade).
        try:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise OutboxError(f"alert outbox {self.path}: cannot open: {e}") from None
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=FULL")   # an outbox row must survive power loss
            yield db
        except sqlite3.OperationalError as e:     # I/O error, disk full, read-only, locked
            raise OutboxError(f"alert outbox {self.path}: {e} (rows committed earlier are intact)") from None
        except sqlite3.Error as e:                # not a database, corrupt
            raise OutboxError(f"alert outbox {self.path}: {e}; move the file away to start a new "
                              f"outbox") from None
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:     # sqlite already rolled back (e.g. after a failed write)
                    pass
                raise
            db.execute("COMMIT")

    def enqueue(self, alerts: Sequence[Alert], sink_names: Sequence[str], now: Now = None) -> int:
        """Add one pending row per (alert, sink) not seen before; return how many were new."""
        t = _epoch(now)
        rows = [(a.dedup_key, s, a.rule, a.severity, a.title, json.dumps(a.to_dict(), sort_keys=True),
                 _iso(t), t) for a in alerts for s in sink_names]
        if not rows:
            return 0
        with self._transaction() as db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO outbox (dedup_key, sink, rule, severity, title, alert_json, "
                           "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            return db.total_changes - before

    def deliver(self, sinks: Mapping[str, Sink], timeout: float, max_attempts: int, backoff_seconds: float,
                now: Now = None, max_backoff_seconds: float = 3600.0) -> DeliveryResult:
        """Send every due pending row once. A sink that fails is not tried again in this pass
        (its other rows are deferred, not charged an attempt), so one dead receiver costs at
        most one timeout per pass."""
        fixed_now = now is not None
        t = _epoch(now)
        with self._connect() as db:
            due = db.execute("SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? "
                             "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at, id",
                             (t, t)).fetchall()
        delivered = failed = gave_up = deferred = 0
        errors: List[tuple] = []
        broken: Dict[str, str] = {}
        for (row_id,) in due:
            t = t if fixed_now else time.time()
            row = self._claim(row_id, t, timeout + _LEASE_MARGIN)
            if row is None:           # delivered, or claimed by another process meanwhile
                continue
            sink = sinks.get(row["sink"])
            if sink is None or row["sink"] in broken:
                self._release(row_id)
                deferred += 1
                if sink is None:
                    log.warning("outbox row %s: sink %r is not configured; left pending", row_id, row["sink"])
                continue
            alert = Alert.from_dict(json.loads(row["alert_json"]))
            try:
                sink.send(alert, timeout)
            except DeliveryError as e:
                message = str(e)[:_MAX_ERROR]
            except Exception as e:  # a bug in a sink must not lose the row; the type alone is secret-free
                message = f"{row['sink']}: unexpected {type(e).__name__}"
                log.exception("outbox row %s: sink %s raised", row_id, row["sink"])
            else:
                self._mark_delivered(row_id, t if fixed_now else time.time())
                delivered += 1
                log.info("delivered %s to %s", alert.dedup_key, row["sink"])
                continue
            attempts = row["attempts"] + 1
            done = attempts >= max_attempts
            delay = min(backoff_seconds * 2 ** (attempts - 1), max_backoff_seconds)
            self._mark_failed(row_id, attempts, t + delay, message, done, t)
            failed += 1
            gave_up += int(done)
            broken[row["sink"]] = message
            errors.append((row["dedup_key"], row["sink"], message))
            log.warning("delivery of %s to %s failed (attempt %d of %d%s): %s", row["dedup_key"], row["sink"],
                        attempts, max_attempts, ", giving up" if done else f", retry in {delay:.0f} s", message)
        with self._connect() as db:
            pending = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
        return DeliveryResult(delivered, failed, gave_up, deferred, pending, tuple(errors))

    def _claim(self, row_id: int, t: float, lease: float) -> Optional[sqlite3.Row]:
        with self._transaction() as db:
            row = db.execute("SELECT * FROM outbox WHERE id = ? AND state = 'pending' "
                             "AND (lease_until IS NULL OR lease_until <= ?)", (row_id, t)).fetchone()
            if row is not None:
                db.execute("UPDATE outbox SET lease_until = ? WHERE id = ?", (t + lease, row_id))
            return row

    def _release(self, row_id: int) -> None:
        with self._transaction() as db:
            db.execute("UPDATE outbox SET lease_until = NULL WHERE id = ?", (row_id,))

    def _mark_delivered(self, row_id: int, t: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE outbox SET state = 'delivered', delivered_at = ?, last_attempt_at = ?, "
                       "attempts = attempts + 1, lease_until = NULL WHERE id = ?", (_iso(t), _iso(t), row_id))

    def _mark_failed(self, row_id: int, attempts: int, next_at: float, error: str, give_up: bool, t: float) -> None:
        with self._transaction() as db:
            db.execute("UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, state = ?, "
                       "last_attempt_at = ?, lease_until = NULL WHERE id = ?",
                       (attempts, next_at, error, "failed" if give_up else "pending", _iso(t), row_id))

    def rows(self, state: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every row (oldest first) as a dict, optionally only one state; no alert JSON."""
        if state is not None and state not in STATES:
            raise ValueError(f"unknown state {state!r}; known: {', '.join(STATES)}")
        query = ("SELECT id, dedup_key, sink, rule, severity, title, state, attempts, created_at, "
                 "next_attempt_at, last_attempt_at, delivered_at, last_error FROM outbox")
        args: tuple = ()
        if state is not None:
            query += " WHERE state = ?"
            args = (state,)
        with self._connect() as db:
            out = [dict(r) for r in db.execute(query + " ORDER BY id", args)]
        for r in out:
            r["next_attempt_at"] = _iso(r["next_attempt_at"]) if r["state"] == "pending" else None
        return out

    def alert(self, row_id: int) -> Alert:
        with self._connect() as db:
            row = db.execute("SELECT alert_json FROM outbox WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            raise KeyError(row_id)
        return Alert.from_dict(json.loads(row[0]))


def send_alerts(config, alerts: Sequence[Alert], runs_dir: Union[str, pathlib.Path],
                now: Now = None) -> DeliveryResult:
    """Enqueue each alert for every sink whose ``min_severity`` it meets, then deliver every
    due row (older pending ones included). Relative sink paths resolve against ``runs_dir``."""
    runs_dir = pathlib.Path(runs_dir)
    outbox = Outbox(outbox_path(runs_dir))
    for sink_config in config.sinks:
        floor = severity_rank(sink_config.min_severity)
        chosen = [a for a in alerts if severity_rank(a.severity) >= floor]
        if chosen:
            outbox.enqueue(chosen, [sink_config.name], now=now)
    d = config.delivery
    return outbox.deliver(build_sinks(config, runs_dir), timeout=d.timeout_seconds, max_attempts=d.max_attempts,
                          backoff_seconds=d.backoff_seconds, max_backoff_seconds=d.max_backoff_seconds, now=now)
