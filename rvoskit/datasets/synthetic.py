"""Synthetic RVOS datasets in each native layout (MeViS, Ref-YouTube-VOS, Ref-DAVIS17).

For tests, benchmarks and dry runs: moving, occluding ellipses on a textured background, with
masks that appear and disappear, written exactly as the native datasets lay them out
(``docs: dataset-formats.md`` §1-3). Deterministic for a given seed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rvoskit.datasets.submission import label_png_bytes
from rvoskit.format import rle as rlemod

@dataclass
class SyntheticVideo:
    """One generated video: ``labels uint8 (T, H, W)`` (0 = background, k = object k), names, texts."""

    video_id: str
    frames: list[str]
    labels: np.ndarray
    obj_ids: list[int]
    present: np.ndarray  # bool (T, K): object annotated (visible) on frame t


def make_video(rng: np.random.Generator, video_id: str, *, num_frames: int, height: int, width: int, num_objects: int,
               frame_step: int = 1, start: int = 0) -> SyntheticVideo:
    """Generate one video's label maps: ellipses moving on straight paths, each absent on a random
    stretch of frames (so absence is exercised), later objects drawn over earlier ones."""
    T, H, W, K = num_frames, height, width, num_objects
    labels = np.zeros((T, H, W), np.uint8)
    present = np.zeros((T, K), bool)
    for k in range(K):
        c0 = rng.uniform([0.2 * W, 0.2 * H], [0.8 * W, 0.8 * H])
        vel = rng.uniform(-0.01, 0.01, 2) * np.array([W, H])
        axes = rng.uniform(0.05, 0.18, 2) * np.array([W, H])
        gone = (int(rng.integers(0, T)), int(rng.integers(0, max(1, T // 4)))) if rng.random() < 0.5 else (0, 0)
        for t in range(T):
            if gone[0] <= t < gone[0] + gone[1]:
                continue
            c = c0 + vel * t
            cv2.ellipse(labels[t], (int(c[0]), int(c[1])), (max(1, int(axes[0])), max(1, int(axes[1]))),
                        float(rng.uniform(0, 10)), 0, 360, int(k + 1), -1)
    for k in range(K):
        present[:, k] = (labels == k + 1).reshape(T, -1).any(1)
    frames = [f"{start + t * frame_step:05d}" for t in range(T)]
    return SyntheticVideo(video_id, frames, labels, list(range(1, K + 1)), present)


def _write_frames(folder: Path, video: SyntheticVideo, rng: np.random.Generator, link_frames: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    T, H, W = video.labels.shape
    base = rng.integers(60, 200, (H // 8 + 1, W // 8 + 1, 3)).astype(np.uint8)
    base = cv2.resize(base, (W, H), interpolation=cv2.INTER_LINEAR)
    colours = rng.integers(0, 256, (len(video.obj_ids) + 1, 3)).astype(np.uint8)
    first = None
    for t, name in enumerate(video.frames):
        path = folder / f"{name}.jpg"
        if link_frames and first is not None:
            os.link(first, path)
            continue
        img = base.copy()
        lab = video.labels[t]
        m = lab > 0
        img[m] = colours[lab[m]]
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        first = path


def _write_palette_png(path: Path, label: np.ndarray) -> None:
    path.write_bytes(label_png_bytes(label))


def _text(rng: np.random.Generator, k: int) -> str:
    adj = ["red", "small", "fast", "left", "moving", "round", "bright", "tiny"]
    return f"the {adj[int(rng.integers(len(adj)))]} object number {k} moving across the frame"


def make_mevis(root: str | Path, *, split: str = "train", num_videos: int = 3, num_frames: int = 8, height: int = 96,
               width: int = 128, num_objects: int = 3, seed: int = 0, with_masks: bool | None = None,
               link_frames: bool = False, no_target: bool = True) -> Path:
    """Write a MeViS split: ``<root>/<split>/{JPEGImages,meta_expressions.json,mask_dict.json}``.

    Expressions: one per object, one multi-object expression per video (all objects), and a
    no-target expression (``obj_id: []``) when ``no_target``. ``anno_id`` values are global
    (unique over the split), ``obj_id`` per video from 0, as in MeViS. Masks are written only
    for ``train``/``valid_u`` unless ``with_masks`` says otherwise.

    Returns:
        The MeViS root.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    with_masks = split in ("train", "valid_u") if with_masks is None else with_masks
    sdir = root / split
    meta: dict = {"videos": {}}
    mask_dict: dict = {}
    anno = 0
    for i in range(num_videos):
        vid = f"{rng.integers(0, 2**48):012x}"
        v = make_video(rng, vid, num_frames=num_frames, height=height, width=width, num_objects=num_objects)
        _write_frames(sdir / "JPEGImages" / vid, v, rng, link_frames)
        annos = []
        for k in v.obj_ids:
            annos.append(anno)
            segs = []
            for t in range(num_frames):
                if not v.present[t, k - 1]:
                    segs.append(None)
                    continue
                c = rlemod.encode(v.labels[t] == k)
                segs.append({"size": [height, width], "counts": c.decode("ascii")})
            mask_dict[str(anno)] = segs
            anno += 1
        exps = {}
        for j, k in enumerate(v.obj_ids):
            exps[str(j)] = {"exp": _text(rng, k), "obj_id": [k - 1], "anno_id": [annos[j]]}
        exps[str(len(exps))] = {"exp": "all the objects moving", "obj_id": [k - 1 for k in v.obj_ids], "anno_id": annos}
        if no_target:
            exps[str(len(exps))] = {"exp": "the purple giraffe that is not there", "obj_id": [], "anno_id": []}
        if not with_masks:
            exps = {e: {"exp": d["exp"]} for e, d in exps.items()}
        meta["videos"][vid] = {"frames": v.frames, "expressions": exps}
    sdir.mkdir(parents=True, exist_ok=True)
    (sdir / "meta_expressions.json").write_text(json.dumps(meta), encoding="utf-8")
    if with_masks:
        (sdir / "mask_dict.json").write_text(json.dumps(mask_dict), encoding="utf-8")
    return root


