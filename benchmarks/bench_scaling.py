"""Time and peak memory of whole commands at 1x, 4x and 16x the input: convert mevis, eval,
pseudolabel and corrupt. Time should grow at most linearly (the fixed start-up cost makes 16x take
less than 16 times as long) and peak memory should stay flat (every stage works one video, or one
frame, at a time).

    python benchmarks/bench_scaling.py [--scales 1,4,16 --stages convert,eval,pseudolabel,corrupt]

Inputs at 1x: convert: a MeViS split of 2 videos x 20 frames x 5 objects at 720p; eval: 1 video
(judo, 34 frames at 720p, 3 expressions, PNG predictions); pseudolabel: 1 video of 8 tracks x 20
frames at 480x854 at 540x960; corrupt: 10 frames at 720p (gaussian_noise, one worker).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ab import report, run, rvoskit_cmd  # noqa: E402

from rvoskit.datasets.synthetic import make_mevis  # noqa: E402
from rvoskit.format import DatasetWriter, rle  # noqa: E402
from rvoskit.format.trackstore import TrackStore  # noqa: E402


def convert_case(d: Path, k: int) -> list[str]:
    make_mevis(d / "mv", split="train", num_videos=2 * k, num_frames=20, height=720, width=1280, num_objects=5, link_frames=True)
    return rvoskit_cmd("convert", "mevis", str(d / "mv"), "--split", "train", "-o", str(d / "out"), "--overwrite", "-q")


def eval_case(d: Path, k: int) -> list[str]:
    import bench_eval as E

    lab = E.sequences(34, (720, 1280))["judo"]
    seqs = {f"judo{i:02d}": np.roll(lab, 5 * i, axis=2) for i in range(k)}
    objs = {v: sorted(int(o) for o in np.unique(x) if 0 < o < 255) for v, x in seqs.items()}
    exprs = {v: [[o] for o in ol] + [ol] for v, ol in objs.items()}
    E.write_dataset(d / "ds", seqs, exprs)
    for v, x in seqs.items():
        for i, ol in enumerate(exprs[v]):
            (d / "pred" / v / str(i)).mkdir(parents=True)
            p = np.isin(E.later(x), ol)
            for t in range(len(x)):
                cv2.imwrite(str(d / "pred" / v / str(i) / f"{t:05d}.png"), p[t].astype(np.uint8) * 255)
    return rvoskit_cmd("eval", str(d / "ds"), str(d / "pred"), "--protocol", "mevis", "-j", "1", "-q")


def pseudolabel_case(d: Path, k: int) -> list[str]:
    import bench_pseudolabel as B

    T, H, W = 20, 480, 854
    rng = np.random.default_rng(0)
    with DatasetWriter(d / "ds", dataset="mevis", split="train", frame_root=d / "frames") as w:
        store = TrackStore(d / "tracks", create=True, meta={})
        for v in range(k):
            vid = f"v{v:02d}"
            objects, present, tracks = B.synth(rng, 8, 3, T, H, W)
            names = [f"{t:05d}" for t in range(T)]
            w.add_video({"video_id": vid, "split": "train", "num_frames": T, "height": H, "width": W, "frames": names,
                         "frame_files": [f"{vid}/{f}.jpg" for f in names]})
            w.add_objects([{"video_id": vid, "obj_id": o, "anno_id": None, "category": None} for o in range(3)])
            w.add_expressions([{"video_id": vid, "exp_id": str(i), "exp_index": i, "text": "x", "obj_ids": ol, "anno_ids": None,
                                "annotator": None, "kind": None} for i, ol in enumerate([[0], [1], [2], [0, 1]])])
            rows = []
            for o in range(3):
                ts = np.flatnonzero(present[o])
                counts = rle.encode_batch(objects[o, ts])
                area, bbox = rle.area_bbox(counts, H, W)
                rows += [{"video_id": vid, "obj_id": o, "frame_idx": int(t), "height": H, "width": W, "rle": c, "area": int(a), "bbox": b.tolist()}
                         for t, c, a, b in zip(ts, counts, area, bbox)]
            w.add_masks(vid, rows)
            trows = []
            for i, track in enumerate(tracks):
                counts = rle.encode_batch(track)
                area, bbox = rle.area_bbox(counts, H, W)
                trows += [{"video_id": vid, "track_id": i, "frame_idx": t, "prompt_kind": "grid", "prompt_frame_idx": 0, "expression_id": None,
                           "obj_id": None, "stability_score": 1.0, "predicted_iou": 1.0, "height": H, "width": W, "rle": c, "area": int(a),
                           "bbox": b.tolist()} for t, (c, a, b) in enumerate(zip(counts, area, bbox))]
            store.write_video(vid, trows, np.zeros((8, T, 256), np.float32), np.arange(8, dtype=np.int32))
    return rvoskit_cmd("pseudolabel", str(d / "ds"), "--tracks", f"t={d / 'tracks'}", "-o", str(d / "out"), "--overwrite", "-q")


def corrupt_case(d: Path, k: int) -> list[str]:
    import bench_corrupt as C

    ds = C.make_dataset(d / "data", 10 * k)
    return rvoskit_cmd("corrupt", str(ds), "-t", "gaussian_noise", "--severity", "5", "-j", "1", "-o", str(d / "out"), "--overwrite", "-q")


CASES = {"convert": (convert_case, "videos x2"), "eval": (eval_case, "videos"), "pseudolabel": (pseudolabel_case, "videos"),
         "corrupt": (corrupt_case, "frames x10")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,4,16")
    ap.add_argument("--stages", default=",".join(CASES))
    a = ap.parse_args()
    scales = [int(x) for x in a.scales.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="rvoskit-bench-scaling-"))
    try:
        for stage in a.stages.split(","):
            make, unit = CASES[stage]
            rows = []
            for k in scales:
                d = tmp / f"{stage}-{k}"
                d.mkdir()
                cmd = make(d, k)
                r = run(cmd)
                rows.append((k, r))
                print(f"  {stage:12s} {k:3d}x: {r.wall:7.2f} s wall {r.cpu:7.2f} s cpu {r.peak_mib:6.0f} MiB peak", flush=True)
                shutil.rmtree(d)
            (k0, r0), (k1, r1) = rows[0], rows[-1]
            tgrow, mgrow = r1.cpu / max(r0.cpu, 1e-9), r1.peak_mib / max(r0.peak_mib, 1e-9)
            ok = tgrow <= 1.15 * k1 / k0 and mgrow <= 1.25
            report("bench_scaling", f"{stage} {k0}x -> {k1}x ({unit})",
                   value=f"CPU time x{tgrow:.1f} (input x{k1 // k0}), peak memory {r0.peak_mib:.0f} -> {r1.peak_mib:.0f} MiB (x{mgrow:.2f})",
                   goal="time <= linear, memory flat", met=ok)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
