"""Fast path for the PNGs ``rvoskit eval`` reads most: 8-bit, one channel (DAVIS palette label
maps, MeViS / ReferFormer ``L`` masks), not interlaced.

Reading such a PNG is inflating its ``IDAT`` stream and undoing the per-row filters; Pillow and
libpng (``cv2.imread``) inflate with zlib, which copies the long runs of a label map a byte at a
time (~2 ms per 1280x720 frame, half of ``eval``'s time). Here the stream is inflated with
libdeflate (the ``deflate`` package, ~6x faster on label maps; zlib when it is missing) and the
filters are undone in numpy.

:func:`decode_u8` returns None whenever the file is anything else or anything is unusual (a bad
CRC or checksum, a chunk it does not know, a size mismatch, an Average or Paeth row): the caller
then reads the file as before (Pillow / OpenCV), so the values and the errors are the reference
reader's in every case, and the fast path only ever returns the array that reader would return.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

try:  # libdeflate: a runtime dependency; zlib gives the same bytes, slower
    from deflate import DeflateError as _DeflateError
    from deflate import zlib_decompress as _libdeflate_zlib
except ImportError:  # pragma: no cover - exercised by tests through monkeypatching
    _libdeflate_zlib = None
    _DeflateError = ValueError

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR, _IDAT, _IEND, _PLTE = b"IHDR", b"IDAT", b"IEND", b"PLTE"

#: Ancillary chunks that change nothing in the values either reader returns for an 8-bit gray
#: PNG (OpenCV's IMREAD_GRAYSCALE applies no gamma, colour profile or significant-bits shift
#: from these; text and time are metadata).
GRAY_SAFE = frozenset({b"tEXt", b"zTXt", b"iTXt", b"pHYs", b"tIME"})
#: Pillow's ``np.array(Image.open(f))`` of a palette (``P``) or gray (``L``) PNG is the stored
#: indices / values: palette, transparency, colour and gamma chunks do not change them.
LABEL_SAFE = GRAY_SAFE | frozenset({_PLTE, b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"bKGD", b"sBIT"})


_COMPILED = {"on": False, "kernel": None}


def use_compiled(on: bool) -> None:
    """Undo Average / Paeth rows with the compiled kernel (:mod:`rvoskit.metrics._png_kernels`)
    in this process from now on (``on``), or leave such files to the usual reader (the default).

    Loading numba and the kernel costs ~0.5 s of CPU once per process, and saves ~1.5 ns per
    pixel against ``cv2.imread`` (0.6 ms per 854x480 frame, 1.7 ms per 1280x720 frame): worth it
    from a few hundred million pixels (:data:`COMPILED_MIN_PIXELS`). Ignored without numba or
    with ``NUMBA_DISABLE_JIT`` set.
    """
    _COMPILED["on"] = bool(on)


#: Pixels to read in one process from which :func:`use_compiled` pays for itself with a margin
#: (break-even ~3.3e8: 0.5 s / 1.5 ns); ~1,000 frames at 854x480, ~430 at 1280x720.
COMPILED_MIN_PIXELS = 4e8


def _kernel():
    if _COMPILED["kernel"] is None:
        kernel = False
        if os.environ.get("NUMBA_DISABLE_JIT", "0") in ("", "0"):
            try:
                from rvoskit.metrics._png_kernels import unfilter as kernel
            except ImportError:  # pragma: no cover - numba is a dependency
                kernel = False
        _COMPILED["kernel"] = kernel
    return _COMPILED["kernel"] or None


def _inflate(stream: bytes, n: int) -> bytearray | None:
    """The zlib ``stream`` inflated to exactly ``n`` bytes, writable (None: bad data or another size)."""
    try:
        if _libdeflate_zlib is not None:
            raw = _libdeflate_zlib(stream, n)  # checks the Adler-32 of the output
        else:
            d = zlib.decompressobj()
            raw = d.decompress(stream, n + 1)
            if not d.eof:
                return None
    except (_DeflateError, zlib.error, ValueError, MemoryError):
        return None
    if len(raw) != n:
        return None
    return raw if isinstance(raw, bytearray) else bytearray(raw)  # the rows are undone in place


def decode_u8(data: bytes, color_types: tuple[int, ...] = (0,), safe: frozenset = GRAY_SAFE) -> np.ndarray | None:
    """Decode an 8-bit one-channel non-interlaced PNG to its ``(H, W)`` uint8 samples.

    Args:
        data: the whole file.
        color_types: the PNG colour types accepted: 0 (gray) and/or 3 (palette; the result is the
            palette indices, as Pillow returns them for a ``P`` image).
        safe: the ancillary chunks accepted (:data:`GRAY_SAFE` for ``cv2.imread(...,
            IMREAD_GRAYSCALE)``'s values, :data:`LABEL_SAFE` for Pillow's).

    Returns:
        A writable uint8 array of shape ``(H, W)`` (a view into the inflated rows, row stride
        ``W + 1``: index it, crop it, pass it to OpenCV; ``np.ascontiguousarray`` for a packed
        copy), or None when this fast path does
        not apply (another kind of PNG, a chunk not in ``safe``, a bad CRC or Adler-32, data of
        the wrong size, rows filtered with Average or Paeth, or not a PNG at all): read the file
        with the usual reader then. Never raises on bad input.
    """
    if data[:8] != _SIGNATURE:
        return None
    pos, end = 8, len(data)
    size = None
    idat: list[bytes] = []
    seen_idat = done_idat = has_plte = False
    color = -1
    try:
        while True:
            if pos + 12 > end:
                return None
            length, ctype = struct.unpack_from(">I4s", data, pos)
            body_end = pos + 8 + length
            if body_end + 4 > end:
                return None
            crc = struct.unpack_from(">I", data, body_end)[0]
            if zlib.crc32(memoryview(data)[pos + 4 : body_end]) != crc:
                return None
            if ctype == _IHDR:
                if pos != 8 or length != 13:
                    return None
                W, H, depth, color, comp, filt, interlace = struct.unpack_from(">IIBBBBB", data, pos + 8)
                if depth != 8 or color not in color_types or comp or filt or interlace or not (0 < W < 2**24 and 0 < H < 2**24):
                    return None
                size = (H, W)
            elif size is None:
                return None
            elif ctype == _IDAT:
                if done_idat:
                    return None  # IDAT chunks must be consecutive
                seen_idat = True
                idat.append(data[pos + 8 : body_end])
            elif ctype == _IEND:
                break
            else:
                if seen_idat:
                    done_idat = True
                if ctype not in safe or (ctype == _PLTE and (3 not in color_types or seen_idat)):
                    return None
                has_plte = has_plte or ctype == _PLTE
            pos = body_end + 4
    except struct.error:
        return None
    if not idat or (3 in color_types and color == 3 and not has_plte):
        return None
    H, W = size
    raw = _inflate(idat[0] if len(idat) == 1 else b"".join(idat), H * (W + 1))
    if raw is None:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(H, W + 1)  # writable: libdeflate and _inflate give a bytearray
    return unfilter(rows)


def unfilter(rows: np.ndarray) -> np.ndarray | None:
    """Undo the PNG row filters of 1-byte pixels in place: ``rows`` ``(H, W + 1)`` uint8, writable,
    the filter type then the filtered bytes of each row. None when a row uses an unknown filter
    type, or Average (3) or Paeth (4) unless :func:`use_compiled` is on (numpy undoes None, Sub
    and Up rows).

    Returns:
        ``rows[:, 1:]``: the ``(H, W)`` uint8 pixels, writable, a view with row stride ``W + 1``.
    """
    kinds = rows[:, 0]
    out = rows[:, 1:]
    if not kinds.any():  # filter None everywhere (Pillow writes palette images so)
        return out
    if (kinds > 2).any():
        kernel = _kernel() if _COMPILED["on"] else None
        return out if kernel is not None and kernel(rows) else None
    sub = np.flatnonzero(kinds == 1)
    if sub.size:  # Sub: running sum along the row, modulo 256
        out[sub] = np.cumsum(out[sub], axis=1, dtype=np.uint8)
    up = kinds == 2
    if up.any():  # Up: running sum down each run of Up rows, from the row above the run
        H = len(out)
        c = np.cumsum(out, axis=0, dtype=np.uint8)  # rows that are not Up hold their final values
        anchor = np.maximum.accumulate(np.where(up, -1, np.arange(H)))  # last row that is not Up, or -1
        before = np.zeros_like(c)
        before[1:] = c[:-1]  # before[a]: the sum of the rows above row a
        rows_up = np.flatnonzero(up)
        out[rows_up] = c[rows_up] - before[np.maximum(anchor[rows_up], 0)]
    return out
