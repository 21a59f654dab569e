"""Compiled (numba) RLE intersections for :mod:`rvoskit.labels` at the native size.

Two kernels on compressed COCO RLE strings (the bytes pycocotools writes):

* :func:`parse` parses many strings into their run lengths (``maskApi.c`` ``rleFrString``:
  5-bit groups, sign bit, counts after the third relative to the one two before), and for each
  its area (``rleArea``: the sum of the odd runs) and the first and last foreground pixel. A
  string that is not what pycocotools' encoder writes (a character outside the alphabet, a
  truncated run, a run over 12 characters, a negative or over-32-bit run, a total other than
  ``H * W``) gets status 1, and the caller computes that video with pycocotools instead.
* :func:`intersections` counts ``|A & B|`` for pairs of parsed masks by walking the foreground
  runs of both from the first pixel either could share (binary search) to the last.

``IoU = i / (|A| + |B| - i)`` in float64 from these integers is pycocotools' own
``(double) i / (double) u`` (``rleIou``), bit for bit.

Compiled on first use and cached on disk (``cache=True``); :func:`warm` compiles them.
"""

from __future__ import annotations

import numpy as np

from rvoskit._jit import prepare_numba

prepare_numba()  # before numba: see rvoskit._jit
from numba import njit  # noqa: E402

_U32 = 0xFFFFFFFF


@njit(cache=True, nogil=True)
def parse(buf, starts, ends, total, runs, nruns, area, first, last, status):
    """Parse strings ``buf[starts[q]:ends[q]]`` into ``runs[starts[q]:starts[q] + nruns[q]]``
    (cumulative run ends, int64), with ``area``, ``first`` (first foreground pixel) and ``last``
    (one past the last) per string; ``status[q] = 1`` where the string is not a valid RLE of
    ``total`` pixels."""
    for q in range(starts.size):
        p, e, o = starts[q], ends[q], starts[q]
        m = 0
        pos = 0
        a = 0
        f = -1
        l_ = 0
        bad = 0
        prev2 = 0  # counts[m - 2]
        prev1 = 0  # counts[m - 1]
        while p < e:
            x = 0
            k = 0
            more = 1
            while more:
                if p >= e or k > 12:
                    bad = 1
                    break
                c = np.int64(buf[p]) - 48
                if c < 0 or c > 63:
                    bad = 1
                    break
                x |= (c & 0x1F) << (5 * k)
                more = c & 0x20
                p += 1
                k += 1
                if not more and (c & 0x10):
                    x |= -1 << (5 * k)
            if bad:
                break
            if m > 2:
                x += prev2
            if x < 0 or x > _U32:
                bad = 1
                break
            runs[o + m] = pos + x
            if m % 2 == 1 and x > 0:
                if f < 0:
                    f = pos
                l_ = pos + x
                a += x
            pos += x
            prev2 = prev1
            prev1 = x
            m += 1
        if pos != total:
            bad = 1
        nruns[q] = m
        area[q] = a
        first[q] = f
        last[q] = l_
        status[q] = bad


@njit(cache=True, nogil=True)
def _lower(runs, lo, hi, x):
    """First index j in [lo, hi) with runs[j] > x (runs are cumulative ends, non-decreasing)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if runs[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@njit(cache=True, nogil=True)
def intersections(runs, starts, nruns, first, last, pa, pb, out):
    """``out[k] = |A & B|`` for the parsed masks ``pa[k]`` and ``pb[k]``."""
    for k in range(pa.size):
        a, b = pa[k], pb[k]
        if first[a] < 0 or first[b] < 0:
            out[k] = 0
            continue
        lo = max(first[a], first[b])
        hi = min(last[a], last[b])
        if lo >= hi:
            out[k] = 0
            continue
        oa, ob = starts[a], starts[b]
        na, nb = nruns[a], nruns[b]
        # the foreground run (odd index) that ends after pixel lo, in each mask
        i = _lower(runs, oa, oa + na, lo) - oa
        j = _lower(runs, ob, ob + nb, lo) - ob
        i += 1 - (i & 1)
        j += 1 - (j & 1)
        s = 0
        while i < na and j < nb:
            a0 = runs[oa + i - 1]
            b0 = runs[ob + j - 1]
            if a0 >= hi or b0 >= hi:
                break
            a1 = runs[oa + i]
            b1 = runs[ob + j]
            o = min(a1, b1) - max(a0, b0)
            if o > 0:
                s += o
            if a1 <= b1:
                i += 2
            else:
                j += 2
        out[k] = s


def warm() -> None:
    """Compile (or load from the disk cache) both kernels on a tiny input."""
    buf = np.frombuffer(b"21", np.uint8)
    starts, ends = np.zeros(1, np.int64), np.full(1, 2, np.int64)
    runs = np.zeros(2, np.int64)
    nruns, area, first, last, status = (np.zeros(1, np.int64) for _ in range(5))
    parse(buf, starts, ends, 3, runs, nruns, area, first, last, status)
    intersections(runs, starts, nruns, first, last, np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64))
