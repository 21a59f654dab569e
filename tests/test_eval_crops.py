"""Evaluation scores every frame inside the box of prediction and ground truth (``crop_jf``) and
decodes ground-truth RLEs inside that box only (``rvoskit.metrics.rlebox``). These tests fuzz both
against the references, on whole frames: pycocotools for the RLE decode and bounding box, and the
official per-frame J and F (vos-benchmark's copy of davis2017's code, ``official_jf`` of
test_metrics.py), with masks that touch the image border, empty and full masks, one-pixel
objects, noise and odd sizes; and through ``evaluate`` (MeViS, DAVIS semi-supervised and
unsupervised with void pixels) on random videos, frame by frame.
"""

from __future__ import annotations

import numpy as np
import pycocotools.mask as cocomask
import pytest
from test_eval import build_dataset, label_png_bytes, prediction_rows, write_png_expr
from test_metrics import _random_mask, official_jf

from rvoskit.format import rle as rlemod
from rvoskit.format.predictions import write_predictions
from rvoskit.metrics import evaluate, frame_jf
from rvoskit.metrics import jf as jfmod
from rvoskit.metrics import rlebox


def _masks(rng, n):
    for _ in range(n):
        H, W = int(rng.integers(1, 48)), int(rng.integers(1, 48))
        yield H, W, _random_mask(rng, H, W)


def test_rle_box_decode_and_bbox_equal_pycocotools():
    rng = np.random.default_rng(1)
    for H, W, m in _masks(rng, 400):
        counts = rlemod.encode(m)
        start, end = rlebox.runs(counts, H, W)
        ref_box = cocomask.toBbox(rlemod.to_coco(counts, H, W)).astype(int).tolist()
        x, y, w, h = rlebox.runs_bbox(start, end, H)
        assert ((x, y, w, h) if w else (0, 0, 0, 0)) == tuple(ref_box), (H, W)
        full = rlemod.decode(counts, H, W)
        r0, c0 = int(rng.integers(0, H)), int(rng.integers(0, W))
        rows, cols = slice(r0, int(rng.integers(r0 + 1, H + 1))), slice(c0, int(rng.integers(c0 + 1, W + 1)))
        crop = rlebox.decode_in(start, end, H, rows, cols)
        assert crop.dtype == np.uint8 and np.array_equal(crop, full[rows, cols]), (H, W, rows, cols)


def test_rle_box_refuses_wrong_totals():
    counts = rlemod.encode(np.ones((4, 5), np.uint8))
    with pytest.raises(ValueError, match="covers 20 pixels"):
        rlebox.runs(counts, 4, 6)


@pytest.mark.parametrize("path", ["cv2", "packed"])
def test_crop_jf_equals_official_on_whole_frames(monkeypatch, path):
    """Crops = the union box (grown by one pixel, clipped), or any larger box inside the image."""
    monkeypatch.setattr(jfmod, "_SMALL_BOX", 10**12 if path == "cv2" else 0)
    rng = np.random.default_rng(2)
    for H, W, p in _masks(rng, 300):
        g = _random_mask(rng, H, W)
        void = (rng.random((H, W)) < 0.1).astype(np.uint8) if rng.random() < 0.3 else None
        ref = official_jf(p, g, void)
        r = jfmod.bound_pix(H, W)
        box = jfmod.union_box([jfmod._bbox(p), jfmod._bbox(g)], H, W)
        if box is None:
            assert ref == (1.0, 1.0)
            continue
        assert jfmod.crop_jf(p[box], g[box], None if void is None else void[box], r) == ref, (H, W)
        rows, cols = box
        big = slice(int(rng.integers(0, rows.start + 1)), int(rng.integers(rows.stop, H + 1))), slice(int(rng.integers(0, cols.start + 1)), int(rng.integers(cols.stop, W + 1)))
        assert jfmod.crop_jf(p[big], g[big], None if void is None else void[big], r) == ref, (H, W, big)
        for crop in (box, big):  # scored as given, without cutting down to the two masks' box
            assert jfmod.crop_jf(p[crop], g[crop], None if void is None else void[crop], r, shrink=False) == ref, (H, W, crop)


def _video(rng, T, H, W, n_obj):
    """A label map video: objects from _random_mask (border-touching blobs, pixels, noise, full),
    later objects painted over earlier ones; some objects absent on some frames."""
    lab = np.zeros((T, H, W), np.uint8)
    for o in range(1, n_obj + 1):
        for t in range(T):
            if t == 0 or rng.random() < 0.85:
                m = _random_mask(rng, H, W)
                if t == 0 and not m.any():
                    m[0, 0] = 1  # every object exists on frame 0 (the DAVIS object count)
                lab[t][m != 0] = o
    return lab


