"""Per-frame J (region similarity) and F (boundary measure), bit-identical to the DAVIS code.

Reference: davis2017-evaluation ``davis2017/metrics.py`` (``db_eval_iou``, ``f_measure``,
``_seg2bmap``; the same file is MeViS ``tools/metrics.py``). With P the prediction and G the
ground truth (``nonzero`` = foreground) and V the optional void pixels:

- ``J = |P ∩ G \\ V| / |P ∪ G \\ V|``, and ``J = 1`` when that union is empty.
- ``F``: boundary maps ``B`` of ``P \\ V`` and ``G \\ V`` (``_seg2bmap``: a pixel is on the
  boundary when it differs from its east, south or south-east neighbour *inside the image*),
  each dilated by a disk of radius ``r = ceil(0.008 * sqrt(H² + W²))`` (skimage ``disk``:
  ``x² + y² <= r²``, applied with ``cv2.dilate``);
  ``precision = |B_P ∩ dil(B_G)| / |B_P|``, ``recall = |B_G ∩ dil(B_P)| / |B_G|``,
  ``F = 2PR / (P + R)`` (0 when ``P + R = 0``). Empty boundaries: only ``B_P`` empty gives
  ``P = 1, R = 0``; only ``B_G`` empty gives ``P = 0, R = 1``; both empty gives ``F = 1``. An
  all-foreground mask has an empty boundary map, so a full-frame mask scores F like an empty one
  (the "full-frame quirk": full vs empty gives ``J = 0, F = 1``).

Why it is fast and still identical: boundary pixels exist only next to the foreground, so every
count is taken inside the bounding box of ``P ∪ G`` grown by one pixel (clipped to the image);
the boundary map there is ``max != min`` over the 2x2 block to the south-east with the border
replicated, which is exactly ``_seg2bmap`` (including the last-row/last-column rules); the disk
dilation only has to be evaluated inside that box because both boundary maps are zero outside
it, and for boxes above 64x64 pixels it runs on packed bits (64 pixels per word, the disk split
into one horizontal segment per row offset) with popcounts for the matches. All arithmetic on
the counts is done in the same order as the reference, in float64.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

BOUND_TH = 0.008
"""Default boundary tolerance of the DAVIS/MeViS F measure, as a fraction of the image diagonal."""

_K2 = np.ones((2, 2), np.uint8)


def bound_pix(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """Disk radius of the F measure in pixels.

    ``bound_th >= 1`` is a radius in pixels (as in the reference); otherwise
    ``ceil(bound_th * sqrt(H² + W²))``, computed as ``np.ceil(bound_th * np.linalg.norm((H, W)))``
    is (720x1280 gives 12, 480x854 gives 8, 1080x1920 gives 18).
    """
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(f"a pixel radius must be an integer, got {bound_th}")
        return int(bound_th)
    # H*H + W*W is exact in float64 and sqrt is correctly rounded, as in np.linalg.norm.
    return math.ceil(bound_th * math.sqrt(float(height * height + width * width)))


@lru_cache(maxsize=64)
def disk(radius: int) -> np.ndarray:
    """``uint8 (2r+1, 2r+1)`` disk ``x² + y² <= r²``: identical to ``skimage.morphology.disk(r)``."""
    ax = np.arange(-radius, radius + 1)
    return ((ax[:, None] ** 2 + ax[None, :] ** 2) <= radius * radius).astype(np.uint8)


def _u8(mask: np.ndarray) -> np.ndarray:
    """A 2-D mask as uint8 without a copy where possible (bool and uint8 are viewed as is)."""
    if mask.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.view(np.uint8)
    if mask.dtype == np.uint8:
        return mask
    return (mask != 0).view(np.uint8)


def _bmap(m: np.ndarray) -> np.ndarray:
    """``_seg2bmap`` of a 0/1 uint8 crop whose bottom/right edge is the image edge or background."""
    hi = cv2.dilate(m, _K2, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    lo = cv2.erode(m, _K2, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return cv2.bitwise_xor(hi, lo)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """Boundary map of a mask, identical to the reference ``_seg2bmap`` (D. Martin, 2003).

    Args:
        mask: ``(H, W)``, any dtype, nonzero = foreground.

    Returns:
        ``bool (H, W)``: true where the pixel differs from its east, south or south-east
        neighbour (neighbours outside the image are not compared; ``b[-1, -1]`` is false).
    """
    return _bmap(np.ascontiguousarray(_u8(mask) != 0).view(np.uint8)).view(np.bool_)


def _bbox(m: np.ndarray) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the nonzero pixels of a uint8 mask (``w == 0`` when empty).

    Column-major masks (what ``pycocotools.mask.decode`` returns) are measured through their
    transpose, without a copy.
    """
    if m.strides[1] == 1:
        return cv2.boundingRect(m)
    if m.strides[0] == 1:
        y, x, h, w = cv2.boundingRect(m.T)
        return x, y, w, h
    return cv2.boundingRect(np.ascontiguousarray(m))


