"""Stream the top-level items of a large JSON object without loading it whole.

MeViS ``mask_dict.json`` (``{anno_id: [rle | null, ...]}``) is gigabytes for the train split;
converting it must not hold it in memory. :class:`JsonObjectIndex` scans the file once, keeping
only each key's byte range, then parses one value at a time on demand.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rvoskit.errors import RvosError

_WS = " \t\n\r"


class JsonObjectIndex:
    """Byte-range index of the top-level keys of a JSON object file.

    A file in the shape of MeViS ``mask_dict.json`` (lists of ``{"size", "counts"}`` / ``null``
    values, plain ASCII strings) is scanned by a compiled kernel
    (:mod:`rvoskit.datasets.maskdict_scan`); any other file, and any file the kernel does not take whole (escapes, other
    values, invalid JSON), by the exact Python scan, which gives the same ranges or the same errors.

    Args:
        path: the JSON file; its top level must be an object.
        chunk: read size in bytes.
        fast: try the compiled scan first (``False``: the Python scan only).

    Attributes:
        ranges: ``{key: (start, end)}`` byte range of each value.
        fast: True when the compiled scan read the file (every value is then in the subset that
            :func:`rvoskit.datasets.maskdict_scan.parse_values` parses).

    Raises:
        RvosError: non-UTF-8 bytes, truncated or invalid JSON, a top level that is not an object,
            or a duplicate top-level key (each names the file and the position or key).
    """

    def __init__(self, path: str | Path, chunk: int = 1 << 22, *, fast: bool = True):
        self.path = Path(path)
        if not self.path.is_file():
            raise RvosError("missing file", file=self.path)
        self.ranges: dict[str, tuple[int, int]] = {}
        self.fast = False
        self._raw = threading.local()  # read_raw(reuse=True): a buffer per thread
        if fast and self._scan_fast(4 * chunk):
            self.fast = True
            return
        self.ranges = {}
        self._scan(chunk)

    def _scan_fast(self, chunk: int) -> bool:
        """The compiled scan; False (ranges incomplete) when it does not take the file whole."""
        try:
            from numba import config

            from rvoskit.datasets import maskdict_scan as ms
        except ImportError:  # numba missing: the Python scan
            return False
        if config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1: the kernels would run as (slow) Python
            return False
        buf = np.empty(chunk, np.uint8)
        cap = 1 << 14
        ks, ke, vs, ve = (np.empty(cap, np.int64) for _ in range(4))
        with open(self.path, "rb", buffering=0) as f:

            def fill(at: int) -> int:
                return f.readinto(memoryview(buf)[at:])

            n = fill(0)
            i = 0
            while i < n and buf[i] in (32, 9, 10, 13):
                i += 1
            if i >= n or buf[i] != 123:  # '{' (a file that does not start so: the Python scan's error)
                return False
            i += 1
            base, first, eof = 0, True, False
            while True:
                code, i, nk, _ = ms.scan_top(buf, i, n, first, ks, ke, vs, ve, 0)
                for k in range(nk):
                    key = buf[ks[k] : ke[k]].tobytes().decode("ascii")
                    if key in self.ranges:  # the Python scan names it
                        return False
                    self.ranges[key] = (base + int(vs[k]), base + int(ve[k]))
                first = first and nk == 0
                if code == ms.DONE:
                    break
                if code == ms.BAIL:
                    return False
                if code == ms.NEED_MORE:
                    if eof:
                        return False
                    rem = n - i
                    if rem > buf.size // 2:  # one entry larger than half the buffer
                        new = np.empty(buf.size * 2, np.uint8)
                        new[:rem] = buf[i:n]
                        buf = new
                    else:
                        buf[:rem] = buf[i:n].copy()
                    base += i
                    i, n = 0, rem
                    got = fill(n)
                    n += got
                    eof = got == 0
        return True  # the bytes after the closing brace are ignored, as by the Python scan

    def _scan(self, chunk: int) -> None:
        dec = json.JSONDecoder()
        f = open(self.path, "rb")
        buf = ""
        base = 0  # byte offset of buf[0]
        eof = False

        def more() -> bool:
            nonlocal buf, eof
            if eof:
                return False
            data = f.read(chunk)
            if not data:
                eof = True
                return False
            try:
                text = data.decode("ascii")
            except UnicodeDecodeError:
                # rare: non-ASCII inside the file; decode exactly, offsets then need bytes
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise RvosError(f"not valid UTF-8 near byte {base + len(buf.encode()) + exc.start}", file=self.path) from None
                raise RvosError("non-ASCII characters in a mask_dict-style file are not supported by the streaming reader", file=self.path)
            buf += text
            return True

        def skip_ws(i: int) -> int:
            while True:
                while i < len(buf) and buf[i] in _WS:
                    i += 1
                if i < len(buf) or not more():
                    return i

        def fail(msg: str, i: int):
            kind = "truncated or invalid JSON (the file ends inside a value)" if eof else "invalid JSON"
            raise RvosError(f"{kind}: {msg} at byte {base + i}", file=self.path)

        try:
            more()
            i = skip_ws(0)
            if i >= len(buf) or buf[i] != "{":
                fail("expected '{'", i)
            i = skip_ws(i + 1)
            if i < len(buf) and buf[i] == "}":
                return
            while True:
                # key
                while True:
                    try:
                        key, j = dec.raw_decode(buf, i)
                        break
                    except json.JSONDecodeError:
                        if not more():
                            fail("bad key", i)
                if not isinstance(key, str):
                    fail("expected a string key", i)
                j = skip_ws(j)
                if j >= len(buf) or buf[j] != ":":
                    fail("expected ':'", j)
                j = skip_ws(j + 1)
                # value: parse to find its end (values are small: one object's frames)
                while True:
                    try:
                        _, k = dec.raw_decode(buf, j)
                        if k == len(buf) and more():  # a number may continue in the next chunk
                            continue
                        break
                    except json.JSONDecodeError as exc:
                        if not more():
                            fail(exc.msg, exc.pos)
                if key in self.ranges:
                    raise RvosError(f"duplicate key {key!r}", file=self.path, item=key)
                self.ranges[key] = (base + j, base + k)
                k = skip_ws(k)
                if k >= len(buf):
                    fail("expected ',' or '}'", k)
                if buf[k] == "}":
                    return
                if buf[k] != ",":
                    fail("expected ',' or '}'", k)
                i = skip_ws(k + 1)
                if i >= chunk:  # drop the consumed prefix now and then: bounded memory, linear copying
                    base += i
                    buf = buf[i:]
                    i = 0
        finally:
            f.close()

    def __contains__(self, key: str) -> bool:
        return key in self.ranges

    def __len__(self) -> int:
        return len(self.ranges)

    def get(self, key: str) -> Any:
        """Parse and return the value of ``key``.

        Raises:
            KeyError: unknown key.
        """
        start, end = self.ranges[key]
        with open(self.path, "rb") as f:
            f.seek(start)
            return json.loads(f.read(end - start))

    def read_raw(self, keys: Sequence[str], *, reuse: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The bytes of several values, concatenated: ``(uint8 (N,), starts int64 (K,), ends int64 (K,))``
        with value ``k`` at ``[starts[k], ends[k])`` (no parsing).

        Args:
            keys: the keys, in the order wanted.
            reuse: read into a buffer the index keeps for the calling thread (no new memory per
                call; the array is then only valid until that thread's next ``reuse`` call).

        Raises:
            KeyError: unknown key.
        """
        spans = [self.ranges[k] for k in keys]
        lens = np.fromiter((e - s for s, e in spans), np.int64, len(spans))
        ends = np.cumsum(lens)
        size = int(ends[-1]) if len(spans) else 0
        if reuse:
            if getattr(self._raw, "buf", None) is None or self._raw.buf.size < size:
                self._raw.buf = np.empty(max(size, 1 << 20), np.uint8)
            buf = self._raw.buf[:size]
        else:
            buf = np.empty(size, np.uint8)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            mv = memoryview(buf)
            for (s, e), at in zip(spans, ends - lens):
                at = int(at)
                while s < e:  # pread may return less than asked
                    got = os.preadv(fd, [mv[at : at + e - s]], s)
                    if got <= 0:
                        raise RvosError("file changed while reading (truncated)", file=self.path)
                    s += got
                    at += got
        finally:
            os.close(fd)
        return buf, ends - lens, ends
