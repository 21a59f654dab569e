"""Ref-YouTube-VOS converter (Seo et al., ECCV 2020).

Native layout (``docs: dataset-formats.md`` §2; wjn922/ReferFormer ``datasets/ytvos.py``,
``inference_ytvos.py``; mttr2021/MTTR)::

    <root>/meta_expressions/{train,valid,test}/meta_expressions.json
    <root>/train/JPEGImages/<vid>/<frame>.jpg   <root>/train/Annotations/<vid>/<frame>.png   <root>/train/meta.json
    <root>/valid/JPEGImages/<vid>/<frame>.jpg
"""

from __future__ import annotations

from pathlib import Path

from rvoskit.datasets.common import (
    first_few,
    frame_files,
    image_size,
    label_values,
    load_json,
    mask_rows,
    parallel_map,
    read_label_png,
    require,
)
from rvoskit.errors import RvosError
from rvoskit.executor import Executor, resolve_executor
from rvoskit.format import DatasetWriter
from rvoskit.progress import progress_bar
from rvoskit.format import rle as rlemod


def _parse_obj_id(value, *, file: Path, item: str) -> int:
    try:
        obj = int(str(value))
    except ValueError:
        raise RvosError(f"obj_id {value!r} is not an integer", file=file, item=item) from None
    require(1 <= obj <= 254, f"obj_id {obj} is outside the palette range 1..254", file=file, item=item)
    return obj


def _meta_json_objects(cats: dict, vid: str, meta_json: Path) -> set[int] | None:
    """The obj_ids ``train/meta.json`` lists for a video (None when the video is not listed).

    Raises:
        RvosError: a video entry that is not an object, ``objects`` that is not an object (null),
            an object entry that is not an object, ``frames`` that is not a list of names, or an
            obj_id outside 1..254.
    """
    if vid not in cats:
        return None
    entry = cats[vid]
    require(isinstance(entry, dict), f"video entry is {type(entry).__name__ if entry is not None else 'null'}, expected an object",
            file=meta_json, item=vid)
    objs = entry.get("objects")
    require(isinstance(objs, dict), f"'objects' is {type(objs).__name__ if objs is not None else 'null'}, expected an object",
            file=meta_json, item=vid)
    out = set()
    for k, o in objs.items():
        item = f"{vid} object {k}"
        require(isinstance(o, dict), "object entry is not an object", file=meta_json, item=item)
        frames = o.get("frames", [])
        require(isinstance(frames, list) and all(isinstance(f, str) for f in frames),
                f"'frames' is {type(frames).__name__}, expected a list of frame names", file=meta_json, item=item)
        cat = o.get("category")
        require(cat is None or isinstance(cat, str), "'category' is not a string", file=meta_json, item=item)
        out.add(_parse_obj_id(k, file=meta_json, item=item))
    return out


def _video_masks(job: tuple) -> tuple[str, tuple[int, int], list[str], list[dict], list[int]]:
    """Worker: read one video's frame size and palette PNGs.

    Returns:
        ``(video_id, (H, W), frame file names, mask rows, palette ids not listed as objects)``.
    """
    vid, frames_dir, ann_dir, frames, obj_ids = job
    files = frame_files(Path(frames_dir), frames, video_id=vid)
    H, W = image_size(files[0])
    objs, ts, counts = [], [], []
    unlisted: set[int] = set()
    if ann_dir is not None:
        ann_dir = Path(ann_dir)
        require(ann_dir.is_dir(), "missing annotation folder", file=ann_dir, item=vid)
        for t, name in enumerate(frames):
            png = ann_dir / f"{name}.png"
            # every frame the meta lists is annotated in Ref-YouTube-VOS train: a missing PNG is an
            # error, not "every object absent"
            require(png.is_file(), f"missing annotation PNG for frame {name!r}", file=png, item=vid)
            label = read_label_png(png)
            require(label.shape == (H, W), f"mask size {label.shape[0]}x{label.shape[1]} differs from the frame {H}x{W}", file=png, item=vid)
            values = label_values(label)
            present = [o for o in obj_ids if o in values]
            unlisted |= set(values) - set(obj_ids) - {0}
            for o, c in zip(present, rlemod.encode_labels(label, present)):
                objs.append(o)
                ts.append(t)
                counts.append(c)
    return vid, (H, W), [p.name for p in files], mask_rows(vid, objs, ts, counts, H, W), sorted(unlisted)


#: Videos of the published Ref-YouTube-VOS valid split (its meta also lists the 305 test videos).
PUBLISHED_VALID_VIDEOS = 202


