"""Find fields in many small protobuf messages at once, compiled with numba, without building messages.

The monitor reads over 100,000 ``PredictionLog`` records per second and needs a few fields of
each (the logged ``tf.Example`` bytes, the probability, the request id, the model version),
then a handful of features of each example. Measured here per record: ``PredictionLog.FromString``
~13 us (cpp protobuf) before reading any field, ``tf.io.decode_proto`` level by level ~10 us,
a numpy walk of the wire format in lock step over all messages of a batch ~4 us (memory-bound:
every nesting level touched every record's bytes again), ``tf.io.parse_example`` ~3.5 us for the
14 taxi features. Here each record is walked once, depth first, by plain Python loops over the
wire format compiled with numba (``cache=True``: compiled once per checkout, ~1 min, by
``make setup``, then loaded from ``__pycache__``); results are byte ranges into the batch's
buffer, nothing is copied.

* :class:`PredictLogs`: the examples, probability, request ids, version and time of many
  ``PredictionLog`` s whose layout is the usual one (a ``predict_log`` of serialized examples);
  any other record is marked for the protobuf library;
* :class:`ExampleColumns`: the first value of named features of many serialized ``tf.Example`` s,
  typed as the caller expects (a value of another type counts as missing, and is counted), and
  :func:`group_strings` to turn the byte ranges of text values into strings.

Hand-written because no library walks protobuf wire format in bulk without building a message
per record (the protobuf runtime here is 3.20, whose C++ parser is the 13 us above). Scope:
the wire format itself (varint, 64-bit, length-delimited and 32-bit fields); groups (wire types
3 and 4, deprecated), unusual encodings and malformed data send the record to the protobuf
library, which reads it or reports the error properly. Field numbers come from the generated
descriptors, never from constants typed here.

Reference: https://protobuf.dev/programming-guides/encoding/
"""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

VARINT, I64, LEN, I32 = 0, 1, 2, 5


# The small helpers are inlined (numba IR) into the kernels: a call passing arrays costs
# reference counting on each of them, which made the tf.Example walk twice as slow.


@numba.njit(cache=True, nogil=True, inline="always")
def _varint(buf, p, limit):
    """(value, position after it) of the varint at ``p``; position -1 when it runs past
    ``limit`` or is longer than 10 bytes. Values wrap to int64 as in the protobuf runtime."""
    if p < limit and buf[p] < 0x80:             # most varints here are one byte
        return np.int64(buf[p]), p + 1
    result = np.uint64(0)
    shift = np.uint64(0)
    while True:
        if p >= limit or shift > 63:
            return np.int64(0), np.int64(-1)
        b = buf[p]
        p += 1
        result |= np.uint64(b & 0x7F) << shift
        if b < 0x80:
            return np.int64(result), np.int64(p)
        shift += np.uint64(7)


@numba.njit(cache=True, nogil=True, inline="always")
def _field(buf, p, lim):
    """The field at ``p``: (number, wire type, value start, value end, varint value, ok)."""
    tag, q = _varint(buf, p, lim)
    if q < 0:
        return 0, 0, 0, 0, 0, False
    wt = tag & 7
    fn = tag >> 3
    vs, ve, value = q, q, np.int64(0)
    if wt == 0:
        value, ve = _varint(buf, q, lim)
        if ve < 0:
            return 0, 0, 0, 0, 0, False
    elif wt == 2:
        length, vs = _varint(buf, q, lim)
        if vs < 0:
            return 0, 0, 0, 0, 0, False
        ve = vs + length
    elif wt == 1:
        ve = q + 8
    elif wt == 5:
        ve = q + 4
    else:                                        # groups (3, 4) and the undefined 6, 7
        return 0, 0, 0, 0, 0, False
    if fn <= 0 or ve > lim or vs > ve or ve < 0:
        return 0, 0, 0, 0, 0, False
    return fn, wt, vs, ve, value, True


