"""Moment retrieval metrics (Moment-DETR / QVHighlights) and keyframe accuracy (TGL "Top1 Acc").

Moment retrieval: :func:`eval_moment_retrieval` gives the numbers of Moment-DETR's
``standalone_eval/eval.py`` (jayleicn/moment_detr @ b7e553a, ``eval_submission``'s ``MR-*`` part),
key names included (``MR-full-R1@0.5``, ``MR-full-mAP``, ...), with its quirks:

- **R1@t**: the *first listed* predicted window (its score is ignored) against the ground-truth
  window of highest IoU with it; a hit is ``IoU >= t``; percent, rounded to 2 decimals.
- **mAP**: only the first 10 listed windows count (``max_pred_windows=10``), then they are sorted by
  descending score (stable); each is greedily matched to the unmatched ground-truth window of highest
  IoU (MMAction2 ``compute_average_precision_detection``); AP is the VOC-2011 interpolated area; mean
  over queries, for IoU 0.5:0.05:0.95; ``average`` is the mean over the 10 thresholds.
- **length buckets**: ``short`` (0, 10], ``middle`` (10, 30], ``long`` (30, 150] seconds of ground
  truth window length; windows outside the bucket are removed and queries left without one dropped;
  ``full`` is unfiltered.

The computation is vectorised over queries (grouped by their numbers of windows) instead of one Python
loop per query and threshold, so a MeViS-size split (~30k queries) takes about a second; the
per-element arithmetic (IoU formulas, the order of ``argsort`` on equal IoUs, the summation order of
the AP area and of the mean over queries) is the reference's, so the numbers are the same
(``tests/test_moments.py`` runs the reference on the same files).

Where the reference crashes, rvoskit reports instead of crashing: a query without ground-truth windows
cannot be scored (R1 indexes its first window, AP divides by zero) and is left out and counted
(``skipped_queries``); a bucket without queries (MeViS videos are short: ``long`` is usually empty)
gets ``None`` values.

Keyframe accuracy (:func:`keyframe_accuracy`): per expression, a ranked list of frame indices; a frame
is a hit when it lies inside the expression's moment (the union of its spans, inclusive ends); Top-1
accuracy = share of expressions whose first frame is a hit, Top-k = share with a hit among the first
k. TGL (arXiv 2508.11955, Tab. 4) reports "Top1 Acc" without code; this is rvoskit's reading.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rvoskit.errors import RvosError

#: IoU thresholds as the reference writes them (``float(f"{e:.2f}")`` of ``np.linspace(0.5, 0.95, 10)``).
IOU_THDS: tuple[float, ...] = tuple(float(f"{e:.2f}") for e in np.linspace(0.5, 0.95, 10))
#: Length buckets in seconds, ``(min, max]``; ``full`` is not filtered (the reference's special case).
LENGTH_RANGES: dict[str, tuple[float, float]] = {"short": (0, 10), "middle": (10, 30), "long": (30, 150), "full": (0, 150)}
MAX_PRED_WINDOWS = 10
#: The reference's brief keys, in its (sorted) order.
BRIEF_KEYS = (
    "MR-full-R1@0.5",
    "MR-full-R1@0.7",
    "MR-full-mAP",
    "MR-full-mAP@0.5",
    "MR-full-mAP@0.75",
    "MR-long-mAP",
    "MR-middle-mAP",
    "MR-short-mAP",
)


# -- reading ---------------------------------------------------------------------------------------


def load_jsonl(path: str | Path, *, what: str = "JSONL file") -> list[dict]:
    """Read a JSON-lines file (blank lines skipped).

    Raises:
        RvosError: a missing file, or a line that is not a JSON object (names the line number).
    """
    path = Path(path)
    if not path.is_file():
        raise RvosError(f"no such {what}", file=path)
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RvosError(f"invalid JSON: {exc.msg}", file=path, item=f"line {n}") from None
            if not isinstance(d, dict):
                raise RvosError("a line must be a JSON object", file=path, item=f"line {n}")
            out.append(d)
    return out


def _windows(value: Any, width: int, *, file, item: str) -> np.ndarray:
    """``[[start, end(, score)], ...]`` -> float64 ``(n, width)``; checks shape and numbers, and start <= end
    for ground truth (a reversed predicted window is scored as the reference scores it)."""
    kind = "[start, end, score]" if width == 3 else "[start, end]"
    if not isinstance(value, list):
        raise RvosError(f"windows must be a list of {kind} numbers", file=file, item=item)
    if not value:
        return np.zeros((0, width))
    try:  # fast path: a regular list of number lists
        a = np.array(value)
        ok = a.ndim == 2 and a.shape[1] >= width and a.dtype.kind in "iuf"
    except (TypeError, ValueError):  # ragged
        ok = False
    if not ok:  # windows with extra entries (the reference reads the first 2 or 3), or bad ones
        if not all(isinstance(w, (list, tuple)) and len(w) >= width
                   and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in w[:width]) for w in value):
            raise RvosError(f"windows must be a list of {kind} numbers", file=file, item=item)
        a = np.array([list(w[:width]) for w in value])
    a = np.ascontiguousarray(a[:, :width], dtype=np.float64)
    if not np.isfinite(a).all():
        raise RvosError("windows must be finite numbers", file=file, item=item)
    if width == 2 and (a[:, 1] < a[:, 0]).any():  # predictions are scored as given, like the reference
        raise RvosError("a window ends before it starts", file=file, item=item)
    return a


@dataclass
class MomentQueries:
    """Queries with windows in seconds, in file order.

    Attributes:
        qids: query ids (int or str, as given).
        windows: per query, float64 ``(n, 2)`` (ground truth) or ``(n, 3)`` (predictions, listed order).
        vids: per query, the video id or None.
        durations: per query, seconds or None.
    """

    qids: list
    windows: list[np.ndarray]
    vids: list
    durations: list


def _parse(lines: Sequence[Mapping], key: str, width: int, what: str, file) -> MomentQueries:
    """Lines with ``qid`` and ``key`` (windows of ``width`` numbers) -> :class:`MomentQueries`."""
    q = MomentQueries([], [], [], [])
    seen = set()
    for n, d in enumerate(lines, 1):
        item = f"line {n}"
        if "qid" not in d or key not in d:
            raise RvosError(f"a {what} line needs 'qid' and '{key}'", file=file, item=item)
        qid = d["qid"]
        if qid in seen:
            raise RvosError(f"qid {qid!r} appears twice", file=file, item=item)
        seen.add(qid)
        item = f"{item} (qid {qid})"
        w = _windows(d[key], width, file=file, item=item)
        if width == 3 and len(w) == 0:
            raise RvosError("no predicted window (R1 uses the first one)", file=file, item=item)
        q.qids.append(qid)
        q.windows.append(w)
        q.vids.append(d.get("vid"))
        q.durations.append(d.get("duration") if width == 2 else None)
    return q


def parse_ground_truth(lines: Sequence[Mapping], *, file: str | Path | None = None) -> MomentQueries:
    """QVHighlights ground-truth lines (``qid``, ``relevant_windows`` in seconds[, ``vid``, ``duration``]).

    Raises:
        RvosError: a missing ``qid`` / ``relevant_windows``, a repeated qid, malformed windows.
    """
    return _parse(lines, "relevant_windows", 2, "ground-truth", file)


def parse_predictions(lines: Sequence[Mapping], *, file: str | Path | None = None) -> MomentQueries:
    """QVHighlights prediction lines (``qid``, ``pred_relevant_windows`` ``[[start, end, score], ...]``).

    Raises:
        RvosError: a missing field, a repeated qid, no window (the reference's R1 reads the first), malformed windows.
    """
    return _parse(lines, "pred_relevant_windows", 3, "prediction", file)


# -- IoU (the reference's formulas) ----------------------------------------------------------------


def temporal_iou_cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of windows ``a (..., N, 2)`` with ``b (..., M, 2)`` -> ``(..., N, M)`` (seconds, float64).

    Union = sum of lengths - intersection (Moment-DETR ``compute_temporal_iou_batch_cross``; 0/0 gives NaN).
    """
    la = a[..., :, 1] - a[..., :, 0]
    lb = b[..., :, 1] - b[..., :, 0]
    left = np.maximum(a[..., :, None, 0], b[..., None, :, 0])
    right = np.minimum(a[..., :, None, 1], b[..., None, :, 1])
    inter = np.clip(right - left, 0, None)
    union = la[..., :, None] + lb[..., None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / union


def temporal_iou_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``a[i]`` with ``b[i]`` (``(N, 2)`` each): union = hull (Moment-DETR
    ``compute_temporal_iou_batch_paired``, equal to the true IoU; 0 where the hull is empty)."""
    inter = np.maximum(0, np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]))
    union = np.maximum(a[:, 1], b[:, 1]) - np.minimum(a[:, 0], b[:, 0])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)


# -- AP and R1 ---------------------------------------------------------------------------------------


def _ap_group(gt: np.ndarray, pred: np.ndarray, thds: np.ndarray) -> np.ndarray:
    """AP of Q queries with G ground-truth and K predicted windows each: ``gt (Q, G, 2)``,
    ``pred (Q, K, 3)`` in listed order -> ``(Q, len(thds))``."""
    Q, K = pred.shape[0], pred.shape[1]
    G = gt.shape[1]
    T = len(thds)
    order = np.argsort(-pred[:, :, 2], axis=1, kind="stable")  # list.sort(key=-score) is stable
    p = np.take_along_axis(pred, order[:, :, None], axis=1)
    iou = temporal_iou_cross(p[:, :, :2], gt)  # (Q, K, G)
    if G == 1:  # one window: the first prediction (by score) reaching the threshold matches it, no other
        cond = ~(iou[None, :, :, 0] < thds[:, None, None])  # (T, Q, K); the reference breaks on IoU < t
        tp = (cond & (np.cumsum(cond, axis=2) == 1)).astype(np.float64)
        return _ap_from_tp(tp, G)
    rank = np.argsort(iou, axis=-1)[..., ::-1]  # the reference's tiou_arr.argsort()[::-1], row by row
    locked = np.zeros((T, Q, G), bool)
    tp = np.zeros((T, Q, K))
    qi = np.arange(Q)[None, :]
    ti = np.arange(T)[:, None]
    for k in range(K):
        o = np.broadcast_to(rank[:, k, :][None], (T, Q, G))
        free = ~np.take_along_axis(locked, o, axis=2)
        first = free.argmax(axis=2)  # first unmatched window in IoU order
        j = np.take_along_axis(o, first[:, :, None], axis=2)[:, :, 0]
        val = iou[qi, k, j]  # (T, Q)
        hit = free.any(axis=2) & ~(val < thds[:, None])  # the reference breaks on IoU < t, so NaN is a hit too
        locked[ti, qi, j] |= hit
        tp[:, :, k] = hit
    return _ap_from_tp(tp, G)


def _ap_from_tp(tp: np.ndarray, G: int) -> np.ndarray:
    """VOC-2011 interpolated AP from true positives ``tp (T, Q, K)`` in score order -> ``(Q, T)``."""
    T, Q = tp.shape[:2]
    fp = 1.0 - tp
    tp_c = np.cumsum(tp, axis=2)
    fp_c = np.cumsum(fp, axis=2)
    recall = tp_c / float(G)
    precision = tp_c / (tp_c + fp_c)
    zeros = np.zeros((T, Q, 1))
    mprec = np.concatenate([zeros, precision, zeros], axis=2)
    mrec = np.concatenate([zeros, recall, np.ones((T, Q, 1))], axis=2)
    mprec = np.maximum.accumulate(mprec[:, :, ::-1], axis=2)[:, :, ::-1]
    step = mrec[:, :, 1:] - mrec[:, :, :-1]
    terms = np.where(mrec[:, :, 1:] != mrec[:, :, :-1], step * mprec[:, :, 1:], 0.0)
    return np.cumsum(terms, axis=2)[:, :, -1].T  # sequential sum, as np.sum over the few change points


class _Flat:
    """Windows of many queries in one array: ``rows (N, w)``, query ``q`` owns ``rows[off[q]:off[q + 1]]``."""

    def __init__(self, rows: np.ndarray, counts: np.ndarray):
        self.rows = rows
        self.counts = counts.astype(np.int64)
        self.off = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @classmethod
    def of(cls, windows: Sequence[np.ndarray], width: int) -> "_Flat":
        counts = np.fromiter((len(w) for w in windows), np.int64, len(windows))
        rows = np.concatenate([np.asarray(w, np.float64).reshape(-1, width) for w in windows]) if len(windows) else np.zeros((0, width))
        return cls(rows.reshape(-1, width), counts)

    def subset(self, idx: np.ndarray) -> "_Flat":
        """The queries ``idx``, in that order."""
        cnt = self.counts[idx]
        before = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
        pos = np.repeat(self.off[idx] - before, cnt) + np.arange(int(cnt.sum()), dtype=np.int64)
        return _Flat(self.rows[pos], cnt)

    def take(self, idx: np.ndarray, n: int) -> np.ndarray:
        """``(len(idx), n, w)``: the first ``n`` windows of the queries ``idx`` (each has at least n)."""
        return self.rows[self.off[idx][:, None] + np.arange(n)[None, :]]


def _grouped(keys: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Positions grouped by key: ``[(key, positions ascending), ...]``."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    cuts = np.flatnonzero(np.diff(k)) + 1
    return [(int(g[0]), order_part) for g, order_part in zip(np.split(k, cuts), np.split(order, cuts)) if len(g)]


def _ap_flat(gt: _Flat, pred: _Flat, thds: np.ndarray) -> np.ndarray:
    """Per-query AP ``(Q, len(thds))``: query i's ground truth is ``gt`` query i, its (already
    truncated) predictions ``pred`` query i; queries are grouped by (G, K) and vectorised."""
    Q = len(gt.counts)
    out = np.zeros((Q, len(thds)))
    keys = gt.counts * 1_000_003 + pred.counts
    for key, idx in _grouped(keys):
        G, K = divmod(key, 1_000_003)
        if K == 0 or G == 0:
            continue
        out[idx] = _ap_group(gt.take(idx, G), pred.take(idx, K), thds)
    return out


def _first_iou_flat(gt: _Flat, first: np.ndarray) -> np.ndarray:
    """R1 IoU: ``first (Q, 2)`` predicted windows against the best-overlapping window of ``gt`` query i."""
    chosen = np.zeros((len(first), 2))
    for G, idx in _grouped(gt.counts):
        g = gt.take(idx, G)  # (n, G, 2)
        ious = temporal_iou_cross(first[idx][:, None, :], g)[:, 0, :]
        best = np.argmax(ious, axis=1)
        chosen[idx] = g[np.arange(len(idx)), best]
    return temporal_iou_paired(first, chosen)


def average_precision(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray], thds: Sequence[float] = IOU_THDS,
                      max_pred_windows: int | None = MAX_PRED_WINDOWS) -> np.ndarray:
    """Per-query AP at each IoU threshold (Moment-DETR ``compute_mr_ap`` before averaging).

    Args:
        gt: per query, float64 ``(G, 2)`` ground-truth windows (G >= 1).
        pred: per query, float64 ``(K, 3)`` ``[start, end, score]`` in listed order (K >= 1).
        thds: IoU thresholds.
        max_pred_windows: only the first this many listed windows count (None: all).

    Returns:
        float64 ``(Q, len(thds))``, AP in [0, 1].
    """
    pred = [p if max_pred_windows is None else p[:max_pred_windows] for p in pred]
    return _ap_flat(_Flat.of(gt, 2), _Flat.of(pred, 3), np.asarray(thds, dtype=np.float64))


def first_window_iou(gt: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of each query's first listed predicted window with the ground-truth window it overlaps most
    (Moment-DETR ``compute_mr_r1``: the first window of highest cross IoU, then the paired IoU)."""
    first = np.array([p[0, :2] for p in pred], dtype=np.float64).reshape(len(pred), 2)
    return _first_iou_flat(_Flat.of(gt, 2), first)


def _pct(v: float) -> float:
    return float(f"{100 * v:.2f}")


def eval_moment_retrieval(ground_truth: MomentQueries, predictions: MomentQueries) -> dict[str, Any]:
    """Moment-DETR's moment retrieval metrics of ``predictions`` against ``ground_truth``.

    Both must hold the same qids (the reference's ``match_number=True``); ground-truth queries without a
    window are left out (the reference cannot score them) together with their predictions.

    Returns:
        ``{"brief": {"MR-full-R1@0.5": .., ...}, "full"|"short"|"middle"|"long": {"MR-mAP": {"0.5": ..,
        ..., "average": ..}, "MR-R1": {"0.5": .., ...}}, "counts": {...}}``; values in percent rounded to
        2 decimals as the reference writes them; a bucket without queries has ``None`` values.

    Raises:
        RvosError: qids that are only in one of the two.
    """
    g_set, p_set = set(ground_truth.qids), set(predictions.qids)
    if g_set != p_set:
        missing = [q for q in ground_truth.qids if q not in p_set]
        extra = [q for q in predictions.qids if q not in g_set]
        what = []
        if missing:
            what.append(f"{len(missing)} ground-truth qid(s) without a prediction (e.g. {missing[0]!r})")
        if extra:
            what.append(f"{len(extra)} predicted qid(s) not in the ground truth (e.g. {extra[0]!r})")
        raise RvosError("qids of predictions and ground truth must match: " + "; ".join(what))
    # Queries in prediction order (the reference's order of pred_qid2data and of its mean over queries).
    gpos = {q: i for i, q in enumerate(ground_truth.qids)}
    order = np.fromiter((gpos[q] for q in predictions.qids), np.int64, len(predictions.qids))
    g_all = _Flat.of(ground_truth.windows, 2)
    gt = g_all.subset(order)
    counts = gt.counts
    p_all = _Flat.of(predictions.windows, 3)
    keep_p = (np.arange(len(p_all.rows)) - np.repeat(p_all.off[:-1], p_all.counts)) < MAX_PRED_WINDOWS
    pred = _Flat(p_all.rows[keep_p], np.minimum(p_all.counts, MAX_PRED_WINDOWS))
    first = p_all.rows[p_all.off[:-1]][:, :2] if len(p_all.rows) else np.zeros((0, 2))
    thds = np.asarray(IOU_THDS, dtype=np.float64)
    length = gt.rows[:, 1] - gt.rows[:, 0]
    owner = np.repeat(np.arange(len(counts)), counts)
    n_empty = int((counts == 0).sum())

    out: dict[str, Any] = {}
    n_bucket: dict[str, int] = {}
    thd_keys = [str(t) for t in IOU_THDS]
    for name in ("short", "middle", "long", "full"):
        lo, hi = LENGTH_RANGES[name]
        keep = np.ones(len(length), bool) if (lo == 0 and hi == 150) else (lo < length) & (length <= hi)
        c = np.bincount(owner[keep], minlength=len(counts))
        qs = np.flatnonzero(c > 0)
        n_bucket[name] = len(qs)
        if not len(qs):
            out[name] = {"MR-mAP": {**{k: None for k in thd_keys}, "average": None}, "MR-R1": {k: None for k in thd_keys}}
            continue
        g = _Flat(gt.rows[keep], c).subset(qs)
        p = pred.subset(qs)
        ap = _ap_flat(g, p, thds).mean(0)
        mr_map = {k: _pct(v) for k, v in zip(thd_keys, ap)}
        mr_map["average"] = _pct(np.mean(ap))
        iou = _first_iou_flat(g, first[qs])
        r1 = {k: float(f"{np.mean(iou >= t) * 100:.2f}") for k, t in zip(thd_keys, IOU_THDS)}
        out[name] = {"MR-mAP": mr_map, "MR-R1": r1}
    brief = {
        "MR-full-mAP": out["full"]["MR-mAP"]["average"],
        "MR-full-mAP@0.5": out["full"]["MR-mAP"]["0.5"],
        "MR-full-mAP@0.75": out["full"]["MR-mAP"]["0.75"],
        "MR-short-mAP": out["short"]["MR-mAP"]["average"],
        "MR-middle-mAP": out["middle"]["MR-mAP"]["average"],
        "MR-long-mAP": out["long"]["MR-mAP"]["average"],
        "MR-full-R1@0.5": out["full"]["MR-R1"]["0.5"],
        "MR-full-R1@0.7": out["full"]["MR-R1"]["0.7"],
    }
    result: dict[str, Any] = {"brief": {k: brief[k] for k in sorted(brief)}}
    result.update({k: out[k] for k in sorted(out)})
    result["counts"] = {"queries": len(ground_truth.qids), "skipped_queries": n_empty, **{f"queries_{k}": v for k, v in n_bucket.items()}}
    return result


# -- frames -> seconds, keyframes --------------------------------------------------------------------


def merge_spans(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of inclusive frame spans as sorted disjoint spans; touching spans (``b + 1 == c``) merge."""
    out: list[list[int]] = []
    for a, b in sorted((int(a), int(b)) for a, b in spans):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def span_seconds(start: int, end: int, fps: float, decimals: int | None = None) -> list[float]:
    """Inclusive frame span -> window in seconds ``[start / fps, (end + 1) / fps]`` (frame k covers
    ``[k / fps, (k + 1) / fps)``), rounded to ``decimals`` when given."""
    s, e = start / fps, (end + 1) / fps
    if decimals is not None:
        s, e = round(s, decimals), round(e, decimals)
    return [s, e]


def keyframe_accuracy(moments: Mapping[Any, Sequence[tuple[int, int]]], ranked: Mapping[Any, Sequence[int]], k: int = 5) -> dict[str, Any]:
    """Top-1 and Top-k keyframe accuracy.

    Args:
        moments: per expression, its moment as inclusive frame spans (the union of its objects'
            spans); expressions with an empty moment are left out (counted).
        ranked: per expression, predicted frame indices, best first.
        k: the k of Top-k (>= 1).

    Returns:
        ``{"top1": %, "topk": %, "k": k, "n_expressions": n, "skipped_no_moment": m, "per_expression":
        {id: rank of the first hit (1-based) or None}}``; percent rounded to 2 decimals.

    Raises:
        RvosError: an expression with a moment but no prediction.
    """
    if k < 1:
        raise RvosError(f"--top-k must be >= 1, got {k}")
    first_hit: dict[Any, int | None] = {}
    skipped = 0
    for eid, spans in moments.items():
        if not spans:
            skipped += 1
            continue
        if eid not in ranked:
            raise RvosError("expression with a moment has no predicted keyframes", item=str(eid))
        f = np.asarray(ranked[eid], dtype=np.int64)
        hit = np.zeros(len(f), bool)
        for a, b in spans:
            hit |= (f >= a) & (f <= b)
        first_hit[eid] = int(np.argmax(hit)) + 1 if hit.any() else None
    n = len(first_hit)
    ranks = [r for r in first_hit.values() if r is not None]
    top1 = sum(1 for r in ranks if r == 1)
    topk = sum(1 for r in ranks if r <= k)
    return {
        "top1": float(f"{100 * top1 / n:.2f}") if n else None,
        "topk": float(f"{100 * topk / n:.2f}") if n else None,
        "k": int(k),
        "n_expressions": n,
        "skipped_no_moment": skipped,
        "per_expression": first_hit,
    }


# -- J&F inside and outside the moment ---------------------------------------------------------------


def moment_jf(result, moments: Mapping[str, Sequence[tuple[int, int]]], num_frames: Mapping[str, int]) -> dict[str, Any]:
    """Split a ``mevis``-protocol result into the frames inside each expression's moment, outside it,
    and all frames (TGL's oracle-moment analysis).

    Per expression, J (F) over a part is the mean of its per-frame J (F) over that part's frames (the
    MeViS per-frame values; an expression whose video has no prediction scores 0 on every frame); a
    part is averaged over the expressions that have frames in it (an empty moment has no inside, a
    whole-video moment no outside); J&F = (J + F) / 2. ``all`` is the MeViS number.

    Args:
        result: :class:`rvoskit.metrics.EvalResult` of ``evaluate(..., protocol="mevis")``.
        moments: per expression, merged inclusive frame spans
            (:func:`rvoskit.datasets.moments.expression_moments`).
        num_frames: per video, its number of frames.

    Returns:
        ``{"inside"|"outside"|"all": {"J", "F", "J&F", "n_expressions"}, "per_expression": DataFrame}``
        (values in [0, 1]; NaN where a part has no expression). The DataFrame has ``expression_id``,
        ``n_inside``, ``n_outside``, ``J_inside``, ``F_inside``, ``J&F_inside``, and the same for
        ``outside``.
    """
    import pandas as pd

    items = result.items
    fr = result.frames
    by_expr = {e: g for e, g in fr.groupby("expression_id")} if len(fr) else {}
    rows = []
    for eid, vid, status in zip(items["expression_id"], items["video_id"], items["status"]):
        T = int(num_frames[vid])
        inside = np.zeros(T, bool)
        for a, b in moments.get(eid, ()):
            inside[a : b + 1] = True
        if status == "ok":
            g = by_expr[eid]
            J = np.zeros(T)
            F = np.zeros(T)
            J[g["frame_idx"].to_numpy()] = g["J"].to_numpy()
            F[g["frame_idx"].to_numpy()] = g["F"].to_numpy()
        else:
            J = F = np.zeros(T)
        r = {"expression_id": eid, "n_inside": int(inside.sum()), "n_outside": int((~inside).sum())}
        for part, sel in (("inside", inside), ("outside", ~inside)):
            if sel.any():
                j, f = float(np.mean(J[sel])), float(np.mean(F[sel]))
                r.update({f"J_{part}": j, f"F_{part}": f, f"J&F_{part}": (j + f) / 2})
            else:
                r.update({f"J_{part}": math.nan, f"F_{part}": math.nan, f"J&F_{part}": math.nan})
        rows.append(r)
    df = pd.DataFrame(rows, columns=["expression_id", "n_inside", "n_outside", "J_inside", "F_inside", "J&F_inside",
                                     "J_outside", "F_outside", "J&F_outside"])
    out: dict[str, Any] = {}
    for part in ("inside", "outside"):
        ok = df[f"n_{part}"] > 0
        if ok.any():
            j, f = float(df.loc[ok, f"J_{part}"].mean()), float(df.loc[ok, f"F_{part}"].mean())
            out[part] = {"J": j, "F": f, "J&F": (j + f) / 2, "n_expressions": int(ok.sum())}
        else:
            out[part] = {"J": math.nan, "F": math.nan, "J&F": math.nan, "n_expressions": 0}
    s = result.summary
    out["all"] = {"J": s["J"], "F": s["F"], "J&F": s["J&F"], "n_expressions": int(s["n_expressions"])}
    out["per_expression"] = df
    return out


def add_moment_scores(result, dataset) -> Any:
    """Add :func:`moment_jf` to a ``mevis``-protocol result, in place: ``summary["moments"]`` (inside,
    outside, all, and the rule) and the per-expression columns of :func:`moment_jf` in ``items``.

    Args:
        result: :class:`rvoskit.metrics.EvalResult` (protocol ``mevis``).
        dataset: the MeViS-M dataset (directory or :class:`rvoskit.format.RvosDataset`) it scored.

    Returns:
        ``result``.

    Raises:
        RvosError: another protocol, or a dataset without ``moments.parquet``.
    """
    from rvoskit.datasets.moments import expression_moments
    from rvoskit.format import RvosDataset, open_dataset

    if result.summary.get("protocol") != "mevis":
        raise RvosError(f"--moments needs --protocol mevis, not {result.summary.get('protocol')}")
    ds = dataset if isinstance(dataset, RvosDataset) else open_dataset(dataset)
    mj = moment_jf(result, expression_moments(ds), ds.videos["num_frames"].to_dict())
    df = mj.pop("per_expression")
    result.summary["moments"] = {
        **mj,
        "rule": "per expression, mean of per-frame J/F over the frames inside its moment (union of its spans), "
                "outside it, and all frames; then mean over the expressions that have such frames",
    }
    result.items = result.items.merge(df, on="expression_id", how="left")
    return result