def _valid_videos(root: Path, videos: dict, frames_root: Path) -> tuple[dict, list[str], str | None]:
    """Separate the valid videos from the test videos the competition's valid meta also lists.

    With ``meta_expressions/test`` the test videos are the ones it lists. Without it, the videos
    with a frame folder are the valid ones when there are exactly the published
    :data:`PUBLISHED_VALID_VIDEOS`; any other number is a partial download (an error that names
    the missing folders).

    Returns:
        ``(valid videos, dropped test video ids, warning or None)``.

    Raises:
        RvosError: an unreadable test meta, or frame folders missing for valid videos.
    """
    test_meta = root / "meta_expressions" / "test" / "meta_expressions.json"
    if test_meta.is_file():
        tm = load_json(test_meta, what="meta_expressions.json")
        require(isinstance(tm, dict) and isinstance(tm.get("videos"), dict), "no 'videos' object", file=test_meta)
        dropped = sorted(v for v in videos if v in tm["videos"])
        return {k: v for k, v in videos.items() if k not in tm["videos"]}, dropped, None
    have = [v for v in sorted(videos) if (frames_root / v).is_dir()]
    missing = sorted(videos.keys() - set(have))
    if not missing:
        note = None
        if len(videos) > PUBLISHED_VALID_VIDEOS:
            note = (f"no meta_expressions/test and all {len(videos)} videos have frames: they may include test videos "
                    f"(the published valid split has {PUBLISHED_VALID_VIDEOS})")
        return videos, [], note
    if len(have) == PUBLISHED_VALID_VIDEOS:
        return {k: videos[k] for k in have}, missing, None
    shown = first_few(missing)
    raise RvosError(
        f"{len(missing)} of {len(videos)} videos have no frame folder and {len(have)} have one, not the published "
        f"{PUBLISHED_VALID_VIDEOS} valid videos: a partial download? Missing: {shown} "
        "(add meta_expressions/test/meta_expressions.json to tell the test videos apart)", file=frames_root)


