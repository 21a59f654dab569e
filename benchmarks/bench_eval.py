"""``rvoskit eval`` against vos-benchmark (the fastest public J&F evaluator), whole commands, one worker.

    python benchmarks/bench_eval.py [--frames 1000 --pairs 3 --sizes 480p,720p --protocols davis,mevis]

Data: the three real DAVIS sequences of tests/data (OSVOS result masks used as ground truth: judo,
blackswan, bike-packing: 153 frames), the first ``--frames`` frames of each, at 854x480 and upsampled (nearest)
to 1280x720; predictions = the same objects two frames later.

- davis: ``rvoskit eval DS PNG --protocol davis-semi -j 1`` (ground truth from the common format,
  palette-PNG predictions) vs ``vos_benchmark.benchmark`` on palette-PNG ground truth and the same
  predictions (first and last frames skipped, as both do).
- mevis: ``rvoskit eval DS PNG --protocol mevis -j 1`` (MeViS layout, one expression per object plus
  one per video over all its objects, ground truth = union) vs vos-benchmark on the same masks as
  binary PNG sequences, every frame scored.

The per-object / per-expression J and F are checked identical (vos-benchmark's percent / 100)
before the ratio is reported; the peak RSS of the rvoskit process is reported at 720p (goal < 300 MiB).
"""

from __future__ import annotations

import argparse
import json
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


def sequences(n: int, size: tuple[int, int]) -> dict[str, np.ndarray]:
    out = {}
    for s in ("judo", "blackswan", "bike-packing"):
        files = sorted((DATA / s).glob("*.png"))[:n]
        lab = np.stack([np.array(Image.open(f)) for f in files])
        if lab.shape[1:] != size:
            lab = np.stack([cv2.resize(x, size[::-1], interpolation=cv2.INTER_NEAREST) for x in lab])
        out[s] = lab
    return out


def write_dataset(path: Path, seqs: dict[str, np.ndarray], exprs: dict[str, list[list[int]]]) -> None:
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
            rows = []
            for o in objs:
                for t in range(T):
                    m = (lab[t] == o).astype(np.uint8)
                    if m.any():
                        c = rlemod.encode(m)
                        a, b = rlemod.area_bbox([c], H, W)
                        rows.append({"video_id": vid, "obj_id": o, "frame_idx": t, "height": H, "width": W, "rle": c, "area": int(a[0]), "bbox": b[0].tolist()})
            w.add_masks(vid, rows)


def later(lab: np.ndarray) -> np.ndarray:
    return np.concatenate([lab[2:], lab[-2:]])


def make_case(tmp: Path, protocol: str, size: tuple[int, int], n: int) -> dict:
    seqs = sequences(n, size)
    objs = {v: sorted(int(o) for o in np.unique(lab) if 0 < o < 255) for v, lab in seqs.items()}
    exprs = {v: [[o] for o in ol] + [ol] for v, ol in objs.items()}
    write_dataset(tmp / "ds", seqs, exprs)
    gt, pred = tmp / "gt", tmp / "pred_vos"
    if protocol == "davis":
        for v, lab in seqs.items():
            for root, arr in ((gt, lab), (pred, later(lab))):
                (root / v).mkdir(parents=True)
                for t, x in enumerate(arr):
                    (root / v / f"{t:05d}.png").write_bytes(label_png_bytes(x))
        return {"ds": tmp / "ds", "rv_pred": pred, "gt": gt, "vos_pred": pred, "protocol": "davis-semi", "all_frames": False}
    rv = tmp / "pred_mevis"
    for v, lab in seqs.items():
        for i, ol in enumerate(exprs[v]):
            g, p = np.isin(lab, ol), np.isin(later(lab), ol)
            for root in (gt / f"{v}__{i}", pred / f"{v}__{i}", rv / v / str(i)):
                root.mkdir(parents=True)
            for t in range(len(lab)):
                cv2.imwrite(str(gt / f"{v}__{i}" / f"{t:05d}.png"), g[t].astype(np.uint8))
                cv2.imwrite(str(pred / f"{v}__{i}" / f"{t:05d}.png"), p[t].astype(np.uint8))
                cv2.imwrite(str(rv / v / str(i) / f"{t:05d}.png"), p[t].astype(np.uint8) * 255)
    return {"ds": tmp / "ds", "rv_pred": rv, "gt": gt, "vos_pred": pred, "protocol": "mevis", "all_frames": True}


def check_identical(case: dict, ref_json: Path, out: Path) -> None:
    ref = json.loads(ref_json.read_text())
    if case["protocol"] == "mevis":
        items = pd.read_parquet(out / "per_expression.parquet")
        got = {f"{r.video_id}__{r.exp_id}": {"1": [r.J * 100, r.F * 100]} for r in items.itertuples()}
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
                case = make_case(d, protocol, SIZES[size], a.frames)
                print(f"[{protocol} {size}] 3 sequences x <= {a.frames} frames at {SIZES[size][1]}x{SIZES[size][0]}", flush=True)
                ref = [PY, str(REF), str(case["gt"]), str(case["vos_pred"]), str(d / "ref.json")] + (["--all-frames"] if case["all_frames"] else [])
                ours = rvoskit_cmd("eval", str(case["ds"]), str(case["rv_pred"]), "--protocol", case["protocol"], "-j", "1",
                                   "--out", str(d / "out"), "--overwrite", "-q")
                p = alternate(f"eval {protocol} {size}", ref, ours, a.pairs)
                check_identical(case, d / "ref.json", d / "out")
                print("    identical J and F to vos-benchmark: True")
                m = p.summary("wall")[0]
                report("bench_eval", f"eval {protocol} {size}, 1 worker", p, reference="vos-benchmark 0.1.0, 1 worker", goal=">= 5x", met=m >= 5)
                if size == "720p":
                    peak = max(r.peak_mib for r in p.ours)
                    report("bench_eval", f"eval {protocol} 720p peak RSS", value=f"{peak:.0f} MiB (rvoskit process)", goal="< 300 MiB", met=peak < 300)
                shutil.rmtree(d)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
