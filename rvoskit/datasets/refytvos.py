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
            if not png.is_file():
                continue  # frame not annotated: every object absent
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
    dropped: list[str] = []
    frames_root = root / split / "JPEGImages"
    if split == "test" and not frames_root.is_dir():
        frames_root = root / "valid" / "JPEGImages"  # the competition's valid frames include the test videos
    warnings: list[str] = []
    if split == "valid":
        test_meta = root / "meta_expressions" / "test" / "meta_expressions.json"
        if test_meta.is_file():
            test_ids = set(load_json(test_meta, what="meta_expressions.json").get("videos", {}))
            dropped = sorted(v for v in videos if v in test_ids)
        else:
            dropped = sorted(v for v in videos if not (frames_root / v).is_dir())
            if not dropped:
                warnings.append(f"no meta_expressions/test and every video has frames: the {len(videos)} videos may include "
                                "test videos (the competition's valid meta lists 202 valid + 305 test)")
        videos = {k: v for k, v in videos.items() if k not in set(dropped)}
    inputs = [meta_path]
    cats: dict = {}
    if has_gt:
        meta_json = root / split / "meta.json"
        mj = load_json(meta_json, what="meta.json")
        require(isinstance(mj, dict) and isinstance(mj.get("videos"), dict), "no 'videos' object", file=meta_json)
        cats = mj["videos"]
        inputs.append(meta_json)

    jobs = []
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
        if has_gt and isinstance(cats.get(vid), dict) and isinstance(cats[vid].get("objects"), dict):
            meta_objs = {_parse_obj_id(k, file=root / split / "meta.json", item=f"{vid} object {k}") for k in cats[vid]["objects"]}
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
        if dropped:
            w.set_extra("dropped_videos", {"reason": "listed in meta_expressions/test or without frames", "count": len(dropped)})
            warnings.append(f"{len(dropped)} videos of the {split} meta are test videos and were left out")
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
                        warnings.append(f"{vid}: palette ids {unlisted} are in the PNGs but in no expression or meta.json object (ignored)")
                w.add_masks(vid, rows)
                bar.advance(task)
        w.set_extra("warnings", warnings)
    return Path(out)
