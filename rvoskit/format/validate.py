"""Checks of a common-format dataset directory (``rvoskit validate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rvoskit.errors import RvosError
from rvoskit.format import rle as rlemod
from rvoskit.format.store import RvosDataset, read_table

_TABLES = ("videos", "objects", "expressions")


def validate_dataset(path: str | Path, *, check_frames: bool = True, max_problems: int = 1000) -> list[str]:
    """Check a dataset directory against the v1 format; never raises on a broken dataset.

    Checks: manifest (a JSON object of the right format and version, ``frame_root`` a string) and
    every table's file and schema (a missing, zero-byte, truncated or corrupt Parquet file, a
    directory in place of a table, a missing column, a column of another type); unique keys;
    every object's, expression's and mask's video exists; every mask's object and every
    expression's target object exists; ``frame_idx`` within the video; list lengths agree
    (``frames``, ``frame_files``, ``num_frames``); mask sizes equal the video size; every RLE
    covers exactly ``H x W`` pixels and its ``area`` is right; masks only on annotated frames and
    ``annotated_frames`` ascending inside the video (format 1.1); void rows; MeViS-M spans lie inside
    the video; frame files exist and have the video's size (``check_frames``; sizes read from
    the image headers); manifest counts match. A problem in one table does not stop the checks
    of the others: every problem that can be found is reported. Masks are streamed per video.

    Args:
        path: the dataset directory.
        check_frames: stat every frame file and read its header (height x width).
        max_problems: stop collecting after this many.

    Returns:
        Problems as ``"<file>: <item>: <message>"`` lines; empty if the dataset is valid.
    """
    path = Path(path)
    problems: list[str] = []
    try:
        _validate(path, problems, check_frames, max_problems)
    except RvosError as exc:  # a reader's error the checks did not expect: still one problem line
        problems.append(str(exc))
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, OSError) as exc:
        # values no check foresaw (the tables' types are right, their contents are not): reported,
        # never a traceback; the problems found so far are kept
        problems.append(str(RvosError(f"cannot check further: {type(exc).__name__}: {' '.join(str(exc).split())}", file=path)))
    return problems[:max_problems]


def _validate(path: Path, problems: list[str], check_frames: bool, max_problems: int) -> None:
    """The checks of :func:`validate_dataset`, appending to ``problems``."""

    def bad(file: str, item: str | None, msg: str) -> None:
        if len(problems) < max_problems:
            problems.append(str(RvosError(msg, file=path / file, item=item)))

    def err(exc: RvosError) -> None:
        if len(problems) < max_problems:
            problems.append(str(exc))

    try:
        ds = RvosDataset(path)
    except RvosError as exc:
        err(exc)
        if not (path / "dataset.json").exists():
            return  # not a dataset at all: the table checks would only repeat it
        ds = None
    tables: dict[str, pd.DataFrame | None] = {}
    for name in _TABLES:
        try:
            tables[name] = read_table(path / f"{name}.parquet", name).to_pandas()
        except RvosError as exc:
            err(exc)
            tables[name] = None
    videos, objects, exprs = tables["videos"], tables["objects"], tables["expressions"]
    if videos is not None:
        videos = videos.set_index("video_id", drop=False)
    if exprs is not None:
        exprs = exprs.set_index("expression_id", drop=False)

    for table, df, key in (("videos.parquet", videos, ["video_id"]), ("objects.parquet", objects, ["video_id", "obj_id"]),
                           ("expressions.parquet", exprs, ["expression_id"])):
        if df is None:
            continue
        dup = df.duplicated(subset=key, keep="first")
        for _, r in df[dup].iterrows():
            bad(table, "/".join(str(r[k]) for k in key), "duplicate id")
    vset = set(videos["video_id"]) if videos is not None else None
    size = {v: (int(r["num_frames"]), int(r["height"]), int(r["width"])) for v, r in videos.iterrows()} if videos is not None else {}
    if videos is not None:
        _check_videos(ds, videos, bad, err, check_frames)
    objset = set(zip(objects["video_id"], objects["obj_id"].astype(int))) if objects is not None else None
    objs_of: dict[str, set[int]] = {}
    for v, o in objset or ():
        objs_of.setdefault(v, set()).add(o)
    if objects is not None and vset is not None:
        for _, r in objects.iterrows():
            if r["video_id"] not in vset:
                bad("objects.parquet", f"{r['video_id']}/{r['obj_id']}", "object of an unknown video")
    if exprs is not None:
        for eid, r in exprs.iterrows():
            if vset is not None and r["video_id"] not in vset:
                bad("expressions.parquet", eid, "expression of an unknown video")
            if eid != f"{r['video_id']}/{r['exp_id']}":
                bad("expressions.parquet", eid, "expression_id is not '<video_id>/<exp_id>'")
            if r["obj_ids"] is not None:
                for o in r["obj_ids"]:
                    if o is None or o != o:  # pandas reads a null list element as NaN
                        bad("expressions.parquet", eid, "null in obj_ids")
                        continue
                    if objset is not None and (r["video_id"], int(o)) not in objset:
                        bad("expressions.parquet", eid, f"target obj_id {o} is not an object of the video")
                if r["anno_ids"] is not None and len(r["anno_ids"]) != len(r["obj_ids"]):
                    bad("expressions.parquet", eid, "anno_ids and obj_ids differ in length")

    annotated = dict(zip(videos["video_id"], videos["annotated_frames"])) if videos is not None else {}
    n_masks = _check_masks(ds, path, vset, size, objs_of if objset is not None else None, annotated, bad, err)
    if (path / "void.parquet").exists():
        _check_void(path, vset, size, bad, err)
    if (path / "moments.parquet").exists():
        try:
            moments = read_table(path / "moments.parquet", "moments").to_pandas()
        except RvosError as exc:
            err(exc)
            moments = None
        level: dict[str, bool] = {}  # expression -> expression-level (null obj_id) spans
        last: dict[tuple, int] = {}  # (expression, obj) -> end of its previous span
        for r in (moments.to_dict("records") if moments is not None else ()):
            obj = None if r["obj_id"] is None or r["obj_id"] != r["obj_id"] else int(r["obj_id"])  # pandas: null -> NaN
            item = f"{r['expression_id']} obj {'(expression level)' if obj is None else obj}"
            if exprs is not None and r["expression_id"] not in exprs.index:
                bad("moments.parquet", item, "span of an unknown expression")
                continue
            T = size.get(r["video_id"], (0, 0, 0))[0]
            if videos is not None and not (0 <= r["start_idx"] <= r["end_idx"] < T):
                bad("moments.parquet", item, f"span {r['start_idx']}..{r['end_idx']} outside 0..{T - 1}")
            if level.setdefault(r["expression_id"], obj is None) != (obj is None):
                bad("moments.parquet", item, "the expression has both object-level and expression-level spans")
            targets = exprs.loc[r["expression_id"], "obj_ids"] if exprs is not None else None
            if obj is not None and targets is not None and obj not in {int(o) for o in targets}:
                bad("moments.parquet", item, "span of an object that is not a target of the expression")
            key = (r["expression_id"], obj)
            if key in last and r["start_idx"] <= last[key]:
                bad("moments.parquet", item, f"span {r['start_idx']}..{r['end_idx']} overlaps the previous span")
            last[key] = max(last.get(key, -1), int(r["end_idx"]))
    if ds is not None:
        counts = ds.manifest.get("counts", {})
        actual = {"videos": videos, "objects": objects, "expressions": exprs}
        actual = {k: len(v) for k, v in actual.items() if v is not None}
        if n_masks is not None:
            actual["masks"] = n_masks
        for k, v in actual.items():
            if k in counts and counts[k] != v:
                bad("dataset.json", f"counts.{k}", f"says {counts[k]}, the tables have {v}")


def _check_videos(ds: RvosDataset | None, videos: pd.DataFrame, bad, err, check_frames: bool) -> None:
    for v, r in videos.iterrows():
        n = int(r["num_frames"])
        if len(r["frames"]) != n or len(r["frame_files"]) != n:
            bad("videos.parquet", v, f"num_frames {n} but {len(r['frames'])} frames and {len(r['frame_files'])} frame files")
        if n == 0:
            bad("videos.parquet", v, "video has no frames")
        if any(not isinstance(f, str) or not f for f in r["frames"]) or any(not isinstance(f, str) or not f for f in r["frame_files"]):
            bad("videos.parquet", v, "null or empty frame name or frame file")
            continue
        if int(r["height"]) <= 0 or int(r["width"]) <= 0:
            bad("videos.parquet", v, f"size {r['height']}x{r['width']} is not positive")
        af = r.get("annotated_frames")
        if af is not None:  # format 1.1 sparse ground truth
            a = np.asarray(af, dtype=np.int64)
            if len(a) and ((a < 0).any() or (a >= n).any()):
                bad("videos.parquet", v, f"annotated_frames outside 0..{n - 1}")
            if (np.diff(a) <= 0).any():
                bad("videos.parquet", v, "annotated_frames not ascending and unique")
        if check_frames and ds is not None:
            _check_frame_files(ds, v, r, bad, err)


def _check_frame_files(ds: RvosDataset, v: str, r: pd.Series, bad, err) -> None:
    """Every frame file of a video exists and its header gives the video's height x width."""
    from PIL import Image, UnidentifiedImageError

    H, W = int(r["height"]), int(r["width"])
    root = ds.frame_root
    for t, f in enumerate(r["frame_files"]):
        p = root / f
        if not p.is_file():
            bad("videos.parquet", v, f"frame file missing: {p}")
            return
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (OSError, UnidentifiedImageError) as exc:
            err(RvosError(f"unreadable frame: {exc}", file=p, item=f"{v} frame {t}"))
            return
        if (h, w) != (H, W):  # the wording of RvosDataset.read_frame
            err(RvosError(f"frame is {h}x{w}, the video is {H}x{W} (videos.parquet)", file=p, item=f"{v} frame {t}"))
            return