# ---------------------------------------------------------------- tf.Example features

KIND_FLOAT, KIND_INT, KIND_STRING = 0, 1, 2


SLOTS = 1024


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(length, first, last):
    return (length * 97 + first * 31 + last) & (SLOTS - 1)


@numba.njit(cache=True, nogil=True, inline="always")
def _match(buf, ks, ke, names, name_starts, slots):
    """Index of the name equal to ``buf[ks:ke]``, or -1. ``slots`` (:func:`_name_slots`) maps a
    key's length and end bytes to its only candidate name (-2: several, look at each):
    a tf.Example has a dozen keys and this runs for each, so it must not try every name."""
    length = ke - ks
    j = slots[_slot(length, buf[ks], buf[ke - 1]) if length else 0]
    if j == -1:
        return -1
    first, last = (j, j + 1) if j >= 0 else (0, name_starts.size - 1)
    for j in range(first, last):
        a = name_starts[j]
        if name_starts[j + 1] - a != length:
            continue
        same = True
        for t in range(length):
            if buf[ks + t] != names[a + t]:
                same = False
                break
        if same:
            return j
    return -1


def _names(names: Sequence[str]):
    """(concatenated UTF-8 bytes, start offsets, slots) of ``names`` for :func:`_match`."""
    encoded = [n.encode("utf-8") for n in names]
    slots = np.full(SLOTS, -1, np.int64)
    for j, e in enumerate(encoded):
        k = _slot(len(e), e[0], e[-1]) if e else 0
        slots[k] = j if slots[k] == -1 else -2
    return (np.frombuffer(b"".join(encoded) or b"\0", np.uint8),
            np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64), slots)


@numba.njit(cache=True, nogil=True, inline="always")
def _float32(buf, at, scratch):
    """The little-endian float32 at ``buf[at]``, through ``scratch`` (a uint32 array and its
    float32 view): slicing ``buf`` for a view costs reference counting on every value."""
    scratch[0][0] = (np.uint32(buf[at]) | (np.uint32(buf[at + 1]) << np.uint32(8))
                     | (np.uint32(buf[at + 2]) << np.uint32(16)) | (np.uint32(buf[at + 3]) << np.uint32(24)))
    return scratch[1][0]


@numba.njit(cache=True, nogil=True, inline="always")
def _float64(buf, at, scratch):
    bits = np.uint64(0)
    for t in range(8):
        bits |= np.uint64(buf[at + t]) << np.uint64(8 * t)
    scratch[2][0] = bits
    return scratch[3][0]


def _scratch():
    a, b = np.zeros(1, np.uint32), np.zeros(1, np.uint64)
    return a, a.view(np.float32), b, b.view(np.float64)


@numba.njit(cache=True, nogil=True, inline="always")
def _first_value(buf, vs, ve, list_kind, value_field, out_num, out_str, i, j, scratch):
    """Store the first value of the BytesList/FloatList/Int64List in ``buf[vs:ve]``;
    False when the list is malformed."""
    p = vs
    while p < ve:
        fn, wt, s, e, value, ok = _field(buf, p, ve)
        if not ok:
            return False
        p = e
        if fn != value_field:
            continue
        if list_kind == KIND_STRING:
            if wt == 2:
                out_str[0, i, j], out_str[1, i, j] = s, e
                return True
        elif list_kind == KIND_FLOAT:
            if wt == 5:                            # an unpacked float
                out_num[i, j] = _float32(buf, s, scratch)
                return True
            if wt == 2 and e - s >= 4:             # packed floats
                out_num[i, j] = _float32(buf, s, scratch)
                return True
        else:
            if wt == 0:
                out_num[i, j] = value
                return True
            if wt == 2 and e > s:                  # packed varints
                v, after = _varint(buf, s, e)
                if after < 0:
                    return False
                out_num[i, j] = v
                return True
    return True


