"""``rvoskit pseudolabel`` against a straightforward pycocotools script, whole commands, alternating.

    python benchmarks/bench_pseudolabel.py [--videos 50 --tracks 64 --objects 4 --expressions 14 --frames 60
                                            --size 720x1280 --pairs 3] [--resolution native|540x960 ...]
                                           [--resized-videos 1 --resized-frames 20] [--distinct 10]

The data is a MeViS-like split, the size SOLA labels (docs/pseudolabel.md "Benchmark"): 50 videos
(MeViS valid_u's count) of 60 frames at 720x1280, 4 objects and 14 expressions per video, 2 in 5
of them of two or three objects (MeViS: 28,570 expressions and 8,171 objects in 2,006 videos, 1.58
objects per expression), and 64 candidate tracks per video (SOLA's ``--n_max_tracks 64`` grid tracks): close
copies of the objects, parts of them, other things and large background regions, moving over the
frames and lost on ~5 % of them; objects are absent on ~8 % of the frames. ``--distinct`` videos are
drawn and the split cycles through them under distinct video ids (drawing 720p masks is the slow
part of the set-up, and neither side caches anything across videos).

The reference is benchmarks/reference/pseudolabel_pycocotools.py (pandas + ``pycocotools.mask.iou``
per frame, each mask resized once when a resolution is set: decode, float32 bilinear, > 0.5,
encode); rvoskit is ``rvoskit pseudolabel`` (which also writes labels.json and the histogram). Native
resolution on the whole split, and 540x960 (SOLA's) on the first ``--resized-frames`` frames of its
first ``--resized-videos`` videos (0 = all): there the work is per mask (the reference spends ~11 ms
of CPU per 720p mask decoding, resizing and re-encoding it, rvoskit ~1.5 ms), so 20 frames of one
video (1,360 masks) carry the ratio, while the whole split would take ~40 min per reference run.
The mIoU and labels of both are checked identical (float equality).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pycocotools.mask as M

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ab import PY, alternate, report, rvoskit_cmd  # noqa: E402

from rvoskit.format import DatasetWriter, rle  # noqa: E402
from rvoskit.format.trackstore import TrackStore  # noqa: E402

REF = Path(__file__).resolve().parent / "reference" / "pseudolabel_pycocotools.py"


def _poly(rng, n=18):
    a = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.6, 1.0, n)
    return np.stack([np.cos(a) * r, np.sin(a) * r], 1)


def _counts(poly, H, W):
    """Compressed COCO RLE of a filled polygon (pixel x, y), rasterised only in its box; None if empty."""
    x0, y0 = np.floor(poly.min(0)).astype(int)
    x1, y1 = np.ceil(poly.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 <= x0 or y1 <= y0:
        return None
    h, w = y1 - y0 + 2, x1 - x0
    crop = np.zeros((w, h), np.uint8)  # transposed (C order = column-major), a zero row above and below
    cv2.fillPoly(crop, [np.round(poly[:, ::-1] - (y0 - 1, x0)).astype(np.int32)], 1)
    crop[:, 0] = 0
    crop[:, -1] = 0
    idx = np.flatnonzero(crop[:, 1:] != crop[:, :-1])
    if idx.size == 0:
        return None
    xs, ys = np.divmod(idx, h - 1)
    pos = (xs + x0) * H + ys + y0  # column-major: run starts and (exclusive) ends
    joined = np.flatnonzero(pos[1:-1:2] == pos[2::2])  # a run going on at the top of the next column
    if joined.size:
        pos = np.delete(pos, np.concatenate([2 * joined + 1, 2 * joined + 2]))
    counts = np.diff(pos, prepend=0, append=H * W)
    if counts[-1] == 0:  # ends with the last pixel: no empty background run after it
        counts = counts[:-1]
    return M.frPyObjects({"counts": counts.tolist(), "size": [H, W]}, H, W)["counts"]


class _Mover:
    """A polygon moving and breathing over the frames."""
    def __init__(self, rng, center, radius, T, speed=4.0):
        self.shape = _poly(rng)
        self.aspect = rng.uniform(0.6, 1.6)
        self.c = np.asarray(center, float)
        self.v = rng.normal(0, speed, 2)
        self.r = radius
        self.phase = rng.uniform(0, 6.3)

    def at(self, t, dx=0.0, dy=0.0, scale=1.0):
        r = self.r * scale * (1 + 0.1 * np.sin(self.phase + t / 7))
        return self.shape * (r * self.aspect, r) + self.c + self.v * t + (dx, dy)


def video(rng, n_tracks, n_obj, T, H, W):
    """GT objects {obj: [counts|None]*T} and tracks [[counts|None]*T] of one video."""
    objs = [_Mover(rng, rng.uniform((0.15 * W, 0.2 * H), (0.85 * W, 0.8 * H)), rng.uniform(0.06, 0.3) * H, T)
            for _ in range(n_obj)]
    present = rng.random((n_obj, T)) > 0.08
    gt = {o: [None] * T for o in range(n_obj)}
    label = np.zeros((H, W), np.uint8)
    for t in range(T):  # one label map per frame: objects occlude each other (object 0 in front), as annotated
        label[:] = 0
        for o in reversed(range(n_obj)):
            if present[o, t]:
                cv2.fillPoly(label, [np.round(objs[o].at(t)).astype(np.int32)], o + 1)
        for o, c in zip(range(n_obj), rle.encode_labels(label, list(range(1, n_obj + 1)))):
            if present[o, t] and (label == o + 1).any():
                gt[o][t] = c
    tracks = []
    for i in range(n_tracks):
        kind = i % 8
        o = int(rng.integers(n_obj))
        if kind in (0, 1):  # the object, slightly off
            dx, dy, s = *rng.normal(0, 0.05 * objs[o].r, 2), rng.uniform(0.9, 1.15)
            f = lambda t, o=o, dx=dx, dy=dy, s=s: objs[o].at(t, dx, dy, s)
        elif kind == 2:  # a part of the object
            m = _Mover(rng, (0, 0), objs[o].r * rng.uniform(0.2, 0.5), T, 0.5)
            off = rng.uniform(-0.5, 0.5, 2) * objs[o].r
            f = lambda t, o=o, m=m, off=off: m.at(t) + objs[o].c + objs[o].v * t + off
        elif kind in (3, 4, 5):  # other things
            m = _Mover(rng, rng.uniform((0, 0), (W, H)), rng.uniform(0.03, 0.25) * H, T)
            f = m.at
        else:  # background regions (floor, wall, sky): large, partly outside the frame
            m = _Mover(rng, rng.uniform((0, 0), (W, H)), rng.uniform(0.5, 1.0) * H, T, 1.0)
            f = m.at
        lost = rng.random(T) < 0.05
        tracks.append([None if lost[t] else _counts(f(t), H, W) for t in range(T)])
    return gt, tracks


def synth(rng, n_tracks, n_obj, T, H, W):
    """Dense masks, for benchmarks/bench_scaling.py (small videos). Objects: convex polygons drifting
    over time, absent on a few frames. Tracks: noisy copies of objects (shifted, dilated or
    partial), random blobs and a few empty frames."""
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


def expressions(rng, n_expr, n_obj):
    """Object lists: 3 of 5 of one object, 2 of 5 of two or three (1.6 objects per expression;
    MeViS: 1.58)."""
    out = []
    for i in range(n_expr):
        k = 1 if i % 5 in (1, 3, 4) or n_obj < 2 else int(rng.integers(2, min(3, n_obj) + 1))
        out.append(sorted(int(o) for o in rng.choice(n_obj, k, replace=False)))
    return out


def write(tmp: Path, n_videos, n_distinct, n_tracks, n_obj, n_expr, T, H, W, rng):
    """The dataset (``tmp/ds``) and the track store (``tmp/tracks``) of the split."""
    drawn = [video(rng, n_tracks, n_obj, T, H, W) for _ in range(min(n_distinct, n_videos))]
    frames = [f"{t:05d}" for t in range(T)]
    store = TrackStore(tmp / "tracks", create=True, meta={})
    ids = [f"v{i:04d}" for i in range(n_videos)]
    with DatasetWriter(tmp / "ds", dataset="mevis", split="valid_u", frame_root=tmp / "frames") as w:
        for i, vid in enumerate(ids):
            gt, tracks = drawn[i % len(drawn)]
            w.add_video({"video_id": vid, "split": "valid_u", "num_frames": T, "height": H, "width": W, "frames": frames,
                         "frame_files": [f"{vid}/{f}.jpg" for f in frames]})
            w.add_objects([{"video_id": vid, "obj_id": o, "anno_id": None, "category": None} for o in range(n_obj)])
            w.add_expressions([{"video_id": vid, "exp_id": str(k), "exp_index": k, "text": "x", "obj_ids": ol,
                                "anno_ids": None, "annotator": None, "kind": None}
                               for k, ol in enumerate(expressions(rng, n_expr, n_obj))])
            rows = []
            for o, masks in gt.items():
                ts = [t for t in range(T) if masks[t] is not None]
                area, bbox = rle.area_bbox([masks[t] for t in ts], H, W)
                rows += [{"video_id": vid, "obj_id": o, "frame_idx": t, "height": H, "width": W, "rle": masks[t],
                          "area": int(a), "bbox": b.tolist()} for t, a, b in zip(ts, area, bbox)]
            w.add_masks(vid, rows)
            rows = []
            for k, track in enumerate(tracks):
                counts = [c if c is not None else M.encode(np.zeros((H, W, 1), np.uint8, order="F"))[0]["counts"] for c in track]
                area, bbox = rle.area_bbox(counts, H, W)
                rows += [{"video_id": vid, "track_id": k, "frame_idx": t, "prompt_kind": "grid", "prompt_frame_idx": 0,
                          "expression_id": None, "obj_id": None, "stability_score": 1.0, "predicted_iou": 1.0, "height": H,
                          "width": W, "rle": c, "area": int(a), "bbox": b.tolist()}
                         for t, (c, a, b) in enumerate(zip(counts, area, bbox))]
            store.write_video(vid, rows, np.zeros((len(tracks), T, 256), np.float32), np.arange(len(tracks), dtype=np.int32))
    return tmp / "ds", tmp / "tracks", ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=50)
    ap.add_argument("--tracks", type=int, default=64, help="candidate tracks per video")
    ap.add_argument("--objects", type=int, default=4, help="objects per video")
    ap.add_argument("--expressions", type=int, default=14, help="expressions per video")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--size", default="720x1280", help="video HxW")
    ap.add_argument("--distinct", type=int, default=10, help="videos drawn (the split cycles through them)")
    ap.add_argument("--resized-videos", type=int, default=1, help="videos of the 540x960 case (0 = all)")
    ap.add_argument("--resized-frames", type=int, default=20, help="their first frames in the 540x960 case (0 = all)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--resolution", action="append", choices=("native", "540x960"),
                    help="compare at this size only (repeatable; default: native and 540x960)")
    ap.add_argument("--data", help="write the split into this folder and keep it (reused when it is there; for profiling)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    H, W = (int(x) for x in args.size.split("x"))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        data = Path(args.data) if args.data else Path(d)
        if args.data and (data / "tracks").is_dir():
            ds_path, store_path = data / "ds", data / "tracks"
            ids = sorted(pd.read_parquet(ds_path / "videos.parquet", columns=["video_id"])["video_id"])
        else:
            data.mkdir(parents=True, exist_ok=True)
            ds_path, store_path, ids = write(data, args.videos, args.distinct, args.tracks, args.objects, args.expressions,
                                             args.frames, H, W, rng)
        print(f"synthetic split: {args.videos} videos x {args.frames} frames at {H}x{W}, {args.tracks} tracks, "
              f"{args.objects} objects and {args.expressions} expressions per video ({args.distinct} drawn; "
              f"set up in {time.perf_counter() - t0:.0f} s)", flush=True)
        # the native kernels into numba's disk cache, as scripts/install.sh does (else the first run compiles them)
        subprocess.run([PY, "-c", "from rvoskit import _labels_kernels as K; K.warm()"], check=True)
        for res in args.resolution or ("native", "540x960"):
            n, T = args.videos, args.frames
            if res != "native":
                n = args.videos if args.resized_videos <= 0 else min(args.resized_videos, args.videos)
                T = args.frames if args.resized_frames <= 0 else min(args.resized_frames, args.frames)
            ds, store = ds_path, store_path
            if (n, T) != (args.videos, args.frames):  # the first n videos, their first T frames
                store, ds = Path(d) / f"tracks_{n}_{T}", Path(d) / f"ds_{n}_{T}"
                _subset_store(store_path, store, ids[:n], T)
                _subset_dataset(ds_path, ds, ids[:n], T)
            out, ref_out = Path(d) / f"labels_{res}", Path(d) / f"ref_{res}.parquet"
            size = f"{n} videos x {args.tracks} tracks x {T} frames {H}x{W}"
            print(f"[{res}] {size}: whole commands, alternating", flush=True)
            ref = [PY, str(REF), str(ds), str(store), res, str(ref_out)]
            ours = rvoskit_cmd("pseudolabel", str(ds), "--tracks", f"t={store}", "--resolution", res, "-o", str(out), "--overwrite", "-q")
            p = alternate(f"pseudolabel {res}", ref, ours, args.pairs)
            a = pd.read_parquet(ref_out)
            b = pd.read_parquet(out / "labels.parquet")
            m = a.merge(b, on=["expression_id", "track_id"], suffixes=("_ref", ""))
            same = (len(m) == len(a) == len(b) and np.array_equal(m.miou_max_ref, m.miou_max, equal_nan=True)
                    and (m.miou_union_ref == m.miou_union).all() and (m.label_ref == m.label).all())
            print(f"    identical mIoU and labels to the reference ({len(m)} rows): {same}")
            if not same:
                raise SystemExit("values differ")
            report("bench_pseudolabel", f"pseudolabel {res}, {size}", p,
                   reference="pycocotools script (mask.iou per frame)", goal=">= 2x", met=p.summary("wall")[0] >= 2)


def _subset_store(src: Path, dst: Path, ids, frames: int) -> None:
    """The track store limited to the videos ``ids`` and their first ``frames`` frames."""
    import json
    import shutil

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if Path(n).stem not in ids and Path(d) != src])
    for f in (dst / "tracks").glob("*.parquet"):
        t = pq.read_table(f)
        pq.write_table(t.filter(pc.less(t["frame_idx"], frames)), f, compression="zstd")
    for f in (dst / "done").glob("*.json"):
        marker = json.loads(f.read_text())
        marker["num_frames"] = min(int(marker["num_frames"]), frames)
        f.write_text(json.dumps(marker))


def _subset_dataset(src: Path, dst: Path, ids, frames: int) -> None:
    """The dataset limited to the videos ``ids`` and their first ``frames`` frames."""
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shutil.copytree(src, dst)
    keep_ids = pa.array(list(ids))
    for f in dst.glob("*.parquet"):
        t = pq.read_table(f)
        if "video_id" not in t.column_names:
            continue
        t = t.filter(pc.is_in(t["video_id"], value_set=keep_ids))
        if f.name == "masks.parquet":
            t = t.filter(pc.less(t["frame_idx"], frames))
        elif f.name == "videos.parquet":
            df = t.to_pandas()
            df["num_frames"] = df["num_frames"].clip(upper=frames)
            df["frames"] = [list(x)[:frames] for x in df["frames"]]
            df["frame_files"] = [list(x)[:frames] for x in df["frame_files"]]
            t = pa.Table.from_pandas(df, schema=t.schema, preserve_index=False)
        pq.write_table(t, f, compression="zstd")


if __name__ == "__main__":
    main()
