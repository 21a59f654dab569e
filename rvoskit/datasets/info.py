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
        ``objects_per_expression`` (histogram with keys ``"no-target"``, ``"1"``, ``"2"``, ``"3+"``,
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
        "objects_per_expression": hist,
        "multi_object": hist["2"] + hist["3+"],
        "mask_area": area,
    }
