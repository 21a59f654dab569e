"""Benchmark: ``rvoskit moments eval`` vs Moment-DETR's ``standalone_eval/eval.py``, at MeViS size.

Run:  python benchmarks/bench_moments.py [--queries 15000] [--expressions 30000] [--pairs 3] [--workers 8]

Part 1 (reference comparison; 15,000 queries by default so that three pairs stay within a few
minutes: the reference takes about a minute per 10,000 queries on a busy 2-core machine; ``--queries
30000`` is MeViS size). Data: ``--queries`` ground-truth queries (QVHighlights JSONL: 1-3
windows of 1-80 s in videos of 20-150 s, so every length bucket has queries, as the reference needs)
and predictions with 10 scored windows each (near a ground-truth window or random; repeated scores).
Reference (A) = ``load_jsonl`` of both files + ``eval_submission`` from the copy in
``tests/reference/moment_detr`` as its script runs it (``multiprocessing.Pool(--workers)``, 8 in the
script). rvoskit (B) = ``load_jsonl`` + ``parse_*`` + ``eval_moment_retrieval``. Runs alternate
A B A B (``--pairs``); the MR numbers are checked identical on every pair; the median ratio A/B is
printed with its min-max.

Part 2 (dataset ground truth, MeViS size). A MeViS-M dataset with ``--expressions`` (MeViS-like:
15 expressions per video, 40-200 frames at 6 fps, 1-3 spans per expression) and matching
predictions: ``rvoskit moments eval DATASET PRED`` end to end (CLI, ``--out``), timed once. The
reference cannot score this one directly (its empty ``long`` bucket crashes it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REF = REPO / "tests" / "reference" / "moment_detr"


def make_queries(n: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    gt, pred = [], []
    for q in range(n):
        dur = float(rng.choice([20, 60, 150]))
        G = int(rng.choice([1, 1, 2, 3]))
        lens = rng.choice([rng.uniform(1, 10), rng.uniform(10, 30), rng.uniform(30, 80)], G)
        starts = rng.uniform(0, np.maximum(dur - lens, 0.1))
        w = np.round(np.stack([starts, np.minimum(starts + lens, dur)], 1), 2)
        gt.append({"qid": q, "vid": f"v{q // 15}", "duration": dur, "relevant_windows": w.tolist()})
        p = []
        for _ in range(10):
            if rng.random() < 0.5:
                s, e = w[rng.integers(G)] + rng.normal(0, 2, 2)
            else:
                s = rng.uniform(0, dur)
                e = s + rng.uniform(1, 40)
            s = float(round(max(s, 0), 2))
            e = float(round(max(e, s + 0.5), 2))
            p.append([s, e, float(rng.choice([0.5, round(rng.random(), 4)]))])
        pred.append({"qid": q, "vid": gt[-1]["vid"], "pred_relevant_windows": p})
    order = rng.permutation(n)
    return gt, [pred[i] for i in order]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _cpu() -> float:
    """User + sys seconds of this process and its finished children (the reference's pool)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def run_reference(gt_path: Path, pred_path: Path, workers: int) -> tuple[float, dict]:
    sys.path.insert(0, str(REF))
    try:
        from standalone_eval import eval as ref_eval
        from standalone_eval.utils import load_jsonl
    finally:
        sys.path.remove(str(REF))
    t0 = time.perf_counter()
    sub, gt = load_jsonl(pred_path), load_jsonl(gt_path)
    orig = ref_eval.compute_mr_ap
    ref_eval.compute_mr_ap = lambda s, g, num_workers=8, chunksize=50, **kw: orig(s, g, num_workers=workers, chunksize=chunksize, **kw)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            res = ref_eval.eval_submission(sub, gt, verbose=False)
    finally:
        ref_eval.compute_mr_ap = orig
    return time.perf_counter() - t0, res


def run_rvoskit(gt_path: Path, pred_path: Path) -> tuple[float, dict]:
    from rvoskit.metrics.moments import eval_moment_retrieval, load_jsonl, parse_ground_truth, parse_predictions

    t0 = time.perf_counter()
    res = eval_moment_retrieval(parse_ground_truth(load_jsonl(gt_path), file=gt_path), parse_predictions(load_jsonl(pred_path), file=pred_path))
    return time.perf_counter() - t0, res


def mr(res: dict) -> dict:
    return {k: res[k] for k in ("full", "short", "middle", "long")} | {"brief": {k: v for k, v in res["brief"].items() if k.startswith("MR-")}}


def build_dataset(tmp: Path, n_expr: int, seed: int = 1) -> tuple[Path, Path]:
    from rvoskit.format import DatasetWriter

    rng = np.random.default_rng(seed)
    per_video = 15
    preds = []
    k = 0
    with DatasetWriter(tmp / "mevism", dataset="mevis-m", split="valid_u", frame_root=".", options={"benchmark": True}) as w:
        moments = []
        for v in range((n_expr + per_video - 1) // per_video):
            vid = f"vid{v:05d}"
            T = int(rng.integers(40, 201))
            frames = [f"{t:05d}" for t in range(T)]
            w.add_video({"video_id": vid, "split": "valid_u", "num_frames": T, "height": 720, "width": 1280, "frames": frames,
                         "frame_files": [f"{vid}/{f}.jpg" for f in frames]})
            w.add_objects([{"video_id": vid, "obj_id": 0, "anno_id": str(v), "category": None}])
            n = min(per_video, n_expr - k)
            w.add_expressions([{"video_id": vid, "exp_id": str(e), "exp_index": e, "text": "the thing that moves",
                                "obj_ids": [0], "anno_ids": [str(v)], "annotator": None, "kind": None} for e in range(n)])
            for e in range(n):
                cuts = np.sort(rng.choice(T, 2 * int(rng.integers(1, 4)), replace=False))
                for a, b in cuts.reshape(-1, 2):
                    moments.append({"expression_id": f"{vid}/{e}", "video_id": vid, "obj_id": 0, "start_idx": int(a), "end_idx": int(b),
                                    "start_frame": frames[a], "end_frame": frames[b]})
                p = []
                for _ in range(10):
                    s = float(rng.uniform(0, T / 6))
                    p.append([round(s, 2), round(s + float(rng.uniform(0.5, 10)), 2), float(rng.random())])
                preds.append({"qid": k, "vid": vid, "pred_relevant_windows": p})
                k += 1
            w.add_masks(vid, [])
        w.add_moments(moments)
    return tmp / "mevism", write_jsonl(tmp / "mevism_pred.jsonl", preds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=15000, help="part 1 (reference comparison)")
    ap.add_argument("--expressions", type=int, default=30000, help="part 2 (MeViS-M dataset ground truth)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8, help="the reference's multiprocessing.Pool size (its script uses 8)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        gt, pred = make_queries(args.queries)
        gt_path, pred_path = write_jsonl(tmp / "gt.jsonl", gt), write_jsonl(tmp / "pred.jsonl", pred)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _ab import Pairs, Run, report

        pairs = Pairs("moments eval")
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # noqa: E731 (process-wide)
        ta, tb = [], []
        for i in range(args.pairs):
            c0 = _cpu()
            a, ra = run_reference(gt_path, pred_path, args.workers)
            c1 = _cpu()
            b, rb = run_rvoskit(gt_path, pred_path)
            c2 = _cpu()
            pairs.ref.append(Run(a, c1 - c0, peak()))
            pairs.ours.append(Run(b, c2 - c1, peak()))
            same = mr(ra) == mr(rb)
            print(f"pair {i + 1}: reference {a:.2f} s, rvoskit {b:.2f} s, ratio {a / b:.1f}x, identical {same}")
            if not same:
                raise SystemExit("numbers differ: " + json.dumps({"reference": mr(ra)["brief"], "rvoskit": mr(rb)["brief"]}))
            ta.append(a)
            tb.append(b)
        ratios = [a / b for a, b in zip(ta, tb)]
        print(f"part 1: {args.queries:,} queries x 10 windows, {args.pairs} pairs: reference median {statistics.median(ta):.2f} s, "
              f"rvoskit median {statistics.median(tb):.2f} s; ratio median {statistics.median(ratios):.1f}x "
              f"(min {min(ratios):.1f}, max {max(ratios):.1f}); MR numbers identical on every pair")
        report("bench_moments", f"moments eval, {args.queries:,} queries x 10 windows (JSONL), in process, MR numbers identical",
               pairs, reference=f"Moment-DETR standalone_eval eval_submission, Pool({args.workers})")
        ds, dpred = build_dataset(tmp, args.expressions)
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "rvoskit.cli", "moments", "eval", str(ds), str(dpred), "--fps", "6", "-q",
                            "--out", str(tmp / "ev")], capture_output=True, text=True)
        t = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(r.stdout + r.stderr)
        s = json.loads((tmp / "ev" / "summary.json").read_text())
        print(f"part 2: rvoskit moments eval on a MeViS-M dataset of {args.expressions:,} expressions (CLI, process start "
              f"included): {t:.2f} s (evaluation {s['seconds']:.2f} s); MR-full-mAP {s['brief']['MR-full-mAP']}")
        report("bench_moments", f"moments eval DATASET, {args.expressions:,} MeViS-M expressions, CLI", goal="seconds",
               value=f"{t:.2f} s whole command, {s['seconds']:.2f} s evaluation", met=t < 60)


if __name__ == "__main__":
    main()
