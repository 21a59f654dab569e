"""Compiled (numba) scan of MeViS-style ``mask_dict.json`` bytes: the fast path of ``convert mevis``.

``mask_dict.json`` is ``{anno_id: [{"size": [H, W], "counts": "<COCO RLE>"} | null, ...], ...}``.
Two kernels read its bytes directly, without building a Python object per mask:

* :func:`scan_top` finds the byte range of every top-level key and value (what
  :class:`rvoskit.datasets.jsonindex.JsonObjectIndex` keeps), validating the JSON as it goes;
* :func:`parse_values` parses values (lists of RLE dicts / ``null``) and, for every RLE, checks its
  counts as :func:`rvoskit.format.rle.pixel_count` does (alphabet, truncation, runs of at most 12
  characters, no negative run, total = H x W), computes its area and box exactly as
  ``pycocotools.mask.area`` / ``toBbox`` (``maskApi.c`` ``rleArea`` / ``rleToBbox``, unsigned 32-bit
  arithmetic) do, and copies its counts into one contiguous buffer (an Arrow binary column). An
  RLE whose size comes first and that passes is read, copied and checked in one pass over the JSON
  bytes (:func:`_counts_ok`); every other one is redone by :func:`_counts` + :func:`rle_stats`.

Both accept only a strict subset of JSON: ASCII strings without escapes other than the escaped
backslash (two backslashes: the RLE alphabet has the backslash), ``null`` entries, RLE
objects with exactly the keys ``size`` (two plain non-negative integers) and ``counts`` (a string)
in either order, any JSON whitespace. Anything else -- escapes, other keys or values, floats,
invalid or truncated JSON -- makes them answer :data:`BAIL`, and the caller falls back to the
exact Python path (``json``), which gives the same values or the same errors. An RLE whose
counts fail a check gets a non-zero status; the caller then runs the exact one-at-a-time check
for its error message. So the fast path never decides an error message itself.

The kernels are compiled on first use and cached on disk (``cache=True``: ``__pycache__`` next to
this file, or numba's user cache directory when that is read-only); ``scripts/install.sh``
compiles them once at install time (:func:`warm`).
"""

from __future__ import annotations

import numpy as np

from rvoskit._jit import prepare_numba

prepare_numba()  # before numba: see rvoskit._jit
from numba import njit  # noqa: E402

# kernel answers
DONE, NEED_MORE, BAIL, FULL = 0, 1, 2, 3
# RLE status
RLE_OK, RLE_BAD, RLE_EXACT = 0, 1, 2
_BIG = 1 << 40  # a run value this large goes to the exact parser (as rle.pixel_counts does)
_U32 = 0xFFFFFFFF


_STOP = np.zeros(256, np.uint8)  # bytes that end a run of plain string characters
_STOP[:32] = 1
_STOP[34] = 1  # '"'
_STOP[92] = 1  # '\\'
_STOP[127:] = 1


@njit(cache=True, nogil=True)
def _ws(b, i, n):
    while i < n:
        c = b[i]
        if c == 32 or c == 10 or c == 13 or c == 9:
            i += 1
        else:
            break
    return i


@njit(cache=True, nogil=True)
def _string(b, i, n):
    """b[i] is '"': the index after the closing quote, -1 (need more bytes) or -2 (bail: an escape
    other than the escaped backslash -- a character of the RLE alphabet --, a control or a
    non-ASCII character)."""
    i += 1
    while True:
        while i < n and _STOP[b[i]] == 0:
            i += 1
        if i >= n:
            return -1
        c = b[i]
        if c == 34:
            return i + 1
        if c != 92:
            return -2
        if i + 1 >= n:
            return -1
        if b[i + 1] != 92:
            return -2
        i += 2


