"""IoU pseudo-labels of candidate tracks (SOLA's training labels).

For every expression of a dataset with ground truth and every candidate track of its video (from
one or more track stores), the mean over all frames of the video of the per-frame IoU between the
track and each target object of the expression (a frame where both masks are empty counts as 1),
the maximum over objects, and the same mean against the union of the expression's objects. The
pseudo-label is ``max > threshold`` (SOLA's rule) or ``union > threshold``.

Source followed (``cvlab-kaist/SOLA`` @ 76f87be): ``track_generation/generate_tokens_grid.py``
``--save_prec_rec_iou`` (per GT object: ``seg_utils.reshape_masklet`` on track and GT masklets,
then ``utils.compute_mask_metrics`` -> mean per-frame IoU, empty/empty = 1), and
``dataloader.py`` l.139-154 (label = max over the expression's ``anno_id`` > 0.7).

Speed: every mask is decoded at most once per video (never per track-object pair); IoUs are computed
on COCO RLE with :func:`pycocotools.mask.iou`. At the native size nothing is decoded at all, and
the stored ``area``/``bbox`` columns decide which RLE strings need parsing at all and which pairs
need a walk (:func:`_native_ious`: a track whose box touches no object's box is never parsed; the
IoU with a union of objects that do not overlap comes from the objects' walks); the values are
bit for bit those of ``mask.iou`` per frame. With a resolution every mask is decoded once, resized
with OpenCV and re-encoded, then compared as RLE.

Output directory (``schemas/FORMAT.md`` section 3)::

    <labels>/labels.parquet   table "labels", one row per (expression, source, track)
    <labels>/labels.json      threshold, target rule, resolution, dataset, sources, summary
    <labels>/miou_hist.png    mIoU histogram and positives per expression
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pycocotools.mask as cocomask

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.executor import Executor, imap, resolve_executor
from rvoskit.format import (
    arrow_schema,
    atomic_dir,
    atomic_file,
    open_dataset,
    read_table,
    rle,
    safe_name,
    write_table,
)
from rvoskit.format import arrowbuf
from rvoskit.format.trackstore import TrackStore

if TYPE_CHECKING:  # pseudolabel never imports pandas (~0.3 s of start-up, issue 13); DataFrames are accepted
    import pandas as pd

FORMAT_NAME = "rvoskit-labels"
FORMAT_VERSION = 1
TARGETS = ("max", "union")
SOLA_RESOLUTION = "540x960"
LABELS_FILE = "labels.parquet"
META_FILE = "labels.json"
HIST_FILE = "miou_hist.png"


class MissingTracksWarning(UserWarning):
    """A track store has no tracks for some videos of the dataset (their expressions lose candidates)."""


__all__ = [
    "TARGETS",
    "Masklets",
    "MissingTracksWarning",
    "mean_iou",
    "parse_resolution",
    "parse_sources",
    "plot_histogram",
    "pseudolabel",
    "read_labels",
    "resize_masks",
    "summarize",
    "target_size",
    "video_labels",
    "video_mious",
]


# -- sizes ------------------------------------------------------------------------------------------
#: Largest side ``--resolution`` accepts (8K UHD is 7680): a mask is decoded at this size per frame
#: and track, so 100000x100000 would need 9.3 GiB per mask (refused up front, not a MemoryError).
MAX_RESOLUTION_SIDE = 8192


def parse_resolution(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """Parse ``--resolution``: ``"native"`` (or None) -> None, ``"540x960"`` -> ``(540, 960)``.

    The pair is (short side, long side) and is oriented like each video by :func:`target_size`;
    its order in the string does not matter.

    Raises:
        RvosError: anything else (names the option).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "native"):
        return None
    if isinstance(spec, tuple):
        a, b = spec
    else:
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", spec)
        if not m:
            raise RvosError(f"--resolution must be 'native' or HxW like 540x960, got {spec!r}")
        a, b = int(m.group(1)), int(m.group(2))
    if a <= 0 or b <= 0:
        raise RvosError(f"--resolution must be positive, got {a}x{b}")
    if max(a, b) > MAX_RESOLUTION_SIDE:
        raise RvosError(f"--resolution {a}x{b} is too large: each side must be at most {MAX_RESOLUTION_SIDE} "
                        f"(one decoded mask would take {a * b / 2**30:.1f} GiB; SOLA compares at 540x960)")
    return (min(a, b), max(a, b))


def target_size(height: int, width: int, resolution: tuple[int, int] | None) -> tuple[int, int]:
    """Size ``(H', W')`` a ``height x width`` video's masks are compared at.

    SOLA's rule (``track_generation/seg_utils.py`` ``reshape_masklet``): ``(540, 960)`` if
    ``H < W`` else ``(960, 540)``, so square videos are resized to portrait. (The other helper,
    ``utils.decode_rle_mask``, sends squares to landscape; SOLA's labels go through
    ``reshape_masklet``, which we follow.) ``resolution=None`` keeps the native size.
    """
    if resolution is None:
        return int(height), int(width)
    short, long = resolution
    return (short, long) if height < width else (long, short)


def resize_masks(counts: Sequence[bytes | None], height: int, width: int, size: tuple[int, int]) -> list[bytes | None]:
    """Resize RLE masks to ``size`` the way SOLA does: bilinear, then ``> 0.5``.

    Each mask is expanded once from its run lengths (:func:`rvoskit.format.rle.run_lengths`)
    straight into a float32 image, resized with ``cv2.resize(INTER_LINEAR)`` (half-pixel centres,
    like ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` that SOLA's
    ``seg_utils.reshape_masklet`` calls; float32 input, because OpenCV's uint8 path rounds 0.5 up)
    and re-encoded. One mask at a time into reused buffers: at 720p this is about 2x faster than
    ``pycocotools.mask.decode`` + ``astype`` on batches, whose fresh full-frame arrays dominate.

    Args:
        counts: compressed COCO RLE counts of ``height x width`` masks; None = empty.
        height, width: their size.
        size: ``(H', W')``.

    Returns:
        Compressed counts at ``size``; None where the mask is empty (before or after resizing).

    Raises:
        RvosError: counts that are malformed or do not describe ``height x width`` pixels.
    """
    import cv2

    oh, ow = size
    if (oh, ow) == (height, width):
        return list(counts)
    out: list[bytes | None] = [None] * len(counts)
    # The RLE runs the column-major (H, W) mask, i.e. the C-ordered (W, H) image: resize that
    # transposed, so that the result's transpose is the Fortran-ordered (H', W') mask to encode.
    levels = np.zeros(0, np.float32)
    small = np.empty((ow, oh), np.float32)
    fg = np.empty((ow, oh), np.bool_)
    for i, c in enumerate(counts):
        if c is None:
            continue
        try:
            runs = rle.run_lengths(c)
        except ValueError as exc:
            raise RvosError(f"malformed RLE: {exc}") from None
        if int(runs.sum()) != height * width:
            raise RvosError(f"RLE describes {int(runs.sum())} pixels, not {height}x{width}")
        if levels.size < runs.size:
            levels = np.resize(np.array([0, 1], np.float32), 2 * runs.size)
        full = np.repeat(levels[: runs.size], runs).reshape(width, height)
        cv2.resize(full, (oh, ow), dst=small, interpolation=cv2.INTER_LINEAR)
        np.greater(small, 0.5, out=fg)
        if fg.any():
            out[i] = cocomask.encode(fg.T.view(np.uint8)[:, :, None])[0]["counts"]
    return out