def _box(p: np.ndarray, g: np.ndarray) -> tuple[slice, slice] | None:
    """Rows/columns of the bounding box of ``p ∪ g`` grown by one pixel, or None when both are empty."""
    H, W = p.shape
    x0, y0, w0, h0 = _bbox(p)
    x1, y1, w1, h1 = _bbox(g)
    if w0 == 0 and w1 == 0:
        return None
    if w0 == 0:
        x0, y0, w0, h0 = x1, y1, w1, h1
    elif w1 != 0:
        xe, ye = max(x0 + w0, x1 + w1), max(y0 + h0, y1 + h1)
        x0, y0 = min(x0, x1), min(y0, y1)
        w0, h0 = xe - x0, ye - y0
    return slice(max(y0 - 1, 0), min(y0 + h0 + 1, H)), slice(max(x0 - 1, 0), min(x0 + w0 + 1, W))


_SMALL_BOX = 64 * 64
"""Boxes up to this many pixels are dilated with ``cv2.dilate``; larger ones on packed bits."""

_POP8 = np.array([i.bit_count() for i in range(256)], np.uint8)
_SHIFT = [np.uint64(i) for i in range(65)]


def _popcount(words: np.ndarray) -> int:
    """Number of set bits in a uint64 array."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return int(np.bitwise_count(words).sum(dtype=np.int64))
    return int(_POP8[words.view(np.uint8)].sum(dtype=np.int64))


def _pack(m: np.ndarray, pad: int) -> np.ndarray:
    """Pack a uint8 ``(h, w)`` map (nonzero = 1, any strides) to ``uint64 (h, nw)`` little-endian bit rows.

    Each row gets at least ``pad`` zero bits after its last pixel, so that shifting the flat bit
    string by up to ``pad`` never moves a pixel into another row's pixels.
    """
    h, w = m.shape
    if m.strides[1] != 1 and h > 1 and w > 1:  # packbits is slow across strided columns
        m = cv2.transpose(m.T) if m.strides[0] == 1 else np.ascontiguousarray(m)
    nw = (w + pad + 63) // 64
    out = np.zeros((h, nw * 8), np.uint8)
    out[:, : (w + 7) // 8] = np.packbits(m, axis=1, bitorder="little")
    return out.view("<u8")


def _dilate_packed(bits: np.ndarray, r: int) -> np.ndarray:
    """Dilation by :func:`disk` ``(r)`` of packed bit rows (see :func:`_pack` with ``pad >= r``).

    The disk is the union over row offsets ``dy`` of horizontal segments of half-width
    ``w(dy) = isqrt(r² - dy²)``: the rows are dilated horizontally to each distinct half-width in
    turn (shifting the flat bit string, widths grown by doubling), and each result is OR-ed into
    the output at the row offsets that use that width. ``bits`` may be a stack ``(k, h, nw)``:
    rows never move from one map of the stack into another.
    """
    h = bits.shape[-2]
    widths = [math.isqrt(r * r - dy * dy) for dy in range(r + 1)]
    out = np.zeros_like(bits)
    cur = bits.reshape(-1)
    bufs = (np.empty_like(cur), np.empty_like(cur))
    tmp = np.empty_like(cur)
    rad, k = 0, 0
    for w in sorted(set(widths)):
        while rad < w:  # cur covers [-rad, rad]; one step grows it by s <= 2*rad + 1, contiguously
            s = min(w - rad, 2 * rad + 1, 63)
            nxt = bufs[k]
            k ^= 1
            np.left_shift(cur, _SHIFT[s], out=nxt)
            tmp[0] = 0
            np.right_shift(cur[:-1], _SHIFT[64 - s], out=tmp[1:])
            nxt |= tmp
            np.right_shift(cur, _SHIFT[s], out=tmp)
            nxt |= tmp
            np.left_shift(cur[1:], _SHIFT[64 - s], out=tmp[:-1])
            tmp[-1] = 0
            nxt |= tmp
            nxt |= cur
            cur = nxt
            rad += s
        rows = cur.reshape(bits.shape)
        for dy, wd in enumerate(widths):
            if wd != w or dy >= h:
                continue
            if dy == 0:
                out |= rows
            else:
                out[..., :-dy, :] |= rows[..., dy:, :]
                out[..., dy:, :] |= rows[..., :-dy, :]
    return out


def _match_counts(bp: np.ndarray, bg: np.ndarray, r: int) -> tuple[int, int]:
    """``(|bp ∩ dil(bg)|, |bg ∩ dil(bp)|)`` for 0/1 uint8 boundary maps, dilation by ``disk(r)``.

    Equal to ``cv2.dilate(b, disk(r))`` with its default border (pixels outside the map never
    contribute); the box of both maps is the whole map, so nothing outside it is needed.
    """
    h, w = bp.shape
    if h * w <= _SMALL_BOX:
        k = disk(r)
        fg = cv2.countNonZero(cv2.bitwise_and(bp, cv2.dilate(bg, k)))
        gt = cv2.countNonZero(cv2.bitwise_and(bg, cv2.dilate(bp, k)))
        return fg, gt
    P, G = _pack(bp, r), _pack(bg, r)
    return _popcount(P & _dilate_packed(G, r)), _popcount(G & _dilate_packed(P, r))


def _bmap_packed(X: np.ndarray, w: int) -> np.ndarray:
    """:func:`_bmap` on packed bit rows (:func:`_pack`; ``w`` pixels per row, zero padding;
    ``(h, nw)`` or a stack ``(k, h, nw)`` of maps).

    ``E`` / ``S`` / ``SE`` are the east, south and south-east neighbours with the border
    replicated (the last pixel of a row is its own east neighbour, the last row its own south
    row), so ``X^E | X^S | X^SE`` is the reference's boundary map, last row / column rules included.
    """
    E = X >> _SHIFT[1]
    E[..., :-1] |= X[..., 1:] << _SHIFT[63]
    k, b = divmod(w - 1, 64)
    E[..., k] |= X[..., k] & np.uint64(1 << b)
    S = np.empty_like(X)
    S[..., :-1, :] = X[..., 1:, :]
    S[..., -1, :] = X[..., -1, :]
    B = np.bitwise_xor(X, E)
    np.bitwise_xor(X, S, out=S)
    B |= S
    S[..., :-1, :] = E[..., 1:, :]  # S now holds SE
    S[..., -1, :] = E[..., -1, :]
    np.bitwise_xor(X, S, out=S)
    B |= S
    return B


def _jf_packed(p: np.ndarray, g: np.ndarray, void: np.ndarray | None, r: int, want_f: bool) -> tuple[float, float]:
    """The counts of :func:`crop_jf` on packed bits (64 pixels a word, popcounts), for the box
    of ``p ∪ g`` (uint8 views, nonzero = foreground, any strides)."""
    w = p.shape[1]
    P, G = _pack(p, r), _pack(g, r)  # np.packbits takes any nonzero value as 1
    if void is None:
        inter = _popcount(P & G)
        union = _popcount(P) + _popcount(G) - inter
    else:
        K = ~_pack(void, r)
        P &= K
        G &= K
        inter = _popcount(P & G)
        union = _popcount(P | G)
    j = 1.0 if union == 0 else inter / union
    if not want_f:
        return j, math.nan
    bp, bg = _bmap_packed(P, w), _bmap_packed(G, w)
    n_fg, n_gt = _popcount(bp), _popcount(bg)
    if n_fg == 0 or n_gt == 0:
        return j, _f_from_counts(0, 0, n_fg, n_gt)
    # both maps dilated in one pass: stacked with r zero rows between them (a row moves at most
    # r rows), each row padded with >= r zero bits (a pixel moves at most r bits)
    h = bp.shape[0]
    Z = np.zeros((2 * h + r, bp.shape[1]), bp.dtype)
    Z[:h] = bp
    Z[h + r :] = bg
    D = _dilate_packed(Z, r)
    fg_match = _popcount(bp & D[h + r :])
    gt_match = _popcount(bg & D[:h])
    return j, _f_from_counts(fg_match, gt_match, n_fg, n_gt)


def _f_from_counts(fg_match: int, gt_match: int, n_fg: int, n_gt: int) -> float:
    """F from boundary counts, with the reference's empty-boundary rules and operation order."""
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = fg_match / float(n_fg)
        recall = gt_match / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def frame_jf(
    pred: np.ndarray,
    gt: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
    *,
    want_f: bool = True,
) -> tuple[float, float]:
    """J and F of one frame, bit-identical to ``db_eval_iou`` and ``f_measure`` of the DAVIS code.

    Args:
        pred: predicted mask ``(H, W)``; bool or uint8 are used without a copy, any other dtype
            is converted; nonzero = foreground.
        gt: ground-truth mask ``(H, W)``, same rules.
        void: optional void pixels ``(H, W)`` (DAVIS label 255), excluded from J and removed from
            both masks before the boundaries are taken, as the reference does.
        bound_th: boundary tolerance (fraction of the diagonal, or a radius in pixels if >= 1).
        want_f: compute F (``False`` returns ``nan`` for F, for J-only uses).

    Returns:
        ``(J, F)`` as Python floats in [0, 1].

    Raises:
        ValueError: masks of different shapes or not 2-D.
    """
    p, g = _u8(pred), _u8(gt)
    if p.shape != g.shape or (void is not None and void.shape != g.shape):
        raise ValueError(
            f"mask shapes differ: prediction {p.shape}, ground truth {g.shape}"
            + ("" if void is None else f", void {void.shape}")
        )
    return crop_jf(p, g, void, bound_pix(*pred.shape, bound_th), want_f=want_f)


