"""Whole-split evaluation: ground truth from a common-format dataset, predictions from a table or
PNG folders, scored with one of the protocols, one video per work unit (``workers`` processes).

Protocols:

- ``mevis`` (MeViS ``tools/eval_mevis.py``; also Ref-YouTube-VOS train/val-style splits with
  ground truth): ground truth = union of the expression's objects, every frame scored, J and F
  averaged per expression then over expressions, ``J&F = (J + F) / 2``. A video without any
  prediction scores ``J = F = 0`` for each of its expressions (reported as ``missing_video``); a
  missing frame is an error unless ``missing_frame_empty``.
- ``davis-semi`` (davis2017 ``evaluation.py``, semi-supervised): per object, first and last frames
  dropped, result label ``k`` is object ``k``, no void pixels (the reference passes ``None``).
- ``davis-unsup`` (unsupervised): all frames, void pixels ignored, up to 20 proposals matched to
  the objects by the Hungarian algorithm on ``(mean J + mean F) / 2``.
- ``ref-davis``: the four Ref-DAVIS17 expression sets (``anno_0..3`` = annotator 1 first-frame,
  annotator 1 full-video, annotator 2 first-frame, annotator 2 full-video), each merged into one
  label map per frame (ReferFormer's argmax rule, :func:`merge_label_map`) and scored with the
  DAVIS protocol ``davis_task`` (unsupervised, as ReferFormer's ``dist_test_davis.sh``), then
  reported per set and, with ``aggregate="mean"``, averaged over the sets.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.executor import Executor, imap, resolve_executor
from rvoskit.format import arrowbuf
from rvoskit.format.store import RvosDataset, open_dataset
from rvoskit.metrics import pngread, rlebox
from rvoskit.metrics.jf import BOUND_TH, _bbox, _u8, bound_pix, crop_jf, union_box
from rvoskit.metrics.protocols import (
    DAVIS_COLUMNS,
    davis_semi_frames,
    davis_summary,
    davis_unsup_frames,
    db_statistics,
    mean_over_frames,
    merge_label_map,
    mevis_summary,
)
from rvoskit.metrics.sources import (
    ExpressionMasks,
    LabelMaps,
    PredictionSpec,
    check_predictions,
    open_predictions,
    rows_by_video,
)

if TYPE_CHECKING:  # eval never imports pandas (~0.3 s of start-up, issue 13): EvalResult makes DataFrames on demand
    import pandas as pd

PROTOCOLS = ("mevis", "davis-semi", "davis-unsup", "ref-davis")
DAVIS_TASKS = ("unsupervised", "semi-supervised")
REF_DAVIS_SETS = {0: (1, "first_frame"), 1: (1, "full_video"), 2: (2, "first_frame"), 3: (2, "full_video")}
"""``anno_<k>`` -> (annotator, kind), ReferFormer's ``exp_id = 4 * obj + k`` order."""


def ref_davis_set_expressions(expressions: pd.DataFrame, video_id: str, k: int) -> pd.DataFrame:
    """The expressions of one video in Ref-DAVIS17 set ``k`` (:data:`REF_DAVIS_SETS`)."""
    annotator, kind = REF_DAVIS_SETS[k]
    e = expressions
    return e[(e["video_id"] == video_id) & (e["annotator"] == annotator) & (e["kind"] == kind)]


def _set_rows(ds: RvosDataset, video_id: str, k: int) -> list[dict]:
    """:func:`ref_davis_set_expressions` on ``ds.expression_rows`` (plain dicts, no pandas)."""
    annotator, kind = REF_DAVIS_SETS[k]
    return [e for e in ds.expression_rows if e["video_id"] == video_id and e.get("annotator") == annotator and e.get("kind") == kind]


@dataclass(frozen=True)
class EvalOptions:
    """Options of one evaluation (picklable; sent to the workers)."""

    protocol: str = "mevis"
    missing_frame_empty: bool = False
    davis_task: str = "unsupervised"
    anno_set: int | None = None
    bound_th: float = BOUND_TH
    compiled_png: bool = False  # undo Average/Paeth PNG rows with numba (pngread.use_compiled): enough pixels per process


