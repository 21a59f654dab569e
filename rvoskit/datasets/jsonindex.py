"""Stream the top-level items of a large JSON object without loading it whole.

MeViS ``mask_dict.json`` (``{anno_id: [rle | null, ...]}``) is gigabytes for the train split;
converting it must not hold it in memory. :class:`JsonObjectIndex` scans the file once, keeping
only each key's byte range, then parses one value at a time on demand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rvoskit.errors import RvosError

_WS = " \t\n\r"


class JsonObjectIndex:
    """Byte-range index of the top-level keys of a JSON object file.

    Args:
        path: the JSON file; its top level must be an object.
        chunk: read size in bytes.

    Raises:
        RvosError: non-UTF-8 bytes, truncated or invalid JSON, a top level that is not an object,
            or a duplicate top-level key (each names the file and the position or key).
    """

    def __init__(self, path: str | Path, chunk: int = 1 << 22):
        self.path = Path(path)
        if not self.path.is_file():
            raise RvosError("missing file", file=self.path)
        self.ranges: dict[str, tuple[int, int]] = {}
        self._scan(chunk)

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
