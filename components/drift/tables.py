"""Turn a pandas DataFrame, a pyarrow Table or a dict of arrays into typed columns.

Neither pandas nor pyarrow is imported here: a DataFrame or Table passed in means its
library is already loaded, and it is recognised by its attributes. This keeps
``import driftguard.components.drift`` (and the ``driftguard drift`` command) fast.

A column is *numeric* (int, unsigned, float, decimal, datetime, timedelta) or
*categorical* (string, object holding text, bool, pandas category). Missing values are
``NaN``/``None``/null. Infinite values, empty tables and all-null columns raise
:class:`driftguard.components.drift.errors.DriftInputError` naming the column and side.
"""
from __future__ import annotations

import math
import numbers
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import numpy as np

from ._hashing import distinct_objects, object_addresses
from .binning import category_counts
from .errors import DriftInputError

__all__ = ["Column", "read_table", "as_labels"]

#: From this many rows on, text columns are read per distinct object (:func:`_text_column`).
_FAST_MIN_ROWS = 1 << 16


@dataclass(frozen=True)
class Column:
    """One column: ``kind`` is "numeric" (float array, NaN missing) or "categorical" (object array, None missing)."""

    name: str
    kind: str
    values: np.ndarray
    known_missing: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    known_counts: Optional[Dict[str, int]] = field(default=None, repr=False, compare=False)

    @property
    def missing(self) -> np.ndarray:
        """Boolean mask of the missing values (computed once, read-only)."""
        mask = self.known_missing
        if mask is None:
            mask = np.isnan(self.values) if self.kind == "numeric" else np.equal(self.values, None)
            mask.setflags(write=False)
            object.__setattr__(self, "known_missing", mask)  # a cache: the column itself never changes
        return mask

    def label_counts(self) -> Dict[str, int]:
        """:func:`driftguard.components.drift.binning.category_counts` of the present values as labels
        (:func:`as_labels`), computed once."""
        counts = self.known_counts
        if counts is None:
            labels = as_labels(self)
            counts = category_counts(labels[~self.missing] if self.missing.any() else labels)
            object.__setattr__(self, "known_counts", counts)
        return counts


