"""The one rich progress bar every stage and command uses."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(*extra: ProgressColumn, label: str = "[bold]{task.description}", console: Console | None = None,
                 transient: bool = False, disable: bool = False) -> Progress:
    """A rich progress bar: label, bar, done/total, ``extra`` columns, elapsed and remaining time.

    Args:
        extra: columns placed after the count (e.g. ``TextColumn("frames")``).
        label: the first column's template (``{task.description}`` by default).
        console: where to draw (rich's default console when None).
        transient: remove the bar when it finishes.
        disable: draw nothing (quiet runs, library use).
    """
    kw = {"console": console} if console is not None else {}
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), *extra, TimeElapsedColumn(), TimeRemainingColumn(),
                    transient=transient, disable=disable, **kw)
