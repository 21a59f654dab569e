"""Synthetic selection data with a planted answer, for tests, benchmarks and smoke runs.

Every track carries a *colour*: its object tokens are Gaussian noise plus ``strength`` times a
fixed random unit direction of that colour (256-d, the same in every video). Every expression
names one colour present in its video ("the red object") and refers to exactly the tracks of that
colour, so a model can only be right by linking the planted token direction to the planted word.
Masks are small moving boxes; the ground-truth objects are the tracks of the first source, so the
OR-merge of that source's referred tracks is exactly the expression's ground truth.

``make_synthetic`` writes a common-format dataset (``DatasetWriter``), one track store per source
(``TrackStore.write_video``) and a labels directory (``labels.parquet`` + ``labels.json``) the way
``rvoskit pseudolabel`` lays them out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rvoskit.format import DatasetWriter, write_table
from rvoskit.format import rle as rlemod
from rvoskit.format.trackstore import TrackStore

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
TEMPLATES = ("the {} object", "a {} thing moving around", "{} one", "the object that is {}")


def colour_directions(dim: int = 256, n: int = len(COLOURS), seed: int = 1234) -> np.ndarray:
    """``(n, dim)`` float32 unit vectors, one per colour (fixed by ``seed``)."""
    d = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _box_masks(rng: np.random.Generator, T: int, H: int, W: int) -> np.ndarray:
    h, w = rng.integers(2, max(3, H // 2)), rng.integers(2, max(3, W // 2))
    y, x = rng.integers(0, H - h), rng.integers(0, W - w)
    dy, dx = rng.integers(-1, 2), rng.integers(-1, 2)
    m = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        yy, xx = int(np.clip(y + dy * t, 0, H - h)), int(np.clip(x + dx * t, 0, W - w))
        m[t, yy : yy + h, xx : xx + w] = 1
    return m


def _track_rows(video_id: str, track_id: int, masks: np.ndarray, kind: str, obj_id: int | None) -> list[dict]:
    T, H, W = masks.shape
    counts = rlemod.encode_batch(masks)
    area, bbox = rlemod.area_bbox(counts, H, W)
    return [
        {
            "video_id": video_id,
            "track_id": track_id,
            "frame_idx": t,
            "prompt_kind": kind,
            "prompt_frame_idx": 0,
            "expression_id": None,
            "obj_id": obj_id,
            "stability_score": 1.0,
            "predicted_iou": 1.0,
            "height": H,
            "width": W,
            "rle": counts[t],
            "area": int(area[t]),
            "bbox": bbox[t].tolist(),
        }
        for t in range(T)
    ]


def make_synthetic(
    root: str | Path,
    *,
    videos: int = 8,
    tracks: Sequence[int] | dict[str, int] = (("gt", 3), ("grid", 4)),
    frames: int | tuple[int, int] = 16,
    expressions: int = 3,
    colours: int = 4,
    strength: float = 3.0,
    size: tuple[int, int] = (12, 16),
    float16: bool = False,
    seed: int = 0,
    video_prefix: str = "v",
) -> dict:
    """Write a synthetic dataset, track stores and labels under ``root``.

    Args:
        root: output folder (``dataset/``, ``tracks_<source>/``, ``labels/`` are created in it).
        videos: number of videos.
        tracks: ``{source: tracks per video}`` (or pairs); the first source's tracks are the
            ground-truth objects.
        frames: frames per video, or a ``(min, max)`` range (inclusive) for varied lengths.
        expressions: expressions per video (each names a colour present in the video).
        colours: how many of :data:`COLOURS` are used.
        strength: norm of the planted direction added to each token (noise has unit variance per dim).
        size: frame ``(H, W)``.
        float16: store tokens as float16.
        seed: random seed (data); the colour directions are fixed.
        video_prefix: video ids are ``<prefix><index>``.

    Returns:
        ``{"dataset", "tracks": {source: dir}, "labels", "expressions"}`` (paths as strings).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    sources = dict(tracks)
    dirs = colour_directions(256, colours)
    H, W = size
    stores = {s: TrackStore(root / f"tracks_{s}", create=True, meta={"synthetic": True, "source": s}) for s in sources}
    label_rows: list[dict] = []
    n_expr = 0
    first = next(iter(sources))
    with DatasetWriter(root / "dataset", dataset="synthetic", split="train", frame_root=root / "frames", overwrite=True) as w:
        for v in range(videos):
            vid = f"{video_prefix}{v:04d}"
            T = int(frames) if np.isscalar(frames) else int(rng.integers(frames[0], frames[1] + 1))
            names = [f"{t:05d}" for t in range(T)]
            w.add_video({"video_id": vid, "split": "train", "num_frames": T, "height": H, "width": W, "frames": names, "frame_files": [f"{vid}/{n}.jpg" for n in names]})
            colour_of: dict[str, np.ndarray] = {}
            for s, n in sources.items():
                col = rng.integers(0, colours, size=n)
                col[: min(n, 2)] = rng.choice(colours, size=min(n, 2), replace=False)  # at least two colours
                colour_of[s] = col
                tok = rng.standard_normal((n, T, 256)).astype(np.float32) + strength * dirs[col][:, None, :]
                rows, masks_by_track = [], []
                for t in range(n):
                    m = _box_masks(rng, T, H, W)
                    masks_by_track.append(m)
                    rows += _track_rows(vid, t, m, "gt" if s == first else "grid", t + 1 if s == first else None)
                stores[s].write_video(vid, rows, tok.astype(np.float16) if float16 else tok, np.arange(n, dtype=np.int32))
                if s == first:
                    w.add_objects([{"video_id": vid, "obj_id": t + 1, "anno_id": None, "category": COLOURS[c]} for t, c in enumerate(col)])
                    mrows = []
                    for t, m in enumerate(masks_by_track):
                        counts = rlemod.encode_batch(m)
                        area, bbox = rlemod.area_bbox(counts, H, W)
                        mrows += [{"video_id": vid, "obj_id": t + 1, "frame_idx": f, "height": H, "width": W, "rle": counts[f], "area": int(area[f]), "bbox": bbox[f].tolist()} for f in range(T)]
                    w.add_masks(vid, mrows)
            present = sorted(set(colour_of[first].tolist()))
            exprs = []
            for k in range(expressions):
                c = present[k % len(present)] if k < len(present) else int(rng.choice(present))
                text = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(COLOURS[c])
                obj_ids = [t + 1 for t, cc in enumerate(colour_of[first]) if cc == c]
                exprs.append({"video_id": vid, "exp_id": str(k), "exp_index": k, "text": text, "obj_ids": obj_ids, "anno_ids": None, "annotator": None, "kind": None})
                eid = f"{vid}/{k}"
                for s, col in colour_of.items():
                    for t, cc in enumerate(col):
                        hit = float(cc == c)
                        label_rows.append(
                            {"expression_id": eid, "video_id": vid, "source": s, "track_id": t, "obj_ids": obj_ids, "miou_per_obj": [hit] * len(obj_ids), "miou_max": hit, "miou_union": hit, "label": bool(hit)}
                        )
            w.add_expressions(exprs)
            n_expr += len(exprs)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    write_table(root / "labels" / "labels.parquet", "labels", label_rows)
    (root / "labels" / "labels.json").write_text(json.dumps({"threshold": 0.7, "target": "max", "synthetic": True}) + "\n")
    return {
        "dataset": str(root / "dataset"),
        "tracks": {s: str(root / f"tracks_{s}") for s in sources},
        "labels": str(root / "labels"),
        "expressions": n_expr,
    }


