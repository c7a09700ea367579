"""Predictions and delayed labels waiting for each other, joined on request ids, and the journal
that makes them survive a restart.

A pending prediction is request id -> (probability, version); a pending label is request id ->
(label, the label's number in read order); a recent join is request id -> (version, label, prediction) (the
ids joined lately, so that a second label or a second prediction for one of them is told apart
from a first: the monitor counts those duplicates and reused ids instead of leaving them to wait
for a partner that never comes; a journal written before the label was kept replays it as NaN).

One id, several versions: under a shadow rollout the champion's and the challenger's
predictions for a request carry the same id. The first version's prediction waits under the id
itself, another version's under :func:`version_key` (id and version), and one label joins them
all.

:class:`PendingSet` keeps the ids in a dict, in arrival order (the oldest expires first), each
mapped to a slot of parallel numpy arrays, one per field: a batch of joins is one ``dict.pop``
per id plus one fancy-indexing call per field, with no Python object per value.

Each commit appends one journal entry per set: the batch's operations in order (op 1 = add or
replace and move to the end, 0 = remove), as an Arrow IPC table (``op``, ``request_id`` and
one column per field), so replaying the journal rebuilds the set exactly, in its order. One
sqlite row per record (insert at one commit, delete at the next) cost 4-7 us per record; an
entry costs ~0.1-0.2 us per operation. When the journal holds many more operations than the
set has entries, the commit writes the whole set instead (a snapshot) and drops the rest.
"""
from __future__ import annotations

import itertools
import operator
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from driftguard.monitoring.store import table_bytes, table_columns

# field name, dtype, value written for a removal (op 0) in the journal
Fields = Tuple[Tuple[str, Any, Any], ...]
PREDICTION_FIELDS: Fields = (("probability", np.float64, np.nan), ("version", np.int64, -1))
LABEL_FIELDS: Fields = (("label", np.float64, np.nan), ("read", np.int64, -1))
JOINED_FIELDS: Fields = (("version", np.int64, -1), ("label", np.float64, np.nan), ("probability", np.float64, np.nan))
SNAPSHOT_SLACK = 100_000           # journal operations allowed beyond twice the set's size
_COMPACT_SLACK = 4096              # dead slots allowed beyond the live ones before compacting

# One batch of operations: (1, ids, {field: values}) adds, (0, ids, None) removes.
Op = Tuple[int, List[str], Optional[Mapping[str, np.ndarray]]]


def version_key(request_id: str, version: int) -> str:
    """The key of a prediction of ``version`` for an id another version predicted first."""
    return f"{request_id}\x1fv{version}"


def pick(items: List[Any], mask: np.ndarray) -> List[Any]:
    """The items where ``mask`` is true (the list itself when all are)."""
    return items if mask.all() else [items[i] for i in np.flatnonzero(mask).tolist()]


def with_id(ids: List[Optional[str]]) -> np.ndarray:
    """Which of ``ids`` are not None (a record or label without a request id joins nothing)."""
    return np.fromiter(map(operator.is_not, ids, itertools.repeat(None)), dtype=bool, count=len(ids))