@numba.njit(cache=True, nogil=True)
def _example_columns(buf, starts, ends, names, name_starts, slots, kinds, numbers, scratch):
    example_features, features_feature, entry_key, entry_value, bytes_list, float_list, int64_list, \
        list_value = numbers[0], numbers[1], numbers[2], numbers[3], numbers[4], numbers[5], numbers[6], numbers[7]
    n = starts.size
    m = kinds.size
    out_num = np.full((n, m), np.nan)
    out_str = np.full((2, n, m), -1, np.int64)
    wrong = np.zeros((n, m), np.bool_)
    bad = np.zeros(n, np.bool_)
    for i in range(n):
        p, lim = starts[i], ends[i]
        while p < lim and not bad[i]:
            fn, wt, fs, fe, _, ok = _field(buf, p, lim)
            if not ok:
                bad[i] = True
                break
            p = fe
            if fn != example_features or wt != 2:
                continue
            q = fs
            while q < fe:                             # Features: map entries
                fn2, wt2, es, ee, _, ok = _field(buf, q, fe)
                if not ok:
                    bad[i] = True
                    break
                q = ee
                if fn2 != features_feature or wt2 != 2:
                    continue
                ks, ke, vs, ve = -1, -1, -1, -1
                r = es
                while r < ee:                         # the entry: key, value (the last one of each wins)
                    fn3, wt3, s3, e3, _, ok = _field(buf, r, ee)
                    if not ok:
                        bad[i] = True
                        break
                    r = e3
                    if wt3 == 2 and fn3 == entry_key:
                        ks, ke = s3, e3
                    elif wt3 == 2 and fn3 == entry_value:
                        vs, ve = s3, e3
                if bad[i] or ks < 0:
                    continue
                j = _match(buf, ks, ke, names, name_starts, slots)
                if j < 0:
                    continue
                # a later entry with the same key replaces an earlier one, as in a protobuf map
                out_num[i, j] = np.nan
                out_str[0, i, j], out_str[1, i, j] = -1, -1
                wrong[i, j] = False
                if vs < 0:
                    continue
                kind, ls, le = -1, -1, -1
                r = vs
                while r < ve:                         # Feature: a oneof of three lists; the last set wins
                    fn4, wt4, s4, e4, _, ok = _field(buf, r, ve)
                    if not ok:
                        bad[i] = True
                        break
                    r = e4
                    if wt4 != 2:
                        continue
                    if fn4 == bytes_list:
                        kind, ls, le = KIND_STRING, s4, e4
                    elif fn4 == float_list:
                        kind, ls, le = KIND_FLOAT, s4, e4
                    elif fn4 == int64_list:
                        kind, ls, le = KIND_INT, s4, e4
                if bad[i] or kind < 0:
                    continue
                if kind != kinds[j]:
                    wrong[i, j] = True
                    continue
                if not _first_value(buf, ls, le, kind, list_value, out_num, out_str, i, j, scratch):
                    bad[i] = True
    return out_num, out_str, wrong, bad


def _example_numbers() -> np.ndarray:
    from tensorflow.core.example import example_pb2, feature_pb2

    def f(message, name):
        return message.DESCRIPTOR.fields_by_name[name].number

    entry = feature_pb2.Features.DESCRIPTOR.fields_by_name["feature"].message_type
    return np.array([f(example_pb2.Example, "features"), f(feature_pb2.Features, "feature"),
                     entry.fields_by_name["key"].number, entry.fields_by_name["value"].number,
                     f(feature_pb2.Feature, "bytes_list"), f(feature_pb2.Feature, "float_list"),
                     f(feature_pb2.Feature, "int64_list"), f(feature_pb2.FloatList, "value")], np.int64)


