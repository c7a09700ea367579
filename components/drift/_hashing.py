r"""Exact counting of repeated values in linear time, with numpy only.

``numpy.unique`` sorts: 2 x 1,000,000 values cost about 0.2 s per feature, and
``collections.Counter`` over 1,000,000 strings about 40 ms. Monitoring data repeats
itself (the taxi features hold at most a few ten thousand distinct values, the text
columns a few dozen), and a hash table the size of the *distinct* values, small enough
to stay in the CPU cache, counts them in a few vectorised passes.

:class:`HashTable` is an open-addressing table on 64-bit keys (the bit pattern of a
float, or the address of a Python object) with Fibonacci hashing and linear probing,
filled a whole array at a time: every pending key claims its slot at once, one claimant
of a free slot wins it, and a key whose slot then holds another key moves one slot on.
Two keys share a slot only when they are equal, so every count is exact; the table gives
up (``None``) rather than grow past half full, and the callers then fall back to sorting
or to ``Counter``. :meth:`HashTable.find` looks keys up without inserting them:
:class:`ValueIndex` keeps a prepared reference's distinct values in such a table, and
each monitoring window's values are located in it instead of being sorted with them.
"""
from __future__ import annotations

import ctypes
from typing import Optional, Tuple

import numpy as np

__all__ = ["HashTable", "ValueIndex", "bits_for", "object_addresses", "distinct_objects"]

