"""A straightforward pycocotools pseudo-labeller: the reference that bench_pseudolabel.py times
``rvoskit pseudolabel`` against (SOLA's rule, written the obvious way from the common format).

    python benchmarks/reference/pseudolabel_pycocotools.py DATASET TRACKS {native|540x960} OUT.parquet

Per video: every mask resized once when asked (decode, float32, cv2 INTER_LINEAR, > 0.5, encode),
then per frame one ``pycocotools.mask.iou`` of all tracks against the targets (each object and, for
multi-object expressions, the union of their native masks; for no-target expressions the empty
mask), both empty = 1; averaged over frames.
"""

import sys

import cv2
import numpy as np
import pandas as pd
import pycocotools.mask as M

ds, tracks_dir, res, out = sys.argv[1:5]
videos = pd.read_parquet(f"{ds}/videos.parquet")
exprs = pd.read_parquet(f"{ds}/expressions.parquet")
masks = pd.read_parquet(f"{ds}/masks.parquet")
rows = []
for v in videos.itertuples():
    T, H, W = int(v.num_frames), int(v.height), int(v.width)
    size = (H, W) if res == "native" else ((540, 960) if H < W else (960, 540))
    tracks = pd.read_parquet(f"{tracks_dir}/tracks/{v.video_id}.parquet")

    def grid(df, key):  # {id: [rle or None per frame]}
        g = {}
        for r in df.itertuples():
            g.setdefault(getattr(r, key), [None] * T)[r.frame_idx] = r.rle if r.area > 0 else None
        return g

    def prep(c):
        if c is None or size == (H, W):
            return c
        m = cv2.resize(M.decode({"size": [H, W], "counts": c}).astype(np.float32), size[::-1], interpolation=cv2.INTER_LINEAR) > 0.5
        return M.encode(np.asfortranarray(m.astype(np.uint8)))["counts"] if m.any() else None

    gt_native = grid(masks[masks.video_id == v.video_id], "obj_id")
    trk = {k: [prep(c) for c in l] for k, l in sorted(grid(tracks, "track_id").items())}
    ids = list(trk)
    targets = {(o,): [prep(c) for c in l] for o, l in gt_native.items()}
    for ol in exprs[exprs.video_id == v.video_id].obj_ids:
        key = tuple(sorted(set(int(o) for o in ol)))
        if len(key) > 1 and key not in targets:
            targets[key] = [prep(M.merge([{"size": [H, W], "counts": gt_native[o][t]} for o in key if gt_native.get(o, [None] * T)[t]],
                                         intersect=False)["counts"]) if any(gt_native.get(o, [None] * T)[t] for o in key) else None
                            for t in range(T)]
    if any(len(ol) == 0 for ol in exprs[exprs.video_id == v.video_id].obj_ids):
        targets[()] = [None] * T  # no-target expressions: the empty mask
    keys = list(targets)
    acc = np.zeros((len(ids), len(keys)))
    for t in range(T):
        a = [trk[i][t] for i in ids]
        b = [targets[k][t] for k in keys]
        ea, eb = np.array([x is None for x in a]), np.array([x is None for x in b])
        iou = np.outer(ea, eb).astype(float)
        ia, ib = np.flatnonzero(~ea), np.flatnonzero(~eb)
        if ia.size and ib.size:
            iou[np.ix_(ia, ib)] = M.iou([{"size": list(size), "counts": a[i]} for i in ia],
                                        [{"size": list(size), "counts": b[j]} for j in ib], [0] * ib.size)
        acc += iou
    miou = acc / T
    col = {k: j for j, k in enumerate(keys)}
    for e in exprs[exprs.video_id == v.video_id].itertuples():
        ol = sorted(set(int(o) for o in e.obj_ids))
        per = np.stack([miou[:, col[(o,)]] for o in ol], 1) if ol else np.zeros((len(ids), 0))
        mx = per.max(1) if ol else np.full(len(ids), np.nan)
        un = miou[:, col[tuple(ol)]]
        rows += [{"expression_id": e.expression_id, "track_id": i, "miou_max": mx[r], "miou_union": un[r], "label": bool(mx[r] > 0.7)}
                 for r, i in enumerate(ids)]
pd.DataFrame(rows).to_parquet(out)
