"""Benchmark: ``rvoskit eval --protocol a2d`` vs MTTR's evaluation path, at A2D-Sentences test size.

Run:  python benchmarks/bench_other_metrics.py [--samples 3800] [--candidates 20] [--size 320x576] [--pairs 3]

Data: a common-format dataset with ``--samples`` (expression, annotated frame) samples (5 annotated
frames of 20 per video, one expression each, as A2D's test split has about 3,800), ground-truth
blobs of every COCO size class at ``--size``, and an MTTR-style results JSON with ``--candidates``
scored candidates per sample (the ground truth shifted or grown, other blobs, empty masks; random
scores with ties).

Reference (A) = what MTTR's ``trainer.py::evaluate_a2d_sentences`` does after the model, from the
files: ``COCO(gt.json)``, ``json.load`` + ``loadRes``, ``COCOeval(iouType='segm')`` with
``useCats = 0`` (evaluate, accumulate, summarize), then ``metrics.py``
``calculate_precision_at_k_and_iou_metrics`` (the copy in ``tests/reference/mttr``; torch). rvoskit
(B) = ``evaluate_referring(dataset, results.json, "a2d")``: the dataset's masks and the same JSON.
Runs alternate A B A B (``--pairs``) in this process (both with warm imports), the numbers are
checked identical on every pair, and the median ratio A/B is printed with its min-max (and reported
through ``benchmarks/_ab.py`` for ``run_all.py``). Goal: 3x, identical numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as maskUtils

REPO = Path(__file__).resolve().parent.parent


def _blob_pool(rng, H, W, n):
    """n masks: ellipses of random size (small, medium and large COCO areas) and position."""
    import cv2

    out = []
    for k in range(n):
        m = np.zeros((H, W), np.uint8)
        r = [4, 12, 40, 90][k % 4]
        ax = (int(rng.integers(r // 2 + 1, r + 2)), int(rng.integers(r // 2 + 1, r + 2)))
        c = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        cv2.ellipse(m, c, ax, float(rng.integers(0, 180)), 0, 360, 1, -1)
        out.append(maskUtils.encode(np.asfortranarray(m))["counts"])
    return out


def build(tmp: Path, n_samples: int, n_cand: int, H: int, W: int, seed: int = 0) -> tuple[Path, Path, Path]:
    """Write the dataset, the COCO ground truth (rvoskit export) and the results JSON."""
    from rvoskit.datasets.common import mask_rows
    from rvoskit.format import DatasetWriter
    from rvoskit.metrics.referring import export_coco_gt

    rng = np.random.default_rng(seed)
    pool = _blob_pool(rng, H, W, 600)
    shapes = [maskUtils.decode({"size": [H, W], "counts": c}) for c in pool[:200]]
    per_video, T = 5, 20
    n_videos = (n_samples + per_video - 1) // per_video
    ds_path = tmp / "a2d-bench"
    gt_of = {}
    with DatasetWriter(ds_path, dataset="a2d", split="test", frame_root=".", options={"benchmark": True}) as w:
        k = 0
        for v in range(n_videos):
            vid = f"vid{v:05d}"
            frames = sorted(rng.choice(T, per_video, replace=False).tolist())
            n = min(per_video, n_samples - k)
            frames = frames[:n]
            w.add_video({"video_id": vid, "split": "test", "num_frames": T, "height": H, "width": W,
                         "frames": [f"{t + 1:05d}" for t in range(T)], "frame_files": [f"frames/{vid}/{t + 1:05d}.png" for t in range(T)],
                         "annotated_frames": frames})
            w.add_objects([{"video_id": vid, "obj_id": 1, "anno_id": None, "category": None}])
            w.add_expressions([{"video_id": vid, "exp_id": str(v), "exp_index": v, "text": "the thing", "obj_ids": [1],
                                "anno_ids": None, "annotator": None, "kind": None}])
            counts = [pool[int(rng.integers(0, len(pool)))] for _ in frames]
            for t, c in zip(frames, counts):
                gt_of[f"v_{vid}_f_{t + 1}_i_1"] = c
            w.add_masks(vid, mask_rows(vid, [1] * len(frames), frames, counts, H, W))
            k += n
    gt_path = export_coco_gt(ds_path, "a2d", tmp / "gt.json")
    preds = []
    for iid, g in gt_of.items():
        gm = maskUtils.decode({"size": [H, W], "counts": g})
        variants = [g]
        for dx in (3, -5, 9):
            variants.append(maskUtils.encode(np.asfortranarray(np.roll(gm, dx, axis=1)))["counts"])
        variants.append(maskUtils.encode(np.asfortranarray(np.zeros((H, W), np.uint8)))["counts"])
        for j in range(n_cand):
            if j < len(variants):
                c = variants[j]
            else:  # a distinct mask per candidate (no RLE string repeats, as a model's query slots)
                m = np.roll(shapes[int(rng.integers(0, len(shapes)))], (int(rng.integers(0, H)), int(rng.integers(0, W))), axis=(0, 1))
                c = maskUtils.encode(np.asfortranarray(m))["counts"]
            s = float(rng.choice([0.5, 0.9])) if j % 7 == 0 else float(rng.random())
            preds.append({"image_id": iid, "category_id": 1, "segmentation": {"size": [H, W], "counts": c.decode("ascii")}, "score": s})
    pred_path = tmp / "results.json"
    pred_path.write_text(json.dumps(preds))
    return ds_path, gt_path, pred_path


def reference(gt_path: Path, pred_path: Path) -> dict:
    """MTTR's path from the files (stdout of pycocotools and tqdm silenced)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    spec = importlib.util.spec_from_file_location("mttr_metrics", REPO / "tests" / "reference" / "mttr" / "metrics.py")
    metrics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metrics)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_pred = coco_gt.loadRes(json.loads(pred_path.read_text()))
        ev = COCOeval(coco_gt, coco_pred, iouType="segm")
        ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        pk, oiou, miou = metrics.calculate_precision_at_k_and_iou_metrics(coco_gt, coco_pred)
    out = {f"P@{k}": float(v) for k, v in zip([0.5, 0.6, 0.7, 0.8, 0.9], pk)}
    out.update({"overall_iou": float(oiou), "mean_iou": float(miou)})
    out.update(dict(zip(["mAP", "AP50", "AP75", "AP_S", "AP_M", "AP_L"], [float(a) for a in ev.stats[:6]])))
    return out


