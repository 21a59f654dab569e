"""Arrow arrays to and from numpy through their buffers, without pandas.

pyarrow imports pandas (~0.3 s of CPU) on ``pa.array``, ``pa.scalar``, ``to_numpy``, ``to_pandas``,
``pq.read_table`` and compute calls given Python scalars: a cost every ``rvoskit eval`` and
``rvoskit pseudolabel`` paid at start-up though neither needs a DataFrame (issue 13). These build
the same arrays (same types, same nulls) from buffers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def from_numpy(a: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A numeric or bool numpy array as an Arrow array of its type (``valid``: False = null), as
    ``pa.array(a)`` (or with ``mask=~valid``) makes it."""
    a = np.ascontiguousarray(a)
    n = len(a)
    bitmap, nulls = None, 0
    if valid is not None and not valid.all():
        bitmap, nulls = pa.py_buffer(np.packbits(valid, bitorder="little")), int(n - valid.sum())
    if a.dtype == np.bool_:
        return pa.Array.from_buffers(pa.bool_(), n, [bitmap, pa.py_buffer(np.packbits(a, bitorder="little"))], null_count=nulls)
    return pa.Array.from_buffers(pa.from_numpy_dtype(a.dtype), n, [bitmap, pa.py_buffer(a)], null_count=nulls)


def strings(values: Sequence[str | bytes | None], type: pa.DataType = pa.string()) -> pa.Array:
    """Text (None = null) as a ``string`` or ``large_string`` array, or bytes as a ``binary`` one,
    as ``pa.array(values, type)`` makes it.

    Raises:
        UnicodeEncodeError: a string that is not valid Unicode (a lone surrogate), as ``pa.array``.
        ValueError: 2 GiB or more of bytes in a ``string`` / ``binary`` array.
    """
    n = len(values)
    valid = None
    if None in values:
        valid = np.fromiter((v is not None for v in values), bool, n)
        values = [(b"" if pa.types.is_binary(type) else "") if v is None else v for v in values]
    if pa.types.is_binary(type):
        data, enc = b"".join(values), values
    else:
        joined = "".join(values)
        data = joined.encode()
        enc = values if len(data) == len(joined) else [v.encode() for v in values]  # all ASCII: 1 byte per character
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, enc), np.int64, n), out=offsets[1:])
    if not pa.types.is_large_string(type):
        if offsets[-1] >= 2**31:
            raise ValueError(f"2 GiB or more of bytes in one {type} array")
        offsets = offsets.astype(np.int32)
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(type, n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=0 if valid is None else int(n - valid.sum()))


def to_numpy(c: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column without nulls as numpy, as ``to_numpy()`` gives it: numbers from their buffers
    (a copy), anything else (text, binary) as an object array of Python values."""
    chunks = c.chunks if isinstance(c, pa.ChunkedArray) else [c]
    if pa.types.is_integer(c.type) or pa.types.is_floating(c.type):
        dt = np.dtype(c.type.to_pandas_dtype())
        parts = [np.frombuffer(a.buffers()[1], dt, count=a.offset + len(a))[a.offset :] if len(a) else np.zeros(0, dt) for a in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dt)
    out = np.empty(len(c), object)
    out[:] = c.to_pylist()
    return out


def list_lengths(a: pa.Array) -> np.ndarray:
    """``int64`` lengths of the lists of a ``list`` array (its offsets; nulls have length 0)."""
    off = to_numpy(a.offsets).astype(np.int64)
    return np.diff(off)


_type_of = type  # (parameters below are named type)
_INT_RANGE = {pa.int8(): (-(1 << 7), 1 << 7), pa.int16(): (-(1 << 15), 1 << 15), pa.int32(): (-(1 << 31), 1 << 31),
              pa.int64(): (-(1 << 63), 1 << 63)}


def _column(values: list, type: pa.DataType) -> pa.Array | None:
    """``values`` (None = null) as an array of ``type``, or None for anything :func:`from_pylist` does
    not build (the caller then lets ``pa.array`` decide, errors included)."""
    n = len(values)
    present = [v for v in values if v is not None]
    kinds = set(map(_type_of, present))
    valid = None if len(present) == n else np.fromiter((v is not None for v in values), bool, n)
    if pa.types.is_string(type) or pa.types.is_binary(type):
        if not kinds <= ({str} if pa.types.is_string(type) else {bytes}):
            return None
        try:
            return strings(values, type)
        except (UnicodeEncodeError, ValueError):  # lone surrogates, >= 2 GiB: pa.array's error
            return None
    if type in _INT_RANGE:
        lo, hi = _INT_RANGE[type]
        if not kinds <= {int} or (present and not (lo <= min(present) and max(present) < hi)):  # bool, float, numpy: pa.array
            return None
        return from_numpy(np.array([0 if v is None else v for v in values], dtype=type.to_pandas_dtype()), valid)
    if pa.types.is_float64(type):
        if not kinds <= {float, int} or any(not -(1 << 53) <= x <= 1 << 53 for x in present if x.__class__ is int):
            return None
        return from_numpy(np.array([0.0 if v is None else v for v in values], dtype=np.float64), valid)
    if pa.types.is_list(type):
        if not kinds <= {list}:
            return None
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(np.fromiter(map(len, present), np.int64, len(present)) if valid is None else
                  np.fromiter((0 if v is None else len(v) for v in values), np.int64, n), out=offsets[1:])
        if offsets[-1] >= 2**31:
            return None
        child = _column(list(itertools.chain.from_iterable(present)), type.value_type)
        if child is None:
            return None
        bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
        return pa.ListArray.from_buffers(type, n, [bitmap, pa.py_buffer(offsets.astype(np.int32))], children=[child],
                                         null_count=0 if valid is None else int(n - valid.sum()))
    return None


def from_pylist(rows: Sequence[dict], schema: pa.Schema) -> pa.Table | None:
    """Row dicts as a table of ``schema``, as ``pa.Table.from_pylist(rows, schema=schema)`` makes it
    (a missing key is null, other keys are ignored), without importing pandas (``pa.array`` on a
    list does, ~0.3-0.7 s of CPU: ``convert`` writes its small tables this way).

    Builds strings, binaries, int8/16/32/64, float64 and lists of these, from values of exactly the
    column's Python type (``str``, ``bytes``, ``int``, ``float`` or an ``int`` within 2**53, ``list``)
    or None. Returns None for anything else (a bool in an integer column, an out-of-range integer,
    a tuple, another column type...): the caller then calls ``pa.Table.from_pylist``, which gives
    the same table or raises its own error.
    """
    cols = []
    for f in schema:
        a = _column([r.get(f.name) for r in rows], f.type)
        if a is None:
            return None
        cols.append(a)
    return pa.Table.from_arrays(cols, schema=schema)
