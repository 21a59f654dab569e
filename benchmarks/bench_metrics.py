"""Benchmark: rvoskit per-frame J&F and whole-split eval vs the official DAVIS/MeViS code.

Run:  python benchmarks/bench_metrics.py [--frames N] [--videos V]

1. Per-frame J&F on 1280x720 masks with real shapes (DAVIS-2017 OSVOS/RVOS result masks from
   tests/data, upsampled; ground truth = an object on frame t, prediction = the same object a
   few frames later, or an RVOS proposal), one core each (cv2.setNumThreads(1)):
   official = ``db_eval_iou`` + ``f_measure`` of davis2017-evaluation ``metrics.py`` (the same
   operations, with vos-benchmark's verbatim ``_seg2bmap``), rvoskit = ``frame_jf``. Every
   number is checked to be identical before timing is reported.
2. Whole split (MeViS protocol, PNG predictions in the submission layout): the official
   per-frame loop (``tools/eval_mevis.py``'s body in one process) vs ``rvoskit.metrics.evaluation``
   with 1 and 2 workers; the per-expression numbers are checked identical.
3. With ``--scale-videos V`` (default off): a MeViS valid_u-sized split (V videos x
   ``--scale-frames`` frames at 1280x720, 5 moving objects, 16 expressions per video over unions
   of 0..5 objects, a predictions table), scored with ``--workers``; prints time and peak memory
   (``--scale-score`` limits how many videos are scored; the whole table is still read).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
DATA = REPO / "tests" / "data" / "davis17_eval_sample_results"


# -- the official per-frame functions (davis2017-evaluation metrics.py, same operations) ----------


def official_db_eval_iou(annotation, segmentation):
    annotation, segmentation = annotation.astype(bool), segmentation.astype(bool)
    void = np.zeros_like(segmentation)
    inters = np.sum((segmentation & annotation) & np.logical_not(void), axis=(-2, -1))
    union = np.sum((segmentation | annotation) & np.logical_not(void), axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        j = inters / union
    return 1 if np.isclose(union, 0) else j


def official_f_measure(foreground_mask, gt_mask, bound_th=0.008):
    from skimage.morphology import disk
    from vos_benchmark.utils import _seg2bmap

    void = np.zeros_like(foreground_mask).astype(bool)
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(foreground_mask.shape))
    fg_boundary = _seg2bmap(foreground_mask * np.logical_not(void))
    gt_boundary = _seg2bmap(gt_mask * np.logical_not(void))
    fg_dil = cv2.dilate(fg_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_dil = cv2.dilate(gt_boundary.astype(np.uint8), disk(bound_pix).astype(np.uint8))
    gt_match = gt_boundary * fg_dil
    fg_match = fg_boundary * gt_dil
    n_fg, n_gt = np.sum(fg_boundary), np.sum(gt_boundary)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision, recall = np.sum(fg_match) / float(n_fg), np.sum(gt_match) / float(n_gt)
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def labels(task: str, method: str, seq: str) -> np.ndarray:
    return np.stack([np.array(Image.open(f)) for f in sorted((DATA / task / method / seq).glob("*.png"))])


def up720(m: np.ndarray) -> np.ndarray:
    return cv2.resize(m.astype(np.uint8), (1280, 720), interpolation=cv2.INTER_NEAREST)


def frame_pairs(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (prediction, ground truth) 720p pairs with real shapes."""
    rng = np.random.default_rng(0)
    seqs = {s: labels("semi-supervised", "osvos", s) for s in ("judo", "blackswan", "bike-packing")}
    rvos = {s: labels("unsupervised", "rvos", s) for s in ("judo", "blackswan")}
    pairs = []
    while len(pairs) < n:
        s = str(rng.choice(list(seqs)))
        lab = seqs[s]
        t = int(rng.integers(0, len(lab) - 4))
        k = int(rng.integers(1, int(lab[t].max()) + 1))
        gt = lab[t] == k
        if s in rvos and rng.random() < 0.3:  # an unsupervised proposal on the same frame
            q = np.bincount(rvos[s][t][gt], minlength=21)[1:].argmax() + 1
            pred = rvos[s][t] == q
        else:  # the object a few frames later (motion error)
            pred = lab[t + int(rng.integers(1, 4))] == k
        pairs.append((up720(pred), up720(gt)))
    return pairs


