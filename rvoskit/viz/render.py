"""Overlays of datasets, track stores and predictions: PNG contact sheets and GIF/MP4 clips.

Every input is read through :mod:`rvoskit.format` (datasets, track stores, predictions); masks are
decoded only on the frames that are drawn. Three renderers share one layout:

- :func:`render_dataset`: per video a sheet whose first row shows all objects (one colour each) and
  whose other rows show the ground truth of each expression (its target objects, coloured as in the
  first row) with the expression text; a clip per expression.
- :func:`render_tracks`: per video a sheet whose first row shows all candidate tracks (one colour
  each) and whose other rows show one track each, labelled with its prompt and scores; a clip per video.
- :func:`render_predictions`: per video a sheet with one row per predicted expression, coloured
  true positive / false positive / false negative against the ground truth (outlined in white) with the
  per-frame J in each tile and the expression's mean J in its label; a clip per expression.

Each writes ``<out>/viz.json`` (``format: "rvoskit-viz"``: kind, inputs, options and one entry per
file with a caption), the sheets ``<out>/<safe video_id>.png`` and, with ``video="gif"|"mp4"``, the
clips. A run resumes: videos whose files all exist are skipped when the options are the same.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import pycocotools.mask as cocomask

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format import RvosDataset, open_dataset, safe_name
from rvoskit.format import rle as rlemod
from rvoskit.format.atomic import atomic_file
from rvoskit.format.predictions import read_manifest
from rvoskit.format.trackstore import TrackStore
from rvoskit.viz import draw
from rvoskit.viz.draw import Colour, Sheet, SheetRow

MANIFEST = "viz.json"
FORMAT_NAME = "rvoskit-viz"
Progress = Callable[[int, int, str], None]
Layers = tuple[list[tuple[np.ndarray, Colour]], list[tuple[np.ndarray, Colour]], str | None]


@dataclass
class VizResult:
    """What a renderer wrote.

    Attributes:
        out: the output directory.
        files: one dict per file (``path`` relative to ``out``, ``kind`` "sheet" or "clip",
            ``video_id``, ``expression_id`` where it applies, ``caption``), as in ``viz.json``.
        skipped: videos left as they were by a resumed run.
    """

    out: Path
    files: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Row:
    """A sheet row / clip: its label and how to colour one frame's decoded masks."""

    key: str
    label: list[str]
    swatch: Colour | None
    layers: Callable[[Mapping[Any, np.ndarray], int], Layers]
    clip: str | None = None  # path of the row's clip relative to the output, without suffix (None: no clip)
    expression_id: str | None = None
    moment: np.ndarray | None = None  # MeViS-M: bool (T,) frames inside the expression's moment (a timeline row)


@dataclass
class _Scene:
    """One video to draw: frames, a per-frame mask decoder, rows, legend, title."""

    ds: RvosDataset
    video_id: str
    decode: Callable[[int], dict[Any, np.ndarray]]
    rows: list[_Row]
    legend: list[tuple[Colour | None, str]]
    title: str
    note: str = ""

    @property
    def info(self) -> pd.Series:
        return self.ds.video(self.video_id)

    def frame(self, t: int) -> np.ndarray:
        v = self.info
        img = self.ds.read_frame(self.video_id, t)
        if img.shape[:2] != (int(v["height"]), int(v["width"])):
            raise RvosError(
                f"frame is {img.shape[0]}×{img.shape[1]}, videos.parquet says {int(v['height'])}×{int(v['width'])} (height×width)",
                file=self.ds.frame_paths(self.video_id)[t],
                item=f"{self.video_id} frame {t}",
            )
        return img


# -- decoding ---------------------------------------------------------------------------------------
def _decode(counts: bytes, h: int, w: int, *, file: Any, item: str) -> np.ndarray:
    try:
        return rlemod.decode(counts, h, w)
    except ValueError as exc:
        raise RvosError(f"malformed RLE: {exc}", file=file, item=item) from None


def _by_frame(rows: pd.DataFrame, key: str) -> dict[int, dict[Any, bytes]]:
    """``{frame_idx: {rows[key]: rle}}`` of a mask table."""
    out: dict[int, dict[Any, bytes]] = {}
    for k, t, counts in zip(rows[key].tolist(), rows["frame_idx"].tolist(), rows["rle"].tolist()):
        out.setdefault(int(t), {})[k] = counts
    return out


