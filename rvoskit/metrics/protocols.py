"""Protocol arithmetic: how per-frame J and F become the numbers the benchmarks report.

Pure functions on arrays; reading ground truth and predictions is :mod:`rvoskit.metrics.evaluation`.

Sources (see ``docs/eval.md`` for the full list of quirks kept):

- MeViS ``tools/eval_mevis.py``: per expression ``J = mean_t J_t``, ``F = mean_t F_t`` over every
  frame; ``J = mean`` over expressions, ``F`` likewise, ``J&F = (J + F) / 2``.
- davis2017-evaluation ``davis2017/evaluation.py`` (semi-supervised and unsupervised),
  ``davis2017/utils.py`` (``db_statistics``) and ``evaluation_method.py`` (the global table).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from rvoskit.metrics.jf import BOUND_TH, crop_jf, crops_jf, frame_jf

MAX_PROPOSALS = 20
"""The DAVIS unsupervised protocol refuses results with a label above this."""

DAVIS_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
"""Columns of the DAVIS global results table, in the order ``evaluation_method.py`` prints them."""


def mean_over_frames(values: np.ndarray) -> float:
    """Mean of per-frame values as the MeViS script takes it (``np.mean`` of a float64 array)."""
    return float(np.mean(np.asarray(values, np.float64)))


def mevis_summary(j_expr: Sequence[float], f_expr: Sequence[float]) -> dict[str, float]:
    """MeViS aggregation: each expression weighs the same, whatever its length.

    Args:
        j_expr, f_expr: per-expression J and F (a missing prediction video contributes 0, 0).

    Returns:
        ``{"J", "F", "J&F"}`` in [0, 1]; ``nan`` when there are no expressions.
    """
    if len(j_expr) == 0:
        return {"J": math.nan, "F": math.nan, "J&F": math.nan}
    J = float(np.mean(np.asarray(j_expr, np.float64)))
    F = float(np.mean(np.asarray(f_expr, np.float64)))
    return {"J": J, "F": F, "J&F": (J + F) / 2}


def db_statistics(per_frame_values: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame values (davis2017 ``utils.db_statistics``).

    ``M = nanmean(v)``, ``R = nanmean(v > 0.5)``, ``D = nanmean(first bin) - nanmean(last bin)``
    over 4 bins cut at ``round(linspace(1, T, 5)) - 1``. The bin indices are cast to ``uint8``
    as in the reference, so decay differs from the intended one for more than 256 frames.
    """
    v = np.asarray(per_frame_values, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        M = np.nanmean(v)
        R = np.nanmean(v > 0.5)
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
        D = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(M), float(R), float(D)


def davis_summary(j_objects: Sequence[np.ndarray], f_objects: Sequence[np.ndarray]) -> dict[str, float]:
    """The DAVIS global table from per-object per-frame J and F, objects pooled over sequences.

    Follows ``evaluation_method.py``: ``J-Mean = nanmean`` of the per-object means, ``F-Mean = mean``,
    likewise for recall and decay, ``J&F-Mean = (J-Mean + F-Mean) / 2``.

    Returns:
        A dict keyed by :data:`DAVIS_COLUMNS` (values in [0, 1], ``nan`` without objects).
    """
    if len(j_objects) == 0:
        return {k: math.nan for k in DAVIS_COLUMNS}
    js = np.array([db_statistics(j) for j in j_objects])
    fs = np.array([db_statistics(f) for f in f_objects])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        jm, jr, jd = (np.nanmean(list(js[:, i])) for i in range(3))
        fm, fr, fd = (np.mean(list(fs[:, i])) for i in range(3))
    return {
        "J&F-Mean": float((jm + fm) / 2.0),
        "J-Mean": float(jm),
        "J-Recall": float(jr),
        "J-Decay": float(jd),
        "F-Mean": float(fm),
        "F-Recall": float(fr),
        "F-Decay": float(fd),
    }


def merge_label_map(masks: Sequence[tuple[int, np.ndarray]], shape: tuple[int, int]) -> np.ndarray:
    """Merge binary object masks into one label map, lowest ``obj_id`` first.

    ReferFormer (``inference_davis.py``) takes ``argmax`` over ``[0.1 background, mask_1, ...]``;
    with binary masks that is: background where no mask is set, else the first object (in
    ascending ``obj_id``) whose mask is set. This function reproduces that rule.

    Args:
        masks: ``(obj_id, mask (H, W))`` pairs, any order; ids in 1..255.
        shape: ``(H, W)``.

    Returns:
        ``uint8 (H, W)`` label map (0 = background, else the ``obj_id``).
    """
    out = np.zeros(shape, np.uint8)
    for obj_id, m in sorted(masks, key=lambda x: x[0], reverse=True):  # lowest id written last wins
        if not 0 < obj_id < 256:
            raise ValueError(f"obj_id {obj_id} does not fit a palette PNG")
        out[np.asarray(m) != 0] = obj_id
    return out


def _label_max(labels: Sequence[np.ndarray]) -> int:
    """Largest label over every frame (the error path: the reference reports the result's maximum)."""
    return max((int(np.max(labels[t])) for t in range(len(labels)) if np.size(labels[t])), default=0)


def _scorer(bound_th: float, radius: int | None):
    """``jf(pred, gt, void)``: :func:`frame_jf` on whole frames, or with ``radius`` :func:`crop_jf`
    on crops that hold every mask's foreground plus a one-pixel margin (the caller's box)."""
    if radius is None:
        return lambda p, g, v: frame_jf(p, g, v, bound_th)
    return lambda p, g, v: crop_jf(p, g, v, radius, shrink=False)


def davis_semi_frames(
    gt_objects: Sequence[Sequence[np.ndarray]],
    labels: Sequence[np.ndarray],
    bound_th: float = BOUND_TH,
    *,
    radius: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Semi-supervised DAVIS per-frame scores: object ``i`` against result label ``i + 1``.

    The caller passes the frames already cut to ``[1:-1]`` (the reference drops the first and
    last frames) and no void pixels (the reference passes ``None`` in this task). Frames are read
    one at a time (``labels[t]``, ``gt_objects[i][t]``): lazy sequences keep memory at one frame.

    Args:
        gt_objects: N ground-truth mask sequences, each T masks ``(H, W)`` (or a ``(T, H, W)``
            array), in label order (label ``i + 1``).
        labels: T result label maps ``(H, W)`` (or a ``(T, H, W)`` array); labels above N are an
            error in the reference.
        radius: when given, every item of frame ``t`` is a crop of one box that holds every
            label and object of that frame plus a one-pixel margin, scored with
            :func:`rvoskit.metrics.jf.crop_jf` at this disk radius (the whole frame's).

    Returns:
        ``(J, F)``: ``float64 (N, T)``.

    Raises:
        ValueError: a label above N (naming the result's largest label, as the reference does).
    """
    n = len(gt_objects)
    T = len(labels)
    J = np.zeros((n, T))
    F = np.zeros((n, T))
    jf = _scorer(bound_th, radius)
    for t in range(T):
        lab = labels[t]
        if lab.size and int(lab.max()) > n:
            raise ValueError(f"the result has label {_label_max(labels)} but the sequence has {n} objects")
        if radius is not None:  # every object of the frame in one pass (crops of one box)
            scores = crops_jf([lab == i + 1 for i in range(n)], [gt_objects[i][t] for i in range(n)], None, radius)
            for i, (j, f) in enumerate(scores):
                J[i, t], F[i, t] = j, f
            continue
        for i in range(n):
            J[i, t], F[i, t] = jf(lab == i + 1, gt_objects[i][t], None)
    return J, F


def davis_unsup_frames(
    gt_objects: Sequence[Sequence[np.ndarray]],
    labels: Sequence[np.ndarray],
    void: Sequence[np.ndarray | None] | None,
    bound_th: float = BOUND_TH,
    max_proposals: int = MAX_PROPOSALS,
    *,
    radius: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unsupervised DAVIS: every proposal against every object, then Hungarian matching.

    Proposals are labels ``1..max(labels)`` (padded with empty proposals up to the number of
    objects). The assignment maximises ``(nanmean_t J + mean_t F) / 2`` with
    ``scipy.optimize.linear_sum_assignment``; the matched pairs are returned in the reference's
    order (ascending proposal), which is the order its per-object lists are built in.

    Frames are read one at a time: a proposal absent from frame ``t`` scores as the empty mask
    there (what the reference computes for it), so the scores of a frame are complete when it has
    been read, whatever the largest label of the later frames.

    Args:
        gt_objects: N mask sequences of T masks ``(H, W)`` (or ``(T, H, W)`` arrays).
        labels: T result label maps ``(H, W)``.
        void: T void masks (an item may be None: no void pixel) or None.
        radius: crops of one box per frame, as in :func:`davis_semi_frames`.

    Returns:
        ``(J, F, proposal, obj_index)``: ``float64 (N, T)`` each for J and F, and the matched
        proposal label and ground-truth object index (0-based) per row.

    Raises:
        ValueError: more than ``max_proposals`` proposals.
    """
    from scipy.optimize import linear_sum_assignment

    n = len(gt_objects)
    T = len(labels)
    EJ = np.zeros((n, T))  # the empty proposal
    EF = np.zeros((n, T))
    seen: dict[tuple[int, int, int], tuple[float, float]] = {}
    top = 0
    jf = _scorer(bound_th, radius)
    for t in range(T):
        lab = labels[t]
        present = _present_labels(lab)
        if present and present[-1] > max_proposals:
            raise ValueError(f"the result has label {_label_max(labels)}, more than the {max_proposals} proposals allowed")
        top = max(top, present[-1] if present else 0)
        vt = None if void is None else void[t]
        zero = _zeros_like(lab)
        if radius is not None:  # every (proposal, object) pair of the frame in one pass
            gs = [gt_objects[ii][t] for ii in range(n)]
            props = {p: lab == p for p in present}
            keys = [(None, ii) for ii in range(n)] + [(p, ii) for ii in range(n) for p in present]
            scores = crops_jf([zero if p is None else props[p] for p, _ in keys], [gs[ii] for _, ii in keys],
                              None if vt is None else [vt] * len(keys), radius)
            for (p, ii), jf_ in zip(keys, scores):
                if p is None:
                    EJ[ii, t], EF[ii, t] = jf_
                else:
                    seen[(p - 1, ii, t)] = jf_
            continue
        for ii in range(n):
            g = gt_objects[ii][t]
            EJ[ii, t], EF[ii, t] = jf(zero, g, vt)
            for p in present:
                seen[(p - 1, ii, t)] = jf(lab == p, g, vt)
    n_prop = max(top, n)
    J = np.repeat(EJ[None], n_prop, axis=0)
    F = np.repeat(EF[None], n_prop, axis=0)
    for (jj, ii, t), (j, f) in seen.items():
        J[jj, ii, t], F[jj, ii, t] = j, f
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        score = (np.nanmean(J, axis=2) + np.mean(F, axis=2)) / 2
    rows, cols = linear_sum_assignment(-score)
    return J[rows, cols, :], F[rows, cols, :], rows + 1, cols


def _present_labels(lab: np.ndarray) -> list[int]:
    """Positive labels present in a label map, ascending (a histogram for uint8: no sort)."""
    if lab.dtype == np.uint8:
        return np.flatnonzero(np.bincount(lab.ravel(), minlength=256)[1:]).__add__(1).tolist()
    return [p for p in np.unique(lab).tolist() if p > 0]


def _zeros_like(lab: np.ndarray) -> np.ndarray:
    return np.zeros(lab.shape, np.bool_)
