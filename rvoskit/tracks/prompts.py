"""Prompts for track generation: SAM2 grid prompts (the automatic-mask-generator recipe SOLA uses),
SOLA's part filter, ground-truth prompts and prompt-frame selection.

torchvision is not needed: the AMG pieces that live in ``sam2.utils.amg`` (point grid, stability
score, mask boxes; numpy/torch only) are reused, box NMS is reimplemented with torchvision's
semantics, the image predictor's input transform is made with the same torch calls
(:meth:`rvoskit.tracks.sam2_model.FrameSource.image_predictor_input`), and the model is driven
through :class:`rvoskit.tracks.sam2_model.VideoSession`. The masks, predicted IoUs and stability
scores equal ``SAM2AutomaticMaskGenerator``'s (tests/test_tracks_sam2_api.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pycocotools.mask as cocomask

from rvoskit.format import rle as rlemod

PROMPT_KINDS = ("gt", "grid", "grounded")


@dataclass
class Prompt:
    """A mask prompt for one track.

    Attributes:
        kind: ``"grid"``, ``"grounded"`` or ``"gt"``.
        frame_idx: the prompt frame.
        rle: compressed COCO RLE (bytes) of the ``(H, W)`` prompt mask.
        area: its pixel count.
        stability_score: SAM2 AMG stability score (None for gt prompts).
        predicted_iou: SAM2 predicted IoU (None for gt prompts).
        expression_id: the expression a grounded prompt was detected for.
        obj_id: the ground-truth object of a gt prompt.
        score: Grounding DINO box score of a grounded prompt.
    """

    kind: str
    frame_idx: int
    rle: bytes
    area: int
    stability_score: float | None = None
    predicted_iou: float | None = None
    expression_id: str | None = None
    obj_id: int | None = None
    score: float | None = None


def prompt_frames(num_frames: int, mode: str, interval: int = 4) -> list[int]:
    """Frames that get prompts.

    Args:
        num_frames: T.
        mode: ``"interval"``: every ``interval``-th frame from 0 (SOLA's training prompts,
            ``frames[::4]``); ``"eval"``: frames ``{0, T // 2}`` (SOLA's evaluation prompts,
            ``--bin_size 0``).
        interval: the step for ``"interval"`` (>= 1).

    Returns:
        Sorted frame indices.

    Note:
        SOLA computes the evaluation frames as ``frames[::T // 2]``, which also prompts frame T-1
        when T is odd and fails for T = 1; rvoskit uses exactly ``{0, T // 2}``.
    """
    if num_frames <= 0:
        return []
    if mode == "interval":
        if interval < 1:
            raise ValueError(f"prompt interval must be >= 1, got {interval}")
        return list(range(0, num_frames, interval))
    if mode == "eval":
        return sorted({0, num_frames // 2})
    raise ValueError(f"unknown prompt-frame mode {mode!r}")


def box_nms(boxes, scores, iou_threshold: float) -> np.ndarray:
    """Greedy box NMS with ``torchvision.ops.nms`` semantics (what SAM2's AMG calls through
    ``batched_nms`` with a single category).

    Boxes are visited in descending score order (stable for ties); a box is dropped when its IoU
    with a kept box is ``> iou_threshold``. Areas are ``(x2 - x1) * (y2 - y1)`` (no +1), IoU in
    float32; a 0/0 IoU (two degenerate boxes) never suppresses.

    Args:
        boxes: ``(N, 4)`` xyxy boxes (array or tensor).
        scores: ``(N,)`` scores.
        iou_threshold: suppression threshold.

    Returns:
        ``int64`` indices of the kept boxes, in descending score order.
    """
    import torch

    b = torch.as_tensor(boxes).detach().float().cpu()
    s = torch.as_tensor(scores).detach().float().cpu()
    n = b.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    order = torch.sort(s, descending=True, stable=True).indices
    x1, y1, x2, y2 = b.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    suppressed = torch.zeros(n, dtype=torch.bool)
    keep = []
    for pos in range(n):
        i = int(order[pos])
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1 :]
        if rest.numel() == 0:
            break
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou > iou_threshold]] = True
    return np.asarray(keep, dtype=np.int64)


def part_filter(rles: Sequence[bytes], areas: Sequence[int], height: int, width: int, threshold: float = 0.7) -> np.ndarray:
    """SOLA's part filter (``generate_prompts_grid.py`` l.105-116, ``utils.compute_P``).

    Masks are visited largest first; every mask ``j`` with partness
    ``|m_j ∩ m_i| / |m_j| > threshold`` with respect to a visited, kept mask ``i`` is a part and is
    dropped. (SOLA also tests masks larger than ``i``; that can never flag one, because a larger
    unflagged ``j`` visited earlier would already have flagged ``i``.)

    Args:
        rles: compressed RLEs of ``(height, width)`` masks.
        areas: their pixel counts.
        threshold: partness threshold (0.7).

    Returns:
        Boolean keep mask aligned with ``rles``.
    """
    n = len(rles)
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    order = np.argsort(-np.asarray(areas, dtype=np.int64), kind="stable")
    objs = [rlemod.to_coco(rles[i], height, width) for i in order]
    flagged = np.zeros(n, dtype=bool)
    for a in range(n - 1):
        if flagged[a]:
            continue
        rest = list(range(a + 1, n))
        # pycocotools iou with a "crowd" ground truth = |dt ∩ gt| / |dt|: the partness of each dt
        p = cocomask.iou([objs[r] for r in rest], [objs[a]], [1])[:, 0]
        flagged[np.asarray(rest)[p > threshold]] = True
    keep[order[flagged]] = False
    return keep


def mask_ious(a: bytes, others: Sequence[bytes], height: int, width: int) -> np.ndarray:
    """IoUs ``float64 (n,)`` of one RLE mask with each of ``others``, in one pycocotools call;
    1.0 where both masks are empty (SOLA ``seg_utils.compute_mask_iou``)."""
    if len(others) == 0:
        return np.zeros(0)
    oa = rlemod.to_coco(a, height, width)
    ious = cocomask.iou([oa], [rlemod.to_coco(b, height, width) for b in others], [0] * len(others))[0]
    if cocomask.area([oa])[0] == 0:
        ious[rlemod.area_bbox(others, height, width)[0] == 0] = 1.0
    return ious


def mask_iou(a: bytes, b: bytes, height: int, width: int) -> float:
    """IoU of two RLE masks; 1.0 when both are empty (:func:`mask_ious`)."""
    return float(mask_ious(a, [b], height, width)[0])


def sort_by_area(prompts: Iterable[Prompt]) -> list[Prompt]:
    """Prompts in descending area order; ties keep their order (Python's stable ``sorted``, as SOLA)."""
    return sorted(prompts, key=lambda p: p.area, reverse=True)


@dataclass(frozen=True)
class GridOptions:
    """SAM2 AMG settings (``SAM2AutomaticMaskGenerator`` defaults, which SOLA uses) and SOLA's part filter."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    part_thresh: float = 0.7


def stability_score(logits, offset: float = 1.0):
    """SAM2's AMG stability score, ``sam2.utils.amg.calculate_stability_score(logits, 0.0, offset)``.

    Per mask: ``|logits > offset| / |logits > -offset|``, the counts as int32 and their quotient
    float32 (NaN for an empty union), as SAM2 computes it. On the CPU the counts are taken with
    numpy, whose compare-and-count is about 10x faster than torch's reductions on one thread; the
    thresholds are compared in float32 as torch does, so the scores are identical.

    Args:
        logits: ``(N, H, W)`` float32 mask logits.
        offset: SAM2's ``stability_score_offset`` (1.0).

    Returns:
        ``(N,)`` float32 tensor on the logits' device.
    """
    import torch

    if logits.device.type != "cpu":
        from sam2.utils.amg import calculate_stability_score

        return calculate_stability_score(logits, 0.0, offset)
    hi, lo = np.float32(offset), np.float32(-offset)
    counts = [(np.count_nonzero(x > hi), np.count_nonzero(x > lo)) for x in logits.numpy()]
    counts = torch.from_numpy(np.asarray(counts, dtype=np.int32).reshape(-1, 2))
    return counts[:, 0] / counts[:, 1]


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """``int64 (N, 4)`` xyxy boxes of ``(N, H, W)`` bool masks as SAM2's ``batched_mask_to_box``
    gives them (``x1``/``y1`` the last foreground column/row, ``[0, 0, 0, 0]`` for an empty mask),
    from each mask's row and column occupancy."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    h, w = rows.shape[1], cols.shape[1]
    boxes = np.stack([cols.argmax(1), rows.argmax(1), w - 1 - cols[:, ::-1].argmax(1), h - 1 - rows[:, ::-1].argmax(1)], 1)
    boxes[~rows.any(1)] = 0
    return boxes.astype(np.int64)


def grid_prompts_for_frame(session, frame_idx: int, opts: GridOptions) -> list[Prompt]:
    """SAM2's automatic mask generator on one frame, then SOLA's part filter.

    Reproduces ``SAM2AutomaticMaskGenerator.generate`` with SOLA's settings (one crop layer,
    ``multimask_output=True``, no m2m, no small-region post-processing;
    sam2/automatic_mask_generator.py ``_process_crop``/``_process_batch``): a ``points_per_side²``
    grid of single positive points, batches of ``points_per_batch`` prompts through the prompt
    encoder and mask decoder on the frame's features as ``SAM2ImagePredictor.set_image`` computes
    them (:meth:`~rvoskit.tracks.sam2_model.VideoSession.image_embeddings`), 3 masks per point, keep
    ``predicted IoU > pred_iou_thresh``, stability score (logits resized to the frame, offset 1)
    ``>= stability_score_thresh``, masks ``logits > 0``, box NMS at ``box_nms_thresh`` scored by
    predicted IoU; then SOLA's part filter (``generate_prompts_grid.py`` l.105-116).
    Only the masks that pass the predicted-IoU filter are resized to the frame (SAM2 resizes all
    of them first), each once; the scores, masks and boxes are SAM2's (:func:`stability_score`,
    :func:`mask_boxes`).

    Args:
        session: a :class:`~rvoskit.tracks.sam2_model.VideoSession`.
        frame_idx: the frame.
        opts: thresholds.

    Returns:
        The frame's prompts, largest first.
    """
    import torch
    from sam2.utils.amg import build_point_grid

    from rvoskit.tracks.sam2_model import binarize

    H, W = session.height, session.width
    S = float(session.p.image_size)
    dev = session.device
    points = build_point_grid(opts.points_per_side) * np.array([W, H])[None, :]
    rles: list[bytes] = []
    areas: list[int] = []
    boxes, ious, stabs = [], [], []
    for s in range(0, len(points), opts.points_per_batch):
        pts = torch.as_tensor(points[s : s + opts.points_per_batch], dtype=torch.float32, device=dev)
        coords = pts.clone()  # SAM2Transforms.transform_coords(normalize=True)
        coords[..., 0] = coords[..., 0] / W
        coords[..., 1] = coords[..., 1] / H
        coords = coords * S
        labels = torch.ones(coords.shape[0], dtype=torch.int, device=dev)
        low, iou = session.decode(frame_idx, coords[:, None, :], labels[:, None], multimask=True)
        with session.timers("prompting"):
            low, iou = low.flatten(0, 1), iou.flatten(0, 1)
            if opts.pred_iou_thresh > 0.0:
                keep = iou > opts.pred_iou_thresh
                low, iou = low[keep], iou[keep]
            if low.shape[0] == 0:
                continue
            logits = session.to_frame(low[:, None])[:, 0]
            stab = stability_score(logits, opts.stability_score_offset)
            if opts.stability_score_thresh > 0.0:
                keep = stab >= opts.stability_score_thresh
                logits, iou, stab = logits[keep], iou[keep], stab[keep]
            if logits.shape[0] == 0:
                continue
            masks = binarize(logits)
            boxes.append(mask_boxes(masks))
            ious.append(iou.float().cpu())
            stabs.append(stab.float().cpu())
            rles.extend(rlemod.encode_batch(masks))
            areas.extend(np.count_nonzero(m) for m in masks)
    if not rles:
        return []
    with session.timers("prompting"):
        ious_t, stabs_t = torch.cat(ious), torch.cat(stabs)
        keep = box_nms(np.concatenate(boxes), ious_t, opts.box_nms_thresh)
        prompts = [
            Prompt(
                kind="grid",
                frame_idx=int(frame_idx),
                rle=rles[i],
                area=int(areas[i]),
                stability_score=float(stabs_t[i]),
                predicted_iou=float(ious_t[i]),
            )
            for i in keep
        ]
        prompts = sort_by_area(prompts)
        ok = part_filter([p.rle for p in prompts], [p.area for p in prompts], H, W, opts.part_thresh)
    return [p for p, k in zip(prompts, ok) if k]


def gt_prompts(mask_rows) -> list[Prompt]:
    """One prompt per ground-truth object: its mask on the frame where it is largest.

    SOLA's GT-track scripts call an unpublished ``utils.get_prompt_masks`` (see docs/tracks.md);
    rvoskit prompts each object once, on its largest annotated mask (earliest frame on ties), and
    skips objects that are empty on every frame. Only the chosen masks are decoded.

    Args:
        mask_rows: the video's ``masks`` rows (``RvosDataset.masks(video_id)``: obj_id,
            frame_idx, rle, area).

    Returns:
        Prompts in ascending ``obj_id`` order.
    """
    out = []
    if len(mask_rows) == 0:
        return out
    rows = mask_rows.sort_values(["obj_id", "frame_idx"], kind="stable")
    for obj_id, g in rows.groupby("obj_id", sort=True):
        best = g.iloc[int(np.argmax(g["area"].to_numpy()))]
        if int(best["area"]) <= 0:
            continue
        out.append(Prompt(kind="gt", frame_idx=int(best["frame_idx"]), rle=bytes(best["rle"]), area=int(best["area"]), obj_id=int(obj_id)))
    return out
