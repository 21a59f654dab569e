"""The options every ``rvoskit`` command shares, defined once (docs/cli.md is the rule they follow).

The convention:

- the inputs a command works on are positional, in pipeline order, the dataset first
  (``rvoskit eval DATASET PREDICTIONS``);
- what it writes is ``--out/-o``; ``--overwrite`` is a plain flag;
- the same option has the same name, short form and range in every command: use the factories below
  instead of spelling ``typer.Option(...)`` again.

Old spellings stay for one release as *hidden* options that print a deprecation warning
(:func:`deprecated_alias`, :func:`merge_alias`); the convention test (tests/test_cli_convention.py)
only looks at visible options.

Usage in a command::

    from rvoskit.commands import _options as opt

    def my_command(
        dataset: Path = opt.dataset_argument(),
        out: Path = opt.out_option("Labels directory to write."),
        tracks: list[str] = opt.tracks_option(),
        workers: int = opt.workers_option(),
        overwrite: bool = opt.overwrite_option(),
        quiet: bool = opt.quiet_option(),
    ) -> None: ...
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import typer

from rvoskit.executor import KINDS

#: The release in which the deprecated spellings disappear.
REMOVED_IN = "0.3"

#: SAM2 config used when ``--sam2-config`` is not given and no checkpoint names one: the smallest
#: SAM 2.1 model (random-weight dry runs, the demo). With a checkpoint, the config is read from its
#: file name (see :func:`resolve_sam2_config`).
DEFAULT_SAM2_CONFIG = "sam2.1_hiera_t"

#: Root-level order of ``rvoskit --help``: the pipeline, then the tools around it. A new top-level
#: command must be placed here (the convention test checks it).
COMMAND_ORDER = (
    "demo",
    "convert",
    "validate",
    "info",
    "tracks",
    "pseudolabel",
    "corrupt",
    "train",
    "score",
    "eval",
    "moments",
    "export",
    "viz",
)

#: Canonical spelling of every shared option: parameter name -> (long, short or None).
#: The convention test checks that an option with one of these long names has exactly this form.
SHARED = {
    "out": ("--out", "-o"),
    "overwrite": ("--overwrite", None),
    "quiet": ("--quiet", "-q"),
    "workers": ("--workers", "-j"),
    "dataset": ("--dataset", None),
    "tracks": ("--tracks", None),
    "labels": ("--labels", None),
    "checkpoint": ("--checkpoint", None),
    "device": ("--device", None),
    "sam2_config": ("--sam2-config", None),
    "split": ("--split", None),
    "severity": ("--severity", None),
}

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


# ---------------------------------------------------------------------------------------------
# Positional inputs


def dataset_argument(help: str = "Common-format dataset directory (rvoskit convert ...).", **kw: Any) -> Any:
    """The positional ``DATASET`` (always the first positional of a command that reads one)."""
    return typer.Argument(..., help=help, show_default=False, metavar="DATASET", **kw)


# ---------------------------------------------------------------------------------------------
# Outputs


def out_option(help: str, *, required: bool = True, default: Any = None, **kw: Any) -> Any:
    """``--out/-o``: what the command writes."""
    return typer.Option(... if required else default, "--out", "-o", help=help, show_default=not required and default is not None, **kw)


def overwrite_option(help: str = "Replace an existing --out (a plain flag: no value).", **kw: Any) -> Any:
    """``--overwrite``: a plain flag."""
    return typer.Option(False, "--overwrite", help=help, show_default=False, **kw)


def quiet_option(help: str = "No progress bar and no tables; warnings and errors still go to stderr.", **kw: Any) -> Any:
    """``--quiet/-q``."""
    return typer.Option(False, "--quiet", "-q", help=help, show_default=False, **kw)


# ---------------------------------------------------------------------------------------------
# Secondary inputs


def dataset_option(help: str = "Dataset the other inputs belong to (common format).", *, required: bool = False, **kw: Any) -> Any:
    """``--dataset DIR``: a dataset that is a secondary input (the main inputs are positional)."""
    return typer.Option(... if required else None, "--dataset", help=help, show_default=False, **kw)


def tracks_option(
    help: str = "Track store, NAME=DIR or DIR (NAME defaults to the folder name); repeat for several stores.",
    *,
    required: bool = False,
    **kw: Any,
) -> Any:
    """``--tracks NAME=DIR`` (repeatable): track stores written by ``rvoskit tracks generate``."""
    return typer.Option(... if required else [], "--tracks", help=help, metavar="NAME=DIR", show_default=False, **kw)


def labels_option(help: str = "Pseudo-labels directory (rvoskit pseudolabel --out).", *, required: bool = False, **kw: Any) -> Any:
    """``--labels DIR``."""
    return typer.Option(... if required else None, "--labels", help=help, metavar="DIR", show_default=False, **kw)


def checkpoint_option(help: str, *, required: bool = False, **kw: Any) -> Any:
    """``--checkpoint PATH``."""
    return typer.Option(... if required else None, "--checkpoint", help=help, metavar="PATH", show_default=False, **kw)


# ---------------------------------------------------------------------------------------------
# Compute


def _check_device(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    value = value.strip().lower()
    if not _DEVICE_RE.match(value):
        raise typer.BadParameter(f"{value!r}: use cpu, cuda, cuda:N or auto")
    return value


def device_option(default: str = "auto", help: str = "", **kw: Any) -> Any:
    """``--device cpu|cuda:N|auto``; ``auto`` is ``cuda:0`` when CUDA is available, else ``cpu``."""
    text = help or "cpu, cuda:N, or auto (cuda:0 when CUDA is available, else cpu)."
    return typer.Option(default, "--device", help=text, metavar="cpu|cuda:N|auto", callback=_check_device, **kw)


def resolve_device(device: str, *, cpu_without_cuda: bool = False) -> str:
    """Turn a ``--device`` value into a torch device string (``"cpu"`` or ``"cuda:N"``).

    ``auto`` picks ``cuda:0`` when CUDA is available, else ``cpu``; ``cuda`` means ``cuda:0``.
    ``cpu_without_cuda``: a CUDA device falls back to ``cpu`` when CUDA is not available (the meaning
    of the deprecated ``--gpu N``).

    Raises:
        RvosError: CUDA asked for but not available, or the index is not a visible device.
    """
    from rvoskit.errors import RvosError

    device = (device or "auto").strip().lower()
    if device == "cpu":
        return "cpu"
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    if not torch.cuda.is_available():
        if cpu_without_cuda:
            return "cpu"
        raise RvosError(f"--device {device}: CUDA is not available on this machine (use --device cpu)", item="--device")
    if index >= torch.cuda.device_count():
        raise RvosError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible", item="--device")
    return f"cuda:{index}"


def workers_option(help: str = "Processes (one video per work unit).", default: int = 1, **kw: Any) -> Any:
    """``--workers/-j N`` (N >= 1)."""
    return typer.Option(default, "--workers", "-j", min=1, help=help, **kw)


def sam2_config_option(help: str = "", **kw: Any) -> Any:
    """``--sam2-config NAME``: a bundled SAM2 config; default: read from the checkpoint's file name."""
    text = help or (
        "Bundled SAM2 config: sam2_hiera_{t,s,b+,l} or sam2.1_hiera_{t,s,b+,l}. Default: read from the "
        f"checkpoint's file name (sam2.1_hiera_large.pt -> sam2.1_hiera_l); {DEFAULT_SAM2_CONFIG} without a checkpoint."
    )
    return typer.Option(None, "--sam2-config", help=text, metavar="NAME", show_default=False, **kw)


