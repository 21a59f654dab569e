"""Frame-level referring-segmentation metrics: A2D-Sentences, JHMDB-Sentences and RefCOCO/+/g.

Protocols (``rvoskit eval --protocol a2d|jhmdb|refer``):

- ``a2d`` / ``jhmdb``: MTTR's evaluation (mttr2021/MTTR ``trainer.py::evaluate_a2d_sentences`` and
  ``metrics.py``, copied by ReferFormer and SOC). One **sample** per (expression, annotated frame)
  on which a target object has a ground-truth mask (A2D: the (frame, instance) pairs of the h5
  files; JHMDB: the three evaluated frames). Every candidate of a sample is scored:

  - ``mAP AP50 AP75 AP_S AP_M AP_L``: pycocotools ``COCOeval(iouType='segm')`` with
    ``params.useCats = 0``, fed every candidate, ``stats[0:6]`` (one image per sample, one
    ground-truth annotation each, iscrowd 0). Computed here with pycocotools' own ``iou`` and
    ``area`` and a vectorised copy of ``evaluateImg`` / ``accumulate`` / ``summarize`` for
    images that hold exactly one ground-truth annotation; the numbers are identical (tested
    against the reference code under ``tests/reference/mttr``).
  - ``P@0.5 .. P@0.9 overall_iou mean_iou``: MTTR ``calculate_precision_at_k_and_iou_metrics``:
    the highest-score candidate per sample (ties: the later one, Python's stable sort),
    ``IoU = (I + 1e-6) / (U + 1e-6)`` in float32 as MTTR's torch code computes it (so an
    empty prediction on an empty ground truth scores 1), ``P@K`` = fraction with IoU **strictly**
    greater than K, ``overall_iou = sum(I) / sum(U)``, ``mean_iou`` = mean per-sample IoU.

  COCO image ids are MTTR's: ``v_<video>_f_<frame>_i_<instance>`` (A2D) and ``v_<video>_f_<frame>``
  (JHMDB), ``<frame>`` the 1-based frame number (the native frame name as an integer).
- ``refer``: referring image segmentation as the RIS papers report it (yz93/LAVT-RIS ``test.py``,
  also used by CRIS and CGFormer): one sample per expression (sentence) and annotated frame,
  ``IoU = I / U`` (0 when U = 0), ``P@K`` with ``IoU >= K``, ``cIoU = sum(I) / sum(U)`` (overall
  IoU), ``gIoU`` = mean per-sample IoU (mean IoU). Highest-score candidate per sample.

Predictions: rvoskit's predictions table (one or several scored rows per expression and frame;
rows on frames that are not samples are ignored) or, for ``a2d`` / ``jhmdb``, the MTTR / ReferFormer
/ SOC results JSON (a list of ``{"image_id", "segmentation": RLE, "score"[, "category_id"]}``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools import mask as maskUtils

if TYPE_CHECKING:  # DataFrames are made where needed: eval's DAVIS / MeViS paths never import pandas
    import pandas as pd

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format.store import RvosDataset, open_dataset

REFERRING_PROTOCOLS = ("a2d", "jhmdb", "refer")
PK_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
MTTR_KEYS = ("P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9", "overall_iou", "mean_iou", "mAP", "AP50", "AP75", "AP_S", "AP_M", "AP_L")
"""The keys of ``summary.json`` for ``a2d`` and ``jhmdb``, in this order."""
REFER_KEYS = ("P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9", "cIoU", "gIoU")
"""The keys of ``summary.json`` for ``refer``."""
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0, 1e5**2), (0, 32**2), (32**2, 96**2), (96**2, 1e5**2))  # all, small, medium, large
EPS = 1e-6


# -- samples ---------------------------------------------------------------------------------------


def _frame_number(name: str, video_id: str, ds: RvosDataset) -> int:
    try:
        return int(name)
    except ValueError:
        raise RvosError(f"frame name {name!r} is not a frame number (the a2d/jhmdb image ids need one)",
                        file=ds.path / "videos.parquet", item=video_id) from None


def referring_samples(ds: RvosDataset, protocol: str) -> pd.DataFrame:
    """The evaluated samples of a dataset, in the reference's order.

    A sample is an (expression, annotated frame) pair on which at least one target object has a
    ground-truth mask row (MTTR skips the frames where the referred instance is absent). Its
    ground truth is the union of the targets' masks on that frame. Order: expressions by
    ``exp_index`` (stable; the A2D/JHMDB converters number expressions by their row in the
    annotation text file, MTTR's order), then frames ascending.

    Args:
        ds: the dataset (with ground truth: ``obj_ids`` not null).
        protocol: ``a2d``, ``jhmdb`` or ``refer`` (decides the image id).

    Returns:
        A DataFrame with ``image_id, expression_id, video_id, exp_id, frame_idx, frame, height,
        width, gt_rle`` (compressed counts, bytes), ``gt_area``.

    Raises:
        RvosError: an expression without ground truth, an a2d expression with several targets,
            frame names that are not numbers (a2d, jhmdb), or no sample at all.
    """
    videos = ds.videos
    exprs = ds.expressions
    exprs = exprs.iloc[np.argsort(exprs["exp_index"].to_numpy(), kind="stable")]
    masks = ds.masks(columns=["video_id", "obj_id", "frame_idx", "rle", "area"])
    by_key = {(v, int(o), int(t)): (r, int(a)) for v, o, t, r, a in zip(masks["video_id"], masks["obj_id"], masks["frame_idx"], masks["rle"], masks["area"])}
    frames_of: dict[str, list[int]] = {}
    rows = []
    for eid, vid, xid, objs in zip(exprs["expression_id"], exprs["video_id"], exprs["exp_id"], exprs["obj_ids"]):
        if objs is None:
            raise RvosError("expression has no ground truth (obj_ids is null): not an evaluation split", file=ds.path / "expressions.parquet", item=eid)
        objs = [int(o) for o in objs]
        if protocol == "a2d" and len(objs) != 1:
            raise RvosError(f"an A2D expression refers to exactly one instance, this one to {len(objs)}", file=ds.path / "expressions.parquet", item=eid)
        v = videos.loc[vid]
        H, W = int(v["height"]), int(v["width"])
        if vid not in frames_of:
            af = v["annotated_frames"]
            frames_of[vid] = list(range(int(v["num_frames"]))) if af is None else [int(t) for t in af]
        for t in frames_of[vid]:
            hits = [by_key[(vid, o, t)] for o in objs if (vid, o, t) in by_key]
            if not hits:
                continue  # the referred instance is not annotated on this frame: not a sample (MTTR)
            if len(hits) == 1:
                gt, area = hits[0]
            else:
                u = maskUtils.merge([{"size": [H, W], "counts": h[0]} for h in hits], intersect=False)
                gt, area = u["counts"], int(maskUtils.area(u))
            name = str(v["frames"][t])
            if protocol == "a2d":
                image_id = f"v_{vid}_f_{_frame_number(name, vid, ds)}_i_{objs[0]}"
            elif protocol == "jhmdb":
                image_id = f"v_{vid}_f_{_frame_number(name, vid, ds)}"
            else:
                image_id = f"{eid}/{name}"
            rows.append((image_id, eid, vid, str(xid), t, name, H, W, gt, area))
    if not rows:
        raise RvosError("the dataset has no evaluated sample (no ground-truth mask on an annotated frame)", file=ds.path)
    import pandas as pd

    return pd.DataFrame(rows, columns=["image_id", "expression_id", "video_id", "exp_id", "frame_idx", "frame", "height", "width", "gt_rle", "gt_area"])


def coco_gt(ds: RvosDataset, protocol: str) -> dict:
    """The COCO-format ground truth MTTR builds for A2D-Sentences / JHMDB-Sentences.

    MTTR ``datasets/a2d_sentences/create_gt_in_coco_format.py`` and
    ``datasets/jhmdb_sentences/create_gt_in_coco_format.py``: one image per sample
    (``{"id", "height", "width"}``, string ids as in the module docstring), in sample order; one
    annotation per image with ``id`` counting from 1, ``category_id`` 1, the RLE (``counts`` as
    ASCII), ``area`` (float), ``iscrowd`` 0, and for A2D a ``bbox`` (rvoskit's ``[x, y, w, h]``
    from the mask, where MTTR converts the h5 ``reBBox``; COCOeval ``segm`` does not read it);
    ``categories = [{"id": 1, "name": "dummy_class"}]``. An ``info`` entry (not in MTTR's file,
    ignored by pycocotools' evaluation) names rvoskit and the dataset.

    Raises:
        RvosError: ``protocol`` not ``a2d``/``jhmdb``; two samples with the same image id (MTTR
            asserts the same: two expressions on one instance of one video).
    """
    if protocol not in ("a2d", "jhmdb"):
        raise RvosError(f"COCO ground truth is built for a2d or jhmdb, not {protocol!r}")
    samples = referring_samples(ds, protocol)
    dup = samples["image_id"][samples["image_id"].duplicated()]
    if len(dup):
        r = samples[samples["image_id"] == dup.iloc[0]]
        raise RvosError(f"image id {dup.iloc[0]} appears twice (expressions {', '.join(r['expression_id'])}); "
                        "MTTR's ground truth allows one expression per instance", file=ds.path / "expressions.parquet", item=dup.iloc[0])
    images, anns = [], []
    for k, (iid, H, W, c, a) in enumerate(zip(samples["image_id"], samples["height"], samples["width"], samples["gt_rle"], samples["gt_area"]), 1):
        images.append({"id": iid, "height": int(H), "width": int(W)})
        ann = {"id": k, "image_id": iid, "category_id": 1, "segmentation": {"size": [int(H), int(W)], "counts": c.decode("ascii")},
               "area": float(a)}
        if protocol == "a2d":
            ann["bbox"] = [float(v) for v in maskUtils.toBbox({"size": [int(H), int(W)], "counts": c})]
        ann["iscrowd"] = 0
        anns.append(ann)
    info = {"description": f"rvoskit {protocol}-coco-gt export of {Path(ds.path).resolve()}", "version": __version__}
    return {"info": info, "categories": [{"id": 1, "name": "dummy_class"}], "images": images, "annotations": anns}


def export_coco_gt(dataset: str | Path | RvosDataset, protocol: str, out: str | Path) -> Path:
    """Write :func:`coco_gt` to ``out`` (a ``.json`` file, atomically) so that the reference
    evaluation (pycocotools + MTTR's ``metrics.py``) can run on the same samples."""
    from rvoskit.format import atomic_file

    ds = dataset if isinstance(dataset, RvosDataset) else open_dataset(dataset)
    gt = coco_gt(ds, protocol)
    with atomic_file(Path(out)) as tmp:
        tmp.write_text(json.dumps(gt), encoding="utf-8")
    return Path(out)


# -- predictions -----------------------------------------------------------------------------------


@dataclass
class Candidates:
    """Scored candidate masks, aligned arrays in input order.

    Attributes:
        sample: index of the sample (row of :func:`referring_samples`) of each candidate.
        score: float64 scores.
        rle: compressed RLE counts (bytes).
        source: ``"results-json"`` or ``"table"``.
        ignored: rows that fell on frames that are not samples (table only).
    """

    sample: np.ndarray
    score: np.ndarray
    rle: list[bytes]
    source: str
    ignored: int = 0


def read_results_json(path: str | Path, samples: pd.DataFrame) -> Candidates:
    """Read an MTTR / ReferFormer / SOC results JSON: ``[{"image_id", "segmentation", "score"}, ...]``.

    ``segmentation`` is a COCO RLE with ``size [H, W]`` and compressed ``counts`` (a string, as
    MTTR writes it, or a list of run lengths). ``category_id`` is ignored (``useCats = 0``). The
    file is parsed as ``json.load`` does (as the reference reads it), then checked entry by entry.

    Raises:
        RvosError: unreadable JSON, an entry without those keys, an image id that is not a
            sample (pycocotools ``loadRes`` asserts the same), image ids that name several
            samples (two expressions on the same instance), a score that is not a finite number,
            a size other than the frame's, or an RLE that does not cover the frame.
    """
    path = Path(path)
    if not path.is_file():
        raise RvosError("missing results JSON", file=path)
    try:
        data = json.loads(path.read_bytes())
    except UnicodeDecodeError as exc:
        raise RvosError(f"not valid UTF-8 at byte {exc.start}", file=path) from None
    except json.JSONDecodeError as exc:
        raise RvosError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", file=path) from None
    if not isinstance(data, list):
        raise RvosError(f"holds a JSON {type(data).__name__}, expected a list of {{image_id, segmentation, score}}", file=path)
    ids = samples["image_id"]
    index = dict(zip(ids, range(len(ids))))
    dup_set = set(ids[ids.duplicated()])
    sizes = list(zip(samples["height"].tolist(), samples["width"].tolist()))
    try:  # the fast path: every entry well formed (any surprise goes to the entry-by-entry check)
        sample = np.fromiter((index[d["image_id"]] for d in data), np.int64, len(data))
        raw_scores = [d["score"] for d in data]
        segs = [d["segmentation"] for d in data]
        counts = [g["counts"] for g in segs]
        ok = (not dup_set or not any(d["image_id"] in dup_set for d in data)) \
            and all(type(v) is float or type(v) is int for v in raw_scores) \
            and all(type(c) is str for c in counts) \
            and all(g["size"] == [h, w] for g, (h, w) in zip(segs, (sizes[i] for i in sample)))
        score = np.asarray(raw_scores, dtype=np.float64)
        ok = ok and bool(np.isfinite(score).all())
        rles = [c.encode("ascii") for c in counts] if ok else []
    except (KeyError, TypeError, AttributeError, UnicodeEncodeError, ValueError):
        ok = False
    if not ok:
        sample, score, rles = _read_results_slow(data, index, dup_set, sizes, path)
    _check_rles(rles, sample, sizes, path)
    return Candidates(sample, score, rles, "results-json")


def _read_results_slow(data: list, index: dict, dup_set: set, sizes: list, path: Path):
    """Entry-by-entry reading with a precise error for the first bad entry; also converts
    uncompressed (list) counts."""
    sample = np.empty(len(data), np.int64)
    score = np.empty(len(data), np.float64)
    rles: list[bytes] = []
    for i, d in enumerate(data):
        item = f"entry {i}"
        if not isinstance(d, dict) or not {"image_id", "segmentation", "score"} <= d.keys():
            raise RvosError("expected an object with image_id, segmentation and score", file=path, item=item)
        iid = d["image_id"]
        if not isinstance(iid, str) or iid not in index:
            raise RvosError(f"image_id {iid!r} is not a sample of the dataset", file=path, item=item)
        if iid in dup_set:
            raise RvosError(f"image_id {iid!r} names several samples (two expressions refer to this instance); use a predictions table", file=path, item=item)
        s = d["score"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s):
            raise RvosError(f"score {s!r} is not a finite number", file=path, item=f"{item} ({iid})")
        seg = d["segmentation"]
        H, W = sizes[index[iid]]
        if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
            raise RvosError("segmentation is not an RLE {size, counts}", file=path, item=f"{item} ({iid})")
        if not isinstance(seg["size"], list) or seg["size"] != [H, W]:
            raise RvosError(f"segmentation size {seg['size']} differs from the frame's [{H}, {W}]", file=path, item=f"{item} ({iid})")
        c = seg["counts"]
        try:
            if isinstance(c, list):
                c = maskUtils.frPyObjects({"size": [H, W], "counts": c}, H, W)["counts"]
            elif isinstance(c, str):
                c = c.encode("ascii")
            else:
                raise ValueError("counts must be a string or a list")
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise RvosError(f"bad segmentation counts: {exc}", file=path, item=f"{item} ({iid})") from None
        sample[i], score[i] = index[iid], float(s)
        rles.append(c)
    return sample, score, rles


def _check_rles(rles: list[bytes], sample: np.ndarray, sizes: list[tuple[int, int]], path: Path) -> None:
    """Every candidate RLE covers exactly its frame's H x W pixels (one vectorised parse)."""
    from rvoskit.format import rle as rlemod

    if not rles:
        return
    hw = np.array([h * w for h, w in sizes], np.int64)[sample]
    uniq: dict[bytes, int] = {}
    pos = np.fromiter((uniq.setdefault(c, len(uniq)) for c in rles), np.int64, len(rles))  # parse each distinct string once
    totals = rlemod.pixel_counts(list(uniq))[pos]
    for i in np.flatnonzero(totals != hw):
        H, W = sizes[sample[i]]
        try:
            n = rlemod.pixel_count(rles[i])  # the exact parser: its message, or a total that is right after all
        except ValueError as exc:
            raise RvosError(f"malformed RLE: {exc}", file=path, item=f"candidate {i}") from None
        if n != H * W:
            raise RvosError(f"RLE covers {n} pixels, not {H}x{W}", file=path, item=f"candidate {i}")


def read_candidates_table(path: str | Path, samples: pd.DataFrame, ds: RvosDataset) -> Candidates:
    """Read rvoskit predictions (a directory or ``predictions.parquet``) as candidates.

    Several rows per (expression, frame) are candidates ranked by ``score``; a null score counts
    as 1.0 (one prediction per frame, as ``rvoskit score`` writes). Rows on frames that are not
    samples (not annotated, or the target absent) are counted in ``ignored`` and not scored.

    Raises:
        RvosError: unreadable table, unknown expression ids, a mask size other than the frame's.
    """
    from rvoskit.format.store import read_table

    path = Path(path)
    file = path / "predictions.parquet" if path.is_dir() else path
    t = read_table(file, "predictions", columns=["expression_id", "frame_idx", "height", "width", "rle", "score"]).to_pandas()
    unknown = sorted(set(t["expression_id"]) - set(ds.expressions.index))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise RvosError(f"{len(unknown)} unknown expression id(s) not in the dataset: {shown}", file=file)
    key = {(e, int(f)): i for i, (e, f) in enumerate(zip(samples["expression_id"], samples["frame_idx"]))}
    idx = np.fromiter((key.get((e, int(f)), -1) for e, f in zip(t["expression_id"], t["frame_idx"])), np.int64, len(t))
    keep = idx >= 0
    sizes = list(zip(samples["height"], samples["width"]))
    sel = t[keep]
    s_idx = idx[keep]
    H = samples["height"].to_numpy()[s_idx]
    W = samples["width"].to_numpy()[s_idx]
    off = (sel["height"].to_numpy() != H) | (sel["width"].to_numpy() != W)
    if off.any():
        j = int(np.flatnonzero(off)[0])
        raise RvosError(f"prediction size {sel['height'].iloc[j]}x{sel['width'].iloc[j]} differs from the frame's {H[j]}x{W[j]}",
                        file=file, item=f"{sel['expression_id'].iloc[j]} frame {sel['frame_idx'].iloc[j]}")
    score = sel["score"].to_numpy(dtype=np.float64, na_value=1.0)
    rles = list(sel["rle"])
    _check_rles(rles, s_idx, sizes, file)
    return Candidates(s_idx, score, rles, "table", ignored=int((~keep).sum()))


# -- metrics ---------------------------------------------------------------------------------------


def _top_candidates(cand: Candidates, n_samples: int) -> np.ndarray:
    """Index of the highest-score candidate of each sample; ties go to the later candidate (MTTR
    ``sorted(..., key=score)[-1]``). -1 where a sample has none."""
    order = np.lexsort((np.arange(len(cand.sample)), cand.score, cand.sample))  # by sample, score, position
    top = np.full(n_samples, -1, np.int64)
    top[cand.sample[order]] = order  # the last write per sample wins: highest score, latest position
    return top


def intersection_union(pred: list[bytes], gt: list[bytes], sizes: list[tuple[int, int]], gt_area: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact pixel counts ``I = |P & G|`` and ``U = |P | G|`` of aligned RLE pairs (no decoding)."""
    I = np.empty(len(pred), np.int64)
    pa_ = np.empty(len(pred), np.int64)
    for i, (p, g, (H, W)) in enumerate(zip(pred, gt, sizes)):
        pr, gr = {"size": [H, W], "counts": p}, {"size": [H, W], "counts": g}
        I[i] = int(maskUtils.area(maskUtils.merge([pr, gr], intersect=True)))
        pa_[i] = int(maskUtils.area(pr))
    return I, pa_ + gt_area - I


def mttr_iou_metrics(I: np.ndarray, U: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """MTTR ``calculate_precision_at_k_and_iou_metrics`` from per-sample pixel counts, in sample order.

    ``IoU = (I + 1e-6) / (U + 1e-6)`` evaluated in float32 (MTTR sums float tensors), ``P@K``
    with ``>``, ``overall_iou = sum(I) / sum(U)``, ``mean_iou = mean(IoU)``.

    Returns:
        ``({"P@0.5": ..., "overall_iou": ..., "mean_iou": ...}, per-sample IoU as float64)``.
    """
    eps = np.float32(EPS)
    iou = ((I.astype(np.float32) + eps) / (U.astype(np.float32) + eps)).astype(np.float64)
    out = {f"P@{k}": int((iou > k).sum()) / len(iou) for k in PK_THRESHOLDS}
    out["overall_iou"] = float(I.sum()) / float(U.sum()) if U.sum() else math.nan
    out["mean_iou"] = float(np.mean(iou.tolist()))
    return out, iou


def refer_iou_metrics(I: np.ndarray, U: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """RIS metrics as LAVT-RIS ``test.py`` computes them: ``IoU = I / U`` (0 when U = 0),
    ``P@K`` with ``>=``, ``cIoU = sum(I) / sum(U)``, ``gIoU = mean(IoU)``."""
    iou = np.where(U > 0, I / np.maximum(U, 1), 0.0)
    out = {f"P@{k}": int((iou >= k).sum()) / len(iou) for k in PK_THRESHOLDS}
    out["cIoU"] = float(I.sum()) / float(U.sum()) if U.sum() else math.nan
    out["gIoU"] = float(np.mean(iou))
    return out, iou


def coco_segm_map(image_ids: list[str], gt_rles: list[bytes], gt_areas: np.ndarray, sizes: list[tuple[int, int]], cand: Candidates) -> dict[str, float]:
    """``COCOeval(iouType='segm')`` with ``useCats = 0``, ``stats[0:6]``, for images with exactly one
    ground-truth annotation each (iscrowd 0), fed every candidate.

    Reproduces pycocotools 2.0 ``evaluate`` / ``accumulate`` / ``summarize``: images in sorted id
    order; detections per image sorted by score (stable, ``kind='mergesort'``), at most 100;
    greedy matching at each IoU threshold ``min(t, 1 - 1e-10)`` (with one ground truth: the first
    detection with ``iou >= t``); a ground truth outside the area range is ignored, together with
    the detection matched to it, and so is an unmatched detection outside the range; precision
    made monotone and sampled at the 101 recall thresholds (``searchsorted(..., 'left')``);
    ``AP`` = mean of the sampled precisions that are not -1. IoUs and areas come from
    pycocotools' own ``iou`` and ``area``.

    Returns:
        ``{"mAP", "AP50", "AP75", "AP_S", "AP_M", "AP_L"}`` (-1 where COCOeval prints -1).
    """
    from pycocotools.cocoeval import Params

    p = Params(iouType="segm")
    thr = np.array([min(t, 1 - 1e-10) for t in p.iouThrs])
    n_img = len(image_ids)
    img_order = sorted(range(n_img), key=lambda i: image_ids[i])  # p.imgIds = sorted(getImgIds())
    rank_of_img = np.empty(n_img, np.int64)
    rank_of_img[img_order] = np.arange(n_img)
    # detections grouped by image (in sorted image order), then by score (stable: input order on ties)
    pos = np.arange(len(cand.sample))
    order = np.lexsort((pos, -cand.score, rank_of_img[cand.sample]))
    d_img = rank_of_img[cand.sample[order]]
    starts = np.searchsorted(d_img, np.arange(n_img))
    rank = pos - starts[d_img]
    keep = rank < max(p.maxDets)
    order, d_img, rank = order[keep], d_img[keep], rank[keep]
    d_score = cand.score[order]
    d_rles = [cand.rle[j] for j in order]
    d_iou = np.zeros(len(order))
    bounds = np.searchsorted(d_img, np.arange(n_img + 1))
    dts_all = [None] * len(order)
    for r in range(n_img):
        a, b = bounds[r], bounds[r + 1]
        if a == b:
            continue
        s = img_order[r]
        H, W = sizes[s]
        size = [H, W]
        dts = [{"size": size, "counts": c} for c in d_rles[a:b]]
        dts_all[a:b] = dts
        d_iou[a:b] = np.asarray(maskUtils.iou(dts, [{"size": size, "counts": gt_rles[s]}], [0])).reshape(-1)
    # pycocotools 2.0.11's area() overflows a uint8 count for lists of more than 255 RLEs: chunks
    d_area = np.concatenate([np.asarray(maskUtils.area(dts_all[i:i + 255]), dtype=np.float64)
                             for i in range(0, len(dts_all), 255)]) if dts_all else np.zeros(0)
    g_area = np.asarray(gt_areas, dtype=np.float64)[img_order]
    # match[t, j]: detection j is the first of its image with iou >= thr[t]
    ge = d_iou[None, :] >= thr[:, None]
    cs = np.cumsum(ge, axis=1)
    before = np.where(bounds[d_img] > 0, cs[:, np.maximum(bounds[d_img] - 1, 0)], 0) * (bounds[d_img] > 0)
    match = ge & ((cs - before) == 1)
    T, R, A, M = len(p.iouThrs), len(p.recThrs), len(AREA_RANGES), len(MAX_DETS)
    precision = -np.ones((T, R, 1, A, M))
    cols_of = []  # per maxDet: the detections kept, in accumulate's global order (stable sort by -score)
    for md in MAX_DETS:
        sel = np.flatnonzero(rank < md)
        cols_of.append(sel[np.argsort(-d_score[sel], kind="mergesort")])
    for ai, (lo, hi) in enumerate(AREA_RANGES):
        g_ig = (g_area < lo) | (g_area > hi)
        npig = int(np.count_nonzero(~g_ig))
        d_out = (d_area < lo) | (d_area > hi)
        for mi, md in enumerate(MAX_DETS):
            if npig == 0:
                continue
            cols = cols_of[mi]
            dtm = match[:, cols]
            dtig = np.where(dtm, g_ig[d_img[cols]][None, :], d_out[cols][None, :])
            tps = np.logical_and(dtm, np.logical_not(dtig))
            fps = np.logical_and(np.logical_not(dtm), np.logical_not(dtig))
            tp_sum = np.cumsum(tps, axis=1).astype(dtype=float)
            fp_sum = np.cumsum(fps, axis=1).astype(dtype=float)
            for t in range(T):
                tp, fp = tp_sum[t], fp_sum[t]
                nd = len(tp)
                rc = tp / npig
                pr = tp / (fp + tp + np.spacing(1))
                if nd:
                    pr = np.maximum.accumulate(pr[::-1])[::-1]
                q = np.zeros(R)
                ri = np.searchsorted(rc, p.recThrs, side="left")
                ok = ri < nd
                q[ok] = pr[ri[ok]]
                precision[t, :, 0, ai, mi] = q

    def summarize(iou_thr=None, area=0, max_dets=100):
        s = precision
        if iou_thr is not None:
            s = s[np.where(iou_thr == p.iouThrs)[0]]
        s = s[:, :, :, [area], [MAX_DETS.index(max_dets)]]
        return -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))

    return {
        "mAP": summarize(),
        "AP50": summarize(iou_thr=0.5),
        "AP75": summarize(iou_thr=0.75),
        "AP_S": summarize(area=1),
        "AP_M": summarize(area=2),
        "AP_L": summarize(area=3),
    }


# -- driver ----------------------------------------------------------------------------------------


@dataclass
class ReferringResult:
    """What :func:`evaluate_referring` returns.

    Attributes:
        summary: exactly :data:`MTTR_KEYS` (a2d, jhmdb) or :data:`REFER_KEYS` (refer), values in [0, 1].
        info: run facts (protocol, paths, counts, rvoskit version).
        samples: per sample: ids, frame, the chosen candidate's score, ``I``, ``U``, ``iou``,
            ``n_candidates``.
    """

    summary: dict[str, float]
    info: dict[str, Any]
    samples: pd.DataFrame = field(repr=False)


def evaluate_referring(
    dataset: str | Path | RvosDataset,
    predictions: str | Path,
    protocol: str = "a2d",
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ReferringResult:
    """Score predictions with the ``a2d``, ``jhmdb`` or ``refer`` protocol (module docstring).

    Args:
        dataset: a common-format dataset with ground truth.
        predictions: a ``.json`` results file (MTTR/ReferFormer/SOC; a2d and jhmdb) or an rvoskit
            predictions directory / ``predictions.parquet``.
        protocol: ``a2d``, ``jhmdb`` or ``refer``.
        progress: called as ``progress(done, total)`` with the steps done.

    Returns:
        :class:`ReferringResult`.

    Raises:
        RvosError: unknown protocol, unreadable predictions, ids that are not samples, a sample
            without any prediction (MTTR's loop fails on it too), size mismatches.
    """
    if protocol not in REFERRING_PROTOCOLS:
        raise RvosError(f"unknown protocol {protocol!r}; choose one of {', '.join(REFERRING_PROTOCOLS)}")
    ds = dataset if isinstance(dataset, RvosDataset) else open_dataset(dataset)
    predictions = Path(predictions)
    step = (lambda k: progress(k, 4)) if progress else (lambda k: None)
    samples = referring_samples(ds, protocol)
    step(1)
    if predictions.is_file() and predictions.suffix == ".json":
        if protocol == "refer":
            raise RvosError("the refer protocol reads an rvoskit predictions table, not a results JSON", file=predictions)
        cand = read_results_json(predictions, samples)
    elif predictions.exists():
        cand = read_candidates_table(predictions, samples, ds)
    else:
        raise RvosError("predictions not found", file=predictions)
    step(2)
    n = len(samples)
    top = _top_candidates(cand, n)
    missing = np.flatnonzero(top < 0)
    if len(missing):
        r = samples.iloc[int(missing[0])]
        raise RvosError(f"{len(missing)} sample(s) have no prediction, for instance this one (image id {r['image_id']})",
                        file=predictions, item=f"{r['expression_id']} frame {r['frame']}")
    sizes = list(zip(samples["height"].tolist(), samples["width"].tolist()))
    gt_area = samples["gt_area"].to_numpy(np.int64)
    I, U = intersection_union([cand.rle[j] for j in top], list(samples["gt_rle"]), sizes, gt_area)
    if protocol == "refer":
        summary, iou = refer_iou_metrics(I, U)
        summary = {k: summary[k] for k in REFER_KEYS}
    else:
        ious, iou = mttr_iou_metrics(I, U)
        step(3)
        ap = coco_segm_map(list(samples["image_id"]), list(samples["gt_rle"]), gt_area, sizes, cand)
        summary = {k: {**ious, **ap}[k] for k in MTTR_KEYS}
    step(4)
    per = samples.drop(columns=["gt_rle"]).assign(
        n_candidates=np.bincount(cand.sample, minlength=n), score=cand.score[top], I=I, U=U, iou=iou)
    info = {
        "protocol": protocol,
        "dataset": str(Path(ds.path).resolve()),
        "predictions": str(predictions.resolve()),
        "predictions_layout": cand.source,
        "n_samples": n,
        "n_candidates": int(len(cand.sample)),
        "ignored_prediction_rows": cand.ignored,
        "reference": ("LAVT-RIS test.py (cIoU, gIoU, P@K with >=)" if protocol == "refer"
                      else "MTTR metrics.py calculate_precision_at_k_and_iou_metrics + pycocotools COCOeval segm, useCats=0"),
        "rvoskit_version": __version__,
    }
    return ReferringResult(summary, info, per)


def write_referring_results(result: ReferringResult, out: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write ``summary.json`` (exactly the protocol's keys), ``eval.json`` (run facts) and
    ``per_sample.parquet`` / ``.csv`` to a new directory, atomically.

    Raises:
        RvosError: ``out`` exists and ``overwrite`` is false.
    """
    from rvoskit.format.atomic import atomic_dir

    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "summary.json").write_text(json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in result.summary.items()}, indent=2) + "\n", encoding="utf-8")
        (tmp / "eval.json").write_text(json.dumps(result.info, indent=2) + "\n", encoding="utf-8")
        result.samples.to_parquet(tmp / "per_sample.parquet", index=False)
        result.samples.to_csv(tmp / "per_sample.csv", index=False, float_format="%.17g")
    return {"summary": out / "summary.json", "eval": out / "eval.json", "per_sample": out / "per_sample.parquet"}
