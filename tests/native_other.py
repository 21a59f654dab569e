"""Small native A2D-Sentences, JHMDB-Sentences and RefCOCO trees with the quirks of
``docs/other-benchmarks.md``, written with the libraries the real files come from: h5py (in the
orientation h5py gives for MATLAB v7.3 files), scipy.io (``.mat``), PyAV (``.mp4``) and pickle
(protocol 0 and 2, Python-2 style byte strings)."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
from pycocotools import mask as maskUtils


def _blob(rng: np.random.Generator, H: int, W: int, min_side: int = 2) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    h = int(rng.integers(min_side, H // 2 + 2))
    w = int(rng.integers(min_side, W // 2 + 2))
    y = int(rng.integers(0, H - h + 1))
    x = int(rng.integers(0, W - w + 1))
    m[y:y + h, x:x + w] = 1
    return m


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 24) -> None:
    """Encode RGB frames with PyAV (mpeg4, yuv420p)."""
    import av

    H, W = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"qscale": "2"}
        for fr in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def frame_colour(n: int) -> np.ndarray:
    """The flat colour of frame n (1-based) in the generated clips: frame order can be checked after decoding."""
    return np.array([(37 * n) % 256, (91 * n + 40) % 256, (13 * n + 200) % 256], np.uint8)


def write_h5(path: Path, ids: list[int], masks: list[np.ndarray]) -> None:
    """An A2D annotation h5 as h5py sees a MATLAB v7.3 file: reMask (W, H) or (N, W, H), reBBox (4, N) x1y1x2y2."""
    import h5py

    boxes = []
    for m in masks:
        x, y, w, h = maskUtils.toBbox(maskUtils.encode(np.asfortranarray(m)))
        boxes.append([x, y, x + w, y + h])
    with h5py.File(path, "w") as f:
        f["instance"] = np.asarray(ids, dtype=np.float64)  # MATLAB doubles
        stack = np.stack([m.T for m in masks]).astype(np.uint8)  # (N, W, H)
        f["reMask"] = stack[0] if len(masks) == 1 else stack
        bb = np.asarray(boxes, np.float64).T  # (4, N)
        f["reBBox"] = bb
        f["id"] = np.arange(len(masks), dtype=np.float64) + 11


def make_a2d(root: Path, *, H: int = 96, W: int = 128, T: int = 12, seed: int = 0, pad_videoset: bool = True) -> dict:
    """A2D-Sentences tree: 4 test videos, 1 train video, 1 missed video, and MTTR's quirks.

    Quirks: a missed video; the '1 (copy)' row; an instance that is absent on some annotated
    frames; a duplicated instance id in one frame's h5 (first position wins); a frame with more
    masks than ids; one-instance frames (2-D reMask); a video whose mp4 lives in CLIPS320 naming is
    not used (clips320H). ``pad_videoset`` pads videoset.csv to MTTR's asserted 3,782 rows.
    """
    rng = np.random.default_rng(seed)
    rel = root / "Release"
    clips = rel / "clips320H"
    ta = root / "text_annotations"
    inst_root = ta / "a2d_annotation_with_instances"
    for d in (clips, inst_root):
        d.mkdir(parents=True, exist_ok=True)
    videos = {"vidA_test": 1, "vidB_test": 1, "-vidC_test": 1, "vidD_test": 1, "vidE_train": 0, "vidM_missed": 1}
    rows = []
    for vid, subset in videos.items():
        rows.append([vid, "11", "0", "1", str(H), str(W), str(T), "3", str(subset)])
    while pad_videoset and len(rows) < 3782:
        rows.append([f"pad{len(rows):05d}", "11", "0", "1", str(H), str(W), str(T), "3", "0"])
    with open(rel / "videoset.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    (ta / "a2d_missed_videos.txt").write_text("vidM_missed\nsomething_else\n")
    text = [("vidA_test", "1", "the man on the left is running"), ("vidA_test", "2", "a dog jumping"),
            ("vidB_test", "1", "Red car moving fast"), ("vidB_test", "1 (copy)", "red car moving fast"),
            ("-vidC_test", "1", "the first bird"), ("-vidC_test", "3", "bird flying, far away"),
            ("vidD_test", "0", "a small ball rolling"), ("vidE_train", "1", "a train adult walking"),
            ("vidM_missed", "1", "never seen")]
    with open(ta / "a2d_annotation.txt", "w", newline="") as f:
        wtr = csv.writer(f)
        wtr.writerow(["video_id", "instance_id", "query"])
        wtr.writerows(text)
    # per-video h5 content: frame -> (ids, n_masks)
    plan = {
        "vidA_test": {3: ([1, 2], 2), 7: ([2], 1), 10: ([1, 2, 1], 3)},        # 1 absent on frame 7; duplicated id on 10
        "vidB_test": {2: ([1], 1), 6: ([1], 1), 11: ([1, 5], 3)},              # more masks than ids on 11
        "-vidC_test": {4: ([1, 3], 2), 9: ([3], 1)},
        "vidD_test": {1: ([0], 1), 12: ([0, 4], 2)},                            # first and last frames
        "vidE_train": {5: ([1], 1)},
        "vidM_missed": {5: ([1], 1)},
    }
    gt = {}
    for vid, frames in plan.items():
        cols = [np.broadcast_to(frame_colour(n), (H, W, 3)).copy() for n in range(1, T + 1)]
        write_mp4(clips / f"{vid}.mp4", cols)
        (inst_root / vid).mkdir(exist_ok=True)
        for n, (ids, n_masks) in frames.items():
            masks = [_blob(rng, H, W) for _ in range(n_masks)]
            if n == 12 and vid == "vidD_test":
                masks[0] = np.ones((H, W), np.uint8)  # a large one (COCO area range L)
                masks[1][:] = 0  # an annotated empty mask
            write_h5(inst_root / vid / f"{n:05d}.h5", ids, masks)
            for pos, i in enumerate(ids):
                gt.setdefault((vid, n, i), masks[pos])
    return {"gt": gt, "H": H, "W": W, "T": T}


def make_jhmdb(root: Path, *, H: int = 40, W: int = 52, seed: int = 1) -> dict:
    """JHMDB-Sentences tree: 3 videos in 2 action folders, part_mask H x W x T with fewer masks
    than frames in one video, and an MTTR-style samples metadata JSON (``samples.json``)."""
    import scipy.io
    from PIL import Image

    rng = np.random.default_rng(seed)
    vids = {"brush_hair_vid1": ("brush_hair", 15, 15), "brush_hair_vid2": ("brush_hair", 20, 17), "pullup_vid3": ("pullup", 18, 18)}
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "jhmdb_annotation.txt", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "query"])
        for v, q in zip(vids, ["woman brushing her hair", "girl with long hair, brushing", "man pulling up"]):
            w.writerow([v, q])
    meta, masks_of = [], {}
    for (vid, (action, T, Tm)), q in zip(vids.items(), ["woman brushing her hair", "girl with long hair, brushing", "man pulling up"]):
        fd = root / "Rename_Images" / action / vid
        md = root / "puppet_mask" / action / vid
        fd.mkdir(parents=True)
        md.mkdir(parents=True)
        for n in range(1, T + 1):
            Image.fromarray(np.full((H, W, 3), n * 5, np.uint8)).save(fd / f"{n:05d}.png")
        pm = np.stack([_blob(rng, H, W) for _ in range(Tm)], axis=2)  # H x W x T
        scipy.io.savemat(str(md / "puppet_mask.mat"), {"part_mask": pm})
        masks_of[vid] = pm
        chosen = sorted(rng.choice(np.arange(1, min(T, Tm) + 1), 3, replace=False).tolist())
        for n in chosen:
            meta.append([vid, str(fd / f"{n:05d}.png"), str(md / "puppet_mask.mat"), min(T, Tm), q])
    (root / "samples.json").write_text(json.dumps(meta))
    return {"masks": masks_of, "meta": meta, "H": H, "W": W}


# -- RefCOCO -----------------------------------------------------------------------------------------


def py2_pickle(obj, protocol: int) -> bytes:
    """Pickle lists, dicts, (byte) strings, ints and floats as Python 2 writes them: ``str`` as
    a byte string (``S`` at protocol 0, ``U``/``T`` at protocol 2), no global anywhere."""
    out = bytearray(b"\x80\x02" if protocol == 2 else b"")

    def enc(x):
        if isinstance(x, str):
            x = x.encode("utf-8")
        if isinstance(x, bytes):
            if protocol == 0:
                out.extend(b"S" + repr(x)[1:].encode("ascii") + b"\n")
            elif len(x) < 256:
                out.extend(b"U" + bytes([len(x)]) + x)
            else:
                out.extend(b"T" + struct.pack("<i", len(x)) + x)
        elif isinstance(x, bool) or x is None:
            raise TypeError(x)
        elif isinstance(x, int):
            out.extend(b"I%d\n" % x if protocol == 0 else b"J" + struct.pack("<i", x))
        elif isinstance(x, float):
            out.extend(b"F" + repr(x).encode() + b"\n" if protocol == 0 else b"G" + struct.pack(">d", x))
        elif isinstance(x, list):
            out.extend(b"(l" if protocol == 0 else b"]")
            for v in x:
                enc(v)
                out.extend(b"a")
        elif isinstance(x, dict):
            out.extend(b"(d" if protocol == 0 else b"}")
            for k, v in x.items():
                enc(k)
                enc(v)
                out.extend(b"s")
        else:
            raise TypeError(type(x))

    enc(obj)
    out.extend(b".")
    return bytes(out)


def make_refcoco(root: Path, *, protocol: int = 2, seed: int = 2) -> dict:
    """lichengunc/refer tree for refcoco (unc) with 3 images in ``train2014/`` beside it.

    Quirks: an object of two overlapping polygons (union rule); an uncompressed-RLE
    annotation; a ref split ``testAB`` (counted in testA and testB); sentences with ``sent`` and
    ``raw``; the refs pickle written Python-2 style at ``protocol`` (0 or 2).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    d = root / "refcoco"
    imgs_dir = root / "train2014"
    d.mkdir(parents=True)
    imgs_dir.mkdir(parents=True)
    images, anns, refs = [], [], []
    sizes = {1: (48, 64), 2: (40, 56), 3: (36, 36)}
    for iid, (h, w) in sizes.items():
        name = f"COCO_train2014_{iid:012d}.jpg"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(imgs_dir / name)
        images.append({"id": iid, "file_name": name, "height": h, "width": w})
    polys = {
        10: (1, [[2.0, 2.0, 30.0, 2.0, 30.0, 20.0, 2.0, 20.0], [20.0, 10.0, 50.0, 10.0, 50.0, 40.0, 20.0, 40.0]]),  # overlapping
        11: (1, [[40.0, 30.0, 60.0, 30.0, 50.0, 46.0]]),
        20: (2, [[5.5, 5.5, 25.0, 8.0, 15.0, 30.0]]),
        30: (3, None),
    }
    for aid, (iid, poly) in polys.items():
        h, w = sizes[iid]
        if poly is None:
            m = np.zeros((h, w), np.uint8)
            m[5:20, 8:30] = 1
            counts = []  # uncompressed RLE (column-major run lengths)
            flat = m.flatten(order="F")
            cur, run = 0, 0
            for v in flat:
                if v == cur:
                    run += 1
                else:
                    counts.append(run)
                    cur, run = v, 1
            counts.append(run)
            seg = {"size": [h, w], "counts": counts}
        else:
            seg = poly
        anns.append({"id": aid, "image_id": iid, "category_id": 1 if aid != 20 else 18, "segmentation": seg, "area": 1.0,
                     "iscrowd": 0, "bbox": [0.0, 0.0, 1.0, 1.0]})
    sent = 100
    for rid, (aid, split) in enumerate([(10, "train"), (11, "val"), (20, "testA"), (30, "testAB")]):
        ss = []
        for k in range(2 if aid != 30 else 1):
            ss.append({"tokens": ["the", "thing", str(k)], "raw": f"The thing #{k}, Ref {rid}", "sent_id": sent, "sent": f"the thing {k} ref {rid}"})
            sent += 1
        iid = polys[aid][0]
        refs.append({"image_id": iid, "split": split, "sentences": ss, "file_name": f"COCO_train2014_{iid:012d}_{aid}.jpg",
                     "category_id": 1, "ann_id": aid, "sent_ids": [s["sent_id"] for s in ss], "ref_id": rid})
    (d / "instances.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]}))
    (d / "refs(unc).p").write_bytes(py2_pickle(refs, protocol))
    return {"images": images, "anns": anns, "refs": refs, "sizes": sizes}