def ours(ds_path: Path, pred_path: Path) -> dict:
    from rvoskit.metrics.referring import evaluate_referring

    return evaluate_referring(ds_path, pred_path, "a2d").summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=3800)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--size", default="320x576", help="HxW of the frames")
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    H, W = (int(x) for x in args.size.split("x"))
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        ds_path, gt_path, pred_path = build(tmp, args.samples, args.candidates, H, W)
        print(f"built {args.samples} samples x {args.candidates} candidates at {H}x{W} in {time.perf_counter() - t0:.1f} s "
              f"(results JSON {pred_path.stat().st_size / 1e6:.1f} MB)")
        sys.path.insert(0, str(REPO / "benchmarks"))
        from _ab import Pairs, Run, report

        pairs = Pairs("eval --protocol a2d")
        results = {}

        def timed(fn, *a):
            t, c = time.perf_counter(), time.process_time()
            out = fn(*a)
            return Run(time.perf_counter() - t, time.process_time() - c, 0.0), out

        for p in range(args.pairs):
            ra, a = timed(reference, gt_path, pred_path)
            rb, b = timed(ours, ds_path, pred_path)
            pairs.ref.append(ra)
            pairs.ours.append(rb)
            same = a == b
            print(f"pair {p + 1}: reference {ra.wall:.2f} s ({ra.cpu:.2f} s cpu), rvoskit {rb.wall:.2f} s ({rb.cpu:.2f} s cpu), "
                  f"ratio {ra.wall / rb.wall:.2f}, identical numbers: {same}", flush=True)
            if not same:
                print("  reference:", a, "\n  rvoskit:  ", b)
                sys.exit(1)
            results = b
        print(json.dumps(results, indent=None))
        ratios = pairs.ratios()
        print(f"eval --protocol a2d, {args.samples} samples x {args.candidates} candidates, {H}x{W}: "
              f"rvoskit is {statistics.median(ratios):.2f}x faster than MTTR's path (median of {args.pairs} pairs; "
              f"min {min(ratios):.2f}, max {max(ratios):.2f}); reference median {statistics.median(r.wall for r in pairs.ref):.2f} s, "
              f"rvoskit median {statistics.median(r.wall for r in pairs.ours):.2f} s; goal 3x")
        report("bench_other_metrics", f"eval --protocol a2d, {args.samples} samples x {args.candidates} candidates at {H}x{W}", pairs,
               reference="MTTR trainer.py path: COCO + loadRes + COCOeval(segm, useCats=0) + metrics.py", goal=">= 3x, identical numbers",
               met=statistics.median(ratios) >= 3, note="in-process, identical numbers checked on every pair")


if __name__ == "__main__":
    main()