def _check_masks(ds, path: Path, vset, size, objs_of, annotated, bad, err) -> int | None:
    """Stream masks.parquet; returns its row count (None when it cannot be read to the end).
    ``annotated``: video -> its ``annotated_frames`` (None: every frame)."""
    if ds is None:
        try:
            read_table(path / "masks.parquet", "masks", columns=["video_id"])
        except RvosError as exc:
            err(exc)
        return None
    n_masks = 0
    seen_videos: set[str] = set()
    try:
        for vid, rows in ds.iter_masks():
            n_masks += len(rows)
            if vid in seen_videos:
                bad("masks.parquet", vid, "masks of this video are not contiguous")
            seen_videos.add(vid)
            if vset is None:
                continue
            if vid not in vset:
                bad("masks.parquet", vid, "masks of an unknown video")
                continue
            _check_video_masks(vid, rows, size[vid], objs_of, bad)
            af = annotated.get(vid)
            if af is not None:
                fi = rows["frame_idx"].to_numpy()
                off = ~np.isin(fi, np.asarray(af, dtype=np.int64))
                if off.any():
                    bad("masks.parquet", f"{vid} frame {int(fi[off][0])}", "mask on a frame outside videos.annotated_frames (not annotated)")
    except RvosError as exc:
        err(exc)
        return None
    return n_masks