# -- IoU ----------------------------------------------------------------------------------------------
@dataclass
class Masklets:
    """``n`` masklets of one video: ``grid[i, t]`` is the compressed RLE of masklet i on frame t
    (``height x width``), or None where the mask is empty or absent (both count as empty).
    ``name`` says where they come from in error messages."""

    height: int
    width: int
    grid: np.ndarray  # object (n, T)
    name: str = "masks"
    #: ``int64 (n, T)`` pixels of each mask (0 = empty) and ``float64 (n, T, 4)`` its COCO box
    #: ``[x, y, w, h]`` (``pycocotools.mask.toBbox``), as the ``area``/``bbox`` columns store them;
    #: None = not known (:meth:`boxes` computes them from the RLE).
    area: np.ndarray | None = None
    bbox: np.ndarray | None = None

    def boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(area int64 (n, T), bbox float64 (n, T, 4))``: the stored ones, or computed from the RLE
        (:func:`rvoskit.format.rle.area_bbox`) where they were not given. Stored boxes that cannot
        be a non-empty mask's (``w * h`` below its area, or reaching outside the frame) are all
        recomputed: a box too small would hide overlaps."""
        if self.bbox is not None and self.area is not None:
            b, full = self.bbox, self.area > 0
            if full.any() and ((b[..., 2] * b[..., 3] < self.area)[full].any() or (b[..., 0] < 0)[full].any()
                               or (b[..., 1] < 0)[full].any() or (b[..., 0] + b[..., 2] > self.width)[full].any()
                               or (b[..., 1] + b[..., 3] > self.height)[full].any()):
                self.bbox = None
        if self.area is None or self.bbox is None:
            n, T = self.grid.shape
            area, bbox = np.zeros((n, T), np.int64), np.zeros((n, T, 4), np.float64)
            i, t = np.nonzero(self.grid != None)  # noqa: E711 (elementwise)
            if i.size:
                try:
                    a, b = rle.area_bbox(list(self.grid[i, t]), self.height, self.width)
                except (ValueError, TypeError) as exc:
                    raise RvosError(f"{self.name}: malformed RLE: {exc}") from None
                area[i, t], bbox[i, t] = a, b
            self.area = area if self.area is None else self.area
            self.bbox = bbox if self.bbox is None else self.bbox
        return self.area, self.bbox

    @classmethod
    def from_rows(
        cls, rows: pd.DataFrame | pa.Table, key: str, keys: Sequence, num_frames: int, height: int, width: int,
        name: str = "masks",
    ) -> Masklets:
        """Build from ``masks``/``tracks`` rows (a DataFrame or an Arrow table): masklet ``keys[i]``
        takes the rows whose ``key`` equals it.

        Rows with ``area == 0`` are empty; (key, frame) pairs without a row are absent; rows whose key
        is not in ``keys`` are ignored. ``area`` and, when the rows have it, ``bbox`` are kept.
        """
        grid = np.full((len(keys), num_frames), None, dtype=object)
        area = np.zeros((len(keys), num_frames), np.int64)
        has_bbox = "bbox" in _names(rows)
        bbox = np.zeros((len(keys), num_frames, 4), np.float64) if has_bbox else None
        if len(rows) and len(keys):
            ks = np.asarray(keys)
            order = np.argsort(ks, kind="stable")
            a = _column(rows, "area")
            full = np.flatnonzero(a > 0)
            vals = _column(rows, key)[full]
            pos = np.minimum(np.searchsorted(ks[order], vals), len(ks) - 1)
            keep = ks[order][pos] == vals
            sel = full[keep]
            i, t = order[pos[keep]], _column(rows, "frame_idx")[sel]
            grid[i, t] = _column(rows, "rle")[sel]
            area[i, t] = a[sel]
            if has_bbox and sel.size:
                bbox[i, t] = _column(rows, "bbox")[sel]
        return cls(int(height), int(width), grid, name, area, bbox)


def _sizes(rows: pd.DataFrame | pa.Table) -> np.ndarray:
    """The distinct ``(height, width)`` of some rows: ``int64 (k, 2)``."""
    if len(rows) == 0:
        return np.zeros((0, 2), np.int64)
    h, w = _column(rows, "height").astype(np.int64), _column(rows, "width").astype(np.int64)
    if (h == h[0]).all() and (w == w[0]).all():
        return np.array([[h[0], w[0]]], np.int64)
    return np.unique(np.stack([h, w], 1), axis=0)


class _Columns(dict):
    """Rows as ``{column: numpy array}`` (each converted once, by :func:`_column`); ``len`` = rows."""

    def __init__(self, rows: pd.DataFrame | pa.Table):
        super().__init__((c, _column(rows, c)) for c in _names(rows) if c != "video_id")
        self.num_rows = len(rows)

    def __len__(self) -> int:
        return self.num_rows


def _names(rows: pd.DataFrame | pa.Table | _Columns) -> list[str]:
    if isinstance(rows, _Columns):
        return list(rows.keys())
    return list(rows.column_names) if isinstance(rows, pa.Table) else list(rows.columns)


def _column(rows: pd.DataFrame | pa.Table | _Columns, name: str) -> np.ndarray:
    """One column of a DataFrame or an Arrow table as numpy: ``rle`` as an object array of bytes,
    ``bbox`` as ``float64 (n, 4)``, the others as they are."""
    if isinstance(rows, _Columns):
        return rows[name]
    if isinstance(rows, pa.Table):
        c = rows.column(name)
        # from the buffers: to_numpy / pyarrow.compute would import pandas (arrowbuf)
        if name == "bbox":
            c = c.combine_chunks() if c.num_chunks != 1 else c.chunk(0)
            if c.null_count:  # null boxes: the compute path (rare; stored boxes are never null)
                import pyarrow.compute as pc

                if len(c) and (pc.min(pc.list_value_length(c)).as_py() != 4 or pc.max(pc.list_value_length(c)).as_py() != 4):
                    raise RvosError("bbox must hold 4 numbers [x, y, w, h] on every row")
                return c.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 4)
            if len(c) and (arrowbuf.list_lengths(c) != 4).any():
                raise RvosError("bbox must hold 4 numbers [x, y, w, h] on every row")
            off = arrowbuf.to_numpy(c.offsets)  # the values of these lists (flatten() imports pyarrow.compute)
            vals = c.values.slice(int(off[0]), int(off[-1] - off[0])) if len(c) else c.values.slice(0, 0)
            return arrowbuf.to_numpy(vals).astype(np.float64).reshape(-1, 4)
        return arrowbuf.to_numpy(c) if c.null_count == 0 or name in ("rle",) else np.asarray(c.to_pylist(), dtype=object)
    v = rows[name].to_numpy()
    if name == "bbox":
        return np.stack(v).astype(np.float64).reshape(-1, 4) if len(v) else np.zeros((0, 4), np.float64)
    return v


def _frame_iou(a: list[bytes | None], b: list[bytes | None], height: int, width: int) -> np.ndarray:
    """``(len(a), len(b))`` IoU of RLE masks on one frame; empty vs empty = 1, empty vs not = 0."""
    ea = np.fromiter((x is None for x in a), bool, len(a))
    eb = np.fromiter((x is None for x in b), bool, len(b))
    out = np.outer(ea, eb).astype(np.float64)
    ia, ib = np.flatnonzero(~ea), np.flatnonzero(~eb)
    if ia.size and ib.size:
        size = [height, width]
        dt = [{"size": size, "counts": a[i]} for i in ia]
        gt = [{"size": size, "counts": b[j]} for j in ib]
        out[np.ix_(ia, ib)] = np.asarray(cocomask.iou(dt, gt, [0] * len(gt)), np.float64).reshape(ia.size, ib.size)
    return out


def _box_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether COCO boxes ``a (..., 4)`` and ``b (..., 4)`` (broadcast) share an area: ``bool``.

    The test of pycocotools ``bbIou`` (``maskApi.c``): the overlap ``min(x1) - max(x0)`` must be > 0
    in both directions, so boxes that only touch (``x + w`` of one = ``x`` of the other) do not
    overlap, and neither do masks in them: no pixel of either lies in the other's box.
    """
    ax0, ay0, ax1, ay1 = a[..., 0], a[..., 1], a[..., 0] + a[..., 2], a[..., 1] + a[..., 3]
    bx0, by0, bx1, by1 = b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3]
    return (np.minimum(ax1, bx1) > np.maximum(ax0, bx0)) & (np.minimum(ay1, by1) > np.maximum(ay0, by0))


