"""Seconds per 720p frame: rvoskit's gaussian_noise / motion_blur vs the reference, side by side.

The reference is ``imagecorruptions`` (PyPI imagecorruptions-imaug 1.1.5), called as users call
it: ``imagecorruptions.corrupt(frame, severity, name)``. Both run single-threaded
(``cv2.setNumThreads(1)``; numpy's elementwise ops are single-threaded anyway), timings are
interleaved (reference, rvoskit, reference, ...) and the median of the repeats is reported, since
the machine may be shared. Every timed rvoskit output is checked against the reference fed the
same draws (noise array / angle): "identical" means equal uint8 frames.

Usage::

    python benchmarks/bench_corrupt.py [--repeats 9] [--severity 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import cv2
import imagecorruptions as ic
import numpy as np

from rvoskit.corrupt import (
    GAUSSIAN_NOISE_SIGMA,
    MOTION_BLUR_PARAMS,
    corrupt_image,
    gaussian_noise_apply,
    make_rng,
    motion_blur_apply,
    standard_normal,
)

FRAME = Path(__file__).resolve().parent.parent / "tests" / "data" / "sam2_bedroom" / "JPEGImages" / "bedroom" / "00000.jpg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--severity", type=int, default=5)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    cv2.setNumThreads(1)
    sev = args.severity
    frame = cv2.cvtColor(cv2.resize(cv2.imread(str(FRAME)), (1280, 720), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    sigma = GAUSSIAN_NOISE_SIGMA[sev - 1]
    radius, blur_sigma = MOTION_BLUR_PARAMS[sev - 1]

    state = {"i": 0}  # the repeat index: the seed of both sides

    def ref_noise():
        np.random.seed(state["i"])
        return ic.corrupt(frame, sev, "gaussian_noise")

    def ours_noise_generator():
        rng = make_rng("generator", state["i"])
        return corrupt_image(frame, "gaussian_noise", sev, rng)[0]

    def check_noise_generator(out):
        z = standard_normal(make_rng("generator", state["i"]), frame.shape).astype(np.float64)
        return np.array_equal(out, np.uint8(np.clip(frame / 255.0 + sigma * z, 0, 1) * 255))

    def ours_noise_legacy():
        return corrupt_image(frame, "gaussian_noise", sev, make_rng("legacy", state["i"]))[0]

    def check_noise_legacy(out):
        np.random.seed(state["i"])
        return np.array_equal(out, ic.corrupt(frame, sev, "gaussian_noise"))

    def ref_blur():
        np.random.seed(state["i"])
        return ic.corrupt(frame, sev, "motion_blur")

    def ours_blur():
        return corrupt_image(frame, "motion_blur", sev, make_rng("legacy", state["i"]))[0]

    def check_blur(out):  # legacy RNG: the same angle as np.random.seed(i); np.random.uniform(-45, 45)
        np.random.seed(state["i"])
        return np.array_equal(out, ic.corrupt(frame, sev, "motion_blur"))

    # parts: where the time goes
    z32 = standard_normal(make_rng("generator", 0), frame.shape)
    parts = {
        "reference noise draws: np.random.normal (float64, legacy)": lambda: np.random.normal(size=frame.shape, scale=sigma),
        "rvoskit noise draws: Box-Muller float32 (Generator)": lambda: standard_normal(make_rng("generator", 1), frame.shape),
        "numpy Generator.standard_normal float32 (ziggurat), for comparison": lambda: np.random.default_rng(1).standard_normal(frame.shape, dtype=np.float32),
        "rvoskit noise kernel (given draws)": lambda: gaussian_noise_apply(frame, z32, sigma),
        "rvoskit motion blur kernel (given angle)": lambda: motion_blur_apply(frame, radius, blur_sigma, 13.7),
    }

    cases = [
        ("gaussian_noise", ref_noise, ours_noise_generator, check_noise_generator, "rvoskit draws (generator)"),
        ("gaussian_noise", ref_noise, ours_noise_legacy, check_noise_legacy, "np.random legacy draws (= reference)"),
        ("motion_blur", ref_blur, ours_blur, check_blur, "same angle as the reference"),
    ]
    print(f"720p frame (1280x720x3, real bedroom frame resized), severity {sev}, {args.repeats} interleaved repeats, median")
    print(f"{'corruption':16s} {'draws':38s} {'reference s':>12s} {'rvoskit s':>10s} {'speedup':>8s}  identical")
    for name, ref, ours, check, label in cases:
        t_ref, t_ours, same = [], [], True
        for i in range(args.repeats + 1):
            state["i"] = i
            t0 = time.perf_counter()
            ref()
            t1 = time.perf_counter()
            out = ours()
            t2 = time.perf_counter()
            same &= check(out)
            if i:  # the first round warms up caches and imports
                t_ref.append(t1 - t0)
                t_ours.append(t2 - t1)
        r, o = statistics.median(t_ref), statistics.median(t_ours)
        print(f"{name:16s} {label:38s} {r:12.4f} {o:10.4f} {r / o:7.1f}x  {'yes' if same else 'NO'}")
    print("\nwhere the time goes (median seconds per 720p frame):")
    for label, fn in parts.items():
        fn()
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        print(f"  {statistics.median(ts):8.4f}  {label}")


if __name__ == "__main__":
    main()