@njit(cache=True, nogil=True)
def _uint(b, i, n):
    """A plain non-negative JSON integer of at most 9 digits at b[i]: (value, next index);
    next index -1: need more bytes, -2: bail (sign, fraction, exponent, leading zero, too long)."""
    if i >= n:
        return 0, -1
    c = b[i]
    if c < 48 or c > 57:
        return 0, -2
    v = 0
    j = i
    while j < n and 48 <= b[j] <= 57:
        v = v * 10 + (b[j] - 48)
        j += 1
    if j >= n:
        return 0, -1
    if j - i > 9 or (b[i] == 48 and j - i > 1):
        return 0, -2
    c = b[j]
    if c == 46 or c == 101 or c == 69:  # '.', 'e', 'E': a float
        return 0, -2
    return v, j


@njit(cache=True, nogil=True)
def _write_box(bb, k, m, xs, ys, xe, ye):
    """``bb[k] = [x, y, w, h]`` as pycocotools' ``rleToBbox`` gives it for an RLE of ``m`` runs whose
    foreground spans columns ``xs..xe`` and rows ``ys..ye`` (all zeros below two runs; unsigned
    32-bit widths)."""
    if m < 2:
        bb[k, 0] = 0.0
        bb[k, 1] = 0.0
        bb[k, 2] = 0.0
        bb[k, 3] = 0.0
    else:
        bb[k, 0] = xs
        bb[k, 1] = ys
        bb[k, 2] = (xe - xs + 1) & _U32
        bb[k, 3] = (ye - ys + 1) & _U32


@njit(cache=True, nogil=True)
def rle_stats(b, s, e, h, w, bb, k):
    """Check the compressed counts ``b[s:e]`` of an ``h x w`` RLE; returns ``(status, area)`` and
    writes its ``[x, y, w, h]`` box to ``bb[k]``. Status :data:`RLE_OK` only when
    :func:`rvoskit.format.rle.pixel_count` accepts it and its total is ``h * w``; then area and box
    are pycocotools' (``rleFrString``, ``rleArea``, ``rleToBbox``)."""
    hw = h * w
    if h <= 0 or w <= 0 or hw > _U32:
        return RLE_EXACT, 0
    x = 0
    k5 = 0
    m = 0
    c1 = 0  # cnts[m - 1]
    c2 = 0  # cnts[m - 2]
    cc = 0  # pixels so far = col * h + row, 0 <= row < h (no division per run)
    col = 0
    row = 0
    area = 0
    xs = w
    ys = h
    xe = 0
    ye = 0
    for p in range(s, e):
        c = np.int64(b[p]) - 48
        if c < 0 or c > 63:
            return RLE_BAD, 0
        if k5 == 0 and c < 32:  # a run of one character (the common case)
            x = (c & 0xF) - (c & 0x10)
        else:
            x |= (c & 0x1F) << k5
            k5 += 5
            if c & 0x20:
                if k5 >= 60:  # a 13th character: too long (or truncated)
                    return RLE_BAD, 0
                continue
            if c & 0x10:
                x -= np.int64(1) << k5
            if x >= _BIG or x <= -_BIG:
                return RLE_EXACT, 0
        if m > 2:
            x += c2
        if x < 0:
            return RLE_BAD, 0
        cc += x
        if cc > hw:
            return RLE_BAD, 0
        x0 = col
        y0 = row
        row += x
        if row >= h:
            if row < 2 * h:
                col += 1
                row -= h
            else:
                q = row // h
                col += q
                row -= q * h
        if m & 1 and x > 0:  # a foreground run: pycocotools rleToBbox
            area += x
            if row > 0:
                x1 = col
                y1 = row - 1
            else:
                x1 = col - 1
                y1 = h - 1
            if xs == w:  # the first foreground run: columns only grow
                xs = x0
            xe = x1
            if x0 < x1:
                ys = 0
                ye = h - 1
            else:
                ys = min(ys, y0)
                ye = max(ye, y1)
        c2 = c1
        c1 = x
        m += 1
        x = 0
        k5 = 0
    if k5 != 0 or cc != hw:  # truncated last run, or a wrong total
        return RLE_BAD, 0
    _write_box(bb, k, m, xs, ys, xe, ye)
    return RLE_OK, area


