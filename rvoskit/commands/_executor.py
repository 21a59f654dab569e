"""The executor options shared by every per-video command: ``--executor``, ``--ray-address``.

``--workers/-j`` stays each command's own option (its help says what one worker does); the three
are turned into an :class:`rvoskit.executor.Executor` by :func:`rvoskit.executor.resolve_executor`.
"""

from __future__ import annotations

import typer

from rvoskit.executor import KINDS

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