def _is_null(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _null_mask(items: np.ndarray) -> np.ndarray:
    """Missing entries of an object array: None, NaN, pandas NA/NaT."""
    types = set(map(type, items))
    if types <= {str, type(None), float, np.float64, np.float32}:  # vectorised common case
        mask = np.equal(items, None)
        if types & {float, np.float64, np.float32}:
            mask |= np.not_equal(items, items)  # NaN != NaN; str == str
        return mask
    return np.fromiter((_is_null(v) for v in items), dtype=bool, count=len(items))


def _from_objects(name: str, values, side: str, mask: np.ndarray = None) -> Column:
    """Classify an object array: numbers -> numeric; text, bools and mixtures -> categorical."""
    items = np.asarray(values, dtype=object)
    if mask is None:
        try:
            counts = Counter(items.tolist())
        except TypeError:  # unhashable objects: not labels anyway
            counts = Counter()
        if counts and set(map(type, counts)) <= {str, type(None)}:
            # text with None for missing, the usual case: one pass over the objects, which counts the labels
            # for the features (category_counts) and gives their types from the distinct values alone
            items = np.ascontiguousarray(items)
            mask = object_addresses(items) == id(None)  # None is one object: np.equal(items, None), faster
            mask.setflags(write=False)
            counts.pop(None, None)
            labels = {label: counts[label] for label in sorted(counts)}
            return Column(name, "categorical", items.copy(), mask, labels)
        mask = _null_mask(items)
    else:
        mask = np.asarray(mask, dtype=bool)
    present = items[~mask]
    types = set(map(type, present))
    if types and all(issubclass(t, numbers.Number) and not issubclass(t, (bool, np.bool_)) for t in types):
        out = np.full(items.size, np.nan)
        out[~mask] = present.astype(float)
        return Column(name, "numeric", out)
    out = np.full(items.size, None, dtype=object)
    out[~mask] = present if types <= {str} else np.array([str(v) for v in present], dtype=object)
    return Column(name, "categorical", out)


def _from_numpy(name: str, array: np.ndarray, side: str) -> Column:
    array = np.asarray(array)
    if array.ndim != 1:
        raise DriftInputError(f"column {name!r} of the {side} table must be one-dimensional, got shape {array.shape}",
                              column=name, side=side)
    kind = array.dtype.kind
    if kind in "iuf":
        return Column(name, "numeric", array.astype(float))
    if kind in "Mm":  # datetimes and timedeltas: nanosecond ticks (the unit is irrelevant to drift scores)
        ticks = array.astype("datetime64[ns]" if kind == "M" else "timedelta64[ns]").astype("int64").astype(float)
        ticks[np.isnat(array)] = np.nan
        return Column(name, "numeric", ticks)
    if kind == "b":
        return Column(name, "categorical", np.array([str(bool(v)) for v in array], dtype=object))
    if kind in "US":
        return Column(name, "categorical", array.astype(str).astype(object))
    if kind == "O":
        return _from_objects(name, array, side)
    raise DriftInputError(f"column {name!r} of the {side} table has unsupported dtype {array.dtype}",
                          column=name, side=side)


def _from_pandas(name: str, series, side: str) -> Column:
    dtype = series.dtype
    if getattr(dtype, "name", "") == "category":
        return _from_objects(name, series.astype(object).to_numpy(), side, series.isna().to_numpy())
    if getattr(dtype, "name", "") == "boolean":
        labels = [None if _is_null(v) else str(bool(v)) for v in series]
        return Column(name, "categorical", np.array(labels, dtype=object))
    kind = getattr(dtype, "kind", "O")
    if kind in "iuf" and isinstance(dtype, np.dtype):  # plain numpy column: NaN already marks missing
        values = series.to_numpy(dtype=float)
        if np.shares_memory(values, series.to_numpy()):  # a view of the caller's frame: never written to
            values = values.view()
            values.flags.writeable = False
        return Column(name, "numeric", values)
    if kind in "iuf":  # nullable extension types (Int64, Float64): pd.NA -> NaN
        return Column(name, "numeric", series.to_numpy(dtype=float, na_value=np.nan))
    if kind in "Mm":
        if getattr(dtype, "tz", None) is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return _from_numpy(name, series.to_numpy(), side)
    if kind == "b":
        return _from_numpy(name, series.to_numpy(), side)
    items = series.to_numpy(dtype=object)
    text = _text_column(name, items, sys.modules.get("pandas"))
    if text is not None:
        return text
    return _from_objects(name, items, side, series.isna().to_numpy())


def _text_column(name: str, items: np.ndarray, pd) -> Column:
    """A large object column holding only ``str`` and missing values, read per distinct object.

    The usual CSV text column repeats a few dozen string objects; judging each distinct
    object once (pandas' own ``isna`` for missing, ``type(v) is str`` for text) gives
    the same column as :func:`_from_objects` without a Python-level pass over every row.
    ``None`` when the column is small, mixed, or holds too many distinct objects.
    """
    if pd is None or items.size < _FAST_MIN_ROWS:
        return None
    found = distinct_objects(np.ascontiguousarray(items))
    if found is None:
        return None
    objects, codes = found
    null = np.asarray(pd.isna(objects), dtype=bool)
    present = objects[~null]
    if present.size == 0 or any(type(v) is not str for v in present):
        return None
    mask = null[codes]
    out = np.ascontiguousarray(items).copy()
    out[mask] = None
    mask.setflags(write=False)
    return Column(name, "categorical", out, mask)


def _arrow_fixed_width(name: str, chunked, pa, side: str) -> np.ndarray:
    """Float view of a fixed-width Arrow column (ints, floats, temporal ticks), nulls as NaN.

    Read straight from the Arrow buffers: ``Array.to_numpy()`` and ``cast()`` import
    pandas in pyarrow 10, which costs the CLI more than a second.
    """
    t = chunked.type
    if getattr(t, "bit_width", None) not in (8, 16, 32, 64):
        raise DriftInputError(f"column {name!r} of the {side} table has unsupported type {t}", column=name, side=side)
    if pa.types.is_floating(t):
        dtype = np.dtype(f"float{t.bit_width}")
    elif pa.types.is_unsigned_integer(t):
        dtype = np.dtype(f"uint{t.bit_width}")
    else:  # signed integers and temporal types (int32/int64 ticks)
        dtype = np.dtype(f"int{t.bit_width}")
    parts = []
    for chunk in chunked.chunks:
        n, offset = len(chunk), chunk.offset
        if n == 0:
            continue
        validity, data = chunk.buffers()[:2]
        values = np.frombuffer(data, dtype=dtype, count=offset + n)[offset:].astype(float)
        if chunk.null_count and validity is not None:
            bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")[offset:offset + n]
            values[bits == 0] = np.nan
        parts.append(values)
    return np.concatenate(parts) if parts else np.empty(0)


def _from_arrow(name: str, chunked, side: str) -> Column:
    pa = sys.modules["pyarrow"]
    t = chunked.type
    if pa.types.is_dictionary(t):
        return _from_objects(name, np.array(chunked.to_pylist(), dtype=object), side)
    if pa.types.is_null(t):
        return Column(name, "categorical", np.full(len(chunked), None, dtype=object))
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t):
        # temporal: integer ticks (timestamps, dates, times, durations); the unit does not change drift scores
        return Column(name, "numeric", _arrow_fixed_width(name, chunked, pa, side))
    if pa.types.is_decimal(t):
        return Column(name, "numeric", np.array([np.nan if v is None else float(v) for v in chunked.to_pylist()]))
    if pa.types.is_boolean(t):
        return Column(name, "categorical", np.array([None if v is None else str(v) for v in chunked.to_pylist()],
                                                    dtype=object))
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        values = np.empty(len(chunked), dtype=object)
        values[:] = chunked.to_pylist()
        return Column(name, "categorical", values)
    raise DriftInputError(f"column {name!r} of the {side} table has unsupported type {t}", column=name, side=side)