def union_box(boxes, height: int, width: int) -> tuple[slice, slice] | None:
    """Rows/columns of the union of ``(x, y, w, h)`` boxes grown by one pixel, clipped to the image.

    Boxes with ``w == 0`` or ``h == 0`` (empty masks) are skipped; None when all are empty. A
    crop of the frames to this box can be scored with :func:`crop_jf` instead of the whole frames
    when the boxes cover every foreground pixel of the prediction and the ground truth.
    """
    x0 = y0 = None
    for x, y, w, h in boxes:
        if w <= 0 or h <= 0:
            continue
        if x0 is None:
            x0, y0, x1, y1 = x, y, x + w, y + h
        else:
            x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x + w), max(y1, y + h)
    if x0 is None:
        return None
    return slice(max(y0 - 1, 0), min(y1 + 1, height)), slice(max(x0 - 1, 0), min(x1 + 1, width))


def crop_jf(
    pred: np.ndarray,
    gt: np.ndarray,
    void: np.ndarray | None,
    radius: int,
    *,
    want_f: bool = True,
    shrink: bool = True,
) -> tuple[float, float]:
    """:func:`frame_jf` of two whole frames, computed on crops of them.

    The crops must hold every foreground pixel of both masks plus a one-pixel margin inside the
    image (any crop that contains :func:`union_box` of the masks' bounding boxes): outside it
    both boundary maps are zero and the margin rows/columns decide the boundary at the crop's
    edges exactly as the neighbours in the frame do (an edge of the crop that is an edge of the
    image is replicated, as ``_seg2bmap`` treats the image border).

    Args:
        pred, gt: the crops ``(h, w)``, uint8 or bool (nonzero = foreground), any strides.
        void: the crop of the void pixels, or None.
        radius: the disk radius of the *whole* frame, :func:`bound_pix` ``(H, W, bound_th)``.
        want_f: compute F (``False`` returns ``nan`` for F).
        shrink: first cut the crops down to the box of these two masks (two ``boundingRect``
            scans); ``False`` scores the crops as given (for crops already that box).

    Returns:
        ``(J, F)`` as Python floats, bit-identical to :func:`frame_jf` on the whole frames.
    """
    p, g = _u8(pred), _u8(gt)
    if not shrink and p.size > _SMALL_BOX:
        if p.shape != g.shape:
            raise ValueError(f"crop shapes differ: {p.shape}, {g.shape}")
        return _jf_packed(p, g, None if void is None else _u8(void), radius, want_f)
    box = _box(p, g)
    if box is None:  # both empty: J = 1 (empty union) and F = 1 (both boundaries empty)
        return 1.0, (1.0 if want_f else math.nan)
    rows, cols = box
    if (rows.stop - rows.start) * (cols.stop - cols.start) > _SMALL_BOX:
        return _jf_packed(p[box], g[box], None if void is None else _u8(void)[box], radius, want_f)
    p = np.not_equal(p[box], 0).view(np.uint8)
    g = np.not_equal(g[box], 0).view(np.uint8)
    if void is None:
        inter = cv2.countNonZero(cv2.bitwise_and(p, g))
        union = cv2.countNonZero(p) + cv2.countNonZero(g) - inter
    else:
        keep = np.equal(_u8(void)[box], 0).view(np.uint8)
        p = cv2.bitwise_and(p, keep)
        g = cv2.bitwise_and(g, keep)
        inter = cv2.countNonZero(cv2.bitwise_and(p, g))
        union = cv2.countNonZero(cv2.bitwise_or(p, g))
    j = 1.0 if union == 0 else inter / union
    if not want_f:
        return j, math.nan
    bp, bg = _bmap(p), _bmap(g)
    n_fg, n_gt = cv2.countNonZero(bp), cv2.countNonZero(bg)
    if n_fg == 0 or n_gt == 0:
        return j, _f_from_counts(0, 0, n_fg, n_gt)
    fg_match, gt_match = _match_counts(bp, bg, radius)
    return j, _f_from_counts(fg_match, gt_match, n_fg, n_gt)


