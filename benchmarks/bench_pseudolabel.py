"""``rvoskit pseudolabel`` against a straightforward pycocotools script, whole commands, alternating.

    python benchmarks/bench_pseudolabel.py [--tracks 32 --frames 50 --size 480x854 --pairs 3] [--naive]
                                           [--resolution native|540x960 ...]

One synthetic video (tracks x 5 objects x frames at 480x854, DAVIS 480p) with 5 single-object
expressions and one two-object expression. The reference is benchmarks/reference/
pseudolabel_pycocotools.py (pandas + ``pycocotools.mask.iou`` per frame, each mask resized once when
a resolution is set: decode, float32 bilinear, > 0.5, encode); rvoskit is ``rvoskit pseudolabel``
(which also writes labels.json and the histogram). Native resolution and 540x960 (SOLA's). The
mIoU and labels of both are checked identical. ``--naive`` also times the decode-every-pair loop
(numpy IoU per pair and frame) in this process, scaled from ``--naive-tracks`` tracks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ab import PY, alternate, report, rvoskit_cmd  # noqa: E402

from rvoskit import labels as L  # noqa: E402
from rvoskit.format import DatasetWriter, rle  # noqa: E402
from rvoskit.format.trackstore import TrackStore  # noqa: E402

REF = Path(__file__).resolve().parent / "reference" / "pseudolabel_pycocotools.py"


def synth(rng, n_tracks, n_obj, T, H, W):
    """Objects: convex polygons drifting over time, absent on a few frames. Tracks: noisy copies of
    objects (shifted, dilated or partial), random blobs and a few empty frames."""
    xx = np.arange(W)[None, :]
    objects = np.zeros((n_obj, T, H, W), np.uint8)
    present = rng.random((n_obj, T)) > 0.1
    for o in range(n_obj):
        pts = np.stack([rng.uniform(0.1, 0.9, 6) * W, rng.uniform(0.1, 0.9, 6) * H], 1)
        v = rng.normal(0, 1.5, 2)
        for t in range(T):
            cv2.fillPoly(objects[o, t], [cv2.convexHull((pts + v * t).astype(np.int32))], 1)
    kernel = np.ones((5, 5), np.uint8)

    def tracks():  # one (T, H, W) track at a time: 64 tracks x 200 frames at 720p would be 12 GB at once
        for i in range(n_tracks):
            kind = i % 4
            o = i % n_obj
            dx, dy = rng.integers(-8, 9, 2)
            track = np.zeros((T, H, W), np.uint8)
            for t in range(T):
                if kind == 0:
                    track[t] = np.roll(objects[o, t], (dy, dx), (0, 1))
                elif kind == 1:
                    track[t] = cv2.dilate(objects[o, t], kernel)
                elif kind == 2:
                    track[t] = objects[o, t] & (xx < W * rng.uniform(0.3, 1.0))
                else:
                    c = rng.uniform(0, 1, 2) * (W, H)
                    cv2.circle(track[t], (int(c[0]), int(c[1])), int(rng.uniform(5, H / 4)), 1, -1)
            track[rng.random(T) < 0.05] = 0
            yield track

    return objects, present, tracks()


def write(tmp: Path, objects, present, tracks, H, W):
    n_obj, T = objects.shape[:2]
    frames = [f"{t:05d}" for t in range(T)]
    exprs = [[o] for o in range(n_obj)] + [[0, 1]]
    with DatasetWriter(tmp / "ds", dataset="mevis", split="train", frame_root=tmp / "frames") as w:
        w.add_video({"video_id": "v", "split": "train", "num_frames": T, "height": H, "width": W, "frames": frames,
                     "frame_files": [f"v/{f}.jpg" for f in frames]})
        w.add_objects([{"video_id": "v", "obj_id": o, "anno_id": None, "category": None} for o in range(n_obj)])
        w.add_expressions([{"video_id": "v", "exp_id": str(i), "exp_index": i, "text": "x", "obj_ids": ol,
                            "anno_ids": None, "annotator": None, "kind": None} for i, ol in enumerate(exprs)])
        rows = []
        for o in range(n_obj):
            ts = np.flatnonzero(present[o])
            counts = rle.encode_batch(objects[o, ts])
            area, bbox = rle.area_bbox(counts, H, W)
            rows += [{"video_id": "v", "obj_id": o, "frame_idx": int(t), "height": H, "width": W, "rle": c,
                      "area": int(a), "bbox": b.tolist()} for t, c, a, b in zip(ts, counts, area, bbox)]
        w.add_masks("v", rows)
    store = TrackStore(tmp / "tracks", create=True, meta={})
    rows = []
    for i, track in enumerate(tracks):
        counts = rle.encode_batch(track)
        area, bbox = rle.area_bbox(counts, H, W)
        rows += [{"video_id": "v", "track_id": i, "frame_idx": t, "prompt_kind": "grid", "prompt_frame_idx": 0,
                  "expression_id": None, "obj_id": None, "stability_score": 1.0, "predicted_iou": 1.0, "height": H,
                  "width": W, "rle": c, "area": int(a), "bbox": b.tolist()}
                 for t, (c, a, b) in enumerate(zip(counts, area, bbox))]
    n_tracks = i + 1
    store.write_video("v", rows, np.zeros((n_tracks, T, 256), np.float32), np.arange(n_tracks, dtype=np.int32))
    return exprs, tmp / "ds", tmp / "tracks"


def naive(ds_path, store_path, exprs, n_tracks, resolution):
    """Decode every pair on every frame (from the stored RLE), resize each copy, IoU in numpy."""
    from rvoskit.format import open_dataset

    ds = open_dataset(ds_path)
    v = ds.video("v")
    T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
    size = L.target_size(H, W, L.parse_resolution(resolution))
    masks = ds.masks("v")
    gt = {(int(r.obj_id), int(r.frame_idx)): r.rle for r in masks.itertuples()}
    tr = TrackStore(store_path).tracks("v")
    trk = {(int(r.track_id), int(r.frame_idx)): r.rle for r in tr.itertuples()}

    def decode(c):
        return rle.decode(c, H, W) if c is not None else np.zeros((H, W), np.uint8)

    def prep(m):
        if size != (H, W):
            m = cv2.resize(m.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR) > 0.5
        return m.astype(bool)

    def load(c):
        return prep(decode(c))

    def iou(a, b):
        u = np.count_nonzero(a | b)
        return 1.0 if u == 0 else np.count_nonzero(a & b) / u

    out = {}
    for e, ol in enumerate(exprs):
        for i in range(n_tracks):
            per = []
            for o in ol:
                per.append(np.mean([iou(load(trk[(i, t)]), load(gt.get((o, t)))) for t in range(T)]))
            un = []
            for t in range(T):
                g = np.zeros((H, W), np.uint8)
                for o in ol:
                    g |= decode(gt.get((o, t)))
                un.append(iou(load(trk[(i, t)]), prep(g)))  # the expression's mask, then resized
            out[(f"v/{e}", i)] = (max(per), float(np.mean(un)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=32)
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--size", default="480x854", help="video HxW")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--resolution", action="append", choices=("native", "540x960"),
                    help="compare at this size only (repeatable; default: native and 540x960)")
    ap.add_argument("--naive", action="store_true", help="also time the naive decode-every-pair loop (in process, scaled)")
    ap.add_argument("--naive-tracks", type=int, default=8, help="tracks the naive loop runs on (time scaled to all)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    H, W = (int(x) for x in args.size.split("x"))
    rng = np.random.default_rng(0)
    objects, present, tracks = synth(rng, args.tracks, args.objects, args.frames, H, W)
    print(f"synthetic video: {args.tracks} tracks x {args.objects} objects x {args.frames} frames at {H}x{W}; "
          f"{args.objects + 1} expressions (one with 2 objects)")
    with tempfile.TemporaryDirectory() as d:
        exprs, ds_path, store_path = write(Path(d), objects, present, tracks, H, W)
        for res in args.resolution or ("native", "540x960"):
            out, ref_out = Path(d) / f"labels_{res}", Path(d) / f"ref_{res}.parquet"
            print(f"[{res}] whole commands, alternating", flush=True)
            ref = [PY, str(REF), str(ds_path), str(store_path), res, str(ref_out)]
            ours = rvoskit_cmd("pseudolabel", str(ds_path), "--tracks", f"t={store_path}", "--resolution", res, "-o", str(out), "--overwrite", "-q")
            p = alternate(f"pseudolabel {res}", ref, ours, args.pairs)
            a = pd.read_parquet(ref_out)
            b = pd.read_parquet(out / "labels.parquet")
            m = a.merge(b, on=["expression_id", "track_id"], suffixes=("_ref", ""))
            same = len(m) == len(a) == len(b) and (m.miou_max_ref == m.miou_max).all() and (m.miou_union_ref == m.miou_union).all() and (m.label_ref == m.label).all()
            print(f"    identical mIoU and labels to the reference: {same}")
            if not same:
                raise SystemExit("values differ")
            report("bench_pseudolabel", f"pseudolabel {res}, {args.tracks} tracks x {args.frames} frames {H}x{W}", p,
                   reference="pycocotools script (mask.iou per frame)", goal=">= 2x", met=p.summary("wall")[0] >= 2)
            if args.naive:
                k = min(args.naive_tracks, args.tracks)
                t0 = time.perf_counter()
                naive(ds_path, store_path, exprs, k, res)
                print(f"    naive decode-every-pair loop: {(time.perf_counter() - t0) * args.tracks / k:.2f} s (on {k} tracks, scaled)")


if __name__ == "__main__":
    main()
