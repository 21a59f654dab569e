"""Errors that rvoskit reports to users without a traceback."""

from __future__ import annotations

from pathlib import Path


class RvosError(Exception):
    """Bad input or a failed stage, reported to the user as one line.

    Args:
        message: what is wrong, in words.
        file: the file (or directory) the problem is in, if any.
        item: the item inside that file (video id, expression id, frame, JSON key), if any.

    ``str(err)`` gives ``"<file>: <item>: <message>"`` with the missing parts left out. The CLI
    prints that line and exits with status 2.
    """

    def __init__(self, message: str, *, file: str | Path | None = None, item: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.item = item
        super().__init__(str(self))

    def __str__(self) -> str:  # noqa: D105
        parts = [p for p in (self.file, self.item) if p]
        return ": ".join(parts + [self.message])
