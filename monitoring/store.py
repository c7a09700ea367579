"""The monitor's state: one sqlite file (``<runs>/monitor/<model>/state.sqlite``) written in one
transaction per batch, so a crash (even SIGKILL) loses the uncommitted batch only.

Tables: ``meta`` (JSON values: log position, label file positions, counters, the serving
version and its window origin, detector states, the retrain decision, ...), ``blobs`` (the
label window's rows), ``window_chunks`` (the unfinished windows' rows, appended batch by batch
and trimmed to the rows still needed) and ``pending_journal`` (the pending predictions' and
labels' journal: ``monitoring/pending.py``). Rows are stored as Arrow IPC tables
(:func:`table_bytes`, :func:`table_columns`).
"""
from __future__ import annotations

import io
import json
import pathlib
import sqlite3
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

STATE_FORMAT = 2                 # what ``meta.format`` says; a state file of another format is refused
STATE_FILE = "state.sqlite"


def state_dir(cfg) -> pathlib.Path:
    return cfg.runs_path / "monitor" / cfg.model_name


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS window_chunks (first_row INTEGER PRIMARY KEY, last_row INTEGER NOT NULL,
    data BLOB NOT NULL);
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

    def window_chunks(self) -> List[bytes]:
        return [bytes(r[0]) for r in self.db.execute("SELECT data FROM window_chunks ORDER BY first_row")]

    def journal(self, kind: str) -> Tuple[List[bytes], int]:
        """The committed journal entries of the pending set ``kind`` ("predictions" or
        "labels"), oldest first, and the number of operations they hold."""
        rows = self.db.execute("SELECT rows, data FROM pending_journal WHERE kind = ? ORDER BY id", (kind,)).fetchall()
        return [bytes(r[1]) for r in rows], sum(r[0] for r in rows)

    def commit(self, meta: Mapping[str, Any], blobs: Mapping[str, bytes],
               journal: Mapping[str, Tuple[bool, int, bytes]] = {},
               chunks: Tuple[bool, Optional[int], Sequence[Tuple[int, int, bytes]]] = (False, None, ())) -> None:
        """One transaction. ``journal``: kind -> (snapshot: replaces the kind's entries, number of
        operations, entry); ``chunks`` = (drop all, drop those ending before this row, new ones)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [(k, json.dumps(v, sort_keys=True)) for k, v in meta.items()])
            db.executemany("INSERT OR REPLACE INTO blobs (key, value) VALUES (?, ?)", list(blobs.items()))
            clear, before, new = chunks
            if clear:
                db.execute("DELETE FROM window_chunks")
            elif before is not None:
                db.execute("DELETE FROM window_chunks WHERE last_row < ?", (before,))
            db.executemany("INSERT OR REPLACE INTO window_chunks (first_row, last_row, data) VALUES (?, ?, ?)", new)
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