def _intersections(iou: np.ndarray, area_a: np.ndarray, area_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel counts ``|A & B|`` behind IoUs from :func:`pycocotools.mask.iou`, and where they are exact.

    pycocotools returns ``(double) i / (double) u`` of the integers ``i = |A & B|`` and
    ``u = |A| + |B| - i``; ``i / (|A| + |B| - i)`` grows strictly with ``i``, so the nearest integer
    to ``iou * (|A| + |B|) / (1 + iou)`` is ``i``. Each is checked by recomputing the quotient
    (``ok`` is False where it does not give ``iou`` back: areas that are not the masks' own).

    Returns:
        ``(int64 i, bool ok)``, shaped like the broadcast inputs.
    """
    total = (area_a + area_b).astype(np.float64)
    i = np.rint(iou * total / (1.0 + iou)).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        back = np.where(i > 0, i / (total - i), 0.0)
    return i, back == iou


#: The compiled kernels (:mod:`rvoskit._labels_kernels`) once loaded: ``{"module": ...}``; empty
#: until :func:`load_kernels` has run (pycocotools does the work meanwhile, with the same values).
_KERNELS: dict[str, Any] = {}


def load_kernels() -> bool:
    """Import and compile (or load from numba's disk cache) the native-size kernels; False when
    numba is not usable (not installed, ``NUMBA_DISABLE_JIT``, no compiler). Safe to call from a
    thread: :func:`_label_video` starts one per process, and videos labelled before it is done go
    through pycocotools (the same values)."""
    if "module" not in _KERNELS:
        try:
            import numba

            if numba.config.DISABLE_JIT:
                return False
            from rvoskit import _labels_kernels

            _labels_kernels.warm()
        except Exception:  # noqa: BLE001 (pycocotools stays)
            return False
        _KERNELS["module"] = _labels_kernels
    return True


#: Track masks (tracks x frames) per process from which :func:`pseudolabel` loads the compiled
#: kernels: their ~1.2 s of load time is then repaid at least twice (~6 us saved per track mask).
KERNELS_MIN_TRACK_FRAMES = 400_000


def _start_loading_kernels() -> None:
    """Start :func:`load_kernels` on a daemon thread, once per process."""
    if "module" not in _KERNELS and "thread" not in _KERNELS:
        import threading

        _KERNELS["thread"] = threading.Thread(target=load_kernels, name="rvoskit-labels-kernels", daemon=True)
        _KERNELS["thread"].start()


def _compiled_pairs(K, tgrid: np.ndarray, ggrid: np.ndarray, touch: np.ndarray, gfull: np.ndarray, H: int, W: int):
    """Exact intersections with the compiled kernels for the (frame, track, object) pairs of
    ``touch`` (boxes that overlap) and every pair of present objects: ``(inter (F, n, m), track
    areas (F, n), object areas (F, m), object-object inter (F, m, m))`` as int64 (areas of the
    tracks that touch nothing are 0: unused), or None when a string is not a valid RLE of
    ``H x W`` (the caller uses pycocotools)."""
    F, n = tgrid.shape
    m = ggrid.shape[1]
    tfull = touch.any(2)
    fr, tr = np.nonzero(tfull)
    fo, ob = np.nonzero(gfull)
    strings = list(tgrid[fr, tr]) + list(ggrid[fo, ob])
    Q = len(strings)
    inter = np.zeros((F, n, m), np.int64)
    ta, ga = np.zeros((F, n), np.int64), np.zeros((F, m), np.int64)
    obj_inter = np.zeros((F, m, m), np.int64)
    if Q == 0:
        return inter, ta, ga, obj_inter
    try:
        lens = np.fromiter(map(len, strings), np.int64, Q)
        buf = np.frombuffer(b"".join(strings), np.uint8)
    except TypeError:  # not bytes
        return None
    ends = np.cumsum(lens)
    starts = ends - lens
    runs = np.empty(max(buf.size, 1), np.int64)
    nruns, area, first, last, status = (np.zeros(Q, np.int64) for _ in range(5))
    K.parse(buf, starts, ends, H * W, runs, nruns, area, first, last, status)
    if status.any():
        return None
    nt = fr.size
    tid = np.zeros((F, n), np.int64)
    gid = np.zeros((F, m), np.int64)
    tid[fr, tr] = np.arange(nt)
    gid[fo, ob] = nt + np.arange(fo.size)
    ta[fr, tr] = area[:nt]
    ga[fo, ob] = area[nt:]
    def pairs(ok, ida, idb):
        k, i, j = np.nonzero(ok)
        got = np.zeros(k.size, np.int64)
        if k.size:
            K.intersections(runs, starts, nruns, first, last, ida[k, i], idb[k, j], got)
        return k, i, j, got

    k, i, j, got = pairs(touch, tid, gid)
    inter[k, i, j] = got
    both = gfull[:, :, None] & gfull[:, None]
    both &= ~np.eye(m, dtype=bool)
    k, i, j, got = pairs(both, gid, gid)
    obj_inter[k, i, j] = got
    return inter, ta, ga, obj_inter


def _native_ious(tracks: Masklets, objects: Masklets, unions: Sequence[Sequence[int]], frames: Sequence[int],
                 compiled: bool = True) -> np.ndarray:
    """Per-frame IoU of every track with every object, every union of objects and the empty mask, at
    the native size: exactly what :func:`_frame_iou` gives for the same targets (bit for bit), with
    far fewer RLE walks.

    pycocotools computes an IoU by parsing both RLE strings and walking both run lists to the end.
    Here (all from the ``area``/``bbox`` columns, FORMAT.md 1.3): empty masks are never parsed; a
    track whose box overlaps no object's box on a frame is never parsed (its IoU with every object
    and union there is 0, like pycocotools' own box test gives); one :func:`pycocotools.mask.iou`
    per frame between the remaining tracks and the objects they may touch. The IoU with a union of
    objects that do not overlap each other on that frame (their boxes do not, or pycocotools finds
    no common pixel) follows from those walks without another: ``|A & U| = sum |A & B_o|`` (integers
    recovered by :func:`_intersections`) and ``|A | U| = |A| + sum |B_o| - |A & U|``, divided as
    pycocotools divides. Objects that overlap, and areas that do not match their RLE, fall back to
    :func:`pycocotools.mask.merge` and a walk.

    With the compiled kernels loaded (:func:`load_kernels`, ``compiled=True``), the same pairs'
    ``|A & B|`` and the areas come from :mod:`rvoskit._labels_kernels` instead (each string parsed
    once, each pair walked only over the pixels both could share, no box scan), and the IoU is
    ``i / (|A| + |B| - i)`` divided in float64 as pycocotools divides: the same floats.

    Args:
        tracks: ``n`` track masklets (with or without stored area/bbox).
        objects: ``m`` ground-truth objects, the same size and frames.
        unions: lists of object rows (two or more each).
        frames: the frames to compute.

    Returns:
        ``float64 (n, m + len(unions) + 1, len(frames))``: objects, unions, then the empty mask;
        1.0 where both masks are empty.
    """
    H, W = objects.height, objects.width
    ts = np.asarray(frames, np.int64)
    F = ts.size
    n, m = tracks.grid.shape[0], objects.grid.shape[0]
    out = np.zeros((F, n, m + len(unions) + 1), np.float64)  # frame-major while filling
    if F == 0:
        return out.transpose(1, 2, 0)
    t_area, t_box = tracks.boxes()
    g_area, g_box = objects.boxes()
    ta, tb = t_area[:, ts].T, t_box[:, ts].transpose(1, 0, 2)  # (F, n), (F, n, 4)
    ga, gb = g_area[:, ts].T, g_box[:, ts].transpose(1, 0, 2)  # (F, m), (F, m, 4)
    tfull, gfull = ta > 0, ga > 0
    touch = _box_overlap(tb[:, :, None], gb[:, None]) & tfull[:, :, None] & gfull[:, None]  # (F, n, m)
    rows_of, cols_of = touch.any(2), touch.any(1)
    tgrid, ggrid = tracks.grid[:, ts].T, objects.grid[:, ts].T  # (F, n), (F, m)
    size = [H, W]
    kernels = _KERNELS.get("module") if compiled else None
    exact_pairs = _compiled_pairs(kernels, tgrid, ggrid, touch, gfull, H, W) if kernels is not None else None
    if exact_pairs is not None:
        # compiled: exact |A & B| and areas from the strings themselves, IoU divided as pycocotools does
        inter, ta, ga, obj_inter = exact_pairs
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(inter > 0, inter / (ta[:, :, None] + ga[:, None] - inter), 0.0)
    else:
        iou = np.zeros((F, n, m), np.float64)
        # every frame's tracks and objects in two passes (np.nonzero is in frame order), then one
        # mask.iou per frame on slices of them
        fr, tr = np.nonzero(rows_of)
        fo, ob = np.nonzero(cols_of)
        dts = [{"size": size, "counts": c} for c in tgrid[fr, tr]]
        gts = [{"size": size, "counts": c} for c in ggrid[fo, ob]]
        tb_ = np.searchsorted(fr, np.arange(F + 1)).tolist()
        ob_ = np.searchsorted(fo, np.arange(F + 1)).tolist()
        for k in np.unique(fr).tolist():
            a0, a1, b0, b1 = tb_[k], tb_[k + 1], ob_[k], ob_[k + 1]
            r = cocomask.iou(dts[a0:a1], gts[b0:b1], [0] * (b1 - b0))
            iou[k, tr[a0:a1, None], ob[b0:b1]] = np.asarray(r, np.float64).reshape(a1 - a0, b1 - b0)
    out[:, :, :m] = np.where(~tfull[:, :, None] & ~gfull[:, None], 1.0, iou)
    out[:, :, -1] = ~tfull  # the empty target
    if unions:
        obj_touch = _box_overlap(gb[:, :, None], gb[:, None]) & gfull[:, :, None] & gfull[:, None]  # (F, m, m)
        obj_touch &= ~np.eye(m, dtype=bool)
        if exact_pairs is not None:
            exact = np.ones(inter.shape, bool)
            overlap = (obj_inter > 0) & ~np.eye(m, dtype=bool)
        else:
            inter, exact = _intersections(iou, ta[:, :, None], ga[:, None])  # (F, n, m)
            # frames where two objects of some union have overlapping boxes: do their masks overlap?
            pairs_of = np.zeros((F, m, m), bool)
            for u in unions:
                pairs_of[:, np.asarray(u)[:, None], np.asarray(u)] = True
            overlap = np.zeros((F, m, m), bool)
            for k in np.flatnonzero((obj_touch & pairs_of).any((1, 2))):
                present = np.flatnonzero(gfull[k])
                g = [{"size": size, "counts": c} for c in ggrid[k, present]]
                full = np.zeros((m, m), np.float64)
                full[np.ix_(present, present)] = np.asarray(cocomask.iou(g, g, [0] * len(g)), np.float64).reshape(present.size, -1)
                overlap[k] = (full > 0) & obj_touch[k]

        for j, u in enumerate(unions):
            u = np.asarray(u, np.int64)
            col = m + j
            ui = inter[:, :, u].sum(2)  # (F, n)
            ua = ga[:, u].sum(1)  # (F,): the union's pixels where its objects do not overlap
            with np.errstate(invalid="ignore", divide="ignore"):
                val = np.where(ui > 0, ui / (ta + ua[:, None] - ui), 0.0)
            empty = ~gfull[:, u].any(1)
            val[empty] = ~tfull[empty]
            out[:, :, col] = val
            several = gfull[:, u].sum(1) >= 2
            redo = np.flatnonzero(several & (overlap[:, u][:, :, u].any((1, 2)) | ~exact[:, :, u].all((1, 2))))
            for k in redo:
                # objects that overlap (or areas that are not the RLE's): the union's own walk
                keep = u[gfull[k, u]]
                merged = cocomask.merge([{"size": size, "counts": c} for c in ggrid[k, keep]], intersect=False)
                rows = np.flatnonzero(tfull[k]) if exact_pairs is not None else np.flatnonzero(touch[k][:, keep].any(1))
                col_k = np.zeros(n, np.float64)
                if rows.size:
                    dt = [{"size": size, "counts": c} for c in tgrid[k, rows]]
                    col_k[rows] = np.asarray(cocomask.iou(dt, [merged], [0]), np.float64).reshape(-1)
                out[k, :, col] = col_k
    return out.transpose(1, 2, 0)


def mean_iou(tracks: Sequence[Masklets], targets: Masklets, resolution: tuple[int, int] | None = None,
             frames: Sequence[int] | None = None) -> np.ndarray:
    """Mean over frames of the per-frame IoU of every track with every target.

    Follows SOLA ``track_generation/utils.py`` ``compute_mask_metrics`` (IoU 1.0 where the union is
    empty, mean over all T frames) after ``seg_utils.reshape_masklet`` when ``resolution`` is given.

    Args:
        tracks: groups of track masklets (one per track store; sizes may differ between groups),
            each over the same T frames as ``targets``.
        targets: ground-truth masklets (objects, unions) at the video's size.
        resolution: ``(short, long)`` side to compare at (oriented by :func:`target_size` on the
            targets' size), or None to compare at the native size, which every group must then have.
        frames: the frames to average over (``videos.annotated_frames`` of a sparse dataset: a
            frame that is not annotated has no ground truth); None = all T frames.

    Returns:
        ``float64 (sum of n over groups, m)``: rows in group order.

    Raises:
        RvosError: native comparison of masks of different sizes; an RLE that is malformed or not
            of its masklets' size (names the masklets and the frame).
    """
    T = targets.grid.shape[1]
    size = target_size(targets.height, targets.width, resolution)
    for g in tracks:
        if g.grid.shape[1] != T:
            raise RvosError(f"tracks cover {g.grid.shape[1]} frames, the ground truth {T}")
        if resolution is None and (g.height, g.width) != size:
            raise RvosError(
                f"tracks are {g.height}x{g.width} but the video is {size[0]}x{size[1]}; compare with --resolution 540x960"
            )
    n = sum(g.grid.shape[0] for g in tracks)
    acc = np.zeros((n, targets.grid.shape[0]), np.float64)
    if T == 0:
        return acc

    def resized(g: Masklets, t: int) -> list[bytes | None]:
        try:
            return resize_masks(list(g.grid[:, t]), g.height, g.width, size)
        except RvosError as exc:
            raise RvosError(f"{g.name}, frame {t}: {exc.message}") from None

    ts = range(T) if frames is None else [int(t) for t in frames]
    if len(ts) == 0:
        return acc
    for t in ts:
        a = [c for g in tracks for c in resized(g, t)]
        acc += _frame_iou(a, resized(targets, t), *size)
    return acc / len(ts)


def frame_ious(tracks: Sequence[Masklets], targets: Masklets, resolution: tuple[int, int] | None = None) -> np.ndarray:
    """Per-frame IoU of every track with every target, as :func:`mean_iou` computes it frame by frame
    (both empty = 1), kept per frame so that callers can average over any frame subset (MeViS-M
    moments, :func:`video_mious` with ``moments``).

    Returns:
        ``float64 (sum of n over groups, m, T)``.

    Raises:
        RvosError: as :func:`mean_iou`.
    """
    T = targets.grid.shape[1]
    n = sum(g.grid.shape[0] for g in tracks)
    out = np.zeros((n, targets.grid.shape[0], T), np.float64)
    for t in range(T):
        out[:, :, t] = mean_iou(tracks, targets, resolution, frames=[t])
    return out


def _masked_mean(values: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Mean of ``values (n, T)`` over the frames where ``frames (T,)`` is true; NaN when there are none."""
    if not frames.any():
        return np.full(values.shape[0], np.nan)
    return values[:, frames].mean(axis=1)


def _union(counts: list[bytes | None], height: int, width: int) -> bytes | None:
    """Pixelwise union of RLE masks (RLE domain, :func:`pycocotools.mask.merge`)."""
    present = [c for c in counts if c is not None]
    if len(present) <= 1:
        return present[0] if present else None
    return cocomask.merge([{"size": [height, width], "counts": c} for c in present], intersect=False)["counts"]


# -- one video -------------------------------------------------------------------------------------
def video_labels(
    video: Mapping[str, Any],
    expressions: pd.DataFrame,
    masks: pd.DataFrame | pa.Table,
    tracks: Mapping[str, pd.DataFrame | pa.Table],
    resolution: tuple[int, int] | None,
    moments: Mapping[str, Mapping[int | None, np.ndarray]] | None = None,
) -> pa.Table:
    """mIoU of every (expression, source, track) of one video, as an Arrow ``labels`` table.

    Args:
        video: the ``videos`` row (``video_id``, ``num_frames``, ``height``, ``width``).
        expressions: the video's ``expressions`` rows (``expression_id``, ``obj_ids`` not null).
        masks: the video's ``masks`` rows (ground truth; no row = absent = empty).
        tracks: ``{source: tracks rows of this video}``.
        resolution: see :func:`mean_iou`.
        moments: MeViS-M Object-level Selective Supervision (TGL, arXiv 2508.11955): per expression,
            ``{obj_id: bool (T,) frames of its spans}`` (object level) or ``{None: bool (T,)}``
            (expression level); the IoU with an object is averaged over that object's moment only
            (expression-level spans stand for every object), the IoU with the union over the
            expression's moment (the union of its spans); an object without a span gets NaN (it can
            make no positive); an expression without spans uses all frames. Each row's
            ``moment_rule`` says which applied. None: all frames, ``moment_rule`` null.

    Returns:
        ``labels`` rows without a meaningful ``label`` (False; set by the threshold later):
        ``miou_per_obj`` aligned with ``obj_ids``, ``miou_max`` (NaN for no-target expressions),
        ``miou_union`` (IoU with the union of the targets; the empty mask for no-target ones).

    Raises:
        RvosError: frame indices outside the video, several mask sizes in one track store video,
            a native comparison of different sizes, or a malformed RLE (names the source and video).
    """
    vid = str(video["video_id"])
    T, H, W = int(video["num_frames"]), int(video["height"]), int(video["width"])
    obj_lists = [[int(o) for o in e] for e in expressions["obj_ids"]]
    objects = sorted({o for ol in obj_lists for o in ol})
    unions = sorted({tuple(sorted(set(ol))) for ol in obj_lists if len(set(ol)) > 1})
    if len(masks) and (_column(masks, "frame_idx") >= T).any():
        raise RvosError(f"ground-truth frame index beyond the video's {T} frames", item=vid)
    gt = Masklets.from_rows(masks, "obj_id", objects, T, H, W, "ground truth")
    col = {(o,): i for i, o in enumerate(objects)}
    for j, u in enumerate(unions):
        col[u] = len(objects) + j
    col[()] = len(objects) + len(unions)  # the empty target of no-target expressions

    groups, owners = [], []
    for source, rows in tracks.items():
        ids = [int(x) for x in np.unique(_column(rows, "track_id"))]
        if not ids:
            continue
        fi = _column(rows, "frame_idx")
        if (fi >= T).any() or (fi < 0).any():
            raise RvosError(f"track store {source!r}: track frame index outside the video's {T} frames", item=vid)
        sizes = _sizes(rows)
        if len(sizes) != 1:
            raise RvosError(f"track store {source!r}: one video's tracks have several sizes {sizes.tolist()}", item=vid)
        h, w = int(sizes[0][0]), int(sizes[0][1])
        if resolution is None and (h, w) != (H, W):
            raise RvosError(
                f"track store {source!r}: tracks are {h}x{w} but the video is {H}x{W}; compare with --resolution 540x960",
                item=vid,
            )
        groups.append(Masklets.from_rows(rows, "track_id", ids, T, h, w, f"track store {source!r}"))
        owners.extend((source, i) for i in ids)
    if not groups:
        return arrow_schema("labels").empty_table()
    frames = video.get("annotated_frames")  # sparse ground truth: annotated frames only
    try:
        if target_size(H, W, resolution) == (H, W) and all((g.height, g.width) == (H, W) for g in groups):
            # native size: IoUs on the stored RLE, unions from the objects' walks (_native_ious)
            ts = range(T) if moments is not None or frames is None else [int(t) for t in frames]
            both = Masklets(H, W, np.concatenate([g.grid for g in groups]), groups[0].name,
                            *(None if any(x is None for x in xs) else np.concatenate(xs)
                              for xs in ([g.area for g in groups], [g.bbox for g in groups])))
            per_frame = _native_ious(both, gt, [[col[(o,)] for o in u] for u in unions], ts)
            if moments is None:
                m = np.zeros(per_frame.shape[:2], np.float64)
                for k in range(per_frame.shape[2]):  # frame by frame, as mean_iou adds them
                    m += per_frame[:, :, k]
                if len(ts):
                    m /= len(ts)
        else:
            extra = [[_union([gt.grid[col[(o,)], t] for o in u], H, W) for t in range(T)] for u in unions] + [[None] * T]
            targets = Masklets(H, W, np.concatenate([gt.grid, np.array(extra, dtype=object).reshape(len(extra), T)]), gt.name)
            if moments is None:
                m = mean_iou(groups, targets, resolution, frames=frames)
            else:
                per_frame = frame_ious(groups, targets, resolution)
    except RvosError as exc:
        raise RvosError(exc.message, item=vid) from None
    base = np.ones(T, bool)
    if moments is not None and video.get("annotated_frames") is not None:
        base = np.zeros(T, bool)
        base[np.asarray(video["annotated_frames"], dtype=np.int64)] = True

    R = len(owners)
    counts, eids, rules, per_objs, maxes, union_ious = [], [], [], [], [], []
    for eid, ol in zip(expressions["expression_id"], obj_lists):
        ucol = col[tuple(sorted(set(ol)))]
        rule = None
        if moments is None:
            per_obj = m[:, [col[(o,)] for o in ol]] if ol else np.zeros((R, 0))
            union_iou = m[:, ucol]
        else:
            spans = moments.get(eid) or {}
            if not spans:
                rule, frames_of = "no-moment", {o: base for o in ol}
                moment = base
            else:
                moment = np.logical_or.reduce([f for f in spans.values()]) & base
                if None in spans:
                    rule, frames_of = "expression-moment", {o: moment for o in ol}
                else:
                    rule = "object-moment"
                    frames_of = {o: (spans[o] & base) if o in spans else np.zeros(T, bool) for o in ol}
            per_obj = (np.stack([_masked_mean(per_frame[:, col[(o,)], :], frames_of[o]) for o in ol], axis=1)
                       if ol else np.zeros((R, 0)))
            union_iou = _masked_mean(per_frame[:, ucol, :], moment)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (objects outside every moment)
            mx = np.nanmax(per_obj, axis=1) if ol and moments is not None else (per_obj.max(axis=1) if ol else np.full(R, np.nan))
        counts.append(len(ol))
        eids.append(str(eid))
        rules.append(rule)
        per_objs.append(np.ascontiguousarray(per_obj, np.float64).ravel())  # row by row
        maxes.append(np.asarray(mx, np.float64))
        union_ious.append(np.asarray(union_iou, np.float64))
    E = len(eids)
    if E == 0 or R == 0:
        return arrow_schema("labels").empty_table()
    k = np.repeat(np.asarray(counts, np.int64), R)  # list lengths, one per row
    offsets = arrowbuf.from_numpy(np.concatenate([[0], np.cumsum(k)]).astype(np.int32))  # pa.array would import pandas
    obj_values = np.concatenate([np.tile(np.asarray(ol, np.int64), R) for ol in obj_lists] or [np.zeros(0, np.int64)])
    schema = arrow_schema("labels")
    cols = {
        "expression_id": arrowbuf.strings([e for e in eids for _ in range(R)]),
        "video_id": arrowbuf.strings([vid] * (E * R)),
        "source": arrowbuf.strings([o[0] for o in owners] * E),
        "track_id": arrowbuf.from_numpy(np.tile(np.asarray([o[1] for o in owners], np.int32), E)),
        "obj_ids": pa.ListArray.from_arrays(offsets, arrowbuf.from_numpy(np.asarray(obj_values, np.int64))),
        "miou_per_obj": pa.ListArray.from_arrays(offsets, arrowbuf.from_numpy(np.concatenate(per_objs).astype(np.float64))),
        "miou_max": arrowbuf.from_numpy(np.concatenate(maxes).astype(np.float64)),
        "miou_union": arrowbuf.from_numpy(np.concatenate(union_ious).astype(np.float64)),
        "label": arrowbuf.from_numpy(np.zeros(E * R, bool)),
        "moment_rule": arrowbuf.strings([r for r in rules for _ in range(R)]),
    }
    return pa.Table.from_arrays([cols[f.name].cast(f.type) for f in schema], schema=schema)


def _empty_rows() -> pd.DataFrame:
    return arrow_schema("labels").empty_table().to_pandas()


def video_mious(
    video: Mapping[str, Any],
    expressions: pd.DataFrame,
    masks: pd.DataFrame,
    tracks: Mapping[str, pd.DataFrame],
    resolution: tuple[int, int] | None,
    moments: Mapping[str, Mapping[int | None, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """mIoU of every (expression, source, track) of one video: :func:`video_labels` as a DataFrame
    (``obj_ids`` and ``miou_per_obj`` as lists)."""
    t = video_labels(video, expressions, masks, tracks, resolution, moments)
    if t.num_rows == 0:
        return _empty_rows()
    df = t.to_pandas()
    for c in ("obj_ids", "miou_per_obj"):
        df[c] = [list(x) for x in df[c]]
    return df


# -- sources ------------------------------------------------------------------------------------------
def parse_sources(specs: Sequence[str | Path] | Mapping[str, str | Path]) -> dict[str, Path]:
    """Name the track stores: ``"DIR"`` -> ``{DIR's name: DIR}``, ``"name=DIR"`` -> ``{name: DIR}``.

    A spec that is an existing path is always a path (even with ``=`` in it).

    Raises:
        RvosError: no store, an empty name, or two stores with the same name.
    """
    if isinstance(specs, Mapping):
        pairs = [(str(k), Path(v)) for k, v in specs.items()]
    else:
        pairs = []
        for s in specs:
            s = str(s)
            if "=" in s and not Path(s).exists():
                name, _, path = s.partition("=")
                pairs.append((name.strip(), Path(path)))
            else:
                p = Path(s)
                pairs.append((p.resolve().name, p))
    if not pairs:
        raise RvosError("give at least one track store")
    out: dict[str, Path] = {}
    for name, path in pairs:
        if not name:
            raise RvosError("empty track store name (use name=DIR)", file=path)
        if name in out:
            raise RvosError(f"two track stores are named {name!r}; name them with name=DIR", file=path)
        out[name] = path
    return out


# -- the job -------------------------------------------------------------------------------------------
_CACHE: dict[tuple, Any] = {}


def _open(dataset: str, sources: Mapping[str, str]):
    key = (dataset, tuple(sorted(sources.items())))
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = (open_dataset(dataset), {n: TrackStore(p) for n, p in sources.items()})
    return _CACHE[key]


#: The columns pseudo-labelling reads (the others, e.g. the tokens' bookkeeping, are not decoded).
MASK_COLUMNS = ["video_id", "obj_id", "frame_idx", "rle", "area", "bbox"]
TRACK_COLUMNS = ["track_id", "frame_idx", "height", "width", "rle", "area", "bbox"]


def _video_masks(ds, video_id: str) -> pa.Table:
    """The ``masks`` rows of one video (:data:`MASK_COLUMNS`), read from its own row groups.

    DatasetWriter writes one row group per video, so the row groups of a video are found once
    from the footer's ``video_id`` statistics and read directly (a filtered dataset scan costs
    ~10 ms per call). A file whose row groups are not per video is read with the filter.
    """
    import pyarrow.parquet as pq

    from rvoskit.format.schema import check_table

    path = ds.path / "masks.parquet"
    key = ("masks", str(path))
    if key not in _CACHE:
        index: dict[str, list[int]] | None = {}
        try:
            pf = pq.ParquetFile(path)
            col = pf.schema_arrow.get_field_index("video_id")
            for i in range(pf.num_row_groups):
                st = pf.metadata.row_group(i).column(col).statistics
                if st is None or not st.has_min_max or st.min != st.max:
                    index = None
                    break
                index.setdefault(st.min, []).append(i)
        except Exception:  # noqa: BLE001 (any reading problem: the checked path below names it)
            pf, index = None, None
        _CACHE[key] = (pf, index)
    pf, index = _CACHE[key]
    if index is None:
        return ds.table("masks", filters=[("video_id", "=", video_id)], columns=MASK_COLUMNS)
    groups = index.get(video_id, [])
    if not groups:
        return arrow_schema("masks").empty_table().select(MASK_COLUMNS)
    try:
        t = pf.read_row_groups(groups, columns=MASK_COLUMNS, use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        raise RvosError(f"unreadable Parquet: {' '.join(str(exc).split())}", file=path, item=video_id) from None
    problems = check_table("masks", t, MASK_COLUMNS)
    if problems:
        raise RvosError("; ".join(problems), file=path, item=video_id)
    return t


def _video_expressions(ds, video_id: str) -> dict[str, list]:
    """The ``expressions`` rows of one video as ``{column: values}`` (grouped once per process;
    plain Python values: no pandas)."""
    key = ("expressions", str(ds.path))
    if key not in _CACHE:
        by_video: dict[str, list[dict]] = {}
        for e in ds.expression_rows:
            by_video.setdefault(e["video_id"], []).append(e)
        _CACHE[key] = by_video
    rows = _CACHE[key].get(video_id, [])
    return {c: [e[c] for e in rows] for c in ("expression_id", "video_id", "exp_id", "obj_ids")}


#: A local run's read-ahead (set by :func:`pseudolabel` around its loop, empty otherwise): a thread,
#: ``next`` = {video: (next video, its stores)} in job order, ``futures`` = reads under way. Parquet
#: decoding releases the GIL, so the next video's tracks are read while pycocotools works.
_READ_AHEAD: dict[str, Any] = {}


def _read_tracks(stores: Mapping[str, TrackStore], store_names: Sequence[str], video_id: str) -> dict[str, pa.Table]:
    return {n: stores[n].tracks_table(video_id, columns=TRACK_COLUMNS) for n in store_names}


def _label_video(dataset: str, sources: Mapping[str, str], video_id: str, resolution, store_names: Sequence[str],
                 moments: bool = False) -> pa.Table:
    """Worker job: read one video's ground truth and tracks, return its ``labels`` rows (Arrow)."""
    ds, stores = _open(dataset, sources)
    exprs = _video_expressions(ds, video_id)
    ahead = _READ_AHEAD.get("futures", {}).pop(video_id, None)
    tracks = {n: _Columns(t) for n, t in (ahead.result() if ahead is not None else _read_tracks(stores, store_names, video_id)).items()}
    nxt = _READ_AHEAD.get("next", {}).get(video_id)
    if nxt is not None:  # a local run: read the next video's tracks while this one is computed
        _READ_AHEAD["futures"][nxt[0]] = _READ_AHEAD["pool"].submit(_read_tracks, stores, nxt[1], nxt[0])
    video = ds.video_row(video_id)
    check_store_video(stores, store_names, video, tracks)
    return video_labels(video, exprs, _Columns(_video_masks(ds, video_id)), tracks, resolution,
                        moments=moment_frames(ds, video_id, int(video["num_frames"])) if moments else None)


def check_store_video(stores: Mapping[str, TrackStore], store_names: Sequence[str], video: pd.Series,
                      tracks: Mapping[str, pd.DataFrame | pa.Table]) -> None:
    """A store's video must be the dataset's video: the same number of frames (its completion
    marker) and the same mask size (its tracks). Missing frames are not "empty": a store made
    from another dataset, or another version of it, is an error.

    Raises:
        RvosError: naming the store, the video and both numbers.
    """
    vid = str(video["video_id"])
    T, H, W = int(video["num_frames"]), int(video["height"]), int(video["width"])
    for n in store_names:
        info = stores[n].video_info(vid)
        t_store = info.get("num_frames")
        if t_store is not None and int(t_store) != T:
            raise RvosError(f"track store {n!r}: the video has {t_store} frames in the store but {T} in the dataset "
                            "(tracks made from another dataset or version?)", file=stores[n].path, item=vid)
        rows = tracks[n]
        if len(rows):
            sizes = _sizes(rows)
            bad = [(int(h), int(w)) for h, w in sizes if (int(h), int(w)) != (H, W)]
            if bad:
                raise RvosError(f"track store {n!r}: tracks are {bad[0][0]}x{bad[0][1]} but the video is {H}x{W} "
                                "(tracks made from another dataset or version?)", file=stores[n].path, item=vid)


def moment_frames(ds, video_id: str, num_frames: int) -> dict[str, dict[int | None, np.ndarray]]:
    """MeViS-M spans of one video as frame masks: ``{expression_id: {obj_id or None: bool (T,)}}``."""
    m = ds.moments
    m = m[m["video_id"] == video_id]
    out: dict[str, dict[int | None, np.ndarray]] = {}
    for eid, o, a, b in zip(m["expression_id"], m["obj_id"], m["start_idx"], m["end_idx"]):
        key = None if o is None or o != o else int(o)  # pandas reads a null obj_id as NaN
        f = out.setdefault(eid, {}).setdefault(key, np.zeros(num_frames, bool))
        f[int(a) : int(b) + 1] = True
    return out


def _label_job(job: tuple) -> pd.DataFrame:
    return _label_video(*job)


def pseudolabel(
    tracks: Sequence[str | Path] | Mapping[str, str | Path],
    dataset: str | Path,
    out: str | Path,
    *,
    iou: float = 0.7,
    target: str = "max",
    resolution: str | tuple[int, int] | None = SOLA_RESOLUTION,
    workers: int = 1,
    executor: str | Executor | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    moments: bool = False,
) -> dict:
    """Pseudo-label every candidate track of every expression of ``dataset`` and write ``out``.

    Args:
        tracks: track store directories (``"DIR"`` or ``"name=DIR"``, see :func:`parse_sources`) or
            ``{name: DIR}``; the name is the ``source`` column.
        dataset: common-format dataset directory with ground truth.
        out: labels directory to write (atomically).
        iou: threshold; label = value > iou (strict, SOLA ``positive_threshold: 0.7``).
        target: ``"max"`` (SOLA: max over the expression's objects) or ``"union"`` (IoU with the union).
        resolution: ``"540x960"`` (SOLA; oriented per video by :func:`target_size`), any ``"HxW"``,
            or ``"native"``/None.
        workers: processes (videos are the unit of work).
        executor: ``local`` / ``process`` / ``ray`` (:mod:`rvoskit.executor`; default: ``local``
            for one worker, else ``process``).
        ray_address: the Ray cluster of ``executor="ray"``.
        overwrite: replace an existing ``out``.
        progress: called as ``progress(done, total)`` (videos) after each video and on resume.
        moments: MeViS-M Object-level Selective Supervision: IoUs with an object count only inside
            that object's moment (:func:`video_mious`); each row's ``moment_rule`` records the rule,
            ``labels.json`` the counts per rule. Needs a dataset with ``moments.parquet``.

    Returns:
        The ``labels.json`` contents (with ``summary``).

    Raises:
        RvosError: ``out`` exists, bad options, expressions without ground truth (names the split),
            a store video the dataset does not have, or bad track rows (names store and video).

    Resumes: finished videos are kept in a hidden ``.<out>.parts`` folder beside ``out`` until the
    labels are written; a rerun with the same dataset, stores and resolution skips them.
    """
    if target not in TARGETS:
        raise RvosError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not (0.0 <= float(iou) <= 1.0):
        raise RvosError(f"--iou must be in [0, 1], got {iou}")
    res = parse_resolution(resolution)
    out = Path(out)
    if out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    sources = {n: str(Path(p).resolve()) for n, p in parse_sources(tracks).items()}
    _CACHE.clear()  # a dataset or store rewritten at the same path since a previous call
    ds = open_dataset(dataset)
    stores = {n: TrackStore(p) for n, p in sources.items()}
    split = "{}/{}".format(ds.manifest.get("source", {}).get("dataset"), ds.manifest.get("source", {}).get("split"))

    exprs = ds.expression_rows  # plain rows, no pandas (issue 13)
    known = set(ds.video_rows)
    store_videos = {n: s.done_videos() for n, s in stores.items()}
    for n, vids in store_videos.items():
        for v in vids:
            if v not in known:
                raise RvosError(f"track store {n!r} has video {v!r}, which dataset {split} does not have", file=sources[n], item=v)
    no_gt = [e for e in exprs if e["obj_ids"] is None]
    if len(no_gt):
        raise RvosError(
            f"pseudo-labels need ground truth: {len(no_gt)} expressions of {split} have none (obj_ids null)",
            file=ds.path / "expressions.parquet",
            item=str(no_gt[0]["expression_id"]),
        )
    with_exprs = {e["video_id"] for e in exprs}
    videos = [v for v in ds.video_rows if v in with_exprs]
    have = {n: set(v) for n, v in store_videos.items()}
    missing = {n: [v for v in videos if v not in have[n]] for n in sources}
    for n, vs in missing.items():
        if vs:
            warnings.warn(
                f"track store {n!r} has no tracks for {len(vs)} of {len(videos)} videos (e.g. {vs[0]})",
                MissingTracksWarning,
                stacklevel=2,
            )
    work = [v for v in videos if any(v in have[n] for n in sources)]

    if moments and not ds.has_moments:
        raise RvosError("--moments needs a MeViS-M dataset (moments.parquet; rvoskit convert mevis-m)", file=ds.path)
    options = {"dataset": str(ds.path.resolve()), "sources": sources, "resolution": list(res) if res else None}
    if moments:
        options["moments"] = True  # parts of a run without moments are not reused
    parts = out.parent / f".{out.name}.parts"
    todo = _open_parts(parts, options, work)
    n_done = len(work) - len(todo)
    if progress and n_done:
        progress(n_done, len(work))
    jobs = [(str(ds.path), sources, v, res, [n for n in sources if v in have[n]], moments) for v in todo]

    done: dict[str, pa.Table] = {}  # this run's videos stay in memory; resumed ones are read back

    def finish(v: str, rows: pa.Table) -> None:
        nonlocal n_done
        with atomic_file(_part(parts, v)) as tmp:
            write_table(tmp, "labels", rows)
        done[v] = rows
        n_done += 1
        if progress:
            progress(n_done, len(work))

    ex = resolve_executor(executor, workers, ray_address).for_units(len(jobs))
    init = None
    if res is None and jobs:
        # the compiled kernels cost ~1.2 s of CPU to load (numba and LLVM) per process and save ~6 us
        # per track and frame: worth it only on large splits
        track_frames = sum(int(ds.video_row(v)["num_frames"]) * sum(int(stores[n].video_info(v).get("num_tracks") or 0) for n in names)
                           for _, _, v, _, names, _ in jobs)
        per_process = track_frames / (1 if ex.kind == "local" else max(ex.workers, 1))
        if per_process >= KERNELS_MIN_TRACK_FRAMES:
            if ex.kind == "local":
                _start_loading_kernels()
            else:
                init = _start_loading_kernels
    if ex.kind == "local" and len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        _READ_AHEAD.update(pool=ThreadPoolExecutor(1), futures={},
                           next={a[2]: (b[2], b[4]) for a, b in zip(jobs, jobs[1:])})
    try:
        for job, rows in imap(_label_job, jobs, ex, initializer=init):  # finished videos stay in the parts folder
            finish(job[2], rows)
    finally:
        if _READ_AHEAD:
            _READ_AHEAD["pool"].shutdown(wait=True, cancel_futures=True)
            _READ_AHEAD.clear()

    # The whole split in Arrow (list columns stay columnar); pandas gets only the scalar columns.
    schema = arrow_schema("labels")
    table = pa.concat_tables([done[v].cast(schema) if v in done else read_table(_part(parts, v), "labels") for v in work]
                             or [schema.empty_table()])
    value = table["miou_max" if target == "max" else "miou_union"]
    with np.errstate(invalid="ignore"):  # NaN (no target under max) is not > iou, nor is a null
        label = np.nan_to_num(_floats(value), nan=-np.inf) > float(iou)
    table = table.set_column(table.schema.get_field_index("label"), "label", arrowbuf.from_numpy(label))
    table = table.sort_by([(k, "ascending") for k in ("video_id", "expression_id", "source", "track_id")])
    scalars = _scalar_columns(table)

    summary = _summarize(scalars, exprs, sources=list(sources), missing=missing, videos=videos)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "rvoskit_version": __version__,
        "threshold": float(iou),
        "target": target,
        "rule": "label = miou_max > threshold (SOLA)" if target == "max" else "label = miou_union > threshold",
        "resolution": "native" if res is None else f"{res[0]}x{res[1]}",
        **({"moments": _moment_meta(table)} if moments else {}),
        "resize": None if res is None else "cv2.INTER_LINEAR on float32, > 0.5; H<W -> (short, long), else (long, short)",
        "dataset": {"path": str(ds.path.resolve()), "source": ds.manifest.get("source", {})},
        "sources": {
            n: {"path": sources[n], "videos": len(have[n].intersection(videos)), "missing_videos": len(missing[n])}
            for n in sources
        },
        "summary": summary,
        "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_table(tmp / LABELS_FILE, "labels", table)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        plot_histogram(scalars, summary, float(iou), target, tmp / HIST_FILE)
    shutil.rmtree(parts, ignore_errors=True)
    return meta


def _moment_meta(table: pa.Table) -> dict:
    """``labels.json`` ``moments``: the OSS rule and how many expressions each ``moment_rule`` covered."""
    t = table.select(["expression_id", "moment_rule"]).to_pandas().drop_duplicates("expression_id")
    return {
        "rule": "OSS (TGL): IoU with an object averaged over that object's moment only (expression-level spans "
                "for every object of the expression); the union target over the expression's moment; an "
                "object without a span cannot make a positive; an expression without spans uses all frames",
        "expressions_per_rule": {str(k): int(v) for k, v in t["moment_rule"].value_counts().items()},
    }


def _part(parts: Path, video_id: str) -> Path:
    return parts / f"{safe_name(video_id)}.parquet"


def _open_parts(parts: Path, options: Mapping[str, Any], videos: Sequence[str]) -> list[str]:
    """The resume folder: keep it if it was made with the same options (else start it afresh);
    returns the ``videos`` that have no finished part in it yet (parts are written atomically)."""
    opt_file = parts / "options.json"
    if parts.is_dir():
        try:
            same = json.loads(opt_file.read_text(encoding="utf-8")) == json.loads(json.dumps(options))
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not opt_file.is_file():
        opt_file.write_text(json.dumps(options, indent=2) + "\n", encoding="utf-8")
        return list(videos)
    return [v for v in videos if not _part(parts, v).is_file()]


# -- summary and picture -----------------------------------------------------------------------------
def _floats(c: pa.ChunkedArray) -> np.ndarray:
    """A float column as ``float64`` numpy, nulls as NaN (as pandas reads them), from its buffers."""
    c = c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
    if c.null_count == 0:
        return arrowbuf.to_numpy(c).astype(np.float64)
    return np.array([np.nan if v is None else v for v in c.to_pylist()], np.float64)


def _scalar_columns(table: pa.Table) -> dict[str, np.ndarray]:
    """The scalar columns :func:`summarize` and :func:`plot_histogram` read, as numpy (no pandas)."""
    out: dict[str, np.ndarray] = {}
    for name in ("expression_id", "video_id", "source"):
        out[name] = np.asarray(table.column(name).to_pylist(), dtype=object).reshape(-1)
    out["track_id"] = arrowbuf.to_numpy(table.column("track_id").combine_chunks()).astype(np.int64)
    out["miou_max"], out["miou_union"] = _floats(table.column("miou_max")), _floats(table.column("miou_union"))
    lab = table.column("label").combine_chunks()
    out["label"] = np.array(lab.to_pylist(), bool).reshape(-1) if len(lab) else np.zeros(0, bool)
    return out


def summarize(
    table: pd.DataFrame,
    expressions: pd.DataFrame,
    *,
    sources: Sequence[str],
    missing: Mapping[str, Sequence[str]],
    videos: Sequence[str],
) -> dict:
    """Counts for ``labels.json``: positives per expression, expressions with none (lost for
    training), mIoU means, per-source counts, videos missing from each store.

    ``table``: the labels rows (``expression_id``, ``video_id``, ``source``, ``track_id``,
    ``miou_max``, ``miou_union``, ``label``); ``expressions``: the dataset's expressions rows."""
    cols = {c: table[c].to_numpy() for c in ("expression_id", "video_id", "source", "track_id", "label")}
    cols.update({c: table[c].to_numpy(np.float64) for c in ("miou_max", "miou_union")})
    cols["label"] = cols["label"].astype(bool)
    rows = [{"expression_id": e, "video_id": v, "obj_ids": o}
            for e, v, o in zip(expressions["expression_id"], expressions["video_id"], expressions["obj_ids"])]
    return _summarize(cols, rows, sources=sources, missing=missing, videos=videos)


def _summarize(table: Mapping[str, np.ndarray], expressions: Sequence[Mapping[str, Any]], *, sources: Sequence[str],
               missing: Mapping[str, Sequence[str]], videos: Sequence[str]) -> dict:
    """:func:`summarize` on numpy columns and expression rows (dicts): the same numbers as the
    pandas code it replaces (groupby sums, ``value_counts``, means as ``sum(float64) / n``)."""
    vset = set(videos)
    exprs = [e for e in expressions if e["video_id"] in vset]
    eids = [e["expression_id"] for e in exprs]
    labelled = set(table["expression_id"].tolist())  # not an iteration over every row
    lab = np.asarray(table["label"], bool)
    n_pos: dict = {}
    for e in table["expression_id"][lab].tolist():
        n_pos[e] = n_pos.get(e, 0) + 1
    pos = np.array([n_pos.get(e, 0) for e in eids], np.int64)
    no_target = {e["expression_id"] for e in exprs if len(e["obj_ids"]) == 0}
    no_tracks = [e for e in eids if e not in labelled]
    none = [e for e, p in zip(eids, pos.tolist()) if p == 0]
    ks, vs = np.unique(pos, return_counts=True)
    per_source = {}
    for s in sources:
        sel = table["source"] == s
        pairs = set(zip(table["video_id"][sel].tolist(), table["track_id"][sel].tolist()))
        per_source[s] = {
            "rows": int(sel.sum()),
            "tracks": len(pairs),
            "positives": int((lab & sel).sum()),
            "expressions_with_positive": len(set(table["expression_id"][lab & sel].tolist())),
            "missing_videos": len(missing.get(s, [])),
            "missing_video_ids": list(missing.get(s, []))[:20],
        }

    def _mean(x: np.ndarray) -> float | None:
        x = np.asarray(x, np.float64)
        x = x[~np.isnan(x)]
        return float(x.sum(dtype=np.float64) / len(x)) if len(x) else None

    return {
        "rows": len(lab),
        "positives": int(lab.sum()),
        "videos": len(videos),
        "expressions": len(exprs),
        "expressions_labelled": len(labelled),
        "expressions_without_tracks": len(no_tracks),
        "expressions_without_positive": len(none),
        "expressions_without_positive_no_target": len(no_target.intersection(none)),
        "lost_for_training_fraction": float(len(none) / len(exprs)) if len(exprs) else 0.0,
        "positives_per_expression": {
            "mean": float(pos.sum(dtype=np.float64) / len(pos)) if len(pos) else 0.0,
            "median": float(np.median(pos.astype(np.float64))) if len(pos) else 0.0,
            "max": int(pos.max()) if len(pos) else 0,
            "histogram": {str(int(k)): int(v) for k, v in zip(ks, vs)},
        },
        "miou_max_mean": _mean(table["miou_max"]),
        "miou_union_mean": _mean(table["miou_union"]),
        "sources": per_source,
    }


def count_label(n: int) -> str:
    """A tick label for a count on a log axis: ``1, 10, 100, 1k, 10k, 100k, 1M, ...`` (plain numbers,
    never ``1e2`` or matplotlib's ``4x10^0``)."""
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def plot_histogram(table: pd.DataFrame | Mapping[str, np.ndarray], summary: Mapping[str, Any], threshold: float, target: str, path: str | Path) -> None:
    """PNG (1100 x 400): histogram of mIoU (max over objects: bars, union: outline; log counts;
    threshold line) and the number of positives per expression (from :func:`summarize`, so
    expressions without tracks count as 0).

    Drawn with numpy and OpenCV (about 10 ms) rather than matplotlib, whose import alone took
    longer than labelling a MeViS-size video (issue 13).
    """
    import cv2

    H, W = 400, 1100
    img = np.full((H, W, 3), 255, np.uint8)
    font, ink, grey = cv2.FONT_HERSHEY_SIMPLEX, (40, 40, 40), (200, 200, 200)
    blue, orange = (180, 119, 31), (14, 127, 255)  # BGR of matplotlib's C0 / C1

    def text(s: str, x: int, y: int, scale: float = 0.42, align: str = "left", color=ink) -> None:
        (tw, th), _ = cv2.getTextSize(s, font, scale, 1)
        x = x - tw // 2 if align == "center" else x - tw if align == "right" else x
        cv2.putText(img, s, (int(x), int(y)), font, scale, color, 1, cv2.LINE_AA)

    def frame(x0: int, x1: int, y0: int, y1: int) -> None:
        cv2.rectangle(img, (x0, y0), (x1, y1), ink, 1)

    # left: mIoU histogram, log counts
    x0, x1, y0, y1 = 70, 530, 40, 340
    bins = np.linspace(0, 1, 51)
    mx, un = np.asarray(table["miou_max"], np.float64), np.asarray(table["miou_union"], np.float64)  # a DataFrame or numpy columns
    mx, un = mx[~np.isnan(mx)], un[~np.isnan(un)]
    hm, _ = np.histogram(mx, bins)
    hu, _ = np.histogram(un, bins)
    top = max(1.0, float(max(hm.max(initial=0), hu.max(initial=0))))
    decades = max(1, int(np.ceil(np.log10(top + 1))))

    def ly(c: np.ndarray) -> np.ndarray:  # log scale, 0 counts on the axis
        v = np.log10(np.maximum(np.asarray(c, np.float64), 1)) / decades
        return np.where(np.asarray(c) > 0, y1 - (0.05 + 0.95 * v) * (y1 - y0), y1).round().astype(int)

    xs = (x0 + bins * (x1 - x0)).round().astype(int)
    for k in range(decades + 1):
        y = int(ly(np.array([10**k]))[0]) if k else y1
        cv2.line(img, (x0, y), (x1, y), grey, 1)
        text(count_label(10**k), x0 - 6, y + 4, align="right")
    ym = ly(hm)
    for i in np.flatnonzero(hm):
        cv2.rectangle(img, (xs[i], ym[i]), (xs[i + 1] - 1, y1), blue, -1)
    yu = ly(hu)
    pts = np.stack([np.repeat(xs, 2)[1:-1], np.repeat(yu, 2)], 1).astype(np.int32)
    cv2.polylines(img, [pts], False, orange, 2, cv2.LINE_AA)
    xt = int(round(x0 + float(np.clip(threshold, 0, 1)) * (x1 - x0)))
    for y in range(y0, y1, 10):
        cv2.line(img, (xt, y), (xt, min(y + 5, y1)), ink, 1)
    for v in np.linspace(0, 1, 6):
        x = int(round(x0 + v * (x1 - x0)))
        cv2.line(img, (x, y1), (x, y1 + 4), ink, 1)
        text(f"{v:.1f}", x, y1 + 18, align="center")
    frame(x0, x1, y0, y1)
    text("mIoU (track vs ground truth)", (x0 + x1) // 2, y1 + 40, 0.5, "center")
    text("(expression, track) pairs, log", 8, 25, 0.45)
    lx = x1 - 235  # legend, top right, on white
    cv2.rectangle(img, (lx, y0 + 4), (x1 - 4, y0 + 62), (255, 255, 255), -1)
    cv2.rectangle(img, (lx, y0 + 4), (x1 - 4, y0 + 62), grey, 1)
    cv2.rectangle(img, (lx + 8, y0 + 12), (lx + 22, y0 + 22), blue, -1)
    text(f"max over objects (n={len(mx)})", lx + 28, y0 + 22)
    cv2.line(img, (lx + 8, y0 + 34), (lx + 22, y0 + 34), orange, 2)
    text(f"union (n={len(un)})", lx + 28, y0 + 38)
    cv2.line(img, (lx + 8, y0 + 50), (lx + 22, y0 + 50), ink, 1)
    text(f"threshold {threshold:g} (label: {target})", lx + 28, y0 + 54)

    # right: positives per expression
    x0, x1 = 640, 1080
    hist = {int(k): int(v) for k, v in summary["positives_per_expression"]["histogram"].items()}
    kmax = max(hist) if hist else 0
    vmax = max(1, max(hist.values()) if hist else 1)
    bw = (x1 - x0) / (kmax + 1)
    for k in range(kmax + 1):
        h = hist.get(k, 0) / vmax * 0.95 * (y1 - y0)
        xa, xb = int(x0 + k * bw + 0.1 * bw), int(x0 + (k + 1) * bw - 0.1 * bw)
        if h > 0:
            cv2.rectangle(img, (xa, int(round(y1 - h))), (xb, y1), blue, -1)
        if kmax < 25 or k % max(1, kmax // 10) == 0:
            text(str(k), (xa + xb) // 2, y1 + 18, align="center")
    for v in sorted({0, vmax // 2, vmax}):
        y = int(round(y1 - v / vmax * 0.95 * (y1 - y0)))
        cv2.line(img, (x0 - 4, y), (x0, y), ink, 1)
        text(str(v), x0 - 6, y + 4, align="right")
    frame(x0, x1, y0, y1)
    text("positives per expression", (x0 + x1) // 2, y1 + 40, 0.5, "center")
    text("expressions", x0 - 50, 25, 0.45)
    text(f"{summary['expressions_without_positive']} of {summary['expressions']} expressions without a positive",
         (x0 + x1) // 2, 25, 0.45, "center")
    ok, buf = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover
        raise RvosError("could not encode the histogram PNG", file=path)
    Path(path).write_bytes(buf.tobytes())


def read_labels(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a labels directory: ``(labels rows, labels.json)``. Rows are keyed by
    ``(expression_id, source, track_id)``.

    Raises:
        RvosError: not a labels directory, or a table that does not fit the schema.
    """
    path = Path(path)
    mpath = path / META_FILE
    if not mpath.is_file():
        raise RvosError("not an rvoskit labels directory (no labels.json)", file=path)
    from rvoskit.format.jsonfile import read_json_object

    meta = read_json_object(mpath, "the labels manifest")
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise RvosError("not a v1 rvoskit labels directory", file=mpath)
    return read_table(path / LABELS_FILE, "labels").to_pandas(), meta
