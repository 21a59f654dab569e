"""Converter speed, side by side with the plain reference work, alternating (A B A B ...).

    python benchmarks/bench_convert.py [--videos 1662 --frames 60 --objects 4 --pairs 3]

1. ``convert mevis`` vs ``json.load`` of the same ``mask_dict.json`` (goal: at most 2x its time, i.e.
   ratio json.load / convert >= 0.5), with the converter's checks (every RLE's counts cover H x W,
   sizes, frame counts; areas and boxes computed): in one process (the functions), and as whole
   commands (``python -c "json.load(...)"`` vs ``rvoskit convert mevis``, which also pays the CLI's
   start-up and numba's). The split is MeViS-train sized: 1,662 videos (MeViS v1/v2 train), 30-90
   frames each, 1-7 objects each (MeViS: 8,171 objects in 2,006 videos, ~4 per video), 720p-ish
   frames (mostly 720x1280; some 1080x1920, 480x854, 1280x720), objects absent on some frames
   (null), 4-24 expressions per video. The masks are real-looking shapes (wobbling polygons moving
   over the frames, rasterised by pycocotools: ~650 characters of RLE per mask at 720p), written
   with ``json.dumps`` (backslashes escaped, as in the real file): ~370 MB, ~420k RLEs, json.load
   ~1.5-2.5 s here. numba's kernels are compiled before timing, as scripts/install.sh does.
2. MeViS conversion vs json.load + decode + re-encode of every RLE (what a converter that decodes
   would do), in one process, on a small split (``--small-videos`` x 40 frames x 5 objects at 720p).
3. Ref-YouTube-VOS palette-PNG conversion vs a plain loop that decodes the same PNGs (Pillow) and
   RLE-encodes every object (pycocotools), in one process (goal >= 0.8: decode-bound), small split.

Peak memory against the input size is measured by bench_scaling.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as cocomask
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ab import PY, Pairs, Run, alternate, report, run, rvoskit_cmd  # noqa: E402

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


_SIZES = [(720, 1280)] * 7 + [(1080, 1920), (480, 854), (1280, 720)]


def _object_polygons(rng: np.random.Generator, T: int, H: int, W: int) -> list[list[float]]:
    """One object's polygon on each of T frames: a wobbling star-shaped outline moving on a line."""
    n = int(rng.integers(12, 40))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    c0 = rng.uniform([0.1 * W, 0.1 * H], [0.9 * W, 0.9 * H])
    vel = rng.normal(0, 0.003 * W, 2)
    r0 = min(H, W) * rng.uniform(0.03, 0.25)
    aspect = rng.uniform(0.3, 3.0)
    wob, ph = rng.uniform(0.05, 0.35, n), rng.uniform(0, 2 * np.pi, n)
    out = []
    for t in range(T):
        c = c0 + vel * t
        r = r0 * (1 + wob * np.sin(ph + 0.15 * t))
        x = np.clip(c[0] + r * np.cos(ang) * aspect**0.5, 0, W - 1)
        y = np.clip(c[1] + r * np.sin(ang) / aspect**0.5, 0, H - 1)
        out.append(np.stack([x, y], 1).ravel().tolist())
    return out


