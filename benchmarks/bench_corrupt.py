"""``rvoskit corrupt`` against imagecorruptions (imagecorruptions-imaug 1.1.5), side by side.

    python benchmarks/bench_corrupt.py [--frames 100 --pairs 3 --severity 5 --parts 1,2]

1. End to end, whole commands, one worker: ``rvoskit corrupt DS -t NAME --severity 5 --rng legacy -j 1``
   vs the reference loop (benchmarks/reference/corrupt_loop.py: cv2.imread, np.random.seed,
   imagecorruptions.corrupt, cv2.imwrite PNG) on ``--frames`` 1280x720 frames, for gaussian_noise and
   motion_blur (goal >= 3x). The PNGs of both are checked pixel-identical.
2. Per frame, all 19 corruptions, in one process, one thread: reference
   (``np.random.seed(i); imagecorruptions.corrupt(frame, severity, name)``, plus ``seed=i`` for
   impulse_noise and glass_blur, which take one) and rvoskit
   (``corrupt_image(frame, name, severity, make_rng("legacy", i, name))``) alternate frame by frame;
   every output is checked identical; median ratio with min-max (goal >= 1.5x). The physical limit
   of a corrupted frame is printed next to it: JPEG decode + rvoskit's arithmetic + PNG encode
   (png_bytes), and how close the end-to-end run of part 1 comes to it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ab import PY, alternate, report, run, rvoskit_cmd  # noqa: E402

from rvoskit.corrupt import CORRUPTIONS, corrupt_image, make_rng  # noqa: E402
from rvoskit.corrupt.rng import frame_seed  # noqa: E402
from rvoskit.corrupt.video import png_bytes  # noqa: E402
from rvoskit.format import DatasetWriter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "tests" / "data" / "sam2_bedroom" / "JPEGImages" / "bedroom"
REF = Path(__file__).resolve().parent / "reference" / "corrupt_loop.py"


def make_dataset(root: Path, n: int) -> Path:
    """One video of ``n`` 1280x720 JPEG frames (the 16 bedroom frames, resized, shifted to vary)."""
    src = sorted(SRC.glob("*.jpg"))
    (root / "frames" / "v0").mkdir(parents=True)
    names = []
    for t in range(n):
        im = cv2.resize(cv2.imread(str(src[t % len(src)])), (1280, 720), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(root / "frames" / "v0" / f"{t:05d}.jpg"), np.roll(im, 7 * (t // len(src)), axis=1), [cv2.IMWRITE_JPEG_QUALITY, 90])
        names.append(f"{t:05d}")
    with DatasetWriter(root / "ds", dataset="mevis", split="valid_u", frame_root=root / "frames") as w:
        w.add_video({"video_id": "v0", "split": "valid_u", "num_frames": n, "height": 720, "width": 1280, "frames": names,
                     "frame_files": [f"v0/{f}.jpg" for f in names]})
        w.add_objects([])
        w.add_expressions([])
        w.add_masks("v0", [])
    return root / "ds"


def end_to_end(tmp: Path, n: int, pairs: int, severity: int) -> dict[str, float]:
    ds = make_dataset(tmp / "data", n)
    seeds = tmp / "seeds.json"
    seeds.write_text(json.dumps({"v0": [frame_seed(0, "v0", t, "legacy") for t in range(n)]}))
    per_frame = {}
    for name, rng in (("gaussian_noise", "legacy"), ("gaussian_noise", "generator"), ("motion_blur", "legacy")):
        ref_out, our_out = tmp / f"ref-{name}", tmp / f"ours-{name}"

        def clean():
            shutil.rmtree(ref_out, ignore_errors=True)

        print(f"[1] {name} s{severity}, --rng {rng}: {n} frames at 1280x720, one worker", flush=True)
        ref_cmd = [PY, str(REF), str(ds), name, str(severity), str(seeds), str(ref_out)]
        ref = lambda: (clean(), run(ref_cmd))[1]  # noqa: E731
        ours = rvoskit_cmd("corrupt", str(ds), "-t", name, "--severity", str(severity), "--rng", rng, "-j", "1",
                           "-o", str(our_out), "--overwrite", "-q")
        p = alternate(f"corrupt {name} s{severity} --rng {rng}", ref, ours, pairs)
        same = rng != "legacy" or all(np.array_equal(cv2.imread(str(ref_out / "v0" / f"{t:05d}.png"), cv2.IMREAD_UNCHANGED),
                                  cv2.imread(str(our_out / "frames" / "v0" / f"{t:05d}.png"), cv2.IMREAD_UNCHANGED)) for t in range(n))
        print("    identical PNG pixels: " + (str(same) if rng == "legacy" else "n/a (rvoskit's own draws; the formula is checked by the tests)"))
        if not same:
            raise SystemExit("outputs differ")
        m = p.summary("wall")[0]
        report("bench_corrupt", f"corrupt {name} s{severity} --rng {rng}, {n} frames 720p, CLI, 1 worker", p,
               reference="imagecorruptions loop + cv2.imwrite", goal=">= 3x", met=m >= 3)
        if rng == "legacy":
            per_frame[name] = statistics.median(r.cpu for r in p.ours) / n
    return per_frame


def per_frame(pairs: int, severity: int, e2e: dict[str, float], only: list[str] | None = None) -> None:
    import imagecorruptions as ic
    import imagecorruptions.corruptions as icc

    warnings.simplefilter("ignore")
    cv2.setNumThreads(1)
    src = str(sorted(SRC.glob("*.jpg"))[0])
    jpg = cv2.imencode(".jpg", cv2.resize(cv2.imread(src), (1280, 720), interpolation=cv2.INTER_LINEAR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]

    def decode():
        return cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    frame = decode()

    def best(fn, k=5):
        ts = []
        for _ in range(k):
            t0 = time.process_time()
            fn()
            ts.append(time.process_time() - t0)
        return statistics.median(ts)

    t_dec = best(decode)
    print(f"\n[2] per frame, 1280x720, severity {severity}, one thread, {pairs} alternating pairs per corruption (CPU seconds)")
    print(f"    JPEG decode {t_dec * 1e3:.1f} ms; PNG encode (png_bytes) measured per corruption")
    print(f"    {'corruption':18s} {'reference':>10s} {'rvoskit':>9s} {'ratio':>6s} {'min-max':>11s}  identical  limit (dec+arith+enc)  e2e/limit")
    for name in only or CORRUPTIONS:
        ref_t, our_t, floor_t, same = [], [], [], True
        out = None
        for i in range(pairs + 1):
            np.random.seed(i)  # seeding is outside the timed call on both sides
            rng = make_rng("legacy", i, name)
            kw = {"seed": i} if name in ("impulse_noise", "glass_blur") else {}  # these two take their seed
            t0 = time.process_time()
            want = ic.corrupt(frame, severity, name, **kw)
            t1 = time.process_time()
            out, _ = corrupt_image(frame, name, severity, rng)
            t2 = time.process_time()
            if name == "jpeg_compression":  # the codec alone (libjpeg-turbo encode + decode), which both sides run
                bgr = frame[..., ::-1].copy()
                t3 = time.process_time()
                cv2.imdecode(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, (25, 18, 15, 10, 7)[severity - 1]])[1], cv2.IMREAD_COLOR)
                floor_t.append(time.process_time() - t3)
            elif name == "defocus_blur":  # the reference's own float64 filter2D per plane alone (its DFT tiles decide the values)
                planes = [np.ascontiguousarray(frame[..., k] / 255.0) for k in range(3)]
                kern = icc.disk(*[(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1])
                t3 = time.process_time()
                for p in planes:
                    cv2.filter2D(p, -1, kern)
                floor_t.append(time.process_time() - t3)
            same &= np.array_equal(out, np.uint8(want))
            if i:  # the first round warms caches (and numba for glass_blur)
                ref_t.append(t1 - t0)
                our_t.append(t2 - t1)
        ratios = [a / max(b, 1e-9) for a, b in zip(ref_t, our_t)]
        m = statistics.median(ratios)
        arith = statistics.median(our_t)
        t_enc = best(lambda: png_bytes(out), 3)
        limit = t_dec + arith + t_enc
        close = f"{e2e[name] / limit:5.2f}" if name in e2e else "   - "
        print(f"    {name:18s} {statistics.median(ref_t):10.4f} {arith:9.4f} {m:5.2f}x {min(ratios):5.2f}-{max(ratios):<5.2f}  {'yes' if same else 'NO ':>9s}  "
              f"{limit * 1e3:6.1f} ms ({t_dec * 1e3:.0f}+{arith * 1e3:.0f}+{t_enc * 1e3:.0f})   {close}", flush=True)
        codec = ""
        if floor_t:
            fl = statistics.median(floor_t[1:])
            what = "libjpeg-turbo encode+decode" if name == "jpeg_compression" else "the three float64 filter2D calls"
            codec = f"; {what} alone {fl * 1e3:.2f} ms = reference / {statistics.median(ref_t) / fl:.2f}, rvoskit / {arith / fl:.2f}"
            print(f"    {'':18s} {codec[2:]}")
        report("bench_corrupt", f"{name} s{severity} per frame (legacy RNG)", reference="imagecorruptions-imaug 1.1.5",
               value=f"{m:.2f}x ({min(ratios):.2f}-{max(ratios):.2f}), identical: {same}, limit {limit * 1e3:.0f} ms/frame{codec}",
               goal=">= 1.5x, identical", met=bool(m >= 1.5 and same))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--severity", type=int, default=5)
    ap.add_argument("--parts", default="1,2")
    ap.add_argument("--only", default="", help="part 2: these corruptions only (comma-separated; default all 19)")
    ap.add_argument("--severities", default="", help="part 2: these severities (comma-separated; default --severity)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rvoskit-bench-corrupt-"))
    try:
        e2e = end_to_end(tmp, a.frames, a.pairs, a.severity) if "1" in a.parts else {}
        if "2" in a.parts:
            for sev in [int(v) for v in a.severities.split(",") if v] or [a.severity]:
                per_frame(a.pairs, sev, e2e if sev == a.severity else {}, [n for n in a.only.split(",") if n] or None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