@pytest.fixture(scope="module")
def random_split(tmp_path_factory):
    rng = np.random.default_rng(3)
    tmp = tmp_path_factory.mktemp("crops")
    videos, gts, preds, voids = {}, {}, {}, {}
    for k, (H, W) in enumerate([(37, 53), (64, 129), (1, 9), (90, 33)]):
        vid = f"v{k}"
        T, n = 5, 2 + k % 2
        lab = _video(rng, T, H, W, n)
        frames = [f"{t:05d}" for t in range(T)]
        exprs = [(str(o - 1), [o], None, None) for o in range(1, n + 1)] + [(str(n), list(range(1, n + 1)), None, None), (str(n + 1), [], None, None)]
        videos[vid] = {"frames": frames, "labels": lab, "expressions": exprs}
        gts[vid] = lab
        preds[vid] = _video(rng, T, H, W, n + 1)  # one proposal more than objects (unsupervised)
        voids[vid] = (rng.random((T, H, W)) < 0.05).astype(np.uint8)
    ds = build_dataset(tmp / "ds", videos, void=voids)
    expr_preds = {}
    for vid, v in videos.items():
        for e, _o, _a, _k in v["expressions"]:
            expr_preds[(vid, e)] = np.stack([_random_mask(rng, *gts[vid].shape[1:]) for _ in range(len(v["frames"]))])
    table = write_predictions(tmp / "pred", prediction_rows(expr_preds), dataset=ds)
    png = write_png_expr(tmp / "png", expr_preds, {vid: v["frames"] for vid, v in videos.items()})
    semi = {vid: np.where(p > int(gts[vid].max()), 0, p) for vid, p in preds.items()}  # labels 1..N only
    for name, maps in (("davis-unsup", preds), ("davis-semi", semi)):
        for vid, v in videos.items():
            d = tmp / name / vid
            d.mkdir(parents=True)
            for f, lmap in zip(v["frames"], maps[vid]):
                (d / f"{f}.png").write_bytes(label_png_bytes(lmap))
    return {"ds": ds, "videos": videos, "gts": gts, "voids": voids, "expr_preds": expr_preds, "table": table, "png": png,
            "labels": {"davis-unsup": preds, "davis-semi": semi}, "tmp": tmp}


@pytest.mark.parametrize("source", ["table", "png"])
def test_mevis_random_split_frame_by_frame(random_split, source):
    res = evaluate(random_split["ds"], random_split[source], "mevis")
    n = 0
    for r in res.frames.itertuples():
        targets = dict((e, o) for e, o, _a, _k in random_split["videos"][r.video_id]["expressions"])[r.exp_id]
        g = np.isin(random_split["gts"][r.video_id][r.frame_idx], targets) if targets else np.zeros(random_split["gts"][r.video_id].shape[1:], bool)
        p = random_split["expr_preds"][(r.video_id, r.exp_id)][r.frame_idx]
        assert (r.J, r.F) == official_jf(p, g.astype(np.uint8)), (r.video_id, r.exp_id, r.frame_idx)
        n += 1
    assert n == sum(len(v["frames"]) * len(v["expressions"]) for v in random_split["videos"].values())


@pytest.mark.parametrize("protocol", ["davis-semi", "davis-unsup"])
def test_davis_random_split_frame_by_frame(random_split, protocol):
    res = evaluate(random_split["ds"], random_split["tmp"] / protocol, protocol)
    T = {vid: len(v["frames"]) for vid, v in random_split["videos"].items()}
    n_obj = {vid: int(g.max()) for vid, g in random_split["gts"].items()}
    assert len(res.frames) == sum(n_obj[v] * (T[v] - 2 if protocol == "davis-semi" else T[v]) for v in T)
    for r in res.frames.itertuples():
        lab, gt = random_split["labels"][protocol][r.video_id][r.frame_idx], random_split["gts"][r.video_id][r.frame_idx]
        void = random_split["voids"][r.video_id][r.frame_idx] if protocol == "davis-unsup" else None
        assert (r.J, r.F) == official_jf(lab == r.proposal, gt == r.obj_id, void), (protocol, r.video_id, r.obj_id, r.frame_idx)
        assert (r.J, r.F) == frame_jf(lab == r.proposal, gt == r.obj_id, void)


@pytest.mark.parametrize("path", ["cv2", "packed"])
def test_crops_jf_batch_equals_official(monkeypatch, path):
    """Several pairs scored in one packed stack (the DAVIS protocols' per-frame call) equal the
    official per-frame code pair by pair, with and without void pixels."""
    monkeypatch.setattr(jfmod, "_SMALL_BOX", 10**12 if path == "cv2" else 0)
    rng = np.random.default_rng(4)
    for _ in range(60):
        H, W = int(rng.integers(1, 70)), int(rng.integers(1, 150))
        k = int(rng.integers(1, 5))
        ps = [_random_mask(rng, H, W) for _ in range(k)]
        gs = [_random_mask(rng, H, W) for _ in range(k)]
        void = (rng.random((H, W)) < 0.1).astype(np.uint8) if rng.random() < 0.4 else None
        box = jfmod.union_box([jfmod._bbox(m) for m in ps + gs], H, W) or (slice(0, 1), slice(0, 1))
        got = jfmod.crops_jf([p[box] for p in ps], [g[box] for g in gs], None if void is None else [void[box]] * k, jfmod.bound_pix(H, W))
        assert got == [official_jf(p, g, void) for p, g in zip(ps, gs)], (H, W, k)
