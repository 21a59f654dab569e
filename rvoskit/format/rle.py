"""COCO RLE helpers: a thin layer over pycocotools.

Convention (common format v1): compressed COCO RLE counts as ``bytes`` (what
``pycocotools.mask.encode`` returns), of an ``[H, W]`` mask in column-major (Fortran) order.
Masks in memory are ``uint8`` arrays of shape ``(H, W)`` with values 0/1.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pycocotools.mask as cocomask

from rvoskit.errors import RvosError


def encode(mask: np.ndarray) -> bytes:
    """Encode one binary mask.

    Args:
        mask: ``(H, W)`` array, any dtype; nonzero = foreground.

    Returns:
        Compressed COCO RLE counts (bytes).
    """
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    m = np.asfortranarray(mask != 0, dtype=np.uint8)
    return cocomask.encode(m)["counts"]


def encode_batch(masks: np.ndarray) -> list[bytes]:
    """Encode ``(N, H, W)`` binary masks in one pycocotools call; returns N counts."""
    if masks.ndim != 3:
        raise ValueError(f"expected (N, H, W) masks, got shape {masks.shape}")
    m = np.asfortranarray((masks != 0).transpose(1, 2, 0), dtype=np.uint8)
    return [r["counts"] for r in cocomask.encode(m)]


def encode_labels(label: np.ndarray, ids: Sequence[int]) -> list[bytes]:
    """Encode the masks ``label == i`` for each ``i`` in ``ids`` from one label map.

    Builds the masks directly in column-major order (one transpose of the label map, no per-mask
    copies), which is what makes palette-PNG conversion decode-bound.

    Args:
        label: ``uint8 (H, W)`` label map (palette indices).
        ids: label values to encode.

    Returns:
        Compressed counts, one per id (an id absent from ``label`` gives an empty mask).
    """
    if len(ids) == 0:
        return []
    lab_t = np.ascontiguousarray(label.T)  # (W, H): column-major order of the (H, W) map
    masks = (lab_t[None] == np.asarray(ids, dtype=label.dtype)[:, None, None]).view(np.uint8)  # (N, W, H) C-order
    return [r["counts"] for r in cocomask.encode(masks.transpose(2, 1, 0))]  # (H, W, N) Fortran, no copy


def to_coco(counts: bytes, height: int, width: int) -> dict:
    """The pycocotools dict ``{"size": [H, W], "counts": bytes}``."""
    return {"size": [int(height), int(width)], "counts": counts}


def decode(counts: bytes, height: int, width: int) -> np.ndarray:
    """Decode compressed counts to a ``uint8 (H, W)`` 0/1 mask.

    Raises:
        ValueError: if the counts do not describe exactly ``H * W`` pixels (pycocotools check).
    """
    return cocomask.decode(to_coco(counts, height, width))


def decode_batch(counts: Sequence[bytes], height: int, width: int) -> np.ndarray:
    """Decode N masks of one size to ``uint8 (N, H, W)``."""
    if len(counts) == 0:
        return np.zeros((0, height, width), np.uint8)
    arr = cocomask.decode([to_coco(c, height, width) for c in counts])
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def area_bbox(counts: Sequence[bytes], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Areas ``int64 (N,)`` and boxes ``float64 (N, 4)`` ``[x, y, w, h]`` of N RLEs, without decoding."""
    if len(counts) == 0:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float64)
    objs = [to_coco(c, height, width) for c in counts]
    # pycocotools 2.0.11's area() overflows a uint8 count for lists of more than 255 RLEs: chunk it
    areas = np.concatenate([cocomask.area(objs[i : i + 255]) for i in range(0, len(objs), 255)]).astype(np.int64)
    return areas, cocomask.toBbox(objs).astype(np.float64).reshape(-1, 4)


def run_lengths(counts: bytes) -> np.ndarray:
    """The uncompressed run lengths of compressed counts, without decoding the mask.

    Parses the LEB128-like string of pycocotools ``rleFrString`` with numpy. Runs alternate
    background / foreground, starting with background, in column-major order; their sum is the
    number of pixels.

    Returns:
        ``int64 (R,)``.

    Raises:
        ValueError: for characters outside the alphabet, a truncated last run or a negative run.
    """
    c = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, np.int64)
    if (c < 0).any() or (c > 63).any():
        raise ValueError("character outside the RLE alphabet")
    more = (c & 0x20) != 0
    if more[-1]:
        raise ValueError("truncated RLE string")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    k = np.arange(c.size) - np.repeat(starts, ends - starts + 1)
    if k.max() > 11:
        raise ValueError("RLE run too long")
    vals = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    neg = (c[ends] & 0x10) != 0
    vals = vals - np.where(neg, np.left_shift(1, 5 * (k[ends] + 1)), 0)
    cnts = vals.copy()
    cnts[1::2] = np.cumsum(vals[1::2])
    if cnts.size > 2:
        cnts[2::2] = np.cumsum(vals[2::2])
    if (cnts < 0).any():
        raise ValueError("negative run length")
    return cnts