def convert_refytvos(
    root: str | Path,
    split: str,
    out: str | Path,
    *,
    workers: int = 1,
    executor: str | Executor | None = None,
    ray_address: str | None = None,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Convert one Ref-YouTube-VOS split to the common format.

    ``train`` reads the palette PNG annotations (pixel value = ``obj_id``; an id missing from a
    frame's PNG is absent there) and ``meta.json`` categories; ``valid``/``test`` carry expressions
    only (``obj_ids = null``). The competition's valid meta also lists the 305 test videos: they are
    removed using ``meta_expressions/test`` when present, else by the absence of
    ``<split>/JPEGImages/<vid>`` (a warning counts them). Frame names are kept as given (irregular
    steps, start frames other than ``00000``).

    Args:
        root: the Ref-YouTube-VOS root.
        split: ``train``, ``valid`` or ``test``.
        out: output dataset directory (created atomically).
        workers: processes decoding PNGs (train).
        executor: ``local`` / ``process`` / ``ray`` (:mod:`rvoskit.executor`; default: ``local``
            for one worker, else ``process``).
        ray_address: the Ray cluster of ``executor="ray"``.
        overwrite: replace an existing ``out``.
        show_progress: show a rich progress bar.

    Returns:
        ``out``.

    Raises:
        RvosError: bad input (named file and item); nothing is left at ``out``.
    """
    ex = resolve_executor(executor, workers, ray_address)
    root = Path(root)
    meta_path = root / "meta_expressions" / split / "meta_expressions.json"
    meta = load_json(meta_path, what="meta_expressions.json")
    require(isinstance(meta, dict) and isinstance(meta.get("videos"), dict), "no 'videos' object", file=meta_path)
    videos = meta["videos"]
    has_gt = split == "train"
    frames_root = root / split / "JPEGImages"
    if split == "test" and not frames_root.is_dir():
        frames_root = root / "valid" / "JPEGImages"  # the competition's valid frames include the test videos
    require(frames_root.is_dir(), f"missing frame folder: the {split} frames (JPEGImages) are not there; "
            f"download and unpack the {split} frames", file=frames_root)
    warnings: list[tuple[str, str, int]] = []
    dropped: list[str] = []
    if split == "valid":
        videos, dropped, note = _valid_videos(root, videos, frames_root)
        if note:
            warnings.append(("valid_may_include_test", note, 1))
    missing = [v for v in sorted(videos) if not (frames_root / v).is_dir()]
    if missing:
        raise RvosError(f"{len(missing)} of {len(videos)} videos have no frame folder (a partial download?): {first_few(missing)}",
                        file=frames_root)
    inputs = [meta_path]
    cats: dict = {}
    if has_gt:
        meta_json = root / split / "meta.json"
        mj = load_json(meta_json, what="meta.json")
        require(isinstance(mj, dict) and isinstance(mj.get("videos"), dict), "no 'videos' object", file=meta_json)
        cats = mj["videos"]
        inputs.append(meta_json)

    jobs = []
    no_meta: list[str] = []  # train videos that meta.json does not list
    exp_rows: dict[str, list[dict]] = {}
    obj_rows: dict[str, list[dict]] = {}
    for vid in sorted(videos):
        v = videos[vid]
        require(isinstance(v, dict), "video entry is not an object", file=meta_path, item=vid)
        frames = v.get("frames")
        require(isinstance(frames, list) and frames and all(isinstance(f, str) for f in frames), "'frames' must be a non-empty list of names", file=meta_path, item=vid)
        require(len(set(frames)) == len(frames), "duplicate frame names", file=meta_path, item=vid)
        exps = v.get("expressions")
        require(isinstance(exps, dict), "'expressions' must be an object", file=meta_path, item=vid)
        objs: set[int] = set()
        meta_objs: set[int] | None = None
        if has_gt:
            meta_objs = _meta_json_objects(cats, vid, root / split / "meta.json")
            if meta_objs is None:
                no_meta.append(vid)
            else:
                objs |= meta_objs
        rows = []
        for n, (eid, e) in enumerate(exps.items()):
            item = f"{vid}/{eid}"
            require(isinstance(e, dict) and isinstance(e.get("exp"), str), "expression without a string 'exp'", file=meta_path, item=item)
            obj_ids = None
            if has_gt:
                require("obj_id" in e, "expression without obj_id", file=meta_path, item=item)
                o = _parse_obj_id(e["obj_id"], file=meta_path, item=item)
                require(meta_objs is None or o in meta_objs, f"expression names obj_id {o}, which meta.json does not list for this video",
                        file=meta_path, item=item)
                obj_ids = [o]
                objs.add(o)
            rows.append({"video_id": vid, "exp_id": str(eid), "exp_index": n, "text": e["exp"], "obj_ids": obj_ids,
                         "anno_ids": None, "annotator": None, "kind": None})
        exp_rows[vid] = rows
        if has_gt:
            vcats = cats[vid]["objects"] if meta_objs is not None else {}
            obj_rows[vid] = [{"video_id": vid, "obj_id": o, "anno_id": None,
                              "category": (vcats.get(str(o)) or {}).get("category")} for o in sorted(objs)]
        ann = str(root / split / "Annotations" / vid) if has_gt else None
        jobs.append((vid, str(frames_root / vid), ann, frames, sorted(objs)))

    with DatasetWriter(out, dataset="refytvos", split=split, frame_root=frames_root.resolve(), source_root=root,
                       options={"workers": workers}, overwrite=overwrite) as w:
        for p in inputs:
            w.add_input(p)
        for kind, msg, n in warnings:
            w.warn(kind, msg, n)
        if dropped:
            w.set_extra("dropped_videos", {"reason": "listed in meta_expressions/test or, without it, no frame folder "
                                                     f"beside the published {PUBLISHED_VALID_VIDEOS} valid videos", "count": len(dropped)})
            w.warn("test_videos_left_out", f"{meta_path}: {len(dropped)} videos of the {split} meta are test videos and were left out",
                   len(dropped))
        if no_meta:
            shown = first_few(no_meta)
            w.warn("videos_missing_from_meta_json", f"{root / split / 'meta.json'}: {len(no_meta)} videos are not listed "
                   f"(their objects have no category; objects come from the expressions): {shown}", len(no_meta))
        with progress_bar(disable=not show_progress) as bar:
            task = bar.add_task(f"refytvos/{split}", total=len(jobs))
            for (vid, (H, W), names, rows, unlisted), job in zip(parallel_map(_video_masks, jobs, ex), jobs):
                frames = job[3]
                w.add_video({"video_id": vid, "split": split, "num_frames": len(frames), "height": H, "width": W,
                             "frames": frames, "frame_files": [f"{vid}/{n}" for n in names]})
                w.add_expressions(exp_rows[vid])
                w.add_objects(obj_rows.get(vid, []))
                if has_gt:
                    present = {r["obj_id"] for r in rows}
                    for o in obj_rows[vid]:  # objects only the expressions name must appear in a PNG
                        require(o["category"] is not None or o["obj_id"] in present,
                                f"expression names obj_id {o['obj_id']}, which neither meta.json nor any annotation PNG has",
                                file=meta_path, item=vid)
                    if unlisted:
                        w.warn("unlisted_palette_ids", f"{root / split / 'Annotations' / vid}: palette ids {unlisted} are in the PNGs "
                               "but in no expression or meta.json object (not converted)", len(unlisted))
                w.add_masks(vid, rows)
                bar.advance(task)
    return Path(out)