class ExampleColumns:
    """The first value of each of ``names`` in many serialized ``tf.Example`` s.

    ``kinds[j]`` is ``"float"``, ``"int"`` or ``"string"``: the list type expected for
    ``names[j]``. :meth:`parse` returns (numbers, string ranges, wrong, bad): ``numbers[i, j]``
    the value as float64 (NaN when absent or empty), ``ranges[:, i, j]`` the (start, end) of a
    string value in ``buf`` (-1 when absent), ``wrong[i, j]`` whether the example carries the
    feature with another list type (then it is absent), ``bad[i]`` whether the example is not
    valid wire format (its other outputs are then partial).
    """

    def __init__(self, names: Sequence[str], kinds: Sequence[str]):
        codes = {"float": KIND_FLOAT, "int": KIND_INT, "string": KIND_STRING}
        self._names = _names(names)
        self._kinds = np.array([codes[k] for k in kinds], np.int64)
        self._numbers = _example_numbers()

    def parse(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        return _example_columns(buf, np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64),
                                *self._names, self._kinds, self._numbers, _scratch())


@numba.njit(cache=True, nogil=True)
def _group(buf, starts, ends):
    """(code of each range, -1 where ``starts`` is -1; row of each code's first occurrence):
    equal bytes get equal codes. An open-addressing table of codes, probed by an FNV-1a hash
    and confirmed by comparing the bytes (numba's typed dict was twice as slow here)."""
    n = starts.size
    size = 64
    while size < 2 * n:
        size *= 2
    table = np.full(size, -1, np.int64)
    codes = np.full(n, -1, np.int64)
    first = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        s, e = starts[i], ends[i]
        if s < 0:
            continue
        h = np.uint64(14695981039346656037)
        for t in range(s, e):
            h = (h ^ np.uint64(buf[t])) * np.uint64(1099511628211)
        slot = np.int64(h & np.uint64(size - 1))
        while True:
            c = table[slot]
            if c < 0:
                table[slot] = k
                first[k] = i
                codes[i] = k
                k += 1
                break
            r = first[c]
            same = ends[r] - starts[r] == e - s
            if same:
                for t in range(e - s):
                    if buf[starts[r] + t] != buf[s + t]:
                        same = False
                        break
            if same:
                codes[i] = c
                break
            slot = (slot + 1) & (size - 1)
    return codes, first[:k]