def _decoder(index: Mapping[int, Mapping[Any, bytes]], h: int, w: int, file: Any, video_id: str):
    def decode(t: int) -> dict[Any, np.ndarray]:
        return {k: _decode(c, h, w, file=file, item=f"{video_id} frame {t} {k}") for k, c in index.get(t, {}).items()}

    return decode


def _by_area(masks: Mapping[Any, np.ndarray], keys: Sequence[Any]) -> list[Any]:
    """Keys present in ``masks``, largest mask first (so that small masks are painted on top)."""
    present = [k for k in keys if k in masks]
    return sorted(present, key=lambda k: -int(masks[k].sum()))


def frame_j(pred: Mapping[int, bytes], gt: Mapping[int, Sequence[bytes]], num_frames: int, h: int, w: int) -> np.ndarray:
    """Per-frame region similarity J (IoU) of a predicted track against a ground truth, from RLEs.

    Args:
        pred: ``{frame_idx: rle}``; a missing frame is an empty prediction.
        gt: ``{frame_idx: [rle, ...]}`` of the target objects (their union is the ground truth); a
            missing frame is an empty ground truth.
        num_frames, h, w: video length and mask size.

    Returns:
        ``float64 (num_frames,)``; a frame where both masks are empty scores 1 (the DAVIS / MeViS
        ``db_eval_iou`` convention). Void pixels are not excluded: this is the picture's J, not the
        evaluation protocol (``rvoskit eval`` owns that).
    """
    out = np.ones(num_frames, np.float64)
    for t in range(num_frames):
        p = pred.get(t)
        gs = [rlemod.to_coco(c, h, w) for c in gt.get(t, [])]
        g = (cocomask.merge(gs, intersect=False) if len(gs) > 1 else gs[0]) if gs else None
        pa = int(cocomask.area(rlemod.to_coco(p, h, w))) if p is not None else 0
        ga = int(cocomask.area(g)) if g is not None else 0
        if pa == 0 and ga == 0:
            continue
        if pa == 0 or ga == 0:
            out[t] = 0.0
            continue
        out[t] = float(cocomask.iou([rlemod.to_coco(p, h, w)], [g], [0])[0, 0])
    return out


# -- drawing a scene --------------------------------------------------------------------------------
def scene_sheet(scene: _Scene, *, frames: int = 8, tile_width: int = 240, alpha: float = 0.5, max_rows: int = 40) -> Sheet:
    """Draw a scene's contact sheet: rows x ``frames`` evenly sampled frames, tiles ``tile_width`` wide."""
    v = scene.info
    T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
    sampled = draw.sample_frames(T, frames)
    size = draw.fit_size(H, W, tile_width)
    rows = scene.rows[:max_rows]
    note = scene.note
    if len(scene.rows) > max_rows:
        note = (note + " " if note else "") + f"{len(scene.rows) - max_rows} more rows not shown (max_rows={max_rows})."
    tiles: list[list[np.ndarray]] = [[] for _ in rows]
    for t in sampled:
        img = draw.resize_frame(scene.frame(t), size)
        masks = {k: draw.resize_mask(m, size) for k, m in scene.decode(t).items()}
        for r, row in enumerate(rows):
            layers, outlines, tag = row.layers(masks, t)
            tile = draw.overlay(img, layers, alpha=alpha, outlines=outlines)
            tiles[r].append(draw.tag(tile, tag) if tag else tile)
    names = [str(v["frames"][t]) for t in sampled]
    title = f"{scene.title} | {len(sampled)} of {T} frames, {H}×{W}"
    sheet_rows = [SheetRow(row.label, tiles[r], row.swatch, timeline=None if row.moment is None else (row.moment, sampled))
                  for r, row in enumerate(rows)]
    return draw.contact_sheet(sheet_rows, names, title=title, legend=scene.legend, note=note)


