"""Generate a large synthetic dataset in a native layout (MeViS, Ref-YouTube-VOS, Ref-DAVIS17).

    python benchmarks/make_synthetic.py mevis /tmp/synth-mevis --videos 200 --frames 100 --objects 5 --size 720x1280

Frames after the first of each video are hard links of it (converters only read the first frame's
header and check that the others exist), so the size on disk is dominated by the annotations.
"""

from __future__ import annotations

import argparse
import time

from rvoskit.datasets.synthetic import make_mevis, make_refdavis, make_refytvos


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("layout", choices=["mevis", "refytvos", "refdavis"])
    ap.add_argument("root")
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--objects", type=int, default=5)
    ap.add_argument("--size", default="720x1280", help="HxW")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    h, w = (int(x) for x in a.size.split("x"))
    t0 = time.perf_counter()
    common = dict(num_frames=a.frames, height=h, width=w, num_objects=a.objects, seed=a.seed, link_frames=True)
    if a.layout == "mevis":
        make_mevis(a.root, split="train", num_videos=a.videos, **common)
    elif a.layout == "refytvos":
        make_refytvos(a.root, num_videos=a.videos, valid_videos=2, test_videos=1, **common)
    else:
        make_refdavis(a.root, num_videos=min(a.videos, 6), **common)
    print(f"wrote {a.layout} at {a.root} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
