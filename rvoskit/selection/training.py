"""Training of the selection model (``rvoskit train``).

Follows cvlab-kaist/SOLA @ 76f87be ``train.py``: loss = weighted BCE (positives 1.5) + 0.3 x
alignment loss; AdamW (lr 5e-6, weight decay 0.01); ReduceLROnPlateau (min, factor 0.5,
patience 5) stepped on the mean validation loss each epoch; gradient clipping to norm 1.0; seed
42; a checkpoint every epoch; validation loss, accuracy, precision, recall and F1 at the threshold
each epoch. Differences: batches of many expressions (SOLA: one per step; see ``data.batch_indices``),
text features cached instead of running the text encoder every step, the optimizer, scheduler and
RNG states in the last checkpoint so that ``resume`` continues exactly, a run-independent shuffle
(seeded by (seed, epoch)), bfloat16 autocast on CUDA, several named training / validation sets
(SOLA's MeViS + Ref-YouTube-VOS training) with a sampling weight per set.

Run directory::

    <run>/config.yaml                  effective config
    <run>/run.json                     data sets seen, last and best epoch, checkpoints kept
    <run>/checkpoints/epoch_NNN.pt     the last and the best by default (see rvoskit.selection.checkpoint)
    <run>/metrics.csv, metrics.json    one row per epoch
    <run>/curves.png                   loss and accuracy / precision / recall / F1 curves
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvoskit.errors import RvosError
from rvoskit.format import open_dataset
from rvoskit.format.atomic import atomic_file
from rvoskit.selection.checkpoint import (
    RUN_MANIFEST,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    strip_optimizer,
)
from rvoskit.selection.config import data_sets, dump_config, validate_config
from rvoskit.selection.data import (
    Batch,
    Sample,
    TokenCache,
    batch_indices,
    check_token_headers,
    epoch_pool,
    labelled_samples,
    make_batch,
    open_stores,
    parse_track_sources,
    prefetch,
    split_by_video,
)
from rvoskit.selection.losses import selection_loss
from rvoskit.selection.model import TrackSelectionModel, parameter_report
from rvoskit.selection.text import TextFeature, text_features

#: progress(phase, done, total, info): phase is "text", "train" or "valid".
Progress = Callable[[str, int, int, dict], None]

# Config sections that must not change when a run is resumed (the text encoder is checked by its key).
_FROZEN_ON_RESUME = ("model", "loss", "data")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` -> a usable :class:`torch.device`.

    Raises:
        RvosError: unknown device string, or CUDA requested where it is not available.
    """
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise RvosError(f"unknown device {device!r} (use cpu or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RvosError(f"device {device!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RvosError(f"device {device!r}: only {torch.cuda.device_count()} CUDA devices")
    elif dev.type != "cpu":
        raise RvosError(f"unsupported device {device!r} (use cpu or cuda:N)")
    return dev


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on CUDA when ``enabled``; a no-op context on the CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def forward_batch(model: TrackSelectionModel, batch: Batch):
    """Run the model on a batch: ``(logits (B, N), pooled (B, N, D))``."""
    return model(batch.tokens, batch.words, batch.track_mask, batch.frame_mask, batch.word_mask, batch.group)


def train_step(model: TrackSelectionModel, optimizer: torch.optim.Optimizer, batch: Batch, cfg: Mapping[str, Any], device: torch.device):
    """One optimisation step on a batch (already on ``device``): forward (autocast on CUDA), loss,
    backward, gradient clipping to ``optim.grad_clip`` (0 = off), optimizer step.

    Returns:
        ``{"loss", "bce", "alignment"}`` scalars.
    """
    with autocast(device, cfg["train"]["amp"]):
        logits, pooled = forward_batch(model, batch)
        losses = selection_loss(model, logits, pooled, batch.labels, batch.candidate_mask, batch.sentence, cfg["loss"])
    optimizer.zero_grad(set_to_none=True)
    losses["loss"].backward()
    clip = float(cfg["optim"]["grad_clip"] or 0)
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return losses


class DataSet:
    """One loaded data set of a run: its samples, track stores and what the checkpoint records.

    Attributes:
        name: the set's name (``data.train.NAME``); role: ``"train"`` or ``"valid"``.
        samples: labelled samples (``Sample.dataset == name``); stores: ``{source: TrackStore}``.
        frames: ``{video_id: num_frames}`` of the dataset's videos.
        record: ``{"name", "role", "dataset", "manifest_sha256", "source", "tracks", "labels",
            "labels_sha256", "weight", "expressions", "positives", "candidates"}``.
    """

    def __init__(self, name: str, role: str, samples: list[Sample], stores: dict, frames: dict[str, int], record: dict):
        self.name, self.role, self.samples, self.stores, self.frames, self.record = name, role, samples, stores, frames, record


def _count_positives(samples: Sequence[Sample]) -> tuple[int, int]:
    return sum(int((s.labels > 0).sum()) for s in samples), sum(len(s.labels) for s in samples)


def load_data_set(name: str, spec: Mapping[str, Any], role: str, object_dim: int | None = None) -> DataSet:
    """Open a data set (``{dataset, tracks, labels, weight}``, see :func:`rvoskit.selection.config.data_sets`),
    build its labelled samples and check its object-token files' headers
    (:func:`rvoskit.selection.data.check_token_headers`).

    Raises:
        RvosError: unreadable dataset / store / labels / object tokens, tokens whose frame count or
        width does not fit, no labelled expression.
    """
    from rvoskit.format.store import MANIFEST, sha256_file

    dataset = open_dataset(spec["dataset"])
    stores = open_stores(parse_track_sources(spec["tracks"]))
    samples = labelled_samples(dataset, stores, spec["labels"], name)
    labels_path = Path(spec["labels"])
    labels_path = labels_path / "labels.parquet" if labels_path.is_dir() else labels_path
    if not samples:
        raise RvosError(f"no labelled expressions in the {role} set {name!r}", file=labels_path)
    pos, total = _count_positives(samples)
    src = dataset.manifest.get("source") or {}
    record = {
        "name": name,
        "role": role,
        "dataset": str(Path(spec["dataset"]).resolve()),
        "manifest_sha256": sha256_file(Path(spec["dataset"]) / MANIFEST),
        "source": {"dataset": src.get("dataset"), "split": src.get("split")},
        "tracks": {k: str(Path(v).resolve()) for k, v in spec["tracks"].items()},
        "labels": str(labels_path.resolve()),
        "labels_sha256": sha256_file(labels_path),
        "weight": float(spec.get("weight", 1.0)),
        "expressions": len(samples),
        "positives": pos,
        "candidates": total,
    }
    videos = dataset.videos
    frames = {str(v): int(t) for v, t in zip(videos["video_id"], videos["num_frames"])}
    for source, store in stores.items():
        used = dict.fromkeys(s.video_id for s in samples if any(src == source for src, _ in s.candidates))
        check_token_headers(store, used, frames, object_dim)
    return DataSet(name, role, samples, stores, frames, record)


def _held_out(sets: list[DataSet], fraction: float, seed: int) -> list[DataSet]:
    """Split ``fraction`` of each training set's videos off as a validation set of the same name."""
    out = []
    for ds in sets:
        keep, held = split_by_video(ds.samples, fraction, seed)
        ds.samples = keep
        if held:
            rec = dict(ds.record, role="valid", expressions=len(held), held_out_from=ds.name)
            rec["positives"], rec["candidates"] = _count_positives(held)
            out.append(DataSet(ds.name, "valid", held, ds.stores, ds.frames, rec))
        ds.record.update(expressions=len(keep))
        ds.record["positives"], ds.record["candidates"] = _count_positives(keep)
    return out


class _Counts:
    """Running sums of losses (per expression) and confusion counts."""

    def __init__(self):
        self.n = 0
        self.sums = {"loss": 0.0, "bce": 0.0, "alignment": 0.0}
        self.tp = self.fp = self.fn = self.tn = 0

    def add(self, losses: Mapping[str, torch.Tensor], b: int) -> None:
        for k in self.sums:
            self.sums[k] += float(losses[k].detach()) * b
        self.n += b

    def confusion(self, logits, labels, mask, threshold: float) -> None:
        pred = (torch.sigmoid(logits.float()) > threshold) & mask
        pos = (labels > 0) & mask
        self.tp += int((pred & pos).sum())
        self.fp += int((pred & ~pos).sum())
        self.fn += int((~pred & pos).sum())
        self.tn += int((~pred & ~pos & mask).sum())

    def mean(self, key: str) -> float:
        return self.sums[key] / self.n if self.n else float("nan")

    def merge(self, other: "_Counts") -> "_Counts":
        self.n += other.n
        for k in self.sums:
            self.sums[k] += other.sums[k]
        self.tp, self.fp, self.fn, self.tn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        return self

    def result(self) -> dict[str, float]:
        return {k: self.mean(k) for k in self.sums} | self.metrics()

    def metrics(self) -> dict[str, float]:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        total = tp + fp + fn + tn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "accuracy": (tp + tn) / total if total else float("nan"),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
        }


def evaluate(
    model: TrackSelectionModel,
    samples: Sequence[Sample],
    features: Mapping[str, TextFeature],
    tokens: TokenCache,
    cfg: Mapping[str, Any],
    device: torch.device,
    progress: Progress | None = None,
    epoch: int = 0,
) -> dict[str, float]:
    """Validation loss and accuracy / precision / recall / F1 at ``train.threshold`` (eval mode, no grad).

    Returns:
        ``{"loss", "bce", "alignment", "accuracy", "precision", "recall", "f1", "tp", "fp", "fn", "tn"}``.
    """
    return _evaluate_counts(model, samples, features, tokens, cfg, device, progress, epoch).result()


def _evaluate_counts(model, samples, features, tokens, cfg, device, progress=None, epoch=0) -> _Counts:
    model.eval()
    counts = _Counts()
    order = batch_indices(samples, cfg["train"]["batch_size"], group_by_video=True)
    with torch.no_grad():
        batches = prefetch(make_batch([samples[i] for i in ix], features, tokens) for ix in order)
        for k, batch in enumerate(batches):
            batch = batch.to(device)
            mask = batch.candidate_mask
            with autocast(device, cfg["train"]["amp"]):
                logits, pooled = forward_batch(model, batch)
                losses = selection_loss(model, logits, pooled, batch.labels, mask, batch.sentence, cfg["loss"])
            counts.add(losses, len(batch.samples))
            counts.confusion(logits, batch.labels, mask, float(cfg["train"]["threshold"]))
            if progress:
                progress("valid", k + 1, len(order), {"epoch": epoch, "loss": counts.mean("loss")})
    return counts


def write_metrics(run_dir: Path, history: list[dict]) -> None:
    """Write ``metrics.csv``, ``metrics.json`` and ``curves.png`` (atomically)."""
    import pandas as pd

    with atomic_file(run_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    with atomic_file(run_dir / "metrics.csv") as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    plot_curves(history, run_dir / "curves.png")


def plot_curves(history: list[dict], path: str | Path) -> None:
    """PNG with the train / valid loss and the valid accuracy, precision, recall, F1 per epoch."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ep = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(fig)
    a, b = fig.subplots(1, 2)
    a.plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    if any(h.get("valid_loss") is not None for h in history):
        a.plot(ep, [h.get("valid_loss") for h in history], "o-", label="valid loss")
    a.set_xlabel("epoch")
    a.set_title("loss (BCE + 0.3 alignment)")
    a.legend()
    for key in ("accuracy", "precision", "recall", "f1"):
        if any(key in h for h in history):
            b.plot(ep, [h.get(key, float("nan")) for h in history], "o-", label=key)
    b.set_ylim(0, 1.02)
    b.set_xlabel("epoch")
    thr = history[-1].get("threshold", 0.5) if history else 0.5
    b.set_title(f"validation at threshold {thr:g}" if any(h.get("valid_loss") is not None for h in history) else "no validation set")
    if b.lines:
        b.legend()
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _data_signature(cfg: Mapping[str, Any]) -> str:
    """What must not change on resume in ``data``: the normalised sets and the held-out fraction."""
    sets = {role: data_sets(cfg, role, check_paths=False) for role in ("train", "valid")}
    return json.dumps({"sets": sets, "valid_fraction": float(cfg["data"].get("valid_fraction") or 0)}, sort_keys=True)


def _prepare_run(out: Path, cfg: dict, resume: bool, overwrite: bool) -> dict | None:
    """Check / create the run directory; returns the checkpoint to resume from (or None)."""
    if out.exists() and not out.is_dir():
        raise RvosError("the run output is a file, not a directory", file=out)
    found = list_checkpoints(out)
    if found and resume:
        state = load_checkpoint(found[-1][1])
        if not state.get("optimizer"):
            raise RvosError("the newest checkpoint holds no optimizer state (only the last checkpoint of a run does); cannot resume from it", file=found[-1][1])
        for section in _FROZEN_ON_RESUME:
            if section == "data":
                same = _data_signature(state["config"]) == _data_signature(cfg)
            else:
                same = json.dumps(state["config"][section], sort_keys=True) == json.dumps(cfg[section], sort_keys=True)
            if not same:
                raise RvosError(
                    f"config section {section!r} differs from the run's; resume with the same {section} settings",
                    file=found[-1][1],
                )
        return state
    started = bool(found) or (out / "metrics.json").exists()
    if started and not resume and not overwrite:
        raise RvosError("run directory holds a run; pass --resume to continue or --overwrite to restart", file=out)
    if started and overwrite:
        shutil.rmtree(out)
    return None


def best_epoch(history: Sequence[Mapping[str, Any]]) -> tuple[int, str, float] | None:
    """``(epoch, metric, value)`` of the best epoch so far: the lowest ``valid_loss`` (``train_loss``
    without validation); the earliest one on ties. None for an empty history."""
    if not history:
        return None
    metric = "valid_loss" if any(h.get("valid_loss") is not None for h in history) else "train_loss"
    scored = [(float(h[metric]), int(h["epoch"])) for h in history if h.get(metric) is not None and math.isfinite(float(h[metric]))]
    if not scored:
        return None
    value, epoch = min(scored, key=lambda x: (x[0], x[1]))
    return epoch, metric, value


def keep_checkpoints(out: Path, history: Sequence[Mapping[str, Any]], keep: int) -> list[int]:
    """Prune a run's checkpoints after an epoch: keep the ``keep`` newest (0 = all) and the best
    (:func:`best_epoch`), and strip the optimizer, scheduler and RNG state from every checkpoint but
    the newest (only the last checkpoint resumes). Returns the epochs kept."""
    found = list_checkpoints(out)
    if not found:
        return []
    best = best_epoch(history)
    keep_set = {e for e, _ in found} if keep <= 0 else {e for e, _ in found[-keep:]}
    if best is not None:
        keep_set.add(best[0])
    newest = found[-1][0]
    for epoch, path in found:
        if epoch not in keep_set:
            path.unlink(missing_ok=True)
    # the checkpoint before the newest is the only one that can still hold optimizer state
    if len(found) > 1 and found[-2][0] in keep_set:
        strip_optimizer(found[-2][1])
    return sorted(e for e in keep_set if e <= newest)


def _write_run_manifest(out: Path, records: list[dict], history: list[dict], kept: list[int]) -> None:
    best = best_epoch(history)
    doc = {
        "format": "rvoskit-run",
        "datasets": records,
        "epochs": len(history),
        "last": {"epoch": history[-1]["epoch"], "path": str(checkpoint_path(out, history[-1]["epoch"]).relative_to(out))} if history else None,
        "best": {"epoch": best[0], "metric": best[1], "value": best[2], "path": str(checkpoint_path(out, best[0]).relative_to(out))} if best else None,
        "checkpoints": kept,
    }
    with atomic_file(out / RUN_MANIFEST) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def train(
    cfg: dict,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "cpu",
    allow_no_positives: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the selection model on one or several named data sets; a checkpoint per epoch in ``out``.

    Args:
        cfg: the effective config (:func:`rvoskit.selection.config.load_config`); ``data.train``
            (and optionally ``data.valid``) hold named sets ``{NAME: {dataset, tracks: {source: dir},
            labels, weight}}`` or the single-set form ``{dataset, tracks, labels}``
            (:func:`rvoskit.selection.config.data_sets`). Expressions are keyed by (set name,
            expression id), videos by (set name, video id); the text-feature cache is shared.
        out: the run directory.
        resume: continue from the newest checkpoint in ``out`` (the same result as an uninterrupted
            run); ``train.epochs`` may be raised, the model / loss / data sections and the text encoder
            must match.
        overwrite: delete a non-empty ``out`` and start again.
        device: ``cpu`` or ``cuda[:N]``.
        allow_no_positives: train even when a training set has no positive label (else an error:
            such a model learns to select nothing and its accuracy means nothing).
        progress: callback ``(phase, done, total, info)``.
        log: receives one-line messages (parameter count, per-epoch summary, warnings).

    Returns:
        ``{"run_dir", "epochs", "metrics": [per-epoch dicts], "parameters", "datasets": [records],
        "best": (epoch, metric, value) | None}``.

    Raises:
        RvosError: bad inputs (names the file and item), a config value out of range, a training set
        without positive labels, a non-empty ``out`` without resume/overwrite, a resume with another
        model / data config, an unusable device.
    """
    out = Path(out)
    validate_config(cfg)
    dev = resolve_device(device)
    state = _prepare_run(out, cfg, resume, overwrite)

    train_specs = data_sets(cfg, "train")
    if not train_specs:
        raise RvosError("give the training data: DATASET --tracks NAME=DIR --labels DIR, or --train NAME:dataset=DIR,tracks=...,labels=DIR (or data.train in the config)")
    seed = int(cfg["train"]["seed"])
    dim = int(cfg["model"]["object_dim"])
    train_sets = [load_data_set(name, spec, "train", dim) for name, spec in train_specs.items()]
    valid_specs = data_sets(cfg, "valid")
    if valid_specs:
        valid_sets = [load_data_set(name, spec, "valid", dim) for name, spec in valid_specs.items()]
    elif float(cfg["data"].get("valid_fraction") or 0) > 0:
        valid_sets = _held_out(train_sets, float(cfg["data"]["valid_fraction"]), seed)
    else:
        valid_sets = []
    for ds in train_sets:
        if ds.record["positives"] == 0:
            what = (f"the training set {ds.name!r} has no positive label ({ds.record['candidates']} candidate tracks, all 0): "
                    "a model trained on it learns to select nothing")
            if not allow_no_positives:
                raise RvosError(what + "; check the pseudo-labels (threshold, track sources) or pass --allow-no-positives", file=ds.record["labels"])
            log(f"warning: {what} (--allow-no-positives)")
    for ds in valid_sets:
        if ds.record["positives"] == 0:
            log(f"warning: the validation set {ds.name!r} has no positive label: its precision, recall and F1 are 0 whatever the model does")
    records = [ds.record for ds in train_sets] + [ds.record for ds in valid_sets]
    train_samples = [s for ds in train_sets for s in ds.samples]
    valid_samples = [s for ds in valid_sets for s in ds.samples]
    weights = {ds.name: float(ds.record["weight"]) for ds in train_sets}

    texts = [s.text for s in train_samples] + [s.text for s in valid_samples]
    features, text_info = text_features(
        texts,
        cfg["text"]["encoder"],
        cfg["text"]["cache_dir"],
        device=str(dev),
        batch_size=int(cfg["text"]["batch_size"]),
        progress=(lambda d, t: progress("text", d, t, {})) if progress else None,
    )
    text_meta = {"encoder": text_info["encoder"], "key": text_info["key"], "dim": text_info["dim"]}
    if state is not None and state["text"]["key"] != text_meta["key"]:
        raise RvosError("the text encoder differs from the one the run started with", file=state["path"])

    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "config.yaml") as tmp:
        tmp.write_text(dump_config(cfg), encoding="utf-8")
    torch.manual_seed(seed)
    try:
        model = TrackSelectionModel.from_config(cfg["model"], text_meta["dim"]).to(dev)
    except ValueError as exc:
        raise RvosError(f"cannot build the model with this config: {exc}") from None
    opt_cfg = cfg["optim"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(opt_cfg["lr"]), weight_decay=float(opt_cfg["weight_decay"]))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=float(opt_cfg["plateau_factor"]), patience=int(opt_cfg["plateau_patience"])
    )
    history: list[dict] = []
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["cpu"])
        if dev.type == "cuda" and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(state["rng"]["cuda"], dev)
        history = list(state["metrics"])
        start = int(state["epoch"])
        log(f"resuming {out} after epoch {start}")
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(parameter_report(model))
    if len(train_sets) > 1 or len(valid_sets) > 1:
        for ds in train_sets + valid_sets:
            extra = f", weight {ds.record['weight']:g}" if ds.role == "train" else ""
            log(f"  {ds.role} set {ds.name}: {len(ds.samples)} expressions, {ds.record['positives']} positive of {ds.record['candidates']} candidates{extra}")
    log(
        f"{len(train_samples)} training expressions, {len(valid_samples)} validation expressions; "
        f"text features: {text_info['cached']} cached, {text_info['encoded']} encoded ({text_meta['key']})"
    )

    cache_videos = int(cfg["train"]["token_cache_videos"])
    train_tokens = TokenCache({ds.name: ds.stores for ds in train_sets}, cache_videos, frames={ds.name: ds.frames for ds in train_sets}, dim=dim)
    held_out = bool(valid_sets) and not valid_specs
    valid_tokens = train_tokens if held_out else TokenCache({ds.name: ds.stores for ds in valid_sets}, cache_videos, frames={ds.name: ds.frames for ds in valid_sets}, dim=dim)
    tcfg = cfg["train"]
    keep = int(tcfg.get("keep_last") or 0)
    sampler = None
    if int(tcfg.get("moment_sampling") or 0) > 0:  # MeViS-M: TGL's moment-aware frame sampling (selection/moments.py)
        from rvoskit.selection.moments import MomentSampler

        sampler = MomentSampler({ds.name: ds.record["dataset"] for ds in train_sets}, int(tcfg["moment_sampling"]),
                                labels={ds.name: ds.record["labels"] for ds in train_sets})
    for epoch in range(start + 1, int(tcfg["epochs"]) + 1):
        t0 = time.perf_counter()
        model.train()
        counts = _Counts()
        pool = epoch_pool(train_samples, weights, np.random.default_rng([seed, epoch, 1]))
        order = batch_indices(
            train_samples, tcfg["batch_size"], group_by_video=bool(tcfg["group_by_video"]), rng=np.random.default_rng([seed, epoch]), pool=pool
        )
        batches = prefetch(make_batch([train_samples[i] for i in ix], features, train_tokens) for ix in order)
        if sampler is not None:
            crop_rng = np.random.default_rng([seed, epoch, 2])
            batches = (sampler.crop(b, crop_rng) for b in batches)
        for k, batch in enumerate(batches):
            losses = train_step(model, optimizer, batch.to(dev), cfg, dev)
            counts.add(losses, len(batch.samples))
            if progress:
                progress("train", k + 1, len(order), {"epoch": epoch, "loss": counts.mean("loss")})
        seconds = time.perf_counter() - t0
        row: dict[str, Any] = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": counts.mean("loss"),
            "train_bce": counts.mean("bce"),
            "train_alignment": counts.mean("alignment"),
            "train_seconds": seconds,
            "train_expressions_per_second": counts.n / seconds if seconds > 0 else float("nan"),
            "threshold": float(tcfg["threshold"]),
        }
        if valid_sets:
            total = _Counts()
            per_set = {}
            for ds in valid_sets:
                c = _evaluate_counts(model, ds.samples, features, valid_tokens, cfg, dev, progress, epoch)
                per_set[ds.name] = c.result()
                total.merge(c)
            v = total.result()
            row.update({"valid_loss": v.pop("loss"), "valid_bce": v.pop("bce"), "valid_alignment": v.pop("alignment")}, **v)
            if len(valid_sets) > 1:
                for name, m in per_set.items():
                    row.update({f"valid.{name}.{k}": val for k, val in m.items()})
            scheduler.step(row["valid_loss"])
        else:
            scheduler.step(row["train_loss"])
        history.append(row)
        save_checkpoint(
            checkpoint_path(out, epoch),
            {
                "epoch": epoch,
                "config": cfg,
                "text": text_meta,
                "datasets": records,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None},
                "metrics": history,
            },
        )
        kept = keep_checkpoints(out, history, keep)
        write_metrics(out, history)
        _write_run_manifest(out, records, history, kept)
        msg = f"epoch {epoch}: train loss {row['train_loss']:.4f}"
        if "valid_loss" in row:
            msg += f", valid loss {row['valid_loss']:.4f}, acc {row['accuracy']:.3f}, P {row['precision']:.3f}, R {row['recall']:.3f}, F1 {row['f1']:.3f}"
        log(msg + f" ({seconds:.1f} s, {row['train_expressions_per_second']:.1f} expr/s)")
        if len(valid_sets) > 1:
            log("  " + "; ".join(f"{name}: loss {m['loss']:.4f}, F1 {m['f1']:.3f}" for name, m in per_set.items()))
        if not math.isfinite(row["train_loss"]):
            raise RvosError(f"training diverged at epoch {epoch} (loss {row['train_loss']})", file=out)
    return {"run_dir": str(out), "epochs": len(history), "metrics": history, "parameters": n_params, "datasets": records, "best": best_epoch(history)}