def bench_frames(n: int) -> None:
    from rvoskit.metrics import frame_jf

    pairs = frame_pairs(n)
    cover = np.mean([g.mean() for _, g in pairs]) * 100
    print(f"[1] per-frame J&F, {len(pairs)} pairs of 1280x720 masks with real DAVIS shapes (mean GT cover {cover:.1f}%), 1 thread")
    ref = [(official_db_eval_iou(g, p), official_f_measure(p, g)) for p, g in pairs]
    ours = [frame_jf(p, g) for p, g in pairs]
    same = all(float(a) == b and float(c) == d for (a, c), (b, d) in zip(ref, ours))
    print(f"    identical J and F on every frame: {same}")
    if not same:
        raise SystemExit("numbers differ")

    def timed(fn, reps=3):
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            for p, g in pairs:
                fn(p, g)
            best = min(best, time.perf_counter() - t0)
        return len(pairs) / best

    off = timed(lambda p, g: (official_db_eval_iou(g, p), official_f_measure(p, g)))
    fast = timed(frame_jf)
    print(f"    official metrics.py : {off:8.1f} frames/s/core")
    print(f"    rvoskit frame_jf    : {fast:8.1f} frames/s/core")
    print(f"    ratio               : {fast / off:8.1f}x")


def bench_split(videos: int, frames: int) -> None:
    import pycocotools.mask as cocomask
    from test_eval import build_dataset, prediction_rows, write_png_expr

    from rvoskit.format.predictions import write_predictions
    from rvoskit.metrics import evaluate

    tmp = Path(tempfile.mkdtemp(prefix="bench_metrics_"))
    try:
        srcs = [labels("semi-supervised", "osvos", s) for s in ("judo", "blackswan", "bike-packing")]
        vids, preds = {}, {}
        for i in range(videos):
            lab = srcs[i % 3][:frames]
            lab = np.stack([up720(x) for x in lab])
            vid = f"video{i:03d}"
            objs = sorted(int(o) for o in np.unique(lab) if o)
            exps = [(str(j), [o], None, None) for j, o in enumerate(objs)] + [(str(len(objs)), objs, None, None)]
            names = [f"{t:05d}" for t in range(len(lab))]
            vids[vid] = {"frames": names, "labels": lab, "expressions": exps}
            later = np.concatenate([lab[2:], lab[-2:]])
            for e, o, _, _ in exps:
                preds[(vid, e)] = np.isin(later, o).astype(np.uint8)
        ds = build_dataset(tmp / "ds", vids)
        png = write_png_expr(tmp / "png", preds, {v: d["frames"] for v, d in vids.items()})
        table = write_predictions(tmp / "table", prediction_rows(preds))
        n_exp, n_fr = len(preds), sum(p.shape[0] for p in preds.values())
        print(f"\n[2] whole split, MeViS protocol: {videos} videos, {n_exp} expressions, {n_fr} frames at 1280x720, PNG predictions")

        from rvoskit.format import open_dataset

        dso = open_dataset(ds)

        def official_loop():  # tools/eval_mevis.py, one process
            out = {}
            for eid, e in dso.expressions.iterrows():
                vid = e["video_id"]
                v = dso.video(vid)
                m = dso.masks(vid)
                T = int(v["num_frames"])
                h, w = cv2.imread(str(png / vid / e["exp_id"] / "00000.png"), cv2.IMREAD_GRAYSCALE).shape
                gt_masks = np.zeros((T, h, w), np.uint8)
                pred_masks = np.zeros((T, h, w), np.uint8)
                for t, f in enumerate(v["frames"]):
                    for o in e["obj_ids"]:
                        r = m[(m["obj_id"] == o) & (m["frame_idx"] == t)]
                        if len(r):
                            gt_masks[t] += cocomask.decode({"size": [h, w], "counts": r["rle"].iloc[0]})
                    pred_masks[t] = cv2.imread(str(png / vid / e["exp_id"] / f"{f}.png"), cv2.IMREAD_GRAYSCALE)
                j = np.mean([official_db_eval_iou(g, p) for g, p in zip(gt_masks, pred_masks)])
                f_ = np.mean([official_f_measure(p, g) for g, p in zip(gt_masks, pred_masks)])
                out[eid] = (float(j), float(f_))
            return out

        t0 = time.perf_counter()
        ref = official_loop()
        t_ref = time.perf_counter() - t0
        times = {}
        for workers in (1, 2):
            t0 = time.perf_counter()
            res = evaluate(ds, png, "mevis", workers=workers)
            times[workers] = time.perf_counter() - t0
            got = {r.expression_id: (r.J, r.F) for r in res.items.itertuples()}
            if got != ref:
                raise SystemExit(f"whole-split numbers differ (workers={workers})")
        t0 = time.perf_counter()
        res = evaluate(ds, table, "mevis")
        t_table = time.perf_counter() - t0
        if {r.expression_id: (r.J, r.F) for r in res.items.itertuples()} != ref:
            raise SystemExit("whole-split numbers differ (table)")
        print("    identical per-expression J and F: True")
        print(f"    official per-frame loop (1 process): {t_ref:7.2f} s")
        print(f"    rvoskit evaluate --workers 1       : {times[1]:7.2f} s   ({t_ref / times[1]:.1f}x)")
        print(f"    rvoskit evaluate --workers 2       : {times[2]:7.2f} s   ({t_ref / times[2]:.1f}x vs official, {times[1] / times[2]:.2f}x vs 1 worker)")
        print(f"    rvoskit evaluate, RLE table input  : {t_table:7.2f} s   ({t_ref / t_table:.1f}x; no PNG decoding)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_scale(videos: int, frames: int, score: int, workers: int) -> None:

    import pandas as pd

    from rvoskit.format import DatasetWriter
    from rvoskit.format import rle as rlemod
    from rvoskit.format.predictions import write_predictions

    H, W = 720, 1280
    rng = np.random.default_rng(0)
    ang = np.linspace(0, 2 * np.pi, 90, endpoint=False)

    def blob(cx, cy, ax, ay, ph, t):  # a wobbly ellipse: realistic RLE sizes, not noise
        r = 1 + 0.15 * np.sin(5 * ang + ph + 0.2 * t) + 0.07 * np.sin(11 * ang + 2 * ph)
        m = np.zeros((H, W), np.uint8)
        cv2.fillPoly(m, [np.stack([cx + ax * r * np.cos(ang), cy + ay * r * np.sin(ang)], 1).astype(np.int32)], 1)
        return m

    objs = {}
    for k in range(1, 6):
        cx, cy, ax, ay, ph, vx, vy = (rng.uniform(200, 1080), rng.uniform(150, 570), rng.uniform(40, 200), rng.uniform(60, 250), rng.uniform(0, 6), rng.uniform(-4, 4), rng.uniform(-2, 2))
        objs[k] = [blob(cx + vx * t, cy + vy * t, ax, ay, ph, t) for t in range(frames)]
    sets = [[1], [2], [3], [4], [5], [1, 2], [2, 3], [3, 4], [4, 5], [1, 5], [1, 2, 3], [2, 4, 5], [1, 2, 3, 4, 5], [1, 3], [2, 5], []]
    gt = {k: [(rlemod.encode(m), int(m.sum()), rlemod.area_bbox([rlemod.encode(m)], H, W)[1][0].tolist()) for m in ms] for k, ms in objs.items()}
    pred = []  # the union two frames later, shifted 3 px; a false positive on the no-target expression
    for o in sets:
        fr = []
        for t in range(frames):
            u = np.zeros((H, W), np.uint8)
            for k in o:
                u |= objs[k][min(t + 2, frames - 1)]
            u = np.roll(u, 3, axis=1)
            if not o and t % 7 == 0:
                u[100:140, 100:180] = 1
            fr.append((rlemod.encode(u), int(u.sum())))
        pred.append(fr)
    tmp = Path(tempfile.mkdtemp(prefix="bench_metrics_scale_"))
    try:
        names = [f"{t:05d}" for t in range(frames)]
        with DatasetWriter(tmp / "ds", dataset="mevis", split="valid_u", frame_root=tmp / "frames") as w:
            for i in range(videos):
                vid = f"v{i:03d}"
                w.add_video({"video_id": vid, "split": "valid_u", "num_frames": frames, "height": H, "width": W, "frames": names, "frame_files": [f"{vid}/{f}.jpg" for f in names]})
                w.add_objects([{"video_id": vid, "obj_id": k, "anno_id": None, "category": None} for k in objs])
                w.add_expressions([{"video_id": vid, "exp_id": str(j), "exp_index": j, "text": f"e{j}", "obj_ids": o, "anno_ids": None, "annotator": None, "kind": None} for j, o in enumerate(sets)])
                w.add_masks(vid, [{"video_id": vid, "obj_id": k, "frame_idx": t, "height": H, "width": W, "rle": c, "area": a, "bbox": b} for k in objs for t, (c, a, b) in enumerate(gt[k]) if a])
        rows = pd.DataFrame(
            [
                {"expression_id": f"v{i:03d}/{j}", "video_id": f"v{i:03d}", "exp_id": str(j), "frame_idx": t, "height": H, "width": W, "rle": c, "area": a, "score": None}
                for i in range(videos)
                for j in range(len(sets))
                for t, (c, a) in enumerate(pred[j])
            ]
        )
        table = write_predictions(tmp / "pred", rows, dataset=tmp / "ds")
        del rows
        n_score = min(score or videos, videos)
        print(f"\n[3] MeViS valid_u-sized split: {videos} videos x {frames} frames at 1280x720, {videos * len(sets)} expressions, table of {videos * len(sets) * frames} RLEs; scoring {n_score} videos with {workers} workers")
        # each measurement in a fresh process; peak RSS = VmHWM (ru_maxrss survives exec on Linux)
        rss = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024"
        run = lambda code: json.loads(subprocess.run([sys.executable, "-c", "import json, resource, time\n" + code], capture_output=True, text=True, check=True).stdout)
        whole = run(
            "from rvoskit.format.store import read_table\n"
            f"base = {rss}\n"
            f"t = read_table({str(table / 'predictions.parquet')!r}, 'predictions', columns=['video_id', 'exp_id', 'frame_idx', 'rle', 'area']).to_pandas()\n"
            f"print(json.dumps({{'base': base, 'peak': {rss}}}))"
        )
        got = run(
            "from rvoskit.metrics import evaluate\n"
            f"base = {rss}\n"
            "t0 = time.perf_counter()\n"
            f"res = evaluate({str(tmp / 'ds')!r}, {str(table)!r}, 'mevis', workers={workers}, videos=[f'v{{i:03d}}' for i in range({n_score})])\n"
            "dt = time.perf_counter() - t0\n"
            f"print(json.dumps({{'base': base, 'peak': {rss}, 'child': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'dt': dt, 'jf': res.summary['J&F'], 'frames': len(res.frames)}}))"
        )
        print(f"    J&F {got['jf']:.6f}, {got['frames']} frames scored in {got['dt']:.1f} s ({got['frames'] / got['dt']:.0f} frames/s)")
        print(f"    rvoskit evaluate, peak RSS    : main +{got['peak'] - got['base']:.0f} MB over its imports ({got['base']:.0f} MB), largest worker {got['child']:.0f} MB (ru_maxrss, pages shared with main counted)")
        print(f"    whole table as pandas (before): +{whole['peak'] - whole['base']:.0f} MB over its imports ({(whole['peak'] - whole['base']) / max(got['peak'] - got['base'], 1):.1f}x)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="frame pairs for part 1")
    ap.add_argument("--videos", type=int, default=6, help="videos for part 2")
    ap.add_argument("--video-frames", type=int, default=30, help="frames per video for part 2")
    ap.add_argument("--scale-videos", type=int, default=0, help="part 3: videos of the valid_u-sized split (0 = skip)")
    ap.add_argument("--scale-frames", type=int, default=200, help="part 3: frames per video")
    ap.add_argument("--scale-score", type=int, default=0, help="part 3: videos to score (0 = all)")
    ap.add_argument("--workers", type=int, default=2, help="part 3: eval workers")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip (1,2)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    skip = set(args.skip.split(","))
    if "1" not in skip:
        bench_frames(args.frames)
    if "2" not in skip:
        bench_split(args.videos, args.video_frames)
    if args.scale_videos:
        bench_scale(args.scale_videos, args.scale_frames, args.scale_score, args.workers)


if __name__ == "__main__":
    main()