_SIZES = {"tiny": "t", "small": "s", "base_plus": "b+", "base-plus": "b+", "b+": "b+", "large": "l", "t": "t", "s": "s", "l": "l"}


def resolve_sam2_config(config: Optional[str], checkpoint: Optional[Path | str]) -> str:
    """The SAM2 config name to use: ``config`` when given, else read from the checkpoint's file name
    (the official names: ``sam2_hiera_large.pt``, ``sam2.1_hiera_base_plus.pt``, ...), else
    :data:`DEFAULT_SAM2_CONFIG` when there is no checkpoint (random weights).

    Raises:
        RvosError: a checkpoint whose file name names no SAM2 model (pass ``--sam2-config``).
    """
    from rvoskit.errors import RvosError

    if config:
        return config
    if checkpoint is None:
        return DEFAULT_SAM2_CONFIG
    name = Path(checkpoint).name.lower()
    m = re.search(r"(sam2(?:\.1)?)_hiera_(tiny|small|base_plus|base-plus|b\+|large|t|s|l)(?![a-z])", name)
    if not m:
        raise RvosError("cannot tell the SAM2 model from the checkpoint's file name; pass --sam2-config "
                        "(e.g. sam2.1_hiera_l)", file=checkpoint)
    return f"{m.group(1)}_hiera_{_SIZES[m.group(2)]}"


