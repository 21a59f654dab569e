"""MeViS-M moments as moment retrieval queries: frames -> seconds, qids, and exports.

One query per expression. Its moment is the union of the expression's spans in ``moments.parquet``
(every object's spans, or the expression-level spans with a null ``obj_id``), merged into disjoint
inclusive frame spans (touching spans merge). A span ``start..end`` (inclusive frame indices) becomes
the window ``[start / fps, (end + 1) / fps]`` seconds (frame k covers ``[k / fps, (k + 1) / fps)``), and
the video lasts ``num_frames / fps`` seconds.

qids: the expression's position in ``expressions.parquet`` (0-based), so a dataset always gives the
same qids; the mapping back to ``expression_id`` is written beside every export
(``<file>.qids.json``). Expressions without a moment get no query (counted as
``skipped_no_moment``): the Moment-DETR evaluation cannot score a query without a window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rvoskit.errors import RvosError
from rvoskit.format import RvosDataset, open_dataset
from rvoskit.format.atomic import atomic_file
from rvoskit.metrics.moments import MomentQueries, load_jsonl, merge_spans, span_seconds

EXPORT_FORMATS = ("qvhighlights", "charades-sta", "chrono")
QIDS_FORMAT = "rvoskit-moment-qids"


def expression_moments(ds: RvosDataset) -> dict[str, list[tuple[int, int]]]:
    """Per expression (every expression of the dataset, in table order), its moment as merged
    inclusive frame spans (``[]`` when it has none).

    Raises:
        RvosError: the dataset has no ``moments.parquet`` (not a MeViS-M conversion).
    """
    if not ds.has_moments:
        raise RvosError("the dataset has no moments.parquet (convert it with rvoskit convert mevis-m)", file=ds.path)
    m = ds.moments
    spans: dict[str, list[tuple[int, int]]] = {e: [] for e in ds.expressions["expression_id"].tolist()}
    for e, a, b in zip(m["expression_id"].tolist(), m["start_idx"].tolist(), m["end_idx"].tolist()):
        if e in spans:
            spans[e].append((a, b))
    return {e: merge_spans(s) if s else [] for e, s in spans.items()}


def _check_fps(fps: float | None) -> float:
    if fps is None:
        raise RvosError("--fps is needed to turn frame indices into seconds (the dataset does not record a frame rate)")
    if not (float(fps) > 0):
        raise RvosError(f"--fps must be > 0, got {fps}")
    return float(fps)


def dataset_queries(ds: RvosDataset | str | Path, fps: float, decimals: int | None = None) -> tuple[MomentQueries, dict]:
    """The ground-truth queries of a MeViS-M dataset in seconds.

    Args:
        ds: a converted MeViS-M dataset.
        fps: frames per second of the videos' frames.
        decimals: round window ends and durations to this many decimals (None: exact).

    Returns:
        ``(queries, info)``: one query per expression with a moment (qid = position in the
        expressions table, vid = video_id, duration = num_frames / fps); ``info`` has ``qids``
        (qid -> expression_id for every expression), ``texts`` (qid -> text) and
        ``skipped_no_moment``.
    """
    ds = ds if isinstance(ds, RvosDataset) else open_dataset(ds)
    fps = _check_fps(fps)
    moments = expression_moments(ds)
    nframes = {vid: int(n) for vid, n in zip(ds.videos.index, ds.videos["num_frames"])}
    q = MomentQueries([], [], [], [])
    qids, texts = {}, {}
    skipped = 0
    e = ds.expressions
    for k, (eid, vid, text) in enumerate(zip(e["expression_id"].tolist(), e["video_id"].tolist(), e["text"].tolist())):
        qids[k] = eid
        texts[k] = text
        spans = moments[eid]
        if not spans:
            skipped += 1
            continue
        dur = nframes[vid] / fps
        q.qids.append(k)
        q.windows.append(np.array([span_seconds(a, b, fps, decimals) for a, b in spans], dtype=np.float64))
        q.vids.append(vid)
        q.durations.append(round(dur, decimals) if decimals is not None else dur)
    return q, {"qids": qids, "texts": texts, "with_moment": set(q.qids), "skipped_no_moment": skipped, "fps": fps,
               "decimals": decimals}


def match_prediction_qids(lines: list[dict], info: Mapping[str, Any], *, file: str | Path) -> tuple[list[dict], int]:
    """Map prediction lines onto a dataset's qids: an int qid (the export's; also as a digit string) or an
    ``expression_id`` string; a line's ``vid``, when given, must be the expression's video.

    Returns:
        ``(lines with int qids, number of lines dropped because their expression has no moment)``.

    Raises:
        RvosError: a qid that is not an expression of the dataset, or a ``vid`` that disagrees.
    """
    by_eid = {e: k for k, e in info["qids"].items()}
    out, dropped = [], 0
    has_moment = info["with_moment"]
    for n, d in enumerate(lines, 1):
        qid = d.get("qid")
        if isinstance(qid, str) and qid in by_eid:
            k = by_eid[qid]
        elif isinstance(qid, int) and not isinstance(qid, bool) and qid in info["qids"]:
            k = qid
        elif isinstance(qid, str) and qid.isdigit() and int(qid) in info["qids"]:  # a qid written as text
            k = int(qid)
        else:
            raise RvosError(f"qid {qid!r} is neither an expression index nor an expression_id of the dataset", file=file, item=f"line {n}")
        eid = info["qids"][k]
        vid = d.get("vid")
        if vid is not None and vid != eid.rsplit("/", 1)[0]:
            raise RvosError(f"qid {qid!r} is expression {eid}, but the line says vid {vid!r} (qids from another export?)", file=file, item=f"line {n}")
        if k not in has_moment:
            dropped += 1
            continue
        out.append({**d, "qid": k})
    return out, dropped


def export_moments(
    dataset: str | Path | RvosDataset,
    to: str,
    out: str | Path,
    *,
    fps: float,
    decimals: int | None = 2,
    overwrite: bool = False,
) -> dict:
    """Write a MeViS-M dataset as moment retrieval training/evaluation data.

    Formats:
        ``qvhighlights``: JSONL, one line per query ``{"qid", "query", "vid", "duration",
        "relevant_windows": [[s, e], ...]}`` (Moment-DETR ``data/README.md``; no highlight fields).
        ``charades-sta``: text, one line per query ``"<vid> <start> <end>##<sentence>"`` (TALL); a
        moment of several windows becomes its hull (first start, last end), counted as ``hulled``;
        newlines in a sentence become spaces and ``##`` becomes ``#``.
        ``chrono``: a JSON list of ``{"video", "qid", "query", "duration", "relevant_windows"}`` (Chrono /
        Mr. BLIP ``moment_retrieval_dataset.py``, which opens ``<video>.mp4``).

    Args:
        dataset: a converted MeViS-M dataset.
        to: one of :data:`EXPORT_FORMATS`.
        out: the file to write; the qid mapping goes to ``<out>.qids.json``.
        fps: frames per second.
        decimals: round seconds to this many decimals (None: exact floats).
        overwrite: replace existing files.

    Returns:
        The sidecar contents (without the qid table): counts and options.

    Raises:
        RvosError: unknown format, no moments, bad fps, ``out`` exists without ``overwrite``.
    """
    if to not in EXPORT_FORMATS:
        raise RvosError(f"unknown moment export format {to!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    ds = dataset if isinstance(dataset, RvosDataset) else open_dataset(dataset)
    out = Path(out)
    side = out.with_name(out.name + ".qids.json")
    for p in (out, side):
        if p.exists() and not overwrite:
            raise RvosError("output exists; pass --overwrite to replace it", file=p)
    if out.exists():  # only an earlier moments export (its sidecar says so) is ever replaced
        prev = None
        try:
            prev = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        if not (isinstance(prev, dict) and prev.get("format") == QIDS_FORMAT and prev.get("file") == out.name):
            raise RvosError("exists and is not an rvoskit moments export (no matching .qids.json); it is never replaced", file=out)
    q, info = dataset_queries(ds, fps, decimals)
    hulled = cleaned = 0
    if to == "qvhighlights":
        text = "".join(
            json.dumps({"qid": k, "query": info["texts"][k], "vid": vid, "duration": dur, "relevant_windows": w.tolist()}) + "\n"
            for k, vid, dur, w in zip(q.qids, q.vids, q.durations, q.windows)
        )
    elif to == "chrono":
        text = json.dumps(
            [{"video": vid, "qid": k, "query": info["texts"][k], "duration": dur, "relevant_windows": w.tolist()}
             for k, vid, dur, w in zip(q.qids, q.vids, q.durations, q.windows)],
            indent=1,
        ) + "\n"
    else:
        lines = []
        for k, vid, w in zip(q.qids, q.vids, q.windows):
            s, e = float(w[0, 0]), float(w[-1, 1])
            hulled += len(w) > 1
            sent = info["texts"][k]
            clean = " ".join(sent.split()).replace("##", "#")
            cleaned += clean != sent
            lines.append(f"{vid} {_fmt(s, decimals)} {_fmt(e, decimals)}##{clean}\n")
        text = "".join(lines)
    meta = {
        "format": QIDS_FORMAT,
        "version": 1,
        "export": to,
        "file": out.name,
        "dataset": str(Path(ds.path).resolve()),
        "source": ds.manifest.get("source", {}),
        "fps": info["fps"],
        "decimals": decimals,
        "window_rule": "[start_idx / fps, (end_idx + 1) / fps] seconds; spans of all objects merged per expression",
        "queries": len(q.qids),
        "skipped_no_moment": info["skipped_no_moment"],
        **({"hulled": hulled, "sentences_cleaned": cleaned} if to == "charades-sta" else {}),
    }
    sidecar = {**meta, "qids": {str(k): e for k, e in info["qids"].items() if k in info["with_moment"]}}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    with atomic_file(side) as tmp:
        Path(tmp).write_text(json.dumps(sidecar, indent=1) + "\n", encoding="utf-8")
    return meta


def _fmt(x: float, decimals: int | None) -> str:
    return f"{x:.{decimals}f}" if decimals is not None else repr(x)


def read_keyframes(path: str | Path, ds: RvosDataset, info: Mapping[str, Any]) -> dict[str, list[int]]:
    """Read keyframe predictions: JSONL lines ``{"qid" | "expression_id": ..., "pred_keyframes": [...]}``,
    frames as indices into ``videos.frames`` (int) or frame names (str), best first.

    Returns:
        ``{expression_id: [frame index, ...]}``.

    Raises:
        RvosError: an unknown expression, a repeated one, a frame outside its video, malformed lines.
    """
    path = Path(path)
    by_eid = {e: k for k, e in info["qids"].items()}
    frames = {vid: list(fr) for vid, fr in zip(ds.videos.index, ds.videos["frames"])}
    out: dict[str, list[int]] = {}
    for n, d in enumerate(load_jsonl(path, what="keyframe predictions"), 1):
        item = f"line {n}"
        key = d.get("expression_id", d.get("qid"))
        if isinstance(key, str) and key in by_eid:
            eid = key
        elif isinstance(key, int) and not isinstance(key, bool) and key in info["qids"]:
            eid = info["qids"][key]
        else:
            raise RvosError(f"{key!r} is neither an expression_id nor a qid of the dataset", file=path, item=item)
        if eid in out:
            raise RvosError(f"expression {eid} appears twice", file=path, item=item)
        ranked = d.get("pred_keyframes")
        if not isinstance(ranked, list):
            raise RvosError("a line needs 'pred_keyframes': [frame, ...] (indices or frame names, best first)", file=path, item=item)
        fr = frames[eid.rsplit("/", 1)[0]]
        idx = []
        for f in ranked:
            if isinstance(f, str):
                if f not in fr:
                    raise RvosError(f"frame {f!r} is not a frame of the video", file=path, item=f"{item} ({eid})")
                idx.append(fr.index(f))
            elif isinstance(f, int) and not isinstance(f, bool):
                if not 0 <= f < len(fr):
                    raise RvosError(f"frame index {f} outside 0..{len(fr) - 1}", file=path, item=f"{item} ({eid})")
                idx.append(f)
            else:
                raise RvosError(f"frame {f!r} is neither an index nor a frame name", file=path, item=f"{item} ({eid})")
        out[eid] = idx
    return out
