"""Scoring with a trained selection model (``rvoskit score``): scores, selection, merged masks.

Follows cvlab-kaist/SOLA @ 76f87be ``inference.py`` and ``dataloader.AlignDataset.get_sam2_masklet``:
a track is selected when ``sigmoid(logit) > tau`` (0.5 default), the selected tracks' masks are
OR-merged per frame, and an expression with no selected track gets an empty mask on every frame.
Added: top-k selection instead of the threshold, batched scoring, and a predictions table in the
common format (``rvoskit eval`` reads it, ``rvoskit export`` writes submission zips from it) plus the
per-track scores (``scores.parquet``: expression_id, video_id, source, track_id, logit, score, selected).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pycocotools.mask as cocomask
import torch

from rvoskit.errors import RvosError
from rvoskit.format import open_dataset
from rvoskit.format import rle as rlemod
from rvoskit.format.predictions import PredictionsWriter
from rvoskit.selection.checkpoint import load_checkpoint, model_from_checkpoint
from rvoskit.selection.data import (
    Sample,
    TokenCache,
    batch_indices,
    check_token_headers,
    make_batch,
    open_stores,
    parse_track_sources,
    video_candidates,
)
from rvoskit.selection.model import TrackSelectionModel
from rvoskit.selection.text import (
    TextFeature,
    encoder_key,
    resolve_encoder,
    text_features,
)
from rvoskit.selection.training import autocast, forward_batch, resolve_device

#: ``scores.parquet``: one row per (expression, candidate track).
SCORES_SCHEMA = pa.schema(
    [("expression_id", pa.string()), ("video_id", pa.string()), ("source", pa.string()), ("track_id", pa.int64()),
     ("logit", pa.float64()), ("score", pa.float64()), ("selected", pa.bool_())]
)
#: The columns of a track store's ``tracks`` table that scoring reads.
TRACK_COLUMNS = ["track_id", "frame_idx", "expression_id", "height", "width", "rle", "area"]


def score_samples(
    model: TrackSelectionModel,
    samples: Sequence[Sample],
    features: Mapping[str, TextFeature],
    tokens: TokenCache,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    amp: bool = True,
) -> pd.DataFrame:
    """Score every candidate track of every sample.

    Returns:
        One row per (expression, candidate): ``expression_id, video_id, source, track_id, logit, score``
        (``score = sigmoid(logit)``), in sample then candidate order.
    """
    dev = torch.device(device)
    model = model.to(dev).eval()
    rows: list[dict] = []
    with torch.no_grad():
        for ix in batch_indices(samples, batch_size, group_by_video=True):
            batch = make_batch([samples[i] for i in ix], features, tokens).to(dev)
            with autocast(dev, amp):
                logits, _ = forward_batch(model, batch)
            logits = logits.float().cpu().numpy()
            for b, s in enumerate(batch.samples):
                for n, (source, track_id) in enumerate(s.candidates):
                    rows.append(
                        {"expression_id": s.expression_id, "video_id": s.video_id, "source": source, "track_id": track_id, "logit": float(logits[b, n])}
                    )
    df = pd.DataFrame(rows, columns=SCORES_SCHEMA.names[:5])  # expression_id .. logit
    df["score"] = 1.0 / (1.0 + np.exp(-df["logit"].to_numpy(np.float64)))
    return df


def select_tracks(scores: pd.DataFrame, tau: float = 0.5, top_k: int | None = None) -> pd.Series:
    """Which scored tracks are selected: ``score > tau`` (SOLA), or the ``top_k`` best per expression.

    Args:
        scores: rows with ``expression_id`` and ``score``.
        tau: probability threshold (strict), used when ``top_k`` is None.
        top_k: select the k highest-scoring tracks of each expression (ties: candidate order).

    Returns:
        Boolean Series aligned with ``scores``.
    """
    if top_k is None:
        return scores["score"] > tau
    if top_k < 1:
        raise RvosError(f"top-k must be >= 1 (got {top_k})")
    rank = scores.groupby("expression_id", sort=False)["score"].rank(method="first", ascending=False)
    return rank <= top_k


class VideoMasks:
    """The candidate tracks' masks of one video, indexed once, OR-merged per selection.

    A selection (a set of ``(source, track_id)``) seen before in the video is not merged again, so
    expressions that select the same tracks (common on MeViS, where several expressions refer to one
    object) cost one merge. Masks stay compressed RLE throughout (pycocotools ``merge``); no mask is
    decoded to pixels.

    Args:
        tracks: ``{source: tracks rows of the video}`` (``TrackStore.tracks``).
        num_frames, height, width: the video's size.
    """

    def __init__(self, tracks: Mapping[str, pd.DataFrame], num_frames: int, height: int, width: int):
        self.T, self.H, self.W = int(num_frames), int(height), int(width)
        self._empty = rlemod.encode(np.zeros((self.H, self.W), np.uint8))
        self._masks: dict[tuple[str, int], dict[int, tuple[bytes, int]]] = {}  # non-empty frames only
        for source, rows in tracks.items():
            rows = rows[rows["area"] > 0]
            for tid, f, c, a in zip(rows["track_id"].to_numpy(), rows["frame_idx"].to_numpy(), rows["rle"], rows["area"].to_numpy()):
                self._masks.setdefault((source, int(tid)), {})[int(f)] = (c, int(a))
        self._merged: dict[frozenset, list[tuple[bytes, int]]] = {}

    def merge(self, selected: Sequence[tuple[str, int]]) -> list[tuple[bytes, int]]:
        """``[(rle counts, area)]`` for frames ``0 .. T-1``: the OR of the selected tracks' masks (a frame
        with no row for a track counts as empty for that track; no selection gives empty masks)."""
        key = frozenset(selected)
        if key not in self._merged:
            per_frame: list[list[tuple[bytes, int]]] = [[] for _ in range(self.T)]
            for sel in key:
                for f, ca in self._masks.get(sel, {}).items():
                    per_frame[f].append(ca)
            out = []
            for masks in per_frame:
                if not masks:
                    out.append((self._empty, 0))
                elif len(masks) == 1:
                    out.append(masks[0])
                else:
                    merged = cocomask.merge([rlemod.to_coco(c, self.H, self.W) for c, _ in masks], intersect=0)
                    out.append((merged["counts"], int(cocomask.area(merged))))
            self._merged[key] = out
        return self._merged[key]


def merge_masks(
    tracks: Mapping[str, pd.DataFrame], selected: Sequence[tuple[str, int]], num_frames: int, height: int, width: int
) -> list[tuple[bytes, int]]:
    """OR-merge the selected tracks' masks on every frame (one-off :meth:`VideoMasks.merge`).

    Args:
        tracks: ``{source: tracks rows of the video}``.
        selected: ``[(source, track_id)]``; empty gives empty masks.
        num_frames, height, width: the video's size.

    Returns:
        ``[(rle counts, area)]`` for frames ``0 .. num_frames-1`` (a frame with no row for a track
        counts as empty for that track).
    """
    return VideoMasks(tracks, num_frames, height, width).merge(selected)


def _check_tracks(rows: pd.DataFrame, store, video_id: str, T: int, H: int, W: int) -> None:
    if len(rows) and ((rows["height"] != H).any() or (rows["width"] != W).any()):
        raise RvosError(f"track masks are not {H}x{W} like the dataset's frames", file=store.path, item=video_id)
    if len(rows) and int(rows["frame_idx"].max()) >= T:
        raise RvosError(f"track rows go past the video's {T} frames", file=store.path, item=video_id)


def _checkpoint_encoder(state: Mapping[str, Any], text_encoder: str | Path | None) -> Path:
    """The text encoder directory of a checkpoint: ``text_encoder`` if given, else the recorded one, else
    the bundled MiniLM when that is what the model was trained with. Its key must be the recorded key."""
    key = state["text"]["key"]
    if text_encoder is not None:
        path = resolve_encoder(text_encoder)
    elif Path(state["text"]["encoder"]).is_dir():
        path = Path(state["text"]["encoder"])
    else:
        path = resolve_encoder(None)
        if encoder_key(path) != key:
            raise RvosError(f"the text encoder {state['text']['encoder']} is gone; pass --text-encoder", file=state["path"])
    if encoder_key(path) != key:
        raise RvosError(f"text encoder {path} is not the one the model was trained with ({key})", file=state["path"])
    return path


def seen_datasets(state: Mapping[str, Any]) -> list[dict]:
    """The data sets a checkpoint's model saw (its ``datasets`` records; for a checkpoint written
    before they were recorded, the dataset paths of its config, without checksums)."""
    recs = state.get("datasets")
    if recs:
        return list(recs)
    from rvoskit.selection.config import data_sets

    out = []
    for role in ("train", "valid"):
        try:
            sets = data_sets(state["config"], role, check_paths=False)
        except RvosError:
            continue
        for name, s in sets.items():
            if s.get("dataset"):
                out.append({"name": name, "role": role, "dataset": str(Path(s["dataset"]).resolve()), "manifest_sha256": None, "source": {}})
    return out


def zero_shot_warnings(state: Mapping[str, Any], dataset: str | Path) -> list[str]:
    """Why scoring ``dataset`` with this model is not zero-shot, one message per reason (empty: it is).

    A record of the checkpoint (:func:`seen_datasets`) matches when its ``manifest_sha256`` equals
    the sha256 of the dataset's ``dataset.json`` or its path is the dataset's path ("trained on this
    dataset"), or when its source benchmark is the dataset's with another split ("trained on another
    split of the benchmark": SOLA's zero-shot rows train on MeViS and evaluate on Ref-YouTube-VOS and
    Ref-DAVIS).
    """
    from rvoskit.format.store import MANIFEST, sha256_file

    path = Path(dataset)
    digest = sha256_file(path / MANIFEST)
    manifest = open_dataset(path).manifest
    src = manifest.get("source") or {}
    bench, split = src.get("dataset"), src.get("split")
    out = []
    for rec in seen_datasets(state):
        verb = "trained" if rec.get("role") == "train" else "validated"
        rsrc = rec.get("source") or {}
        if rec.get("manifest_sha256") == digest or rec.get("dataset") == str(path.resolve()):
            out.append(f"the model was {verb} on this dataset ({rec.get('role')} set {rec.get('name')!r}, {rec.get('dataset')}): this is not a zero-shot evaluation")
        elif bench and rsrc.get("dataset") == bench:
            out.append(
                f"the model was {verb} on {bench} {rsrc.get('split')} ({rec.get('role')} set {rec.get('name')!r}) and this is {bench} {split}: "
                "the same benchmark, so not zero-shot in SOLA's sense"
            )
    if not state.get("datasets"):
        out.append("the checkpoint does not record the datasets' checksums (written by an older rvoskit): only their paths were compared")
    return out


def predict(
    checkpoint: str | Path,
    dataset: str | Path,
    tracks: Sequence[str] | Mapping[str, str | Path],
    out: str | Path,
    *,
    tau: float = 0.5,
    top_k: int | None = None,
    device: str = "cpu",
    batch_size: int = 16,
    text_encoder: str | Path | None = None,
    text_cache: str | Path | None = None,
    overwrite: bool = False,
    zero_shot: bool = False,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Score every expression of a dataset, select tracks and write the merged masks as predictions.

    Args:
        checkpoint: a checkpoint file or a run directory (its newest checkpoint).
        dataset: the common-format dataset (expressions, frame counts and sizes).
        tracks: track stores, ``["grid=DIR", "gdino=DIR"]`` or ``{source: DIR}``.
        out: predictions directory to create (``predictions.parquet`` + ``predictions.json`` +
            ``scores.parquet``).
        tau: selection threshold on the probability; top_k: select the k best instead.
        device: ``cpu`` or ``cuda[:N]``; batch_size: expressions per forward pass.
        text_encoder: encoder directory if the checkpoint's has moved (must be the same model).
        text_cache: text-feature cache root.
        overwrite: replace an existing ``out``.
        zero_shot: the user means a zero-shot evaluation: every reason it is not
            (:func:`zero_shot_warnings`) goes to ``warn`` and into ``predictions.json``.
        warn: receives warnings (default: none are printed).
        progress: ``progress(phase, done, total)`` with phases ``"text"`` and ``"videos"``.

    Returns:
        ``{"out", "expressions", "videos", "selected_tracks", "empty_expressions"}``.

    Raises:
        RvosError: unreadable checkpoint, another text encoder, a video missing from a store, track
        masks whose size differs from the dataset's, an existing ``out`` without ``overwrite``.
    """
    out = Path(out)
    if top_k is None and not (isinstance(tau, (int, float)) and 0 <= tau <= 1):
        raise RvosError(f"tau must be in [0, 1], not {tau!r}", item="--tau")
    if int(batch_size) < 1:
        raise RvosError(f"batch size must be >= 1, not {batch_size}", item="--batch-size")
    if out.exists() and not overwrite:
        raise RvosError("output exists; pass --overwrite to replace it", file=out)
    dev = resolve_device(device)
    state = load_checkpoint(checkpoint)
    model = model_from_checkpoint(state).to(dev)
    enc_path = _checkpoint_encoder(state, text_encoder)
    ds = open_dataset(dataset)
    stores = open_stores(parse_track_sources(tracks))
    not_zero_shot = zero_shot_warnings(state, dataset) if zero_shot else []
    for msg in not_zero_shot:
        if warn:
            warn(msg)
    exprs = ds.expressions
    features, _ = text_features(
        exprs["text"].tolist(), enc_path, text_cache, device=str(dev), progress=(lambda d, t: progress("text", d, t)) if progress else None
    )
    frames = {str(v): int(t) for v, t in zip(ds.videos["video_id"], ds.videos["num_frames"])}
    dim = int(state["config"]["model"]["object_dim"])
    scored_videos = list(dict.fromkeys(exprs["video_id"]))
    for store in stores.values():  # every token file's header, before any work
        check_token_headers(store, scored_videos, frames, dim)
    token_cache = TokenCache(stores, max_videos=4, frames={"": frames}, dim=dim)
    amp = bool(state["config"]["train"].get("amp", True))
    meta = {
        "method": "rvoskit-selection (SOLA)",
        "checkpoint": str(Path(state["path"]).resolve()),
        "epoch": int(state["epoch"]),
        "tracks": {k: str(Path(s.path).resolve()) for k, s in stores.items()},
        "selection": {"tau": None if top_k else tau, "top_k": top_k},
        "trained_on": [{k: r.get(k) for k in ("name", "role", "dataset", "manifest_sha256")} for r in seen_datasets(state)],
    }
    if zero_shot:
        meta["zero_shot"] = {"requested": True, "warnings": not_zero_shot}
    n_selected = n_empty = 0
    by_video = exprs.groupby("video_id", sort=False)
    # one video at a time: its tracks are read once, its masks merged once per distinct selection,
    # and its predictions written as one row group before the next video is read
    with PredictionsWriter(out, dataset=dataset, meta=meta, extra={"scores": SCORES_SCHEMA}, overwrite=overwrite) as writer:
        for vi, (vid, vexprs) in enumerate(by_video):
            v = ds.video(vid)
            T, H, W = int(v["num_frames"]), int(v["height"]), int(v["width"])
            rows = {}
            for name, store in stores.items():
                rows[name] = store.tracks(vid, columns=TRACK_COLUMNS)
                _check_tracks(rows[name], store, vid, T, H, W)
            samples = [Sample(e.expression_id, vid, e.text, video_candidates(rows, e.expression_id)) for e in vexprs.itertuples()]
            scores = score_samples(model, [s for s in samples if s.candidates], features, token_cache, device=dev, batch_size=batch_size, amp=amp)
            scores["selected"] = select_tracks(scores, tau, top_k).to_numpy(bool) if len(scores) else np.zeros(0, bool)
            chosen = scores[scores["selected"]]
            picks = {eid: g for eid, g in chosen.groupby("expression_id", sort=False)}
            masks = VideoMasks(rows, T, H, W)
            pred_rows = []
            for e in vexprs.itertuples():
                g = picks.get(e.expression_id)
                sel = [] if g is None else list(zip(g["source"], g["track_id"].astype(int)))
                n_selected += len(sel)
                n_empty += not sel
                conf = float(g["score"].max()) if sel else None
                for f, (counts, area) in enumerate(masks.merge(sel)):
                    pred_rows.append(
                        {"expression_id": e.expression_id, "video_id": vid, "exp_id": e.exp_id, "frame_idx": f, "height": H, "width": W, "rle": counts, "area": area, "score": conf}
                    )
            writer.add(pred_rows, scores=scores)
            if progress:
                progress("videos", vi + 1, by_video.ngroups)
    return {"out": str(out), "expressions": len(exprs), "videos": by_video.ngroups, "selected_tracks": n_selected, "empty_expressions": n_empty}