#: Largest table tried: 2**18 slots (2 MiB of keys, kept in cache). More distinct values: sort.
MAX_BITS = 18
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio (Knuth's multiplicative hashing)


class HashTable:
    """An open-addressing table of uint64 keys; :meth:`insert` gives each key's slot."""

    def __init__(self, bits: int):
        self.bits = int(bits)
        self.keys = np.zeros(1 << self.bits, dtype=np.uint64)
        self.used = np.zeros(1 << self.bits, dtype=bool)

    def _homes(self, keys: np.ndarray) -> np.ndarray:
        """Home slot of every key (Fibonacci hashing: the top bits of ``key * golden``)."""
        slots = np.multiply(keys, _GOLDEN)
        np.right_shift(slots, np.uint64(64 - self.bits), out=slots)
        return slots.view(np.intp)  # < 2**bits: the same numbers as signed indices

    def insert(self, keys: np.ndarray) -> Optional[np.ndarray]:
        """Slot of every key (inserting the new ones), or ``None`` when the table is over half full.

        Examples
        --------
        >>> t = HashTable(4)
        >>> slots = t.insert(np.array([7, 3, 7, 7], dtype=np.uint64))
        >>> int(slots[0]) == int(slots[2]) != int(slots[1]), sorted(t.keys[t.used].tolist())
        (True, [3, 7])
        """
        size = self.used.size
        slots = self._homes(keys)
        pending = None  # None: every key (first round)
        while True:
            s = slots if pending is None else slots[pending]
            k = keys if pending is None else keys[pending]
            claim = np.zeros(size, dtype=np.uint64)
            claimed = np.zeros(size, dtype=bool)
            claim[s] = k
            claimed[s] = True
            new = claimed & ~self.used
            self.keys[new] = claim[new]
            self.used |= new
            miss = np.flatnonzero(self.keys[s] != k)
            if miss.size == 0:
                return slots
            if 2 * int(np.count_nonzero(self.used)) > size:
                return None
            pending = miss if pending is None else pending[miss]
            slots[pending] = (slots[pending] + 1) & (size - 1)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Slot of every key already in the table, -1 for the others (nothing is inserted).

        A key sits at its home slot or past a run of slots that were all taken when it
        was inserted (slots are never freed), so the search walks from the home slot
        until it meets the key or a free slot.

        Examples
        --------
        >>> t = HashTable(4)
        >>> slots = t.insert(np.array([7, 3], dtype=np.uint64))
        >>> found = t.find(np.array([3, 5, 7], dtype=np.uint64))
        >>> bool(found[0] == slots[1]), int(found[1]), bool(found[2] == slots[0])
        (True, -1, True)
        """
        wrap = self.used.size - 1
        slots = self._homes(keys)
        # slots are in range: take without numpy's bounds check, a third of the time of indexing
        used = self.used.take(slots, mode="wrap")
        hit = used & (self.keys.take(slots, mode="wrap") == keys)
        found = np.where(hit, slots, -1)
        walk = np.flatnonzero(used & ~hit)  # home slot taken by another key: look further
        slots = slots[walk]
        while walk.size:
            slots = (slots + 1) & wrap
            used = self.used.take(slots, mode="wrap")
            hit = used & (self.keys.take(slots, mode="wrap") == keys[walk])
            found[walk[hit]] = slots[hit]
            further = used & ~hit
            walk, slots = walk[further], slots[further]
        return found


class ValueIndex:
    """Position of values in a fixed array of distinct floats (-1 for the values it lacks).

    The reference's distinct values of a prepared numeric feature
    (:class:`driftguard.components.drift.numeric.NumericReference`): every current window is looked
    up in a table of their bit patterns, a few vectorised passes instead of a sort.
    Equal bit patterns are equal floats and vice versa as long as neither side holds NaN
    or -0.0, which callers rule out. At most :attr:`LIMIT` values (a quarter of the
    largest table); more make continuous data, which callers sort instead.

    Examples
    --------
    >>> ValueIndex(np.array([0.5, 2.0, 7.25])).positions(np.array([7.25, 1.0, 0.5, 7.25])).tolist()
    [2, -1, 0, 2]
    """

    LIMIT = 1 << (MAX_BITS - 2)

    def __init__(self, distinct: np.ndarray):
        distinct = np.ascontiguousarray(distinct, dtype=np.float64)
        if distinct.size > self.LIMIT:
            raise ValueError(f"at most {self.LIMIT} values can be indexed, got {distinct.size}")
        # A sixteenth full: most keys sit in their home slot and a lookup takes one or two rounds
        # (a quarter full: up to 7 rounds on the taxi columns, twice the time); never over a quarter
        # full, so insert() cannot give up (it does past half full).
        bits = max(10, min(int(np.ceil(np.log2(16 * max(1, distinct.size)))), MAX_BITS))
        self._table = HashTable(bits)
        slots = self._table.insert(distinct.view(np.uint64))
        self._position = np.full(self._table.used.size + 1, -1, dtype=np.intp)  # [-1]: the slot "not found"
        self._position[slots] = np.arange(distinct.size)

    def positions(self, values: np.ndarray) -> np.ndarray:
        """Index of each value in the distinct values, or -1."""
        keys = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
        return self._position.take(self._table.find(keys), mode="wrap")  # slot -1: the last entry, -1


def bits_for(sample: np.ndarray) -> Optional[int]:
    """Table size (log2) for data like ``sample``, or ``None`` when it looks (nearly) all distinct.

    The number of distinct values is guessed from the repeats within the sample (the
    birthday estimate :math:`s^2 / 2r`); the table gets 8 slots per guessed value.
    """
    repeats = sample.size - np.unique(sample).size
    if repeats == 0 or repeats < sample.size // 100:
        return None
    estimate = sample.size * sample.size / (2.0 * repeats)
    bits = max(10, int(np.ceil(np.log2(8 * estimate))))
    return bits if bits <= MAX_BITS else None


def object_addresses(items: np.ndarray) -> np.ndarray:
    """The object pointers an object array holds, as uint64 (a copy; the objects stay referenced by ``items``)."""
    if items.dtype != object or items.ndim != 1 or not items.flags.c_contiguous:
        raise ValueError("expected a contiguous 1-D object array")
    if items.size == 0:
        return np.empty(0, dtype=np.uint64)
    pointer = ctypes.cast(items.ctypes.data, ctypes.POINTER(ctypes.c_uint64))
    return np.ctypeslib.as_array(pointer, shape=(items.size,)).copy()


def distinct_objects(items: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(objects, codes)`` with ``items == objects[codes]``, grouping the *same* objects.

    Equal but distinct objects (two ``"Cash"`` strings built separately) get separate
    entries; callers merge them by value over the few distinct objects. ``None`` when the
    array holds too many distinct objects for a cache-sized table.

    Examples
    --------
    >>> a, b = "Cash", "Credit Card"
    >>> objects, codes = distinct_objects(np.array([a, b, a, a, None], dtype=object))
    >>> objects[codes].tolist()
    ['Cash', 'Credit Card', 'Cash', 'Cash', None]
    """
    addresses = object_addresses(items)
    step = max(1, addresses.size // 4096)
    bits = bits_for(addresses[::step])
    if bits is None:
        return None
    table = HashTable(bits)
    slots = table.insert(addresses)
    if slots is None:
        return None
    occupied = np.flatnonzero(table.used)
    row = np.zeros(table.used.size, dtype=np.intp)
    row[slots] = np.arange(slots.size)  # some row holding each object (all rows of a slot hold the same one)
    code_of_slot = np.zeros(table.used.size, dtype=np.intp)
    code_of_slot[occupied] = np.arange(occupied.size)
    return items[row[occupied]], code_of_slot[slots]
