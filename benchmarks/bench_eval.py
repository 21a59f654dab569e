"""``rvoskit eval`` against vos-benchmark (the fastest public J&F evaluator), whole commands, one worker.

    python benchmarks/bench_eval.py [--pairs 3 --sizes 480p,720p --protocols davis,mevis --videos N --frames N]

Data: a split of ``--videos`` videos made from the three real DAVIS sequences of tests/data
(OSVOS result masks used as ground truth: judo, blackswan, bike-packing, 34 + 50 + 69 frames,
1.67 objects per frame), taken in turn as they are, mirrored left-right, upside down and both;
at 854x480, and upsampled (nearest) to 1280x720. Predictions = the same objects two frames later.
Every PNG is written the way the public tools write it: DAVIS ground truth and results as PIL
palette PNGs (davis2017 / ReferFormer ``save_mask``), MeViS predictions as PIL ``L`` PNGs 0/255
(ReferFormer / MeViS ``inference_*.py``: ``Image.fromarray(mask * 255).convert('L').save``).

- davis: ``rvoskit eval DS PNG --protocol davis-semi -j 1`` (ground truth from the common format,
  palette-PNG predictions) vs ``vos_benchmark.benchmark`` on palette-PNG ground truth and the same
  prediction files (first and last frames skipped, as both do).
- mevis: ``rvoskit eval DS PNG --protocol mevis -j 1`` (MeViS layout, one expression per object plus
  one per video over all its objects, ground truth = union) vs vos-benchmark on the ground truth
  as ``L`` PNGs 0/255 and the same prediction files (hard links), every frame scored.

Sizes (defaults, :data:`VIDEOS`): users score whole splits (DAVIS 2017 val: 30 videos, ~2,000
frames at 480p; MeViS valid_u: 50 videos), but a whole split does not fit the 5 minutes of this
benchmark (4 cases x 3 pairs): vos-benchmark takes ~15 ms per 480p DAVIS frame and ~35 ms per
720p frame, so DAVIS 2017 val alone would be ~30 s (480p) / ~70 s (720p) per run. Each case gets
the largest split that keeps the whole benchmark near 4.5 minutes of CPU: DAVIS 480p = 30 videos
(the number of DAVIS 2017 val videos; 1,530 frames, 1,470 scored), DAVIS 720p = 9 videos
(459 frames), MeViS 480p = 9 videos (459 frames, 1,227 expression-frames), MeViS 720p = 5 videos
(237 frames, 611 expression-frames). Smaller splits lower the ratio (rvoskit's start-up, ~0.45 s of
CPU against vos-benchmark's ~0.9 s, weighs more); ``--videos N`` sets one size for every case.

The per-object / per-expression J and F are checked identical (vos-benchmark's percent / 100)
before the ratio is reported; the peak RSS of the rvoskit process is reported at 720p (goal < 300 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ab import PY, alternate, report, rvoskit_cmd  # noqa: E402

from rvoskit.datasets.submission import label_png_bytes  # noqa: E402
from rvoskit.format import DatasetWriter  # noqa: E402
from rvoskit.format import rle as rlemod  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "davis17_eval_sample_results" / "semi-supervised" / "osvos"
REF = Path(__file__).resolve().parent / "reference" / "vos_benchmark_eval.py"
SIZES = {"480p": (480, 854), "720p": (720, 1280)}
VIDEOS = {("davis", "480p"): 30, ("davis", "720p"): 9, ("mevis", "480p"): 9, ("mevis", "720p"): 5}
"""Default number of videos per (protocol, size): see the module docstring."""


def sequences(n: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    out = {}
    for s in ("judo", "blackswan", "bike-packing"):
        files = sorted((DATA / s).glob("*.png"))[:n]
        lab = np.stack([np.array(Image.open(f)) for f in files])
        if lab.shape[1:] != size:
            lab = np.stack([cv2.resize(x, size[::-1], interpolation=cv2.INTER_NEAREST) for x in lab])
        out[s] = lab
    return out


def split(videos: int, size: tuple[int, int], frames: int = 1000) -> dict[str, np.ndarray]:
    """``videos`` label-map videos: the three real sequences in turn, as they are, mirrored
    left-right, upside down, then both (and again)."""
    base = sequences(frames, size)
    names = list(base)
    out = {}
    for k in range(videos):
        name, variant = names[k % 3], (k // 3) % 4
        lab = base[name]
        if variant & 1:
            lab = lab[:, :, ::-1]
        if variant & 2:
            lab = lab[:, ::-1, :]
        out[f"{name}-{k // 3:02d}"] = np.ascontiguousarray(lab)
    return out


def pil_png(path: Path, arr: np.ndarray) -> None:
    """An ``L`` PNG written as the MeViS / ReferFormer inference scripts write their masks."""
    Image.fromarray(arr).save(path)


def same_content(seqs: dict[str, np.ndarray]) -> dict[str, str]:
    """``{video: the first video of split() with the same frames}`` (the variants repeat after 12)."""
    first: dict[tuple[str, int], str] = {}
    out = {}
    for v in seqs:
        name, k = v.rsplit("-", 1)
        out[v] = first.setdefault((name, int(k) % 4), v)
    return out


def write_dataset(path: Path, seqs: dict[str, np.ndarray], exprs: dict[str, list[list[int]]], same: dict[str, str] | None = None) -> None:
    """The common-format dataset; ``same`` (:func:`same_content`) reuses the mask rows of a video
    with the same frames instead of encoding them again."""
    done: dict[str, list[dict]] = {}
    with DatasetWriter(path, dataset="mevis", split="valid_u", frame_root=path / "frames") as w:
        for vid, lab in sorted(seqs.items()):
            T, H, W = lab.shape
            names = [f"{t:05d}" for t in range(T)]
            w.add_video({"video_id": vid, "split": "valid_u", "num_frames": T, "height": H, "width": W, "frames": names,
                         "frame_files": [f"{vid}/{f}.jpg" for f in names]})
            objs = sorted(int(o) for o in np.unique(lab) if 0 < o < 255)
            w.add_objects([{"video_id": vid, "obj_id": o, "anno_id": None, "category": None} for o in objs])
            w.add_expressions([{"video_id": vid, "exp_id": str(i), "exp_index": i, "text": f"e{i}", "obj_ids": ol, "anno_ids": None,
                                "annotator": None, "kind": None} for i, ol in enumerate(exprs[vid])])
            src = (same or {}).get(vid)
            if src in done:
                rows = [{**r, "video_id": vid} for r in done[src]]
            else:
                rows = []
                for o in objs:
                    for t in range(T):
                        m = (lab[t] == o).astype(np.uint8)
                        if m.any():
                            c = rlemod.encode(m)
                            a, b = rlemod.area_bbox([c], H, W)
                            rows.append({"video_id": vid, "obj_id": o, "frame_idx": t, "height": H, "width": W, "rle": c, "area": int(a[0]), "bbox": b[0].tolist()})
            done[vid] = rows
            w.add_masks(vid, rows)


def later(lab: np.ndarray) -> np.ndarray:
    return np.concatenate([lab[2:], lab[-2:]])


def make_case(tmp: Path, protocol: str, size: tuple[int, int], n: int, videos: int) -> dict:
    seqs = split(videos, size, n)
    objs = {v: sorted(int(o) for o in np.unique(lab) if 0 < o < 255) for v, lab in seqs.items()}
    exprs = {v: [[o] for o in ol] + [ol] for v, ol in objs.items()}
    same = same_content(seqs)
    write_dataset(tmp / "ds", seqs, exprs, same)
    gt, pred = tmp / "gt", tmp / "pred_vos"
    frames = sum(len(lab) for lab in seqs.values())
    if protocol == "davis":
        for v, lab in seqs.items():
            for root, arr in ((gt, lab), (pred, later(lab))):
                (root / v).mkdir(parents=True)
                for t, x in enumerate(arr):
                    f = root / v / f"{t:05d}.png"
                    if same[v] != v:  # the same frames as an earlier video: link its file
                        os.link(root / same[v] / f.name, f)
                    else:
                        f.write_bytes(label_png_bytes(x))
        return {"ds": tmp / "ds", "rv_pred": pred, "gt": gt, "vos_pred": pred, "protocol": "davis-semi", "all_frames": False,
                "what": f"{len(seqs)} videos, {frames} frames ({frames - 2 * len(seqs)} scored), {sum(map(len, objs.values()))} objects"}
    rv = tmp / "pred_mevis"
    n_expr = 0
    for v, lab in seqs.items():
        nxt = later(lab)
        for i, ol in enumerate(exprs[v]):
            n_expr += 1
            for root in (gt / f"{v}__{i}", pred / f"{v}__{i}", rv / v / str(i)):
                root.mkdir(parents=True)
            for t in range(len(lab)):
                pil_png(gt / f"{v}__{i}" / f"{t:05d}.png", np.isin(lab[t], ol).view(np.uint8) * np.uint8(255))
                f = rv / v / str(i) / f"{t:05d}.png"
                pil_png(f, np.isin(nxt[t], ol).view(np.uint8) * np.uint8(255))
                os.link(f, pred / f"{v}__{i}" / f"{t:05d}.png")  # the same prediction file for both
    return {"ds": tmp / "ds", "rv_pred": rv, "gt": gt, "vos_pred": pred, "protocol": "mevis", "all_frames": True,
            "what": f"{len(seqs)} videos, {frames} frames, {n_expr} expressions, "
                    f"{sum(len(lab) * len(exprs[v]) for v, lab in seqs.items())} expression-frames"}


def check_identical(case: dict, ref_json: Path, out: Path) -> None:
    ref = json.loads(ref_json.read_text())
    if case["protocol"] == "mevis":
        items = pd.read_parquet(out / "per_expression.parquet")
        got = {f"{r.video_id}__{r.exp_id}": {"255": [r.J * 100, r.F * 100]} for r in items.itertuples()}
    else:
        items = pd.read_parquet(out / "per_object.parquet")
        got = {}
        for r in items.itertuples():
            got.setdefault(r.video_id, {})[str(r.obj_id)] = [r.J * 100, r.F * 100]
    bad = [(k, o) for k in ref for o in ref[k] if not np.allclose(ref[k][o], got.get(k, {}).get(o, [np.nan] * 2), rtol=0, atol=1e-9)]
    if bad or set(ref) != set(got):
        raise SystemExit(f"numbers differ from vos-benchmark: {bad[:5]} {sorted(set(ref) ^ set(got))[:5]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000, help="frames per sequence, at most (3 sequences of 34, 50 and 69 frames)")
    ap.add_argument("--videos", type=int, default=None, help="videos per case (default: VIDEOS, per protocol and size)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--sizes", default="480p,720p")
    ap.add_argument("--protocols", default="davis,mevis")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rvoskit-bench-eval-"))
    try:
        for protocol in a.protocols.split(","):
            for size in a.sizes.split(","):
                d = tmp / f"{protocol}-{size}"
                d.mkdir()
                case = make_case(d, protocol, SIZES[size], a.frames, a.videos or VIDEOS[(protocol, size)])
                print(f"[{protocol} {size}] {case['what']} at {SIZES[size][1]}x{SIZES[size][0]}", flush=True)
                ref = [PY, str(REF), str(case["gt"]), str(case["vos_pred"]), str(d / "ref.json")] + (["--all-frames"] if case["all_frames"] else [])
                ours = rvoskit_cmd("eval", str(case["ds"]), str(case["rv_pred"]), "--protocol", case["protocol"], "-j", "1",
                                   "--out", str(d / "out"), "--overwrite", "-q")
                p = alternate(f"eval {protocol} {size}", ref, ours, a.pairs)
                check_identical(case, d / "ref.json", d / "out")
                print("    identical J and F to vos-benchmark: True")
                m = p.summary("wall")[0]
                report("bench_eval", f"eval {protocol} {size} ({case['what']}), 1 worker", p, reference="vos-benchmark 0.1.0, 1 worker", goal=">= 5x", met=m >= 5)
                if size == "720p":
                    peak = max(r.peak_mib for r in p.ours)
                    report("bench_eval", f"eval {protocol} 720p peak RSS", value=f"{peak:.0f} MiB (rvoskit process)", goal="< 300 MiB", met=peak < 300)
                shutil.rmtree(d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
