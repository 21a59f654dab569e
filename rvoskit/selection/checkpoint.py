"""Checkpoints of the selection model: one ``torch.save`` dict per epoch.

Keys: ``format`` (``"rvoskit-selection"``), ``format_version`` (1), ``rvoskit_version``, ``epoch``,
``config`` (the effective config), ``text`` (``{"encoder", "key", "dim"}``), ``model`` (state dict;
SOLA's parameter names), ``optimizer``, ``scheduler``, ``rng`` (torch CPU/CUDA generator states),
``metrics`` (the per-epoch history so far). Only tensors and plain Python values are stored, so
checkpoints load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_file
from rvoskit.selection.model import TrackSelectionModel

FORMAT_NAME = "rvoskit-selection"
FORMAT_VERSION = 1
_EPOCH = re.compile(r"epoch_(\d+)\.pt$")


def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    """``<run>/checkpoints/epoch_<NNN>.pt``."""
    return Path(run_dir) / "checkpoints" / f"epoch_{epoch:03d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(epoch, path)]`` of a run directory, by epoch."""
    d = Path(run_dir) / "checkpoints"
    found = [(int(m.group(1)), p) for p in d.glob("epoch_*.pt") if (m := _EPOCH.search(p.name))] if d.is_dir() else []
    return sorted(found)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format keys) atomically to ``path``."""
    payload = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "rvoskit_version": __version__, **state}
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint file, or the newest checkpoint of a run directory.

    Raises:
        RvosError: missing file, a run directory without checkpoints, not an rvoskit selection checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise RvosError("no checkpoints in this run directory", file=path)
        path = found[-1][1]
    if not path.is_file():
        raise RvosError("missing checkpoint", file=path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise RvosError(f"unreadable checkpoint: {exc}", file=path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        raise RvosError("not an rvoskit selection checkpoint", file=path)
    if state.get("format_version") != FORMAT_VERSION:
        raise RvosError(f"checkpoint format version {state.get('format_version')} is not supported", file=path)
    state["path"] = str(path)
    return state


def model_from_checkpoint(state: dict[str, Any]) -> TrackSelectionModel:
    """The model of a loaded checkpoint (weights loaded, in eval mode, on the CPU)."""
    model = TrackSelectionModel.from_config(state["config"]["model"], int(state["text"]["dim"]))
    model.load_state_dict(state["model"])
    return model.eval()
