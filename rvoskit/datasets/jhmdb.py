"""JHMDB-Sentences converter (Gavrilyuk et al., CVPR 2018), with MTTR's evaluated frames.

Native layout (``docs/other-benchmarks.md``; mttr2021/MTTR ``datasets/jhmdb_sentences/``)::

    <root>/jhmdb_annotation.txt                               CSV with header: video_id,query
    <root>/Rename_Images/<action>/<video>/00001.png            frames, 1-based
    <root>/puppet_mask/<action>/<video>/puppet_mask.mat        key part_mask, H x W x T

Evaluated frames: MTTR scores three frames per video, drawn once with ``random.sample`` among the
frames that have a mask and shipped as ``datasets/jhmdb_sentences/jhmdb_sentences_samples_metadata.json``
(entries ``[video_id, frame_path, mask_path, video_total_frames, query]``). Pass that file
(``samples``) to evaluate exactly MTTR's and ReferFormer's 2,784 frames. Without it rvoskit draws
three frames per video with a recorded seed; the numbers are then **not comparable** with
published ones (a warning says so, and the manifest records the seed).
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import numpy as np

from rvoskit.datasets.common import image_size, load_json, mask_rows, require
from rvoskit.errors import RvosError
from rvoskit.executor import Executor, imap, resolve_executor
from rvoskit.format import DatasetWriter
from rvoskit.format import rle as rlemod
from rvoskit.progress import progress_bar

FRAMES_PER_VIDEO = 3
DEFAULT_SEED = 0


def read_annotations(path: Path) -> list[tuple[int, str, str]]:
    """``jhmdb_annotation.txt`` as ``(row, video_id, query)`` (row = 0-based data row).

    Raises:
        RvosError: missing file, no ``video_id,query`` header, a short row, a video listed twice
            (MTTR's ground-truth builder asserts unique image ids).
    """
    require(path.is_file(), "missing jhmdb_annotation.txt", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RvosError(f"not valid UTF-8 at byte {exc.start}", file=path) from None
    rows = list(csv.reader(io.StringIO(text)))
    require(bool(rows) and rows[0][:1] == ["video_id"], "expected the header video_id,query", file=path, item="line 1")
    out, seen = [], set()
    for n, row in enumerate(rows[1:]):
        if not row:
            continue
        require(len(row) >= 2, "expected video_id,query", file=path, item=f"line {n + 2}")
        require(row[0] not in seen, f"video {row[0]!r} listed twice", file=path, item=f"line {n + 2}")
        seen.add(row[0])
        out.append((n, row[0], ",".join(row[1:])))
    return out


def read_puppet_mask(path: Path) -> np.ndarray:
    """``puppet_mask.mat`` -> ``uint8 (T, H, W)`` (key ``part_mask``, stored H x W x T, as MTTR reads it).

    Raises:
        RvosError: unreadable file, no ``part_mask`` key, not 3-D.
    """
    import scipy.io

    try:
        m = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises many kinds (IndexError, MatReadError, ...) on a broken file
        raise RvosError(f"unreadable .mat: {type(exc).__name__}: {' '.join(str(exc).split())}", file=path) from None
    require("part_mask" in m, "no 'part_mask' variable", file=path)
    pm = np.asarray(m["part_mask"])
    require(pm.ndim == 3, f"part_mask has shape {pm.shape}, expected H x W x T", file=path)
    return pm.transpose(2, 0, 1)


def _video_job(job: tuple) -> dict:
    vid, frame_dir, mat, chosen = job
    frame_dir = Path(frame_dir)
    require(frame_dir.is_dir(), "missing frame folder", file=frame_dir, item=vid)
    names = sorted(p.stem for p in frame_dir.iterdir() if p.suffix == ".png")
    require(len(names) > 0, "no frames", file=frame_dir, item=vid)
    masks = read_puppet_mask(Path(mat))
    T, H, W = len(names), masks.shape[1], masks.shape[2]
    usable = min(T, masks.shape[0])  # MTTR: "some of the last frames in the video may not have masks"
    if chosen is None:
        return {"video_id": vid, "usable": usable}
    rows_t, counts = [], []
    for n in chosen:  # 1-based frame numbers
        require(1 <= n <= usable, f"evaluated frame {n} has no mask (the video has {usable} frame(s) with masks)", file=mat, item=vid)
        rows_t.append(n - 1)
        counts.append(rlemod.encode(masks[n - 1]))
    fh, fw = image_size(frame_dir / f"{names[0]}.png")
    require((fh, fw) == (H, W), f"masks are {H}x{W}, frames {fh}x{fw}", file=mat, item=vid)
    return {"video_id": vid, "names": names, "H": H, "W": W, "annotated": rows_t, "rows": mask_rows(vid, [1] * len(rows_t), rows_t, counts, H, W)}


def read_samples_metadata(path: Path) -> dict[str, list[int]]:
    """MTTR's samples metadata JSON -> ``{video_id: [1-based frame numbers]}`` (order kept).

    Raises:
        RvosError: not a list of ``[video_id, frame_path, mask_path, total_frames, query]``.
    """
    data = load_json(path, what="samples metadata JSON")
    require(isinstance(data, list), "expected a list of [video_id, frame_path, mask_path, total_frames, query]", file=path)
    out: dict[str, list[int]] = {}
    for i, e in enumerate(data):
        require(isinstance(e, list) and len(e) >= 2 and isinstance(e[0], str) and isinstance(e[1], str),
                "expected [video_id, frame_path, ...]", file=path, item=f"entry {i}")
        stem = e[1].replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
        try:
            n = int(stem)
        except ValueError:
            raise RvosError(f"frame path {e[1]!r} does not end in a frame number", file=path, item=f"entry {i}") from None
        frames = out.setdefault(e[0], [])
        require(n not in frames, f"frame {n} of {e[0]} listed twice", file=path, item=f"entry {i}")
        frames.append(n)
    return out


def convert_jhmdb(
    root: str | Path,
    out: str | Path,
    *,
    samples: str | Path | None = None,
    seed: int = DEFAULT_SEED,
    workers: int = 1,
    executor: str | Executor | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Convert JHMDB-Sentences (evaluation only) to the common format (module docstring).

    One video per annotation row (frames referenced in ``Rename_Images``), one object
    (``obj_id`` 1, category = the action folder), one expression (``exp_id`` = the row), and
    masks on the three evaluated frames only (``videos.annotated_frames``).

    Args:
        root: the ``jhmdb_sentences`` folder.
        out: output dataset directory.
        samples: MTTR's ``jhmdb_sentences_samples_metadata.json`` (recommended); every video of
            the annotation file must be in it.
        seed: seed of the draw without ``samples`` (``random.Random(seed).sample`` per video, in
            annotation order, among the frames with masks).
        workers, executor, ray_address: see :mod:`rvoskit.executor`.
        overwrite: replace an existing ``out``.
        show_progress: rich progress bar.

    Returns:
        ``out``.

    Raises:
        RvosError: bad input (one line naming the file and item); nothing is left at ``out``.
    """
    ex = resolve_executor(executor, workers, ray_address)
    root = Path(root)
    ann_path = root / "jhmdb_annotation.txt"
    ann = read_annotations(ann_path)
    require(bool(ann), "no annotation rows", file=ann_path)
    frames_root, masks_root = root / "Rename_Images", root / "puppet_mask"
    require(frames_root.is_dir(), "missing frame folder Rename_Images", file=frames_root)
    require(masks_root.is_dir(), "missing puppet_mask folder", file=masks_root)
    wanted = {v for _, v, _ in ann}
    frame_dirs = {p.name: p for p in sorted(frames_root.glob("*/*")) if p.is_dir() and p.name in wanted}
    mats = {p.parent.name: p for p in sorted(masks_root.glob("*/*/puppet_mask.mat")) if p.parent.name in wanted}
    for row, vid, _ in ann:
        require(vid in frame_dirs, "no Rename_Images/<action>/<video> folder for this video", file=frames_root, item=vid)
        require(vid in mats, "no puppet_mask/<action>/<video>/puppet_mask.mat for this video", file=masks_root, item=vid)
    warnings = []
    if samples is not None:
        samples = Path(samples)
        chosen = read_samples_metadata(samples)
        missing = [v for _, v, _ in ann if v not in chosen]
        require(not missing, f"{len(missing)} video(s) of jhmdb_annotation.txt are not in the samples file, e.g. {missing[:3]}", file=samples)
    else:
        usable = {r["video_id"]: r["usable"] for _, r in imap(_video_job, [(v, str(frame_dirs[v]), str(mats[v]), None) for _, v, _ in ann], ex)}
        rng = random.Random(seed)
        chosen = {}
        for _, v, _ in ann:
            require(usable[v] >= FRAMES_PER_VIDEO, f"only {usable[v]} frame(s) with masks, {FRAMES_PER_VIDEO} are drawn", file=mats[v], item=v)
            chosen[v] = sorted(rng.sample(range(1, usable[v] + 1), FRAMES_PER_VIDEO))
        warnings.append(f"evaluated frames drawn with seed {seed}, not MTTR's: numbers are NOT comparable with published "
                        "JHMDB-Sentences results; pass --samples jhmdb_sentences_samples_metadata.json (from MTTR) for those")
    with DatasetWriter(out, dataset="jhmdb", split="test", frame_root=frames_root.resolve(), source_root=root,
                       options={"samples": str(samples) if samples else None, "seed": None if samples else seed, "workers": workers},
                       overwrite=overwrite) as w:
        w.add_input(ann_path)
        if samples is not None:
            w.add_input(samples)
        w.set_extra("evaluated_frames", {"source": "samples" if samples else "drawn", "seed": None if samples else seed,
                                         "comparable_with_mttr": samples is not None})
        if warnings:
            w.set_extra("warnings", warnings)
        jobs = [(v, str(frame_dirs[v]), str(mats[v]), sorted(chosen[v])) for v in sorted(v for _, v, _ in ann)]
        text = {v: (row, q) for row, v, q in ann}
        with progress_bar(disable=not show_progress) as bar:
            task = bar.add_task("jhmdb", total=len(jobs))
            for _, r in imap(_video_job, jobs, ex, ordered=True):
                vid = r["video_id"]
                action = frame_dirs[vid].parent.name
                w.add_video({"video_id": vid, "split": "test", "num_frames": len(r["names"]), "height": r["H"], "width": r["W"],
                             "frames": r["names"], "frame_files": [f"{action}/{vid}/{n}.png" for n in r["names"]],
                             "annotated_frames": r["annotated"]})
                w.add_objects([{"video_id": vid, "obj_id": 1, "anno_id": None, "category": action}])
                row, q = text[vid]
                w.add_expressions([{"video_id": vid, "exp_id": str(row), "exp_index": row, "text": q, "obj_ids": [1], "anno_ids": None,
                                    "annotator": None, "kind": None}])
                w.add_masks(vid, r["rows"])
                bar.advance(task)
    return Path(out)