def first_occurrences(ids: List[Optional[str]]) -> np.ndarray:
    """Which of ``ids`` are the first of their value in ``ids`` (a later repeat is False)."""
    n = len(ids)
    firsts = dict(zip(reversed(ids), range(n - 1, -1, -1)))     # the last write for a key is its first index
    if len(firsts) == n:
        return np.ones(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    mask[np.fromiter(firsts.values(), dtype=np.int64, count=len(firsts))] = True
    return mask


def journal_bytes(fields: Fields, ops: Sequence[Op]) -> bytes:
    """One journal entry: ``ops`` in order, as an Arrow IPC table."""
    kinds: List[np.ndarray] = [np.zeros(0, np.int8)]
    ids: List[str] = []
    columns: Dict[str, List[np.ndarray]] = {name: [np.zeros(0, dtype)] for name, dtype, _ in fields}
    for op, op_ids, values in ops:
        n = len(op_ids)
        kinds.append(np.full(n, op, np.int8))
        ids.extend(op_ids)
        for name, dtype, fill in fields:
            given = op and name in values
            columns[name].append(np.asarray(values[name], dtype=dtype) if given else np.full(n, fill, dtype))
    return table_bytes({"op": np.concatenate(kinds), "request_id": ids,
                        **{name: np.concatenate(parts) for name, parts in columns.items()}})


class PendingSet:
    """Request id -> one row of ``fields``, in arrival order, with the operations since the last
    commit (``ops``) and the number of operations the committed journal holds
    (``journal_rows``)."""

    def __init__(self, fields: Fields):
        self.fields = fields
        self._slots: Dict[str, int] = {}
        self._columns = {name: np.empty(0, dtype) for name, dtype, _ in fields}
        self._used = 0                 # slots written so far (live or dead)
        self.ops: List[Op] = []
        self.journal_rows = 0

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, request_id: str) -> bool:
        return request_id in self._slots

    def holds(self, ids: List[Optional[str]]) -> np.ndarray:
        """Which of ``ids`` are waiting here (None never is)."""
        return np.fromiter(map(self._slots.__contains__, ids), dtype=bool, count=len(ids))

    def ids(self) -> List[str]:
        return list(self._slots)

    def rows(self) -> Iterator[Tuple[str, Tuple[Any, ...]]]:
        """(request id, field values) in order: for tests and inspection."""
        columns = self.columns()
        names = [name for name, _, _ in self.fields]
        for i, rid in enumerate(self._slots):
            yield rid, tuple(columns[name][i].item() for name in names)

    def columns(self) -> Dict[str, np.ndarray]:
        """Every field's values, in the ids' order."""
        slots = np.fromiter(self._slots.values(), dtype=np.int64, count=len(self._slots))
        return {name: values[slots] for name, values in self._columns.items()}

    def peek(self, ids: List[Optional[str]]) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """Like :meth:`take`, without removing anything."""
        hits = list(map(self._slots.get, ids))
        found = with_id(hits)
        slots = np.fromiter(pick(hits, found), dtype=np.int64, count=int(found.sum()))
        return found, {name: values[slots] for name, values in self._columns.items()}

    # -- changes (each recorded in ``ops`` for the next commit)

    def take(self, ids: List[Optional[str]]) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """Remove the ``ids`` waiting here: which were there, and their fields' values, in
        order. dict.pop mapped over the batch keeps the per-id work in C (a Python loop cost
        ~1-2 us per id); None ids never match."""
        hits = list(map(self._slots.pop, ids, itertools.repeat(None)))
        found = with_id(hits)
        if not found.any():
            return found, {name: values[:0] for name, values in self._columns.items()}
        self.ops.append((0, pick(ids, found), None))
        slots = np.fromiter(pick(hits, found), dtype=np.int64, count=int(found.sum()))
        return found, {name: values[slots] for name, values in self._columns.items()}

    def add(self, ids: List[str], columns: Mapping[str, np.ndarray]) -> None:
        """Add ``ids`` with their ``columns`` values at the end, in order; an id already here
        is replaced and moves to the end (by its last occurrence)."""
        self._store(ids, columns)
        self.ops.append((1, ids, columns))

    def expire(self, keep: int) -> int:
        """Drop the oldest entries beyond ``keep``; returns how many."""
        excess = len(self._slots) - keep
        if excess <= 0:
            return 0
        old = list(itertools.islice(iter(self._slots), excess))
        for rid in old:
            del self._slots[rid]
        self.ops.append((0, old, None))
        return excess

    def _store(self, ids: List[str], columns: Mapping[str, np.ndarray]) -> None:
        n = len(ids)
        first = self._append(columns, n)
        size = len(self._slots)
        self._slots.update(zip(ids, range(first, first + n)))
        if len(self._slots) != size + n:        # an id seen again (a client retrying): update() kept
            for rid in list(dict.fromkeys(reversed(ids)))[::-1]:    # its old place; move the ids to
                self._slots[rid] = self._slots.pop(rid)             # the end, by last occurrence

    def _append(self, columns: Mapping[str, np.ndarray], n: int) -> int:
        """Write ``n`` rows of ``columns`` into fresh slots; returns the first one."""
        if self._used + n > len(next(iter(self._columns.values()))):
            self._compact(n)
        first = self._used
        for name, dtype, fill in self.fields:      # a field an older journal lacks: its fill value
            self._columns[name][first:first + n] = np.asarray(columns[name], dtype=dtype) if name in columns else fill
        self._used += n
        return first

    def _compact(self, room: int) -> None:
        """Keep only the live slots (renumbered in order), with room for ``room`` more."""
        live = np.fromiter(self._slots.values(), dtype=np.int64, count=len(self._slots))
        capacity = max(2 * (live.size + room), live.size + room + _COMPACT_SLACK)
        for name, values in self._columns.items():
            grown = np.empty(capacity, values.dtype)
            grown[:live.size] = values[live]
            self._columns[name] = grown
        self._slots = dict(zip(self._slots, range(live.size)))
        self._used = live.size

    # -- the journal

    def journal_entry(self) -> Optional[Tuple[bool, int, bytes]]:
        """What the next commit writes: (snapshot: replaces the set's entries, number of
        operations, entry), or None when nothing changed."""
        n = sum(len(ids) for _, ids, _ in self.ops)
        if not n:
            return None
        if self.journal_rows + n > 2 * len(self) + SNAPSHOT_SLACK:
            return True, len(self), journal_bytes(self.fields, [(1, self.ids(), self.columns())])
        return False, n, journal_bytes(self.fields, self.ops)

    def committed(self, entry: Optional[Tuple[bool, int, bytes]]) -> None:
        """``entry`` (from :meth:`journal_entry`) is in the store: start a new batch."""
        if entry is not None:
            snapshot, n, _ = entry
            self.journal_rows = n if snapshot else self.journal_rows + n
        self.ops = []

    @classmethod
    def replay(cls, fields: Fields, entries: Sequence[bytes], journal_rows: int) -> "PendingSet":
        """The set the committed journal ``entries`` (oldest first) describe."""
        pending = cls(fields)
        for data in entries:
            entry = table_columns(data)
            ids = entry["request_id"].tolist()
            first = pending._append(entry, len(ids))      # removals' rows too: dead slots
            slots = pending._slots
            for op, rid, slot in zip(entry["op"].tolist(), ids, range(first, first + len(ids))):
                slots.pop(rid, None)
                if op:
                    slots[rid] = slot
        pending._compact(0)
        pending.journal_rows = journal_rows
        return pending