def scene_clips(scene: _Scene, paths: Mapping[str, Path], *, width: int = 640, alpha: float = 0.5, fps: float = 5.0) -> None:
    """Write one clip per row key in ``paths`` (``.gif`` or ``.mp4``), every frame of the video, at
    ``width`` pixels wide, with the row's label, the frame name and the legend under the frame."""
    v = scene.info
    T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
    size = draw.fit_size(H, W, width)
    rows = [r for r in scene.rows if r.key in paths]
    legend = draw.legend_strip(size[1], scene.legend)
    # MP4 writers stream, so every clip of the video is drawn in one pass over the frames; a GIF
    # holds its frames until it is written, so GIFs are drawn one at a time (bounded memory)
    groups = [rows] if all(Path(paths[r.key]).suffix.lower() == ".mp4" for r in rows) else [[r] for r in rows]
    for group in groups:
        with contextlib.ExitStack() as stack:
            sinks = [stack.enter_context(draw.VideoSink(paths[r.key], fps)) for r in group]
            texts = [[w for part in r.label for w in draw.wrap(part, size[1] - 16)] for r in group]
            for t in range(T):
                img = draw.resize_frame(scene.frame(t), size)
                masks = {k: draw.resize_mask(m, size) for k, m in scene.decode(t).items()}
                for row, sink, text in zip(group, sinks, texts):
                    layers, outlines, tag = row.layers(masks, t)
                    tile = draw.overlay(img, layers, alpha=alpha, outlines=outlines)
                    caption = draw.caption_strip(size[1], text + [f"frame {v['frames'][t]} ({t + 1}/{T})" + (f"  {tag}" if tag else "")])
                    sink.add(draw.stack([tile, caption, legend]))


