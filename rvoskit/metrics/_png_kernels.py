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

from rvoskit._jit import prepare_numba

prepare_numba()  # before numba: see rvoskit._jit
from numba import njit  # noqa: E402


@njit(cache=True, nogil=True)
def unfilter(rows):
    """Undo the filters of ``rows`` ``(H, W + 1)`` uint8 (filter type, then the row) in place:
    afterwards ``rows[:, 1:]`` holds the pixels (as libpng does it, each byte is read before it
    is overwritten, and only decoded bytes are used as neighbours). Returns False (the rows then
    half decoded) on a filter type above 4."""
    H, W1 = rows.shape
    for r in range(H):
        f = rows[r, 0]
        if f == 0:
            continue
        if f == 1:
            a = 0
            for i in range(1, W1):
                a = (rows[r, i] + a) & 255
                rows[r, i] = a
        elif f == 2:
            if r > 0:
                for i in range(1, W1):
                    rows[r, i] = (rows[r, i] + rows[r - 1, i]) & 255
        elif f == 3:
            a = 0
            for i in range(1, W1):
                b = np.int64(rows[r - 1, i]) if r > 0 else 0
                a = (rows[r, i] + ((a + b) >> 1)) & 255
                rows[r, i] = a
        elif f == 4:
            a = 0
            c = 0
            for i in range(1, W1):
                b = np.int64(rows[r - 1, i]) if r > 0 else 0
                if b == c:  # then p == a: pa == 0 wins (most pixels of a mask)
                    pred = a
                else:
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
                a = (rows[r, i] + pred) & 255
                rows[r, i] = a
                c = b
        else:
            return False
    return True


def warm() -> None:
    """Compile (or load from the disk cache) :func:`unfilter` for uint8 arrays."""
    rows = np.zeros((5, 4), np.uint8)  # C-contiguous and writable, as pngread passes it
    rows[:, 0] = np.arange(5)
    unfilter(rows)