_BATCH_CHARS = 1 << 20  # characters per vectorised pass (keeps every partial sum far below 2**63)
_BIG = 1 << 40  # a run this long sends its RLE to the exact, one-at-a-time parser


def pixel_counts(counts: Sequence[bytes]) -> np.ndarray:
    """Total pixels of many compressed RLEs at once, without decoding: ``int64 (N,)``, ``-1`` for
    an RLE that :func:`pixel_count` would reject (or that needs its exact check: a run of 2**40
    pixels or more, re-checked one at a time by it).

    The same parse as :func:`run_lengths`, vectorised over the concatenation of the strings, so
    that a video's or a file's RLEs cost a few numpy passes instead of a few per RLE. A total that
    differs from ``H * W`` (or ``-1``) should be re-checked with :func:`pixel_count` for its error.
    """
    out = np.full(len(counts), -1, np.int64)
    i = 0
    while i < len(counts):
        j, size = i, 0
        while j < len(counts) and (j == i or size + len(counts[j]) <= _BATCH_CHARS):
            size += len(counts[j])
            j += 1
        out[i:j] = _pixel_counts_chunk(counts[i:j])
        i = j
    for k in np.flatnonzero(out == -2):  # huge runs: the exact parser decides
        try:
            out[k] = pixel_count(counts[k])
        except ValueError:
            out[k] = -1
    return out


def _pixel_counts_chunk(counts: Sequence[bytes]) -> np.ndarray:
    """:func:`pixel_counts` of one chunk: O(characters) numpy passes, no per-run index arrays."""
    n = len(counts)
    lens = np.fromiter(map(len, counts), np.int64, n)
    res = np.zeros(n, np.int64)
    if n == 0 or int(lens.sum()) == 0:
        return res
    bounds = np.cumsum(lens)  # end (exclusive) of each string in the concatenation
    c = np.frombuffer(b"".join(counts), dtype=np.uint8) - np.uint8(48)  # wraps: outside the alphabet -> > 63
    bad = np.zeros(n, bool)
    if c.max() > 63:
        owner = np.repeat(np.arange(n), lens)
        bad[owner[c > 63]] = True
        c = c & np.uint8(0x3F)
    term = c < 32  # a run's last character
    nonempty = np.flatnonzero(lens > 0)
    last = bounds[nonempty] - 1
    trunc = ~term[last]
    if trunc.any():  # a run never continues into the next RLE
        bad[nonempty[trunc]] = True
        term[last[trunc]] = True
    ends = np.flatnonzero(term)
    T = ends.size
    ntok = np.diff(np.searchsorted(ends, bounds), prepend=0)  # runs per RLE (ends are sorted)
    f = np.cumsum(ntok) - ntok  # first run of each RLE

    def owner_of(tok):
        return np.searchsorted(f, tok, side="right") - 1

    # a run's last character holds 5 bits in two's complement (0x10 = sign): [-16, 15]
    vals = (c[ends] ^ np.uint8(16)).astype(np.int64) - 16
    # runs of more than one character: their last character follows a continuation character
    mend = np.flatnonzero(term[1:] & ~term[:-1]) + 1
    huge = mend[:0]
    if mend.size:
        multi = np.searchsorted(ends, mend)
        st = np.where(multi > 0, ends[np.maximum(multi - 1, 0)] + 1, 0)
        ln = mend - st + 1
        too_long = ln > 12
        if too_long.any():
            bad[owner_of(multi[too_long])] = True
            ln = np.minimum(ln, 12)
        v = vals[multi] << (5 * (ln - 1))
        for k in range(int(ln.max()) - 1):  # the other characters, low bits first
            has = np.flatnonzero(ln - 1 > k)
            v[has] += (c[st[has] + k] & np.uint8(0x1F)).astype(np.int64) << (5 * k)
        vals[multi] = v
        big = (v >= _BIG) | (v <= -_BIG)
        if big.any():
            huge = multi[big]
            vals[huge] = 0
    # run m of an RLE: cnts[m] = vals[m] + cnts[m - 2] for m > 2 (pycocotools rleFrString): prefix
    # sums within each parity class (m = 1, 3, ... and m = 2, 4, ...). C holds one cumsum per
    # global parity class; an RLE's runs of a class are C minus the class's value where it starts.
    C = np.empty(T, np.int64)
    np.cumsum(vals[0::2], out=C[0::2])
    np.cumsum(vals[1::2], out=C[1::2])
    nz = ntok > 0
    fi = np.minimum(f, T - 1)
    base_first = C[fi]  # class of m = 0, 2, ...: the prefix starts after m = 0
    base_other = np.where(f > 0, C[np.maximum(f - 1, 0)], 0)  # class of m = 1, 3, ...: after m = -1
    first_val = np.where(nz, vals[fi], 0)
    f_even = (f & 1) == 0
    be = np.where(f_even, base_first, base_other)  # base of the RLE's global-even runs
    bo = np.where(f_even, base_other, base_first)
    s_even = (f + 1) // 2  # the RLE's runs in C[0::2]: [s_even, s_even + n_even)
    n_even = (f + ntok + 1) // 2 - s_even
    s_odd = f // 2
    n_odd = ntok - n_even
    tot = first_val.copy()
    neg = first_val < 0
    for half, s, cnt, base in ((C[0::2], s_even, n_even, be), (C[1::2], s_odd, n_odd, bo)):
        k = np.flatnonzero(cnt > 0)
        if k.size == 0:
            continue
        sums = np.add.reduceat(half, s[k])
        mins = np.minimum.reduceat(half, s[k])
        # reduceat's last segment runs to the end of the half: that is the last RLE's, exact
        tot[k] += sums - base[k] * cnt[k]
        neg[k] |= mins < base[k]
    # the first run counts as vals, not C - base (= 0): already in tot via first_val
    bad |= neg
    res[:] = tot
    res[~nz] = 0
    res[bad] = -1
    if huge.size:
        hug = np.zeros(n, bool)
        hug[owner_of(huge)] = True
        res[hug & ~bad] = -2
    return res