# -- output directory -------------------------------------------------------------------------------
def _open_out(out: Path, kind: str, inputs: dict, options: dict, overwrite: bool) -> None:
    """Create ``out`` or check that it may be resumed (same kind and options) or replaced."""
    mpath = out / MANIFEST
    if out.exists():
        if not mpath.is_file():
            if out.is_dir() and not any(out.iterdir()):
                pass
            else:
                raise RvosError("output exists and is not an rvoskit viz folder (no viz.json); choose another --out", file=out)
        else:
            try:
                old = json.loads(mpath.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RvosError(f"invalid JSON: {exc}", file=mpath) from None
            if overwrite:
                shutil.rmtree(out)
            elif old.get("kind") != kind or old.get("options") != options or old.get("inputs") != inputs:
                raise RvosError("output was drawn from other inputs or options; pass --overwrite or a new --out", file=out)
    out.mkdir(parents=True, exist_ok=True)
    _write_manifest(out, kind, inputs, options, [], complete=False)


def _write_manifest(out: Path, kind: str, inputs: dict, options: dict, files: list[dict], *, complete: bool) -> None:
    manifest = {
        "format": FORMAT_NAME,
        "format_version": 1,
        "rvoskit_version": __version__,
        "kind": kind,
        "inputs": inputs,
        "options": options,
        "complete": complete,
        "files": files,
    }
    with atomic_file(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _run(
    out: Path,
    kind: str,
    inputs: dict,
    options: dict,
    scenes: Sequence[tuple[str, Callable[[], _Scene]]],
    *,
    overwrite: bool,
    progress: Progress | None,
) -> VizResult:
    """Draw every scene (sheet + clips), skipping videos whose files exist on a resume."""
    out = Path(out)
    options = json.loads(json.dumps(options))
    inputs = json.loads(json.dumps(inputs))
    _open_out(out, kind, inputs, options, overwrite)
    result = VizResult(out)
    video_fmt = options.get("video")
    if progress:
        progress(0, len(scenes), "")
    for i, (video_id, make) in enumerate(scenes):
        scene = make()
        stem = safe_name(video_id)
        sheet_path = f"{stem}.png"
        clip_paths = {r.key: f"{r.clip}.{video_fmt}" for r in scene.rows if r.clip and video_fmt}
        entries = [{"path": sheet_path, "kind": "sheet", "video_id": video_id, "caption": f"{scene.title}: contact sheet"}]
        for r in scene.rows:
            if r.key in clip_paths:
                entries.append({
                    "path": clip_paths[r.key], "kind": "clip", "video_id": video_id,
                    **({"expression_id": r.expression_id} if r.expression_id else {}),
                    "caption": " ".join(r.label),
                })
        if all((out / e["path"]).is_file() for e in entries):
            result.skipped.append(video_id)
        else:
            sheet = scene_sheet(scene, frames=options["frames"], tile_width=options["tile_width"], alpha=options["alpha"], max_rows=options["max_rows"])
            draw.write_png(out / sheet_path, sheet.image)
            if clip_paths:
                scene_clips(scene, {k: out / p for k, p in clip_paths.items()}, width=options["video_width"], alpha=options["alpha"], fps=options["fps"])
        result.files.extend(entries)
        if progress:
            progress(i + 1, len(scenes), video_id)
    _write_manifest(out, kind, inputs, options, result.files, complete=True)
    return result


def _options(frames, tile_width, alpha, max_rows, video, video_width, fps) -> dict:
    if video not in (None, "gif", "mp4"):
        raise RvosError(f"video format must be 'gif' or 'mp4', not {video!r}")
    if not 0.0 <= alpha <= 1.0:
        raise RvosError(f"alpha must be in [0, 1], not {alpha}")
    if tile_width < 16 or video_width < 16:
        raise RvosError("tile and video widths must be at least 16 pixels")
    if fps <= 0:
        raise RvosError(f"fps must be positive, not {fps}")
    return {"frames": int(frames), "tile_width": int(tile_width), "alpha": float(alpha), "max_rows": int(max_rows),
            "video": video, "video_width": int(video_width), "fps": float(fps)}


def _select(available: Sequence[str], wanted: Sequence[str] | None, what: str, file: Any) -> list[str]:
    if not wanted:
        return list(available)
    missing = [w for w in wanted if w not in set(available)]
    if missing:
        raise RvosError(f"unknown {what}", file=file, item=", ".join(missing))
    return [a for a in available if a in set(wanted)]


def _expression_filter(ds: RvosDataset, expressions: Sequence[str] | None) -> set[str] | None:
    """Expression ids named by ``expression_id`` or by a bare ``exp_id`` (matched in every video)."""
    if not expressions:
        return None
    ex = ds.expressions
    chosen = set(ex.index[ex["expression_id"].isin(expressions) | ex["exp_id"].isin(expressions)])
    if not chosen:
        raise RvosError("no such expression", file=ds.path / "expressions.parquet", item=", ".join(expressions))
    return chosen


def _clip(video_id: str, exp_id: str) -> str:
    return f"{safe_name(video_id)}/{safe_name(str(exp_id))}"


def _expr_label(e: pd.Series) -> str:
    return f"{e['exp_id']}: {e['text']}"


# -- dataset ----------------------------------------------------------------------------------------
def dataset_scene(ds: RvosDataset, video_id: str, expression_ids: set[str] | None = None) -> _Scene:
    """The ground-truth scene of one video: all objects, then one row per expression.

    Object colours are :data:`rvoskit.viz.draw.PALETTE` by rank of ``obj_id`` in the video.
    """
    v = ds.video(video_id)
    H, W = int(v["height"]), int(v["width"])
    rows = ds.masks(video_id)
    objs = ds.objects[ds.objects["video_id"] == video_id]
    obj_ids = sorted({int(o) for o in objs["obj_id"]} | {int(o) for o in rows["obj_id"]})
    colours = {o: draw.colour_of(i) for i, o in enumerate(obj_ids)}
    cats = {int(o): c for o, c in zip(objs["obj_id"], objs["category"]) if isinstance(c, str) and c}
    decode = _decoder(_by_frame(rows, "obj_id"), H, W, ds.path / "masks.parquet", video_id)

    def paint(targets: Sequence[int]):
        def layers(masks, t):
            return [(masks[o], colours[o]) for o in _by_area(masks, targets)], [], None

        return layers

    out = [_Row("objects", [f"all objects ({len(obj_ids)})"], None, paint(obj_ids))]
    ex = ds.expressions[ds.expressions["video_id"] == video_id]
    moments = _video_moments(ds, video_id, int(v["num_frames"]))
    for eid, e in ex.iterrows():
        if expression_ids is not None and eid not in expression_ids:
            continue
        targets = e["obj_ids"]
        if targets is None:
            tgt = "no ground truth"
            targets = []
        else:
            targets = [int(o) for o in targets]
            tgt = "targets: " + (", ".join(f"obj {o}" for o in targets) if targets else "none (no-target expression)")
        swatch = colours.get(targets[0]) if len(targets) == 1 else None
        label = [_expr_label(e), tgt]
        moment = None
        if moments is not None:
            moment = moments.get(eid, np.zeros(int(v["num_frames"]), bool))
            label.append(_moment_text(moment))
        out.append(_Row(eid, label, swatch, paint(targets), clip=_clip(video_id, e["exp_id"]), expression_id=eid, moment=moment))
    legend = [(colours[o], f"obj {o}" + (f" ({cats[o]})" if o in cats else "")) for o in obj_ids]
    if moments is not None:
        legend.append((draw.MOMENT, "moment (MeViS-M timeline under each expression; ticks: the frames shown)"))
    src = ds.manifest.get("source", {})
    title = f"{src.get('dataset', 'dataset')}/{src.get('split', '')} video {video_id}: ground truth per expression"
    return _Scene(ds, video_id, decode, out, legend, title, note="first row: every object; other rows: the expression's target objects")


def _video_moments(ds: RvosDataset, video_id: str, num_frames: int) -> dict[str, np.ndarray] | None:
    """MeViS-M: each expression's moment (the union of its spans) as bool ``(T,)``; None without moments."""
    if not ds.has_moments:
        return None
    m = ds.moments
    m = m[m["video_id"] == video_id]
    out: dict[str, np.ndarray] = {}
    for eid, a, b in zip(m["expression_id"], m["start_idx"], m["end_idx"]):
        out.setdefault(eid, np.zeros(num_frames, bool))[int(a) : int(b) + 1] = True
    return out


def _moment_text(moment: np.ndarray) -> str:
    """``"moment: frames 3-9, 14-20 (45%)"`` (indices, inclusive) or ``"moment: none"``."""
    if not moment.any():
        return "moment: none"
    d = np.diff(np.concatenate([[0], moment.astype(np.int8), [0]]))
    spans = ", ".join(f"{a}-{b - 1}" if b - 1 > a else f"{a}" for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))
    return f"moment: frames {spans} ({moment.mean():.0%})"


def render_dataset(
    dataset: str | Path | RvosDataset,
    out: str | Path,
    *,
    videos: Sequence[str] | None = None,
    expressions: Sequence[str] | None = None,
    limit: int | None = None,
    frames: int = 8,
    tile_width: int = 240,
    alpha: float = 0.5,
    max_rows: int = 40,
    video: str | None = None,
    video_width: int = 640,
    fps: float = 5.0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> VizResult:
    """Draw a dataset's ground truth: a contact sheet per video and optionally a clip per expression.

    Args:
        dataset: a common-format dataset directory (or an open :class:`RvosDataset`).
        out: output directory (resumed when it holds a ``viz.json`` of the same inputs and options).
        videos: video ids to draw (default: all, or those of ``expressions``).
        expressions: ``expression_id`` s or bare ``exp_id`` s to draw (default: all).
        limit: draw at most this many videos (after selection).
        frames: frames per sheet, sampled evenly (first and last included); 0 = every frame.
        tile_width: sheet tile width in pixels (frames are only ever shrunk).
        alpha: mask fill opacity (1 paints the palette colour exactly).
        max_rows: sheet rows at most (the rest is named in the legend note).
        video: ``"gif"`` or ``"mp4"`` for a clip per expression (every frame), None for none.
        video_width, fps: clip width in pixels and frame rate.
        overwrite: replace an existing ``viz.json`` output folder.
        progress: called as ``progress(done, total, video_id)`` after each video.

    Returns:
        :class:`VizResult`; files ``<out>/<video>.png`` and ``<out>/<video>/<exp_id>.<video>``.

    Raises:
        RvosError: unreadable dataset, unknown video / expression, a frame whose size disagrees with
            ``videos.parquet``, malformed RLE, an output folder that is not a viz output.
    """
    ds = dataset if isinstance(dataset, RvosDataset) else open_dataset(dataset)
    opts = _options(frames, tile_width, alpha, max_rows, video, video_width, fps)
    chosen = _expression_filter(ds, expressions)
    vids = _select(list(ds.videos.index), videos, "video", ds.path / "videos.parquet")
    if chosen is not None:
        wanted = set(ds.expressions.loc[sorted(chosen), "video_id"])
        vids = [v for v in vids if v in wanted]
    vids = vids[:limit] if limit else vids
    scenes = [(v, (lambda v=v: dataset_scene(ds, v, chosen))) for v in vids]
    inputs = {"dataset": str(ds.path.resolve()), "videos": vids, "expressions": sorted(chosen) if chosen else None}
    return _run(Path(out), "dataset", inputs, opts, scenes, overwrite=overwrite, progress=progress)


# -- track store ------------------------------------------------------------------------------------
def tracks_scene(ds: RvosDataset, store: TrackStore, video_id: str, *, max_tracks: int = 24) -> _Scene:
    """The candidate-track scene of one video: all tracks, then one row per track (at most
    ``max_tracks``, by ``track_id``). Track colours are the palette by rank of ``track_id``."""
    v = ds.video(video_id)
    H, W = int(v["height"]), int(v["width"])
    rows = store.tracks(video_id)
    if len(rows) and (int(rows["height"].iloc[0]), int(rows["width"].iloc[0])) != (H, W):
        raise RvosError(
            f"track masks are {int(rows['height'].iloc[0])}×{int(rows['width'].iloc[0])}, the dataset video is {H}×{W} (height×width)",
            file=store.path, item=video_id,
        )
    track_ids = sorted(int(t) for t in rows["track_id"].unique())
    colours = {t: draw.colour_of(i) for i, t in enumerate(track_ids)}
    decode = _decoder(_by_frame(rows[rows["area"] > 0], "track_id"), H, W, store.path, video_id)
    first = rows.drop_duplicates("track_id").set_index("track_id")

    def paint(ids):
        def layers(masks, t):
            return [(masks[k], colours[k]) for k in _by_area(masks, ids)], [], None

        return layers

    out = [_Row("all", [f"all tracks ({len(track_ids)})", "largest painted first"], None, paint(track_ids), clip=safe_name(video_id))]
    for t in track_ids[:max_tracks]:
        r = first.loc[t]
        prompt = f"{r['prompt_kind']} prompt @ {v['frames'][int(r['prompt_frame_idx'])]}" if 0 <= int(r["prompt_frame_idx"]) < len(v["frames"]) else f"{r['prompt_kind']} prompt"
        extra = []
        if pd.notna(r["obj_id"]):
            extra.append(f"gt obj {int(r['obj_id'])}")
        if r["expression_id"] is not None and pd.notna(r["expression_id"]):
            extra.append(f"for {r['expression_id']}")
        scores = [f"{name} {float(r[col]):.2f}" for name, col in (("stab", "stability_score"), ("pIoU", "predicted_iou")) if pd.notna(r[col])]
        label = [f"track {t}", prompt + (", " + ", ".join(extra) if extra else ""), ", ".join(scores)]
        out.append(_Row(f"track {t}", [x for x in label if x], colours[t], paint([t])))
    notes = []
    if len(track_ids) > max_tracks:
        notes.append(f"{len(track_ids) - max_tracks} more tracks in the first row only (max_tracks={max_tracks}).")
    if len(track_ids) > len(draw.PALETTE):
        notes.append(f"Colours repeat every {len(draw.PALETTE)} tracks: each swatch names the tracks that share it.")
    shared: dict[Colour, list[str]] = {}
    for t in track_ids:
        shared.setdefault(colours[t], []).append(str(t))
    legend = [(c, "/".join(ids)) for c, ids in shared.items()]
    note = " ".join(notes)
    title = f"track store {store.path.name} video {video_id}: candidate tracks"
    return _Scene(ds, video_id, decode, out, legend, title, note=note)


def render_tracks(
    tracks: str | Path | TrackStore,
    dataset: str | Path | RvosDataset,
    out: str | Path,
    *,
    videos: Sequence[str] | None = None,
    limit: int | None = None,
    max_tracks: int = 24,
    frames: int = 8,
    tile_width: int = 240,
    alpha: float = 0.5,
    video: str | None = None,
    video_width: int = 640,
    fps: float = 5.0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> VizResult:
    """Draw a track store's candidate tracks over the dataset's frames: a sheet per completed video
    (all tracks, then one row per track) and optionally a clip per video (all tracks).

    Args as :func:`render_dataset`, plus ``tracks`` (a track store directory) and ``max_tracks``
    (rows of single tracks per sheet). Only videos with a completion marker are drawn.

    Raises:
        RvosError: not a track store, a video not completed in it or unknown to the dataset, track
            masks whose size differs from the dataset video, plus the errors of :func:`render_dataset`.
    """
    ds = dataset if isinstance(dataset, RvosDataset) else open_dataset(dataset)
    store = tracks if isinstance(tracks, TrackStore) else TrackStore(tracks)
    opts = _options(frames, tile_width, alpha, max_tracks + 1, video, video_width, fps)
    opts["max_tracks"] = int(max_tracks)
    vids = _select(store.done_videos(), videos, "video (not completed in the track store)", store.path)
    unknown = [v for v in vids if v not in ds.videos.index]
    if unknown:
        raise RvosError("track store videos are not in the dataset", file=ds.path / "videos.parquet", item=", ".join(unknown))
    vids = vids[:limit] if limit else vids
    scenes = [(v, (lambda v=v: tracks_scene(ds, store, v, max_tracks=max_tracks))) for v in vids]
    inputs = {"tracks": str(store.path.resolve()), "dataset": str(ds.path.resolve()), "videos": vids}
    return _run(Path(out), "tracks", inputs, opts, scenes, overwrite=overwrite, progress=progress)


# -- predictions ------------------------------------------------------------------------------------
def predictions_scene(
    ds: RvosDataset,
    preds: pd.DataFrame,
    video_id: str,
    expression_ids: set[str] | None = None,
    *,
    source: str | Path = "predictions.parquet",
) -> _Scene:
    """The prediction scene of one video: one row per predicted expression, true positives green,
    false positives red, false negatives blue, the ground truth outlined white; a prediction
    without ground truth is filled red. Tiles carry the frame's J, labels the mean J over every frame.

    Args:
        preds: ``predictions`` rows of this video (``predictions.parquet`` read with ``filters=[("video_id", "=", video_id)]``).
        expression_ids: draw only these expressions (default: every predicted one).
        source: the predictions' path, named in errors.

    Raises:
        RvosError: predicted masks whose size differs from the video, malformed RLE.
    """
    v = ds.video(video_id)
    T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
    if len(preds) and ((preds["height"] != H) | (preds["width"] != W)).any():
        raise RvosError(f"predicted masks are not {H}×{W} (height×width) like the dataset video", file=source, item=video_id)
    if expression_ids is not None:
        preds = preds[preds["expression_id"].isin(expression_ids)]
    ex = ds.expressions
    drawn = ex.loc[ex.index.intersection(preds["expression_id"].unique())]
    targets_drawn = {int(o) for objs in drawn["obj_ids"] if objs is not None for o in objs}
    targets_drawn |= {int(x[6:]) for x in preds["exp_id"].unique() if str(x).startswith("label ") and str(x)[6:].isdigit()}
    gt_rows = ds.masks(video_id)
    gt_index = _by_frame(gt_rows, "obj_id")
    # decode only what the drawn rows show: their predictions and their target objects
    pred_rows = preds.assign(key=list(zip(["pred"] * len(preds), preds["expression_id"])))
    index = _by_frame(pred_rows, "key")
    for t, objs in gt_index.items():
        index.setdefault(t, {}).update({("obj", o): c for o, c in objs.items() if o in targets_drawn})
    decode = _decoder(index, H, W, f"{source} or {ds.path / 'masks.parquet'}", video_id)
    order = {eid: i for i, eid in enumerate(ex.index[ex["video_id"] == video_id])}
    eids = sorted(preds["expression_id"].unique(), key=lambda e: (order.get(e, len(order)), e))
    rows = []
    for eid in eids:
        p = preds[preds["expression_id"] == eid]
        exp_id = str(p["exp_id"].iloc[0])
        targets = None
        if eid in ex.index:
            e = ex.loc[eid]
            text = _expr_label(e)
            targets = None if e["obj_ids"] is None else [int(o) for o in e["obj_ids"]]
        elif exp_id.startswith("label ") and exp_id[6:].isdigit():  # a DAVIS result label map: label k vs object k
            text = f"{exp_id} (DAVIS result)"
            k = int(exp_id[6:])
            targets = [k] if k in set(gt_rows["obj_id"].astype(int)) else None
        else:
            text = f"{exp_id}: (expression not in the dataset)"
        pred_rle = {int(t): c for t, c in zip(p["frame_idx"], p["rle"])}
        if targets is None:
            label = [text, "no ground truth: prediction only"]
            j = None
        else:
            gt = {t: [objs[o] for o in targets if o in objs] for t, objs in gt_index.items()}
            j = frame_j(pred_rle, gt, T, H, W)
            label = [text, f"J = {j.mean():.3f} over {T} frames"]
        rows.append(_Row(eid, label, None, _tpfpfn(eid, targets, j), clip=_clip(video_id, exp_id), expression_id=eid))
    legend = [(draw.TP, "TP (pred and GT)"), (draw.FP, "FP (pred only; or prediction without GT)"), (draw.FN, "FN (GT only)"), (draw.GT_OUTLINE, "GT outline")]
    title = f"predictions video {video_id}: selected tracks vs ground truth"
    return _Scene(ds, video_id, decode, rows, legend, title, note="tile tag: J of that frame; label: mean J over every frame (empty vs empty = 1)")


def _tpfpfn(eid: str, targets: list[int] | None, j: np.ndarray | None):
    def layers(masks, t):
        pred = masks.get(("pred", eid))
        if targets is None:
            return ([(pred, draw.PRED)] if pred is not None else []), [], None
        gt = None
        for o in targets:
            m = masks.get(("obj", o))
            if m is not None:
                gt = m.copy() if gt is None else (gt | m)
        if pred is None and gt is None:
            return [], [], f"J {j[t]:.2f}"
        shape = (pred if pred is not None else gt).shape
        pb = pred.astype(bool) if pred is not None else np.zeros(shape, bool)
        gb = gt.astype(bool) if gt is not None else np.zeros(shape, bool)
        fills = [(pb & gb, draw.TP), (pb & ~gb, draw.FP), (gb & ~pb, draw.FN)]
        outline = [(gb.astype(np.uint8), draw.GT_OUTLINE)] if gt is not None else []
        return [(m.astype(np.uint8), c) for m, c in fills if m.any()], outline, f"J {j[t]:.2f}"

    return layers


def render_predictions(
    predictions: str | Path,
    out: str | Path,
    *,
    dataset: str | Path | RvosDataset | None = None,
    videos: Sequence[str] | None = None,
    expressions: Sequence[str] | None = None,
    limit: int | None = None,
    frames: int = 8,
    tile_width: int = 240,
    alpha: float = 0.5,
    max_rows: int = 40,
    video: str | None = None,
    video_width: int = 640,
    fps: float = 5.0,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> VizResult:
    """Draw predictions against the ground truth: a sheet per video (one row per expression,
    TP/FP/FN colouring, per-frame and mean J) and optionally a clip per expression.

    Args as :func:`render_dataset`, plus ``predictions``: any form ``rvoskit eval`` reads (a
    predictions directory or ``predictions.parquet``, a PNG folder in the MeViS / Ref-YouTube-VOS /
    DAVIS / ReferFormer Ref-DAVIS layout, or a submission ``.zip`` of one), read and checked by the
    same reader (:func:`rvoskit.metrics.sources.open_predictions`, ``check_predictions``,
    ``prediction_rows``); ``dataset`` defaults to the one named in ``predictions.json``.

    Raises:
        RvosError: unreadable predictions, no dataset given or recorded, predicted videos or
            expressions unknown to the dataset, mask sizes that differ from the video, malformed
            RLE (as eval rejects it), plus the errors of :func:`render_dataset`.
    """
    # one reader for every command: the layouts, checks and error messages of rvoskit eval
    from rvoskit.metrics.sources import check_predictions, open_predictions, prediction_keys, prediction_rows

    spec = open_predictions(predictions)
    manifest = read_manifest(Path(predictions)) if spec.kind == "table" and Path(predictions).is_dir() else {}
    if dataset is None:
        dataset = manifest.get("dataset")
        if not dataset:
            raise RvosError("predictions name no dataset; pass --dataset", file=predictions)
    ds = dataset if isinstance(dataset, RvosDataset) else open_dataset(dataset)
    with spec.named():
        index = check_predictions(spec, ds)  # unknown videos / expressions, sizes, frame indices: as eval
        preds = prediction_keys(spec, ds, index)  # one row per expression; each drawn video's rows are read when drawn
    opts = _options(frames, tile_width, alpha, max_rows, video, video_width, fps)
    chosen = None
    if expressions:
        chosen = set(preds.loc[preds["expression_id"].isin(expressions) | preds["exp_id"].isin(expressions), "expression_id"])
        if not chosen:
            raise RvosError("no predictions for these expressions", file=predictions, item=", ".join(expressions))
    pred_videos = sorted(preds["video_id"].unique()) if chosen is None else sorted(preds.loc[preds["expression_id"].isin(chosen), "video_id"].unique())
    vids = _select(pred_videos, videos, "video (no predictions for it)", predictions)
    vids = vids[:limit] if limit else vids

    def scene(v: str) -> _Scene:
        with spec.named():
            rows = prediction_rows(spec, ds, v)
        return predictions_scene(ds, rows, v, chosen, source=spec.origin or spec.path)

    scenes = [(v, (lambda v=v: scene(v))) for v in vids]
    inputs = {"predictions": str(Path(predictions).resolve()), "dataset": str(ds.path.resolve()), "videos": vids,
              "expressions": sorted(chosen) if chosen else None}
    return _run(Path(out), "predictions", inputs, opts, scenes, overwrite=overwrite, progress=progress)