@njit(cache=True, nogil=True, inline="always")
def _copy(dst, d, src, s, ln):
    """``dst[d:d + ln] = src[s:s + ln]`` (unsigned indices: LLVM makes it a vector copy)."""
    du = np.uint64(d)
    su = np.uint64(s)
    for u in range(np.uint64(ln)):
        dst[du + u] = src[su + u]


@njit(cache=True, nogil=True)
def _counts_ok(b, i, n, h, w, data, p, bb, k, ea):
    """:func:`_counts` with ``decode`` for an RLE that passes its check: the counts string at b[i]
    (``"``) read from the JSON bytes, copied to ``data[p:]`` (``ea``: scratch for the positions of
    its escapes) and checked as
    :func:`rle_stats` does (same loop, same arithmetic: written out twice on purpose, as a shared
    per-run helper measured slower, docs/convert.md "The RLE check"). Returns ``(j, p, area)``, ``j`` the index
    after the closing quote and the box in ``bb[k]``; ``j = -3`` for anything else (the caller
    redoes the string with :func:`_counts`, which decides every other answer)."""
    hw = h * w
    if h <= 0 or w <= 0 or hw > _U32:
        return -3, p, 0
    q = i + 1
    ne_ = 0
    x = 0
    k5 = 0
    m = 0
    c1 = 0  # cnts[m - 1]
    c2 = 0  # cnts[m - 2]
    cc = 0  # pixels so far = col * h + row, 0 <= row < h
    col = 0
    row = 0
    area = 0
    xs = w
    ys = h
    xe = 0
    ye = 0
    while True:
        if q >= n:
            return -3, p, 0
        c = np.int64(b[np.uint64(q)]) - 48  # (an unsigned index: no test for a negative one, ~10 % of the parse)
        if c < 0 or c > 63:
            if c == -14:  # the closing quote
                break
            return -3, p, 0
        if c == 44:  # the RLE alphabet's backslash: escaped in JSON
            if q + 1 >= n or b[np.uint64(q + 1)] != 92:
                return -3, p, 0
            if ne_ < ea.shape[0]:
                ea[ne_] = q  # the escaping backslash, left out of the copy
            ne_ += 1
            q += 1
        q += 1
        if k5 == 0 and c < 32:  # a run of one character (the common case)
            x = (c & 0xF) - (c & 0x10)
        else:
            x |= (c & 0x1F) << k5
            k5 += 5
            if c & 0x20:
                if k5 >= 60:
                    return -3, p, 0
                continue
            if c & 0x10:
                x -= np.int64(1) << k5
            if x >= _BIG or x <= -_BIG:
                return -3, p, 0
        if m > 2:
            x += c2
        if x < 0:
            return -3, p, 0
        cc += x
        if cc > hw:
            return -3, p, 0
        x0 = col
        y0 = row
        row += x
        if row >= h:
            if row < 2 * h:
                col += 1
                row -= h
            else:
                r = row // h
                col += r
                row -= r * h
        if m & 1 and x > 0:  # a foreground run: pycocotools rleToBbox
            area += x
            if row > 0:
                x1 = col
                y1 = row - 1
            else:
                x1 = col - 1
                y1 = h - 1
            if xs == w:  # the first foreground run: columns only grow
                xs = x0
            xe = x1
            if x0 < x1:
                ys = 0
                ye = h - 1
            else:
                ys = min(ys, y0)
                ye = max(ye, y1)
        c2 = c1
        c1 = x
        m += 1
        x = 0
        k5 = 0
    if k5 != 0 or cc != hw:
        return -3, p, 0
    if ne_ > ea.shape[0]:
        return -3, p, 0  # more escapes than ea holds: _counts copies it
    _write_box(bb, k, m, xs, ys, xe, ye)
    # the counts copied once checked, a run of bytes at a time between the escaping backslashes (a
    # copy of each character in the loop above cost ~20 % of the parse)
    src = i + 1
    for e in range(ne_):
        _copy(data, p, b, src, ea[e] - src)
        p += ea[e] - src
        src = ea[e] + 1
    _copy(data, p, b, src, q - src)
    return q + 1, p + q - src, area


