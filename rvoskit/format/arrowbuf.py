"""Arrow arrays to and from numpy through their buffers, without pandas.

pyarrow imports pandas (~0.3 s of CPU) on ``pa.array``, ``pa.scalar``, ``to_numpy``, ``to_pandas``,
``pq.read_table`` and compute calls given Python scalars: a cost every ``rvoskit eval`` and
``rvoskit pseudolabel`` paid at start-up though neither needs a DataFrame (issue 13). These build
the same arrays (same types, same nulls) from buffers.
"""

from __future__ import annotations

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


def strings(values: Sequence[str | None], type: pa.DataType = pa.string()) -> pa.Array:
    """Text (None = null) as a ``string`` or ``large_string`` array, as ``pa.array(values, type)``."""
    n = len(values)
    valid = np.fromiter((v is not None for v in values), bool, n)
    enc = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(np.fromiter(map(len, enc), np.int64, n), out=offsets[1:])
    if pa.types.is_string(type):
        if offsets[-1] >= 2**31:
            raise ValueError("more than 2 GiB of text in one string array")
        offsets = offsets.astype(np.int32)
    bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(type, n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(b"".join(enc))], null_count=int(n - valid.sum()))


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