def make_refytvos(root: str | Path, *, num_videos: int = 3, num_frames: int = 6, height: int = 96, width: int = 128,
                  num_objects: int = 2, seed: int = 0, valid_videos: int = 2, test_videos: int = 1,
                  link_frames: bool = False) -> Path:
    """Write a Ref-YouTube-VOS root: train (JPEGImages, palette Annotations, meta.json), the three
    ``meta_expressions/{train,valid,test}`` files (valid meta also lists the test videos, as the real
    one does) and ``valid/JPEGImages`` for the valid videos only. Frame steps are irregular and some
    videos start after ``00000``; obj_ids are strings.

    Returns:
        The Ref-YouTube-VOS root.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    meta_tr: dict = {"videos": {}}
    meta_json: dict = {"videos": {}}
    for i in range(num_videos):
        vid = f"{rng.integers(0, 2**40):010x}"
        v = make_video(rng, vid, num_frames=num_frames, height=height, width=width, num_objects=num_objects,
                       frame_step=int(rng.choice([5, 5, 3, 10])), start=int(rng.choice([0, 0, 15])))
        _write_frames(root / "train" / "JPEGImages" / vid, v, rng, link_frames)
        adir = root / "train" / "Annotations" / vid
        adir.mkdir(parents=True, exist_ok=True)
        for t, name in enumerate(v.frames):
            _write_palette_png(adir / f"{name}.png", v.labels[t])
        meta_json["videos"][vid] = {"objects": {str(k): {"category": "blob", "frames": [f for t, f in enumerate(v.frames) if v.present[t, k - 1]]}
                                                for k in v.obj_ids}}
        exps = {}
        for k in v.obj_ids:
            for _ in range(2):
                exps[str(len(exps))] = {"exp": _text(rng, k), "obj_id": str(k)}
        meta_tr["videos"][vid] = {"expressions": exps, "frames": v.frames}
    meta_va: dict = {"videos": {}}
    meta_te: dict = {"videos": {}}
    for i in range(valid_videos + test_videos):
        vid = f"{rng.integers(0, 2**40):010x}"
        v = make_video(rng, vid, num_frames=num_frames, height=height, width=width, num_objects=1, frame_step=5)
        entry = {"expressions": {"0": {"exp": _text(rng, 1)}, "1": {"exp": _text(rng, 1)}}, "frames": v.frames}
        meta_va["videos"][vid] = entry
        if i < valid_videos:
            _write_frames(root / "valid" / "JPEGImages" / vid, v, rng, link_frames)
        else:
            meta_te["videos"][vid] = entry
    for split, m in (("train", meta_tr), ("valid", meta_va), ("test", meta_te)):
        d = root / "meta_expressions" / split
        d.mkdir(parents=True, exist_ok=True)
        (d / "meta_expressions.json").write_text(json.dumps(m), encoding="utf-8")
    (root / "train" / "meta.json").write_text(json.dumps(meta_json), encoding="utf-8")
    return root


def make_refdavis(root: str | Path, *, num_videos: int = 3, num_frames: int = 6, height: int = 96, width: int = 128,
                  num_objects: int = 2, seed: int = 0, void: bool = True, link_frames: bool = False) -> Path:
    """Write a DAVIS 2017 root with the Ref-DAVIS17 text files: ``JPEGImages/480p``,
    ``Annotations/480p`` and ``Annotations_unsupervised/480p`` (palette PNGs; void 255 borders),
    ``ImageSets/2017/{train,val}.txt``, ``davis_semantics.json`` and
    ``davis_text_annotations/Davis17_annot{1,2}[_full_video].txt`` (annotator 2 in latin-1 with a
    non-ASCII character; one of the three known video-name typos used).

    Returns:
        The DAVIS root.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = ["classic-car", "dogs-scale", "motorbike", "judo", "bike-packing", "blackswan"]
    typo = {"classic-car": "clasic-car", "dogs-scale": "dog-scale", "motorbike": "motor-bike"}
    seqs = names[:num_videos]
    text = {("1", False): [], ("1", True): [], ("2", False): [], ("2", True): []}
    sem = {}
    for s in seqs:
        v = make_video(rng, s, num_frames=num_frames, height=height, width=width, num_objects=num_objects)
        _write_frames(root / "JPEGImages" / "480p" / s, v, rng, link_frames)
        for folder, perm in (("Annotations", None), ("Annotations_unsupervised", True)):
            adir = root / folder / "480p" / s
            adir.mkdir(parents=True, exist_ok=True)
            for t, name in enumerate(v.frames):
                lab = v.labels[t].copy()
                if perm:  # unsupervised labels: a different id assignment, as in the real data
                    lab = np.where(lab > 0, (num_objects + 1 - lab.astype(int)), 0).astype(np.uint8)
                if void:
                    edge = cv2.morphologyEx((lab > 0).astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
                    lab = lab.copy()
                    lab[edge & (lab == 0)] = 255
                _write_palette_png(adir / f"{name}.png", lab)
        sem[s] = {str(k): "blob" for k in v.obj_ids}
        for k in v.obj_ids:
            name = typo.get(s, s) if k == 1 else s
            text[("1", False)].append(f'{name} {k} "the blob {k} in the first frame"')
            text[("1", True)].append(f'{s} {k} "blob {k} moving around the whole video"')
            text[("2", False)].append(f'{s} {k} "a café-coloured blob {k}"')
            text[("2", True)].append(f'{s} {k} "the blob {k} that keeps moving"')
    isets = root / "ImageSets" / "2017"
    isets.mkdir(parents=True, exist_ok=True)
    (isets / "train.txt").write_text("\n".join(seqs[:-1]) + "\n")
    (isets / "val.txt").write_text(seqs[-1] + "\n")
    (root / "davis_semantics.json").write_text(json.dumps(sem))
    tdir = root / "davis_text_annotations"
    tdir.mkdir(parents=True, exist_ok=True)
    for (ann, full), lines in text.items():
        fname = f"Davis17_annot{ann}{'_full_video' if full else ''}.txt"
        (tdir / fname).write_bytes(("\n".join(lines) + "\n").encode("utf-8" if ann == "1" else "latin-1"))
    return root
