"""A2D-Sentences converter (Gavrilyuk et al., CVPR 2018), reproducing MTTR's sample list.

Native layout (``docs/other-benchmarks.md``; mttr2021/MTTR ``datasets/a2d_sentences/
a2d_sentences_dataset.py`` and ``create_gt_in_coco_format.py``)::

    <root>/Release/videoset.csv                  no header; column 0 = video id, column 8 = 0 train / 1 test
    <root>/Release/clips320H/<vid>.mp4           (or Release/CLIPS320/, the name MTTR's README uses)
    <root>/Release/pngs320H/<vid>/00001.png      already extracted frames (optional, used when present)
    <root>/text_annotations/a2d_annotation.txt   CSV with header: video_id,instance_id,query
    <root>/text_annotations/a2d_missed_videos.txt
    <root>/text_annotations/a2d_annotation_with_instances/<vid>/<frame:05d>.h5

What MTTR does, and so rvoskit:

- videos of the split (column 8) minus ``a2d_missed_videos.txt``; text rows of those videos; the
  ``'1 (copy)'`` row (video T6bNPuKV-wY) dropped;
- the h5 files are the annotated frames (file name = 1-based frame number); ``instance`` lists
  the instance ids present; ``reMask`` is ``(W, H)`` for one instance and ``(N, W, H)`` for
  several (MATLAB column-major), transposed to ``(H, W)``; a duplicated instance id takes its
  first position (``list.index``), extra masks beyond the ids are ignored;
- an (expression, frame) pair is a sample only where the frame's h5 lists the expression's
  instance, which here is: the object has a mask row on that frame.

Frames: each clip is decoded once with PyAV (what ``torchvision.io.read_video`` uses) and every
decoded frame is written as ``frames/<vid>/<n:05d>.png`` (n = 1-based decoded index, so frame
``n`` is MTTR's ``video_frames[n - 1]``; no resampling). With ``Release/pngs320H`` present the
extracted frames are referenced instead. Decoding is resumable: clips are decoded into
``.<out>.partial/`` beside the output (one folder per clip renamed into place, then a marker) and
a rerun of the same conversion skips the clips already there.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np

from rvoskit.datasets.common import first_few, image_size, mask_rows, require
from rvoskit.errors import RvosError
from rvoskit.executor import Executor, imap, resolve_executor
from rvoskit.format import DatasetWriter
from rvoskit.format import rle as rlemod
from rvoskit.format.atomic import safe_name
from rvoskit.progress import progress_bar

SPLITS = {"train": 0, "test": 1}
COPY_ROW = "1 (copy)"
CLIP_DIRS = ("clips320H", "CLIPS320")


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise RvosError(f"the A2D/JHMDB converters need the {module!r} package: pip install 'rvoskit[datasets]'") from None


def read_videoset(path: Path) -> list[tuple[str, int]]:
    """``Release/videoset.csv`` rows as ``(video_id, subset)`` (no header; subset = 9th column).

    Raises:
        RvosError: missing file, a row with fewer than 9 columns or a subset that is not an integer.
    """
    require(path.is_file(), "missing videoset.csv", file=path)
    out = []
    with open(path, newline="", encoding="utf-8", errors="strict") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            require(len(row) >= 9, f"expected 9 columns (vid, ..., subset), got {len(row)}", file=path, item=f"line {n}")
            try:
                out.append((row[0].strip(), int(float(row[8]))))
            except ValueError:
                raise RvosError(f"subset {row[8]!r} is not 0 or 1", file=path, item=f"line {n}") from None
    return out


def read_text_annotations(path: Path) -> list[tuple[int, str, str, str]]:
    """``a2d_annotation.txt`` as ``(row, video_id, instance_id, query)`` in file order (row = 0-based data row).

    Raises:
        RvosError: missing file, no ``video_id,instance_id,query`` header, a short row.
    """
    require(path.is_file(), "missing a2d_annotation.txt", file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RvosError(f"not valid UTF-8 at byte {exc.start}", file=path) from None
    rows = list(csv.reader(io.StringIO(text)))
    require(bool(rows) and [c.strip() for c in rows[0][:2]] == ["video_id", "instance_id"],
            "expected the header video_id,instance_id,query", file=path, item="line 1")
    out = []
    for n, row in enumerate(rows[1:]):
        if not row:
            continue
        require(len(row) >= 3, f"expected video_id,instance_id,query, got {len(row)} field(s)", file=path, item=f"line {n + 2}")
        out.append((n, row[0], row[1], ",".join(row[2:]) if len(row) > 3 else row[2]))
    return out


def read_h5_frame(path: Path, size: tuple[int, int] | None = None) -> tuple[list[int], dict[int, np.ndarray]]:
    """One A2D ``<frame>.h5``: its instance ids (file order) and ``{instance_id: (H, W) uint8 mask}``.

    ``reMask`` is 2-D ``(W, H)`` for one instance and ``(N, W, H)`` otherwise (h5py view of a
    MATLAB file); masks are transposed to ``(H, W)``. A duplicated id keeps its first position;
    masks beyond the ids are ignored (both as MTTR).

    Raises:
        RvosError: unreadable file, missing ``instance``/``reMask``, fewer masks than ids, or a
            mask size other than ``size`` (when given).
    """
    h5py = _need("h5py")
    try:
        with h5py.File(path, "r") as f:
            require("instance" in f and "reMask" in f, "missing key 'instance' or 'reMask'", file=path)
            ids = [int(i) for i in np.asarray(f["instance"]).reshape(-1)]
            m = np.asarray(f["reMask"])
    except RvosError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, TypeError, ... on a broken file
        raise RvosError(f"unreadable h5: {' '.join(str(exc).split())}", file=path) from None
    if m.ndim == 2:
        m = m[None]
    require(m.ndim == 3, f"reMask has shape {m.shape}, expected (W, H) or (N, W, H)", file=path)
    out: dict[int, np.ndarray] = {}
    for pos, i in enumerate(ids):
        if i in out:
            continue  # a duplicated id: list.index gives the first position
        require(pos < m.shape[0], f"instance {i} at position {pos} but reMask holds {m.shape[0]} mask(s)", file=path, item=f"instance {i}")
        mask = m[pos].T
        if size is not None:
            require(mask.shape == size, f"mask {mask.shape[0]}x{mask.shape[1]} (after the transpose) differs from the frame {size[0]}x{size[1]}",
                    file=path, item=f"instance {i}")
        out[i] = mask
    return ids, out


def decode_clip(path: Path) -> list[np.ndarray]:
    """Every frame of a clip's first video stream, in decode order, as ``uint8 (H, W, 3)`` RGB.

    The decoder ``torchvision.io.read_video`` uses (PyAV / FFmpeg); no frame is dropped or
    repeated, so index ``n - 1`` is A2D frame ``n``.

    Raises:
        RvosError: unreadable or empty clip.
    """
    av = _need("av")
    try:
        with av.open(str(path)) as c:
            frames = [fr.to_ndarray(format="rgb24") for fr in c.decode(video=0)]
    except Exception as exc:  # FFmpeg errors, a file without a video stream, ...
        raise RvosError(f"unreadable clip: {' '.join(str(exc).split())}", file=path) from None
    require(len(frames) > 0, "the clip has no video frame", file=path)
    return frames


def _decoded_frames(vid: str, clip: Path, work: Path, fmt: str) -> tuple[list[str], list[str], int, int]:
    """Decode a clip into ``<work>/frames/<safe vid>/<n:05d>.<fmt>`` once: a video whose marker
    ``<work>/done/<safe vid>.json`` exists is not decoded again (a killed conversion resumes).
    The frames are written in a ``.tmp-`` folder renamed into place, then the marker."""
    import tempfile

    import cv2

    sub = safe_name(vid)
    marker = work / "done" / f"{sub}.json"
    if marker.is_file():
        m = json.loads(marker.read_text(encoding="utf-8"))
        return m["names"], m["files"], m["H"], m["W"]
    frames = decode_clip(clip)
    H, W = frames[0].shape[:2]
    final = work / "frames" / sub
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{sub}.tmp-", dir=final.parent))
    try:
        names, files = [], []
        params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if fmt == "png" else [cv2.IMWRITE_JPEG_QUALITY, 95]
        for n, fr in enumerate(frames, 1):
            require(fr.shape[:2] == (H, W), "frame sizes change within the clip", file=clip, item=f"{vid} frame {n}")
            name = f"{n:05d}"
            if not cv2.imwrite(str(tmp / f"{name}.{fmt}"), cv2.cvtColor(fr, cv2.COLOR_RGB2BGR), params):
                raise RvosError("cannot write frame", file=final / f"{name}.{fmt}", item=vid)
            names.append(name)
            files.append(f"frames/{sub}/{name}.{fmt}")
        if final.exists():  # frames of a run killed before its marker
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    marker.parent.mkdir(parents=True, exist_ok=True)
    mtmp = marker.with_name(f".{marker.name}.tmp-{os.getpid()}")
    mtmp.write_text(json.dumps({"video_id": vid, "names": names, "files": files, "H": int(H), "W": int(W)}), encoding="utf-8")
    os.replace(mtmp, marker)
    return names, files, int(H), int(W)


def _video_job(job: tuple) -> dict:
    """Worker: frames (decode + write, or list) and the h5 masks of one video."""
    import cv2

    vid, clip, png_dir, h5_dir, frames_out, fmt = job
    if png_dir is not None:
        png_dir = Path(png_dir)
        require(png_dir.is_dir(), "missing frame folder", file=png_dir, item=vid)
        entries = list(png_dir.iterdir())
        names = sorted(p.stem for p in entries if p.suffix.lower() in (".png", ".jpg"))
        require(len(names) > 0, "no frames", file=png_dir, item=vid)
        ext = {p.stem: p.name for p in entries}
        files = [f"{vid}/{ext[n]}" for n in names]
        H, W = image_size(png_dir / ext[names[0]])
    else:
        names, files, H, W = _decoded_frames(vid, Path(clip), Path(frames_out), fmt)
    T = len(names)
    objs, ts, counts = [], [], []
    annotated = []
    ids_seen: set[int] = set()
    h5_dir = Path(h5_dir)
    for p in sorted(h5_dir.glob("*.h5")) if h5_dir.is_dir() else []:
        try:
            n = int(p.stem)
        except ValueError:
            raise RvosError("h5 file name is not a frame number", file=p, item=vid) from None
        require(1 <= n <= T, f"annotated frame {n} is outside the clip's {T} decoded frames", file=p, item=vid)
        _, masks = read_h5_frame(p, (H, W))
        annotated.append(n - 1)
        for i, m in masks.items():
            objs.append(i)
            ts.append(n - 1)
            counts.append(rlemod.encode(m))
            ids_seen.add(i)
    return {"video_id": vid, "frames": names, "files": files, "H": int(H), "W": int(W), "annotated": sorted(annotated),
            "rows": mask_rows(vid, objs, ts, counts, int(H), int(W)), "ids": sorted(ids_seen)}


def convert_a2d(
    root: str | Path,
    split: str,
    out: str | Path,
    *,
    workers: int = 1,
    frame_format: str = "png",
    executor: str | Executor | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Convert an A2D-Sentences split (``train`` or ``test``) to the common format (module docstring).

    One video per used A2D video with at least one text row; ``videos.annotated_frames`` = the
    frames that have an h5 file; one object per instance id (obj_id = A2D instance id); one
    expression per text row (``exp_id`` = its 0-based row in ``a2d_annotation.txt``,
    ``exp_index`` = the same, so MTTR's sample order is the expressions' order), target
    ``[instance_id]``; one mask row per (annotated frame, instance listed in its h5).

    Args:
        root: the ``a2d_sentences`` folder.
        split: ``train`` or ``test``.
        out: output dataset directory (written atomically; frames under ``out/frames``).
        workers: processes decoding clips and reading h5 files.
        frame_format: ``png`` (lossless: the decoded pixels exactly, as MTTR feeds them) or
            ``jpg`` (quality 95, about ten times smaller) for the frames written from the clips.
        executor, ray_address: see :mod:`rvoskit.executor`.
        overwrite: replace an existing ``out``.
        show_progress: rich progress bar.

    Returns:
        ``out``.

    Raises:
        RvosError: bad input (one line naming the file and item); nothing is left at ``out``.
    """
    require(split in SPLITS, f"unknown split {split!r}; choose train or test", item="--split")
    require(frame_format in ("png", "jpg"), f"unknown frame format {frame_format!r}; choose png or jpg", item="--frame-format")
    ex = resolve_executor(executor, workers, ray_address)
    root = Path(root)
    videoset_path = root / "Release" / "videoset.csv"
    text_path = root / "text_annotations" / "a2d_annotation.txt"
    missed_path = root / "text_annotations" / "a2d_missed_videos.txt"
    h5_root = root / "text_annotations" / "a2d_annotation_with_instances"
    videoset = read_videoset(videoset_path)
    require(missed_path.is_file(), "missing a2d_missed_videos.txt", file=missed_path)
    missed = set(missed_path.read_text(encoding="utf-8").splitlines())
    used = {v for v, s in videoset if s == SPLITS[split] and v not in missed}
    texts = [t for t in read_text_annotations(text_path) if t[1] in used and t[2] != COPY_ROW]
    per_video: dict[str, list[tuple[int, int, str]]] = {}
    for row, vid, inst, query in texts:
        try:
            i = int(inst)
        except ValueError:
            raise RvosError(f"instance_id {inst!r} is not an integer", file=text_path, item=f"line {row + 2}") from None
        per_video.setdefault(vid, []).append((row, i, query))
    require(bool(per_video), f"no text annotation for a {split} video", file=text_path)
    png_root = root / "Release" / "pngs320H"
    use_pngs = png_root.is_dir()
    clip_root = next((root / "Release" / d for d in CLIP_DIRS if (root / "Release" / d).is_dir()), root / "Release" / CLIP_DIRS[0])
    if not use_pngs:
        require(clip_root.is_dir(), "missing clip folder (Release/clips320H or Release/CLIPS320) and no extracted frames (Release/pngs320H)",
                file=clip_root)
        missing = [v for v in sorted(per_video) if not (clip_root / f"{v}.mp4").is_file()]
        if missing:
            raise RvosError(f"{len(missing)} clip(s) missing: {first_few(missing)}", file=clip_root)
    frame_root = png_root.resolve() if use_pngs else "."
    # decoded frames are built in a work folder beside the output, kept when a run is killed, so
    # that rerunning the same command resumes (videos already decoded are not decoded again)
    work = Path(out).parent / f".{Path(out).name}.partial"
    if not use_pngs:
        _prepare_work(work, {"root": str(root.resolve()), "split": split, "frame_format": frame_format}, overwrite)
    with DatasetWriter(out, dataset="a2d", split=split, frame_root=frame_root, source_root=root,
                       options={"split": split, "frames": "pngs320H" if use_pngs else f"decoded clips (PyAV), {frame_format}", "workers": workers},
                       overwrite=overwrite) as w:
        for p in (videoset_path, text_path, missed_path):
            w.add_input(p)
        jobs = [(v, str(clip_root / f"{v}.mp4"), str(png_root / v) if use_pngs else None, str(h5_root / v), str(work), frame_format)
                for v in sorted(per_video)]
        results = {}
        with progress_bar(disable=not show_progress) as bar:
            task = bar.add_task(f"a2d/{split}", total=len(jobs))
            for job, r in imap(_video_job, jobs, ex, ordered=True):
                results[r["video_id"]] = r
                bar.advance(task)
        n_samples = 0
        for vid in sorted(results):
            r = results[vid]
            w.add_video({"video_id": vid, "split": split, "num_frames": len(r["frames"]), "height": r["H"], "width": r["W"],
                         "frames": r["frames"], "frame_files": r["files"], "annotated_frames": r["annotated"]})
            ids = sorted(set(r["ids"]) | {i for _, i, _ in per_video[vid]})
            w.add_objects({"video_id": vid, "obj_id": i, "anno_id": None, "category": None} for i in ids)
            w.add_expressions({"video_id": vid, "exp_id": str(row), "exp_index": row, "text": q, "obj_ids": [i], "anno_ids": None,
                               "annotator": None, "kind": None} for row, i, q in per_video[vid])
            present = {}
            for m in r["rows"]:
                present[m["obj_id"]] = present.get(m["obj_id"], 0) + 1
            n_samples += sum(present.get(i, 0) for _, i, _ in per_video[vid])
            w.add_masks(vid, r["rows"])
        w.set_extra("samples", n_samples)
        if not use_pngs:
            os.replace(work / "frames", w.tmp / "frames")  # same file system: beside the output
    if not use_pngs:
        shutil.rmtree(work, ignore_errors=True)
    return Path(out)


def _prepare_work(work: Path, options: dict, overwrite: bool) -> None:
    """Create the resumable work folder, or check that the one there was made with the same options.

    Raises:
        RvosError: a work folder of a run with other options (without ``overwrite``, which
            discards it).
    """
    opt = work / "options.json"
    if work.exists():
        try:
            same = json.loads(opt.read_text(encoding="utf-8")) == options
        except (OSError, ValueError):
            same = False
        if not same:
            if not overwrite:
                raise RvosError("a partial conversion with other options (or another root) is here; rerun with the same options "
                                "to resume, or pass --overwrite to start again", file=work)
            shutil.rmtree(work)
    if not work.exists():
        work.mkdir(parents=True)
        opt.write_text(json.dumps(options), encoding="utf-8")