def group_strings(raw: bytes, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Object array of str (None where ``starts`` is -1) for the byte ranges ``buf[starts:ends]``,
    decoding each distinct value once (invalid UTF-8 replaced)."""
    starts = np.ascontiguousarray(starts, np.int64)
    ends = np.ascontiguousarray(ends, np.int64)
    codes, first = _group(buf, starts, ends)
    labels = np.array([raw[starts[r]:ends[r]].decode("utf-8", "replace") for r in first.tolist()] + [None],
                      dtype=object)
    return labels[codes]                         # code -1: the trailing None


# ---------------------------------------------------------------- PredictionLog records

# Called, not inlined, from _predict_logs: inlining its dozen call sites made it take a minute
# to compile, for ~0.3 us per record.


@numba.njit(cache=True, nogil=True)
def _field_call(buf, p, lim):
    return _field(buf, p, lim)


@numba.njit(cache=True, nogil=True)
def _match_call(buf, ks, ke, names, name_starts, slots):
    return _match(buf, ks, ke, names, name_starts, slots)


@numba.njit(cache=True, nogil=True)
def _two_messages(buf, p, end, a, b):
    """Walk the message ``buf[p:end]`` for the message fields ``a`` and ``b``: (ok, count of a,
    range of the last a, count of b, range of the last b). Not ok when it is malformed or
    either field is not length-delimited."""
    n_a, a_s, a_e, n_b, b_s, b_e = 0, -1, -1, 0, -1, -1
    while p < end:
        fn, wt, s, e, v, ok = _field(buf, p, end)
        if not ok or ((fn == a or fn == b) and wt != 2):
            return False, n_a, a_s, a_e, n_b, b_s, b_e
        p = e
        if fn == a:
            n_a += 1
            a_s, a_e = s, e
        elif fn == b:
            n_b += 1
            b_s, b_e = s, e
    return True, n_a, a_s, a_e, n_b, b_s, b_e


#: Order of the field numbers :func:`predict_logs` takes (``numbers``); the caller reads them
#: from the generated descriptors.
PREDICT_LOG_FIELDS = ("log_metadata", "predict_log", "timestamp_secs", "request", "response", "request_spec",
                      "inputs", "outputs", "version", "wrapper_value", "key", "value", "dtype", "content",
                      "float_val", "double_val", "string_val")
DT_FLOAT, DT_DOUBLE, DT_STRING = 1, 2, 7


@numba.njit(cache=True, nogil=True)
def _grow(a, need):
    if need <= a.shape[-1]:
        return a
    grown = np.empty((a.shape[0], max(need, 2 * a.shape[-1])), a.dtype)
    grown[:, :a.shape[-1]] = a
    return grown


@numba.njit(cache=True, nogil=True)
def _predict_logs(buf, starts, ends, num, other_kinds, names, name_starts, slots, id_name, n_classes, scratch):
    (log_metadata, predict_log, timestamp_secs, request, response, request_spec, inputs, outputs, version_f,
     wrapper_value, key_f, value_f, dtype_f, content_f, float_f, double_f, string_f) = (
        num[0], num[1], num[2], num[3], num[4], num[5], num[6], num[7], num[8], num[9], num[10], num[11], num[12],
        num[13], num[14], num[15], num[16])
    n = starts.size
    fast = np.ones(n, np.bool_)
    m = np.zeros(n, np.int64)
    version = np.full(n, -1, np.int64)
    timestamp = np.zeros(n, np.int64)
    rows = np.empty((4, n + 16), np.int64)        # example start, end; request id start, end
    prob = np.empty((2, n + 16), np.float64)     # the prediction; the top-class probability (multi-class)
    k = 0
    for i in range(n):
        # PredictionLog: exactly one predict_log, no other kind of log
        p, lim = starts[i], ends[i]
        n_predict, ps, pe, ms, me = 0, -1, -1, -1, -1
        while p < lim and fast[i]:
            fn, wt, s, e, v, ok = _field_call(buf, p, lim)
            if not ok:
                fast[i] = False
                break
            p = e
            if fn == predict_log:
                n_predict += 1
                ps, pe = s, e
                if wt != 2:
                    fast[i] = False
            elif fn == log_metadata and wt == 2:
                ms, me = s, e
            else:
                for kind in other_kinds:
                    if fn == kind:
                        fast[i] = False
        if not fast[i] or n_predict != 1:
            fast[i] = False
            continue
        p = ms
        while p < me:                               # the log time (a malformed metadata is ignored)
            fn, wt, s, e, v, ok = _field_call(buf, p, me)
            if not ok:
                break
            p = e
            if fn == timestamp_secs and wt == 0:
                timestamp[i] = v
        # PredictLog: one request, at most one response
        ok, n_req, rs, re_, n_resp, ss, se = _two_messages(buf, ps, pe, request, response)
        if not ok or n_req != 1 or n_resp > 1:
            fast[i] = False
            continue
        # PredictRequest: the model version and one input of serialized examples
        ok, n_inputs, es, ee, _, vs, ve = _two_messages(buf, rs, re_, inputs, request_spec)
        if not ok or n_inputs != 1:
            fast[i] = False
            continue
        p = vs
        while p < ve:                               # ModelSpec.version, an Int64Value (empty: 0)
            fn, wt, s, e, v, ok = _field_call(buf, p, ve)
            if not ok:
                break
            p = e
            if fn == version_f and wt == 2:
                version[i] = 0
                q = s
                while q < e:
                    fn2, wt2, s2, e2, v2, ok2 = _field_call(buf, q, e)
                    if not ok2:
                        break
                    q = e2
                    if fn2 == wrapper_value and wt2 == 0:
                        version[i] = v2
        n_values, ts, te = 0, -1, -1
        p = es
        while p < ee:                               # the map entry: its tensor
            fn, wt, s, e, v, ok = _field_call(buf, p, ee)
            if not ok:
                fast[i] = False
                break
            p = e
            if fn == value_f:
                n_values += 1
                ts, te = s, e
        if not fast[i] or n_values != 1:
            fast[i] = False
            continue
        k0, dtype = k, 0
        p = ts
        while p < te:                               # TensorProto of DT_STRING: the examples
            fn, wt, s, e, v, ok = _field_call(buf, p, te)
            if not ok or (fn == string_f and wt != 2):
                fast[i] = False
                break
            p = e
            if fn == dtype_f and wt == 0:
                dtype = v
            elif fn == string_f:
                rows = _grow(rows, k + 1)
                rows[0, k], rows[1, k], rows[2, k], rows[3, k] = s, e, -1, -1
                k += 1
        if not fast[i] or dtype != DT_STRING:
            fast[i] = False
            k = k0
            continue
        count = k - k0
        m[i] = count
        prob = _grow(prob, k)
        prob[0, k0:k] = np.nan
        prob[1, k0:k] = np.nan
        if n_resp == 0:
            continue
        # PredictResponse: the probability (the best-named float output) and the request ids
        best_rank, best_dtype, best_s, best_e, best_simple = 1 << 30, 0, -1, -1, True
        p = ss
        while p < se and fast[i]:
            fn, wt, s, e, v, ok = _field_call(buf, p, se)
            if not ok:
                fast[i] = False
                break
            p = e
            if fn != outputs or wt != 2:
                continue
            ks, ke, vs2, ve2 = -1, -1, -1, -1
            q = s
            while q < e:                            # the map entry: key, tensor
                fn2, wt2, s2, e2, v2, ok2 = _field_call(buf, q, e)
                if not ok2:
                    fast[i] = False
                    break
                q = e2
                if fn2 == key_f and wt2 == 2:
                    ks, ke = s2, e2
                elif fn2 == value_f and wt2 == 2:
                    vs2, ve2 = s2, e2
            if not fast[i] or ks < 0 or vs2 < 0:
                continue
            dt, cs, ce, n_packed, simple, n_strings = 0, -1, -1, 0, True, 0
            q = vs2
            while q < ve2:                          # the tensor: dtype, values, strings
                fn2, wt2, s2, e2, v2, ok2 = _field_call(buf, q, ve2)
                if not ok2:
                    fast[i] = False
                    break
                q = e2
                if fn2 == dtype_f and wt2 == 0:
                    dt = v2
                elif fn2 == content_f or fn2 == float_f or fn2 == double_f:
                    if wt2 != 2:
                        simple = False              # unpacked values: left to the protobuf library
                    elif e2 > s2:
                        n_packed += 1
                        if cs < 0:
                            cs, ce = s2, e2
                elif fn2 == string_f and wt2 == 2:
                    n_strings += 1
            if not fast[i]:
                continue
            name = _match_call(buf, ks, ke, names, name_starts, slots)
            if (dt == DT_FLOAT or dt == DT_DOUBLE) and name != id_name:
                rank = name if name >= 0 else id_name
                if rank < best_rank:
                    best_rank, best_dtype, best_s, best_e = rank, dt, cs, ce
                    best_simple = simple and n_packed <= 1
            elif dt == DT_STRING and name == id_name and n_strings == count:
                t = k0
                q = vs2
                while q < ve2:
                    fn2, wt2, s2, e2, v2, ok2 = _field_call(buf, q, ve2)
                    q = e2
                    if fn2 == string_f and wt2 == 2:
                        rows[2, t], rows[3, t] = s2, e2
                        t += 1
        if not fast[i]:
            k = k0
            m[i] = 0
            continue
        if best_rank == 1 << 30 or best_s < 0:
            continue
        if not best_simple:
            fast[i] = False
            k = k0
            m[i] = 0
            continue
        width = 8 if best_dtype == DT_DOUBLE else 4
        size = best_e - best_s
        if size % width:
            continue
        values = size // width
        if n_classes > 0:                           # multi-class: K probabilities per example
            if values != n_classes * count:
                continue
            for t in range(count):
                best, best_c = -np.inf, -1
                for c in range(n_classes):
                    at = best_s + (t * n_classes + c) * width
                    v = _float32(buf, at, scratch) if width == 4 else _float64(buf, at, scratch)
                    if v > best:
                        best, best_c = v, c
                if best_c >= 0:
                    prob[0, k0 + t] = best_c
                    prob[1, k0 + t] = best
            continue
        if values == count:
            step, first = 1, 0
        elif values == 2 * count and n_classes == 0:   # a binary [n, 2] output: the positive class
            step, first = 2, 1
        else:
            continue                                # (regression: one value per example only)
        for t in range(count):
            at = best_s + (first + step * t) * width
            if width == 4:
                prob[0, k0 + t] = _float32(buf, at, scratch)
            else:
                prob[0, k0 + t] = _float64(buf, at, scratch)
    return fast, m, version, timestamp, rows[:, :k], prob[:, :k]


class PredictLogs:
    """The parts of many serialized ``PredictionLog`` s the monitor reads, in one pass each.

    ``numbers``: the field numbers named in :data:`PREDICT_LOG_FIELDS`; ``other_kinds``: the
    field numbers of the other log kinds (a record carrying one is not for this path);
    ``probability_outputs``: output names in order of preference for the probability (a float
    output of another name comes after them); ``request_id_output``: the output holding one
    request id per example.

    :meth:`parse` returns ``(fast, m, version, timestamp, rows, prob)``: ``fast[i]`` whether
    record i is a ``predict_log`` of serialized examples this path reads completely (else the
    caller decodes it with the protobuf library, which also reports malformed records);
    ``m[i]`` its number of examples; ``version[i]`` the model version of its request (-1 when
    absent), ``timestamp[i]`` its log time (0 when absent); for each example of the fast
    records, in order, ``rows[0:2]`` the byte range of the ``tf.Example``, ``rows[2:4]`` that of
    its request id (-1 when none) and ``prob`` the probability (NaN when no usable output).
    """

    def __init__(self, numbers: Sequence[int], other_kinds: Sequence[int], probability_outputs: Sequence[str],
                 request_id_output: str, n_classes: int = 0):
        self._names = _names(list(probability_outputs) + [request_id_output])
        self._id_name = len(probability_outputs)
        self._numbers = np.asarray(numbers, np.int64)
        self._other = np.asarray(other_kinds, np.int64)
        # 0: one value per example, or two (a binary [n, 2] output: the second); -1: one value
        # only (regression); K > 0: K class probabilities, read as (argmax, max)
        self._n_classes = int(n_classes)

    def parse(self, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        return _predict_logs(buf, np.ascontiguousarray(starts, np.int64), np.ascontiguousarray(ends, np.int64),
                             self._numbers, self._other, *self._names, self._id_name, self._n_classes, _scratch())


def compile_kernels() -> None:
    """Compile (or load from numba's cache) every kernel here for the argument types the
    decoder passes, on a few bytes of input: ``make setup`` calls it so that the first
    ``driftguard monitor`` does not spend ~30 s compiling."""
    buf = np.frombuffer(bytes(16), np.uint8)
    one = np.zeros(1, np.int64)
    numbers = np.zeros(len(PREDICT_LOG_FIELDS), np.int64)
    names = _names(["a"])
    _predict_logs(buf, one, one + 4, numbers, one, *names, 0, 0, _scratch())
    _example_columns(buf, one, one + 4, *names, one, np.zeros(8, np.int64), _scratch())
    _group(buf, one, one + 1)
