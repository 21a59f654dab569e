"""MeViS-M converter: MeViS plus temporal moments (Lee et al., arXiv 2508.11955, "MeViS-M").

MeViS-M annotates, per expression and object, the frame spans during which the object is referred
to. The official files are not public (``docs: dataset-formats.md`` §4), so rvoskit reads a
documented overlay format through a pluggable reader (:data:`OVERLAY_READERS`); when the official
files appear, add a reader that yields the same :class:`Span` records.

Overlay format ``rvoskit-mevis-m-overlay`` v1 (JSON)::

    {"format": "rvoskit-mevis-m-overlay", "version": 1,
     "frame_ref": "index",                      # or "name": spans given as frame names
     "videos": {"<video_id>": {"<exp_id>": {"<obj_id>": [[start, end], ...]}}}}

Spans are inclusive, disjoint and sorted per (expression, object); ``obj_id`` is the MeViS
per-video ``obj_id`` (one of the expression's ``obj_id`` list).
"""

from __future__ import annotations

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
    obj_id: int
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
            require(isinstance(objs, dict), "expression entry must map obj_id -> spans", file=path, item=f"videos/{vid}/{eid}")
            for oid, lst in objs.items():
                where = f"videos/{vid}/{eid}/{oid}"
                try:
                    obj = int(oid)
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
            a frame name or index outside the video, ``start > end``, or overlapping spans.
    """
    rows = []
    by_key: dict[tuple, list[tuple[int, int, str]]] = {}
    for s in spans:
        v = videos.get(s.video_id)
        require(v is not None, f"unknown video {s.video_id!r}", file=file, item=s.where)
        e = v["expressions"].get(s.exp_id)
        require(e is not None, f"unknown expression {s.exp_id!r} of video {s.video_id}", file=file, item=s.where)
        objs = [int(x) for x in (e.get("obj_id") or [])] if isinstance(e.get("obj_id"), list) else [int(e.get("obj_id", -1))]
        require(s.obj_id in objs, f"obj_id {s.obj_id} is not a target of this expression (targets {objs})", file=file, item=s.where)
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
    overwrite: bool = False,
    show_progress: bool = False,
) -> Path:
    """Convert a MeViS split and add ``moments.parquet`` from a MeViS-M overlay.

    Args:
        root, split, out, verify_sha, overwrite, show_progress: as :func:`convert_mevis`.
        overlay: the span file.
        overlay_format: a key of :data:`OVERLAY_READERS`.

    Returns:
        ``out``.

    Raises:
        RvosError: bad MeViS input or bad spans (see :func:`moments_rows`); nothing is left at ``out``.
    """
    overlay = Path(overlay)
    reader = OVERLAY_READERS.get(overlay_format)
    require(reader is not None, f"unknown overlay format {overlay_format!r} (known: {', '.join(OVERLAY_READERS)})")
    spans = reader(overlay)

    def add(w: DatasetWriter, videos: dict) -> None:
        w.add_input(overlay)
        w.add_moments(moments_rows(spans, videos, file=overlay))

    return convert_mevis(root, split, out, verify_sha=verify_sha, overwrite=overwrite, show_progress=show_progress,
                         extra=add, dataset_name="mevis-m")
