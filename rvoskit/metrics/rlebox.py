"""COCO RLE masks decoded inside a box only (evaluation decodes the ground truth this way).

A pycocotools RLE lists run lengths in column-major order, alternating background / foreground.
:func:`runs` parses the compressed string once (:func:`rvoskit.format.rle.run_lengths`);
:func:`runs_bbox` gives the exact bounding box of the foreground (as ``pycocotools.mask.toBbox``);
:func:`decode_in` writes the mask's pixels inside a box, which is all the J and F of
:func:`rvoskit.metrics.jf.crop_jf` need, at a fraction of a whole-frame decode at 720p.
"""

from __future__ import annotations

import cv2
import numpy as np

from rvoskit.format.rle import run_lengths

_VALS = np.zeros(1 << 16, np.uint8)
_VALS[1::2] = 1  # run k is foreground when k is odd


def runs(counts: bytes, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` ``int64`` arrays of every run (end exclusive, column-major pixel offsets).

    Raises:
        ValueError: a malformed string, or runs that do not cover exactly ``H * W`` pixels (as
            ``pycocotools.mask.decode`` would read past or short of the mask).
    """
    c = run_lengths(counts)
    end = np.cumsum(c)
    total = int(end[-1]) if end.size else 0
    if total != height * width:
        raise ValueError(f"RLE covers {total} pixels, expected {height}x{width} = {height * width}")
    return end - c, end


def runs_bbox(start: np.ndarray, end: np.ndarray, height: int) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` of the foreground of :func:`runs` (``w == 0`` when empty); equal to
    ``pycocotools.mask.toBbox``: a run that crosses a column spans every row."""
    s, e = start[1::2], end[1::2]
    keep = e > s
    if not keep.any():
        return 0, 0, 0, 0
    s, e = s[keep], e[keep] - 1
    xs, xe = s // height, e // height
    ys, ye = s % height, e % height
    cross = xs != xe
    if cross.any():
        ys = np.where(cross, 0, ys)
        ye = np.where(cross, height - 1, ye)
    x0, x1, y0, y1 = int(xs.min()), int(xe.max()), int(ys.min()), int(ye.max())
    return x0, y0, x1 - x0 + 1, y1 - y0 + 1


def decode_in(start: np.ndarray, end: np.ndarray, height: int, rows: slice, cols: slice) -> np.ndarray:
    """The mask of :func:`runs` inside ``[rows, cols]`` as a C-contiguous ``uint8 (h, w)`` 0/1.

    Only the columns of the box are expanded (column-major, as the RLE), then transposed.
    """
    lo, hi = cols.start * height, cols.stop * height
    n = np.minimum(end, hi)
    n -= np.maximum(start, lo)
    np.maximum(n, 0, out=n)  # runs outside the columns: empty (clip(end) - clip(start) == 0)
    vals = _VALS[: n.size] if n.size <= _VALS.size else (np.arange(n.size) & 1).astype(np.uint8)
    col = np.repeat(vals, n).reshape(cols.stop - cols.start, height)[:, rows]
    if col.shape[0] > 1 and col.shape[1] > 1:
        return cv2.transpose(col)
    return np.ascontiguousarray(col.T)