def crops_jf(preds: list, gts: list, voids: list | None, radius: int) -> list[tuple[float, float]]:
    """:func:`crop_jf` (``shrink=False``) of several pairs of crops of one box, in one pass.

    Every crop has the same shape and holds the foreground of both masks of its pair plus the
    one-pixel margin (one box per frame, as the DAVIS protocols use it). In boxes above 64x64
    pixels the pairs are packed into one stack of bit maps, so J, the boundary maps and the disk
    dilation cost one series of array operations for all of them; smaller boxes are scored one
    pair at a time.

    Args:
        preds, gts: crops ``(h, w)``, uint8 or bool, nonzero = foreground.
        voids: one void crop per pair (an item may be None), or None.
        radius: the whole frame's disk radius.

    Returns:
        ``[(J, F), ...]`` in pair order, each bit-identical to :func:`frame_jf` on whole frames.
    """
    n = len(preds)
    if n == 0:
        return []
    h, w = preds[0].shape
    if n == 1 or h * w <= _SMALL_BOX or (voids is not None and any(v is None for v in voids)):
        return [crop_jf(p, g, None if voids is None else voids[i], radius, shrink=False) for i, (p, g) in enumerate(zip(preds, gts))]
    for m in (*preds, *gts):
        if m.shape != (h, w):
            raise ValueError(f"crop shapes differ: {m.shape}, {(h, w)}")
    X = np.stack([_pack(_u8(m), radius) for m in (*preds, *gts)])  # (2n, h, nw): preds, then gts
    P, G = X[:n], X[n:]
    if voids is not None:
        K = ~np.stack([_pack(_u8(v), radius) for v in voids])
        P &= K
        G &= K
    inter, union = _popcounts(P & G), _popcounts(P | G)
    B = _bmap_packed(X, w)
    nb = _popcounts(B)
    D = _dilate_packed(B, radius)
    fg = _popcounts(B[:n] & D[n:])  # prediction boundary near the ground truth's
    gt = _popcounts(B[n:] & D[:n])
    out = []
    for i in range(n):
        u, it = int(union[i]), int(inter[i])
        j = 1.0 if u == 0 else it / u
        n_fg, n_gt = int(nb[i]), int(nb[n + i])
        if n_fg == 0 or n_gt == 0:
            out.append((j, _f_from_counts(0, 0, n_fg, n_gt)))
        else:
            out.append((j, _f_from_counts(int(fg[i]), int(gt[i]), n_fg, n_gt)))
    return out