def tracks_for_dataset(
    dataset: str | Path,
    root: str | Path,
    *,
    sources: Sequence[str] = ("gt", "grid"),
    grid: int = 3,
    seed: int = 0,
) -> dict[str, str]:
    """Track stores for an existing common-format dataset, without SAM2 (tests and dry runs of the
    train / score workflow on generated data; ``rvoskit tracks generate`` makes the real ones).

    * ``gt``: one track per ground-truth object (its masks; ``obj_id`` set), when the dataset has
      masks; a dataset without masks (a valid / test split) gets no ``gt`` store.
    * ``grid``: ``grid`` random moving boxes per video.

    Object tokens are Gaussian noise plus a planted direction per object (``gt``) or a random colour
    direction (``grid``): they have SAM2's shape ``(N, T, 256)`` and carry no meaning.

    Args:
        dataset: the dataset directory; root: where ``tracks_<source>/`` are written.
        sources: which of ``"gt"``, ``"grid"`` to write; grid: boxes per video; seed: random seed.

    Returns:
        ``{source: store directory}`` for the stores written.
    """
    from rvoskit.format import open_dataset

    ds = open_dataset(dataset)
    root = Path(root)
    rng = np.random.default_rng(seed)
    dirs = colour_directions(256)
    has_masks = len(ds.masks(columns=["video_id"])) > 0
    wanted = [s for s in sources if s != "gt" or has_masks]
    stores = {s: TrackStore(root / f"tracks_{s}", create=True, meta={"synthetic": True, "source": s}) for s in wanted}
    for vid in ds.videos["video_id"]:
        v = ds.video(vid)
        T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
        for s, store in stores.items():
            if s == "gt":
                objs = ds.object_masks(vid)
                masks = [objs[k] for k in sorted(objs)]
                obj_ids = sorted(objs)
            else:
                masks = [_box_masks(rng, T, H, W) for _ in range(grid)]
                obj_ids = [None] * grid
            if not masks:
                store.write_video(vid, [], np.zeros((0, T, 256), np.float32), np.zeros(0, np.int32))
                continue
            rows = []
            for t, (m, o) in enumerate(zip(masks, obj_ids)):
                rows += _track_rows(vid, t, m, "gt" if s == "gt" else "grid", o)
            col = rng.integers(0, len(dirs), size=len(masks))
            tok = rng.standard_normal((len(masks), T, 256)).astype(np.float32) + 3.0 * dirs[col][:, None, :]
            store.write_video(vid, rows, tok, np.arange(len(masks), dtype=np.int32))
    return {s: str(root / f"tracks_{s}") for s in wanted}
