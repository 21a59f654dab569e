"""Per-frame J and F against the official DAVIS code, bit for bit.

Reference: vos-benchmark 0.1.0 (a dev dependency) ships davis2017-evaluation's ``_seg2bmap``
verbatim and the same F code in ``Evaluator.feed_frame``; :func:`official_jf` below drives those
untouched functions (and adds the reference's void-pixel handling, which is a masking step
before them). Every comparison is ``==`` on Python floats: identical to the last bit.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rvoskit.metrics import (
    bound_pix,
    boundary_f,
    disk,
    frame_jf,
    jaccard,
    seg2bmap,
    video_jf,
)
from rvoskit.metrics import jf as jfmod

DATA = Path(__file__).resolve().parent / "data" / "davis17_eval_sample_results"


def official_jf(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008) -> tuple[float, float]:
    """J, F as davis2017 ``db_eval_iou`` / ``f_measure`` compute them, through vos-benchmark."""
    from skimage.morphology import disk as sk_disk
    from vos_benchmark.evaluator import Evaluator
    from vos_benchmark.utils import _seg2bmap

    p, g = pred != 0, gt != 0
    keep = np.ones_like(p) if void is None else ~(void != 0)
    union = np.sum((p | g) & keep)
    j = 1.0 if np.isclose(union, 0) else float(np.sum((p & g) & keep) / union)
    p, g = p & keep, g & keep
    if bound_th == 0.008 and (p.any() or g.any()):
        ev = Evaluator(boundary=bound_th)  # the untouched reference F code
        ev.feed_frame(p.astype(np.uint8), g.astype(np.uint8))
        return j, float(ev.boundary_f[1][0])
    # other tolerances / both empty: the same steps, spelled out (f_measure)
    r = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(p.shape))
    bp, bg = _seg2bmap(p), _seg2bmap(g)
    k = sk_disk(r).astype(np.uint8)
    fd, gd = cv2.dilate(bp.astype(np.uint8), k), cv2.dilate(bg.astype(np.uint8), k)
    n_fg, n_gt = np.sum(bp), np.sum(bg)
    if n_fg == 0 and n_gt > 0:
        P, R = 1, 0
    elif n_fg > 0 and n_gt == 0:
        P, R = 0, 1
    elif n_fg == 0 and n_gt == 0:
        P, R = 1, 1
    else:
        P, R = np.sum(bp * gd) / float(n_fg), np.sum(bg * fd) / float(n_gt)
    return j, float(0 if P + R == 0 else 2 * P * R / (P + R))


@pytest.fixture(params=["cv2", "packed"])
def dilation_path(request, monkeypatch):
    """Run a test through both exact dilation paths (small boxes: cv2; large: packed bits)."""
    monkeypatch.setattr(jfmod, "_SMALL_BOX", 10**12 if request.param == "cv2" else 0)
    return request.param


def _random_mask(rng, H, W):
    kind = rng.integers(0, 7)
    if kind == 0:
        return np.zeros((H, W), np.uint8)
    if kind == 1:
        return np.ones((H, W), np.uint8)
    if kind == 2:  # a blob, often touching the border
        m = np.zeros((H, W), np.uint8)
        cv2.ellipse(m, (int(rng.integers(-2, W + 2)), int(rng.integers(-2, H + 2))), (int(rng.integers(1, W + 2)), int(rng.integers(1, H + 2))), float(rng.uniform(0, 180)), 0, 360, 1, -1)
        return m
    if kind == 3:  # one pixel
        m = np.zeros((H, W), np.uint8)
        m[rng.integers(0, H), rng.integers(0, W)] = 1
        return m
    if kind == 4:  # full except a few pixels / a border line
        m = np.ones((H, W), np.uint8)
        m[rng.integers(0, H), :] = 0
        return m
    return (rng.random((H, W)) < rng.random()).astype(np.uint8)  # noise


def test_random_and_edge_masks_bit_identical(dilation_path):
    rng = np.random.default_rng(0)
    for _ in range(400):
        H, W = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        p, g = _random_mask(rng, H, W), _random_mask(rng, H, W)
        void = (rng.random((H, W)) < 0.1).astype(np.uint8) if rng.random() < 0.3 else None
        assert frame_jf(p, g, void) == official_jf(p, g, void), (H, W)


@pytest.mark.parametrize("bound_th", [0.02, 0.1, 1, 3, 64, 70])
def test_other_tolerances_bit_identical(dilation_path, bound_th):
    """Radii up to 70 px (more than one 64-bit word of shift in the packed path)."""
    rng = np.random.default_rng(int(bound_th * 100))
    for _ in range(25):
        H, W = int(rng.integers(1, 90)), int(rng.integers(1, 160))
        p, g = _random_mask(rng, H, W), _random_mask(rng, H, W)
        assert frame_jf(p, g, bound_th=bound_th) == official_jf(p, g, bound_th=bound_th)


def test_empty_and_full_frame_conventions():
    """The conventions table of the research notes (checked there by running the official code)."""
    H, W = 720, 1280
    empty, full = np.zeros((H, W), np.uint8), np.ones((H, W), np.uint8)
    some = np.zeros((H, W), np.uint8)
    some[100:200, 300:400] = 1
    assert frame_jf(empty, empty) == (1.0, 1.0)
    assert frame_jf(empty, some) == (0.0, 0.0)
    assert frame_jf(some, empty) == (0.0, 0.0)
    assert frame_jf(full, empty) == (0.0, 1.0)  # quirk: a full mask has no boundary
    assert frame_jf(empty, full) == (0.0, 1.0)
    assert frame_jf(full, full) == (1.0, 1.0)
    a, b = np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8)
    a[300, 300], b[300, 305] = 1, 1  # 1 px vs 1 px, 5 px apart: inside the 12 px tolerance
    assert frame_jf(a, b) == (0.0, 1.0)
    for p, g in ((empty, some), (full, empty), (a, b)):
        assert frame_jf(p, g) == official_jf(p, g)


def test_real_davis_results_at_native_and_720p(dilation_path):
    """Real shapes: OSVOS vs RVOS results of judo / blackswan (854x480) and bike-packing (910x480),
    and the same masks upsampled to 1280x720."""
    pairs = []
    for seq, frames in (("judo", ("00000", "00010", "00020")), ("blackswan", ("00000", "00025"))):
        for f in frames:
            o = np.array(Image.open(DATA / "semi-supervised" / "osvos" / seq / f"{f}.png"))
            r = np.array(Image.open(DATA / "unsupervised" / "rvos" / seq / f"{f}.png"))
            for k in range(1, int(o.max()) + 1):
                for q in (1, 2, 3):
                    pairs.append((r == q, o == k))
    bp = sorted((DATA / "semi-supervised" / "osvos" / "bike-packing").glob("*.png"))
    a, b = np.array(Image.open(bp[0])), np.array(Image.open(bp[5]))
    pairs += [(b == 1, a == 1), (b == 2, a == 2), (b == 1, a == 2)]
    up = [tuple(cv2.resize(m.astype(np.uint8), (1280, 720), interpolation=cv2.INTER_NEAREST) for m in pr) for pr in pairs[::3]]
    for p, g in pairs + up:
        assert frame_jf(p, g) == official_jf(p, g)


def test_input_layouts_and_dtypes():
    """bool / uint8 0-1 / uint8 0-255 / float / column-major (pycocotools) inputs give the same."""
    o = np.array(Image.open(DATA / "semi-supervised" / "osvos" / "judo" / "00003.png"))
    p, g = o == 1, o == 2
    g = g | np.roll(p, 40, axis=1)
    want = official_jf(p, g)
    for conv in (lambda m: m, lambda m: m.astype(np.uint8), lambda m: m.astype(np.uint8) * 255, lambda m: m.astype(np.float32), np.asfortranarray):
        assert frame_jf(conv(p), conv(g)) == want
    assert jaccard(p, g) == want[0] and boundary_f(p, g) == want[1]
    with pytest.raises(ValueError, match="shapes differ"):
        frame_jf(p, g[:, :-1])


def test_seg2bmap_disk_and_radius_match_reference():
    from skimage.morphology import disk as sk_disk
    from vos_benchmark.utils import _seg2bmap

    rng = np.random.default_rng(3)
    for _ in range(200):
        m = _random_mask(rng, int(rng.integers(1, 30)), int(rng.integers(1, 30)))
        assert np.array_equal(seg2bmap(m), _seg2bmap(m))
    for r in range(1, 41):
        assert np.array_equal(disk(r), sk_disk(r).astype(np.uint8))
    assert (bound_pix(720, 1280), bound_pix(480, 854), bound_pix(1080, 1920)) == (12, 8, 18)
    for H, W in ((1, 1), (480, 910), (2160, 3840), (37, 5)):
        assert bound_pix(H, W) == int(np.ceil(0.008 * np.linalg.norm((H, W))))


def test_video_jf_per_frame():
    o = np.stack([np.array(Image.open(f)) for f in sorted((DATA / "semi-supervised" / "osvos" / "judo").glob("*.png"))[:4]])
    r = np.stack([np.array(Image.open(f)) for f in sorted((DATA / "unsupervised" / "rvos" / "judo").glob("*.png"))[:4]])
    J, F = video_jf(r == 1, o == 1)
    assert J.dtype == np.float64 and J.shape == (4,)
    assert [(a, b) for a, b in zip(J, F)] == [official_jf(r[t] == 1, o[t] == 1) for t in range(4)]