@njit(cache=True, nogil=True)
def _counts(b, i, n, h, w, decode, data, p, bb, k):
    """The counts string at b[i] (``"``): copied, unescaped, to ``data[p:]`` and, when ``decode``
    (its size came first), checked (:func:`rle_stats`). Returns ``(j, p, status, area)``: ``j`` the
    index after the closing quote, -1 (need more bytes) or -2 (bail: an escape other than an
    escaped backslash, a control or a non-ASCII character)."""
    p0 = p
    i += 1
    while True:
        j = i
        while j < n and _STOP[b[j]] == 0:
            j += 1
        data[p : p + j - i] = b[i:j]
        p += j - i
        if j >= n:
            return -1, p, RLE_EXACT, 0
        ch = b[j]
        if ch == 34:
            break
        if ch != 92:
            return -2, p, RLE_EXACT, 0
        if j + 1 >= n:
            return -1, p, RLE_EXACT, 0
        if b[j + 1] != 92:
            return -2, p, RLE_EXACT, 0
        data[p] = 92
        p += 1
        i = j + 2
    if not decode:
        return j + 1, p, RLE_EXACT, 0
    st, area = rle_stats(data, p0, p, h, w, bb, k)
    return j + 1, p, st, area


@njit(cache=True, nogil=True)
def _rle_list(b, i, n, record, el_h, el_w, el_de, status, area, bb, data, p, ne, cap, ea):
    """Parse one value at b[i] (must be '['): a list of RLE dicts / null. When ``record``, records
    each element (h, w -- -1 for null --, the end of its counts in ``data``, its RLE status, area
    and box; the counts are copied to ``data`` from ``p`` on). Returns (code, next index, ne, p)."""
    if i >= n:
        return NEED_MORE, i, ne, p
    if b[i] != 91:
        return BAIL, i, ne, p
    i = _ws(b, i + 1, n)
    if i >= n:
        return NEED_MORE, i, ne, p
    if b[i] == 93:
        return DONE, i + 1, ne, p
    while True:
        if i >= n:
            return NEED_MORE, i, ne, p
        c = b[i]
        if c == 110:  # null
            if i + 4 > n:
                return NEED_MORE, i, ne, p
            if b[i + 1] != 117 or b[i + 2] != 108 or b[i + 3] != 108:
                return BAIL, i, ne, p
            i += 4
            if record:
                if ne >= cap:
                    return FULL, i, ne, p
                el_h[ne] = -1
                el_w[ne] = -1
                el_de[ne] = p
                status[ne] = RLE_OK
                area[ne] = 0
                ne += 1
        elif c == 123:  # {"size": [H, W], "counts": "..."} in either order
            hh = -1
            ww = -1
            cs = -1
            ds = p
            st = RLE_OK
            ar = 0
            decoded = False
            if record and ne >= cap:
                return FULL, i, ne, p
            i = _ws(b, i + 1, n)
            while True:
                if i >= n:
                    return NEED_MORE, i, ne, p
                if b[i] != 34:
                    return BAIL, i, ne, p
                j = _string(b, i, n)
                if j == -1:
                    return NEED_MORE, i, ne, p
                if j < 0:
                    return BAIL, i, ne, p
                ln = j - i - 2
                is_size = ln == 4 and b[i + 1] == 115 and b[i + 2] == 105 and b[i + 3] == 122 and b[i + 4] == 101
                is_counts = (ln == 6 and b[i + 1] == 99 and b[i + 2] == 111 and b[i + 3] == 117 and b[i + 4] == 110
                             and b[i + 5] == 116 and b[i + 6] == 115)
                if not (is_size or is_counts):
                    return BAIL, i, ne, p
                i = _ws(b, j, n)
                if i >= n:
                    return NEED_MORE, i, ne, p
                if b[i] != 58:
                    return BAIL, i, ne, p
                i = _ws(b, i + 1, n)
                if i >= n:
                    return NEED_MORE, i, ne, p
                if is_size:
                    if hh >= 0 or b[i] != 91:
                        return BAIL, i, ne, p
                    i = _ws(b, i + 1, n)
                    v0, i = _uint(b, i, n)
                    if i < 0:
                        return NEED_MORE if i == -1 else BAIL, 0, ne, p
                    i = _ws(b, i, n)
                    if i >= n:
                        return NEED_MORE, i, ne, p
                    if b[i] != 44:
                        return BAIL, i, ne, p
                    i = _ws(b, i + 1, n)
                    v1, i = _uint(b, i, n)
                    if i < 0:
                        return NEED_MORE if i == -1 else BAIL, 0, ne, p
                    i = _ws(b, i, n)
                    if i >= n:
                        return NEED_MORE, i, ne, p
                    if b[i] != 93:
                        return BAIL, i, ne, p
                    i += 1
                    hh = v0
                    ww = v1
                else:
                    if cs >= 0 or b[i] != 34:
                        return BAIL, i, ne, p
                    cs = i
                    if record:
                        decoded = hh >= 0
                        j = -3
                        if decoded:  # the common case in one pass; anything else the general way
                            j, p, ar = _counts_ok(b, i, n, hh, ww, data, ds, bb, ne, ea)
                            st = RLE_OK
                        if j == -3:
                            j, p, st, ar = _counts(b, i, n, hh, ww, decoded, data, ds, bb, ne)
                    else:
                        j = _string(b, i, n)
                    if j == -1:
                        return NEED_MORE, i, ne, p
                    if j < 0:
                        return BAIL, i, ne, p
                    i = j
                i = _ws(b, i, n)
                if i >= n:
                    return NEED_MORE, i, ne, p
                if b[i] == 44:
                    i = _ws(b, i + 1, n)
                    continue
                if b[i] == 125:
                    i += 1
                    break
                return BAIL, i, ne, p
            if hh < 0 or cs < 0:
                return BAIL, i, ne, p
            if record:
                if not decoded:  # "counts" before "size": checked now
                    st, ar = rle_stats(data, ds, p, hh, ww, bb, ne)
                el_h[ne] = hh
                el_w[ne] = ww
                el_de[ne] = p
                status[ne] = st
                area[ne] = ar
                ne += 1
        else:
            return BAIL, i, ne, p
        i = _ws(b, i, n)
        if i >= n:
            return NEED_MORE, i, ne, p
        if b[i] == 93:
            return DONE, i + 1, ne, p
        if b[i] != 44:
            return BAIL, i, ne, p
        i = _ws(b, i + 1, n)