def make_mevis_scale(root: Path, *, videos: int, frames: int, objects: int, seed: int = 0) -> Path:
    """A MeViS ``train`` split of ``videos`` videos (see the module docstring), written as the real
    one is laid out: ``JPEGImages/<video>/<frame>.jpg`` (one small JPEG per video, hard-linked for
    its other frames), ``meta_expressions.json``, ``mask_dict.json`` (streamed to disk)."""
    rng = np.random.default_rng(seed)
    sdir = root / "train"
    jp = sdir / "JPEGImages"
    jp.mkdir(parents=True)
    meta: dict = {"videos": {}}
    anno = 0
    with open(sdir / "mask_dict.json", "w", encoding="ascii") as f:
        f.write("{")
        for i in range(videos):
            vid = f"{int(rng.integers(0, 2**48)):012x}"
            H, W = _SIZES[int(rng.integers(len(_SIZES)))]
            T = int(rng.integers(frames // 2, frames * 3 // 2 + 1))
            K = int(rng.integers(1, 2 * objects))
            names = [f"{t:05d}" for t in range(T)]
            (jp / vid).mkdir()
            cv2.imwrite(str(jp / vid / f"{names[0]}.jpg"), np.full((H, W, 3), 128, np.uint8))
            for nm in names[1:]:
                os.link(jp / vid / f"{names[0]}.jpg", jp / vid / f"{nm}.jpg")
            annos = []
            for k in range(K):
                rles = cocomask.frPyObjects(_object_polygons(rng, T, H, W), H, W)
                present = np.ones(T, bool)
                if rng.random() < 0.4:
                    a = int(rng.integers(0, T))
                    present[a : a + int(rng.integers(1, max(2, T // 3)))] = False
                segs = [{"size": [H, W], "counts": r["counts"].decode()} if present[t] else None for t, r in enumerate(rles)]
                f.write(("" if anno == 0 else ", ") + json.dumps(str(anno)) + ": " + json.dumps(segs))
                annos.append(anno)
                anno += 1
            exps = {}
            for j in range(int(rng.integers(4, 25))):
                r = rng.random()
                objs = [] if r < 0.05 else sorted(set(rng.integers(0, K, 1 + (r > 0.7) * int(rng.integers(1, 3))).tolist()))
                exps[str(j)] = {"exp": f"the object number {j} moving across the frame", "obj_id": objs, "anno_id": [annos[o] for o in objs]}
            meta["videos"][vid] = {"frames": names, "expressions": exps}
        f.write("}")
    (sdir / "meta_expressions.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


def alternate_fn(name: str, ref, ours, pairs: int):
    """In-process A B A B of two callables; returns an _ab.Pairs (CPU = this process's time)."""
    res = Pairs(name)
    for _ in range(pairs):
        for fn, dest in ((ref, res.ref), (ours, res.ours)):
            t, c = time.perf_counter(), time.process_time()
            fn()
            dest.append(Run(time.perf_counter() - t, time.process_time() - c, 0.0))
    return res


def floor(mv: Path, out: Path) -> str:
    """CPU time of the parts of ``convert mevis`` that no converter of this output can skip, as
    multiples of json.load's: the manifest's sha256 of the file (on its own thread), the byte-range
    index scan, parsing + checking every RLE with its area and box (the compiled kernel), writing
    masks.parquet (the converter's options: one row group per video, RLE bytes without a codec),
    and the start-up of the command and of numba's cached kernels."""
    import pyarrow.parquet as pq

    from rvoskit.format.store import masks_parquet_options, sha256_file

    from rvoskit.datasets import maskdict_scan as ms
    from rvoskit.datasets.jsonindex import JsonObjectIndex

    mask = mv / "train" / "mask_dict.json"

    def cpu(fn, n=2):
        best = float("inf")
        for _ in range(n):
            c = time.process_time()
            fn()
            best = min(best, time.process_time() - c)
        return best

    def child_cpu(code):
        r = min((run([PY, "-c", code]) for _ in range(2)), key=lambda r: r.cpu)
        return r.cpu

    ref = cpu(lambda: json.load(open(mask)))
    ix = JsonObjectIndex(mask)
    sha = cpu(lambda: sha256_file(mask))
    scan = cpu(lambda: JsonObjectIndex(mask))
    raws = [ix.read_raw([k]) for k in ix.ranges]
    parse = cpu(lambda: [ms.parse_values(*r) for r in raws])
    raws.clear()
    t = pq.read_table(out / "masks.parquet")
    _, starts, counts = np.unique(t.column("video_id").to_numpy(), return_index=True, return_counts=True)
    groups = [t.slice(int(o), int(n)) for o, n in zip(starts, counts)]

    def write():
        w = pq.ParquetWriter(out / "floor.parquet", t.schema, **masks_parquet_options(t.schema))
        for g in groups:
            w.write_table(g)
        w.close()

    pq_s = cpu(write)
    (out / "floor.parquet").unlink()
    py0 = child_cpu("pass")
    cli = child_cpu("import rvoskit.cli") - py0
    # as in the command: rvoskit.cli marks its process so that numba skips its BLAS probe (rvoskit._jit)
    numba_s = child_cpu("from rvoskit import _jit; _jit.command_process(); from rvoskit.datasets import maskdict_scan as m; m.warm()") - py0
    parts = {"sha256 (own thread)": sha, "index scan": scan, "RLE parse/check/area/bbox (all values)": parse, "masks.parquet write": pq_s,
             "CLI import": cli, "numba import + cached kernels": numba_s}
    return f"json.load {ref:.2f} s; " + "; ".join(f"{k} {v:.2f} s ({v / ref:.2f}x)" for k, v in parts.items()) + \
        f"; sum {sum(parts.values()) / ref:.2f}x json.load"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=1662, help="MeViS-scale split: videos (MeViS train: 1662)")
    ap.add_argument("--frames", type=int, default=60, help="mean frames per video (drawn from [F/2, 3F/2])")
    ap.add_argument("--objects", type=int, default=4, help="mean objects per video (drawn from [1, 2K-1])")
    ap.add_argument("--small-videos", type=int, default=24, help="videos of the small splits of cases 2 and 3")
    ap.add_argument("--pairs", type=int, default=3)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rvoskit-bench-"))
    try:
        from rvoskit.datasets import maskdict_scan

        maskdict_scan.warm()  # compiled into numba's on-disk cache, as scripts/install.sh does
        t0 = time.perf_counter()
        mv = make_mevis_scale(tmp / "mv", videos=a.videos, frames=a.frames, objects=a.objects)
        mask = mv / "train" / "mask_dict.json"
        masks = json.load(open(mask))
        n_rle = sum(1 for segs in masks.values() for s in segs if s)
        print(f"[1] MeViS-scale split: {a.videos} videos, {len(masks)} objects, {n_rle} RLEs (frames: {a.frames // 2}-{a.frames * 3 // 2} "
              f"per video); mask_dict.json {mask.stat().st_size / 2**20:.0f} MiB; generated in {time.perf_counter() - t0:.0f} s", flush=True)
        del masks
        out = tmp / "mv-out"
        p = alternate_fn("json.load vs convert_mevis (in process)", lambda: json.load(open(mask)),
                         lambda: convert_mevis(mv, "train", out, overwrite=True), a.pairs)
        size = f"{a.videos} videos, {n_rle} RLEs, {mask.stat().st_size / 2**20:.0f} MiB mask_dict.json"
        report("bench_convert", f"convert mevis vs json.load, in process ({size})", p, reference="json.load(mask_dict.json)",
               goal="<= 2x json.load (ratio >= 0.5)", met=p.summary("wall")[0] >= 0.5)
        p = alternate("json.load vs rvoskit convert mevis (commands)", [PY, "-c", f"import json; json.load(open({str(mask)!r}))"],
                      rvoskit_cmd("convert", "mevis", str(mv), "--split", "train", "-o", str(out), "--overwrite", "-q"), a.pairs, verbose=True)
        report("bench_convert", f"convert mevis vs json.load, whole commands ({size})", p, reference="python -c json.load",
               goal="<= 2x json.load (ratio >= 0.5)", met=p.summary("wall")[0] >= 0.5)
        report("bench_convert", f"convert mevis: where the time goes (CPU, min of 2; {size})", value=floor(mv, out),
               note="CPU parts; the command overlaps them on three threads (wall < CPU when a core is free)")
        shutil.rmtree(mv, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)

        h, w = 720, 1280
        sv = a.small_videos
        mv = make_mevis(tmp / "mv-small", split="train", num_videos=sv, num_frames=40, height=h, width=w,
                        num_objects=5, link_frames=True)
        print(f"[2] MeViS small split: {sv} videos x 40 frames x 5 objects at {h}x{w}", flush=True)
        p = alternate_fn("decode+re-encode vs convert_mevis", lambda: plain_mevis_loop(mv), lambda: convert_mevis(mv, "train", out, overwrite=True), a.pairs)
        report("bench_convert", f"convert mevis vs json.load + decode + re-encode ({sv} videos x 40 frames x 5 objects, 720p)", p,
               reference="json.load + pycocotools decode/encode")

        yt = make_refytvos(tmp / "yt", num_videos=max(2, sv // 4), num_frames=40, height=h, width=w, num_objects=5, link_frames=True)
        print(f"[3] Ref-YouTube-VOS: {max(2, sv // 4)} videos x 40 palette PNGs", flush=True)
        p = alternate_fn("PNG loop vs convert_refytvos", lambda: plain_png_loop(yt), lambda: convert_refytvos(yt, "train", tmp / "yt-out", overwrite=True), a.pairs)
        report("bench_convert", "convert refytvos vs Pillow decode + pycocotools encode loop", p, reference="plain PNG loop",
               goal=">= 0.8", met=p.summary("wall")[0] >= 0.8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
