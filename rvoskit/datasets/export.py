"""Writers of native layouts: MeViS (round trip of ``convert mevis``) and YouTube-VIS JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format import atomic_dir, open_dataset
from rvoskit.format.atomic import safe_name
from rvoskit.format.outputs import EXPORT_MARKER


def _anno_ids(ds) -> dict[tuple[str, int], str]:
    """``(video_id, obj_id) -> anno_id``: the dataset's own, else fresh global integers (sorted order)."""
    out = {}
    used = {a for a in ds.objects["anno_id"] if isinstance(a, str)}
    nxt = 0
    for r in ds.objects.itertuples():
        if isinstance(r.anno_id, str):
            out[(r.video_id, int(r.obj_id))] = str(r.anno_id)
            continue
        while str(nxt) in used:
            nxt += 1
        out[(r.video_id, int(r.obj_id))] = str(nxt)
        used.add(str(nxt))
    return out


def _masks_by_video(ds):
    """Yield ``(video_id, mask rows or None)`` for every video in table order, streaming."""
    it = ds.iter_masks()
    nxt = next(it, None)
    for vid in ds.videos.index:
        if nxt is not None and nxt[0] == vid:
            yield vid, nxt[1]
            nxt = next(it, None)
        else:
            yield vid, None


def _track(rows, obj_id: int, num_frames: int) -> tuple:
    """Per-frame COCO RLE dicts (``counts`` as str) of one object, ``None`` where absent, plus the rows."""
    segs: list = [None] * num_frames
    sel = rows[rows["obj_id"] == obj_id] if rows is not None else rows
    if sel is not None:
        for m in sel.itertuples():
            segs[m.frame_idx] = {"size": [int(m.height), int(m.width)], "counts": m.rle.decode("ascii")}
    return segs, sel


def _native_id(a: str):
    return int(a) if a.isdigit() and str(int(a)) == a else a


def export_mevis(dataset: str | Path, out: str | Path, *, frames: str = "link", overwrite: bool = False) -> Path:
    """Write a dataset back to the MeViS native layout.

    ``<out>/<split>/meta_expressions.json`` (+ ``mask_dict.json`` when the dataset has ground truth)
    and ``<out>/<split>/JPEGImages/<video>`` (symlinks to the frame folders, or copies). Objects
    without an ``anno_id`` (datasets from other sources) get fresh global integer ids. The RLE is
    written as stored (compressed counts as ASCII strings); absent frames are ``null``. Converting
    the result with ``rvoskit convert mevis`` gives identical tables (round trip).

    Args:
        dataset: a common-format dataset directory.
        out: the MeViS root to create (atomically).
        frames: ``link`` (symlink each video's frame folder), ``copy`` or ``none``.
        overwrite: replace an existing ``out``.

    Returns:
        ``out``.

    Raises:
        RvosError: unreadable dataset, unknown ``frames`` mode, or a video whose frame files are
            not in one folder.
    """
    if frames not in ("link", "copy", "none"):
        raise RvosError(f"unknown frames mode {frames!r} (link, copy, none)")
    ds = open_dataset(dataset)
    split = ds.manifest["source"].get("split") or "train"
    annos = _anno_ids(ds)
    has_gt = ds.expressions["obj_ids"].notna().any() or len(ds.objects) > 0
    with atomic_dir(out, overwrite=overwrite) as tmp:
        sdir = tmp / split
        (sdir / "JPEGImages").mkdir(parents=True)
        meta: dict = {"videos": {}}
        for vid, v in ds.videos.iterrows():
            exps = {}
            for e in ds.expressions[ds.expressions["video_id"] == vid].itertuples():
                d: dict = {"exp": e.text}
                if e.obj_ids is not None:
                    objs = [int(o) for o in e.obj_ids]
                    d["obj_id"] = objs
                    d["anno_id"] = [_native_id(annos[(vid, o)]) for o in objs]
                exps[e.exp_id] = d
            meta["videos"][vid] = {"frames": list(v["frames"]), "expressions": exps}
            if frames != "none":
                _place_frames(ds, vid, v, sdir / "JPEGImages" / safe_name(vid), frames)
        (sdir / "meta_expressions.json").write_text(json.dumps(meta), encoding="utf-8")
        # the MeViS layout has no manifest: this marker lets --overwrite recognise an rvoskit export
        (tmp / EXPORT_MARKER).write_text(json.dumps({"kind": "export-mevis", "dataset": str(ds.path)}) + "\n", encoding="utf-8")
        if has_gt:
            with open(sdir / "mask_dict.json", "w", encoding="utf-8") as f:
                f.write("{")
                first = True
                objs = ds.objects.groupby("video_id")
                for vid, rows in _masks_by_video(ds):
                    if vid not in objs.groups:
                        continue
                    T = int(ds.videos.loc[vid]["num_frames"])
                    for o in objs.get_group(vid)["obj_id"].astype(int):
                        segs, _ = _track(rows, o, T)
                        f.write(("" if first else ", ") + json.dumps(annos[(vid, o)]) + ": " + json.dumps(segs))
                        first = False
                f.write("}")
    return Path(out)


