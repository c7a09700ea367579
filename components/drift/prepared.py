r"""A reference table read once, for many :func:`driftguard.components.drift.detect_drift` calls.

A live monitor compares every window of traffic (say 10,000 records) with the same
reference. Much of a call depends on the reference alone: reading and typing its
columns, each numeric feature's distinct values, quantile edges and reference counts
per bin, median, mean and deviation, each categorical feature's category counts, and
for the joint check the reference sample, its mid-ranks and the reference correlation
of every pair. :func:`prepare_reference` reads the table once; the rest is computed on
first use and kept, keyed by everything it depends on (``n_bins``, ``test_bins`` and
the fine test's bins for the edges; ``max_rows`` and ``seed`` for the sample; the
column and its kind for the counts), so calls with other parameters get their own
entries and never see stale ones::

    reference = prepare_reference(baseline_columns)
    for window in windows:
        report = detect_drift(reference, window, all_missing="compare")

Exactness
    A report from a prepared reference is the report from the raw table, bit for bit:
    every cached number is the one a fresh call computes, with the same operations in
    the same order. The joint check's reference rows are drawn by the seeded generator
    before the current rows, as in a fresh call; the prepared sample keeps a copy of the
    generator as that draw left it, so every window gets the same current rows as a
    fresh call would. With ``seed=None`` a fresh call draws new rows each time: the
    prepared reference then keeps nothing that a draw decides (only a reference of at
    most ``max_rows`` rows, which is used whole, keeps its ranks).

The cost of a window is then the current side alone: locating its values among the
reference's distinct values (a hash lookup, :class:`driftguard.components.drift._hashing.ValueIndex`),
counting them, and for the joint check ranking its sample and correlating the pairs.
A prepared reference holds on to its data and caches: it is meant to be kept for as
long as its reference is monitored. Its columns are copies of the input, which may
change freely afterwards. The caches are filled without locks; every entry is a
deterministic function of its key, so concurrent calls at worst compute one twice.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .multivariate import ReferenceSample
from .numeric import NumericReference
from .tables import Column, read_table

__all__ = ["PreparedReference", "prepare_reference"]

#: Reference samples of the joint check kept, one per (max_rows, seed) (a monitor uses one).
_KEPT_SAMPLES = 8


class PreparedReference:
    """A reference table, read once, with what depends on it alone computed on demand and kept.

    Build it with :func:`prepare_reference`; pass it to
    :func:`driftguard.components.drift.detect_drift` (or
    :func:`driftguard.components.drift.rank_correlation_check`) in place of the reference table.

    Attributes
    ----------
    columns : dict of str to Column
        The reference's typed columns, as :func:`driftguard.components.drift.tables.read_table`
        gives them.
    n_rows : int
        Rows of the reference.
    """

    def __init__(self, reference):
        columns = read_table(reference, "reference")
        # a column may be a view of the caller's data (a pandas frame's float block): cached statistics
        # must not go stale when the caller changes it, so keep a copy
        self.columns: Dict[str, Column] = {
            name: col if col.values.flags.owndata else Column(col.name, col.kind, col.values.copy())
            for name, col in columns.items()}
        self.n_rows = next(iter(self.columns.values())).values.size
        self._numeric: Dict[str, NumericReference] = {}
        self._samples: Dict[Tuple[int, Optional[int]], ReferenceSample] = {}

    def __repr__(self) -> str:
        return f"PreparedReference({len(self.columns)} columns, {self.n_rows} rows)"

    def numeric(self, name: str) -> NumericReference:
        """The present values of a numeric column and their statistics (:class:`NumericReference`,
        which keeps each binning under its own numbers of bins)."""
        found = self._numeric.get(name)
        if found is None:
            col = self.columns[name]
            found = self._numeric[name] = NumericReference(col.values[~col.missing])
        return found

    def numeric_columns(self) -> List[str]:
        return [name for name, col in self.columns.items() if col.kind == "numeric"]

    def rank_sample(self, names: Sequence[str], max_rows: int, seed) -> ReferenceSample:
        """The reference sample of :func:`driftguard.components.drift.rank_correlation_check` for ``max_rows`` and ``seed``.

        Kept for an integer seed, and for ``seed=None`` when the reference has at most
        ``max_rows`` rows (nothing is drawn); otherwise drawn afresh, as every call does.
        """
        for name in names:
            if name not in self.columns or self.columns[name].kind != "numeric":
                raise ValueError(f"column {name!r} is not a numeric column of the prepared reference; "
                                 f"numeric columns: {self.numeric_columns()}")

        def column(name: str) -> np.ndarray:
            return self.columns[name].values

        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            key, replay = (max_rows, int(seed)), True
        elif seed is None and self.n_rows <= max_rows:
            key, replay = (max_rows, None), False  # the whole reference; the current rows stay random
        else:
            return ReferenceSample(column, self.n_rows, max_rows, seed, replay=False)
        found = self._samples.get(key)
        if found is None:
            if len(self._samples) >= _KEPT_SAMPLES:  # a caller trying many seeds: forget the oldest
                del self._samples[next(iter(self._samples))]
            found = self._samples[key] = ReferenceSample(column, self.n_rows, max_rows, seed, replay=replay)
        return found


def prepare_reference(reference) -> PreparedReference:
    """Read a reference table once, for many :func:`driftguard.components.drift.detect_drift` calls.

    Parameters
    ----------
    reference : pandas.DataFrame, pyarrow.Table or mapping of str to array_like
        As ``detect_drift``'s ``reference``.

    Returns
    -------
    PreparedReference
        To pass as ``reference``; the reports are exactly those of the raw table.

    Raises
    ------
    DriftInputError
        What ``detect_drift`` raises for the reference table (empty, infinite values,
        ...), now rather than at the first call.

    Examples
    --------
    >>> from driftguard.components.drift import detect_drift
    >>> rng = np.random.default_rng(7)
    >>> table = {"fare": rng.lognormal(2.0, 0.6, 3000), "miles": rng.exponential(2.0, 3000),
    ...          "payment_type": rng.choice(["Cash", "Credit Card"], 3000)}
    >>> reference = prepare_reference(table)
    >>> reference
    PreparedReference(3 columns, 3000 rows)
    >>> window = {"fare": 1.10 * rng.lognormal(2.0, 0.6, 1000), "miles": rng.exponential(2.0, 1000),
    ...           "payment_type": rng.choice(["Cash", "Credit Card"], 1000)}
    >>> report = detect_drift(reference, window)
    >>> report.drifted_features, report.to_dict() == detect_drift(table, window).to_dict()
    (['fare'], True)
    """
    return PreparedReference(reference)