# ---------------------------------------------------------------------------------------------
# Split and severity (no short forms: -s meant both)


def split_option(default: Optional[str], help: str, **kw: Any) -> Any:
    """``--split NAME`` (no short form)."""
    return typer.Option(default, "--split", help=help, **kw)


def severity_option(help: str = "Severity 1..5.", *, required: bool = True, **kw: Any) -> Any:
    """``--severity N`` in 1..5 (no short form)."""
    return typer.Option(... if required else None, "--severity", min=1, max=5, help=help, **kw)


# ---------------------------------------------------------------------------------------------
# Deprecated spellings


def deprecated_alias(*names: str, default: Any = None, is_flag: bool = False, **kw: Any) -> Any:
    """A hidden option keeping an old spelling working for one release (pair it with :func:`merge_alias`)."""
    return typer.Option(False if is_flag else default, *names, hidden=True, show_default=False, **kw)


def warn_deprecated(old: str, new: str) -> None:
    """Print ``warning: OLD is deprecated, use NEW`` to stderr (once per call)."""
    from rich.console import Console

    Console(stderr=True).print(
        f"[yellow]warning:[/] {old} is deprecated and will be removed in rvoskit {REMOVED_IN}; use {new}",
        highlight=False,
        soft_wrap=True,
    )


def merge_alias(value: Any, old_value: Any, *, old: str, new: str, unset: Any = None, default: Any = None) -> Any:
    """The value of an option given under its new or its deprecated spelling.

    ``old_value`` is the hidden deprecated option's value (``unset`` when not given); ``default`` is
    the new option's default (a value equal to it counts as not given). Warns when the old spelling
    was used.

    Raises:
        RvosError: both spellings were given with different values.
    """
    from rvoskit.errors import RvosError

    if old_value is unset or old_value is None or old_value == [] or old_value is False:
        return value
    warn_deprecated(old, new)
    if value not in (unset, None, [], False) and value != default and value != old_value:
        raise RvosError(f"{old} and {new} both given with different values; use {new} only", item=new)
    return old_value


# -- where the work runs (docs/cli.md "Where the work runs") ------------------------------------
# ``--workers/-j`` stays each command's own option (its help says what one worker does); the three are
# turned into an :class:`rvoskit.executor.Executor` by :func:`rvoskit.executor.resolve_executor`.

_EXECUTOR_HELP = (
    f"Where the work runs: {', '.join(KINDS)}. local = this process; process = a pool of --workers "
    "processes; ray = one Ray task per unit (--ray-address). Default: local, or process when --workers > 1."
)
_RAY_HELP = "Ray cluster address for --executor ray (ray.init(address=...): auto, ray://head:10001); default: a local instance."


def executor_option(**kw) -> typer.models.OptionInfo:
    """``--executor {local,process,ray}`` (default None: chosen from ``--workers``)."""
    return typer.Option(None, "--executor", help=_EXECUTOR_HELP, **kw)


def ray_address_option(**kw) -> typer.models.OptionInfo:
    """``--ray-address ADDRESS``."""
    return typer.Option(None, "--ray-address", help=_RAY_HELP, **kw)