def _check_video_masks(vid: str, rows: pd.DataFrame, size: tuple[int, int, int], objs_of, bad) -> None:
    T, H, W = size
    if rows.duplicated(subset=["obj_id", "frame_idx"]).any():
        bad("masks.parquet", vid, "duplicate (obj_id, frame_idx) rows")
    if objs_of is not None:
        for o in set(rows["obj_id"].astype(int)) - objs_of.get(vid, set()):
            bad("masks.parquet", f"{vid} obj {o}", "mask of an unknown object")
    fi = rows["frame_idx"].to_numpy()
    if ((fi < 0) | (fi >= T)).any():
        bad("masks.parquet", vid, f"frame_idx outside 0..{T - 1}")
    _check_rles(rows, H, W, bad, "masks.parquet", "mask", lambda r: f"{vid} obj {r.obj_id} frame {r.frame_idx}")


def _check_rles(rows: pd.DataFrame, H: int, W: int, bad, table: str, what: str, item_of) -> None:
    """Every row's size is the video's ``H x W`` (else only the first wrong row is reported), its
    RLE covers ``H * W`` pixels and its ``area`` is right."""
    wrong = (rows["height"].to_numpy() != H) | (rows["width"].to_numpy() != W)
    if wrong.any():
        r = rows[wrong].iloc[0]
        bad(table, item_of(r), f"{what} size {r['height']}x{r['width']} differs from the video {H}x{W}")
        return
    ok = rlemod.pixel_counts(list(rows["rle"])) == H * W  # one vectorised parse of the video's RLEs
    for i in np.flatnonzero(~ok):
        r = rows.iloc[i]
        try:
            total = rlemod.pixel_count(r["rle"])  # the exact parser: its message, or a total that is right after all
        except ValueError as exc:
            bad(table, item_of(r), f"malformed RLE: {exc}")
            continue
        if total != H * W:
            bad(table, item_of(r), f"RLE covers {total} pixels, not {H}x{W}")
        ok[i] = total == H * W
    good = rows[ok]
    if len(good):
        areas, _ = rlemod.area_bbox(list(good["rle"]), H, W)
        for r, a in zip(good.itertuples(), areas):
            if int(r.area) != int(a):
                bad(table, item_of(r), f"area {r.area} but the RLE has {a} pixels")


def _check_void(path: Path, vset, size, bad, err) -> None:
    try:
        void = read_table(path / "void.parquet", "void").to_pandas()
    except RvosError as exc:
        err(exc)
        return
    for vid, rows in void.groupby("video_id", sort=False):
        if vset is not None and vid not in vset:
            bad("void.parquet", vid, "void pixels of an unknown video")
            continue
        if vid not in size:
            continue
        T, H, W = size[vid]
        fi = rows["frame_idx"].to_numpy()
        if ((fi < 0) | (fi >= T)).any():
            bad("void.parquet", vid, f"frame_idx outside 0..{T - 1}")
        if rows.duplicated(subset=["frame_idx"]).any():
            bad("void.parquet", vid, "duplicate frame_idx rows")
        _check_rles(rows, H, W, bad, "void.parquet", "void", lambda r: f"{vid} frame {r.frame_idx}")