def _place_frames(ds, vid: str, v, dest: Path, mode: str) -> None:
    files = [ds.frame_root / f for f in v["frame_files"]]
    folders = {f.parent for f in files}
    if len(folders) != 1:
        raise RvosError("frame files of the video are not in one folder", file=ds.path / "videos.parquet", item=vid)
    src = folders.pop().resolve()
    if mode == "link":
        os.symlink(src, dest, target_is_directory=True)
    else:
        import shutil

        dest.mkdir()
        for f, name in zip(files, v["frames"]):
            shutil.copy2(f, dest / f"{name}{f.suffix}")


def export_ytvis(dataset: str | Path, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a dataset as a YouTube-VIS JSON file (one annotation per object track).

    Follows the CodaLab YouTube-VIS format (``docs: dataset-formats.md`` §5): ``videos`` with
    ``id, width, height, length, file_names`` (``<video>/<file>``), ``annotations`` with per-frame
    ``segmentations`` (compressed RLE, ``counts`` as str), ``areas`` and ``bboxes`` (``None`` where
    the object is absent), ``iscrowd 0``; ``categories`` from object categories (``"object"`` when
    the dataset has none). RVOS extras: each video carries ``"name"`` (the native id) and the file
    has ``"expressions"``: ``{video_id, exp_id, text, annotation_ids}``.

    Returns:
        ``out`` (a ``.json`` file, written atomically).
    """
    from rvoskit.format import atomic_file

    ds = open_dataset(dataset)
    cat_name = [c if isinstance(c, str) else "object" for c in ds.objects["category"]]
    cats = sorted(set(cat_name)) or ["object"]
    cat_id = {c: i + 1 for i, c in enumerate(cats)}
    vid_num = {vid: i + 1 for i, vid in enumerate(ds.videos.index)}
    videos = []
    for vid, v in ds.videos.iterrows():
        videos.append({"id": vid_num[vid], "name": vid, "width": int(v["width"]), "height": int(v["height"]),
                       "length": int(v["num_frames"]), "file_names": [f"{vid}/{Path(f).name}" for f in v["frame_files"]]})
    anns = []
    ann_id = {}
    objs = ds.objects.groupby("video_id")
    for vid, rows in _masks_by_video(ds):
        if vid not in objs.groups:
            continue
        T = int(ds.videos.loc[vid]["num_frames"])
        for r in objs.get_group(vid).assign(category=lambda d: [c if isinstance(c, str) else "object" for c in d["category"]]).itertuples():
            o = int(r.obj_id)
            segs, sel = _track(rows, o, T)
            areas, boxes = [None] * T, [None] * T
            if sel is not None:
                for m in sel.itertuples():
                    areas[m.frame_idx] = float(m.area)
                    boxes[m.frame_idx] = [float(x) for x in m.bbox]
            ann_id[(vid, o)] = len(anns) + 1
            anns.append({"id": len(anns) + 1, "video_id": vid_num[vid], "category_id": cat_id[r.category],
                         "segmentations": segs, "areas": areas, "bboxes": boxes, "iscrowd": 0, "obj_id": o})
    exprs = [{"video_id": vid_num[e.video_id], "exp_id": e.exp_id, "text": e.text,
              "annotation_ids": None if e.obj_ids is None else [ann_id[(e.video_id, int(o))] for o in e.obj_ids]}
             for e in ds.expressions.itertuples()]
    src = ds.manifest.get("source") or {}
    what = " ".join(str(src[k]) for k in ("dataset", "split") if src.get(k)) or ds.path.name
    doc = {"info": {"description": f"rvoskit {__version__} export of {what}", "version": "1.0",
                    "rvoskit_source": src},
           "videos": videos, "annotations": anns,
           "categories": [{"id": i, "name": c, "supercategory": c} for c, i in cat_id.items()],
           "expressions": exprs}
    out = Path(out)
    if out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    with atomic_file(out) as tmp:
        tmp.write_text(json.dumps(doc), encoding="utf-8")
    return out
