"""Summary statistics of a common-format dataset (``rvoskit info``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rvoskit.format import open_dataset


def _dist(x) -> dict:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {"n": 0}
    return {"n": int(x.size), "min": float(x.min()), "median": float(np.median(x)), "mean": float(x.mean()), "max": float(x.max())}


def dataset_info(path: str | Path) -> dict:
    """Counts and distributions of a dataset.

    Returns:
        A JSON-serialisable dict: ``source``, ``counts`` (videos, frames, objects, expressions,
        masks), ``expressions_per_video``, ``frames_per_video`` (min/median/mean/max),
        ``annotated_frames_per_video`` (sparse datasets only: A2D, JHMDB), ``objects_per_expression`` (histogram with keys ``"no-target"``, ``"1"``, ``"2"``, ``"3+"``,
        ``"unknown"`` for splits without ground truth), ``multi_object`` count, and ``mask_area``:
        the distribution of mask area as a fraction of the frame, with percentiles (5, 25, 50, 75,
        95) and the number of empty masks. Reads only the ``area``/size columns of the masks.
    """
    ds = open_dataset(path)
    v, e = ds.videos, ds.expressions
    per_video = e.groupby("video_id").size().reindex(v.index, fill_value=0)
    n_obj = e["obj_ids"].map(lambda x: -1 if x is None else len(x))
    hist = {"no-target": int((n_obj == 0).sum()), "1": int((n_obj == 1).sum()), "2": int((n_obj == 2).sum()),
            "3+": int((n_obj >= 3).sum()), "unknown": int((n_obj < 0).sum())}
    m = ds.masks(columns=["area", "height", "width"])
    frac = (m["area"] / (m["height"] * m["width"])).to_numpy() if len(m) else np.zeros(0)
    area = _dist(frac)
    if frac.size:
        area["percentiles"] = {str(p): float(np.percentile(frac, p)) for p in (5, 25, 50, 75, 95)}
    area["empty"] = int((m["area"] == 0).sum()) if len(m) else 0
    return {
        "path": str(ds.path),
        "source": ds.manifest["source"],
        "counts": {"videos": len(v), "frames": int(v["num_frames"].sum()), "objects": len(ds.objects),
                   "expressions": len(e), "masks": len(m), **({"moments": len(ds.moments)} if ds.has_moments else {})},
        "expressions_per_video": _dist(per_video.to_numpy()),
        "frames_per_video": _dist(v["num_frames"].to_numpy()),
        **({"annotated_frames_per_video": _dist([len(a) for a in v["annotated_frames"] if a is not None])}
           if v["annotated_frames"].notna().any() else {}),  # sparse ground truth (format 1.1)
        "objects_per_expression": hist,
        "multi_object": hist["2"] + hist["3+"],
        "mask_area": area,
        **({"moments": moment_info(ds)} if ds.has_moments else {}),
    }


def moment_info(ds) -> dict:
    """MeViS-M moment statistics of a dataset with ``moments.parquet``.

    The moment of an expression is the union of its spans (``schemas/FORMAT.md`` 1.6).

    Returns:
        ``granularity`` (span rows with an object / expression-level rows), ``expressions_with_moment``
        and ``expressions_without_moment``; ``coverage``: distribution over expressions with a moment of
        the fraction of the video's frames inside it; ``spans_per_expression``: distribution of the
        number of disjoint spans of the moment; ``whole_video``: moments covering every frame;
        ``objects_outside_moment``: over (expression, target object) pairs with masks, ``pairs``,
        ``visible_outside`` (pairs whose object has a non-empty mask on a frame outside the
        expression's moment) and ``frames_outside`` (the share of those objects' non-empty mask frames
        that lie outside the moment); ``targets_without_span``: target objects of object-level
        expressions that have no span (never referred).
    """
    from rvoskit.metrics.moments import merge_spans

    mom = ds.moments
    e = ds.expressions
    nframes = ds.videos["num_frames"]
    spans: dict[str, list] = {}
    objs_with_span: dict[str, set] = {}
    level: dict[str, bool] = {}
    for eid, o, a, b in zip(mom["expression_id"], mom["obj_id"], mom["start_idx"], mom["end_idx"]):
        spans.setdefault(eid, []).append((int(a), int(b)))
        null = o is None or o != o
        level[eid] = null
        if not null:
            objs_with_span.setdefault(eid, set()).add(int(o))
    cover, nspans = [], []
    whole = 0
    inside: dict[str, np.ndarray] = {}
    for eid, vid in zip(e["expression_id"], e["video_id"]):
        if eid not in spans:
            continue
        T = int(nframes.loc[vid])
        merged = merge_spans(spans[eid])
        mask = np.zeros(T, bool)
        for a, b in merged:
            mask[a : b + 1] = True
        inside[eid] = mask
        cover.append(mask.mean() if T else 0.0)
        nspans.append(len(merged))
        whole += bool(mask.all())
    m = ds.masks(columns=["video_id", "obj_id", "frame_idx", "area"])
    m = m[m["area"].to_numpy() > 0]
    frames_of = {k: g.to_numpy() for k, g in m.groupby(["video_id", "obj_id"])["frame_idx"]} if len(m) else {}
    pairs = vis_out = n_in = n_out = no_span = 0
    for eid, vid, objs in zip(e["expression_id"], e["video_id"], e["obj_ids"]):
        if objs is None:
            continue
        if eid in spans and not level.get(eid, False):
            no_span += sum(1 for o in objs if int(o) not in objs_with_span.get(eid, set()))
        mask = inside.get(eid)
        for o in objs:
            f = frames_of.get((vid, int(o)))
            if f is None or not len(f):
                continue
            pairs += 1
            out = int((~mask[f]).sum()) if mask is not None else len(f)
            vis_out += out > 0
            n_out += out
            n_in += len(f) - out
    return {
        "granularity": {"object": int(mom["obj_id"].notna().sum()), "expression": int(mom["obj_id"].isna().sum())},
        "expressions_with_moment": len(inside),
        "expressions_without_moment": len(e) - len(inside),
        "whole_video": whole,
        "coverage": _dist(cover),
        "spans_per_expression": _dist(nspans),
        "objects_outside_moment": {"pairs": pairs, "visible_outside": vis_out,
                                   "frames_outside": (n_out / (n_in + n_out)) if (n_in + n_out) else None},
        "targets_without_span": no_span,
    }
