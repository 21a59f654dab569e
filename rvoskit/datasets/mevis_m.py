"""MeViS-M converter: MeViS plus temporal moments (Lee et al., arXiv 2508.11955, "MeViS-M").

MeViS-M annotates, per expression and object, the frame spans during which the object is referred
to. The official files are not public (``docs: dataset-formats.md`` §4), so rvoskit reads a
documented overlay format through a pluggable reader (:data:`OVERLAY_READERS`); when the official
files appear, add a reader that yields the same :class:`Span` records.

Overlay format ``rvoskit-mevis-m-overlay`` v1 (JSON)::

    {"format": "rvoskit-mevis-m-overlay", "version": 1,
     "frame_ref": "index",                      # or "name": spans given as frame names
     "videos": {"<video_id>": {"<exp_id>": {"<obj_id>": [[start, end], ...]},     # object level
                               "<exp_id>": [[start, end], ...]}}}                 # expression level

Spans are inclusive and disjoint per (expression, object); ``obj_id`` is the MeViS per-video
``obj_id`` (one of the expression's ``obj_id`` list). An expression given a list instead of an
object mapping has **expression-level** spans (no object; the MeViS-M valid split annotates moments
per expression only, TGL A.1): they become ``moments`` rows with a null ``obj_id``. An empty list
(or mapping) is an empty moment.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from rvoskit.datasets.common import load_json, require
from rvoskit.datasets.mevis import convert_mevis
from rvoskit.errors import RvosError
from rvoskit.format import DatasetWriter

OVERLAY_FORMAT = "rvoskit-mevis-m-overlay"


@dataclass(frozen=True)
class Span:
    """One referred span: frames ``start..end`` (inclusive) as indices (int) or frame names (str)."""

    video_id: str
    exp_id: str
    obj_id: int | None  # None: an expression-level span
    start: int | str
    end: int | str
    where: str  # for error messages: "videos/<vid>/<exp>/<obj>[k]"


def read_overlay_v1(path: Path) -> list[Span]:
    """Read an ``rvoskit-mevis-m-overlay`` v1 file into spans.

    Raises:
        RvosError: invalid JSON, wrong format/version, or malformed entries (named by their JSON path).
    """
    doc = load_json(path, what="MeViS-M overlay")
    require(isinstance(doc, dict) and doc.get("format") == OVERLAY_FORMAT, f"not an {OVERLAY_FORMAT} file", file=path)
    require(doc.get("version") == 1, f"unsupported overlay version {doc.get('version')!r}", file=path)
    ref = doc.get("frame_ref", "index")
    require(ref in ("index", "name"), f"frame_ref must be 'index' or 'name', got {ref!r}", file=path)
    videos = doc.get("videos")
    require(isinstance(videos, dict), "no 'videos' object", file=path)
    spans = []
    for vid, exps in videos.items():
        require(isinstance(exps, dict), "video entry must map exp_id -> objects", file=path, item=f"videos/{vid}")
        for eid, objs in exps.items():
            require(isinstance(objs, (dict, list)), "expression entry must map obj_id -> spans (object level) or be a list "
                    "of spans (expression level)", file=path, item=f"videos/{vid}/{eid}")
            entries = objs.items() if isinstance(objs, dict) else [(None, objs)]
            for oid, lst in entries:
                where = f"videos/{vid}/{eid}" + (f"/{oid}" if oid is not None else "")
                try:
                    obj = None if oid is None else int(oid)
                except ValueError:
                    raise RvosError(f"obj_id {oid!r} is not an integer", file=path, item=where) from None
                require(isinstance(lst, list), "spans must be a list of [start, end]", file=path, item=where)
                for k, sp in enumerate(lst):
                    typ = int if ref == "index" else str
                    require(isinstance(sp, list) and len(sp) == 2 and all(isinstance(x, typ) and not isinstance(x, bool) for x in sp),
                            f"span must be [start, end] of frame {'indices' if ref == 'index' else 'names'}", file=path, item=f"{where}[{k}]")
                    spans.append(Span(vid, str(eid), obj, sp[0], sp[1], f"{where}[{k}]"))
    return spans


#: Overlay readers by name (``--overlay-format``). Add the official MeViS-M reader here when released.
OVERLAY_READERS: dict[str, Callable[[Path], list[Span]]] = {"rvoskit-v1": read_overlay_v1}


def moments_rows(spans: Iterable[Span], videos: dict, *, file: Path) -> list[dict]:
    """Validate spans against the MeViS meta and build ``moments`` rows.

    Args:
        spans: from an overlay reader.
        videos: the ``videos`` mapping of MeViS ``meta_expressions.json``.
        file: the overlay file (for error messages).

    Raises:
        RvosError: unknown video, expression or object (not one of the expression's obj_ids),
            a frame name or index outside the video, ``start > end``, overlapping spans, or an
            expression with both object-level and expression-level spans.
    """
    rows = []
    by_key: dict[tuple, list[tuple[int, int, str]]] = {}
    granularity: dict[tuple[str, str], bool] = {}
    for s in spans:
        v = videos.get(s.video_id)
        require(v is not None, f"unknown video {s.video_id!r}", file=file, item=s.where)
        e = v["expressions"].get(s.exp_id)
        require(e is not None, f"unknown expression {s.exp_id!r} of video {s.video_id}", file=file, item=s.where)
        if s.obj_id is not None:
            require(e.get("obj_id") is not None,
                    f"obj_id {s.obj_id}: this split's expressions have no object ids (MeViS valid/test); "
                    "give expression-level spans (a list of spans, no object)", file=file, item=s.where)
            objs = [int(x) for x in e["obj_id"]] if isinstance(e["obj_id"], list) else [int(e["obj_id"])]
            require(s.obj_id in objs, f"obj_id {s.obj_id} is not a target of this expression (targets {objs})", file=file, item=s.where)
        level = granularity.setdefault((s.video_id, s.exp_id), s.obj_id is None)
        require(level == (s.obj_id is None), "an expression has either object-level or expression-level spans, not both",
                file=file, item=s.where)
        frames = v["frames"]
        idx = []
        for x in (s.start, s.end):
            if isinstance(x, str):
                require(x in frames, f"frame {x!r} is not a frame of the video", file=file, item=s.where)
                idx.append(frames.index(x))
            else:
                require(0 <= x < len(frames), f"frame index {x} outside 0..{len(frames) - 1}", file=file, item=s.where)
                idx.append(x)
        require(idx[0] <= idx[1], f"span start {s.start} is after its end {s.end}", file=file, item=s.where)
        by_key.setdefault((s.video_id, s.exp_id, s.obj_id), []).append((idx[0], idx[1], s.where))
    for (vid, eid, obj), lst in by_key.items():
        lst.sort()
        for (a0, a1, _), (b0, b1, where) in zip(lst, lst[1:]):
            require(b0 > a1, f"span {b0}..{b1} overlaps span {a0}..{a1}", file=file, item=where)
        frames = videos[vid]["frames"]
        for a, b, _ in lst:
            rows.append({"expression_id": f"{vid}/{eid}", "video_id": vid, "obj_id": obj, "start_idx": a, "end_idx": b,
                         "start_frame": frames[a], "end_frame": frames[b]})
    return rows


def convert_mevis_m(
    root: str | Path,
    split: str,
    out: str | Path,
    *,
    overlay: str | Path,
    overlay_format: str = "rvoskit-v1",
    verify_sha: bool = False,
    drop_unannotated: bool = False,
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Convert a MeViS split and add ``moments.parquet`` from a MeViS-M overlay.

    Args:
        root, split, out, verify_sha, overwrite, show_progress: as :func:`convert_mevis`.
        overlay: the span file.
        overlay_format: a key of :data:`OVERLAY_READERS`.
        drop_unannotated: TGL's cleaning of the training split (see :func:`drop_unannotated_expressions`);
            the counts go to the manifest's ``dropped_unannotated``.

    Returns:
        ``out``.

    Raises:
        RvosError: bad MeViS input or bad spans (see :func:`moments_rows`), ``drop_unannotated`` on a
            split without masks; nothing is left at ``out``.
    """
    overlay = Path(overlay)
    reader = OVERLAY_READERS.get(overlay_format)
    require(reader is not None, f"unknown overlay format {overlay_format!r} (known: {', '.join(OVERLAY_READERS)})")
    spans = reader(overlay)

    def add(w: DatasetWriter, videos: dict) -> None:
        w.add_input(overlay)
        w.add_moments(moments_rows(spans, videos, file=overlay))

    if not drop_unannotated:
        return convert_mevis(root, split, out, verify_sha=verify_sha, overwrite=overwrite, show_progress=show_progress,
                             extra=add, dataset_name="mevis-m")
    out = Path(out)
    if out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-unfiltered-", dir=out.parent))
    try:
        full = convert_mevis(root, split, tmp / "full", verify_sha=verify_sha, show_progress=show_progress,
                             extra=add, dataset_name="mevis-m")
        drop_unannotated_expressions(full, out, overwrite=overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


#: What TGL reports for its cleaning of MeViS train (arXiv 2508.11955): for comparison in the manifest.
TGL_DROPPED = {"videos": 66, "expressions": 1278}


def unannotated_expressions(ds) -> tuple[list[str], list[str]]:
    """Expressions whose referred objects have no valid mask.

    Returns:
        ``(none_valid, some_invalid)``: expressions none of whose target objects has a non-empty mask
        on any frame (the ones :func:`drop_unannotated_expressions` drops), and those with at least one
        such target (a wider reading of TGL's rule, reported for comparison). No-target expressions
        (``obj_ids == []``, MeViS v2) are deliberate and in neither list.

    Raises:
        RvosError: a split without ground truth (``obj_ids`` null).
    """
    e = ds.expressions
    if e["obj_ids"].isna().any():
        raise RvosError("--drop-unannotated needs a split with masks (obj_ids are null)", file=ds.path)
    m = ds.masks(columns=["video_id", "obj_id", "area"])
    m = m[m["area"].to_numpy() > 0]
    valid = set(zip(m["video_id"], m["obj_id"].astype(int)))
    none_valid, some_invalid = [], []
    for eid, vid, objs in zip(e["expression_id"], e["video_id"], e["obj_ids"]):
        if len(objs) == 0:
            continue
        ok = [(vid, int(o)) in valid for o in objs]
        if not any(ok):
            none_valid.append(eid)
        if not all(ok):
            some_invalid.append(eid)
    return none_valid, some_invalid


def drop_unannotated_expressions(src: str | Path, out: str | Path, *, overwrite: bool = False) -> dict:
    """TGL's cleaning: copy dataset ``src`` to ``out`` without the expressions whose referred objects
    have no valid mask (none of the targets has a non-empty mask on any frame), their moments, and the
    videos left without expressions (with their objects and masks).

    Returns:
        The ``dropped_unannotated`` record written to the manifest: ``rule``, ``expressions``,
        ``videos``, ``moments`` dropped, ``expressions_with_some_target_unannotated`` (the wider
        reading) and TGL's reported counts.

    Raises:
        RvosError: ``src`` has no ground truth; ``out`` exists without ``overwrite``.
    """
    from rvoskit.format import open_dataset

    ds = open_dataset(src)
    none_valid, some_invalid = unannotated_expressions(ds)
    drop = set(none_valid)
    e = ds.expressions
    kept = e[~e["expression_id"].isin(drop)]
    touched = set(e.loc[e["expression_id"].isin(drop), "video_id"])
    gone = touched - set(kept["video_id"])
    mom = ds.moments
    mom_kept = mom[~mom["expression_id"].isin(drop)]
    man = ds.manifest
    src_info = man.get("source", {})
    record = {
        "rule": "expressions none of whose referred objects has a non-empty mask on any frame; then videos without expressions",
        "expressions": len(drop),
        "videos": len(gone),
        "moments": int(len(mom) - len(mom_kept)),
        "expressions_with_some_target_unannotated": len(some_invalid),
        "tgl_reported": TGL_DROPPED,
        "dropped_videos": sorted(gone),
    }
    options = {**man.get("converter", {}).get("options", {}), "drop_unannotated": True}
    standard = {"format", "format_version", "source", "converter", "inputs", "frame_root", "counts", "tables", "created_at"}
    with DatasetWriter(out, dataset=src_info.get("dataset", "mevis-m"), split=src_info.get("split", ""),
                       frame_root=man["frame_root"], source_root=src_info.get("root"), options=options, overwrite=overwrite) as w:
        root = Path(src_info.get("root") or ".")
        for inp in man.get("inputs", []):
            p = Path(inp["path"])
            w.add_input(p if p.is_absolute() else root / p, sha256=inp["sha256"])
        for k, v in man.items():
            if k not in standard:
                w.set_extra(k, v)
        w.set_extra("dropped_unannotated", record)
        # rows through Arrow (not pandas, which turns null strings and ints into NaN)
        for row in ds.table("videos").to_pylist():
            if row["video_id"] not in gone:
                w.add_video(row)
                w.add_masks(row["video_id"], ds.masks(row["video_id"]))
        w.add_objects(r for r in ds.table("objects").to_pylist() if r["video_id"] not in gone)
        w.add_expressions(r for r in ds.table("expressions").to_pylist() if r["expression_id"] not in drop)
        if ds.has_moments:
            w.add_moments(r for r in ds.table("moments").to_pylist() if r["expression_id"] not in drop)
    return record
