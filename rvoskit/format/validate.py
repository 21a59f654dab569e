"""Checks of a common-format dataset directory (``rvoskit validate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rvoskit.errors import RvosError
from rvoskit.format import rle as rlemod
from rvoskit.format.store import RvosDataset


def validate_dataset(path: str | Path, *, check_frames: bool = True, max_problems: int = 1000) -> list[str]:
    """Check a dataset directory against the v1 format.

    Checks: manifest and table schemas; unique keys; every object's, expression's and mask's video
    exists; every mask's object and every expression's target object exists; ``frame_idx`` within
    the video; list lengths agree (``frames``, ``frame_files``, ``num_frames``); mask sizes equal
    the video size; every RLE covers exactly ``H x W`` pixels and its ``area`` is right; MeViS-M
    spans lie inside the video; frame files exist (``check_frames``); manifest counts match.
    Masks are streamed per video.

    Args:
        path: the dataset directory.
        check_frames: stat every frame file.
        max_problems: stop collecting after this many.

    Returns:
        Problems as ``"<file>: <item>: <message>"`` lines; empty if the dataset is valid.
    """
    path = Path(path)
    problems: list[str] = []

    def bad(file: str, item: str | None, msg: str) -> None:
        if len(problems) < max_problems:
            problems.append(str(RvosError(msg, file=path / file, item=item)))

    try:
        ds = RvosDataset(path)
        videos, objects, exprs = ds.videos, ds.objects, ds.expressions
    except RvosError as exc:
        return [str(exc)]

    for table, df, key in (("videos.parquet", videos, ["video_id"]), ("objects.parquet", objects, ["video_id", "obj_id"]),
                           ("expressions.parquet", exprs, ["expression_id"])):
        dup = df.duplicated(subset=key, keep="first")
        for _, r in df[dup].iterrows():
            bad(table, "/".join(str(r[k]) for k in key), "duplicate id")
    vset = set(videos["video_id"])
    size = {v: (int(r["num_frames"]), int(r["height"]), int(r["width"])) for v, r in videos.iterrows()}
    for v, r in videos.iterrows():
        n = int(r["num_frames"])
        if len(r["frames"]) != n or len(r["frame_files"]) != n:
            bad("videos.parquet", v, f"num_frames {n} but {len(r['frames'])} frames and {len(r['frame_files'])} frame files")
        if n == 0:
            bad("videos.parquet", v, "video has no frames")
        if check_frames:
            for f in r["frame_files"]:
                if not (ds.frame_root / f).is_file():
                    bad("videos.parquet", v, f"frame file missing: {ds.frame_root / f}")
                    break
    objset = set(zip(objects["video_id"], objects["obj_id"].astype(int)))
    objs_of: dict[str, set[int]] = {}
    for v, o in objset:
        objs_of.setdefault(v, set()).add(o)
    for _, r in objects.iterrows():
        if r["video_id"] not in vset:
            bad("objects.parquet", f"{r['video_id']}/{r['obj_id']}", "object of an unknown video")
    for eid, r in exprs.iterrows():
        if r["video_id"] not in vset:
            bad("expressions.parquet", eid, "expression of an unknown video")
        if eid != f"{r['video_id']}/{r['exp_id']}":
            bad("expressions.parquet", eid, "expression_id is not '<video_id>/<exp_id>'")
        if r["obj_ids"] is not None:
            for o in r["obj_ids"]:
                if (r["video_id"], int(o)) not in objset:
                    bad("expressions.parquet", eid, f"target obj_id {o} is not an object of the video")
            if r["anno_ids"] is not None and len(r["anno_ids"]) != len(r["obj_ids"]):
                bad("expressions.parquet", eid, "anno_ids and obj_ids differ in length")

    n_masks = 0
    seen_videos: set[str] = set()
    for vid, rows in ds.iter_masks():
        n_masks += len(rows)
        if vid in seen_videos:
            bad("masks.parquet", vid, "masks of this video are not contiguous")
        seen_videos.add(vid)
        if vid not in vset:
            bad("masks.parquet", vid, "masks of an unknown video")
            continue
        T, H, W = size[vid]
        if rows.duplicated(subset=["obj_id", "frame_idx"]).any():
            bad("masks.parquet", vid, "duplicate (obj_id, frame_idx) rows")
        for o in set(rows["obj_id"].astype(int)) - objs_of.get(vid, set()):
            bad("masks.parquet", f"{vid} obj {o}", "mask of an unknown object")
        fi = rows["frame_idx"].to_numpy()
        if ((fi < 0) | (fi >= T)).any():
            bad("masks.parquet", vid, f"frame_idx outside 0..{T - 1}")
        wrong = (rows["height"].to_numpy() != H) | (rows["width"].to_numpy() != W)
        if wrong.any():
            r = rows[wrong].iloc[0]
            bad("masks.parquet", f"{vid} obj {r['obj_id']} frame {r['frame_idx']}", f"mask size {r['height']}x{r['width']} differs from the video {H}x{W}")
            continue
        ok = np.zeros(len(rows), bool)
        for i, r in enumerate(rows.itertuples()):
            item = f"{vid} obj {r.obj_id} frame {r.frame_idx}"
            try:
                total = rlemod.pixel_count(r.rle)
            except ValueError as exc:
                bad("masks.parquet", item, f"malformed RLE: {exc}")
                continue
            if total != H * W:
                bad("masks.parquet", item, f"RLE covers {total} pixels, not {H}x{W}")
            ok[i] = total == H * W
        good = rows[ok]
        if len(good):
            areas, _ = rlemod.area_bbox(list(good["rle"]), H, W)
            for r, a in zip(good.itertuples(), areas):
                if int(r.area) != int(a):
                    bad("masks.parquet", f"{vid} obj {r.obj_id} frame {r.frame_idx}", f"area {r.area} but the RLE has {a} pixels")
    if ds.has_moments:
        for _, r in ds.moments.iterrows():
            item = f"{r['expression_id']} obj {r['obj_id']}"
            if r["expression_id"] not in exprs.index:
                bad("moments.parquet", item, "span of an unknown expression")
                continue
            T = size.get(r["video_id"], (0, 0, 0))[0]
            if not (0 <= r["start_idx"] <= r["end_idx"] < T):
                bad("moments.parquet", item, f"span {r['start_idx']}..{r['end_idx']} outside 0..{T - 1}")
    counts = ds.manifest.get("counts", {})
    actual = {"videos": len(videos), "objects": len(objects), "expressions": len(exprs), "masks": n_masks}
    for k, v in actual.items():
        if k in counts and counts[k] != v:
            bad("dataset.json", f"counts.{k}", f"says {counts[k]}, the tables have {v}")
    return problems

