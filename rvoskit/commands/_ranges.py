"""Option ranges, declared once where an option is defined.

``typer.Option(..., min=, max=)`` covers integers; for floats it lets ``nan`` through (every
comparison with ``nan`` is false). :func:`in_range` is the shared callback for both::

    tau: float = typer.Option(0.5, "--tau", callback=in_range(0, 1), help="...")
    fps: float = typer.Option(5.0, "--fps", callback=in_range(0, None, low_open=True), help="...")

A value outside the range is a usage error (exit 2) naming the option and the range.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import typer


def describe(low: Optional[float], high: Optional[float], *, low_open: bool = False, high_open: bool = False) -> str:
    """The range in words: ``0 <= x <= 1``, ``x > 0``, ``x >= 1``."""
    parts = []
    if low is not None:
        parts.append(f"{low:g} {'<' if low_open else '<='} ")
    parts.append("x")
    if high is not None:
        parts.append(f" {'<' if high_open else '<='} {high:g}")
    if low is not None and high is None:
        return f"x {'>' if low_open else '>='} {low:g}"
    return "".join(parts)


def in_range(
    low: Optional[float] = None,
    high: Optional[float] = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[Any], Any]:
    """A typer option callback that accepts ``None`` (option not given) and numbers in the range.

    Args:
        low, high: the bounds (``None``: unbounded on that side).
        low_open, high_open: exclude the bound itself.

    Returns:
        The callback; it raises :class:`typer.BadParameter` for ``nan``, infinities outside the range
        and every value outside ``[low, high]``. Lists (repeatable options) are checked item by item.
    """
    text = describe(low, high, low_open=low_open, high_open=high_open)

    def check(value: Any) -> Any:
        if value is None:
            return value
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if v is None:
                continue
            bad = isinstance(v, float) and math.isnan(v)
            bad = bad or (low is not None and (v <= low if low_open else v < low))
            bad = bad or (high is not None and (v >= high if high_open else v > high))
            if bad:
                raise typer.BadParameter(f"{v} is not in the range {text}.")
        return value

    return check
