"""The monitor's state: one sqlite file (``<runs>/monitor/<model>/state.sqlite``) written in one
transaction per batch, so a crash (even SIGKILL) loses the uncommitted batch only.

Tables: ``meta`` (JSON values: log position, label file positions, counters, each model
version's window state and detector states, the retrain decision, ...), ``blobs`` (each
version's label window rows), ``window_chunks`` (each version's unfinished windows' rows,
appended batch by batch and trimmed to the rows still needed; ``version`` says whose) and
``pending_journal`` (the journals of the pending predictions, pending labels and recently
joined ids: ``monitoring/pending.py``). Rows are stored as Arrow IPC tables
(:func:`table_bytes`, :func:`table_columns`).

Format 3 keeps windows per model version; a format 2 file (one serving version's windows) is
upgraded when opened (:meth:`StateStore.upgrade_chunks`, then the monitor's restore).
"""
from __future__ import annotations

import io
import json
import pathlib
import sqlite3
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

STATE_FORMAT = 3                 # what ``meta.format`` says; 2 is upgraded, any other is refused
UPGRADABLE_FORMATS = (2,)
STATE_FILE = "state.sqlite"


def state_dir(cfg) -> pathlib.Path:
    return cfg.runs_path / "monitor" / cfg.model_name


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS window_chunks (first_row INTEGER PRIMARY KEY, last_row INTEGER NOT NULL,
    data BLOB NOT NULL, version INTEGER);
CREATE TABLE IF NOT EXISTS pending_journal (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, rows INTEGER NOT NULL,
    data BLOB NOT NULL);
"""


class StateStore:
    """The monitor's sqlite file. One :meth:`commit` per batch writes everything at once."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        # Most of what a commit writes is blobs (window rows, journal entries: ~100 bytes per
        # record). With sqlite's defaults (4 KiB pages, a checkpoint every 4 MiB of WAL, each
        # with an fsync) writing them cost ~20 ms per MB here; 64 KiB pages and a 64 MiB WAL
        # ~7 ms (benchmarks/serving_monitor.py). The page size only applies to a new file.
        self.db.execute("PRAGMA page_size=65536")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")   # durable across process crashes (WAL)
        page = self.db.execute("PRAGMA page_size").fetchone()[0]
        self.db.execute(f"PRAGMA wal_autocheckpoint={max(1000, (64 << 20) // page)}")
        self.db.execute(f"PRAGMA journal_size_limit={64 << 20}")
        self.db.executescript(_SCHEMA)

    def meta(self) -> Dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def blob(self, key: str) -> Optional[bytes]:
        row = self.db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def window_chunks(self) -> List[Tuple[Optional[int], bytes]]:
        """(model version, rows) of the unfinished windows, in record order."""
        return [(r[0], bytes(r[1]))
                for r in self.db.execute("SELECT version, data FROM window_chunks ORDER BY first_row")]

    def upgrade_chunks(self, version: int) -> None:
        """A format 2 file: its ``window_chunks`` (no ``version`` column) are the rows of its one
        serving ``version``. Idempotent, so a crash before the next commit only repeats it."""
        columns = [r[1] for r in self.db.execute("PRAGMA table_info(window_chunks)")]
        if "version" not in columns:
            self.db.execute("ALTER TABLE window_chunks ADD COLUMN version INTEGER")
        self.db.execute("UPDATE window_chunks SET version = ? WHERE version IS NULL", (version,))

    def journal(self, kind: str) -> Tuple[List[bytes], int]:
        """The committed journal entries of the pending set ``kind`` ("predictions" or
        "labels"), oldest first, and the number of operations they hold."""
        rows = self.db.execute("SELECT rows, data FROM pending_journal WHERE kind = ? ORDER BY id", (kind,)).fetchall()
        return [bytes(r[1]) for r in rows], sum(r[0] for r in rows)

    def commit(self, meta: Mapping[str, Any], blobs: Mapping[str, bytes],
               journal: Mapping[str, Tuple[bool, int, bytes]] = {},
               chunks: Tuple[Mapping[int, Optional[int]], Sequence[Tuple[int, int, int, bytes]]] = ({}, ())) -> None:
        """One transaction. ``journal``: kind -> (snapshot: replaces the kind's entries, number of
        operations, entry); ``chunks`` = (version -> drop its chunks ending before this row, all
        of them when None; new chunks as (first row, last row, version, rows))."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [(k, json.dumps(v, sort_keys=True)) for k, v in meta.items()])
            db.executemany("INSERT OR REPLACE INTO blobs (key, value) VALUES (?, ?)", list(blobs.items()))
            drops, new = chunks
            for version, before in drops.items():
                if before is None:
                    db.execute("DELETE FROM window_chunks WHERE version = ?", (version,))
                else:
                    db.execute("DELETE FROM window_chunks WHERE version = ? AND last_row < ?", (version, before))
            db.executemany("INSERT OR REPLACE INTO window_chunks (first_row, last_row, version, data) "
                           "VALUES (?, ?, ?, ?)", new)
            for kind, (snapshot, n, data) in journal.items():
                if snapshot:
                    db.execute("DELETE FROM pending_journal WHERE kind = ?", (kind,))
                db.execute("INSERT INTO pending_journal (kind, rows, data) VALUES (?, ?, ?)", (kind, n, data))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


def table_bytes(columns: Mapping[str, Union[np.ndarray, List[str]]]) -> bytes:
    """Columns (numpy arrays; object arrays or lists of str for text) as an Arrow IPC file."""
    import pyarrow as pa

    arrays, names = [], []
    for name, values in columns.items():
        if isinstance(values, list):
            arrays.append(pa.array(values, type=pa.string()))
        elif values.dtype == object:
            arrays.append(pa.array(values.tolist(), type=pa.string()))
        else:
            arrays.append(pa.array(values))
        names.append(name)
    sink = io.BytesIO()
    table = pa.Table.from_arrays(arrays, names=names)
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def table_columns(data: Optional[bytes]) -> Dict[str, np.ndarray]:
    if not data:
        return {}
    import pyarrow as pa

    table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_string(col.type):
            values = np.empty(len(col), dtype=object)
            values[:] = col.to_pylist()
            out[name] = values
        else:
            out[name] = col.to_numpy()
    return out
