"""Checkpoints of the selection model: one ``torch.save`` dict per epoch.

Keys: ``format`` (``"rvoskit-selection"``), ``format_version`` (1), ``rvoskit_version``, ``epoch``,
``config`` (the effective config), ``text`` (``{"encoder", "key", "dim"}``), ``datasets`` (what the
model saw: per data set its name, role, dataset path, the sha256 of its ``dataset.json``, source
benchmark and split, track stores, labels and their sha256, sampling weight, counts), ``model``
(state dict; SOLA's parameter names), ``metrics`` (the per-epoch history so far), and in the newest
checkpoint of a run only: ``optimizer``, ``scheduler``, ``rng`` (torch CPU/CUDA generator states).
Only tensors and plain Python values are stored, so checkpoints load with
``torch.load(..., weights_only=True)``. Files are written atomically (temporary file, fsync, rename).

A run directory also holds ``run.json`` (:data:`RUN_MANIFEST`): the data sets, the last and the best
epoch. ``RUN/best`` and ``RUN/last`` name those checkpoints wherever a checkpoint path is read.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from rvoskit import __version__
from rvoskit.errors import RvosError
from rvoskit.format.atomic import atomic_file
from rvoskit.selection.model import TrackSelectionModel

FORMAT_NAME = "rvoskit-selection"
FORMAT_VERSION = 1
#: The run's manifest (data sets seen, last and best epoch).
RUN_MANIFEST = "run.json"
_EPOCH = re.compile(r"epoch_(\d+)\.pt$")
_EXPECTED = "expected a checkpoint written by rvoskit train (a torch zip file holding a 'rvoskit-selection' dict)"


def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    """``<run>/checkpoints/epoch_<NNN>.pt``."""
    return Path(run_dir) / "checkpoints" / f"epoch_{epoch:03d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(epoch, path)]`` of a run directory, by epoch."""
    d = Path(run_dir) / "checkpoints"
    found = [(int(m.group(1)), p) for p in d.glob("epoch_*.pt") if (m := _EPOCH.search(p.name))] if d.is_dir() else []
    return sorted(found)


class _Writer:
    """A file wrapper that remembers the OSError of a failed write (torch reports it as
    ``RuntimeError: unexpected pos``; we re-raise the real one, e.g. ENOSPC)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, b):
        try:
            return self.f.write(b)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self):
        self.f.flush()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus the format keys) atomically to ``path``: a temporary file beside it,
    flushed and fsynced, then renamed; a failed write leaves no file behind.

    Raises:
        OSError: the file cannot be written (a full disk raises ENOSPC with ``filename`` = ``path``).
    """
    path = Path(path)
    payload = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "rvoskit_version": __version__, **state}
    with atomic_file(path) as tmp:
        try:
            with open(tmp, "wb") as f:
                w = _Writer(f)
                try:
                    torch.save(payload, w)
                except RuntimeError:
                    if w.error is not None:
                        raise w.error from None
                    raise
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            if exc.filename is None:
                exc.filename = str(path)
            raise
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return path


def strip_optimizer(path: str | Path) -> bool:
    """Rewrite a checkpoint without its optimizer, scheduler and RNG state (atomically).
    Returns whether there was anything to strip."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not any(k in state for k in ("optimizer", "scheduler", "rng")):
        return False
    for k in ("optimizer", "scheduler", "rng"):
        state.pop(k, None)
    payload = {k: v for k, v in state.items() if k not in ("format", "format_version", "rvoskit_version")}
    save_checkpoint(path, {**payload, "rvoskit_version": state.get("rvoskit_version", __version__)})
    return True


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint file a path names: a file as is; a run directory -> its newest checkpoint;
    ``RUN/last`` -> the newest, ``RUN/best`` -> the best (``run.json``).

    Raises:
        RvosError: a missing file, a run directory without checkpoints, no best recorded.
    """
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise RvosError("no checkpoints in this run directory (expected RUN/checkpoints/epoch_NNN.pt)", file=path)
        return found[-1][1]
    if not path.exists() and path.name in ("best", "last") and path.parent.is_dir():
        found = list_checkpoints(path.parent)
        if not found:
            raise RvosError("no checkpoints in this run directory", file=path.parent)
        if path.name == "last":
            return found[-1][1]
        try:
            best = json.loads((path.parent / RUN_MANIFEST).read_text(encoding="utf-8"))["best"]
            return path.parent / best["path"]
        except (OSError, ValueError, KeyError, TypeError):
            raise RvosError(f"no best epoch recorded ({RUN_MANIFEST} missing or unreadable)", file=path.parent / RUN_MANIFEST) from None
    if not path.is_file():
        raise RvosError("missing checkpoint", file=path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint file, or the newest checkpoint of a run directory (``RUN/best``: the best).

    Raises:
        RvosError: missing file, a run directory without checkpoints, not an rvoskit selection
        checkpoint (the message says what the file is and what was expected).
    """
    path = resolve_checkpoint(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise RvosError(f"cannot read the checkpoint: {exc.strerror}", file=path) from None
    if size == 0:
        raise RvosError(f"empty file; {_EXPECTED}", file=path)
    if head != b"PK\x03\x04":
        raise RvosError(f"not a torch checkpoint (not a zip file); {_EXPECTED}", file=path)
    if not zipfile.is_zipfile(path):
        raise RvosError(f"truncated or damaged checkpoint (incomplete zip file); {_EXPECTED}", file=path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
        text = str(exc)
        if "weights_only" in text or "Unpickl" in text:
            reason = "holds Python objects other than tensors and plain values (not written by rvoskit train)"
        else:
            reason = "damaged checkpoint (torch cannot read it)"
        raise RvosError(f"{reason}; {_EXPECTED}", file=path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        what = f"a dict with keys {sorted(map(str, state))[:6]}" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise RvosError(f"not an rvoskit selection checkpoint (holds {what}); {_EXPECTED}", file=path)
    if state.get("format_version") != FORMAT_VERSION:
        raise RvosError(f"checkpoint format version {state.get('format_version')} is not supported (this rvoskit reads version {FORMAT_VERSION})", file=path)
    for key in ("epoch", "config", "text", "model"):
        if key not in state:
            raise RvosError(f"checkpoint has no {key!r} entry; {_EXPECTED}", file=path)
    state["path"] = str(path)
    return state


def model_from_checkpoint(state: dict[str, Any]) -> TrackSelectionModel:
    """The model of a loaded checkpoint (weights loaded, in eval mode, on the CPU).

    Raises:
        RvosError: the weights do not fit the configuration recorded in the checkpoint.
    """
    try:
        model = TrackSelectionModel.from_config(state["config"]["model"], int(state["text"]["dim"]))
        model.load_state_dict(state["model"])
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RvosError(f"the weights do not fit the model configuration recorded in the checkpoint ({first})", file=state.get("path")) from None
    return model.eval()