def _as_array(values) -> np.ndarray:
    """A list with None stays an object array (``np.asarray`` would make it a string or fail)."""
    if isinstance(values, np.ndarray):
        return values
    values = list(values)
    return np.array(values, dtype=object) if any(_is_null(v) for v in values) else np.asarray(values)


def read_table(table, side: str) -> Dict[str, Column]:
    """Read every column of ``table`` (DataFrame, pyarrow Table or mapping of arrays).

    Parameters
    ----------
    table : pandas.DataFrame, pyarrow.Table or mapping of str to array_like
    side : {"reference", "current"}
        Used in error messages.

    Returns
    -------
    dict of str to Column
        In the table's column order.

    Examples
    --------
    >>> cols = read_table({"fare": [3.25, None, 7.5], "payment_type": ["Cash", "Cash", None]}, "reference")
    >>> [(c.name, c.kind, int(c.missing.sum())) for c in cols.values()]
    [('fare', 'numeric', 1), ('payment_type', 'categorical', 1)]
    >>> read_table({"fare": [1.0, float("inf")]}, "current")
    Traceback (most recent call last):
    ...
    driftguard.components.drift.errors.DriftInputError: column 'fare' of the current table holds 1 infinite value(s); use finite numbers (NaN or null for missing)
    """
    pa = sys.modules.get("pyarrow")
    columns: List[Column] = []
    if pa is not None and isinstance(table, pa.Table):
        columns = [_from_arrow(str(n), table.column(i), side) for i, n in enumerate(table.column_names)]
        n_rows = table.num_rows
    elif hasattr(table, "columns") and hasattr(table, "dtypes") and hasattr(table, "iloc"):  # pandas.DataFrame
        if len(set(map(str, table.columns))) != len(table.columns):
            raise DriftInputError(f"the {side} table has duplicate column names", side=side)
        columns = [_from_pandas(str(n), table.iloc[:, i], side) for i, n in enumerate(table.columns)]
        n_rows = len(table)
    elif isinstance(table, Mapping):
        lengths = {str(k): len(v) for k, v in table.items()}
        if len(set(lengths.values())) > 1:
            raise DriftInputError(f"the {side} columns differ in length: {lengths}", side=side)
        columns = [_from_numpy(str(k), _as_array(v), side) for k, v in table.items()]
        n_rows = next(iter(lengths.values()), 0)
    else:
        raise DriftInputError(f"the {side} table must be a pandas DataFrame, a pyarrow Table or a dict of arrays, "
                              f"got {type(table).__name__}", side=side)
    if not columns:
        raise DriftInputError(f"the {side} table has no columns", side=side)
    if n_rows == 0:
        raise DriftInputError(f"the {side} table has no rows", side=side)
    for col in columns:
        if col.kind == "numeric":
            infinite = np.isinf(col.values)
            if infinite.any():
                n_inf = int(np.count_nonzero(infinite))
                raise DriftInputError(f"column {col.name!r} of the {side} table holds {n_inf} infinite value(s); "
                                      "use finite numbers (NaN or null for missing)", column=col.name, side=side)
    return {c.name: c for c in columns}


def as_labels(column: Column) -> np.ndarray:
    """Categorical view of a column: numbers become labels (``8.0`` -> ``"8"``).

    Examples
    --------
    >>> as_labels(Column("area", "numeric", np.array([8.0, np.nan, 2.5]))).tolist()
    ['8', None, '2.5']
    """
    if column.kind == "categorical":
        return column.values
    return np.array([None if math.isnan(v) else (str(int(v)) if float(v).is_integer() else repr(float(v)))
                     for v in column.values], dtype=object)