class EvalResult:
    """What :func:`evaluate` returns.

    Attributes:
        summary: JSON-serialisable headline numbers (values in [0, 1]) and run facts.
        items: per expression (``mevis``), per object (``davis-*``) or per (set, object)
            (``ref-davis``) scores, a DataFrame.
        frames: per-frame J and F of every item (``frame_idx``, ``frame``), a DataFrame.
        items_table, frames_table: the same as Arrow tables.

    The tables are kept as Arrow and made DataFrames when :attr:`items` / :attr:`frames` are
    first read: ``rvoskit eval`` writes them without importing pandas (~0.3 s of start-up).
    Either form may be given (or assigned).
    """

    def __init__(self, summary: dict[str, Any], items: pa.Table | pd.DataFrame, frames: pa.Table | pd.DataFrame):
        self.summary = summary
        self._items, self._frames = items, frames

    @staticmethod
    def _df(x):
        return x.to_pandas() if isinstance(x, pa.Table) else x

    @staticmethod
    def _arrow(x) -> pa.Table:
        return x if isinstance(x, pa.Table) else pa.Table.from_pandas(x, preserve_index=False)

    @property
    def items(self) -> pd.DataFrame:
        """Per-item scores as a DataFrame (converted from Arrow, and kept, on first use)."""
        self._items = self._df(self._items)
        return self._items

    @items.setter
    def items(self, value) -> None:
        self._items = value

    @property
    def frames(self) -> pd.DataFrame:
        """Per-frame J and F as a DataFrame (converted from Arrow, and kept, on first use)."""
        self._frames = self._df(self._frames)
        return self._frames

    @frames.setter
    def frames(self, value) -> None:
        self._frames = value

    @property
    def items_table(self) -> pa.Table:
        """:attr:`items` as Arrow (no pandas when it was made as Arrow)."""
        return self._arrow(self._items)

    @property
    def frames_table(self) -> pa.Table:
        """:attr:`frames` as Arrow (no pandas when it was made as Arrow)."""
        return self._arrow(self._frames)

    @property
    def n_items(self) -> int:
        """Number of rows of :attr:`items`."""
        return self._items.num_rows if isinstance(self._items, pa.Table) else len(self._items)

    def __repr__(self) -> str:
        return f"EvalResult(summary={self.summary!r}, items={self.n_items} rows)"

    @property
    def item_name(self) -> str:
        """``"expression"`` or ``"object"``: what one row of :attr:`items` is."""
        return "expression" if self.summary["protocol"] in ("mevis", "ref-davis") else "object"


# -- per-process state ---------------------------------------------------------------------------

_DATASETS: dict[str, RvosDataset] = {}


def _dataset(path: str) -> RvosDataset:
    if path not in _DATASETS:
        _DATASETS.clear()
        _DATASETS[path] = open_dataset(path)
    return _DATASETS[path]


