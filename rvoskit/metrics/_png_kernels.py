"""Compiled (numba) PNG row unfiltering for :mod:`rvoskit.metrics.pngread`: all five filter types
(PNG spec, section 9) on 1-byte pixels, for the files numpy cannot undo row-parallel (rows
filtered with Average or Paeth, as Pillow's and libpng's adaptive filtering write gray masks).

Loading numba and this kernel from its disk cache costs ~0.5 s of CPU, so
:mod:`rvoskit.metrics.pngread` uses it only when told that enough pixels are to be read
(:func:`rvoskit.metrics.pngread.use_compiled`). Compiled on first use and cached on disk
(``cache=True``); :func:`warm` compiles it.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def unfilter(rows, out):
    """Undo the filters of ``rows`` ``(H, W + 1)`` uint8 (filter type, then the row) into ``out``
    ``(H, W)`` uint8. Returns False (``out`` then undefined) on a filter type above 4."""
    H, W = out.shape
    for r in range(H):
        f = rows[r, 0]
        if f == 0:
            for i in range(W):
                out[r, i] = rows[r, i + 1]
        elif f == 1:
            a = 0
            for i in range(W):
                a = (rows[r, i + 1] + a) & 255
                out[r, i] = a
        elif f == 2:
            if r == 0:
                for i in range(W):
                    out[r, i] = rows[r, i + 1]
            else:
                for i in range(W):
                    out[r, i] = (rows[r, i + 1] + out[r - 1, i]) & 255
        elif f == 3:
            a = 0
            for i in range(W):
                b = np.int64(out[r - 1, i]) if r > 0 else 0
                a = (rows[r, i + 1] + ((a + b) >> 1)) & 255
                out[r, i] = a
        elif f == 4:
            a = 0
            c = 0
            for i in range(W):
                b = np.int64(out[r - 1, i]) if r > 0 else 0
                p = a + b - c
                pa = abs(p - a)
                pb = abs(p - b)
                pc = abs(p - c)
                if pa <= pb and pa <= pc:
                    pred = a
                elif pb <= pc:
                    pred = b
                else:
                    pred = c
                a = (rows[r, i + 1] + pred) & 255
                out[r, i] = a
                c = b
        else:
            return False
    return True


def warm() -> None:
    """Compile (or load from the disk cache) :func:`unfilter` for uint8 arrays."""
    rows = np.zeros((5, 4), np.uint8)  # writable, as pngread passes it (libdeflate's bytearray)
    rows[:, 0] = np.arange(5)
    unfilter(rows, np.empty((5, 3), np.uint8))