def _popcounts(words: np.ndarray) -> np.ndarray:
    """Set bits of each map of a stack ``(k, h, nw)``: ``int64 (k,)``."""
    k = words.shape[0]
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words).reshape(k, -1).sum(axis=1, dtype=np.int64)
    return _POP8[words.view(np.uint8)].reshape(k, -1).sum(axis=1, dtype=np.int64)


def jaccard(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J of one frame (``db_eval_iou``); see :func:`frame_jf`."""
    return frame_jf(pred, gt, void, want_f=False)[0]


def boundary_f(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH) -> float:
    """Boundary measure F of one frame (``f_measure``); see :func:`frame_jf`."""
    return frame_jf(pred, gt, void, bound_th)[1]


def video_jf(
    pred: np.ndarray,
    gt: np.ndarray,
    void: np.ndarray | None = None,
    bound_th: float = BOUND_TH,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of a video (``db_eval_iou`` / ``db_eval_boundary`` on ``(T, H, W)``).

    Args:
        pred, gt: ``(T, H, W)`` masks (nonzero = foreground); void: optional ``(T, H, W)``.

    Returns:
        ``(J, F)``: two ``float64 (T,)`` arrays.

    Raises:
        ValueError: shapes differ or are not 3-D.
    """
    if pred.shape != gt.shape or pred.ndim != 3 or (void is not None and void.shape != gt.shape):
        raise ValueError(f"expected two (T, H, W) arrays of one shape, got {pred.shape} and {gt.shape}")
    T = gt.shape[0]
    j = np.empty(T, np.float64)
    f = np.empty(T, np.float64)
    for t in range(T):
        j[t], f[t] = frame_jf(pred[t], gt[t], None if void is None else void[t], bound_th)
    return j, f