@njit(cache=True, nogil=True)
def scan_top(b, i, n, first, key_s, key_e, val_s, val_e, nk):
    """Scan top-level entries of ``{key: value, ...}`` from b[i] (after ``{`` when ``first``, else
    after a ``,``). Records complete entries into the arrays from index ``nk``.

    Returns ``(code, i, nk, closed)``: code :data:`NEED_MORE` with ``i`` at the start of the first
    incomplete entry (read more bytes and call again with ``first=False`` unless no entry was
    taken yet), :data:`FULL` (arrays full, same), :data:`DONE` at the closing ``}`` (``closed``),
    or :data:`BAIL`.
    """
    cap = key_s.shape[0]
    dummy_i = np.empty(0, np.int64)
    dummy_s = np.empty(0, np.int8)
    dummy_b = np.empty((0, 4), np.float64)
    dummy_d = np.empty(0, np.uint8)
    while True:
        start = i
        i = _ws(b, i, n)
        if i >= n:
            return NEED_MORE, start, nk, False
        if first and b[i] == 125:
            return DONE, i + 1, nk, True
        if b[i] != 34:
            return BAIL, i, nk, False
        j = _string(b, i, n)
        if j == -1:
            return NEED_MORE, start, nk, False
        if j < 0:
            return BAIL, i, nk, False
        ks = i + 1
        ke = j - 1
        for q in range(ks, ke):
            if b[q] == 92:  # an escaped key: the Python scan decodes it
                return BAIL, i, nk, False
        i = _ws(b, j, n)
        if i >= n:
            return NEED_MORE, start, nk, False
        if b[i] != 58:
            return BAIL, i, nk, False
        i = _ws(b, i + 1, n)
        vs = i
        code, i, _, _ = _rle_list(b, i, n, False, dummy_i, dummy_i, dummy_i, dummy_s, dummy_i, dummy_b, dummy_d, 0, 0, 0, dummy_i)
        if code == NEED_MORE:
            return NEED_MORE, start, nk, False
        if code != DONE:
            return BAIL, i, nk, False
        ve = i
        i = _ws(b, i, n)
        if i >= n:
            return NEED_MORE, start, nk, False
        c = b[i]
        if c != 44 and c != 125:
            return BAIL, i, nk, False
        if nk >= cap:
            return FULL, start, nk, False
        key_s[nk] = ks
        key_e[nk] = ke
        val_s[nk] = vs
        val_e[nk] = ve
        nk += 1
        first = False
        if c == 125:
            return DONE, i + 1, nk, True
        i += 1


