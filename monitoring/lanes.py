"""Each model version's windows ("lanes"): the records a version answered go to that version's
windows only, whatever the other versions answered in between.

Requests pinned to an older version (``/versions/1``) while another serves interleave the two
versions in the log. One lane per version keeps them apart: a lane numbers its own records
(``seq`` 0, 1, ...), cuts its windows by that number (``window`` records, then every ``step``),
and keeps its own unfinished window rows, streaming detectors, false-alarm budget and window of
joined labels. A window's alert scope stays ``live/w<first>-<last>``, by the global record
numbers of its first and last records (each record is in one lane only, so two windows never
share a scope).

The *serving* version (the snapshot's ``version``, the metrics' ``serving_version``, the retrain
trigger's debounce key) is the registry's ``champion`` once it has a lane (``Monitor._serving_version``:
under a shadow rollout both versions answer every request), else the one that answered most records in the last complete block of
``window`` records (record numbers ``k * window`` .. ``(k+1) * window - 1``; before the first
block completes, so far); ties go to the newer version. Counting by fixed blocks makes the
choice the same however the log is cut into batches and restarts.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional

import numpy as np


@dataclasses.dataclass
class Lane:
    """One model version's window state. ``buffer`` (the unfinished windows' rows, with their
    global ``row`` and lane ``seq`` numbers) and ``label_buffer`` are stored apart from the
    rest (:meth:`meta`): the former in ``window_chunks``, the latter as a blob."""

    version: int
    records: int = 0                   # this version's records so far: the next one's seq
    next_end: int = 0                  # seq one past the last record of the next window
    last_row: int = -1                 # global number of its latest record
    block: List[int] = dataclasses.field(default_factory=lambda: [0, 0, 0])  # [block, in it, in the one before]
    detectors: Dict[str, Any] = dataclasses.field(default_factory=dict)    # stream -> StreamDetector
    detectors_off: Dict[str, str] = dataclasses.field(default_factory=dict)
    budget: Dict[str, Any] = dataclasses.field(default_factory=dict)
    last_window: Dict[str, Any] = dataclasses.field(default_factory=dict)
    last_label_window: Dict[str, Any] = dataclasses.field(default_factory=dict)
    windows: int = 0
    label_windows: int = 0             # its windows of joined labels (the incidents' positions)
    buffer: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    label_buffer: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    persisted_seq: int = -1            # the last buffered seq already in the store
    parts: List[Dict[str, np.ndarray]] = dataclasses.field(default_factory=list)   # appended, not yet in buffer

    def meta(self) -> Dict[str, Any]:
        return {"records": self.records, "next_end": self.next_end, "last_row": self.last_row,
                "block": list(self.block), "budget": self.budget, "detectors_off": self.detectors_off,
                "detectors": {name: d.state_dict() for name, d in self.detectors.items()},
                "last_window": self.last_window, "last_label_window": self.last_label_window,
                "windows": self.windows, "label_windows": self.label_windows}

    @classmethod
    def from_meta(cls, version: int, m: Mapping[str, Any]) -> "Lane":
        from driftguard.components.drift.streaming import StreamDetector

        return cls(version=version, records=int(m["records"]), next_end=int(m["next_end"]),
                   last_row=int(m.get("last_row", -1)), block=list(m.get("block", [0, 0, 0])),
                   budget=dict(m.get("budget", {})), detectors_off=dict(m.get("detectors_off", {})),
                   detectors={name: StreamDetector.from_state(name, d) for name, d in m.get("detectors", {}).items()},
                   last_window=dict(m.get("last_window", {})), last_label_window=dict(m.get("last_label_window", {})),
                   windows=int(m.get("windows", 0)), label_windows=int(m.get("label_windows", -1)))

    # -- records

    def append(self, columns: Mapping[str, np.ndarray], rows: np.ndarray, block_size: int) -> None:
        """This version's next records (``columns``: the window's fields; ``rows``: their global
        numbers, increasing)."""
        n = rows.size
        new = dict(columns)
        new["row"] = rows
        new["seq"] = np.arange(self.records, self.records + n, dtype=np.int64)
        # joined into ``buffer`` when a window closes or the buffer is read: under a shadow rollout
        # the versions alternate record by record, and joining at every append would copy the
        # whole unfinished window per record
        self.parts.append(new)
        self.records += n
        self.last_row = int(rows[-1])
        self._count(rows, block_size)

    def closing(self, window: int, step: int):
        """Yield (first row, last row, rows) of each window the appended records complete, in
        order, then drop the rows no later window needs."""
        if self.next_end <= self.records:
            self.consolidate()
        while self.next_end <= self.records:
            end = self.next_end
            seq = self.buffer["seq"]
            lo, hi = int(np.searchsorted(seq, end - window)), int(np.searchsorted(seq, end))
            part = {k: v[lo:hi] for k, v in self.buffer.items()}
            self.next_end = end + step
            self.windows += 1
            yield int(part["row"][0]), int(part["row"][-1]), part
        self.trim(window)

    def consolidate(self) -> None:
        """Join the appended parts into ``buffer``."""
        if self.parts:
            parts = ([self.buffer] if self.buffer else []) + self.parts
            self.buffer = {k: np.concatenate([p[k] for p in parts]) for k in parts[-1]}
            self.parts = []

    def trim(self, window: int) -> None:
        self.consolidate()
        if self.buffer:
            cut = int(np.searchsorted(self.buffer["seq"], self.next_end - window))
            if cut:
                self.buffer = {k: v[cut:] for k, v in self.buffer.items()}

    def unfinished(self) -> int:
        """Records buffered towards the next window."""
        self.consolidate()
        return len(self.buffer.get("seq", ()))

    # -- the serving choice

    def _count(self, rows: np.ndarray, size: int) -> None:
        """Add records ``rows`` (one run, increasing) to the per-block counts."""
        blocks = rows // size
        last = int(blocks[-1])
        in_last = int(np.count_nonzero(blocks == last))
        in_before = int(np.count_nonzero(blocks == last - 1))
        b, cur, prev = self.block
        if b == last:
            self.block = [last, cur + in_last, prev + in_before]
        elif b == last - 1:
            self.block = [last, in_last, cur + in_before]
        else:
            self.block = [last, in_last, in_before]

    def in_block(self, k: int) -> int:
        b, cur, prev = self.block
        return cur if b == k else prev if b == k + 1 else 0


def serving_version(lanes: Mapping[int, Lane], records: int, size: int) -> Optional[int]:
    """The version that answered most of the last complete block of ``size`` records (of the
    ``records`` read), so far when none is complete; ties: the newer version."""
    if not lanes:
        return None
    k = records // size - 1
    if k < 0:
        k = 0
    counts = {v: lane.in_block(k) for v, lane in lanes.items()}
    if not any(counts.values()):                      # the block was all skipped records
        counts = {v: lane.in_block(k + 1) for v, lane in lanes.items()}
    return max(counts, key=lambda v: (counts[v], v))
