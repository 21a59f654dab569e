"""Converter speed and memory, side by side with the plain reference work in one run.

    python benchmarks/bench_convert.py [--videos 12 --frames 40 --objects 5 --size 720x1280]

1. Ref-YouTube-VOS palette-PNG conversion vs a plain loop that decodes the same PNGs (Pillow) and
   RLE-encodes every object (pycocotools): ratio plain / convert (goal >= 0.8: decode-bound).
2. MeViS conversion vs json.load + decode + re-encode of every RLE of the same mask_dict.json:
   ratio (goal >= 10x: the converter never decodes a mask).
3. Peak memory (max RSS of a child process) of a MeViS conversion with N and 4N videos: ratio
   (goal ~1: memory does not grow with the number of videos).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as cocomask
from PIL import Image

from rvoskit.datasets.mevis import convert_mevis
from rvoskit.datasets.refytvos import convert_refytvos
from rvoskit.datasets.synthetic import make_mevis, make_refytvos


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


def _child_convert(root: str, out: str, q) -> None:
    convert_mevis(root, "train", out)
    q.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_rss_mb(root: Path, out: Path) -> float:
    q = mp.get_context("spawn").Queue()
    p = mp.get_context("spawn").Process(target=_child_convert, args=(str(root), str(out), q))
    p.start()
    p.join()
    return q.get()


def timed(fn, *a, **k):
    t = time.perf_counter()
    r = fn(*a, **k)
    return time.perf_counter() - t, r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--size", default="720x1280")
    a = ap.parse_args()
    h, w = (int(x) for x in a.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="rvoskit-bench-"))
    print(f"synthetic data: {a.videos} videos x {a.frames} frames x {a.objects} objects at {h}x{w} in {tmp}")

    yt = make_refytvos(tmp / "yt", num_videos=a.videos, num_frames=a.frames, height=h, width=w, num_objects=a.objects, link_frames=True)
    t_plain, n = timed(plain_png_loop, yt)
    t_conv, _ = timed(convert_refytvos, yt, "train", tmp / "yt-out")
    print(f"[1] palette PNGs: {n} object masks; plain decode+encode {t_plain:.2f} s, convert refytvos {t_conv:.2f} s"
          f" -> ratio {t_plain / t_conv:.2f} (goal >= 0.8)")
    t_conv2, _ = timed(convert_refytvos, yt, "train", tmp / "yt-out2", workers=2)
    print(f"    convert refytvos --workers 2: {t_conv2:.2f} s -> speed-up {t_conv / t_conv2:.2f}x over 1 worker")

    mv = make_mevis(tmp / "mv", split="train", num_videos=a.videos, num_frames=a.frames, height=h, width=w,
                    num_objects=a.objects, link_frames=True)
    t_plain, n = timed(plain_mevis_loop, mv)
    t_conv, _ = timed(convert_mevis, mv, "train", tmp / "mv-out")
    print(f"[2] MeViS mask_dict: {n} masks; json.load+decode+encode {t_plain:.2f} s, convert mevis {t_conv:.2f} s"
          f" -> ratio {t_plain / t_conv:.1f}x (goal >= 10x)")

    small = make_mevis(tmp / "mv-s", split="train", num_videos=a.videos, num_frames=a.frames, height=h, width=w,
                       num_objects=a.objects, link_frames=True, seed=1)
    big = make_mevis(tmp / "mv-b", split="train", num_videos=4 * a.videos, num_frames=a.frames, height=h, width=w,
                     num_objects=a.objects, link_frames=True, seed=2)
    r1 = peak_rss_mb(small, tmp / "s-out")
    r4 = peak_rss_mb(big, tmp / "b-out")
    size1 = (small / "train" / "mask_dict.json").stat().st_size / 2**20
    size4 = (big / "train" / "mask_dict.json").stat().st_size / 2**20
    print(f"[3] peak RSS: {a.videos} videos ({size1:.1f} MiB mask_dict) {r1:.0f} MiB; {4 * a.videos} videos ({size4:.1f} MiB) "
          f"{r4:.0f} MiB -> ratio {r4 / r1:.2f} (goal ~1)")


if __name__ == "__main__":
    main()