class _GtFrames:
    """Ground-truth object masks of one video, decoded one frame at a time (bounded memory), and
    only inside the box that is scored (:func:`rvoskit.metrics.jf.crop_jf`)."""

    def __init__(self, ds: RvosDataset, video_id: str, shape: tuple[int, int]):
        t = ds.table("masks", filters=[("video_id", "=", video_id)], columns=["obj_id", "frame_idx", "rle", "area"])
        rows = {c: t.column(c).to_pylist() for c in t.column_names}
        self.shape = shape
        self.zeros = np.zeros(shape, np.uint8)
        self.where = ds.path / "masks.parquet"
        self.video_id = video_id
        self._rows = {(int(o), int(t)): (r, int(a)) for o, t, r, a in zip(rows["obj_id"], rows["frame_idx"], rows["rle"], rows["area"])}
        self._t = -1
        self._cache: dict[int, tuple | None] = {}  # frame _t: obj_id -> (start, end, bbox) or None

    def _runs(self, obj_id: int, t: int) -> tuple | None:
        if t != self._t:
            self._t, self._cache = t, {}
        if obj_id not in self._cache:
            hit = self._rows.get((obj_id, t))
            if hit is None or hit[1] == 0:
                self._cache[obj_id] = None
            else:
                H, W = self.shape
                try:
                    start, end = rlebox.runs(hit[0], H, W)
                except ValueError as exc:
                    raise RvosError(f"malformed ground-truth RLE: {exc}", file=self.where,
                                    item=f"{self.video_id} object {obj_id} frame {t}") from None
                self._cache[obj_id] = (start, end, rlebox.runs_bbox(start, end, H))
        return self._cache[obj_id]

    def box(self, obj_id: int, t: int) -> tuple[int, int, int, int]:
        """``(x, y, w, h)`` of the object on frame ``t`` (``w == 0`` when absent)."""
        r = self._runs(obj_id, t)
        return (0, 0, 0, 0) if r is None else r[2]

    def crop(self, obj_id: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        """The object's mask on frame ``t`` inside ``[rows, cols]`` (uint8 0/1)."""
        r = self._runs(obj_id, t)
        if r is None or not _overlaps(r[2], rows, cols):
            return self.zeros[rows, cols]
        return rlebox.decode_in(r[0], r[1], self.shape[0], rows, cols)

    def union_in(self, obj_ids: list[int], t: int, rows: slice, cols: slice) -> np.ndarray:
        """Union of the objects on frame ``t`` inside ``[rows, cols]`` (MeViS rule; no target
        gives zeros). Each object is decoded once per frame, inside its own box, and pasted."""
        out = None
        for o in obj_ids:
            r = self._runs(int(o), t)
            if r is None or not _overlaps(r[2], rows, cols):
                continue
            x, y, w, h = r[2]
            if len(r) == 3:  # first use on this frame: decode the object's own box once
                r = self._cache[int(o)] = (*r, rlebox.decode_in(r[0], r[1], self.shape[0], slice(y, y + h), slice(x, x + w)))
            m = r[3]
            if out is None:
                out = np.zeros((rows.stop - rows.start, cols.stop - cols.start), np.uint8)
            # the object's box clipped to [rows, cols], in both frames of reference
            y0, y1, x0, x1 = max(y, rows.start), min(y + h, rows.stop), max(x, cols.start), min(x + w, cols.stop)
            dst = out[y0 - rows.start : y1 - rows.start, x0 - cols.start : x1 - cols.start]
            np.bitwise_or(dst, m[y0 - y : y1 - y, x0 - x : x1 - x], out=dst)
        return self.zeros[rows, cols] if out is None else out


def _overlaps(box: tuple[int, int, int, int], rows: slice, cols: slice) -> bool:
    x, y, w, h = box
    return w > 0 and x < cols.stop and x + w > cols.start and y < rows.stop and y + h > rows.start


def _missing(opts: EvalOptions, what: str, file, item: str) -> None:
    if not opts.missing_frame_empty:
        raise RvosError(f"{what} (pass --missing-frame-empty to score missing frames as empty masks)", file=file, item=item)


# -- MeViS ---------------------------------------------------------------------------------------


def _mevis_video(ds: RvosDataset, spec: PredictionSpec, opts: EvalOptions, video_id: str, rows) -> list[dict]:
    v = ds.video_row(video_id)
    T, shape = int(v["num_frames"]), (int(v["height"]), int(v["width"]))
    sel = [e for e in ds.expression_rows if e["video_id"] == video_id]
    exprs = {c: [e[c] for e in sel] for c in ("expression_id", "exp_id", "obj_ids")}
    for eid, obj_ids in zip(exprs["expression_id"], exprs["obj_ids"]):
        if obj_ids is None:
            raise RvosError("expression has no ground truth (obj_ids is null): not an evaluation split", file=ds.path, item=eid)
    src = ExpressionMasks(spec, v, rows)
    out = [
        {"expression_id": eid, "video_id": video_id, "exp_id": str(x), "obj_ids": list(o), "status": "ok", "J_t": None, "F_t": None}
        for eid, x, o in zip(exprs["expression_id"], exprs["exp_id"], exprs["obj_ids"])
    ]
    if not src.has_video:
        for r in out:
            r["status"] = "missing_video"
        return out
    for r in out:
        if not src.has_expression(r["exp_id"]):
            _missing(opts, "no prediction for this expression", spec.path, r["expression_id"])
    gt = _GtFrames(ds, video_id, shape)
    af = v.get("annotated_frames")  # sparse ground truth (format 1.1): only annotated frames are scored
    frames = list(range(T)) if af is None else [int(t) for t in af]
    J = np.empty((len(out), len(frames)))
    F = np.empty((len(out), len(frames)))
    radius = bound_pix(*shape, opts.bound_th)
    targets = [[int(o) for o in r["obj_ids"]] for r in out]
    for k, t in enumerate(frames):
        for i, r in enumerate(out):
            pred = src.get(r["exp_id"], t)
            if pred is None:
                _missing(opts, "missing prediction frame", spec.path, f"{r['expression_id']} frame {v['frames'][t]}")
                pred = gt.zeros
            if pred.shape != shape:
                raise ValueError(f"mask shapes differ: prediction {pred.shape}, ground truth {shape}")
            # every count is taken inside the box of prediction and ground truth (crop_jf)
            box = union_box([_bbox(_u8(pred))] + [gt.box(o, t) for o in targets[i]], *shape)
            if box is None:  # both empty
                J[i, k], F[i, k] = 1.0, 1.0
            else:
                J[i, k], F[i, k] = crop_jf(pred[box], gt.union_in(targets[i], t, *box), None, radius, shrink=False)
    for i, r in enumerate(out):
        r["J_t"], r["F_t"], r["frames"] = J[i], F[i], frames
    return out


# -- DAVIS ---------------------------------------------------------------------------------------


def _sets(ds: RvosDataset, spec: PredictionSpec, opts: EvalOptions) -> list[int | None]:
    if opts.protocol == "ref-davis":
        if spec.kind == "png-labels":
            raise RvosError("ref-davis needs anno_<k>/ folders or per-expression predictions, not one label-map folder", file=spec.path)
        return [0, 1, 2, 3]
    if spec.kind == "png-labels":
        return [None]
    if opts.anno_set is None:
        raise RvosError(
            "these predictions are per expression (or per Ref-DAVIS set): choose the expression set with --anno-set 0..3, "
            "or use --protocol ref-davis",
            file=spec.path,
        )
    return [opts.anno_set]


def _label_source(ds: RvosDataset, spec: PredictionSpec, video, k: int | None, rows, opts: EvalOptions):
    """``(has_video, get(t) -> label map or None, expression_id by obj_id, where)`` for set ``k``."""
    if spec.kind in ("png-labels", "png-sets"):
        root = spec.path if k is None else spec.set_root(k)
        lm = LabelMaps(root, video)
        return lm.has_video, lm.get, {}, root
    return (*ref_davis_set(ds, video, k, ExpressionMasks(spec, video, rows), opts.missing_frame_empty), spec.path)


def ref_davis_set(ds: RvosDataset, video, k: int, src: ExpressionMasks, missing_frame_empty: bool):
    """The label maps of Ref-DAVIS17 expression set ``k`` of one video, from per-expression masks.

    Each object's mask is its set-``k`` expression's prediction; they are merged per frame by
    :func:`merge_label_map` (ReferFormer's rule: the lowest ``obj_id`` wins where masks overlap).

    Returns:
        ``(has_video, get, expression_id by obj_id)``: ``has_video`` is whether any expression of
        the set has a prediction; ``get(t)`` is the ``uint8 (H, W)`` label map of frame ``t``, or
        None when an expression with predictions misses frame ``t`` (unless
        ``missing_frame_empty``, which leaves that object out of the frame).

    Raises:
        RvosError: an expression of the set without exactly one target object.
    """
    sel = _set_rows(ds, video["video_id"], k)
    by_obj = {}
    for eid, x, o in ((e["expression_id"], e["exp_id"], e["obj_ids"]) for e in sel):
        if o is None or len(o) != 1:
            raise RvosError("a Ref-DAVIS expression must have exactly one target object", file=ds.path, item=eid)
        by_obj[int(o[0])] = (eid, str(x))
    shape = (int(video["height"]), int(video["width"]))
    present = [(o, x) for o, (_, x) in sorted(by_obj.items()) if src.has_expression(x)]

    def get(t: int) -> np.ndarray | None:
        masks = []
        for o, x in present:
            m = src.get(x, t)
            if m is None:
                if not missing_frame_empty:
                    return None  # the caller reports the missing frame
                continue  # this object's mask is empty on this frame
            masks.append((o, m))
        return merge_label_map(masks, shape)

    return bool(present), get, {o: eid for o, (eid, _) in by_obj.items()}


class _Frames:
    """A lazy sequence: item ``i`` is ``get(i)`` (one frame decoded when it is read)."""

    def __init__(self, get: Callable[[int], np.ndarray], n: int):
        self._get, self._n = get, n

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> np.ndarray:
        return self._get(i)


def _void_frames(ds: RvosDataset, video_id: str, shape: tuple[int, int]) -> Callable[[int, slice, slice], np.ndarray] | None:
    """Void pixels of one video frame by frame, inside a box: ``void_at(t, rows, cols)`` (None
    when the video has none)."""
    if not (ds.path / "void.parquet").is_file():
        return None
    rows = ds.table("void", filters=[("video_id", "=", video_id)], columns=["frame_idx", "rle", "area"])
    rles = {int(t): r for t, r, a in zip(*(rows.column(c).to_pylist() for c in ("frame_idx", "rle", "area"))) if int(a) > 0}
    if not rles:
        return None  # no void pixel: the same numbers, without the extra work
    zeros = np.zeros(shape, np.uint8)

    def void_at(t: int, rows: slice, cols: slice) -> np.ndarray:
        if t not in rles:
            return zeros[rows, cols]
        try:
            start, end = rlebox.runs(rles[t], *shape)
        except ValueError as exc:
            raise RvosError(f"malformed void RLE: {exc}", file=ds.path / "void.parquet", item=f"{video_id} frame {t}") from None
        return rlebox.decode_in(start, end, shape[0], rows, cols)

    return void_at


def _davis_video(ds: RvosDataset, spec: PredictionSpec, opts: EvalOptions, video_id: str, rows) -> list[dict]:
    """DAVIS protocols on one video, one frame in memory at a time (ground truth decoded from its
    RLE per frame, result label maps read per frame)."""
    v = ds.video_row(video_id)
    T, shape = int(v["num_frames"]), (int(v["height"]), int(v["width"]))
    task = {"davis-semi": "semi-supervised", "davis-unsup": "unsupervised"}.get(opts.protocol, opts.davis_task)
    gt = _GtFrames(ds, video_id, shape)
    # The reference builds objects 1..max(label in the first ground-truth frame).
    n = max((o for (o, t), (_, a) in gt._rows.items() if t == 0 and a > 0), default=0) if T else 0
    frames = list(range(1, T - 1)) if task == "semi-supervised" else list(range(T))
    void_at = _void_frames(ds, video_id, shape) if task == "unsupervised" else None
    zeros = np.zeros(shape, np.uint8)
    radius = bound_pix(*shape, opts.bound_th)
    out = []
    for k in _sets(ds, spec, opts):
        has_video, get, expr_of, where = _label_source(ds, spec, v, k, rows, opts)
        if not has_video:
            _missing(opts, "no prediction for this sequence", where, video_id if k is None else f"anno_{k}/{video_id}")

        def label(i: int, get=get, has_video=has_video, where=where) -> np.ndarray:
            t = frames[i]
            lab = get(t) if has_video else None
            if lab is None:
                if has_video:
                    _missing(opts, "missing prediction frame", where, f"{video_id} frame {v['frames'][t]}")
                return zeros
            return lab if lab.dtype == np.uint8 else _as_u8_labels(lab, where, video_id)

        # Frame i is scored inside one box: the label map's nonzero pixels and every object's
        # ground truth, grown by one pixel (crop_jf). The protocols get crops of the label map,
        # the objects and the void pixels, and the whole frame's radius as a pixel tolerance.
        cur: dict = {"i": -1}

        def box_at(i: int, label=label, cur=cur) -> dict:
            if cur["i"] != i:
                lab = label(i)
                t = frames[i]
                box = union_box([_bbox(lab)] + [gt.box(o, t) for o in range(1, n + 1)], *shape) or (slice(0, 1), slice(0, 1))
                cur.update(i=i, box=box, lab=lab[box])
            return cur

        labels = _Frames(lambda i, box_at=box_at: box_at(i)["lab"], len(frames))
        gt_objects = [_Frames(lambda i, o=o, box_at=box_at: gt.crop(o, frames[i], *box_at(i)["box"]), len(frames)) for o in range(1, n + 1)]
        void = None if void_at is None else _Frames(lambda i, box_at=box_at: void_at(frames[i], *box_at(i)["box"]), len(frames))
        try:
            if task == "semi-supervised":
                J, F = davis_semi_frames(gt_objects, labels, radius=radius)
                props, objs = np.arange(1, n + 1), np.arange(n)
            else:
                J, F, props, objs = davis_unsup_frames(gt_objects, labels, void, radius=radius)
        except ValueError as exc:
            raise RvosError(str(exc), file=where, item=video_id) from None
        for i in range(len(J)):
            obj_id = int(objs[i]) + 1
            out.append(
                {
                    "set": None if k is None else f"anno_{k}",
                    "video_id": video_id,
                    "obj_id": obj_id,
                    "proposal": int(props[i]),
                    "expression_id": expr_of.get(obj_id),
                    "status": "ok",
                    "frames": frames,
                    "J_t": J[i],
                    "F_t": F[i],
                }
            )
    return out


def _as_u8_labels(lab: np.ndarray, where, video_id: str) -> np.ndarray:
    if lab.size and (lab.min() < 0 or lab.max() > 255):
        raise RvosError("label values outside 0..255", file=where, item=video_id)
    return lab.astype(np.uint8)


# -- driver --------------------------------------------------------------------------------------


def _run_video(job: tuple) -> tuple[str, list[dict]]:
    ds_path, spec, opts, video_id, rows = job
    ds = _dataset(ds_path)
    pngread.use_compiled(opts.compiled_png)
    fn = _mevis_video if opts.protocol == "mevis" else _davis_video
    return video_id, fn(ds, spec, opts, video_id, rows)


def evaluate(
    dataset: str | Path | RvosDataset,
    predictions: str | Path | PredictionSpec,
    protocol: str = "mevis",
    *,
    workers: int = 1,
    executor: str | Executor | None = None,
    ray_address: str | None = None,
    missing_frame_empty: bool = False,
    ignore_unknown: bool = False,
    davis_task: str = "unsupervised",
    anno_set: int | None = None,
    aggregate: str = "mean",
    bound_th: float = BOUND_TH,
    videos: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Score predictions against a dataset's ground truth with one benchmark protocol.

    Args:
        dataset: a common-format dataset directory (or an open :class:`RvosDataset`).
        predictions: a predictions directory / ``predictions.parquet``, or a PNG folder in the
            MeViS / Ref-YouTube-VOS / DAVIS / ReferFormer Ref-DAVIS layout
            (:func:`rvoskit.metrics.sources.open_predictions`).
        protocol: one of :data:`PROTOCOLS` (see the module docstring), or ``a2d``, ``jhmdb``,
            ``refer``, which return a :class:`rvoskit.metrics.referring.ReferringResult`
            (:func:`rvoskit.metrics.referring.evaluate_referring`).
        workers: processes; each scores whole videos. Memory is bounded per video: ground truth
            and predictions are decoded one frame at a time, a predictions table is streamed and
            split by video (:func:`rvoskit.metrics.sources.table_rows_by_video`), and at most
            ``2 * workers`` videos are queued at once.
        executor: ``local`` / ``process`` / ``ray`` (:mod:`rvoskit.executor`; default: ``local``
            for one worker, else ``process``).
        ray_address: the Ray cluster of ``executor="ray"``.
        missing_frame_empty: score a missing prediction frame (or expression, or DAVIS sequence)
            as an empty mask instead of failing. A MeViS video without any prediction always
            scores 0 (as the MeViS script does) and is listed in ``summary["missing_videos"]``.
        ignore_unknown: skip prediction videos and expressions the dataset does not have (for
            instance DAVIS ``Annotations/480p``, train + val, scored against val) instead of
            failing; they are listed in ``summary["skipped_unknown_videos"]`` /
            ``["skipped_unknown_expressions"]``. Either way PNG files whose name is not a frame
            of the video are counted in ``summary["extra_prediction_frames"]`` (never scored).
        davis_task: the DAVIS task ``ref-davis`` scores each set with (``unsupervised`` or
            ``semi-supervised``).
        anno_set: the Ref-DAVIS expression set (0..3) for ``davis-semi`` / ``davis-unsup`` with
            per-expression predictions.
        aggregate: ``ref-davis``: ``"mean"`` (headline = mean over the four sets) or ``"each"``
            (per-set numbers only).
        bound_th: F boundary tolerance.
        videos: score only these videos (default: every video of the dataset).
        progress: called as ``progress(done, total)`` after each video.

    Returns:
        :class:`EvalResult`.

    Raises:
        RvosError: unknown protocol, unknown ids in the predictions, size mismatches,
            unreadable PNGs, missing frames (without ``missing_frame_empty``), a split without
            ground truth, more than 20 DAVIS proposals.
    """
    if protocol in ("a2d", "jhmdb", "refer"):  # frame-level P@K / IoU / COCO mAP: a ReferringResult
        from rvoskit.metrics.referring import evaluate_referring

        return evaluate_referring(dataset, predictions, protocol, progress=progress)
    if protocol not in PROTOCOLS:
        raise RvosError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS + ('a2d', 'jhmdb', 'refer'))}")
    if davis_task not in DAVIS_TASKS:
        raise RvosError(f"unknown DAVIS task {davis_task!r}; choose one of {', '.join(DAVIS_TASKS)}")
    if aggregate not in ("mean", "each"):
        raise RvosError(f"unknown aggregate {aggregate!r}; choose mean or each")
    if anno_set is not None and anno_set not in REF_DAVIS_SETS:
        raise RvosError(f"--anno-set must be 0..3, got {anno_set}")
    ds = dataset if isinstance(dataset, RvosDataset) else open_dataset(dataset)
    spec = predictions if isinstance(predictions, PredictionSpec) else open_predictions(predictions)
    with spec.named():
        return _evaluate(ds, spec, protocol, workers, executor, ray_address, missing_frame_empty, ignore_unknown, davis_task,
                         anno_set, aggregate, bound_th, videos, progress)


def _evaluate(ds, spec, protocol, workers, executor, ray_address, missing_frame_empty, ignore_unknown, davis_task,
              anno_set, aggregate, bound_th, videos, progress) -> EvalResult:
    """The body of :func:`evaluate` once its inputs are open (run inside ``spec.named()``)."""
    if protocol == "mevis" and spec.kind not in ("table", "png-expr"):
        raise RvosError(f"the mevis protocol needs per-expression predictions; this folder looks like {spec.kind}", file=spec.path)
    if protocol == "ref-davis":
        e = ds.expression_rows
        if all(r.get("annotator") is None for r in e) or all(r.get("kind") is None for r in e):
            raise RvosError("ref-davis needs a Ref-DAVIS17 dataset (expressions with annotator and kind)", file=ds.path)
    report: dict = {}
    index = check_predictions(spec, ds, ignore_unknown=ignore_unknown, report=report, counts_only=True)
    vids = list(dict.fromkeys(ds.video_rows if videos is None else videos))
    for vid in vids:
        ds.video_row(vid)
    ex = resolve_executor(executor, workers, ray_address).for_units(len(vids))
    png = _png_pixels(ds, spec, protocol, vids) / max(1, ex.workers if ex.kind != "local" else 1)
    opts = EvalOptions(protocol, missing_frame_empty, davis_task, anno_set, bound_th, png >= pngread.COMPILED_MIN_PIXELS)
    jobs = ((str(ds.path), spec, opts, vid, rows) for vid, rows in rows_by_video(spec, index, vids))
    if ex.kind == "local":
        _DATASETS[str(ds.path)] = ds
    results: dict[str, list[dict]] = {}
    for _job, (vid, rows) in imap(_run_video, jobs, ex, start_method=_START_METHOD):
        results[vid] = rows
        if progress:
            progress(len(results), len(vids))
    result = _collect(ds, spec, opts, aggregate, [r for vid in vids for r in results[vid]])
    result.summary.update(_report_summary(spec, report, ignore_unknown))
    return result


def _png_pixels(ds: RvosDataset, spec: PredictionSpec, protocol: str, vids: list[str]) -> float:
    """About how many PNG pixels the run reads (0 for a predictions table): frames x height x width,
    per expression for ``mevis``, per expression set for the DAVIS protocols."""
    if spec.kind == "table":
        return 0.0
    if protocol == "mevis":
        per_video: dict[str, int] = {}
        for e in ds.expression_rows:
            per_video[e["video_id"]] = per_video.get(e["video_id"], 0) + 1
    else:
        sets = 4 if protocol == "ref-davis" else 1
    total = 0.0
    for vid in vids:
        v = ds.video_row(vid)
        n = per_video.get(vid, 0) if protocol == "mevis" else sets
        total += float(n) * int(v["num_frames"]) * int(v["height"]) * int(v["width"])
    return total


def _report_summary(spec: PredictionSpec, report: dict, ignore_unknown: bool) -> dict:
    """What the checks skipped or found besides the scores (summary entries)."""
    out: dict[str, Any] = {"ignore_unknown": ignore_unknown}
    if spec.origin is not None:
        out["predictions"] = str(Path(spec.origin).resolve())
        out["predictions_zip"] = True
    out["n_skipped_unknown_videos"] = len(report.get("unknown_videos", []))
    out["skipped_unknown_videos"] = list(report.get("unknown_videos", []))
    out["n_skipped_unknown_expressions"] = len(report.get("unknown_expressions", []))
    out["skipped_unknown_expressions"] = list(report.get("unknown_expressions", []))
    out["extra_prediction_frames"] = int(report.get("extra_frames", 0))
    out["extra_prediction_frame_examples"] = list(report.get("extra_frame_examples", []))
    return out


# ``fork`` on Linux (workers start at once, and scripts need no ``__main__`` guard), else ``spawn``.
_START_METHOD = "fork" if sys.platform == "linux" else "spawn"


def _collect(ds: RvosDataset, spec: PredictionSpec, opts: EvalOptions, aggregate: str, rows: list[dict]) -> EvalResult:
    base = {
        "protocol": opts.protocol,
        "dataset": str(Path(ds.path).resolve()),
        "predictions": str(Path(spec.path).resolve()),
        "predictions_layout": spec.kind,
        "rvoskit_version": __version__,
        "bound_th": opts.bound_th,
        "missing_frame_empty": opts.missing_frame_empty,
    }
    frame_rows = []
    if opts.protocol == "mevis":
        items = []
        for r in rows:
            ok = r["status"] == "ok"
            j = mean_over_frames(r["J_t"]) if ok else 0.0
            f = mean_over_frames(r["F_t"]) if ok else 0.0
            items.append(
                {
                    "expression_id": r["expression_id"],
                    "video_id": r["video_id"],
                    "exp_id": r["exp_id"],
                    "n_frames": len(r["J_t"]) if ok else 0,
                    "J": j,
                    "F": f,
                    "J&F": (j + f) / 2,
                    "status": r["status"],
                }
            )
            if ok:
                frame_rows.append(({"expression_id": r["expression_id"], "video_id": r["video_id"], "exp_id": r["exp_id"]}, r["frames"], r["J_t"], r["F_t"]))
        items_df = _table(items, {"expression_id": "str", "video_id": "str", "exp_id": "str", "n_frames": "int64", "J": "float64",
                                  "F": "float64", "J&F": "float64", "status": "str"})
        summ = mevis_summary([r["J"] for r in items], [r["F"] for r in items])
        missing = sorted({r["video_id"] for r in rows if r["status"] == "missing_video"})
        summary = {**base, **summ, "n_expressions": len(items), "n_missing_videos": len(missing), "missing_videos": missing}
    else:
        items = []
        for r in rows:
            jm, jr, jd = db_statistics(r["J_t"])
            fm, fr, fd = db_statistics(r["F_t"])
            items.append(
                {
                    "set": r["set"],
                    "video_id": r["video_id"],
                    "obj_id": r["obj_id"],
                    "proposal": r["proposal"],
                    "expression_id": r["expression_id"],
                    "J": jm,
                    "F": fm,
                    "J&F": (jm + fm) / 2,
                    "J-Recall": jr,
                    "J-Decay": jd,
                    "F-Recall": fr,
                    "F-Decay": fd,
                }
            )
            frame_rows.append(({"set": r["set"], "video_id": r["video_id"], "obj_id": r["obj_id"], "proposal": r["proposal"]},
                               r["frames"], r["J_t"], r["F_t"]))
        items_df = _table(items, {"set": "str", "video_id": "str", "obj_id": "int64", "proposal": "int64", "expression_id": "str",
                                  **{c: "float64" for c in ("J", "F", "J&F", "J-Recall", "J-Decay", "F-Recall", "F-Decay")}})
        sets = sorted({r["set"] for r in rows}, key=lambda s: (s is None, s))
        per_set = {}
        for s in sets:
            sel = [r for r in rows if r["set"] == s]
            per_set[s] = davis_summary([r["J_t"] for r in sel], [r["F_t"] for r in sel])
        task = {"davis-semi": "semi-supervised", "davis-unsup": "unsupervised"}.get(opts.protocol, opts.davis_task)
        summary = {**base, "davis_task": task, "n_objects": len(items)}
        if opts.protocol == "ref-davis":
            summary["aggregate"] = aggregate
            summary["sets"] = {s: {**per_set[s], "n_objects": sum(1 for r in rows if r["set"] == s)} for s in sets}
            if aggregate == "mean" and sets:
                for key in DAVIS_COLUMNS:
                    summary[key] = float(np.mean([per_set[s][key] for s in sets]))
        else:
            if opts.anno_set is not None:
                summary["anno_set"] = opts.anno_set
            summary.update(per_set[sets[0]] if sets else {k: math.nan for k in DAVIS_COLUMNS})
        if "J-Mean" in summary:
            summary["J"], summary["F"], summary["J&F"] = summary["J-Mean"], summary["F-Mean"], summary["J&F-Mean"]
    frames_df = _frames_table(frame_rows, {vid: r["frames"] for vid, r in ds.video_rows.items()})
    return EvalResult(summary=summary, items=items_df, frames=frames_df)


# -- Arrow tables without pandas -----------------------------------------------------------------
# pyarrow's ``pa.array`` / ``Table.from_pandas`` import pandas (~0.3 s); the tables are built from
# buffers, with the types and nulls ``pa.Table.from_pandas`` gave the DataFrames they replace:
# an all-None (or empty) text column is of type null, NaN in a float column is null.


def _large_strings() -> bool:
    """Whether pandas' text columns become ``large_string`` in Arrow (pandas >= 3, its ``str``
    dtype) rather than ``string`` (pandas 2, object columns): the installed version is read from
    its metadata, without importing it."""
    global _LARGE
    if _LARGE is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _LARGE = int(version("pandas").split(".")[0]) >= 3
        except (PackageNotFoundError, ValueError):
            _LARGE = True
    return _LARGE


_LARGE: bool | None = None


def _arrow_array(values, kind: str) -> pa.Array:
    """One column from a list (``kind`` ``str``: values as ``str(v)``, None = null; all None: type
    null) or a number sequence (``int32``, ``int64``, ``float64``: NaN = null), as pandas'
    conversion by pyarrow makes it (``string`` or, with pandas 3, ``large_string``)."""
    if kind == "str":
        if all(v is None for v in values):
            return pa.nulls(len(values))
        text = [None if v is None else str(v) for v in values]
        if not _large_strings():
            try:
                return arrowbuf.strings(text, pa.string())
            except ValueError:  # 2 GiB or more of text: large_string
                pass
        return arrowbuf.strings(text, pa.large_string())
    a = np.asarray(values, dtype=kind)
    return arrowbuf.from_numpy(a, ~np.isnan(a) if kind == "float64" else None)


def _table(rows: list[dict], kinds: dict[str, str]) -> pa.Table:
    """``rows`` as a table of ``kinds`` (column -> kind), as ``pd.DataFrame(rows, columns=...)``
    converted by pyarrow (no rows: every column of type null)."""
    if not rows:
        return pa.Table.from_arrays([pa.nulls(0) for _ in kinds], names=list(kinds))
    return pa.Table.from_arrays([_arrow_array([r[c] for r in rows], k) for c, k in kinds.items()], names=list(kinds))


def _frames_table(parts: list[tuple[dict, list, np.ndarray, np.ndarray]], frame_names: dict[str, list[str]]) -> pa.Table:
    """The per-frame table: for each item ``(keys, frames, J_t, F_t)`` one row per frame, the
    item's keys repeated, then ``frame_idx`` (int32), ``frame`` (the frame's name), ``J``, ``F``.
    The same table as the concatenation of one DataFrame per item (no item: no column; no
    frame at all: no ``frame`` column)."""
    if not parts:
        return pa.Table.from_arrays([], names=[])
    n = [len(p[1]) for p in parts]
    cols: dict[str, pa.Array] = {}
    for key, value in parts[0][0].items():
        vals = [p[0][key] for p, k in zip(parts, n) for _ in range(k)]
        kind = "str" if key in ("expression_id", "video_id", "exp_id", "set") else "int64"
        cols[key] = _arrow_array(vals, kind) if vals or kind != "str" else pa.nulls(0)
    idx = np.concatenate([np.asarray(p[1], np.int32) for p in parts]) if sum(n) else np.zeros(0, np.int32)
    cols["frame_idx"] = _arrow_array(idx, "int32")
    if sum(n):
        cols["frame"] = _arrow_array([frame_names[p[0]["video_id"]][t] for p in parts for t in p[1]], "str")
    for name, i in (("J", 2), ("F", 3)):
        cols[name] = _arrow_array(np.concatenate([np.asarray(p[i], np.float64) for p in parts]), "float64")
    return pa.Table.from_arrays(list(cols.values()), names=list(cols))
