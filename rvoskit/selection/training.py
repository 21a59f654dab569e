"""Training of the selection model (``rvoskit train``).

Follows cvlab-kaist/SOLA @ 76f87be ``train.py``: loss = weighted BCE (positives 1.5) + 0.3 x
alignment loss; AdamW (lr 5e-6, weight decay 0.01); ReduceLROnPlateau (min, factor 0.5,
patience 5) stepped on the mean validation loss each epoch; gradient clipping to norm 1.0; seed
42; a checkpoint every epoch; validation loss, accuracy, precision, recall and F1 at the threshold
each epoch. Differences: batches of many expressions (SOLA: one per step; see ``data.batch_indices``),
text features cached instead of running the text encoder every step, the optimizer, scheduler and
RNG states in every checkpoint so that ``resume`` continues exactly, a run-independent shuffle
(seeded by (seed, epoch)), bfloat16 autocast on CUDA.

Run directory::

    <run>/config.yaml                  effective config
    <run>/checkpoints/epoch_NNN.pt     one per epoch (see rvoskit.selection.checkpoint)
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
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from rvoskit.selection.config import dump_config
from rvoskit.selection.data import (
    Batch,
    Sample,
    TokenCache,
    batch_indices,
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


def _load_split(split: Mapping[str, Any], name: str) -> tuple[list[Sample], dict]:
    if not split.get("dataset") or not split.get("tracks") or not split.get("labels"):
        raise RvosError(f"data.{name} needs dataset, tracks and labels (--dataset, --tracks, --labels)")
    dataset = open_dataset(split["dataset"])
    stores = open_stores(parse_track_sources(split["tracks"]))
    samples = labelled_samples(dataset, stores, split["labels"])
    if not samples:
        raise RvosError(f"no labelled expressions for the {name} split", file=split["labels"])
    return samples, stores


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
    return {k: counts.mean(k) for k in counts.sums} | counts.metrics()


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


def _prepare_run(out: Path, cfg: dict, resume: bool, overwrite: bool) -> dict | None:
    """Check / create the run directory; returns the checkpoint to resume from (or None)."""
    found = list_checkpoints(out)
    if found and resume:
        state = load_checkpoint(found[-1][1])
        for section in _FROZEN_ON_RESUME:
            if json.dumps(state["config"][section], sort_keys=True) != json.dumps(cfg[section], sort_keys=True):
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


def train(
    cfg: dict,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "cpu",
    progress: Progress | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the selection model; one checkpoint per epoch in ``out``.

    Args:
        cfg: the effective config (:func:`rvoskit.selection.config.load_config`); ``data.train``
            (and optionally ``data.valid``) give the dataset, track stores ``{source: dir}`` and the
            labels directory.
        out: the run directory.
        resume: continue from the newest checkpoint in ``out`` (the same result as an uninterrupted
            run); ``train.epochs`` may be raised, the model / loss / data sections and the text encoder
            must match.
        overwrite: delete a non-empty ``out`` and start again.
        device: ``cpu`` or ``cuda[:N]``.
        progress: callback ``(phase, done, total, info)``.
        log: receives one-line messages (parameter count, per-epoch summary).

    Returns:
        ``{"run_dir", "epochs", "metrics": [per-epoch dicts], "parameters"}``.

    Raises:
        RvosError: bad inputs (names the file and item), a non-empty ``out`` without resume/overwrite,
        a resume with another model / data config, an unusable device.
    """
    out = Path(out)
    dev = resolve_device(device)
    state = _prepare_run(out, cfg, resume, overwrite)

    data = cfg["data"]
    train_samples, train_stores = _load_split(data["train"], "train")
    valid_samples, valid_stores = [], {}
    if data["valid"].get("dataset"):
        valid_samples, valid_stores = _load_split(data["valid"], "valid")
    elif float(data.get("valid_fraction") or 0) > 0:
        train_samples, valid_samples = split_by_video(train_samples, float(data["valid_fraction"]), int(cfg["train"]["seed"]))
        valid_stores = train_stores

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
    seed = int(cfg["train"]["seed"])
    torch.manual_seed(seed)
    model = TrackSelectionModel.from_config(cfg["model"], text_meta["dim"]).to(dev)
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
    log(
        f"{len(train_samples)} training expressions, {len(valid_samples)} validation expressions; "
        f"text features: {text_info['cached']} cached, {text_info['encoded']} encoded ({text_meta['key']})"
    )

    train_tokens = TokenCache(train_stores, int(cfg["train"]["token_cache_videos"]))
    valid_tokens = train_tokens if valid_stores is train_stores else TokenCache(valid_stores, int(cfg["train"]["token_cache_videos"]))
    tcfg = cfg["train"]
    for epoch in range(start + 1, int(tcfg["epochs"]) + 1):
        t0 = time.perf_counter()
        model.train()
        counts = _Counts()
        order = batch_indices(
            train_samples, tcfg["batch_size"], group_by_video=bool(tcfg["group_by_video"]), rng=np.random.default_rng([seed, epoch])
        )
        batches = prefetch(make_batch([train_samples[i] for i in ix], features, train_tokens) for ix in order)
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
        if valid_samples:
            v = evaluate(model, valid_samples, features, valid_tokens, cfg, dev, progress, epoch)
            row.update({"valid_loss": v.pop("loss"), "valid_bce": v.pop("bce"), "valid_alignment": v.pop("alignment")}, **v)
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
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None},
                "metrics": history,
            },
        )
        keep = int(tcfg.get("keep_last") or 0)
        if keep > 0:
            for _, p in list_checkpoints(out)[:-keep]:
                p.unlink(missing_ok=True)
        write_metrics(out, history)
        msg = f"epoch {epoch}: train loss {row['train_loss']:.4f}"
        if "valid_loss" in row:
            msg += f", valid loss {row['valid_loss']:.4f}, acc {row['accuracy']:.3f}, P {row['precision']:.3f}, R {row['recall']:.3f}, F1 {row['f1']:.3f}"
        log(msg + f" ({seconds:.1f} s, {row['train_expressions_per_second']:.1f} expr/s)")
        if not math.isfinite(row["train_loss"]):
            raise RvosError(f"training diverged at epoch {epoch} (loss {row['train_loss']})", file=out)
    return {"run_dir": str(out), "epochs": len(history), "metrics": history, "parameters": n_params}