def pixel_count(counts: bytes) -> int:
    """Total number of pixels a compressed RLE describes, without decoding the mask
    (:func:`run_lengths`). Used to reject malformed RLE (wrong total, negative runs) cheaply.

    Raises:
        ValueError: for characters outside the alphabet, a truncated last run or a negative run.
    """
    return int(run_lengths(counts).sum())


def from_native(segm: Any, height: int | None = None, width: int | None = None, *, check_total: bool = True) -> tuple[bytes, int, int]:
    """Normalise a native COCO-style segmentation to compressed counts.

    Args:
        segm: ``{"size": [H, W], "counts": str | bytes | list[int]}`` (compressed string,
            or uncompressed list counts as in YouTube-VIS ground truth).
        height, width: expected size; checked when given.

        check_total: check that compressed counts cover ``H * W`` pixels (:func:`pixel_count`);
            a caller converting many RLEs passes False and checks them together with
            :func:`pixel_counts` (then calls this again on a failing one for its error).

    Returns:
        ``(counts_bytes, H, W)``. Compressed input is passed through without decoding; its total
        pixel count is checked with :func:`pixel_count`.

    Raises:
        ValueError: malformed dict, size mismatch, or counts that do not cover ``H * W`` pixels.
    """
    if not isinstance(segm, dict) or "size" not in segm or "counts" not in segm:
        raise ValueError("not a COCO RLE dict with 'size' and 'counts'")
    size = segm["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        raise ValueError(f"bad RLE size {size!r}")
    h, w = int(size[0]), int(size[1])
    if height is not None and (h, w) != (height, width):
        raise ValueError(f"RLE size {h}x{w} differs from the frame size {height}x{width}")
    counts = segm["counts"]
    if isinstance(counts, list):
        if any((not isinstance(v, int)) or v < 0 for v in counts) or sum(counts) != h * w:
            raise ValueError(f"uncompressed counts do not cover {h}x{w} pixels")
        return cocomask.frPyObjects(segm, h, w)["counts"], h, w
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ValueError("RLE counts contain non-ASCII characters") from exc
    if not isinstance(counts, bytes):
        raise ValueError(f"RLE counts of type {type(counts).__name__}")
    if not check_total:
        return counts, h, w
    total = pixel_count(counts)
    if total != h * w:
        raise ValueError(f"RLE counts cover {total} pixels, expected {h}x{w} = {h * w}")
    return counts, h, w


def check(counts: bytes, height: int, width: int, *, file: str | None = None, item: str | None = None) -> None:
    """Raise :class:`RvosError` naming ``file``/``item`` if the RLE does not decode to ``H x W``."""
    try:
        total = pixel_count(counts)
    except ValueError as exc:
        raise RvosError(f"malformed RLE: {exc}", file=file, item=item) from None
    if total != height * width:
        raise RvosError(f"malformed RLE: covers {total} pixels, expected {height}x{width}", file=file, item=item)
