"""Track generation: prompts → SAM2 tracks and object tokens → track store, per video, resumable.

Reproduces SOLA's ``track_generation`` (grid: ``generate_prompts_grid.py`` + ``generate_tokens_grid.py``;
grounded: ``generate_prompts_gdino.py`` + ``generate_tokens_gdino.py``; GT: ``generate_tokens_GT_*.py``)
on sam2 1.1.0. Where rvoskit deliberately differs, docs/tracks.md says so.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rvoskit.errors import RvosError
from rvoskit.executor import Executor, imap, ray_connect
from rvoskit.format import rle as rlemod
from rvoskit.format.store import RvosDataset, open_dataset, sha256_file
from rvoskit.format.trackstore import TrackStore
from rvoskit.tracks.prompts import (
    PROMPT_KINDS,
    GridOptions,
    Prompt,
    grid_prompts_for_frame,
    gt_prompts,
    mask_ious,
    prompt_frames,
    sort_by_area,
)
from rvoskit.tracks.sam2_model import (
    FrameSource,
    ModelSpec,
    Timers,
    TrackOutput,
    VideoSession,
    check_model_spec,
    config_image_size,
    inference_context,
    load_sam2,
    precision_name,
    resolve_config,
)

Progress = Callable[..., None]
LONG_VIDEO_FRAMES = 200  # SOLA: videos longer than this are tracked 2 prompts at a time


@dataclass(frozen=True)
class TrackOptions:
    """Everything that decides which tracks a video gets (recorded in the track store manifest).

    Attributes:
        prompts: prompt kinds, any of ``"gt"``, ``"grid"``, ``"grounded"`` (tracked in that order).
        prompt_frames: ``"auto"`` (``"interval"`` when the dataset has ground truth, else
            ``"eval"``), ``"interval"`` (every ``prompt_interval`` frames) or ``"eval"`` ({0, T//2}).
        prompt_interval: grid prompt step for ``"interval"`` (SOLA: 4 for training data).
        points_per_side, points_per_batch, pred_iou_thresh, stability_score_thresh, box_nms_thresh:
            SAM2 automatic-mask-generator settings (SOLA: the defaults 32, 64, 0.8, 0.95, 0.7).
        part_thresh: SOLA's part filter threshold (0.7).
        batch_size: prompts tracked together, all from one frame (4; at most 2 for videos longer
            than 200 frames, as SOLA).
        suppress_iou: a pending prompt whose IoU with a new track on the prompt's own frame exceeds
            this is skipped (0.7).
        max_tracks: grid tracks per video (64).
        max_grounded_tracks: grounded tracks per expression (16).
        grounding_model: local transformers Grounding DINO directory (needed for ``"grounded"``).
        box_threshold, text_threshold: Grounding DINO thresholds (0.2, 0.25).
        grounded_stability_thresh: grounded prompts need a stability score >= this (0.85).
        grounded_interval: grounded prompt step (SOLA: every 4 frames, all splits).
        token_dtype: ``"float32"`` or ``"float16"`` object tokens.
        feature_cache_mb: image-feature cache per video (speed only, not recorded).
    """

    prompts: tuple[str, ...] = ("grid",)
    prompt_frames: str = "auto"
    prompt_interval: int = 4
    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    part_thresh: float = 0.7
    batch_size: int = 4
    suppress_iou: float = 0.7
    max_tracks: int = 64
    max_grounded_tracks: int = 16
    grounding_model: str | None = None
    box_threshold: float = 0.2
    text_threshold: float = 0.25
    grounded_stability_thresh: float = 0.85
    grounded_interval: int = 4
    token_dtype: str = "float32"
    feature_cache_mb: float = 4096.0

    def check(self) -> TrackOptions:
        """Validate; returns self. Raises RvosError naming the option."""
        kinds = tuple(self.prompts)
        bad = [k for k in kinds if k not in PROMPT_KINDS]
        if not kinds or bad:
            raise RvosError(f"unknown prompt kind(s) {bad or kinds}; use {', '.join(PROMPT_KINDS)}", item="--prompts")
        if "grounded" in kinds and not self.grounding_model:
            raise RvosError("grounded prompts need --grounding-model DIR", item="--prompts")
        if self.prompt_frames not in ("auto", "interval", "eval"):
            raise RvosError(f"{self.prompt_frames!r}: use auto, interval or eval", item="--prompt-frames")
        if self.token_dtype not in ("float32", "float16"):
            raise RvosError(f"{self.token_dtype!r}: use float32 or float16", item="--token-dtype")
        for name in ("prompt_interval", "points_per_side", "points_per_batch", "batch_size", "max_tracks", "max_grounded_tracks", "grounded_interval"):
            if int(getattr(self, name)) < 1:
                raise RvosError(f"must be >= 1, got {getattr(self, name)}", item="--" + name.replace("_", "-"))
        return self

    @property
    def grid(self) -> GridOptions:
        return GridOptions(
            points_per_side=self.points_per_side,
            points_per_batch=self.points_per_batch,
            pred_iou_thresh=self.pred_iou_thresh,
            stability_score_thresh=self.stability_score_thresh,
            box_nms_thresh=self.box_nms_thresh,
            part_thresh=self.part_thresh,
        )

    def record(self) -> dict:
        """The options that decide the result, for the manifest (paths reduced to names)."""
        d = asdict(self)
        for k in ("points_per_batch", "feature_cache_mb"):
            d.pop(k)
        d["prompts"] = list(self.prompts)
        if self.grounding_model:
            d["grounding_model"] = Path(self.grounding_model).name
        if "grounded" not in self.prompts:
            for k in ("grounding_model", "box_threshold", "text_threshold", "grounded_stability_thresh", "grounded_interval", "max_grounded_tracks"):
                d.pop(k)
        if "grid" not in self.prompts:
            for k in ("prompt_frames", "prompt_interval", "points_per_side", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh", "part_thresh", "max_tracks"):
                d.pop(k)
        return d


# -- selection, batching and suppression ------------------------------------------------------


@dataclass
class SelectionStats:
    """What happened to a list of prompts: counts and batches."""

    prompts: int = 0
    tracked: int = 0
    suppressed: int = 0
    not_tracked: int = 0
    batches: int = 0

    def add(self, other: SelectionStats) -> None:
        """Add another list's counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def select_and_track(
    prompts: Sequence[Prompt],
    track_batch: Callable[[list[Prompt]], list[TrackOutput]],
    *,
    height: int,
    width: int,
    batch_size: int = 4,
    suppress_iou: float | None = 0.7,
    max_tracks: int | None = 64,
    on_batch: Callable[[list[Prompt], int], None] | None = None,
) -> tuple[list[tuple[Prompt, TrackOutput]], SelectionStats]:
    """SOLA's tracking-time suppression (``generate_tokens_grid.py`` l.151-278).

    Prompts are taken in the given order (largest first). A batch is the first pending prompt plus
    the following pending prompts *from the same frame*, up to ``batch_size`` and without passing
    ``max_tracks``; the batch is tracked; then every still-pending prompt whose IoU with any of the
    new tracks on the prompt's own frame is ``> suppress_iou`` is suppressed. Stops when
    ``max_tracks`` tracks exist or no prompt is pending.

    Args:
        prompts: prompts, largest first.
        track_batch: tracks a batch (one frame) and returns one :class:`TrackOutput` per prompt.
        height, width: mask size (for the IoU).
        batch_size: prompts per batch.
        suppress_iou: suppression threshold, None for no suppression (GT prompts).
        max_tracks: cap, None for none.
        on_batch: called with ``(batch, tracks so far)`` after each batch.

    Returns:
        ``([(prompt, track)] in tracking order, stats)``.
    """
    PENDING, TRACKED, SUPPRESSED = 0, 1, 2
    status = [PENDING] * len(prompts)
    cap = max_tracks if max_tracks is not None else len(prompts)
    out: list[tuple[Prompt, TrackOutput]] = []
    stats = SelectionStats(prompts=len(prompts))
    while len(out) < cap:
        batch: list[int] = []
        frame = None
        for k, p in enumerate(prompts):
            if status[k] != PENDING:
                continue
            if frame is None:
                frame = p.frame_idx
            elif p.frame_idx != frame:
                continue
            batch.append(k)
            status[k] = TRACKED
            if len(batch) >= batch_size or len(out) + len(batch) >= cap:
                break
        if not batch:
            break
        tracks = track_batch([prompts[k] for k in batch])
        out.extend(zip((prompts[k] for k in batch), tracks))
        stats.batches += 1
        if suppress_iou is not None:
            pending: dict[int, list[int]] = {}  # prompt frame -> pending prompts
            for k, p in enumerate(prompts):
                if status[k] == PENDING:
                    pending.setdefault(p.frame_idx, []).append(k)
            for tr in tracks:
                for f, ks in pending.items():
                    ious = mask_ious(tr.rles[f], [prompts[k].rle for k in ks], height, width)
                    for k in np.asarray(ks)[ious > suppress_iou]:
                        status[k] = SUPPRESSED
        if on_batch is not None:
            on_batch([prompts[k] for k in batch], len(out))
    stats.tracked = status.count(TRACKED)
    stats.suppressed = status.count(SUPPRESSED)
    stats.not_tracked = status.count(PENDING)
    return out, stats


# -- one video --------------------------------------------------------------------------------


@dataclass
class VideoResult:
    """One video's tracks: ``tracks`` table rows, ``obj_ptr (N, T, 256)``, ``track_ids (N,)``, ``info``."""

    rows: list[dict]
    obj_ptr: np.ndarray
    track_ids: np.ndarray
    info: dict = field(default_factory=dict)


def has_ground_truth(dataset: RvosDataset) -> bool:
    """Whether the dataset has ground truth: some expression's ``obj_ids`` is not null (or, with no
    expressions, some mask rows exist)."""
    ex = dataset.expressions
    if len(ex):
        return bool(ex["obj_ids"].notna().any())
    return int(dataset.manifest.get("counts", {}).get("masks", 0)) > 0


def resolve_prompt_frames(dataset: RvosDataset, mode: str) -> str:
    """``"auto"`` → ``"interval"`` for datasets with ground truth (training data), else ``"eval"``."""
    if mode != "auto":
        return mode
    return "interval" if has_ground_truth(dataset) else "eval"


def generate_video(
    dataset: RvosDataset,
    video_id: str,
    predictor,
    options: TrackOptions,
    *,
    frame_mode: str = "interval",
    gdino=None,
    timers: Timers | None = None,
    progress: Progress | None = None,
) -> VideoResult:
    """Generate the candidate tracks and object tokens of one video.

    Tracks come in this order: GT tracks (one per object), grid tracks (at most
    ``options.max_tracks``), grounded tracks (at most ``options.max_grounded_tracks`` per
    expression, expressions in dataset order). Each kind is suppressed only against itself (grounded:
    per expression), as in SOLA's separate scripts.

    Args:
        dataset: the dataset.
        video_id: the video.
        predictor: from :func:`~rvoskit.tracks.sam2_model.load_sam2`.
        options: generation options (checked).
        frame_mode: resolved grid prompt-frame mode (``"interval"`` or ``"eval"``).
        gdino: a :class:`~rvoskit.tracks.grounding.GroundingDino` (grounded prompts only).
        timers: stage timers to accumulate into.
        progress: ``progress(event, **info)`` callback, every event with ``video_id`` and
            ``kind``: ``"prompting"`` before each prompt frame (frame_idx, index, of, found:
            prompts so far), ``"prompts"`` (n), ``"batch_start"`` (prompt_frame, size, tracked:
            tracks of the kind so far, prompts, frames), ``"frame"`` after each tracked frame (the
            same plus frame_idx), ``"batch"`` after each batch (frame_idx, size, tracks: of this
            selection, tracked: of the kind, prompts).

    Returns:
        :class:`VideoResult` with ``N`` tracks × ``T`` rows, ``obj_ptr (N, T, 256)`` of
        ``options.token_dtype`` and ``info`` (counts per kind, stage seconds).

    Raises:
        RvosError: unreadable frames, or frames or GT masks whose size or count disagrees with
            ``videos.parquet``.
    """
    timers = timers or Timers(str(predictor.device))
    progress = progress or (lambda *a, **k: None)
    t_start = time.perf_counter()
    v = dataset.video(video_id)
    T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
    frames = FrameSource(dataset.frame_paths(video_id), predictor.image_size, item=video_id, timers=timers)
    if len(frames) != T:
        raise RvosError(f"{len(frames)} frame files for num_frames={T}", file=dataset.path / "videos.parquet", item=video_id)
    if (frames.height, frames.width) != (H, W):
        raise RvosError(
            f"frames are {frames.height}×{frames.width}, videos.parquet says {H}×{W} (height×width)",
            file=frames.paths[0],
            item=video_id,
        )
    session = VideoSession(predictor, frames, feature_cache_mb=options.feature_cache_mb, timers=timers)
    bs = options.batch_size if T <= LONG_VIDEO_FRAMES else min(options.batch_size, 2)
    results: list[tuple[Prompt, TrackOutput]] = []
    counts: dict[str, Any] = {}

    def tracker(kind: str, n_prompts: int):
        done = [0]  # tracks of this kind so far

        def track_batch(batch: list[Prompt]) -> list[TrackOutput]:
            f = batch[0].frame_idx
            info = dict(video_id=video_id, kind=kind, prompt_frame=f, size=len(batch), tracked=done[0], prompts=n_prompts, frames=T)
            progress("batch_start", **info)
            masks = [rlemod.decode(p.rle, H, W) for p in batch]
            out = session.track(f, masks, on_frame=lambda t: progress("frame", frame_idx=t, **info))
            done[0] += len(batch)
            return out

        def on_batch(batch: list[Prompt], n: int) -> None:
            progress("batch", video_id=video_id, kind=kind, frame_idx=batch[0].frame_idx, size=len(batch), tracks=n, tracked=done[0], prompts=n_prompts)

        return track_batch, on_batch

    with inference_context(str(predictor.device)):
        if "gt" in options.prompts:
            mrows = dataset.masks(video_id)
            bad = mrows[(mrows["height"] != H) | (mrows["width"] != W)]
            if len(bad):
                raise RvosError(
                    f"mask of object {bad['obj_id'].iloc[0]} on frame {bad['frame_idx'].iloc[0]} is "
                    f"{bad['height'].iloc[0]}×{bad['width'].iloc[0]}, the video is {H}×{W} (height×width)",
                    file=dataset.path / "masks.parquet",
                    item=video_id,
                )
            prompts = gt_prompts(mrows)
            progress("prompts", video_id=video_id, kind="gt", n=len(prompts))
            tb, ob = tracker("gt", len(prompts))
            # GT prompts are tracked once each (no suppression, no cap); batching them changes nothing
            # because sam2 1.1.0 tracks every object independently
            res, st = select_and_track(sort_by_frame(prompts), tb, height=H, width=W, batch_size=bs, suppress_iou=None, max_tracks=None, on_batch=ob)
            results += res
            counts["gt"] = asdict(st)
        if "grid" in options.prompts:
            pframes = prompt_frames(T, frame_mode, options.prompt_interval)
            prompts = []
            for i, f in enumerate(pframes):
                progress("prompting", video_id=video_id, kind="grid", frame_idx=f, index=i, of=len(pframes), found=len(prompts))
                prompts += grid_prompts_for_frame(session, f, options.grid)
            prompts = sort_by_area(prompts)
            progress("prompts", video_id=video_id, kind="grid", n=len(prompts))
            tb, ob = tracker("grid", len(prompts))
            res, st = select_and_track(prompts, tb, height=H, width=W, batch_size=bs, suppress_iou=options.suppress_iou, max_tracks=options.max_tracks, on_batch=ob)
            results += res
            counts["grid"] = {**asdict(st), "prompt_frames": pframes}
        if "grounded" in options.prompts:
            from rvoskit.tracks.grounding import (
                GroundingOptions,
                grounded_prompts_for_frame,
            )

            ex = dataset.expressions
            ex = ex[ex["video_id"] == video_id]
            exprs = list(zip(ex["expression_id"], ex["text"]))
            gopts = GroundingOptions(options.box_threshold, options.text_threshold)
            prompts = []
            gframes = list(range(0, T, options.grounded_interval))
            for i, f in enumerate(gframes):
                progress("prompting", video_id=video_id, kind="grounded", frame_idx=f, index=i, of=len(gframes), found=len(prompts))
                prompts += grounded_prompts_for_frame(session, gdino, f, exprs, gopts)
            prompts = sort_by_area(prompts)
            progress("prompts", video_id=video_id, kind="grounded", n=len(prompts))
            total = SelectionStats()
            unused = 0
            tb, ob = tracker("grounded", len(prompts))
            for expression_id, _ in exprs:
                mine = [p for p in prompts if p.expression_id == expression_id]
                # SOLA keeps a prompt whose stability is NaN (an empty SAM2 mask); rvoskit drops it
                ok = [p for p in mine if p.area > 0 and p.stability_score >= options.grounded_stability_thresh]
                unused += len(mine) - len(ok)
                res, st = select_and_track(ok, tb, height=H, width=W, batch_size=bs, suppress_iou=options.suppress_iou, max_tracks=options.max_grounded_tracks, on_batch=ob)
                results += res
                total.add(st)
            counts["grounded"] = {**asdict(total), "not_used": unused, "expressions": len(exprs)}

    with timers("write"):
        rows: list[dict] = []
        ptrs = []
        for track_id, (p, out) in enumerate(results):
            areas, boxes = rlemod.area_bbox(out.rles, H, W)
            for t in range(T):
                rows.append(
                    {
                        "video_id": video_id,
                        "track_id": track_id,
                        "frame_idx": t,
                        "prompt_kind": p.kind,
                        "prompt_frame_idx": p.frame_idx,
                        "expression_id": p.expression_id,
                        "obj_id": p.obj_id,
                        "stability_score": p.stability_score,
                        "predicted_iou": p.predicted_iou,
                        "height": H,
                        "width": W,
                        "rle": out.rles[t],
                        "area": int(areas[t]),
                        "bbox": boxes[t].tolist(),
                    }
                )
            ptrs.append(out.obj_ptr)
        dim = int(predictor.hidden_dim)
        obj_ptr = np.stack(ptrs).astype(options.token_dtype) if ptrs else np.zeros((0, T, dim), options.token_dtype)
    info = {
        "frames": T,
        "height": H,
        "width": W,
        "tracks": {k: sum(1 for p, _ in results if p.kind == k) for k in options.prompts},
        "selection": counts,
        "seconds": round(time.perf_counter() - t_start, 4),
        "stage_seconds": timers.as_dict(),
        "encoder_calls": timers.calls.get("encoder", 0),
    }
    return VideoResult(rows=rows, obj_ptr=obj_ptr, track_ids=np.arange(len(results), dtype=np.int32), info=info)


def sort_by_frame(prompts: list[Prompt]) -> list[Prompt]:
    """GT prompts grouped by prompt frame (stable), so that same-frame objects share a batch."""
    return sorted(prompts, key=lambda p: p.frame_idx)


# -- runs over a dataset ----------------------------------------------------------------------


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"K/N"`` → ``(K, N)`` with ``0 <= K < N`` (0-based, as job-array indices); None → ``(0, 1)``."""
    if text is None:
        return 0, 1
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise RvosError(f"{text!r}: expected K/N, e.g. 0/4", item="--shard") from None
    if n < 1 or not 0 <= k < n:
        raise RvosError(f"{text!r}: need 0 <= K < N", item="--shard")
    return k, n


def select_videos(dataset: RvosDataset, split: str | None, shard: tuple[int, int]) -> list[str]:
    """Video ids of ``split`` (all when None), sorted, then every N-th from K (round robin)."""
    vids = dataset.videos
    if split is not None:
        vids = vids[vids["split"] == split]
        if len(vids) == 0:
            splits = sorted(set(dataset.videos["split"]))
            raise RvosError(f"no videos in split {split!r} (splits: {', '.join(splits)})", file=dataset.path, item="--split")
    ids = sorted(vids["video_id"])
    k, n = shard
    return ids[k::n]


def store_meta(dataset: RvosDataset, model: ModelSpec, options: TrackOptions, split: str | None, frame_mode: str, precision: str) -> dict:
    """The track store manifest ``meta``: everything a resume must agree on (no paths)."""
    return {
        "dataset": {"source": dataset.manifest.get("source", {}), "split": split},
        "sam2": {
            "config": resolve_config(model.config),
            "checkpoint": Path(model.checkpoint).name if model.checkpoint else None,
            "checkpoint_sha256": sha256_file(model.checkpoint) if model.checkpoint else None,
            "random_weights_seed": None if model.checkpoint else model.seed,
            "image_size": model.image_size or config_image_size(model.config),
            "precision": precision,
            "hole_fill": "sam2 fill_holes_in_mask_scores (fill_hole_area 8), sam2._C or OpenCV connected components",
            "prompt_features": "SAM2ImagePredictor input (ToTensor, antialiased bilinear Resize, Normalize)",
        },
        "options": {**options.record(), **({"prompt_frames": frame_mode} if "grid" in options.prompts else {})},
    }


class _Worker:
    """Per-process state of a run: dataset, store, SAM2 and Grounding DINO (loaded once)."""

    def __init__(self, dataset_path: str, store_path: str | None, model: ModelSpec, options: TrackOptions, frame_mode: str):
        self.dataset = open_dataset(dataset_path)
        self.store = TrackStore(store_path) if store_path else None
        self.model, self.options, self.frame_mode = model, options, frame_mode
        self.predictor = load_sam2(model)
        self.gdino = None
        if "grounded" in options.prompts:
            from rvoskit.tracks.grounding import GroundingDino

            self.gdino = GroundingDino(options.grounding_model, model.device)

    def run(self, video_id: str, progress: Progress | None = None) -> dict:
        timers = Timers(self.model.device)
        res = generate_video(
            self.dataset, video_id, self.predictor, self.options,
            frame_mode=self.frame_mode, gdino=self.gdino, timers=timers, progress=progress,
        )  # fmt: skip
        t0 = time.perf_counter()
        self.store.write_video(video_id, res.rows, res.obj_ptr, res.track_ids, res.info)
        res.info["stage_seconds"]["store"] = round(time.perf_counter() - t0, 4)
        return res.info


_WORKERS: dict[tuple, _Worker] = {}


def _ray_video(dataset_path: str, store_path: str, video_id: str, model: dict, options: dict, frame_mode: str, threads: int | None, use_gpu: bool) -> dict:
    """Ray task body: one video, with the model cached in the worker process."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    if use_gpu and not torch.cuda.is_available():
        raise RvosError(f"the Ray task for {video_id} was given a GPU but torch sees no CUDA device on {socket.gethostname()}")
    device = "cuda:0" if use_gpu else "cpu"
    spec = ModelSpec(**{**model, "device": device})
    opts = TrackOptions(**{**options, "prompts": tuple(options["prompts"])})
    key = (dataset_path, store_path, spec, opts, frame_mode)
    if key not in _WORKERS:
        _WORKERS[key] = _Worker(dataset_path, store_path, spec, opts, frame_mode)
    info = _WORKERS[key].run(video_id)
    return {**info, "host": socket.gethostname(), "device": device}


def generate_tracks(
    dataset_path: str | Path,
    out: str | Path,
    *,
    model: ModelSpec,
    options: TrackOptions | None = None,
    split: str | None = None,
    shard: tuple[int, int] = (0, 1),
    executor: str = "local",
    ray_address: str | None = None,
    gpus_per_task: float = 1.0,
    cpus_per_task: float = 1.0,
    threads: int | None = None,
    progress: Progress | None = None,
) -> dict:
    """Generate a track store for a dataset (or a split / shard of it); resumes where a run stopped.

    Videos whose ``done/`` marker exists are skipped; every other video is generated and written
    atomically (:meth:`TrackStore.write_video`), so a killed run, rerun with the same options, gives
    the same store as an uninterrupted one. Different options on an existing store are refused.

    Args:
        dataset_path: a common-format dataset directory.
        out: the track store directory (created).
        model: SAM2 to use (``device`` is the driver's; Ray tasks use their own GPU).
        options: generation options (defaults: SOLA's grid tracks).
        split: only videos of this ``videos.split``.
        shard: ``(K, N)``: this process does videos ``K, K+N, ...`` of the sorted list.
        executor: ``"local"`` (in this process) or ``"ray"`` (one task per video).
        ray_address: ``ray.init(address=...)`` (None: an existing connection, else a local instance).
        gpus_per_task: ``num_gpus`` of each Ray task (0 on CPU-only clusters).
        cpus_per_task: ``num_cpus`` of each Ray task.
        threads: torch threads (this process, or each Ray task).
        progress: ``progress(event, **info)``: ``"loading"`` first, before the checkpoint is
            hashed and SAM2 is built (videos, config, device, checkpoint), ``"run"`` (total,
            todo), ``"video_start"`` (video_id, index, frames), the events of
            :func:`generate_video` (local executor), ``"video_done"`` (video_id, info),
            ``"video_failed"`` (Ray).

    Returns:
        The run summary appended to the manifest (videos, tracks per video, seconds per frame, stages).

    Raises:
        RvosError: bad dataset/options, a resume with other options, a failed video (Ray: after
            the other videos finished; the failed ones are named).
    """
    options = (options or TrackOptions()).check()
    progress = progress or (lambda *a, **k: None)
    if executor not in ("local", "ray"):
        raise RvosError(f"{executor!r}: use local or ray", item="--executor")
    check_model_spec(model)
    dataset = open_dataset(dataset_path)
    dataset_path = str(Path(dataset_path).resolve())
    out = str(Path(out).resolve())
    if "gt" in options.prompts and not has_ground_truth(dataset):
        raise RvosError("GT prompts need a dataset with ground truth (expressions' obj_ids are all null)", file=dataset.path, item="--prompts")
    frame_mode = resolve_prompt_frames(dataset, options.prompt_frames)
    ids = select_videos(dataset, split, shard)
    progress("loading", videos=len(ids), config=model.config, device=model.device, checkpoint=model.checkpoint)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    # Ray tasks run on their own devices: on a GPU (bf16 autocast) when they request one
    precision = precision_name(model.device if executor == "local" else ("cuda" if gpus_per_task > 0 else "cpu"))
    meta = store_meta(dataset, model, options, split, frame_mode, precision)
    if TrackStore.exists(out):  # a resume with other options is refused before SAM2 is loaded
        TrackStore(out, create=True, meta=meta)
    worker = _Worker(dataset_path, None, model, options, frame_mode) if executor == "local" else None  # load before writing
    store = TrackStore(out, create=True, meta=meta)
    todo = [v for v in ids if not store.is_done(v)]
    progress("run", total=len(ids), todo=len(todo), frame_mode=frame_mode)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    infos: dict[str, dict] = {}
    failures: dict[str, str] = {}
    if executor == "local":
        worker.store = store
        for i, vid in enumerate(todo):
            progress("video_start", video_id=vid, index=i, frames=int(dataset.video(vid)["num_frames"]))
            infos[vid] = worker.run(vid, progress)
            progress("video_done", video_id=vid, info=infos[vid])
    else:
        infos, failures = _run_ray(dataset_path, out, todo, model, options, frame_mode, ray_address, gpus_per_task, cpus_per_task, threads, progress)
    summary = run_summary(infos, ids, todo, started, time.perf_counter() - t0)
    summary.update(
        executor=executor,
        shard=f"{shard[0]}/{shard[1]}",
        split=split,
        device=model.device if executor == "local" else f"ray ({gpus_per_task:g} GPU/task)",
        dataset_path=dataset_path,
        checkpoint_path=str(Path(model.checkpoint).resolve()) if model.checkpoint else None,
        grounding_model_path=str(Path(options.grounding_model).resolve()) if options.grounding_model else None,
        host=socket.gethostname(),
        failed=sorted(failures),
    )
    store.add_run(summary)
    if failures:
        first = sorted(failures)[0]
        raise RvosError(f"{len(failures)} video(s) failed, first: {failures[first]}", file=out, item=first)
    return summary


def _ray_unit(unit: tuple) -> dict:
    return _ray_video(*unit)


def _run_ray(dataset_path, out, todo, model, options, frame_mode, address, gpus, cpus, threads, progress):
    """One Ray task per video through :mod:`rvoskit.executor`; failed videos are collected, not raised."""
    ex = Executor("ray", ray_address=address, num_cpus=cpus, num_gpus=gpus)
    ray_connect(address)  # a connection error before any video is announced
    mdict, odict = model.to_dict(), {**asdict(options), "prompts": list(options.prompts)}
    units = [(dataset_path, out, vid, mdict, odict, frame_mode, threads, gpus > 0) for vid in todo]
    for i, vid in enumerate(todo):
        progress("video_start", video_id=vid, index=i, frames=None)
    infos, failures = {}, {}

    def failed(unit: tuple, exc: BaseException) -> None:
        text = str(exc).strip()
        failures[unit[2]] = text.splitlines()[-1] if text else type(exc).__name__
        progress("video_failed", video_id=unit[2], error=failures[unit[2]])

    for unit, info in imap(_ray_unit, units, ex, on_error=failed):
        infos[unit[2]] = info
        progress("video_done", video_id=unit[2], info=info)
    return infos, failures


def run_summary(infos: dict[str, dict], ids: list[str], todo: list[str], started, seconds: float) -> dict:
    """Per-run summary: videos, tracks per video, frames, time per frame, stage seconds."""
    ntracks = [sum(i["tracks"].values()) for i in infos.values()]
    frames = sum(int(i["frames"]) for i in infos.values())
    stages: dict[str, float] = {}
    for i in infos.values():
        for k, s in i.get("stage_seconds", {}).items():
            stages[k] = round(stages.get(k, 0.0) + s, 4)
    return {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "videos_in_shard": len(ids),
        "videos_skipped": len(ids) - len(todo),
        "videos_processed": len(infos),
        "frames": frames,
        "tracks": int(sum(ntracks)),
        "tracks_per_video": {
            "mean": round(float(np.mean(ntracks)), 3) if ntracks else 0.0,
            "min": int(min(ntracks)) if ntracks else 0,
            "max": int(max(ntracks)) if ntracks else 0,
        },
        "seconds": round(seconds, 3),
        "seconds_per_frame": round(seconds / frames, 4) if frames else None,
        "stage_seconds": stages,
        "pid": os.getpid(),
    }


__all__ = [
    "SelectionStats",
    "TrackOptions",
    "VideoResult",
    "generate_tracks",
    "generate_video",
    "has_ground_truth",
    "parse_shard",
    "resolve_prompt_frames",
    "select_and_track",
    "select_videos",
    "store_meta",
]