@njit(cache=True, nogil=True)
def parse_values(b, vs, ve):
    """Parse the values ``b[vs[k]:ve[k]]`` (each one complete value) and check every RLE, in one
    pass over the bytes.

    Returns ``(ok, n_el, el_h, el_w, status, area, bbox, data, offsets)``: ``ok`` False when a
    value is outside the fast subset (then nothing else is meaningful); ``n_el[k]`` elements per
    value; per element ``el_h``/``el_w`` (-1 for null), RLE ``status`` (:data:`RLE_OK` ...),
    ``area`` int64 and ``bbox`` float64 (N, 4); ``data``/``offsets`` the counts of the RLE
    elements (null ones contribute nothing), concatenated, as an Arrow binary column's buffers
    (int32 offsets, one more than the number of RLE elements).
    """
    nv = vs.shape[0]
    cap = 8
    nbytes = 0
    for k in range(nv):
        cap += (ve[k] - vs[k]) // 5 + 1
        nbytes += ve[k] - vs[k]
    el_h = np.empty(cap, np.int64)
    el_w = np.empty(cap, np.int64)
    el_de = np.empty(cap, np.int64)
    status = np.empty(cap, np.int8)
    area = np.empty(cap, np.int64)
    bbox = np.empty((cap, 4), np.float64)  # written for every RLE that passes its check
    data = np.empty(nbytes, np.uint8)
    ea = np.empty(1024, np.int64)  # escape positions of one counts string
    n_el = np.zeros(nv, np.int64)
    ne = 0
    p = 0
    ok = nbytes <= 0x7FFFFFFF
    for k in range(nv):
        if not ok:
            break
        before = ne
        code, i, ne, p = _rle_list(b, vs[k], ve[k], True, el_h, el_w, el_de, status, area, bbox, data, p, ne, cap, ea)
        if code != DONE or i != ve[k]:
            ok = False
        n_el[k] = ne - before
    nr = 0
    for t in range(ne):
        if el_h[t] >= 0:
            nr += 1
    offsets = np.zeros(nr + 1, np.int32)
    r = 0
    for t in range(ne):
        if el_h[t] >= 0:
            r += 1
            offsets[r] = el_de[t]
    return ok, n_el, el_h[:ne], el_w[:ne], status[:ne], area[:ne], bbox[:ne], data[:p], offsets


def warm() -> None:
    """Compile (or load from the on-disk cache) every kernel with the argument types the converter
    uses, on a tiny input."""
    b = np.frombuffer(b'{"1": [null, {"size": [1, 2], "counts": "02"}]}', np.uint8).copy()
    ks = np.empty(4, np.int64)
    scan_top(b, 1, b.size, True, ks, ks.copy(), ks.copy(), ks.copy(), 0)
    parse_values(b, np.array([7], np.int64), np.array([b.size - 1], np.int64))
