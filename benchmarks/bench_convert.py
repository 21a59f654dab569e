"""Converter speed, side by side with the plain reference work, alternating (A B A B ...).

    python benchmarks/bench_convert.py [--videos 24 --frames 40 --objects 5 --size 720x1280 --pairs 3]

1. ``convert mevis`` vs ``json.load`` of the same ``mask_dict.json`` (goal: at most 2x its time, i.e.
   ratio json.load / convert >= 0.5), with the converter's checks (every RLE's counts cover H x W):
   in one process (the functions), and as whole commands (``python -c "json.load(...)"`` vs
   ``rvoskit convert mevis``, which also pays the CLI's start-up).
2. MeViS conversion vs json.load + decode + re-encode of every RLE (what a converter that decodes
   would do), in one process.
3. Ref-YouTube-VOS palette-PNG conversion vs a plain loop that decodes the same PNGs (Pillow) and
   RLE-encodes every object (pycocotools), in one process (goal >= 0.8: decode-bound).

Peak memory against the input size is measured by bench_scaling.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as cocomask
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ab import PY, Pairs, Run, alternate, report, rvoskit_cmd  # noqa: E402

from rvoskit.datasets.mevis import convert_mevis  # noqa: E402
from rvoskit.datasets.refytvos import convert_refytvos  # noqa: E402
from rvoskit.datasets.synthetic import make_mevis, make_refytvos  # noqa: E402


def plain_png_loop(root: Path) -> int:
    n = 0
    for png in sorted((root / "train" / "Annotations").rglob("*.png")):
        lab = np.asarray(Image.open(png))
        for o in np.unique(lab):
            if o == 0:
                continue
            cocomask.encode(np.asfortranarray((lab == o).astype(np.uint8)))
            n += 1
    return n


def plain_mevis_loop(root: Path) -> int:
    masks = json.loads((root / "train" / "mask_dict.json").read_text())
    n = 0
    for segs in masks.values():
        for s in segs:
            if s:
                m = cocomask.decode({"size": s["size"], "counts": s["counts"].encode()})
                cocomask.encode(np.asfortranarray(m))
                n += 1
    return n


def alternate_fn(name: str, ref, ours, pairs: int):
    """In-process A B A B of two callables; returns an _ab.Pairs (CPU = this process's time)."""
    res = Pairs(name)
    for _ in range(pairs):
        for fn, dest in ((ref, res.ref), (ours, res.ours)):
            t, c = time.perf_counter(), time.process_time()
            fn()
            dest.append(Run(time.perf_counter() - t, time.process_time() - c, 0.0))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--size", default="720x1280")
    ap.add_argument("--pairs", type=int, default=3)
    a = ap.parse_args()
    h, w = (int(x) for x in a.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="rvoskit-bench-"))
    try:
        mv = make_mevis(tmp / "mv", split="train", num_videos=a.videos, num_frames=a.frames, height=h, width=w,
                        num_objects=a.objects, link_frames=True)
        mask = mv / "train" / "mask_dict.json"
        print(f"[1] MeViS: {a.videos} videos x {a.frames} frames x {a.objects} objects at {h}x{w}; mask_dict.json {mask.stat().st_size / 2**20:.1f} MiB")
        out = tmp / "mv-out"
        p = alternate_fn("json.load vs convert_mevis (in process)", lambda: json.loads(mask.read_bytes()),
                         lambda: convert_mevis(mv, "train", out, overwrite=True), a.pairs)
        report("bench_convert", "convert mevis vs json.load, in process", p, reference="json.load(mask_dict.json)",
               goal="<= 2x json.load (ratio >= 0.5)", met=p.summary("wall")[0] >= 0.5)
        p = alternate("json.load vs rvoskit convert mevis (commands)", [PY, "-c", f"import json; json.load(open({str(mask)!r}))"],
                      rvoskit_cmd("convert", "mevis", str(mv), "--split", "train", "-o", str(out), "--overwrite", "-q"), a.pairs, verbose=False)
        report("bench_convert", "convert mevis vs json.load, whole commands", p, reference="python -c json.load",
               goal="<= 2x json.load (ratio >= 0.5)", met=p.summary("wall")[0] >= 0.5)
        p = alternate_fn("decode+re-encode vs convert_mevis", lambda: plain_mevis_loop(mv), lambda: convert_mevis(mv, "train", out, overwrite=True), a.pairs)
        report("bench_convert", "convert mevis vs json.load + decode + re-encode", p, reference="json.load + pycocotools decode/encode")

        yt = make_refytvos(tmp / "yt", num_videos=max(2, a.videos // 4), num_frames=a.frames, height=h, width=w, num_objects=a.objects, link_frames=True)
        print(f"[3] Ref-YouTube-VOS: {max(2, a.videos // 4)} videos x {a.frames} palette PNGs")
        p = alternate_fn("PNG loop vs convert_refytvos", lambda: plain_png_loop(yt), lambda: convert_refytvos(yt, "train", tmp / "yt-out", overwrite=True), a.pairs)
        report("bench_convert", "convert refytvos vs Pillow decode + pycocotools encode loop", p, reference="plain PNG loop",
               goal=">= 0.8", met=p.summary("wall")[0] >= 0.8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
